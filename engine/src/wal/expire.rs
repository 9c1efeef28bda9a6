//! WAL retention: dropping archived files a project no longer needs from its WAL files, so
//! that the next prune removes the blobs only they named (spec/wal.md, "Retention").
//!
//! Which files are no longer needed is the caller's decision (`strata_app::pitr::expire`:
//! those before the oldest kept base backup's start); the engine keeps the archive's rules
//! while it drops them:
//! - a timeline's history file is never dropped (recoveries to any later timeline read it);
//! - each WAL file that lists a dropped name is rewritten without it: the new file (when any
//!   entry remains) is written and durable first, then the old one is deleted. A crash in
//!   between leaves both (duplicates readers take as one), never a lost entry; a WAL file a
//!   concurrent merge deleted first is taken as gone (its entries are in the merged file,
//!   which keeps them, dropped ones included, until the next expiry).

use std::collections::BTreeSet;

use strata_format::envelope::EncryptedObject;
use strata_format::wal::{WalEntry, WalFile};
use strata_storage::FileType;

use super::Archive;
use crate::{EngineError, Repository, Result};

/// What [`expire`] did (or, dry, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ExpireStats {
    /// The archived files dropped, by name, sorted (a name listed in two WAL files once).
    pub dropped: Vec<String>,
    /// Their bytes (each name counted once).
    pub bytes_dropped: u64,
    /// WAL files written anew without the dropped entries.
    pub files_written: usize,
    /// WAL files deleted (replaced, or holding only dropped entries).
    pub files_deleted: usize,
}

/// Whether a name is a timeline history file (never dropped).
fn is_history(name: &str) -> bool {
    name.ends_with(".history")
}

