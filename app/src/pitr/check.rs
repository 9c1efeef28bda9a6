//! `strata pg check`: proves WAL archiving works end to end, now. It forces a segment
//! switch on the project's cluster and waits until that segment is in the project's WAL
//! archive; when it does not arrive in time, the failure names the segment and what
//! `pg_stat_archiver` says of the failing pushes (a wrong `archive_command` shows here long
//! before a restore needs the WAL).

use std::time::{Duration, Instant};

use strata_db::pitr_status::{ArchiveProbe, ArchiverStatus};
use strata_engine::{wal, Operation};

use super::basebackup::{db_error, password};
use crate::config::Config;
use crate::{AppError, Result};

/// How often the archive is read again while waiting.
const POLL: Duration = Duration::from_millis(500);

/// What `strata pg check` found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckReport {
    pub project: String,
    pub repository: String,
    /// The segment the switch completed (the one waited for).
    pub segment: Option<String>,
    /// Whether it reached the archive in time.
    pub archived: bool,
    pub waited_secs: f64,
    /// `pg_stat_archiver` when the wait ended.
    pub archiver: Option<ArchiverStatus>,
    /// Why the check failed, for people.
    pub problem: Option<String>,
}

/// What `status` says of failing pushes, for a message.
pub fn failures(status: &ArchiverStatus) -> String {
    let command = if status.archive_command.is_empty() {
        String::new()
    } else {
        format!(" (archive_command = '{}')", status.archive_command)
    };
    match &status.last_failed_wal {
        Some(wal) if status.failing() => format!(
            "pg_stat_archiver: the last push, of {wal}{}, failed ({} failed in all): check \
             archive_command{command} and the server log",
            status
                .last_failed_time
                .map(|t| format!(" at {}", crate::run::report::rfc3339(t.saturating_mul(1_000_000_000))))
                .unwrap_or_default(),
            status.failed_count
        ),
        _ => format!(
            "pg_stat_archiver reports no failing push (last archived: {}): is archive_command{command} \
             archiving into this project?",
            status.last_archived_wal.as_deref().unwrap_or("none")
        ),
    }
}

/// Forces a segment switch on `project`'s cluster and waits up to `timeout` for the
/// segment to reach its WAL archive. `Ok` with `archived: false` when it did not (the
/// report says why); `Err` when the check could not run (no `[projects.P.pitr]`, no
/// connection, the repository).
pub fn check(cfg: &Config, project: &str, timeout: Duration) -> Result<CheckReport> {
    let (repository, spec) = super::primary(cfg, project)?;
    let cluster = cfg
        .projects
        .get(project)
        .and_then(|p| p.pitr.as_ref())
        .ok_or_else(|| {
            AppError::Invalid(format!(
                "project {project} has no [projects.{project}.pitr]: pg check needs the \
                 cluster's connection (url)"
            ))
        })?;
    let opened = super::open(cfg, spec, Operation::WalList)?;
    let repo = &opened.repo;
    let mut report = CheckReport {
        project: project.to_string(),
        repository: repository.to_string(),
        segment: None,
        archived: false,
        waited_secs: 0.0,
        archiver: None,
        problem: None,
    };
    let mut probe = repo
        .block_on(ArchiveProbe::connect(&cluster.url, password(cluster)?))
        .map_err(db_error)?;
    let status = repo.block_on(probe.archiver()).map_err(db_error)?;
    if status.archive_mode == "off" {
        report.problem = Some(format!(
            "archive_mode is off on {}: nothing is archived (set archive_mode = on and \
             archive_command = 'strata pg wal-push --project {project} %p', then restart)",
            probe.shown()
        ));
        report.archiver = Some(status);
        return Ok(report);
    }
    let segment = repo.block_on(probe.switch_wal()).map_err(db_error)?;
    report.segment = Some(segment.clone());
    let started = Instant::now();
    loop {
        let archive = wal::read_archive(repo)?;
        if archive.find(project, &segment)?.is_some() {
            report.archived = true;
            break;
        }
        if started.elapsed() >= timeout {
            break;
        }
        std::thread::sleep(POLL.min(timeout.saturating_sub(started.elapsed())));
    }
    report.waited_secs = started.elapsed().as_secs_f64();
    let status = repo.block_on(probe.archiver()).map_err(db_error)?;
    if !report.archived {
        report.problem = Some(format!(
            "{segment} did not reach the WAL archive of project {project} within {}; {}",
            humantime::format_duration(timeout),
            failures(&status)
        ));
    }
    report.archiver = Some(status);
    Ok(report)
}

/// What `pg_stat_archiver` of `project`'s cluster says now (for health), on a runtime of its
/// own: no repository is opened.
pub fn archiver_status(cfg: &Config, project: &str) -> Result<ArchiverStatus> {
    let cluster = cfg
        .projects
        .get(project)
        .and_then(|p| p.pitr.as_ref())
        .ok_or_else(|| AppError::Invalid(format!("project {project} has no pitr table")))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| AppError::Invalid(format!("a runtime: {e}")))?;
    let password = password(cluster)?;
    rt.block_on(async {
        let mut probe = ArchiveProbe::connect(&cluster.url, password).await?;
        probe.archiver().await
    })
    .map_err(db_error)
}
