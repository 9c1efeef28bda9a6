//! The restore test of a project's cluster: proof, on a schedule, that it can be brought
//! back to a recent moment, and how long that takes (the recovery time objective).
//!
//! 1. If the live server answers (the `[pitr]` url), a transaction is committed there and
//!    the WAL switched, and the test waits until that segment is archived: recovery to a
//!    time stops at the first commit after it, so the archive must hold one (on an idle
//!    server it would otherwise fail for want of one, not of a problem).
//! 2. The newest base backup that ended before "now minus `ago`" is restored into a new
//!    directory under the system's temporary directory, recovered to that time with
//!    `pause` (read-only, no new timeline, so nothing is ever archived from it), and started
//!    on a socket in that directory: [`super::restore::restore`], which checks the archive
//!    first and reads the server's log for where recovery stopped. Its duration is the RTO.
//! 3. Every table of every database is counted (exact `count(*)`), read-only.
//! 4. The server is stopped and the directory removed (kept with `keep`, to look at).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use strata_engine::progress::Progress;

use super::restore::{self, PitrRestoreOptions, RecoveryAction, RecoveryTarget, TimelineChoice};
use crate::config::Config;
use crate::{AppError, Result};

/// The table rows of one database of the restored cluster.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DatabaseRows {
    pub database: String,
    /// (schema.table, rows), sorted.
    pub tables: Vec<(String, u64)>,
}

/// What a PITR restore test found (`strata pg restore-test --json`, and the catalog's
/// restore-test record).
#[derive(Debug, Clone, serde::Serialize)]
pub struct PitrTestReport {
    pub project: String,
    pub passed: bool,
    /// Why it failed (None when it passed).
    pub error: Option<String>,
    /// RFC 3339 UTC: the time recovered to.
    pub target_time: String,
    pub base_snapshot: Option<String>,
    pub timeline: Option<u32>,
    /// Where recovery stopped, as the server logged it.
    pub recovery_stop: Option<String>,
    /// From the start of the restore to the server open at the target: the RTO.
    pub rto_secs: Option<f64>,
    pub databases: Vec<DatabaseRows>,
    /// Whether a fresh segment was archived first (the live server answered).
    pub switched: bool,
    /// The restored directory, when kept.
    pub kept: Option<String>,
}

