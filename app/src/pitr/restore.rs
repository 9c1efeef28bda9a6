//! `strata pg restore`: a PostgreSQL cluster restored to a point in time. Everything is
//! decided and checked before a byte is written (the base backup, the timeline, every
//! archived segment the recovery replays: [`super::timeline`]); then the base backup's data
//! directory is restored into an empty directory (content verified), `recovery.signal` and
//! the recovery settings are written, and, when asked, the cluster is started and its log
//! read until recovery ended ([`start`]), failing loudly when it did not reach the target.
//!
//! The target directory must not exist or be empty: a restore never replaces a data
//! directory (no `--force` yet).

use std::path::PathBuf;
use std::time::Instant;

use jiff::Timestamp;
use strata_db::wal::{History, SegmentSize, WalName};
use strata_engine::progress::Progress;
use strata_engine::wal::{self, Archive};
use strata_engine::{Operation, Repository};

use super::base::{self, BaseBackup};
use super::timeline::{self, Archived, Needed, TimelinePath};
use crate::config::Config;
use crate::restore::Recorded;
use crate::{AppError, Result};

mod data_dir;
mod settings;
mod start;

use data_dir::{check_forced_target, check_target_dir, io, restore_data_dir};
use settings::write_recovery;
pub use settings::{conf_string, recovery_settings, shell_word};
pub use start::{Started, LOG_FILE};

/// How far to recover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoveryTarget {
    /// To this time (`recovery_target_time`).
    Time(Timestamp),
    /// To the end of the archived WAL.
    Latest,
}

/// `--timeline`: which timeline to recover along.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimelineChoice {
    /// The highest timeline in the archive.
    Latest,
    /// The chosen base backup's.
    Current,
    Number(u32),
}

impl std::str::FromStr for TimelineChoice {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "latest" => Ok(TimelineChoice::Latest),
            "current" => Ok(TimelineChoice::Current),
            n => n
                .parse::<u32>()
                .ok()
                .filter(|n| *n > 0)
                .map(TimelineChoice::Number)
                .ok_or_else(|| format!("{s:?}: give latest, current or a timeline number from 1")),
        }
    }
}

/// `recovery_target_action`: what the server does once it reached the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoveryAction {
    /// End recovery and open for writes, on a new timeline.
    Promote,
    /// Stay in recovery, paused at the target (read-only queries work).
    Pause,
    /// Shut the server down at the target.
    Shutdown,
}

impl std::str::FromStr for RecoveryAction {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "promote" => Ok(RecoveryAction::Promote),
            "pause" => Ok(RecoveryAction::Pause),
            "shutdown" => Ok(RecoveryAction::Shutdown),
            _ => Err(format!("{s:?}: give promote, pause or shutdown")),
        }
    }
}

impl RecoveryAction {
    pub fn as_str(self) -> &'static str {
        match self {
            RecoveryAction::Promote => "promote",
            RecoveryAction::Pause => "pause",
            RecoveryAction::Shutdown => "shutdown",
        }
    }
}

/// What to restore, where, and whether to start it.
#[derive(Debug, Clone)]
pub struct PitrRestoreOptions {
    pub project: String,
    pub target: RecoveryTarget,
    pub timeline: TimelineChoice,
    pub action: RecoveryAction,
    /// Start from this base backup (a snapshot id or unique prefix), still checked.
    pub base: Option<String>,
    /// The directory to restore into: absent or empty.
    pub dir: PathBuf,
    /// Start the restored cluster on this port (socket in `dir`) and wait for recovery.
    pub start: Option<u16>,
    /// This strata binary (absolute), for `restore_command`.
    pub strata_bin: PathBuf,
    /// Let the restored cluster archive (it becomes the primary); otherwise it is written
    /// `archive_mode = off`.
    pub archive: bool,
    /// Restore into a target that holds a (stopped) cluster: after a safety snapshot of it.
    pub force: bool,
}

