//! Repository passwords and locations: empty passwords refused (file, command, prompt on
//! a terminal) unless `--insecure-no-password`; `STRATA_PASSWORD`; `STRATA_REPOSITORY_FILE`
//! and `--repo-file`; the command line winning over the environment, and two sources at
//! one level being a usage error.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::util::*;

/// Writes a password file as it should be (mode 0600: no warning on stderr).
fn write_secret(path: &Path, content: &str) {
    fs::write(path, content).unwrap();
    chmod(path, 0o600);
}

const CHEAP_KDF: [&str; 4] = ["--kdf-memory", "1024", "--kdf-iterations", "1"];

/// An environment without a password source: only the repository and HOME.
fn no_password(env: &Env) -> Cmd {
    env.cmd().env_remove("STRATA_PASSWORD_FILE")
}

#[track_caller]
fn assert_no_repository(env: &Env) {
    assert!(
        !env.repo.exists(),
        "an init that failed left {}: {:?}",
        env.repo.display(),
        fs::read_dir(&env.repo).map(|d| d.count())
    );
}

/// The number of key files.
fn key_count(env: &Env) -> usize {
    env.repo_files("keys").len()
}

/// Runs `strata ARGS` on a pseudo-terminal (`script` from util-linux), typing `typed`;
/// returns the exit code and what the terminal showed. The environment holds the
/// repository and HOME of `env`, and no password source.
fn on_terminal(env: &Env, args: &[&str], typed: &str) -> (i32, String) {
    require("script", "bsdutils (util-linux's script)");
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let mut line = quote(&strata_bin().to_string_lossy());
    for a in args {
        line.push(' ');
        line.push_str(&quote(a));
    }
    let mut cmd = Command::new("timeout");
    cmd.args(["120", "script", "-qec", &line, "/dev/null"]);
    for var in [
        "STRATA_PASSWORD_FILE",
        "STRATA_PASSWORD_COMMAND",
        "STRATA_PASSWORD",
        "STRATA_NEW_PASSWORD_FILE",
        "STRATA_REPOSITORY_FILE",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("STRATA_REPOSITORY", &env.repo)
        .env("HOME", &env.home)
        .env("XDG_CACHE_HOME", &env.cache)
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("start script");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        // One line at a time, as a person types: the prompt reads line by line.
        for l in typed.split_inclusive('\n') {
            std::thread::sleep(std::time::Duration::from_millis(300));
            stdin.write_all(l.as_bytes()).unwrap();
            stdin.flush().unwrap();
        }
        // Keep the terminal open until the command is done (script ends at EOF otherwise).
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    let out = child.wait_with_output().unwrap();
    let shown =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(!shown.contains("panicked"), "{shown}");
    (out.status.code().unwrap_or(-1), shown)
}

#[test]
fn init_refuses_an_empty_password_file_and_creates_nothing() {
    let env = Env::new();
    for content in ["", "\n", "\r\n"] {
        fs::write(&env.password_file, content).unwrap();
        env.cmd()
            .arg("init")
            .args(CHEAP_KDF)
            .run()
            .code(1)
            .one_line_error()
            .stderr_contains("empty password (from the password file)")
            .stderr_contains("--insecure-no-password");
        assert_no_repository(&env);
    }
}

#[test]
fn init_refuses_a_password_command_that_prints_nothing() {
    let env = Env::new();
    no_password(&env)
        .env("STRATA_PASSWORD_COMMAND", "true")
        .arg("init")
        .args(CHEAP_KDF)
        .run()
        .code(1)
        .one_line_error()
        .stderr_contains("empty password (from the password command)");
    assert_no_repository(&env);
    // The same through the flag.
    no_password(&env)
        .args(["init", "--password-command", "printf ''"])
        .args(CHEAP_KDF)
        .run()
        .code(1)
        .stderr_contains("empty password");
    assert_no_repository(&env);
}

#[test]
fn init_refuses_enter_at_the_prompt_and_creates_nothing() {
    let env = Env::new();
    let mut args = vec!["init"];
    args.extend(CHEAP_KDF);
    let (code, shown) = on_terminal(&env, &args, "\n\n");
    assert_eq!(code, 1, "{shown}");
    assert!(
        shown.contains("empty password (from the prompt)"),
        "{shown}"
    );
    assert_no_repository(&env);
    // The terminal works: a real password typed twice makes the repository.
    let (code, shown) = on_terminal(&env, &args, "typed secret\ntyped secret\n");
    assert_eq!(code, 0, "{shown}");
    assert!(env.repo.join("config").is_file(), "{shown}");
    let typed = env.path("typed");
    write_secret(&typed, "typed secret");
    env.cmd()
        .env("STRATA_PASSWORD_FILE", &typed)
        .arg("snapshots")
        .run()
        .success();
}

#[test]
fn key_add_and_passwd_refuse_empty_new_passwords() {
    let env = Env::init();
    let empty = env.path("empty");
    write_secret(&empty, "");
    for action in ["add", "passwd"] {
        env.cmd()
            .args(["key", action, "--new-password-file"])
            .arg(&empty)
            .args(CHEAP_KDF)
            .run()
            .code(1)
            .one_line_error()
            .stderr_contains("empty password (from the new password file)")
            .stderr_contains("--new-insecure-no-password");
        assert_eq!(key_count(&env), 1);
        // At the prompt. The repository password comes from its file, named by the flag
        // (the terminal's environment has none).
        let pw = env.password_file.to_str().unwrap();
        let mut args = vec!["--password-file", pw, "key", action];
        args.extend(CHEAP_KDF);
        let (code, shown) = on_terminal(&env, &args, "\n\n");
        assert_eq!(code, 1, "{shown}");
        assert!(
            shown.contains("empty password (from the prompt)"),
            "{shown}"
        );
        assert_eq!(key_count(&env), 1);
    }
    env.strata(["snapshots"]).success();
    // The prompt works: a typed password is added.
    let pw = env.password_file.to_str().unwrap();
    let mut args = vec!["--password-file", pw, "key", "add"];
    args.extend(CHEAP_KDF);
    let (code, shown) = on_terminal(&env, &args, "second\nsecond\n");
    assert_eq!(code, 0, "{shown}");
    assert_eq!(key_count(&env), 2);
}

#[test]
fn insecure_no_password_makes_and_opens_a_repository_without_one() {
    let env = Env::new();
    let src = env.path("src");
    write_file(&src.join("a"), b"some data");
    // Given after the subcommand (it is global), with no password source at all.
    no_password(&env)
        .args(["init", "--insecure-no-password"])
        .args(CHEAP_KDF)
        .run()
        .success()
        .stderr_contains("no password");
    no_password(&env)
        .args(["--insecure-no-password", "backup"])
        .arg(&src)
        .run()
        .success();
    // Without the flag, the empty password is refused, not tried.
    fs::write(&env.password_file, "").unwrap();
    env.strata(["snapshots"])
        .code(1)
        .stderr_contains("--insecure-no-password");
    // Giving it a password: `key passwd` opened with no password.
    let new_pw = env.path("new");
    write_secret(&new_pw, "now with a password");
    no_password(&env)
        .args([
            "--insecure-no-password",
            "key",
            "passwd",
            "--new-password-file",
        ])
        .arg(&new_pw)
        .args(CHEAP_KDF)
        .run()
        .success();
    no_password(&env)
        .args(["--insecure-no-password", "snapshots"])
        .run()
        .code(12);
    let snaps = env
        .cmd()
        .env("STRATA_PASSWORD_FILE", &new_pw)
        .args(["snapshots", "--json"])
        .run()
        .success()
        .json();
    assert_eq!(snaps.as_array().map(Vec::len), Some(1), "{snaps}");
    // And back: a key without a password needs its own flag.
    env.cmd()
        .env("STRATA_PASSWORD_FILE", &new_pw)
        .args(["key", "add", "--new-insecure-no-password"])
        .args(CHEAP_KDF)
        .run()
        .success();
    no_password(&env)
        .args(["snapshots", "--insecure-no-password"])
        .run()
        .success();
}

#[test]
fn strata_password_gives_the_password() {
    let env = Env::new();
    let with_var = |value: &str| no_password(&env).env("STRATA_PASSWORD", value);
    with_var(PASSWORD)
        .arg("init")
        .args(CHEAP_KDF)
        .run()
        .success();
    // The repository's password is the variable's value: the usual file opens it.
    env.strata(["snapshots"]).success();
    with_var(PASSWORD).arg("snapshots").run().success();
    with_var("not the password").arg("snapshots").run().code(12);
    // Set but empty is not set.
    with_var("")
        .arg("snapshots")
        .run()
        .code(1)
        .stderr_contains("no password given");
}

#[test]
fn the_command_line_wins_and_two_sources_at_one_level_are_usage_errors() {
    let env = Env::init();
    let wrong = env.path("wrong");
    write_secret(&wrong, "wrong");
    // A flag wins over every variable.
    env.cmd()
        .env("STRATA_PASSWORD", "wrong")
        .env("STRATA_PASSWORD_COMMAND", "echo wrong")
        .env("STRATA_PASSWORD_FILE", &wrong)
        .arg("--password-file")
        .arg(&env.password_file)
        .arg("snapshots")
        .run()
        .success();
    env.cmd()
        .env("STRATA_PASSWORD_FILE", &wrong)
        .args(["snapshots", "--password-command"])
        .arg(format!("cat {}", env.password_file.display()))
        .run()
        .success();
    // Two variables: which one was meant?
    for (var, value) in [
        ("STRATA_PASSWORD", PASSWORD.to_string()),
        (
            "STRATA_PASSWORD_COMMAND",
            format!("cat {}", env.password_file.display()),
        ),
    ] {
        env.cmd()
            .env(var, &value)
            .arg("snapshots")
            .run()
            .code(2)
            .stderr_contains("STRATA_PASSWORD_FILE")
            .stderr_contains(var)
            .stderr_contains("unset all but one");
    }
    // Two flags.
    env.cmd()
        .arg("--password-file")
        .arg(&env.password_file)
        .args(["snapshots", "--password-command", "echo x"])
        .run()
        .code(2)
        .stderr_contains("--password-file and --password-command each give");
    env.cmd()
        .arg("--password-file")
        .arg(&env.password_file)
        .args(["snapshots", "--insecure-no-password"])
        .run()
        .code(2)
        .stderr_contains("give only one");
}

#[test]
fn the_repository_location_from_a_file() {
    let env = Env::init();
    let bare = || env.cmd().env_remove("STRATA_REPOSITORY");
    let file = env.path("repo-location");
    fs::write(
        &file,
        format!("  {}  \n# the rest is ignored\n", env.repo.display()),
    )
    .unwrap();
    bare()
        .env("STRATA_REPOSITORY_FILE", &file)
        .arg("snapshots")
        .run()
        .success();
    bare()
        .arg("--repo-file")
        .arg(&file)
        .arg("snapshots")
        .run()
        .success();
    // The flag wins over the environment, in both directions.
    let elsewhere = env.path("no-repo-here");
    let other_file = env.path("other-location");
    fs::write(&other_file, elsewhere.to_str().unwrap()).unwrap();
    bare()
        .env("STRATA_REPOSITORY_FILE", &other_file)
        .arg("-r")
        .arg(&env.repo)
        .arg("snapshots")
        .run()
        .success();
    bare()
        .env("STRATA_REPOSITORY", &elsewhere)
        .arg("--repo-file")
        .arg(&file)
        .arg("snapshots")
        .run()
        .success();
    // Two at one level.
    bare()
        .env("STRATA_REPOSITORY", &env.repo)
        .env("STRATA_REPOSITORY_FILE", &file)
        .arg("snapshots")
        .run()
        .code(2)
        .stderr_contains("STRATA_REPOSITORY and STRATA_REPOSITORY_FILE");
    bare()
        .arg("-r")
        .arg(&env.repo)
        .arg("--repo-file")
        .arg(&file)
        .arg("snapshots")
        .run()
        .code(2)
        .stderr_contains("give only one");
    // A file that says nothing, or is not there: a clear error.
    let empty = env.path("empty-location");
    write_secret(&empty, "\n");
    bare()
        .env("STRATA_REPOSITORY_FILE", &empty)
        .arg("snapshots")
        .run()
        .code(1)
        .one_line_error()
        .stderr_contains("is empty");
    bare()
        .env("STRATA_REPOSITORY_FILE", env.path("missing"))
        .arg("snapshots")
        .run()
        .code(1)
        .one_line_error()
        .stderr_contains("missing");
    // `version` needs no repository, even a broken one.
    bare()
        .env("STRATA_REPOSITORY_FILE", env.path("missing"))
        .arg("version")
        .run()
        .success();
}

#[test]
fn help_names_the_sources() {
    let help = Cmd::new().arg("--help").run().success().stdout_str();
    for needle in [
        "--repo-file",
        "STRATA_REPOSITORY_FILE",
        "--insecure-no-password",
        "STRATA_PASSWORD",
    ] {
        assert!(help.contains(needle), "--help lacks {needle}:\n{help}");
    }
}
