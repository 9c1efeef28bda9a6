//! The restorable window, WAL retention and `pg check` (issue #18) against a real cluster:
//! two base backups; `pg verify` shows both and the window from the older one's stop; the
//! older one forgotten, `pg expire` + `prune` drop exactly the segments before the kept one's
//! start (gone from verify and wal-fetch) and every later one fetches byte-identical; `pg
//! check` passes while archive_command works and fails, naming the segment, once it is
//! `false`.

use std::path::Path;

use crate::db::{Postgres, Server};
use crate::pitr::{as_postgres, give_to_postgres, pitr_setup, wait_archived, PitrSetup};

/// Segment number of a timeline-1 name with 16 MiB segments (256 per log).
fn number(name: &str) -> u64 {
    let log = u64::from_str_radix(&name[8..16], 16).unwrap();
    let seg = u64::from_str_radix(&name[16..24], 16).unwrap();
    log * 256 + seg
}

fn name(n: u64) -> String {
    format!("00000001{:08X}{:08X}", n / 256, n % 256)
}

/// Some writes, then a segment switch; waits until the completed segment is archived.
fn write_and_switch(pg: &Postgres, round: u32) -> String {
    pg.sql(
        "postgres",
        &format!(
            "INSERT INTO w SELECT g, repeat('y', 200) FROM generate_series({}, {}) g",
            round * 3000,
            round * 3000 + 2999
        ),
    );
    let last = pg.sql("postgres", "SELECT pg_walfile_name(pg_switch_wal())");
    wait_archived(pg, &last);
    last
}

