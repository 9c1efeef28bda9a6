//! `strata health`: each project's backups judged (the checks are the app's
//! `strata_app::health`), printed as a table or JSON, with Nagios exit codes.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use strata_app::config::Config;
use strata_app::health::{self, HealthReport, StorageProbe};
use strata_app::ops::{History, Status};

use crate::output::json;
use crate::Cli;

/// Judge each project's backups: the age of the last success against max-age, the last
/// backup's size against the usual, restore tests and checks, copies lagging behind, free
/// space, a run stuck on its lock, notifications that failed.
///
/// The first line says the worst status (as Nagios, Icinga and Zabbix show it), then one
/// line per item: project, repository, check, status, message. Exit codes: 0 ok, 1
/// warning, 2 critical, 3 unknown (the config or the catalog cannot be read, an unknown
/// project, a --prometheus file that cannot be written).
///
/// With --json: {"time_ns", "status", "items": [{"project", "repository", "source",
/// "check", "status", "message", "value"}]}; status is ok, warning, critical or unknown;
/// check is last-success, size, restore-test, check, copy-lag, free-space, run-lock or
/// notifications. When health cannot be judged: {"status": "unknown", "error", "items": []}.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only these projects (default: every project of strata.toml).
    #[arg(value_name = "PROJECT")]
    projects: Vec<String>,

    /// Print the report as JSON.
    #[arg(long)]
    json: bool,

    /// Also write the metrics to FILE as a node_exporter textfile (written atomically):
    /// strata_last_success_timestamp_seconds, strata_last_backup_bytes,
    /// strata_last_run_duration_seconds and strata_health_status (0 ok … 3 unknown).
    #[arg(long, value_name = "FILE")]
    prometheus: Option<PathBuf>,
}

const UNKNOWN: u8 = 3;

pub fn run(cli: &Cli, args: &Args) -> Result<u8> {
    let mut cfg = match strata_app::config::load(cli.config.as_deref()) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("strata: {e}");
            return unknown(args, "the config cannot be read");
        }
    };
    if let Err(unknown_project) = keep_projects(&mut cfg, &args.projects) {
        return unknown(args, &unknown_project);
    }
    let history = match open_history(&cfg) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("strata: the catalog cannot be read: {e}");
            return unknown(args, "the catalog cannot be read");
        }
    };
    let now_ns = cli.clock().now_ns();
    let report = health::evaluate(&cfg, history.as_ref(), now_ns, &StorageProbe::new(&cfg));
    let mut code = report.status.exit_code();
    if let Some(file) = &args.prometheus {
        if let Err(e) = health::write_prometheus(&report, history.as_ref(), file) {
            eprintln!("strata: {e}");
            code = UNKNOWN;
        }
    }
    if args.json {
        json(&report)?;
    } else {
        print_table(&report)?;
    }
    Ok(code)
}

/// Health cannot be judged: exit 3, with the reason as the Nagios line (or as JSON:
/// {"status": "unknown", "error", "items": []}).
fn unknown(args: &Args, why: &str) -> Result<u8> {
    if args.json {
        json(&serde_json::json!({ "status": "unknown", "error": why, "items": [] }))?;
    } else {
        println!("UNKNOWN: {why}");
    }
    Ok(UNKNOWN)
}

/// Keeps only the named projects (all when none are named); an unknown name is an error.
fn keep_projects(cfg: &mut Config, names: &[String]) -> std::result::Result<(), String> {
    if names.is_empty() {
        return Ok(());
    }
    if let Some(unknown) = names.iter().find(|n| !cfg.projects.contains_key(*n)) {
        let known: Vec<&str> = cfg.projects.keys().map(String::as_str).collect();
        eprintln!(
            "strata: no project named {unknown:?} in {} (projects: {})",
            cfg.file.display(),
            known.join(", ")
        );
        return Err(format!("no project named {unknown:?}"));
    }
    cfg.projects.retain(|name, _| names.contains(name));
    Ok(())
}

/// The catalog's history. #16 part B: open the catalog in `cfg.state_dir` here; until it
/// lands, an empty history (every project then reads "no successful backup yet").
/// The catalog, read only; a state directory without one is an empty history (every
/// project then reads as "no successful backup yet").
fn open_history(cfg: &Config) -> Result<Box<dyn History>> {
    Ok(
        match strata_app::catalog::Catalog::open_read_only(&cfg.state_dir)? {
            Some(c) => Box::new(c),
            None => Box::new(strata_app::ops::Nothing),
        },
    )
}

fn print_table(report: &HealthReport) -> Result<()> {
    let count = |s: Status| report.items.iter().filter(|i| i.status == s).count();
    let mut out = std::io::stdout().lock();
    let mut summary = vec![format!("{} checks", report.items.len())];
    for s in [Status::Unknown, Status::Critical, Status::Warning] {
        if count(s) > 0 {
            summary.push(format!("{} {}", count(s), s.name()));
        }
    }
    writeln!(
        out,
        "{}: {}",
        report.status.name().to_uppercase(),
        summary.join(", ")
    )?;
    let rows: Vec<[String; 5]> = report
        .items
        .iter()
        .map(|i| {
            let repo = match (&i.repository, &i.source) {
                (Some(r), Some(s)) => format!("{r} ({s})"),
                (Some(r), None) => r.clone(),
                (None, _) => "-".into(),
            };
            [
                i.project.clone(),
                repo,
                i.check.name().to_string(),
                i.status.name().to_string(),
                i.message.clone(),
            ]
        })
        .collect();
    let header = ["PROJECT", "REPOSITORY", "CHECK", "STATUS", "MESSAGE"].map(String::from);
    let mut widths = [0usize; 4];
    for row in std::iter::once(&header).chain(&rows) {
        for (w, cell) in widths.iter_mut().zip(row.iter()) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        writeln!(
            out,
            "{:<w0$}  {:<w1$}  {:<w2$}  {:<w3$}  {}",
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3],
        )?;
    }
    Ok(())
}
