//! `strata run` against real local repositories in temp dirs: what each repository holds
//! afterwards, what ran how often, and how failures, timeouts and the run lock end.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use strata_app::config::{
    Config, DatabaseSource, DbKind, HoldRule, KeepRule, Project, Retention, Source,
};
use strata_app::ops::{Clock, Nothing};
use strata_app::run::{self, ProjectStatus, RunEnv, RunReport, Selection, Silent};
use strata_app::{OpenOptions, RepoSpec, SecretRef};
use strata_engine::retention::KeepPolicy;
use strata_engine::{snapshots, InitOptions, Operation, Repository};
use strata_format::id::SnapshotId;
use strata_format::keyfile::KdfParams;
use strata_format::snapshot::SnapshotFile;

const PASSWORD: &str = "correct horse battery";

/// A test's directory: repositories, state, sources.
struct World {
    dir: tempfile::TempDir,
    repositories: BTreeMap<String, RepoSpec>,
}

impl World {
    fn new(repos: &[&str]) -> World {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("repo.pw");
        std::fs::write(&pw, PASSWORD).unwrap();
        let mut repositories = BTreeMap::new();
        for name in repos {
            let location = dir.path().join(format!("repo-{name}"));
            let backend = strata_storage::open(
                location.to_str().unwrap(),
                &strata_storage::RemoteOptions::default(),
                1,
            )
            .unwrap();
            let opts = InitOptions {
                kdf: KdfParams {
                    m_kib: 64,
                    t: 1,
                    p: 1,
                },
                ..InitOptions::default()
            };
            Repository::init(backend, PASSWORD.as_bytes(), &opts).unwrap();
            let mut spec = RepoSpec::new(location.to_str().unwrap());
            spec.password = Some(SecretRef::File(pw.clone()));
            repositories.insert(name.to_string(), spec);
        }
        World { dir, repositories }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn config(&self, projects: Vec<Project>) -> Config {
        Config {
            file: self.path("strata.toml"),
            state_dir: self.path("state"),
            repositories: self.repositories.clone(),
            notifications: BTreeMap::new(),
            server: Default::default(),
            projects: projects.into_iter().map(|p| (p.name.clone(), p)).collect(),
        }
    }

    fn open(&self, repo: &str, op: Operation) -> strata_app::Opened {
        strata_app::repo::open(
            &self.repositories[repo],
            PASSWORD.as_bytes(),
            op,
            &OpenOptions::default(),
        )
        .unwrap()
    }

    /// The snapshots of `project` in `repo`, oldest first.
    fn snapshots(&self, repo: &str, project: &str) -> Vec<(SnapshotId, SnapshotFile)> {
        let o = self.open(repo, Operation::Snapshots);
        let mut all: Vec<_> = snapshots::list(&o.repo)
            .unwrap()
            .into_iter()
            .filter(|(_, s)| s.project.as_deref() == Some(project))
            .collect();
        all.sort_by_key(|(_, s)| s.time_ns);
        all
    }

    /// Every file of snapshot `id` of `repo`: path under the restore target -> bytes.
    fn files(&self, repo: &str, id: &SnapshotId) -> BTreeMap<String, Vec<u8>> {
        let o = self.open(repo, Operation::Restore);
        let snap = snapshots::load(&o.repo, id).unwrap();
        let target = tempfile::tempdir().unwrap();
        strata_engine::restorer::restore(
            &o.repo,
            &snap,
            target.path(),
            &Default::default(),
            &strata_engine::progress::NoProgress,
        )
        .unwrap();
        let mut out = BTreeMap::new();
        walk(target.path(), target.path(), &mut out);
        out
    }
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk(root, &p, out);
        } else {
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            out.insert(rel, std::fs::read(&p).unwrap());
        }
    }
}

fn project(name: &str, repos: &[&str], sources: Vec<Source>) -> Project {
    Project {
        name: name.to_string(),
        schedule: None,
        sources,
        repositories: repos.iter().map(|r| r.to_string()).collect(),
        retention: BTreeMap::new(),
        notify: Vec::new(),
        max_age: None,
        restore_test: None,
        check: None,
        prune: None,
        before: None,
        after: None,
        timeout: None,
        pitr: None,
    }
}

