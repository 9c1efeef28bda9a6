//! Helpers shared by the end-to-end tests: running the binary, setting up a
//! repository, building and comparing file trees.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use nix::sys::stat::{Mode, SFlag};
use nix::sys::time::TimeSpec;
use rand::{RngCore, SeedableRng};
use serde_json::Value;
use tempfile::TempDir;

/// The password of every test repository (written without a trailing newline).
pub const PASSWORD: &str = "correct horse battery staple";

/// A hung binary (say, one that waits for a password on a terminal) fails the
/// test after this long instead of hanging the suite. This is a safety net,
/// not a timing assertion: no healthy command comes anywhere near it.
const WATCHDOG: Duration = Duration::from_secs(10 * 60);

/// Fails the test with what to install when `tool` is not on PATH (or not at its path).
pub fn require(tool: impl AsRef<Path>, package: &str) {
    let tool = tool.as_ref();
    assert!(
        have_tool(&tool.to_string_lossy()),
        "{} is missing: install {package} (bash .ci/run does)",
        tool.display()
    );
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `command` (a shell command line) in the background under a watchdog, and returns
/// once `port` accepts connections. When this test process exits (or the server does),
/// the watchdog sends the server `signal` (`TERM`; `INT` makes PostgreSQL stop without
/// waiting for its clients), waits for it, and removes `cleanup` if given. The watchdog
/// has a process group of its own: a Ctrl-C of the test run reaches only the test process,
/// and the watchdog still cleans up.
pub fn start_server(
    what: &str,
    command: &str,
    port: u16,
    log: &Path,
    signal: &str,
    cleanup: Option<&Path>,
) {
    use std::net::{SocketAddr, TcpStream};
    use std::os::unix::process::CommandExt;
    use std::time::Instant;
    let cleanup = cleanup.map_or(String::new(), |d| {
        format!("; sleep 2; rm -rf '{}'", d.display())
    });
    let script = format!(
        "{command} >'{log}' 2>&1 & child=$!; \
         while kill -0 {pid} 2>/dev/null && kill -0 $child 2>/dev/null; do sleep 1; done; \
         kill -s {signal} $child 2>/dev/null; wait $child{cleanup}",
        log = log.display(),
        pid = std::process::id()
    );
    // The outer shell puts the watchdog in the background and exits at once.
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("( {script} ) &"))
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    assert!(status.success(), "cannot start {what}");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(90);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not start listening on {addr}; its log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn strata_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_strata"))
}

/// Whether an executable is on PATH (or is an existing absolute path).
pub fn have_tool(name: &str) -> bool {
    if name.contains('/') {
        return Path::new(name).is_file();
    }
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false)
}

// ---------------------------------------------------------------------------
// Running the binary
// ---------------------------------------------------------------------------

/// The result of one run of the binary.
pub struct Output {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: String,
    pub cmdline: String,
}

impl Output {
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// A description of the run for assertion messages.
    pub fn describe(&self) -> String {
        let mut out = self.stdout_str();
        if out.len() > 4000 {
            let mut cut = 4000;
            while !out.is_char_boundary(cut) {
                cut -= 1;
            }
            out.truncate(cut);
            out.push_str("...[truncated]");
        }
        format!(
            "command: {}\nexit code: {}\n--- stderr ---\n{}\n--- stdout ---\n{}",
            self.cmdline, self.code, self.stderr, out
        )
    }

    /// Asserts exit code 0.
    #[track_caller]
    pub fn success(self) -> Self {
        assert_eq!(self.code, 0, "command failed\n{}", self.describe());
        self
    }

    /// Asserts the given exit code.
    #[track_caller]
    pub fn code(self, code: i32) -> Self {
        assert_eq!(self.code, code, "unexpected exit code\n{}", self.describe());
        self
    }

    /// Asserts a non-zero exit code and a non-empty error message.
    #[track_caller]
    pub fn failure(self) -> Self {
        assert_ne!(
            self.code,
            0,
            "command should have failed\n{}",
            self.describe()
        );
        assert!(
            !self.stderr.trim().is_empty(),
            "failure without a message on stderr\n{}",
            self.describe()
        );
        self
    }

