//! Unit tests of spans, times, groups and reasons (the policy table is in
//! `engine/tests/retention.rs`).

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
        assert!(err.to_string().contains(needle), "{input:?}: {err}");
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
        assert!(err.to_string().contains("cannot read time"), "{s:?}: {err}");
    }
    let err = parse_time("2300-01-01", &utc).unwrap_err();
    assert!(err.to_string().contains("outside the years"), "{err}");
    let err = parse_time("1600-01-01T00:00:00Z", &utc).unwrap_err();
    assert!(err.to_string().contains("outside the years"), "{err}");
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
    assert!(err.to_string().contains("`hostname`"), "{err}");
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
