//! Health: each check's thresholds against an in-memory history, the Prometheus textfile,
//! and the alerts on changes.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use strata_app::config::{Config, DatabaseSource, DbKind, Project, Schedule, Source};
use strata_app::health::{self, Check, FreeSpace, HealthReport, NoProbe, SpaceProbe};
use strata_app::ops::{Event, History, Notice, Notifier, Query, Record, RecordBody, RunId, Status};

const H: i64 = 3600 * 1_000_000_000;
const DAY: i64 = 24 * H;
/// "Now" in every test: 2026-12-07 03:00:02 UTC.
const NOW: i64 = 1_796_612_402_000_000_000;

// ---------------------------------------------------------------------------------------
// helpers

/// A catalog in memory, answering queries as the real one does (newest first).
#[derive(Default)]
struct Mem(Vec<Record>);

impl History for Mem {
    fn query(&self, q: &Query) -> strata_app::Result<Vec<Record>> {
        let mut v: Vec<Record> = self
            .0
            .iter()
            .filter(|r| q.project.is_none() || r.project == q.project)
            .filter(|r| q.repository.is_none() || r.repository == q.repository)
            .filter(|r| q.kind.is_none() || Some(r.kind()) == q.kind)
            .filter(|r| !q.ok_only || r.ok)
            .filter(|r| q.since_ns.is_none_or(|s| r.time_ns >= s))
            .cloned()
            .collect();
        v.sort_by_key(|r| std::cmp::Reverse(r.time_ns));
        if let Some(l) = q.limit {
            v.truncate(l);
        }
        Ok(v)
    }
}

/// A catalog that cannot answer.
struct Broken;

impl History for Broken {
    fn query(&self, _q: &Query) -> strata_app::Result<Vec<Record>> {
        Err(strata_app::AppError::Invalid(
            "database disk image is malformed".into(),
        ))
    }
}

fn record(t: i64, repo: &str, ok: bool, body: RecordBody) -> Record {
    Record {
        time_ns: t,
        project: Some("shop".into()),
        repository: Some(repo.into()),
        run_id: Some(RunId::new(t)),
        ok,
        error: (!ok).then(|| "it broke".to_string()),
        user: None,
        body,
    }
}

fn backup(t: i64, source: &str, bytes: u64, ok: bool) -> Record {
    record(
        t,
        "hot",
        ok,
        RecordBody::Backup {
            source: source.into(),
            source_kind: "files".into(),
            snapshot_id: Some(format!("{t:x}")),
            bytes_read: bytes,
            // As in records written before `bytes_total` was: the size is what was read.
            bytes_total: 0,
            bytes_added: bytes / 10,
            stored_bytes: bytes / 20,
            files: 10,
            duration_ns: 1_000_000_000,
            unreadable: 0,
        },
    )
}

fn copy(t: i64, repo: &str) -> Record {
    record(
        t,
        repo,
        true,
        RecordBody::Copy {
            from: "hot".into(),
            snapshot_id: "s".into(),
            dest_id: Some("d".into()),
            bytes_added: 1,
        },
    )
}

fn run(t: i64, duration: i64) -> Record {
    let mut r = record(
        t,
        "hot",
        true,
        RecordBody::Run {
            trigger: "due".into(),
            started_ns: t - duration,
            exit_code: 0,
            snapshots: vec![],
            pid: 1,
        },
    );
    r.repository = None;
    r
}

fn notify_record(t: i64, ok: bool) -> Record {
    let mut r = record(
        t,
        "hot",
        ok,
        RecordBody::Notify {
            channel: "ops-mail".into(),
            event: Event::Failure,
            attempts: 4,
        },
    );
    r.repository = None;
    r
}

/// Daily successful backups of `paths` at 03:00, the last `last_days_ago` days ago.
fn daily(n: i64, last_days_ago: i64, bytes: u64) -> Vec<Record> {
    (0..n)
        .map(|i| backup(NOW - (last_days_ago + i) * DAY, "paths", bytes, true))
        .collect()
}

