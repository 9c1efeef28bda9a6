//! `strata log`: the audit catalog, listed or verified.

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;
use strata_app::catalog::{Catalog, Entry, VerifyReport, CATALOG_FILE, HEAD_FILE};
use strata_app::ops::{Query, Record, RecordBody, RecordKind};

use crate::output::{bytes, json, printable, rfc3339, time, zone};
use crate::{app_error, exit, Cli};

/// The audit catalog: runs, backups, copies, retention decisions, prunes, checks, restores,
/// restore tests, hooks and notifications, as `strata run`, `restore` and `verify` recorded
/// them in the state directory. Lists the newest records (all, or --limit), oldest first;
/// `--verify` checks the hash chain that links them; `--rebuild` recreates the catalog from
/// the evidence files in the config's repositories (exit 3 when a repository could not be
/// read).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only records of this project.
    #[arg(long, value_name = "NAME")]
    project: Option<String>,
    /// Only records of this repository (its name in the config).
    #[arg(long, value_name = "NAME")]
    repository: Option<String>,
    /// Only records of this kind.
    #[arg(long, value_name = "KIND", value_parser = kind_parser())]
    kind: Option<String>,
    /// Only records since this long ago (`30d`, `12h`, `1y2m`) or since this time
    /// (`2026-12-01`, `2026-12-01 03:00`; local time unless a zone or offset is given).
    #[arg(long, value_name = "SPAN|TIME")]
    since: Option<String>,
    /// Only failed records.
    #[arg(long)]
    failed: bool,
    /// At most this many records (the newest).
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Print JSON: an array of records (with `seq`, `hash` and `time` in RFC 3339 UTC), or
    /// with --verify the verification report.
    #[arg(long)]
    json: bool,
    /// Check the hash chain: a deleted, edited or inserted record is reported (exit 1);
    /// else prints "N records, chain intact" (exit 0).
    #[arg(long, conflicts_with_all = ["project", "repository", "kind", "since", "failed", "limit"])]
    verify: bool,
    /// Recreate the catalog from the evidence files (run summaries, restore-test
    /// reports) in every repository of the config, into an empty catalog.
    #[arg(long, conflicts_with_all = ["project", "repository", "kind", "since", "failed", "limit", "verify"])]
    rebuild: bool,
    /// With --rebuild: rebuild even when the catalog has records; the old catalog is kept
    /// beside it as `catalog.sqlite.replaced-TIME`.
    #[arg(long, requires = "rebuild")]
    force: bool,
    /// Read the catalog of this state directory (default: the config's `state-dir`).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
}

fn kind_parser() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(RecordKind::ALL.map(RecordKind::name))
}

/// The state directory: `--state-dir`, else the config's.
pub fn state_dir(cli: &Cli, given: Option<&Path>) -> Result<PathBuf> {
    if let Some(dir) = given {
        return Ok(dir.to_path_buf());
    }
    match strata_app::config::load(cli.config.as_deref()) {
        Ok(cfg) => Ok(cfg.state_dir),
        Err(errors) => anyhow::bail!(
            "{errors}\n(the catalog is in the config's state-dir; or give --state-dir DIR)"
        ),
    }
}

/// The time `--since` names: a span back from now, or a time.
pub fn since_ns(cli: &Cli, since: &str) -> i64 {
    use strata_engine::retention::{parse_span, parse_time, subtract_span};
    if let Ok(span) = parse_span(since) {
        return subtract_span(cli.clock().now_ns(), span, zone());
    }
    parse_time(since, zone()).unwrap_or_else(|e| {
        crate::usage_error(format!(
            "--since {since:?}: neither a span such as `30d` or `12h` nor a time ({e})"
        ))
    })
}

pub fn run(cli: &Cli, args: &Args) -> Result<u8> {
    if args.rebuild {
        return rebuild(cli, args);
    }
    let dir = state_dir(cli, args.state_dir.as_deref())?;
    let Some(cat) = Catalog::open_read_only(&dir).map_err(app_error)? else {
        return no_catalog(&dir, args);
    };
    if args.verify {
        let report = cat.verify().map_err(app_error)?;
        return print_report(&report, args.json);
    }
    let q = Query {
        project: args.project.clone(),
        repository: args.repository.clone(),
        kind: args.kind.as_deref().and_then(RecordKind::parse),
        ok_only: false,
        since_ns: args.since.as_deref().map(|s| since_ns(cli, s)),
        limit: if args.failed { None } else { args.limit },
    };
    let mut entries = cat.entries(&q).map_err(app_error)?;
    if args.failed {
        entries.retain(|e| !e.record.ok);
        entries.truncate(args.limit.unwrap_or(usize::MAX));
    }
    entries.reverse();
    if args.json {
        json(&entries.iter().map(EntryJson::from).collect::<Vec<_>>())?;
    } else if entries.is_empty() {
        eprintln!("strata: no records match");
    } else {
        print_table(&entries);
    }
    Ok(exit::OK)
}

