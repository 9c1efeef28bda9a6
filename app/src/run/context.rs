//! What a project's run shares with its steps ([`ProjectRun`]): the config, the run's
//! environment, its records; opening a repository, notifying, recording. The steps
//! (`project`, `maintenance`) use it; it uses none of them.

use strata_engine::{snapshots, EngineRuntime, Operation};
use strata_format::id::SnapshotId;
use strata_format::snapshot::SnapshotFile;

use super::report::ProjectReport;
use super::{RunEnv, Selection, LOCK_WAIT};
use crate::config::{Config, Project};
use crate::ops::{Event, Notice, Record, RunId};
use crate::repo::{OpenOptions, Opened};

/// What a project's run shares with its steps.
pub(crate) struct ProjectRun<'a> {
    pub cfg: &'a Config,
    pub sel: &'a Selection,
    pub env: &'a RunEnv<'a>,
    pub run_id: &'a RunId,
    pub runtime: Option<&'a EngineRuntime>,
    /// Every record of this project's run, for the evidence written into its repositories.
    pub records: std::sync::Mutex<Vec<Record>>,
}

/// A problem of the project's run: the report's error lines.
#[derive(Default)]
pub(super) struct Problems(Vec<String>);

impl Problems {
    pub(super) fn add(&mut self, line: impl Into<String>) {
        self.0.push(line.into());
    }
    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub(super) fn joined(&self) -> Option<String> {
        (!self.0.is_empty()).then(|| self.0.join("\n"))
    }
}

impl ProjectRun<'_> {
    /// Opens the repository `repo` for `op` (its password from the config).
    pub(super) fn open(&self, repo: &str, op: Operation) -> Result<Opened, String> {
        let spec = self
            .cfg
            .repositories
            .get(repo)
            .ok_or_else(|| format!("repository {repo} is not defined"))?;
        let password =
            crate::repo::password(spec).map_err(|e| format!("repository {repo}: {e}"))?;
        let opts = OpenOptions {
            wait: LOCK_WAIT,
            no_lock: false,
            runtime: self.runtime.cloned(),
        };
        crate::repo::open(spec, password.as_bytes(), op, &opts)
            .map_err(|e| format!("repository {repo}: {e}"))
    }

    pub(super) fn notify(
        &self,
        project: &Project,
        event: Event,
        repository: Option<&str>,
        report: &ProjectReport,
        summary: String,
    ) {
        let notice = Notice {
            event,
            project: project.name.clone(),
            repository: repository.map(str::to_string),
            run_id: Some(self.run_id.clone()),
            snapshot_ids: report
                .snapshots
                .iter()
                .filter_map(|s| s.snapshot_id.clone())
                .collect(),
            bytes_read: report.snapshots.iter().map(|s| s.bytes_read).sum(),
            bytes_added: report.snapshots.iter().map(|s| s.bytes_added).sum(),
            duration_ns: (report.duration_s * 1e9) as i64,
            error: report.error.clone(),
            summary,
            time_ns: self.env.clock.now_ns(),
        };
        self.env.notifier.notify(&project.notify, &notice);
    }

    /// Records `r`; a record that cannot be written is logged, never fails the run.
    pub(super) fn record(&self, r: Record) {
        if let Ok(mut kept) = self.records.lock() {
            kept.push(r.clone());
        }
        let kind = r.kind();
        if let Err(e) = self.env.recorder.record(r) {
            tracing::error!("recording a {} record: {e}", kind.name());
        }
    }
}

/// The newest snapshot of `project` with exactly `paths`.
pub(super) fn newest_of(
    repo: &strata_engine::Repository,
    project: &str,
    paths: &[String],
) -> Result<Option<(SnapshotId, SnapshotFile)>, String> {
    Ok(snapshots::list(repo)
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|(_, s)| s.project.as_deref() == Some(project) && s.paths == paths)
        .max_by_key(|(_, s)| s.time_ns))
}
