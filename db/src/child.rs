//! Dump and load tools run as child processes: their standard output streams straight into
//! the archiver (no temp file), their standard error is kept (the last 64 KiB) for the error
//! message, and their exit status decides whether the stream was complete.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Instant;

use crate::error::{DbError, Result};

/// How the dump and load tools are run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolOptions {
    /// Run the tools through this command: `docker exec -i CONTAINER`, `runuser -u
    /// postgres --`, `ssh HOST`. The tool's environment (its password) is set on the
    /// prefix's process, which `runuser`, `sudo -E` and `env` pass on; for `docker exec`
    /// (and `podman exec`) each variable is also named with `-e VAR` after `exec`, so that
    /// docker passes it into the container (the value never reaches a command line). ssh
    /// runs its arguments as one remote shell line, so the tool's words are quoted for that
    /// shell; it passes no environment on, so a password cannot go through it (see
    /// [`check_prefix`]).
    pub exec_prefix: Vec<String>,
    /// Kill the dump tool (its whole process group) at this moment: a tool blocked without
    /// output is stopped too, and its stream then fails.
    pub deadline: Option<Instant>,
}

/// `cmd` run through `prefix` (see [`ToolOptions::exec_prefix`]); `cmd` itself when the
/// prefix is empty.
pub fn prefixed(cmd: Command, prefix: &[String]) -> Command {
    let Some((first, rest)) = prefix.split_first() else {
        return cmd;
    };
    let mut out = Command::new(first);
    if is_ssh(prefix) {
        out.args(rest);
        // One remote shell line, each word quoted for it; a word shlex cannot quote (a
        // NUL byte, which no argument can hold anyway) becomes an empty one.
        let words: Vec<String> = std::iter::once(cmd.get_program())
            .chain(cmd.get_args())
            .map(|w| {
                shlex::try_quote(&w.to_string_lossy())
                    .map(|q| q.into_owned())
                    .unwrap_or_else(|_| "''".into())
            })
            .collect();
        out.arg(words.join(" "));
        if let Some(dir) = cmd.get_current_dir() {
            out.current_dir(dir);
        }
        return out;
    }
    let is_container = std::path::Path::new(first)
        .file_name()
        .is_some_and(|n| n == "docker" || n == "podman");
    let vars: Vec<_> = cmd
        .get_envs()
        .filter(|(_, v)| v.is_some())
        .map(|(k, _)| k.to_os_string())
        .collect();
    let mut named = false;
    for arg in rest {
        out.arg(arg);
        if is_container && !named && arg == "exec" {
            for var in &vars {
                out.arg("-e").arg(var);
            }
            named = true;
        }
    }
    out.arg(cmd.get_program()).args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => out.env(k, v),
            None => out.env_remove(k),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        out.current_dir(dir);
    }
    out
}

/// Whether `prefix` runs the tools through ssh (on another host, through its shell): ssh
/// (or autossh) anywhere in it, as in `timeout 600 ssh db1` or `sshpass -e ssh db1`.
pub fn is_ssh(prefix: &[String]) -> bool {
    prefix.iter().any(|w| {
        std::path::Path::new(w)
            .file_name()
            .is_some_and(|n| n == "ssh" || n == "autossh")
    })
}

/// Why `prefix` cannot run the tools of a database that has a password (`has_password`):
/// ssh passes no environment on, and a password on its command line would be in every
/// process list on both hosts.
pub fn check_prefix(prefix: &[String], has_password: bool) -> std::result::Result<(), String> {
    if is_ssh(prefix) && has_password {
        return Err(
            "a password cannot go through an ssh exec-prefix (ssh passes no \
                    environment on): keep it on that host (~/.pgpass, ~/.my.cnf) or log in \
                    there without one (peer or socket authentication)"
                .into(),
        );
    }
    Ok(())
}

/// How much of a tool's standard error is kept.
const STDERR_KEEP: usize = 64 * 1024;

/// Spawns `cmd`, naming it `tool` in errors (a missing program says what to install).
fn spawn(tool: &str, cmd: &mut Command, package: &str) -> Result<(Child, JoinHandle<Vec<u8>>)> {
    let mut child = cmd.stderr(Stdio::piped()).spawn().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            DbError::Unavailable(format!("{tool} is not installed (install {package})"))
        } else {
            DbError::io(tool, e)
        }
    })?;
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let collector = std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match stderr.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    kept.extend_from_slice(&buf[..n]);
                    if kept.len() > 2 * STDERR_KEEP {
                        kept.drain(..kept.len() - STDERR_KEEP);
                    }
                }
            }
        }
        if kept.len() > STDERR_KEEP {
            kept.drain(..kept.len() - STDERR_KEEP);
        }
        kept
    });
    Ok((child, collector))
}

