//! Retention policy: which snapshots `forget` keeps, and why.
//!
//! Pure code: no I/O and no clock. Callers pass the current time and the time zone in which
//! calendar buckets (hours, days, ISO weeks, months, years) are drawn, so a plan is
//! reproducible and testable.
//!
//! # Semantics (those of restic's `forget`)
//! Snapshots are split into groups ([`GroupBy`], by default host + paths + project) and each
//! group is decided on its own, its snapshots sorted newest first (ties by id):
//! - **last N** keeps the N newest.
//! - **hourly/daily/weekly/monthly/yearly N** each walk from newest to oldest and keep a
//!   snapshot when its bucket differs from the bucket of the snapshot that rule kept last,
//!   while the rule has count left. So each keeps the newest snapshot of each of the N most
//!   recent buckets *that have a snapshot*; empty buckets cost nothing.
//! - **within SPAN** keeps every snapshot strictly after "the group's newest snapshot minus
//!   SPAN" (calendar arithmetic, see [`subtract_span`]).
//! - **tags** keeps every snapshot carrying any of the tags; it consumes no counts.
//! - **holds**: a snapshot whose `keep_until_ns` is after now is kept, whatever the rules say
//!   (and without consuming their counts).
//! - Unless `allow_empty`, a group that would lose every snapshot keeps its newest.
//!
//! Rules are independent: a kept snapshot lists every rule that keeps it, and the survivors
//! are the union of what each rule keeps.
//!
//! # Differences from restic
//! - Month and year arithmetic clamps to the end of the month (31 March minus one month is
//!   28/29 February), where Go's `AddDate` overflows into the next month (3 March).
//! - `tags` matches single tags; restic's `--keep-tag a,b` (both tags) has no counterpart.
//! - An empty policy is not refused here; callers check [`KeepPolicy::is_empty`].

mod group;
mod time;

use group::sorted_set;
pub use group::{group_key, GroupBy, GroupKey};
use time::timestamp;
/// Text that does not read as a time, a span or a grouping; its message says what was
/// wrong and how to write it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(String);

impl From<ParseError> for crate::EngineError {
    fn from(e: ParseError) -> Self {
        crate::EngineError::Invalid(e.0)
    }
}

pub use time::{add_span, format_time, parse_span, parse_time, subtract_span, CalendarSpan};

use std::collections::BTreeMap;
use std::fmt;

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use strata_format::id::SnapshotId;
use strata_format::snapshot::SnapshotFile;

/// What to keep. The default keeps nothing by rule; a count of 0 turns its rule off.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeepPolicy {
    /// Keep the newest N snapshots.
    pub last: u32,
    /// Keep the newest snapshot of each of the N most recent hours that have one.
    pub hourly: u32,
    /// Keep the newest snapshot of each of the N most recent days that have one.
    pub daily: u32,
    /// Keep the newest snapshot of each of the N most recent ISO 8601 weeks that have one.
    pub weekly: u32,
    /// Keep the newest snapshot of each of the N most recent months that have one.
    pub monthly: u32,
    /// Keep the newest snapshot of each of the N most recent years that have one.
    pub yearly: u32,
    /// Keep every snapshot within this span of the group's newest snapshot.
    pub within: Option<CalendarSpan>,
    /// Keep every snapshot that carries any of these tags.
    pub tags: Vec<String>,
}

impl KeepPolicy {
    /// True when no rule is on, so the policy alone would keep nothing.
    pub fn is_empty(&self) -> bool {
        self.last == 0
            && self.hourly == 0
            && self.daily == 0
            && self.weekly == 0
            && self.monthly == 0
            && self.yearly == 0
            && self.within.is_none()
            && self.tags.is_empty()
    }
}

/// Why a snapshot is kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Among the newest N; the value is its place, 1 for the newest.
    Last(u32),
    /// The newest of its hour.
    Hourly,
    /// The newest of its day.
    Daily,
    /// The newest of its ISO week.
    Weekly,
    /// The newest of its month.
    Monthly,
    /// The newest of its year.
    Yearly,
    /// Within this span of the group's newest snapshot.
    Within(CalendarSpan),
    /// Carries this tag.
    Tag(String),
    /// Under a hold until this time (Unix nanoseconds).
    Held {
        /// End of the hold, Unix nanoseconds.
        until_ns: i64,
    },
    /// No rule keeps anything in its group, and empty groups are not allowed.
    LastOfGroup,
}

