//! Hostile sources and failed restores: files that change between the listing and the
//! read, and restores that cannot write a file's whole content.

use crate::common;

use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use strata_engine::archiver::{backup_paths, BackupOptions};
use strata_engine::progress::{NoProgress, Progress};
use strata_engine::restorer::{restore, RestoreOptions};
use strata_engine::Repository;
use strata_storage::FileType;

/// Swaps files at the moment the archiver announces it is about to read them (after their
/// `lstat`): one for a FIFO, one for another file under the same name.
struct Swapper {
    fifo: PathBuf,
    replaced: PathBuf,
    warnings: Mutex<Vec<String>>,
}

impl Progress for Swapper {
    fn current(&self, path: &Path) {
        if path == self.fifo {
            std::fs::remove_file(path).unwrap();
            nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        } else if path == self.replaced {
            let tmp = path.with_extension("new");
            std::fs::write(&tmp, b"not what was listed").unwrap();
            std::fs::rename(&tmp, path).unwrap();
        }
    }
    fn warn(&self, message: &str) {
        self.warnings.lock().unwrap().push(message.to_string());
    }
}

#[test]
fn a_file_swapped_for_a_fifo_or_another_file_after_listing_is_skipped_not_waited_on() {
    let backend = common::init_memory(1 << 20);
    let repo = Repository::open(backend.clone(), b"pw").unwrap();
    let src = tempfile::tempdir().unwrap();
    let fifo = src.path().join("becomes-a-fifo");
    let replaced = src.path().join("replaced");
    let kept = src.path().join("kept");
    std::fs::write(&fifo, b"a regular file when listed").unwrap();
    std::fs::write(&replaced, b"the listed content").unwrap();
    std::fs::write(&kept, b"stays as it is").unwrap();

    // Code that opened the FIFO for reading would wait for a writer for ever: this thread
    // is that writer, so such code finishes (and fails the assertions) instead of hanging
    // the test. Code that never waits on the FIFO does not need it.
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (done, fifo) = (done.clone(), fifo.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if std::fs::symlink_metadata(&fifo).is_ok_and(|m| m.file_type().is_fifo()) {
                    let opened = std::fs::OpenOptions::new()
                        .write(true)
                        .custom_flags(libc::O_NONBLOCK)
                        .open(&fifo);
                    if let Ok(mut w) = opened {
                        use std::io::Write;
                        let _ = w.write_all(b"read through the fifo");
                    }
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        })
    };
    let swapper = Swapper {
        fifo: fifo.clone(),
        replaced: replaced.clone(),
        warnings: Mutex::new(Vec::new()),
    };
    let result = backup_paths(
        &repo,
        &[src.path().to_path_buf()],
        &BackupOptions::default(),
        &swapper,
    );
    done.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let result = result.unwrap();
    let repo = Repository::open(backend, b"pw").unwrap();

    // Both are reported, as unreadable files are, and left out; the other file is kept.
    assert_eq!(result.errors.len(), 2, "{:?}", result.errors);
    assert_eq!(result.snapshot.summary.errors, 2);
    for (path, what) in [(&fifo, "a FIFO"), (&replaced, "another file")] {
        let e = result
            .errors
            .iter()
            .find(|e| e.message.starts_with(&format!("{}:", path.display())))
            .unwrap_or_else(|| panic!("no error for {}: {:?}", path.display(), result.errors));
        assert!(e.message.contains(&format!("replaced by {what}")), "{e}");
    }
    assert_eq!(
        *swapper.warnings.lock().unwrap(),
        strata_engine::report::messages(&result.errors)
    );
    let out = tempfile::tempdir().unwrap();
    let restored = common::restore_clean(&repo, &result.snapshot, out.path(), src.path());
    assert_eq!(
        std::fs::read(restored.join("kept")).unwrap(),
        b"stays as it is"
    );
    assert!(!restored.join("becomes-a-fifo").exists());
    assert!(!restored.join("replaced").exists());
}

