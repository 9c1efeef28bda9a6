//! The snapshot tree as a file system ([`strata_engine::vfs`]) over the in-memory backend:
//! what a web server and the FUSE mount rely on: listings, path lookups, ranged reads across
//! chunk boundaries, `latest` links, and a repository with an unreadable snapshot or a
//! damaged blob.

use crate::common;

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use strata_engine::archiver::{backup_paths, BackupOptions};
use strata_engine::progress::NoProgress;
use strata_engine::vfs::{time_name, Entry, Vfs, LATEST};
use strata_engine::{ErrorKind, Repository};
use strata_format::id::{BlobId, SnapshotId};
use strata_format::tree::NodeKind;
use strata_storage::{Backend, FileType};

const SEC: i64 = 1_000_000_000;
/// 2026-11-18T11:06:40Z.
const T0: i64 = 1_795_000_000 * SEC;

fn open(backend: &Arc<dyn Backend>) -> Repository {
    Repository::open(backend.clone(), b"pw").unwrap()
}

/// Backs up `dir` as a snapshot of project `shop` on host `web1` at `time_ns`.
fn backup(backend: &Arc<dyn Backend>, dir: &Path, time_ns: i64, tags: &[&str]) -> SnapshotId {
    let opts = BackupOptions {
        hostname: Some("web1".into()),
        project: Some("shop".into()),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        time_ns: Some(time_ns),
        ..Default::default()
    };
    backup_paths(&open(backend), &[dir.to_path_buf()], &opts, &NoProgress)
        .unwrap()
        .snapshot_id
}

/// A repository with two snapshots of one directory (`a.txt` changes between them, the
/// 1 MiB `big.bin` of many chunks does not); returns the backend, the directory and the
/// snapshots oldest first.
fn two_snapshots() -> (
    Arc<dyn Backend>,
    tempfile::TempDir,
    Vec<u8>,
    [SnapshotId; 2],
) {
    let backend = common::init_memory(1 << 20);
    let src = tempfile::tempdir().unwrap();
    let big = common::pseudo_random(1 << 20, 5);
    std::fs::create_dir_all(src.path().join("sub")).unwrap();
    std::fs::write(src.path().join("sub/big.bin"), &big).unwrap();
    std::fs::write(src.path().join("a.txt"), b"first\n").unwrap();
    std::os::unix::fs::symlink("../a.txt", src.path().join("sub/link")).unwrap();
    let first = backup(&backend, src.path(), T0, &["daily"]);
    std::fs::write(src.path().join("a.txt"), b"second\n").unwrap();
    let second = backup(&backend, src.path(), T0 + 60 * SEC, &["daily", "weekly"]);
    (backend, src, big, [first, second])
}

fn names(vfs: &Vfs, dir: &Entry) -> Vec<String> {
    vfs.list(dir)
        .unwrap()
        .into_iter()
        .map(|(n, _)| String::from_utf8(n).unwrap())
        .collect()
}

/// `path` (absolute, on this machine) as a path in the vfs below snapshot directory `snap`.
fn inside(snap: &str, path: &Path) -> Vec<u8> {
    format!("{snap}{}", path.display()).into_bytes()
}

