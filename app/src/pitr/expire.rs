//! WAL retention (`strata pg expire`, and `strata run`'s prune step): a project's archive
//! keeps what its base backups need and nothing older, so that forgetting a base backup
//! frees the WAL only it needed once prune runs (spec/wal.md, "Retention").
//!
//! The rule ([`to_drop`], pure): with `S` the smallest start segment number among the
//! project's base backups, drop every segment, `.backup` and `.partial` file named after a
//! segment numbered below `S`, on every timeline; keep history files. Segment numbers are
//! positions in the WAL, which continues across timelines, so a base backup on any
//! timeline needs nothing below its own start: the smallest start keeps what every kept
//! base backup needs (on one timeline, that is the oldest base backup's start).
//!
//! Nothing is dropped unless every base backup is known: no base backup at all, a snapshot
//! that cannot be read (it could be the oldest base backup), a base backup whose facts
//! cannot be read or that is of another cluster than the archive each stop it, saying why.

use std::collections::BTreeSet;

use strata_db::wal::{SegmentName, SegmentSize, WalName};
use strata_engine::wal;
use strata_engine::{Operation, Repository};

use super::base::{self, BaseBackup};
use crate::config::Config;
use crate::{AppError, Result};

/// What `strata pg expire` did (or, with `dry_run`, would do).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ExpireReport {
    pub project: String,
    pub repository: String,
    pub dry_run: bool,
    /// The base backup whose start is the oldest kept (its snapshot id), and that start
    /// segment: everything named before it was dropped. `None`: nothing was (see `note`).
    pub oldest_base: Option<String>,
    pub keep_from: Option<String>,
    /// The archived files dropped, sorted.
    pub dropped: Vec<String>,
    /// Segments among them, and the bytes of all of them.
    pub segments_dropped: u64,
    pub bytes_dropped: u64,
    /// WAL files written without the dropped entries, and deleted.
    pub files_written: usize,
    pub files_deleted: usize,
    /// Why nothing was dropped, when nothing was.
    pub note: Option<String>,
}

/// The names among `names` to drop when everything from segment number `keep_from` on is
/// kept (see the module docs); segment numbers with the cluster's `size`.
pub fn to_drop<'a>(
    names: impl IntoIterator<Item = &'a str>,
    keep_from: u64,
    size: SegmentSize,
) -> BTreeSet<String> {
    names
        .into_iter()
        .filter(|name| {
            let segment = match WalName::parse(name) {
                Ok(WalName::History { .. }) | Err(_) => return false,
                Ok(parsed) => parsed.segment(),
            };
            segment
                .and_then(|s| s.number(size).ok())
                .is_some_and(|n| n < keep_from)
        })
        .map(str::to_string)
        .collect()
}

/// The base backup with the smallest start segment among `bases` and that segment's
/// number, or why nothing may be dropped (`Err(note)`; a base backup of another cluster
/// than `system_id` is an error).
fn oldest_start(
    bases: &[BaseBackup],
    system_id: Option<u64>,
) -> Result<std::result::Result<(BaseBackup, SegmentName, u64), String>> {
    let mut oldest: Option<(BaseBackup, SegmentName, u64)> = None;
    for b in bases {
        if let Some(id) = system_id.filter(|id| *id != b.system_id) {
            return Err(AppError::Invalid(format!(
                "base backup {} is of the cluster with system identifier {}, but the WAL \
                 archive is of cluster {id}: nothing was expired; forget the base backups of \
                 the old cluster (or archive the new one under a new project) first",
                b.snapshot.short(),
                b.system_id
            )));
        }
        let start = b.start_segment()?;
        let n = start
            .number(b.size()?)
            .map_err(|e| AppError::Invalid(e.to_string()))?;
        if oldest.as_ref().is_none_or(|(_, _, m)| n < *m) {
            oldest = Some((b.clone(), start, n));
        }
    }
    Ok(oldest.ok_or_else(|| {
        "the project has no base backup: nothing is expired (every archived segment may \
         still be needed by the first one)"
            .to_string()
    }))
}

