//! Locks across PID namespaces (issue #12: a live backup's lock judged stale by a prune
//! that could not see its pid), and reading a repository that cannot be written.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::*;

/// What the backup of each round reads before the prune starts: the chunker cuts all but
/// the last 8 MiB (the largest chunk) of it, about 8 chunks, so that at least two full
/// 1 MiB packs are uploaded however the chunks are spread over the packers (with 12 MiB,
/// about 4 chunks over two packers, one round in a hundred had only one).
const HEAD: usize = 16 * MIB as usize;

/// A pid that no process on this host has now, so that a process given it inside another
/// PID namespace cannot be found from here. The namespace's next pid is set to it.
fn pid_free_here() -> u32 {
    let max: u32 = fs::read_to_string("/proc/sys/kernel/pid_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // Pids are handed out upwards from the last one, wrapping at pid_max: the free pid
    // just below the last one handed out is the one taken again last (the highest free pid
    // overall was taken by another test's process once the counter came near pid_max).
    let last: u32 = fs::read_to_string("/proc/sys/kernel/ns_last_pid")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(max);
    let free = |p: &u32| !Path::new(&format!("/proc/{p}")).exists();
    (1000..last.min(max))
        .rev()
        .find(free)
        .or_else(|| (last.saturating_add(1000)..max).rev().find(free))
        .expect("a free pid")
}

/// Starts `strata backup --stdin` in a new PID namespace (as a container or a systemd
/// service with PrivatePIDs would), where it gets pid `pid`; its input is the test's.
fn backup_in_another_namespace(env: &Env, pid: u32) -> Child {
    require("unshare", "util-linux");
    let script = format!(
        "echo {} > /proc/sys/kernel/ns_last_pid && '{}' backup --stdin --stdin-filename big.bin --json",
        pid - 1,
        strata_bin().display()
    );
    let (probe, _) = env.cmd().build();
    let mut command = Command::new("unshare");
    command.args(["--pid", "--fork", "--mount-proc", "sh", "-c", &script]);
    for (k, v) in probe.get_envs() {
        match v {
            Some(v) => command.env(k, v),
            None => command.env_remove(k),
        };
    }
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("unshare")
}

fn wait_until(what: &str, child: &mut Child, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !done() {
        assert!(Instant::now() < deadline, "{what}: never happened");
        if let Some(status) = child.try_wait().unwrap() {
            panic!("{what}: the backup ended first ({status})");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The reproduction of issue #12, run 20 times: a backup in another PID namespace under
/// the same host name has written full packs that no index names yet when a prune starts
/// on the host. The prune runs beside it (two-phase, spec/prune.md): it must neither
/// remove the backup's lock nor delete its packs, only mark them; after each round the
/// repository checks clean, and at the end every byte is verified and every snapshot
/// restores byte for byte.
#[test]
fn prune_beside_a_backup_in_another_pid_namespace_loses_nothing() {
    let env = Env::init_small_packs();
    let mut contents: Vec<(String, Vec<u8>)> = Vec::new();
    for round in 0..20u64 {
        let pid = pid_free_here();
        let data = random_bytes(round, HEAD + (MIB + round * 1000) as usize);
        let packs_before = env.repo_objects("data");
        let mut backup = backup_in_another_namespace(&env, pid);
        let mut stdin = backup.stdin.take().unwrap();
        // Full packs are written and uploaded, and no index names them yet: the backup
        // waits for the rest of its input. (Chunks of a stream are up to 8 MiB: the
        // chunker needs that much ahead to cut.)
        stdin.write_all(&data[..HEAD]).unwrap();
        wait_until("the backup's lock and packs", &mut backup, || {
            !env.repo_objects("locks").is_empty()
                && env.repo_objects("data").len() >= packs_before.len() + 2
        });
        // The lock really names a pid that does not exist here.
        let shown = env.strata(["unlock"]).success().stdout_str();
        assert!(
            shown.contains(&format!("(pid {pid})")) && shown.contains("kept"),
            "{shown}"
        );
        assert!(!Path::new(&format!("/proc/{pid}")).exists());
        let written: Vec<PathBuf> = env
            .repo_objects("data")
            .into_iter()
            .filter(|p| !packs_before.contains(p))
            .collect();

        let stats = env.strata(["prune", "--json"]).success().json();
        assert_eq!(stats["other_sessions"], 1, "round {round}: {stats}");
        assert!(
            stats["unindexed_packs"].as_u64().unwrap() >= written.len() as u64,
            "round {round}: the backup's packs are marked: {stats}"
        );
        let after = env.repo_objects("data");
        for p in &written {
            assert!(
                after.contains(p),
                "round {round}: the backup's pack {} was deleted",
                p.display()
            );
        }
        assert_eq!(
            env.repo_objects("locks").len(),
            1,
            "the backup's lock is kept"
        );

        stdin.write_all(&data[HEAD..]).unwrap();
        drop(stdin);
        let out = backup.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "round {round}: the backup failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let id = summary["snapshot_id"].as_str().unwrap().to_owned();
        // Once it is done, a prune keeps what its snapshot needs (its index names the
        // packs it marked) and deletes only what nothing names.
        let stats = env.strata(["prune", "--json"]).success().json();
        assert_eq!(stats["snapshots"], round + 1, "{stats}");
        contents.push((id, data));
        // Every pack every snapshot needs is there, whole (the bytes are read below).
        env.strata(["check"]).success();
    }
    env.check_read_data_clean();
    for (id, data) in &contents {
        let out = env.cmd().args(["dump", id, "big.bin"]).run().success();
        assert!(
            out.stdout == *data,
            "snapshot {id} does not restore as written"
        );
    }
}

/// Mounts `dir` read-only at `at` (a bind mount), as a read-only medium would be.
struct ReadOnlyMount(std::path::PathBuf);

impl ReadOnlyMount {
    fn new(dir: &Path, at: &Path) -> ReadOnlyMount {
        fs::create_dir_all(at).unwrap();
        let run = |args: &[&str]| {
            let status = Command::new("mount").args(args).status().expect("mount");
            assert!(status.success(), "mount {args:?}");
        };
        run(&["--bind", dir.to_str().unwrap(), at.to_str().unwrap()]);
        let mounted = ReadOnlyMount(at.to_owned());
        run(&["-o", "remount,ro,bind", at.to_str().unwrap()]);
        mounted
    }
}

impl Drop for ReadOnlyMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// A restore from a read-only medium is the disaster case: every command that only reads
/// works there, without a lock (with a warning, or silently with --no-lock); commands that
/// write fail clearly, and --no-lock is refused for them.
#[test]
fn reading_commands_work_on_a_read_only_repository() {
    let env = Env::init();
    let src = env.path("src");
    write_file(&src.join("a.txt"), b"alpha\n");
    write_file(&src.join("sub/b.bin"), &random_bytes(1, 200_000));
    let id = env.backup(&[&src]);
    let ro = ReadOnlyMount::new(&env.repo, &env.path("ro"));
    assert!(
        fs::write(ro.0.join("probe"), b"x").is_err(),
        "the mount is not read-only"
    );
    let at_ro = |args: &[&str]| env.cmd().env("STRATA_REPOSITORY", &ro.0).args(args).run();

    let warned = |out: Output| out.success().stderr_contains("without a lock");
    warned(at_ro(&["check", "--read-data"]));
    warned(at_ro(&["ls", &id]));
    let target = env.path("restored");
    warned(at_ro(&[
        "restore",
        &id,
        "--target",
        target.to_str().unwrap(),
    ]));
    assert_same_tree(&src, &restored(&target, &src));
    let out = warned(at_ro(&["dump", &id, src.join("a.txt").to_str().unwrap()]));
    assert_eq!(out.stdout, b"alpha\n");
    warned(at_ro(&["find", "a.txt", "--snapshot", &id]));
    warned(at_ro(&["stats", &id]));
    at_ro(&["snapshots"]).success();
    // --no-lock does not try, and does not warn.
    let out = at_ro(&["--no-lock", "check"]).success();
    assert!(!out.stderr.contains("without a lock"), "{}", out.describe());

    // Writing commands fail clearly; --no-lock is a usage error for them.
    at_ro(&["backup", src.to_str().unwrap()]).failure();
    at_ro(&["--no-lock", "backup", src.to_str().unwrap()])
        .code(2)
        .stderr_contains("--no-lock");
    at_ro(&["--no-lock", "prune"]).code(2);
}

/// A full disk: no lock can be written, and a restore still works.
#[test]
fn a_restore_works_when_the_repository_disk_is_full() {
    let env = Env::init();
    let src = env.path("src");
    write_file(&src.join("a.txt"), b"alpha\n");
    let id = env.backup(&[&src]);
    let small = env.path("small");
    fs::create_dir_all(&small).unwrap();
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(&small)
        .status()
        .unwrap();
    assert!(status.success());
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(self.0).status();
        }
    }
    let _unmount = Unmount(&small);
    let copy = small.join("repo");
    let status = Command::new("cp")
        .arg("-a")
        .arg(&env.repo)
        .arg(&copy)
        .status()
        .unwrap();
    assert!(status.success());
    // Fill the rest of the disk.
    let mut filler = fs::File::create(small.join("filler")).unwrap();
    while filler.write_all(&[0u8; 65536]).is_ok() {}
    drop(filler);

    let target = env.path("restored");
    env.cmd()
        .env("STRATA_REPOSITORY", &copy)
        .args(["restore", &id, "--target", target.to_str().unwrap()])
        .run()
        .success()
        .stderr_contains("without a lock");
    assert_same_tree(&src, &restored(&target, &src));
}