fn paths(p: &Path) -> Source {
    Source::Paths {
        paths: vec![p.to_path_buf()],
        exclude: vec!["*.log".into()],
    }
}

fn command(name: &str, run: &str) -> Source {
    Source::Command {
        name: name.to_string(),
        run: run.to_string(),
    }
}

fn run_at(cfg: &Config, clock: Clock, projects: &[&str]) -> RunReport {
    let env = RunEnv {
        clock,
        recorder: &Nothing,
        history: &Nothing,
        notifier: &Nothing,
        observer: &Silent,
        host: Some("testhost".into()),
        runtime: None,
    };
    let sel = Selection {
        projects: projects.iter().map(|p| p.to_string()).collect(),
        trigger: "manual".into(),
        ..Selection::default()
    };
    run::run(cfg, &sel, &env)
}

fn run_all(cfg: &Config) -> RunReport {
    run_at(cfg, Clock::system(), &[])
}

fn status(report: &RunReport, project: &str) -> ProjectStatus {
    report
        .projects
        .iter()
        .find(|p| p.project == project)
        .unwrap()
        .status
}

fn error(report: &RunReport, project: &str) -> String {
    report
        .projects
        .iter()
        .find(|p| p.project == project)
        .unwrap()
        .error
        .clone()
        .unwrap_or_default()
}

/// Writes a source tree: `a.txt`, `sub/b.bin`, and a `skip.log` the excludes leave out.
fn source_tree(dir: &Path, seed: u8) {
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("a.txt"), format!("hello {seed}")).unwrap();
    let big: Vec<u8> = (0..300_000u32).map(|i| (i as u8) ^ seed).collect();
    std::fs::write(dir.join("sub/b.bin"), big).unwrap();
    std::fs::write(dir.join("skip.log"), "noise").unwrap();
}

#[test]
fn two_projects_back_up_once_into_the_primary_and_copy_to_the_other_repository() {
    let w = World::new(&["hot", "offsite"]);
    let mut projects = Vec::new();
    for (i, name) in ["shop", "blog"].iter().enumerate() {
        let src = w.path(&format!("src-{name}"));
        source_tree(&src, i as u8);
        let count = w.path(&format!("count-{name}"));
        let cmd = format!(
            "echo ran >> '{}'; printf 'redis dump of {name}'",
            count.display()
        );
        projects.push(project(
            name,
            &["hot", "offsite"],
            vec![paths(&src), command("redis.rdb", &cmd)],
        ));
    }
    let cfg = w.config(projects);
    let report = run_all(&cfg);
    assert_eq!(report.exit_code, 0, "{report:#?}");
    for name in ["shop", "blog"] {
        assert_eq!(status(&report, name), ProjectStatus::Ok);
        // The command ran once, although its snapshot is in two repositories.
        let count = std::fs::read_to_string(w.path(&format!("count-{name}"))).unwrap();
        assert_eq!(count, "ran\n", "{name}");
        let primary = w.snapshots("hot", name);
        let copies = w.snapshots("offsite", name);
        assert_eq!(primary.len(), 2, "{name}");
        assert_eq!(copies.len(), 2, "{name}");
        for (id, s) in &primary {
            assert!(s
                .tags
                .iter()
                .any(|t| t == &format!("strata-run:{}", report.run_id)));
            let copy = copies
                .iter()
                .find(|(_, c)| c.original == Some(*id))
                .expect("a copy of every primary snapshot");
            let here = w.files("hot", id);
            let there = w.files("offsite", &copy.0);
            assert_eq!(here, there, "{name}: {:?}", s.paths);
            assert!(!here.is_empty());
            assert!(!here.keys().any(|k| k.ends_with("skip.log")), "{here:?}");
        }
        let all: Vec<Vec<u8>> = primary
            .iter()
            .flat_map(|(id, _)| w.files("hot", id).into_values())
            .collect();
        assert!(all.contains(&format!("redis dump of {name}").into_bytes()));
        assert!(all.contains(&b"hello 0".to_vec()) || all.contains(&b"hello 1".to_vec()));
        let p = report.projects.iter().find(|p| p.project == name).unwrap();
        assert_eq!(p.copies.len(), 2);
        assert!(p
            .copies
            .iter()
            .all(|c| c.dest_id.is_some() && c.to == "offsite"));
    }
    // A second run copies only its own new snapshots.
    let again = run_at(&cfg, Clock::system(), &["shop"]);
    assert_eq!(again.exit_code, 0, "{again:#?}");
    assert_eq!(again.projects.len(), 1);
    assert_eq!(w.snapshots("offsite", "shop").len(), 4);
    assert_eq!(w.snapshots("offsite", "blog").len(), 2);
}