/// What `strata pg restore` did (its `--json`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct PitrRestored {
    pub project: String,
    pub base_snapshot: String,
    /// RFC 3339 UTC; `null` with `--latest`.
    pub target_time: Option<String>,
    pub timeline: u32,
    pub target_dir: String,
    pub started: bool,
    /// Where recovery stopped, as the server logged it.
    pub recovery_stop: Option<String>,
    /// The timeline a promotion started.
    pub new_timeline: Option<u32>,
    /// With `--force` over a target that held something: the snapshot of it, taken first.
    pub safety_snapshot: Option<String>,
    pub duration_secs: f64,
}

/// What was decided before anything was written.
#[derive(Debug, Clone)]
pub struct PitrPlan {
    pub base: BaseBackup,
    pub path: TimelinePath,
    pub needed: Needed,
}

/// Restores as `opts` say (see the module docs). `say` gets progress lines; `record` the
/// catalog record of the files restore, once it ran.
pub fn restore(
    cfg: &Config,
    opts: &PitrRestoreOptions,
    progress: &dyn Progress,
    say: &dyn Fn(&str),
    record: &mut dyn FnMut(Recorded),
) -> Result<PitrRestored> {
    let began = Instant::now();
    // In place (--force): what the target holds is saved first, in a safety snapshot.
    let replacing = if opts.force {
        check_forced_target(&opts.dir)?
    } else {
        check_target_dir(&opts.dir)?;
        false
    };
    if !opts.strata_bin.is_absolute() {
        return Err(AppError::Invalid(format!(
            "the strata binary's path {} is not absolute: restore_command needs one",
            opts.strata_bin.display()
        )));
    }
    let (_, spec) = super::primary(cfg, &opts.project)?;
    let opened = super::open(
        cfg,
        spec,
        if replacing {
            Operation::RestoreDatabase
        } else {
            Operation::Restore
        },
    )?;
    let repo = &opened.repo;
    let snaps = strata_engine::snapshots::list_readable(repo)?;
    let (bases, problems) = base::of_project(&snaps, &opts.project);
    for p in problems {
        say(&format!("warning: {p}"));
    }
    let archive = wal::read_archive(repo)?;
    let target_ns = match opts.target {
        RecoveryTarget::Time(t) => Some(clamp_ns(t)),
        RecoveryTarget::Latest => None,
    };
    let plan = plan(repo, &archive, &opts.project, &bases, opts, target_ns)?;
    let b = &plan.base;
    say(&format!(
        "base backup {} (timeline {}, ended {}), recovery along timelines {}, replaying {} \
         segments {}..{}, all archived",
        b.snapshot.short(),
        b.timeline,
        crate::run::report::rfc3339(b.stop_time_ns),
        plan.path.describe(),
        plan.needed.count,
        plan.needed.first,
        plan.needed.last
    ));
    if let Some(gap) = plan.needed.gap_after {
        say(&format!(
            "warning: segment {gap} is missing from the archive after {}: if no transaction \
             committed after the target before it, recovery cannot reach the target",
            plan.needed.last
        ));
    }
    let (id, snap) = snaps
        .iter()
        .find(|(id, _)| *id == b.snapshot)
        .ok_or_else(|| AppError::Invalid(format!("snapshot {} vanished", b.snapshot.short())))?;
    say(&format!(
        "restoring snapshot {} into {}",
        id.short(),
        opts.dir.display()
    ));
    let mut safety_snapshot = None;
    let mut replaced = None;
    if replacing {
        // 1. Everything the target holds, durable in the repository (tag pre-restore).
        say(&format!(
            "saving what {} holds in a safety snapshot first",
            opts.dir.display()
        ));
        let labels = strata_engine::archiver::BackupOptions {
            project: Some(opts.project.clone()),
            ..Default::default()
        }
        .for_safety_snapshot(strata_engine::restorer::SAFETY_TAG);
        let saved = strata_engine::archiver::backup_paths(
            repo,
            std::slice::from_ref(&opts.dir),
            &labels,
            progress,
        )?;
        if !saved.errors.is_empty() {
            return Err(AppError::Invalid(format!(
                "{} entries of {} could not be saved (the first: {}): nothing was replaced",
                saved.errors.len(),
                opts.dir.display(),
                saved.errors[0].message
            )));
        }
        say(&format!("safety snapshot {}", saved.snapshot_id.short()));
        safety_snapshot = Some(saved.snapshot_id.to_hex());
        // 2. Moved aside (one rename), removed only once the restore succeeded.
        let aside = opts.dir.with_file_name(format!(
            ".{}.strata-replaced",
            opts.dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        ));
        std::fs::rename(&opts.dir, &aside).map_err(|e| io(&opts.dir, e))?;
        replaced = Some(aside);
    }
    if let Err(e) = restore_data_dir(repo, id, snap, &opts.dir, progress, record) {
        if let Some(aside) = &replaced {
            // Put back what was there.
            let _ = std::fs::remove_dir_all(&opts.dir);
            std::fs::rename(aside, &opts.dir).map_err(|e| io(aside, e))?;
        }
        return Err(e);
    }
    if let Some(aside) = &replaced {
        std::fs::remove_dir_all(aside).map_err(|e| io(aside, e))?;
    }
    let settings = recovery_settings(
        &opts.strata_bin,
        &cfg.file,
        &opts.project,
        match opts.target {
            RecoveryTarget::Time(t) => Some(t),
            RecoveryTarget::Latest => None,
        },
        plan.path.target(),
        opts.action,
        opts.archive,
    )?;
    write_recovery(&opts.dir, &settings, b)?;
    say(&format!(
        "wrote recovery.signal and the recovery settings to {}",
        opts.dir.join("postgresql.auto.conf").display()
    ));
    // Recovery fetches WAL through its own processes: the lock goes now.
    drop(opened);
    let mut out = PitrRestored {
        project: opts.project.clone(),
        base_snapshot: b.snapshot.to_hex(),
        target_time: match opts.target {
            RecoveryTarget::Time(t) => Some(t.to_string()),
            RecoveryTarget::Latest => None,
        },
        timeline: plan.path.target(),
        target_dir: opts.dir.display().to_string(),
        started: false,
        recovery_stop: None,
        new_timeline: None,
        safety_snapshot,
        duration_secs: 0.0,
    };
    if let Some(port) = opts.start {
        let s = start::start_and_wait(&opts.dir, port, opts.action, target_ns.is_some(), say)?;
        out.started = true;
        out.recovery_stop = s.recovery_stop;
        out.new_timeline = s.new_timeline;
    }
    out.duration_secs = began.elapsed().as_secs_f64();
    Ok(out)
}

