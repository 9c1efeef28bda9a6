//! PostgreSQL point-in-time recovery (spec/wal.md): a project's WAL archive in its primary
//! repository. `archive_command = 'strata pg wal-push --project P %p'` pushes each file
//! PostgreSQL finishes ([`wal_push`]); `restore_command = 'strata pg wal-fetch --project P
//! %f %p'` brings one back during recovery ([`wal_fetch`]).
//!
//! Both run once per WAL file, as PostgreSQL's user, in the data directory: they check what
//! the file is (its name, a segment's header) and which cluster it is of (the header's
//! system identifier against `global/pg_control` of the data directory), then call the
//! engine's [`strata_engine::wal`], which keeps the archive's rules.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use strata_db::wal::{ControlFile, SegmentHeader, SegmentSize, WalName};
use strata_engine::wal::{self, Push, Pushed};
use strata_engine::Operation;

pub mod base;
pub mod basebackup;
pub mod check;
pub mod expire;
pub mod prefetch;
pub mod restore;
pub mod restore_test;
pub mod timeline;
pub mod window;

use crate::config::Config;
use crate::repo::{self, OpenOptions, RepoSpec};
use crate::{AppError, Result};

/// How long a push or fetch waits for a repository lock (a prune) before it fails (and
/// PostgreSQL tries again).
const LOCK_WAIT: Duration = Duration::from_secs(120);

/// What [`wal_push`] did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WalPushed {
    /// The file's name (`%f`).
    pub name: String,
    /// The repository it went into (the project's primary).
    pub repository: String,
    pub bytes: u64,
    /// `stored`, or `already-archived` (an identical push before).
    pub outcome: &'static str,
    /// Stored bytes new to the repository.
    pub bytes_added: u64,
}

/// The project's primary repository: its name and spec.
pub(crate) fn primary<'a>(cfg: &'a Config, project: &str) -> Result<(&'a str, &'a RepoSpec)> {
    let p = cfg
        .projects
        .get(project)
        .ok_or_else(|| AppError::Invalid(format!("no project named {project:?} in the config")))?;
    // The config's checks make sure a project has a primary repository it defines.
    let name = p.primary();
    let spec = cfg.repositories.get(name).ok_or_else(|| {
        AppError::Invalid(format!(
            "project {project} names repository {name}, which the config does not define"
        ))
    })?;
    Ok((name, spec))
}

/// Where the master keys these one-shot processes unwrap are kept for the next one (see
/// `strata_engine::keys::remember_on_disk`): a busy cluster runs `archive_command` every
/// few seconds, and each would otherwise derive the key with argon2id.
pub const KEY_CACHE_DIR: &str = "key-cache";

pub(crate) fn open(cfg: &Config, spec: &RepoSpec, op: Operation) -> Result<repo::Opened> {
    strata_engine::keys::remember_on_disk(&cfg.state_dir.join(KEY_CACHE_DIR));
    let password = repo::password(spec)?;
    repo::open(
        spec,
        password.as_bytes(),
        op,
        &OpenOptions {
            wait: LOCK_WAIT,
            no_lock: false,
            runtime: None,
        },
    )
}

/// `pg_control` of the data directory `data_dir` (PostgreSQL runs `archive_command` in it),
/// if there is one.
fn control_of(data_dir: &Path) -> Result<Option<ControlFile>> {
    if !data_dir.join("global/pg_control").exists() {
        return Ok(None);
    }
    ControlFile::read(data_dir)
        .map(Some)
        .map_err(|e| AppError::Invalid(e.to_string()))
}