/// Drops the entries named in `drop` from `project`'s WAL files in `archive` (as read by
/// [`super::read_archive`]); with `dry_run`, only says what it would drop. History files
/// are kept whatever `drop` says.
pub fn expire(
    repo: &Repository,
    archive: &Archive,
    project: &str,
    drop: &BTreeSet<String>,
    dry_run: bool,
) -> Result<ExpireStats> {
    let mut stats = ExpireStats::default();
    let mut dropped: std::collections::BTreeMap<&str, u64> = Default::default();
    for (object, file) in &archive.files {
        if file.project != project {
            continue;
        }
        let (gone, kept): (Vec<&WalEntry>, Vec<&WalEntry>) = file
            .entries
            .iter()
            .partition(|e| drop.contains(&e.name) && !is_history(&e.name));
        if gone.is_empty() {
            continue;
        }
        for e in &gone {
            dropped.insert(&e.name, e.size);
        }
        if !kept.is_empty() {
            stats.files_written += 1;
        }
        stats.files_deleted += 1;
        if dry_run {
            continue;
        }
        if !kept.is_empty() {
            let rest = WalFile {
                entries: kept.into_iter().cloned().collect(),
                ..file.clone()
            };
            rest.validate().map_err(|e| {
                EngineError::Corrupt(format!(
                    "WAL file {} without its expired entries is not valid ({e}): nothing of it \
                     was changed",
                    FileType::Wal.path(object)
                ))
            })?;
            repo.save_object(FileType::Wal, &rest)?;
        }
        match repo.block_on(repo.backend().delete(FileType::Wal, object)) {
            Ok(()) => {}
            // A merge replaced it meanwhile (its entries are in the merged file).
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
    }
    stats.bytes_dropped = dropped.values().sum();
    stats.dropped = dropped.into_keys().map(str::to_string).collect();
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use strata_format::blob::BlobType;

    use super::*;
    use crate::progress::NoProgress;
    use crate::test_support::{memory_repository, PASSWORD};
    use crate::wal::{fetch, push, read_archive, Push};

    fn segment(n: u32) -> String {
        format!("0000000100000000000000{n:02X}")
    }

    /// A segment's content: random (no two dedup against each other), 512 KiB.
    fn content(n: u32) -> Vec<u8> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(u64::from(n));
        let mut v = vec![0u8; 512 << 10];
        rng.fill(&mut v[..]);
        v
    }

    fn push_of<'a>(name: &'a str, content: &'a [u8]) -> Push<'a> {
        Push {
            project: "shop",
            system_id: 7,
            timeline: 1,
            seg_size: 16 << 20,
            wal_magic: 0xD110,
            name,
            content,
        }
    }

    fn reopen(repo: &Repository) -> Repository {
        Repository::open(repo.backend().clone(), PASSWORD).unwrap()
    }

    /// Replaces every WAL file of the archive but the one listing `apart` by one listing
    /// their union (as a merge does), so that expiring rewrites a file that keeps entries.
    fn merge_all_but(repo: &Repository, apart: &str) {
        let archive = read_archive(repo).unwrap();
        let mut entries = Vec::new();
        let mut first = None;
        for (name, file) in &archive.files {
            if file.timeline != 1 || file.entries.iter().any(|e| e.name == apart) {
                continue;
            }
            entries.extend(file.entries.iter().cloned());
            first.get_or_insert(file.clone());
            repo.block_on(repo.backend().delete(FileType::Wal, name))
                .unwrap();
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        let merged = WalFile {
            entries,
            seg_size: 16 << 20,
            wal_magic: 0xD110,
            timeline: 1,
            ..first.unwrap()
        };
        repo.save_object(FileType::Wal, &merged).unwrap();
    }

    #[test]
    fn expired_segments_are_gone_after_prune_and_every_later_one_fetches_identical() {
        let repo = Repository::open(memory_repository(), PASSWORD).unwrap();
        for n in 1..=6 {
            push(&repo, &push_of(&segment(n), &content(n))).unwrap();
        }
        let label = format!("{}.00000028.backup", segment(2));
        push(
            &repo,
            &Push {
                seg_size: 0,
                wal_magic: 0,
                ..push_of(&label, b"START WAL LOCATION: 0/2000028\n")
            },
        )
        .unwrap();
        push(
            &repo,
            &Push {
                timeline: 2,
                seg_size: 0,
                wal_magic: 0,
                ..push_of("00000002.history", b"1\t0/5000000\tno recovery target\n")
            },
        )
        .unwrap();
        merge_all_but(&repo, &segment(6));
        let archive = read_archive(&repo).unwrap();
        // Segments 1..=6 and the label in one file, 6 alone, the history file alone (it
        // is of another timeline: a merge keeps one timeline per file).
        assert_eq!(archive.files.len(), 3, "{:?}", archive.files.keys());
        let blobs_of = |n: u32| {
            archive
                .find("shop", &segment(n))
                .unwrap()
                .unwrap()
                .entry
                .blobs
                .clone()
        };
        let gone_blobs: Vec<_> = [1, 2].into_iter().flat_map(blobs_of).collect();

        let drop: BTreeSet<String> = [
            segment(1),
            segment(2),
            label.clone(),
            "00000002.history".into(),
        ]
        .into_iter()
        .collect();
        // A dry run changes nothing, and says what it would do.
        let dry = expire(&repo, &archive, "shop", &drop, true).unwrap();
        assert_eq!(dry.dropped, [segment(1), segment(2), label.clone()]);
        assert_eq!((dry.files_written, dry.files_deleted), (1, 1));
        assert_eq!(
            read_archive(&repo)
                .unwrap()
                .files
                .keys()
                .collect::<Vec<_>>(),
            archive.files.keys().collect::<Vec<_>>()
        );

        let done = expire(&repo, &archive, "shop", &drop, false).unwrap();
        assert_eq!(done, dry);
        assert_eq!(done.bytes_dropped, 2 * (512 << 10) + 30);
        let mut full = reopen(&repo);
        let plan = crate::prune::plan(&mut full, &Default::default(), &NoProgress).unwrap();
        crate::prune::execute(&full, plan, &NoProgress).unwrap();

        let after = reopen(&repo);
        let archive = read_archive(&after).unwrap();
        let names: Vec<&str> = archive.entries("shop").keys().copied().collect();
        let mut expected: Vec<String> = (3..=6).map(segment).collect();
        expected.push("00000002.history".into());
        assert_eq!(
            names, expected,
            "exactly the later segments and the history file remain"
        );
        for n in 1..=2 {
            assert_eq!(fetch(&after, &archive, "shop", &segment(n)).unwrap(), None);
        }
        for id in &gone_blobs {
            assert!(
                after.read_blob(BlobType::Data, id).is_err(),
                "prune removed the blobs only expired segments named"
            );
        }
        for n in 3..=6 {
            assert!(
                fetch(&after, &archive, "shop", &segment(n))
                    .unwrap()
                    .as_deref()
                    == Some(&content(n)[..]),
                "{} fetches byte-identical",
                segment(n)
            );
        }
        // Expiring again finds nothing to drop.
        let again = expire(&after, &archive, "shop", &drop, false).unwrap();
        assert_eq!(again, ExpireStats::default());
    }

    /// An expiry through storage whose `n`-th mutation fails (as a crash there would stop
    /// it), on an archive of segments 1..=4 in one WAL file; the archive read after it.
    fn interrupted_at(n: u64) -> (Repository, Archive) {
        let repo = Repository::open(memory_repository(), PASSWORD).unwrap();
        for s in 1..=4 {
            push(&repo, &push_of(&segment(s), &content(s))).unwrap();
        }
        merge_all_but(&repo, "none");
        let faulty = std::sync::Arc::new(strata_storage::FaultBackend::new(
            repo.backend().clone(),
            strata_storage::FaultPlan {
                fail_at_mutation: Some(n),
                ..Default::default()
            },
        ));
        let through = Repository::open(faulty, PASSWORD).unwrap();
        let archive = read_archive(&through).unwrap();
        assert_eq!(archive.files.len(), 1);
        let drop: BTreeSet<String> = [segment(1)].into_iter().collect();
        let e = expire(&through, &archive, "shop", &drop, false).unwrap_err();
        assert!(e.to_string().contains("injected fault"), "{e}");
        let after = reopen(&repo);
        let archive = read_archive(&after).unwrap();
        (after, archive)
    }

    #[test]
    fn an_expiry_stopped_between_its_write_and_its_delete_loses_nothing_and_a_rerun_finishes() {
        // The rewritten file fails: the old one alone, untouched.
        let (repo, archive) = interrupted_at(1);
        assert_eq!(archive.files.len(), 1);
        assert_eq!(archive.entries("shop").len(), 4);
        // The delete fails: the rewritten file and the old one, which readers take as one.
        let (repo2, archive2) = interrupted_at(2);
        assert_eq!(archive2.files.len(), 2);
        for (repo, archive) in [(&repo, &archive), (&repo2, &archive2)] {
            for s in 1..=4 {
                assert!(
                    fetch(repo, archive, "shop", &segment(s))
                        .unwrap()
                        .as_deref()
                        == Some(&content(s)[..]),
                    "{} still fetches after the interruption",
                    segment(s)
                );
            }
        }
        // Run again, it finishes: segment 1 gone, the others fetch.
        let drop: BTreeSet<String> = [segment(1)].into_iter().collect();
        let done = expire(&repo2, &archive2, "shop", &drop, false).unwrap();
        assert_eq!(done.dropped, [segment(1)]);
        let archive = read_archive(&repo2).unwrap();
        assert_eq!(fetch(&repo2, &archive, "shop", &segment(1)).unwrap(), None);
        for s in 2..=4 {
            assert!(
                fetch(&repo2, &archive, "shop", &segment(s))
                    .unwrap()
                    .as_deref()
                    == Some(&content(s)[..])
            );
        }
    }
}
