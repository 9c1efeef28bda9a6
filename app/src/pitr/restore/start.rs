//! `strata pg restore --start`: starts the restored cluster with its version's `pg_ctl`
//! (as the data directory's owner), on a socket in the data directory and no TCP, logging
//! to [`LOG_FILE`] there, and reads that log until recovery ended. The log is the only
//! witness of where recovery stopped: "recovery ended before configured recovery target
//! was reached", a FATAL or a PANIC fails the restore with those lines quoted.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{shell_word, RecoveryAction};
use crate::{AppError, Result};

/// The server's log, in the restored data directory.
pub const LOG_FILE: &str = "strata-recovery.log";

/// How long a server that has not written its pid file yet counts as starting.
const START_GRACE: Duration = Duration::from_secs(60);

/// How recovery ended, as its log says.
#[derive(Debug, Clone, Default)]
pub struct Started {
    /// Where it stopped ("recovery stopping before commit of transaction 740, time …"),
    /// or, without a target, the last transaction replayed.
    pub recovery_stop: Option<String>,
    /// The timeline a promotion chose.
    pub new_timeline: Option<u32>,
    /// Paused at the target (`--action pause`), or shut down (`shutdown`).
    pub paused: bool,
    pub shut_down: bool,
    pub log: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Ready,
    Paused,
    ShutDown,
}

/// What the log said so far.
#[derive(Debug, Default)]
struct LogState {
    stop: Option<String>,
    last_transaction: Option<String>,
    redo_done: Option<String>,
    new_timeline: Option<u32>,
    failures: Vec<String>,
    end: Option<End>,
    last_restored: Option<String>,
}

/// The message of a log line: what follows its level (`LOG:  `, `FATAL:  `).
fn message(line: &str) -> &str {
    for level in ["LOG:  ", "FATAL:  ", "PANIC:  ", "WARNING:  ", "ERROR:  "] {
        if let Some(i) = line.find(level) {
            return line[i + level.len()..].trim_end();
        }
    }
    line.trim_end()
}

impl LogState {
    fn feed(&mut self, line: &str) {
        let msg = message(line);
        if line.contains("FATAL:")
            || line.contains("PANIC:")
            || msg.contains("recovery ended before configured recovery target was reached")
        {
            self.failures.push(line.trim_end().to_string());
        } else if msg.starts_with("recovery stopping ") {
            self.stop = Some(msg.to_string());
        } else if msg.starts_with("last completed transaction was at log time") {
            self.last_transaction = Some(msg.to_string());
        } else if msg.starts_with("redo done at") {
            self.redo_done = Some(msg.to_string());
        } else if let Some(n) = msg.strip_prefix("selected new timeline ID: ") {
            self.new_timeline = n.trim().parse().ok();
        } else if msg.starts_with("restored log file") {
            self.last_restored = Some(msg.to_string());
        } else if msg == "database system is ready to accept connections" {
            self.end = Some(End::Ready);
        } else if msg == "pausing at the end of recovery" {
            self.end = Some(End::Paused);
        } else if msg == "shutdown at recovery target" {
            self.end = Some(End::ShutDown);
        }
    }

    fn started(&self, log: &Path) -> Started {
        Started {
            recovery_stop: self
                .stop
                .clone()
                .or_else(|| self.last_transaction.clone())
                .or_else(|| self.redo_done.clone()),
            new_timeline: self.new_timeline,
            paused: self.end == Some(End::Paused),
            shut_down: self.end == Some(End::ShutDown),
            log: log.to_path_buf(),
        }
    }

    fn failed(&self, log: &Path) -> AppError {
        AppError::Invalid(format!(
            "recovery FAILED; the server logged:\n  {}\n(the whole log: {})",
            self.failures.join("\n  "),
            log.display()
        ))
    }
}

/// The `pg_ctl` of the data directory's major version (Debian's layout).
fn pg_ctl_for(dir: &Path) -> Result<PathBuf> {
    let file = dir.join("PG_VERSION");
    let version = std::fs::read_to_string(&file)
        .map_err(|e| AppError::Invalid(format!("{}: {e}", file.display())))?;
    let major = version.trim();
    if major.is_empty()
        || major.len() > 8
        || !major.bytes().all(|b| b.is_ascii_digit() || b == b'.')
    {
        return Err(AppError::Invalid(format!(
            "{} says {:?}, not a PostgreSQL version",
            file.display(),
            version.chars().take(20).collect::<String>()
        )));
    }
    let pg_ctl = PathBuf::from(format!("/usr/lib/postgresql/{major}/bin/pg_ctl"));
    if !pg_ctl.is_file() {
        return Err(AppError::Invalid(format!(
            "the restored cluster is of PostgreSQL {major}, but {} does not exist: install \
             postgresql-{major}, or start it yourself (recovery.signal and the settings are \
             in place)",
            pg_ctl.display()
        )));
    }
    Ok(pg_ctl)
}