impl Reason {
    /// Like `Display`, but a hold's end in wall time of `tz` rather than UTC.
    pub fn describe(&self, tz: &TimeZone) -> String {
        match self {
            Reason::Held { until_ns } => match tz.iana_name() {
                Some(name) => format!("held until {} {name}", format_time(*until_ns, tz)),
                None => format!("held until {}", format_time(*until_ns, tz)),
            },
            other => other.to_string(),
        }
    }
}

/// One phrase per reason: `last snapshot #2`, `daily snapshot`, `within 30d of the latest`,
/// ``tagged `x` ``, `held until 2032-01-01 00:00:00 UTC`.
impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Last(n) => write!(f, "last snapshot #{n}"),
            Reason::Hourly => f.write_str("hourly snapshot"),
            Reason::Daily => f.write_str("daily snapshot"),
            Reason::Weekly => f.write_str("weekly snapshot"),
            Reason::Monthly => f.write_str("monthly snapshot"),
            Reason::Yearly => f.write_str("yearly snapshot"),
            Reason::Within(span) => write!(f, "within {span} of the latest"),
            Reason::Tag(tag) => write!(f, "tagged `{tag}`"),
            Reason::Held { until_ns } => {
                write!(
                    f,
                    "held until {} UTC",
                    format_time(*until_ns, &TimeZone::UTC)
                )
            }
            Reason::LastOfGroup => {
                f.write_str("the group's last snapshot (keep it or pass --allow-empty)")
            }
        }
    }
}

/// What happens to one snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The snapshot.
    pub id: SnapshotId,
    /// Its time, Unix nanoseconds.
    pub time_ns: i64,
    /// Whether it stays; true exactly when `reasons` is not empty.
    pub keep: bool,
    /// Every reason it is kept, in the order: last, hourly … yearly, within, tags, held,
    /// last of group.
    pub reasons: Vec<Reason>,
}

/// The decisions for one group, newest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupPlan {
    /// The fields the group shares.
    pub key: GroupKey,
    /// One decision per snapshot, newest first (ties by id).
    pub decisions: Vec<Decision>,
}

/// What `forget` will do, before it does it: every group, sorted by key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForgetPlan {
    /// The groups, sorted by key.
    pub groups: Vec<GroupPlan>,
}

impl ForgetPlan {
    fn decisions(&self) -> impl Iterator<Item = &Decision> + '_ {
        self.groups.iter().flat_map(|g| g.decisions.iter())
    }

    /// The snapshots that stay, group by group, newest first within a group.
    pub fn keep(&self) -> impl Iterator<Item = SnapshotId> + '_ {
        self.decisions().filter(|d| d.keep).map(|d| d.id)
    }

    /// The snapshots to forget, group by group, newest first within a group.
    pub fn remove(&self) -> impl Iterator<Item = SnapshotId> + '_ {
        self.decisions().filter(|d| !d.keep).map(|d| d.id)
    }
}

/// Inputs of [`plan`].
#[derive(Clone, Copy, Debug)]
pub struct PlanOptions<'a> {
    /// The rules.
    pub policy: &'a KeepPolicy,
    /// How snapshots are grouped.
    pub group_by: GroupBy,
    /// The current time, Unix nanoseconds; holds ending after it are in force.
    pub now_ns: i64,
    /// The time zone whose calendar draws the buckets and does span arithmetic.
    pub tz: &'a TimeZone,
    /// Let a group lose every snapshot instead of keeping its newest.
    pub allow_empty: bool,
}