    /// Asserts that stderr holds exactly one non-empty line (the contract for
    /// errors).
    #[track_caller]
    pub fn one_line_error(self) -> Self {
        let lines: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "errors must be one line on stderr\n{}",
            self.describe()
        );
        self
    }

    /// Asserts that stderr contains `needle` (case-insensitive).
    #[track_caller]
    pub fn stderr_contains(self, needle: &str) -> Self {
        assert!(
            self.stderr.to_lowercase().contains(&needle.to_lowercase()),
            "stderr should mention {needle:?}\n{}",
            self.describe()
        );
        self
    }

    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON document: {e}\n{}", self.describe()))
    }

    /// Parses stdout as one JSON document per non-empty line.
    #[track_caller]
    pub fn json_lines(&self) -> Vec<Value> {
        self.stdout_str()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("line {l:?} is not JSON: {e}\n{}", self.describe()))
            })
            .collect()
    }

    /// Non-empty stdout lines.
    pub fn lines(&self) -> Vec<String> {
        self.stdout_str()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_owned)
            .collect()
    }
}

/// A command line for the binary, with its environment.
pub struct Cmd {
    prefix: Vec<OsString>,
    args: Vec<OsString>,
    envs: Vec<(OsString, Option<OsString>)>,
    stdin: Option<Vec<u8>>,
    cwd: Option<PathBuf>,
}

