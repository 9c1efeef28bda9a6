//! The checks of one project, each a function from the catalog's answers to items.

use std::time::Duration;

use super::{human_age, interval, lock, Check, FreeSpace, Item};
use crate::config::{Config, Project, Schedule};
use crate::ops::{History, Query, Record, RecordBody, RecordKind, Status};

/// Below this fraction of the median the last backup is suspicious (an empty dump)...
const SIZE_LOW: f64 = 0.5;
/// ...and above this multiple (a runaway log).
const SIZE_HIGH: f64 = 2.0;
/// How many earlier backups of a source the median is taken over.
const SIZE_WINDOW: usize = 10;
/// Fewer earlier backups than this are not compared.
const SIZE_MIN_HISTORY: usize = 3;
/// Restore tests and checks older than this many intervals are overdue.
const OVERDUE_INTERVALS: u32 = 2;
/// Free space below this fraction is a warning.
const FREE_SPACE_LOW: f64 = 0.10;
/// A run lock held longer than this many median runs is stuck.
const LOCK_RUNS: u32 = 3;
/// ...but never sooner than this.
const LOCK_MIN: Duration = Duration::from_secs(15 * 60);
/// How many of the latest backups are read to find each source's last ones.
const BACKUPS_READ: usize = 1000;

pub(super) struct Ctx<'a> {
    pub cfg: &'a Config,
    pub project: &'a Project,
    pub history: &'a dyn History,
    pub now_ns: i64,
    pub max_age: Option<Duration>,
}

impl Ctx<'_> {
    fn item(
        &self,
        repository: Option<&str>,
        source: Option<&str>,
        check: Check,
        status: Status,
        message: String,
    ) -> Item {
        Item {
            project: self.project.name.clone(),
            repository: repository.map(str::to_string),
            source: source.map(str::to_string),
            check,
            status,
            message,
            value: None,
        }
    }

    /// The records `q` matches, or an `unknown` item saying why not.
    fn query(&self, q: Query, check: Check, repository: Option<&str>) -> Result<Vec<Record>, Item> {
        self.history.query(&q).map_err(|e| {
            self.item(
                repository,
                None,
                check,
                Status::Unknown,
                format!("the catalog cannot answer: {e}"),
            )
        })
    }

    fn q(&self, repository: Option<&str>, kind: RecordKind) -> Query {
        Query {
            project: Some(self.project.name.clone()),
            repository: repository.map(str::to_string),
            kind: Some(kind),
            ..Query::default()
        }
    }

    fn primary(&self) -> Option<&str> {
        self.project.repositories.first().map(String::as_str)
    }

    /// The successful backups into the primary repository, newest first.
    fn backups(&self, check: Check) -> Result<Vec<Record>, Item> {
        let primary = self.primary();
        let mut q = self.q(primary, RecordKind::Backup);
        q.ok_only = true;
        q.limit = Some(BACKUPS_READ);
        self.query(q, check, primary)
    }

    /// The sources the config names; without any, those the backups name.
    fn sources(&self, backups: &[Record]) -> Vec<String> {
        let mut sources: Vec<String> = self.project.sources.iter().map(|s| s.label()).collect();
        if sources.is_empty() {
            for r in backups {
                if let Some(s) = source_of(r) {
                    if !sources.iter().any(|x| x == s) {
                        sources.push(s.to_string());
                    }
                }
            }
        }
        sources
    }

    fn age(&self, time_ns: i64) -> Duration {
        Duration::from_nanos(self.now_ns.saturating_sub(time_ns).max(0) as u64)
    }
}

fn source_of(r: &Record) -> Option<&str> {
    match &r.body {
        RecordBody::Backup { source, .. } => Some(source),
        _ => None,
    }
}

/// What a backup held (not what it read: an incremental backup reads only what changed),
/// when its record says (`bytes_total`; records written before it was recorded have only
/// `bytes_read`).
fn total_of(r: &Record) -> Option<u64> {
    match &r.body {
        RecordBody::Backup { bytes_total, .. } if *bytes_total > 0 => Some(*bytes_total),
        _ => None,
    }
}

