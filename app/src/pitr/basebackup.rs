//! `strata pg basebackup`: a base backup of a project's PostgreSQL cluster into its primary
//! repository, with the non-exclusive low-level API in one session
//! ([`strata_db::basebackup::BackupSession`]):
//!
//! 1. checks that the data directory, the server and the WAL archive are one cluster (the
//!    same system identifier), that WAL is archived (`archive_mode`), and that there are no
//!    tablespaces (not supported yet);
//! 2. starts the backup (an immediate checkpoint), reads the data directory as a files
//!    snapshot without what PostgreSQL rebuilds or must not find (pg_wal's content,
//!    `postmaster.pid`, temporary files: the list of the documentation's "Backing Up the
//!    Data Directory");
//! 3. once every file is read, stops the backup, waits until the segment holding its stop
//!    LSN is in the project's WAL archive, and only then writes the snapshot, with the
//!    `backup_label` the stop returned at the data directory's root and the facts a
//!    restore needs in `source_meta` ([`BaseBackup`]).
//!
//! A snapshot therefore exists only for a complete base backup; a failure at any step
//! leaves none (the server ends a backup whose session closes).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use strata_db::basebackup::{label_timeline, BackupSession};
use strata_db::wal::ControlFile;
use strata_db::DbPassword;
use strata_engine::archiver::{self, BackupOptions, Epilogue, EpilogueOutput};
use strata_engine::progress::Progress;
use strata_engine::{wal, Operation, Repository};

use super::base::{BaseBackup, TAG};
use crate::config::{Config, PitrCluster};
use crate::{AppError, Result};

/// What `strata pg basebackup` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BaseBackupReport {
    pub snapshot_id: String,
    pub project: String,
    pub repository: String,
    #[serde(flatten)]
    pub backup: BaseBackup,
    pub start_wal: String,
    pub stop_wal: String,
    /// RFC 3339, UTC.
    pub start_time: String,
    pub stop_time: String,
    pub files: u64,
    pub bytes_total: u64,
    pub bytes_added: u64,
    pub duration_secs: f64,
}

/// The cluster of `project`'s `[pitr]` table.
pub fn cluster<'a>(cfg: &'a Config, project: &str) -> Result<&'a PitrCluster> {
    let p = cfg
        .projects
        .get(project)
        .ok_or_else(|| AppError::Invalid(format!("no project named {project:?} in the config")))?;
    p.pitr.as_ref().ok_or_else(|| {
        AppError::Invalid(format!(
            "project {project} names no PostgreSQL cluster: add [projects.{project}.pitr] with \
             data-dir (and url) to {}",
            cfg.file.display()
        ))
    })
}

/// The entries of a data directory a base backup leaves out (patterns of `--exclude`):
/// the contents of directories PostgreSQL empties or rebuilds at start, files of the
/// running server, and `backup_label`/`tablespace_map` (the backup writes its own).
fn excludes(data_dir: &Path) -> Result<Vec<String>> {
    let root = crate::restore::include_for_path(&data_dir.to_string_lossy())?;
    let mut out: Vec<String> = [
        "pg_wal",
        "pg_replslot",
        "pg_dynshmem",
        "pg_notify",
        "pg_serial",
        "pg_snapshots",
        "pg_stat_tmp",
        "pg_subtrans",
    ]
    .iter()
    .map(|d| format!("{root}/{d}/*"))
    .collect();
    for f in [
        "postmaster.pid",
        "postmaster.opts",
        "backup_label",
        "backup_label.old",
        "tablespace_map",
        "tablespace_map.old",
        "backup_manifest",
        "current_logfiles",
        "postgresql.auto.conf.tmp",
        "recovery.signal",
        "standby.signal",
    ] {
        out.push(format!("{root}/{f}"));
    }
    // At any depth: relation caches rebuilt at start, temporary files and directories.
    out.push("pg_internal.init".into());
    out.push("pgsql_tmp*".into());
    Ok(out)
}

/// The cluster's database password, when the config names one.
pub(crate) fn password(c: &PitrCluster) -> Result<Option<DbPassword>> {
    let Some(secret) = &c.password else {
        return Ok(None);
    };
    let pw = secret.read("database password")?;
    let pw = String::from_utf8(pw.into_bytes())
        .map_err(|_| AppError::Invalid("the database password is not UTF-8".into()))?;
    Ok(Some(DbPassword::new(pw)))
}

pub(crate) fn db_error(e: strata_db::DbError) -> AppError {
    AppError::Invalid(e.to_string())
}