fn project(repos: &[&str], max_age: Option<Duration>) -> Project {
    Project {
        name: "shop".into(),
        schedule: Some(Schedule::parse("daily 03:00").unwrap()),
        sources: vec![Source::Paths {
            paths: vec![PathBuf::from("/srv/shop")],
            exclude: vec![],
        }],
        repositories: repos.iter().map(|s| s.to_string()).collect(),
        retention: BTreeMap::new(),
        notify: vec!["ops-mail".into()],
        max_age,
        restore_test: None,
        check: None,
        prune: None,
        before: None,
        after: None,
        timeout: None,
        pitr: None,
    }
}

fn config(state_dir: &Path, projects: Vec<Project>) -> Config {
    Config {
        file: PathBuf::from("/test/strata.toml"),
        state_dir: state_dir.to_path_buf(),
        repositories: BTreeMap::new(),
        notifications: BTreeMap::new(),
        server: Default::default(),
        projects: projects.into_iter().map(|p| (p.name.clone(), p)).collect(),
    }
}

const HOURS_26: Option<Duration> = Some(Duration::from_secs(26 * 3600));

fn evaluate(p: Project, history: &dyn History) -> HealthReport {
    let tmp = tempfile::tempdir().unwrap();
    health::evaluate(&config(tmp.path(), vec![p]), history, NOW, &NoProbe)
}

fn items(r: &HealthReport, check: Check) -> Vec<&health::Item> {
    r.items.iter().filter(|i| i.check == check).collect()
}

fn one(r: &HealthReport, check: Check) -> &health::Item {
    let v = items(r, check);
    assert_eq!(v.len(), 1, "{check:?}: {:#?}", r.items);
    v[0]
}

// ---------------------------------------------------------------------------------------
// last success

#[test]
fn backups_that_stopped_are_critical_though_no_run_failed() {
    let h = Mem(daily(10, 3, 1000));
    let r = evaluate(project(&["hot"], HOURS_26), &h);
    let i = one(&r, Check::LastSuccess);
    assert_eq!(i.status, Status::Critical);
    assert_eq!(i.message, "last success of paths 3d ago, max-age 26h");
    assert_eq!(i.repository.as_deref(), Some("hot"));
    assert_eq!(r.status, Status::Critical);
    assert_eq!(r.status.exit_code(), 2);
}

#[test]
fn a_backup_within_max_age_is_ok_and_one_past_it_is_critical() {
    let mut h = Mem(daily(5, 1, 1000));
    h.0.push(backup(NOW - 25 * H, "paths", 1000, true));
    let r = evaluate(project(&["hot"], HOURS_26), &h);
    assert_eq!(one(&r, Check::LastSuccess).status, Status::Ok);
    let h = Mem(vec![backup(NOW - 27 * H, "paths", 1000, true)]);
    let r = evaluate(project(&["hot"], HOURS_26), &h);
    assert_eq!(one(&r, Check::LastSuccess).status, Status::Critical);
}

#[test]
fn failed_backups_do_not_count_as_success() {
    let mut h = Mem(daily(3, 5, 1000));
    h.0.push(backup(NOW - H, "paths", 1000, false));
    let r = evaluate(project(&["hot"], HOURS_26), &h);
    assert_eq!(one(&r, Check::LastSuccess).status, Status::Critical);
}

#[test]
fn never_a_success_is_critical() {
    let r = evaluate(project(&["hot"], HOURS_26), &Mem::default());
    let i = one(&r, Check::LastSuccess);
    assert_eq!(i.status, Status::Critical);
    assert_eq!(i.message, "no successful backup of paths yet");
}

#[test]
fn without_max_age_the_age_is_reported_not_judged() {
    let h = Mem(daily(3, 30, 1000));
    // No max-age and no schedule to derive one from (with one, it is 2 × 24 h + 1 h).
    let mut p = project(&["hot"], None);
    p.schedule = None;
    let r = evaluate(p, &h);
    let i = one(&r, Check::LastSuccess);
    assert_eq!(i.status, Status::Ok);
    assert!(i.message.contains("age not judged"), "{}", i.message);
    let r = evaluate(project(&["hot"], None), &h);
    assert_eq!(one(&r, Check::LastSuccess).status, Status::Critical);
}

