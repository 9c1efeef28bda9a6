//! Pushing and fetching archived WAL: durable content named by a WAL file, identical
//! re-pushes, conflicts, another cluster, names, old repositories, prune.

use rand::{Rng, SeedableRng};

use super::*;
use crate::test_support::{memory_repository, PASSWORD};

const MIB: usize = 1 << 20;

fn content(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut v = vec![0u8; len];
    // Half random, half zeros: as a segment switched before it was full.
    rng.fill(&mut v[..len / 2]);
    v
}

fn push_of<'a>(name: &'a str, content: &'a [u8]) -> Push<'a> {
    Push {
        project: "shop",
        system_id: 7_312_345_678_901_234_567,
        timeline: 1,
        seg_size: 16 << 20,
        wal_magic: 0xD110,
        name,
        content,
    }
}

fn open() -> Repository {
    Repository::open(memory_repository(), PASSWORD).unwrap()
}

/// The repository opened again (with the index its pushes wrote), as the next process of
/// `archive_command` or `restore_command` opens it.
fn reopen(repo: &Repository) -> Repository {
    Repository::open(repo.backend().clone(), PASSWORD).unwrap()
}

#[test]
fn a_pushed_segment_fetches_back_identical_and_a_repush_is_a_success() {
    let repo = open();
    let seg = content(1, 16 * MIB);
    let name = "000000010000000000000001";
    assert!(matches!(
        push(&repo, &push_of(name, &seg)).unwrap(),
        Pushed::Stored { .. }
    ));
    let archive = read_archive(&repo).unwrap();
    assert_eq!(archive.files.len(), 1);
    assert_eq!(
        archive.system_id("shop").unwrap(),
        Some(7_312_345_678_901_234_567)
    );
    // Read back through a fresh open (what restore_command's process does).
    let again = Repository::open(repo.backend().clone(), PASSWORD).unwrap();
    let fetched = fetch(&again, &read_archive(&again).unwrap(), "shop", name).unwrap();
    assert!(fetched.as_deref() == Some(&seg[..]), "byte-identical");
    assert_eq!(
        fetch(&again, &archive, "shop", "000000010000000000000002").unwrap(),
        None,
        "a file never pushed is none"
    );
    assert_eq!(
        fetch(&again, &archive, "blog", name).unwrap(),
        None,
        "another project's archive is its own"
    );
    // PostgreSQL pushes it again: a success, nothing written.
    assert_eq!(
        push(&repo, &push_of(name, &seg)).unwrap(),
        Pushed::AlreadyThere
    );
    assert_eq!(read_archive(&repo).unwrap().files.len(), 1);
    // A history file is archived too.
    let history = b"1\t0/3000060\tno recovery target specified\n";
    push(
        &repo,
        &Push {
            timeline: 2,
            wal_magic: 0,
            ..push_of("00000002.history", history)
        },
    )
    .unwrap();
    let archive = read_archive(&repo).unwrap();
    assert_eq!(
        archive.entries("shop").keys().copied().collect::<Vec<_>>(),
        ["000000010000000000000001", "00000002.history"]
    );
    assert_eq!(
        fetch(&reopen(&repo), &archive, "shop", "00000002.history")
            .unwrap()
            .as_deref(),
        Some(&history[..])
    );
}

