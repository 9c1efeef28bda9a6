//! `strata mount`: the FUSE view compared entry by entry with the source tree, the virtual
//! layout, reads that fetch only the chunk they need, and unmounting on SIGTERM or from
//! outside with the lock released.
//!
//! Every mount is a [`Mounted`] guard: a failing test kills the process and unmounts, so
//! it never leaves a mount behind. Without /dev/fuse these tests fail with a message
//! saying so (they are not skipped).

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

use crate::util::*;

/// A safety net for a mount that never comes up or never goes away, not a timing
/// assertion.
const PATIENCE: Duration = Duration::from_secs(60);

/// A running `strata mount`. Dropping it kills the process and unmounts, whatever state
/// a failed test left it in.
pub(crate) struct Mounted {
    child: Option<Child>,
    point: PathBuf,
    stderr: PathBuf,
    cmdline: String,
}

fn require_fuse() {
    assert!(
        Path::new("/dev/fuse").exists(),
        "/dev/fuse is missing: the mount tests need FUSE (load the fuse module; in a \
         container, pass --device /dev/fuse)"
    );
}

/// Whether `point` is a mount point now (`/proc/self/mounts`; test paths need no
/// unescaping).
fn is_mounted(point: &Path) -> bool {
    let mounts = fs::read_to_string("/proc/self/mounts").expect("read /proc/self/mounts");
    mounts
        .lines()
        .any(|l| l.split(' ').nth(1) == Some(point.to_str().expect("UTF-8 test path")))
}

impl Mounted {
    /// Starts `strata mount POINT` (with `envs` added) and waits until it is mounted.
    pub(crate) fn start(env: &Env, point: &Path, envs: &[(&str, &Path)]) -> Mounted {
        require_fuse();
        fs::create_dir_all(point).unwrap();
        let mut cmd = env.cmd().arg("mount").arg(point);
        for (k, v) in envs {
            cmd = cmd.env(k, v);
        }
        let (mut command, cmdline) = cmd.build();
        let stderr = point.with_extension("stderr");
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&stderr).unwrap());
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmdline}: {e}"));
        let mut m = Mounted {
            child: Some(child),
            point: point.to_owned(),
            stderr,
            cmdline,
        };
        let deadline = Instant::now() + PATIENCE;
        while !is_mounted(point) {
            if let Some(status) = m.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "{} exited with {status} before mounting:\n{}",
                    m.cmdline,
                    m.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} did not mount within {PATIENCE:?}:\n{}",
                m.cmdline,
                m.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        m
    }

    pub(crate) fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(self.child.as_ref().expect("running").id() as i32)
    }

    /// Waits for the process to exit; returns its exit code (`None`: killed by a signal).
    fn wait_exit(&mut self) -> Option<i32> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit within {PATIENCE:?}:\n{}",
                self.cmdline,
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
            let _ = child.wait();
        }
        if is_mounted(&self.point) {
            for (tool, args) in [
                ("fusermount3", &["-u", "-z"][..]),
                ("fusermount", &["-u", "-z"]),
                ("umount", &["-l"]),
            ] {
                let done = std::process::Command::new(tool)
                    .args(args)
                    .arg(&self.point)
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success());
                if done {
                    break;
                }
            }
        }
    }
}

