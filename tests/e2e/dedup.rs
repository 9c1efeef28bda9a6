//! Deduplication and incremental backups, judged by the `--json` summary and
//! by the size of the repository on disk.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::util::*;

fn counter(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("summary has no integer {key:?}: {v}"))
}

/// A source with a 20 MiB file (more than the maximum chunk) and small files.
fn source(env: &Env) -> (PathBuf, PathBuf) {
    let src = env.path("src");
    let big = src.join("big.bin");
    write_file(&big, &random_bytes(7, 20 * MIB as usize));
    write_file(&src.join("small-1.txt"), b"small one\n");
    write_file(&src.join("dir/small-2.txt"), b"small two\n");
    write_file(&src.join("dir/empty"), b"");
    (src, big)
}

#[test]
fn backup_json_summary_has_every_field() {
    let env = Env::init();
    let (src, _) = source(&env);
    let v = env.backup_json(&[&src], &[]);
    for key in [
        "files_new",
        "files_changed",
        "files_unchanged",
        "dirs",
        "bytes_read",
        "bytes_added",
        "data_blobs_added",
        "tree_blobs_added",
    ] {
        counter(&v, key);
    }
    assert!(
        v["duration_secs"].is_f64() || v["duration_secs"].is_u64(),
        "{v}"
    );
    assert!(v["errors"].as_array().unwrap().is_empty(), "{v}");
    let id = v["snapshot_id"].as_str().unwrap();
    assert!(
        id.len() >= 16 && id.chars().all(|c| c.is_ascii_hexdigit()),
        "snapshot_id {id:?}"
    );
    assert_eq!(counter(&v, "files_new"), 4, "{v}");
    assert_eq!(counter(&v, "files_changed"), 0, "{v}");
    assert_eq!(counter(&v, "files_unchanged"), 0, "{v}");
    assert!(counter(&v, "dirs") >= 2, "{v}");
    assert_eq!(counter(&v, "bytes_read"), 20 * MIB + 20, "{v}");
    assert!(counter(&v, "data_blobs_added") >= 3, "{v}");
    assert!(counter(&v, "tree_blobs_added") >= 2, "{v}");
    // Random data does not compress: at least the data itself is stored.
    assert!(counter(&v, "bytes_added") >= 20 * MIB, "{v}");
}

#[test]
fn unchanged_tree_adds_no_data_blobs() {
    let env = Env::init();
    let (src, _) = source(&env);
    let first = env.backup_json(&[&src], &[]);
    assert!(counter(&first, "data_blobs_added") > 0, "{first}");
    let data_before = env.repo_bytes("data");

    let second = env.backup_json(&[&src], &[]);
    assert_eq!(counter(&second, "data_blobs_added"), 0, "{second}");
    assert!(
        env.repo_bytes("data") - data_before < MIB,
        "an unchanged backup grew data/ by {} bytes",
        env.repo_bytes("data") - data_before
    );
}

#[test]
fn unchanged_files_are_taken_from_the_parent() {
    let env = Env::init();
    let (src, _) = source(&env);
    let first = env.backup_json(&[&src], &[]);
    let second = env.backup_json(&[&src], &[]);
    assert_eq!(counter(&second, "files_new"), 0, "{second}");
    assert_eq!(counter(&second, "files_changed"), 0, "{second}");
    assert_eq!(counter(&second, "files_unchanged"), 4, "{second}");

    // The parent is recorded in the snapshot.
    let snaps = env.snapshots();
    let snap = snaps
        .iter()
        .find(|s| s["id"] == second["snapshot_id"])
        .expect("second snapshot listed");
    assert_eq!(snap["parent"], first["snapshot_id"], "{snap}");

    // Both snapshots hold every byte of the source (snapshot v3's bytes_total), though the
    // second read none of them.
    let total: u64 = walk_files(&src)
        .iter()
        .map(|p| fs::metadata(p).unwrap().len())
        .sum();
    assert!(total > 0);
    assert_eq!(snap["summary"]["bytes_read"], 0, "{snap}");
    for s in &snaps {
        assert_eq!(s["summary"]["bytes_total"], total, "{s}");
    }
}

fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk_files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn copy_of_a_backed_up_file_adds_no_data() {
    let env = Env::init();
    let (src, big) = source(&env);
    env.backup_json(&[&src], &[]);
    let data_before = env.repo_bytes("data");

    let other = env.path("elsewhere/copy");
    fs::create_dir_all(&other).unwrap();
    fs::copy(&big, other.join("renamed-copy.bin")).unwrap();
    let v = env.backup_json(&[&other], &[]);
    assert_eq!(counter(&v, "files_new"), 1, "{v}");
    assert_eq!(counter(&v, "data_blobs_added"), 0, "{v}");
    assert!(counter(&v, "tree_blobs_added") >= 1, "{v}");
    let grown = env.repo_bytes("data") - data_before;
    assert!(
        grown < MIB,
        "a copy of a stored 20 MiB file grew data/ by {grown} bytes"
    );

    // ... and the copy restores.
    let target = env.path("restore");
    env.restore(v["snapshot_id"].as_str().unwrap(), &target);
    assert_eq!(
        blake3_file(&big),
        blake3_file(&restored(&target, &other.join("renamed-copy.bin")))
    );
}

#[test]
fn appending_to_a_large_file_stores_only_the_tail() {
    let env = Env::init();
    let (src, big) = source(&env);
    env.backup_json(&[&src], &[]);
    let mut content = fs::read(&big).unwrap();
    content.extend_from_slice(b"a few more bytes at the end");
    fs::write(&big, &content).unwrap();

    let v = env.backup_json(&[&src], &[]);
    assert_eq!(counter(&v, "files_changed"), 1, "{v}");
    assert!(counter(&v, "data_blobs_added") <= 3, "{v}");
    assert!(
        counter(&v, "bytes_added") < 10 * MIB,
        "appending 27 bytes to a 20 MiB file stored {} bytes",
        counter(&v, "bytes_added")
    );
}

#[test]
fn compressible_data_is_compressed() {
    let env = Env::init();
    let src = env.path("src");
    let line = b"2024-01-01T00:00:00Z INFO strata: the same log line, over and over\n";
    let text: Vec<u8> = line
        .iter()
        .copied()
        .cycle()
        .take(10 * MIB as usize)
        .collect();
    write_file(&src.join("app.log"), &text);
    let v = env.backup_json(&[&src], &[]);
    assert!(
        counter(&v, "bytes_added") < MIB,
        "10 MiB of repetitive text stored as {} bytes",
        counter(&v, "bytes_added")
    );
    assert!(env.repo_bytes("data") < 2 * MIB);
}

#[test]
fn identical_stdin_backups_dedup() {
    let env = Env::init();
    let dump = random_bytes(99, 3 * MIB as usize);
    let run = || {
        env.cmd()
            .args(["backup", "--stdin", "--stdin-filename", "db.sql", "--json"])
            .stdin(dump.clone())
            .run()
            .success()
            .json()
    };
    let first = run();
    assert!(counter(&first, "data_blobs_added") > 0, "{first}");
    let second = run();
    assert_eq!(counter(&second, "data_blobs_added"), 0, "{second}");
}
