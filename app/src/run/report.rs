//! [`RunReport`]: what a run did, per project, as `strata run --json` prints it and a server
//! would return it. The JSON is a contract: fields are added, never renamed.

use serde::{Deserialize, Serialize};

use crate::ops::RunId;

/// A whole run: every project it touched.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    pub run_id: RunId,
    /// RFC 3339, UTC.
    pub started: String,
    pub finished: String,
    /// 1 when any project failed, else 11 when any was locked, else 3 when any was
    /// partial, else 0 ([`exit_code`]).
    pub exit_code: u8,
    /// A dry run: nothing was changed; the projects say what would have been done.
    pub dry_run: bool,
    pub projects: Vec<ProjectReport>,
}

/// How a project's run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProjectStatus {
    Ok,
    /// A source, a hook, a copy, retention or maintenance failed.
    Failed,
    /// Every step worked, but some source files could not be read.
    Partial,
    /// Another run of the project holds its run lock.
    Locked,
    /// Not due (`--due`), or still running from its last slot (`--due` finds its run
    /// lock held: the error says since when).
    Skipped,
}

impl ProjectStatus {
    pub fn name(self) -> &'static str {
        match self {
            ProjectStatus::Ok => "ok",
            ProjectStatus::Failed => "failed",
            ProjectStatus::Partial => "partial",
            ProjectStatus::Locked => "locked",
            ProjectStatus::Skipped => "skipped",
        }
    }
}

/// The exit code of a run whose projects ended so: any failed 1 > any locked 11 > any
/// partial 3 > 0 (skipped projects count as ok).
pub fn exit_code(statuses: impl IntoIterator<Item = ProjectStatus>) -> u8 {
    let mut code = 0;
    let rank = |c: u8| match c {
        1 => 3,
        11 => 2,
        3 => 1,
        _ => 0,
    };
    for s in statuses {
        let c = match s {
            ProjectStatus::Failed => 1,
            ProjectStatus::Locked => 11,
            ProjectStatus::Partial => 3,
            ProjectStatus::Ok | ProjectStatus::Skipped => 0,
        };
        if rank(c) > rank(code) {
            code = c;
        }
    }
    code
}

/// One project's run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProjectReport {
    pub project: String,
    pub status: ProjectStatus,
    /// What went wrong, one problem per line (None when ok).
    pub error: Option<String>,
    pub duration_s: f64,
    pub snapshots: Vec<SnapshotReport>,
    pub copies: Vec<CopyItem>,
    pub forgotten: Vec<RetentionItem>,
    pub held: Vec<HeldItem>,
    pub maintenance: Vec<MaintenanceItem>,
    pub hooks: Vec<HookItem>,
}

impl ProjectReport {
    pub(crate) fn new(project: &str) -> Self {
        ProjectReport {
            project: project.to_string(),
            status: ProjectStatus::Ok,
            error: None,
            duration_s: 0.0,
            snapshots: Vec::new(),
            copies: Vec::new(),
            forgotten: Vec::new(),
            held: Vec::new(),
            maintenance: Vec::new(),
            hooks: Vec::new(),
        }
    }
}

/// One source backed up (or, in a dry run, that would be).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SnapshotReport {
    /// The primary repository's name.
    pub repository: String,
    /// The source's label (`paths`, `sqlite:app`, `command:redis.rdb`).
    pub source: String,
    /// `files`, `postgres`, `mysql`, `sqlite` or `command`.
    pub kind: String,
    /// None when it failed (or in a dry run).
    pub snapshot_id: Option<String>,
    pub bytes_read: u64,
    /// Source bytes the snapshot holds (read, or reused unread from its parent).
    pub bytes_total: u64,
    pub bytes_added: u64,
    pub files: u64,
    /// `ok`, `failed` or `partial` (some files unreadable); `planned` in a dry run.
    pub status: String,
    pub error: Option<String>,
}

/// A snapshot copied to another repository.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CopyItem {
    pub from: String,
    pub to: String,
    /// The snapshot's id in `from`.
    pub snapshot_id: String,
    /// Its id in `to` (None in a dry run, or when the copy failed).
    pub dest_id: Option<String>,
    pub bytes_added: u64,
}

/// A snapshot retention forgot (or would forget).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RetentionItem {
    pub repository: String,
    pub snapshot_id: String,
    /// Why, in words (`no rule keeps it`).
    pub reasons: Vec<String>,
}

/// A survivor put under a hold by a `hold-<rule>` setting.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeldItem {
    pub repository: String,
    /// Its id before the hold (a hold rewrites the snapshot).
    pub snapshot_id: String,
    /// Its id afterwards.
    pub new_id: String,
    /// RFC 3339, UTC.
    pub until: String,
    /// The rules that keep it (`monthly snapshot`).
    pub reasons: Vec<String>,
}

/// Prune, check or a restore test on one repository.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MaintenanceItem {
    pub repository: String,
    /// `prune`, `check` or `restore-test`.
    pub what: String,
    pub ok: bool,
    pub error: Option<String>,
}

/// A `before` or `after` hook.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HookItem {
    /// `before` or `after`.
    pub which: String,
    pub ok: bool,
    /// None when it could not be started, or was killed by a signal.
    pub exit_code: Option<i32>,
    /// The last lines of its standard error.
    pub stderr_tail: String,
}

/// Unix nanoseconds as RFC 3339 UTC, to the second.
pub(crate) fn rfc3339(ns: i64) -> String {
    jiff::Timestamp::from_nanosecond(i128::from(ns))
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ProjectStatus::*;

    #[test]
    fn exit_codes_take_the_worst_status_in_order() {
        assert_eq!(exit_code([]), 0);
        assert_eq!(exit_code([Ok, Skipped]), 0);
        assert_eq!(exit_code([Ok, Partial]), 3);
        assert_eq!(exit_code([Partial, Locked, Ok]), 11);
        assert_eq!(exit_code([Locked, Partial]), 11);
        assert_eq!(exit_code([Locked, Failed, Partial]), 1);
        assert_eq!(exit_code([Failed, Locked]), 1);
        assert_eq!(exit_code([Partial, Partial]), 3);
    }

    #[test]
    fn statuses_are_named_in_json_as_in_words() {
        for s in [Ok, Failed, Partial, Locked, Skipped] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.name());
        }
        assert_eq!(rfc3339(1_700_000_000_000_000_000), "2023-11-14T22:13:20Z");
    }
}