/// Takes a base backup of `project`'s cluster into its primary repository.
pub fn basebackup(
    cfg: &Config,
    project: &str,
    progress: &dyn Progress,
) -> Result<BaseBackupReport> {
    let started = Instant::now();
    let c = cluster(cfg, project)?;
    let (repository, spec) = super::primary(cfg, project)?;
    let opened = super::open(cfg, spec, Operation::Backup)?;
    let opts = BackupOptions {
        project: Some(project.to_string()),
        ..BackupOptions::default()
    };
    let (result, b) = take(&opened.repo, project, c, &opts, progress)?;
    let s = &result.snapshot.summary;
    Ok(BaseBackupReport {
        snapshot_id: result.snapshot_id.to_hex(),
        project: project.to_string(),
        repository: repository.to_string(),
        start_wal: b.start_segment()?.to_string(),
        stop_wal: b.stop_segment()?.to_string(),
        start_time: crate::run::report::rfc3339(b.start_time_ns),
        stop_time: crate::run::report::rfc3339(b.stop_time_ns),
        files: s.files_new + s.files_changed + s.files_unchanged,
        bytes_total: s.bytes_total,
        bytes_added: s.bytes_added,
        duration_secs: started.elapsed().as_secs_f64(),
        backup: b,
    })
}

/// Takes a base backup of cluster `c` of `project` into `repo` (open for a backup), with
/// the labels of `opts` (its tags get [`TAG`]; its excludes and time are the backup's own).
/// Writes the snapshot only once the backup is complete; returns it and its facts.
pub fn take(
    repo: &Repository,
    project: &str,
    c: &PitrCluster,
    opts: &BackupOptions,
    progress: &dyn Progress,
) -> Result<(archiver::BackupResult, BaseBackup)> {
    let data_dir = std::fs::canonicalize(&c.data_dir).map_err(|e| {
        AppError::Invalid(format!(
            "the data directory {} cannot be read: {e}",
            c.data_dir.display()
        ))
    })?;
    let control = ControlFile::read(&data_dir).map_err(|e| {
        AppError::Invalid(format!(
            "{}: {e} (run as the cluster's owner or root)",
            data_dir.display()
        ))
    })?;
    refuse_tablespaces(&data_dir)?;
    let archive = wal::read_archive(repo)?;
    if let Some(id) = archive.system_id(project)? {
        if id != control.system_identifier {
            return Err(AppError::Invalid(format!(
                "the WAL archive of project {project} is of cluster {id}, but {} is of cluster \
                 {}: one project archives one cluster",
                data_dir.display(),
                control.system_identifier
            )));
        }
    }
    let mut session = repo
        .block_on(BackupSession::connect(&c.url, password(c)?))
        .map_err(db_error)?;
    let facts = session.facts().clone();
    if facts.system_id != control.system_identifier {
        return Err(AppError::Invalid(format!(
            "the server at {} is cluster {}, but the data directory {} is of cluster {}: \
             url and data-dir of [projects.{project}.pitr] name two clusters",
            crate::config::show::redact_url(&c.url),
            facts.system_id,
            data_dir.display(),
            control.system_identifier
        )));
    }
    if let Some(dd) = &facts.data_directory {
        if std::fs::canonicalize(dd).ok().as_deref() != Some(data_dir.as_path()) {
            return Err(AppError::Invalid(format!(
                "the server's data directory is {dd}, not {} (data-dir of \
                 [projects.{project}.pitr])",
                data_dir.display()
            )));
        }
    }
    if facts.in_recovery {
        return Err(AppError::Invalid(
            "the server is a standby: base backups are taken from the primary".into(),
        ));
    }
    if !matches!(facts.archive_mode.as_str(), "on" | "always") {
        return Err(AppError::Invalid(format!(
            "archive_mode is {} on the server: without WAL archiving a base backup cannot be \
             restored (set archive_mode = on and archive_command = 'strata pg wal-push \
             --project {project} %p', then restart PostgreSQL)",
            facts.archive_mode
        )));
    }
    // The files read must be the primary's own: a standby of the same cluster (same
    // system identifier, often the same path) lags behind the primary's backup start.
    if control.state != ControlFile::IN_PRODUCTION {
        return Err(AppError::Invalid(format!(
            "the data directory {} is {} (its pg_control), not a running primary's: a base \
             backup reads the primary's own data directory (is this a standby's, or is the \
             server down?)",
            data_dir.display(),
            control.state_name()
        )));
    }
    let label = format!("strata {project}");
    let start = repo.block_on(session.start(&label)).map_err(db_error)?;
    let mut tags = opts.tags.clone();
    if !tags.iter().any(|t| t == TAG) {
        tags.push(TAG.to_string());
    }
    // Built here, not over the caller's: no size limit, tag file or dry run of theirs may
    // leave out a relation file.
    let opts = BackupOptions {
        tags,
        hostname: opts.hostname.clone(),
        project: Some(project.to_string()),
        keep_until_ns: opts.keep_until_ns,
        excludes: excludes(&data_dir)?,
        ignore_vanished: true,
        // A file the previous base backup read in the clock tick of a write it missed
        // keeps its mtime: only files changed well before it are reused unread.
        reuse_margin: Some(Duration::from_secs(2)),
        time_ns: Some(start.time_ns),
        ..BackupOptions::default()
    };
    let stop_timeout = c.stop_timeout;
    let mut facts_out: Option<BaseBackup> = None;
    let result = {
        let session = &mut session;
        let facts_out = &mut facts_out;
        let data_dir_text = data_dir.to_string_lossy().into_owned();
        let epilogue = Epilogue {
            dir: data_dir.clone(),
            run: Box::new(move |errors| {
                if let Some(first) = errors.first() {
                    return Err(strata_engine::EngineError::Invalid(format!(
                        "{} entr{} of the data directory could not be read (the first: {}): the \
                         base backup would be incomplete, none is written",
                        errors.len(),
                        if errors.len() == 1 { "y" } else { "ies" },
                        first.message
                    )));
                }
                let stopped = repo
                    .block_on(session.stop())
                    .map_err(|e| strata_engine::EngineError::Invalid(e.to_string()))?;
                let timeline = label_timeline(&stopped.labelfile).ok_or_else(|| {
                    strata_engine::EngineError::Invalid(
                        "the backup_label the server returned names no START TIMELINE".into(),
                    )
                })?;
                let b = BaseBackup {
                    snapshot: Default::default(),
                    system_id: facts.system_id,
                    version_num: facts.version_num,
                    timeline,
                    start_lsn: start.lsn,
                    stop_lsn: stopped.lsn,
                    seg_size: facts.seg_size,
                    start_time_ns: start.time_ns,
                    stop_time_ns: stopped.time_ns,
                    data_dir: data_dir_text.clone(),
                };
                let stop_wal = b
                    .stop_segment()
                    .map_err(|e| strata_engine::EngineError::Invalid(e.to_string()))?
                    .to_string();
                wait_archived(repo, project, &stop_wal, stop_timeout)?;
                let mut files = vec![("backup_label".to_string(), stopped.labelfile.into_bytes())];
                if !stopped.spcmapfile.is_empty() {
                    files.push((
                        "tablespace_map".to_string(),
                        stopped.spcmapfile.into_bytes(),
                    ));
                }
                let meta = b.to_meta();
                *facts_out = Some(b);
                Ok(EpilogueOutput {
                    files,
                    source_meta: meta,
                })
            }),
        };
        archiver::backup_paths_with(
            repo,
            std::slice::from_ref(&data_dir),
            &opts,
            progress,
            Some(epilogue),
        )
    };
    let result = result?;
    let mut b = facts_out
        .ok_or_else(|| AppError::Invalid("the base backup ended without its stop facts".into()))?;
    b.snapshot = result.snapshot_id;
    Ok((result, b))
}

