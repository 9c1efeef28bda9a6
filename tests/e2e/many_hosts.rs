//! Many hosts, one S3 repository (issue #19): writers on several hosts back up overlapping
//! trees while `forget --prune` runs again and again beside them (two-phase prune,
//! spec/prune.md). Each "host" is a sequence of `strata backup --host hN` processes with
//! a local cache of its own; the repository is a prefix of the tests' SeaweedFS bucket.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::Value;

use crate::remote::{init_repo, s3_env};
use crate::util::*;

const HOSTS: u64 = 3;
const ROUNDS: u64 = 6;
/// Files every host has (the same bytes under each host's own path).
const SHARED: [usize; 3] = [700_000, 1_200_000, 900_000];
/// The file only one host has, rewritten every round.
const UNIQUE: usize = 400_000;

fn shared_bytes(i: usize) -> Vec<u8> {
    random_bytes(1000 + i as u64, SHARED[i])
}

fn unique_bytes(host: u64, round: u64) -> Vec<u8> {
    random_bytes(host * 100 + round, UNIQUE)
}

/// What host `host`'s tree holds in round `round` (relative path, bytes). Its own file
/// comes back every third round: by then the snapshot that had it may have been forgotten
/// and its data marked by a prune, which the backup must then store again or revive.
fn tree(host: u64, round: u64) -> BTreeMap<String, Vec<u8>> {
    let mut files: BTreeMap<String, Vec<u8>> = (0..SHARED.len())
        .map(|i| (format!("shared/s{i}.bin"), shared_bytes(i)))
        .collect();
    files.insert(format!("own/h{host}.bin"), unique_bytes(host, round % 3));
    files
}

fn write_tree(root: &Path, files: &BTreeMap<String, Vec<u8>>) {
    for (rel, bytes) in files {
        write_file(&root.join(rel), bytes);
    }
}

/// Every regular file below `root`, by path relative to it.
fn read_tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    walk(root)
        .into_iter()
        .filter(|e| e.kind == "file")
        .map(|e| {
            let rel = e.path.clone();
            let bytes = std::fs::read(root.join(&rel)).unwrap();
            (rel, bytes)
        })
        .collect()
}

/// Three hosts back up overlapping trees six times each into one S3 repository while
/// `forget --keep-last 2 --prune` runs in a loop beside them. Every backup and every prune
/// succeeds; afterwards `check --read-data` is clean, exactly the last two snapshots of
/// each host remain and restore byte for byte as backed up, and `stats` shows the shared
/// files stored once for all hosts.
#[test]
fn many_hosts_back_up_into_one_s3_repository_while_prune_runs() {
    let (env, _s3) = s3_env();
    init_repo(&env, true);
    let done = AtomicBool::new(false);
    let (made, prunes) = std::thread::scope(|s| {
        let writers: Vec<_> = (1..=HOSTS)
            .map(|host| {
                let env = &env;
                s.spawn(move || {
                    let src = env.path(format!("src-h{host}"));
                    let cache = env.path(format!("cache-h{host}"));
                    let mut made = Vec::new();
                    for round in 0..ROUNDS {
                        write_tree(&src, &tree(host, round));
                        let out = env
                            .cmd()
                            .env("XDG_CACHE_HOME", &cache)
                            .args(["backup", "--json", "--host", &format!("h{host}")])
                            .arg(&src)
                            .run()
                            .success()
                            .json();
                        let id = out["snapshot_id"].as_str().unwrap().to_string();
                        made.push((id, host, round));
                    }
                    made
                })
            })
            .collect();
        let pruner = s.spawn(|| {
            let mut runs: Vec<Value> = Vec::new();
            // At least three runs, and on until every writer is done.
            while runs.len() < 3 || !done.load(Ordering::SeqCst) {
                let out = env
                    .cmd()
                    .env("XDG_CACHE_HOME", env.path("cache-admin"))
                    .args(["forget", "--keep-last", "2", "--prune", "--json"])
                    .run()
                    .success()
                    .json();
                runs.push(out["prune"].clone());
            }
            runs
        });
        let mut made = Vec::new();
        for w in writers {
            made.extend(w.join().unwrap());
        }
        done.store(true, Ordering::SeqCst);
        (made, pruner.join().unwrap())
    });
    assert!(
        prunes
            .iter()
            .any(|p| p["other_sessions"].as_u64().unwrap() > 0),
        "some prune ran beside a backup: {prunes:?}"
    );

    // The last word: forget and prune with nobody else running.
    let last = env
        .strata(["forget", "--keep-last", "2", "--prune", "--json"])
        .success()
        .json();
    assert_eq!(last["prune"]["other_sessions"], 0, "{last}");
    env.check_read_data_clean();

    let of: BTreeMap<String, (u64, u64)> = made
        .iter()
        .map(|(id, h, r)| (id.clone(), (*h, *r)))
        .collect();
    let survivors: BTreeSet<(u64, u64)> = env
        .snapshots()
        .iter()
        .map(|s| of[s["id"].as_str().unwrap()])
        .collect();
    let want: BTreeSet<(u64, u64)> = (1..=HOSTS)
        .flat_map(|h| [(h, ROUNDS - 2), (h, ROUNDS - 1)])
        .collect();
    assert_eq!(
        survivors, want,
        "the last two snapshots of each host remain"
    );
    for s in env.snapshots() {
        let id = s["id"].as_str().unwrap();
        let (host, round) = of[id];
        let target = env.path(format!("restore-{}", &id[..12]));
        std::fs::create_dir(&target).unwrap();
        env.restore(id, &target).success();
        let src = env.path(format!("src-h{host}"));
        assert!(
            read_tree(&restored(&target, &src)) == tree(host, round),
            "snapshot {id} (h{host}, round {round}) restores as it was backed up"
        );
    }

    // Cross-host dedup: the latest snapshots of the three hosts reference the shared
    // files' bytes once.
    let latest: Vec<String> = (1..=HOSTS)
        .map(|h| {
            made.iter()
                .filter(|(_, host, round)| *host == h && *round == ROUNDS - 1)
                .map(|(id, _, _)| id.clone())
                .next()
                .unwrap()
        })
        .collect();
    let mut args = vec!["stats".to_string(), "--json".to_string()];
    args.extend(latest);
    let stats = env.strata(&args).success().json();
    let shared: u64 = SHARED.iter().map(|n| *n as u64).sum();
    let unique = UNIQUE as u64;
    assert_eq!(
        stats["total"]["restore_size"],
        HOSTS * (shared + unique),
        "{stats}"
    );
    assert_eq!(
        stats["total"]["blob_raw_bytes"],
        shared + HOSTS * unique,
        "the shared files are stored once: {stats}"
    );
}
