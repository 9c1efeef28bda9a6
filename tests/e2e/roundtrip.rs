//! Back up, restore, compare: the restored tree must equal the source in
//! every recorded attribute.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::util::*;

/// A real tree that the test did not make: /usr/share/doc.
#[test]
fn usr_share_doc_round_trip() {
    let src = Path::new("/usr/share/doc");
    if !src.is_dir() {
        eprintln!("skipping: {} does not exist", src.display());
        return;
    }
    let env = Env::init();
    let summary = env.backup_json(&[src], &[]);
    assert!(summary["files_new"].as_u64().unwrap() > 0, "{summary}");
    assert_eq!(
        summary["errors"].as_array().map(Vec::len),
        Some(0),
        "{summary}"
    );
    let id = summary["snapshot_id"].as_str().unwrap();

    let target = env.path("restore");
    fs::create_dir(&target).unwrap();
    env.restore(id, &target);
    assert_same_tree(src, &restored(&target, src));
}

/// A generated tree with every kind of entry and metadata.
#[test]
fn rich_tree_round_trip() {
    let env = Env::init();
    let tree = make_rich_tree(&env.path("src"));
    let summary = env.backup_json(&[&tree.root], &[]);
    assert_eq!(
        summary["errors"].as_array().map(Vec::len),
        Some(0),
        "{summary}"
    );
    let id = summary["snapshot_id"].as_str().unwrap().to_owned();

    let target = env.path("restore");
    fs::create_dir(&target).unwrap();
    env.restore(&id, &target);
    let out = restored(&target, &tree.root);
    let listing = assert_same_tree(&tree.root, &out);

    // The comparison is not vacuous: the special entries are all there.
    let kinds: BTreeSet<&str> = listing.iter().map(|e| e.kind).collect();
    for kind in ["file", "dir", "symlink", "fifo", "chardev", "blockdev"] {
        assert!(kinds.contains(kind), "no {kind} in {kinds:?}");
    }
    assert!(listing.iter().any(|e| e.hardlink_group.is_some()));
    if tree.xattrs {
        assert!(listing
            .iter()
            .any(|e| e.path == "hello.txt" && e.xattrs.len() >= 2));
    }

    // Hard links are restored as hard links: one inode.
    let inodes: BTreeSet<(u64, u64)> = tree
        .hardlinks
        .iter()
        .map(|rel| {
            let m = fs::metadata(out.join(rel)).unwrap();
            (m.dev(), m.ino())
        })
        .collect();
    assert_eq!(inodes.len(), 1, "hard links restored as separate files");

    // The sparse file stays sparse (if the source is: the file system may
    // not support holes).
    let src_alloc = allocated_bytes(&tree.sparse);
    let restored_sparse = restored(&target, &tree.sparse);
    let dst_alloc = allocated_bytes(&restored_sparse);
    assert_eq!(
        fs::metadata(&restored_sparse).unwrap().len(),
        tree.sparse_len
    );
    if src_alloc < 4 * MIB {
        assert!(
            dst_alloc < 32 * MIB,
            "sparse file of {} bytes restored with {dst_alloc} bytes allocated",
            tree.sparse_len
        );
    } else {
        eprintln!("note: source file system does not keep holes; sparse check skipped");
    }

    // The big file is more than one chunk and survived byte for byte (also
    // covered by the BLAKE3 in the listing; this gives a clearer message).
    assert_eq!(
        blake3_file(&tree.big),
        blake3_file(&restored(&target, &tree.big))
    );
}

/// Restoring into a target that does not exist yet creates it.
#[test]
fn restore_creates_missing_target() {
    let env = Env::init();
    let src = env.path("src");
    write_file(&src.join("a.txt"), b"alpha\n");
    write_file(&src.join("sub/b.txt"), b"beta\n");
    let id = env.backup(&[&src]);
    let target = env.path("does/not/exist/yet");
    env.restore(&id, &target);
    assert_same_tree(&src, &restored(&target, &src));
}

