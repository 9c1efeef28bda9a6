use super::*;
use crate::wal::SegmentName;
use proptest::prelude::*;

/// A long header as PostgreSQL 15 writes it at the start of segment 1 (16 MiB segments).
fn header_bytes(
    magic: u16,
    info: u16,
    tli: u32,
    addr: u64,
    sysid: u64,
    seg: u32,
    blck: u32,
) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend(magic.to_le_bytes());
    b.extend(info.to_le_bytes());
    b.extend(tli.to_le_bytes());
    b.extend(addr.to_le_bytes());
    b.extend(0u32.to_le_bytes()); // xlp_rem_len
    b.extend([0u8; 4]); // padding
    b.extend(sysid.to_le_bytes());
    b.extend(seg.to_le_bytes());
    b.extend(blck.to_le_bytes());
    b.extend([0x72, 0, 0, 0]); // the first record's length, ignored
    b
}

fn good() -> Vec<u8> {
    header_bytes(
        0xD110,
        0x0002,
        1,
        16 << 20,
        7716484702566127851,
        16 << 20,
        8192,
    )
}

#[test]
fn parses_the_long_header_of_a_first_page() {
    // The first 40 bytes of a segment made by PostgreSQL 15's initdb, as `xxd` shows them.
    let real: [u8; 40] = [
        0x10, 0xd1, 0x02, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xeb, 0x98, 0x30, 0x0b, 0xf4, 0x75,
        0x16, 0x6b, 0x00, 0x00, 0x00, 0x01, 0x00, 0x20, 0x00, 0x00,
    ];
    assert_eq!(&good()[..40], &real[..]);
    let h = SegmentHeader::parse(&real).unwrap();
    assert_eq!(
        h,
        SegmentHeader {
            magic: 0xD110,
            info: 2,
            timeline: 1,
            page_addr: 16 << 20,
            system_id: 7716484702566127851,
            seg_size: SegmentSize::DEFAULT,
            block_size: 8192,
        }
    );
    assert_eq!(h.pg_major(), Some(150000));
    h.check_name(&WalName::parse("000000010000000000000001").unwrap())
        .unwrap();
    h.check_name(&WalName::parse("000000010000000000000001.partial").unwrap())
        .unwrap();
}

/// The reason `bytes` is refused.
fn refusal(bytes: &[u8]) -> String {
    let e = SegmentHeader::parse(bytes).unwrap_err().to_string();
    assert!(
        e.starts_with("not the start of a PostgreSQL WAL segment: "),
        "{e}"
    );
    e
}

#[test]
fn refuses_what_is_not_a_segment_start() {
    let g = good();
    assert!(refusal(&g[..39]).contains("39 bytes, shorter than the 40-byte"));
    assert!(refusal(&[]).contains("0 bytes"));
    let with = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = good();
        f(&mut b);
        refusal(&b)
    };
    // A short header (a later page), unknown flags.
    assert!(with(&|b| b[2] = 0x01).contains("lack the long-header bit"));
    assert!(with(&|b| b[2] = 0x0A).contains("bits PostgreSQL does not define"));
    assert!(with(&|b| b[3] = 0x80).contains("bits PostgreSQL does not define"));
    // Segment sizes: not a power of two, too small, too big.
    for seg in [(16 << 20) + 1, 512 << 10, 2 << 30, 0] {
        let e = with(&|b| b[32..36].copy_from_slice(&u32::to_le_bytes(seg)));
        assert!(e.contains("is not a WAL segment size"), "{seg}: {e}");
    }
    // Page sizes.
    for blck in [0, 512, 8191, 65536] {
        let e = with(&|b| b[36..40].copy_from_slice(&u32::to_le_bytes(blck)));
        assert!(
            e.contains(&format!("WAL page size {blck} is not a power of two")),
            "{e}"
        );
    }
    // A page address inside a segment.
    let e = with(&|b| b[8..16].copy_from_slice(&u64::to_le_bytes((16 << 20) + 8192)));
    assert!(
        e.contains("page address 0/1002000 is not at the start of a 16 MiB segment"),
        "{e}"
    );
    assert!(with(&|b| b[4..8].copy_from_slice(&[0; 4])).contains("timeline 0"));
    // Big-endian bytes read as little-endian: the flags make no sense.
    assert!(with(&|b| b.swap(2, 3)).contains("page flags 0x0200"));
}

