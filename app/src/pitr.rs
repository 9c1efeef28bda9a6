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

use strata_db::wal::{ControlFile, SegmentHeader, WalName};
use strata_engine::wal::{self, Push, Pushed};
use strata_engine::Operation;

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
fn primary<'a>(cfg: &'a Config, project: &str) -> Result<(&'a str, &'a RepoSpec)> {
    let p = cfg
        .projects
        .get(project)
        .ok_or_else(|| AppError::Invalid(format!("no project named {project:?} in the config")))?;
    let name = p
        .repositories
        .first()
        .ok_or_else(|| AppError::Invalid(format!("project {project} has no repository")))?;
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

fn open(cfg: &Config, spec: &RepoSpec, op: Operation) -> Result<repo::Opened> {
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
    let opened = open(cfg, spec, Operation::WalFetch)?;
    let archive = wal::read_archive(&opened.repo)?;
    let Some(content) = wal::fetch(&opened.repo, &archive, project, name)? else {
        return Ok(None);
    };
    write_atomically(dest, &content)
        .map_err(|e| AppError::Invalid(format!("{} cannot be written: {e}", dest.display())))?;
    Ok(Some(content.len() as u64))
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
