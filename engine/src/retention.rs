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

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Span, Timestamp};
use serde::Serialize;
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

/// A calendar length such as `1y2m` or `30d`: years, months and days are counted on the
/// calendar (a day is not always 24 hours), hours as elapsed time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CalendarSpan {
    /// Calendar years.
    pub years: u32,
    /// Calendar months.
    pub months: u32,
    /// Calendar days.
    pub days: u32,
    /// Elapsed hours.
    pub hours: u32,
}

impl CalendarSpan {
    fn is_zero(&self) -> bool {
        self.years == 0 && self.months == 0 && self.days == 0 && self.hours == 0
    }

    /// The years/months/days part as a jiff span, negated when `sign` is -1.
    fn calendar_part(&self, sign: i64) -> Result<Span, jiff::Error> {
        Span::new()
            .try_years(sign * i64::from(self.years))?
            .try_months(sign * i64::from(self.months))?
            .try_days(sign * i64::from(self.days))
    }
}

/// Writes the span as [`parse_span`] reads it, leaving out zero units (`1y2m`, `30d`); the
/// all-zero span is `0h`.
impl fmt::Display for CalendarSpan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_zero() {
            return f.write_str("0h");
        }
        for (n, unit) in [
            (self.years, 'y'),
            (self.months, 'm'),
            (self.days, 'd'),
            (self.hours, 'h'),
        ] {
            if n != 0 {
                write!(f, "{n}{unit}")?;
            }
        }
        Ok(())
    }
}

impl FromStr for CalendarSpan {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_span(s)
    }
}

const SPAN_HELP: &str = "write a span as numbers with units y (years), m (months), d (days), \
                         h (hours) in that order, such as `30d`, `1y2m` or `12h`";

/// Reads a span such as `30d`, `1y2m`, `7y`, `12h` or `1y2m3d4h`: each of the units y, m, d,
/// h at most once and in that order. Zero units are allowed (`1y0m`) but not an all-zero
/// span, nor one too large for the calendar.
pub fn parse_span(s: &str) -> Result<CalendarSpan, String> {
    const UNITS: [char; 4] = ['y', 'm', 'd', 'h'];
    if s.trim().is_empty() {
        return Err(format!("empty time span; {SPAN_HELP}"));
    }
    let mut values: [Option<u32>; 4] = [None; 4];
    let mut rest = s.trim();
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let (number, after) = rest.split_at(digits);
        let Some(unit) = after.chars().next() else {
            return Err(format!("`{number}` in span `{s}` has no unit; {SPAN_HELP}"));
        };
        if digits == 0 {
            return Err(format!(
                "expected a number before `{unit}` in span `{s}`; {SPAN_HELP}"
            ));
        }
        let Some(index) = UNITS.iter().position(|&u| u == unit) else {
            return Err(format!("unknown unit `{unit}` in span `{s}`; {SPAN_HELP}"));
        };
        if values[index].is_some() {
            return Err(format!(
                "unit `{unit}` appears twice in span `{s}`; {SPAN_HELP}"
            ));
        }
        if values[index + 1..].iter().any(Option::is_some) {
            return Err(format!("units out of order in span `{s}`; {SPAN_HELP}"));
        }
        let n: u32 = number
            .parse()
            .map_err(|_| format!("`{number}{unit}` in span `{s}` is too large"))?;
        values[index] = Some(n);
        rest = &after[unit.len_utf8()..];
    }
    let [years, months, days, hours] = values.map(|v| v.unwrap_or(0));
    let span = CalendarSpan {
        years,
        months,
        days,
        hours,
    };
    if span.is_zero() {
        return Err(format!(
            "span `{s}` is zero; give a positive length such as `1d`"
        ));
    }
    if span.calendar_part(-1).is_err() {
        return Err(format!("span `{s}` is too large for the calendar"));
    }
    Ok(span)
}

/// Unix nanoseconds as a jiff timestamp; every `i64` fits (years 1677 to 2262).
fn timestamp(t_ns: i64) -> Timestamp {
    Timestamp::from_nanosecond(i128::from(t_ns)).expect("i64 nanoseconds are within jiff's range")
}

