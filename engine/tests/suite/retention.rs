//! Retention rules checked three ways: hand-worked cases with known answers, a table of
//! policies over ~800 generated snapshot times compared with an independent model (in UTC
//! and in Europe/Berlin, whose DST changes and offset move day, week, month and year
//! boundaries), and `plan` (grouping, holds, the last-of-group guard).
//!
//! The model works differently from the module: it groups snapshots per bucket in a map,
//! takes the newest snapshot of each bucket, then the N newest buckets; ISO weeks and span
//! arithmetic are computed by hand from day numbers. jiff is used only to convert between
//! instants and wall time in a zone.

use std::collections::{BTreeMap, BTreeSet};

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::Timestamp;
use strata_engine::retention::{
    apply_policy, plan, CalendarSpan, ForgetPlan, GroupBy, KeepPolicy, PlanOptions, Reason,
};
use strata_format::id::{Digest, SnapshotId};
use strata_format::snapshot::{SnapshotFile, SourceKind};

const HOUR: i64 = 3_600_000_000_000;
const DAY: i64 = 24 * HOUR;

fn berlin() -> TimeZone {
    TimeZone::get("Europe/Berlin").expect("the system tzdb has Europe/Berlin")
}

fn zones() -> [(&'static str, TimeZone); 2] {
    [("UTC", TimeZone::UTC), ("Europe/Berlin", berlin())]
}

/// Wall time in `tz` as Unix ns (the time must exist and be unambiguous).
fn wall(tz: &TimeZone, y: i16, mo: i8, d: i8, h: i8, mi: i8) -> i64 {
    let dt = jiff::civil::date(y, mo, d).at(h, mi, 0, 0);
    let ts = tz.to_ambiguous_timestamp(dt).unambiguous().unwrap();
    i64::try_from(ts.as_nanosecond()).unwrap()
}

fn utc(y: i16, mo: i8, d: i8, h: i8, mi: i8) -> i64 {
    wall(&TimeZone::UTC, y, mo, d, h, mi)
}

fn civil(t_ns: i64, tz: &TimeZone) -> DateTime {
    tz.to_datetime(Timestamp::from_nanosecond(i128::from(t_ns)).unwrap())
}

fn span(years: u32, months: u32, days: u32, hours: u32) -> CalendarSpan {
    CalendarSpan {
        years,
        months,
        days,
        hours,
    }
}

// ---------------------------------------------------------------------------------------
// Hand-written calendar arithmetic (proleptic Gregorian, days since 1970-01-01).

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// ISO 8601 (week-year, week): the week's Thursday decides the year.
fn iso_week(y: i64, m: i64, d: i64) -> (i64, i64) {
    let days = days_from_civil(y, m, d);
    let weekday = (days + 3).rem_euclid(7) + 1; // 1970-01-01 was a Thursday; Monday is 1
    let thursday = days + 4 - weekday;
    let (year, _, _) = civil_from_days(thursday);
    (year, (thursday - days_from_civil(year, 1, 1)) / 7 + 1)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    days_from_civil(y + i64::from(m == 12), m % 12 + 1, 1) - days_from_civil(y, m, 1)
}

#[test]
fn hand_written_calendar_helpers_are_right() {
    assert_eq!(iso_week(2023, 1, 1), (2022, 52));
    assert_eq!(iso_week(2023, 1, 2), (2023, 1));
    assert_eq!(iso_week(2024, 12, 29), (2024, 52));
    assert_eq!(iso_week(2024, 12, 30), (2025, 1));
    assert_eq!(iso_week(2020, 12, 31), (2020, 53));
    assert_eq!(iso_week(2021, 1, 3), (2020, 53));
    assert_eq!(iso_week(2026, 1, 1), (2026, 1));
    assert_eq!(days_in_month(2024, 2), 29);
    assert_eq!(days_in_month(2023, 2), 28);
    assert_eq!(days_in_month(1900, 2), 28);
    assert_eq!(days_in_month(2000, 2), 29);
    assert_eq!(days_in_month(2024, 12), 31);
    for z in [-800_000, -1, 0, 19_000, 20_000, 2_000_000] {
        let (y, m, d) = civil_from_days(z);
        assert_eq!(days_from_civil(y, m, d), z);
    }
}

// ---------------------------------------------------------------------------------------
// The independent model.

/// `latest` minus `span`: months counted on a month number and clamped by hand, days on a
/// day number, the wall time put back into `tz` by jiff, then hours subtracted.
fn model_cutoff(latest: i64, s: CalendarSpan, tz: &TimeZone) -> i64 {
    let dt = civil(latest, tz);
    let months = i64::from(dt.year()) * 12 + i64::from(dt.month())
        - 1
        - 12 * i64::from(s.years)
        - i64::from(s.months);
    let (y, m) = (months.div_euclid(12), months.rem_euclid(12) + 1);
    let d = i64::from(dt.day()).min(days_in_month(y, m));
    let (y, m, d) = civil_from_days(days_from_civil(y, m, d) - i64::from(s.days));
    let wall = jiff::civil::date(y as i16, m as i8, d as i8).to_datetime(dt.time());
    let ts = tz.to_ambiguous_timestamp(wall).compatible().unwrap();
    i64::try_from(ts.as_nanosecond()).unwrap() - i64::from(s.hours) * HOUR
}

/// The newest snapshot (largest time; on a tie the earlier in the list) of each of the `n`
/// latest buckets.
fn model_buckets<K: Ord>(times: &[i64], n: u32, key: impl Fn(usize) -> K) -> BTreeSet<usize> {
    let mut newest: BTreeMap<K, usize> = BTreeMap::new();
    for (i, &t) in times.iter().enumerate() {
        let slot = newest.entry(key(i)).or_insert(i);
        if t > times[*slot] {
            *slot = i;
        }
    }
    newest.values().rev().take(n as usize).copied().collect()
}

/// Every reason the policy keeps each snapshot, in the module's documented order.
fn model(times: &[i64], tags: &[Vec<String>], p: &KeepPolicy, tz: &TimeZone) -> Vec<Vec<Reason>> {
    let ymdh: Vec<(i64, i64, i64, i64)> = times
        .iter()
        .map(|&t| {
            let dt = civil(t, tz);
            (
                dt.year().into(),
                dt.month().into(),
                dt.day().into(),
                dt.hour().into(),
            )
        })
        .collect();
    let rules: [(Reason, BTreeSet<usize>); 5] = [
        (Reason::Hourly, model_buckets(times, p.hourly, |i| ymdh[i])),
        (
            Reason::Daily,
            model_buckets(times, p.daily, |i| (ymdh[i].0, ymdh[i].1, ymdh[i].2)),
        ),
        (
            Reason::Weekly,
            model_buckets(times, p.weekly, |i| {
                iso_week(ymdh[i].0, ymdh[i].1, ymdh[i].2)
            }),
        ),
        (
            Reason::Monthly,
            model_buckets(times, p.monthly, |i| (ymdh[i].0, ymdh[i].1)),
        ),
        (
            Reason::Yearly,
            model_buckets(times, p.yearly, |i| ymdh[i].0),
        ),
    ];
    let cutoff = p
        .within
        .zip(times.iter().max())
        .map(|(s, &latest)| model_cutoff(latest, s, tz));
    let wanted: BTreeSet<&String> = p.tags.iter().collect();
    (0..times.len())
        .map(|i| {
            let mut r = Vec::new();
            if i < p.last as usize {
                r.push(Reason::Last(i as u32 + 1));
            }
            for (reason, kept) in &rules {
                if kept.contains(&i) {
                    r.push(reason.clone());
                }
            }
            if let Some(c) = cutoff {
                if times[i] > c {
                    r.push(Reason::Within(p.within.unwrap()));
                }
            }
            for tag in &wanted {
                if tags[i].contains(tag) {
                    r.push(Reason::Tag((*tag).clone()));
                }
            }
            r
        })
        .collect()
}

fn run(times: &[i64], tags: &[Vec<String>], p: &KeepPolicy, tz: &TimeZone) -> Vec<Vec<Reason>> {
    let input: Vec<(i64, &[String])> = times
        .iter()
        .zip(tags)
        .map(|(&t, g)| (t, g.as_slice()))
        .collect();
    apply_policy(&input, p, tz)
}

fn survivors(reasons: &[Vec<Reason>]) -> Vec<usize> {
    (0..reasons.len())
        .filter(|&i| !reasons[i].is_empty())
        .collect()
}

/// Fails with the first snapshot whose reasons differ, shown as wall time.
fn assert_same(
    label: &str,
    times: &[i64],
    got: &[Vec<Reason>],
    want: &[Vec<Reason>],
    tz: &TimeZone,
) {
    assert_eq!(got.len(), want.len(), "{label}: length");
    assert_eq!(survivors(got), survivors(want), "{label}: survivors differ");
    for i in 0..got.len() {
        assert_eq!(
            got[i],
            want[i],
            "{label}: snapshot #{i} at {} ({})",
            civil(times[i], tz),
            times[i]
        );
    }
}

// ---------------------------------------------------------------------------------------
// Hand-worked cases: known answers, so a mistake shared by module and model still shows.

/// Labels a..k, newest first (UTC): a Tue 2024-03-05 10:00, b Tue 08:00, c Mon 03-04
/// 23:00, d Sun 03-03 12:00, e Fri 03-01 09:00, f Thu 02-29 18:00, g Sat 02-10 12:00,
/// h Mon 2024-01-01 00:30, i Sun 2023-12-31 23:30, j 2023-06-15 12:00, k Sun 2022-01-02
/// 12:00 (ISO week 2021-W52).
fn hand_times() -> Vec<i64> {
    vec![
        utc(2024, 3, 5, 10, 0),
        utc(2024, 3, 5, 8, 0),
        utc(2024, 3, 4, 23, 0),
        utc(2024, 3, 3, 12, 0),
        utc(2024, 3, 1, 9, 0),
        utc(2024, 2, 29, 18, 0),
        utc(2024, 2, 10, 12, 0),
        utc(2024, 1, 1, 0, 30),
        utc(2023, 12, 31, 23, 30),
        utc(2023, 6, 15, 12, 0),
        utc(2022, 1, 2, 12, 0),
    ]
}

fn kept_labels(reasons: &[Vec<Reason>]) -> String {
    survivors(reasons)
        .into_iter()
        .map(|i| (b'a' + i as u8) as char)
        .collect()
}

#[test]
fn hand_worked_answers() {
    let times = hand_times();
    let tags: Vec<Vec<String>> = (0..times.len())
        .map(|i| {
            if i == 9 {
                vec!["release".to_string()]
            } else {
                Vec::new()
            }
        })
        .collect();
    let berlin = berlin();
    let p = |f: fn(&mut KeepPolicy)| {
        let mut p = KeepPolicy::default();
        f(&mut p);
        p
    };
    let cases: Vec<(KeepPolicy, &str, &str)> = vec![
        // (policy, kept in UTC, kept in Europe/Berlin)
        (p(|p| p.last = 2), "ab", "ab"),
        (p(|p| p.hourly = 3), "abc", "abc"),
        // Berlin: c is 00:00 on 03-05, the same day as a and b.
        (p(|p| p.daily = 3), "acd", "ade"),
        (p(|p| p.weekly = 3), "adg", "adg"),
        (p(|p| p.weekly = 5), "adghi", "adghj"),
        (p(|p| p.monthly = 3), "afh", "afh"),
        // Berlin: i is 00:30 on 2024-01-01, so 2023's newest is j.
        (p(|p| p.yearly = 10), "aik", "ajk"),
        (p(|p| p.within = Some(span(0, 0, 2, 0))), "abcd", "abcd"),
        (
            p(|p| p.within = Some(span(0, 1, 0, 0))),
            "abcdefg",
            "abcdefg",
        ),
        // Cutoffs 2024-01-01 00:00 and 2023-12-31 23:00 UTC (Berlin is CET throughout).
        (
            p(|p| p.within = Some(span(0, 2, 4, 10))),
            "abcdefgh",
            "abcdefgh",
        ),
        (
            p(|p| p.within = Some(span(0, 2, 4, 11))),
            "abcdefghi",
            "abcdefghi",
        ),
        (
            p(|p| p.tags = vec!["release".into(), "absent".into()]),
            "j",
            "j",
        ),
        (
            p(|p| {
                p.last = 1;
                p.daily = 2;
                p.weekly = 2;
                p.monthly = 2;
                p.yearly = 2;
            }),
            "acdfi",
            "adfj",
        ),
        (KeepPolicy::default(), "", ""),
    ];
    for (policy, want_utc, want_berlin) in &cases {
        let got = run(&times, &tags, policy, &TimeZone::UTC);
        assert_eq!(kept_labels(&got), *want_utc, "UTC {policy:?}");
        let got = run(&times, &tags, policy, &berlin);
        assert_eq!(kept_labels(&got), *want_berlin, "Berlin {policy:?}");
    }

    let combined = &cases[12].0;
    let got = run(&times, &tags, combined, &TimeZone::UTC);
    use Reason::*;
    assert_eq!(got[0], vec![Last(1), Daily, Weekly, Monthly, Yearly]);
    assert_eq!(got[2], vec![Daily]);
    assert_eq!(got[3], vec![Weekly]);
    assert_eq!(got[5], vec![Monthly]);
    assert_eq!(got[8], vec![Yearly]);
    let got = run(
        &times,
        &tags,
        &p(|p| p.tags = vec!["release".into()]),
        &TimeZone::UTC,
    );
    assert_eq!(got[9], vec![Tag("release".into())]);
}

#[test]
fn within_clamps_at_month_end_unlike_go() {
    // Go's AddDate would put "2024-03-31 minus 1 month" on 2024-03-02; we clamp to 02-29.
    let times = vec![
        utc(2024, 3, 31, 12, 0),
        utc(2024, 3, 1, 13, 0),
        utc(2024, 2, 29, 13, 0),
        utc(2024, 2, 29, 11, 0),
    ];
    let tags = vec![Vec::new(); times.len()];
    let policy = KeepPolicy {
        within: Some(span(0, 1, 0, 0)),
        ..Default::default()
    };
    assert_eq!(
        survivors(&run(&times, &tags, &policy, &TimeZone::UTC)),
        vec![0, 1, 2]
    );
}

#[test]
fn within_is_strictly_after_the_cutoff() {
    let times = vec![
        utc(2024, 5, 2, 0, 0),
        utc(2024, 5, 1, 0, 0),
        utc(2024, 4, 30, 23, 59),
    ];
    let tags = vec![Vec::new(); times.len()];
    let policy = KeepPolicy {
        within: Some(span(0, 0, 1, 0)),
        ..Default::default()
    };
    assert_eq!(
        survivors(&run(&times, &tags, &policy, &TimeZone::UTC)),
        vec![0]
    );
}

#[test]
fn counts_skip_empty_buckets_and_ties_keep_the_first() {
    // Two snapshots in the same second: the first listed (plan lists ties by id) wins.
    let times = vec![
        utc(2024, 5, 10, 3, 0),
        utc(2024, 5, 10, 3, 0),
        utc(2024, 1, 10, 3, 0),
    ];
    let tags = vec![Vec::new(); times.len()];
    let policy = KeepPolicy {
        monthly: 2,
        ..Default::default()
    };
    // February to April have no snapshot and cost nothing.
    assert_eq!(
        survivors(&run(&times, &tags, &policy, &TimeZone::UTC)),
        vec![0, 2]
    );
}

// ---------------------------------------------------------------------------------------
// Generated data: daily at 03:00 UTC over 2023–2024 with gaps, plus irregular extras.

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Days without a backup: ISO week 2023-W32, all of February 2024, and a few random ones.
fn skipped(day: i64, rng: &mut Rng) -> bool {
    let (y, m, d) = civil_from_days(day);
    iso_week(y, m, d) == (2023, 32) || (y, m) == (2024, 2) || rng.below(40) == 0
}

struct Dataset {
    times: Vec<i64>,
    tags: Vec<Vec<String>>,
}

/// Newest first; ties keep generation order.
fn dataset() -> Dataset {
    let mut rng = Rng(0x5eed_5747);
    let mut items: Vec<(i64, Vec<String>)> = Vec::new();
    let first = days_from_civil(2023, 1, 1);
    let last = days_from_civil(2024, 12, 31);
    let mut present = Vec::new();
    for day in first..=last {
        if skipped(day, &mut rng) {
            continue;
        }
        present.push(day);
        let (_, _, d) = civil_from_days(day);
        let tags = if d == 1 {
            vec!["audit".to_string()]
        } else {
            Vec::new()
        };
        items.push((day * DAY + 3 * HOUR, tags));
    }
    // Irregular extras on days that have a backup, between 06:00 and 20:59 UTC so that they
    // stay on the same day in Berlin; a few days get several.
    for n in 0..60 {
        let day = present[rng.below(present.len() as u64) as usize];
        let count = if n % 10 == 0 { 4 } else { 1 };
        for _ in 0..count {
            let t = day * DAY
                + (6 + rng.below(15) as i64) * HOUR
                + rng.below(60) as i64 * 60_000_000_000;
            let tags = match rng.below(6) {
                0 => vec!["manual".to_string()],
                1 => vec!["manual".to_string(), "pre-upgrade".to_string()],
                _ => Vec::new(),
            };
            items.push((t, tags));
        }
    }
    // Deliberate boundary cases (UTC); the Berlin wall time is in the comment.
    let deliberate = [
        utc(2023, 12, 31, 23, 30), // 2024-01-01 00:30: next day, week, month and year
        utc(2024, 12, 31, 23, 10), // 2025-01-01 00:10: the newest snapshot, a year of its own
        utc(2024, 3, 3, 23, 15),   // Monday 03-04 00:15: next ISO week
        utc(2024, 6, 30, 22, 30),  // 07-01 00:30 CEST: next month
        utc(2023, 10, 29, 0, 30),  // 02:30 CEST, first pass through the fold
        utc(2023, 10, 29, 1, 10),  // 02:10 CET, second pass
        utc(2023, 10, 29, 1, 40),  // 02:40 CET
        utc(2024, 3, 31, 0, 59),   // 01:59 CET, just before the gap
        utc(2024, 3, 31, 1, 1),    // 03:01 CEST, just after
        utc(2024, 12, 30, 21, 0),  // 22:00; with the next three, several per day near the end
        utc(2024, 12, 30, 22, 0),
        utc(2024, 12, 30, 22, 30),
        utc(2024, 12, 31, 22, 59), // 23:59
        utc(2024, 6, 15, 3, 0),    // the same instant as that day's daily backup
    ];
    for t in deliberate {
        items.push((t, vec!["pre-upgrade".to_string()]));
    }
    items.sort_by_key(|item| std::cmp::Reverse(item.0)); // stable: ties keep generation order
    let (times, tags) = items.into_iter().unzip();
    Dataset { times, tags }
}

fn policy_table() -> Vec<(&'static str, KeepPolicy)> {
    let k = KeepPolicy::default;
    let mut rows: Vec<(&'static str, KeepPolicy)> = Vec::new();
    for n in [1, 5, 10_000] {
        rows.push(("last", KeepPolicy { last: n, ..k() }));
    }
    for n in [1, 3, 24, 100, 10_000] {
        rows.push(("hourly", KeepPolicy { hourly: n, ..k() }));
    }
    for n in [1, 7, 30, 365, 10_000] {
        rows.push(("daily", KeepPolicy { daily: n, ..k() }));
    }
    for n in [1, 4, 52, 10_000] {
        rows.push(("weekly", KeepPolicy { weekly: n, ..k() }));
    }
    for n in [1, 12, 18, 10_000] {
        rows.push(("monthly", KeepPolicy { monthly: n, ..k() }));
    }
    for n in [1, 2, 3, 10_000] {
        rows.push(("yearly", KeepPolicy { yearly: n, ..k() }));
    }
    for s in [
        span(0, 0, 0, 12),
        span(0, 0, 1, 0),
        span(0, 0, 30, 0),
        span(0, 1, 0, 0),
    ] {
        rows.push((
            "within",
            KeepPolicy {
                within: Some(s),
                ..k()
            },
        ));
    }
    for s in [span(1, 2, 0, 0), span(1, 2, 3, 4), span(10, 0, 0, 0)] {
        rows.push((
            "within",
            KeepPolicy {
                within: Some(s),
                ..k()
            },
        ));
    }
    rows.push((
        "tags",
        KeepPolicy {
            tags: vec!["pre-upgrade".into()],
            ..k()
        },
    ));
    rows.push((
        "tags",
        KeepPolicy {
            tags: vec!["manual".into(), "audit".into()],
            ..k()
        },
    ));
    rows.push((
        "tags",
        KeepPolicy {
            tags: vec!["absent".into()],
            ..k()
        },
    ));
    rows.push((
        "gfs",
        KeepPolicy {
            last: 3,
            daily: 7,
            weekly: 4,
            monthly: 12,
            yearly: 3,
            ..k()
        },
    ));
    rows.push((
        "gfs+within+tags",
        KeepPolicy {
            hourly: 24,
            daily: 30,
            within: Some(span(0, 0, 7, 0)),
            tags: vec!["pre-upgrade".into()],
            ..k()
        },
    ));
    rows.push((
        "everything",
        KeepPolicy {
            last: 2,
            hourly: 48,
            daily: 60,
            weekly: 20,
            monthly: 24,
            yearly: 5,
            within: Some(span(0, 3, 0, 0)),
            tags: vec!["audit".into(), "pre-upgrade".into()],
        },
    ));
    rows.push(("nothing", k()));
    rows
}

#[test]
fn table_of_policies_matches_the_model() {
    let data = dataset();
    assert!(
        (750..=850).contains(&data.times.len()),
        "{} snapshots",
        data.times.len()
    );
    for (tz_name, tz) in zones() {
        for (name, policy) in policy_table() {
            let label = format!("{tz_name} {name} {policy:?}");
            let got = run(&data.times, &data.tags, &policy, &tz);
            let want = model(&data.times, &data.tags, &policy, &tz);
            assert_same(&label, &data.times, &got, &want, &tz);
        }
    }
}

/// Bucket counts worked out from how the data was built, not by either computation.
#[test]
fn generated_data_has_the_expected_buckets() {
    let data = dataset();
    let all = |p: KeepPolicy, tz: &TimeZone| survivors(&run(&data.times, &data.tags, &p, tz)).len();
    let k = KeepPolicy::default;
    let berlin = berlin();
    // 2023 and 2024; in Berlin also 2025 (the newest, 2024-12-31 23:10 UTC).
    assert_eq!(all(KeepPolicy { yearly: 100, ..k() }, &TimeZone::UTC), 2);
    assert_eq!(all(KeepPolicy { yearly: 100, ..k() }, &berlin), 3);
    // 24 months less February 2024; Berlin adds January 2025.
    assert_eq!(
        all(
            KeepPolicy {
                monthly: 100,
                ..k()
            },
            &TimeZone::UTC
        ),
        23
    );
    assert_eq!(
        all(
            KeepPolicy {
                monthly: 100,
                ..k()
            },
            &berlin
        ),
        24
    );
    // ISO weeks 2022-W52 … 2025-W01 are 106; less 2023-W32 and 2024-W06..W08.
    assert_eq!(
        all(
            KeepPolicy {
                weekly: 1000,
                ..k()
            },
            &TimeZone::UTC
        ),
        102
    );
    assert_eq!(
        all(
            KeepPolicy {
                weekly: 1000,
                ..k()
            },
            &berlin
        ),
        102
    );
    // Everything, and every count larger than the buckets, keeps each bucket once.
    assert_eq!(
        all(
            KeepPolicy {
                last: 10_000,
                ..k()
            },
            &TimeZone::UTC
        ),
        data.times.len()
    );
    assert_eq!(
        all(
            KeepPolicy {
                within: Some(span(10, 0, 0, 0)),
                ..k()
            },
            &berlin
        ),
        data.times.len()
    );
}

#[test]
fn hourly_buckets_follow_wall_time_through_the_fold() {
    // Berlin 2023-10-29: 02:30 CEST, then 02:10 and 02:40 CET are all wall hour 02.
    let data = dataset();
    let berlin = berlin();
    let policy = KeepPolicy {
        hourly: 10_000,
        ..KeepPolicy::default()
    };
    let fold: Vec<usize> = (0..data.times.len())
        .filter(|&i| (utc(2023, 10, 29, 0, 0)..utc(2023, 10, 29, 2, 0)).contains(&data.times[i]))
        .collect();
    assert_eq!(fold.len(), 3);
    let kept = |tz: &TimeZone| -> Vec<usize> {
        let r = run(&data.times, &data.tags, &policy, tz);
        fold.iter().copied().filter(|&i| !r[i].is_empty()).collect()
    };
    // UTC hours 00 and 01: the 00:30 and the newer of 01:10/01:40.
    assert_eq!(kept(&TimeZone::UTC), vec![fold[0], fold[2]]);
    // One wall hour in Berlin: only the newest (02:40 CET).
    assert_eq!(kept(&berlin), vec![fold[0]]);
}

#[test]
fn random_small_groups_match_the_model() {
    let mut rng = Rng(0xdead_beef_cafe);
    let bases = [
        utc(2024, 10, 27, 0, 0),
        utc(2024, 3, 31, 0, 0),
        utc(2023, 12, 31, 12, 0),
    ];
    let tag_names = ["a", "b", "c"];
    for round in 0..300 {
        let base = bases[round % bases.len()];
        let n = rng.below(40) as usize;
        let mut items: Vec<(i64, Vec<String>)> = (0..n)
            .map(|_| {
                // Ten-minute steps over ±4 days (duplicates happen), or ±60 days.
                let spread = if rng.below(2) == 0 {
                    4 * 24 * 6
                } else {
                    60 * 24 * 6
                };
                let t = base + (rng.below(2 * spread) as i64 - spread as i64) * 600_000_000_000;
                let tags = tag_names
                    .iter()
                    .filter(|_| rng.below(4) == 0)
                    .map(|s| s.to_string())
                    .collect();
                (t, tags)
            })
            .collect();
        items.sort_by_key(|item| std::cmp::Reverse(item.0));
        let (times, tags): (Vec<i64>, Vec<Vec<String>>) = items.into_iter().unzip();
        let mut count = || {
            if rng.below(3) == 0 {
                0
            } else {
                rng.below(6) as u32
            }
        };
        let policy = KeepPolicy {
            last: count(),
            hourly: count(),
            daily: count(),
            weekly: count(),
            monthly: count(),
            yearly: count(),
            within: match rng.below(4) {
                0 => Some(span(0, 0, rng.below(3) as u32, 1 + rng.below(30) as u32)),
                1 => Some(span(0, rng.below(2) as u32, 1 + rng.below(20) as u32, 0)),
                _ => None,
            },
            tags: tag_names
                .iter()
                .filter(|_| rng.below(3) == 0)
                .map(|s| s.to_string())
                .collect(),
        };
        for (tz_name, tz) in zones() {
            let label = format!("round {round} {tz_name} {policy:?}");
            let got = run(&times, &tags, &policy, &tz);
            let want = model(&times, &tags, &policy, &tz);
            assert_same(&label, &times, &got, &want, &tz);
        }
    }
}

// ---------------------------------------------------------------------------------------
// plan: grouping, holds, the last-of-group guard.

fn id(n: u8) -> SnapshotId {
    SnapshotId(Digest([n; 32]))
}

fn snap(time_ns: i64, host: &str, paths: &[&str], project: Option<&str>) -> SnapshotFile {
    SnapshotFile {
        time_ns,
        hostname: host.to_string(),
        username: "root".to_string(),
        uid: 0,
        gid: 0,
        paths: paths.iter().map(|p| p.to_string()).collect(),
        tags: Vec::new(),
        project: project.map(str::to_string),
        excludes: Vec::new(),
        source: SourceKind::Files,
        source_meta: Vec::new(),
        tree: Default::default(),
        parent: None,
        program_version: "test".to_string(),
        summary: Default::default(),
        keep_until_ns: None,
        original: None,
        rewrites: Vec::new(),
    }
}

fn opts<'a>(policy: &'a KeepPolicy, tz: &'a TimeZone) -> PlanOptions<'a> {
    PlanOptions {
        policy,
        group_by: GroupBy::default(),
        now_ns: utc(2025, 1, 1, 0, 0),
        tz,
        allow_empty: false,
    }
}

fn ids(it: impl Iterator<Item = SnapshotId>) -> BTreeSet<SnapshotId> {
    it.collect()
}

fn check_partition(p: &ForgetPlan, all: &[(SnapshotId, SnapshotFile)]) {
    let keep = ids(p.keep());
    let remove = ids(p.remove());
    assert!(keep.is_disjoint(&remove));
    assert_eq!(keep.len() + remove.len(), all.len());
    for d in p.groups.iter().flat_map(|g| &g.decisions) {
        assert_eq!(d.keep, !d.reasons.is_empty());
    }
}

fn grouping_fixture() -> Vec<(SnapshotId, SnapshotFile)> {
    let t = |d| utc(2024, 6, d, 3, 0);
    let mut tagged = snap(t(6), "b", &["/x"], Some("p"));
    tagged.tags = vec!["t".into()];
    vec![
        (id(1), snap(t(1), "a", &["/x", "/y"], Some("p"))),
        (id(2), snap(t(2), "a", &["/y", "/x"], Some("p"))), // same paths, other order
        (id(3), snap(t(3), "a", &["/x"], Some("p"))),
        (id(4), snap(t(4), "a", &["/x"], None)),
        (id(5), snap(t(5), "b", &["/x"], Some("p"))),
        (id(6), tagged),
    ]
}

#[test]
fn plan_groups_by_host_paths_and_project() {
    let all = grouping_fixture();
    let policy = KeepPolicy {
        last: 1,
        ..KeepPolicy::default()
    };
    let utc_tz = TimeZone::UTC;
    let p = plan(&all, &opts(&policy, &utc_tz));
    let keys: Vec<String> = p.groups.iter().map(|g| g.key.to_string()).collect();
    assert_eq!(
        keys,
        [
            "host=a paths=[/x] project=(none)",
            "host=a paths=[/x] project=p",
            "host=a paths=[/x,/y] project=p",
            "host=b paths=[/x] project=p",
        ]
    );
    let members: Vec<Vec<SnapshotId>> = p
        .groups
        .iter()
        .map(|g| g.decisions.iter().map(|d| d.id).collect())
        .collect();
    assert_eq!(
        members,
        vec![
            vec![id(4)],
            vec![id(3)],
            vec![id(2), id(1)],
            vec![id(6), id(5)]
        ]
    );
    assert_eq!(ids(p.keep()), BTreeSet::from([id(2), id(3), id(4), id(6)]));
    check_partition(&p, &all);

    let with = |group_by: &str| {
        let o = PlanOptions {
            group_by: GroupBy::parse(group_by).unwrap(),
            ..opts(&policy, &utc_tz)
        };
        let p = plan(&all, &o);
        check_partition(&p, &all);
        (
            p.groups
                .iter()
                .map(|g| g.key.to_string())
                .collect::<Vec<_>>(),
            ids(p.keep()),
        )
    };
    assert_eq!(
        with(""),
        (vec!["(all snapshots)".to_string()], BTreeSet::from([id(6)]))
    );
    assert_eq!(
        with("host"),
        (
            vec!["host=a".to_string(), "host=b".to_string()],
            BTreeSet::from([id(4), id(6)])
        )
    );
    assert_eq!(with("project").1, BTreeSet::from([id(4), id(6)]));
    assert_eq!(
        with("tags"),
        (
            vec!["tags=[]".to_string(), "tags=[t]".to_string()],
            BTreeSet::from([id(5), id(6)])
        )
    );
}

#[test]
fn plan_orders_ties_by_id() {
    let t = utc(2024, 6, 1, 3, 0);
    let all = vec![
        (id(9), snap(t, "a", &["/x"], None)),
        (id(3), snap(t, "a", &["/x"], None)),
        (id(5), snap(t - HOUR, "a", &["/x"], None)),
    ];
    let policy = KeepPolicy {
        daily: 1,
        ..KeepPolicy::default()
    };
    let p = plan(&all, &opts(&policy, &TimeZone::UTC));
    let order: Vec<SnapshotId> = p.groups[0].decisions.iter().map(|d| d.id).collect();
    assert_eq!(order, vec![id(3), id(9), id(5)]);
    assert_eq!(ids(p.keep()), BTreeSet::from([id(3)]));
}

#[test]
fn holds_keep_snapshots_without_using_up_counts() {
    let now = utc(2025, 1, 1, 0, 0);
    let later = utc(2032, 1, 1, 0, 0);
    let mut all: Vec<(SnapshotId, SnapshotFile)> = (1..=4)
        .map(|n| (id(n), snap(utc(2024, 6, n as i8, 3, 0), "a", &["/x"], None)))
        .collect();
    // Newest first: 4, 3, 2, 1. Hold the newest and the third; an expired hold on the oldest.
    all[3].1.keep_until_ns = Some(later);
    all[1].1.keep_until_ns = Some(later);
    all[0].1.keep_until_ns = Some(now); // ends now: no longer in force
    let policy = KeepPolicy {
        last: 2,
        ..KeepPolicy::default()
    };
    let p = plan(&all, &opts(&policy, &TimeZone::UTC));
    let reasons: Vec<(SnapshotId, Vec<Reason>)> = p.groups[0]
        .decisions
        .iter()
        .map(|d| (d.id, d.reasons.clone()))
        .collect();
    let held = Reason::Held { until_ns: later };
    assert_eq!(
        reasons,
        vec![
            (id(4), vec![Reason::Last(1), held.clone()]),
            (id(3), vec![Reason::Last(2)]),
            (id(2), vec![held.clone()]),
            (id(1), vec![]),
        ]
    );
    assert_eq!(held.to_string(), "held until 2032-01-01 00:00:00 UTC");
    check_partition(&p, &all);
}

#[test]
fn a_group_keeps_its_newest_unless_empty_groups_are_allowed() {
    let mut all: Vec<(SnapshotId, SnapshotFile)> = (1..=3)
        .map(|n| (id(n), snap(utc(2024, 6, n as i8, 3, 0), "a", &["/x"], None)))
        .collect();
    all.push((id(7), snap(utc(2024, 6, 1, 3, 0), "b", &["/x"], None)));
    all.push((id(8), snap(utc(2024, 6, 2, 3, 0), "b", &["/x"], None)));
    all[3].1.tags = vec!["keep".into()];
    let policy = KeepPolicy {
        tags: vec!["keep".into()],
        ..KeepPolicy::default()
    };
    let tz = TimeZone::UTC;

    let p = plan(&all, &opts(&policy, &tz));
    // Host a: nothing matches, so its newest stays. Host b: the tag keeps 7, so 8 may go.
    assert_eq!(ids(p.keep()), BTreeSet::from([id(3), id(7)]));
    assert_eq!(p.groups[0].decisions[0].reasons, vec![Reason::LastOfGroup]);
    assert_eq!(
        p.groups[1].decisions[1].reasons,
        vec![Reason::Tag("keep".into())]
    );
    check_partition(&p, &all);

    let p = plan(
        &all,
        &PlanOptions {
            allow_empty: true,
            ..opts(&policy, &tz)
        },
    );
    assert_eq!(ids(p.keep()), BTreeSet::from([id(7)]));
    check_partition(&p, &all);

    // A hold counts as keeping something: no guard needed.
    all[0].1.keep_until_ns = Some(utc(2030, 1, 1, 0, 0));
    let p = plan(&all, &opts(&policy, &tz));
    assert_eq!(ids(p.keep()), BTreeSet::from([id(1), id(7)]));

    // The empty policy (which callers refuse) would keep only each group's newest.
    let empty = KeepPolicy::default();
    all[0].1.keep_until_ns = None;
    let p = plan(&all, &opts(&empty, &tz));
    assert_eq!(ids(p.keep()), BTreeSet::from([id(3), id(8)]));
    assert!(plan(&[], &opts(&empty, &tz)).groups.is_empty());
}

#[test]
fn plan_decides_each_host_like_the_model() {
    let data = dataset();
    let mut rng = Rng(42);
    let all: Vec<(SnapshotId, SnapshotFile)> = data
        .times
        .iter()
        .zip(&data.tags)
        .enumerate()
        .map(|(i, (&t, tags))| {
            let host = if rng.below(3) == 0 { "b" } else { "a" };
            let mut s = snap(t, host, &["/srv"], None);
            s.tags = tags.clone();
            let mut bytes = [0u8; 32];
            bytes[..8].copy_from_slice(&(i as u64).to_be_bytes());
            (SnapshotId(Digest(bytes)), s)
        })
        .collect();
    let policy = KeepPolicy {
        last: 3,
        daily: 7,
        weekly: 4,
        monthly: 12,
        yearly: 3,
        tags: vec!["pre-upgrade".into()],
        ..KeepPolicy::default()
    };
    for (_, tz) in zones() {
        let p = plan(
            &all,
            &PlanOptions {
                allow_empty: true,
                ..opts(&policy, &tz)
            },
        );
        assert_eq!(p.groups.len(), 2);
        check_partition(&p, &all);
        for group in &p.groups {
            let host = group.key.hostname.as_deref().unwrap();
            // The input is newest first with ties in id order, as plan sorts them.
            let members: Vec<&(SnapshotId, SnapshotFile)> =
                all.iter().filter(|(_, s)| s.hostname == host).collect();
            let times: Vec<i64> = members.iter().map(|(_, s)| s.time_ns).collect();
            let tags: Vec<Vec<String>> = members.iter().map(|(_, s)| s.tags.clone()).collect();
            let want = model(&times, &tags, &policy, &tz);
            let got: Vec<Vec<Reason>> = group.decisions.iter().map(|d| d.reasons.clone()).collect();
            let order: Vec<SnapshotId> = group.decisions.iter().map(|d| d.id).collect();
            assert_eq!(order, members.iter().map(|(id, _)| *id).collect::<Vec<_>>());
            assert_same(host, &times, &got, &want, &tz);
        }
    }
}
