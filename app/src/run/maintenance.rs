//! Maintenance when due, judged from the history of successful runs of each kind:
//! prune and check on each repository of the project, and a restore test of every
//! database source's newest snapshot in the primary.

use std::time::Instant;

use strata_engine::checker::{self, CheckOptions, Subset};
use strata_engine::progress::NoProgress;
use strata_engine::{prune, Operation};

use super::context::{newest_of, Problems, ProjectRun};
use super::report::{MaintenanceItem, ProjectReport};
use super::schedule_due;
use crate::config::{Project, Schedule, Source};
use crate::ops::{Event, Query, Record, RecordBody, RecordKind};

/// Runs what is due; failures are added to `problems`.
pub(super) fn run(
    ctx: &ProjectRun,
    project: &Project,
    report: &mut ProjectReport,
    problems: &mut Problems,
) {
    if ctx.sel.dry_run {
        return;
    }
    for repo in &project.repositories {
        if due(
            ctx,
            project,
            project.prune.as_ref(),
            RecordKind::Prune,
            Some(repo),
        ) {
            item(
                report,
                problems,
                repo,
                "prune",
                prune_repo(ctx, project, repo),
            );
        }
        if due(
            ctx,
            project,
            project.check.as_ref(),
            RecordKind::Check,
            Some(repo),
        ) {
            item(
                report,
                problems,
                repo,
                "check",
                check_repo(ctx, project, repo),
            );
        }
    }
    let primary = project.primary();
    if due(
        ctx,
        project,
        project.restore_test.as_ref(),
        RecordKind::RestoreTest,
        Some(primary),
    ) {
        for source in &project.sources {
            let r = match source {
                Source::Database(d) => restore_test(ctx, project, d),
                Source::PgCluster(c) => pitr_restore_test(ctx, project, c),
                _ => continue,
            };
            item(report, problems, primary, "restore-test", r);
        }
    }
}

fn item(
    report: &mut ProjectReport,
    problems: &mut Problems,
    repo: &str,
    what: &str,
    result: Result<(), String>,
) {
    if let Err(e) = &result {
        problems.add(format!("{what} of {repo}: {e}"));
    }
    report.maintenance.push(MaintenanceItem {
        repository: repo.to_string(),
        what: what.to_string(),
        ok: result.is_ok(),
        error: result.err(),
    });
}

/// Whether `schedule` is due for `kind` in `repo`, from the last successful record.
fn due(
    ctx: &ProjectRun,
    project: &Project,
    schedule: Option<&Schedule>,
    kind: RecordKind,
    repo: Option<&str>,
) -> bool {
    let Some(schedule) = schedule else {
        return false;
    };
    // An unreadable history means "not due", never "never done" (see `project_due`).
    let last = match ctx.env.history.last(&Query {
        project: Some(project.name.clone()),
        repository: repo.map(str::to_string),
        kind: Some(kind),
        ok_only: true,
        ..Query::default()
    }) {
        Ok(last) => last.map(|r| r.time_ns),
        Err(e) => {
            tracing::error!("{}: the history cannot be read: {e}", project.name);
            return false;
        }
    };
    schedule_due(schedule, last, ctx.env.clock.now_ns())
}

fn base(
    ctx: &ProjectRun,
    project: &Project,
    repo: &str,
    ok: bool,
    error: Option<String>,
    body: RecordBody,
) {
    ctx.record(Record {
        time_ns: ctx.env.clock.now_ns(),
        project: Some(project.name.clone()),
        repository: Some(repo.to_string()),
        run_id: Some(ctx.run_id.clone()),
        ok,
        error,
        user: None,
        body,
    });
}