/// Moves `t_ns` by `span` (forward for sign 1, back for -1): years, months and days on the
/// civil calendar in `tz` (day clamped to the month's end; a wall time that falls into a DST
/// gap or fold resolved as jiff's "compatible" does), then hours as elapsed time. `None` when
/// the result does not fit in `i64` nanoseconds.
fn shift(t_ns: i64, span: CalendarSpan, tz: &TimeZone, sign: i64) -> Option<i64> {
    let mut ts = timestamp(t_ns);
    let calendar = span.calendar_part(sign).ok()?;
    if !calendar.is_zero() {
        let dt = tz.to_datetime(ts).checked_add(calendar).ok()?;
        ts = tz.to_ambiguous_timestamp(dt).compatible().ok()?;
    }
    let hours = SignedDuration::from_hours(sign * i64::from(span.hours));
    let ts = ts.checked_add(hours).ok()?;
    i64::try_from(ts.as_nanosecond()).ok()
}

/// `t_ns` minus `span` in `tz`, as Go's `t.AddDate(-y, -m, -d).Add(-h)` but clamping to the
/// month's end (31 March minus 1m is the end of February, not 3 March). Saturates at
/// `i64::MIN` when the result is earlier than Unix nanoseconds can say.
pub fn subtract_span(t_ns: i64, span: CalendarSpan, tz: &TimeZone) -> i64 {
    shift(t_ns, span, tz, -1).unwrap_or(i64::MIN)
}

/// `t_ns` plus `span` in `tz` (for holds such as `--hold-for 7y`), the mirror of
/// [`subtract_span`]. Saturates at `i64::MAX` (a hold that never ends).
pub fn add_span(t_ns: i64, span: CalendarSpan, tz: &TimeZone) -> i64 {
    shift(t_ns, span, tz, 1).unwrap_or(i64::MAX)
}

/// Reads a time: `2025-01-31 03:00:00`, `2025-01-31 03:00`, `2025-01-31T03:00:00`,
/// `2025-01-31T03:00` or `2025-01-31` (midnight) as wall time in `tz`, or RFC 3339 with an
/// offset (`2025-01-31T03:00:00Z`, `2025-01-31T03:00:00+01:00`). Returns Unix nanoseconds.
///
/// A wall time that does not exist in `tz` (skipped by a DST change) or exists twice is
/// resolved the "compatible" way (RFC 5545, Temporal): a skipped time moves forward by the
/// gap (Berlin 02:30 on the spring-forward day is 03:30 CEST); a repeated time is the
/// earlier one.
pub fn parse_time(s: &str, tz: &TimeZone) -> Result<i64, String> {
    let text = s.trim();
    let ts = match text.parse::<Timestamp>() {
        Ok(ts) => ts,
        Err(_) => {
            let dt = parse_civil(text).ok_or_else(|| {
                format!(
                    "cannot read time `{s}`; write `YYYY-MM-DD`, `YYYY-MM-DD HH:MM[:SS]` \
                     (local time) or RFC 3339 such as `2025-01-31T03:00:00Z`"
                )
            })?;
            tz.to_ambiguous_timestamp(dt)
                .compatible()
                .map_err(|e| format!("time `{s}` is out of range: {e}"))?
        }
    };
    i64::try_from(ts.as_nanosecond())
        .map_err(|_| format!("time `{s}` is outside the years 1678 to 2261 that Strata can store"))
}

/// The wall-time forms [`parse_time`] accepts.
fn parse_civil(text: &str) -> Option<DateTime> {
    const FORMATS: [&str; 4] = [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
    ];
    FORMATS
        .iter()
        .find_map(|f| DateTime::strptime(f, text).ok())
        .or_else(|| {
            Date::strptime("%Y-%m-%d", text)
                .ok()
                .map(|d| d.to_datetime(jiff::civil::Time::midnight()))
        })
}

/// `t_ns` as wall time in `tz`: `2025-01-31 03:00:00`.
pub fn format_time(t_ns: i64, tz: &TimeZone) -> String {
    let dt = tz.to_datetime(timestamp(t_ns));
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    )
}

/// Which snapshot fields split snapshots into groups that are decided separately.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupBy {
    /// Group by host name.
    pub host: bool,
    /// Group by the set of backed-up paths.
    pub paths: bool,
    /// Group by project.
    pub project: bool,
    /// Group by the set of tags.
    pub tags: bool,
}

/// Host, paths and project.
impl Default for GroupBy {
    fn default() -> Self {
        GroupBy {
            host: true,
            paths: true,
            project: true,
            tags: false,
        }
    }
}