impl Cmd {
    /// A bare command: no repository or password in the environment.
    pub fn new() -> Cmd {
        let mut cmd = Cmd {
            prefix: Vec::new(),
            args: Vec::new(),
            envs: Vec::new(),
            stdin: None,
            cwd: None,
        };
        for var in [
            "STRATA_REPOSITORY",
            "STRATA_PASSWORD_FILE",
            "STRATA_PASSWORD_COMMAND",
            "STRATA_PASSWORD",
            "STRATA_REPOSITORY_FILE",
            "STRATA_NEW_PASSWORD_FILE",
            "RUST_LOG",
            "STRATA_LOG",
        ] {
            cmd.envs.push((var.into(), None));
        }
        cmd.envs.push(("NO_COLOR".into(), Some("1".into())));
        cmd
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Cmd {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Cmd {
        self.envs
            .push((key.as_ref().to_owned(), Some(value.as_ref().to_owned())));
        self
    }

    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Cmd {
        self.envs.push((key.as_ref().to_owned(), None));
        self
    }

    /// Working directory of the binary (always a test's temporary directory).
    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Cmd {
        self.cwd = Some(dir.as_ref().to_owned());
        self
    }

    pub fn stdin(mut self, data: impl Into<Vec<u8>>) -> Cmd {
        self.stdin = Some(data.into());
        self
    }

    /// Runs the binary through a wrapper, e.g. `setpriv --reuid=...`.
    pub fn wrap<I, S>(mut self, wrapper: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.prefix
            .extend(wrapper.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// The std `Command` (in a new session, see `run`) and its printable
    /// command line. Standard streams are left to the caller.
    pub fn build(&self) -> (Command, String) {
        let mut argv: Vec<OsString> = Vec::new();
        if have_tool("setsid") {
            argv.push("setsid".into());
        }
        argv.extend(self.prefix.iter().cloned());
        argv.push(strata_bin().into());
        argv.extend(self.args.iter().cloned());

        let cmdline = argv
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ");

        let mut command = Command::new(&argv[0]);
        command.args(&argv[1..]);
        for (k, v) in &self.envs {
            match v {
                Some(v) => command.env(k, v),
                None => command.env_remove(k),
            };
        }
        if let Some(dir) = &self.cwd {
            command.current_dir(dir);
        }
        (command, cmdline)
    }

    /// Runs the binary to completion and captures its output.
    ///
    /// The binary runs in a new session (`setsid`), so it has no controlling
    /// terminal: a password prompt fails instead of hanging the test. Every
    /// run is checked for panics.
    pub fn run(self) -> Output {
        let (mut command, cmdline) = self.build();
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        command.stdin(if self.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });

        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmdline}: {e}"));
        let pid = child.id();
        let writer = self.stdin.map(|data| {
            let mut pipe = child.stdin.take().expect("stdin pipe");
            std::thread::spawn(move || {
                // The binary may legitimately stop reading early (e.g. on an
                // error); a broken pipe is not the test's concern.
                let _ = pipe.write_all(&data);
            })
        });

        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        let output = match rx.recv_timeout(WATCHDOG) {
            Ok(res) => res.unwrap_or_else(|e| panic!("waiting for {cmdline}: {e}")),
            Err(_) => {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
                panic!("{cmdline} did not finish within {WATCHDOG:?}; killed it");
            }
        };
        if let Some(w) = writer {
            let _ = w.join();
        }

        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        let out = Output {
            code: output.status.code().unwrap_or(-1),
            stdout: output.stdout,
            stderr,
            cmdline,
        };
        assert!(
            output.status.code().is_some(),
            "killed by a signal: {:?}\n{}",
            output.status,
            out.describe()
        );
        assert!(
            !out.stderr.contains("panicked") && !out.stderr.contains("RUST_BACKTRACE"),
            "the binary panicked\n{}",
            out.describe()
        );
        out
    }
}

// ---------------------------------------------------------------------------
// A test environment: temporary directory, repository, password file
// ---------------------------------------------------------------------------

/// One test's world: a temporary directory holding the repository, the
/// password file, a private HOME/cache, and whatever sources the test makes.
pub struct Env {
    _tmp: TempDir,
    /// Canonical path of the temporary directory.
    pub root: PathBuf,
    pub repo: PathBuf,
    pub password_file: PathBuf,
    pub home: PathBuf,
    pub cache: PathBuf,
    /// More environment for every command (remote repositories: credentials, `PATH`).
    pub extra_env: Vec<(OsString, OsString)>,
}

impl Env {
    /// A fresh environment without a repository.
    pub fn new() -> Env {
        let tmp = tempfile::Builder::new()
            .prefix("strata-e2e-")
            .tempdir()
            .expect("tempdir");
        let root = tmp.path().canonicalize().expect("canonicalize tempdir");
        let password_file = root.join("password");
        fs::write(&password_file, PASSWORD).unwrap();
        fs::set_permissions(&password_file, fs::Permissions::from_mode(0o600)).unwrap();
        let home = root.join("home");
        let cache = home.join(".cache");
        fs::create_dir_all(&cache).unwrap();
        Env {
            _tmp: tmp,
            repo: root.join("repo"),
            password_file,
            home,
            cache,
            root,
            extra_env: Vec::new(),
        }
    }

    /// A fresh environment with a repository initialised with a cheap KDF.
    pub fn init() -> Env {
        let env = Env::new();
        env.strata(["init", "--kdf-memory", "1024", "--kdf-iterations", "1"])
            .success();
        env
    }

    /// Like [`Env::init`], with 1 MiB packs, so that a few MiB of data make several packs.
    pub fn init_small_packs() -> Env {
        let env = Env::new();
        env.strata([
            "init",
            "--kdf-memory",
            "1024",
            "--kdf-iterations",
            "1",
            "--pack-size",
            "1",
        ])
        .success();
        env
    }

    /// Flips one byte in the middle of the largest pack; returns the pack's id.
    pub fn flip_byte_in_largest_pack(&self) -> String {
        let pack = self.largest_pack();
        let len = fs::metadata(&pack).unwrap().len();
        let mut f = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&pack)
            .unwrap();
        let mut byte = [0u8; 1];
        f.seek(SeekFrom::Start(len / 2)).unwrap();
        f.read_exact(&mut byte).unwrap();
        f.seek(SeekFrom::Start(len / 2)).unwrap();
        f.write_all(&[byte[0] ^ 0x01]).unwrap();
        file_name(&pack)
    }

    /// A path inside the temporary directory.
    pub fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.root.join(rel)
    }

    /// A command with this environment's repository, password and HOME.
    pub fn cmd(&self) -> Cmd {
        let mut cmd = Cmd::new()
            .env("STRATA_REPOSITORY", &self.repo)
            .env("STRATA_PASSWORD_FILE", &self.password_file)
            .env("HOME", &self.home)
            .env("XDG_CACHE_HOME", &self.cache)
            .env("XDG_CONFIG_HOME", self.home.join(".config"));
        for (k, v) in &self.extra_env {
            cmd = cmd.env(k, v);
        }
        cmd
    }

    /// `check --read-data --json`, asserting that it succeeds and reports no error;
    /// returns the report.
    #[track_caller]
    pub fn check_read_data_clean(&self) -> Value {
        let report = self
            .strata(["check", "--read-data", "--json"])
            .success()
            .json();
        assert_eq!(
            report["errors"].as_array().map(Vec::len),
            Some(0),
            "{report}"
        );
        report
    }

