//! The names PostgreSQL gives the files it archives (`%f` of `archive_command` and
//! `restore_command`), and segment arithmetic on them.
//!
//! A segment is named `TTTTTTTTLLLLLLLLSSSSSSSS`: timeline, then the segment number split in
//! two, `log` = number / segments-per-4-GiB and `seg` = number % segments-per-4-GiB (the
//! split depends on the cluster's segment size: 256 segments of 16 MiB per 4 GiB). Names are
//! refused unless PostgreSQL could have written them: uppercase hexadecimal of the exact
//! length, no path, timeline 1 or more, and `seg` small enough for some segment size (below
//! 0x1000, the count at 1 MiB); [`SegmentName::number`] checks `seg` against the actual size.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use super::error::{shown, WalError};
use super::lsn::Lsn;

/// The size of a cluster's WAL segments (`wal_segment_size`, fixed at `initdb`): a power of
/// two from 1 MiB to 1 GiB, 16 MiB unless chosen otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SegmentSize(u32);

impl SegmentSize {
    /// PostgreSQL's default, 16 MiB.
    pub const DEFAULT: SegmentSize = SegmentSize(16 << 20);
    /// The smallest size PostgreSQL allows, 1 MiB.
    pub const MIN: u32 = 1 << 20;
    /// The largest size PostgreSQL allows, 1 GiB.
    pub const MAX: u32 = 1 << 30;

    /// `bytes` if it is a size PostgreSQL allows.
    pub fn new(bytes: u32) -> Result<SegmentSize, WalError> {
        if bytes.is_power_of_two() && (Self::MIN..=Self::MAX).contains(&bytes) {
            Ok(SegmentSize(bytes))
        } else {
            Err(WalError::SegmentSize { size: bytes.into() })
        }
    }

    /// The size in bytes.
    pub fn get(self) -> u32 {
        self.0
    }

    /// Segments per 4 GiB of WAL (PostgreSQL's `XLogSegmentsPerXLogId`): the range of `seg`.
    /// The offset of position `lsn` inside its segment.
    pub fn offset_of(self, lsn: Lsn) -> u32 {
        // Below the segment size, a u32.
        (lsn.0 % u64::from(self.0)) as u32
    }

    pub fn segs_per_xlogid(self) -> u32 {
        // 2^32 / a power of two in 2^20..=2^30: 4 to 4096, never zero.
        ((1u64 << 32) / u64::from(self.0)) as u32
    }
}

impl fmt::Display for SegmentSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} MiB", self.0 >> 20)
    }
}

/// The largest `seg` of any segment size plus one (1 MiB segments: 4096 per 4 GiB).
const SEG_LIMIT: u32 = 0x1000;

/// The name of one WAL segment: timeline, `log` and `seg`. Always one PostgreSQL could
/// write (timeline 1 or more, `seg` below 0x1000); ordered by timeline, then position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SegmentName {
    // Field order is the ordering: timeline, then (log, seg), which for names valid under
    // one segment size is the order of their segment numbers.
    timeline: u32,
    log: u32,
    seg: u32,
}

impl SegmentName {
    /// The segment `log`/`seg` of `timeline`, if PostgreSQL could name a segment so.
    pub fn new(timeline: u32, log: u32, seg: u32) -> Result<SegmentName, WalError> {
        let name = SegmentName { timeline, log, seg };
        match refusal(timeline, seg) {
            Some(reason) => Err(WalError::name(&name.to_string(), reason)),
            None => Ok(name),
        }
    }

    /// Parses exactly `TTTTTTTTLLLLLLLLSSSSSSSS` (uppercase).
    pub fn parse(name: &str) -> Result<SegmentName, WalError> {
        match WalName::parse(name)? {
            WalName::Segment(s) => Ok(s),
            _ => Err(WalError::name(name, "it is not a segment's name")),
        }
    }

    /// The segment that holds byte `number * size` of `timeline`'s WAL.
    pub fn from_number(
        timeline: u32,
        number: u64,
        size: SegmentSize,
    ) -> Result<SegmentName, WalError> {
        let per = u64::from(size.segs_per_xlogid());
        let log = u32::try_from(number / per).map_err(|_| {
            WalError::OutOfRange(format!(
                "segment number {number} is beyond the end of the WAL with {size} segments"
            ))
        })?;
        // Below `per`, which is at most 4096.
        let seg = (number % per) as u32;
        SegmentName::new(timeline, log, seg)
    }