fn lookup(vfs: &Vfs, path: &str) -> Entry {
    vfs.lookup(path.as_bytes())
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn lists_the_layout_and_looks_up_paths_into_snapshots() {
    let (backend, src, _, [first, second]) = two_snapshots();
    let vfs = Vfs::new(open(&backend)).unwrap();
    assert!(vfs.unreadable().is_empty());
    assert_eq!(vfs.snapshots().len(), 2);

    let root = vfs.root();
    assert!(root.is_dir());
    assert_eq!(root.time_ns(), T0 + 60 * SEC);
    assert_eq!(
        names(&vfs, &root),
        ["hosts", "projects", "snapshots", "tags"]
    );
    let (t0, t1) = (time_name(T0), time_name(T0 + 60 * SEC));
    assert_eq!(
        names(&vfs, &lookup(&vfs, "snapshots")),
        [
            format!("{t0}-{}", first.short()),
            format!("{t1}-{}", second.short())
        ]
    );
    assert_eq!(names(&vfs, &lookup(&vfs, "hosts")), ["web1"]);
    assert_eq!(names(&vfs, &lookup(&vfs, "hosts/web1")), [t0.as_str(), &t1]);
    assert_eq!(names(&vfs, &lookup(&vfs, "tags")), ["daily", "weekly"]);
    assert_eq!(names(&vfs, &lookup(&vfs, "/tags/weekly/")), [t1.as_str()]);
    assert_eq!(
        lookup(&vfs, &format!("tags/weekly/{t1}")),
        Entry::Snapshot {
            id: second,
            tree: vfs.snapshots()[1].1.tree,
            time_ns: T0 + 60 * SEC,
        }
    );

    // Into a snapshot: the backed-up path as an absolute path.
    let snap = format!("hosts/web1/{t0}");
    let a = vfs
        .lookup(&inside(&snap, &src.path().join("a.txt")))
        .unwrap();
    let content = vfs.open(&a).unwrap();
    assert_eq!(vfs.read(&content, 0, 100).unwrap(), b"first\n");
    let sub = vfs.lookup(&inside(&snap, &src.path().join("sub"))).unwrap();
    assert!(sub.is_dir());
    assert_eq!(names(&vfs, &sub), ["big.bin", "link"]);
    let link = vfs.child(&sub, b"link").unwrap().unwrap();
    assert_eq!(link.link_target(), Some(&b"../a.txt"[..]));
    assert_eq!(vfs.child(&sub, b"missing").unwrap(), None);
    // The link inside the snapshot is not followed: its target is the machine's path.
    let through_link = inside(&snap, &src.path().join("sub/link/x"));
    assert_eq!(
        vfs.lookup(&through_link).unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

#[test]
fn missing_paths_are_not_found_and_misuse_is_invalid() {
    let (backend, src, _, _) = two_snapshots();
    let vfs = Vfs::new(open(&backend)).unwrap();
    let t0 = time_name(T0);
    let a = inside(&format!("hosts/web1/{t0}"), &src.path().join("a.txt"));
    let file = vfs.lookup(&a).unwrap();
    for (path, kind) in [
        (b"nowhere".to_vec(), ErrorKind::NotFound),
        (b"hosts/db1".to_vec(), ErrorKind::NotFound),
        ([&a[..], b"/below-a-file"].concat(), ErrorKind::NotFound),
        (b"hosts/../tags".to_vec(), ErrorKind::Invalid),
    ] {
        let err = vfs.lookup(&path).unwrap_err();
        assert_eq!(
            err.kind(),
            kind,
            "{}: {err}",
            String::from_utf8_lossy(&path)
        );
    }
    // Messages name the path as far as it exists.
    let err = vfs.lookup(b"//hosts/./db1/x").unwrap_err();
    assert_eq!(err.to_string(), "/hosts/db1 does not exist");
    let err = vfs.lookup(&[&a[..], b"/below"].concat()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "/hosts/web1/{t0}{} is not a directory",
            src.path().join("a.txt").display()
        )
    );
    assert_eq!(vfs.list(&file).unwrap_err().kind(), ErrorKind::Invalid);
    assert_eq!(
        vfs.open(&vfs.root()).unwrap_err().kind(),
        ErrorKind::Invalid
    );
    assert_eq!(
        vfs.child(&file, b"x").unwrap_err().kind(),
        ErrorKind::Invalid
    );
}

#[test]
fn latest_links_to_the_newest_snapshot_of_a_project_and_is_followed_by_lookups() {
    let (backend, src, _, _) = two_snapshots();
    let vfs = Vfs::new(open(&backend)).unwrap();
    let (t0, t1) = (time_name(T0), time_name(T0 + 60 * SEC));
    assert_eq!(
        names(&vfs, &lookup(&vfs, "projects/shop")),
        [t0.as_str(), &t1, LATEST]
    );
    let latest = lookup(&vfs, "projects/shop/latest");
    assert_eq!(
        latest,
        Entry::Latest {
            target: t1.clone(),
            time_ns: T0 + 60 * SEC
        }
    );
    assert!(!latest.is_dir());
    let a = vfs
        .lookup(&inside("projects/shop/latest", &src.path().join("a.txt")))
        .unwrap();
    assert_eq!(
        vfs.read(&vfs.open(&a).unwrap(), 0, 100).unwrap(),
        b"second\n"
    );
    // Only projects have them.
    assert!(!names(&vfs, &lookup(&vfs, "hosts/web1")).contains(&LATEST.to_string()));
}

#[test]
fn reads_are_exact_across_chunk_boundaries() {
    let (backend, src, big, _) = two_snapshots();
    let repo = open(&backend);
    let vfs = Vfs::new(open(&backend)).unwrap();
    let path = inside("projects/shop/latest", &src.path().join("sub/big.bin"));
    let file = vfs.lookup(&path).unwrap();
    let Some(NodeKind::File { content: ids }) = file.node().map(|n| &n.kind) else {
        panic!("not a file: {file:?}");
    };
    assert!(
        ids.len() >= 4,
        "1 MiB in chunks of 16-256 KiB: {} chunks",
        ids.len()
    );
    let mut boundaries = vec![0u64];
    for id in ids {
        let len = repo.index().get(id).unwrap().raw_length;
        boundaries.push(boundaries.last().unwrap() + u64::from(len));
    }
    let size = big.len() as u64;
    assert_eq!(*boundaries.last().unwrap(), size);

    let content = vfs.open(&file).unwrap();
    assert_eq!((content.size(), content.stored_size()), (size, Some(size)));
    let expect = |from: u64, len: u64| big[from as usize..(from + len).min(size) as usize].to_vec();
    for &b in &boundaries[1..boundaries.len() - 1] {
        for (from, len) in [(b - 1, 1), (b - 1, 2), (b, 1), (b - 7, 100), (b - 1, 0)] {
            assert_eq!(
                vfs.read(&content, from, len).unwrap(),
                expect(from, len),
                "{from}+{len}"
            );
        }
    }
    // Three chunks and more in one read; the whole file; past the end.
    let (from, to) = (boundaries[1] - 5, boundaries[3] + 5);
    assert_eq!(
        vfs.read(&content, from, to - from).unwrap(),
        expect(from, to - from)
    );
    assert_eq!(vfs.read(&content, 0, u64::MAX).unwrap(), big);
    assert_eq!(
        vfs.read(&content, size - 3, 10).unwrap(),
        expect(size - 3, 10)
    );
    assert!(vfs.read(&content, size, 10).unwrap().is_empty());
    assert!(vfs.read(&content, u64::MAX, u64::MAX).unwrap().is_empty());

    // Reads end at the size the snapshot records, whatever the chunks hold.
    let mut short = file.node().unwrap().clone();
    short.size = 10;
    let content = vfs.open(&Entry::Node(Box::new(short))).unwrap();
    assert_eq!((content.size(), content.stored_size()), (10, Some(size)));
    assert_eq!(vfs.read(&content, 0, 100).unwrap(), big[..10]);
    assert!(vfs.read(&content, 10, 100).unwrap().is_empty());
}

#[test]
fn an_unreadable_snapshot_removes_the_latest_links_and_nothing_else() {
    let (backend, src, _, [first, second]) = two_snapshots();
    // The newest snapshot's file is damaged in storage.
    let name = second.to_hex();
    let repo = open(&backend);
    let mut bytes = repo
        .block_on(backend.read(FileType::Snapshot, &name))
        .unwrap()
        .to_vec();
    bytes[20] ^= 1;
    repo.block_on(backend.write(FileType::Snapshot, &name, Bytes::from(bytes)))
        .unwrap();

    let vfs = Vfs::new(open(&backend)).unwrap();
    assert_eq!(vfs.unreadable().len(), 1);
    assert_eq!(vfs.unreadable()[0].0, second);
    assert_eq!(vfs.unreadable()[0].1.kind(), ErrorKind::Corrupt);
    let t0 = time_name(T0);
    // Were `latest` shown, it would name the older snapshot as the newest.
    assert_eq!(names(&vfs, &lookup(&vfs, "projects/shop")), [t0.as_str()]);
    assert_eq!(
        vfs.lookup(b"projects/shop/latest").unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        names(&vfs, &lookup(&vfs, "snapshots")),
        [format!("{t0}-{}", first.short())]
    );
    let a = vfs
        .lookup(&inside(
            &format!("projects/shop/{t0}"),
            &src.path().join("a.txt"),
        ))
        .unwrap();
    assert_eq!(
        vfs.read(&vfs.open(&a).unwrap(), 0, 100).unwrap(),
        b"first\n"
    );
}

#[test]
fn a_damaged_blob_fails_only_the_reads_that_need_it() {
    let (backend, src, big, _) = two_snapshots();
    let repo = open(&backend);
    let vfs = Vfs::new(open(&backend)).unwrap();
    let file = vfs
        .lookup(&inside(
            "projects/shop/latest",
            &src.path().join("sub/big.bin"),
        ))
        .unwrap();
    let Some(NodeKind::File { content: ids }) = file.node().map(|n| &n.kind) else {
        panic!("not a file: {file:?}");
    };
    let damaged: BlobId = ids[1];
    let loc = repo.index().get(&damaged).unwrap();
    let first_len = u64::from(repo.index().get(&ids[0]).unwrap().raw_length);
    let (pack, _) = repo.index().pack(loc.pack);
    let mut bytes = repo
        .block_on(backend.read(FileType::Pack, &pack.to_hex()))
        .unwrap()
        .to_vec();
    bytes[loc.offset as usize + loc.length as usize / 2] ^= 1;
    repo.block_on(backend.write(FileType::Pack, &pack.to_hex(), Bytes::from(bytes)))
        .unwrap();

    let content = vfs.open(&file).unwrap();
    let err = vfs.read(&content, first_len, 10).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    assert!(err.to_string().contains(&damaged.to_string()), "{err}");
    // The chunk before it still reads, and so does another file.
    assert_eq!(
        vfs.read(&content, 0, first_len).unwrap(),
        big[..first_len as usize]
    );
    let a = vfs
        .lookup(&inside("projects/shop/latest", &src.path().join("a.txt")))
        .unwrap();
    assert_eq!(
        vfs.read(&vfs.open(&a).unwrap(), 0, 100).unwrap(),
        b"second\n"
    );
}

#[test]
fn a_repository_opened_for_metadata_only_is_refused() {
    let (backend, _, _, _) = two_snapshots();
    let repo = Repository::open_metadata(backend.clone(), b"pw").unwrap();
    assert_eq!(Vfs::new(repo).unwrap_err().kind(), ErrorKind::Invalid);
}

/// A web server shares one `Vfs` between the threads that serve requests.
#[test]
fn a_vfs_can_be_shared_between_threads() {
    fn shared<T: Send + Sync>() {}
    shared::<Vfs>();
    let (backend, src, big, _) = two_snapshots();
    let vfs = Arc::new(Vfs::new(open(&backend)).unwrap());
    let path = inside("projects/shop/latest", &src.path().join("sub/big.bin"));
    let readers: Vec<_> = (0..4u64)
        .map(|i| {
            let (vfs, path) = (vfs.clone(), path.clone());
            std::thread::spawn(move || {
                let content = vfs.open(&vfs.lookup(&path).unwrap()).unwrap();
                vfs.read(&content, i * 200_000, 300_000).unwrap()
            })
        })
        .collect();
    for (i, r) in readers.into_iter().enumerate() {
        let from = i * 200_000;
        assert_eq!(r.join().unwrap(), big[from..from + 300_000]);
    }
}
