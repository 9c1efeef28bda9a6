//! Base backups of a PostgreSQL cluster: what a base backup's snapshot records, and the
//! project's base backups read back from the repository.
//!
//! A base backup is an ordinary files snapshot of the cluster's data directory (its one
//! path), tagged [`TAG`], whose tree also holds the `backup_label` (and `tablespace_map`,
//! when there is one) that `pg_backup_stop` returned, at the data directory's root: restored
//! by any means, it is a data directory PostgreSQL recovers correctly. What a restore needs
//! to choose one is in the snapshot's `source_meta`, under the keys of [`BaseBackup`] (a
//! contract: spec/wal.md lists them).

use strata_db::wal::{Lsn, SegmentName, SegmentSize};
use strata_format::id::SnapshotId;
use strata_format::snapshot::SnapshotFile;

use crate::{AppError, Result};

/// The tag of every base backup's snapshot.
pub const TAG: &str = "pg-basebackup";

/// The `source_meta` keys of a base backup.
pub mod key {
    pub const SYSTEM_ID: &str = "pg_system_id";
    pub const VERSION_NUM: &str = "pg_version_num";
    pub const TIMELINE: &str = "pg_timeline";
    pub const START_LSN: &str = "pg_start_lsn";
    pub const STOP_LSN: &str = "pg_stop_lsn";
    pub const SEG_SIZE: &str = "pg_seg_size";
    pub const START_TIME: &str = "pg_start_time_ns";
    pub const STOP_TIME: &str = "pg_stop_time_ns";
    pub const DATA_DIR: &str = "pg_data_dir";
}

/// One base backup, as its snapshot records it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BaseBackup {
    pub snapshot: SnapshotId,
    /// The cluster's system identifier (as text in JSON: it does not fit JSON's safe
    /// integers).
    #[serde(serialize_with = "as_text")]
    pub system_id: u64,
    /// `server_version_num` (150004 for 15.4).
    pub version_num: u32,
    /// The timeline the backup was taken on.
    pub timeline: u32,
    #[serde(serialize_with = "as_text")]
    pub start_lsn: Lsn,
    /// Where WAL replay reaches a consistent state: a recovery must replay at least this far.
    #[serde(serialize_with = "as_text")]
    pub stop_lsn: Lsn,
    pub seg_size: u32,
    /// The server's clock when the backup started and when `pg_backup_stop` returned (Unix
    /// nanoseconds): a restore to a time needs a base backup that stopped before it.
    pub start_time_ns: i64,
    pub stop_time_ns: i64,
    /// The data directory it was taken from (the snapshot's path).
    pub data_dir: String,
}

fn as_text<S: serde::Serializer, T: std::fmt::Display>(
    v: &T,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.collect_str(v)
}

