use super::*;
use proptest::prelude::*;

fn seg(t: u32, l: u32, s: u32) -> SegmentName {
    SegmentName::new(t, l, s).unwrap()
}

#[test]
fn every_kind_of_name_parses_and_prints_back_exactly() {
    let cases = [
        ("000000010000000000000001", WalName::Segment(seg(1, 0, 1))),
        (
            "0000000A0000001F000000FF",
            WalName::Segment(seg(10, 0x1F, 0xFF)),
        ),
        ("00000002.history", WalName::History { timeline: 2 }),
        (
            "000000010000000000000002.00A0002C.backup",
            WalName::BackupLabel {
                segment: seg(1, 0, 2),
                offset: 0xA0_002C,
            },
        ),
        (
            "00000003000000050000000A.partial",
            WalName::Partial {
                segment: seg(3, 5, 0xA),
            },
        ),
    ];
    for (text, name) in cases {
        assert_eq!(WalName::parse(text).unwrap(), name, "{text}");
        assert_eq!(name.to_string(), text);
        assert_eq!(text.parse::<WalName>().unwrap(), name);
    }
    assert_eq!(WalName::parse("00000002.history").unwrap().timeline(), 2);
    assert_eq!(
        WalName::parse("00000003000000050000000A.partial")
            .unwrap()
            .segment(),
        Some(seg(3, 5, 0xA))
    );
    assert_eq!(WalName::History { timeline: 2 }.segment(), None);
}

/// The reason `name` is refused.
fn refusal(name: &str) -> String {
    match WalName::parse(name) {
        Ok(n) => panic!("{name:?} was accepted as {n:?}"),
        Err(e) => {
            let e = e.to_string();
            assert!(e.contains("is not a PostgreSQL WAL file name"), "{e}");
            e
        }
    }
}

#[test]
fn refuses_every_name_postgresql_would_not_write() {
    let cases = [
        ("", "it is empty"),
        ("pg_wal/000000010000000000000001", "a path"),
        ("../00000001.history", "a path"),
        ("..", "a path"),
        ("00000001..history", "a path"),
        ("00000001000000000000000\\", "a path"),
        ("0000000100000000000000a1", "lowercase"),
        ("0000000a.history", "lowercase"),
        ("00000001000000000000001", "23 characters, not 24"),
        ("0000000100000000000000011", "25 characters, not 24"),
        (
            "00000001000000000000000G",
            "segment part is not hexadecimal",
        ),
        (
            "0000 0010000000000000001",
            "timeline part is not hexadecimal",
        ),
        (
            "+0000001000000000000001A",
            "timeline part is not hexadecimal",
        ),
        ("000000000000000000000001", "timeline 0 does not exist"),
        ("00000000.history", "timeline 0 does not exist"),
        ("000000010000000000001000", "beyond every segment size"),
        ("0000000100000000FFFFFFFF", "beyond every segment size"),
        ("0000001.history", "7 characters, not 8"),
        ("000000010000000000000001.history", "24 characters, not 8"),
        ("00000001.HISTORY", "unknown suffix"),
        ("000000010000000000000001.gz", "unknown suffix"),
        ("000000010000000000000001.", "unknown suffix"),
        ("000000010000000000000001.0000002.backup", "unknown suffix"),
        (
            "000000010000000000000001.0000002g.backup",
            "not hexadecimal",
        ),
        (
            "000000010000000000000001.40000000.backup",
            "beyond every segment size",
        ),
        ("00000001000000000000001.00000028.backup", "23 characters"),
        ("000000010000000000000001.partial.partial", "unknown suffix"),
        ("00000001000000000000000１", "characters other than"),
        ("00000001000000000000000\u{0}", "a path"),
        (
            "00000001000000000000000\n",
            "segment part is not hexadecimal",
        ),
    ];
    for (name, why) in cases {
        let e = refusal(name);
        assert!(e.contains(why), "{name:?}: {e}");
    }
}

#[test]
fn segment_numbers_follow_the_segment_size() {
    let m16 = SegmentSize::DEFAULT;
    let m1 = SegmentSize::new(1 << 20).unwrap();
    let g1 = SegmentSize::new(1 << 30).unwrap();
    assert_eq!(m16.segs_per_xlogid(), 256);
    assert_eq!(m1.segs_per_xlogid(), 4096);
    assert_eq!(g1.segs_per_xlogid(), 4);

    let s = seg(1, 0x16, 0xB3);
    assert_eq!(s.number(m16).unwrap(), 0x16 * 256 + 0xB3);
    assert_eq!(s.number(m1).unwrap(), 0x16 * 4096 + 0xB3);
    assert_eq!(SegmentName::from_number(1, 0x16B3, m16).unwrap(), s);
    assert_eq!(s.start_lsn(m16).unwrap(), Lsn(0x16_B300_0000));

    // The last segment of a 4 GiB run is followed by the first of the next.
    let last = seg(2, 0, 0xFF);
    assert_eq!(
        last.next(m16).unwrap().to_string(),
        "000000020000000100000000"
    );
    assert_eq!(
        seg(2, 7, 3).next(g1).unwrap().to_string(),
        "000000020000000800000000"
    );
    assert_eq!(
        seg(2, 7, 2).next(g1).unwrap().to_string(),
        "000000020000000700000003"
    );

    // A seg that exists with 1 MiB segments does not with 16 MiB ones.
    let e = seg(1, 0, 0x100).number(m16).unwrap_err().to_string();
    assert!(
        e.contains("000000010000000000000100 does not exist with 16 MiB segments"),
        "{e}"
    );
    assert!(seg(1, 0, 0x100).number(m1).is_ok());
    assert!(seg(1, 0, 4).next(g1).is_err());

    // The end of the WAL.
    let end = seg(1, u32::MAX, 0xFF);
    assert!(end
        .next(m16)
        .unwrap_err()
        .to_string()
        .contains("beyond the end"));
    assert!(SegmentName::from_number(1, u64::MAX, m1).is_err());
    assert!(SegmentName::from_number(0, 1, m1).is_err(), "timeline 0");
}

