//! Hostile sources: files that change between the listing and the read.

mod common;

use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use strata_engine::archiver::{backup_paths, BackupOptions};
use strata_engine::progress::Progress;
use strata_engine::Repository;

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
            .find(|e| e.starts_with(&format!("{}:", path.display())))
            .unwrap_or_else(|| panic!("no error for {}: {:?}", path.display(), result.errors));
        assert!(e.contains(&format!("replaced by {what}")), "{e}");
    }
    assert_eq!(*swapper.warnings.lock().unwrap(), result.errors);
    let out = tempfile::tempdir().unwrap();
    let restored = common::restore_clean(&repo, &result.snapshot, out.path(), src.path());
    assert_eq!(
        std::fs::read(restored.join("kept")).unwrap(),
        b"stays as it is"
    );
    assert!(!restored.join("becomes-a-fifo").exists());
    assert!(!restored.join("replaced").exists());
}
