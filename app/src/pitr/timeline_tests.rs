use super::*;
use strata_format::id::{Digest, SnapshotId};

const SEG: u32 = 16 << 20;
const S: u64 = SEG as u64;

fn base(tag: u8, timeline: u32, start: u64, stop: u64, stop_time_ns: i64) -> BaseBackup {
    BaseBackup {
        snapshot: SnapshotId(Digest([tag; 32])),
        system_id: 7,
        version_num: 150004,
        timeline,
        start_lsn: Lsn(start),
        stop_lsn: Lsn(stop),
        seg_size: SEG,
        start_time_ns: stop_time_ns - 1,
        stop_time_ns,
        data_dir: "/pg".into(),
    }
}

/// Timeline 3: 1 until segment 5 (+0x60), 2 until segment 8 (+0x100), then 3.
fn path3() -> TimelinePath {
    let h = History::parse(
        3,
        "1\t0/5000060\tno recovery target specified\n2\t0/8000100\tbefore 2026-12-06\n",
    )
    .unwrap();
    TimelinePath::new(3, Some(&h)).unwrap()
}

fn archived(list: &[(u32, u64, i64)]) -> Archived {
    list.iter().map(|(t, n, p)| ((*t, *n), *p)).collect()
}

#[test]
fn target_times_need_an_offset() {
    for (text, utc) in [
        ("2026-12-06 14:03:27+01", "2026-12-06T13:03:27Z"),
        ("2026-12-06T14:03:27+01:00", "2026-12-06T13:03:27Z"),
        ("2026-12-06 13:03:27Z", "2026-12-06T13:03:27Z"),
        (" 2026-12-06 13:03:27.25-00:30 ", "2026-12-06T13:33:27.25Z"),
    ] {
        let t = parse_target_time(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(t.to_string(), utc, "{text}");
    }
    for civil in ["2026-12-06 14:03:27", "2026-12-06T14:03:27.5", "2026-12-06"] {
        let e = parse_target_time(civil).unwrap_err().to_string();
        assert!(e.contains("has no time zone offset"), "{civil}: {e}");
    }
    for junk in ["", "yesterday", "2026-13-06 14:03:27+01", "\u{0}\u{ff}"] {
        let e = parse_target_time(junk).unwrap_err().to_string();
        assert!(e.contains("is not a time"), "{junk:?}: {e}");
    }
}

#[test]
fn recovery_target_time_is_utc_cut_to_microseconds() {
    let t = parse_target_time("2026-12-06 14:03:27.1234569+01").unwrap();
    assert_eq!(recovery_time_text(t), "2026-12-06 13:03:27.123456+00");
    let t = parse_target_time("2026-12-06 14:03:27Z").unwrap();
    assert_eq!(recovery_time_text(t), "2026-12-06 14:03:27.000000+00");
}

#[test]
fn the_path_follows_the_history() {
    let p = path3();
    assert_eq!(p.target(), 3);
    assert_eq!(
        p.spans(),
        &[
            Span {
                timeline: 1,
                begin: Lsn(0),
                end: Some(Lsn(0x500_0060))
            },
            Span {
                timeline: 2,
                begin: Lsn(0x500_0060),
                end: Some(Lsn(0x800_0100))
            },
            Span {
                timeline: 3,
                begin: Lsn(0x800_0100),
                end: None
            },
        ]
    );
    let size = SegmentSize::new(SEG).unwrap();
    // The segment of a switch is read from the child.
    let tl: Vec<u32> = (3..10).map(|n| p.timeline_of_segment(n, size)).collect();
    assert_eq!(tl, [1, 1, 2, 2, 2, 3, 3]);
    assert!(TimelinePath::new(2, None).is_err());
    let h = History::parse(2, "1\t0/5000060\tx\n").unwrap();
    assert!(TimelinePath::new(3, Some(&h)).is_err());
    assert_eq!(TimelinePath::new(1, None).unwrap().target(), 1);
}

#[test]
fn the_newest_base_backup_before_the_target_on_the_path_is_chosen() {
    let p = path3();
    let t1_early = base(1, 1, 2 * S, 2 * S + 0x100, 100);
    let t1_late = base(2, 1, 4 * S, 4 * S + 0x100, 200);
    // Ends after timeline 1 was left: not on the path.
    let t1_after_fork = base(3, 1, 5 * S + 0x1000, 5 * S + 0x2000, 300);
    let t2 = base(4, 2, 6 * S, 6 * S + 0x100, 400);
    let t3 = base(5, 3, 9 * S, 9 * S + 0x100, 500);
    let bases = vec![
        t1_early.clone(),
        t1_late.clone(),
        t1_after_fork.clone(),
        t2.clone(),
        t3.clone(),
    ];
    let pick = |path: Option<&TimelinePath>, t: Option<i64>| {
        choose_base(&bases, path, t).map(|b| b.snapshot)
    };
    assert_eq!(pick(Some(&p), Some(1000)).unwrap(), t3.snapshot);
    assert_eq!(pick(Some(&p), Some(450)).unwrap(), t2.snapshot);
    // Between the fork and timeline 2's backup: timeline 1's backup that ended before
    // the fork, not the later one that did not.
    assert_eq!(pick(Some(&p), Some(350)).unwrap(), t1_late.snapshot);
    assert_eq!(pick(Some(&p), Some(150)).unwrap(), t1_early.snapshot);
    assert_eq!(pick(Some(&p), None).unwrap(), t3.snapshot);
    // Timeline 1 alone: its newest backup, whatever happened on other timelines.
    let one = TimelinePath::new(1, None).unwrap();
    assert_eq!(
        pick(Some(&one), Some(1000)).unwrap(),
        t1_after_fork.snapshot
    );
    // Any timeline (--timeline current chooses the base first).
    assert_eq!(pick(None, Some(450)).unwrap(), t2.snapshot);
    let e = pick(Some(&p), Some(50)).unwrap_err().to_string();
    assert!(
        e.contains("no base backup ended before the target time"),
        "{e}"
    );
    let e = choose_base(&bases[2..3], Some(&p), Some(1000))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("not on the way") || e.contains("timelines 1"),
        "{e}"
    );
    let e = choose_base(&[], Some(&p), None).unwrap_err().to_string();
    assert!(e.contains("strata pg basebackup"), "{e}");
    // A forced one is checked too.
    assert!(check_base(&t1_after_fork, Some(&p), Some(1000)).is_err());
    assert!(check_base(&t3, Some(&p), Some(450)).is_err());
    assert!(check_base(&t1_late, Some(&p), Some(450)).is_ok());
}