#[test]
fn the_oldest_source_decides_a_database_that_stopped_dumping_is_critical() {
    let mut p = project(&["hot"], HOURS_26);
    p.sources.push(Source::Database(DatabaseSource {
        kind: DbKind::Postgres,
        location: "postgres://kanbu@/kanbu".into(),
        password: None,
        exec_prefix: vec![],
        scratch: None,
    }));
    let mut h = Mem(daily(5, 0, 1000));
    h.0.push(backup(NOW - 4 * DAY, "postgres:kanbu", 1000, true));
    let r = evaluate(p, &h);
    let v = items(&r, Check::LastSuccess);
    assert_eq!(v.len(), 2);
    let db = v
        .iter()
        .find(|i| i.source.as_deref() == Some("postgres:kanbu"))
        .unwrap();
    assert_eq!(db.status, Status::Critical, "{}", db.message);
    let files = v
        .iter()
        .find(|i| i.source.as_deref() == Some("paths"))
        .unwrap();
    assert_eq!(files.status, Status::Ok);
}

#[test]
fn other_repositories_count_their_last_copy() {
    let mut h = Mem(daily(5, 0, 1000));
    h.0.push(copy(NOW - 2 * DAY, "offsite"));
    let r = evaluate(project(&["hot", "offsite"], HOURS_26), &h);
    let v = items(&r, Check::LastSuccess);
    let offsite = v
        .iter()
        .find(|i| i.repository.as_deref() == Some("offsite"))
        .unwrap();
    assert_eq!(offsite.status, Status::Critical);
    assert_eq!(offsite.message, "last success 2d ago, max-age 26h");
}

// ---------------------------------------------------------------------------------------
// size

fn sized(last: u64) -> Mem {
    let mut v = daily(10, 1, 1000);
    v.push(backup(NOW - H, "paths", last, true));
    Mem(v)
}

#[test]
fn a_backup_below_half_or_above_double_the_median_is_a_warning() {
    for (last, status, says) in [
        (499, Status::Warning, "below half"),
        (500, Status::Ok, ""),
        (2000, Status::Ok, ""),
        (2001, Status::Warning, "more than double"),
        (0, Status::Warning, "below half"),
    ] {
        let r = evaluate(project(&["hot"], HOURS_26), &sized(last));
        let i = one(&r, Check::Size);
        assert_eq!(i.status, status, "{last}: {}", i.message);
        assert!(i.message.contains(says), "{}", i.message);
        assert_eq!(i.value, Some(last as f64));
    }
}

#[test]
fn the_median_is_of_the_ten_backups_before_the_last() {
    // Ten of 1000 before, and older ones of 100 000 that no longer count.
    let mut h = sized(400);
    for i in 0..20 {
        h.0.push(backup(NOW - (20 + i) * DAY, "paths", 100_000, true));
    }
    let r = evaluate(project(&["hot"], HOURS_26), &h);
    let i = one(&r, Check::Size);
    assert_eq!(i.status, Status::Warning);
    assert!(
        i.message.contains("median of the 10 before is 1000 B"),
        "{}",
        i.message
    );
}

/// An incremental backup reads only what changed: the size compared is what the
/// snapshot holds (`bytes_total`), so a night with little change is no warning, and a
/// source that shrank is one whatever was read.
#[test]
fn the_size_compared_is_what_the_snapshot_holds_not_what_was_read() {
    let with_total = |t: i64, read: u64, total: u64| {
        let mut r = backup(t, "paths", read, true);
        if let RecordBody::Backup { bytes_total, .. } = &mut r.body {
            *bytes_total = total;
        }
        r
    };
    let mut v: Vec<Record> = (1..=10)
        .map(|d| with_total(NOW - d * DAY, 1000, 1_000_000))
        .collect();
    v.push(with_total(NOW - H, 10, 1_000_100));
    let r = evaluate(project(&["hot"], HOURS_26), &Mem(v.clone()));
    let i = one(&r, Check::Size);
    assert_eq!(i.status, Status::Ok, "{}", i.message);
    assert_eq!(i.value, Some(1_000_100.0));
    v.pop();
    v.push(with_total(NOW - H, 1000, 400_000));
    let r = evaluate(project(&["hot"], HOURS_26), &Mem(v));
    let i = one(&r, Check::Size);
    assert_eq!(i.status, Status::Warning, "{}", i.message);
    assert!(i.message.contains("below half"), "{}", i.message);
    // Just after an upgrade the earlier records have only what was read (small, nights
    // were incremental): the first record with the size is not compared with those.
    let mut v: Vec<Record> = (1..=10)
        .map(|d| with_total(NOW - d * DAY, 1000, 0))
        .collect();
    v.push(with_total(NOW - H, 10, 1_000_000));
    let r = evaluate(project(&["hot"], HOURS_26), &Mem(v));
    let i = one(&r, Check::Size);
    assert_eq!(i.status, Status::Ok, "{}", i.message);
    assert!(i.message.contains("too few"), "{}", i.message);
}

