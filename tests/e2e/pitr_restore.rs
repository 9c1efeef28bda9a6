//! `strata pg restore` (issue #18's acceptance) against a real cluster archiving through
//! `strata pg wal-push`: a workload with table checksums taken at T1 < T2 < T3, base
//! backups before T1 and between T1 and T2; each time restores (and recovers, started by
//! strata) to exactly its checksum, T1 from the older base backup. A promoted restore
//! makes timeline 2, which archives too; a time on it restores, and `--timeline 1` to a
//! time after the fork gives timeline 1's state. A segment removed from the middle of the
//! archive refuses a restore past it before anything is restored, naming it.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::db::Postgres;
use crate::pitr::{as_postgres, give_to_postgres};
use crate::util::*;

/// A running cluster: its socket directory and port (local connections are trusted).
struct Cluster {
    socket: PathBuf,
    port: u16,
    /// The server's log, quoted when archiving fails.
    log: PathBuf,
}

impl Cluster {
    fn of(pg: &Postgres) -> Cluster {
        Cluster {
            socket: pg.socket_dir().to_path_buf(),
            port: pg.port(),
            log: pg.socket_dir().join("postgres.log"),
        }
    }

    /// Runs `sql` (one transaction) as the `postgres` user; its output, trimmed.
    #[track_caller]
    fn sql(&self, sql: &str) -> String {
        let mut cmd = Command::new("psql");
        for var in [
            "PGPASSWORD",
            "PGPASSFILE",
            "PGHOST",
            "PGPORT",
            "PGUSER",
            "PGDATABASE",
        ] {
            cmd.env_remove(var);
        }
        let out = cmd
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "--no-password",
            ])
            .args(["-U", "postgres", "-d", "postgres", "-h"])
            .arg(&self.socket)
            .args(["-p", &self.port.to_string(), "-c", sql])
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// Some transactions: rows changed and added (round `n` > 0).
    fn round(&self, n: u32) {
        self.sql(&format!(
            "UPDATE acct SET v = v + {n} WHERE i % 7 = {}; INSERT INTO acct SELECT g, {n} FROM \
             generate_series({}, {}) g",
            n % 7,
            1000 * n + 1,
            1000 * n + 200
        ));
    }

    /// The table's row count and content checksum.
    fn checksum(&self) -> String {
        self.sql("SELECT count(*) || ':' || md5(string_agg(a::text, ',' ORDER BY a.i)) FROM acct a")
    }

    /// Now (after every commit so far, before any later one), with an offset, and the
    /// checksum at this moment.
    fn mark(&self) -> (String, String) {
        let t = self.sql(
            "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') \
             || '+00'",
        );
        (t, self.checksum())
    }

    /// Switches to a new segment and waits until the one completed is archived.
    fn switch_and_wait(&self) -> String {
        let segment = self.sql("SELECT pg_walfile_name(pg_switch_wal())");
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let row = self
                .sql("SELECT coalesce(last_archived_wal, ''), failed_count FROM pg_stat_archiver");
            let (last, failed) = row.split_once('|').unwrap();
            assert_eq!(
                failed,
                "0",
                "archive_command failed: {}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            if last.len() == 24 && last >= segment.as_str() {
                return segment;
            }
            assert!(Instant::now() < deadline, "{segment} not archived ({row})");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// A cluster `strata pg restore --start` started in `dir`: stopped when dropped.
struct Restored {
    dir: PathBuf,
    cluster: Cluster,
}

impl Drop for Restored {
    fn drop(&mut self) {
        if !self.dir.join("postmaster.pid").exists() {
            return;
        }
        let version = std::fs::read_to_string(self.dir.join("PG_VERSION")).unwrap_or_default();
        let _ = Command::new("setpriv")
            .args([
                "--reuid=postgres",
                "--regid=postgres",
                "--clear-groups",
                "--",
            ])
            .arg(format!("/usr/lib/postgresql/{}/bin/pg_ctl", version.trim()))
            .args(["stop", "-m", "fast", "-w", "-D"])
            .arg(&self.dir)
            .output();
    }
}

/// The test's world: the repository, the config naming the cluster, and the cluster.
struct World {
    env: Env,
    config: PathBuf,
    pg: Postgres,
}

impl World {
    /// `strata pg basebackup` as the `postgres` user; its JSON.
    fn basebackup(&self) -> Value {
        let out = as_postgres(&self.config, &self.env.home)
            .args(["pg", "basebackup", "--project", "shop", "--json"])
            .run()
            .success()
            .json();
        give_to_postgres(&self.env.root);
        out
    }

    /// `strata pg restore --project shop ARGS` as root (the owner is kept; the server runs
    /// as the data directory's owner).
    fn restore(&self, args: &[&str]) -> Output {
        let out = Cmd::new()
            .env("STRATA_CONFIG", &self.config)
            .env("HOME", &self.env.home)
            .env("XDG_CACHE_HOME", self.env.home.join(".cache"))
            .args(["pg", "restore", "--project", "shop"])
            .args(args)
            .run();
        // What root wrote (a lock, the key cache) stays usable by the postgres user.
        give_to_postgres(&self.env.root);
        out
    }

    /// Restores into `name` with `--start` and `args`; its JSON and the started cluster.
    #[track_caller]
    fn restore_started(&self, name: &str, args: &[&str]) -> (Value, Restored) {
        let dir = self.env.path(name);
        let port = free_port();
        let port_text = port.to_string();
        let mut all = vec![
            "--target",
            dir.to_str().unwrap(),
            "--start",
            "--port",
            &port_text,
        ];
        all.extend_from_slice(args);
        all.push("--json");
        let out = self.restore(&all);
        let restored = Restored {
            cluster: Cluster {
                socket: dir.clone(),
                port,
                log: dir.join("strata-recovery.log"),
            },
            dir: dir.clone(),
        };
        let out = out.success();
        let json = out.json();
        assert_eq!(json["started"], true, "{json}");
        assert_eq!(json["target_dir"], dir.to_str().unwrap(), "{json}");
        (json, restored)
    }

    /// The WAL file (repository object) listing `name`, which must list it alone.
    fn wal_object_of(&self, name: &str) -> PathBuf {
        let backend = strata_storage::OpendalBackend::fs(&self.env.repo).expect("open");
        let repo =
            strata_engine::Repository::open_without_index(Arc::new(backend), PASSWORD.as_bytes())
                .expect("open the repository");
        let archive = strata_engine::wal::read_archive(&repo).expect("read the WAL archive");
        let (object, file) = archive
            .files
            .iter()
            .find(|(_, f)| f.entries.iter().any(|e| e.name == name))
            .unwrap_or_else(|| panic!("{name} is not archived"));
        assert_eq!(file.entries.len(), 1, "{name}'s WAL file lists more");
        self.env
            .repo
            .join(strata_storage::FileType::Wal.path(object))
    }
}

fn setup() -> World {
    require("setpriv", "util-linux");
    let env = Env::new();
    env.strata(["init", "--kdf-memory", "1024", "--kdf-iterations", "1"])
        .success();
    let pg = Postgres::private();
    let config = env.path("strata.toml");
    std::fs::write(
        &config,
        format!(
            "state-dir = \"{state}\"\n[repositories.main]\nurl = \"{repo}\"\npassword-file = \
             \"{pw}\"\n[projects.shop]\nrepositories = [\"main\"]\n[projects.shop.pitr]\n\
             data-dir = \"{data}\"\nurl = \"postgres://postgres@/postgres?host={socket}&\
             port={port}\"\n",
            state = env.path("state").display(),
            repo = env.repo.display(),
            pw = env.password_file.display(),
            data = pg.data_dir().display(),
            socket = pg.socket_dir().display(),
            port = pg.port(),
        ),
    )
    .unwrap();
    give_to_postgres(&env.root);
    let home = env.home.display();
    let archive_command = format!(
        "STRATA_CONFIG={config} HOME={home} XDG_CACHE_HOME={home}/.cache {strata} pg wal-push \
         --project shop %p",
        config = config.display(),
        strata = strata_bin().display(),
    );
    let main = Cluster::of(&pg);
    for setting in [
        "archive_mode = on".to_string(),
        format!("archive_command = '{archive_command}'"),
        "wal_keep_size = '1GB'".to_string(),
        // No transactions but the test's (autovacuum's would be commits in the WAL).
        "autovacuum = off".to_string(),
    ] {
        main.sql(&format!("ALTER SYSTEM SET {setting}"));
    }
    pg.stop();
    pg.start();
    World { env, config, pg }
}

#[test]
fn pg_restore_recovers_to_each_time_on_each_timeline_and_refuses_a_gap() {
    let w = setup();
    let main = Cluster::of(&w.pg);
    main.sql(
        "CREATE TABLE acct (i int PRIMARY KEY, v int); INSERT INTO acct SELECT g, 0 FROM \
         generate_series(1, 1000) g",
    );
    main.switch_and_wait();
    let b1 = w.basebackup();
    let (t0, c0) = main.mark();
    main.round(1);
    let (t1, c1) = main.mark();
    main.switch_and_wait();
    let b2 = w.basebackup();
    main.round(2);
    let (t2, c2) = main.mark();
    // The segment holding T2's transactions: removed from the archive at the end.
    let middle = main.switch_and_wait();
    main.round(3);
    let (t3, c3) = main.mark();
    // Recovery to a time stops at the first commit after it: there must be one.
    main.round(4);
    main.switch_and_wait();
    // After the last commit: WAL (a checkpoint) is archived past it, but no commit.
    let (t_end, _) = main.mark();
    main.sql("CHECKPOINT");
    main.switch_and_wait();
    assert!(t1 < t2 && t2 < t3, "{t1} {t2} {t3}");
    assert!(c1 != c2 && c2 != c3, "the rounds changed the table");

    // A time without a zone, and a time whose WAL is not archived: refused, nothing made.
    let refused = w.env.path("refused");
    let no_zone = t1.trim_end_matches("+00");
    w.restore(&["--to-time", no_zone, "--target", refused.to_str().unwrap()])
        .code(1)
        .stderr_contains("has no time zone offset");
    w.restore(&[
        "--to-time",
        "2099-01-01 00:00:00Z",
        "--target",
        refused.to_str().unwrap(),
    ])
    .code(1)
    .stderr_contains("is not archived yet");
    assert!(!refused.exists());

    // T1, from the older base backup (the newer ended after T1), paused at the target.
    let (r1, s1) = w.restore_started("r1", &["--to-time", &t1, "--action", "pause"]);
    assert_eq!(r1["base_snapshot"], b1["snapshot_id"], "{r1}");
    assert_eq!(r1["timeline"], 1, "{r1}");
    let stop = r1["recovery_stop"].as_str().unwrap_or_default();
    assert!(stop.starts_with("recovery stopping before commit"), "{r1}");
    assert_eq!(s1.cluster.checksum(), c1, "restored to T1");
    let md = std::fs::metadata(&s1.dir).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&md.permissions()) & 0o777,
        0o700
    );
    let postgres = nix::unistd::User::from_name("postgres").unwrap().unwrap();
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&md),
        postgres.uid.as_raw()
    );
    // A copy restored without --archive archives nothing (its own timeline would go
    // into the project's archive).
    let auto = std::fs::read_to_string(s1.dir.join("postgresql.auto.conf")).unwrap();
    assert!(auto.ends_with("archive_mode = 'off'\n"), "{auto}");
    assert_eq!(s1.cluster.sql("SHOW archive_mode"), "off");
    drop(s1);

    // T2, promoted, allowed to archive (--archive: it becomes a primary): timeline 2,
    // which archives too.
    let (r2, s2) = w.restore_started(
        "r2",
        &["--to-time", &t2, "--action", "promote", "--archive"],
    );
    assert_eq!(r2["base_snapshot"], b2["snapshot_id"], "{r2}");
    assert_eq!(r2["new_timeline"], 2, "{r2}");
    assert_eq!(s2.cluster.checksum(), c2, "restored to T2");
    s2.cluster.round(5);
    let (t4, c4) = s2.cluster.mark();
    s2.cluster.round(6);
    let c6 = s2.cluster.checksum();
    let switched = s2.cluster.switch_and_wait();
    assert!(switched.starts_with("00000002"), "{switched}");
    drop(s2);

    // A time on timeline 2 (the latest).
    let (r4, s4) = w.restore_started("r4", &["--to-time", &t4]);
    assert_eq!(r4["timeline"], 2, "{r4}");
    assert_eq!(s4.cluster.checksum(), c4, "restored to T4 on timeline 2");
    drop(s4);
    // T3 is after the fork: timeline 2 holds T2's state then, timeline 1 T3's.
    let (r3, s3) = w.restore_started("r3-tl2", &["--to-time", &t3]);
    assert_eq!(r3["timeline"], 2, "{r3}");
    assert_eq!(s3.cluster.checksum(), c2, "timeline 2 at T3");
    drop(s3);
    let (r3, s3) = w.restore_started("r3-tl1", &["--to-time", &t3, "--timeline", "1"]);
    assert_eq!(r3["timeline"], 1, "{r3}");
    assert_eq!(s3.cluster.checksum(), c3, "timeline 1 at T3");
    drop(s3);

    // --base chooses the base backup, still checked: the older one for T2 is fine, the
    // newer one cannot reach T1 (it ended after it).
    let b1_id = b1["snapshot_id"].as_str().unwrap();
    let forced = w.env.path("forced");
    let out = w
        .restore(&[
            "--to-time",
            &t2,
            "--base",
            &b1_id[..12],
            "--target",
            forced.to_str().unwrap(),
            "--json",
        ])
        .success()
        .json();
    assert_eq!(out["base_snapshot"], b1_id, "{out}");
    assert_eq!(out["started"], false, "{out}");
    w.restore(&[
        "--to-time",
        &t1,
        "--base",
        b2["snapshot_id"].as_str().unwrap(),
        "--target",
        refused.to_str().unwrap(),
    ])
    .code(1)
    .stderr_contains("after the target time");
    assert!(!refused.exists());

    // --timeline current: the chosen base backup's (timeline 1, though 2 is the latest).
    let current = w.env.path("current");
    let out = w
        .restore(&[
            "--to-time",
            &t3,
            "--timeline",
            "current",
            "--target",
            current.to_str().unwrap(),
            "--json",
        ])
        .success()
        .json();
    assert_eq!(out["timeline"], 1, "{out}");
    assert_eq!(out["base_snapshot"], b2["snapshot_id"], "{out}");
    let auto = std::fs::read_to_string(current.join("postgresql.auto.conf")).unwrap();
    assert!(auto.contains("recovery_target_timeline = '1'"), "{auto}");

    // To the end of the archive: the latest timeline's last state, promoted to timeline 3
    // (archived too, once a segment of it is: its history file goes first).
    let (rl, sl) = w.restore_started("latest", &["--latest", "--archive"]);
    assert_eq!(rl["timeline"], 2, "{rl}");
    assert_eq!(rl["target_time"], Value::Null, "{rl}");
    assert_eq!(rl["new_timeline"], 3, "{rl}");
    assert_eq!(sl.cluster.checksum(), c6, "the end of timeline 2");
    sl.cluster.switch_and_wait();
    drop(sl);

    // A target after the last commit: the archive goes past it, but recovery cannot tell
    // it reached it; the server says so, and so does the restore, loudly.
    let late = w.env.path("late");
    let port = free_port().to_string();
    let _late = Restored {
        dir: late.clone(),
        cluster: Cluster {
            socket: late.clone(),
            port: 0,
            log: late.join("strata-recovery.log"),
        },
    };
    w.restore(&[
        "--to-time",
        &t_end,
        "--timeline",
        "1",
        "--target",
        late.to_str().unwrap(),
        "--start",
        "--port",
        &port,
    ])
    .code(1)
    .stderr_contains("FATAL:  recovery ended before configured recovery target was reached");

    // A segment lost from the middle: a restore past it is refused before anything is
    // restored, naming it; one before it still restores.
    std::fs::remove_file(w.wal_object_of(&middle)).unwrap();
    let gap = w.env.path("gap");
    w.restore(&[
        "--to-time",
        &t3,
        "--timeline",
        "1",
        "--target",
        gap.to_str().unwrap(),
    ])
    .code(1)
    .stderr_contains(&format!("missing {middle}..{middle} (1 segment)"));
    assert!(!gap.exists(), "nothing restored");
    // T0's next commit (round 1) is before the gap: it restores, warned of the gap. (T1's
    // is after it: the archive was pushed past T1, but recovery would not find the end.)
    let before = w.env.path("before-gap");
    let port = free_port();
    let restored = Restored {
        dir: before.clone(),
        cluster: Cluster {
            socket: before.clone(),
            port,
            log: before.join("strata-recovery.log"),
        },
    };
    w.restore(&[
        "--to-time",
        &t0,
        "--target",
        before.to_str().unwrap(),
        "--start",
        "--port",
        &port.to_string(),
    ])
    .success()
    .stderr_contains(&format!(
        "warning: segment {middle} is missing from the archive"
    ));
    assert_eq!(restored.cluster.checksum(), c0, "restored to T0");
    let auto = std::fs::read_to_string(before.join("postgresql.auto.conf")).unwrap();
    // The latest timeline (3) by default: T0 is before its forks, on its way.
    assert!(auto.contains("recovery_target_timeline = '3'"), "{auto}");
    assert!(
        auto.contains(&format!(
            "restore_command = '{} --config {} pg wal-fetch --project shop %f %p'",
            strata_bin().canonicalize().unwrap().display(),
            w.config.display()
        )),
        "{auto}"
    );
}
