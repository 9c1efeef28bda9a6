//! What the parts of `strata run` share: the events notifications are sent on, the
//! statuses health reports, the records the audit catalog keeps (and the queries on them),
//! and the clock every part reads "now" from.
//!
//! The producers (the runner, `restore`, `verify`, notifications) build [`Record`]s and
//! hand them to a [`Recorder`]; the catalog stores them, chained, and answers [`History`]
//! queries, from which health and `--due` decide. Nothing here touches a repository.

use serde::{Deserialize, Serialize};

use crate::Result;

/// What a notification is sent on (a channel's `on` list).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Event {
    /// A run began (dead-man pings send `/start`; other channels ignore it).
    Start,
    /// A project's run failed (a source, a copy, a hook, retention, maintenance).
    Failure,
    /// Health turned to warning or critical without a failed run (e.g. backups stopped).
    Warning,
    /// The first success after a failure.
    Recovered,
    /// A project's run succeeded.
    Success,
    /// Something was restored (files or a database).
    Restore,
    /// A restore test finished (passed or not).
    RestoreTest,
}

impl Event {
    /// Every event, in the order of the config's documentation.
    pub const ALL: [Event; 7] = [
        Event::Start,
        Event::Failure,
        Event::Warning,
        Event::Recovered,
        Event::Success,
        Event::Restore,
        Event::RestoreTest,
    ];

    /// The config's name for it (`restore-test`).
    pub fn name(self) -> &'static str {
        match self {
            Event::Start => "start",
            Event::Failure => "failure",
            Event::Warning => "warning",
            Event::Recovered => "recovered",
            Event::Success => "success",
            Event::Restore => "restore",
            Event::RestoreTest => "restore-test",
        }
    }

    /// The event named `name` in a config file.
    pub fn parse(name: &str) -> Option<Event> {
        Event::ALL.into_iter().find(|e| e.name() == name)
    }

    /// A channel's events when its `on` is not given: failure and recovered.
    pub fn default_on() -> Vec<Event> {
        vec![Event::Failure, Event::Recovered]
    }
}

/// A health status, ordered from best to worst; the exit codes are those Nagios, Icinga
/// and Zabbix read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Ok,
    Warning,
    Critical,
    /// Could not be judged (the config or the catalog could not be read).
    Unknown,
}

impl Status {
    /// 0 ok, 1 warning, 2 critical, 3 unknown.
    pub fn exit_code(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::Warning => 1,
            Status::Critical => 2,
            Status::Unknown => 3,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warning => "warning",
            Status::Critical => "critical",
            Status::Unknown => "unknown",
        }
    }
}

/// Where "now" comes from. `--now` (STRATA_NOW) moves it, so that schedules and retention
/// can be exercised over simulated days; time still passes from there at the real rate.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    /// Added to the system clock, nanoseconds.
    offset_ns: i64,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock { offset_ns: 0 }
    }

    /// A clock that reads `now_ns` at this moment and runs on from there.
    pub fn starting_at(now_ns: i64) -> Clock {
        Clock {
            offset_ns: now_ns.saturating_sub(system_now_ns()),
        }
    }

    /// Unix nanoseconds.
    pub fn now_ns(&self) -> i64 {
        system_now_ns().saturating_add(self.offset_ns)
    }

    /// Whether this clock has been moved (`--now`).
    pub fn is_shifted(&self) -> bool {
        self.offset_ns != 0
    }
}

fn system_now_ns() -> i64 {
    jiff::Timestamp::now().as_nanosecond() as i64
}

/// A run's identity: `YYYYMMDDTHHMMSSZ-XXXX` (its start in UTC and 16 random bits), so that
/// ids sort by time and two runs started in one second differ.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunId(pub String);