#[test]
fn accepts_every_size_postgresql_allows_and_an_unknown_magic() {
    for bits in 20..=30 {
        for blck in [1024, 8192, 32768] {
            let b = header_bytes(0xD200, 0x0007, 3, 5 << bits, 1, 1 << bits, blck);
            let h = SegmentHeader::parse(&b).unwrap();
            assert_eq!(h.seg_size.get(), 1 << bits);
            assert_eq!(h.pg_major(), None, "a newer release's magic");
            h.check_name(&SegmentName::from_number(3, 5, h.seg_size).unwrap().into())
                .unwrap();
        }
    }
}

#[test]
fn check_name_compares_position_and_timeline() {
    let h = SegmentHeader::parse(&good()).unwrap();
    let check = |name: &str| h.check_name(&WalName::parse(name).unwrap());
    let e = check("000000010000000000000002").unwrap_err().to_string();
    assert_eq!(
        e,
        "000000010000000000000002: its header does not match its name: the name's segment \
         starts at 0/2000000 with 16 MiB segments, the header's page address is 0/1000000; \
         the file is damaged or another file was put in its place (PostgreSQL names a segment \
         after its position)"
    );
    // A name valid only with smaller segments.
    assert!(check("000000010000000000000100").is_err());
    // The first segment of timeline 2 begins as a copy of timeline 1's: accepted.
    check("000000020000000000000001").unwrap();
    // A header of a later timeline than the name's is not.
    let h3 =
        SegmentHeader::parse(&header_bytes(0xD110, 2, 3, 16 << 20, 1, 16 << 20, 8192)).unwrap();
    let e = h3
        .check_name(&WalName::parse("000000020000000000000001").unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("the name is on timeline 2, the header on the later timeline 3"),
        "{e}"
    );
    for text_file in [
        "00000002.history",
        "000000010000000000000001.00000028.backup",
    ] {
        let e = check(text_file).unwrap_err().to_string();
        assert!(e.contains("not a WAL segment"), "{e}");
    }
}

#[test]
fn magics_map_to_their_major_release() {
    assert_eq!(pg_major_of_magic(0xD093), Some(90600));
    assert_eq!(pg_major_of_magic(0xD097), Some(100000));
    assert_eq!(pg_major_of_magic(0xD101), Some(120000));
    assert_eq!(pg_major_of_magic(0xD116), Some(170000));
    assert_eq!(pg_major_of_magic(0xD087), None, "9.5 is not supported");
    assert_eq!(pg_major_of_magic(0), None);
    assert_eq!(pg_major_of_version_num(150018), 150000);
    assert_eq!(pg_major_of_version_num(170000), 170000);
    assert_eq!(pg_major_of_version_num(90624), 90600);
    // One release per magic, increasing together.
    for w in MAGICS.windows(2) {
        assert!(w[0].0 < w[1].0 && w[0].1 < w[1].1, "{w:?}");
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(h) = SegmentHeader::parse(&bytes) {
            // Whatever parses is self-consistent and checks against any name without panic.
            prop_assert!(h.info & 2 != 0);
            prop_assert_eq!(h.page_addr % u64::from(h.seg_size.get()), 0);
            let _ = h.check_name(&WalName::parse("0000000100000000000000FF").unwrap());
        }
    }

    #[test]
    fn headers_near_valid_never_panic(
        info in 0u16..16,
        tli in 0u32..4,
        addr in any::<u64>(),
        aligned in any::<bool>(),
        bits in 18u32..32,
        blck_bits in 8u32..17,
        name in (1u32..4, any::<u32>(), 0u32..0x1000),
    ) {
        // Mostly sizes and addresses that parse, so the checks after them run too.
        let addr = if aligned { (addr % (1 << 30)) << bits } else { addr };
        let b = header_bytes(0xD110, info, tli, addr, 9, 1 << bits, 1 << blck_bits);
        if let Ok(h) = SegmentHeader::parse(&b) {
            let name = SegmentName::new(name.0, name.1, name.2).unwrap();
            let _ = h.check_name(&name.into());
        }
    }
}