#[test]
fn expire_and_prune_drop_exactly_the_wal_before_the_oldest_kept_base_backup_and_check_catches_a_broken_archive_command(
) {
    let PitrSetup {
        env,
        pg,
        config,
        home,
    } = pitr_setup("60s", true);
    let strata = |args: &[&str]| as_postgres(&config, &home).args(args.iter().copied()).run();
    // Repository commands as the postgres user too (the archive's files stay its own).
    let repo_cmd = |args: &[&str]| {
        as_postgres(&config, &home)
            .args(args.iter().copied())
            .env("STRATA_REPOSITORY", &env.repo)
            .env("STRATA_PASSWORD_FILE", &env.password_file)
            .run()
    };

    // No base backup yet: verify says nothing is restorable (a note), expire drops nothing.
    pg.sql("postgres", "CREATE TABLE w (i int, pad text)");
    write_and_switch(&pg, 0);
    let v = strata(&["pg", "verify", "--project", "shop", "--json"])
        .success()
        .json();
    assert_eq!(v["timelines"][0]["window"], serde_json::Value::Null, "{v}");
    assert!(
        v["notes"][0].as_str().unwrap().contains("no base backup"),
        "{v}"
    );
    let e = strata(&["pg", "expire", "--project", "shop", "--json"])
        .success()
        .json();
    assert_eq!(e["dropped"], serde_json::json!([]), "{e}");
    assert!(
        e["note"].as_str().unwrap().contains("no base backup"),
        "{e}"
    );

    // Two base backups with WAL between and after them.
    write_and_switch(&pg, 1);
    let old = strata(&["pg", "basebackup", "--project", "shop", "--json"])
        .success()
        .json();
    write_and_switch(&pg, 2);
    write_and_switch(&pg, 3);
    let kept = strata(&["pg", "basebackup", "--project", "shop", "--json"])
        .success()
        .json();
    write_and_switch(&pg, 4);
    let last = write_and_switch(&pg, 5);

    let v = strata(&["pg", "verify", "--project", "shop", "--json"])
        .success()
        .json();
    let line = &v["timelines"][0];
    let first = line["first"].as_str().unwrap().to_string();
    assert_eq!(line["last"], last.as_str(), "{v}");
    assert_eq!(v["base_backups"].as_array().unwrap().len(), 2, "{v}");
    for b in v["base_backups"].as_array().unwrap() {
        assert_eq!(b["restorable"], true, "{v}");
        assert_eq!(b["reaches"], last.as_str(), "{v}");
    }
    let window = &line["window"];
    assert_eq!(window["base_snapshot"], old["snapshot_id"], "{v}");
    assert_eq!(window["last_segment"], last.as_str(), "{v}");
    assert!(
        window["earliest"].as_str().unwrap() >= old["stop_time"].as_str().unwrap()
            && window["earliest"].as_str().unwrap() <= kept["stop_time"].as_str().unwrap(),
        "the window starts at the older base backup's stop: {v} {old}"
    );
    let text = strata(&["pg", "verify", "--project", "shop"])
        .success()
        .stdout_str();
    assert!(
        text.contains(&format!(
            "up to the last archived segment {last}, pushed at"
        )),
        "{text}"
    );

    // Every archived segment, as archived, before anything is dropped.
    let start = kept["start_wal"].as_str().unwrap().to_string();
    let all: Vec<String> = (number(&first)..=number(&last)).map(name).collect();
    assert!(number(&first) < number(&start), "{first} {start}");
    let copies = env.path("copies");
    std::fs::create_dir_all(&copies).unwrap();
    give_to_postgres(&copies);
    let fetch = |seg: &str, dest: &Path| {
        as_postgres(&config, &home)
            .args(["pg", "wal-fetch", "--project", "shop", seg])
            .arg(dest)
            .run()
    };
    for seg in &all {
        fetch(seg, &copies.join(seg)).success();
    }

    // The older base backup forgotten: expire drops what only it needed, prune its data.
    repo_cmd(&["forget", old["snapshot_id"].as_str().unwrap()]).success();
    let dry = strata(&["pg", "expire", "--project", "shop", "--dry-run", "--json"])
        .success()
        .json();
    let e = strata(&["pg", "expire", "--project", "shop", "--json"])
        .success()
        .json();
    let before: Vec<&String> = all.iter().filter(|s| **s < start).collect();
    let segments: Vec<&str> = e["dropped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .filter(|n| n.len() == 24)
        .collect();
    assert_eq!(segments, before, "{e}");
    assert_eq!(e["keep_from"], start.as_str(), "{e}");
    assert_eq!(
        dry["dropped"], e["dropped"],
        "a dry run says what a run does"
    );
    repo_cmd(&["prune"]).success();

    let v = strata(&["pg", "verify", "--project", "shop", "--json"])
        .success()
        .json();
    let line = &v["timelines"][0];
    assert_eq!(line["first"], start.as_str(), "{v}");
    assert_eq!(line["gaps"], serde_json::json!([]), "{v}");
    assert_eq!(line["window"]["base_snapshot"], kept["snapshot_id"], "{v}");
    assert_eq!(v["base_backups"].as_array().unwrap().len(), 1, "{v}");
    let out = env.path("after");
    std::fs::create_dir_all(&out).unwrap();
    give_to_postgres(&out);
    for seg in &all {
        let dest = out.join(seg);
        if *seg < start {
            fetch(seg, &dest)
                .code(1)
                .stderr_contains("is not in the WAL archive");
        } else {
            fetch(seg, &dest).success();
            assert!(
                std::fs::read(&dest).unwrap() == std::fs::read(copies.join(seg)).unwrap(),
                "{seg} differs from what was archived"
            );
        }
    }
    repo_cmd(&["check", "--read-data"]).success();

    // health judges the archive: recent, continuous, a base backup.
    let wal_items = || {
        let h = strata(&["health", "shop", "--json"]).json();
        let items: Vec<serde_json::Value> = h["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["check"] == "wal-archive")
            .cloned()
            .collect();
        assert!(!items.is_empty(), "no wal-archive item: {h}");
        items
    };
    let items = wal_items();
    assert_eq!(items.len(), 1, "{items:?}");
    let item = &items[0];
    assert_eq!(item["status"], "ok", "{item}");
    assert!(
        item["message"].as_str().unwrap().contains("1 base backup"),
        "{item}"
    );

    // pg check: a switch that reaches the archive passes...
    let c = strata(&["pg", "check", "--project", "shop", "--json"])
        .success()
        .json();
    assert_eq!(c["archived"], true, "{c}");

    // `strata run`'s prune step expires too: with the kept base backup forgotten, the
    // run's own base backup is the oldest, and the WAL before its start goes.
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace(
            "[projects.shop.pitr]",
            "prune = \"weekly\"\n[projects.shop.pitr]",
        ),
    )
    .unwrap();
    repo_cmd(&["forget", kept["snapshot_id"].as_str().unwrap()]).success();
    let run = strata(&["run", "shop", "--json"]).success().json();
    let maintenance = &run["projects"][0]["maintenance"];
    assert!(
        maintenance
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["what"] == "prune" && m["ok"] == true),
        "{run}"
    );
    let v = strata(&["pg", "verify", "--project", "shop", "--json"])
        .success()
        .json();
    let bases = v["base_backups"].as_array().unwrap();
    assert_eq!(bases.len(), 1, "{v}");
    assert!(
        bases[0]["start_wal"].as_str().unwrap() > start.as_str(),
        "{v}"
    );
    assert_eq!(v["timelines"][0]["first"], bases[0]["start_wal"], "{v}");
    assert_eq!(v["timelines"][0]["gaps"], serde_json::json!([]), "{v}");
    // Its stop segment was the last archived (pushed before it stopped): the window is
    // its stop time, never one that ends before it starts.
    let w = &v["timelines"][0]["window"];
    assert!(
        w["earliest"].as_str().unwrap() <= w["latest"].as_str().unwrap(),
        "{v}"
    );

    // What remains restorable still restores: the restore test recovers, from the one
    // kept base backup and the WAL left after expiry and prune, to a second ago, and finds
    // every row. (A second after the run's base backup ended, at least.)
    std::thread::sleep(std::time::Duration::from_secs(2));
    let t = strata(&[
        "pg",
        "restore-test",
        "--project",
        "shop",
        "--ago",
        "1s",
        "--json",
    ])
    .success()
    .json();
    assert_eq!(t["passed"], true, "{t}");
    assert_eq!(t["base_snapshot"], bases[0]["snapshot"], "{t}");
    let live = pg.sql("postgres", "SELECT count(*) FROM w");
    let db = t["databases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["database"] == "postgres")
        .unwrap_or_else(|| panic!("{t}"));
    assert_eq!(
        db["tables"],
        serde_json::json!([["public.w", live.parse::<u64>().unwrap()]]),
        "{t}"
    );

    // ...and with archiving broken, fails naming the segment and the archiver's failure.
    pg.sql("postgres", "ALTER SYSTEM SET archive_command = 'false'");
    pg.sql("postgres", "SELECT pg_reload_conf()");
    let failed = strata(&["pg", "check", "--project", "shop", "--timeout", "8s"]).code(1);
    let c_seg = failed.stderr.clone();
    assert!(
        c_seg.contains("did not reach the WAL archive of project shop")
            && c_seg.contains("failed")
            && c_seg.contains("archive_command"),
        "{c_seg}"
    );
    let segment = c_seg
        .split_whitespace()
        .find(|w| w.len() == 24 && w.starts_with("00000001"))
        .unwrap_or_else(|| panic!("no segment named: {c_seg}"));
    assert!(
        number(segment) > number(&last),
        "the segment waited for is a new one: {c_seg}"
    );

    // The server says its archive_command fails (pg_stat_archiver), and the newest
    // archived segment grows old: with max-wal-age, health warns of both.
    let cfg = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{cfg}max-wal-age = \"1s\"\n")).unwrap();
    std::thread::sleep(std::time::Duration::from_secs(2));
    let items = wal_items();
    assert!(items.iter().all(|i| i["status"] == "warning"), "{items:?}");
    let said = |needle: &str| {
        items
            .iter()
            .any(|i| i["message"].as_str().unwrap().contains(needle))
    };
    assert!(said("max-wal-age 1s"), "{items:?}");
    assert!(said("archiving is failing: pg_stat_archiver"), "{items:?}");
}
