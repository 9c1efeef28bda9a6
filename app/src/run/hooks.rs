//! `before` and `after` hooks: `sh -c COMMAND` with the project and run in their
//! environment; their standard error's last lines are kept for the report and the record.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::report::HookItem;

/// How many bytes of a hook's standard error are kept.
const TAIL_BYTES: usize = 2048;

/// How long a hook may run when the project sets no `timeout`.
pub(crate) const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(3600);

/// Runs `command` (`which`: `before` or `after`) with `env` added to its environment, in a
/// process group of its own; past `timeout` the whole group is killed and the hook fails
/// (a hung hook must not hold the project's run lock forever).
pub(crate) fn run_hook(
    which: &str,
    command: &str,
    env: &[(&str, &str)],
    timeout: Duration,
) -> HookItem {
    let failed = |stderr_tail: String| HookItem {
        which: which.to_string(),
        ok: false,
        exit_code: None,
        stderr_tail,
    };
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return failed(format!("could not start sh: {e}")),
    };
    let mut stderr = child.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(s) = stderr.as_mut() {
            let _ = s.read_to_end(&mut buf);
        }
        buf
    });
    let deadline = Instant::now().checked_add(timeout);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) if deadline.is_some_and(|d| Instant::now() >= d) => {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(child.id() as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
                let _ = child.wait();
                break Err(format!(
                    "timed out after {}",
                    humantime::format_duration(timeout)
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => break Err(format!("waiting for sh: {e}")),
        }
    };
    let err = reader.join().unwrap_or_default();
    match status {
        Ok(status) => HookItem {
            which: which.to_string(),
            ok: status.success(),
            exit_code: status.code(),
            stderr_tail: tail(&err),
        },
        Err(why) => {
            let tail = tail(&err);
            failed(if tail.is_empty() {
                why
            } else {
                format!("{why}: {tail}")
            })
        }
    }
}

/// The last [`TAIL_BYTES`] of `bytes`, as text, trimmed, starting at a line.
pub(crate) fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    if text.len() <= TAIL_BYTES {
        return text.to_string();
    }
    let mut start = text.len() - TAIL_BYTES;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    let cut = &text[start..];
    match cut.find('\n') {
        Some(i) => cut[i + 1..].to_string(),
        None => cut.to_string(),
    }
}

impl HookItem {
    /// One line for an error: `before hook failed (exit status 2): message`.
    pub(crate) fn failure(&self) -> String {
        let how = match self.exit_code {
            Some(c) => format!("exit status {c}"),
            None => "killed by a signal".to_string(),
        };
        let last = self.stderr_tail.lines().last().unwrap_or_default();
        if last.is_empty() {
            format!("{} hook failed ({how})", self.which)
        } else {
            format!("{} hook failed ({how}): {last}", self.which)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hook_sees_its_environment_and_its_failure_is_kept() {
        let h = run_hook(
            "before",
            "echo \"$STRATA_PROJECT\" >&2; exit 4",
            &[("STRATA_PROJECT", "shop")],
            DEFAULT_HOOK_TIMEOUT,
        );
        assert!(!h.ok);
        assert_eq!(h.exit_code, Some(4));
        assert_eq!(h.stderr_tail, "shop");
        assert_eq!(h.failure(), "before hook failed (exit status 4): shop");
        assert!(run_hook("after", "true", &[], DEFAULT_HOOK_TIMEOUT).ok);
    }

    #[test]
    fn a_hook_past_its_timeout_is_killed_with_what_it_started() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let started = Instant::now();
        let h = run_hook(
            "before",
            &format!("sleep 600 & echo $! > '{}'; wait", pid_file.display()),
            &[],
            Duration::from_millis(300),
        );
        assert!(started.elapsed() < Duration::from_secs(60));
        assert!(!h.ok);
        assert!(h.stderr_tail.starts_with("timed out after 300ms"), "{h:?}");
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // The background `sleep` went with the group (kill 0 probes it).
        let gone = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(20));
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err()
        });
        assert!(gone, "sleep {pid} outlived its hook");
    }

    #[test]
    fn only_the_tail_of_a_long_message_is_kept() {
        let long = format!("{}\nlast line", "x\n".repeat(5000));
        let t = tail(long.as_bytes());
        assert!(t.len() <= TAIL_BYTES && t.ends_with("last line"), "{t}");
    }
}
