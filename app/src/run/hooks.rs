//! `before` and `after` hooks: `sh -c COMMAND` with the project and run in their
//! environment; their standard error's last lines are kept for the report and the record.

use std::process::{Command, Stdio};

use super::report::HookItem;

/// How many bytes of a hook's standard error are kept.
const TAIL_BYTES: usize = 2048;

/// Runs `command` (`which`: `before` or `after`) with `env` added to its environment.
pub(crate) fn run_hook(which: &str, command: &str, env: &[(&str, &str)]) -> HookItem {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    match cmd.output() {
        Ok(out) => HookItem {
            which: which.to_string(),
            ok: out.status.success(),
            exit_code: out.status.code(),
            stderr_tail: tail(&out.stderr),
        },
        Err(e) => HookItem {
            which: which.to_string(),
            ok: false,
            exit_code: None,
            stderr_tail: format!("could not start sh: {e}"),
        },
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
        );
        assert!(!h.ok);
        assert_eq!(h.exit_code, Some(4));
        assert_eq!(h.stderr_tail, "shop");
        assert_eq!(h.failure(), "before hook failed (exit status 4): shop");
        assert!(run_hook("after", "true", &[]).ok);
    }

    #[test]
    fn only_the_tail_of_a_long_message_is_kept() {
        let long = format!("{}\nlast line", "x\n".repeat(5000));
        let t = tail(long.as_bytes());
        assert!(t.len() <= TAIL_BYTES && t.ends_with("last line"), "{t}");
    }
}