    /// Runs `strata ARGS...` in this environment.
    pub fn strata<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.cmd().args(args).run()
    }

    /// Points the local cache somewhere empty, so that later commands read
    /// the repository itself instead of a cached copy.
    pub fn fresh_cache(&mut self) {
        let mut n = 0;
        loop {
            let dir = self.home.join(format!("cache-{n}"));
            if !dir.exists() {
                fs::create_dir_all(&dir).unwrap();
                self.cache = dir;
                return;
            }
            n += 1;
        }
    }

    /// `strata backup --json PATHS... EXTRA...`, asserting success; returns
    /// the JSON summary.
    #[track_caller]
    pub fn backup_json(&self, paths: &[&Path], extra: &[&str]) -> Value {
        let out = self
            .cmd()
            .arg("backup")
            .args(paths)
            .args(extra)
            .arg("--json")
            .run()
            .success();
        let v = out.json();
        assert!(
            v["snapshot_id"].is_string(),
            "backup --json has no snapshot_id\n{}",
            out.describe()
        );
        v
    }

    /// Backs up and returns the new snapshot id.
    #[track_caller]
    pub fn backup(&self, paths: &[&Path]) -> String {
        self.backup_json(paths, &[])["snapshot_id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// `strata snapshots --json`, parsed.
    #[track_caller]
    pub fn snapshots(&self) -> Vec<Value> {
        let out = self.strata(["snapshots", "--json"]).success();
        match out.json() {
            Value::Array(a) => a,
            other => panic!("snapshots --json is not an array: {other}"),
        }
    }

    /// Restores a snapshot into `target`, asserting success.
    #[track_caller]
    pub fn restore(&self, snapshot: &str, target: &Path) -> Output {
        self.cmd()
            .args(["restore", snapshot, "--target"])
            .arg(target)
            .run()
            .success()
    }

    /// The paths printed by `strata ls SNAPSHOT [PATH]`.
    #[track_caller]
    pub fn ls(&self, snapshot: &str, path: Option<&Path>) -> BTreeSet<String> {
        let mut cmd = self.cmd().args(["ls", snapshot]);
        if let Some(p) = path {
            cmd = cmd.arg(p);
        }
        cmd.run().success().lines().into_iter().collect()
    }

    /// Files below `dir` of the repository (e.g. "data", "index"), sorted.
    pub fn repo_files(&self, dir: &str) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let base = self.repo.join(dir);
        if base.exists() {
            collect_files(&base, &mut out);
        }
        out.sort();
        out
    }

    /// The objects below `dir` of the repository: its files without the temporary ones
    /// of writes under way (`.name.tmp-…`, renamed into place when complete).
    pub fn repo_objects(&self, dir: &str) -> Vec<PathBuf> {
        self.repo_files(dir)
            .into_iter()
            .filter(|p| !file_name(p).starts_with('.'))
            .collect()
    }

    /// Total size of the files below `dir` of the repository.
    pub fn repo_bytes(&self, dir: &str) -> u64 {
        self.repo_files(dir)
            .iter()
            .map(|p| fs::metadata(p).unwrap().len())
            .sum()
    }

    /// The largest pack file under data/.
    pub fn largest_pack(&self) -> PathBuf {
        self.repo_files("data")
            .into_iter()
            .max_by_key(|p| fs::metadata(p).unwrap().len())
            .expect("no pack files under data/")
    }
}

/// Makes every hidden file below `dir` (temporary names of writes, spool files) look
/// last written two hours ago, but in `locks/`: prune removes only leftovers that old
/// (a younger one may be a writer's that started beside it).
pub fn age_hidden_files(dir: &Path) {
    let two_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    for e in fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if e.file_type().unwrap().is_dir() {
            if e.file_name() != "locks" {
                age_hidden_files(&p);
            }
        } else if e.file_name().to_string_lossy().starts_with('.') {
            fs::File::options()
                .write(true)
                .open(&p)
                .unwrap()
                .set_modified(two_hours_ago)
                .unwrap();
        }
    }
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let ft = e.file_type().unwrap();
        if ft.is_dir() {
            collect_files(&e.path(), out);
        } else {
            out.push(e.path());
        }
    }
}

/// The file name of a path as a string (for ids stored as file names).
pub fn file_name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

