//! Passwords from files, commands and prompts: the repository's (`--password-file`,
//! `--password-command`) and a database's (`--db-password-file`, `--db-password-command`).
//!
//! Rules that hold for both:
//! - A password is never shown. A command that fails is reported by its exit status and
//!   the end of what it wrote to standard error, never by its text, which may hold a
//!   password (`echo hunter2`).
//! - A command gets [`DEFAULT_TIMEOUT`] (or `STRATA_PASSWORD_COMMAND_TIMEOUT`) to answer;
//!   then it is killed, with everything it started, and the command fails: a cron job never
//!   hangs on a password. Run from a script (no terminal on standard input) a command gets
//!   a process group of its own, so that killing it reaches its children; on a terminal it
//!   stays in the foreground group, where it may prompt, and its standard error goes to the
//!   terminal.
//! - A password file that its group or others may read, or write, gets a warning, as ssh
//!   gives for keys; it is still used.
//! - A database password given in a URL on the command line can be read by every user of
//!   the machine (`ps`) while strata runs: it is used, with a warning naming the options
//!   that keep it off the command line.

use std::io::{IsTerminal, Read};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use strata_db::{Database, DbPassword};

use crate::Cli;

/// How long a password command may take unless `STRATA_PASSWORD_COMMAND_TIMEOUT` says
/// otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// The variable that sets the timeout: `90s`, `5m`, or a number of seconds.
pub const TIMEOUT_VAR: &str = "STRATA_PASSWORD_COMMAND_TIMEOUT";
/// The most a password command may print on standard output.
const STDOUT_MAX: usize = 64 * 1024;
/// How much of a failed command's standard error its error message carries (the end).
const STDERR_KEEP: usize = 2 * 1024;

/// The repository password, from a file, a command, or a prompt (twice when `confirm`).
pub fn password(cli: &Cli, confirm: bool) -> Result<Vec<u8>> {
    password_from(
        cli.password_file.as_deref(),
        cli.password_command.as_deref(),
        confirm,
    )
}

/// A repository password from `file` (first line), else `command`'s output, else a prompt.
pub fn password_from(file: Option<&Path>, command: Option<&str>, confirm: bool) -> Result<Vec<u8>> {
    if let Some(file) = file {
        return read_file(file, "password file");
    }
    if let Some(cmd) = command {
        return run_command(cmd, "password command");
    }
    if !std::io::stdin().is_terminal() {
        bail!("no password given: set STRATA_PASSWORD_FILE or STRATA_PASSWORD_COMMAND, or run on a terminal");
    }
    let pw = rpassword::prompt_password("repository password: ").context("reading password")?;
    if confirm {
        let again = rpassword::prompt_password("repeat password: ").context("reading password")?;
        if again != pw {
            bail!("the passwords do not match");
        }
    }
    Ok(pw.into_bytes())
}

/// `--db-password-file` and `--db-password-command`, for the commands that log in to a
/// database server.
#[derive(Debug, Clone, clap::Args)]
pub struct DbPasswordArgs {
    /// File holding the database password (first line), for PostgreSQL and MySQL URLs
    /// that carry none. Unlike a password in the URL, it is not visible in the process
    /// list. (Without it: PGPASSWORD or ~/.pgpass, MYSQL_PWD or ~/.my.cnf.)
    #[arg(
        long,
        value_name = "FILE",
        env = "STRATA_DB_PASSWORD_FILE",
        hide_env_values = true
    )]
    db_password_file: Option<PathBuf>,
    /// Shell command whose output is the database password (used when no
    /// --db-password-file is given).
    #[arg(
        long,
        value_name = "COMMAND",
        env = "STRATA_DB_PASSWORD_COMMAND",
        hide_env_values = true
    )]
    db_password_command: Option<String>,
}

impl DbPasswordArgs {
    /// Gives `db` (named on the command line by `flag`) its password: from
    /// --db-password-file or --db-password-command if given. A password in the URL itself
    /// is used with a warning; both at once are refused.
    pub fn apply(&self, db: &mut Database, flag: &str) -> Result<()> {
        let tool_sources = db.tool_password_sources().unwrap_or_default();
        let Some(server) = db.server_mut() else {
            return Ok(());
        };
        let in_url = server.password().is_some();
        let given = match (&self.db_password_file, &self.db_password_command) {
            (Some(file), _) => Some(read_file(file, "database password file")?),
            (None, Some(cmd)) => Some(run_command(cmd, "database password command")?),
            (None, None) => None,
        };
        match (in_url, given) {
            (true, Some(_)) => bail!(
                "the {flag} URL holds a password, and --db-password-file or \
                 --db-password-command gives one too: take it out of the URL"
            ),
            (true, None) => tracing::warn!(
                "the {flag} URL holds a password, which every user of this machine can read \
                 in the process list while strata runs; give it with --db-password-file or \
                 --db-password-command (STRATA_DB_PASSWORD_FILE, STRATA_DB_PASSWORD_COMMAND) \
                 instead, or in {}",
                tool_sources
            ),
            (false, Some(bytes)) => {
                let text = String::from_utf8(bytes)
                    .map_err(|_| anyhow::anyhow!("the database password is not UTF-8 text"))?;
                server.set_password(DbPassword::new(text));
            }
            (false, None) => {}
        }
        Ok(())
    }
}