fn prune_repo(ctx: &ProjectRun, project: &Project, repo: &str) -> Result<(), String> {
    ctx.env
        .observer
        .step(&project.name, &format!("prune of {repo}"));
    let started = Instant::now();
    let mut expiry_failed = None;
    let result = ctx.open(repo, Operation::Prune).and_then(|mut o| {
        // A cluster's WAL archive (the primary's, and each copy target's by its own base
        // backups) first drops what no kept base backup needs, so that this prune frees
        // it; a failure there must not stop the prune.
        if project.pitr.is_some() {
            if let Err(e) = crate::pitr::expire::expire_in(&o.repo, repo, &project.name, false) {
                expiry_failed = Some(format!("WAL expiry: {e}"));
            }
        }
        let plan = prune::plan(&mut o.repo, &prune::PruneOptions::default(), &NoProgress)
            .map_err(|e| e.to_string())?;
        prune::execute(&o.repo, plan, &NoProgress).map_err(|e| e.to_string())
    });
    let (packs, freed) = match &result {
        Ok(s) => (s.packs_deleted, s.bytes_freed.max(0) as u64),
        Err(_) => (0, 0),
    };
    let result = match (result, expiry_failed) {
        (Ok(_), Some(e)) => Err(e),
        (r, _) => r,
    };
    base(
        ctx,
        project,
        repo,
        result.is_ok(),
        result.as_ref().err().cloned(),
        RecordBody::Prune {
            packs_deleted: packs,
            bytes_freed: freed,
            duration_ns: started.elapsed().as_nanos() as i64,
        },
    );
    result.map(|_| ())
}

/// `check --read-data-subset n/8`, n turning with the day, so that eight daily checks
/// read every pack.
fn check_repo(ctx: &ProjectRun, project: &Project, repo: &str) -> Result<(), String> {
    ctx.env
        .observer
        .step(&project.name, &format!("check of {repo}"));
    let started = Instant::now();
    let day = ctx.env.clock.now_ns().div_euclid(86_400_000_000_000);
    let n = day.rem_euclid(8) as u32 + 1;
    let result = ctx.open(repo, Operation::Check).and_then(|o| {
        checker::check_with(
            &o.repo,
            &CheckOptions {
                read_data: true,
                subset: Some(Subset::Part { n, of: 8 }),
            },
            &NoProgress,
        )
        .map_err(|e| e.to_string())
    });
    let (errors, error) = match &result {
        Ok(r) if r.is_ok() => (0, None),
        Ok(r) => (
            r.errors.len() as u64,
            Some(format!(
                "{} errors: {}",
                r.errors.len(),
                r.errors
                    .first()
                    .map(|f| f.message.clone())
                    .unwrap_or_default()
            )),
        ),
        Err(e) => (0, Some(e.clone())),
    };
    base(
        ctx,
        project,
        repo,
        error.is_none(),
        error.clone(),
        RecordBody::Check {
            read_data: format!("{n}/8"),
            errors,
            duration_ns: started.elapsed().as_nanos() as i64,
        },
    );
    error.map_or(Ok(()), Err)
}

/// The restore test of the database source `d`'s newest snapshot in the primary, into
/// `d.scratch` or the same server.
fn restore_test(
    ctx: &ProjectRun,
    project: &Project,
    d: &crate::config::DatabaseSource,
) -> Result<(), String> {
    let primary = project.primary();
    ctx.env
        .observer
        .step(&project.name, &format!("restore test of {}", d.name()));
    let result = (|| {
        let o = ctx.open(primary, Operation::Verify)?;
        let db = super::sources::database(d)?;
        let Some((id, snap)) = newest_of(&o.repo, &project.name, &[db.display()])? else {
            return Err(format!("no snapshot of {} to test", db.display()));
        };
        let scratch = scratch_for(d, &db, None, project.timeout)?;
        let report = strata_db::restore_test(&o.repo, &id, &snap, scratch.as_ref(), &NoProgress)
            .map_err(|e| e.to_string())?;
        Ok((id, report))
    })();
    let (ok, error, body) = match &result {
        Ok((id, r)) => (
            r.passed,
            (!r.passed).then(|| format!("restore test of {} failed", id.short())),
            RecordBody::RestoreTest {
                snapshot_id: id.to_hex(),
                report: serde_json::to_value(r).unwrap_or_default(),
            },
        ),
        Err(e) => (false, Some(e.clone()), failed_restore_test()),
    };
    restore_test_done(ctx, project, ok, error, body, &d.name(), "")
}