/// `snapshots --json`, oldest first.
fn snapshot_list(env: &Env) -> Vec<Value> {
    env.snapshots()
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

/// The names of a directory, sorted.
fn names(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// Where an absolute source path appears inside a snapshot directory of the mount.
fn inside(snapshot_dir: &Path, source: &Path) -> PathBuf {
    restored(snapshot_dir, source)
}

#[test]
fn mount_shows_every_entry_as_recorded_and_the_virtual_layout() {
    let env = Env::init();
    let rich = make_rich_tree(&env.path("src"));
    env.backup_json(&[&rich.root], &["--project", "shop", "--tag", "daily"]);
    // The second snapshot differs by one file, so that `latest` is told apart by content.
    write_file(&rich.root.join("added-later.txt"), b"second\n");
    env.backup_json(&[&rich.root], &["--project", "shop", "--tag", "weekly"]);
    let snaps = snapshot_list(&env);
    assert_eq!(snaps.len(), 2);
    let (first, second) = (&snaps[0], &snaps[1]);
    let host = s(second, "host");

    let point = env.path("mnt");
    let m = Mounted::start(&env, &point, &[]);
    assert!(
        m.stderr().contains(&format!(
            "mounted at {}; Ctrl-C or SIGTERM unmounts",
            point.display()
        )),
        "{}",
        m.stderr()
    );

    // The layout.
    assert_eq!(
        names(&point),
        BTreeSet::from(["hosts", "projects", "snapshots", "tags"].map(String::from))
    );
    let full = |v: &Value| format!("{}-{}", s(v, "time"), s(v, "short_id"));
    assert_eq!(
        names(&point.join("snapshots")),
        BTreeSet::from([full(first), full(second)])
    );
    // In a group directory the time alone names a snapshot, unless two share it.
    let (first_name, second_name) = if s(first, "time") == s(second, "time") {
        (full(first), full(second))
    } else {
        (s(first, "time").to_owned(), s(second, "time").to_owned())
    };
    let shop = point.join("projects/shop");
    assert_eq!(
        names(&shop),
        BTreeSet::from([first_name.clone(), second_name.clone(), "latest".into()])
    );
    assert_eq!(
        fs::read_link(shop.join("latest")).unwrap(),
        Path::new(&second_name)
    );
    let added = |snapshot_dir: &Path| inside(snapshot_dir, &rich.root.join("added-later.txt"));
    assert_eq!(fs::read(added(&shop.join("latest"))).unwrap(), b"second\n");
    assert!(!added(&shop.join(&first_name)).exists());
    assert_eq!(
        names(&point.join("tags")),
        BTreeSet::from(["daily", "weekly"].map(String::from))
    );
    let daily_name = s(first, "time").to_owned();
    assert_eq!(
        names(&point.join("tags/daily")),
        BTreeSet::from([daily_name.clone()])
    );
    assert!(!added(&point.join("tags/daily").join(&daily_name)).exists());
    let weekly_name = s(second, "time").to_owned();
    assert_eq!(
        names(&point.join("tags/weekly")),
        BTreeSet::from([weekly_name.clone()])
    );
    assert!(added(&point.join("tags/weekly").join(&weekly_name)).exists());
    assert_eq!(
        names(&point.join("hosts").join(host)),
        BTreeSet::from([first_name.clone(), second_name.clone()])
    );
    // Virtual directories: read-only, root's, as new as their newest snapshot.
    let newest = fs::metadata(point.join("snapshots").join(full(second))).unwrap();
    for dir in [
        "",
        "snapshots",
        "projects",
        "projects/shop",
        "tags",
        "hosts",
    ] {
        let md = fs::metadata(point.join(dir)).unwrap();
        assert!(md.is_dir(), "{dir}");
        assert_eq!(md.mode() & 0o7777, 0o555, "{dir}");
        assert_eq!((md.uid(), md.gid()), (0, 0), "{dir}");
        assert_eq!(
            (md.mtime(), md.mtime_nsec()),
            (newest.mtime(), newest.mtime_nsec()),
            "{dir}"
        );
    }
    let older = fs::metadata(point.join("tags/daily")).unwrap();
    assert!(older.mtime() <= newest.mtime());

    // Every entry of the newest snapshot, as recorded: content, mode, owner, mtime (ns),
    // size, symlink targets, device numbers, xattrs, file types, hard-link groups.
    let snapshot_dir = point.join("snapshots").join(full(second));
    let listed = assert_same_tree(&rich.root, &inside(&snapshot_dir, &rich.root));
    assert!(
        listed.len() > 40,
        "the rich tree has {} entries",
        listed.len()
    );
    for kind in ["file", "dir", "symlink", "fifo", "chardev", "blockdev"] {
        assert!(listed.iter().any(|e| e.kind == kind), "no {kind} compared");
    }
    // Hard links: the recorded link count, and one inode for the group.
    let inos: BTreeSet<u64> = rich
        .hardlinks
        .iter()
        .map(|rel| {
            let md = fs::symlink_metadata(inside(&snapshot_dir, &rich.root.join(rel))).unwrap();
            let src = fs::symlink_metadata(rich.root.join(rel)).unwrap();
            assert_eq!(md.nlink(), src.nlink(), "{}", rel.display());
            assert_eq!(md.nlink(), 3);
            md.ino()
        })
        .collect();
    assert_eq!(inos.len(), 1, "hard links are one inode");
    let fifo = fs::symlink_metadata(inside(&snapshot_dir, &rich.root.join("fifo"))).unwrap();
    assert!(fifo.file_type().is_fifo());
    // The older snapshot is there too, as it was.
    assert!(inside(
        &point.join("snapshots").join(full(first)),
        &rich.root.join("hello.txt")
    )
    .is_file());
    // Nothing can be written.
    let err = File::create(inside(&snapshot_dir, &rich.root.join("new-file"))).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc_erofs()), "{err}");
    drop(m);
}