impl BaseBackup {
    /// The `source_meta` pairs that record it.
    pub fn to_meta(&self) -> Vec<(String, String)> {
        [
            (key::SYSTEM_ID, self.system_id.to_string()),
            (key::VERSION_NUM, self.version_num.to_string()),
            (key::TIMELINE, self.timeline.to_string()),
            (key::START_LSN, self.start_lsn.to_string()),
            (key::STOP_LSN, self.stop_lsn.to_string()),
            (key::SEG_SIZE, self.seg_size.to_string()),
            (key::START_TIME, self.start_time_ns.to_string()),
            (key::STOP_TIME, self.stop_time_ns.to_string()),
            (key::DATA_DIR, self.data_dir.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// The base backup `snap` records: `None` when it is not one (no [`TAG`]), an error when
    /// it carries the tag but not every fact a restore needs (a snapshot from the repository
    /// is untrusted).
    pub fn from_snapshot(id: SnapshotId, snap: &SnapshotFile) -> Option<Result<BaseBackup>> {
        if !snap.tags.iter().any(|t| t == TAG) {
            return None;
        }
        Some(Self::read_meta(id, snap))
    }

    fn read_meta(id: SnapshotId, snap: &SnapshotFile) -> Result<BaseBackup> {
        let get = |k: &str| -> Result<&str> {
            snap.source_meta
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
                .ok_or_else(|| {
                    AppError::Invalid(format!(
                        "snapshot {} is tagged {TAG} but does not record {k}",
                        id.short()
                    ))
                })
        };
        fn num<T: std::str::FromStr>(id: &SnapshotId, k: &str, v: &str) -> Result<T> {
            v.parse().map_err(|_| {
                AppError::Invalid(format!(
                    "snapshot {}: {k} is {v:?}, not a number",
                    id.short()
                ))
            })
        }
        let lsn = |k: &str| -> Result<Lsn> {
            let v = get(k)?;
            Lsn::parse(v)
                .map_err(|e| AppError::Invalid(format!("snapshot {}: {k}: {e}", id.short())))
        };
        let b = BaseBackup {
            snapshot: id,
            system_id: num(&id, key::SYSTEM_ID, get(key::SYSTEM_ID)?)?,
            version_num: num(&id, key::VERSION_NUM, get(key::VERSION_NUM)?)?,
            timeline: num(&id, key::TIMELINE, get(key::TIMELINE)?)?,
            start_lsn: lsn(key::START_LSN)?,
            stop_lsn: lsn(key::STOP_LSN)?,
            seg_size: num(&id, key::SEG_SIZE, get(key::SEG_SIZE)?)?,
            start_time_ns: num(&id, key::START_TIME, get(key::START_TIME)?)?,
            stop_time_ns: num(&id, key::STOP_TIME, get(key::STOP_TIME)?)?,
            data_dir: get(key::DATA_DIR)?.to_string(),
        };
        if b.timeline == 0 || b.stop_lsn < b.start_lsn || b.stop_time_ns < b.start_time_ns {
            return Err(AppError::Invalid(format!(
                "snapshot {}: its base backup facts do not agree (timeline {}, LSN {} to {})",
                id.short(),
                b.timeline,
                b.start_lsn,
                b.stop_lsn
            )));
        }
        b.size()?;
        Ok(b)
    }

    /// The segment size, checked.
    pub fn size(&self) -> Result<SegmentSize> {
        SegmentSize::new(self.seg_size)
            .map_err(|e| AppError::Invalid(format!("snapshot {}: {e}", self.snapshot.short())))
    }

    /// The first segment a recovery from it reads (the one holding its start LSN).
    pub fn start_segment(&self) -> Result<SegmentName> {
        SegmentName::holding(self.start_lsn, self.timeline, self.size()?)
            .map_err(|e| AppError::Invalid(e.to_string()))
    }

    /// The segment holding the last byte before its stop LSN: once it is archived, the
    /// backup is complete (restorable).
    pub fn stop_segment(&self) -> Result<SegmentName> {
        SegmentName::holding(
            Lsn(self.stop_lsn.0.saturating_sub(1)),
            self.timeline,
            self.size()?,
        )
        .map_err(|e| AppError::Invalid(e.to_string()))
    }
}

/// `project`'s base backups in `snaps`, oldest first, and the problems of those whose
/// facts cannot be read (each named, never silently dropped).
pub fn of_project<'a>(
    snaps: impl IntoIterator<Item = &'a (SnapshotId, SnapshotFile)>,
    project: &str,
) -> (Vec<BaseBackup>, Vec<String>) {
    let mut found = Vec::new();
    let mut problems = Vec::new();
    for (id, snap) in snaps {
        if snap.project.as_deref() != Some(project) {
            continue;
        }
        match BaseBackup::from_snapshot(*id, snap) {
            None => {}
            Some(Ok(b)) => found.push(b),
            Some(Err(e)) => problems.push(e.to_string()),
        }
    }
    found.sort_by_key(|b| (b.stop_time_ns, b.stop_lsn));
    (found, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(meta: Vec<(String, String)>, tags: Vec<String>) -> SnapshotFile {
        SnapshotFile {
            time_ns: 1,
            hostname: "h".into(),
            username: "u".into(),
            uid: 0,
            gid: 0,
            paths: vec!["/pg".into()],
            tags,
            project: Some("shop".into()),
            excludes: vec![],
            source: strata_format::snapshot::SourceKind::Files,
            source_meta: meta,
            tree: strata_format::id::BlobId::default(),
            parent: None,
            program_version: "t".into(),
            summary: Default::default(),
            keep_until_ns: None,
            original: None,
            rewrites: vec![],
        }
    }

    fn sample() -> BaseBackup {
        BaseBackup {
            snapshot: SnapshotId(strata_format::id::Digest([7; 32])),
            system_id: 7_300_000_000_000_000_001,
            version_num: 150004,
            timeline: 2,
            start_lsn: Lsn(0x3_0000_0028),
            stop_lsn: Lsn(0x3_0100_0000),
            seg_size: 16 << 20,
            start_time_ns: 10,
            stop_time_ns: 20,
            data_dir: "/var/lib/postgresql/15/main".into(),
        }
    }

    #[test]
    fn meta_round_trips_and_names_segments() {
        let b = sample();
        let snap = snapshot(b.to_meta(), vec![TAG.into()]);
        let back = BaseBackup::from_snapshot(b.snapshot, &snap)
            .unwrap()
            .unwrap();
        assert_eq!(back, b);
        assert_eq!(
            back.start_segment().unwrap().to_string(),
            "000000020000000300000000"
        );
        // The stop LSN is the first byte of segment 1: the backup ends in segment 0.
        assert_eq!(
            back.stop_segment().unwrap().to_string(),
            "000000020000000300000000"
        );
    }

    #[test]
    fn untagged_is_none_and_missing_or_bad_facts_are_errors() {
        let b = sample();
        assert!(BaseBackup::from_snapshot(b.snapshot, &snapshot(b.to_meta(), vec![])).is_none());
        let mut meta = b.to_meta();
        meta.retain(|(k, _)| k != key::STOP_LSN);
        let e = BaseBackup::from_snapshot(b.snapshot, &snapshot(meta, vec![TAG.into()]))
            .unwrap()
            .unwrap_err();
        assert!(e.to_string().contains(key::STOP_LSN), "{e}");
        let mut meta = b.to_meta();
        for (k, v) in &mut meta {
            if k == key::SEG_SIZE {
                *v = "12345".into();
            }
        }
        assert!(
            BaseBackup::from_snapshot(b.snapshot, &snapshot(meta, vec![TAG.into()]))
                .unwrap()
                .is_err()
        );
    }
}
