//! `check --read-data-subset`: reading a part of the packs (N/M, chosen by pack id) or a
//! random sample (P%), reporting damage in what it reads, and refusing bad subsets.

use serde_json::Value;

use crate::util::*;

/// A repository with small packs (1 MiB) holding one snapshot of a dozen MiB of random data
/// in several files, so that there are many packs. Returns the environment and the snapshot
/// id.
fn repo_with_many_packs() -> (Env, String) {
    let env = Env::init_small_packs();
    let src = env.path("src");
    for i in 0..6u64 {
        write_file(
            &src.join(format!("random-{i}.bin")),
            &random_bytes(100 + i, 2 * MIB as usize),
        );
    }
    write_file(&src.join("sub/notes.txt"), b"some notes\n");
    let id = env.backup(&[&src]);
    (env, id)
}

fn counter(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("check --json has no integer {key:?}: {v}"))
}

fn errors(v: &Value) -> Vec<String> {
    v["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("check --json has no errors array: {v}"))
        .iter()
        .map(|e| e.as_str().unwrap().to_owned())
        .collect()
}

/// The part (1-based, of `of`) that holds a pack: the first 4 bytes of its id as a
/// big-endian number, modulo `of`, plus one (as `check --help` documents).
fn part_of(pack_id: &str, of: u32) -> u32 {
    u32::from_str_radix(&pack_id[..8], 16).unwrap() % of + 1
}

#[test]
fn parts_cover_every_pack_once_and_exactly_one_finds_the_damage() {
    let (mut env, id) = repo_with_many_packs();
    let pack_count = env.repo_files("data").len() as u64;
    assert!(
        pack_count >= 4,
        "only {pack_count} packs; the test needs several"
    );

    // Healthy: the full read reads every pack, the parts split them, a sample rounds up.
    let full = env
        .strata(["check", "--read-data", "--json"])
        .success()
        .json();
    assert_eq!(counter(&full, "packs"), pack_count);
    assert_eq!(counter(&full, "packs_read"), pack_count);
    let structure = env.strata(["check", "--json"]).success().json();
    assert_eq!(counter(&structure, "packs_read"), 0);
    let sample = env
        .strata(["check", "--read-data-subset", "10%", "--json"])
        .success()
        .json();
    assert_eq!(counter(&sample, "packs_read"), pack_count.div_ceil(10));
    let tiny = env
        .strata(["check", "--read-data-subset", "0.001%", "--json"])
        .success()
        .json();
    assert_eq!(
        counter(&tiny, "packs_read"),
        1,
        "a sample reads at least one pack"
    );
    let healthy_parts: Vec<u64> = (1..=3)
        .map(|i| {
            let v = env
                .strata(["check", "--read-data-subset", &format!("{i}/3"), "--json"])
                .success()
                .json();
            counter(&v, "packs_read")
        })
        .collect();
    assert_eq!(healthy_parts.iter().sum::<u64>(), pack_count);
    // --read-data with a subset reads the subset.
    let both = env
        .strata([
            "check",
            "--read-data",
            "--read-data-subset",
            "2/3",
            "--json",
        ])
        .success()
        .json();
    assert_eq!(counter(&both, "packs_read"), healthy_parts[1]);

    let pack_id = env.flip_byte_in_largest_pack();
    let damaged_part = part_of(&pack_id, 3);
    env.fresh_cache();

    let mut total_read = 0;
    let mut reported_by = Vec::new();
    for i in 1..=3u32 {
        let subset = format!("{i}/3");
        let out = env.strata(["check", "--read-data-subset", &subset, "--json"]);
        let v = out.json();
        let read = counter(&v, "packs_read");
        assert_eq!(read, healthy_parts[i as usize - 1], "part {subset} changed");
        total_read += read;
        let errs = errors(&v);
        if errs.is_empty() {
            assert_eq!(out.code, 0, "no errors but a failure\n{}", out.describe());
            assert_eq!(v["ok"], true);
            continue;
        }
        reported_by.push(i);
        assert_eq!(out.code, 1, "damage must exit 1\n{}", out.describe());
        assert_eq!(v["ok"], false);
        assert!(
            errs.iter().any(|e| names_id(e, &pack_id)),
            "part {subset} should name the damaged pack {pack_id}: {errs:?}"
        );
        let snapshot_line = errs
            .iter()
            .find(|e| e.contains(&format!("snapshot {}", &id[..8])))
            .unwrap_or_else(|| panic!("no error names snapshot {id}: {errs:?}"));
        assert!(
            snapshot_line.contains("/src/random-"),
            "the snapshot line should name the damaged file: {snapshot_line}"
        );
    }
    assert_eq!(
        reported_by,
        vec![damaged_part],
        "exactly the part holding pack {pack_id} should find the damage"
    );
    assert_eq!(
        total_read, pack_count,
        "parts 1/3..3/3 should read every pack"
    );

    // Without --json: the damage on stderr with snapshot and path, the count on stdout.
    let subset = format!("{damaged_part}/3");
    let out = env.strata(["check", "--read-data-subset", &subset]).code(1);
    assert!(
        out.stderr
            .lines()
            .any(|l| l.contains(&format!("snapshot {}", &id[..8])) && l.contains("/src/random-")),
        "stderr should name the snapshot and the damaged file\n{}",
        out.describe()
    );
    let summary = format!(
        "(read {} of {pack_count} packs,",
        healthy_parts[damaged_part as usize - 1]
    );
    assert!(
        out.stdout_str().contains(&summary),
        "stdout should say {summary:?}\n{}",
        out.describe()
    );

    // Every pack: 100% finds it too.
    let out = env
        .strata(["check", "--read-data-subset", "100%", "--json"])
        .code(1);
    let v = out.json();
    assert_eq!(counter(&v, "packs_read"), pack_count);
    assert!(
        errors(&v).iter().any(|e| names_id(e, &pack_id)),
        "100% should find the damaged pack {pack_id}\n{}",
        out.describe()
    );
}

#[test]
fn bad_subsets_are_usage_errors() {
    let env = Env::init();
    for bad in ["0/3", "4/3", "0%", "101%", "abc", "1/0", "2.5", ""] {
        env.strata(["check", "--read-data-subset", bad])
            .code(2)
            .stderr_contains("--read-data-subset")
            .stderr_contains(&format!("'{bad}'"));
    }
    // Each says what is wrong.
    env.strata(["check", "--read-data-subset", "4/3"])
        .code(2)
        .stderr_contains("between 1 and M");
    env.strata(["check", "--read-data-subset", "101%"])
        .code(2)
        .stderr_contains("at most 100%");
    env.strata(["check", "--read-data-subset", "abc"])
        .code(2)
        .stderr_contains("N/M");
    // The usage error comes before the repository is opened: nothing was locked.
    assert!(env.repo_files("locks").is_empty());
}