/// Where `source` (an absolute path that was backed up) ends up when its
/// snapshot is restored into `target`: snapshot trees mirror absolute paths.
pub fn restored(target: &Path, source: &Path) -> PathBuf {
    assert!(source.is_absolute());
    target.join(source.strip_prefix("/").unwrap())
}

/// Every proper ancestor of an absolute path, as strings, excluding "/".
pub fn ancestors(path: &Path) -> Vec<String> {
    path.ancestors()
        .skip(1)
        .filter(|a| *a != Path::new("/") && !a.as_os_str().is_empty())
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}

/// Lowercase hex tokens of at least `min` characters found in `text`.
pub fn hex_tokens(text: &str, min: usize) -> Vec<String> {
    text.split(|c: char| !c.is_ascii_hexdigit())
        .filter(|t| t.len() >= min)
        .map(|t| t.to_ascii_lowercase())
        .collect()
}

/// Whether `text` names `id` (a 64-hex object id) in full or by a prefix of
/// at least 8 characters.
pub fn names_id(text: &str, id: &str) -> bool {
    hex_tokens(text, 8)
        .iter()
        .any(|t| id.starts_with(t.as_str()) || t.contains(id))
}

// ---------------------------------------------------------------------------
// Building test data
// ---------------------------------------------------------------------------

/// `len` bytes of reproducible pseudo-random data.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut buf = vec![0u8; len];
    rng.fill_bytes(&mut buf);
    buf
}

pub fn write_file(path: &Path, content: &[u8]) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(path, content).unwrap();
}