impl GroupBy {
    /// Reads a comma-separated list of `host`, `paths`, `project` and `tags` (the default is
    /// `host,paths,project`); the empty string puts every snapshot into one group.
    pub fn parse(s: &str) -> Result<GroupBy, String> {
        let mut by = GroupBy {
            host: false,
            paths: false,
            project: false,
            tags: false,
        };
        for field in s.split(',').map(str::trim).filter(|f| !f.is_empty()) {
            match field {
                "host" => by.host = true,
                "paths" => by.paths = true,
                "project" => by.project = true,
                "tags" => by.tags = true,
                other => {
                    return Err(format!(
                        "cannot group by `{other}`; use a comma-separated list of host, \
                         paths, project and tags, or an empty string for one group"
                    ))
                }
            }
        }
        Ok(by)
    }
}

/// Writes the fields as [`GroupBy::parse`] reads them (`host,paths,project`).
impl fmt::Display for GroupBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fields = [
            (self.host, "host"),
            (self.paths, "paths"),
            (self.project, "project"),
            (self.tags, "tags"),
        ];
        let names: Vec<&str> = fields
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, n)| *n)
            .collect();
        f.write_str(&names.join(","))
    }
}

/// The fields a group shares; a field is `None` when snapshots are not grouped by it.
/// Paths and tags are sorted and deduplicated, so their order does not split groups.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct GroupKey {
    /// The host name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The backed-up paths, sorted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
    /// The project; `Some(None)` is the group of snapshots without one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<Option<String>>,
    /// The tags, sorted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
}

/// `host=a paths=[/x,/y] project=p tags=[t]`, leaving out fields not grouped by; a snapshot
/// without a project shows `project=(none)`, a key without fields `(all snapshots)`.
impl fmt::Display for GroupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(host) = &self.hostname {
            parts.push(format!("host={host}"));
        }
        if let Some(paths) = &self.paths {
            parts.push(format!("paths=[{}]", paths.join(",")));
        }
        if let Some(project) = &self.project {
            parts.push(format!(
                "project={}",
                project.as_deref().unwrap_or("(none)")
            ));
        }
        if let Some(tags) = &self.tags {
            parts.push(format!("tags=[{}]", tags.join(",")));
        }
        if parts.is_empty() {
            return f.write_str("(all snapshots)");
        }
        f.write_str(&parts.join(" "))
    }
}

fn sorted_set(items: &[String]) -> Vec<String> {
    let mut v = items.to_vec();
    v.sort();
    v.dedup();
    v
}