fn strip_newline(mut s: Vec<u8>) -> Vec<u8> {
    if s.last() == Some(&b'\n') {
        s.pop();
        if s.last() == Some(&b'\r') {
            s.pop();
        }
    }
    s
}

/// The first line of a password file (`what` names it in messages). A file its group or
/// others may use gets a warning.
fn read_file(file: &Path, what: &str) -> Result<Vec<u8>> {
    let bytes =
        std::fs::read(file).with_context(|| format!("reading {what} {}", file.display()))?;
    warn_if_open(file, what);
    let first_line = bytes.split(|&b| b == b'\n').next().unwrap_or(&[]).to_vec();
    Ok(strip_newline(first_line))
}

/// Warns when a regular file's mode lets its group or others read (or write) it. Pipes
/// (`--password-file <(pass show x)`) and devices are left alone.
fn warn_if_open(file: &Path, what: &str) {
    let Ok(meta) = std::fs::metadata(file) else {
        return;
    };
    let mode = meta.permissions().mode() & 0o7777;
    if meta.is_file() && mode & 0o077 != 0 {
        tracing::warn!(
            "{what} {} is open to its group or others (mode {mode:04o}); restrict it to its \
             owner: chmod 600 {}",
            file.display(),
            file.display()
        );
    }
}

/// The timeout for password commands: [`TIMEOUT_VAR`] if set, else [`DEFAULT_TIMEOUT`].
fn command_timeout() -> Result<Duration> {
    match std::env::var(TIMEOUT_VAR) {
        Ok(v) if !v.trim().is_empty() => {
            parse_timeout(&v).map_err(|e| anyhow::anyhow!("{TIMEOUT_VAR}={v:?}: {e}"))
        }
        _ => Ok(DEFAULT_TIMEOUT),
    }
}

fn parse_timeout(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let d = match text.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => humantime::parse_duration(text)
            .map_err(|e| format!("{e}; write it as `90s`, `5m` or a number of seconds"))?,
    };
    if d.is_zero() {
        return Err("a timeout of zero would fail every password command".into());
    }
    Ok(d)
}

/// Runs `sh -c cmd` (`what` names it in messages, never the command's text) and returns
/// what it printed, without one final newline.
fn run_command(cmd: &str, what: &str) -> Result<Vec<u8>> {
    let timeout = command_timeout()?;
    run_command_within(cmd, what, timeout, !std::io::stdin().is_terminal())
}

/// [`run_command`] with its timeout given; `detached`: in a process group of its own, its
/// standard error kept for the error message (else it goes to ours).
fn run_command_within(cmd: &str, what: &str, timeout: Duration, detached: bool) -> Result<Vec<u8>> {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    if detached {
        command.stderr(Stdio::piped()).process_group(0);
    } else {
        command.stderr(Stdio::inherit());
    }
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot start the {what} (sh)"))?;
    let deadline = Instant::now() + timeout;
    let stdout = child.stdout.take().expect("stdout is piped");
    let stdout = read_bounded(stdout, STDOUT_MAX + 1, false);
    let stderr = child
        .stderr
        .take()
        .map(|e| read_bounded(e, STDERR_KEEP, true));
    let kill = |child: &mut std::process::Child| {
        if detached {
            // The group is the child's pid: it leads it.
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = child.kill();
        let _ = child.wait();
    };
    let timed_out = || {
        anyhow::anyhow!(
            "the {what} did not finish within {} and was killed; if it needs longer, set \
             {TIMEOUT_VAR} (e.g. {TIMEOUT_VAR}=5m)",
            humantime::format_duration(timeout)
        )
    };
    // Wait for the exit, polling: the child is reaped here and nowhere else, so a kill can
    // never reach a recycled pid.
    let mut pause = Duration::from_millis(1);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                kill(&mut child);
                return Err(timed_out());
            }
            Ok(None) => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Err(e) => {
                kill(&mut child);
                return Err(anyhow::Error::new(e).context(format!("waiting for the {what}")));
            }
        }
    };
    // What it started may still hold its output open: that, too, ends at the deadline.
    let left = deadline.saturating_duration_since(Instant::now());
    let Ok(out) = stdout.recv_timeout(left) else {
        kill(&mut child);
        return Err(timed_out());
    };
    let said = match &stderr {
        Some(rx) => rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_default(),
        None => Vec::new(),
    };
    if !status.success() {
        let how = match (
            status.code(),
            std::os::unix::process::ExitStatusExt::signal(&status),
        ) {
            (Some(code), _) => format!("exit status {code}"),
            (None, Some(sig)) => format!("killed by signal {sig}"),
            (None, None) => status.to_string(),
        };
        let said = stderr_text(&said);
        if said.is_empty() {
            bail!("the {what} failed ({how})");
        }
        bail!("the {what} failed ({how}): {said}");
    }
    if out.len() > STDOUT_MAX {
        bail!(
            "the {what} printed more than {} KiB: that is no password",
            STDOUT_MAX / 1024
        );
    }
    Ok(strip_newline(out))
}

