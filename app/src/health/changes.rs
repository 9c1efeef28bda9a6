//! Alerts when health gets worse: how backups that stopped (with no run left to fail)
//! raise an alarm. The last status of each (project, check) is kept in
//! `state_dir/health-state.json` (mode 0600); a check whose status is worse than the one
//! kept gets a [`Event::Warning`] notice to its project's channels, once: the same status
//! again sends nothing, and a check that recovers is only remembered as ok.

use std::collections::BTreeMap;
use std::path::Path;

use super::prometheus::write_atomically;
use super::HealthReport;
use crate::config::Config;
use crate::ops::{Event, Notice, Notifier, Status};
use crate::{AppError, Result};

/// The state file's name in the state dir.
pub const STATE_FILE: &str = "health-state.json";

/// project → check → status.
type State = BTreeMap<String, BTreeMap<String, Status>>;

/// Sends a warning notice per project for the checks of `report` that got worse since the
/// state in `state_file`, then keeps the report's statuses there. Returns how many notices
/// were sent. A state file that cannot be read is started afresh (logged); one that cannot
/// be written is an error (the next call would alert again).
pub fn notify_changes(
    cfg: &Config,
    report: &HealthReport,
    state_file: &Path,
    notifier: &dyn Notifier,
) -> Result<usize> {
    let before = load(state_file);
    let mut after = State::new();
    for ((project, check), status) in report.by_project_check() {
        after
            .entry(project)
            .or_default()
            .insert(check.name().to_string(), status);
    }
    let mut sent = 0;
    for (project, checks) in &after {
        let worse: Vec<(&str, Status)> = checks
            .iter()
            .filter(|(check, status)| {
                let was = before
                    .get(project)
                    .and_then(|c| c.get(*check))
                    .copied()
                    .unwrap_or(Status::Ok);
                **status > was
            })
            .map(|(c, s)| (c.as_str(), *s))
            .collect();
        let Some(p) = cfg.projects.get(project) else {
            continue;
        };
        if worse.is_empty() {
            continue;
        }
        notifier.notify(&p.notify, &notice(project, report, &worse));
        sent += 1;
    }
    save(state_file, &after)?;
    Ok(sent)
}

fn notice(project: &str, report: &HealthReport, worse: &[(&str, Status)]) -> Notice {
    let worst = worse
        .iter()
        .map(|(_, s)| *s)
        .max()
        .unwrap_or(Status::Warning);
    let names: Vec<&str> = worse.iter().map(|(c, _)| *c).collect();
    let mut lines = Vec::new();
    for item in &report.items {
        if item.project != project
            || item.status == Status::Ok
            || !names.contains(&item.check.name())
        {
            continue;
        }
        let place: Vec<&str> = [item.repository.as_deref(), item.source.as_deref()]
            .into_iter()
            .flatten()
            .collect();
        let place = if place.is_empty() {
            String::new()
        } else {
            format!(" ({})", place.join(", "))
        };
        lines.push(format!(
            "{}{place}: {}: {}",
            item.check.name(),
            item.status.name(),
            item.message
        ));
    }
    Notice {
        event: Event::Warning,
        project: project.to_string(),
        repository: None,
        run_id: None,
        snapshot_ids: Vec::new(),
        bytes_read: 0,
        bytes_added: 0,
        duration_ns: 0,
        error: Some(lines.join("\n")),
        summary: format!("{project}: health {}: {}", worst.name(), names.join(", ")),
        time_ns: report.time_ns,
    }
}

fn load(file: &Path) -> State {
    match std::fs::read(file) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::warn!(
                "{}: cannot be read ({e}); starting afresh (changes may be notified again)",
                file.display()
            );
            State::new()
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::new(),
        Err(e) => {
            tracing::warn!("{}: {e}; starting afresh", file.display());
            State::new()
        }
    }
}

fn save(file: &Path, state: &State) -> Result<()> {
    let io = |e: std::io::Error| AppError::Invalid(format!("writing {}: {e}", file.display()));
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let bytes = serde_json::to_vec_pretty(state).unwrap_or_default();
    write_atomically(file, &bytes, 0o600).map_err(io)
}
