//! Copying a project's WAL archive to another repository (a copy target of `strata run`):
//! a base backup copied without the WAL after it cannot even be started, so the WAL goes
//! along, before the snapshots.
//!
//! Each file the target lacks is fetched (its content checked against the hash it was
//! pushed with), written into the target as data blobs with the target's chunker and key,
//! and listed, with the time it was first pushed, in new WAL files of the target (one per
//! cluster and timeline) written only once their blobs are durable: the target's archive
//! then reads as if PostgreSQL had pushed into it.
//!
//! A segment the target holds with the same size is taken as the same file, unread: both
//! archives are of one cluster (checked), and one cluster's archive never holds two
//! contents under a name (a push refuses it), so reading every segment of both archives on
//! each run to compare would buy nothing. History and backup files (small, and where two
//! histories of one cluster would differ) are compared by content. A conflict fails the
//! copy, naming the files, after writing the rest.

use std::collections::BTreeMap;

use strata_format::wal::{WalEntry, WalFile};
use strata_storage::FileType;

use super::{fetch, read_archive};
use crate::archiver::{BackupOptions, StreamBackup};
use crate::progress::NoProgress;
use crate::{EngineError, Repository, Result};

/// What [`copy_archive`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct WalCopied {
    /// Files copied now.
    pub files: u64,
    /// Files the target held already.
    pub present: u64,
    /// Stored bytes new to the target.
    pub bytes_added: u64,
}