/// Expires `project`'s WAL in `repo` (opened for writing, under a lock: the runner's prune
/// holds a prune lock, `pg expire` a shared one as a push does); `repository` names it
/// in the report.
pub fn expire_in(
    repo: &Repository,
    repository: &str,
    project: &str,
    dry_run: bool,
) -> Result<ExpireReport> {
    let mut report = ExpireReport {
        project: project.to_string(),
        repository: repository.to_string(),
        dry_run,
        oldest_base: None,
        keep_from: None,
        dropped: Vec::new(),
        segments_dropped: 0,
        bytes_dropped: 0,
        files_written: 0,
        files_deleted: 0,
        note: None,
    };
    let mut readable = Vec::new();
    for (id, snap) in strata_engine::snapshots::list_lenient(repo)? {
        match snap {
            Ok(s) => readable.push((id, s)),
            Err(e) => {
                return Err(AppError::Invalid(format!(
                    "snapshot {} cannot be read ({e}); it may be the oldest base backup of \
                     project {project}, so no WAL was expired. Run `strata check`",
                    id.short()
                )))
            }
        }
    }
    let (bases, problems) = base::of_project(&readable, project);
    if let Some(p) = problems.first() {
        return Err(AppError::Invalid(format!(
            "{p}; without every base backup's start no WAL of project {project} was expired"
        )));
    }
    let archive = wal::read_archive(repo)?;
    let (oldest, start, keep_from) = match oldest_start(&bases, archive.system_id(project)?)? {
        Ok(found) => found,
        Err(note) => {
            report.note = Some(note);
            return Ok(report);
        }
    };
    report.oldest_base = Some(oldest.snapshot.to_hex());
    report.keep_from = Some(start.to_string());
    let drop = to_drop(
        archive.entries(project).into_keys(),
        keep_from,
        oldest.size()?,
    );
    let stats = wal::expire(repo, &archive, project, &drop, dry_run)?;
    report.segments_dropped = stats
        .dropped
        .iter()
        .filter(|n| matches!(WalName::parse(n), Ok(WalName::Segment(_))))
        .count() as u64;
    report.dropped = stats.dropped;
    report.bytes_dropped = stats.bytes_dropped;
    report.files_written = stats.files_written;
    report.files_deleted = stats.files_deleted;
    if report.dropped.is_empty() {
        report.note = Some(format!(
            "nothing archived before {start} (the start of base backup {}, the oldest kept)",
            oldest.snapshot.short()
        ));
    }
    Ok(report)
}

/// `strata pg expire`: [`expire_in`] on the project's primary repository.
pub fn expire(cfg: &Config, project: &str, dry_run: bool) -> Result<ExpireReport> {
    let (repository, spec) = super::primary(cfg, project)?;
    let opened = super::open(cfg, spec, Operation::WalPush)?;
    expire_in(&opened.repo, repository, project, dry_run)
}