/// Pushes the file at `file` (PostgreSQL's `%p`) into `project`'s WAL archive; `data_dir`
/// is the cluster's data directory (`None`: the current directory, where PostgreSQL runs
/// `archive_command`). Succeeds only once the file is durable in the repository, or when
/// the archive already holds this very file.
pub fn wal_push(
    cfg: &Config,
    project: &str,
    file: &Path,
    data_dir: Option<&Path>,
) -> Result<WalPushed> {
    let (repository, spec) = primary(cfg, project)?;
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| AppError::Invalid(format!("{} names no WAL file", file.display())))?;
    let parsed = WalName::parse(name).map_err(|e| AppError::Invalid(e.to_string()))?;
    let content = std::fs::read(file)
        .map_err(|e| AppError::Invalid(format!("{} cannot be read: {e}", file.display())))?;
    let here = data_dir
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let control = control_of(&here)?;
    let (system_id, seg_size, wal_magic) = match parsed {
        WalName::Segment(_) | WalName::Partial { .. } => {
            let header = SegmentHeader::parse(&content)
                .map_err(|e| AppError::Invalid(format!("{}: {e}", file.display())))?;
            header
                .check_name(&parsed)
                .map_err(|e| AppError::Invalid(e.to_string()))?;
            let size = header.seg_size.get();
            if matches!(parsed, WalName::Segment(_)) && content.len() as u64 != size as u64 {
                return Err(AppError::Invalid(format!(
                    "{} is {} bytes, but its header says segments are {size}: an incomplete \
                     segment is never archived",
                    file.display(),
                    content.len()
                )));
            }
            if let Some(c) = control {
                if c.system_identifier != header.system_id {
                    return Err(AppError::Invalid(format!(
                        "{name} is of the cluster with system identifier {}, but the data \
                         directory {} is of cluster {}",
                        header.system_id,
                        here.display(),
                        c.system_identifier
                    )));
                }
            }
            (header.system_id, size, header.magic)
        }
        WalName::History { .. } | WalName::BackupLabel { .. } => {
            let c = control.ok_or_else(|| {
                AppError::Invalid(format!(
                    "cannot tell which cluster {name} is of: {} holds no global/pg_control; run \
                     wal-push in the data directory (PostgreSQL runs archive_command there) or \
                     give --pgdata",
                    here.display()
                ))
            })?;
            (c.system_identifier, 0, 0)
        }
    };
    let opened = open(cfg, spec, Operation::WalPush)?;
    let outcome = wal::push(
        &opened.repo,
        &Push {
            project,
            system_id,
            timeline: parsed.timeline(),
            seg_size,
            wal_magic,
            name,
            content: &content,
        },
    )?;
    let (outcome, bytes_added) = match outcome {
        Pushed::Stored { bytes_added } => ("stored", bytes_added),
        Pushed::AlreadyThere => ("already-archived", 0),
    };
    Ok(WalPushed {
        name: name.to_string(),
        repository: repository.to_string(),
        bytes: content.len() as u64,
        outcome,
        bytes_added,
    })
}

/// Writes `project`'s archived file `name` to `dest` (PostgreSQL's `%p`), atomically: a
/// temporary file beside it, synced, then renamed. Returns its size, or `None` when the
/// archive has no such file (PostgreSQL asks for files that may not exist: the next
/// timeline's history, the segment after the last).
pub fn wal_fetch(cfg: &Config, project: &str, name: &str, dest: &Path) -> Result<Option<u64>> {
    let (_, spec) = primary(cfg, project)?;
    WalName::parse(name).map_err(|e| AppError::Invalid(e.to_string()))?;
    let write = |content: &[u8]| {
        write_atomically(dest, content)
            .map_err(|e| AppError::Invalid(format!("{} cannot be written: {e}", dest.display())))
    };
    let spool = spool_of(cfg, spec, project);
    if let Some(dir) = &spool {
        prefetch::sweep(dir);
        if let Some(content) = prefetch::take(dir, name) {
            write(&content)?;
            return Ok(Some(content.len() as u64));
        }
    }
    let opened = open(cfg, spec, Operation::WalFetch)?;
    let archive = wal::read_archive(&opened.repo)?;
    let Some(content) = wal::fetch(&opened.repo, &archive, project, name)? else {
        return Ok(None);
    };
    write(&content)?;
    if let Some(dir) = &spool {
        prefetch_after(
            &opened.repo,
            &archive,
            project,
            name,
            dir,
            prefetch_count(cfg, project),
        );
    }
    Ok(Some(content.len() as u64))
}

/// Segments a fetch that opened the repository also fetches into the spool, by default.
pub const DEFAULT_PREFETCH: usize = 8;

fn prefetch_count(cfg: &Config, project: &str) -> usize {
    cfg.projects
        .get(project)
        .and_then(|p| p.pitr.as_ref())
        .map_or(DEFAULT_PREFETCH, |c| c.prefetch)
}

/// The prefetch spool of this fetch: only when prefetching is on and the current directory
/// is a data directory (PostgreSQL runs `restore_command` in it), whose cluster names it.
fn spool_of(cfg: &Config, spec: &RepoSpec, project: &str) -> Option<PathBuf> {
    if prefetch_count(cfg, project) == 0 {
        return None;
    }
    let control = control_of(Path::new(".")).ok().flatten()?;
    Some(prefetch::spool_dir(
        &cfg.state_dir,
        &spec.location,
        project,
        control.system_identifier,
    ))
}

