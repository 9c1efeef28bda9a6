//! Getting strata onto a machine: `strata version`, `strata generate` (shell completions,
//! man pages).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::*;

/// The repository's root (install.sh lives there).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("cli/ has a parent")
        .to_path_buf()
}

/// Runs a command to completion; returns (exit code, stdout, stderr).
fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[track_caller]
fn run_ok(cmd: &mut Command) -> String {
    let (code, out, err) = run(cmd);
    assert_eq!(
        code, 0,
        "{cmd:?} failed\n--- stdout\n{out}\n--- stderr\n{err}"
    );
    out
}

#[test]
fn version_names_the_version_commit_and_target() {
    let text = Cmd::new().arg("version").run().success().stdout_str();
    let info = Cmd::new()
        .args(["version", "--json"])
        .run()
        .success()
        .json();
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(info["version"], version, "{info}");
    let target = info["target"].as_str().unwrap_or_default();
    assert!(target.contains("linux"), "{info}");
    assert!(text.starts_with(&format!("strata {version} (")), "{text}");
    assert!(text.contains(target), "{text}");
    // Built from this checkout: the commit is HEAD's.
    let head = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(repo_root())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    if let Some(head) = head {
        let commit = info["commit"].as_str().unwrap_or_else(|| panic!("{info}"));
        assert!(
            commit.len() >= 7 && head.starts_with(commit),
            "{commit} vs {head}"
        );
        assert!(text.contains(&format!("commit {commit}")), "{text}");
    }
    // --version says the same; -V only the version.
    let long = Cmd::new().arg("--version").run().success().stdout_str();
    assert_eq!(long, text);
    let short = Cmd::new().arg("-V").run().success().stdout_str();
    assert_eq!(short.trim(), format!("strata {version}"));
}

#[test]
fn generate_writes_completions_for_every_shell() {
    let tmp = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = Cmd::new()
            .args(["generate", "--completion", shell])
            .run()
            .success()
            .stdout_str();
        for word in ["backup", "restore", "repo-file", "generate"] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
        if shell == "bash" {
            let file = tmp.path().join("strata.bash");
            fs::write(&file, &script).unwrap();
            run_ok(Command::new("bash").arg("-n").arg(&file));
            // Sourced, it registers a completion for strata.
            let complete = run_ok(
                Command::new("bash")
                    .arg("-c")
                    .arg(format!("source {}; complete -p strata", file.display())),
            );
            assert!(complete.contains("strata"), "{complete}");
        }
    }
    Cmd::new()
        .args(["generate", "--completion", "tcsh"])
        .run()
        .code(2);
    Cmd::new().arg("generate").run().code(2);
}

#[test]
fn generate_writes_man_pages() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("man/man1");
    Cmd::new()
        .arg("generate")
        .arg("--man")
        .arg(&dir)
        .run()
        .success();
    for page in [
        "strata.1",
        "strata-backup.1",
        "strata-key-add.1",
        "strata-init.1",
    ] {
        let text = fs::read_to_string(dir.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(".TH"), "{page}:\n{text}");
    }
    let main = fs::read_to_string(dir.join("strata.1")).unwrap();
    assert!(main.contains("backup"), "{main}");
    assert!(main.contains("insecure"), "{main}");
    // `--man -` prints the main page.
    let printed = Cmd::new()
        .args(["generate", "--man", "-"])
        .run()
        .success()
        .stdout_str();
    assert_eq!(printed, main);
    // Rendered by man, where man-db is installed.
    let rendered = Command::new("man")
        .arg("-l")
        .arg(dir.join("strata-backup.1"))
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "80")
        .output();
    if let Some(out) = rendered
        .ok()
        .filter(|o| o.status.success() && !o.stdout.is_empty())
    {
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("strata-backup"), "{text}");
    }
}
