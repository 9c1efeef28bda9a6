//! Hostile sources and failed restores, through the real binary: pseudo file systems
//! below and at a backed-up path, restores that cannot write a file whole (a damaged pack,
//! a full disk), and `latest` when the newest snapshot is damaged.
//!
//! Mounts (proc, sysfs, a small tmpfs) are made by a wrapper in a mount namespace of the
//! command's own (`unshare --mount`): they vanish with it and never touch the host's.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::util::*;

/// Runs a command in a private mount namespace after `mounts` (file system type, path).
fn with_mounts(cmd: Cmd, mounts: &[(&str, &Path)]) -> Cmd {
    require("unshare", "util-linux");
    let mut script = String::from("set -e; ");
    for (i, (fs_type, _)) in mounts.iter().enumerate() {
        // The paths follow the script as $1, $2, ...; the command comes after them.
        script.push_str(&format!("mount -t {fs_type} {fs_type} \"${}\"; ", i + 1));
    }
    script.push_str(&format!("shift {}; exec \"$@\"", mounts.len()));
    let mut wrapper: Vec<String> = vec![
        "unshare".into(),
        "--mount".into(),
        "--propagation".into(),
        "private".into(),
        "sh".into(),
        "-c".into(),
        script,
        "sh".into(),
    ];
    wrapper.extend(mounts.iter().map(|(_, p)| p.display().to_string()));
    cmd.wrap(wrapper)
}

/// Stderr lines that mention `path` followed by `:` (one message about that path).
fn lines_about<'a>(stderr: &'a str, path: &str) -> Vec<&'a str> {
    let needle = format!("{path}:");
    stderr.lines().filter(|l| l.contains(&needle)).collect()
}

#[test]
fn pseudo_file_systems_below_a_path_are_skipped_and_reported() {
    let env = Env::init();
    let src = env.path("src");
    write_file(&src.join("etc/hosts"), b"127.0.0.1 localhost\n");
    write_file(&src.join("data.bin"), &random_bytes(1, 100_000));
    fs::create_dir_all(src.join("proc")).unwrap();
    fs::create_dir_all(src.join("sys")).unwrap();
    // Before the fix this read /proc/kmsg (or /proc/kcore) and never ended.
    let out = with_mounts(
        env.cmd(),
        &[("proc", &src.join("proc")), ("sysfs", &src.join("sys"))],
    )
    .arg("backup")
    .arg(&src)
    .arg("--json")
    .run()
    .success();
    let v = out.json();
    assert_eq!(v["errors"].as_array().unwrap().len(), 0, "{v}");
    assert_eq!(v["skipped_pseudo_fs"], 2, "{v}");
    let proc_path = src.join("proc").display().to_string();
    let sys_path = src.join("sys").display().to_string();
    assert_eq!(
        v["skipped_pseudo_fs_paths"],
        serde_json::json!([proc_path, sys_path]),
        "{v}"
    );
    // One warning line per skipped mount point, naming it and its type.
    for (path, fs_type) in [(&proc_path, "proc"), (&sys_path, "sysfs")] {
        let lines = lines_about(&out.stderr, path);
        assert_eq!(lines.len(), 1, "{}", out.describe());
        assert!(
            lines[0].starts_with("warning:") && lines[0].contains(fs_type),
            "{}",
            out.describe()
        );
    }

    // The mount points are kept, empty; everything else is there.
    let id = v["snapshot_id"].as_str().unwrap();
    let listed = env.ls(id, Some(&src));
    assert!(listed.contains(&proc_path) && listed.contains(&sys_path));
    assert!(
        !listed
            .iter()
            .any(|p| p.starts_with(&format!("{proc_path}/"))
                || p.starts_with(&format!("{sys_path}/"))),
        "{listed:#?}"
    );
    let target = env.path("restore");
    env.restore(id, &target);
    let out_dir = restored(&target, &src);
    // The mount points restore as empty directories (with the metadata of the mounted
    // file system's root, as --one-file-system records them); the rest as it was.
    for dir in ["proc", "sys"] {
        assert_eq!(fs::read_dir(out_dir.join(dir)).unwrap().count(), 0, "{dir}");
        fs::remove_dir(out_dir.join(dir)).unwrap();
        fs::remove_dir(src.join(dir)).unwrap();
    }
    // Removing them changed both parents' mtimes, each to its own "now".
    set_mtime(&src, 1_700_000_000, 0);
    set_mtime(&out_dir, 1_700_000_000, 0);
    assert_same_tree(&src, &out_dir);
    fs::create_dir_all(src.join("proc")).unwrap();

    // The text summary counts them too.
    let out = with_mounts(env.cmd(), &[("proc", &src.join("proc"))])
        .arg("backup")
        .arg(&src)
        .run()
        .success();
    assert!(
        out.stdout_str().contains("skipped 1 pseudo file system"),
        "{}",
        out.describe()
    );
}