/// Flips a bit in the middle of the stored blob `id`.
fn damage_blob(repo: &Repository, id: &strata_format::id::BlobId) {
    let loc = repo.index().get(id).unwrap();
    let (pack, _) = repo.index().pack(loc.pack);
    let backend = repo.backend();
    let mut bytes = repo
        .block_on(backend.read(FileType::Pack, &pack.to_hex()))
        .unwrap()
        .to_vec();
    bytes[loc.offset as usize + loc.length as usize / 2] ^= 1;
    repo.block_on(backend.write(FileType::Pack, &pack.to_hex(), Bytes::from(bytes)))
        .unwrap();
}

#[test]
fn a_file_that_cannot_be_restored_is_removed_and_reported_once() {
    let backend = common::init_memory(1 << 20);
    let repo = Repository::open(backend.clone(), b"pw").unwrap();
    let src = tempfile::tempdir().unwrap();
    let mut big = vec![0u8; 3 << 20];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for b in big.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    std::fs::write(src.path().join("damaged.bin"), &big).unwrap();
    std::fs::hard_link(src.path().join("damaged.bin"), src.path().join("link.bin")).unwrap();
    std::fs::write(src.path().join("fine.txt"), b"fine").unwrap();
    let r = backup_paths(
        &repo,
        &[src.path().to_path_buf()],
        &BackupOptions::default(),
        &NoProgress,
    )
    .unwrap();
    let repo = Repository::open(backend.clone(), b"pw").unwrap();
    let damaged = [src.path().as_os_str().as_encoded_bytes(), b"/damaged.bin"].concat();
    let node = match strata_engine::treewalk::resolve(&repo, &r.snapshot.tree, &damaged).unwrap() {
        strata_engine::treewalk::Found::Node { node, .. } => node,
        _ => panic!("damaged.bin not found"),
    };
    let strata_format::tree::NodeKind::File { content } = &node.kind else {
        panic!("damaged.bin is a file");
    };
    assert!(content.len() > 4, "several chunks: {}", content.len());
    // The last chunk: by then the file has most likely been created and sized.
    damage_blob(&repo, content.last().unwrap());
    let repo = Repository::open(backend, b"pw").unwrap();

    let out = tempfile::tempdir().unwrap();
    let stats = restore(
        &repo,
        &r.snapshot,
        out.path(),
        &RestoreOptions::default(),
        &NoProgress,
    )
    .unwrap();
    let restored = out.path().join(src.path().strip_prefix("/").unwrap());
    // Nothing is left that looks restored: neither the file nor its hard link.
    assert!(!restored.join("damaged.bin").exists());
    assert!(!restored.join("link.bin").exists());
    assert_eq!(std::fs::read(restored.join("fine.txt")).unwrap(), b"fine");
    // One error for each of the two paths, each once.
    assert_eq!(stats.errors.len(), 2, "{:?}", stats.errors);
    for name in ["damaged.bin", "link.bin"] {
        let path = format!("{}/{name}:", src.path().display());
        assert_eq!(
            stats
                .errors
                .iter()
                .filter(|e| e.message.starts_with(&path))
                .count(),
            1,
            "{:?}",
            stats.errors
        );
    }
    assert_eq!(stats.files, 1);
}

/// A Progress that deletes `victim` when the archiver is about to read it.
struct Remover {
    victim: PathBuf,
}

impl Progress for Remover {
    fn current(&self, path: &Path) {
        if path == self.victim {
            std::fs::remove_file(path).unwrap();
        }
    }
}