/// Fetches the `count` segments after `name` that the archive holds into the spool `dir`,
/// stopping at the first it does not hold. A failure here only costs the next fetch the
/// repository's opening: it is logged, never an error.
fn prefetch_after(
    repo: &strata_engine::Repository,
    archive: &wal::Archive,
    project: &str,
    name: &str,
    dir: &Path,
    count: usize,
) {
    let Ok(Some(found)) = archive.find(project, name) else {
        return;
    };
    let Ok(size) = SegmentSize::new(found.file.seg_size) else {
        return;
    };
    // The run of archived segments after `name`, up to the first the archive lacks; those
    // the spool holds already are skipped.
    let mut todo = Vec::new();
    for next in prefetch::following(name, size, count) {
        if !matches!(archive.find(project, &next), Ok(Some(_))) {
            break;
        }
        if !prefetch::holds(dir, &next) {
            todo.push(next);
        }
    }
    // Each segment is read, decrypted, decompressed and hashed: CPU work, spread over the
    // cores while recovery replays the segment just fetched.
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 4);
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..workers.min(todo.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(seg) = todo.get(i) else {
                    return;
                };
                match wal::fetch(repo, archive, project, seg) {
                    Ok(Some(content)) => {
                        if let Err(e) = prefetch::put(dir, seg, &content) {
                            tracing::warn!("{seg} not prefetched into {}: {e}", dir.display());
                            return;
                        }
                    }
                    Ok(None) => return,
                    Err(e) => {
                        tracing::warn!("{seg} not prefetched: {e}");
                        return;
                    }
                }
            });
        }
    });
}

fn write_atomically(dest: &Path, content: &[u8]) -> std::io::Result<()> {
    let dir = match dest.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = dest.file_name().and_then(|n| n.to_str()).unwrap_or("wal");
    let tmp = dir.join(format!(".{file_name}.strata-tmp"));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(content)?;
        f.sync_all()?;
        std::fs::rename(&tmp, dest)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// One timeline of a project's WAL archive, as `strata pg verify` reports it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TimelineReport {
    pub timeline: u32,
    /// Segments archived.
    pub segments: u64,
    /// The first and the last segment archived.
    pub first: Option<String>,
    pub last: Option<String>,
    /// Segments missing between the first and the last: recovery cannot replay past the
    /// first of them.
    pub gaps: Vec<Gap>,
    /// Whether the timeline's history file is archived (timeline 1 has none; every later
    /// timeline needs one for a recovery to follow it).
    pub history: bool,
    /// When the last segment was pushed (RFC 3339, UTC).
    pub last_pushed: Option<String>,
    /// From when to when the timeline can be recovered (see [`window`]): from the oldest
    /// restorable base backup of the timeline that reaches furthest, to the last segment
    /// reachable from it without a gap. `None`: no restorable base backup on it.
    pub window: Option<WindowReport>,
    /// Earlier, separate windows: base backups whose replay a gap cuts off before the
    /// furthest reach (newest first).
    pub earlier_windows: Vec<WindowReport>,
}

/// A restorable window (times RFC 3339, UTC, to the second: the earliest rounded up, the
/// latest down but never before the earliest). The latest is when the last reachable
/// segment was pushed: WAL written up to then is archived, a commit after it is not.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WindowReport {
    pub earliest: String,
    pub latest: String,
    /// The base backup's snapshot it starts from.
    pub base_snapshot: String,
    /// The last segment recovery reaches without a gap (pushed at `latest`).
    pub last_segment: String,
}

/// One base backup of the project, as `strata pg verify` judges its WAL.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BaseBackupReport {
    pub snapshot: String,
    pub timeline: u32,
    pub start_wal: String,
    pub stop_wal: String,
    /// When it stopped (RFC 3339): the earliest time it restores to.
    pub stop_time: String,
    /// Its WAL from start to stop is archived.
    pub restorable: bool,
    /// Segments between its start and stop segments not archived (it cannot be restored).
    pub missing: Vec<Gap>,
    /// The last segment recovery from it reaches without a gap.
    pub reaches: Option<String>,
    /// The gap that ends its replay, when a later segment is archived.
    pub gap_after: Option<Gap>,
}

/// A run of missing segments, first to last (inclusive).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Gap {
    pub from: String,
    pub to: String,
    pub missing: u64,
}

/// What `strata pg verify` found in a project's WAL archive.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ArchiveReport {
    pub project: String,
    pub repository: String,
    /// The cluster's system identifier (as text: it does not fit JSON's safe integers).
    pub system_id: Option<String>,
    pub timelines: Vec<TimelineReport>,
    /// The project's base backups (snapshots tagged `pg-basebackup`), oldest first.
    pub base_backups: Vec<BaseBackupReport>,
    /// `.backup` files (a base backup's start and stop), `.partial` files.
    pub backup_labels: u64,
    pub partial: u64,
    /// What is wrong beyond gaps: an unreadable WAL file, a name archived twice with two
    /// contents, a timeline after 1 without its history file, a base backup whose WAL is
    /// not all archived or whose facts cannot be read.
    pub problems: Vec<String>,
    /// Worth knowing, not wrong (no base backup yet).
    pub notes: Vec<String>,
}

impl ArchiveReport {
    /// Whether the archive is continuous and sound (no gap, no problem).
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty() && self.timelines.iter().all(|t| t.gaps.is_empty())
    }
}

