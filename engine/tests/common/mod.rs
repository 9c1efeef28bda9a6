//! Helpers shared by the engine's integration tests over the in-memory backend.

#![allow(dead_code)] // each test crate uses a part

use std::path::Path;
use std::sync::Arc;

use strata_engine::checker::{check_with, CheckOptions};
use strata_engine::progress::NoProgress;
use strata_engine::restorer::{restore, RestoreOptions};
use strata_engine::{InitOptions, Repository};
use strata_format::chunker::ChunkerParams;
use strata_format::keyfile::KdfParams;
use strata_format::snapshot::SnapshotFile;
use strata_storage::{Backend, OpendalBackend};

/// A fresh in-memory repository (password `pw`, a cheap KDF, 16/64/256 KiB chunks).
pub fn init_memory(pack_size: u32) -> Arc<dyn Backend> {
    let backend: Arc<dyn Backend> = Arc::new(OpendalBackend::memory().unwrap());
    let opts = InitOptions {
        kdf: KdfParams {
            m_kib: 64,
            t: 1,
            p: 1,
        },
        chunker: ChunkerParams {
            min_size: 16 * 1024,
            avg_size: 64 * 1024,
            max_size: 256 * 1024,
        },
        db_chunker: ChunkerParams::DATABASE,
        pack_size,
        compression_level: 3,
    };
    Repository::init(backend.clone(), b"pw", &opts).unwrap();
    backend
}

/// Asserts that `check --read-data` finds nothing wrong.
pub fn assert_checks_clean(repo: &Repository) {
    let opts = CheckOptions {
        read_data: true,
        ..Default::default()
    };
    let report = check_with(repo, &opts, &NoProgress).unwrap();
    assert!(report.is_ok(), "{:?}", report.errors);
}

/// Restores a whole snapshot under `target`, asserting that nothing failed; returns where
/// `src` (an absolute path the snapshot holds) was restored.
pub fn restore_clean(
    repo: &Repository,
    snap: &SnapshotFile,
    target: &Path,
    src: &Path,
) -> std::path::PathBuf {
    let stats = restore(repo, snap, target, &RestoreOptions::default(), &NoProgress).unwrap();
    assert!(stats.errors.is_empty(), "{:?}", stats.errors);
    target.join(src.strip_prefix("/").unwrap())
}