#[test]
fn an_epilogue_adds_its_files_and_facts_once_everything_below_its_directory_is_read() {
    use strata_engine::archiver::{backup_paths_with, Epilogue, EpilogueOutput};
    let backend = common::init_memory(1 << 20);
    let repo = Repository::open(backend.clone(), b"pw").unwrap();
    let src = tempfile::tempdir().unwrap();
    let dir = src.path().join("data");
    std::fs::create_dir_all(dir.join("base")).unwrap();
    std::fs::write(dir.join("base/1"), b"table").unwrap();
    std::fs::write(dir.join("label"), b"stale, replaced").unwrap();
    std::fs::write(dir.join("vanishes"), b"dropped during the backup").unwrap();
    // Every file below the directory is read before the epilogue runs: it sees them.
    let seen_before = Arc::new(Mutex::new(None));
    let seen = seen_before.clone();
    let watched = dir.join("base/1");
    let epilogue = Epilogue {
        dir: dir.clone(),
        run: Box::new(move |errors| {
            assert!(errors.is_empty(), "{errors:?}");
            *seen.lock().unwrap() = Some(watched.exists());
            Ok(EpilogueOutput {
                files: vec![("label".into(), b"START WAL LOCATION: 0/2000028\n".to_vec())],
                source_meta: vec![("k".into(), "v".into())],
            })
        }),
    };
    let opts = BackupOptions {
        ignore_vanished: true,
        ..BackupOptions::default()
    };
    let result = backup_paths_with(
        &repo,
        std::slice::from_ref(&dir),
        &opts,
        &Remover {
            victim: dir.join("vanishes"),
        },
        Some(epilogue),
    )
    .unwrap();
    assert_eq!(*seen_before.lock().unwrap(), Some(true));
    // A file that vanished is left out, not an error (ignore_vanished).
    assert!(result.errors.is_empty(), "{:?}", result.errors);
    assert_eq!(result.snapshot.source_meta, vec![("k".into(), "v".into())]);
    let repo = Repository::open(backend.clone(), b"pw").unwrap();
    let out = tempfile::tempdir().unwrap();
    let restored = common::restore_clean(&repo, &result.snapshot, out.path(), &dir);
    assert_eq!(
        std::fs::read(restored.join("label")).unwrap(),
        b"START WAL LOCATION: 0/2000028\n"
    );
    assert_eq!(std::fs::read(restored.join("base/1")).unwrap(), b"table");
    assert!(!restored.join("vanishes").exists());
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let md = std::fs::metadata(restored.join("label")).unwrap();
    assert_eq!(md.permissions().mode() & 0o7777, 0o600);
    assert_eq!(md.uid(), std::fs::metadata(&dir).unwrap().uid());

    // An epilogue that fails fails the backup, and no snapshot is written.
    let before = repo
        .block_on(backend.list(FileType::Snapshot))
        .unwrap()
        .len();
    let failing = Epilogue {
        dir: dir.clone(),
        run: Box::new(|_| {
            Err(strata_engine::EngineError::Invalid(
                "stop segment not archived".into(),
            ))
        }),
    };
    let e = backup_paths_with(
        &repo,
        std::slice::from_ref(&dir),
        &opts,
        &NoProgress,
        Some(failing),
    )
    .unwrap_err();
    assert!(e.to_string().contains("stop segment not archived"), "{e}");
    // An epilogue for a directory the backup never reaches fails it too.
    let elsewhere = Epilogue {
        dir: src.path().join("not-backed-up"),
        run: Box::new(|_| Ok(EpilogueOutput::default())),
    };
    let e = backup_paths_with(
        &repo,
        std::slice::from_ref(&dir),
        &opts,
        &NoProgress,
        Some(elsewhere),
    )
    .unwrap_err();
    assert!(e.to_string().contains("cannot be completed"), "{e}");
    assert_eq!(
        repo.block_on(backend.list(FileType::Snapshot))
            .unwrap()
            .len(),
        before
    );

    // Without ignore_vanished, a vanished file is reported.
    std::fs::write(dir.join("vanishes"), b"again").unwrap();
    let result = backup_paths(
        &repo,
        std::slice::from_ref(&dir),
        &BackupOptions::default(),
        &Remover {
            victim: dir.join("vanishes"),
        },
    )
    .unwrap();
    assert_eq!(result.errors.len(), 1, "{:?}", result.errors);
}
