//! Maintenance when due, judged from the history of successful runs of each kind:
//! prune and check on each repository of the project, and a restore test of every
//! database source's newest snapshot in the primary.

use std::time::Instant;

use strata_engine::checker::{self, CheckOptions, Subset};
use strata_engine::progress::NoProgress;
use strata_engine::{prune, Operation};

use super::project::{newest_of, Problems, ProjectRun};
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
            if let Source::Database(d) = source {
                let r = restore_test(ctx, project, d);
                item(report, problems, primary, "restore-test", r);
            }
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
    let last = ctx
        .env
        .history
        .last(&Query {
            project: Some(project.name.clone()),
            repository: repo.map(str::to_string),
            kind: Some(kind),
            ok_only: true,
            ..Query::default()
        })
        .unwrap_or_else(|e| {
            tracing::warn!("reading the history of {}: {e}", project.name);
            None
        })
        .map(|r| r.time_ns);
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
    let result = ctx.open(repo, Operation::Prune).and_then(|o| {
        let plan = prune::plan(&o.repo, &prune::PruneOptions::default(), &NoProgress)
            .map_err(|e| e.to_string())?;
        prune::execute(&o.repo, plan, &NoProgress).map_err(|e| e.to_string())
    });
    let (packs, freed) = match &result {
        Ok(s) => (s.packs_deleted, s.bytes_freed.max(0) as u64),
        Err(_) => (0, 0),
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
        let scratch = match (&d.scratch, d.kind) {
            (_, crate::config::DbKind::Sqlite) => None,
            (Some(url), _) => {
                let mut s = super::sources::database(&crate::config::DatabaseSource {
                    location: url.clone(),
                    ..d.clone()
                })?;
                if s.server_mut().is_none() {
                    s = db.clone();
                }
                Some(s)
            }
            (None, _) => Some(db.clone()),
        };
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
        Err(e) => (
            false,
            Some(e.clone()),
            RecordBody::RestoreTest {
                snapshot_id: String::new(),
                report: serde_json::Value::Null,
            },
        ),
    };
    base(ctx, project, primary, ok, error.clone(), body);
    let mut r = ProjectReport::new(&project.name);
    r.error = error.clone();
    ctx.notify(
        project,
        Event::RestoreTest,
        Some(primary),
        &r,
        format!(
            "{}: restore test of {} {}",
            project.name,
            d.name(),
            if ok { "passed" } else { "failed" }
        ),
    );
    error.map_or(Ok(()), Err)
}