/// What a tool printed on standard error, trimmed, as one message.
fn message(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines.join("; ")
}

fn failure(tool: &str, status: ExitStatus, stderr: &[u8]) -> String {
    let said = message(stderr);
    let how = match status.code() {
        Some(code) => format!("exit status {code}"),
        None => "killed by a signal".to_string(),
    };
    if said.is_empty() {
        format!("{tool} failed ({how})")
    } else {
        format!("{tool} failed ({how}): {said}")
    }
}

/// The first line of `tool --version` (run through `prefix`), starting with the tool's
/// name (the name alone when the tool does not answer): recorded in the snapshot, and read
/// by dialects whose options depend on the tool's version.
pub fn tool_version_through(tool: &str, prefix: &[String]) -> String {
    let mut cmd = Command::new(tool);
    cmd.arg("--version").stdin(Stdio::null());
    let out = prefixed(cmd, prefix).output();
    match out {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout);
            let first = text.lines().next().unwrap_or_default().trim().to_string();
            if first.is_empty() {
                tool.to_string()
            } else if first.starts_with(tool) {
                first
            } else {
                format!("{tool} {first}")
            }
        }
        _ => tool.to_string(),
    }
}

/// A dump tool's standard output. Reading past its end waits for the tool: a tool that
/// failed turns the end of its output into an error carrying its message, so that an
/// incomplete dump can never pass for a complete one. Dropped early, the tool is killed.
pub struct DumpStream {
    tool: String,
    child: Child,
    stdout: ChildStdout,
    stderr: Option<JoinHandle<Vec<u8>>>,
    finished: bool,
    /// Why the stream failed: every later read fails the same way.
    failed: Option<String>,
    /// Dropped when the tool has been waited for: stops the deadline's watchdog.
    watchdog: Option<mpsc::Sender<()>>,
    /// Set when the deadline killed the tool.
    timed_out: Arc<AtomicBool>,
}

impl DumpStream {
    #[cfg(test)]
    pub fn spawn(tool: &str, cmd: Command, package: &str) -> Result<Self> {
        Self::spawn_with(tool, cmd, package, &ToolOptions::default())
    }

    /// Spawns the tool through `opts`' prefix, in a process group of its own that is
    /// killed at `opts`' deadline.
    pub fn spawn_with(tool: &str, cmd: Command, package: &str, opts: &ToolOptions) -> Result<Self> {
        let mut cmd = prefixed(cmd, &opts.exec_prefix);
        cmd.stdin(Stdio::null()).stdout(Stdio::piped());
        // Its own group: a deadline kills what the tool (or the prefix) started, too.
        cmd.process_group(0);
        let (mut child, stderr) = spawn(tool, &mut cmd, package)?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let timed_out = Arc::new(AtomicBool::new(false));
        let watchdog = opts
            .deadline
            .map(|deadline| watch(child.id(), deadline, timed_out.clone()));
        Ok(DumpStream {
            tool: tool.to_string(),
            child,
            stdout,
            stderr: Some(stderr),
            finished: false,
            failed: None,
            watchdog,
            timed_out,
        })
    }

    /// Whether the deadline killed the tool.
    pub fn timed_out(&self) -> bool {
        self.timed_out.load(Ordering::SeqCst)
    }

    /// Why the tool failed, once its output ended in its failure.
    pub fn failure(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    fn wait(&mut self) -> std::io::Result<()> {
        let status = self.child.wait();
        self.watchdog.take();
        let status = status?;
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        self.finished = true;
        if !status.success() {
            let message = if self.timed_out() {
                format!("{} was stopped at its deadline", self.tool)
            } else {
                failure(&self.tool, status, &stderr)
            };
            self.failed = Some(message.clone());
            return Err(std::io::Error::other(message));
        }
        let said = message(&stderr);
        if !said.is_empty() {
            tracing::warn!("{}: {said}", self.tool);
        }
        Ok(())
    }
}

impl Read for DumpStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if let Some(message) = &self.failed {
            return Err(std::io::Error::other(message.clone()));
        }
        if self.finished {
            return Ok(0);
        }
        let n = self.stdout.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.wait()?;
        }
        Ok(n)
    }
}

