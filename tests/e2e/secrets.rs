//! Secrets and small CLI contracts (issue #12, part 3): database passwords kept off every
//! command line, password commands that fail or never answer, password files open to
//! others, no colour codes in logs written to files, a private cache, and exit codes as
//! the README gives them.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::db::{self, Server, DB_PASSWORD};
use crate::util::*;

// ---------------------------------------------------------------------------
// Database passwords
// ---------------------------------------------------------------------------

/// A directory of stand-ins for the database tools: each appends its command line (and
/// whether `var` is set in its environment, never its value) to `log`, then runs the real
/// tool.
struct ToolShims {
    dir: PathBuf,
    log: PathBuf,
}

impl ToolShims {
    fn new(env: &Env, tools: &[&str], var: &str) -> ToolShims {
        let dir = env.path("shims");
        let log = env.path("tools.log");
        fs::create_dir_all(&dir).unwrap();
        let path = std::env::var_os("PATH").unwrap_or_default();
        for tool in tools {
            let real = std::env::split_paths(&path)
                .map(|d| d.join(tool))
                .find(|p| p.is_file())
                .unwrap_or_else(|| panic!("{tool} is not on PATH"));
            let script = format!(
                "#!/bin/sh\n\
                 printf '%s\\n' \"{tool} $*\" >> '{log}'\n\
                 if [ -n \"${var}\" ]; then echo '{tool} has {var}' >> '{log}'; fi\n\
                 exec '{real}' \"$@\"\n",
                log = log.display(),
                real = real.display()
            );
            let shim = dir.join(tool);
            fs::write(&shim, script).unwrap();
            fs::set_permissions(&shim, fs::Permissions::from_mode(0o755)).unwrap();
        }
        ToolShims { dir, log }
    }