/// The size the size check compares: what the backup held when the last record says it,
/// else what was read (older records), the same measure for the last and the earlier ones.
fn size_of(r: &Record, by_total: bool) -> Option<u64> {
    if by_total {
        total_of(r)
    } else {
        r.body.backup_size()
    }
}

/// The age of the last success against max-age: per source into the primary, per
/// repository for the copies.
pub(super) fn last_success(ctx: &Ctx) -> Vec<Item> {
    let Some(primary) = ctx.primary() else {
        return Vec::new();
    };
    let backups = match ctx.backups(Check::LastSuccess) {
        Ok(b) => b,
        Err(item) => return vec![item],
    };
    let mut items = Vec::new();
    let sources = ctx.sources(&backups);
    if sources.is_empty() {
        items.push(judge_age(ctx, primary, None, None, "backup"));
    }
    for source in &sources {
        let last = backups
            .iter()
            .find(|r| source_of(r) == Some(source.as_str()));
        items.push(judge_age(
            ctx,
            primary,
            Some(source),
            last.map(|r| r.time_ns),
            "backup",
        ));
    }
    for repo in ctx.project.repositories.iter().skip(1) {
        let mut q = ctx.q(Some(repo), RecordKind::Copy);
        q.ok_only = true;
        match ctx.query(q, Check::LastSuccess, Some(repo)) {
            Ok(copies) => {
                let last = copies.first().map(|r| r.time_ns);
                items.push(judge_age(ctx, repo, None, last, "copy"));
            }
            Err(item) => items.push(item),
        }
    }
    items
}

fn judge_age(ctx: &Ctx, repo: &str, source: Option<&str>, last: Option<i64>, what: &str) -> Item {
    let of = source.map(|s| format!(" of {s}")).unwrap_or_default();
    let Some(last) = last else {
        return ctx.item(
            Some(repo),
            source,
            Check::LastSuccess,
            Status::Critical,
            format!("no successful {what}{of} yet"),
        );
    };
    let age = ctx.age(last);
    let (status, message) = match ctx.max_age {
        None => (
            Status::Ok,
            format!(
                "last success{of} {} ago (no max-age and no schedule to derive one: age not judged)",
                human_age(age)
            ),
        ),
        Some(max) if age > max => (
            Status::Critical,
            format!(
                "last success{of} {} ago, max-age {}",
                human_age(age),
                human_age(max)
            ),
        ),
        Some(max) => (
            Status::Ok,
            format!(
                "last success{of} {} ago (max-age {})",
                human_age(age),
                human_age(max)
            ),
        ),
    };
    let mut item = ctx.item(Some(repo), source, Check::LastSuccess, status, message);
    item.value = Some(last as f64 / 1e9);
    item
}

/// The last backup's size against the median of the ones before it, per source.
/// The project's last run: critical when it failed (a source, a copy, a hook), even while
/// the last success is still within max-age; nothing when it never ran.
pub(super) fn last_run(ctx: &Ctx) -> Vec<Item> {
    let q = Query {
        limit: Some(1),
        ..ctx.q(None, RecordKind::Run)
    };
    let last = match ctx.query(q, Check::LastRun, None) {
        Ok(r) => r.into_iter().next(),
        Err(item) => return vec![item],
    };
    let Some(last) = last else {
        return Vec::new();
    };
    let age = human_age(ctx.age(last.time_ns));
    let (status, message) = if last.ok {
        (Status::Ok, format!("the last run ({age} ago) succeeded"))
    } else {
        let why = last.error.as_deref().unwrap_or("see `strata log --failed`");
        (
            Status::Critical,
            format!("the last run ({age} ago) failed: {why}"),
        )
    };
    vec![ctx.item(None, None, Check::LastRun, status, message)]
}