pub fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// Sets atime and mtime (seconds, nanoseconds) without following symlinks.
pub fn set_mtime(path: &Path, secs: i64, nanos: i64) {
    let t = TimeSpec::new(secs, nanos);
    nix::sys::stat::utimensat(
        None,
        path,
        &t,
        &t,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .unwrap_or_else(|e| panic!("utimensat {}: {e}", path.display()));
}

/// Sets an extended attribute (not following symlinks); false when the file system does
/// not support user xattrs here.
pub fn set_xattr(path: &Path, name: &str, value: &str) -> bool {
    xattr::set(path, name, value.as_bytes()).is_ok()
}

/// What `make_rich_tree` built, for the checks that go beyond the listing.
pub struct RichTree {
    pub root: PathBuf,
    /// Whether user xattrs could be set (and so are part of the comparison).
    pub xattrs: bool,
    pub sparse: PathBuf,
    pub sparse_len: u64,
    pub big: PathBuf,
    /// Hard links to one inode, relative to `root`.
    pub hardlinks: Vec<PathBuf>,
}

pub const MIB: u64 = 1024 * 1024;

/// Builds, under `root` (which must not exist), a tree covering every kind
/// of entry and metadata the format must preserve.
pub fn make_rich_tree(root: &Path) -> RichTree {
    fs::create_dir(root).unwrap();
    let p = |rel: &str| root.join(rel);

    // Regular files, nested directories, an empty file.
    write_file(&p("hello.txt"), b"hello, world\n");
    write_file(&p("empty"), b"");
    write_file(&p("deep/a/b/c/d/leaf.txt"), b"deep leaf\n");
    write_file(&p("deep/a/sibling.txt"), b"sibling\n");
    fs::create_dir_all(p("empty-dir")).unwrap();

    // Odd modes; owners other than root. chown before chmod: chown clears
    // setuid/setgid bits.
    let modes: &[(&str, u32)] = &[
        ("mode-0600", 0o600),
        ("mode-0644", 0o644),
        ("mode-0400", 0o400),
        ("mode-0000", 0o000),
        ("mode-0777", 0o777),
        ("setuid-4755", 0o4755),
        ("setgid-2750", 0o2750),
        ("suid-sgid-sticky-7711", 0o7711),
    ];
    for (name, mode) in modes {
        write_file(&p(name), format!("file {name}\n").as_bytes());
        std::os::unix::fs::chown(p(name), Some(1234), Some(5678)).unwrap();
        chmod(&p(name), *mode);
    }
    fs::create_dir(p("dir-0751")).unwrap();
    write_file(&p("dir-0751/inside"), b"inside 0751\n");
    chmod(&p("dir-0751"), 0o751);
    fs::create_dir(p("sticky-1777")).unwrap();
    write_file(&p("sticky-1777/tmpfile"), b"in sticky dir\n");
    chmod(&p("sticky-1777"), 0o1777);
    fs::create_dir(p("owned-dir")).unwrap();
    write_file(&p("owned-dir/owned-file"), b"owned\n");
    std::os::unix::fs::chown(p("owned-dir"), Some(4321), Some(8765)).unwrap();
    std::os::unix::fs::chown(p("owned-dir/owned-file"), Some(1234), Some(5678)).unwrap();
    chmod(&p("owned-dir"), 0o2770);

    // Symlinks: relative, to a directory, dangling, absolute; one not owned
    // by root.
    std::os::unix::fs::symlink("hello.txt", p("link-relative")).unwrap();
    std::os::unix::fs::symlink("deep/a", p("link-to-dir")).unwrap();
    std::os::unix::fs::symlink("does/not/exist", p("link-dangling")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", p("link-absolute")).unwrap();
    std::os::unix::fs::symlink("../../hello.txt", p("deep/a/link-up")).unwrap();
    std::os::unix::fs::lchown(p("link-relative"), Some(1234), Some(5678)).unwrap();

    // Hard links: three names for one inode, across directories.
    write_file(&p("hardlink-1"), b"one inode, three names\n");
    fs::hard_link(p("hardlink-1"), p("hardlink-2")).unwrap();
    fs::hard_link(p("hardlink-1"), p("deep/hardlink-3")).unwrap();
    let hardlinks = vec![
        PathBuf::from("hardlink-1"),
        PathBuf::from("hardlink-2"),
        PathBuf::from("deep/hardlink-3"),
    ];

    // Special files.
    nix::unistd::mkfifo(&p("fifo"), Mode::from_bits_truncate(0o640)).unwrap();
    chmod(&p("fifo"), 0o640);
    nix::sys::stat::mknod(
        &p("chardev"),
        SFlag::S_IFCHR,
        Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(1, 3),
    )
    .unwrap();
    chmod(&p("chardev"), 0o666);
    nix::sys::stat::mknod(
        &p("blockdev"),
        SFlag::S_IFBLK,
        Mode::from_bits_truncate(0o660),
        nix::sys::stat::makedev(7, 200),
    )
    .unwrap();
    chmod(&p("blockdev"), 0o660);
    std::os::unix::fs::chown(p("blockdev"), Some(0), Some(6)).unwrap();

    // Names that are not UTF-8.
    let bad_file = root.join(OsStr::from_bytes(b"bad-\xff\xfe.txt"));
    write_file(&bad_file, b"not utf-8 name\n");
    let bad_dir = root.join(OsStr::from_bytes(b"dir-\xff\xfe"));
    fs::create_dir(&bad_dir).unwrap();
    write_file(&bad_dir.join(OsStr::from_bytes(b"\xfe\xff")), b"inner\n");
    std::os::unix::fs::symlink(OsStr::from_bytes(b"bad-\xff\xfe.txt"), p("link-bad-name")).unwrap();
    // Names with spaces, newlines, leading dashes.
    write_file(&p("with space"), b"space\n");
    write_file(&p("new\nline"), b"newline\n");
    write_file(&p("-dash"), b"dash\n");
    // The longest name a Linux file system allows (255 bytes).
    write_file(&p(&"n".repeat(255)), b"long name\n");
    // A read-only directory with content (the restorer must set its mode
    // after filling it; root would not notice, other users would).
    write_file(&p("readonly-dir/file"), b"in a read-only dir\n");
    chmod(&p("readonly-dir"), 0o555);
    // Timestamps before the epoch and far in the future (set below).
    write_file(&p("before-1970"), b"old\n");
    write_file(&p("year-2100"), b"future\n");

    // A sparse file: 200 MB, a few bytes in the middle.
    let sparse = p("sparse.img");
    let sparse_len = 200 * 1000 * 1000;
    {
        let mut f = File::create(&sparse).unwrap();
        f.set_len(sparse_len).unwrap();
        f.seek(SeekFrom::Start(sparse_len / 2)).unwrap();
        f.write_all(b"a few bytes in the middle of nowhere")
            .unwrap();
    }

    // A file larger than the maximum chunk size (8 MiB).
    let big = p("big.bin");
    write_file(&big, &random_bytes(20, 20 * MIB as usize));

    // Extended attributes, where the file system allows them.
    let mut xattrs = set_xattr(&p("hello.txt"), "user.strata.comment", "greeting");
    if xattrs {
        assert!(set_xattr(
            &p("hello.txt"),
            "user.strata.binary",
            "0x00ff10fe"
        ));
        assert!(set_xattr(
            &p("deep"),
            "user.strata.dir",
            "a directory attribute"
        ));
        assert!(set_xattr(&p("empty"), "user.strata.empty-value", ""));
        assert!(set_xattr(&bad_file, "user.strata.on-bad-name", "x"));
    } else {
        eprintln!("note: cannot set user xattrs here; xattrs are not compared");
        xattrs = false;
    }

    // Timestamps with nanoseconds on everything, directories last (children
    // first) so that nothing touches them afterwards.
    let mut all = Vec::new();
    collect_all(root, &mut all);
    all.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for (i, path) in all.iter().enumerate() {
        let secs = 1_500_000_000 + (i as i64) * 3_607;
        let nanos = (123_456_789 + (i as i64) * 7_919) % 1_000_000_000;
        set_mtime(path, secs, nanos);
    }
    set_mtime(&p("before-1970"), -315_619_200, 500);
    set_mtime(&p("year-2100"), 4_102_444_800, 999_999_999);
    set_mtime(root, 1_600_000_000, 987_654_321);

    RichTree {
        root: root.to_owned(),
        xattrs,
        sparse,
        sparse_len,
        big,
        hardlinks,
    }
}

/// Every path below `dir` (not following symlinks), excluding `dir`.
fn collect_all(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let path = e.path();
        out.push(path.clone());
        if e.file_type().unwrap().is_dir() {
            collect_all(&path, out);
        }
    }
}

// ---------------------------------------------------------------------------
// Describing and comparing trees
// ---------------------------------------------------------------------------

/// Everything the tests compare about one entry of a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path relative to the walked root, non-printable bytes escaped; "." is
    /// the root itself.
    pub path: String,
    pub kind: &'static str,
    /// Permission bits including setuid, setgid and sticky.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Size of regular files.
    pub size: Option<u64>,
    /// Modification time in nanoseconds since the epoch (every kind,
    /// directories and symlinks included).
    pub mtime_ns: i128,
    pub link_target: Option<String>,
    /// (major, minor) of device nodes.
    pub rdev: Option<(u64, u64)>,
    /// (name, hex value), sorted.
    pub xattrs: Vec<(String, String)>,
    /// BLAKE3 of regular files' content.
    pub blake3: Option<String>,
    /// For a regular file with several names inside the tree: the first of
    /// those names (in path order). Files sharing it are one inode.
    pub hardlink_group: Option<String>,
}

