//! Getting strata onto a machine: `strata version`, `strata generate` (shell completions,
//! man pages), install.sh (into a prefix, idempotent, --dry-run) and the Debian package
//! (`install.sh --deb`, unpacked into a clean directory tree, never into the system).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

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

/// install.sh with the test's binary (no release build).
fn install_sh() -> Command {
    let mut cmd = Command::new("bash");
    cmd.arg(repo_root().join("install.sh"))
        .arg("--binary")
        .arg(strata_bin())
        .env_remove("STRATA_REPOSITORY")
        .env_remove("STRATA_REPOSITORY_FILE");
    cmd
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
            // Sourced, it completes: `strata ba<TAB>` to backup, `strata key a<TAB>` to add.
            let complete = run_ok(Command::new("bash").arg("-c").arg(format!(
                "source {}; complete -p strata; \
                 COMP_WORDS=(strata ba); COMP_CWORD=1; _strata strata ba strata; \
                 echo \"[${{COMPREPLY[*]}}]\"; \
                 COMP_WORDS=(strata key a); COMP_CWORD=2; _strata strata a key; \
                 echo \"[${{COMPREPLY[*]}}]\"",
                file.display()
            )));
            assert!(complete.contains("-F _strata strata"), "{complete}");
            assert!(complete.contains("[backup]\n[add]"), "{complete}");
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

#[test]
fn install_sh_installs_into_a_prefix_and_again_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let prefix = tmp.path().join("prefix");
    let first = run_ok(install_sh().arg("--prefix").arg(&prefix));
    let bin = prefix.join("bin/strata");
    let installed = run_ok(Command::new(&bin).arg("--version"));
    let ours = Cmd::new().arg("--version").run().success().stdout_str();
    assert_eq!(installed, ours);
    let bash = prefix.join("share/bash-completion/completions/strata");
    run_ok(Command::new("bash").arg("-n").arg(&bash));
    for file in [
        "share/zsh/site-functions/_strata",
        "share/fish/vendor_completions.d/strata.fish",
        "share/man/man1/strata.1",
        "share/man/man1/strata-restore.1",
    ] {
        assert!(prefix.join(file).is_file(), "{file} missing\n{first}");
    }
    assert!(
        first.contains(&format!("installed  {}", bin.display())),
        "{first}"
    );
    // Again: nothing to do.
    let again = run_ok(install_sh().arg("--prefix").arg(&prefix));
    assert!(again.contains("done: 0 file(s)"), "{again}");
    assert!(!again.contains("installed  "), "{again}");
    // A changed file is put back.
    fs::write(&bash, "# edited\n").unwrap();
    let repaired = run_ok(install_sh().arg("--prefix").arg(&prefix));
    assert!(repaired.contains("done: 1 file(s)"), "{repaired}");
    run_ok(Command::new("bash").arg("-n").arg(&bash));
    assert_ne!(fs::read_to_string(&bash).unwrap(), "# edited\n");
}

#[test]
fn install_sh_dry_run_changes_nothing_and_root_installs_under_usr_local() {
    let tmp = tempfile::tempdir().unwrap();
    let prefix = tmp.path().join("prefix");
    let out = run_ok(install_sh().arg("--prefix").arg(&prefix).arg("--dry-run"));
    assert!(out.contains("would install"), "{out}");
    assert!(!prefix.exists(), "--dry-run created {}", prefix.display());
    // As root, without --prefix: /usr/local (only looked at, with --dry-run).
    if nix::unistd::Uid::effective().is_root() {
        let out = run_ok(install_sh().arg("--dry-run"));
        for path in [
            "/usr/local/bin/strata",
            "/usr/local/share/bash-completion/completions/strata",
            "/usr/local/share/man/man1/strata.1",
        ] {
            assert!(
                out.contains(&format!("would install {path}"))
                    || out.contains(&format!("unchanged  {path}")),
                "{path} not named:\n{out}"
            );
        }
    }
    // Help and bad usage.
    let help = run_ok(
        Command::new("bash")
            .arg(repo_root().join("install.sh"))
            .arg("--help"),
    );
    for word in ["--prefix", "--dry-run", "--binary", "--deb", "~/.local"] {
        assert!(help.contains(word), "--help lacks {word}:\n{help}");
    }
    let (code, _, err) = run(Command::new("bash")
        .arg(repo_root().join("install.sh"))
        .arg("--no-such-option"));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--no-such-option"), "{err}");
}