/// Decides every snapshot: groups them, applies the policy to each group, then holds, then
/// the last-of-group guard. Groups come out sorted by key.
pub fn plan(snapshots: &[(SnapshotId, SnapshotFile)], opts: &PlanOptions) -> ForgetPlan {
    let mut groups: BTreeMap<GroupKey, Vec<&(SnapshotId, SnapshotFile)>> = BTreeMap::new();
    for entry in snapshots {
        groups
            .entry(group_key(&entry.1, opts.group_by))
            .or_default()
            .push(entry);
    }
    let groups = groups
        .into_iter()
        .map(|(key, mut members)| {
            members.sort_by(|(a_id, a), (b_id, b)| b.time_ns.cmp(&a.time_ns).then(a_id.cmp(b_id)));
            let input: Vec<(i64, &[String])> = members
                .iter()
                .map(|(_, s)| (s.time_ns, s.tags.as_slice()))
                .collect();
            let mut reasons = apply_policy(&input, opts.policy, opts.tz);
            for ((_, s), r) in members.iter().zip(reasons.iter_mut()) {
                if let Some(until_ns) = s.keep_until_ns.filter(|&u| u > opts.now_ns) {
                    r.push(Reason::Held { until_ns });
                }
            }
            if !opts.allow_empty && reasons.iter().all(Vec::is_empty) {
                if let Some(newest) = reasons.first_mut() {
                    newest.push(Reason::LastOfGroup);
                }
            }
            let decisions = members
                .iter()
                .zip(reasons)
                .map(|((id, s), reasons)| Decision {
                    id: *id,
                    time_ns: s.time_ns,
                    keep: !reasons.is_empty(),
                    reasons,
                })
                .collect();
            GroupPlan { key, decisions }
        })
        .collect();
    ForgetPlan { groups }
}

/// A calendar bucket as a number that changes exactly when the bucket does.
type BucketFn = fn(&DateTime) -> i64;

fn hour_bucket(dt: &DateTime) -> i64 {
    day_bucket(dt) * 100 + i64::from(dt.hour())
}

fn day_bucket(dt: &DateTime) -> i64 {
    month_bucket(dt) * 100 + i64::from(dt.day())
}

fn week_bucket(dt: &DateTime) -> i64 {
    let week = dt.date().iso_week_date();
    i64::from(week.year()) * 100 + i64::from(week.week())
}

fn month_bucket(dt: &DateTime) -> i64 {
    year_bucket(dt) * 100 + i64::from(dt.month())
}

fn year_bucket(dt: &DateTime) -> i64 {
    i64::from(dt.year())
}

/// The policy on one group: `times_newest_first` holds each snapshot's time (Unix ns) and
/// tags, sorted newest first. Returns, per snapshot in the same order, every reason the
/// policy keeps it; an empty list means remove. Holds and the last-of-group guard are
/// [`plan`]'s business.
pub fn apply_policy(
    times_newest_first: &[(i64, &[String])],
    policy: &KeepPolicy,
    tz: &TimeZone,
) -> Vec<Vec<Reason>> {
    debug_assert!(
        times_newest_first.windows(2).all(|w| w[0].0 >= w[1].0),
        "apply_policy wants snapshots newest first"
    );
    let mut reasons: Vec<Vec<Reason>> = vec![Vec::new(); times_newest_first.len()];

    for (place, r) in (1..=policy.last).zip(reasons.iter_mut()) {
        r.push(Reason::Last(place));
    }

    let civil: Vec<DateTime> = times_newest_first
        .iter()
        .map(|(t, _)| tz.to_datetime(timestamp(*t)))
        .collect();
    let bucket_rules: [(u32, BucketFn, Reason); 5] = [
        (policy.hourly, hour_bucket, Reason::Hourly),
        (policy.daily, day_bucket, Reason::Daily),
        (policy.weekly, week_bucket, Reason::Weekly),
        (policy.monthly, month_bucket, Reason::Monthly),
        (policy.yearly, year_bucket, Reason::Yearly),
    ];
    for (count, bucket_of, reason) in bucket_rules {
        let mut left = count;
        let mut last_kept = None;
        for (dt, r) in civil.iter().zip(reasons.iter_mut()) {
            if left == 0 {
                break;
            }
            let bucket = bucket_of(dt);
            if last_kept != Some(bucket) {
                r.push(reason.clone());
                last_kept = Some(bucket);
                left -= 1;
            }
        }
    }

    if let Some(span) = policy.within {
        if let Some(latest) = times_newest_first.iter().map(|(t, _)| *t).max() {
            let cutoff = subtract_span(latest, span, tz);
            for ((t, _), r) in times_newest_first.iter().zip(reasons.iter_mut()) {
                if *t > cutoff {
                    r.push(Reason::Within(span));
                }
            }
        }
    }

    let wanted_tags = sorted_set(&policy.tags);
    for ((_, tags), r) in times_newest_first.iter().zip(reasons.iter_mut()) {
        for tag in wanted_tags.iter().filter(|t| tags.contains(t)) {
            r.push(Reason::Tag(tag.clone()));
        }
    }
    reasons
}

#[cfg(test)]
mod tests;