fn local_noon(y: i16, m: i8, d: i8) -> i64 {
    jiff::civil::date(y, m, d)
        .at(12, 0, 0, 0)
        .to_zoned(jiff::tz::TimeZone::system())
        .unwrap()
        .timestamp()
        .as_nanosecond() as i64
}

fn day_of(ns: i64) -> String {
    jiff::Timestamp::from_nanosecond(i128::from(ns))
        .unwrap()
        .to_zoned(jiff::tz::TimeZone::system())
        .strftime("%m-%d")
        .to_string()
}

#[test]
fn each_repository_keeps_what_its_own_retention_says_over_simulated_days() {
    let w = World::new(&["hot", "offsite"]);
    let src = w.path("src");
    source_tree(&src, 1);
    let mut p = project("shop", &["hot", "offsite"], vec![paths(&src)]);
    p.retention.insert(
        "hot".into(),
        Retention {
            keep: KeepPolicy {
                daily: 3,
                ..KeepPolicy::default()
            },
            holds: Vec::new(),
        },
    );
    p.retention.insert(
        "offsite".into(),
        Retention {
            keep: KeepPolicy {
                daily: 2,
                monthly: 2,
                ..KeepPolicy::default()
            },
            holds: vec![HoldRule {
                rule: KeepRule::Monthly,
                span: strata_engine::retention::parse_span("7y").unwrap(),
            }],
        },
    );
    let cfg = w.config(vec![p]);
    // Ten daily runs, 25 January to 3 February.
    let day = 86_400_000_000_000i64;
    let first = local_noon(2025, 1, 25);
    for i in 0..10 {
        std::fs::write(src.join("a.txt"), format!("day {i}")).unwrap();
        let r = run_at(&cfg, Clock::starting_at(first + i * day), &[]);
        assert_eq!(r.exit_code, 0, "day {i}: {r:#?}");
    }
    let days = |repo: &str| -> Vec<String> {
        w.snapshots(repo, "shop")
            .iter()
            .map(|(_, s)| day_of(s.time_ns))
            .collect()
    };
    // hot: the last three days.
    assert_eq!(days("hot"), ["02-01", "02-02", "02-03"]);
    // offsite: two days, and the newest of January and of February; 1 February fell out
    // of the daily two on the 3rd.
    assert_eq!(days("offsite"), ["01-31", "02-02", "02-03"]);
    // January's survivor was held for seven years once January was over; February's is
    // not held yet.
    let off = w.snapshots("offsite", "shop");
    let jan = &off[0].1;
    let until = jan
        .keep_until_ns
        .expect("January's monthly survivor is held");
    assert_eq!(
        strata_engine::retention::format_time(until, &jiff::tz::TimeZone::system()),
        strata_engine::retention::format_time(
            strata_engine::retention::add_span(
                jan.time_ns,
                strata_engine::retention::parse_span("7y").unwrap(),
                &jiff::tz::TimeZone::system()
            ),
            &jiff::tz::TimeZone::system()
        )
    );
    assert!(off[1..].iter().all(|(_, s)| s.keep_until_ns.is_none()));
    assert!(w
        .snapshots("hot", "shop")
        .iter()
        .all(|(_, s)| s.keep_until_ns.is_none()));
}