    pub fn timeline(self) -> u32 {
        self.timeline
    }

    pub fn log(self) -> u32 {
        self.log
    }

    pub fn seg(self) -> u32 {
        self.seg
    }

    /// The segment's number (`log * segs_per_xlogid + seg`, PostgreSQL's `XLogSegNo`);
    /// an error if `seg` does not exist with `size` (say `…00000100` with 16 MiB segments).
    pub fn number(self, size: SegmentSize) -> Result<u64, WalError> {
        let per = size.segs_per_xlogid();
        if self.seg >= per {
            return Err(WalError::OutOfRange(format!(
                "{self} does not exist with {size} segments: its segment part must be below {per:08X}"
            )));
        }
        Ok(u64::from(self.log) * u64::from(per) + u64::from(self.seg))
    }

    /// The LSN of the segment's first byte.
    pub fn start_lsn(self, size: SegmentSize) -> Result<Lsn, WalError> {
        // `number` < 2^32 * (2^32 / size), so number * size < 2^64: no overflow.
        Ok(Lsn(self.number(size)? * u64::from(size.get())))
    }

    /// The segment of `timeline` that holds position `lsn`.
    pub fn holding(lsn: Lsn, timeline: u32, size: SegmentSize) -> Result<SegmentName, WalError> {
        SegmentName::from_number(timeline, lsn.0 / u64::from(size.get()), size)
    }

    /// The segment after this one on the same timeline.
    pub fn next(self, size: SegmentSize) -> Result<SegmentName, WalError> {
        let n = self.number(size)?;
        let next = n.checked_add(1).ok_or_else(|| {
            WalError::OutOfRange(format!("{self} is the last segment of the WAL"))
        })?;
        SegmentName::from_number(self.timeline, next, size)
    }
}

impl fmt::Display for SegmentName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08X}{:08X}{:08X}", self.timeline, self.log, self.seg)
    }
}

impl FromStr for SegmentName {
    type Err = WalError;
    fn from_str(s: &str) -> Result<Self, WalError> {
        SegmentName::parse(s)
    }
}

/// A file PostgreSQL archives, by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WalName {
    /// A WAL segment, `000000010000000A000000FF`.
    Segment(SegmentName),
    /// A timeline's history file, `00000002.history`.
    History { timeline: u32 },
    /// A backup history file written when a base backup ends,
    /// `<segment>.<offset of the backup's start, 8 hex digits>.backup`.
    BackupLabel { segment: SegmentName, offset: u32 },
    /// A segment a standby or `pg_receivewal` stopped writing early, `<segment>.partial`.
    Partial { segment: SegmentName },
}

impl WalName {
    /// Parses a `%f` name; anything PostgreSQL would not archive is an error.
    pub fn parse(name: &str) -> Result<WalName, WalError> {
        if name.is_empty() {
            return Err(WalError::name(name, "it is empty"));
        }
        if name.contains(['/', '\\', '\0']) || name.contains("..") {
            return Err(WalError::name(name, "it is a path, not a file name"));
        }
        if !name.is_ascii() {
            return Err(WalError::name(
                name,
                "it holds characters other than hexadecimal digits and a suffix",
            ));
        }
        // ASCII from here on: every byte index is a character boundary.
        let (stem, suffix) = match name.find('.') {
            Some(i) => name.split_at(i),
            None => (name, ""),
        };
        match suffix {
            "" => segment_part(name, stem).map(WalName::Segment),
            ".history" => {
                let timeline = hex_field(name, stem, "timeline")?;
                if timeline == 0 {
                    return Err(WalError::name(
                        name,
                        "timeline 0 does not exist (timelines start at 1)",
                    ));
                }
                Ok(WalName::History { timeline })
            }
            ".partial" => Ok(WalName::Partial {
                segment: segment_part(name, stem)?,
            }),
            s if s.len() == 16 && s.ends_with(".backup") => {
                let segment = segment_part(name, stem)?;
                let offset = hex_field(name, &s[1..9], "backup offset")?;
                if offset >= SegmentSize::MAX {
                    return Err(WalError::name(
                        name,
                        "its backup offset is beyond every segment size",
                    ));
                }
                Ok(WalName::BackupLabel { segment, offset })
            }
            s => Err(WalError::name(name, format!("unknown suffix {}", shown(s)))),
        }
    }

