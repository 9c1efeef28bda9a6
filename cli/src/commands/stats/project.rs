//! `strata stats --project P` without a repository: the project's runs from the catalog.

use std::path::Path;

use anyhow::Result;
use serde::Serialize;
use strata_app::catalog::{self, Catalog, ProjectStats, RunStats, SourceTrend};

use crate::commands::log::{duration, since_ns, state_dir};
use crate::output::{bytes, json, printable, rfc3339, time};
use crate::{app_error, exit, Cli};

#[derive(Serialize)]
struct StatsJson<'a> {
    project: &'a str,
    runs: Vec<RunJson<'a>>,
    sources: &'a [SourceTrend],
}

#[derive(Serialize)]
struct RunJson<'a> {
    time: String,
    #[serde(flatten)]
    run: &'a RunStats,
}

pub fn run(
    cli: &Cli,
    project: &str,
    state: Option<&Path>,
    since: Option<&str>,
    as_json: bool,
) -> Result<u8> {
    let dir = state_dir(cli, state)?;
    let since = since.map(|s| since_ns(cli, s));
    let stats = match Catalog::open_read_only(&dir).map_err(app_error)? {
        Some(cat) => catalog::project_stats(&cat, project, since).map_err(app_error)?,
        None => {
            eprintln!(
                "strata: no catalog at {} (nothing has been recorded there yet)",
                dir.join(catalog::CATALOG_FILE).display()
            );
            ProjectStats {
                project: project.to_string(),
                runs: Vec::new(),
                sources: Vec::new(),
            }
        }
    };
    if as_json {
        json(&StatsJson {
            project,
            runs: stats
                .runs
                .iter()
                .map(|run| RunJson {
                    time: rfc3339(run.time_ns),
                    run,
                })
                .collect(),
            sources: &stats.sources,
        })?;
        return Ok(exit::OK);
    }
    if stats.runs.is_empty() {
        eprintln!(
            "strata: no backups of project {} in the catalog",
            printable(project.as_bytes())
        );
        return Ok(exit::OK);
    }
    println!(
        "{:<19}  {:>7}  {:>11}  {:>11}  {:>11}  {:>8}  {:>9}  result",
        "time", "sources", "read", "added", "stored", "dedup", "duration"
    );
    for r in &stats.runs {
        println!(
            "{:<19}  {:>7}  {:>11}  {:>11}  {:>11}  {:>8}  {:>9}  {}",
            time(r.time_ns),
            r.sources,
            bytes(r.bytes_read),
            bytes(r.bytes_added),
            bytes(r.stored_bytes),
            r.dedup_ratio.map_or("-".into(), |d| format!("{d:.1}x")),
            duration(r.duration_ns),
            if r.ok { "ok" } else { "FAILED" }
        );
    }
    println!();
    println!(
        "{:<24}  {:>7}  {:>11}  {:>11}  {:>13}",
        "source", "backups", "first", "last", "growth/day"
    );
    for s in &stats.sources {
        let (first, last) = (s.sizes.first(), s.sizes.last());
        println!(
            "{:<24}  {:>7}  {:>11}  {:>11}  {:>13}",
            printable(s.source.as_bytes()),
            s.sizes.len(),
            first.map_or("-".into(), |p| bytes(p.bytes_read)),
            last.map_or("-".into(), |p| bytes(p.bytes_read)),
            s.bytes_per_day.map_or("-".into(), signed_bytes)
        );
    }
    Ok(exit::OK)
}

/// `+1.20 MiB`, `-3 B`.
fn signed_bytes(n: f64) -> String {
    let sign = if n < 0.0 { "-" } else { "+" };
    format!("{sign}{}", bytes(n.abs().round() as u64))
}