/// `keep-monthly = 1` with `hold-monthly`: on the first run of February, February's snapshot
/// takes the only monthly slot, and January's newest must still be held (it used to be
/// kept by nothing and forgotten).
#[test]
fn a_hold_with_one_slot_holds_the_month_that_just_ended() {
    let w = World::new(&["hot"]);
    let src = w.path("src");
    source_tree(&src, 1);
    let mut p = project("shop", &["hot"], vec![paths(&src)]);
    p.retention.insert(
        "hot".into(),
        Retention {
            keep: KeepPolicy {
                monthly: 1,
                ..KeepPolicy::default()
            },
            holds: vec![HoldRule {
                rule: KeepRule::Monthly,
                span: strata_engine::retention::parse_span("1y").unwrap(),
            }],
        },
    );
    let cfg = w.config(vec![p]);
    let day = 86_400_000_000_000i64;
    let first = local_noon(2025, 1, 30);
    for i in 0..4 {
        std::fs::write(src.join("a.txt"), format!("day {i}")).unwrap();
        let r = run_at(&cfg, Clock::starting_at(first + i * day), &[]);
        assert_eq!(r.exit_code, 0, "day {i}: {r:#?}");
    }
    let kept: Vec<(String, bool)> = w
        .snapshots("hot", "shop")
        .iter()
        .map(|(_, s)| (day_of(s.time_ns), s.keep_until_ns.is_some()))
        .collect();
    // January's last day, held; February's newest, the monthly survivor.
    assert_eq!(
        kept,
        [("01-31".to_string(), true), ("02-02".to_string(), false)]
    );
}

/// The offsite repository is away on the second day: that run fails, and the next one
/// copies the missed snapshot along with its own.
#[test]
fn copies_catch_up_after_a_day_the_destination_was_away() {
    let w = World::new(&["hot", "offsite"]);
    let src = w.path("src");
    source_tree(&src, 1);
    let cfg = w.config(vec![project(
        "shop",
        &["hot", "offsite"],
        vec![paths(&src)],
    )]);
    let day = 86_400_000_000_000i64;
    let first = local_noon(2025, 3, 3);
    let away = w.path("offsite-away");
    for i in 0..3 {
        std::fs::write(src.join("a.txt"), format!("day {i}")).unwrap();
        if i == 1 {
            std::fs::rename(w.path("repo-offsite"), &away).unwrap();
        }
        let r = run_at(&cfg, Clock::starting_at(first + i * day), &[]);
        if i == 1 {
            assert_eq!(r.exit_code, 1, "{r:#?}");
            std::fs::rename(&away, w.path("repo-offsite")).unwrap();
        } else {
            assert_eq!(r.exit_code, 0, "day {i}: {r:#?}");
        }
    }
    let days = |repo: &str| -> Vec<String> {
        w.snapshots(repo, "shop")
            .iter()
            .map(|(_, s)| day_of(s.time_ns))
            .collect()
    };
    assert_eq!(days("hot"), ["03-03", "03-04", "03-05"]);
    assert_eq!(days("offsite"), days("hot"));
}

#[test]
fn a_failing_source_fails_the_project_and_the_other_sources_are_still_backed_up() {
    let w = World::new(&["hot"]);
    let src = w.path("src");
    source_tree(&src, 2);
    let status_file = w.path("after-status");
    let mut bad = project(
        "shop",
        &["hot"],
        vec![
            command(
                "broken.dump",
                "printf partial; echo 'no such table' >&2; exit 3",
            ),
            paths(&src),
        ],
    );
    bad.after = Some(format!(
        "echo \"$STRATA_RUN_STATUS $STRATA_PROJECT\" > '{}'",
        status_file.display()
    ));
    let good = project("blog", &["hot"], vec![paths(&src)]);
    let cfg = w.config(vec![bad, good]);
    let report = run_all(&cfg);
    assert_eq!(report.exit_code, 1);
    assert_eq!(status(&report, "shop"), ProjectStatus::Failed);
    assert_eq!(status(&report, "blog"), ProjectStatus::Ok);
    assert!(
        error(&report, "shop").contains(
            "command:broken.dump: command broken.dump failed (exit status 3): no such table"
        ),
        "{}",
        error(&report, "shop")
    );
    // The paths were backed up; the failed command left no snapshot.
    let snaps = w.snapshots("hot", "shop");
    assert_eq!(snaps.len(), 1);
    assert_eq!(
        snaps[0].1.source,
        strata_format::snapshot::SourceKind::Files
    );
    assert_eq!(
        std::fs::read_to_string(&status_file).unwrap(),
        "failed shop\n"
    );
}

