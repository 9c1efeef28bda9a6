//! `strata health`: per project and repository, whether backups are recent, of a plausible
//! size, copied, tested and checked, with room left — as Nagios reads it.
//!
//! Health is computed, not remembered: [`evaluate`] reads the catalog ([`History`]) and
//! the config at a given time, and every call answers afresh. What each check judges, and
//! when (the thresholds are this module's constants):
//!
//! | check          | ok                        | warning                         | critical |
//! |----------------|---------------------------|---------------------------------|----------|
//! | `last-success` | newer than `max-age`      |                                 | older, or never |
//! | `last-run`     | the project's last run succeeded (or partly) |                  | it failed |
//! | `size`         | within ½…2× the median    | outside (an empty dump, a runaway log) | |
//! | `restore-test` | newer than 2× its interval| older, or never                 | the last one failed |
//! | `check`        | newer than 2× its interval| older, or never                 | the last one failed |
//! | `copy-lag`     | copies keep up            | a copy older than the primary's last backup by more than `max-age`/2 | |
//! | `free-space`   | 10 % or more free         | less                            |          |
//! | `run-lock`     | not held, or briefly      | held over 3× the median run     |          |
//! | `notifications`| none failed               | one failed since the last success |        |
//! | `wal-archive`  | recent, continuous, a base backup | no base backup, a gap, the newest segment older than `max-wal-age` | |
//!
//! A project without `max-age` (no schedule to derive it from) gets an ok `last-success`
//! item that says its age is not judged; copy lag is not judged either. A query the catalog
//! cannot answer makes its item `unknown`.
//!
//! The last success of the primary repository is that of its *oldest* source (a database
//! that stopped dumping while the files still back up is a stopped backup); other
//! repositories count their last copy.
//!
//! Alerts: [`notify_changes`] sends a warning notice when a (project, check) got worse
//! since the last evaluation (state in `health-state.json`), so backups that silently
//! stop raise an alarm. [`write_prometheus`] writes a node_exporter textfile.

mod changes;
mod checks;
mod lock;
mod pitr;
mod prometheus;
mod space;

pub use changes::{notify_changes, STATE_FILE};
pub use pitr::PitrFacts;
pub use prometheus::{render, write_prometheus};
pub use space::StorageProbe;
pub use strata_storage::FreeSpace;

use std::time::Duration;

use serde::Serialize;

use crate::config::{Config, Project, Schedule};
use crate::ops::{History, Status};

/// What each item judges.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Check {
    LastSuccess,
    LastRun,
    Size,
    RestoreTest,
    Check,
    CopyLag,
    FreeSpace,
    RunLock,
    Notifications,
    /// A project's PostgreSQL WAL archive (`[projects.NAME.pitr]`; see `pitr`).
    WalArchive,
}

impl Check {
    pub const ALL: [Check; 10] = [
        Check::LastSuccess,
        Check::LastRun,
        Check::Size,
        Check::RestoreTest,
        Check::Check,
        Check::CopyLag,
        Check::FreeSpace,
        Check::RunLock,
        Check::Notifications,
        Check::WalArchive,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Check::LastSuccess => "last-success",
            Check::LastRun => "last-run",
            Check::Size => "size",
            Check::RestoreTest => "restore-test",
            Check::Check => "check",
            Check::CopyLag => "copy-lag",
            Check::FreeSpace => "free-space",
            Check::RunLock => "run-lock",
            Check::Notifications => "notifications",
            Check::WalArchive => "wal-archive",
        }
    }
}

/// One judgement.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Item {
    pub project: String,
    pub repository: Option<String>,
    /// The source it concerns (`size`, and `last-success` of the primary).
    pub source: Option<String>,
    pub check: Check,
    pub status: Status,
    /// For people: what was found, against what threshold.
    pub message: String,
    /// The measure judged, for metrics: `last-success` the success's Unix time in seconds,
    /// `size` the last backup's bytes read, `free-space` the free fraction.
    pub value: Option<f64>,
}

/// Every item, and the worst status among them (ok when there are none).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HealthReport {
    /// When it was evaluated, Unix nanoseconds.
    pub time_ns: i64,
    pub status: Status,
    pub items: Vec<Item>,
}

impl HealthReport {
    pub fn new(time_ns: i64, items: Vec<Item>) -> HealthReport {
        let status = items.iter().map(|i| i.status).max().unwrap_or(Status::Ok);
        HealthReport {
            time_ns,
            status,
            items,
        }
    }