impl Drop for DumpStream {
    fn drop(&mut self) {
        if !self.finished {
            // The whole group: a prefix's children (and the tool under it) go too.
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(self.child.id() as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = self.child.kill();
            let _ = self.child.wait();
            self.watchdog.take();
        }
    }
}

/// Kills process group `pgid` at `deadline` unless the returned sender is dropped (or
/// sent to) first.
pub(crate) fn watch(pgid: u32, deadline: Instant, fired: Arc<AtomicBool>) -> mpsc::Sender<()> {
    let (tx, rx) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        let wait = deadline.saturating_duration_since(Instant::now());
        if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(wait) {
            fired.store(true, Ordering::SeqCst);
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pgid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    });
    tx
}

/// A load tool (psql, mysql, sqlite3) reading SQL on its standard input; its standard
/// output is discarded.
pub struct LoadSink {
    tool: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stderr: Option<JoinHandle<Vec<u8>>>,
    /// Dropped when the tool has been waited for: stops the deadline's watchdog.
    watchdog: Option<mpsc::Sender<()>>,
    timed_out: Arc<AtomicBool>,
}

impl LoadSink {
    #[cfg(test)]
    pub fn spawn(tool: &str, cmd: Command, package: &str) -> Result<Self> {
        Self::spawn_until(tool, cmd, package, None)
    }

    /// Spawns the load tool, in a process group of its own killed at `deadline` if given.
    pub fn spawn_until(
        tool: &str,
        mut cmd: Command,
        package: &str,
        deadline: Option<Instant>,
    ) -> Result<Self> {
        cmd.stdin(Stdio::piped()).stdout(Stdio::null());
        if deadline.is_some() {
            cmd.process_group(0);
        }
        let (mut child, stderr) = spawn(tool, &mut cmd, package)?;
        let stdin = child.stdin.take();
        let timed_out = Arc::new(AtomicBool::new(false));
        let watchdog = deadline.map(|d| watch(child.id(), d, timed_out.clone()));
        Ok(LoadSink {
            tool: tool.to_string(),
            child,
            stdin,
            stderr: Some(stderr),
            watchdog,
            timed_out,
        })
    }

    /// Closes the tool's input and waits for it; a failure carries its message.
    pub fn finish(mut self) -> Result<()> {
        drop(self.stdin.take());
        let status = self.child.wait().map_err(|e| DbError::io(&self.tool, e))?;
        self.watchdog.take();
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        if self.timed_out.load(Ordering::SeqCst) {
            return Err(DbError::Unavailable(format!(
                "{} was killed at its deadline",
                self.tool
            )));
        }
        if !status.success() {
            return Err(DbError::Unavailable(failure(&self.tool, status, &stderr)));
        }
        let said = message(&stderr);
        if !said.is_empty() {
            tracing::warn!("{}: {said}", self.tool);
        }
        Ok(())
    }

    /// The tool's message after a write failed: it stopped reading before the end.
    pub fn failed(mut self, write_error: std::io::Error) -> DbError {
        drop(self.stdin.take());
        let status = self.child.wait();
        self.watchdog.take();
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        if self.timed_out.load(Ordering::SeqCst) {
            return DbError::Unavailable(format!("{} was killed at its deadline", self.tool));
        }
        match status {
            Ok(status) if !status.success() => {
                DbError::Unavailable(failure(&self.tool, status, &stderr))
            }
            _ => DbError::Unavailable(format!(
                "{} stopped reading before the end of the dump ({write_error}){}",
                self.tool,
                match message(&stderr) {
                    m if m.is_empty() => String::new(),
                    m => format!(": {m}"),
                }
            )),
        }
    }
}