#[test]
fn a_failing_before_hook_backs_up_nothing() {
    let w = World::new(&["hot"]);
    let src = w.path("src");
    source_tree(&src, 3);
    let mut p = project("shop", &["hot"], vec![paths(&src)]);
    p.before = Some("echo 'maintenance mode failed' >&2; exit 2".into());
    let cfg = w.config(vec![p]);
    let report = run_all(&cfg);
    assert_eq!(report.exit_code, 1);
    let p = &report.projects[0];
    assert_eq!(p.status, ProjectStatus::Failed);
    assert_eq!(
        p.error.as_deref(),
        Some("before hook failed (exit status 2): maintenance mode failed")
    );
    assert!(p.snapshots.is_empty());
    assert_eq!(p.hooks.len(), 1);
    assert!(w.snapshots("hot", "shop").is_empty());
}

#[test]
fn a_source_past_its_timeout_is_killed_within_seconds() {
    let w = World::new(&["hot"]);
    let pid_file = w.path("pid");
    let mut p = project(
        "shop",
        &["hot"],
        vec![command(
            "slow.dump",
            &format!("echo $$ > '{}'; exec sleep 600", pid_file.display()),
        )],
    );
    p.timeout = Some(Duration::from_secs(1));
    let cfg = w.config(vec![p]);
    let started = Instant::now();
    let report = run_all(&cfg);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(report.exit_code, 1);
    assert!(
        error(&report, "shop").contains("command:slow.dump: timed out after 1s"),
        "{}",
        error(&report, "shop")
    );
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
    assert!(!alive, "the command (pid {pid}) still runs");
    assert!(w.snapshots("hot", "shop").is_empty());
}

#[test]
fn a_project_whose_run_lock_is_held_is_locked_and_the_others_proceed() {
    let w = World::new(&["hot"]);
    let src = w.path("src");
    source_tree(&src, 4);
    let cfg = w.config(vec![
        project("shop", &["hot"], vec![paths(&src)]),
        project("blog", &["hot"], vec![paths(&src)]),
    ]);
    // Held in this process (another open file description: the kernel refuses it too).
    let started = local_noon(2026, 3, 1);
    let held = run::lock::acquire(
        &cfg.state_dir,
        "shop",
        started,
        &strata_app::ops::RunId("held".into()),
    )
    .unwrap();
    let report = run_all(&cfg);
    assert_eq!(report.exit_code, 11, "{report:#?}");
    assert_eq!(status(&report, "shop"), ProjectStatus::Locked);
    assert_eq!(status(&report, "blog"), ProjectStatus::Ok);
    assert_eq!(
        error(&report, "shop"),
        format!(
            "project shop: already running since 12:00:00 (pid {})",
            std::process::id()
        )
    );
    assert!(w.snapshots("hot", "shop").is_empty());
    // From the scheduler (`--due`), the running project is skipped, not an error: a long
    // backup must not make every tick of the timer fail.
    let mut due_cfg = cfg.clone();
    for p in due_cfg.projects.values_mut() {
        p.schedule = Some(strata_app::config::Schedule::parse("hourly").unwrap());
    }
    let env = RunEnv {
        clock: Clock::system(),
        recorder: &Nothing,
        history: &Nothing,
        notifier: &Nothing,
        observer: &Silent,
        host: Some("testhost".into()),
        runtime: None,
    };
    let due = Selection {
        due: true,
        trigger: "due".into(),
        ..Selection::default()
    };
    let report = run::run(&due_cfg, &due, &env);
    assert_eq!(report.exit_code, 0, "{report:#?}");
    assert_eq!(status(&report, "shop"), ProjectStatus::Skipped);
    assert!(error(&report, "shop").contains("already running since"));
    assert_eq!(status(&report, "blog"), ProjectStatus::Ok);
    assert!(w.snapshots("hot", "shop").is_empty());
    drop(held);

    // Held by another process, which is then killed: the kernel frees the lock.
    let lock_file = run::lock::lock_path(&cfg.state_dir, "shop");
    let mut holder = Command::new("sh")
        .arg("-c")
        .arg("exec 9>>\"$1\"; flock -n 9 || exit 1; echo ready; exec sleep 600")
        .arg("holder")
        .arg(&lock_file)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line, "ready\n");
    let report = run_at(&cfg, Clock::system(), &["shop"]);
    assert_eq!(report.exit_code, 11);
    assert!(error(&report, "shop").starts_with("project shop: already running"));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(holder.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    holder.wait().unwrap();
    let report = run_at(&cfg, Clock::system(), &["shop"]);
    assert_eq!(report.exit_code, 0, "{report:#?}");
    assert_eq!(w.snapshots("hot", "shop").len(), 1);
}

