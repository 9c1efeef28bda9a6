//! Progress (#15): a percentage and an ETA on a terminal, nothing but plain warnings and
//! errors without one (cron mail), JSON status lines on stderr with `--json`, and `-v`
//! listing a backup's new and modified files.
//!
//! Slow enough to draw a few frames: storage requests are delayed (`STRATA_TEST_FAULT`
//! `delay-ms`) and packs are small, so a few MiB take seconds.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::util::*;

/// Each storage request waits this long: ~16 packs of 1 MiB take a few seconds.
const SLOW: &str = "delay-ms=150";

/// Incompressible files under `dir`: `count` of `size` bytes.
fn files(dir: &Path, count: u64, size: usize) {
    for i in 0..count {
        write_file(
            &dir.join(format!("d{}/f{i:02}", i % 3)),
            &random_bytes(i + 1, size),
        );
    }
}

/// Runs `strata ARGS` on a pseudo-terminal (`script` from util-linux) with the
/// environment of `env` and `extra`; returns the exit code and what the terminal showed.
fn on_terminal(env: &Env, args: &[&str], extra: &[(&str, &str)]) -> (i32, String) {
    require("script", "bsdutils (util-linux's script)");
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let mut line = quote(&strata_bin().to_string_lossy());
    for a in args {
        line.push(' ');
        line.push_str(&quote(a));
    }
    let mut cmd = Command::new("timeout");
    cmd.args(["120", "script", "-qefc", &line, "/dev/null"]);
    for var in ["STRATA_PASSWORD_COMMAND", "STRATA_PASSWORD", "STRATA_LOG"] {
        cmd.env_remove(var);
    }
    cmd.env("STRATA_REPOSITORY", &env.repo)
        .env("STRATA_PASSWORD_FILE", &env.password_file)
        .env("HOME", &env.home)
        .env("XDG_CACHE_HOME", &env.cache)
        .env("COLUMNS", "160")
        .env("LINES", "40")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("start script");
    // Held open until the command is done: script ends at the end of its input.
    let stdin = child.stdin.take();
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    let shown =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(!shown.contains("panicked"), "{shown}");
    (out.status.code().unwrap_or(-1), shown)
}

/// Colour (SGR) escape sequences: `ESC [ ... m`.
fn colour_codes(text: &str) -> usize {
    text.match_indices("\x1b[")
        .filter(|(i, _)| {
            text[i + 2..]
                .chars()
                .find(|c| !c.is_ascii_digit() && *c != ';')
                == Some('m')
        })
        .count()
}

/// The control characters in `text` other than newline and tab, escaped for a message.
fn control_chars(text: &str) -> Vec<String> {
    text.chars()
        .filter(|c| c.is_control() && *c != '\n' && *c != '\t')
        .map(|c| c.escape_default().to_string())
        .collect()
}

#[test]
fn on_a_terminal_backup_restore_and_check_show_a_percentage_counts_and_an_eta() {
    let env = Env::init_small_packs();
    let src = env.path("src");
    files(&src, 16, 1 << 20);
    let slow = [("STRATA_TEST_FAULT", SLOW), ("NO_COLOR", "1")];

    let (code, shown) = on_terminal(&env, &["backup", src.to_str().unwrap()], &slow);
    assert_eq!(code, 0, "{shown}");
    for wanted in ["%", " / 16 files", " MiB / 16.00 MiB", "ETA "] {
        assert!(shown.contains(wanted), "no {wanted:?} in:\n{shown:?}");
    }
    // Redrawn in place on the terminal; NO_COLOR: no colour even there.
    assert!(
        shown.contains('\r') || shown.contains("\x1b[2K"),
        "{shown:?}"
    );
    assert_eq!(colour_codes(&shown), 0, "{shown:?}");

    let target = env.path("target");
    let (code, shown) = on_terminal(
        &env,
        &["restore", "latest", "--target", target.to_str().unwrap()],
        &slow,
    );
    assert_eq!(code, 0, "{shown}");
    for wanted in ["%", " / 16 files", " MiB / 16.00 MiB", "ETA "] {
        assert!(shown.contains(wanted), "no {wanted:?} in:\n{shown:?}");
    }
    assert_same_tree(&src, &restored(&target, &src));

    // check --read-data counts packs, known up front.
    let (code, shown) = on_terminal(&env, &["check", "--read-data"], &slow);
    assert_eq!(code, 0, "{shown}");
    for wanted in ["%", " packs ", " MiB / ", "ETA "] {
        assert!(shown.contains(wanted), "no {wanted:?} in:\n{shown:?}");
    }
}