pub(super) fn size(ctx: &Ctx) -> Vec<Item> {
    let Some(primary) = ctx.primary() else {
        return Vec::new();
    };
    let backups = match ctx.backups(Check::Size) {
        Ok(b) => b,
        Err(item) => return vec![item],
    };
    let mut items = Vec::new();
    for source in ctx.sources(&backups) {
        let mine: Vec<&Record> = backups
            .iter()
            .filter(|r| source_of(r) == Some(source.as_str()))
            .take(SIZE_WINDOW + 1)
            .collect();
        let Some((last, earlier)) = mine.split_first() else {
            continue;
        };
        // One measure on both sides: a record with `bytes_total` is compared with the
        // earlier ones that have it too (just after an upgrade, too few: no comparison).
        let by_total = total_of(last).is_some();
        let last_bytes = size_of(last, by_total).unwrap_or(0);
        let earlier: Vec<u64> = earlier
            .iter()
            .filter_map(|r| size_of(r, by_total))
            .collect();
        let (status, message) = if earlier.len() < SIZE_MIN_HISTORY {
            (
                Status::Ok,
                format!(
                    "{} backed up; too few earlier backups ({}) to compare",
                    human_bytes(last_bytes),
                    earlier.len()
                ),
            )
        } else {
            let before = earlier.len();
            let median = median(earlier);
            let ratio = if median == 0 {
                if last_bytes == 0 {
                    1.0
                } else {
                    f64::INFINITY
                }
            } else {
                last_bytes as f64 / median as f64
            };
            let versus = format!(
                "{} backed up, the median of the {} before is {}",
                human_bytes(last_bytes),
                before,
                human_bytes(median)
            );
            if ratio < SIZE_LOW {
                (Status::Warning, format!("{versus}: below half"))
            } else if ratio > SIZE_HIGH && median > 0 {
                (Status::Warning, format!("{versus}: more than double"))
            } else {
                (Status::Ok, versus)
            }
        };
        let mut item = ctx.item(Some(primary), Some(&source), Check::Size, status, message);
        item.value = Some(last_bytes as f64);
        items.push(item);
    }
    items
}

/// The last restore test: failed is critical, overdue (or none) a warning.
pub(super) fn restore_test(ctx: &Ctx) -> Vec<Item> {
    let Some(schedule) = &ctx.project.restore_test else {
        return Vec::new();
    };
    let q = Query {
        limit: Some(1),
        ..ctx.q(None, RecordKind::RestoreTest)
    };
    vec![judge_last_run(
        ctx,
        q,
        None,
        Check::RestoreTest,
        "restore test",
        schedule,
    )]
}

/// The last check of each repository: failed is critical, overdue (or none) a warning.
pub(super) fn check(ctx: &Ctx) -> Vec<Item> {
    let Some(schedule) = &ctx.project.check else {
        return Vec::new();
    };
    ctx.project
        .repositories
        .iter()
        .map(|repo| {
            let q = Query {
                limit: Some(1),
                ..ctx.q(Some(repo), RecordKind::Check)
            };
            judge_last_run(ctx, q, Some(repo), Check::Check, "check", schedule)
        })
        .collect()
}

fn judge_last_run(
    ctx: &Ctx,
    q: Query,
    repo: Option<&str>,
    check: Check,
    what: &str,
    schedule: &Schedule,
) -> Item {
    let last = match ctx.query(q, check, repo) {
        Ok(r) => r.into_iter().next(),
        Err(item) => return item,
    };
    let Some(last) = last else {
        return ctx.item(
            repo,
            None,
            check,
            Status::Warning,
            format!("no {what} recorded yet (scheduled {})", schedule.text),
        );
    };
    let age = ctx.age(last.time_ns);
    let errors = match &last.body {
        RecordBody::Check { errors, .. } => *errors,
        _ => 0,
    };
    if !last.ok || errors > 0 {
        let why = last
            .error
            .clone()
            .unwrap_or_else(|| format!("{errors} errors"));
        return ctx.item(
            repo,
            None,
            check,
            Status::Critical,
            format!("the last {what}, {} ago, failed: {why}", human_age(age)),
        );
    }
    match interval(schedule) {
        Some(i) if age > i * OVERDUE_INTERVALS => ctx.item(
            repo,
            None,
            check,
            Status::Warning,
            format!(
                "last {what} {} ago, overdue (scheduled {}: older than {})",
                human_age(age),
                schedule.text,
                human_age(i * OVERDUE_INTERVALS)
            ),
        ),
        _ => ctx.item(
            repo,
            None,
            check,
            Status::Ok,
            format!("last {what} {} ago, passed", human_age(age)),
        ),
    }
}