#[test]
fn different_content_under_a_pushed_name_and_another_cluster_are_refused() {
    let repo = open();
    let name = "000000010000000000000001";
    let seg = content(1, 2 * MIB);
    push(&repo, &push_of(name, &seg)).unwrap();
    let other = content(2, 2 * MIB);
    let e = push(&repo, &push_of(name, &other)).unwrap_err().to_string();
    assert!(e.contains("already holds a different"), "{e}");
    let e = push(
        &repo,
        &Push {
            system_id: 42,
            ..push_of("000000010000000000000002", &other)
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("two clusters never share an archive"), "{e}");
    // Nothing of either was written: the archive still lists the first push alone.
    let archive = read_archive(&repo).unwrap();
    assert_eq!(archive.files.len(), 1);
    assert_eq!(
        fetch(&reopen(&repo), &archive, "shop", name)
            .unwrap()
            .as_deref(),
        Some(&seg[..])
    );
    // Another project may archive another cluster.
    push(
        &repo,
        &Push {
            project: "blog",
            system_id: 42,
            ..push_of(name, &other)
        },
    )
    .unwrap();
}

#[test]
fn names_postgresql_does_not_archive_and_wrong_timelines_are_refused() {
    let repo = open();
    let data = b"x";
    for (name, timeline, says) in [
        (
            "../../etc/passwd",
            1,
            "is not the name of a file PostgreSQL archives",
        ),
        ("000000010000000000000001/x", 1, "is not the name"),
        ("0000000100000000000000a1", 1, "is not the name"),
        ("000000020000000000000001", 1, "is of timeline 2, not 1"),
    ] {
        let e = push(
            &repo,
            &Push {
                timeline,
                ..push_of(name, data)
            },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains(says), "{name}: {e}");
    }
    assert!(read_archive(&repo).unwrap().files.is_empty());
}

#[test]
fn a_repository_of_format_3_takes_no_wal() {
    let backend = memory_repository();
    let repo = Repository::open(backend.clone(), PASSWORD).unwrap();
    let mut cfg = repo.config().clone();
    cfg.format_version = 3;
    let bytes = cfg.encode(repo.key(), &mut rand::thread_rng());
    repo.block_on(backend.write(FileType::Config, "", bytes.into()))
        .unwrap();
    let old = Repository::open(backend, PASSWORD).unwrap();
    assert_eq!(old.config().format_version, 3);
    let e = push(&old, &push_of("000000010000000000000001", b"x"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("format version 3, which predates WAL archiving"),
        "{e}"
    );
    assert!(read_archive(&old).unwrap().files.is_empty());
}

#[test]
fn prune_keeps_archived_wal_and_refuses_while_a_wal_file_is_unreadable() {
    let repo = open();
    let seg = content(3, 4 * MIB);
    let name = "000000010000000000000009";
    push(&repo, &push_of(name, &seg)).unwrap();
    let prune = |repo: &mut Repository| {
        let plan = crate::prune::plan(repo, &Default::default(), &NoProgress)?;
        crate::prune::execute(repo, plan, &NoProgress)
    };
    // No snapshot at all: only the WAL file needs the blobs.
    let mut full = Repository::open(repo.backend().clone(), PASSWORD).unwrap();
    prune(&mut full).unwrap();
    let mut after = Repository::open(repo.backend().clone(), PASSWORD).unwrap();
    let archive = read_archive(&after).unwrap();
    assert_eq!(
        fetch(&after, &archive, "shop", name).unwrap().as_deref(),
        Some(&seg[..]),
        "the segment survived prune"
    );
    // A WAL file that cannot be read (its name fits its bytes, which are no WAL file).
    let junk = bytes::Bytes::from_static(b"not a WAL file");
    let junk_name = strata_format::id::Digest::of_stored(&junk).to_hex();
    after
        .block_on(after.backend().write(FileType::Wal, &junk_name, junk))
        .unwrap();
    let e = prune(&mut after).unwrap_err().to_string();
    assert!(e.contains("prune changed nothing"), "{e}");
    let e = push(&after, &push_of("00000001000000000000000A", &seg))
        .unwrap_err()
        .to_string();
    assert!(e.contains("nothing was pushed"), "{e}");
}

#[test]
fn check_reports_an_archived_file_whose_data_is_gone_and_a_wal_file_that_does_not_decode() {
    let repo = open();
    let seg = content(4, 2 * MIB);
    push(&repo, &push_of("000000010000000000000004", &seg)).unwrap();
    let clean = crate::checker::check(&reopen(&repo), &NoProgress).unwrap();
    assert!(clean.errors.is_empty(), "{:?}", clean.errors);
    for (pack, _) in repo.block_on(repo.backend().list(FileType::Pack)).unwrap() {
        repo.block_on(repo.backend().delete(FileType::Pack, &pack))
            .unwrap();
    }
    let junk = bytes::Bytes::from_static(b"not a WAL file");
    let junk_name = strata_format::id::Digest::of_stored(&junk).to_hex();
    repo.block_on(repo.backend().write(FileType::Wal, &junk_name, junk))
        .unwrap();
    let report = crate::checker::check(&reopen(&repo), &NoProgress).unwrap();
    let messages: Vec<String> = report.errors.iter().map(|f| f.message.clone()).collect();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("WAL file")
                && m.contains("000000010000000000000004 of project shop")),
        "{messages:?}"
    );
    assert!(
        report
            .errors
            .iter()
            .any(|f| f.kind == crate::report::FindingKind::DamagedWal),
        "{messages:?}"
    );
}