#[test]
fn without_a_terminal_backup_restore_and_check_print_no_control_characters_nor_colour() {
    let env = Env::init_small_packs();
    let src = env.path("src");
    files(&src, 6, 300_000);
    // A path that is missing, whose name would send colour to a terminal or a mail reader:
    // the warning names it, escaped.
    let missing = env.path("gone-\x1b[31mred\x1b[0m");
    let cmd = |args: &[&str]| {
        env.cmd()
            .env_remove("NO_COLOR")
            .env("STRATA_TEST_FAULT", "delay-ms=20")
            .args(args)
    };
    let backup = cmd(&["backup", "-v"]).arg(&src).arg(&missing).run().code(3);
    let target = env.path("target");
    let restore = cmd(&["restore", "latest", "--target"])
        .arg(&target)
        .run()
        .success();
    let check = cmd(&["check", "--read-data"]).run().success();
    // Debug logs too (tracing): no colour without a terminal, NO_COLOR or not.
    let logged = cmd(&["snapshots"])
        .env("STRATA_LOG", "debug")
        .run()
        .success();
    assert!(!logged.stderr.is_empty(), "{}", logged.describe());
    for out in [&backup, &restore, &check, &logged] {
        let all = format!("{}{}", out.stdout_str(), out.stderr);
        assert_eq!(
            control_chars(&all),
            Vec::<String>::new(),
            "{}",
            out.describe()
        );
    }
    let warning: Vec<&str> = backup
        .stderr
        .lines()
        .filter(|l| l.starts_with("warning: ") && l.contains("gone-"))
        .collect();
    assert_eq!(warning.len(), 1, "{}", backup.describe());
    assert!(
        warning[0].contains(r"gone-\u{1b}[31mred"),
        "{}",
        backup.describe()
    );
    // Nothing but the summary (and -v's list) on stdout, and the warning and the error
    // on stderr: no progress.
    assert_eq!(backup.stderr.lines().count(), 2, "{}", backup.describe());
    assert!(restore.stderr.is_empty() && check.stderr.is_empty());
    assert_same_tree(&src, &restored(&target, &src));
}

/// The stderr lines of a `--json` run: every one a JSON object; returns the status ones.
#[track_caller]
fn status_lines(out: &Output) -> Vec<Value> {
    let lines: Vec<Value> = out
        .stderr
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| {
                panic!("stderr line {l:?} is not JSON: {e}\n{}", out.describe())
            })
        })
        .collect();
    let status: Vec<Value> = lines
        .into_iter()
        .filter(|v| v["message_type"] == "status")
        .collect();
    assert!(!status.is_empty(), "no status line\n{}", out.describe());
    for pair in status.windows(2) {
        assert!(pair[0]["bytes_done"].as_u64() <= pair[1]["bytes_done"].as_u64());
    }
    status
}