/// Runs the restore test of `project`'s cluster, to now minus `ago` (see the module docs).
/// An `Err` is a test that could not run (no such project, no cluster); a test that ran
/// and failed is a report with `passed: false`.
pub fn restore_test(
    cfg: &Config,
    project: &str,
    ago: Duration,
    keep: bool,
    progress: &dyn Progress,
    say: &dyn Fn(&str),
) -> Result<PitrTestReport> {
    let cluster = super::basebackup::cluster(cfg, project)?;
    let strata_bin = std::env::current_exe()
        .and_then(std::fs::canonicalize)
        .map_err(|e| AppError::Invalid(format!("where this strata binary is: {e}")))?;
    let mut report = PitrTestReport {
        project: project.to_string(),
        passed: false,
        error: None,
        target_time: String::new(),
        base_snapshot: None,
        timeline: None,
        recovery_stop: None,
        rto_secs: None,
        databases: Vec::new(),
        switched: false,
        kept: None,
    };
    // The target is fixed first: the check below may wait, and its commit must come after.
    let now = Timestamp::now();
    // 1. A commit after the target, archived.
    match super::check::check(cfg, project, cluster.stop_timeout) {
        Ok(c) if c.archived => report.switched = true,
        Ok(c) => say(&format!(
            "warning: no fresh segment archived first ({}); the archive must already hold a \
             commit after the target",
            c.problem.as_deref().unwrap_or("it did not arrive")
        )),
        Err(e) => say(&format!(
            "warning: no fresh segment archived first ({e}); the archive must already hold a \
             commit after the target"
        )),
    }
    let target = now
        .checked_sub(jiff::SignedDuration::try_from(ago).unwrap_or_default())
        .map_err(|e| AppError::Invalid(format!("now minus {ago:?}: {e}")))?;
    report.target_time = target.to_string();
    // 2. Restore and recover into a new directory others may pass through (the server
    // runs as the data directory's owner) but not list.
    let scratch = tempfile::Builder::new()
        .prefix("strata-pitr-test-")
        .tempdir()
        .map_err(|e| AppError::Invalid(format!("a scratch directory: {e}")))?;
    std::fs::set_permissions(scratch.path(), std::fs::Permissions::from_mode(0o711))
        .map_err(|e| AppError::Invalid(format!("{}: {e}", scratch.path().display())))?;
    let dir = scratch.path().join("data");
    let port = free_port();
    let opts = PitrRestoreOptions {
        project: project.to_string(),
        target: RecoveryTarget::Time(target),
        timeline: TimelineChoice::Latest,
        action: RecoveryAction::Pause,
        base: None,
        dir: dir.clone(),
        start: Some(port),
        strata_bin,
        archive: false,
        force: false,
    };
    let began = Instant::now();
    let restored = restore::restore(cfg, &opts, progress, say, &mut |_| {});
    let rto = began.elapsed().as_secs_f64();
    let outcome = match restored {
        Ok(r) => {
            report.base_snapshot = Some(r.base_snapshot);
            report.timeline = Some(r.timeline);
            report.recovery_stop = r.recovery_stop;
            report.rto_secs = Some(rto);
            say(&format!(
                "recovered to {} in {rto:.1} s",
                report.target_time
            ));
            // 3. Every table counted.
            count_rows(&dir, port).map(|dbs| report.databases = dbs)
        }
        Err(e) => Err(e),
    };
    // 4. Stopped (whatever happened), and removed unless kept.
    let mut keep = keep;
    if dir.join("postmaster.pid").exists() {
        if let Err(e) = stop(&dir) {
            // Never remove a directory a server may still run in: kept, and said.
            say(&format!(
                "warning: the restored server did not stop ({e}); its directory {} is kept",
                dir.display()
            ));
            keep = true;
        }
    }
    if keep {
        report.kept = Some(scratch.keep().display().to_string());
    }
    match outcome {
        Ok(()) => report.passed = true,
        Err(e) => report.error = Some(e.to_string()),
    }
    Ok(report)
}

/// A TCP port nobody listens on now (the restored server listens on a socket only, named
/// by its port: any unused number would do).
fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(54329)
}

/// `tool` of the data directory's PostgreSQL version (Debian's layout), run as the data
/// directory's owner (through setpriv when this runs as root).
fn pg_tool(dir: &Path, tool: &str) -> Result<Command> {
    let version = std::fs::read_to_string(dir.join("PG_VERSION"))
        .map_err(|e| AppError::Invalid(format!("{}: {e}", dir.join("PG_VERSION").display())))?;
    let major = version.trim();
    if major.is_empty() || !major.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(AppError::Invalid(format!("PG_VERSION says {major:?}")));
    }
    let bin = PathBuf::from(format!("/usr/lib/postgresql/{major}/bin/{tool}"));
    let md =
        std::fs::metadata(dir).map_err(|e| AppError::Invalid(format!("{}: {e}", dir.display())))?;
    let mut cmd = if nix::unistd::geteuid().is_root() {
        let mut c = Command::new("setpriv");
        c.arg(format!("--reuid={}", md.uid()))
            .arg(format!("--regid={}", md.gid()))
            .args(["--clear-groups", "--"])
            .arg(&bin);
        c
    } else {
        Command::new(&bin)
    };
    cmd.current_dir(dir).stdin(Stdio::null());
    Ok(cmd)
}

