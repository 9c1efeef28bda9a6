//! Build facts for `strata version`: the commit (from git, or STRATA_BUILD_COMMIT for a
//! build outside a git checkout, e.g. from a source tarball), the target triple and the
//! rustc version. A build outside git without STRATA_BUILD_COMMIT has no commit.
//!
//! The script reruns only when HEAD moves (the files git keeps it in) or the variable
//! changes, so an ordinary rebuild does not rebuild this crate.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=STRATA_BUILD_COMMIT");
    let target = std::env::var("TARGET").unwrap_or_default();
    println!("cargo:rustc-env=STRATA_TARGET={target}");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    // "rustc 1.95.0 (f2d3ce0bd 2026-03-21)" -> "1.95.0"
    let rustc = output(Command::new(rustc).arg("--version"))
        .and_then(|v| v.split_whitespace().nth(1).map(str::to_string));
    if let Some(v) = &rustc {
        println!("cargo:rustc-env=STRATA_RUSTC={v}");
    }
    let commit = std::env::var("STRATA_BUILD_COMMIT")
        .ok()
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
        .or_else(git_commit);
    if let Some(c) = &commit {
        println!("cargo:rustc-env=STRATA_COMMIT={c}");
    }
    // `strata --version`: "0.1.0 (commit 4357653d1e2f, x86_64-unknown-linux-gnu, rustc 1.95.0)"
    let mut facts = Vec::new();
    if let Some(c) = &commit {
        facts.push(format!("commit {c}"));
    }
    facts.push(target);
    if let Some(r) = &rustc {
        facts.push(format!("rustc {r}"));
    }
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    println!(
        "cargo:rustc-env=STRATA_LONG_VERSION={version} ({})",
        facts.join(", ")
    );
}

/// The short commit of HEAD, and the rerun triggers for it.
fn git_commit() -> Option<String> {
    let git = |args: &[&str]| output(Command::new("git").args(args));
    let commit = git(&["rev-parse", "--short=12", "HEAD"])?;
    // HEAD itself (a checkout of another branch), and the branch it names (a commit).
    let mut watch = vec![git(&[
        "rev-parse",
        "--path-format=absolute",
        "--git-path",
        "HEAD",
    ])];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        let loose = git(&["rev-parse", "--path-format=absolute", "--git-path", &branch]);
        match loose {
            Some(path) if Path::new(&path).exists() => watch.push(Some(path)),
            _ => watch.push(git(&[
                "rev-parse",
                "--path-format=absolute",
                "--git-path",
                "packed-refs",
            ])),
        }
    }
    for path in watch.into_iter().flatten() {
        if Path::new(&path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    Some(commit)
}

/// What `command` prints, trimmed, if it succeeds.
fn output(command: &mut Command) -> Option<String> {
    let out = command.output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}
