//! Secrets named, not inlined: a password (of a repository, a copy's destination, a new
//! key, a database) comes from a file, a command or an environment variable
//! ([`SecretRef`]), and is read when it is needed.
//!
//! Rules for every secret:
//! - A secret is never shown. A command that fails is reported by its exit status and the
//!   end of what it wrote to standard error, never by its text, which may hold a password
//!   (`echo hunter2`).
//! - A command gets [`DEFAULT_TIMEOUT`] (or `STRATA_PASSWORD_COMMAND_TIMEOUT`) to answer;
//!   then it is killed, with everything it started, and reading fails: a cron job never
//!   hangs on a password. Run from a script (no terminal on standard input) a command gets
//!   a process group of its own, so that killing it reaches its children; on a terminal it
//!   stays in the foreground group, where it may prompt, and its standard error goes to the
//!   terminal.
//! - A file that its group or others may read, or write, gets a warning, as ssh gives for
//!   keys; it is still used. Only its first line is the secret.
//! - An empty repository password (an empty file, a command that prints nothing, Enter at
//!   a prompt) is refused ([`check_password`]) unless the user asked for none in so many
//!   words ([`EmptyPassword::Allow`], the command line's `--insecure-no-password`): a
//!   repository "protected" by an empty password is readable by whoever can read its
//!   files, and one made by accident is not noticed until it is too late.

use std::io::{IsTerminal, Read};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::{AppError, Result};

/// How long a password command may take unless `STRATA_PASSWORD_COMMAND_TIMEOUT` says
/// otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// The variable that sets the timeout: `90s`, `5m`, or a number of seconds.
pub const TIMEOUT_VAR: &str = "STRATA_PASSWORD_COMMAND_TIMEOUT";
/// The most a password command may print on standard output.
const STDOUT_MAX: usize = 64 * 1024;
/// How much of a failed command's standard error its error message carries (the end).
const STDERR_KEEP: usize = 2 * 1024;

/// Where a secret comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    /// The first line of a file.
    File(PathBuf),
    /// What `sh -c COMMAND` prints (without one final newline).
    Command(String),
    /// The value of an environment variable.
    Env(String),
    /// Written into the config file itself (a Slack `webhook-url`, a webhook `secret`):
    /// allowed where the config contract allows it, never shown (`Debug` and
    /// `strata config show` redact it).
    Inline(Secret),
}

/// A secret's bytes. Its `Debug` shows nothing of them.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Secret {
    pub fn new(bytes: Vec<u8>) -> Self {
        Secret(bytes)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

/// Whether an empty password is acceptable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum EmptyPassword {
    /// An empty password is an error (the default).
    #[default]
    Refuse,
    /// The user asked for no password (`--insecure-no-password`).
    Allow,
}

/// Refuses an empty password, read from `source` ("password file", "prompt",
/// "STRATA_PASSWORD variable"), unless `empty` allows it; `allow` names what would allow it
/// ("--insecure-no-password").
pub fn check_password(
    password: &[u8],
    source: &str,
    empty: EmptyPassword,
    allow: &str,
) -> Result<()> {
    if password.is_empty() && empty == EmptyPassword::Refuse {
        return Err(AppError::Secret(format!(
            "empty password (from the {source}): strata refuses empty passwords, since \
             anyone who can read the repository could then read its data; give a password, \
             or {allow} if you really want none"
        )));
    }
    Ok(())
}

impl SecretRef {
    /// Reads the secret; `what` names it in messages ("password file", "database password
    /// command").
    pub fn read(&self, what: &str) -> Result<Secret> {
        match self {
            SecretRef::File(file) => read_file(file, what).map(Secret),
            SecretRef::Command(cmd) => run_command(cmd, what).map(Secret),
            SecretRef::Env(var) => match std::env::var_os(var) {
                Some(v) => Ok(Secret(
                    std::os::unix::ffi::OsStrExt::as_bytes(v.as_os_str()).to_vec(),
                )),
                None => Err(AppError::Secret(format!(
                    "the {what} variable {var} is not set"
                ))),
            },
            SecretRef::Inline(secret) => Ok(secret.clone()),
        }
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
    let bytes = std::fs::read(file)
        .map_err(|e| AppError::Secret(format!("reading {what} {}: {e}", file.display())))?;
    warn_if_open(file, what);
    let mut first_line = bytes.split(|&b| b == b'\n').next().unwrap_or(&[]).to_vec();
    // A file written on Windows ends its lines with CR LF: the CR is not the password's.
    if first_line.last() == Some(&b'\r') {
        first_line.pop();
    }
    Ok(first_line)
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
            parse_timeout(&v).map_err(|e| AppError::Secret(format!("{TIMEOUT_VAR}={v:?}: {e}")))
        }
        _ => Ok(DEFAULT_TIMEOUT),
    }
}

fn parse_timeout(text: &str) -> std::result::Result<Duration, String> {
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
        .map_err(|e| AppError::Secret(format!("cannot start the {what} (sh): {e}")))?;
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
        AppError::Secret(format!(
            "the {what} did not finish within {} and was killed; if it needs longer, set \
             {TIMEOUT_VAR} (e.g. {TIMEOUT_VAR}=5m)",
            humantime::format_duration(timeout)
        ))
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
                return Err(AppError::Secret(format!("waiting for the {what}: {e}")));
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
            return Err(AppError::Secret(format!("the {what} failed ({how})")));
        }
        return Err(AppError::Secret(format!(
            "the {what} failed ({how}): {said}"
        )));
    }
    if out.len() > STDOUT_MAX {
        return Err(AppError::Secret(format!(
            "the {what} printed more than {} KiB: that is no password",
            STDOUT_MAX / 1024
        )));
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

/// Text with control characters escaped (a terminal's escape sequences stay inert).
fn printable(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// A command's standard error as one printable line.
fn stderr_text(bytes: &[u8]) -> String {
    let lines: Vec<String> = String::from_utf8_lossy(bytes)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(printable)
        .collect();
    lines.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: Duration = Duration::from_secs(600);

    fn err_of(cmd: &str, timeout: Duration) -> String {
        format!(
            "{}",
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
    fn empty_passwords_are_refused_unless_allowed() {
        let flag = "--insecure-no-password";
        let err = check_password(b"", "password file", EmptyPassword::Refuse, flag).unwrap_err();
        let err = err.to_string();
        assert!(
            err.contains("empty password (from the password file)"),
            "{err}"
        );
        assert!(err.contains(flag), "{err}");
        assert!(check_password(b"", "password file", EmptyPassword::Allow, flag).is_ok());
        assert!(check_password(b"x", "password file", EmptyPassword::Refuse, flag).is_ok());
    }

    /// Regression: a password file written on Windows gave its password with a CR.
    #[test]
    fn a_password_file_gives_its_first_line_without_the_line_end() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        for (content, want) in [
            (&b"pw\r\nsecond"[..], &b"pw"[..]),
            (b"pw\n", b"pw"),
            (b"pw", b"pw"),
            (b"\r\n", b""),
            (b"", b""),
        ] {
            std::fs::write(&file, content).unwrap();
            assert_eq!(
                read_file(&file, "password file").unwrap(),
                want,
                "{content:?}"
            );
        }
    }

    #[test]
    fn timeouts_read_as_durations_or_seconds() {
        assert_eq!(parse_timeout("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_timeout("5m"), Ok(Duration::from_secs(300)));
        assert!(parse_timeout("0").is_err());
        assert!(parse_timeout("soon").is_err());
    }
}