/// Without root, the default prefix is ~/.local.
#[test]
fn install_sh_without_root_installs_into_home() {
    if !nix::unistd::Uid::effective().is_root() {
        return; // the test drops privileges with setpriv, which needs root
    }
    require("setpriv", "util-linux");
    let tmp = tempfile::Builder::new()
        .prefix("strata-install-")
        .tempdir_in("/tmp")
        .unwrap();
    let home = tmp.path().join("home");
    fs::create_dir(&home).unwrap();
    chmod(tmp.path(), 0o755);
    nix::unistd::chown(&home, Some(65534.into()), Some(65534.into())).unwrap();
    // The binary must be readable by nobody: a copy in the temporary directory.
    let bin = tmp.path().join("strata");
    fs::copy(strata_bin(), &bin).unwrap();
    chmod(&bin, 0o755);
    let out = run_ok(
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "bash"])
            .arg(repo_root().join("install.sh"))
            .arg("--binary")
            .arg(&bin)
            .env("HOME", &home)
            .env("PATH", "/usr/bin:/bin"),
    );
    let installed = home.join(".local/bin/strata");
    run_ok(Command::new(&installed).arg("--version"));
    assert!(
        home.join(".local/share/man/man1/strata.1").is_file(),
        "{out}"
    );
    // ~/.local/bin is not on that PATH: the script says how to add it.
    assert!(out.contains("is not on PATH"), "{out}");
}

/// `install.sh --deb` packages the test's binary (no release build), and the package,
/// unpacked into a clean directory tree, holds a strata that runs, its completions and
/// man pages.
#[test]
fn the_debian_package_installs_a_strata_that_runs() {
    let cargo_deb = Command::new("cargo").args(["deb", "--version"]).output();
    assert!(
        cargo_deb.is_ok_and(|o| o.status.success()),
        "cargo-deb is missing: cargo install --locked cargo-deb (bash .ci/run does)"
    );
    require("dpkg-deb", "dpkg");
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("deb");
    let started = Instant::now();
    let said = run_ok(
        install_sh()
            .args(["--deb", "--out"])
            .arg(&out_dir)
            .args(["--", "--fast", "--strip"]),
    );
    eprintln!("install.sh --deb took {:.1?}", started.elapsed());
    let debs: Vec<PathBuf> = fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "deb"))
        .collect();
    assert_eq!(debs.len(), 1, "{said}\n{debs:?}");
    let deb = &debs[0];
    let field = |name: &str| {
        run_ok(Command::new("dpkg-deb").arg("-f").arg(deb).arg(name))
            .trim()
            .to_string()
    };
    assert_eq!(field("Package"), "strata");
    assert_eq!(field("Section"), "utils");
    assert_eq!(field("Version"), format!("{}-1", env!("CARGO_PKG_VERSION")));
    assert!(field("Depends").contains("libc6"), "{}", field("Depends"));
    // Into a clean tree, never into the system.
    let tree = tmp.path().join("root");
    run_ok(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&tree));
    let version = run_ok(Command::new(tree.join("usr/bin/strata")).arg("--version"));
    let ours = Cmd::new().arg("--version").run().success().stdout_str();
    assert_eq!(version, ours);
    for file in [
        "usr/share/bash-completion/completions/strata",
        "usr/share/zsh/vendor-completions/_strata",
        "usr/share/fish/vendor_completions.d/strata.fish",
        "usr/share/man/man1/strata.1.gz",
        "usr/share/man/man1/strata-backup.1.gz",
    ] {
        assert!(tree.join(file).is_file(), "{file} is not in the package");
    }
    run_ok(
        Command::new("bash")
            .arg("-n")
            .arg(tree.join("usr/share/bash-completion/completions/strata")),
    );
    let listing = run_ok(Command::new("dpkg-deb").arg("-c").arg(deb));
    assert!(listing.contains("./usr/bin/strata"), "{listing}");
}
