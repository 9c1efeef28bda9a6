//! `strata run`

use std::io::IsTerminal;
use std::sync::Arc;

use anyhow::Result;

use strata_app::catalog::Catalog;
use strata_app::health;
use strata_app::notify::Dispatcher;
use strata_app::ops::{History, Nothing, Notifier, Recorder};
use strata_app::run::{self, ProjectReport, ProjectStatus, RunEnv, RunObserver, Selection, Silent};

use crate::output::{bytes, json};
use crate::Cli;

/// Run projects of strata.toml: back up each source once into the primary repository,
/// copy to the others, apply each repository's retention, and record and notify (for
/// cron: `strata run --due`).
///
/// Each named project (default: all) is run in turn; one project failing never stops the
/// others. Per project: its run lock (a second run of the same project exits at once with
/// "project shop: already running since 03:00:02 (pid 4121)"), the `before` hook (its
/// failure fails the project and nothing is backed up), each source as its own snapshot in
/// the primary repository (tagged `strata-run:<run id>` and with every --tag; a source
/// running past the project's `timeout` is stopped and fails), the new snapshots copied
/// to every other repository of the project (only missing data; no source is read
/// twice), each repository's retention (and its `hold-<rule>` holds), prune, check and
/// restore tests when their schedules are due, and the `after` hook whatever happened
/// (STRATA_RUN_STATUS=ok|failed). With --now, snapshots get that time and schedules and
/// retention are judged at it.
///
/// Exit codes: 0 all projects ok (or not due), 1 a project failed, 11 a project was
/// locked by another run (and none failed), 3 some source files could not be read (and
/// nothing worse), 2 a usage error (an unknown project, a config with errors).
///
/// With --json the run report is printed: {"run_id", "started", "finished" (RFC 3339,
/// UTC), "exit_code", "dry_run", "projects": [{"project", "status" (ok, failed, partial,
/// locked, skipped), "error", "duration_s", "snapshots": [{"repository", "source", "kind",
/// "snapshot_id", "bytes_read", "bytes_total", "bytes_added", "files", "status", "error"}], "copies":
/// [{"from", "to", "snapshot_id", "dest_id", "bytes_added"}], "forgotten": [{"repository",
/// "snapshot_id", "reasons"}], "held": [{"repository", "snapshot_id", "new_id", "until",
/// "reasons"}], "maintenance": [{"repository", "what", "ok", "error"}], "hooks":
/// [{"which", "ok", "exit_code", "stderr_tail"}]}]}.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Projects to run (default: every project of the config).
    #[arg(value_name = "PROJECT")]
    projects: Vec<String>,
    /// Run only the projects whose schedule is due since their last recorded run (for a
    /// timer that starts `strata run --due` every few minutes).
    #[arg(long)]
    due: bool,
    /// Tag every snapshot of this run (repeatable), e.g. `--tag pre-deploy`.
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,
    /// Say what would be backed up, copied and forgotten; change nothing (no hook runs).
    #[arg(short = 'n', long)]
    dry_run: bool,
    /// Print the run report as JSON.
    #[arg(long)]
    json: bool,
}

/// One line a step, on standard error, when it is a terminal.
struct Lines;

impl RunObserver for Lines {
    fn step(&self, project: &str, what: &str) {
        eprintln!("{project}: {what}");
    }
}