#[test]
fn too_few_backups_are_not_compared() {
    let h = Mem(vec![
        backup(NOW - 2 * DAY, "paths", 1000, true),
        backup(NOW - DAY, "paths", 1000, true),
        backup(NOW - H, "paths", 1, true),
    ]);
    let r = evaluate(project(&["hot"], HOURS_26), &h);
    let i = one(&r, Check::Size);
    assert_eq!(i.status, Status::Ok);
    assert!(i.message.contains("too few"), "{}", i.message);
}

// ---------------------------------------------------------------------------------------
// restore tests and checks

fn restore_test(t: i64, ok: bool) -> Record {
    let mut r = record(
        t,
        "hot",
        ok,
        RecordBody::RestoreTest {
            snapshot_id: "s".into(),
            report: serde_json::json!({}),
        },
    );
    r.repository = None;
    r
}

fn check_record(t: i64, repo: &str, ok: bool, errors: u64) -> Record {
    record(
        t,
        repo,
        ok,
        RecordBody::Check {
            read_data: "1/8".into(),
            errors,
            duration_ns: 1,
        },
    )
}

#[test]
fn a_failed_restore_test_is_critical_and_none_is_a_warning() {
    let mut p = project(&["hot"], HOURS_26);
    p.restore_test = Some(Schedule::parse("monthly").unwrap());
    let r = evaluate(p.clone(), &Mem(daily(3, 0, 1)));
    assert_eq!(one(&r, Check::RestoreTest).status, Status::Warning);

    let mut h = Mem(daily(3, 0, 1));
    h.0.push(restore_test(NOW - 40 * DAY, true));
    h.0.push(restore_test(NOW - 2 * DAY, false));
    let r = evaluate(p.clone(), &h);
    let i = one(&r, Check::RestoreTest);
    assert_eq!(i.status, Status::Critical);
    assert!(i.message.contains("failed: it broke"), "{}", i.message);

    h.0.push(restore_test(NOW - DAY, true));
    let r = evaluate(p, &h);
    assert_eq!(one(&r, Check::RestoreTest).status, Status::Ok);
}

#[test]
fn a_check_that_found_errors_is_critical_per_repository() {
    let mut p = project(&["hot", "offsite"], HOURS_26);
    p.check = Some(Schedule::parse("weekly").unwrap());
    let mut h = Mem(daily(3, 0, 1));
    h.0.push(check_record(NOW - DAY, "hot", true, 0));
    h.0.push(check_record(NOW - DAY, "offsite", true, 3));
    let r = evaluate(p, &h);
    let v = items(&r, Check::Check);
    assert_eq!(v.len(), 2);
    let hot = v
        .iter()
        .find(|i| i.repository.as_deref() == Some("hot"))
        .unwrap();
    let off = v
        .iter()
        .find(|i| i.repository.as_deref() == Some("offsite"))
        .unwrap();
    assert_eq!(hot.status, Status::Ok);
    assert_eq!(off.status, Status::Critical, "{}", off.message);
}

#[test]
fn no_schedule_no_restore_test_or_check_item() {
    let r = evaluate(project(&["hot"], HOURS_26), &Mem(daily(3, 0, 1)));
    assert!(items(&r, Check::RestoreTest).is_empty());
    assert!(items(&r, Check::Check).is_empty());
}