/// EROFS without a libc dependency in the tests.
fn libc_erofs() -> i32 {
    nix::errno::Errno::EROFS as i32
}

/// Where the chunk holding byte `offset` of the file at `path` (absolute in the snapshot)
/// is stored: `(pack, offset in the pack, stored length)`, found with `strata cat` from the
/// snapshot's trees and the index files.
fn locate_chunk(env: &Env, snapshot: &str, path: &Path, offset: u64) -> (String, u64, u64) {
    let cat = |args: &[&str]| env.strata(["cat"].iter().chain(args)).success().json();
    let mut tree = s(&cat(&["snapshot", snapshot]), "tree").to_owned();
    let comps: Vec<&[u8]> = path
        .components()
        .skip(1)
        .map(|c| c.as_os_str().as_bytes())
        .collect();
    let mut content = Vec::new();
    for (i, name) in comps.iter().enumerate() {
        let t = cat(&["tree", &tree]);
        let node = t["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| {
                let bytes: Vec<u8> = n["name"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|b| b.as_u64().unwrap() as u8)
                    .collect();
                bytes == *name
            })
            .unwrap_or_else(|| panic!("{} not in tree {tree}", String::from_utf8_lossy(name)))
            .clone();
        if i + 1 < comps.len() {
            tree = s(&node["kind"]["Dir"], "subtree").to_owned();
        } else {
            content = node["kind"]["File"]["content"].as_array().unwrap().clone();
        }
    }
    // Every blob of the index: id -> (pack, offset, length, raw length).
    let mut blobs = std::collections::HashMap::new();
    for index in env.repo_files("index") {
        let v = cat(&["index", &file_name(&index)]);
        for pack in v["packs"].as_array().unwrap() {
            for b in pack["blobs"].as_array().unwrap() {
                let n = |k: &str| b[k].as_u64().unwrap();
                blobs.insert(
                    s(b, "id").to_owned(),
                    (
                        s(pack, "id").to_owned(),
                        n("offset"),
                        n("length"),
                        n("raw_length"),
                    ),
                );
            }
        }
    }
    let mut start = 0;
    for id in &content {
        let (pack, at, length, raw) = blobs[id.as_str().unwrap()].clone();
        if offset < start + raw {
            return (pack, at, length);
        }
        start += raw;
    }
    panic!("offset {offset} is past the end of {}", path.display())
}

/// Reads one byte at `offset` with O_DIRECT: the kernel asks the file system for exactly
/// that range (no page cache, no readahead), so the test sees what the mount fetches for
/// it, and a second read reaches the mount again instead of the page cache.
fn read_byte_direct(path: &Path, offset: u64) -> u8 {
    let mut f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_DIRECT.bits())
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    f.seek(SeekFrom::Start(offset)).unwrap();
    let mut byte = [0u8];
    f.read_exact(&mut byte).unwrap();
    byte[0]
}