pub fn run(cli: &Cli, args: &Args) -> Result<u8> {
    let clock = cli.clock();
    let cfg = match strata_app::config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("{errors}");
            return Ok(2);
        }
    };
    let sel = Selection {
        projects: args.projects.clone(),
        due: args.due,
        tags: args.tags.clone(),
        dry_run: args.dry_run,
        trigger: if args.due { "due" } else { "manual" }.to_string(),
    };
    let unknown = sel.unknown_projects(&cfg);
    if !unknown.is_empty() {
        let known: Vec<&str> = cfg.projects.keys().map(String::as_str).collect();
        crate::usage_error(format!(
            "no project {} in {} (projects: {})",
            unknown.join(", "),
            cfg.file.display(),
            known.join(", ")
        ));
    }
    let terminal = std::io::stderr().is_terminal() && !cli.quiet && !args.json;
    let observer: &dyn RunObserver = if terminal { &Lines } else { &Silent };
    // The catalog records the run; a dry run changes nothing, the catalog included.
    let catalog: Option<Arc<Catalog>> = if args.dry_run {
        None
    } else {
        match Catalog::open(&cfg.state_dir) {
            Ok(c) => Some(Arc::new(c)),
            // `--due` decides from the catalog: without it every project would look never
            // run, and run every few minutes. A named run goes ahead: backups matter more
            // than their record (health shows the catalog's state).
            Err(e) if args.due => {
                eprintln!("strata: nothing is run: --due needs the catalog: {e}");
                return Ok(crate::exit::FATAL);
            }
            Err(e) => {
                eprintln!("strata: the run is not recorded: {e}");
                None
            }
        }
    };
    let recorder: Arc<dyn Recorder> = match &catalog {
        Some(c) => c.clone(),
        None => Arc::new(Nothing),
    };
    let history: &dyn History = match &catalog {
        Some(c) => c.as_ref(),
        None => &Nothing,
    };
    let dispatcher = Dispatcher::new(&cfg, recorder.clone());
    let notifier: &dyn Notifier = if args.dry_run { &Nothing } else { &dispatcher };
    let env = RunEnv {
        clock,
        recorder: recorder.as_ref(),
        history,
        notifier,
        observer,
        host: None,
        runtime: None,
    };
    let report = run::run(&cfg, &sel, &env);
    // `run --due` from cron also judges health and alerts on what got worse: that is how
    // backups that silently stopped (no run fails) raise an alarm.
    if args.due && !args.dry_run {
        let health = health::evaluate(
            &cfg,
            history,
            clock.now_ns(),
            &health::StorageProbe::new(&cfg),
        );
        let state = cfg.state_dir.join(health::STATE_FILE);
        if let Err(e) = health::notify_changes(&cfg, &health, &state, notifier) {
            eprintln!("strata: health alerts: {e}");
        }
    }
    if args.json {
        json(&report)?;
    } else if !cli.quiet {
        for p in &report.projects {
            print_project(p, report.dry_run);
        }
    } else {
        for p in &report.projects {
            if let (ProjectStatus::Failed | ProjectStatus::Locked, Some(e)) = (p.status, &p.error) {
                eprintln!("strata: {}: {e}", p.project);
            }
        }
    }
    Ok(report.exit_code)
}

fn print_project(p: &ProjectReport, dry_run: bool) {
    let status = if dry_run && p.status == ProjectStatus::Ok {
        "dry run"
    } else {
        p.status.name()
    };
    println!("{}: {status} ({:.1}s)", p.project, p.duration_s);
    for s in &p.snapshots {
        match &s.snapshot_id {
            Some(id) => println!(
                "  {} -> {} snapshot {} (read {}, added {}){}",
                s.source,
                s.repository,
                &id[..8.min(id.len())],
                bytes(s.bytes_read),
                bytes(s.bytes_added),
                if s.status == "partial" {
                    ", some files unreadable"
                } else {
                    ""
                }
            ),
            None if dry_run => println!("  would back up {} into {}", s.source, s.repository),
            None => println!("  {} FAILED", s.source),
        }
    }
    for c in &p.copies {
        match &c.dest_id {
            Some(id) => println!(
                "  copied {} to {} as {} (added {})",
                &c.snapshot_id[..8.min(c.snapshot_id.len())],
                c.to,
                &id[..8.min(id.len())],
                bytes(c.bytes_added)
            ),
            None if dry_run => println!("  would copy the new snapshots to {}", c.to),
            None => {}
        }
    }
    let verb = if dry_run { "would forget" } else { "forgot" };
    for f in &p.forgotten {
        println!(
            "  {verb} {} in {}",
            &f.snapshot_id[..8.min(f.snapshot_id.len())],
            f.repository
        );
    }
    for h in &p.held {
        println!(
            "  held {} in {} until {} ({})",
            &h.snapshot_id[..8.min(h.snapshot_id.len())],
            h.repository,
            h.until,
            h.reasons.join(", ")
        );
    }
    for m in &p.maintenance {
        println!(
            "  {} of {}: {}",
            m.what,
            m.repository,
            if m.ok { "ok" } else { "FAILED" }
        );
    }
    if let Some(e) = &p.error {
        for line in e.lines() {
            println!("  error: {line}");
        }
    }
}