/// Which of `project`'s archived files a repository holding the base backups `bases` needs
/// (a copy target: what its expiry would drop is not copied there). `None` when there is
/// no base backup or one's facts do not add up: then every file is.
pub fn needed_by(bases: &[BaseBackup]) -> Option<impl Fn(&str) -> bool> {
    let mut keep: Option<(u64, SegmentSize)> = None;
    for b in bases {
        let size = b.size().ok()?;
        let n = b.start_segment().ok()?.number(size).ok()?;
        if keep.is_none_or(|(m, _)| n < m) {
            keep = Some((n, size));
        }
    }
    let (keep_from, size) = keep?;
    Some(move |name: &str| to_drop([name], keep_from, size).is_empty())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use strata_db::wal::Lsn;
    use strata_engine::wal::Push;
    use strata_format::id::{Digest, SnapshotId};
    use strata_format::snapshot::SnapshotFile;
    use strata_storage::{Backend, FileType};

    use super::*;

    const SYSTEM_ID: u64 = 7_300_000_000_000_000_001;
    const SEG: u64 = 16 << 20;

    fn repository() -> Repository {
        let backend: Arc<dyn Backend> = Arc::new(strata_storage::OpendalBackend::memory().unwrap());
        let opts = strata_engine::InitOptions {
            kdf: strata_format::keyfile::KdfParams {
                m_kib: 64,
                t: 1,
                p: 1,
            },
            ..Default::default()
        };
        Repository::init(backend.clone(), b"pw", &opts).unwrap();
        Repository::open(backend, b"pw").unwrap()
    }

    fn push_segment(repo: &Repository, n: u32) {
        let name = format!("0000000100000000000000{n:02X}");
        let content = format!("segment {n}").repeat(100);
        wal::push(
            repo,
            &Push {
                project: "shop",
                system_id: SYSTEM_ID,
                timeline: 1,
                seg_size: SEG as u32,
                wal_magic: 0xD110,
                name: &name,
                content: content.as_bytes(),
            },
        )
        .unwrap();
    }

    /// A base backup's snapshot (of cluster `system_id`) starting and stopping in segment
    /// `n`, saved as the repository's snapshot `id`.
    fn save_base(repo: &Repository, id: u8, system_id: u64, n: u64) {
        let b = BaseBackup {
            snapshot: SnapshotId(Digest([id; 32])),
            system_id,
            version_num: 150004,
            timeline: 1,
            start_lsn: Lsn(n * SEG + 0x28),
            stop_lsn: Lsn(n * SEG + 0x1000),
            seg_size: SEG as u32,
            start_time_ns: 10,
            stop_time_ns: 20,
            data_dir: "/pg".into(),
        };
        let snap = SnapshotFile {
            time_ns: 1,
            hostname: "h".into(),
            username: "u".into(),
            uid: 0,
            gid: 0,
            paths: vec!["/pg".into()],
            tags: vec![base::TAG.into()],
            project: Some("shop".into()),
            excludes: vec![],
            source: strata_format::snapshot::SourceKind::Files,
            source_meta: b.to_meta(),
            tree: strata_format::id::BlobId::default(),
            parent: None,
            program_version: "t".into(),
            summary: Default::default(),
            keep_until_ns: None,
            original: None,
            rewrites: vec![],
        };
        repo.save_object(FileType::Snapshot, &snap).unwrap();
    }

    fn names(repo: &Repository) -> Vec<String> {
        let archive = wal::read_archive(repo).unwrap();
        archive
            .entries("shop")
            .keys()
            .map(|n| n.to_string())
            .collect()
    }

    #[test]
    fn expiry_keeps_everything_from_the_oldest_start_and_nothing_goes_without_every_base_backup_known(
    ) {
        let repo = repository();
        for n in 1..=6 {
            push_segment(&repo, n);
        }
        // No base backup: nothing dropped, and said so.
        let r = expire_in(&repo, "main", "shop", false).unwrap();
        assert!(r.dropped.is_empty());
        assert!(r.note.unwrap().contains("no base backup"));
        assert_eq!(names(&repo).len(), 6);

        save_base(&repo, 1, SYSTEM_ID, 5);
        save_base(&repo, 2, SYSTEM_ID, 3);
        let dry = expire_in(&repo, "main", "shop", true).unwrap();
        assert_eq!(dry.keep_from.as_deref(), Some("000000010000000000000003"));
        assert_eq!(dry.segments_dropped, 2);
        assert_eq!(names(&repo).len(), 6, "a dry run changes nothing");
        let r = expire_in(&repo, "main", "shop", false).unwrap();
        assert_eq!(
            r.dropped,
            ["000000010000000000000001", "000000010000000000000002"]
        );
        assert_eq!(names(&repo)[0], "000000010000000000000003");

        // A base backup of another cluster: refused, nothing dropped.
        save_base(&repo, 3, 42, 6);
        let e = expire_in(&repo, "main", "shop", false).unwrap_err();
        assert!(e.to_string().contains("is of the cluster"), "{e}");
        assert_eq!(names(&repo).len(), 4);
    }

    #[test]
    fn an_unreadable_snapshot_stops_expiry() {
        let repo = repository();
        for n in 1..=3 {
            push_segment(&repo, n);
        }
        save_base(&repo, 1, SYSTEM_ID, 3);
        repo.block_on(repo.backend().write(
            FileType::Snapshot,
            &"ab".repeat(32),
            b"not a snapshot".to_vec().into(),
        ))
        .unwrap();
        let e = expire_in(&repo, "main", "shop", false).unwrap_err();
        assert!(e.to_string().contains("cannot be read"), "{e}");
        assert_eq!(names(&repo).len(), 3);
    }

    #[test]
    fn everything_named_before_the_oldest_start_goes_on_every_timeline_but_history_stays() {
        let size = SegmentSize::DEFAULT;
        let names = [
            "000000010000000000000003",
            "000000010000000000000004",
            "000000010000000000000004.00000028.backup",
            "000000010000000000000005",
            "000000010000000000000005.00000100.backup",
            "000000010000000000000006.partial",
            // Timeline 2 forked at segment 4: its copy of 4 goes, 5 on stays.
            "00000002.history",
            "000000020000000000000004",
            "000000020000000000000005",
            "000000020000000100000000",
            "not a wal name",
        ];
        let dropped = to_drop(names, 5, size);
        assert_eq!(
            dropped.into_iter().collect::<Vec<_>>(),
            [
                "000000010000000000000003",
                "000000010000000000000004",
                "000000010000000000000004.00000028.backup",
                "000000020000000000000004",
            ]
        );
        // Across a log boundary: 00000001/00000000 is number 256 with 16 MiB segments.
        let dropped = to_drop(
            ["0000000100000000000000FF", "000000010000000100000000"],
            256,
            size,
        );
        assert_eq!(
            dropped.into_iter().collect::<Vec<_>>(),
            ["0000000100000000000000FF"]
        );
        assert!(
            to_drop(names, 0, size).is_empty(),
            "nothing before segment 0"
        );
    }
}