fn rebuild(cli: &Cli, args: &Args) -> Result<u8> {
    let cfg = strata_app::config::load(cli.config.as_deref())
        .map_err(|errors| anyhow::anyhow!("{errors}"))?;
    let dir = args
        .state_dir
        .clone()
        .unwrap_or_else(|| cfg.state_dir.clone());
    if let Some(old) = Catalog::open_read_only(&dir).map_err(app_error)? {
        let n = old.len().map_err(app_error)?;
        drop(old);
        if n > 0 && !args.force {
            anyhow::bail!(
                "the catalog {} has {n} records: --rebuild goes into an empty catalog \
                 (--force keeps the old one beside it and rebuilds)",
                dir.join(CATALOG_FILE).display()
            );
        }
        if n > 0 {
            let stamp = cli.clock().now_ns() / 1_000_000_000;
            for name in [
                CATALOG_FILE,
                "catalog.sqlite-wal",
                "catalog.sqlite-shm",
                HEAD_FILE,
            ] {
                let from = dir.join(name);
                if from.exists() {
                    let to = dir.join(format!("{name}.replaced-{stamp}"));
                    std::fs::rename(&from, &to)
                        .map_err(|e| anyhow::anyhow!("moving {} aside: {e}", from.display()))?;
                }
            }
            eprintln!(
                "strata: the old catalog is kept as {}.replaced-{stamp}",
                CATALOG_FILE
            );
        }
    }
    let cat = Catalog::open(&dir).map_err(app_error)?;
    let stats = cat
        .rebuild(&cfg, |_, spec| {
            strata_app::catalog::read_repository_evidence(spec)
        })
        .map_err(app_error)?;
    if args.json {
        json(&stats)?;
    } else {
        println!(
            "{} records from {} evidence files in {} repositories ({} duplicates, {} unreadable)",
            stats.records,
            stats.evidence_files,
            stats.repositories,
            stats.duplicates,
            stats.unreadable
        );
        for (name, why) in &stats.failed {
            eprintln!("strata: repository {name}: {}", printable(why.as_bytes()));
        }
    }
    Ok(if stats.failed.is_empty() {
        exit::OK
    } else {
        exit::PARTIAL
    })
}

/// No catalog file: nothing recorded yet, unless a head file says records were.
fn no_catalog(dir: &Path, args: &Args) -> Result<u8> {
    let path = dir.join(CATALOG_FILE);
    let head = dir.join(HEAD_FILE);
    if args.verify && head.exists() {
        println!(
            "no catalog at {}, but {} names a last record: the catalog was deleted",
            path.display(),
            head.display()
        );
        return Ok(exit::FATAL);
    }
    eprintln!(
        "strata: no catalog at {} (nothing has been recorded there yet)",
        path.display()
    );
    if args.json && !args.verify {
        println!("[]");
    }
    Ok(exit::OK)
}

fn print_report(report: &VerifyReport, as_json: bool) -> Result<u8> {
    if as_json {
        json(report)?;
    } else if report.is_intact() {
        println!("{} records, chain intact", report.records);
    } else {
        for p in &report.problems {
            match p.seq {
                0 => println!("catalog: {}", printable(p.what.as_bytes())),
                seq => println!("record {seq}: {}", printable(p.what.as_bytes())),
            }
        }
        println!(
            "{} records, {} problem{}",
            report.records,
            report.problems.len(),
            if report.problems.len() == 1 { "" } else { "s" }
        );
    }
    Ok(if report.is_intact() {
        exit::OK
    } else {
        exit::FATAL
    })
}

/// A record in `--json`: its place in the chain, its time for people, then the record.
#[derive(Serialize)]
struct EntryJson<'a> {
    seq: u64,
    hash: String,
    time: String,
    kind: &'static str,
    #[serde(flatten)]
    record: &'a Record,
}

impl<'a> From<&'a Entry> for EntryJson<'a> {
    fn from(e: &'a Entry) -> Self {
        EntryJson {
            seq: e.seq,
            hash: hex::encode(e.hash),
            time: rfc3339(e.record.time_ns),
            kind: e.record.kind().name(),
            record: &e.record,
        }
    }
}