fn include_exclude_tree(env: &Env) -> std::path::PathBuf {
    let src = env.path("src");
    write_file(&src.join("a.txt"), b"a\n");
    write_file(&src.join("b.log"), b"b\n");
    write_file(&src.join("sub/c.txt"), b"c\n");
    write_file(&src.join("sub/d.log"), b"d\n");
    write_file(&src.join("sub/deeper/e.txt"), b"e\n");
    write_file(&src.join("keep/f.bin"), b"f\n");
    write_file(&src.join("keep/inner/g.bin"), b"g\n");
    write_file(&src.join("other/h.bin"), b"h\n");
    src
}

#[test]
fn restore_include_by_base_name() {
    let env = Env::init();
    let src = include_exclude_tree(&env);
    let id = env.backup(&[&src]);
    let target = env.path("restore");
    env.cmd()
        .args(["restore", &id, "--target"])
        .arg(&target)
        .args(["--include", "*.txt"])
        .run()
        .success();
    let out = restored(&target, &src);
    for f in ["a.txt", "sub/c.txt", "sub/deeper/e.txt"] {
        assert_eq!(
            fs::read(out.join(f)).unwrap(),
            fs::read(src.join(f)).unwrap(),
            "{f}"
        );
    }
    for f in [
        "b.log",
        "sub/d.log",
        "keep/f.bin",
        "keep/inner/g.bin",
        "other/h.bin",
    ] {
        assert!(!out.join(f).exists(), "{f} restored but not included");
    }
}

#[test]
fn restore_include_absolute_directory() {
    let env = Env::init();
    let src = include_exclude_tree(&env);
    let id = env.backup(&[&src]);
    let target = env.path("restore");
    let pattern = src.join("keep");
    env.cmd()
        .args(["restore", &id, "--target"])
        .arg(&target)
        .arg("--include")
        .arg(&pattern)
        .run()
        .success();
    let out = restored(&target, &src);
    // The directory, its whole content, and the parents it needs.
    assert_same_tree(&src.join("keep"), &out.join("keep"));
    for f in ["a.txt", "b.log", "sub/c.txt", "other/h.bin"] {
        assert!(!out.join(f).exists(), "{f} restored but not included");
    }
}

#[test]
fn restore_exclude() {
    let env = Env::init();
    let src = include_exclude_tree(&env);
    let id = env.backup(&[&src]);
    let target = env.path("restore");
    env.cmd()
        .args(["restore", &id, "--target"])
        .arg(&target)
        .args(["--exclude", "*.log", "--exclude", "inner"])
        .arg("--exclude")
        .arg(src.join("other"))
        .run()
        .success();
    let out = restored(&target, &src);
    for f in ["a.txt", "sub/c.txt", "sub/deeper/e.txt", "keep/f.bin"] {
        assert_eq!(
            fs::read(out.join(f)).unwrap(),
            fs::read(src.join(f)).unwrap(),
            "{f}"
        );
    }
    for f in ["b.log", "sub/d.log", "keep/inner", "other"] {
        assert!(!out.join(f).exists(), "{f} restored but excluded");
    }
}

/// `backup --exclude`: a pattern without '/' matches the base name at any
/// depth; a pattern with '/' matches the whole absolute path (and so a
/// directory with everything below it).
#[test]
fn backup_exclude_globs() {
    let env = Env::init();
    let src = include_exclude_tree(&env);
    let out = env
        .cmd()
        .arg("backup")
        .arg(&src)
        .args(["--exclude", "*.log", "--exclude", "inner", "--json"])
        .arg("--exclude")
        .arg(src.join("oth*"))
        .run()
        .success();
    let id = out.json()["snapshot_id"].as_str().unwrap().to_owned();
    let listed = env.ls(&id, None);
    let s = |rel: &str| src.join(rel).to_string_lossy().into_owned();
    for f in [
        "a.txt",
        "sub",
        "sub/c.txt",
        "sub/deeper/e.txt",
        "keep/f.bin",
    ] {
        assert!(listed.contains(&s(f)), "{f} missing from {listed:#?}");
    }
    for f in [
        "b.log",
        "sub/d.log",
        "keep/inner",
        "keep/inner/g.bin",
        "other",
        "other/h.bin",
    ] {
        assert!(
            !listed.contains(&s(f)),
            "{f} was excluded but is in the snapshot"
        );
    }

    let target = env.path("restore");
    env.restore(&id, &target);
    assert!(!restored(&target, &src).join("other").exists());
    assert!(restored(&target, &src).join("keep/f.bin").exists());
}