impl RunId {
    /// A new id for a run starting at `now_ns`.
    pub fn new(now_ns: i64) -> RunId {
        let t = jiff::Timestamp::from_nanosecond(i128::from(now_ns))
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        let mut random = [0u8; 2];
        // The id only has to differ between runs of one second; the pid and the clock's
        // nanoseconds do if no randomness can be had.
        let salt = u16::from_le_bytes(random_bytes(&mut random))
            ^ (std::process::id() as u16)
            ^ (now_ns as u16);
        RunId(format!("{}-{salt:04x}", t.strftime("%Y%m%dT%H%M%SZ")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn random_bytes(buf: &mut [u8; 2]) -> [u8; 2] {
    use std::io::Read;
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(buf);
    }
    *buf
}

impl std::fmt::Display for RunId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What kind of thing a [`Record`] records (`strata log --kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecordKind {
    /// A project's run, start to end (one record when it ends).
    Run,
    /// One source backed up into the primary repository.
    Backup,
    /// A snapshot copied to another repository.
    Copy,
    /// A retention decision: one snapshot forgotten or held.
    Retention,
    Prune,
    Check,
    Restore,
    RestoreTest,
    /// A `before` or `after` hook.
    Hook,
    /// A notification sent or failed.
    Notify,
    /// A request to `strata serve` that changed or downloaded something, or a login.
    Access,
}

impl RecordKind {
    pub const ALL: [RecordKind; 11] = [
        RecordKind::Run,
        RecordKind::Backup,
        RecordKind::Copy,
        RecordKind::Retention,
        RecordKind::Prune,
        RecordKind::Check,
        RecordKind::Restore,
        RecordKind::RestoreTest,
        RecordKind::Hook,
        RecordKind::Notify,
        RecordKind::Access,
    ];

    /// The name `strata log --kind` takes and the catalog stores.
    pub fn name(self) -> &'static str {
        match self {
            RecordKind::Run => "run",
            RecordKind::Backup => "backup",
            RecordKind::Copy => "copy",
            RecordKind::Retention => "retention",
            RecordKind::Prune => "prune",
            RecordKind::Check => "check",
            RecordKind::Restore => "restore",
            RecordKind::RestoreTest => "restore-test",
            RecordKind::Hook => "hook",
            RecordKind::Notify => "notify",
            RecordKind::Access => "access",
        }
    }

    pub fn parse(name: &str) -> Option<RecordKind> {
        RecordKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// One thing that happened, as the audit catalog keeps it. The fields every record has are
/// here; what only one kind has is in [`RecordBody`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// When it ended (or happened), Unix nanoseconds.
    pub time_ns: i64,
    /// The project, when there is one (a `restore` with `-r` has none).
    pub project: Option<String>,
    /// The repository's name in the config (or its location when it has no name).
    pub repository: Option<String>,
    /// The run it belongs to.
    pub run_id: Option<RunId>,
    /// Whether it succeeded.
    pub ok: bool,
    /// The error, when it did not (one line, no secrets).
    pub error: Option<String>,
    /// Who did it: the user (`root`, or the server's user) for restores and the like.
    pub user: Option<String>,
    pub body: RecordBody,
}

impl Record {
    pub fn kind(&self) -> RecordKind {
        self.body.kind()
    }
}

/// What a record says beyond the common fields; the JSON of a record carries `kind`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum RecordBody {
    Run {
        /// `manual` (named on the command line), `due` (`--due`), or `api`.
        trigger: String,
        started_ns: i64,
        exit_code: u8,
        /// The snapshots made and copied (ids in the repositories they are in).
        snapshots: Vec<String>,
        pid: u32,
    },
    Backup {
        /// The source as the config names it (`paths`, `postgres:kanbu`, `command:redis.rdb`).
        source: String,
        /// `files`, `postgres`, `mysql`, `sqlite` or `command`.
        source_kind: String,
        snapshot_id: Option<String>,
        /// Source bytes read (a file the parent snapshot had unchanged is not read).
        bytes_read: u64,
        /// Source bytes the snapshot holds, read or reused unread; 0 in records written
        /// before it was recorded (see [`RecordBody::backup_size`]).
        #[serde(default)]
        bytes_total: u64,
        bytes_added: u64,
        /// Bytes the new packs took in the repository (after compression).
        stored_bytes: u64,
        files: u64,
        duration_ns: i64,
        /// Source files that could not be read (a partial snapshot).
        unreadable: u64,
    },
    Copy {
        from: String,
        snapshot_id: String,
        /// The copy's id in the destination.
        dest_id: Option<String>,
        bytes_added: u64,
    },
    Retention {
        snapshot_id: String,
        /// `forget` or `hold`.
        action: String,
        /// Why it is kept or forgotten, in words (`daily`, `monthly`, `no rule keeps it`).
        reasons: Vec<String>,
        hold_until_ns: Option<i64>,
    },
    Prune {
        packs_deleted: u64,
        bytes_freed: u64,
        duration_ns: i64,
    },
    Check {
        /// `all`, or the subset read (`1/8`).
        read_data: String,
        errors: u64,
        duration_ns: i64,
    },
    Restore {
        snapshot_id: String,
        /// What was restored (paths, or the database).
        what: String,
        /// Where to (a directory, `original`, a database URL without its password).
        target: String,
        /// The snapshot taken of what the restore would overwrite.
        safety_snapshot: Option<String>,
    },
    RestoreTest {
        snapshot_id: String,
        /// The full report, as `strata verify --json` prints it.
        report: serde_json::Value,
    },
    Hook {
        /// `before` or `after`.
        which: String,
        exit_code: Option<i32>,
        /// The last lines of its standard error.
        stderr_tail: String,
    },
    Notify {
        /// The notification's name in the config.
        channel: String,
        event: Event,
        attempts: u32,
    },
    /// A request to `strata serve` (the record's `user` is who made it).
    Access {
        /// `download`, `restore`, `run`, `restore-test`, `forget`, `hold`, `login`, …
        action: String,
        /// What it acted on: a snapshot and path, a project, a restore's target.
        target: String,
        /// The client's address.
        address: String,
        /// The caller's role, when logged in.
        role: Option<String>,
    },
}

impl RecordBody {
    /// A backup's size: the source bytes its snapshot holds (`bytes_total`), or, in a
    /// record written before that was recorded, the bytes read. `None` for other records.
    pub fn backup_size(&self) -> Option<u64> {
        match self {
            RecordBody::Backup {
                bytes_total,
                bytes_read,
                ..
            } => Some(if *bytes_total > 0 {
                *bytes_total
            } else {
                *bytes_read
            }),
            _ => None,
        }
    }

    pub fn kind(&self) -> RecordKind {
        match self {
            RecordBody::Run { .. } => RecordKind::Run,
            RecordBody::Backup { .. } => RecordKind::Backup,
            RecordBody::Copy { .. } => RecordKind::Copy,
            RecordBody::Retention { .. } => RecordKind::Retention,
            RecordBody::Prune { .. } => RecordKind::Prune,
            RecordBody::Check { .. } => RecordKind::Check,
            RecordBody::Restore { .. } => RecordKind::Restore,
            RecordBody::RestoreTest { .. } => RecordKind::RestoreTest,
            RecordBody::Hook { .. } => RecordKind::Hook,
            RecordBody::Notify { .. } => RecordKind::Notify,
            RecordBody::Access { .. } => RecordKind::Access,
        }
    }
}

/// Keeps records (the audit catalog). Recording must not fail a backup that worked: callers
/// log a failed `record` and go on, and health reports it.
pub trait Recorder: Send + Sync {
    fn record(&self, record: Record) -> Result<()>;

    /// The last record's sequence number and hash (the audit catalog's head), which
    /// evidence written into repositories carries; None without a chained catalog.
    fn head(&self) -> Option<(u64, [u8; 32])> {
        None
    }
}

/// Which records a [`History`] query wants. Every field narrows; the default takes all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Query {
    pub project: Option<String>,
    pub repository: Option<String>,
    pub kind: Option<RecordKind>,
    /// Only successful ones.
    pub ok_only: bool,
    /// Only records at or after this time.
    pub since_ns: Option<i64>,
    /// At most this many, newest first (None: all).
    pub limit: Option<usize>,
}

/// Answers questions about what happened. Results are newest first.
pub trait History: Send + Sync {
    fn query(&self, q: &Query) -> Result<Vec<Record>>;

    /// The newest record the query matches.
    fn last(&self, q: &Query) -> Result<Option<Record>> {
        let mut q = q.clone();
        q.limit = Some(1);
        Ok(self.query(&q)?.into_iter().next())
    }
}

/// A message for the notification channels.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Notice {
    pub event: Event,
    pub project: String,
    /// The repository it concerns, when one.
    pub repository: Option<String>,
    pub run_id: Option<RunId>,
    /// Snapshots made or copied.
    pub snapshot_ids: Vec<String>,
    pub bytes_read: u64,
    pub bytes_added: u64,
    pub duration_ns: i64,
    /// What went wrong (failure, warning), one line per problem, no secrets.
    pub error: Option<String>,
    /// A one-line summary for people (subject of a mail, Slack text).
    pub summary: String,
    pub time_ns: i64,
}

/// Sends notices to channels. A send that fails is retried, recorded and reported, and
/// never fails the caller.
pub trait Notifier: Send + Sync {
    /// Sends `notice` to each of `channels` (names in the config) whose `on` list has its
    /// event.
    fn notify(&self, channels: &[String], notice: &Notice);
}

/// A recorder and notifier that do nothing (dry runs, tests of other parts).
#[derive(Clone, Copy, Debug, Default)]
pub struct Nothing;

impl Recorder for Nothing {
    fn record(&self, _record: Record) -> Result<()> {
        Ok(())
    }
}

impl History for Nothing {
    fn query(&self, _q: &Query) -> Result<Vec<Record>> {
        Ok(Vec::new())
    }
}

impl Notifier for Nothing {
    fn notify(&self, _channels: &[String], _notice: &Notice) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for e in Event::ALL {
            assert_eq!(Event::parse(e.name()), Some(e));
            assert_eq!(serde_json::to_value(e).unwrap(), e.name());
        }
        for k in RecordKind::ALL {
            assert_eq!(RecordKind::parse(k.name()), Some(k));
            assert_eq!(serde_json::to_value(k).unwrap(), k.name());
        }
    }

    #[test]
    fn a_shifted_clock_runs_on() {
        let c = Clock::starting_at(1_000_000_000_000_000_000);
        let a = c.now_ns();
        assert!((1_000_000_000_000_000_000..1_000_000_010_000_000_000).contains(&a));
        assert!(c.now_ns() >= a);
        assert!(c.is_shifted());
    }

    #[test]
    fn run_ids_sort_by_time() {
        let a = RunId::new(1_700_000_000_000_000_000);
        let b = RunId::new(1_700_000_001_000_000_000);
        assert!(a < b, "{a} {b}");
        assert!(a.as_str().starts_with("20231114T221320Z-"), "{a}");
    }
}