#[test]
fn a_path_on_a_pseudo_file_system_is_refused_unless_included() {
    let env = Env::init();
    let mnt = env.path("proc");
    fs::create_dir_all(&mnt).unwrap();
    let file = mnt.join("sys/kernel/ostype");
    let out = with_mounts(env.cmd(), &[("proc", &mnt)])
        .arg("backup")
        .arg(&file)
        .run()
        .code(1)
        .one_line_error()
        .stderr_contains("--include-pseudo-fs");
    assert!(out.stderr.contains("proc"), "{}", out.describe());
    assert!(
        env.repo_files("snapshots").is_empty(),
        "a snapshot was written"
    );

    // Asked for, it is backed up (read without waiting).
    let v = with_mounts(env.cmd(), &[("proc", &mnt)])
        .arg("backup")
        .arg(&file)
        .args(["--include-pseudo-fs", "--json"])
        .run()
        .success()
        .json();
    let id = v["snapshot_id"].as_str().unwrap();
    let dumped = env
        .cmd()
        .args(["dump", id])
        .arg(&file)
        .run()
        .success()
        .stdout;
    assert_eq!(dumped, fs::read("/proc/sys/kernel/ostype").unwrap());
}

/// The source of the restore tests: two files of random data (several chunks each) and two
/// small ones.
fn source(env: &Env) -> PathBuf {
    let src = env.path("src");
    write_file(
        &src.join("random-1.bin"),
        &random_bytes(21, 6 * MIB as usize),
    );
    write_file(
        &src.join("random-2.bin"),
        &random_bytes(22, 3 * MIB as usize),
    );
    write_file(&src.join("notes.txt"), b"some notes\n");
    write_file(&src.join("sub/more.txt"), b"more\n");
    src
}

const FILES: [&str; 4] = ["random-1.bin", "random-2.bin", "notes.txt", "sub/more.txt"];

#[test]
fn a_restore_from_a_damaged_pack_removes_the_file_and_reports_it_once() {
    let mut env = Env::init();
    let src = source(&env);
    let id = env.backup(&[&src]);
    env.flip_byte_in_largest_pack();
    env.fresh_cache();
    let target = env.path("restore");
    let out = env
        .cmd()
        .args(["restore", &id, "--target"])
        .arg(&target)
        .run()
        .code(1);
    let out_dir = restored(&target, &src);
    let mut lost = 0;
    for f in FILES {
        let path = src.join(f);
        let lines = lines_about(&out.stderr, &path.display().to_string());
        match fs::read(out_dir.join(f)) {
            Ok(bytes) => {
                assert!(bytes == fs::read(&path).unwrap(), "{f} restored wrong");
                assert!(
                    lines.is_empty(),
                    "{f} restored, yet reported\n{}",
                    out.describe()
                );
            }
            Err(e) => {
                assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "{f}: {e}");
                assert_eq!(lines.len(), 1, "{f}: reported once\n{}", out.describe());
                lost += 1;
            }
        }
    }
    assert_eq!(lost, 1, "one file is damaged\n{}", out.describe());
    assert!(
        out.stderr
            .contains("strata: 1 entries could not be restored"),
        "{}",
        out.describe()
    );
}

