//! Hostile or damaged repository content must give errors, never writes outside the target
//! or panics. These tests write repository objects by hand with the repository's own key,
//! as a malicious writer holding the key could.

use std::sync::Arc;

use bytes::Bytes;
use strata_engine::progress::NoProgress;
use strata_engine::restorer::{restore, RestoreOptions};
use strata_engine::{ErrorKind, InitOptions, Repository};
use strata_format::blob::{encode_blob, BlobType};
use strata_format::envelope::EncryptedObject;
use strata_format::id::{BlobId, Digest, PackId};
use strata_format::index::{IndexFile, IndexPack};
use strata_format::keyfile::KdfParams;
use strata_format::pack::PackBuilder;
use strata_format::snapshot::{SnapshotFile, SnapshotSummary, SourceKind};
use strata_format::tree::{Node, NodeKind, Tree};
use strata_storage::{Backend, FileType, OpendalBackend};

fn init() -> Arc<dyn Backend> {
    let backend: Arc<dyn Backend> = Arc::new(OpendalBackend::memory().unwrap());
    let opts = InitOptions {
        kdf: KdfParams {
            m_kib: 64,
            t: 1,
            p: 1,
        },
        ..InitOptions::default()
    };
    Repository::init(backend.clone(), b"pw", &opts).unwrap();
    backend
}

fn node(name: &[u8], kind: NodeKind, size: u64) -> Node {
    Node {
        name: name.to_vec(),
        kind,
        mode: 0o644,
        uid: 0,
        gid: 0,
        user: None,
        group: None,
        mtime_ns: 0,
        atime_ns: 0,
        ctime_ns: 0,
        inode: 1,
        device: 1,
        links: 1,
        size,
        xattrs: vec![],
    }
}

/// Stores blobs (type, plaintext) in one pack with an index and a snapshot whose root is
/// `root`; returns the snapshot.
fn store(backend: &Arc<dyn Backend>, blobs: &[(BlobType, Vec<u8>)], root: BlobId) -> SnapshotFile {
    let repo = Repository::open(backend.clone(), b"pw").unwrap();
    let mut rng = rand::thread_rng();
    let mut pack = PackBuilder::new();
    for (t, plain) in blobs {
        let id = repo.key().blob_id(plain);
        let stored = encode_blob(repo.key(), &mut rng, *t, id, plain, 3);
        pack.add(*t, id, plain.len() as u32, &stored);
    }
    let (bytes, list) = pack.finish(repo.key(), &mut rng);
    let pack_id = PackId(Digest::of_stored(&bytes));
    let size = bytes.len() as u64;
    repo.block_on(backend.write(FileType::Pack, &pack_id.to_hex(), Bytes::from(bytes)))
        .unwrap();
    let index = IndexFile {
        packs: vec![IndexPack {
            id: pack_id,
            size,
            blobs: list,
        }],
        ..IndexFile::default()
    };
    repo.save_object(FileType::Index, &index).unwrap();
    let snap = SnapshotFile {
        time_ns: 1,
        hostname: "h".into(),
        username: "u".into(),
        uid: 0,
        gid: 0,
        paths: vec!["/x".into()],
        tags: vec![],
        project: None,
        excludes: vec![],
        source: SourceKind::Files,
        source_meta: vec![],
        tree: root,
        parent: None,
        program_version: "test".into(),
        summary: SnapshotSummary::default(),
        keep_until_ns: None,
        original: None,
        rewrites: Vec::new(),
    };
    let bytes = snap.encode(repo.key(), &mut rng);
    repo.block_on(backend.write(
        FileType::Snapshot,
        &Digest::of_stored(&bytes).to_hex(),
        Bytes::from(bytes),
    ))
    .unwrap();
    snap
}

#[test]
fn dot_dot_names_are_refused_and_nothing_escapes() {
    let backend = init();
    let repo = Repository::open(backend.clone(), b"pw").unwrap();
    let content = b"escaped".to_vec();
    let cid = repo.key().blob_id(&content);
    for evil in [&b".."[..], b"../../etc", b"a/b", b"/abs", b"nul\0"] {
        // Tree::encode does not validate: exactly what a hostile writer would produce.
        let tree = Tree {
            nodes: vec![node(
                evil,
                NodeKind::File { content: vec![cid] },
                content.len() as u64,
            )],
        }
        .encode();
        let root = repo.key().blob_id(&tree);
        let snap = store(
            &backend,
            &[(BlobType::Data, content.clone()), (BlobType::Tree, tree)],
            root,
        );
        let repo = Repository::open(backend.clone(), b"pw").unwrap();
        let outer = tempfile::tempdir().unwrap();
        let target = outer.path().join("target");
        let err = restore(
            &repo,
            &snap,
            &target,
            &RestoreOptions::default(),
            &NoProgress,
        )
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corrupt, "{evil:?}: {err}");
        assert!(err.to_string().contains("invalid entry name"), "{err}");
        let listing: Vec<_> = std::fs::read_dir(outer.path()).unwrap().collect();
        assert!(
            listing.len() <= 1,
            "something was written beside the target"
        );
    }
}