/// Starts the cluster in `dir` on `port` and waits until recovery ended (see the module
/// docs); `has_target`: a target time was set.
pub fn start_and_wait(
    dir: &Path,
    port: u16,
    action: RecoveryAction,
    has_target: bool,
    say: &dyn Fn(&str),
) -> Result<Started> {
    let pg_ctl = pg_ctl_for(dir)?;
    let md =
        std::fs::metadata(dir).map_err(|e| AppError::Invalid(format!("{}: {e}", dir.display())))?;
    let dir_text = dir.to_str().filter(|d| !d.contains('"')).ok_or_else(|| {
        AppError::Invalid(format!(
            "{} cannot be a socket directory (not UTF-8, or holds a '\"')",
            dir.display()
        ))
    })?;
    let log = dir.join(LOG_FILE);
    let mut settings = vec![
        format!("port={port}"),
        "listen_addresses=".to_string(),
        format!("unix_socket_directories=\"{dir_text}\""),
        "logging_collector=off".to_string(),
        // Read-only queries while paused at the target; and never the original's pid
        // file (a setting of postgresql.conf that would name the running server's).
        "hot_standby=on".to_string(),
        "external_pid_file=".to_string(),
    ];
    settings.extend(config_files(dir, &md)?);
    let options = settings
        .iter()
        .map(|o| format!("-c {}", shell_word(o)))
        .collect::<Vec<_>>()
        .join(" ");
    let euid = nix::unistd::geteuid();
    let mut cmd = if euid.is_root() {
        if md.uid() == 0 {
            return Err(AppError::Invalid(format!(
                "{} is owned by root, and PostgreSQL never runs as root: chown it to the \
                 cluster's user, then start it",
                dir.display()
            )));
        }
        let mut c = Command::new("setpriv");
        c.arg(format!("--reuid={}", md.uid()))
            .arg(format!("--regid={}", md.gid()))
            .args(["--clear-groups", "--"])
            .arg(&pg_ctl);
        c
    } else {
        if md.uid() != euid.as_raw() {
            return Err(AppError::Invalid(format!(
                "{} is owned by uid {}, not by this user: start it as its owner (or run this \
                 as root)",
                dir.display(),
                md.uid()
            )));
        }
        Command::new(&pg_ctl)
    };
    cmd.args(["start", "-W", "-D"])
        .arg(dir)
        .arg("-l")
        .arg(&log)
        .arg("-o")
        .arg(&options)
        .current_dir(dir)
        .stdin(Stdio::null());
    say(&format!(
        "starting the restored cluster on port {port} (socket in {dir_text}), log in {}",
        log.display()
    ));
    let out = cmd
        .output()
        .map_err(|e| AppError::Invalid(format!("{} cannot be run: {e}", pg_ctl.display())))?;
    if !out.status.success() {
        return Err(AppError::Invalid(format!(
            "pg_ctl start failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let mut state = LogState::default();
    let mut offset = 0usize;
    let began = Instant::now();
    let mut noted = Instant::now();
    let mut seen_pid = false;
    let mut read_log = |state: &mut LogState| {
        let Ok(bytes) = std::fs::read(&log) else {
            return;
        };
        let Some(end) = bytes
            .get(offset..)
            .and_then(|b| b.iter().rposition(|c| *c == b'\n'))
        else {
            return;
        };
        let chunk = &bytes[offset..offset + end + 1];
        offset += end + 1;
        for line in String::from_utf8_lossy(chunk).lines() {
            state.feed(line);
        }
    };
    loop {
        read_log(&mut state);
        if !state.failures.is_empty() {
            return Err(state.failed(&log));
        }
        match state.end {
            Some(End::Ready) | Some(End::Paused) => break,
            Some(End::ShutDown) => {
                wait_gone(dir);
                break;
            }
            None => {}
        }
        if !running(dir, began, &mut seen_pid) {
            // Its last words may have come after the read above.
            read_log(&mut state);
            if !state.failures.is_empty() {
                return Err(state.failed(&log));
            }
            if state.end.is_some() {
                continue;
            }
            return Err(AppError::Invalid(format!(
                "the restored server stopped before recovery ended: see {}",
                log.display()
            )));
        }
        if noted.elapsed() > Duration::from_secs(30) {
            noted = Instant::now();
            say(&format!(
                "recovering ({}s): {}",
                began.elapsed().as_secs(),
                state
                    .last_restored
                    .as_deref()
                    .unwrap_or("no WAL restored yet")
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let started = state.started(&log);
    if has_target && started.recovery_stop.is_none() {
        say("warning: the log says nothing of where recovery stopped");
    }
    match state.end {
        Some(End::Paused) => say(&format!(
            "recovery paused at the target ({}); the server runs read-only: `SELECT \
             pg_wal_replay_resume()` promotes it",
            action.as_str()
        )),
        Some(End::ShutDown) => say("recovery reached the target; the server shut down"),
        _ => say(&format!(
            "recovery ended{}; the server runs (stop it with pg_ctl stop -D {dir_text})",
            started
                .new_timeline
                .map(|t| format!(", new timeline {t}"))
                .unwrap_or_default()
        )),
    }
    Ok(started)
}

/// Makes a data directory whose configuration lived elsewhere (Debian keeps
/// postgresql.conf and pg_hba.conf in /etc/postgresql) startable: an empty postgresql.conf
/// (the defaults, and postgresql.auto.conf's settings, apply) and, without a pg_hba.conf,
/// one of its own letting the owner in on the socket (`peer`), named by the returned
/// `hba_file` setting. Files written are the owner's (`md`).
fn config_files(dir: &Path, md: &std::fs::Metadata) -> Result<Vec<String>> {
    let write = |path: &Path, text: &str| -> Result<()> {
        std::fs::write(path, text)
            .map_err(|e| AppError::Invalid(format!("{}: {e}", path.display())))?;
        if nix::unistd::geteuid().is_root() {
            std::os::unix::fs::chown(path, Some(md.uid()), Some(md.gid()))
                .map_err(|e| AppError::Invalid(format!("{}: {e}", path.display())))?;
        }
        Ok(())
    };
    let conf = dir.join("postgresql.conf");
    if !conf.exists() {
        write(
            &conf,
            "# Written by strata pg restore: the backed-up cluster kept its configuration \
             outside its data directory.\n",
        )?;
    }
    let mut out = Vec::new();
    if !dir.join("pg_hba.conf").exists() {
        let hba = dir.join("strata_hba.conf");
        write(
            &hba,
            "# Written by strata pg restore: the owner, on the socket.\nlocal all all peer\n",
        )?;
        let text = hba
            .to_str()
            .ok_or_else(|| AppError::Invalid(format!("{} is not UTF-8", hba.display())))?;
        out.push(format!("hba_file={text}"));
    }
    Ok(out)
}

/// The postmaster's pid, from `postmaster.pid`.
fn postmaster_pid(dir: &Path) -> Option<i32> {
    let text = std::fs::read_to_string(dir.join("postmaster.pid")).ok()?;
    text.lines().next()?.trim().parse().ok().filter(|p| *p > 0)
}

/// Whether the server still runs: its pid file names a live process, or, before it ever
/// did, it may still be starting (within [`START_GRACE`] of `began`). `seen` remembers a
/// pid file once read: its removal then means the server has gone.
fn running(dir: &Path, began: Instant, seen: &mut bool) -> bool {
    match postmaster_pid(dir) {
        Some(pid) => {
            *seen = true;
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
        }
        None => !*seen && began.elapsed() < START_GRACE,
    }
}

/// Waits (a minute at most) until a server that shuts down has gone.
fn wait_gone(dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline && postmaster_pid(dir).is_some() {
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(log: &str) -> LogState {
        let mut s = LogState::default();
        for line in log.lines() {
            s.feed(line);
        }
        s
    }

    #[test]
    fn the_log_says_where_recovery_stopped() {
        let s = scan(
            "2026-12-07 11:00:00.1 UTC [9] LOG:  starting point-in-time recovery to 2026-12-07 10:59:58+00\n\
             2026-12-07 11:00:00.2 UTC [9] LOG:  restored log file \"000000010000000000000003\" from archive\n\
             2026-12-07 11:00:00.3 UTC [9] LOG:  recovery stopping before commit of transaction 741, time 2026-12-07 10:59:59.5+00\n\
             2026-12-07 11:00:00.3 UTC [9] LOG:  redo done at 0/3000148 system usage: CPU: user: 0.00 s\n\
             2026-12-07 11:00:00.4 UTC [9] LOG:  selected new timeline ID: 2\n\
             2026-12-07 11:00:00.5 UTC [8] LOG:  database system is ready to accept connections\n",
        );
        assert!(s.failures.is_empty());
        assert_eq!(s.end, Some(End::Ready));
        let st = s.started(Path::new("/l"));
        assert_eq!(
            st.recovery_stop.as_deref(),
            Some(
                "recovery stopping before commit of transaction 741, time 2026-12-07 10:59:59.5+00"
            )
        );
        assert_eq!(st.new_timeline, Some(2));
        // Read-only connections during recovery are not its end.
        let s = scan("x LOG:  database system is ready to accept read-only connections\n");
        assert_eq!(s.end, None);
        let s = scan("x LOG:  recovery stopping after commit of transaction 5, time t\nx LOG:  pausing at the end of recovery\n");
        assert_eq!(s.end, Some(End::Paused));
    }

    #[test]
    fn an_early_end_or_a_fatal_error_is_a_failure() {
        let s = scan(
            "x LOG:  redo done at 0/3000148\n\
             x FATAL:  recovery ended before configured recovery target was reached\n\
             x LOG:  startup process (PID 9) exited with exit code 1\n",
        );
        assert_eq!(s.failures.len(), 1);
        let e = s.failed(Path::new("/d/log")).to_string();
        assert!(
            e.contains("recovery ended before configured recovery target was reached"),
            "{e}"
        );
        assert!(e.contains("/d/log"), "{e}");
        let s = scan("x PANIC:  could not locate a valid checkpoint record\n");
        assert_eq!(s.failures.len(), 1);
    }
}
