use super::*;
use proptest::prelude::*;

/// As PostgreSQL 15 writes the history of timeline 3 after two promotions.
const THREE: &str = "1\t0/3000158\tno recovery target specified\n\n\
                     2\t0/5000000\tbefore 2026-12-06 14:03:27.123+01\n";

#[test]
fn parses_the_ancestry_postgresql_writes() {
    let h = History::parse(3, THREE).unwrap();
    assert_eq!(h.timeline(), 3);
    assert_eq!(
        h.entries(),
        [
            HistoryEntry {
                parent: 1,
                switch: Lsn(0x300_0158),
                reason: "no recovery target specified".into(),
            },
            HistoryEntry {
                parent: 2,
                switch: Lsn(0x500_0000),
                reason: "before 2026-12-06 14:03:27.123+01".into(),
            },
        ]
    );
    assert!(h.contains(1) && h.contains(2) && h.contains(3));
    assert!(!h.contains(4) && !h.contains(0));
}

#[test]
fn comments_blank_lines_spaces_and_missing_reasons_are_fine() {
    let text =
        "# made by hand\n   \n  # indented comment\r\n1 0/3000158\r\n\t2   \t0/5000000  \t  \n";
    let h = History::parse(7, text).unwrap();
    assert_eq!(h.entries().len(), 2);
    assert_eq!(h.entries()[0].reason, "");
    assert_eq!(h.entries()[1].switch, Lsn(0x500_0000));
    assert_eq!(History::parse(1, "").unwrap().entries(), []);
}

#[test]
fn timeline_of_follows_the_ancestry() {
    let h = History::parse(3, THREE).unwrap();
    assert_eq!(h.timeline_of(Lsn(0)), 1);
    assert_eq!(h.timeline_of(Lsn(0x300_0157)), 1);
    // The switch point itself is the child's.
    assert_eq!(h.timeline_of(Lsn(0x300_0158)), 2);
    assert_eq!(h.timeline_of(Lsn(0x4FF_FFFF)), 2);
    assert_eq!(h.timeline_of(Lsn(0x500_0000)), 3);
    assert_eq!(h.timeline_of(Lsn(u64::MAX)), 3);
    // Timelines may skip numbers (4 was made on another branch and abandoned).
    let h = History::parse(5, "1\t0/3000158\treason\n3\t0/4000000\treason\n").unwrap();
    assert_eq!(h.timeline_of(Lsn(0x350_0000)), 3);
    assert_eq!(h.timeline_of(Lsn(0x400_0000)), 5);
    // No history: everything is the timeline's own.
    assert_eq!(History::parse(1, "").unwrap().timeline_of(Lsn(5)), 1);
}

#[test]
fn refuses_broken_histories() {
    let cases = [
        (3, "1\n", 1, "lacks a timeline and a switch point"),
        (3, "# c\n1\t\n", 2, "lacks a timeline and a switch point"),
        (
            3,
            "x\t0/1\tr\n",
            1,
            "parent timeline \"x\" is not a number from 1",
        ),
        (3, "0\t0/1\tr\n", 1, "is not a number from 1"),
        (3, "+1\t0/1\tr\n", 1, "is not a number from 1"),
        (3, "99999999999\t0/1\tr\n", 1, "is not a number from 1"),
        (3, "1\t0-1\tr\n", 1, "is not an LSN"),
        (
            3,
            "2\t0/1\tr\n1\t0/2\tr\n",
            2,
            "timeline 1 follows timeline 2: timelines must increase",
        ),
        (3, "1\t0/1\tr\n1\t0/2\tr\n", 2, "timelines must increase"),
        (
            3,
            "1\t0/5\tr\n2\t0/4\tr\n",
            2,
            "switch point 0/4 is before the previous one, 0/5",
        ),
        (
            2,
            "2\t0/1\tr\n",
            1,
            "timeline 2 cannot be an ancestor of timeline 2",
        ),
        (
            2,
            "1\t0/1\tr\n5\t0/2\tr\n",
            2,
            "timeline 5 cannot be an ancestor",
        ),
    ];
    for (timeline, text, line, why) in cases {
        let e = History::parse(timeline, text).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("timeline history, line {line}: ")),
            "{text:?}: {e}"
        );
        assert!(e.contains(why), "{text:?}: {e}");
    }
    assert!(History::parse(0, "").is_err());
}

#[test]
fn is_bounded_in_lines() {
    let comments = "#\n".repeat(MAX_HISTORY_LINES);
    assert!(History::parse(2, &comments).is_ok());
    let e = History::parse(2, &format!("{comments}#\n"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("more than 10000 lines"), "{e}");
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(tl in any::<u32>(), bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let text = String::from_utf8_lossy(&bytes);
        if let Ok(h) = History::parse(tl, &text) {
            let _ = h.timeline_of(Lsn(0));
        }
    }

    #[test]
    fn history_like_text_never_panics(
        tl in 0u32..12,
        text in "([ #]?[0-9x]{1,2}[\\t ]{1,2}[0-9A-Fa-f]{1,2}[/-][0-9A-F]{0,3}([\\t ]{1,2}[a-z \\t]{0,4})?\r?\n){0,6}",
    ) {
        if let Ok(h) = History::parse(tl, &text) {
            for w in h.entries().windows(2) {
                prop_assert!(w[0].parent < w[1].parent && w[0].switch <= w[1].switch);
            }
        }
    }

    #[test]
    fn written_histories_read_back(parents in proptest::collection::btree_set(1u32..1000, 0..20), mut switches in proptest::collection::vec(any::<u64>(), 20)) {
        switches.sort();
        let timeline = 1000;
        let text: String = parents
            .iter()
            .zip(&switches)
            .map(|(p, s)| format!("{p}\t{}\tbecause {p}\n", Lsn(*s)))
            .collect();
        let h = History::parse(timeline, &text).unwrap();
        prop_assert_eq!(h.entries().len(), parents.len());
        for (e, (p, s)) in h.entries().iter().zip(parents.iter().zip(&switches)) {
            prop_assert_eq!((e.parent, e.switch, e.reason.clone()), (*p, Lsn(*s), format!("because {p}")));
            prop_assert_eq!(h.timeline_of(Lsn(*s)) , h.entries().iter().find(|x| x.switch > Lsn(*s)).map_or(timeline, |x| x.parent));
        }
    }
}