/// The body of a restore test that could not run.
fn failed_restore_test() -> RecordBody {
    RecordBody::RestoreTest {
        snapshot_id: String::new(),
        report: serde_json::Value::Null,
    }
}

/// Records a restore test of `what` in the primary and notifies it (`note` follows the
/// outcome in the message).
fn restore_test_done(
    ctx: &ProjectRun,
    project: &Project,
    ok: bool,
    error: Option<String>,
    body: RecordBody,
    what: &str,
    note: &str,
) -> Result<(), String> {
    let primary = project.primary();
    base(ctx, project, primary, ok, error.clone(), body);
    let mut r = ProjectReport::new(&project.name);
    r.error = error.clone();
    ctx.notify(
        project,
        Event::RestoreTest,
        Some(primary),
        &r,
        format!(
            "{}: restore test of {what} {}{note}",
            project.name,
            if ok { "passed" } else { "failed" }
        ),
    );
    error.map_or(Ok(()), Err)
}

/// The restore test of the project's cluster (see `crate::pitr::restore_test`): recovered
/// to now minus its `restore-test-ago`, started, counted, stopped.
fn pitr_restore_test(
    ctx: &ProjectRun,
    project: &Project,
    c: &crate::config::PitrCluster,
) -> Result<(), String> {
    ctx.env
        .observer
        .step(&project.name, "restore test of the PostgreSQL cluster");
    let say = |line: &str| tracing::info!("{}: {line}", project.name);
    let report = crate::pitr::restore_test::restore_test(
        ctx.cfg,
        &project.name,
        c.restore_test_ago,
        false,
        &NoProgress,
        &say,
    )
    .map_err(|e| e.to_string());
    let (ok, error, body) = match &report {
        Ok(r) => r.record_parts(),
        Err(e) => (false, Some(e.clone()), failed_restore_test()),
    };
    let error = (!ok).then(|| error.unwrap_or_else(|| "restore test failed".to_string()));
    let note = report
        .as_ref()
        .ok()
        .and_then(|r| r.rto_secs)
        .map(|s| format!(" (recovered in {s:.0} s)"))
        .unwrap_or_default();
    restore_test_done(
        ctx,
        project,
        ok,
        error,
        body,
        "the PostgreSQL cluster",
        &note,
    )
}

/// Where the restore test of `d` (whose database is `db`) loads its dump: `scratch` (a
/// URL asked for) or else `d`'s configured `scratch` server, or else the same server,
/// reached as the backup reaches it (through the exec-prefix when there is one: its load
/// tool creates, loads, counts and drops there); a SQLite test always uses a scratch file.
///
/// Through a prefix, each of its tools is killed at `timeout` from now (the project's;
/// default 1 h), as its dumps are.
fn scratch_for(
    d: &crate::config::DatabaseSource,
    db: &strata_db::Database,
    scratch: Option<&str>,
    timeout: Option<std::time::Duration>,
) -> Result<Option<strata_db::Database>, String> {
    // The source's password goes only to the scratch server its config names, never to
    // one a caller asked for (that could be anybody's server).
    let (url, password) = match scratch {
        Some(url) => (Some(url.to_string()), None),
        None => (d.scratch.clone(), d.password.clone()),
    };
    Ok(match (url, d.kind) {
        (_, crate::config::DbKind::Sqlite) => None,
        (Some(url), _) => {
            // Reached from this host: the source's exec-prefix is not the scratch's.
            let mut s = super::sources::database(&crate::config::DatabaseSource {
                location: url,
                exec_prefix: Vec::new(),
                password,
                ..d.clone()
            })?;
            if s.server_mut().is_none() {
                s = db.clone();
            }
            Some(s)
        }
        (None, _) => {
            let limit = timeout.unwrap_or(super::hooks::DEFAULT_HOOK_TIMEOUT);
            let deadline = std::time::Instant::now().checked_add(limit);
            Some(db.clone().through_until(d.exec_prefix.clone(), deadline))
        }
    })
}