/// Nanoseconds of `t`, clamped to `i64` (times past 2262 are all "later than any push").
fn clamp_ns(t: Timestamp) -> i64 {
    i64::try_from(t.as_nanosecond()).unwrap_or(if t.as_nanosecond() < 0 {
        i64::MIN
    } else {
        i64::MAX
    })
}

/// Chooses the base backup and the timeline, and checks the archive holds everything the
/// recovery replays; reads the repository, writes nothing.
pub fn plan(
    repo: &Repository,
    archive: &Archive,
    project: &str,
    bases: &[BaseBackup],
    opts: &PitrRestoreOptions,
    target_ns: Option<i64>,
) -> Result<PitrPlan> {
    if let Some((name, e)) = archive.unreadable.first() {
        return Err(AppError::Invalid(format!(
            "WAL file {name} cannot be read ({e}): the archive cannot be checked; run `strata \
             check`"
        )));
    }
    let system_id = archive.system_id(project)?.ok_or_else(|| {
        AppError::Invalid(format!(
            "nothing is archived for project {project}: a restore replays archived WAL"
        ))
    })?;
    let (archived, highest) = archived_segments(archive, project);
    let forced = match &opts.base {
        Some(spec) => Some(find_base(bases, spec)?),
        None => None,
    };
    let timeline = match opts.timeline {
        TimelineChoice::Number(n) => n,
        TimelineChoice::Latest => highest,
        TimelineChoice::Current => match forced {
            Some(b) => b.timeline,
            None => timeline::choose_base(bases, None, target_ns)?.timeline,
        },
    };
    let history = if timeline > 1 {
        let name = format!("{timeline:08X}.history");
        let bytes = wal::fetch(repo, archive, project, &name)?.ok_or_else(|| {
            AppError::Invalid(format!(
                "timeline {timeline}'s history file {name} is not archived: a recovery cannot \
                 follow timeline {timeline} (is it a timeline of this cluster? `strata pg \
                 verify` lists them)"
            ))
        })?;
        let text = String::from_utf8(bytes)
            .map_err(|_| AppError::Invalid(format!("archived {name} is not text")))?;
        Some(
            History::parse(timeline, &text)
                .map_err(|e| AppError::Invalid(format!("archived {name}: {e}")))?,
        )
    } else {
        None
    };
    let path = TimelinePath::new(timeline, history.as_ref())?;
    let base = match forced {
        Some(b) => {
            timeline::check_base(b, Some(&path), target_ns)?;
            b
        }
        None => timeline::choose_base(bases, Some(&path), target_ns)?,
    };
    if base.system_id != system_id {
        return Err(AppError::Invalid(format!(
            "base backup {} is of the cluster with system identifier {}, but the project's WAL \
             archive is of cluster {system_id}",
            base.snapshot.short(),
            base.system_id
        )));
    }
    let needed = timeline::needed_segments(&path, base, target_ns, &archived)?;
    Ok(PitrPlan {
        base: base.clone(),
        path,
        needed,
    })
}