    /// `PATH` with the shims first.
    fn path(&self) -> std::ffi::OsString {
        let mut p = self.dir.clone().into_os_string();
        p.push(":");
        p.push(std::env::var_os("PATH").unwrap_or_default());
        p
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Backup, restore and restore test of a database whose URL holds no password, with the
/// password from --db-password-file, --db-password-command and STRATA_DB_PASSWORD_FILE: it
/// reaches every tool in its environment and appears on no command line. A password in
/// the URL still works, with a warning; in the URL and in a file at once, it is refused.
fn db_password_off_the_command_line(server: &dyn Server, db: &str, tools: [&str; 2]) {
    let env = Env::init();
    let kind = server.kind();
    let (from, to) = (format!("--{kind}"), format!("--to-{kind}"));
    server.create_db(db);
    server.sql(
        db,
        "CREATE TABLE notes (id INT PRIMARY KEY, body VARCHAR(40))",
    );
    server.sql(
        db,
        "INSERT INTO notes VALUES (1, 'one'), (2, 'two'), (3, 'three')",
    );
    let before = server.normalise(&server.dump(db));
    let (url, var) = server.url_without_password(db);
    let pw_file = env.path("db-password");
    fs::write(&pw_file, format!("{DB_PASSWORD}\n")).unwrap();
    chmod(&pw_file, 0o600);
    let pw = pw_file.to_str().unwrap();
    let shims = ToolShims::new(&env, &tools, var);
    let strata = || db::strata(&env).env("PATH", shims.path());

    // No password at all: the server refuses (it asks for one over TCP).
    strata().args(["backup", &from, &url]).run().code(1);

    let out = strata()
        .args(["backup", "--json", &from, &url, "--db-password-file", pw])
        .run()
        .success();
    assert!(
        !out.stderr.contains("holds a password") && !out.stderr.contains("chmod"),
        "{}",
        out.describe()
    );
    let id = out.json()["snapshot_id"].as_str().unwrap().to_string();

    server.drop_db(db);
    let cat = format!("cat {pw}");
    strata()
        .args(["restore", &id, &to, &url, "--db-password-command", &cat])
        .run()
        .success();
    db::assert_same_dump(
        "the database restored with --db-password-command",
        &before,
        &server.normalise(&server.dump(db)),
    );

    let admin = if kind == "postgres" {
        "postgres"
    } else {
        "mysql"
    };
    let report = strata()
        .env("STRATA_DB_PASSWORD_FILE", pw)
        .args(["verify", "--restore-test", &id, "--json", "--scratch"])
        .arg(server.url_without_password(admin).0)
        .run()
        .success()
        .json();
    assert_eq!(report["passed"], true, "{report}");

    // Every tool ran (the dump tool, and the load tool twice) with the password in its
    // environment, and none had it on its command line.
    let log = shims.log();
    assert!(
        !log.contains(DB_PASSWORD),
        "a password on a command line:\n{log}"
    );
    for tool in tools {
        assert!(
            log.lines().any(|l| l.starts_with(&format!("{tool} --")))
                && log.contains(&format!("{tool} has {var}")),
            "{tool} did not run with {var} set:\n{log}"
        );
    }

    // The password in the URL: it works, and the warning says what to use instead.
    let with_pw = server.url(db);
    let out = strata()
        .args(["backup", &from, &with_pw])
        .run()
        .success()
        .stderr_contains(&format!("the {from} URL holds a password"))
        .stderr_contains("process list")
        .stderr_contains("--db-password-file");
    assert_eq!(
        out.stderr.matches("holds a password").count(),
        1,
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains(DB_PASSWORD), "{}", out.stderr);
    strata()
        .args(["backup", &from, &with_pw, "--db-password-file", pw])
        .run()
        .code(1)
        .stderr_contains("take it out of the URL");
    server.drop_db(db);
}

#[test]
fn postgres_password_stays_off_command_lines() {
    db_password_off_the_command_line(db::postgres(), "secrets_pw", ["pg_dump", "psql"]);
}

#[test]
fn mariadb_password_stays_off_command_lines() {
    db_password_off_the_command_line(db::mariadb(), "secrets_pw", ["mysqldump", "mysql"]);
}

// ---------------------------------------------------------------------------
// Password commands and files
// ---------------------------------------------------------------------------

/// Regression: a failing password command's error repeated the command's text, which may
/// hold the password. Now: its exit status and its standard error, for the repository's
/// password command and a database's alike.
#[test]
fn failing_password_commands_are_not_echoed() {
    let env = Env::init();
    let cmd = "echo s3cret-in-the-command >/dev/null; echo 'vault is sealed' >&2; exit 7";
    for args in [
        vec!["snapshots"],
        vec![
            "backup",
            "--postgres",
            "postgres://app@127.0.0.1:1/app",
            "--db-password-command",
            cmd,
        ],
    ] {
        let mut run = env.cmd().args(&args);
        if args[0] == "snapshots" {
            run = run
                .env_remove("STRATA_PASSWORD_FILE")
                .env("STRATA_PASSWORD_COMMAND", cmd);
        }
        let out = run
            .run()
            .code(1)
            .one_line_error()
            .stderr_contains("exit status 7")
            .stderr_contains("vault is sealed");
        assert!(!out.stderr.contains("s3cret"), "{}", out.describe());
    }
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
/// and the fix, as ssh warns about keys; a private one gets none. The same for a
/// database password file.
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
    chmod(&env.password_file, 0o600);
    let db_file = env.path("db-pw");
    write_file(&db_file, b"pw\n");
    chmod(&db_file, 0o644);
    // The warning comes before the (failing) connection to a port nobody listens on.
    env.cmd()
        .args(["backup", "--postgres", "postgres://app@127.0.0.1:1/app"])
        .arg("--db-password-file")
        .arg(&db_file)
        .run()
        .code(1)
        .stderr_contains(&format!(
            "database password file {} is open to its group or others",
            db_file.display()
        ));
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

// ---------------------------------------------------------------------------
// The cache
// ---------------------------------------------------------------------------

/// Regression: the cache of a remote repository was made 0755 with 0644 files (whatever
/// the umask allowed). Now it is 0700/0600 even under `umask 000`, and a cache an older
/// version left open is closed on its next use.
#[test]
fn the_cache_is_private_whatever_the_umask() {
    let (env, _s3) = crate::remote::s3_env();
    crate::remote::init_repo(&env, false);
    let src = env.path("src");
    write_file(&src.join("a.txt"), b"cached\n");
    let umask_000 = ["sh", "-c", "umask 000; exec \"$0\" \"$@\""];
    let root = env.cache.join("strata");
    let _ = fs::remove_dir_all(&root);
    let check = |what: &str| {
        let entries = walk(&root);
        assert!(
            entries.iter().any(|e| e.path.contains("snapshots/")),
            "{what}: nothing cached: {entries:?}"
        );
        for e in entries {
            let want = if e.kind == "dir" { 0o700 } else { 0o600 };
            assert_eq!(e.mode, want, "{what}: {} ({})", e.path, e.kind);
        }
    };
    env.cmd()
        .wrap(umask_000)
        .arg("backup")
        .arg(&src)
        .run()
        .success();
    env.cmd().wrap(umask_000).arg("snapshots").run().success();
    check("made under umask 000");

    // As an older version left it.
    for e in walk(&root) {
        chmod(
            &root.join(&e.path),
            if e.kind == "dir" { 0o755 } else { 0o644 },
        );
    }
    env.strata(["snapshots"]).success();
    check("left open by an older version");
}

// ---------------------------------------------------------------------------
// Exit codes
// ---------------------------------------------------------------------------

/// Regression: bad values for --time, --keep-within, --hold-for (and their kin) exited 1;
/// they are usage errors (2), reported by the argument parser before anything runs.
#[test]
fn unreadable_option_values_are_usage_errors() {
    let env = Env::init();
    let src = env.path("src");
    write_file(&src.join("a"), b"a");
    let id = env.backup(&[&src]);
    let target = env.path("target");
    let t = target.to_str().unwrap();
    let s = src.to_str().unwrap();
    let cases: [&[&str]; 11] = [
        &["backup", "--time", "yesterday", s],
        &["backup", "--hold-until", "soon", s],
        &["backup", "--hold-for", "3x", s],
        &["backup", "--exclude", "a[", s],
        &["forget", "--keep-within", "10 days"],
        &["forget", "--keep-last", "1", "--group-by", "colour"],
        &["hold", &id, "--for", "0d"],
        &["hold", &id, "--until", "2025-13-01"],
        &["find", "*.pdf", "--newer", "last week"],
        &["find", "b["],
        &["restore", &id, "--target", t, "--include", "c["],
    ];
    let snapshots = env.repo_files("snapshots");
    for args in cases {
        env.strata(args).code(2).stderr_contains("invalid value");
    }
    assert_eq!(
        env.repo_files("snapshots"),
        snapshots,
        "a refused command wrote"
    );
    assert!(!target.exists());
}

/// Regression: a repository path that is a regular file exited 1; it is "no repository"
/// (10), and the message says a file is in the way.
#[test]
fn a_repository_path_that_is_a_file_is_no_repository() {
    let env = Env::new();
    let file = env.path("not-a-repo");
    write_file(&file, b"just a file");
    for (repo, in_the_way) in [
        (file.clone(), "it is a file"),
        (file.join("repo"), "is a file"),
    ] {
        let out = env
            .cmd()
            .env("STRATA_REPOSITORY", &repo)
            .arg("snapshots")
            .run()
            .code(10)
            .one_line_error()
            .stderr_contains(&format!("no repository at {}", repo.display()))
            .stderr_contains(in_the_way);
        assert!(
            out.stderr.contains(&file.display().to_string()),
            "{}",
            out.stderr
        );
    }
}