/// Refuses a cluster with tablespaces: their files live outside the data directory, and
/// this base backup reads only the data directory.
fn refuse_tablespaces(data_dir: &Path) -> Result<()> {
    let dir = data_dir.join("pg_tblspc");
    let found: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(AppError::Invalid(format!("{}: {e}", dir.display()))),
    };
    if let Some(first) = found.first() {
        return Err(AppError::Invalid(format!(
            "the cluster has tablespaces ({} in {}): strata pg basebackup does not back up \
             tablespaces yet",
            first.display(),
            dir.display()
        )));
    }
    Ok(())
}

/// Waits until `segment` is in `project`'s WAL archive, re-reading it, for at most
/// `timeout`.
fn wait_archived(
    repo: &Repository,
    project: &str,
    segment: &str,
    timeout: Duration,
) -> strata_engine::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let archive = wal::read_archive(repo)?;
        if archive.find(project, segment)?.is_some() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(strata_engine::EngineError::Invalid(format!(
                "the base backup's stop segment {segment} did not reach the WAL archive of \
                 project {project} within {}: is archive_command 'strata pg wal-push \
                 --project {project} %p', and does it succeed (see pg_stat_archiver and the \
                 server log)? No base backup was written",
                humantime::format_duration(timeout)
            )));
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}