/// The base backup `spec` (an id or a unique prefix of one) names.
fn find_base<'a>(bases: &'a [BaseBackup], spec: &str) -> Result<&'a BaseBackup> {
    let spec = spec.to_ascii_lowercase();
    let found: Vec<&BaseBackup> = bases
        .iter()
        .filter(|b| !spec.is_empty() && b.snapshot.to_hex().starts_with(&spec))
        .collect();
    match found.as_slice() {
        [one] => Ok(one),
        [] => Err(AppError::Invalid(format!(
            "--base {spec}: no base backup of the project has such an id (`strata snapshots \
             --tag {}` lists them)",
            base::TAG
        ))),
        _ => Err(AppError::Invalid(format!(
            "--base {spec} names {} base backups: give more of the id",
            found.len()
        ))),
    }
}

/// The project's archived segments (timeline, number → pushed at), and the highest
/// timeline it archived anything of (1 when none).
fn archived_segments(archive: &Archive, project: &str) -> (Archived, u32) {
    let mut out = Archived::new();
    let mut highest = 1;
    for (name, found) in archive.entries(project) {
        let Ok(parsed) = WalName::parse(name) else {
            continue;
        };
        highest = highest.max(parsed.timeline());
        if let WalName::Segment(seg) = parsed {
            let Ok(size) = SegmentSize::new(found.file.seg_size) else {
                continue;
            };
            if let Ok(n) = seg.number(size) {
                out.insert((seg.timeline(), n), found.entry.pushed_ns);
            }
        }
    }
    (out, highest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeline_choices_parse() {
        assert_eq!("latest".parse(), Ok(TimelineChoice::Latest));
        assert_eq!("current".parse(), Ok(TimelineChoice::Current));
        assert_eq!("3".parse(), Ok(TimelineChoice::Number(3)));
        assert!("0".parse::<TimelineChoice>().is_err());
        assert!("x".parse::<TimelineChoice>().is_err());
    }
}