// ---------------------------------------------------------------------------------------
// copy lag

#[test]
fn a_copy_lagging_more_than_half_max_age_behind_the_primary_is_a_warning() {
    for (copy_age, status) in [(12 * H, Status::Ok), (14 * H, Status::Warning)] {
        let mut h = Mem(daily(3, 0, 1));
        h.0.push(copy(NOW - DAY - copy_age, "offsite"));
        h.0.push(copy(NOW - copy_age, "offsite"));
        let r = evaluate(project(&["hot", "offsite"], HOURS_26), &h);
        let i = one(&r, Check::CopyLag);
        assert_eq!(i.status, status, "{}", i.message);
        assert_eq!(i.repository.as_deref(), Some("offsite"));
    }
    let r = evaluate(project(&["hot", "offsite"], HOURS_26), &Mem(daily(3, 0, 1)));
    assert_eq!(
        one(&r, Check::CopyLag).status,
        Status::Warning,
        "never copied"
    );
}

// ---------------------------------------------------------------------------------------
// free space

struct Space(BTreeMap<&'static str, FreeSpace>);

impl SpaceProbe for Space {
    fn free_space(&self, repository: &str) -> Option<FreeSpace> {
        self.0.get(repository).copied()
    }
}

#[test]
fn less_than_a_tenth_free_is_a_warning() {
    let probe = Space(BTreeMap::from([
        (
            "hot",
            FreeSpace {
                free_bytes: 9,
                total_bytes: 100,
            },
        ),
        (
            "offsite",
            FreeSpace {
                free_bytes: 10,
                total_bytes: 100,
            },
        ),
    ]));
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(
        tmp.path(),
        vec![project(&["hot", "offsite", "s3"], HOURS_26)],
    );
    let r = health::evaluate(&cfg, &Mem(daily(3, 0, 1)), NOW, &probe);
    let v = items(&r, Check::FreeSpace);
    assert_eq!(v.len(), 2, "no item where the storage cannot tell");
    assert_eq!(v[0].repository.as_deref(), Some("hot"));
    assert_eq!(v[0].status, Status::Warning);
    assert_eq!(v[0].message, "9 B free of 100 B (9%)");
    assert_eq!(v[1].status, Status::Ok);
}

// ---------------------------------------------------------------------------------------
// run lock, notifications, a catalog that cannot answer

#[test]
fn a_held_run_lock_is_reported_with_its_holder() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), vec![project(&["hot"], HOURS_26)]);
    let mut h = Mem(daily(3, 0, 1));
    h.0.extend((1..5).map(|i| run(NOW - i * DAY, 60 * 1_000_000_000)));
    let r = health::evaluate(&cfg, &h, NOW, &NoProbe);
    assert_eq!(one(&r, Check::RunLock).message, "not running");

    let path = tmp.path().join("locks/shop.lock");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let f = std::fs::File::create(&path).unwrap();
    let _lock = nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|(_, e)| e)
        .unwrap();
    let r = health::evaluate(&cfg, &h, NOW, &NoProbe);
    let i = one(&r, Check::RunLock);
    assert_eq!(i.status, Status::Ok, "just taken");
    assert!(i.message.starts_with("running for"), "{}", i.message);
    assert!(
        i.message.contains(&format!("(pid {})", std::process::id())),
        "{}",
        i.message
    );
    assert!(i.message.contains("median run 1m"), "{}", i.message);
}

#[test]
fn notifications_that_failed_since_the_last_success_are_a_warning() {
    let mut h = Mem(daily(3, 1, 1));
    h.0.push(notify_record(NOW - 2 * DAY, false));
    let r = evaluate(project(&["hot"], HOURS_26), &h);
    assert_eq!(
        one(&r, Check::Notifications).status,
        Status::Ok,
        "before the success"
    );

    h.0.push(notify_record(NOW - H, false));
    h.0.push(notify_record(NOW - H / 2, true));
    let r = evaluate(project(&["hot"], HOURS_26), &h);
    let i = one(&r, Check::Notifications);
    assert_eq!(i.status, Status::Warning);
    assert!(
        i.message.contains("1 notification(s) failed"),
        "{}",
        i.message
    );
    assert!(i.message.contains("ops-mail"), "{}", i.message);
}

