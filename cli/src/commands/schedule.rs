//! `strata schedule print|install|list`: the systemd timer or crontab line that runs
//! `strata run --due` every five minutes, and when each project is next due.

use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::Serialize;
use strata_app::config::{self, slots, timer};

use crate::exit;
use crate::output::{json, rfc3339, time, zone};
use crate::Cli;

/// Print or install the systemd timer or crontab line that runs `strata run --due`; list
/// when each project is due.
///
/// The timer (or cron) only wakes strata every five minutes; `strata run --due` then runs
/// the projects whose own schedule has had a slot since their last recorded run, so a run
/// missed while the machine was off is caught up once, not once per missed slot.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(Debug, clap::Subcommand)]
enum Sub {
    /// Print the systemd units (strata.service, strata.timer: every 5 minutes,
    /// Persistent=true) or the line for /etc/cron.d/strata.
    #[command(group(clap::ArgGroup::new("kind").required(true).args(["systemd", "cron"])))]
    Print {
        /// Print strata.service and strata.timer, each after a `# /etc/systemd/system/NAME`
        /// line.
        #[arg(long)]
        systemd: bool,
        /// Print a line for /etc/cron.d/strata (`*/5 * * * * USER STRATA --config FILE run
        /// --due`).
        #[arg(long)]
        cron: bool,
        /// The strata binary the units run (default: this one).
        #[arg(long, value_name = "PATH")]
        bin: Option<PathBuf>,
    },
    /// Write strata.service and strata.timer (atomically), then `systemctl daemon-reload`
    /// and `systemctl enable --now strata.timer`.
    Install {
        /// Install systemd units (the only kind that can be installed; for cron, put the
        /// line of `schedule print --cron` into /etc/cron.d/strata).
        #[arg(long, required = true)]
        systemd: bool,
        /// Where the units go.
        #[arg(long, value_name = "DIR", default_value = timer::SYSTEMD_DIR)]
        dir: PathBuf,
        /// Only write the units: no daemon-reload, no enabling.
        #[arg(long)]
        no_enable: bool,
        /// The strata binary the units run (default: this one).
        #[arg(long, value_name = "PATH")]
        bin: Option<PathBuf>,
    },
    /// List each project's schedules (backup, check, prune, restore-test) and their next
    /// slots after now (--now moves now). These are the schedules' slots; whether a run
    /// is due also depends on its last recorded run, which `strata run --due` reads from
    /// the catalog.
    ///
    /// With --json: [{"project", "backup", "check", "prune", "restore-test"}], each null
    /// or {"schedule", "next" (RFC 3339, UTC; null when it never comes)}.
    List {
        /// Print the list as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// The strata binary and the config file, both absolute (units run from anywhere).
fn paths(cli: &Cli, bin: &Option<PathBuf>) -> Result<(PathBuf, PathBuf)> {
    let bin = match bin {
        Some(b) => std::path::absolute(b)?,
        None => std::env::current_exe().context("finding this strata binary (give --bin)")?,
    };
    let config = cli.config.clone().unwrap_or_else(config::default_path);
    Ok((bin, std::path::absolute(&config)?))
}

#[derive(Serialize)]
struct JsonSlot {
    schedule: String,
    next: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct JsonProject {
    project: String,
    backup: Option<JsonSlot>,
    check: Option<JsonSlot>,
    prune: Option<JsonSlot>,
    restore_test: Option<JsonSlot>,
}

pub fn run(cli: &Cli, args: &Args) -> Result<u8> {
    match &args.command {
        Sub::Print { systemd, bin, .. } => {
            let (bin, config) = paths(cli, bin)?;
            if *systemd {
                for (i, unit) in timer::systemd_units(&bin, &config).iter().enumerate() {
                    if i > 0 {
                        println!();
                    }
                    println!("# {}/{}", timer::SYSTEMD_DIR, unit.name);
                    print!("{}", unit.text);
                }
            } else {
                let user = nix::unistd::User::from_uid(nix::unistd::geteuid())
                    .ok()
                    .flatten()
                    .map_or_else(|| "root".to_string(), |u| u.name);
                println!("# /etc/cron.d/strata");
                print!("{}", timer::cron_line(&bin, &config, &user));
            }
            Ok(exit::OK)
        }
        Sub::Install {
            dir,
            no_enable,
            bin,
            ..
        } => {
            let (bin, config) = paths(cli, bin)?;
            if !config.exists() {
                eprintln!(
                    "strata: warning: {} does not exist yet; the timer will fail until it does",
                    config.display()
                );
            }
            let units = timer::systemd_units(&bin, &config);
            let written = timer::install_systemd(dir, &units, !no_enable)?;
            for path in written {
                println!("wrote {}", path.display());
            }
            if !no_enable {
                println!("enabled and started strata.timer");
            }
            Ok(exit::OK)
        }
        Sub::List { json: as_json } => {
            let file = cli.config.clone().unwrap_or_else(config::default_path);
            let config = match config::load(Some(&file)) {
                Ok(c) => c,
                Err(errors) => {
                    for e in &errors.0 {
                        eprintln!("{}", crate::output::printable(e.to_string().as_bytes()));
                    }
                    return Ok(2);
                }
            };
            let now = cli.clock().now_ns();
            let list = slots::next_slots(&config, now, zone());
            if *as_json {
                let out: Vec<JsonProject> = list.into_iter().map(json_project).collect();
                json(&out)?;
            } else {
                print_list(&list);
            }
            Ok(exit::OK)
        }
    }
}

fn json_project(p: slots::ProjectSlots) -> JsonProject {
    let slot = |s: Option<slots::Slot>| {
        s.map(|s| JsonSlot {
            schedule: s.schedule,
            next: s.next_ns.map(rfc3339),
        })
    };
    JsonProject {
        project: p.project,
        backup: slot(p.backup),
        check: slot(p.check),
        prune: slot(p.prune),
        restore_test: slot(p.restore_test),
    }
}

fn print_list(list: &[slots::ProjectSlots]) {
    if list.is_empty() {
        println!("no projects");
        return;
    }
    println!("{:<16} {:<13} {:<20} NEXT", "PROJECT", "WHAT", "SCHEDULE");
    for p in list {
        let rows = [
            ("backup", &p.backup),
            ("check", &p.check),
            ("prune", &p.prune),
            ("restore-test", &p.restore_test),
        ];
        for (what, slot) in rows {
            let (schedule, next) = match slot {
                Some(s) => (
                    s.schedule.clone(),
                    s.next_ns.map_or_else(|| "never".to_string(), time),
                ),
                None if what == "backup" => ("-".to_string(), "only when named".to_string()),
                None => continue,
            };
            println!("{:<16} {:<13} {:<20} {}", p.project, what, schedule, next);
        }
    }
}