/// Runs `sql` in `database` of the server on the socket in `dir`, as the owner; its rows
/// (unaligned, `|`-separated).
fn psql(dir: &Path, port: u16, database: &str, sql: &str) -> Result<String> {
    let user = std::fs::metadata(dir)
        .ok()
        .and_then(|md| nix::unistd::User::from_uid(md.uid().into()).ok().flatten())
        .map(|u| u.name)
        .unwrap_or_else(|| "postgres".to_string());
    let out = pg_tool(dir, "psql")?
        .args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-h"])
        .arg(dir)
        .args([
            "-p",
            &port.to_string(),
            "-U",
            &user,
            "-d",
            // As a connection string, so that no database name is taken for one.
            &format!(
                "dbname='{}'",
                database.replace('\\', "\\\\").replace('\'', "\\'")
            ),
            "-c",
            sql,
        ])
        .output()
        .map_err(|e| AppError::Invalid(format!("psql cannot be run: {e}")))?;
    if !out.status.success() {
        return Err(AppError::Invalid(format!(
            "a probe query in {database} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Exact row counts of every table of every database that takes connections.
fn count_rows(dir: &Path, port: u16) -> Result<Vec<DatabaseRows>> {
    let names = psql(
        dir,
        port,
        "postgres",
        // A name with a line break could not be told apart in psql's output: left out.
        "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate \
         AND datname !~ '[\\n\\r]' ORDER BY 1",
    )?;
    let mut out = Vec::new();
    for db in names.lines().map(str::trim).filter(|l| !l.is_empty()) {
        // One query per database: each table's count(*) through query_to_xml (read-only).
        let rows = psql(
            dir,
            port,
            db,
            "SELECT format('%s.%s', table_schema, table_name), \
             (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I', \
             table_schema, table_name), false, true, '')))[1]::text \
             FROM information_schema.tables WHERE table_type = 'BASE TABLE' \
             AND table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
        )?;
        let mut tables = Vec::new();
        for line in rows.lines().filter(|l| !l.trim().is_empty()) {
            let (name, count) = line.rsplit_once('|').ok_or_else(|| {
                AppError::Invalid(format!("an unexpected probe row in {db}: {line:?}"))
            })?;
            let count = count.trim().parse().map_err(|_| {
                AppError::Invalid(format!("an unexpected row count in {db}: {line:?}"))
            })?;
            tables.push((name.to_string(), count));
        }
        out.push(DatabaseRows {
            database: db.to_string(),
            tables,
        });
    }
    Ok(out)
}

/// Stops the restored server (fast: it is read-only, in recovery).
fn stop(dir: &Path) -> Result<()> {
    let out = pg_tool(dir, "pg_ctl")?
        .args(["stop", "-m", "fast", "-w", "-t", "120", "-D"])
        .arg(dir)
        .output()
        .map_err(|e| AppError::Invalid(format!("pg_ctl cannot be run: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(AppError::Invalid(format!(
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

impl PitrTestReport {
    /// The catalog record's parts: ok, error, body (a restore-test record, as a database's).
    pub fn record_parts(&self) -> (bool, Option<String>, crate::ops::RecordBody) {
        (
            self.passed,
            self.error.clone(),
            crate::ops::RecordBody::RestoreTest {
                snapshot_id: self.base_snapshot.clone().unwrap_or_default(),
                report: serde_json::to_value(self).unwrap_or_default(),
            },
        )
    }

    /// Records it in the catalog of `cfg`'s state dir, for `project`'s primary (best
    /// effort: a test that ran is not failed by its record).
    pub fn record(&self, cfg: &Config, user: Option<String>) {
        let (ok, error, body) = self.record_parts();
        let repository = cfg
            .projects
            .get(&self.project)
            .map(|p| p.primary().to_string());
        let record = crate::ops::Record {
            time_ns: strata_engine::now_ns(),
            project: Some(self.project.clone()),
            repository,
            run_id: None,
            ok,
            error,
            user,
            body,
        };
        crate::catalog::record_best_effort(&cfg.state_dir, &record);
    }
}