/// Each other repository's last copy against the primary's last backup.
pub(super) fn copy_lag(ctx: &Ctx) -> Vec<Item> {
    let Some(max_age) = ctx.max_age else {
        return Vec::new();
    };
    if ctx.project.repositories.len() < 2 {
        return Vec::new();
    }
    let last_backup = match ctx.backups(Check::CopyLag) {
        Ok(b) => match b.first() {
            Some(r) => r.time_ns,
            None => return Vec::new(),
        },
        Err(item) => return vec![item],
    };
    let limit = max_age / 2;
    let mut items = Vec::new();
    for repo in ctx.project.repositories.iter().skip(1) {
        let q = Query {
            ok_only: true,
            limit: Some(1),
            ..ctx.q(Some(repo), RecordKind::Copy)
        };
        let last_copy = match ctx.query(q, Check::CopyLag, Some(repo)) {
            Ok(r) => r.first().map(|r| r.time_ns),
            Err(item) => {
                items.push(item);
                continue;
            }
        };
        let item = match last_copy {
            None => ctx.item(
                Some(repo),
                None,
                Check::CopyLag,
                Status::Warning,
                "no copy yet, while the primary has backups".into(),
            ),
            Some(c) => {
                let lag = Duration::from_nanos(last_backup.saturating_sub(c).max(0) as u64);
                if lag > limit {
                    ctx.item(
                        Some(repo),
                        None,
                        Check::CopyLag,
                        Status::Warning,
                        format!(
                            "the last copy is {} older than the primary's last backup (more than max-age/2 = {})",
                            human_age(lag),
                            human_age(limit)
                        ),
                    )
                } else {
                    ctx.item(
                        Some(repo),
                        None,
                        Check::CopyLag,
                        Status::Ok,
                        "copies keep up with the primary".into(),
                    )
                }
            }
        };
        items.push(item);
    }
    items
}

/// Free space of one repository's storage, where it is known.
pub(super) fn free_space(ctx: &Ctx, repo: &str, free: Option<FreeSpace>) -> Vec<Item> {
    let Some(f) = free.filter(|f| f.total_bytes > 0) else {
        return Vec::new();
    };
    let fraction = f.free_bytes as f64 / f.total_bytes as f64;
    let message = format!(
        "{} free of {} ({:.0}%)",
        human_bytes(f.free_bytes),
        human_bytes(f.total_bytes),
        fraction * 100.0
    );
    let status = if fraction < FREE_SPACE_LOW {
        Status::Warning
    } else {
        Status::Ok
    };
    let mut item = ctx.item(Some(repo), None, Check::FreeSpace, status, message);
    item.value = Some(fraction);
    vec![item]
}

/// A run lock held far longer than runs take (a hung dump, a dead mount).
pub(super) fn run_lock(ctx: &Ctx) -> Vec<Item> {
    let path = lock::run_lock_path(&ctx.cfg.state_dir, &ctx.project.name);
    let Some(held) = lock::holder(&path) else {
        return vec![ctx.item(None, None, Check::RunLock, Status::Ok, "not running".into())];
    };
    let pid = held.pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
    let q = Query {
        limit: Some(20),
        ..ctx.q(None, RecordKind::Run)
    };
    let runs = match ctx.query(q, Check::RunLock, None) {
        Ok(r) => r,
        Err(item) => return vec![item],
    };
    let durations: Vec<u64> = runs
        .iter()
        .filter_map(|r| match &r.body {
            RecordBody::Run { started_ns, .. } => {
                Some(r.time_ns.saturating_sub(*started_ns).max(0) as u64)
            }
            _ => None,
        })
        .collect();
    let running = format!("running for {}{pid}", human_age(held.held_for));
    let (status, message) = judge_lock(running, held.held_for, durations);
    vec![ctx.item(None, None, Check::RunLock, status, message)]
}