/// Escapes a raw path: printable ASCII as is, everything else as \xNN.
pub fn escape(bytes: &[u8]) -> String {
    let mut s = String::new();
    for &b in bytes {
        if (0x20..0x7f).contains(&b) && b != b'\\' {
            s.push(b as char);
        } else {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    s
}

fn kind_of(ft: &fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_dir() {
        "dir"
    } else if ft.is_file() {
        "file"
    } else if ft.is_symlink() {
        "symlink"
    } else if ft.is_fifo() {
        "fifo"
    } else if ft.is_char_device() {
        "chardev"
    } else if ft.is_block_device() {
        "blockdev"
    } else if ft.is_socket() {
        "socket"
    } else {
        "unknown"
    }
}

pub fn blake3_file(path: &Path) -> String {
    let mut f = File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    hasher.finalize().to_hex().to_string()
}

/// Walks `root` (not following symlinks) and describes every entry,
/// sorted by raw path bytes.
pub fn walk(root: &Path) -> Vec<Entry> {
    let mut raw: Vec<(Vec<u8>, PathBuf, fs::Metadata)> = Vec::new();
    let meta = fs::symlink_metadata(root).unwrap();
    raw.push((b".".to_vec(), root.to_owned(), meta));
    walk_into(root, b"", &mut raw);
    raw.sort_by(|a, b| a.0.cmp(&b.0));

    // Hard link groups: inodes with several names inside the tree.
    let mut by_inode: HashMap<(u64, u64), Vec<String>> = HashMap::new();
    for (rel, _, m) in &raw {
        if m.file_type().is_file() && m.nlink() > 1 {
            by_inode
                .entry((m.dev(), m.ino()))
                .or_default()
                .push(escape(rel));
        }
    }

    raw.iter()
        .map(|(rel, path, m)| {
            let ft = m.file_type();
            let kind = kind_of(&ft);
            let is_dev = kind == "chardev" || kind == "blockdev";
            let hardlink_group = if ft.is_file() && m.nlink() > 1 {
                let names = &by_inode[&(m.dev(), m.ino())];
                if names.len() > 1 {
                    names.iter().min().cloned()
                } else {
                    None
                }
            } else {
                None
            };
            Entry {
                path: escape(rel),
                kind,
                mode: m.mode() & 0o7777,
                uid: m.uid(),
                gid: m.gid(),
                size: ft.is_file().then_some(m.len()),
                mtime_ns: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
                link_target: ft
                    .is_symlink()
                    .then(|| escape(fs::read_link(path).unwrap().as_os_str().as_bytes())),
                rdev: is_dev.then(|| {
                    (
                        nix::sys::stat::major(m.rdev()),
                        nix::sys::stat::minor(m.rdev()),
                    )
                }),
                xattrs: read_xattrs(path),
                blake3: ft.is_file().then(|| blake3_file(path)),
                hardlink_group,
            }
        })
        .collect()
}

fn walk_into(dir: &Path, rel: &[u8], out: &mut Vec<(Vec<u8>, PathBuf, fs::Metadata)>) {
    for e in fs::read_dir(dir).unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display())) {
        let e = e.unwrap();
        let mut r = rel.to_vec();
        if !r.is_empty() {
            r.push(b'/');
        }
        r.extend_from_slice(e.file_name().as_bytes());
        let path = e.path();
        let meta = fs::symlink_metadata(&path).unwrap();
        let is_dir = meta.file_type().is_dir();
        out.push((r.clone(), path.clone(), meta));
        if is_dir {
            walk_into(&path, &r, out);
        }
    }
}