#[test]
fn segment_sizes_are_powers_of_two_from_1_mib_to_1_gib() {
    for ok in [1 << 20, 2 << 20, 16 << 20, 64 << 20, 1 << 30] {
        assert_eq!(SegmentSize::new(ok).unwrap().get(), ok);
    }
    for bad in [0, 1, 512 << 10, (1 << 20) + 1, 3 << 20, 2 << 30, u32::MAX] {
        let e = SegmentSize::new(bad).unwrap_err().to_string();
        assert!(e.contains("is not a WAL segment size"), "{bad}: {e}");
    }
    assert_eq!(SegmentSize::DEFAULT.to_string(), "16 MiB");
}

#[test]
fn names_sort_by_timeline_then_position() {
    let mut names: Vec<WalName> = [
        "000000020000000000000001",
        "000000010000000100000000",
        "00000002.history",
        "000000010000000000000002.00000028.backup",
        "0000000100000000000000FF",
        "000000010000000000000002",
        "000000010000000000000002.partial",
    ]
    .iter()
    .map(|n| WalName::parse(n).unwrap())
    .collect();
    names.sort();
    let sorted: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    assert_eq!(
        sorted,
        [
            "000000010000000000000002",
            "000000010000000000000002.00000028.backup",
            "000000010000000000000002.partial",
            "0000000100000000000000FF",
            "000000010000000100000000",
            "00000002.history",
            "000000020000000000000001",
        ]
    );
}

fn sizes() -> impl Strategy<Value = SegmentSize> {
    (20u32..=30).prop_map(|bits| SegmentSize::new(1 << bits).unwrap())
}

proptest! {
    #[test]
    fn arbitrary_names_never_panic(name in any::<String>(), bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = WalName::parse(&name);
        let _ = WalName::parse(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn name_like_strings_never_panic(name in "[0-9A-Fa-f./\\\\]{0,44}(\\.history|\\.partial|\\.backup)?") {
        if let Ok(n) = WalName::parse(&name) {
            prop_assert_eq!(n.to_string(), name);
        }
    }

    #[test]
    fn every_valid_name_round_trips(timeline in 1u32.., log in any::<u32>(), seg in 0u32..0x1000, offset in 0u32..(1 << 30), kind in 0..4) {
        let segment = SegmentName::new(timeline, log, seg).unwrap();
        let name = match kind {
            0 => WalName::Segment(segment),
            1 => WalName::History { timeline },
            2 => WalName::BackupLabel { segment, offset },
            _ => WalName::Partial { segment },
        };
        let text = name.to_string();
        prop_assert_eq!(WalName::parse(&text).unwrap(), name);
    }

    #[test]
    fn segment_numbers_round_trip_and_order(timeline in 1u32.., size in sizes(), a in any::<u64>(), b in any::<u64>()) {
        let max = (1u64 << 32) * u64::from(size.segs_per_xlogid());
        let (a, b) = (a % max, b % max);
        let (sa, sb) = (
            SegmentName::from_number(timeline, a, size).unwrap(),
            SegmentName::from_number(timeline, b, size).unwrap(),
        );
        prop_assert_eq!(sa.number(size).unwrap(), a);
        prop_assert_eq!(sa.cmp(&sb), a.cmp(&b));
        prop_assert_eq!(WalName::from(sa).cmp(&WalName::from(sb)), a.cmp(&b));
        if a + 1 < max {
            prop_assert_eq!(sa.next(size).unwrap().number(size).unwrap(), a + 1);
        }
        let lsn = sa.start_lsn(size).unwrap();
        prop_assert_eq!(SegmentName::holding(lsn, timeline, size).unwrap(), sa);
        prop_assert_eq!(size.offset_of(lsn), 0);
    }
}

#[test]
fn maps_to_its_segment_and_offset() {
    let size = SegmentSize::DEFAULT;
    let lsn = Lsn::parse("16/B374D848").unwrap();
    // 0x16B374D848 / 16 MiB = 0x16B3 = log 0x16, seg 0xB3.
    assert_eq!(
        SegmentName::holding(lsn, 1, size).unwrap().to_string(),
        "0000000100000016000000B3"
    );
    assert_eq!(size.offset_of(lsn), 0x74_D848);
    let small = SegmentSize::new(1 << 20).unwrap();
    assert_eq!(
        SegmentName::holding(lsn, 3, small).unwrap().to_string(),
        "000000030000001600000B37"
    );
    assert_eq!(small.offset_of(lsn), 0x4_D848);
    assert!(SegmentName::holding(Lsn(0), 0, size).is_err(), "timeline 0");
}
