//! PostgreSQL WAL archiving (issue #18) against a real cluster: `archive_command` is
//! `strata pg wal-push`, run by PostgreSQL itself as the `postgres` user. Every segment it
//! archived comes back byte-identical through `strata pg wal-fetch`; an identical re-push
//! succeeds; a different file under an archived name, and a segment of another cluster,
//! are refused; a file never archived is exit 1.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::db::{postgres, Postgres, Server};
use crate::util::*;

/// `env`'s files made the `postgres` user's (PostgreSQL runs `archive_command` as it).
pub(crate) fn give_to_postgres(path: &Path) {
    let user = nix::unistd::User::from_name("postgres")
        .ok()
        .flatten()
        .expect("no `postgres` user: install postgresql (bash .ci/run does)");
    let status = std::process::Command::new("chown")
        .arg("-R")
        .arg(format!("{}:{}", user.uid, user.gid))
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

/// A strata command as the `postgres` user, with the config (and nothing from `env`'s
/// repository variables: the project names its repository).
pub(crate) fn as_postgres(config: &Path, home: &Path) -> Cmd {
    Cmd::new()
        .wrap([
            "setpriv",
            "--reuid=postgres",
            "--regid=postgres",
            "--clear-groups",
            "--",
        ])
        .env("STRATA_CONFIG", config)
        .env("HOME", home)
        .env("XDG_CACHE_HOME", home.join(".cache"))
}

/// Segment names PostgreSQL has archived (`pg_wal/archive_status/*.done`), sorted.
fn archived(data: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(data.join("pg_wal/archive_status"))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".done").map(str::to_string)
        })
        .filter(|n| n.len() == 24)
        .collect();
    names.sort();
    names
}