/// Extended attributes of one entry (not following symlinks) as (name, hex value), sorted.
fn read_xattrs(path: &Path) -> Vec<(String, String)> {
    let Ok(names) = xattr::list(path) else {
        return Vec::new();
    };
    let mut out: Vec<(String, String)> = names
        .filter_map(|n| {
            let value = xattr::get(path, &n).ok().flatten()?;
            Some((n.to_string_lossy().into_owned(), hex_of(&value)))
        })
        .collect();
    out.sort();
    out
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Asserts that two trees are identical in everything `Entry` records, with a
/// readable difference when they are not. Returns the listing of `a`.
#[track_caller]
pub fn assert_same_tree(a: &Path, b: &Path) -> Vec<Entry> {
    let left = walk(a);
    let right = walk(b);
    if left != right {
        let lmap: BTreeMap<&str, &Entry> = left.iter().map(|e| (e.path.as_str(), e)).collect();
        let rmap: BTreeMap<&str, &Entry> = right.iter().map(|e| (e.path.as_str(), e)).collect();
        let mut diffs = Vec::new();
        for (path, l) in &lmap {
            match rmap.get(path) {
                None => diffs.push(format!("missing in restored tree: {path}")),
                Some(r) if r != l => diffs.push(format!(
                    "differs: {path}\n   source:   {l:?}\n   restored: {r:?}"
                )),
                Some(_) => {}
            }
        }
        for path in rmap.keys() {
            if !lmap.contains_key(path) {
                diffs.push(format!("only in restored tree: {path}"));
            }
        }
        let total = diffs.len();
        diffs.truncate(60);
        panic!(
            "trees differ: {} vs {} ({total} differences, first {}):\n{}",
            a.display(),
            b.display(),
            diffs.len(),
            diffs.join("\n")
        );
    }
    left
}

/// Bytes actually allocated to a file.
pub fn allocated_bytes(path: &Path) -> u64 {
    fs::metadata(path).unwrap().blocks() * 512
}

/// `chown -hR uid:gid path`.
pub fn chown_tree(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).unwrap();
    if fs::symlink_metadata(path).unwrap().is_dir() {
        let mut all = Vec::new();
        collect_all(path, &mut all);
        for p in all {
            std::os::unix::fs::lchown(&p, Some(uid), Some(gid)).unwrap();
        }
    }
}
