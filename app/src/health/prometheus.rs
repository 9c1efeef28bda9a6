//! The node_exporter textfile (`--prometheus FILE`): the last success, the last backup's
//! size, the last run's duration and each check's status, as gauges.
//!
//! ```text
//! strata_last_success_timestamp_seconds{project="shop",repository="hot"} 1796612402
//! strata_last_backup_bytes{project="shop",repository="hot",source="paths"} 123456
//! strata_last_run_duration_seconds{project="shop"} 42.5
//! strata_health_status{project="shop",check="last-success"} 0
//! ```
//! A status is 0 ok, 1 warning, 2 critical, 3 unknown. The file is written to a temporary
//! name beside it and renamed, so the exporter never reads half of it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use super::{Check, HealthReport};
use crate::ops::{History, Query, RecordBody, RecordKind};
use crate::{AppError, Result};

/// Writes the report's metrics to `path` (atomically); the run durations come from
/// `history`.
pub fn write_prometheus(report: &HealthReport, history: &dyn History, path: &Path) -> Result<()> {
    let text = render(report, history);
    write_atomically(path, text.as_bytes(), 0o644)
        .map_err(|e| AppError::Invalid(format!("writing {}: {e}", path.display())))
}

/// Writes `bytes` to a temporary name beside `path` (mode `mode`), syncs, and renames it
/// over `path`.
pub(super) fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("not a file name"))?;
    let tmp = path.with_file_name(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// The textfile's content.
pub fn render(report: &HealthReport, history: &dyn History) -> String {
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, samples: &[(Vec<(&str, &str)>, f64)]| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        for (labels, value) in samples {
            let labels: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                .collect();
            let _ = writeln!(out, "{name}{{{}}} {value}", labels.join(","));
        }
    };

    // The last success of each (project, repository): of its oldest source on the primary.
    let mut success: BTreeMap<(&str, &str), f64> = BTreeMap::new();
    let mut bytes = Vec::new();
    for i in &report.items {
        let (Some(repo), Some(v)) = (i.repository.as_deref(), i.value) else {
            continue;
        };
        match i.check {
            Check::LastSuccess => {
                let e = success.entry((i.project.as_str(), repo)).or_insert(v);
                *e = e.min(v);
            }
            Check::Size => bytes.push((
                vec![
                    ("project", i.project.as_str()),
                    ("repository", repo),
                    ("source", i.source.as_deref().unwrap_or("")),
                ],
                v,
            )),
            _ => {}
        }
    }
    let success: Vec<_> = success
        .into_iter()
        .map(|((p, r), v)| (vec![("project", p), ("repository", r)], v))
        .collect();
    gauge(
        "strata_last_success_timestamp_seconds",
        "Unix time of the last successful backup (primary) or copy (other repositories).",
        &success,
    );
    gauge(
        "strata_last_backup_bytes",
        "Bytes read by the last successful backup of a source.",
        &bytes,
    );

    let projects: std::collections::BTreeSet<&str> =
        report.items.iter().map(|i| i.project.as_str()).collect();
    let mut durations = Vec::new();
    for p in &projects {
        let q = Query {
            project: Some(p.to_string()),
            kind: Some(RecordKind::Run),
            limit: Some(1),
            ..Query::default()
        };
        if let Ok(Some(r)) = history.last(&q) {
            if let RecordBody::Run { started_ns, .. } = r.body {
                let secs = r.time_ns.saturating_sub(started_ns).max(0) as f64 / 1e9;
                durations.push((vec![("project", *p)], secs));
            }
        }
    }
    gauge(
        "strata_last_run_duration_seconds",
        "Duration of the project's last run.",
        &durations,
    );

    let statuses: Vec<_> = report
        .by_project_check()
        .into_iter()
        .map(|((p, c), s)| (p, c, s))
        .collect();
    let statuses: Vec<_> = statuses
        .iter()
        .map(|(p, c, s)| {
            (
                vec![("project", p.as_str()), ("check", c.name())],
                f64::from(s.exit_code()),
            )
        })
        .collect();
    gauge(
        "strata_health_status",
        "Health of a check: 0 ok, 1 warning, 2 critical, 3 unknown.",
        &statuses,
    );
    out
}

/// A label value as the text format wants it: `\`, `"` and newlines escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