/// Reads `project`'s WAL archive and its base backups, and reports, per timeline, which
/// segments it holds, where segments are missing, and the restorable window.
pub fn verify(cfg: &Config, project: &str) -> Result<ArchiveReport> {
    let (repository, spec) = primary(cfg, project)?;
    let opened = open(cfg, spec, Operation::WalList)?;
    let archive = wal::read_archive(&opened.repo)?;
    let snapshots = strata_engine::snapshots::list_lenient(&opened.repo)?;
    let mut report = ArchiveReport {
        project: project.to_string(),
        repository: repository.to_string(),
        system_id: archive.system_id(project)?.map(|i| i.to_string()),
        timelines: Vec::new(),
        base_backups: Vec::new(),
        backup_labels: 0,
        partial: 0,
        problems: archive
            .unreadable
            .iter()
            .map(|(name, e)| format!("wal/{name} cannot be read: {e}"))
            .collect(),
        notes: Vec::new(),
    };
    let lines = archived_segments(&archive, project, &mut report);
    if lines.is_empty() && report.problems.is_empty() {
        report.problems.push(format!(
            "nothing is archived for project {project}: is archive_command set (archive_mode = \
             on), and does it name this project?"
        ));
    }
    let readable: Vec<_> = snapshots
        .into_iter()
        .filter_map(|(id, s)| match s {
            Ok(s) => Some((id, s)),
            Err(e) => {
                report.problems.push(format!(
                    "snapshot {} cannot be read ({e}): it may be a base backup",
                    id.short()
                ));
                None
            }
        })
        .collect();
    let (bases, unreadable) = base::of_project(&readable, project);
    report.problems.extend(unreadable);
    let judged = window::judge(&bases, &lines, archive.system_id(project)?);
    report.problems.extend(judged.problems);
    report.base_backups = judged.reports;
    if bases.is_empty() {
        report.notes.push(format!(
            "project {project} has no base backup: nothing is restorable yet (`strata pg \
             basebackup --project {project}`)"
        ));
    }
    for (timeline, line) in &lines {
        let timeline = *timeline;
        let name_of = |n: u64| window::segment_name(timeline, n, line.size);
        let numbers: Vec<u64> = line.pushed.keys().copied().collect();
        let gaps: Vec<Gap> = numbers
            .windows(2)
            .filter(|w| w[1] > w[0] + 1)
            .map(|w| Gap {
                from: name_of(w[0] + 1),
                to: name_of(w[1] - 1),
                missing: w[1] - w[0] - 1,
            })
            .collect();
        if timeline > 1 && !line.history {
            report.problems.push(format!(
                "timeline {timeline} has no history file ({timeline:08X}.history): a recovery \
                 cannot follow it"
            ));
        }
        let mut windows = judged
            .windows
            .get(&timeline)
            .cloned()
            .unwrap_or_default()
            .into_iter();
        report.timelines.push(TimelineReport {
            timeline,
            segments: numbers.len() as u64,
            first: numbers.first().map(|n| name_of(*n)),
            last: numbers.last().map(|n| name_of(*n)),
            gaps,
            history: line.history,
            last_pushed: line
                .pushed
                .values()
                .max()
                .map(|t| crate::run::report::rfc3339(*t)),
            window: windows.next(),
            earlier_windows: windows.collect(),
        });
    }
    Ok(report)
}

/// `project`'s archived segments per timeline (problems with names and sizes go into
/// `report`, as do `.backup` and `.partial` counts).
fn archived_segments(
    archive: &wal::Archive,
    project: &str,
    report: &mut ArchiveReport,
) -> std::collections::BTreeMap<u32, window::Line> {
    let mut lines: std::collections::BTreeMap<u32, window::Line> =
        std::collections::BTreeMap::new();
    for (name, found) in archive.entries(project) {
        if let Err(e) = archive.find(project, name) {
            report.problems.push(e.to_string());
        }
        let Ok(parsed) = WalName::parse(name) else {
            report
                .problems
                .push(format!("{name} is not a WAL file name"));
            continue;
        };
        let line = lines.entry(parsed.timeline()).or_default();
        match parsed {
            WalName::Segment(seg) => {
                let size = match SegmentSize::new(found.file.seg_size) {
                    Ok(s) => s,
                    Err(e) => {
                        report.problems.push(format!("{name}: {e}"));
                        continue;
                    }
                };
                line.size = Some(size);
                match seg.number(size) {
                    Ok(n) => {
                        line.pushed.insert(n, found.entry.pushed_ns);
                    }
                    Err(e) => report.problems.push(format!("{name}: {e}")),
                }
            }
            WalName::History { .. } => line.history = true,
            WalName::BackupLabel { .. } => report.backup_labels += 1,
            WalName::Partial { .. } => report.partial += 1,
        }
    }
    lines
}