impl Write for LoadSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &mut self.stdin {
            Some(s) => s.write(buf),
            None => Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe)),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.stdin {
            Some(s) => s.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for LoadSink {
    fn drop(&mut self) {
        if self.stdin.is_some() {
            drop(self.stdin.take());
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("sh");
        c.arg("-c").arg(script);
        c
    }

    fn argv(cmd: &Command) -> Vec<String> {
        std::iter::once(cmd.get_program())
            .chain(cmd.get_args())
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    fn prefix(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn a_prefix_runs_the_tool_with_its_environment() {
        let mut cmd = Command::new("pg_dump");
        cmd.args(["--no-password", "--dbname", "postgres://u@/app"])
            .env("PGPASSWORD", "s3cret");
        let docker = prefixed(cmd, &prefix(&["docker", "exec", "-i", "pg"]));
        assert_eq!(
            argv(&docker),
            [
                "docker",
                "exec",
                "-e",
                "PGPASSWORD",
                "-i",
                "pg",
                "pg_dump",
                "--no-password",
                "--dbname",
                "postgres://u@/app"
            ]
        );
        let envs: Vec<_> = docker.get_envs().collect();
        assert_eq!(
            envs,
            [(
                std::ffi::OsStr::new("PGPASSWORD"),
                Some(std::ffi::OsStr::new("s3cret"))
            )]
        );
        let mut cmd = Command::new("pg_dump");
        cmd.arg("--dbname=app").env("PGPASSWORD", "s3cret");
        let runuser = prefixed(cmd, &prefix(&["runuser", "-u", "postgres", "--"]));
        assert_eq!(
            argv(&runuser),
            ["runuser", "-u", "postgres", "--", "pg_dump", "--dbname=app"]
        );
        assert!(!argv(&runuser).iter().any(|a| a.contains("s3cret")));
        assert_eq!(runuser.get_envs().count(), 1);
        let plain = prefixed(Command::new("sqlite3"), &[]);
        assert_eq!(argv(&plain), ["sqlite3"]);
    }

    /// ssh gets the tool's command as one remote shell line, each word quoted, so that a
    /// URL's `&` and `?` and a query's parentheses reach the tool as they are.
    #[test]
    fn ssh_gets_one_quoted_line() {
        let mut cmd = Command::new("psql");
        cmd.args([
            "-c",
            "SELECT count(*) FROM \"t\"",
            "--dbname",
            "postgres://u@/db?host=/run/pg&port=5433",
        ]);
        let out = prefixed(cmd, &prefix(&["/usr/bin/ssh", "-p", "2222", "db.example"]));
        let args = argv(&out);
        assert_eq!(args[..4], ["/usr/bin/ssh", "-p", "2222", "db.example"]);
        assert_eq!(args.len(), 5, "{args:?}");
        assert_eq!(
            shlex::split(&args[4]).unwrap(),
            [
                "psql",
                "-c",
                "SELECT count(*) FROM \"t\"",
                "--dbname",
                "postgres://u@/db?host=/run/pg&port=5433"
            ]
        );
        assert!(check_prefix(&prefix(&["ssh", "h"]), true).is_err());
        assert!(check_prefix(&prefix(&["ssh", "h"]), false).is_ok());
        // ssh behind another word is still ssh: its line is quoted, its password refused.
        let behind = prefix(&["timeout", "600", "ssh", "db.example"]);
        let mut cmd = Command::new("psql");
        cmd.args(["--dbname", "postgres://u@/db?a=1&b=$(x)"]);
        let args = argv(&prefixed(cmd, &behind));
        assert_eq!(args.len(), 5, "{args:?}");
        assert_eq!(
            shlex::split(&args[4]).unwrap(),
            ["psql", "--dbname", "postgres://u@/db?a=1&b=$(x)"]
        );
        assert!(check_prefix(&behind, true).is_err());
        assert!(check_prefix(&prefix(&["docker", "exec", "-i", "c"]), true).is_ok());
    }

    #[test]
    fn a_deadline_kills_a_tool_that_writes_nothing() {
        let started = Instant::now();
        let opts = ToolOptions {
            exec_prefix: Vec::new(),
            deadline: Some(started + std::time::Duration::from_millis(300)),
        };
        let mut s = DumpStream::spawn_with("pg_dump", sh("sleep 600"), "x", &opts).unwrap();
        let mut out = Vec::new();
        let err = s.read_to_end(&mut out).unwrap_err().to_string();
        assert!(started.elapsed() < std::time::Duration::from_secs(30));
        assert!(s.timed_out());
        assert!(err.contains("stopped at its deadline"), "{err}");
    }

    #[test]
    fn a_complete_dump_reads_to_its_end() {
        let mut s = DumpStream::spawn("tool", sh("printf 'abc'; echo note >&2"), "x").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        assert_eq!(out, "abc");
    }

    #[test]
    fn a_failed_dump_ends_in_its_message() {
        let mut s = DumpStream::spawn(
            "pg_dump",
            sh("printf 'partial'; echo 'pg_dump: error: connection failed' >&2; exit 1"),
            "x",
        )
        .unwrap();
        let mut out = Vec::new();
        let err = s.read_to_end(&mut out).unwrap_err().to_string();
        assert!(
            err.contains("pg_dump failed (exit status 1): pg_dump: error: connection failed"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_tool_says_what_to_install() {
        let err = DumpStream::spawn(
            "nope",
            Command::new("/nonexistent/strata-tool"),
            "the nope package",
        )
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("install the nope package"), "{err}");
    }

    #[test]
    fn a_failed_load_carries_its_message() {
        let mut sink =
            LoadSink::spawn("psql", sh("cat >/dev/null; echo bad >&2; exit 3"), "x").unwrap();
        sink.write_all(b"SELECT 1;").unwrap();
        let err = sink.finish().unwrap_err().to_string();
        assert!(err.contains("psql failed (exit status 3): bad"), "{err}");
    }
}