/// A file whose content changed is backed up again even when its size and
/// mtime are what they were (the ctime changed); old snapshots still restore
/// the old content.
#[test]
fn changed_file_with_same_size_and_mtime_is_detected() {
    let env = Env::init();
    let src = env.path("src");
    let file = src.join("data.bin");
    write_file(&file, &random_bytes(1, 300_000));
    write_file(&src.join("other.txt"), b"unchanged\n");
    set_mtime(&file, 1_700_000_000, 5);
    let first = env.backup(&[&src]);

    let old = fs::read(&file).unwrap();
    let mut new = old.clone();
    new[150_000] ^= 0xff;
    fs::write(&file, &new).unwrap();
    set_mtime(&file, 1_700_000_000, 5);
    let summary = env.backup_json(&[&src], &[]);
    assert_eq!(summary["files_changed"], 1, "{summary}");
    let second = summary["snapshot_id"].as_str().unwrap().to_owned();

    let t1 = env.path("r1");
    env.restore(&first, &t1);
    assert_eq!(fs::read(restored(&t1, &file)).unwrap(), old);
    let t2 = env.path("r2");
    env.restore(&second, &t2);
    assert_eq!(fs::read(restored(&t2, &file)).unwrap(), new);
    assert_same_tree(&src, &restored(&t2, &src));
}

/// Several source paths in one snapshot, including a single file.
#[test]
fn several_sources_and_a_single_file() {
    let env = Env::init();
    let a = env.path("a");
    let b = env.path("b");
    write_file(&a.join("one.txt"), b"one\n");
    write_file(&b.join("two/three.txt"), b"three\n");
    let single = env.path("single.txt");
    write_file(&single, b"single file source\n");
    let id = env.backup(&[&a, &b, &single]);
    let target = env.path("restore");
    env.restore(&id, &target);
    assert_same_tree(&a, &restored(&target, &a));
    assert_same_tree(&b, &restored(&target, &b));
    assert_eq!(
        fs::read(restored(&target, &single)).unwrap(),
        b"single file source\n"
    );
}

/// Two backups running at the same time (two cron jobs) both succeed, and
/// the repository holds both snapshots intact.
#[test]
fn concurrent_backups_into_one_repository() {
    let env = Env::init();
    let a = env.path("a");
    let b = env.path("b");
    for i in 0..3u64 {
        write_file(
            &a.join(format!("a-{i}.bin")),
            &random_bytes(200 + i, 5 * MIB as usize),
        );
        write_file(
            &b.join(format!("b-{i}.bin")),
            &random_bytes(300 + i, 5 * MIB as usize),
        );
    }
    // Shared content, stored by whichever backup gets there first.
    let shared = random_bytes(400, 4 * MIB as usize);
    write_file(&a.join("shared.bin"), &shared);
    write_file(&b.join("shared.bin"), &shared);

    let (ra, rb) = std::thread::scope(|s| {
        let ta = s.spawn(|| env.cmd().arg("backup").arg(&a).arg("--json").run());
        let tb = s.spawn(|| env.cmd().arg("backup").arg(&b).arg("--json").run());
        (ta.join().unwrap(), tb.join().unwrap())
    });
    let ida = ra.success().json()["snapshot_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let idb = rb.success().json()["snapshot_id"]
        .as_str()
        .unwrap()
        .to_owned();

    env.strata(["check"]).success();
    assert_eq!(env.snapshots().len(), 2);
    let target = env.path("restore");
    env.restore(&ida, &target);
    env.restore(&idb, &target);
    assert_same_tree(&a, &restored(&target, &a));
    assert_same_tree(&b, &restored(&target, &b));
}
