//! `strata run`: each project's sources backed up once into its primary repository, copied
//! to the others, thinned by each repository's retention, maintained when due, recorded
//! and notified.
//!
//! One project at a time, in the config's order; one project failing never stops the
//! next. Per project:
//! 1. its run lock ([`lock`]): a kernel `flock` in the state dir, so a second run of the
//!    same project is refused at once ("locked", exit 11) and a killed run frees it;
//! 2. the `before` hook (its failure fails the project; nothing is backed up);
//! 3. each source into the primary repository, opened once for the backup, each its own
//!    snapshot tagged `strata-run:<run id>` (and `--tag`s), with the clock's time (so
//!    `--now` simulates days); a failing source fails the project, the others still run;
//! 4. the new snapshots copied to every other repository (only missing blobs; the
//!    sources are never read twice);
//! 5. retention per repository (forget, then holds on the survivors a `hold-<rule>`
//!    names), each repository by its own policy;
//! 6. prune, check (`--read-data-subset n/8`, a different eighth each day) and restore
//!    tests when their schedules are due;
//! 7. the `after` hook, whatever happened (STRATA_RUN_STATUS=ok|failed).
//!
//! Everything is recorded through [`Recorder`] (a record that cannot be written is logged,
//! never fails the run) and the notification channels hear `start`, `success` or
//! `failure`, `recovered` and `restore-test` through [`Notifier`].

mod context;
mod hooks;
pub mod lock;
mod maintenance;
mod project;
pub mod report;
mod retention;
mod sources;

use std::time::Duration;

use strata_engine::EngineRuntime;

pub use maintenance::{database_named, restore_test_of, source_of};
pub use report::{
    exit_code, CopyItem, HeldItem, HookItem, MaintenanceItem, ProjectReport, ProjectStatus,
    RetentionItem, RunReport, SnapshotReport,
};

use crate::config::{Config, Schedule};
use crate::ops::{Clock, History, Notifier, Query, RecordBody, RecordKind, Recorder, RunId};

/// What to run.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    /// Projects by name; empty: all of them.
    pub projects: Vec<String>,
    /// Only those whose schedule is due since their last recorded run.
    pub due: bool,
    /// Tags given to every snapshot made (besides `strata-run:<run id>`).
    pub tags: Vec<String>,
    /// Say what would be done, and change nothing.
    pub dry_run: bool,
    /// What started the run, for the record: `manual`, `due` or `api`.
    pub trigger: String,
}

impl Selection {
    /// The names in [`Selection::projects`] that `cfg` does not define.
    pub fn unknown_projects(&self, cfg: &Config) -> Vec<String> {
        self.projects
            .iter()
            .filter(|p| !cfg.projects.contains_key(*p))
            .cloned()
            .collect()
    }
}

/// What a run reports to as it goes (a terminal shows a line per step; cron nothing).
pub trait RunObserver: Send + Sync {
    /// A step of a project began: `backing up paths`, `copying to offsite`, ...
    fn step(&self, _project: &str, _what: &str) {}
}

/// An observer that shows nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct Silent;

impl RunObserver for Silent {}

/// Where a run reads the time, records, history and channels from.
pub struct RunEnv<'a> {
    pub clock: Clock,
    pub recorder: &'a dyn Recorder,
    pub history: &'a dyn History,
    pub notifier: &'a dyn Notifier,
    pub observer: &'a dyn RunObserver,
    /// Host name recorded in snapshots (default: this machine's).
    pub host: Option<String>,
    /// Run the repositories on this runtime (a server's); else the run starts one.
    pub runtime: Option<EngineRuntime>,
}

/// How long a repository's lock is waited for (another project's prune, a check).
pub(crate) const LOCK_WAIT: Duration = Duration::from_secs(300);

/// Runs the selected projects of `cfg` (see the module docs). Names not in the config
/// are left out: the caller checks them first ([`Selection::unknown_projects`]).
pub fn run(cfg: &Config, sel: &Selection, env: &RunEnv) -> RunReport {
    let started_ns = env.clock.now_ns();
    let run_id = RunId::new(started_ns);
    let runtime = env.runtime.clone().or_else(|| EngineRuntime::new().ok());
    let mut projects = Vec::new();
    for (name, project) in &cfg.projects {
        if !sel.projects.is_empty() && !sel.projects.contains(name) {
            continue;
        }
        let ctx = context::ProjectRun {
            cfg,
            sel,
            env,
            run_id: &run_id,
            runtime: runtime.as_ref(),
            records: Default::default(),
        };
        projects.push(ctx.run(project));
    }
    let exit_code = exit_code(projects.iter().map(|p| p.status));
    RunReport {
        run_id,
        started: report::rfc3339(started_ns),
        finished: report::rfc3339(env.clock.now_ns()),
        exit_code,
        dry_run: sel.dry_run,
        projects,
    }
}

/// Whether a project with `schedule` is due: a slot passed since its last recorded run.
/// Asked with the project's run lock held, so that a run that ended a moment ago (a
/// scheduler's tick that raced it) has been recorded and counts.
fn project_due(schedule: Option<&Schedule>, project: &str, env: &RunEnv) -> bool {
    let Some(schedule) = schedule else {
        return false;
    };
    // A history that cannot be read is not "never ran": that would run everything every
    // few minutes. Nothing is due until it reads again (health reports the catalog).
    let last = match env.history.last(&Query {
        project: Some(project.to_string()),
        kind: Some(RecordKind::Run),
        ..Query::default()
    }) {
        Ok(last) => last,
        Err(e) => {
            tracing::error!("{project} is not run: its history cannot be read: {e}");
            return false;
        }
    };
    let last = last.map(|r| match r.body {
        RecordBody::Run { started_ns, .. } => started_ns,
        _ => r.time_ns,
    });
    schedule_due(schedule, last, env.clock.now_ns())
}

/// Whether `schedule` has a slot after `last_ns` up to `now_ns`, in the machine's time
/// zone: the one place the runner asks a schedule.
pub(crate) fn schedule_due(schedule: &Schedule, last_ns: Option<i64>, now_ns: i64) -> bool {
    schedule.is_due(last_ns, now_ns, &jiff::tz::TimeZone::system())
}