/// Reads `from` to its end on a thread of its own, keeping at most `keep` bytes (the first,
/// or the last with `tail`); the result arrives on the channel.
fn read_bounded(
    mut from: impl Read + Send + 'static,
    keep: usize,
    tail: bool,
) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    kept.extend_from_slice(&buf[..n]);
                    if kept.len() > keep {
                        if tail {
                            kept.drain(..kept.len() - keep);
                        } else {
                            kept.truncate(keep);
                        }
                    }
                }
            }
        }
        let _ = tx.send(kept);
    });
    rx
}

/// A command's standard error as one printable line.
fn stderr_text(bytes: &[u8]) -> String {
    let lines: Vec<String> = String::from_utf8_lossy(bytes)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| crate::output::printable(l.as_bytes()))
        .collect();
    lines.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: Duration = Duration::from_secs(600);

    fn err_of(cmd: &str, timeout: Duration) -> String {
        format!(
            "{:#}",
            run_command_within(cmd, "password command", timeout, true).unwrap_err()
        )
    }

    #[test]
    fn a_command_prints_the_password() {
        let pw = run_command_within("printf 'pw with spaces\\n'", "x", LONG, true).unwrap();
        assert_eq!(pw, b"pw with spaces");
    }

    /// Regression: the error repeated the command (`password command "echo s3cret; false"
    /// failed`), which may hold the password itself.
    #[test]
    fn a_failing_command_is_reported_by_status_and_stderr_never_by_its_text() {
        let err = err_of(
            "echo s3cret >/dev/null; echo 'no such key' >&2; exit 3",
            LONG,
        );
        assert!(!err.contains("s3cret"), "{err}");
        assert!(err.contains("exit status 3"), "{err}");
        assert!(err.contains("no such key"), "{err}");
        // Its standard error is bounded: the end is kept.
        let err = err_of(
            "yes 'noise' | head -c 1000000 >&2; echo last >&2; exit 1",
            LONG,
        );
        assert!(err.len() < 2 * STDERR_KEEP, "{} bytes", err.len());
        assert!(err.ends_with("last"), "{err}");
    }

    /// Regression: a command that never returned hung strata for good.
    #[test]
    fn a_command_that_never_returns_is_killed_with_its_children() {
        let dir = tempfile::tempdir().unwrap();
        let pids = dir.path().join("pids");
        let cmd = format!("sleep 600 & echo $! > {}; wait", pids.display());
        let err = err_of(&cmd, Duration::from_secs(2));
        assert!(err.contains("did not finish within 2s"), "{err}");
        assert!(err.contains(TIMEOUT_VAR), "{err}");
        assert!(!err.contains("sleep"), "{err}");
        let pid: i32 = std::fs::read_to_string(&pids)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // Killed with its group; its parent (our child) is gone, so init reaps it.
        let gone = (0..200).any(|_| {
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat"));
            let dead = match state {
                Err(_) => true,
                Ok(s) => s
                    .rsplit(')')
                    .next()
                    .is_some_and(|r| r.trim_start().starts_with('Z')),
            };
            if !dead {
                std::thread::sleep(Duration::from_millis(50));
            }
            dead
        });
        assert!(gone, "the command's child {pid} is still running");
    }

    #[test]
    fn a_background_child_holding_the_output_does_not_hang_it() {
        let err = err_of("sleep 600 & echo pw", Duration::from_millis(500));
        assert!(err.contains("did not finish"), "{err}");
    }

    #[test]
    fn timeouts_read_as_durations_or_seconds() {
        assert_eq!(parse_timeout("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_timeout("5m"), Ok(Duration::from_secs(300)));
        assert!(parse_timeout("0").is_err());
        assert!(parse_timeout("soon").is_err());
    }
}