#[test]
fn a_dry_run_says_what_it_would_do_and_changes_nothing() {
    let w = World::new(&["hot", "offsite"]);
    let src = w.path("src");
    source_tree(&src, 5);
    let count = w.path("count");
    let mut p = project(
        "shop",
        &["hot", "offsite"],
        vec![
            paths(&src),
            command("x", &format!("echo ran >> '{}'", count.display())),
        ],
    );
    p.before = Some(format!("echo before >> '{}'", count.display()));
    let cfg = w.config(vec![p]);
    let env = RunEnv {
        clock: Clock::system(),
        recorder: &Nothing,
        history: &Nothing,
        notifier: &Nothing,
        observer: &Silent,
        host: None,
        runtime: None,
    };
    let sel = Selection {
        dry_run: true,
        ..Selection::default()
    };
    let report = run::run(&cfg, &sel, &env);
    assert_eq!(report.exit_code, 0);
    assert!(report.dry_run);
    let p = &report.projects[0];
    let planned: Vec<&str> = p.snapshots.iter().map(|s| s.source.as_str()).collect();
    assert_eq!(planned, ["paths", "command:x"]);
    assert!(p.snapshots.iter().all(|s| s.status == "planned"));
    assert_eq!(p.copies.len(), 1);
    assert!(!count.exists(), "nothing ran");
    assert!(w.snapshots("hot", "shop").is_empty());
    assert!(!cfg.state_dir.join("locks").exists());
}

#[test]
fn a_database_is_dumped_through_an_exec_prefix() {
    let w = World::new(&["hot"]);
    let db = w.path("app.sqlite");
    let made = Command::new("sqlite3")
        .arg(&db)
        .arg("CREATE TABLE t (a INTEGER); INSERT INTO t VALUES (1), (2), (3);")
        .status()
        .unwrap();
    assert!(made.success());
    let seen = w.path("prefix-seen");
    let p = project(
        "shop",
        &["hot"],
        vec![Source::Database(DatabaseSource {
            kind: DbKind::Sqlite,
            location: db.display().to_string(),
            password: None,
            exec_prefix: vec![
                "env".into(),
                "STRATA_PREFIX=through-env".into(),
                "sh".into(),
                "-c".into(),
                format!(
                    "echo \"$STRATA_PREFIX $*\" >> '{}'; exec \"$@\"",
                    seen.display()
                ),
                "wrap".into(),
            ],
            scratch: None,
        })],
    );
    let cfg = w.config(vec![p]);
    let report = run_all(&cfg);
    assert_eq!(report.exit_code, 0, "{report:#?}");
    let seen = std::fs::read_to_string(&seen).unwrap();
    assert!(
        seen.lines()
            .any(|l| l.starts_with("through-env sqlite3 -readonly") && l.ends_with(".dump")),
        "{seen}"
    );
    let snaps = w.snapshots("hot", "shop");
    assert_eq!(snaps.len(), 1);
    assert_eq!(
        snaps[0].1.source,
        strata_format::snapshot::SourceKind::Sqlite
    );
    assert_eq!(
        strata_db::recorded_rows(&snaps[0].1),
        [("t".to_string(), Some(3))]
    );
}

