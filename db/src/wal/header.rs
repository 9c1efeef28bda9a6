//! The long page header on the first page of every WAL segment (PostgreSQL's
//! `XLogLongPageHeaderData`, `src/include/access/xlog_internal.h`), which names the cluster
//! (system identifier), the segment's place (timeline, address) and the WAL's geometry.
//!
//! Layout, little-endian (see the module docs of `wal` on byte order), 40 bytes:
//!
//! | offset | size | field            |                                              |
//! |-------:|-----:|------------------|----------------------------------------------|
//! | 0      | 2    | `xlp_magic`      | WAL format version, one per major release     |
//! | 2      | 2    | `xlp_info`       | flags; `XLP_LONG_HEADER` (0x0002) set here   |
//! | 4      | 4    | `xlp_tli`        | timeline of the first record on the page     |
//! | 8      | 8    | `xlp_pageaddr`   | LSN of the page's first byte                 |
//! | 16     | 4    | `xlp_rem_len`    | (continuation length, not used here)         |
//! | 20     | 4    | padding          | to 8-byte alignment                          |
//! | 24     | 8    | `xlp_sysid`      | system identifier, as in `pg_control`        |
//! | 32     | 4    | `xlp_seg_size`   | segment size                                 |
//! | 36     | 4    | `xlp_xlog_blcksz`| WAL page size                                |

use super::error::WalError;
use super::name::{SegmentSize, WalName};

/// Bytes of the long page header; [`SegmentHeader::parse`] needs at least these.
pub const LONG_HEADER_LEN: usize = 40;

/// `xlp_info` flag: the page has the long header (every segment's first page).
const XLP_LONG_HEADER: u16 = 0x0002;
/// Every `xlp_info` flag PostgreSQL defines (`XLP_ALL_FLAGS`); others mean damage.
const XLP_ALL_FLAGS: u16 = 0x0007;

/// `xlp_magic` of each major release from 9.6 (taken from `XLOG_PAGE_MAGIC` in each
/// release's `xlog_internal.h`; a magic changes only with a major release). Never change a
/// row; add one per new release.
const MAGICS: [(u16, u32); 9] = [
    (0xD093, 90600),
    (0xD097, 100000),
    (0xD098, 110000),
    (0xD101, 120000),
    (0xD106, 130000),
    (0xD10D, 140000),
    (0xD110, 150000),
    (0xD113, 160000),
    (0xD116, 170000),
];

/// The PostgreSQL major release that writes WAL with `magic`, numbered as
/// `server_version_num` numbers its first release (90600 for 9.6, 150000 for 15); `None` for
/// a magic not in the table (older than 9.6, or newer than this build knows), which is not
/// by itself an error.
pub fn pg_major_of_magic(magic: u16) -> Option<u32> {
    MAGICS.iter().find(|(m, _)| *m == magic).map(|(_, v)| *v)
}

/// `server_version_num` (say 150018 for 15.18, 90624 for 9.6.24) with the minor release
/// zeroed, to compare with [`pg_major_of_magic`].
pub fn pg_major_of_version_num(version_num: u32) -> u32 {
    if version_num >= 100000 {
        version_num / 10000 * 10000
    } else {
        version_num / 100 * 100
    }
}

/// The long header of a segment's first page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// WAL format version (`XLOG_PAGE_MAGIC`); see [`pg_major_of_magic`].
    pub magic: u16,
    /// Page flags; the long-header bit is always set.
    pub info: u16,
    /// Timeline of the first record on the page.
    pub timeline: u32,
    /// LSN of the segment's first byte.
    pub page_addr: u64,
    /// The cluster's system identifier (as in `pg_control`).
    pub system_id: u64,
    /// The cluster's WAL segment size.
    pub seg_size: SegmentSize,
    /// The WAL page size (`XLOG_BLCKSZ`): a power of two from 1 to 32 KiB.
    pub block_size: u32,
}