/// Copies `project`'s WAL archive from `from` to `to` (see the module docs): the files
/// `wanted` says yes to (the caller leaves out what the target's retention has no use
/// for, which it would otherwise copy again after every expiry).
pub fn copy_archive(
    from: &Repository,
    to: &Repository,
    project: &str,
    wanted: &dyn Fn(&str) -> bool,
) -> Result<WalCopied> {
    if !to.config().allows_wal() {
        return Err(EngineError::Invalid(format!(
            "the target repository is of format version {}, which predates WAL archiving: \
             the WAL of project {project} cannot be copied there (`strata -r TARGET migrate \
             wal` upgrades a version 3 repository)",
            to.config().format_version
        )));
    }
    let source = read_archive(from)?;
    if let Some((name, e)) = source.unreadable.first() {
        return Err(EngineError::Corrupt(format!(
            "WAL file {} cannot be read ({e}): nothing copied",
            FileType::Wal.path(name)
        )));
    }
    let target = read_archive(to)?;
    if let Some((name, e)) = target.unreadable.first() {
        return Err(EngineError::Corrupt(format!(
            "the target's WAL file {} cannot be read ({e}): nothing copied",
            FileType::Wal.path(name)
        )));
    }
    if let (Some(a), Some(b)) = (source.system_id(project)?, target.system_id(project)?) {
        if a != b {
            return Err(EngineError::Invalid(format!(
                "the target's WAL archive of project {project} is of cluster {b}, the source's \
                 of cluster {a}: not copied"
            )));
        }
    }
    let mut done = WalCopied::default();
    let mut conflicts = Vec::new();
    // (system id, timeline) -> (seg_size, wal_magic, entries) of the new WAL files.
    type Group = (u32, u16, Vec<WalEntry>);
    let mut groups: BTreeMap<(u64, u32), Group> = BTreeMap::new();
    let backup = StreamBackup::new(to, &BackupOptions::default(), &NoProgress)?;
    for (name, found) in source.entries(project) {
        if !wanted(name) {
            continue;
        }
        let theirs = target.find(project, name)?;
        // Segments all have the segment size: the same name and size is the same file.
        // A history or backup file is small: compared by content.
        let is_segment =
            found.file.seg_size > 0 && found.entry.size == u64::from(found.file.seg_size);
        if let Some(t) = theirs.filter(|_| is_segment) {
            if t.entry.size == found.entry.size {
                done.present += 1;
            } else {
                conflicts.push(name.to_string());
            }
            continue;
        }
        let content = fetch(from, &source, project, name)?.ok_or_else(|| {
            EngineError::Internal(format!("{name} listed but not found in the source"))
        })?;
        let hash = to.key().blob_id(&content).0 .0;
        if let Some(t) = theirs {
            if t.entry.hash == hash && t.entry.size == content.len() as u64 {
                done.present += 1;
            } else {
                conflicts.push(name.to_string());
            }
            continue;
        }
        let (blobs, size) = backup.read(&mut &content[..], to.config().chunker, name)?;
        let group = groups
            .entry((found.file.system_id, found.file.timeline))
            .or_insert((0, 0, Vec::new()));
        group.0 = group.0.max(found.file.seg_size);
        group.1 = group.1.max(found.file.wal_magic);
        group.2.push(WalEntry {
            name: name.to_string(),
            size,
            hash,
            blobs,
            pushed_ns: found.entry.pushed_ns,
        });
        done.files += 1;
    }
    // The blobs first, durable; then the WAL files naming them.
    done.bytes_added = backup.finish_without_snapshot()?;
    for ((system_id, timeline), (seg_size, wal_magic, mut entries)) in groups {
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        let file = WalFile {
            project: project.to_string(),
            system_id,
            timeline,
            seg_size,
            wal_magic,
            entries,
        };
        to.save_object(FileType::Wal, &file)?;
    }
    if !conflicts.is_empty() {
        return Err(EngineError::Invalid(format!(
            "the target's WAL archive of project {project} holds {} file(s) under the same \
             names with other contents ({}{}): not replaced",
            conflicts.len(),
            conflicts
                .iter()
                .take(3)
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
            if conflicts.len() > 3 { ", ..." } else { "" }
        )));
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{memory_repository, PASSWORD};
    use crate::wal::{push, Push};

    fn push_into(repo: &Repository, system_id: u64, name: &str, content: &[u8]) {
        push(
            repo,
            &Push {
                project: "shop",
                system_id,
                timeline: strata_format::wal::name_timeline(name).unwrap(),
                seg_size: 1 << 20,
                wal_magic: 0xD110,
                name,
                content,
            },
        )
        .unwrap();
    }

    fn segment(seed: u8) -> Vec<u8> {
        (0..1usize << 20)
            .map(|i| (i as u8).wrapping_mul(seed) ^ seed)
            .collect()
    }

    #[test]
    fn the_target_gets_every_file_it_lacks_with_its_push_time_and_a_conflict_is_named() {
        let from = Repository::open(memory_repository(), PASSWORD).unwrap();
        let to = Repository::open(memory_repository(), PASSWORD).unwrap();
        let names = [
            "000000010000000000000001",
            "000000010000000000000002",
            "00000002.history",
            "000000020000000000000002",
        ];
        for (i, name) in names.iter().enumerate() {
            let content = if name.ends_with(".history") {
                b"1\t0/2000000\tno recovery target specified\n".to_vec()
            } else {
                segment(i as u8 + 1)
            };
            push_into(&from, 7, name, &content);
        }
        // The target already holds the first, identically.
        push_into(&to, 7, names[0], &segment(1));
        // Opened again as the next process would (with the index the pushes wrote).
        let from = Repository::open(from.backend().clone(), PASSWORD).unwrap();
        let to = Repository::open(to.backend().clone(), PASSWORD).unwrap();
        let done = copy_archive(&from, &to, "shop", &|_| true).unwrap();
        assert_eq!((done.files, done.present), (3, 1));
        assert!(done.bytes_added > 0);
        let to = Repository::open(to.backend().clone(), PASSWORD).unwrap();
        let (a, b) = (read_archive(&from).unwrap(), read_archive(&to).unwrap());
        for name in names {
            let theirs = fetch(&to, &b, "shop", name).unwrap().unwrap();
            assert_eq!(
                theirs,
                fetch(&from, &a, "shop", name).unwrap().unwrap(),
                "{name}"
            );
            if name != names[0] {
                assert_eq!(
                    b.find("shop", name).unwrap().unwrap().entry.pushed_ns,
                    a.find("shop", name).unwrap().unwrap().entry.pushed_ns,
                    "{name} keeps the time it was pushed"
                );
            }
        }
        // What the caller does not want is not copied.
        let fresh = Repository::open(memory_repository(), PASSWORD).unwrap();
        let some = copy_archive(&from, &fresh, "shop", &|n| n != names[1]).unwrap();
        assert_eq!(some.files, 3);
        let fresh = Repository::open(fresh.backend().clone(), PASSWORD).unwrap();
        let f = read_archive(&fresh).unwrap();
        assert!(f.find("shop", names[1]).unwrap().is_none());
        assert!(f.find("shop", names[3]).unwrap().is_some());
        // Again: nothing to copy.
        let again = copy_archive(&from, &to, "shop", &|_| true).unwrap();
        assert_eq!((again.files, again.present), (0, 4));
        // A target with another file under a name (a history of another size): named,
        // not replaced, and the rest copied.
        let other = Repository::open(memory_repository(), PASSWORD).unwrap();
        // Of the same length as the source's: compared by content all the same.
        let theirs = b"1\t0/2000000\tno recovery target specifieD\n".to_vec();
        push_into(&other, 7, names[2], &theirs);
        let other = Repository::open(other.backend().clone(), PASSWORD).unwrap();
        let e = copy_archive(&from, &other, "shop", &|_| true)
            .unwrap_err()
            .to_string();
        assert!(e.contains(names[2]) && e.contains("not replaced"), "{e}");
        let other = Repository::open(other.backend().clone(), PASSWORD).unwrap();
        let c = read_archive(&other).unwrap();
        assert_eq!(
            fetch(&other, &c, "shop", names[2]).unwrap().unwrap(),
            theirs
        );
        assert!(
            fetch(&other, &c, "shop", names[0]).unwrap().is_some(),
            "the rest copied"
        );
        // A target archive of another cluster: refused.
        let foreign = Repository::open(memory_repository(), PASSWORD).unwrap();
        push_into(&foreign, 8, "000000010000000000000009", &segment(9));
        let e = copy_archive(&from, &foreign, "shop", &|_| true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("of cluster 8"), "{e}");
    }
}