/// Keeps records and answers history queries from them; collects notices.
#[derive(Default)]
struct Log {
    records: std::sync::Mutex<Vec<strata_app::ops::Record>>,
    notices: std::sync::Mutex<Vec<(Vec<String>, strata_app::ops::Notice)>>,
}

impl strata_app::ops::Recorder for Log {
    fn record(&self, record: strata_app::ops::Record) -> strata_app::Result<()> {
        self.records.lock().unwrap().push(record);
        Ok(())
    }
}

impl strata_app::ops::History for Log {
    fn query(
        &self,
        q: &strata_app::ops::Query,
    ) -> strata_app::Result<Vec<strata_app::ops::Record>> {
        let mut out: Vec<_> = self
            .records
            .lock()
            .unwrap()
            .iter()
            .filter(|r| q.kind.is_none_or(|k| r.kind() == k))
            .filter(|r| q.project.is_none() || r.project == q.project)
            .filter(|r| !q.ok_only || r.ok)
            .cloned()
            .collect();
        out.reverse();
        out.truncate(q.limit.unwrap_or(usize::MAX));
        Ok(out)
    }
}

impl strata_app::ops::Notifier for Log {
    fn notify(&self, channels: &[String], notice: &strata_app::ops::Notice) {
        self.notices
            .lock()
            .unwrap()
            .push((channels.to_vec(), notice.clone()));
    }
}

#[test]
fn everything_is_recorded_and_a_success_after_a_failure_is_a_recovery() {
    use strata_app::ops::{Event, RecordKind};
    let w = World::new(&["hot", "offsite"]);
    let src = w.path("src");
    source_tree(&src, 6);
    let flag = w.path("broken");
    std::fs::write(&flag, "").unwrap();
    let mut p = project(
        "shop",
        &["hot", "offsite"],
        vec![
            paths(&src),
            command(
                "db.dump",
                &format!("test ! -e '{}' && echo dump", flag.display()),
            ),
        ],
    );
    p.notify = vec!["ops-mail".into()];
    p.before = Some("true".into());
    let cfg = w.config(vec![p]);
    let log = Log::default();
    let run_logged = || {
        let env = RunEnv {
            clock: Clock::system(),
            recorder: &log,
            history: &log,
            notifier: &log,
            observer: &Silent,
            host: None,
            runtime: None,
        };
        run::run(&cfg, &Selection::default(), &env)
    };
    let first = run_logged();
    assert_eq!(first.exit_code, 1);
    let events = |log: &Log| -> Vec<Event> {
        log.notices
            .lock()
            .unwrap()
            .drain(..)
            .map(|(_, n)| n.event)
            .collect()
    };
    assert_eq!(events(&log), [Event::Start, Event::Failure]);
    let kinds: Vec<(RecordKind, bool)> = log
        .records
        .lock()
        .unwrap()
        .iter()
        .map(|r| (r.kind(), r.ok))
        .collect();
    assert_eq!(
        kinds,
        [
            (RecordKind::Hook, true),
            (RecordKind::Backup, true),
            (RecordKind::Backup, false),
            (RecordKind::Copy, true),
            (RecordKind::Run, false),
        ]
    );
    std::fs::remove_file(&flag).unwrap();
    let second = run_logged();
    assert_eq!(second.exit_code, 0, "{second:#?}");
    let notices: Vec<_> = log.notices.lock().unwrap().clone();
    assert!(notices.iter().all(|(c, _)| c == &["ops-mail".to_string()]));
    assert_eq!(
        events(&log),
        [Event::Start, Event::Success, Event::Recovered]
    );
    let records = log.records.lock().unwrap();
    let run = records.last().unwrap();
    assert!(run.ok);
    match &run.body {
        strata_app::ops::RecordBody::Run {
            snapshots, trigger, ..
        } => {
            // Two snapshots in the primary and their two copies.
            assert_eq!(snapshots.len(), 4, "{snapshots:?}");
            assert_eq!(trigger, "");
        }
        other => panic!("{other:?}"),
    }
}