    /// The timeline the file belongs to.
    pub fn timeline(&self) -> u32 {
        match self {
            WalName::Segment(s) => s.timeline(),
            WalName::History { timeline } => *timeline,
            WalName::BackupLabel { segment, .. } | WalName::Partial { segment } => {
                segment.timeline()
            }
        }
    }

    /// The segment a segment, backup history or partial file is named after.
    pub fn segment(&self) -> Option<SegmentName> {
        match self {
            WalName::Segment(s) => Some(*s),
            WalName::History { .. } => None,
            WalName::BackupLabel { segment, .. } | WalName::Partial { segment } => Some(*segment),
        }
    }

    /// Sort key: timeline, then position (a history file before the timeline's segments),
    /// then the kind of file.
    fn key(&self) -> (u32, Option<SegmentName>, u8, u32) {
        let (rank, offset) = match self {
            WalName::History { .. } => (0, 0),
            WalName::Segment(_) => (1, 0),
            WalName::BackupLabel { offset, .. } => (2, *offset),
            WalName::Partial { .. } => (3, 0),
        };
        (self.timeline(), self.segment(), rank, offset)
    }
}

impl Ord for WalName {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

impl PartialOrd for WalName {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl From<SegmentName> for WalName {
    fn from(s: SegmentName) -> WalName {
        WalName::Segment(s)
    }
}

impl fmt::Display for WalName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WalName::Segment(s) => write!(f, "{s}"),
            WalName::History { timeline } => write!(f, "{timeline:08X}.history"),
            WalName::BackupLabel { segment, offset } => write!(f, "{segment}.{offset:08X}.backup"),
            WalName::Partial { segment } => write!(f, "{segment}.partial"),
        }
    }
}

impl FromStr for WalName {
    type Err = WalError;
    fn from_str(s: &str) -> Result<Self, WalError> {
        WalName::parse(s)
    }
}

/// The 24-digit segment part `field` of `name`.
fn segment_part(name: &str, field: &str) -> Result<SegmentName, WalError> {
    if field.len() != 24 {
        return Err(WalError::name(
            name,
            format!("its segment part has {} characters, not 24", field.len()),
        ));
    }
    let timeline = hex_field(name, &field[..8], "timeline")?;
    let log = hex_field(name, &field[8..16], "log")?;
    let seg = hex_field(name, &field[16..], "segment")?;
    match refusal(timeline, seg) {
        Some(reason) => Err(WalError::name(name, reason)),
        None => Ok(SegmentName { timeline, log, seg }),
    }
}

/// Why PostgreSQL would not name a segment with `timeline` and `seg`, if it would not.
fn refusal(timeline: u32, seg: u32) -> Option<String> {
    if timeline == 0 {
        Some("timeline 0 does not exist (timelines start at 1)".into())
    } else if seg >= SEG_LIMIT {
        Some(format!(
            "its segment part {seg:08X} is beyond every segment size (at most {:08X}, with \
             1 MiB segments)",
            SEG_LIMIT - 1
        ))
    } else {
        None
    }
}

/// Exactly 8 uppercase hexadecimal digits (ASCII `field`), as PostgreSQL's `%08X` writes.
fn hex_field(name: &str, field: &str, what: &str) -> Result<u32, WalError> {
    let b = field.as_bytes();
    if b.len() != 8 {
        return Err(WalError::name(
            name,
            format!("its {what} part has {} characters, not 8", b.len()),
        ));
    }
    let mut v = 0u32;
    for &c in b {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'A'..=b'F' => c - b'A' + 10,
            b'a'..=b'f' => {
                return Err(WalError::name(
                    name,
                    "it has lowercase hexadecimal digits (PostgreSQL writes uppercase)",
                ))
            }
            _ => {
                return Err(WalError::name(
                    name,
                    format!("its {what} part is not hexadecimal"),
                ))
            }
        };
        v = (v << 4) | u32::from(d);
    }
    Ok(v)
}

#[cfg(test)]
#[path = "name_tests.rs"]
mod tests;