#[test]
fn existing_symlink_in_target_is_replaced_not_followed() {
    let backend = init();
    let repo = Repository::open(backend.clone(), b"pw").unwrap();
    let content = b"inside".to_vec();
    let cid = repo.key().blob_id(&content);
    let sub = Tree {
        nodes: vec![node(
            b"f",
            NodeKind::File { content: vec![cid] },
            content.len() as u64,
        )],
    }
    .encode();
    let sub_id = repo.key().blob_id(&sub);
    let root = Tree {
        nodes: vec![node(b"d", NodeKind::Dir { subtree: sub_id }, 0)],
    }
    .encode();
    let root_id = repo.key().blob_id(&root);
    let snap = store(
        &backend,
        &[
            (BlobType::Data, content),
            (BlobType::Tree, sub),
            (BlobType::Tree, root),
        ],
        root_id,
    );
    let repo = Repository::open(backend.clone(), b"pw").unwrap();
    let outside = tempfile::tempdir().unwrap();
    let target = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), target.path().join("d")).unwrap();
    let stats = restore(
        &repo,
        &snap,
        target.path(),
        &RestoreOptions::default(),
        &NoProgress,
    )
    .unwrap();
    assert!(stats.errors.is_empty(), "{:?}", stats.errors);
    assert!(std::fs::symlink_metadata(target.path().join("d"))
        .unwrap()
        .is_dir());
    assert_eq!(std::fs::read(target.path().join("d/f")).unwrap(), b"inside");
    assert_eq!(
        std::fs::read_dir(outside.path()).unwrap().count(),
        0,
        "wrote through the symlink"
    );
}

#[test]
fn blob_with_wrong_content_for_its_id_is_refused() {
    let backend = init();
    let repo = Repository::open(backend.clone(), b"pw").unwrap();
    // A file node whose content id names a tree blob: type confusion must be caught.
    let tree_plain = Tree::default().encode();
    let tid = repo.key().blob_id(&tree_plain);
    let root = Tree {
        nodes: vec![node(b"f", NodeKind::File { content: vec![tid] }, 5)],
    }
    .encode();
    let root_id = repo.key().blob_id(&root);
    let snap = store(
        &backend,
        &[(BlobType::Tree, tree_plain), (BlobType::Tree, root)],
        root_id,
    );
    let repo = Repository::open(backend.clone(), b"pw").unwrap();
    let target = tempfile::tempdir().unwrap();
    let stats = restore(
        &repo,
        &snap,
        target.path(),
        &RestoreOptions::default(),
        &NoProgress,
    )
    .unwrap();
    assert_eq!(stats.errors.len(), 1, "{:?}", stats.errors);
    assert!(stats.errors[0].message.contains("/f"), "{:?}", stats.errors);
}

/// A chain of `depth` trees, each holding only the next as directory "d".
fn chain(repo: &Repository, depth: usize) -> (Vec<(BlobType, Vec<u8>)>, BlobId) {
    let mut blobs = Vec::new();
    let mut id = {
        let leaf = Tree::default().encode();
        let id = repo.key().blob_id(&leaf);
        blobs.push((BlobType::Tree, leaf));
        id
    };
    for _ in 0..depth {
        let t = Tree {
            nodes: vec![node(b"d", NodeKind::Dir { subtree: id }, 0)],
        }
        .encode();
        id = repo.key().blob_id(&t);
        blobs.push((BlobType::Tree, t));
    }
    (blobs, id)
}

/// Runs `f` on a thread with the stack the CLI gives commands.
fn on_cli_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(strata_engine::STACK_SIZE)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap()
}

#[test]
fn deeply_nested_trees_are_refused_not_recursed() {
    let backend = init();
    let repo = Repository::open(backend.clone(), b"pw").unwrap();
    let (blobs, root) = chain(&repo, strata_format::tree::MAX_TREE_DEPTH + 50);
    let snap = store(&backend, &blobs, root);
    on_cli_stack(move || {
        let repo = Repository::open(backend, b"pw").unwrap();
        let target = tempfile::tempdir().unwrap();
        let err = restore(
            &repo,
            &snap,
            target.path(),
            &RestoreOptions::default(),
            &NoProgress,
        )
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
        assert!(err.to_string().contains("deeper than"), "{err}");
        let mut n = 0;
        let err = strata_engine::treewalk::walk(&repo, &snap.tree, b"", &mut |_, _| {
            n += 1;
            Ok(true)
        })
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corrupt);
        let report = strata_engine::checker::check(&repo, &NoProgress).unwrap();
        assert!(
            report
                .errors
                .iter()
                .any(|e| e.message.contains("deeper than")),
            "{:?}",
            report.errors
        );
    });
}

