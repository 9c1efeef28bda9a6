//! Secrets and small CLI contracts (issue #12, part 3): password commands that fail or never answer, password files open to
//! others, no colour codes in logs written to files.

use std::fs;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::util::*;

// ---------------------------------------------------------------------------
// Password commands and files
// ---------------------------------------------------------------------------

/// Regression: a failing password command's error repeated the command's text, which may
/// hold the password. Now: its exit status and its standard error.
#[test]
fn failing_password_commands_are_not_echoed() {
    let env = Env::init();
    let cmd = "echo s3cret-in-the-command >/dev/null; echo 'vault is sealed' >&2; exit 7";
    let out = env
        .cmd()
        .env_remove("STRATA_PASSWORD_FILE")
        .env("STRATA_PASSWORD_COMMAND", cmd)
        .arg("snapshots")
        .run()
        .code(1)
        .one_line_error()
        .stderr_contains("exit status 7")
        .stderr_contains("vault is sealed");
    assert!(!out.stderr.contains("s3cret"), "{}", out.describe());
}

/// Regression: a password command that never returned hung strata for good. It is killed
/// (with what it started) after STRATA_PASSWORD_COMMAND_TIMEOUT, and the command fails.
#[test]
fn a_password_command_that_never_answers_is_killed() {
    let env = Env::init();
    let pids = env.path("pids");
    let stderr = env.path("stderr");
    let cmd = format!("sleep 600 & echo $! > {}; wait", pids.display());
    let (mut command, cmdline) = env
        .cmd()
        .env_remove("STRATA_PASSWORD_FILE")
        .env("STRATA_PASSWORD_COMMAND", &cmd)
        .env("STRATA_PASSWORD_COMMAND_TIMEOUT", "2s")
        .arg("snapshots")
        .build();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    // A safety net, not a timing assertion: a healthy run ends about 2 s in.
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmdline} still waits for its password command after 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let said = fs::read_to_string(&stderr).unwrap();
    assert_eq!(status.code(), Some(1), "{said}");
    assert!(
        said.contains("did not finish within 2s")
            && said.contains("STRATA_PASSWORD_COMMAND_TIMEOUT")
            && !said.contains("sleep"),
        "{said}"
    );
    let pid = fs::read_to_string(&pids).unwrap().trim().to_string();
    assert!(gone(&pid), "the command's child {pid} still runs");
}

/// Whether process `pid` has ended (gone, or a zombie nobody reaped yet).
fn gone(pid: &str) -> bool {
    (0..100).any(|_| {
        let dead = match fs::read_to_string(format!("/proc/{pid}/stat")) {
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
    })
}

/// A password file its group or others can read is used, with a warning naming the file
/// and the fix, as ssh warns about keys; a private one gets none.
#[test]
fn password_files_open_to_others_are_warned_about() {
    let env = Env::init();
    let file = env.password_file.display().to_string();
    let quiet = env.strata(["snapshots"]).success();
    assert!(!quiet.stderr.contains("chmod"), "{}", quiet.stderr);
    for mode in [0o644, 0o640, 0o604] {
        chmod(&env.password_file, mode);
        env.strata(["snapshots"])
            .success()
            .stderr_contains(&format!(
                "password file {file} is open to its group or others"
            ))
            .stderr_contains(&format!("chmod 600 {file}"));
    }
}

// ---------------------------------------------------------------------------
// Logs
// ---------------------------------------------------------------------------

/// Regression: warnings carried ANSI colour codes into files and mail when stderr was no
/// terminal (here a pipe, and NO_COLOR unset).
#[test]
fn warnings_written_to_a_pipe_have_no_colour_codes() {
    let env = Env::init();
    chmod(&env.password_file, 0o644);
    let out = env
        .cmd()
        .env_remove("NO_COLOR")
        .arg("snapshots")
        .run()
        .success()
        .stderr_contains("WARN")
        .stderr_contains("chmod 600");
    assert!(!out.stderr.contains("\x1b["), "{:?}", out.stderr);
}