#[test]
fn every_needed_segment_is_checked_along_the_path() {
    let p = path3();
    // Base on timeline 1 in segment 3, consistent in segment 4.
    let b = base(1, 1, 3 * S + 0x28, 4 * S + 0x100, 100);
    let all = archived(&[
        (1, 3, 10),
        (1, 4, 20),
        (1, 5, 30), // timeline 1's own segment 5: not read (the switch is in it)
        (1, 6, 40),
        (2, 5, 35),
        (2, 6, 45),
        (2, 7, 55),
        (2, 8, 65),
        (3, 8, 70),
        (3, 9, 80),
        (3, 10, 90),
    ]);
    let ok = needed_segments(&p, &b, Some(75), &all).unwrap();
    assert_eq!(ok.first.to_string(), "000000010000000000000003");
    assert_eq!(ok.last.to_string(), "000000030000000000000009");
    assert_eq!(ok.count, 7);
    // To the end of the archive.
    let ok = needed_segments(&p, &b, None, &all).unwrap();
    assert_eq!(ok.last.to_string(), "00000003000000000000000A");
    // At least to the stop segment, even when an earlier one was pushed after the target.
    let ok = needed_segments(&p, &b, Some(5), &all).unwrap();
    assert_eq!(ok.last.to_string(), "000000010000000000000004");

    // A gap: the missing run is named, first..last, on the timelines read.
    let mut gap = all.clone();
    gap.remove(&(2, 6));
    gap.remove(&(2, 7));
    let e = needed_segments(&p, &b, Some(75), &gap)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("000000020000000000000006..000000020000000000000007 (2 segments)"),
        "{e}"
    );
    // Timeline 1's own segment 6 does not fill timeline 2's gap.
    assert!(gap.contains_key(&(1, 6)));
    // Before the gap, it does not refuse, but says where the gap is.
    let before = needed_segments(&p, &b, Some(25), &gap).unwrap();
    assert_eq!(
        before.gap_after.map(|s| s.to_string()).as_deref(),
        Some("000000020000000000000006")
    );
    assert_eq!(
        needed_segments(&p, &b, Some(75), &all).unwrap().gap_after,
        None
    );
    // The switch segment is read from the child: without it, a gap, though the
    // parent's is there.
    let mut no_switch = all.clone();
    no_switch.remove(&(2, 5));
    let e = needed_segments(&p, &b, Some(75), &no_switch)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("000000020000000000000005..000000020000000000000005 (1 segment)"),
        "{e}"
    );

    // A target after the last push: not archived yet.
    let e = needed_segments(&p, &b, Some(95), &all)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("is not archived yet") && e.contains("pg_switch_wal"),
        "{e}"
    );
    // The base backup's own segments missing: incomplete.
    let e = needed_segments(&p, &b, None, &archived(&[(1, 3, 10)]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("not complete"), "{e}");
    let e = needed_segments(&p, &b, None, &archived(&[]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("not complete"), "{e}");
}