#[test]
fn a_catalog_that_cannot_answer_is_unknown() {
    let r = evaluate(project(&["hot"], HOURS_26), &Broken);
    assert_eq!(r.status, Status::Unknown);
    assert_eq!(r.status.exit_code(), 3);
    let i = one(&r, Check::LastSuccess);
    assert!(i.message.contains("malformed"), "{}", i.message);
}

#[test]
fn a_healthy_project_is_ok_throughout() {
    let mut p = project(&["hot", "offsite"], HOURS_26);
    p.restore_test = Some(Schedule::parse("monthly").unwrap());
    p.check = Some(Schedule::parse("weekly").unwrap());
    let mut h = sized(1000);
    h.0.push(copy(NOW - H / 2, "offsite"));
    h.0.push(restore_test(NOW - DAY, true));
    h.0.push(check_record(NOW - DAY, "hot", true, 0));
    h.0.push(check_record(NOW - DAY, "offsite", true, 0));
    let r = evaluate(p, &h);
    assert_eq!(r.status, Status::Ok, "{:#?}", r.items);
    let checks: std::collections::BTreeSet<Check> = r.items.iter().map(|i| i.check).collect();
    assert_eq!(checks.len(), 7, "every check but free-space: {checks:?}");
}

// ---------------------------------------------------------------------------------------
// Prometheus

/// `name{k="v",...} value` lines back into (name, labels, value); checks HELP and TYPE.
fn parse_textfile(text: &str) -> Vec<(String, BTreeMap<String, String>, f64)> {
    let mut typed = std::collections::BTreeSet::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert_eq!(kind, "gauge");
            typed.insert(name.to_string());
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        let (name, rest) = line.split_once('{').expect(line);
        let (labels, value) = rest.rsplit_once("} ").expect(line);
        assert!(typed.contains(name), "{name} has no TYPE line before it");
        let labels = labels
            .split(',')
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                (k.to_string(), v.trim_matches('"').to_string())
            })
            .collect();
        samples.push((name.to_string(), labels, value.parse::<f64>().expect(value)));
    }
    samples
}

#[test]
fn the_prometheus_textfile_parses_back() {
    let tmp = tempfile::tempdir().unwrap();
    let mut h = sized(1234);
    h.0.push(run(NOW - H, 42 * 1_000_000_000));
    let last = NOW - H;
    let r = evaluate(project(&["hot"], HOURS_26), &h);
    let file = tmp.path().join("strata.prom");
    health::write_prometheus(&r, &h, &file).unwrap();
    let text = std::fs::read_to_string(&file).unwrap();
    let samples = parse_textfile(&text);
    let get = |name: &str, labels: &[(&str, &str)]| {
        samples
            .iter()
            .find(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.2)
            .unwrap_or_else(|| panic!("{name} {labels:?} not in\n{text}"))
    };
    assert_eq!(
        get(
            "strata_last_success_timestamp_seconds",
            &[("project", "shop"), ("repository", "hot")]
        ),
        (last / 1_000_000_000) as f64
    );
    assert_eq!(
        get(
            "strata_last_backup_bytes",
            &[
                ("project", "shop"),
                ("repository", "hot"),
                ("source", "paths")
            ]
        ),
        1234.0
    );
    assert_eq!(
        get("strata_last_run_duration_seconds", &[("project", "shop")]),
        42.0
    );
    assert_eq!(
        get(
            "strata_health_status",
            &[("project", "shop"), ("check", "last-success")]
        ),
        0.0
    );
    assert_eq!(
        get(
            "strata_health_status",
            &[("project", "shop"), ("check", "run-lock")]
        ),
        0.0
    );
    // Written whole under its name; nothing else left beside it.
    let names: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["strata.prom"]);

    // A critical check reads 2.
    let r = evaluate(project(&["hot"], HOURS_26), &Mem(daily(3, 5, 1)));
    health::write_prometheus(&r, &Mem::default(), &file).unwrap();
    let samples = parse_textfile(&std::fs::read_to_string(&file).unwrap());
    assert!(samples
        .iter()
        .any(|(n, l, v)| n == "strata_health_status" && l["check"] == "last-success" && *v == 2.0));
}