/// A lock held for `held_for` against the runs' durations (ns).
fn judge_lock(running: String, held_for: Duration, durations: Vec<u64>) -> (Status, String) {
    if durations.is_empty() {
        return (Status::Ok, format!("{running}; no earlier runs to compare"));
    }
    let usual = Duration::from_nanos(median(durations));
    // A run of seconds should not alarm after a minute.
    let limit = (usual * LOCK_RUNS).max(LOCK_MIN);
    if held_for > limit {
        (
            Status::Warning,
            format!(
                "{running}, longer than {LOCK_RUNS}× the median run ({}); is it stuck?",
                human_age(usual)
            ),
        )
    } else {
        (
            Status::Ok,
            format!("{running} (median run {})", human_age(usual)),
        )
    }
}

/// Notifications that failed since the last successful backup.
pub(super) fn notifications(ctx: &Ctx) -> Vec<Item> {
    let since = match ctx.backups(Check::Notifications) {
        Ok(b) => b.first().map(|r| r.time_ns),
        Err(item) => return vec![item],
    };
    let q = Query {
        since_ns: since,
        limit: Some(100),
        ..ctx.q(None, RecordKind::Notify)
    };
    let failed: Vec<Record> = match ctx.query(q, Check::Notifications, None) {
        Ok(r) => r.into_iter().filter(|r| !r.ok).collect(),
        Err(item) => return vec![item],
    };
    let Some(last) = failed.first() else {
        return vec![ctx.item(
            None,
            None,
            Check::Notifications,
            Status::Ok,
            "no notification failed since the last success".into(),
        )];
    };
    let mut channels: Vec<&str> = failed
        .iter()
        .filter_map(|r| match &r.body {
            RecordBody::Notify { channel, .. } => Some(channel.as_str()),
            _ => None,
        })
        .collect();
    channels.sort_unstable();
    channels.dedup();
    vec![ctx.item(
        None,
        None,
        Check::Notifications,
        Status::Warning,
        format!(
            "{} notification(s) failed since the last success ({}); the last: {}",
            failed.len(),
            channels.join(", "),
            last.error.as_deref().unwrap_or("no error recorded")
        ),
    )]
}

fn median(mut v: Vec<u64>) -> u64 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        // The mean of the middle two, without overflow.
        v[n / 2 - 1] / 2 + v[n / 2] / 2 + (v[n / 2 - 1] % 2 + v[n / 2] % 2) / 2
    }
}

/// `1.5 GiB`: bytes for people.
pub(super) fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(vec![]), 0);
        assert_eq!(median(vec![5]), 5);
        assert_eq!(median(vec![9, 1, 5]), 5);
        assert_eq!(median(vec![1, 2, 3, 4]), 2);
        assert_eq!(median(vec![u64::MAX, u64::MAX]), u64::MAX);
    }

    #[test]
    fn a_lock_held_over_three_median_runs_is_a_warning() {
        let min = 60 * 1_000_000_000;
        let runs = vec![10 * min, 20 * min, 30 * min];
        let judge = |held: u64| {
            judge_lock(
                "running".into(),
                Duration::from_secs(held * 60),
                runs.clone(),
            )
            .0
        };
        assert_eq!(judge(60), Status::Ok);
        assert_eq!(judge(61), Status::Warning);
        // Short runs: not before 15 minutes.
        let short = |held: u64| judge_lock("r".into(), Duration::from_secs(held * 60), vec![min]).0;
        assert_eq!(short(15), Status::Ok);
        assert_eq!(short(16), Status::Warning);
        assert_eq!(
            judge_lock("r".into(), Duration::from_secs(86_400), vec![]).0,
            Status::Ok
        );
    }

    #[test]
    fn bytes_for_people() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }
}
