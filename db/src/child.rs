//! Dump and load tools run as child processes: their standard output streams straight into
//! the archiver (no temp file), their standard error is kept (the last 64 KiB) for the error
//! message, and their exit status decides whether the stream was complete.

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;

use crate::error::{DbError, Result};

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

/// The first line of `tool --version`, starting with the tool's name (the name alone when
/// the tool does not answer): recorded in the snapshot, and read by dialects whose options
/// depend on the tool's version.
pub fn tool_version(tool: &str) -> String {
    let out = Command::new(tool).arg("--version").output();
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
}

impl DumpStream {
    pub fn spawn(tool: &str, mut cmd: Command, package: &str) -> Result<Self> {
        cmd.stdin(Stdio::null()).stdout(Stdio::piped());
        let (mut child, stderr) = spawn(tool, &mut cmd, package)?;
        let stdout = child.stdout.take().expect("stdout is piped");
        Ok(DumpStream {
            tool: tool.to_string(),
            child,
            stdout,
            stderr: Some(stderr),
            finished: false,
            failed: None,
        })
    }

    /// Why the tool failed, once its output ended in its failure.
    pub fn failure(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    fn wait(&mut self) -> std::io::Result<()> {
        let status = self.child.wait()?;
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        self.finished = true;
        if !status.success() {
            let message = failure(&self.tool, status, &stderr);
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
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A load tool (psql, mysql, sqlite3) reading SQL on its standard input; its standard
/// output is discarded.
pub struct LoadSink {
    tool: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stderr: Option<JoinHandle<Vec<u8>>>,
}

impl LoadSink {
    pub fn spawn(tool: &str, mut cmd: Command, package: &str) -> Result<Self> {
        cmd.stdin(Stdio::piped()).stdout(Stdio::null());
        let (mut child, stderr) = spawn(tool, &mut cmd, package)?;
        let stdin = child.stdin.take();
        Ok(LoadSink {
            tool: tool.to_string(),
            child,
            stdin,
            stderr: Some(stderr),
        })
    }

    /// Closes the tool's input and waits for it; a failure carries its message.
    pub fn finish(mut self) -> Result<()> {
        drop(self.stdin.take());
        let status = self.child.wait().map_err(|e| DbError::io(&self.tool, e))?;
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
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
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
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