// ---------------------------------------------------------------------------------------
// alerts on changes

#[derive(Default)]
struct Sent(Mutex<Vec<(Vec<String>, Notice)>>);

impl Notifier for Sent {
    fn notify(&self, channels: &[String], notice: &Notice) {
        self.0
            .lock()
            .unwrap()
            .push((channels.to_vec(), notice.clone()));
    }
}

#[test]
fn a_check_that_gets_worse_is_notified_once() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), vec![project(&["hot"], HOURS_26)]);
    let state = tmp.path().join(health::STATE_FILE);
    let sent = Sent::default();
    let at = |h: &Mem, now: i64| health::evaluate(&cfg, h, now, &NoProbe);

    // Healthy: nothing.
    let healthy = Mem(daily(5, 0, 1000));
    assert_eq!(
        health::notify_changes(&cfg, &at(&healthy, NOW), &state, &sent).unwrap(),
        0
    );
    let mode = std::fs::metadata(&state).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // Backups stop: two days later it is critical, once.
    let later = NOW + 2 * DAY;
    assert_eq!(
        health::notify_changes(&cfg, &at(&healthy, later), &state, &sent).unwrap(),
        1
    );
    assert_eq!(
        health::notify_changes(&cfg, &at(&healthy, later), &state, &sent).unwrap(),
        0
    );
    {
        let sent = sent.0.lock().unwrap();
        assert_eq!(sent.len(), 1);
        let (channels, notice) = &sent[0];
        assert_eq!(channels, &["ops-mail"]);
        assert_eq!(notice.event, Event::Warning);
        assert_eq!(notice.project, "shop");
        assert_eq!(notice.summary, "shop: health critical: last-success");
        let error = notice.error.as_deref().unwrap();
        assert!(
            error.contains("last-success (hot, paths): critical: last success of paths 2d ago"),
            "{error}"
        );
    }

    // It recovers (nothing sent), then stops again (sent again).
    let mut recovered = Mem(daily(5, 0, 1000));
    recovered.0.push(backup(later - H, "paths", 1000, true));
    assert_eq!(
        health::notify_changes(&cfg, &at(&recovered, later), &state, &sent).unwrap(),
        0
    );
    assert_eq!(
        health::notify_changes(&cfg, &at(&recovered, later + 2 * DAY), &state, &sent).unwrap(),
        1
    );
    assert_eq!(sent.0.lock().unwrap().len(), 2);
}

#[test]
fn a_damaged_state_file_starts_afresh() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), vec![project(&["hot"], HOURS_26)]);
    let state = tmp.path().join(health::STATE_FILE);
    std::fs::write(&state, b"{not json").unwrap();
    let sent = Sent::default();
    let r = health::evaluate(&cfg, &Mem::default(), NOW, &NoProbe);
    assert_eq!(health::notify_changes(&cfg, &r, &state, &sent).unwrap(), 1);
    let kept: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(kept["shop"]["last-success"], "critical");
}

/// A failed last run is critical though the last success is within max-age (PostgreSQL
/// stopped an hour ago); the next successful run clears it.
#[test]
fn a_failed_last_run_is_critical_within_max_age() {
    let mut h = Mem(daily(5, 0, 1000));
    let mut failed = run(NOW - H, 60);
    failed.ok = false;
    failed.error = Some("postgres:shop: connection refused".into());
    h.0.push(failed);
    let r = evaluate(project(&["hot"], HOURS_26), &h);
    assert_eq!(one(&r, Check::LastSuccess).status, Status::Ok);
    let i = one(&r, Check::LastRun);
    assert_eq!(i.status, Status::Critical);
    assert!(i.message.contains("connection refused"), "{}", i.message);
    assert_eq!(r.status.exit_code(), 2);
    h.0.push(run(NOW - H / 2, 60));
    let r = evaluate(project(&["hot"], HOURS_26), &h);
    assert_eq!(one(&r, Check::LastRun).status, Status::Ok);
    assert_eq!(r.status, Status::Ok, "{:?}", r.items);
}