fn print_table(entries: &[Entry]) {
    let text = |s: &Option<String>| printable(s.as_deref().unwrap_or("-").as_bytes());
    let rows: Vec<[String; 6]> = entries
        .iter()
        .map(|e| {
            let r = &e.record;
            let mut summary = summary(r);
            if let Some(err) = &r.error {
                summary = if summary.is_empty() {
                    err.clone()
                } else {
                    format!("{summary}: {err}")
                };
            }
            [
                time(r.time_ns),
                r.kind().name().to_string(),
                text(&r.project),
                text(&r.repository),
                if r.ok { "ok" } else { "FAILED" }.to_string(),
                printable(summary.replace('\n', " ").as_bytes()),
            ]
        })
        .collect();
    let header = ["time", "kind", "project", "repository", "result", "summary"];
    let width = |i: usize| {
        rows.iter()
            .map(|r| r[i].chars().count())
            .chain([header[i].len()])
            .max()
            .unwrap_or(0)
    };
    let w: Vec<usize> = (0..5).map(width).collect();
    let line = |c: [&str; 6]| {
        println!(
            "{:<w0$}  {:<w1$}  {:<w2$}  {:<w3$}  {:<w4$}  {}",
            c[0],
            c[1],
            c[2],
            c[3],
            c[4],
            c[5],
            w0 = w[0],
            w1 = w[1],
            w2 = w[2],
            w3 = w[3],
            w4 = w[4]
        )
    };
    line(header);
    for r in &rows {
        line([&r[0], &r[1], &r[2], &r[3], &r[4], &r[5]]);
    }
}

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// A duration for people, to the second (`1m 3s`; `0s` under a second).
pub fn duration(ns: i64) -> String {
    let secs = std::time::Duration::from_secs((ns.max(0) / 1_000_000_000) as u64);
    humantime::format_duration(secs).to_string()
}

/// One line saying what a record records.
fn summary(r: &Record) -> String {
    match &r.body {
        RecordBody::Run {
            trigger,
            started_ns,
            exit_code,
            snapshots,
            ..
        } => format!(
            "{trigger} run {}, exit {exit_code}, {} snapshot{}, {}",
            r.run_id.as_ref().map_or("", |id| id.as_str()),
            snapshots.len(),
            if snapshots.len() == 1 { "" } else { "s" },
            duration(r.time_ns - started_ns)
        ),
        RecordBody::Backup {
            source,
            source_kind,
            snapshot_id,
            bytes_read,
            bytes_added,
            files,
            duration_ns,
            unreadable,
            ..
        } => {
            let mut s = format!(
                "{source} ({source_kind}) -> {}: read {}, added {}, {files} files, {}",
                snapshot_id.as_deref().map_or("no snapshot", short),
                bytes(*bytes_read),
                bytes(*bytes_added),
                duration(*duration_ns)
            );
            if *unreadable > 0 {
                s.push_str(&format!(", {unreadable} unreadable"));
            }
            s
        }
        RecordBody::Copy {
            from,
            snapshot_id,
            dest_id,
            bytes_added,
        } => format!(
            "{} from {from} -> {}, added {}",
            short(snapshot_id),
            dest_id.as_deref().map_or("-", short),
            bytes(*bytes_added)
        ),
        RecordBody::Retention {
            snapshot_id,
            action,
            reasons,
            hold_until_ns,
        } => {
            let mut s = format!("{action} {}", short(snapshot_id));
            if let Some(t) = hold_until_ns {
                s.push_str(&format!(" until {}", time(*t)));
            }
            if !reasons.is_empty() {
                s.push_str(&format!(": {}", reasons.join(", ")));
            }
            s
        }
        RecordBody::Prune {
            packs_deleted,
            bytes_freed,
            duration_ns,
        } => format!(
            "{packs_deleted} packs deleted, {} freed, {}",
            bytes(*bytes_freed),
            duration(*duration_ns)
        ),
        RecordBody::Check {
            read_data,
            errors,
            duration_ns,
        } => format!(
            "read data {read_data}, {errors} error{}, {}",
            if *errors == 1 { "" } else { "s" },
            duration(*duration_ns)
        ),
        RecordBody::Restore {
            snapshot_id,
            what,
            target,
            safety_snapshot,
        } => {
            let mut s = format!("{} {what} -> {target}", short(snapshot_id));
            if let Some(id) = safety_snapshot {
                s.push_str(&format!(" (safety snapshot {})", short(id)));
            }
            if let Some(user) = &r.user {
                s.push_str(&format!(" by {user}"));
            }
            s
        }
        RecordBody::RestoreTest { snapshot_id, .. } => format!(
            "{} {}",
            short(snapshot_id),
            if r.ok { "restores" } else { "did not restore" }
        ),
        RecordBody::Hook {
            which,
            exit_code,
            stderr_tail,
        } => {
            let mut s = match exit_code {
                Some(c) => format!("{which} exited {c}"),
                None => format!("{which} was killed"),
            };
            if let Some(last) = stderr_tail.lines().rev().find(|l| !l.trim().is_empty()) {
                s.push_str(&format!(": {}", last.trim()));
            }
            s
        }
        RecordBody::Notify {
            channel,
            event,
            attempts,
        } => format!(
            "{} to {channel}, {attempts} attempt{}",
            event.name(),
            if *attempts == 1 { "" } else { "s" }
        ),
        RecordBody::Access {
            action,
            target,
            address,
            ..
        } => format!("{action} {target} from {address}"),
    }
}
