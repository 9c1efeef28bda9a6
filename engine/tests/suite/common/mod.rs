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
    Repository::init(backend.clone(), b"pw", &options(pack_size)).unwrap();
    backend
}

/// The test repositories' parameters: a cheap KDF, 16/64/256 KiB chunks.
pub fn options(pack_size: u32) -> InitOptions {
    InitOptions {
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
        chunker_seed: None,
    }
}

/// `n` bytes of a fixed pseudo-random sequence (xorshift from `seed`): incompressible
/// test data, the same in every run.
pub fn pseudo_random(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
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

/// Source-like small files with shared structure (like a code base), about 5 MiB in all:
/// more than the packer holds back before it trains a dictionary.
pub fn small_source_files(dir: &Path, count: usize) {
    for i in 0..count {
        let mut text = String::new();
        text.push_str("// SPDX-License-Identifier: GPL-2.0-only\n");
        text.push_str("/*\n * Copyright (C) 2024 Example Authors\n */\n");
        text.push_str("#include <linux/kernel.h>\n#include <linux/module.h>\n\n");
        for f in 0..30 {
            text.push_str(&format!(
                "static int driver_{i}_probe_{f}(struct platform_device *pdev)\n{{\n\
                 \tstruct device *dev = &pdev->dev;\n\tint ret = {};\n\n\
                 \tif (!dev)\n\t\treturn -ENODEV;\n\treturn ret;\n}}\n\n",
                (i * 31 + f * 7) % 97
            ));
        }
        let sub = dir.join(format!("d{}", i % 20));
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(sub.join(format!("file{i}.c")), text).unwrap();
    }
}