/// Every other walk of trees passes the same guard: `copy`, prune's marking, `repair
/// snapshots`, `find`, `diff` (a subtree listed as removed) and `stats` refuse the chain
/// (or, for repair, report it) instead of following it.
#[test]
fn every_walk_of_trees_refuses_a_chain_too_deep() {
    let backend = init();
    let repo = Repository::open(backend.clone(), b"pw").unwrap();
    let (blobs, root) = chain(&repo, strata_format::tree::MAX_TREE_DEPTH + 50);
    let empty = repo.key().blob_id(&Tree::default().encode());
    store(&backend, &blobs, root);
    on_cli_stack(move || {
        let mut repo = Repository::open(backend, b"pw").unwrap();
        let (id, snap) = strata_engine::snapshots::find(&repo, "latest").unwrap();
        let snapshots = [(id, snap.clone())];
        let refused = |what: &str, r: strata_engine::Result<()>| {
            let err = r.expect_err(what);
            assert_eq!(err.kind(), ErrorKind::Corrupt, "{what}: {err}");
            assert!(err.to_string().contains("deeper than"), "{what}: {err}");
        };

        let to = Repository::open(init(), b"pw").unwrap();
        refused(
            "copy",
            strata_engine::copy::copy(&repo, &to, &snapshots, &NoProgress).map(drop),
        );
        refused(
            "prune",
            strata_engine::prune::plan(&mut repo, &Default::default(), &NoProgress).map(drop),
        );
        let query = strata_engine::browse::FindQuery {
            filter: strata_engine::filter::Filter::new(&["nothing".to_string()]).unwrap(),
            newer_ns: None,
            older_ns: None,
        };
        refused(
            "find",
            strata_engine::browse::find(&repo, &snapshots, &query).map(drop),
        );
        let emptied = SnapshotFile {
            tree: empty,
            ..snap.clone()
        };
        refused(
            "diff",
            strata_engine::browse::diff(&repo, &snap, &emptied, false).map(drop),
        );
        refused(
            "stats",
            strata_engine::browse::stats(&repo, &snapshots).map(drop),
        );
        let repairs =
            strata_engine::repair::repair_snapshots(&repo, true, false, &NoProgress).unwrap();
        assert!(
            format!("{repairs:?}").contains("deeper than"),
            "{repairs:?}"
        );
    });
}

#[test]
fn restore_never_deletes_a_directory_in_the_way() {
    let backend = init();
    let repo = Repository::open(backend.clone(), b"pw").unwrap();
    let content = b"file".to_vec();
    let cid = repo.key().blob_id(&content);
    let root = Tree {
        nodes: vec![node(b"x", NodeKind::File { content: vec![cid] }, 4)],
    }
    .encode();
    let root_id = repo.key().blob_id(&root);
    let snap = store(
        &backend,
        &[(BlobType::Data, content), (BlobType::Tree, root)],
        root_id,
    );
    let repo = Repository::open(backend, b"pw").unwrap();
    let target = tempfile::tempdir().unwrap();
    std::fs::create_dir(target.path().join("x")).unwrap();
    std::fs::write(target.path().join("x/keep"), b"precious").unwrap();
    let stats = restore(
        &repo,
        &snap,
        target.path(),
        &RestoreOptions::default(),
        &NoProgress,
    )
    .unwrap();
    assert_eq!(stats.errors.len(), 1, "{:?}", stats.errors);
    assert!(
        stats.errors[0].message.contains("directory is in the way"),
        "{:?}",
        stats.errors
    );
    assert_eq!(
        std::fs::read(target.path().join("x/keep")).unwrap(),
        b"precious"
    );
}

#[test]
fn a_hostile_key_file_does_not_lock_out_the_real_one() {
    let backend = init();
    let repo = Repository::open(backend.clone(), b"pw").unwrap();
    let bogus = strata_format::keyfile::KeyFile {
        kdf: KdfParams {
            m_kib: 4,
            t: 1,
            p: 1,
        }, // below argon2's minimum of 8 KiB a lane
        salt: vec![0; 16],
        wrapped: vec![0; 100],
        created_ns: 0,
        hostname: "h".into(),
        username: "u".into(),
        config: None,
    }
    .encode();
    let name = Digest::of_stored(&bogus).to_hex();
    repo.block_on(backend.write(FileType::Key, &name, Bytes::from(bogus)))
        .unwrap();
    assert!(Repository::open(backend.clone(), b"pw").is_ok());
    assert_eq!(
        Repository::open(backend, b"wrong").unwrap_err().kind(),
        ErrorKind::WrongPassword
    );
}