/// The group `s` belongs to under `by`.
pub fn group_key(s: &SnapshotFile, by: GroupBy) -> GroupKey {
    GroupKey {
        hostname: by.host.then(|| s.hostname.clone()),
        paths: by.paths.then(|| sorted_set(&s.paths)),
        project: by.project.then(|| s.project.clone()),
        tags: by.tags.then(|| sorted_set(&s.tags)),
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
mod tests {
    use super::*;
    use jiff::civil::date;

    fn berlin() -> TimeZone {
        TimeZone::get("Europe/Berlin").expect("tzdb has Europe/Berlin")
    }

    /// Wall time in `tz` as Unix ns (unambiguous times only).
    fn at(tz: &TimeZone, y: i16, mo: i8, d: i8, h: i8, mi: i8) -> i64 {
        let ts = tz
            .to_ambiguous_timestamp(date(y, mo, d).at(h, mi, 0, 0))
            .unambiguous()
            .unwrap();
        i64::try_from(ts.as_nanosecond()).unwrap()
    }

    fn span(years: u32, months: u32, days: u32, hours: u32) -> CalendarSpan {
        CalendarSpan {
            years,
            months,
            days,
            hours,
        }
    }

    #[test]
    fn parse_span_accepts_units_in_order() {
        assert_eq!(parse_span("30d"), Ok(span(0, 0, 30, 0)));
        assert_eq!(parse_span("1y2m"), Ok(span(1, 2, 0, 0)));
        assert_eq!(parse_span("7y"), Ok(span(7, 0, 0, 0)));
        assert_eq!(parse_span("12h"), Ok(span(0, 0, 0, 12)));
        assert_eq!(parse_span("1y2m3d4h"), Ok(span(1, 2, 3, 4)));
        assert_eq!(parse_span("1y0m"), Ok(span(1, 0, 0, 0)));
        assert_eq!(parse_span(" 2d "), Ok(span(0, 0, 2, 0)));
        assert_eq!(parse_span("007d"), Ok(span(0, 0, 7, 0)));
        assert_eq!("3m".parse::<CalendarSpan>(), Ok(span(0, 3, 0, 0)));
    }

    #[test]
    fn parse_span_rejects_with_a_reason() {
        let cases = [
            ("", "empty"),
            ("   ", "empty"),
            ("0d", "zero"),
            ("0y0m0d0h", "zero"),
            ("d", "expected a number"),
            ("5", "has no unit"),
            ("1y5", "has no unit"),
            ("5x", "unknown unit `x`"),
            ("5D", "unknown unit `D`"),
            ("1y 2m", "expected a number before ` `"),
            ("1.5d", "unknown unit `.`"),
            ("-1d", "expected a number before `-`"),
            ("1d1d", "appears twice"),
            ("1d1y", "out of order"),
            ("1h1m", "out of order"),
            ("99999999999d", "too large"),
            ("20000y", "too large for the calendar"),
        ];
        for (input, needle) in cases {
            let err = parse_span(input).expect_err(input);
            assert!(err.contains(needle), "{input:?}: {err}");
        }
    }

    #[test]
    fn span_display_round_trips() {
        for s in ["30d", "1y2m", "7y", "12h", "1y2m3d4h", "2m4h"] {
            assert_eq!(parse_span(s).unwrap().to_string(), s);
        }
        assert_eq!(parse_span("1y0m").unwrap().to_string(), "1y");
        assert_eq!(span(0, 0, 0, 0).to_string(), "0h");
    }

    #[test]
    fn subtract_span_clamps_to_month_end() {
        let utc = TimeZone::UTC;
        let t = at(&utc, 2024, 3, 31, 10, 0);
        assert_eq!(
            subtract_span(t, span(0, 1, 0, 0), &utc),
            at(&utc, 2024, 2, 29, 10, 0)
        );
        assert_eq!(
            subtract_span(t, span(1, 1, 0, 0), &utc),
            at(&utc, 2023, 2, 28, 10, 0)
        );
        // Years and months move together, then days, then hours.
        assert_eq!(
            subtract_span(t, span(0, 1, 1, 0), &utc),
            at(&utc, 2024, 2, 28, 10, 0)
        );
        assert_eq!(
            subtract_span(t, span(0, 0, 1, 11), &utc),
            at(&utc, 2024, 3, 29, 23, 0)
        );
        let leap = at(&utc, 2024, 2, 29, 0, 0);
        assert_eq!(
            subtract_span(leap, span(1, 0, 0, 0), &utc),
            at(&utc, 2023, 2, 28, 0, 0)
        );
        assert_eq!(
            add_span(leap, span(4, 0, 0, 0), &utc),
            at(&utc, 2028, 2, 29, 0, 0)
        );
        let jan31 = at(&utc, 2025, 1, 31, 3, 0);
        assert_eq!(
            add_span(jan31, span(0, 1, 0, 0), &utc),
            at(&utc, 2025, 2, 28, 3, 0)
        );
        assert_eq!(
            add_span(jan31, span(7, 0, 0, 0), &utc),
            at(&utc, 2032, 1, 31, 3, 0)
        );
    }

    #[test]
    fn days_are_calendar_days_and_hours_elapsed_across_dst() {
        let tz = berlin();
        // 2024-03-31: clocks jump 02:00 CET -> 03:00 CEST.
        let noon = at(&tz, 2024, 3, 31, 12, 0);
        let day_before = subtract_span(noon, span(0, 0, 1, 0), &tz);
        assert_eq!(day_before, at(&tz, 2024, 3, 30, 12, 0));
        assert_eq!(noon - day_before, 23 * 3_600_000_000_000);
        assert_eq!(
            subtract_span(noon, span(0, 0, 0, 24), &tz),
            at(&tz, 2024, 3, 30, 11, 0)
        );
        // One day back from 02:30 lands in the gap and resolves forward to 03:30 CEST.
        let t = at(&tz, 2024, 4, 1, 2, 30);
        assert_eq!(
            subtract_span(t, span(0, 0, 1, 0), &tz),
            at(&tz, 2024, 3, 31, 3, 30)
        );
        // One day back from 02:30 CET on 10-28 lands in the fold of 10-27: the earlier
        // 02:30, CEST (00:30 UTC).
        let t = at(&tz, 2024, 10, 28, 2, 30);
        let utc = TimeZone::UTC;
        assert_eq!(
            subtract_span(t, span(0, 0, 1, 0), &tz),
            at(&utc, 2024, 10, 27, 0, 30)
        );
        // The same instants in UTC are plain 24-hour days.
        assert_eq!(
            noon - subtract_span(noon, span(0, 0, 1, 0), &utc),
            24 * 3_600_000_000_000
        );
    }

    #[test]
    fn span_arithmetic_saturates() {
        let utc = TimeZone::UTC;
        assert_eq!(
            subtract_span(i64::MIN + 1, span(0, 0, 1, 0), &utc),
            i64::MIN
        );
        assert_eq!(subtract_span(0, span(400, 0, 0, 0), &utc), i64::MIN);
        assert_eq!(add_span(i64::MAX - 1, span(0, 0, 0, 1), &utc), i64::MAX);
        assert_eq!(
            add_span(0, span(u32::MAX, u32::MAX, u32::MAX, u32::MAX), &utc),
            i64::MAX
        );
        assert_eq!(
            subtract_span(0, span(u32::MAX, u32::MAX, u32::MAX, u32::MAX), &utc),
            i64::MIN
        );
    }

    #[test]
    fn parse_time_reads_every_form() {
        let utc = TimeZone::UTC;
        let want = at(&utc, 2025, 1, 31, 3, 0);
        for s in [
            "2025-01-31 03:00:00",
            "2025-01-31 03:00",
            "2025-01-31T03:00:00",
            "2025-01-31T03:00",
            "2025-01-31T03:00:00Z",
            "2025-01-31T04:00:00+01:00",
            "2025-01-31 03:00:00Z",
        ] {
            assert_eq!(parse_time(s, &utc), Ok(want), "{s}");
        }
        assert_eq!(
            parse_time("2025-01-31", &utc),
            Ok(at(&utc, 2025, 1, 31, 0, 0))
        );
        let tz = berlin();
        assert_eq!(parse_time("2025-01-31 04:00:00", &tz), Ok(want));
        assert_eq!(
            parse_time("2025-07-01", &tz),
            Ok(at(&utc, 2025, 6, 30, 22, 0))
        );
        // An explicit offset wins over the zone.
        assert_eq!(parse_time("2025-01-31T03:00:00Z", &tz), Ok(want));
    }

    #[test]
    fn parse_time_resolves_dst_gaps_forward_and_folds_to_the_earlier() {
        let tz = berlin();
        let utc = TimeZone::UTC;
        // 2025-03-30 02:30 does not exist in Berlin: it becomes 03:30 CEST (01:30 UTC).
        assert_eq!(
            parse_time("2025-03-30 02:30", &tz),
            Ok(at(&utc, 2025, 3, 30, 1, 30))
        );
        // 2025-10-26 02:30 exists twice: the first, CEST (00:30 UTC).
        assert_eq!(
            parse_time("2025-10-26 02:30", &tz),
            Ok(at(&utc, 2025, 10, 26, 0, 30))
        );
    }

    #[test]
    fn parse_time_rejects_with_a_reason() {
        let utc = TimeZone::UTC;
        for s in [
            "",
            "yesterday",
            "2025-13-01",
            "2025-02-30",
            "2025-01-31 25:00",
            "2025-01-31 03:00:00 extra",
            "31.01.2025",
        ] {
            let err = parse_time(s, &utc).expect_err(s);
            assert!(err.contains("cannot read time"), "{s:?}: {err}");
        }
        let err = parse_time("2300-01-01", &utc).unwrap_err();
        assert!(err.contains("outside the years"), "{err}");
        let err = parse_time("1600-01-01T00:00:00Z", &utc).unwrap_err();
        assert!(err.contains("outside the years"), "{err}");
    }

    #[test]
    fn format_time_is_wall_time() {
        let t = at(&TimeZone::UTC, 2025, 1, 31, 3, 0);
        assert_eq!(format_time(t, &TimeZone::UTC), "2025-01-31 03:00:00");
        assert_eq!(format_time(t, &berlin()), "2025-01-31 04:00:00");
        assert_eq!(format_time(0, &TimeZone::UTC), "1970-01-01 00:00:00");
        assert_eq!(format_time(-1, &TimeZone::UTC), "1969-12-31 23:59:59");
        let s = format_time(t, &berlin());
        assert_eq!(parse_time(&s, &berlin()), Ok(t));
    }

    #[test]
    fn group_by_parses_subsets() {
        let all_off = GroupBy {
            host: false,
            paths: false,
            project: false,
            tags: false,
        };
        assert_eq!(GroupBy::parse("host,paths,project"), Ok(GroupBy::default()));
        assert_eq!(GroupBy::parse(""), Ok(all_off));
        assert_eq!(
            GroupBy::parse("tags"),
            Ok(GroupBy {
                tags: true,
                ..all_off
            })
        );
        assert_eq!(
            GroupBy::parse(" paths , host "),
            Ok(GroupBy {
                host: true,
                paths: true,
                ..all_off
            })
        );
        assert_eq!(
            GroupBy::parse("host,host"),
            Ok(GroupBy {
                host: true,
                ..all_off
            })
        );
        let err = GroupBy::parse("host,hostname").unwrap_err();
        assert!(err.contains("`hostname`"), "{err}");
        for s in [
            "",
            "host",
            "paths,tags",
            "host,paths,project",
            "host,paths,project,tags",
        ] {
            assert_eq!(GroupBy::parse(s).unwrap().to_string(), s);
        }
    }

    fn snapshot(host: &str, paths: &[&str], tags: &[&str], project: Option<&str>) -> SnapshotFile {
        SnapshotFile {
            time_ns: 0,
            hostname: host.to_string(),
            username: "u".to_string(),
            uid: 0,
            gid: 0,
            paths: paths.iter().map(|s| s.to_string()).collect(),
            tags: tags.iter().map(|s| s.to_string()).collect(),
            project: project.map(str::to_string),
            excludes: Vec::new(),
            source: strata_format::snapshot::SourceKind::Files,
            source_meta: Vec::new(),
            tree: Default::default(),
            parent: None,
            program_version: String::new(),
            summary: Default::default(),
            keep_until_ns: None,
            original: None,
            rewrites: Vec::new(),
        }
    }

    #[test]
    fn group_key_sorts_sets_and_displays() {
        let s = snapshot("a", &["/y", "/x", "/y"], &["t2", "t1"], Some("p"));
        let all = GroupBy {
            tags: true,
            ..GroupBy::default()
        };
        let key = group_key(&s, all);
        assert_eq!(
            key.to_string(),
            "host=a paths=[/x,/y] project=p tags=[t1,t2]"
        );
        let other = snapshot("a", &["/x", "/y"], &["t1", "t2"], Some("p"));
        assert_eq!(group_key(&other, all), key);
        let none = snapshot("a", &["/x"], &[], None);
        assert_eq!(
            group_key(&none, GroupBy::default()).to_string(),
            "host=a paths=[/x] project=(none)"
        );
        let one = GroupBy::parse("").unwrap();
        assert_eq!(group_key(&s, one).to_string(), "(all snapshots)");
        assert_eq!(group_key(&s, one), group_key(&none, one));
        assert_eq!(
            serde_json::to_string(&group_key(&none, GroupBy::default())).unwrap(),
            r#"{"hostname":"a","paths":["/x"],"project":null}"#
        );
    }

    #[test]
    fn reasons_read_as_phrases() {
        let held = Reason::Held {
            until_ns: at(&TimeZone::UTC, 2032, 1, 1, 0, 0),
        };
        let cases = [
            (Reason::Last(2), "last snapshot #2"),
            (Reason::Hourly, "hourly snapshot"),
            (Reason::Daily, "daily snapshot"),
            (Reason::Weekly, "weekly snapshot"),
            (Reason::Monthly, "monthly snapshot"),
            (Reason::Yearly, "yearly snapshot"),
            (
                Reason::Within(span(0, 0, 30, 0)),
                "within 30d of the latest",
            ),
            (Reason::Tag("x".into()), "tagged `x`"),
            (held.clone(), "held until 2032-01-01 00:00:00 UTC"),
            (
                Reason::LastOfGroup,
                "the group's last snapshot (keep it or pass --allow-empty)",
            ),
        ];
        for (reason, text) in cases {
            assert_eq!(reason.to_string(), text);
        }
        assert_eq!(
            held.describe(&berlin()),
            "held until 2032-01-01 01:00:00 Europe/Berlin"
        );
        assert_eq!(Reason::Daily.describe(&berlin()), "daily snapshot");
    }

    #[test]
    fn policy_emptiness() {
        assert!(KeepPolicy::default().is_empty());
        assert!(!KeepPolicy {
            yearly: 1,
            ..Default::default()
        }
        .is_empty());
        assert!(!KeepPolicy {
            within: Some(span(0, 0, 1, 0)),
            ..Default::default()
        }
        .is_empty());
        assert!(!KeepPolicy {
            tags: vec!["x".into()],
            ..Default::default()
        }
        .is_empty());
    }

    #[test]
    fn apply_policy_on_nothing_is_nothing() {
        let policy = KeepPolicy {
            last: 3,
            daily: 2,
            within: Some(span(0, 0, 1, 0)),
            ..Default::default()
        };
        assert!(apply_policy(&[], &policy, &TimeZone::UTC).is_empty());
    }
}