fn log_lines(log: &Path) -> Vec<String> {
    fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn reading_one_byte_in_the_middle_of_a_large_file_fetches_one_chunk() {
    // 1 GiB, as the issue asks: 64 MiB of random data, 16 times over. The chunker cuts each
    // repetition at the same places, so the repository stores 64 MiB (backing up 1 GiB of
    // new random data would take minutes in the debug build), yet the file is about a
    // thousand chunk references long and the byte read is 512 MiB in.
    let block = random_bytes(7, 64 * MIB as usize);
    let size = 16 * block.len() as u64;
    let env = Env::init();
    let dir = env.path("big");
    {
        use std::io::Write;
        fs::create_dir_all(&dir).unwrap();
        let mut f = fs::File::create(dir.join("random.bin")).unwrap();
        for _ in 0..16 {
            f.write_all(&block).unwrap();
        }
    }
    let byte_at = |at: u64| block[(at % block.len() as u64) as usize];
    let snapshot = env.backup(&[&dir]);
    let snap = &snapshot_list(&env)[0];
    let log = env.path("reads.log");
    let point = env.path("mnt");
    let _m = Mounted::start(&env, &point, &[("STRATA_TEST_READ_LOG", &log)]);

    let source = dir.join("random.bin");
    let file = inside(
        &point
            .join("snapshots")
            .join(format!("{}-{}", s(snap, "time"), s(snap, "short_id"))),
        &source,
    );
    // Looking the path up reads its trees: done before the log is cleared.
    assert_eq!(fs::metadata(&file).unwrap().len(), size);
    let offset = size / 2;
    let (pack, at, length) = locate_chunk(&env, &snapshot, &source, offset);
    assert!(length < 9 * MIB, "a chunk is at most 8 MiB plus overhead");

    fs::write(&log, "").unwrap();
    assert_eq!(read_byte_direct(&file, offset), byte_at(offset));
    let expected = vec![format!("read data/{}/{pack} {at} {length}", &pack[..2])];
    assert_eq!(log_lines(&log), expected, "exactly one chunk read");
    eprintln!("one byte at {offset} of {size}: read {length} bytes ({expected:?})");

    // The same byte again, and its neighbour: from the blob cache, nothing fetched.
    assert_eq!(read_byte_direct(&file, offset), byte_at(offset));
    assert_eq!(read_byte_direct(&file, offset + 1), byte_at(offset + 1));
    assert_eq!(
        log_lines(&log),
        expected,
        "the cached chunk is not fetched again"
    );
}

#[test]
fn sigterm_unmounts_cleanly_and_releases_the_lock() {
    let env = Env::init();
    let src = env.path("src");
    write_file(&src.join("a.txt"), b"content\n");
    env.backup(&[&src]);
    let point = env.path("mnt");
    let mut m = Mounted::start(&env, &point, &[]);
    let snap = &snapshot_list(&env)[0];
    let a = inside(
        &point
            .join("snapshots")
            .join(format!("{}-{}", s(snap, "time"), s(snap, "short_id"))),
        &src.join("a.txt"),
    );
    assert_eq!(fs::read(&a).unwrap(), b"content\n");
    // The mount holds a shared lock: an exclusive command is refused (a prune runs beside
    // it, two-phase).
    assert_eq!(env.repo_files("locks").len(), 1);
    env.strata(["repair", "snapshots", "--dry-run"])
        .code(11)
        .stderr_contains("lock of `mount`");
    env.strata(["prune", "--dry-run"]).success();

    kill(m.pid(), Signal::SIGTERM).unwrap();
    assert_eq!(
        m.wait_exit(),
        Some(0),
        "exit code after SIGTERM:\n{}",
        m.stderr()
    );
    assert!(!is_mounted(&point), "still mounted after SIGTERM");
    assert!(
        env.repo_files("locks").is_empty(),
        "the lock is left behind"
    );
    env.strata(["snapshots"]).success();
    env.strata(["repair", "snapshots", "--dry-run"]).success();
    assert!(!m.stderr().contains("ERROR"), "{}", m.stderr());

    // Unmounted from outside: the command ends too, as cleanly.
    let mut m = Mounted::start(&env, &point, &[]);
    let status = std::process::Command::new("umount")
        .arg(&point)
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(
        m.wait_exit(),
        Some(0),
        "exit code after umount:\n{}",
        m.stderr()
    );
    assert!(
        env.repo_files("locks").is_empty(),
        "the lock is left behind"
    );
    assert!(!m.stderr().contains("ERROR"), "{}", m.stderr());
}

#[test]
fn a_damaged_blob_fails_its_reads_with_eio_and_the_mount_lives_on() {
    let env = Env::init_small_packs();
    let small = env.path("small");
    write_file(&small.join("note.txt"), b"still readable\n");
    env.backup(&[&small]);
    // A second snapshot whose chunks fill the largest packs; one of them is damaged.
    let big = env.path("big");
    write_file(&big.join("data.bin"), &random_bytes(3, 6 * MIB as usize));
    env.backup(&[&big]);
    env.flip_byte_in_largest_pack();

    let point = env.path("mnt");
    let m = Mounted::start(&env, &point, &[]);
    let snaps = snapshot_list(&env);
    let dir = |v: &Value| {
        point
            .join("snapshots")
            .join(format!("{}-{}", s(v, "time"), s(v, "short_id")))
    };
    let damaged = inside(&dir(&snaps[1]), &big.join("data.bin"));
    let err = fs::read(&damaged).unwrap_err();
    assert_eq!(
        err.raw_os_error(),
        Some(nix::errno::Errno::EIO as i32),
        "{err}"
    );
    // The mount still serves everything else.
    assert_eq!(
        fs::read(inside(&dir(&snaps[0]), &small.join("note.txt"))).unwrap(),
        b"still readable\n"
    );
    assert!(is_mounted(&point));
    let log = m.stderr();
    assert!(log.contains("WARN") && log.contains("data.bin"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn mount_refuses_a_mountpoint_that_is_missing_or_not_a_directory() {
    require_fuse();
    let env = Env::init();
    // No mountpoint at all: a usage error.
    env.strata(["mount"]).code(2);
    let missing = env.path("nowhere");
    env.cmd()
        .arg("mount")
        .arg(&missing)
        .run()
        .code(1)
        .one_line_error()
        .stderr_contains("does not exist");
    let file = env.path("a-file");
    write_file(&file, b"x");
    env.cmd()
        .arg("mount")
        .arg(&file)
        .run()
        .code(1)
        .one_line_error()
        .stderr_contains("not a directory");
    assert!(env.repo_files("locks").is_empty());
}

#[test]
fn mount_help_explains_the_layout() {
    let out = Cmd::new().args(["mount", "--help"]).run().success();
    let help = out.stdout_str();
    for needle in [
        "snapshots/TIME-SHORTID/",
        "projects/PROJECT/latest",
        "tags/TAG/TIME/",
        "hosts/HOST/TIME/",
        "SIGTERM",
    ] {
        assert!(help.contains(needle), "--help lacks {needle:?}:\n{help}");
    }
}

/// Inodes the kernel forgets are freed: after every file was looked up and the kernel
/// dropped its caches, the mount frees them (memory follows what the kernel holds, not
/// everything ever visited), and the same entries still read correctly afterwards.
#[test]
fn forgotten_inodes_are_freed() {
    let env = Env::init();
    let src = env.path("src");
    for d in 0..20 {
        for f in 0..20 {
            write_file(
                &src.join(format!("d{d}/f{f}")),
                format!("{d} {f}\n").as_bytes(),
            );
        }
    }
    env.backup(&[&src]);
    let point = env.path("mnt");
    let m = Mounted::start(
        &env,
        &point,
        &[("STRATA_LOG", Path::new("strata::mount::fs=trace"))],
    );
    let snap = &snapshot_list(&env)[0];
    let root = inside(
        &point
            .join("snapshots")
            .join(format!("{}-{}", s(snap, "time"), s(snap, "short_id"))),
        &src,
    );
    for d in 0..20 {
        for f in 0..20 {
            let len = fs::metadata(root.join(format!("d{d}/f{f}"))).unwrap().len();
            assert_eq!(len, format!("{d} {f}\n").len() as u64);
        }
    }
    let forgotten = || m.stderr().matches("forgotten").count();
    assert_eq!(forgotten(), 0);
    // The kernel drops its unused dentries and inodes, and tells the mount.
    let deadline = Instant::now() + PATIENCE;
    while forgotten() < 400 {
        nix::unistd::sync();
        fs::write("/proc/sys/vm/drop_caches", "2").expect("drop caches (needs root)");
        assert!(
            Instant::now() < deadline,
            "the mount freed only {} of 420 inodes:\n{}",
            forgotten(),
            m.stderr()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut text = String::new();
    File::open(root.join("d13/f7"))
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(text, "13 7\n");
}