/// The database source of the config that the database snapshot `snap` was taken of (its
/// project's source whose database the snapshot's paths name), with its database.
pub fn source_of<'c>(
    cfg: &'c crate::config::Config,
    snap: &strata_format::snapshot::SnapshotFile,
) -> Option<(&'c crate::config::DatabaseSource, strata_db::Database)> {
    snap.project
        .as_ref()
        .and_then(|p| cfg.projects.get(p))
        .into_iter()
        .flat_map(|p| p.sources.iter())
        .filter_map(|s| match s {
            Source::Database(d) => Some(d),
            _ => None,
        })
        .find_map(|d| {
            let db = super::sources::database(d).ok()?;
            snap.paths.contains(&db.display()).then_some((d, db))
        })
}

/// The database `name` on the server of the source `snap` was taken of, reached as that
/// source is (its password, its exec-prefix): where a restore under a new name goes.
pub fn database_named(
    cfg: &crate::config::Config,
    snap: &strata_format::snapshot::SnapshotFile,
    name: &str,
) -> Result<strata_db::Database, String> {
    if name.is_empty()
        || name.len() > 63
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(format!(
            "{name:?} is not a database name this accepts: letters, digits, _ and -, at most 63"
        ));
    }
    // The server's own databases: a dump loaded into template1 reaches every database
    // created afterwards; into mysql, the server's users and grants.
    const SYSTEM: [&str; 7] = [
        "template0",
        "template1",
        "postgres",
        "mysql",
        "information_schema",
        "performance_schema",
        "sys",
    ];
    if SYSTEM.contains(&name.to_ascii_lowercase().as_str()) {
        return Err(format!(
            "{name} is one of the database server's own databases: restore into a new name"
        ));
    }
    let Some((d, _)) = source_of(cfg, snap) else {
        return Err(
            "the snapshot is not of a database source of the config: give the target's URL".into(),
        );
    };
    if d.kind == crate::config::DbKind::Sqlite {
        return Err("a SQLite database is a file: give the target's path as \"url\"".into());
    }
    // scheme://user@host:port/DATABASE?options
    let (head, query) = match d.location.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (d.location.as_str(), None),
    };
    let after_scheme = head.find("://").map_or(0, |i| i + 3);
    let base = match head[after_scheme..].find('/') {
        Some(i) => &head[..after_scheme + i],
        None => head,
    };
    let location = match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    };
    super::sources::database(&crate::config::DatabaseSource {
        location,
        ..d.clone()
    })
}