/// Fake segments (the engine does not read headers: `strata-db` does, before a push).
fn segment_name(n: u32) -> String {
    format!("00000001000000{:02X}000000{:02X}", n / 256, n % 256)
}

#[test]
fn many_pushes_are_merged_into_few_wal_files_and_every_one_still_fetches() {
    let repo = open();
    let pushes = 150u32;
    for n in 1..=pushes {
        let body = format!("segment {n} ").repeat(50);
        push(&repo, &push_of(&segment_name(n), body.as_bytes())).unwrap();
    }
    let archive = read_archive(&repo).unwrap();
    // 150 = two merged files of 64 entries, and 22 of one.
    assert_eq!(archive.files.len(), 24, "{}", archive.files.len());
    let mut sizes: Vec<usize> = archive.files.values().map(|f| f.entries.len()).collect();
    sizes.sort_unstable();
    assert_eq!(sizes[22..], [64, 64]);
    assert_eq!(archive.entries("shop").len(), pushes as usize);
    let fresh = reopen(&repo);
    for n in [1, 64, 65, 128, 150] {
        let body = format!("segment {n} ").repeat(50);
        assert_eq!(
            fetch(&fresh, &archive, "shop", &segment_name(n))
                .unwrap()
                .as_deref(),
            Some(body.as_bytes()),
            "{n}"
        );
    }
    // A re-push of a merged entry is still recognised.
    let body = format!("segment {} ", 3).repeat(50);
    assert_eq!(
        push(&repo, &push_of(&segment_name(3), body.as_bytes())).unwrap(),
        Pushed::AlreadyThere
    );
}

/// A backend whose first listing of `wal/` names a file that is not there (as when a
/// merge deleted it between the listing and the read).
#[derive(Debug)]
struct GoneOnce {
    inner: std::sync::Arc<dyn strata_storage::Backend>,
    listed: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl strata_storage::Backend for GoneOnce {
    fn location(&self) -> String {
        self.inner.location()
    }
    async fn read(&self, ft: FileType, name: &str) -> strata_storage::Result<bytes::Bytes> {
        self.inner.read(ft, name).await
    }
    async fn read_range(
        &self,
        ft: FileType,
        name: &str,
        offset: u64,
        length: u64,
    ) -> strata_storage::Result<bytes::Bytes> {
        self.inner.read_range(ft, name, offset, length).await
    }
    async fn write(
        &self,
        ft: FileType,
        name: &str,
        data: bytes::Bytes,
    ) -> strata_storage::Result<()> {
        self.inner.write(ft, name, data).await
    }
    async fn list(&self, ft: FileType) -> strata_storage::Result<Vec<(String, u64)>> {
        let mut listed = self.inner.list(ft).await?;
        if ft == FileType::Wal && !self.listed.swap(true, std::sync::atomic::Ordering::SeqCst) {
            listed.push(("ab".repeat(32), 100));
        }
        Ok(listed)
    }
    async fn delete(&self, ft: FileType, name: &str) -> strata_storage::Result<()> {
        self.inner.delete(ft, name).await
    }
    async fn stat(&self, ft: FileType, name: &str) -> strata_storage::Result<Option<u64>> {
        self.inner.stat(ft, name).await
    }
    async fn create_layout(&self) -> strata_storage::Result<()> {
        self.inner.create_layout().await
    }
    async fn remove_leftovers(&self, min_age: std::time::Duration) -> strata_storage::Result<u64> {
        self.inner.remove_leftovers(min_age).await
    }
}

#[test]
fn a_wal_file_gone_between_listing_and_reading_makes_the_archive_read_again() {
    let repo = open();
    push(&repo, &push_of("000000010000000000000001", b"one")).unwrap();
    let gone = std::sync::Arc::new(GoneOnce {
        inner: repo.backend().clone(),
        listed: std::sync::atomic::AtomicBool::new(false),
    });
    let through = Repository::open(gone, PASSWORD).unwrap();
    let archive = read_archive(&through).unwrap();
    assert!(archive.unreadable.is_empty(), "{:?}", archive.unreadable);
    assert_eq!(archive.files.len(), 1);
}