/// Waits until PostgreSQL reports `segment` archived; fails on an archiving failure.
pub(crate) fn wait_archived(pg: &Postgres, segment: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let row = pg.sql(
            "postgres",
            "SELECT coalesce(last_archived_wal, ''), failed_count, coalesce(last_failed_wal, '') \
             FROM pg_stat_archiver",
        );
        let cols: Vec<&str> = row.split('|').collect();
        assert_eq!(cols.len(), 3, "{row}");
        assert_eq!(
            cols[1],
            "0",
            "archive_command failed for {}: {}",
            cols[2],
            std::fs::read_to_string(pg.socket_dir().join("postgres.log")).unwrap_or_default()
        );
        if cols[0] >= segment {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{segment} not archived in time (last: {row})"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn wal_push_archives_every_segment_and_wal_fetch_gives_each_back() {
    require("setpriv", "util-linux");
    let env = Env::new();
    env.strata(["init", "--kdf-memory", "1024", "--kdf-iterations", "1"])
        .success();
    let site = env.path("site");
    std::fs::create_dir_all(&site).unwrap();
    let config = env.path("strata.toml");
    std::fs::write(
        &config,
        format!(
            "state-dir = \"{state}\"\n[repositories.main]\nurl = \"{repo}\"\npassword-file = \
             \"{pw}\"\n[projects.shop]\npaths = [\"{site}\"]\nrepositories = [\"main\"]\n",
            state = env.path("state").display(),
            repo = env.repo.display(),
            pw = env.password_file.display(),
            site = site.display(),
        ),
    )
    .unwrap();
    give_to_postgres(&env.root);
    let home = env.home.clone();
    // Before PostgreSQL archives anything, verify says so and fails (a monitoring check of
    // a cluster whose archive_command never worked must not pass).
    let empty = as_postgres(&config, &home)
        .args(["pg", "verify", "--project", "shop"])
        .run()
        .code(1)
        .stdout_str();
    assert!(
        empty.contains("nothing is archived for project shop"),
        "{empty}"
    );

    let pg = Postgres::private();
    let data = pg.data_dir();
    archive_into(&pg, &config, &home);

    // A workload, and a segment switch after each round: three segments at least.
    pg.sql("postgres", "CREATE TABLE pitr_t (i int, pad text)");
    let mut last = String::new();
    for round in 0..3 {
        pg.sql(
            "postgres",
            &format!(
                "INSERT INTO pitr_t SELECT g, repeat('x', 200) FROM generate_series({}, {}) g",
                round * 5000,
                round * 5000 + 4999
            ),
        );
        // The segment the switch completes (pg_current_wal_lsn is where WAL has been
        // written, which may still be the start of the segment the inserts went to).
        last = pg.sql("postgres", "SELECT pg_walfile_name(pg_switch_wal())");
    }
    wait_archived(&pg, &last);
    let names = archived(&data);
    assert!(names.len() >= 3, "{names:?}");
    assert!(names.contains(&last), "{names:?}");

    // Each comes back byte-identical (fetched into a new directory `into`).
    let fetch_all = |into: &str| {
        let dir = env.path(into);
        std::fs::create_dir_all(&dir).unwrap();
        give_to_postgres(&dir);
        for name in &names {
            let dest = dir.join(name);
            as_postgres(&config, &home)
                .args(["pg", "wal-fetch", "--project", "shop", name])
                .arg(&dest)
                .run()
                .success();
            assert!(
                std::fs::read(&dest).unwrap()
                    == std::fs::read(data.join("pg_wal").join(name)).unwrap(),
                "{name} differs from what PostgreSQL wrote"
            );
        }
        dir
    };
    let fetched = fetch_all("fetched");

    // Run in a data directory (as PostgreSQL runs restore_command), a fetch that opens the
    // repository also fetches the next segments into a private spool; the next fetches
    // take theirs from it without the repository (here: moved away), byte-identical, and
    // a segment never prefetched then fails as any fetch without a repository does.
    let recovering = env.path("recovering");
    std::fs::create_dir_all(recovering.join("global")).unwrap();
    std::fs::copy(
        data.join("global/pg_control"),
        recovering.join("global/pg_control"),
    )
    .unwrap();
    give_to_postgres(&recovering);
    let fetch_in = |name: &str| {
        as_postgres(&config, &home)
            .current_dir(&recovering)
            .args(["pg", "wal-fetch", "--project", "shop", name])
            .arg(recovering.join(name))
            .run()
    };
    fetch_in(&names[0]).success();
    let spools: Vec<PathBuf> = std::fs::read_dir(env.path("state/wal-prefetch"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(spools.len(), 1, "{spools:?}");
    let held = std::fs::read_dir(&spools[0]).unwrap().count();
    assert_eq!(
        held,
        names.len() - 1,
        "every later segment archived is prefetched"
    );
    let moved = env.path("repo-away");
    std::fs::rename(&env.repo, &moved).unwrap();
    for name in &names[1..] {
        fetch_in(name).success();
        assert!(
            std::fs::read(recovering.join(name)).unwrap()
                == std::fs::read(data.join("pg_wal").join(name)).unwrap(),
            "{name} from the spool differs from what PostgreSQL wrote"
        );
    }
    assert_eq!(
        std::fs::read_dir(&spools[0]).unwrap().count(),
        0,
        "served once"
    );
    fetch_in(&names[0]).code(126);
    std::fs::rename(&moved, &env.repo).unwrap();

    // PostgreSQL may push a file again: the same content is a success.
    let first = data.join("pg_wal").join(&names[0]);
    let again = as_postgres(&config, &home)
        .args(["pg", "wal-push", "--project", "shop", "--json", "--pgdata"])
        .arg(&data)
        .arg(&first)
        .run()
        .success()
        .json();
    assert_eq!(again["outcome"], "already-archived", "{again}");

    // Different content under an archived name: refused, exit 1, nothing changed.
    let forged_dir = env.path("forged");
    std::fs::create_dir_all(&forged_dir).unwrap();
    let forged = forged_dir.join(&names[0]);
    let mut bytes = std::fs::read(&first).unwrap();
    bytes[100_000] ^= 0xff;
    std::fs::write(&forged, &bytes).unwrap();
    give_to_postgres(&forged_dir);
    as_postgres(&config, &home)
        .args(["pg", "wal-push", "--project", "shop", "--pgdata"])
        .arg(&data)
        .arg(&forged)
        .run()
        .code(1)
        .stderr_contains("already holds a different");

    // A segment of another cluster (the shared test server's) is refused. Not any file of
    // its pg_wal: PostgreSQL renames old segments for later use, and such a file's header
    // still names its old place. The segment holding a fresh checkpoint record has the
    // right header.
    let other = postgres();
    let other_data = other.data_dir();
    other.sql("postgres", "CHECKPOINT");
    let current = other.sql(
        "postgres",
        "SELECT pg_walfile_name(pg_current_wal_flush_lsn())",
    );
    let other_segment: PathBuf = other_data.join("pg_wal").join(&current);
    as_postgres(&config, &home)
        .args(["pg", "wal-push", "--project", "shop", "--pgdata"])
        .arg(&other_data)
        .arg(&other_segment)
        .run()
        .code(1)
        .stderr_contains("two clusters never share an archive");

    // A file the archive never had: exit 1, and nothing written.
    let missing = fetched.join("missing");
    as_postgres(&config, &home)
        .args([
            "pg",
            "wal-fetch",
            "--project",
            "shop",
            "0000000100000000000000FE",
        ])
        .arg(&missing)
        .run()
        .code(1)
        .stderr_contains("is not in the WAL archive of project shop");
    assert!(!missing.exists());

    // After the refused pushes every file still fetches as PostgreSQL wrote it, and the
    // repository checks clean, archived WAL included.
    let refetched = fetch_all("refetched");
    // A fetch that cannot tell (here: a project the config does not have) is not "no such
    // file" (1, which ends a recovery early) but 126, which stops it.
    as_postgres(&config, &home)
        .args(["pg", "wal-fetch", "--project", "nosuch", &names[0]])
        .arg(refetched.join("x"))
        .run()
        .code(126)
        .stderr_contains("no project named");
    as_postgres(&config, &home)
        .args(["check", "--read-data"])
        .env("STRATA_REPOSITORY", &env.repo)
        .env("STRATA_PASSWORD_FILE", &env.password_file)
        .run()
        .success();
    let stats = pg.sql("postgres", "SELECT failed_count FROM pg_stat_archiver");
    assert_eq!(stats, "0", "PostgreSQL saw no failed push");

    // The pushes kept the unwrapped key for the next one (no argon2id per segment): one
    // private file in a private directory of the state dir.
    let cache = env.path("state/key-cache");
    let mode = |p: &Path| {
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(p).unwrap().permissions())
            & 0o777
    };
    assert_eq!(mode(&cache), 0o700);
    let files: Vec<PathBuf> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(mode(&files[0]), 0o600);

    // The archive is continuous: every segment PostgreSQL archived, first to last.
    let verify = || {
        as_postgres(&config, &home)
            .args(["pg", "verify", "--project", "shop", "--json"])
            .run()
    };
    let report = verify().success().json();
    let line = &report["timelines"][0];
    assert_eq!(line["timeline"], 1, "{report}");
    assert_eq!(line["segments"], names.len(), "{report}");
    assert_eq!(line["first"], names[0].as_str(), "{report}");
    assert_eq!(line["last"], names[names.len() - 1].as_str(), "{report}");
    assert_eq!(line["gaps"], serde_json::json!([]), "{report}");
    // One segment's WAL file lost (the second pushed: WAL files are written one per push,
    // in the order PostgreSQL archives): a gap, named, and exit 1.
    let mut wal_files: Vec<(std::time::SystemTime, PathBuf)> =
        std::fs::read_dir(env.repo.join("wal"))
            .unwrap()
            .map(|e| {
                let p = e.unwrap().path();
                (std::fs::metadata(&p).unwrap().modified().unwrap(), p)
            })
            .collect();
    wal_files.sort();
    assert_eq!(wal_files.len(), names.len(), "one WAL file per push");
    std::fs::remove_file(&wal_files[1].1).unwrap();
    let report = verify().code(1).json();
    assert_eq!(
        report["timelines"][0]["gaps"],
        serde_json::json!([{"from": names[1], "to": names[1], "missing": 1}]),
        "{report}"
    );
    let text = as_postgres(&config, &home)
        .args(["pg", "verify", "--project", "shop"])
        .run()
        .code(1)
        .stdout_str();
    assert!(
        text.contains(&format!(
            "gap: {} .. {} (1 segment missing)",
            names[1], names[1]
        )),
        "{text}"
    );
}

/// A strata.toml with project `shop` whose cluster is `pg` (`stop_timeout` for its base
/// backups), on the socket as the `postgres` user.
pub(crate) fn pitr_config(env: &Env, pg: &Postgres, stop_timeout: &str) -> PathBuf {
    let config = env.path("strata.toml");
    std::fs::write(
        &config,
        format!(
            "state-dir = \"{state}\"\n[repositories.main]\nurl = \"{repo}\"\npassword-file = \
             \"{pw}\"\n[projects.shop]\npaths = [\"{site}\"]\nrepositories = [\"main\"]\n\
             [projects.shop.pitr]\ndata-dir = \"{data}\"\nurl = \
             \"postgres://postgres@/postgres?host={sock}&port={port}\"\nstop-timeout = \
             \"{stop_timeout}\"\n",
            state = env.path("state").display(),
            repo = env.repo.display(),
            pw = env.password_file.display(),
            site = env.path("site").display(),
            data = pg.data_dir().display(),
            sock = pg.socket_dir().display(),
            port = pg.port(),
        ),
    )
    .unwrap();
    config
}

/// Turns archiving on with `strata pg wal-push` as archive_command (a restart).
pub(crate) fn archive_into(pg: &Postgres, config: &Path, home: &Path) {
    let archive_command = format!(
        "STRATA_CONFIG={config} HOME={home} XDG_CACHE_HOME={home}/.cache {strata} pg wal-push \
         --project shop %p",
        config = config.display(),
        home = home.display(),
        strata = strata_bin().display(),
    );
    // Segments stay in pg_wal after their push, for the tests to compare.
    for setting in [
        "archive_mode = on".to_string(),
        format!("archive_command = '{archive_command}'"),
        "wal_keep_size = '1GB'".to_string(),
    ] {
        pg.sql("postgres", &format!("ALTER SYSTEM SET {setting}"));
    }
    pg.stop();
    pg.start();
}

/// What a PITR test starts from: a repository, a private cluster, a strata.toml whose
/// project `shop` names it (`pitr_config`), all the postgres user's.
pub(crate) struct PitrSetup {
    pub env: Env,
    pub pg: Postgres,
    pub config: PathBuf,
    pub home: PathBuf,
}

/// [`PitrSetup`], with archiving into the project turned on when `archive`.
pub(crate) fn pitr_setup(stop_timeout: &str, archive: bool) -> PitrSetup {
    require("setpriv", "util-linux");
    let env = Env::new();
    env.strata(["init", "--kdf-memory", "1024", "--kdf-iterations", "1"])
        .success();
    std::fs::create_dir_all(env.path("site")).unwrap();
    let pg = Postgres::private();
    let config = pitr_config(&env, &pg, stop_timeout);
    give_to_postgres(&env.root);
    let home = env.home.clone();
    if archive {
        archive_into(&pg, &config, &home);
    }
    PitrSetup {
        env,
        pg,
        config,
        home,
    }
}

#[test]
fn basebackup_is_written_only_complete_with_its_label_and_facts() {
    let PitrSetup {
        env,
        pg,
        config,
        home,
    } = pitr_setup("4s", false);
    let basebackup = || {
        as_postgres(&config, &home)
            .args(["pg", "basebackup", "--project", "shop", "--json"])
            .run()
    };
    let snapshots = || -> Vec<serde_json::Value> {
        let list = env.strata(["snapshots", "--json"]).success().json();
        list.as_array().unwrap().clone()
    };

    // Without WAL archiving a base backup could never be restored to a time: refused.
    basebackup().code(1).stderr_contains("archive_mode is off");
    assert!(snapshots().is_empty());

    archive_into(&pg, &config, &home);
    pg.sql(
        "postgres",
        "CREATE TABLE bb (i int); INSERT INTO bb SELECT generate_series(1, 1000)",
    );
    let system_id = pg.sql(
        "postgres",
        "SELECT system_identifier FROM pg_control_system()",
    );
    let r = basebackup().success().json();
    assert_eq!(r["project"], "shop", "{r}");
    assert_eq!(r["timeline"], 1, "{r}");
    assert_eq!(r["system_id"], system_id.as_str(), "{r}");
    let stop_wal = r["stop_wal"].as_str().unwrap().to_string();
    // Complete: its stop segment is in the archive (fetchable) before the command returns.
    let fetched = env.path("stop-segment");
    as_postgres(&config, &home)
        .args(["pg", "wal-fetch", "--project", "shop", &stop_wal])
        .arg(&fetched)
        .run()
        .success();
    let list = snapshots();
    assert_eq!(list.len(), 1, "{list:?}");
    let snap = &list[0];
    assert_eq!(snap["tags"], serde_json::json!(["pg-basebackup"]), "{snap}");
    let id = snap["id"].as_str().unwrap().to_string();

    // Restored, it is the data directory with the label pg_backup_stop returned, pg_wal
    // empty, and no postmaster.pid.
    let out = env.path("restored");
    env.cmd()
        .args(["restore", &id, "--target"])
        .arg(&out)
        .run()
        .success();
    let data = out.join(pg.data_dir().strip_prefix("/").unwrap());
    let label = std::fs::read_to_string(data.join("backup_label")).unwrap();
    assert!(label.starts_with("START WAL LOCATION:"), "{label}");
    assert!(label.contains("START TIMELINE: 1"), "{label}");
    assert!(label.contains("LABEL: strata shop"), "{label}");
    assert!(data.join("PG_VERSION").is_file());
    assert!(data.join("global/pg_control").is_file());
    assert_eq!(std::fs::read_dir(data.join("pg_wal")).unwrap().count(), 0);
    assert!(!data.join("postmaster.pid").exists());
    // The live data directory never got a backup_label (a crash would not restart).
    assert!(!pg.data_dir().join("backup_label").exists());

    // A second base backup reuses what did not change (night over night).
    let again = basebackup().success().json();
    assert!(
        again["bytes_added"].as_u64().unwrap() < r["bytes_added"].as_u64().unwrap() / 4,
        "{again} after {r}"
    );

    // `strata run` takes one too, as the project's last source, with the run's tags; and
    // copies the WAL archive before the snapshots to a second repository (a base backup
    // there without its WAL could not even start).
    let offsite = env.path("offsite");
    env.cmd()
        .args([
            "init",
            "--kdf-memory",
            "1024",
            "--kdf-iterations",
            "1",
            "-r",
        ])
        .arg(&offsite)
        .run()
        .success();
    give_to_postgres(&offsite);
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace(
            "repositories = [\"main\"]",
            "repositories = [\"main\", \"offsite\"]",
        ) + &format!(
            "[repositories.offsite]\nurl = \"{}\"\npassword-file = \"{}\"\n",
            offsite.display(),
            env.password_file.display()
        ),
    )
    .unwrap();
    let run = as_postgres(&config, &home)
        .args(["run", "shop", "--json"])
        .run()
        .success()
        .json();
    let items = run["projects"][0]["snapshots"].as_array().unwrap().clone();
    let item = items
        .iter()
        .find(|i| i["source"] == "pg-basebackup")
        .unwrap_or_else(|| panic!("no base backup in the run: {run}"));
    assert_eq!(item["status"], "ok", "{run}");
    let by_run = snapshots()
        .into_iter()
        .find(|s| s["id"] == item["snapshot_id"])
        .unwrap();
    let tags: Vec<&str> = by_run["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(tags.contains(&"pg-basebackup"), "{tags:?}");
    assert!(
        tags.iter().any(|t| t.starts_with("strata-run:")),
        "{tags:?}"
    );
    let wal_copy = run["projects"][0]["maintenance"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["what"] == "wal-copy")
        .cloned()
        .unwrap_or_else(|| panic!("no WAL copy in the run: {run}"));
    assert_eq!(wal_copy["ok"], true, "{run}");
    // The offsite archive, read as a project whose primary it is, holds every file of the
    // main one (verify: the same segments), and the base backups came along.
    let verify_of = |cfg: &Path| {
        as_postgres(cfg, &home)
            .args(["pg", "verify", "--project", "shop", "--json"])
            .run()
            .json()
    };
    let offsite_config = env.path("offsite.toml");
    std::fs::write(
        &offsite_config,
        std::fs::read_to_string(&config).unwrap().replace(
            "repositories = [\"main\", \"offsite\"]",
            "repositories = [\"offsite\"]",
        ),
    )
    .unwrap();
    let (main_wal, offsite_wal) = (verify_of(&config), verify_of(&offsite_config));
    // The offsite archive holds what its base backups need (the run's, copied with it):
    // from its start segment to the main archive's last, each with its first push time,
    // and that base backup restorable there. (What only the main one's older base backups
    // need is not copied: the offsite's expiry would drop it again.)
    let (main_line, off_line) = (&main_wal["timelines"][0], &offsite_wal["timelines"][0]);
    let bases = offsite_wal["base_backups"].as_array().unwrap();
    assert_eq!(bases.len(), 1, "{offsite_wal}");
    assert_eq!(bases[0]["restorable"], true, "{offsite_wal}");
    assert_eq!(off_line["first"], bases[0]["start_wal"], "{offsite_wal}");
    assert_eq!(off_line["last"], main_line["last"], "{offsite_wal}");
    assert_eq!(
        off_line["last_pushed"], main_line["last_pushed"],
        "{offsite_wal}"
    );
    assert_eq!(off_line["gaps"], serde_json::json!([]), "{offsite_wal}");
    assert!(
        main_line["segments"].as_u64().unwrap() > off_line["segments"].as_u64().unwrap(),
        "{main_wal}"
    );
    let offsite_snaps = env
        .cmd()
        .args(["snapshots", "--json", "-r"])
        .arg(&offsite)
        .run()
        .success()
        .json();
    assert!(
        offsite_snaps.as_array().unwrap().iter().any(|s| s["tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "pg-basebackup")),
        "{offsite_snaps}"
    );

    // Archiving broken: the stop segment never arrives; the backup fails after
    // stop-timeout, naming it, and writes no snapshot.
    pg.sql("postgres", "ALTER SYSTEM SET archive_command = 'false'");
    pg.sql("postgres", "SELECT pg_reload_conf()");
    let before = snapshots().len();
    basebackup()
        .code(1)
        .stderr_contains("did not reach the WAL archive of project shop");
    assert_eq!(snapshots().len(), before);

    // A url naming another cluster than data-dir: refused.
    let other = postgres();
    let wrong = std::fs::read_to_string(&config).unwrap().replace(
        &format!("host={}&port={}", pg.socket_dir().display(), pg.port()),
        &format!(
            "host={}&port={}",
            other.socket_dir().display(),
            other.port()
        ),
    );
    std::fs::write(&config, wrong).unwrap();
    basebackup().code(1).stderr_contains("name two clusters");
    assert_eq!(snapshots().len(), before);
}

#[test]
fn restore_test_recovers_to_minutes_ago_counts_the_rows_and_is_recorded() {
    let PitrSetup {
        env,
        pg,
        config,
        home,
    } = pitr_setup("60s", true);
    // Laid out as Debian's clusters are: postgresql.conf and pg_hba.conf outside the data
    // directory (the running server has read them), so base backups hold neither.
    let etc = env.path("etc");
    std::fs::create_dir_all(&etc).unwrap();
    for f in ["postgresql.conf", "pg_hba.conf"] {
        std::fs::rename(pg.data_dir().join(f), etc.join(f)).unwrap();
    }
    pg.sql(
        "postgres",
        "CREATE TABLE rt (i int); INSERT INTO rt SELECT generate_series(1, 1000)",
    );
    as_postgres(&config, &home)
        .args(["pg", "basebackup", "--project", "shop"])
        .run()
        .success();
    std::thread::sleep(Duration::from_secs(2));
    pg.sql(
        "postgres",
        "INSERT INTO rt SELECT generate_series(1001, 1500)",
    );
    std::thread::sleep(Duration::from_secs(3));
    // After the target (now minus 2 s): not in the restored state.
    pg.sql(
        "postgres",
        "INSERT INTO rt SELECT generate_series(1501, 1750)",
    );
    let test = |ago: &str| {
        as_postgres(&config, &home)
            .args([
                "pg",
                "restore-test",
                "--project",
                "shop",
                "--json",
                "--ago",
                ago,
            ])
            .run()
    };
    let r = test("2s").success().json();
    assert_eq!(r["passed"], true, "{r}");
    assert_eq!(r["switched"], true, "{r}");
    assert!(r["rto_secs"].as_f64().unwrap() > 0.0, "{r}");
    let postgres_db = r["databases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["database"] == "postgres")
        .unwrap_or_else(|| panic!("{r}"));
    assert_eq!(
        postgres_db["tables"],
        serde_json::json!([["public.rt", 1500]]),
        "{r}"
    );
    assert!(r["kept"].is_null(), "{r}");
    // The live cluster still has every row (the test never touched it).
    assert_eq!(pg.sql("postgres", "SELECT count(*) FROM rt"), "1750");

    // To an hour ago no base backup had ended: a failed test, exit 1, saying why.
    let failed = test("1h").code(1).json();
    assert_eq!(failed["passed"], false, "{failed}");
    assert!(
        failed["error"].as_str().unwrap().contains("base backup"),
        "{failed}"
    );

    // Both are in the catalog, as restore tests of the project.
    let restore_tests = |config: &Path| {
        as_postgres(config, &home)
            .args(["log", "--kind", "restore-test", "--json"])
            .run()
            .success()
            .json()
            .as_array()
            .unwrap()
            .clone()
    };
    let entries = restore_tests(&config);
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert!(
        entries.iter().all(|e| e["project"] == "shop"),
        "{entries:?}"
    );
    assert_eq!(entries.iter().filter(|e| e["ok"] == true).count(), 1);

    // `strata run` runs it on the project's restore-test schedule, to now minus the
    // cluster's restore-test-ago. (A state dir of its own: the manual test just recorded
    // counts as this hour's, and the schedule would not be due.)
    let text = std::fs::read_to_string(&config).unwrap();
    let config = env.path("run.toml");
    std::fs::write(
        &config,
        text.replace(
            "repositories = [\"main\"]\n",
            "repositories = [\"main\"]\nrestore-test = \"hourly\"\n",
        )
        .replace(
            &format!("\"{}\"", env.path("state").display()),
            &format!("\"{}\"", env.path("state-run").display()),
        ) + "restore-test-ago = \"2s\"\n",
    )
    .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let run = as_postgres(&config, &home)
        .args(["run", "shop", "--json"])
        .run()
        .success()
        .json();
    let item = run["projects"][0]["maintenance"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["what"] == "restore-test")
        .cloned()
        .unwrap_or_else(|| panic!("no restore test in the run: {run}"));
    assert_eq!(item["ok"], true, "{run}");

    // Recorded with the run, and it counted every row (the last insert was before its
    // target).
    let entries = restore_tests(&config);
    assert_eq!(entries.len(), 1, "{entries:?}");
    let by_run = &entries[0];
    assert!(!by_run["run_id"].is_null(), "{by_run}");
    assert_eq!(by_run["ok"], true, "{by_run}");
    let tables = &by_run["body"]["report"]["databases"];
    assert!(
        tables.to_string().contains("[\"public.rt\",1750]"),
        "{by_run}"
    );

    // In place only with --force, after a safety snapshot of what the target held.
    let target = env.path("in-place");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(target.join("old-file"), b"the old cluster's").unwrap();
    give_to_postgres(&target);
    let restore = |extra: &[&str]| {
        as_postgres(&config, &home)
            .args([
                "pg",
                "restore",
                "--project",
                "shop",
                "--latest",
                "--json",
                "--target",
            ])
            .arg(&target)
            .args(extra.iter().copied())
            .run()
    };
    restore(&[]).code(1).stderr_contains("is not empty");
    assert!(target.join("old-file").exists(), "refused: untouched");
    let r = restore(&["--force"]).success().json();
    let safety = r["safety_snapshot"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"));
    assert!(target.join("PG_VERSION").is_file(), "{r}");
    assert!(!target.join("old-file").exists());
    let saved = env.path("saved");
    env.cmd()
        .args(["restore", safety, "--target"])
        .arg(&saved)
        .run()
        .success();
    assert_eq!(
        std::fs::read(
            saved
                .join(target.strip_prefix("/").unwrap())
                .join("old-file")
        )
        .unwrap(),
        b"the old cluster's"
    );
    // Never over a running server's directory.
    as_postgres(&config, &home)
        .args([
            "pg",
            "restore",
            "--project",
            "shop",
            "--latest",
            "--force",
            "--target",
        ])
        .arg(pg.data_dir())
        .run()
        .code(1)
        .stderr_contains("a server runs in");
}