    /// The worst status of each (project, check), sorted.
    pub fn by_project_check(&self) -> std::collections::BTreeMap<(String, Check), Status> {
        let mut m = std::collections::BTreeMap::new();
        for i in &self.items {
            let e = m.entry((i.project.clone(), i.check)).or_insert(Status::Ok);
            *e = (*e).max(i.status);
        }
        m
    }
}

/// Tells how much room a repository (by its name in the config) has, where its storage
/// reports it (local disks, SFTP servers with `statvfs@openssh.com`; S3 does not).
pub trait SpaceProbe {
    fn free_space(&self, repository: &str) -> Option<FreeSpace>;

    /// The WAL archive of `project` (one with `[projects.NAME.pitr]`), read from its
    /// primary repository, or why it could not be; `None` (the default) when this probe
    /// does not read repositories: no `wal-archive` item.
    fn pitr(&self, _project: &str) -> Option<Result<PitrFacts, String>> {
        None
    }
}

/// A probe that knows nothing (no free-space items).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProbe;

impl SpaceProbe for NoProbe {
    fn free_space(&self, _repository: &str) -> Option<FreeSpace> {
        None
    }
}

/// Judges every project of `cfg` at `now_ns` from `history` (see the module docs).
pub fn evaluate(
    cfg: &Config,
    history: &dyn History,
    now_ns: i64,
    probe: &dyn SpaceProbe,
) -> HealthReport {
    let mut items = Vec::new();
    let mut space = std::collections::BTreeMap::new();
    for project in cfg.projects.values() {
        let ctx = checks::Ctx {
            cfg,
            project,
            history,
            now_ns,
            max_age: max_age(project),
        };
        items.extend(checks::last_success(&ctx));
        items.extend(checks::last_run(&ctx));
        items.extend(checks::size(&ctx));
        items.extend(checks::restore_test(&ctx));
        items.extend(checks::check(&ctx));
        items.extend(checks::copy_lag(&ctx));
        for repo in &project.repositories {
            let free = *space
                .entry(repo.clone())
                .or_insert_with(|| probe.free_space(repo));
            items.extend(checks::free_space(&ctx, repo, free));
        }
        items.extend(checks::run_lock(&ctx));
        items.extend(checks::notifications(&ctx));
        if project.pitr.is_some() {
            if let Some(facts) = probe.pitr(&project.name) {
                let facts = facts.as_ref().map_err(String::as_str);
                items.extend(pitr::judge(project, facts, now_ns));
            }
        }
    }
    HealthReport::new(now_ns, items)
}

/// The nominal interval of `schedule` (the only place that calls the schedule
/// arithmetic).
fn interval(schedule: &Schedule) -> Option<Duration> {
    Some(schedule.interval())
}

/// The project's max-age: as given, else twice its schedule's interval plus an hour.
fn max_age(project: &Project) -> Option<Duration> {
    project.max_age.or_else(|| {
        let i = interval(project.schedule.as_ref()?)?;
        Some(i * 2 + Duration::from_secs(3600))
    })
}

/// `2d 3h`, `26h`, `1h 2m`, `15m`, `40s`: an age for people (hours up to two days).
pub fn human_age(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 2 * 86_400 {
        let (days, hours) = (s / 86_400, (s % 86_400) / 3600);
        return match hours {
            0 => format!("{days}d"),
            h => format!("{days}d {h}h"),
        };
    }
    match (s / 3600, (s % 3600) / 60) {
        (0, 0) => format!("{s}s"),
        (0, m) => format!("{m}m"),
        (h, 0) => format!("{h}h"),
        (h, m) => format!("{h}h {m}m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_as_people_say_them() {
        assert_eq!(human_age(Duration::from_secs(40)), "40s");
        assert_eq!(human_age(Duration::from_secs(15 * 60)), "15m");
        assert_eq!(human_age(Duration::from_secs(26 * 3600)), "26h");
        assert_eq!(human_age(Duration::from_secs(3600 + 120)), "1h 2m");
        assert_eq!(
            human_age(Duration::from_secs(2 * 86_400 + 3 * 3600)),
            "2d 3h"
        );
        assert_eq!(human_age(Duration::from_secs(7 * 86_400 + 59)), "7d");
    }
}
