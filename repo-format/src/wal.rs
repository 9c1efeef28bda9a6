//! WAL files (`wal/<id>`, spec/wal.md): which archived PostgreSQL WAL files (segments,
//! timeline and backup history files) a repository holds for one project's cluster and
//! timeline, and the data blobs that hold each one.
//!
//! A push writes a WAL file of one entry; a merge replaces several by one listing their
//! union. Readers take the union of all WAL files, so the same name may appear in more than
//! one (with the same hash).

use serde::{Deserialize, Serialize};

use crate::envelope::EncryptedObject;
use crate::id::BlobId;
use crate::FormatError;

/// One WAL file: entries of one cluster (`system_id`) and timeline, archived for `project`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalFile {
    /// The project whose cluster this is (one cluster per project).
    pub project: String,
    /// The cluster's database system identifier.
    pub system_id: u64,
    /// The timeline of every entry.
    pub timeline: u32,
    /// The cluster's WAL segment size in bytes; 0 when no entry is a segment (a history
    /// file pushed alone: its writer need not know the size).
    pub seg_size: u32,
    /// `XLOG_PAGE_MAGIC` of the segments' page headers; 0 when no entry is a segment.
    pub wal_magic: u16,
    /// Sorted by name, each name once.
    pub entries: Vec<WalEntry>,
}

/// One archived file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalEntry {
    /// The file's name as PostgreSQL gives it to `archive_command` (see [`name_shape`]).
    pub name: String,
    /// Its length in bytes.
    pub size: u64,
    /// Keyed BLAKE3 of the whole file under the id key (as a blob id of the whole content).
    pub hash: [u8; 32],
    /// The data blobs whose plaintexts, in order, are the file.
    pub blobs: Vec<BlobId>,
    /// When it was pushed, Unix nanoseconds (UTC).
    pub pushed_ns: i64,
}

/// Most entries one WAL file may list; a reader refuses more rather than trusting a count.
pub const MAX_ENTRIES: usize = 1_000_000;

/// Which of PostgreSQL's archive file names `name` is, by its shape alone (the numbers in
/// it are the business of whoever reads them): nothing else can ever be written into
/// `pg_wal` by a restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameShape {
    /// `TTTTTTTTLLLLLLLLSSSSSSSS`: 24 uppercase hex digits.
    Segment,
    /// `TTTTTTTT.history`.
    History,
    /// `<segment>.<8 hex>.backup`.
    BackupLabel,
    /// `<segment>.partial`.
    Partial,
}

fn upper_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
}

/// The shape of an archive file name, or `None` for any other name.
pub fn name_shape(name: &str) -> Option<NameShape> {
    if upper_hex(name, 24) {
        return Some(NameShape::Segment);
    }
    if let Some(tli) = name.strip_suffix(".history") {
        return upper_hex(tli, 8).then_some(NameShape::History);
    }
    if let Some(seg) = name.strip_suffix(".partial") {
        return upper_hex(seg, 24).then_some(NameShape::Partial);
    }
    if let Some(rest) = name.strip_suffix(".backup") {
        let (seg, offset) = rest.split_once('.')?;
        return (upper_hex(seg, 24) && upper_hex(offset, 8)).then_some(NameShape::BackupLabel);
    }
    None
}

/// The timeline an archive file name belongs to (its first 8 hex digits).
pub fn name_timeline(name: &str) -> Option<u32> {
    name_shape(name)?;
    u32::from_str_radix(name.get(..8)?, 16).ok()
}

impl EncryptedObject for WalFile {
    const KIND: &'static str = "wal";
    const OBJECT: &'static str = "WAL file";
    /// Never reuse a number.
    const VERSION: u16 = 1;

    fn validate(&self) -> Result<(), FormatError> {
        let bad = |why: String| Err(FormatError::malformed(Self::OBJECT, why));
        if self.entries.len() > MAX_ENTRIES {
            return bad(format!(
                "{} entries, more than {MAX_ENTRIES}",
                self.entries.len()
            ));
        }
        let has_segments = self.entries.iter().any(|e| {
            matches!(
                name_shape(&e.name),
                Some(NameShape::Segment | NameShape::Partial)
            )
        });
        let sized = self.seg_size.is_power_of_two() && (1 << 20..=1 << 30).contains(&self.seg_size);
        if !(sized || (self.seg_size == 0 && !has_segments)) {
            return bad(format!(
                "segment size {} is not a power of two from 1 MiB to 1 GiB",
                self.seg_size
            ));
        }
        for (i, e) in self.entries.iter().enumerate() {
            if name_shape(&e.name).is_none() {
                return bad(format!("{:?} is not a WAL archive file name", e.name));
            }
            if name_timeline(&e.name) != Some(self.timeline) {
                return bad(format!(
                    "{} is not of timeline {} like the file",
                    e.name, self.timeline
                ));
            }
            if i > 0 && self.entries[i - 1].name >= e.name {
                return bad(format!("entries not sorted or listed twice at {}", e.name));
            }
            if (e.size == 0) != e.blobs.is_empty() {
                return bad(format!(
                    "{}: {} bytes in {} blobs",
                    e.name,
                    e.size,
                    e.blobs.len()
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_the_four_shapes_and_nothing_else() {
        use NameShape::*;
        for (name, shape, tli) in [
            ("000000010000000000000001", Some(Segment), Some(1)),
            ("0000000A00000002000000FF", Some(Segment), Some(10)),
            ("00000002.history", Some(History), Some(2)),
            (
                "000000010000000000000002.00000028.backup",
                Some(BackupLabel),
                Some(1),
            ),
            ("000000030000000000000009.partial", Some(Partial), Some(3)),
            ("0000000100000000000000a1", None, None),
            ("00000001000000000000001", None, None),
            ("0000000100000000000000011", None, None),
            ("../00000001.history", None, None),
            ("00000001.history/x", None, None),
            ("000000010000000000000002.backup", None, None),
            ("000000010000000000000002.0000002.backup", None, None),
            ("", None, None),
            ("000000010000000000000001.partial.partial", None, None),
        ] {
            assert_eq!(name_shape(name), shape, "{name}");
            assert_eq!(name_timeline(name), tli, "{name}");
        }
    }

    fn file(seg_size: u32, names: &[&str]) -> WalFile {
        WalFile {
            project: "p".into(),
            system_id: 1,
            timeline: 1,
            seg_size,
            wal_magic: 0,
            entries: names
                .iter()
                .map(|n| WalEntry {
                    name: n.to_string(),
                    size: 1,
                    hash: [0; 32],
                    blobs: vec![BlobId::default()],
                    pushed_ns: 0,
                })
                .collect(),
        }
    }

    #[test]
    fn a_segment_size_is_needed_only_with_segments() {
        assert!(file(0, &["00000001.history"]).validate().is_ok());
        assert!(file(16 << 20, &["00000001.history"]).validate().is_ok());
        for names in [
            &["000000010000000000000001"][..],
            &["000000010000000000000001.partial"][..],
        ] {
            assert!(file(0, names).validate().is_err(), "{names:?}");
            assert!(file(16 << 20, names).validate().is_ok(), "{names:?}");
            assert!(file(3 << 20, names).validate().is_err(), "{names:?}");
        }
        assert!(
            file(16 << 20, &["00000001.history", "00000001.history"])
                .validate()
                .is_err(),
            "a name twice"
        );
        assert!(
            file(16 << 20, &["00000002.history"]).validate().is_err(),
            "another timeline"
        );
    }
}