#[test]
fn a_restore_onto_a_full_disk_leaves_no_partial_file() {
    let env = Env::init();
    let src = source(&env);
    let id = env.backup(&[&src]);
    // A 4 MiB tmpfs: random-1.bin (6 MiB) cannot fit. What is on it when the restore ends
    // is listed from inside the wrapper (the mount goes with it).
    let target = env.path("small-disk");
    fs::create_dir_all(&target).unwrap();
    let listing = env.path("small-disk.files");
    let script = "mount -t tmpfs -o size=4m tmpfs \"$1\" || exit 99; t=$1; l=$2; shift 2; \
                  \"$@\"; rc=$?; (cd \"$t\" && find . -type f -printf '%P %s\\n') > \"$l\"; \
                  exit $rc";
    require("unshare", "util-linux");
    let out = env
        .cmd()
        .wrap([
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            "sh",
        ])
        .wrap([&target, &listing])
        .args(["restore", &id, "--target"])
        .arg(&target)
        .run()
        .code(1);
    let on_disk: BTreeMap<String, u64> = fs::read_to_string(&listing)
        .unwrap()
        .lines()
        .map(|l| {
            let (p, s) = l.rsplit_once(' ').unwrap();
            (p.to_string(), s.parse().unwrap())
        })
        .collect();
    let prefix = src.strip_prefix("/").unwrap();
    for f in FILES {
        let path = src.join(f);
        let lines = lines_about(&out.stderr, &path.display().to_string());
        match on_disk.get(&prefix.join(f).display().to_string()) {
            Some(&size) => {
                assert_eq!(size, fs::metadata(&path).unwrap().len(), "{f} left partial");
                assert!(
                    lines.is_empty(),
                    "{f} restored, yet reported\n{}",
                    out.describe()
                );
            }
            None => assert_eq!(lines.len(), 1, "{f}: reported once\n{}", out.describe()),
        }
    }
    assert!(
        !on_disk.contains_key(&prefix.join("random-1.bin").display().to_string()),
        "random-1.bin cannot fit: {on_disk:?}\n{}",
        out.describe()
    );
}

/// Makes a snapshot file unreadable (one flipped byte).
fn damage_snapshot(env: &Env, id: &str) {
    let path = env.repo.join("snapshots").join(id);
    let mut bytes = fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    fs::write(&path, bytes).unwrap();
}

#[test]
fn latest_fails_naming_a_damaged_newest_snapshot() {
    let mut env = Env::init();
    let src = env.path("src");
    write_file(&src.join("a.txt"), b"first\n");
    let first = env.backup_json(
        &[&src],
        &["--time", "2025-01-01 00:00:00", "--project", "shop"],
    )["snapshot_id"]
        .as_str()
        .unwrap()
        .to_owned();
    write_file(&src.join("a.txt"), b"second\n");
    let second = env.backup_json(
        &[&src],
        &["--time", "2025-01-02 00:00:00", "--project", "shop"],
    )["snapshot_id"]
        .as_str()
        .unwrap()
        .to_owned();
    damage_snapshot(&env, &second);
    env.fresh_cache();

    let target = env.path("restore");
    let file = src.join("a.txt");
    let file = file.to_str().unwrap();
    for args in [
        vec!["restore", "latest", "--target", target.to_str().unwrap()],
        vec!["dump", "latest", file],
        vec!["ls", "latest"],
        vec!["diff", &first, "latest"],
    ] {
        let out = env.strata(&args).code(1).one_line_error();
        assert!(names_id(&out.stderr, &second), "{}", out.describe());
        assert!(out.stderr.contains("strata forget"), "{}", out.describe());
    }
    assert!(!target.exists(), "restore latest wrote something");
    // The mount shows the readable snapshots, but no `latest` link that could point past
    // the damaged one.
    {
        let point = env.path("mnt");
        let m = crate::mount::Mounted::start(&env, &point, &[]);
        assert!(
            names_id(&m.stderr(), &second) && m.stderr().contains("latest"),
            "{}",
            m.stderr()
        );
        let shop: Vec<String> = fs::read_dir(point.join("projects/shop"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(shop.len(), 1, "{shop:?}");
        assert!(!shop.contains(&"latest".to_string()), "{shop:?}");
    }

    // By id, the readable snapshot restores; a backup still runs, on the readable parent.
    env.restore(&first, &target);
    assert_eq!(
        fs::read(restored(&target, &src).join("a.txt")).unwrap(),
        b"first\n"
    );
    let third = env.backup(&[&src]);
    // Once the damaged snapshot is removed, `latest` is the newest again.
    env.strata(["repair", "snapshots", "--forget"]).success();
    assert!(env.ls("latest", None).contains(file));
    let dumped = env.strata(["dump", "latest", file]).success().stdout;
    assert_eq!(dumped, b"second\n");
    assert!(env.snapshots().iter().any(|s| s["id"] == third));
}