/// The restore test of the database snapshot `snap` (`strata serve`'s `POST
/// /restore-tests`), with the scratch of the project's source it came from (or
/// `scratch`), as the runner runs it; and the `restore-test` record it leaves.
pub fn restore_test_of(
    cfg: &crate::config::Config,
    repo: &strata_engine::Repository,
    id: &strata_format::id::SnapshotId,
    snap: &strata_format::snapshot::SnapshotFile,
    scratch: Option<&str>,
    progress: &dyn strata_engine::progress::Progress,
) -> (
    Result<strata_db::RestoreTestReport, String>,
    crate::restore::Recorded,
) {
    let result = (|| {
        let source = source_of(cfg, snap);
        let scratch = match source {
            Some((d, db)) => {
                let timeout = snap
                    .project
                    .as_ref()
                    .and_then(|p| cfg.projects.get(p))
                    .and_then(|p| p.timeout);
                scratch_for(d, &db, scratch, timeout)?
            }
            None => scratch
                .map(|url| strata_db::Database::of_kind(&snap.source, url))
                .transpose()
                .map_err(|e| e.to_string())?,
        };
        strata_db::restore_test(repo, id, snap, scratch.as_ref(), progress)
            .map_err(|e| e.to_string())
    })();
    let recorded = match &result {
        Ok(r) => crate::restore::Recorded {
            ok: r.passed,
            error: (!r.passed).then(|| format!("restore test of {} failed", id.short())),
            body: RecordBody::RestoreTest {
                snapshot_id: id.to_hex(),
                report: serde_json::to_value(r).unwrap_or_default(),
            },
        },
        Err(e) => crate::restore::Recorded {
            ok: false,
            error: Some(e.clone()),
            body: RecordBody::RestoreTest {
                snapshot_id: id.to_hex(),
                report: serde_json::Value::Null,
            },
        },
    };
    (result, recorded)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use super::*;
    use crate::config::{Config, DatabaseSource, DbKind};
    use crate::ops::{Clock, Nothing, Notice, Notifier, RunId};
    use crate::run::{RunEnv, Selection, Silent};
    use crate::{RepoSpec, SecretRef};

    /// Keeps records and notices.
    #[derive(Default)]
    struct Kept(Mutex<Vec<Record>>, Mutex<Vec<Event>>);

    impl crate::ops::Recorder for Kept {
        fn record(&self, r: Record) -> crate::Result<()> {
            self.0.lock().unwrap().push(r);
            Ok(())
        }
    }

    impl Notifier for Kept {
        fn notify(&self, _channels: &[String], notice: &Notice) {
            self.1.lock().unwrap().push(notice.event);
        }
    }

    /// A restore "into a new database" never names the server's own databases.
    #[test]
    fn a_new_database_is_never_the_servers_own() {
        let snap = strata_format::snapshot::SnapshotFile {
            time_ns: 0,
            hostname: String::new(),
            username: String::new(),
            uid: 0,
            gid: 0,
            paths: vec![],
            tags: vec![],
            project: None,
            excludes: vec![],
            source: strata_format::snapshot::SourceKind::Postgres,
            source_meta: vec![],
            tree: strata_format::id::BlobId(strata_format::id::Digest([0; 32])),
            parent: None,
            program_version: String::new(),
            summary: Default::default(),
            keep_until_ns: None,
            original: None,
            rewrites: vec![],
        };
        let cfg = Config {
            file: "strata.toml".into(),
            state_dir: "state".into(),
            repositories: BTreeMap::new(),
            notifications: BTreeMap::new(),
            server: Default::default(),
            projects: BTreeMap::new(),
        };
        for name in ["template1", "template0", "postgres", "mysql", "SYS"] {
            let err = database_named(&cfg, &snap, name).unwrap_err();
            assert!(err.contains("own databases"), "{name}: {err}");
        }
        // An ordinary name gets past this check (to the next: no such source here).
        let err = database_named(&cfg, &snap, "shop_copy").unwrap_err();
        assert!(!err.contains("own databases"), "{err}");
    }

    /// Prune, check and a SQLite restore test, called as the runner calls them once due
    /// (the schedules' arithmetic is part A's; until it lands nothing is due).
    #[test]
    fn prune_check_and_restore_test_run_and_are_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "a long password").unwrap();
        let location = dir.path().join("repo");
        let backend = strata_storage::open(
            location.to_str().unwrap(),
            &strata_storage::RemoteOptions::default(),
            1,
        )
        .unwrap();
        let opts = strata_engine::InitOptions {
            kdf: strata_format::keyfile::KdfParams {
                m_kib: 64,
                t: 1,
                p: 1,
            },
            ..Default::default()
        };
        strata_engine::Repository::init(backend, b"a long password", &opts).unwrap();
        let mut spec = RepoSpec::new(location.to_str().unwrap());
        spec.password = Some(SecretRef::File(pw));
        let db = dir.path().join("app.db");
        let made = std::process::Command::new("sqlite3")
            .arg(&db)
            .arg("CREATE TABLE t (a); INSERT INTO t VALUES (1), (2);")
            .status()
            .unwrap();
        assert!(made.success());
        let project = Project {
            name: "shop".into(),
            schedule: None,
            sources: vec![Source::Database(DatabaseSource {
                kind: DbKind::Sqlite,
                location: db.display().to_string(),
                password: None,
                exec_prefix: Vec::new(),
                scratch: None,
            })],
            repositories: vec!["hot".into()],
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
        };
        let cfg = Config {
            file: dir.path().join("strata.toml"),
            state_dir: dir.path().join("state"),
            repositories: [("hot".to_string(), spec)].into(),
            notifications: BTreeMap::new(),
            server: Default::default(),
            projects: [("shop".to_string(), project.clone())].into(),
        };
        let kept = Kept::default();
        let env = RunEnv {
            clock: Clock::system(),
            recorder: &kept,
            history: &Nothing,
            notifier: &kept,
            observer: &Silent,
            host: None,
            runtime: None,
        };
        let sel = Selection::default();
        assert_eq!(crate::run::run(&cfg, &sel, &env).exit_code, 0);
        kept.0.lock().unwrap().clear();
        kept.1.lock().unwrap().clear();
        let run_id = RunId("test".into());
        let ctx = ProjectRun {
            cfg: &cfg,
            sel: &sel,
            env: &env,
            run_id: &run_id,
            runtime: None,
            records: Default::default(),
        };
        prune_repo(&ctx, &project, "hot").unwrap();
        check_repo(&ctx, &project, "hot").unwrap();
        let Source::Database(d) = &project.sources[0] else {
            unreachable!()
        };
        restore_test(&ctx, &project, d).unwrap();
        let records = kept.0.lock().unwrap();
        let kinds: Vec<_> = records.iter().map(|r| (r.kind(), r.ok)).collect();
        assert_eq!(
            kinds,
            [
                (RecordKind::Prune, true),
                (RecordKind::Check, true),
                (RecordKind::RestoreTest, true)
            ]
        );
        match &records[2].body {
            RecordBody::RestoreTest { report, .. } => {
                assert_eq!(report["passed"], true, "{report}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(*kept.1.lock().unwrap(), [Event::RestoreTest]);
        drop(records);
        // A repository that is not there fails the step, with its name.
        let err = check_repo(&ctx, &project, "nowhere").unwrap_err();
        assert!(err.contains("repository nowhere is not defined"), "{err}");
        // A server database without a snapshot fails clearly, and is recorded as a failed
        // restore test.
        let behind = DatabaseSource {
            kind: DbKind::Postgres,
            location: "postgres://app@/app".into(),
            password: None,
            exec_prefix: vec!["docker".into(), "exec".into(), "-i".into(), "pg".into()],
            scratch: None,
        };
        let err = restore_test(&ctx, &project, &behind).unwrap_err();
        assert!(err.contains("no snapshot of postgres://app@/app"), "{err}");
        let records = kept.0.lock().unwrap();
        let last = records.last().unwrap();
        assert_eq!((last.kind(), last.ok), (RecordKind::RestoreTest, false));
    }
}

#[cfg(test)]
mod scratch_tests {
    use super::*;
    use crate::config::{DatabaseSource, DbKind};
    use crate::{Secret, SecretRef};

    /// The source's password goes to the scratch server its config names, never to one a
    /// request names (that could be anybody's server).
    #[test]
    fn a_requested_scratch_server_never_gets_the_sources_password() {
        let d = DatabaseSource {
            kind: DbKind::Postgres,
            location: "postgres://app@db.internal/shop".into(),
            password: Some(SecretRef::Inline(Secret::new(b"s3cret".to_vec()))),
            exec_prefix: Vec::new(),
            scratch: Some("postgres://app@scratch.internal/postgres".into()),
        };
        let db = super::super::sources::database(&d).unwrap();
        let has_password = |s: Option<strata_db::Database>| {
            let mut s = s.unwrap();
            s.server_mut().unwrap().password().is_some()
        };
        assert!(has_password(scratch_for(&d, &db, None, None).unwrap()));
        let asked = scratch_for(&d, &db, Some("postgres://x@evil.example/x"), None).unwrap();
        assert_eq!(
            asked.as_ref().unwrap().display(),
            "postgres://x@evil.example/x"
        );
        assert!(!has_password(asked));
    }
}