impl SegmentHeader {
    /// Reads the header from the first bytes of a segment (at least [`LONG_HEADER_LEN`];
    /// more are ignored). Refuses anything that is not the start of a segment: too short,
    /// no long-header flag or unknown flags, a segment or page size PostgreSQL cannot have,
    /// a page address inside a segment. An unknown magic is accepted (a newer release).
    pub fn parse(first_bytes: &[u8]) -> Result<SegmentHeader, WalError> {
        let b: &[u8; LONG_HEADER_LEN] = first_bytes
            .get(..LONG_HEADER_LEN)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| {
                WalError::Header(format!(
                    "{} bytes, shorter than the {LONG_HEADER_LEN}-byte long page header",
                    first_bytes.len()
                ))
            })?;
        let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
        let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let u64_at = |o: usize| u64::from(u32_at(o)) | (u64::from(u32_at(o + 4)) << 32);
        let info = u16_at(2);
        if info & XLP_LONG_HEADER == 0 {
            return Err(WalError::Header(format!(
                "page flags {info:#06x} lack the long-header bit {XLP_LONG_HEADER:#06x} \
                 every segment's first page has"
            )));
        }
        if info & !XLP_ALL_FLAGS != 0 {
            return Err(WalError::Header(format!(
                "page flags {info:#06x} have bits PostgreSQL does not define"
            )));
        }
        let seg_size = SegmentSize::new(u32_at(32))
            .map_err(|e| WalError::Header(format!("its segment size: {e}")))?;
        let block_size = u32_at(36);
        if !(block_size.is_power_of_two() && (1024..=32768).contains(&block_size)) {
            return Err(WalError::Header(format!(
                "WAL page size {block_size} is not a power of two from 1 KiB to 32 KiB"
            )));
        }
        let timeline = u32_at(4);
        if timeline == 0 {
            return Err(WalError::Header(
                "timeline 0 does not exist (timelines start at 1)".into(),
            ));
        }
        let page_addr = u64_at(8);
        if page_addr % u64::from(seg_size.get()) != 0 {
            return Err(WalError::Header(format!(
                "page address {} is not at the start of a {seg_size} segment",
                super::Lsn(page_addr)
            )));
        }
        Ok(SegmentHeader {
            magic: u16_at(0),
            info,
            timeline,
            page_addr,
            system_id: u64_at(24),
            seg_size,
            block_size,
        })
    }

    /// The major release that wrote the segment, if its magic is known.
    pub fn pg_major(&self) -> Option<u32> {
        pg_major_of_magic(self.magic)
    }

    /// Checks that the header belongs to a file named `name`: a segment (or `.partial`
    /// segment) whose number times the segment size is the header's page address, on the
    /// header's timeline or a later one. Later, because the first segment of a new timeline
    /// starts as a copy of its parent's segment up to the switch point (PostgreSQL copies
    /// it at promotion), so its first page still carries the parent's timeline; a header
    /// from a later timeline than the name's is refused. History and backup history files
    /// have no segment header: an error.
    pub fn check_name(&self, name: &WalName) -> Result<(), WalError> {
        let mismatch = |what: String| WalError::NameMismatch {
            name: name.to_string(),
            what,
        };
        let segment = match name {
            WalName::Segment(s) | WalName::Partial { segment: s } => *s,
            WalName::History { .. } | WalName::BackupLabel { .. } => {
                return Err(mismatch(
                    "a history or backup history file is text, not a WAL segment".into(),
                ))
            }
        };
        let start = segment
            .start_lsn(self.seg_size)
            .map_err(|e| mismatch(e.to_string()))?;
        if start.0 != self.page_addr {
            return Err(mismatch(format!(
                "the name's segment starts at {start} with {} segments, the header's page \
                 address is {}",
                self.seg_size,
                super::Lsn(self.page_addr)
            )));
        }
        if self.timeline > segment.timeline() {
            return Err(mismatch(format!(
                "the name is on timeline {}, the header on the later timeline {}",
                segment.timeline(),
                self.timeline
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "header_tests.rs"]
mod tests;