#[test]
fn json_status_lines_on_stderr_parse_and_the_result_on_stdout_stays_one_document() {
    let env = Env::init_small_packs();
    let src = env.path("src");
    files(&src, 9, 1 << 20);
    let slow = |args: &[&str]| env.cmd().env("STRATA_TEST_FAULT", SLOW).args(args);

    let backup = slow(&["backup", "--json"]).arg(&src).run().success();
    assert!(backup.json()["snapshot_id"].is_string());
    let status = status_lines(&backup);
    // Slow enough for lines along the way, not more than four a second.
    assert!(status.len() >= 3, "{}", backup.describe());
    let secs = status.last().unwrap()["seconds_elapsed"].as_u64().unwrap();
    assert!(
        status.len() as u64 <= 4 * (secs + 1) + 1,
        "{}",
        backup.describe()
    );
    let last = status.last().unwrap();
    assert_eq!(last["percent_done"], 1.0, "{last}");
    assert_eq!(
        (last["files_done"].as_u64(), last["total_files"].as_u64()),
        (Some(9), Some(9))
    );
    assert_eq!(last["bytes_done"].as_u64(), Some(9 << 20), "{last}");
    assert_eq!(last["total_bytes"].as_u64(), Some(9 << 20), "{last}");
    let mid = &status[status.len() / 2];
    assert!(mid["percent_done"].as_f64().unwrap() < 1.0, "{mid}");
    assert!(mid["seconds_remaining"].is_u64(), "{mid}");

    let target = env.path("target");
    let restore = slow(&["restore", "latest", "--json", "--target"])
        .arg(&target)
        .run()
        .success();
    assert_eq!(restore.json()["files"], 9);
    let last = status_lines(&restore).pop().unwrap();
    assert_eq!(
        (last["files_done"].as_u64(), last["total_files"].as_u64()),
        (Some(9), Some(9))
    );
    assert_eq!(last["bytes_done"].as_u64(), Some(9 << 20), "{last}");
    assert_same_tree(&src, &restored(&target, &src));

    let check = env.strata(["check", "--read-data", "--json"]).success();
    let report = check.json();
    let last = status_lines(&check).pop().unwrap();
    assert_eq!(last["packs_done"], report["packs_read"], "{last} {report}");
    assert_eq!(last["total_packs"], report["packs_read"], "{last} {report}");
    assert_eq!(last["bytes_done"], report["bytes_read"], "{last} {report}");
    assert_eq!(last["percent_done"], 1.0, "{last}");
}

#[test]
fn verbose_backup_lists_exactly_the_new_and_modified_files() {
    let env = Env::init();
    let src = env.path("src");
    files(&src, 6, 10_000);
    let first = env.cmd().args(["backup", "-v"]).arg(&src).run().success();
    let listed = |out: &Output| -> BTreeSet<String> {
        out.lines()
            .into_iter()
            .filter(|l| {
                l.starts_with("new ") || l.starts_with("modified ") || l.starts_with("unchanged ")
            })
            .collect()
    };
    let all_new: BTreeSet<String> = (0..6)
        .map(|i| {
            format!(
                "new       {}",
                src.join(format!("d{}/f{i:02}", i % 3)).display()
            )
        })
        .collect();
    assert_eq!(listed(&first), all_new, "{}", first.describe());

    write_file(&src.join("d1/f04"), b"changed");
    write_file(&src.join("d2/added"), b"new file");
    let second = env.cmd().args(["backup", "-v"]).arg(&src).run().success();
    let expected: BTreeSet<String> = [
        format!("modified  {}", src.join("d1/f04").display()),
        format!("new       {}", src.join("d2/added").display()),
    ]
    .into();
    assert_eq!(listed(&second), expected, "{}", second.describe());
    assert!(second
        .stdout_str()
        .contains("1 new, 1 changed, 5 unchanged"));

    // -vv: the unchanged ones too; --json: as verbose_status lines on stderr, stdout
    // still one JSON document; without -v, nothing listed.
    let third = env.cmd().args(["backup", "-vv"]).arg(&src).run().success();
    assert_eq!(listed(&third).len(), 7, "{}", third.describe());
    assert!(listed(&third).iter().all(|l| l.starts_with("unchanged ")));
    write_file(&src.join("d0/f00"), b"changed again");
    let json = env
        .cmd()
        .args(["backup", "-v", "--json"])
        .arg(&src)
        .run()
        .success();
    assert_eq!(json.json()["files_changed"], 1);
    let verbose: Vec<Value> = json
        .stderr
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["message_type"] == "verbose_status")
        .collect();
    assert_eq!(verbose.len(), 1, "{}", json.describe());
    assert_eq!(verbose[0]["action"], "modified");
    assert_eq!(verbose[0]["item"], src.join("d0/f00").display().to_string());
    let plain = env.cmd().arg("backup").arg(&src).run().success();
    assert!(listed(&plain).is_empty(), "{}", plain.describe());
}
