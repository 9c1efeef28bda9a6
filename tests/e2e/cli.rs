//! The command-line contract: help and usage errors, snapshot ids and
//! prefixes, `latest`, ls/dump/cat, stdin backups, JSON output, password
//! sources, and the repository layout on disk.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::util::*;

const SUBCOMMANDS: &[&str] = &[
    "init",
    "backup",
    "snapshots",
    "ls",
    "restore",
    "dump",
    "cat",
    "check",
    "unlock",
    "copy",
    "forget",
    "hold",
    "prune",
    "repair",
    "verify",
    "key",
    "find",
    "diff",
    "stats",
    "mount",
];

fn small_tree(env: &Env, name: &str) -> PathBuf {
    let src = env.path(name);
    write_file(&src.join("a.txt"), b"alpha\n");
    write_file(&src.join("sub/b.txt"), b"beta\n");
    write_file(&src.join("sub/deeper/c.txt"), b"gamma\n");
    src
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_hexdigit())
}

/// RFC 3339: 2024-05-01T12:34:56[.frac](Z|+hh:mm|-hh:mm).
fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 20 {
        return false;
    }
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    if !(digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && (b[10] == b'T' || b[10] == b't')
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19))
    {
        return false;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.chars().take_while(char::is_ascii_digit).count();
        if n == 0 {
            return false;
        }
        rest = &frac[n..];
    }
    if rest == "Z" || rest == "z" {
        return true;
    }
    let r = rest.as_bytes();
    r.len() == 6
        && (r[0] == b'+' || r[0] == b'-')
        && r[1..3].iter().all(u8::is_ascii_digit)
        && r[3] == b':'
        && r[4..6].iter().all(u8::is_ascii_digit)
}

// ---------------------------------------------------------------------------
// Help and usage
// ---------------------------------------------------------------------------

#[test]
fn help_for_every_subcommand() {
    let top = Cmd::new().arg("--help").run().success();
    let text = top.stdout_str();
    for sub in SUBCOMMANDS {
        assert!(
            text.contains(sub),
            "`strata --help` does not list {sub}\n{text}"
        );
        let out = Cmd::new().args([sub, "--help"]).run().success();
        assert!(
            !out.stdout.is_empty(),
            "`strata {sub} --help` printed nothing\n{}",
            out.describe()
        );
        Cmd::new().args(["help", sub]).run().success();
    }
}

#[test]
fn usage_errors_exit_2() {
    let env = Env::init();
    env.strata(["frobnicate"]).code(2);
    env.strata(["restore", "latest"]).code(2); // no --target
    env.strata(["ls"]).code(2); // no snapshot
    env.strata(["dump"]).code(2); // no snapshot (a path is optional: database dumps)
    env.strata(["backup", "--no-such-flag", "/tmp"]).code(2);
    env.strata(["snapshots", "--json", "extra-argument"])
        .code(2);
    Cmd::new().run().code(2); // no command at all
}

// ---------------------------------------------------------------------------
// init and the repository on disk
// ---------------------------------------------------------------------------

/// The one test that pays for the default (slow) key derivation.
#[test]
fn init_with_default_kdf_prints_the_repository_id() {
    let env = Env::new();
    let out = env.strata(["init"]).success();
    let printed = hex_tokens(&out.stdout_str(), 8);
    assert!(
        !printed.is_empty(),
        "init should print the repository id\n{}",
        out.describe()
    );
    let config = env
        .strata(["cat", "config"])
        .success()
        .stdout_str()
        .to_lowercase();
    assert!(
        printed.iter().any(|id| config.contains(id.as_str())),
        "the printed id is not in `cat config`\n{config}\n{}",
        out.describe()
    );
    // The repository is usable with the default key parameters.
    let src = small_tree(&env, "src");
    let id = env.backup(&[&src]);
    let target = env.path("restore");
    env.restore(&id, &target);
    assert_same_tree(&src, &restored(&target, &src));
}

#[test]
fn repository_layout_on_disk() {
    let env = Env::init();
    let src = env.path("src");
    // Incompressible content around a marker, and a recognisable file name:
    // neither may appear in clear anywhere in the repository.
    let marker = b"STRATA-E2E-PLAINTEXT-MARKER-6b1f0c";
    let mut content = random_bytes(5, 64 * 1024);
    content.extend_from_slice(marker);
    content.extend_from_slice(&random_bytes(6, 64 * 1024));
    write_file(&src.join("secret-file-name-94c2e7.bin"), &content);
    let summary = env.backup_json(&[&src], &["--tag", "layout-tag-3d9a"]);
    let snap_id = summary["snapshot_id"].as_str().unwrap();

    assert!(env.repo.join("config").is_file());
    let keys = env.repo_files("keys");
    assert_eq!(keys.len(), 1, "{keys:?}");
    let snapshots = env.repo_files("snapshots");
    assert_eq!(
        snapshots.iter().map(|p| file_name(p)).collect::<Vec<_>>(),
        vec![snap_id.to_owned()]
    );
    assert!(!env.repo_files("index").is_empty());
    let packs = env.repo_files("data");
    assert!(
        packs.len() >= 2,
        "data and tree blobs go into separate packs: {packs:?}"
    );
    for pack in &packs {
        let name = file_name(pack);
        let dir = file_name(pack.parent().unwrap());
        assert_eq!(
            pack.parent().unwrap().parent().unwrap(),
            env.repo.join("data")
        );
        assert_eq!(dir.len(), 2, "{}", pack.display());
        assert!(
            name.starts_with(&dir),
            "{} is not in its 2-hex directory",
            pack.display()
        );
    }
    // Locks are gone once the commands are done.
    assert!(
        env.repo_files("locks").is_empty(),
        "{:?}",
        env.repo_files("locks")
    );

    // Stored objects are named by the BLAKE3 of their bytes.
    for dir in ["data", "index", "snapshots"] {
        for file in env.repo_files(dir) {
            let name = file_name(&file);
            assert_eq!(name.len(), 64, "{}", file.display());
            assert!(is_hex(&name));
            assert_eq!(
                blake3_file(&file),
                name,
                "{} is not content-addressed",
                file.display()
            );
        }
    }
    for key in &keys {
        assert!(is_hex(&file_name(key)), "{}", key.display());
    }

    // Files 0600, directories 0700.
    let mut all = vec![env.repo.clone()];
    let mut stack = vec![env.repo.clone()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p.clone());
            }
            all.push(p);
        }
    }
    for p in &all {
        let meta = fs::symlink_metadata(p).unwrap();
        let mode = meta.permissions().mode() & 0o7777;
        let want = if meta.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode, want, "{} has mode {mode:o}", p.display());
    }

    // Nothing in clear: content, names, tags, password.
    let needles: [&[u8]; 4] = [
        marker,
        b"secret-file-name-94c2e7",
        b"layout-tag-3d9a",
        PASSWORD.as_bytes(),
    ];
    for p in all.iter().filter(|p| p.is_file()) {
        let bytes = fs::read(p).unwrap();
        for needle in needles {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{} contains {:?} in clear",
                p.display(),
                String::from_utf8_lossy(needle)
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Password sources and repository selection
// ---------------------------------------------------------------------------

#[test]
fn repository_and_password_flags() {
    let env = Env::init();
    let bare = || {
        Cmd::new()
            .env("HOME", &env.home)
            .env("XDG_CACHE_HOME", &env.cache)
    };

    bare()
        .arg("-r")
        .arg(&env.repo)
        .arg("--password-file")
        .arg(&env.password_file)
        .arg("snapshots")
        .run()
        .success();
    bare()
        .arg("--repo")
        .arg(&env.repo)
        .arg("--password-file")
        .arg(&env.password_file)
        .arg("snapshots")
        .run()
        .success();
    bare()
        .env("STRATA_REPOSITORY", &env.repo)
        .env(
            "STRATA_PASSWORD_COMMAND",
            format!("cat {}", env.password_file.display()),
        )
        .arg("snapshots")
        .run()
        .success();
    bare()
        .env("STRATA_REPOSITORY", &env.repo)
        .env("STRATA_PASSWORD_COMMAND", "echo not-the-password")
        .arg("snapshots")
        .run()
        .code(12);
    // The flag wins over the environment.
    bare()
        .env("STRATA_REPOSITORY", env.path("no-repo-here"))
        .arg("-r")
        .arg(&env.repo)
        .env("STRATA_PASSWORD_FILE", &env.password_file)
        .arg("snapshots")
        .run()
        .success();
}

/// `echo secret > file` is how password files are made: the trailing
/// newline is not part of the password.
#[test]
fn password_file_with_trailing_newline() {
    let env = Env::init();
    let with_newline = env.path("password-nl");
    fs::write(&with_newline, format!("{PASSWORD}\n")).unwrap();
    env.cmd()
        .env("STRATA_PASSWORD_FILE", &with_newline)
        .arg("snapshots")
        .run()
        .success();
}

// ---------------------------------------------------------------------------
// Snapshot ids, prefixes, latest
// ---------------------------------------------------------------------------

#[test]
fn snapshot_prefixes_and_latest() {
    let env = Env::init();
    let first_src = small_tree(&env, "first");
    let second_src = small_tree(&env, "second");
    let first = env.backup(&[&first_src]);
    let second = env.backup(&[&second_src]);
    assert_ne!(first, second);

    let full = env.ls(&first, None);
    assert!(full.contains(&first_src.join("a.txt").to_string_lossy().into_owned()));
    assert_eq!(
        env.ls(&first[..8], None),
        full,
        "an 8-digit prefix selects the snapshot"
    );

    let latest = env.ls("latest", None);
    assert!(latest.contains(&second_src.join("a.txt").to_string_lossy().into_owned()));
    assert!(!latest.contains(&first_src.join("a.txt").to_string_lossy().into_owned()));

    // Prefixes work for restore and dump too.
    let target = env.path("restore");
    env.restore(&first[..10], &target);
    assert_same_tree(&first_src, &restored(&target, &first_src));
    let out = env
        .cmd()
        .args(["dump", &second[..8]])
        .arg(second_src.join("sub/b.txt"))
        .run()
        .success();
    assert_eq!(out.stdout, b"beta\n");
}

#[test]
fn ambiguous_and_unknown_prefixes() {
    let env = Env::init();
    let src = small_tree(&env, "src");
    // Back up until two snapshot ids share their first hex digit (at most
    // 17 backups, by pigeonhole).
    let mut ids: Vec<String> = Vec::new();
    let shared = loop {
        let id = env.backup(&[&src]);
        let c = id[..1].to_owned();
        if ids.iter().any(|other| other.starts_with(&c)) {
            ids.push(id);
            break c;
        }
        ids.push(id);
        assert!(ids.len() <= 17);
    };
    env.strata(["ls", &shared]).code(1).one_line_error();
    env.cmd()
        .args(["restore", &shared, "--target"])
        .arg(env.path("t"))
        .run()
        .code(1);

    // A prefix that matches nothing.
    let unknown = (0..0x10000u32)
        .map(|n| format!("{n:04x}"))
        .find(|p| !ids.iter().any(|id| id.starts_with(p.as_str())))
        .unwrap();
    env.strata(["ls", &unknown]).code(1).one_line_error();
    env.strata(["dump", &unknown, "/x"]).code(1);
    env.strata(["cat", "snapshot", &unknown]).failure();
    let full_unknown = "0".repeat(ids[0].len());
    if !ids.contains(&full_unknown) {
        env.strata(["ls", &full_unknown]).code(1);
    }
}

/// In a repository shared by several sites, `latest` narrowed by host, project or tag is
/// the newest snapshot of that host, project or tag, for every command that takes one.
#[test]
fn latest_narrowed_by_host_project_or_tag() {
    let env = Env::init();
    let blog = env.path("blog");
    write_file(&blog.join("wp-config.php"), b"<?php // blog\n");
    let shop = env.path("shop");
    write_file(&shop.join("config.php"), b"<?php // shop\n");
    let backup = |src: &Path, extra: &[&str]| {
        env.cmd()
            .arg("backup")
            .arg(src)
            .args(extra)
            .arg("--json")
            .run()
            .success()
            .json()["snapshot_id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let b = backup(
        &blog,
        &["--host", "web1", "--project", "blog", "--tag", "nightly"],
    );
    let s = backup(&shop, &["--host", "web2", "--project", "shop"]);
    // The newest of anything is the shop's.
    let file = blog.join("wp-config.php");
    env.cmd().args(["dump", "latest"]).arg(&file).run().code(1);
    for filter in [
        ["--host", "web1"],
        ["--project", "blog"],
        ["--tag", "nightly"],
    ] {
        let out = env
            .cmd()
            .args(["dump", "latest"])
            .arg(&file)
            .args(filter)
            .run()
            .success();
        assert_eq!(out.stdout, b"<?php // blog\n", "{filter:?}");
        let listed = env
            .cmd()
            .args(["ls", "latest"])
            .args(filter)
            .run()
            .success();
        assert!(listed.stdout_str().contains("wp-config.php"), "{filter:?}");
        let shown = env
            .cmd()
            .args(["snapshots", "--json"])
            .args(filter)
            .run()
            .success()
            .json();
        let ids: Vec<&str> = shown
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, [b.as_str()], "{filter:?}");
    }
    let target = env.path("restored");
    env.cmd()
        .args(["restore", "latest", "--project", "shop", "--target"])
        .arg(&target)
        .run()
        .success();
    assert_same_tree(&shop, &restored(&target, &shop));
    assert_eq!(
        env.strata(["stats", "latest", "--host", "web2", "--json"])
            .success()
            .json()["snapshots"][0]["id"],
        s.as_str()
    );
    env.strata(["ls", "latest", "--host", "nowhere"])
        .code(1)
        .stderr_contains("no snapshot of host nowhere");
}

#[test]
fn latest_in_an_empty_repository() {
    let env = Env::init();
    env.strata(["ls", "latest"]).code(1).one_line_error();
    assert_eq!(env.snapshots().len(), 0);
}

// ---------------------------------------------------------------------------
// ls, dump, stdin
// ---------------------------------------------------------------------------

#[test]
fn ls_lists_every_path() {
    let env = Env::init();
    let src = small_tree(&env, "src");
    std::os::unix::fs::symlink("a.txt", src.join("link")).unwrap();
    fs::create_dir(src.join("empty-dir")).unwrap();
    let id = env.backup(&[&src]);

    let s = |rel: &str| {
        if rel.is_empty() {
            src.to_string_lossy().into_owned()
        } else {
            src.join(rel).to_string_lossy().into_owned()
        }
    };
    let below: BTreeSet<String> = [
        "",
        "a.txt",
        "link",
        "empty-dir",
        "sub",
        "sub/b.txt",
        "sub/deeper",
        "sub/deeper/c.txt",
    ]
    .iter()
    .map(|r| s(r))
    .collect();

    // Whole snapshot: the source, everything below it, and its ancestors.
    let mut listed = env.ls(&id, None);
    listed.remove("/");
    let mut expected = below.clone();
    expected.extend(ancestors(&src));
    assert_eq!(listed, expected);

    // Below a path, as restic: the path and what is directly in it; with --recursive,
    // everything under it. Nothing else either way.
    let sub = src.join("sub");
    let listed = env.ls(&id, Some(&sub));
    let expected: BTreeSet<String> = ["sub", "sub/b.txt", "sub/deeper"]
        .iter()
        .map(|r| s(r))
        .collect();
    assert_eq!(listed, expected);
    for flag in ["--recursive", "-R"] {
        let out = env.cmd().args(["ls", &id, flag]).arg(&sub).run().success();
        let listed: BTreeSet<String> = out.lines().into_iter().collect();
        let expected: BTreeSet<String> = ["sub", "sub/b.txt", "sub/deeper", "sub/deeper/c.txt"]
            .iter()
            .map(|r| s(r))
            .collect();
        assert_eq!(listed, expected, "{flag}");
    }

    // --long still prints one line per entry, each naming its path.
    let long = env
        .cmd()
        .args(["ls", &id, "--long"])
        .arg(&sub)
        .run()
        .success();
    let lines = long.lines();
    assert!(lines.len() >= 3, "{}", long.describe());
    for path in &expected {
        assert!(
            lines.iter().any(|l| l.ends_with(path.as_str())),
            "{path} not in\n{}",
            long.describe()
        );
    }
}

#[test]
fn ls_json_describes_entries() {
    let env = Env::init();
    let src = env.path("src");
    write_file(&src.join("file.txt"), b"12345");
    chmod(&src.join("file.txt"), 0o640);
    std::os::unix::fs::symlink("file.txt", src.join("link")).unwrap();
    fs::create_dir(src.join("dir")).unwrap();
    nix::unistd::mkfifo(
        &src.join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    nix::sys::stat::mknod(
        &src.join("chardev"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o600),
        nix::sys::stat::makedev(1, 5),
    )
    .unwrap();
    nix::sys::stat::mknod(
        &src.join("blockdev"),
        nix::sys::stat::SFlag::S_IFBLK,
        nix::sys::stat::Mode::from_bits_truncate(0o600),
        nix::sys::stat::makedev(7, 201),
    )
    .unwrap();
    let _socket = std::os::unix::net::UnixListener::bind(src.join("socket")).unwrap();
    let id = env.backup(&[&src]);

    let out = env
        .cmd()
        .args(["ls", &id, "--json"])
        .arg(&src)
        .run()
        .success();
    let entries = out.json_lines();
    let find = |rel: &str| -> Value {
        let path = src.join(rel).to_string_lossy().into_owned();
        entries
            .iter()
            .find(|e| e["path"] == path.as_str())
            .unwrap_or_else(|| panic!("{path} not listed\n{}", out.describe()))
            .clone()
    };
    for (rel, kind) in [
        ("file.txt", "file"),
        ("link", "symlink"),
        ("dir", "dir"),
        ("fifo", "fifo"),
        ("chardev", "chardev"),
        ("blockdev", "blockdev"),
        ("socket", "socket"),
    ] {
        let e = find(rel);
        assert_eq!(e["type"], kind, "{e}");
        for key in ["size", "mode", "mtime"] {
            assert!(!e[key].is_null(), "{rel}: no {key} in {e}");
        }
    }
    let file = find("file.txt");
    assert_eq!(file["size"], 5, "{file}");
    match &file["mode"] {
        Value::Number(n) => assert_eq!(n.as_u64().unwrap() & 0o7777, 0o640, "{file}"),
        Value::String(s) => assert!(s.contains("rw-r-----") || s.contains("640"), "{file}"),
        other => panic!("mode {other}"),
    }
}

#[test]
fn dump_prints_file_content() {
    let env = Env::init();
    let src = env.path("src");
    let big = random_bytes(3, 20 * MIB as usize);
    write_file(&src.join("big.bin"), &big);
    write_file(&src.join("small.txt"), b"small\n");
    write_file(&src.join("empty"), b"");
    let id = env.backup(&[&src]);

    let dump = |path: &Path| env.cmd().args(["dump", &id]).arg(path).run();
    assert!(
        dump(&src.join("big.bin")).success().stdout == big,
        "big file differs"
    );
    assert_eq!(dump(&src.join("small.txt")).success().stdout, b"small\n");
    assert_eq!(dump(&src.join("empty")).success().stdout, b"");
    dump(&src.join("not-there"))
        .failure()
        .stderr_contains("not-there");
}

/// File names are bytes, not UTF-8: `dump` (and `ls PATH`) must accept any
/// name a snapshot can hold.
#[test]
fn dump_and_ls_of_a_non_utf8_name() {
    let env = Env::init();
    let src = env.path("src");
    let odd_dir = src.join(OsStr::from_bytes(b"dir-\xff"));
    let odd = odd_dir.join(OsStr::from_bytes(b"odd-\xff\xfe-name"));
    write_file(&odd, b"odd name\n");
    let id = env.backup(&[&src]);
    let out = env.cmd().args(["dump", &id]).arg(&odd).run().success();
    assert_eq!(out.stdout, b"odd name\n");
    let out = env.cmd().args(["ls", &id]).arg(&odd_dir).run().success();
    assert!(!out.lines().is_empty(), "{}", out.describe());
}

/// A relative source path is recorded as the absolute path it names.
#[test]
fn relative_source_path_is_stored_absolute() {
    let env = Env::init();
    let src = small_tree(&env, "src");
    let out = env
        .cmd()
        .current_dir(&env.root)
        .args(["backup", "src", "--json"])
        .run()
        .success();
    let id = out.json()["snapshot_id"].as_str().unwrap().to_owned();
    let snaps = env.snapshots();
    assert_eq!(
        snaps[0]["paths"],
        serde_json::json!([src.to_string_lossy()])
    );
    assert!(env
        .ls(&id, None)
        .contains(&src.join("sub/b.txt").to_string_lossy().into_owned()));
}

#[test]
fn stdin_backup_round_trip() {
    let env = Env::init();
    let mut data = b"-- PostgreSQL database dump\nCREATE TABLE t (id int);\n".to_vec();
    data.extend_from_slice(&random_bytes(8, 5 * MIB as usize));
    data.extend_from_slice(b"\n-- end of dump\n");
    let out = env
        .cmd()
        .args(["backup", "--stdin", "--stdin-filename", "db.sql", "--json"])
        .stdin(data.clone())
        .run()
        .success();
    let v = out.json();
    let id = v["snapshot_id"].as_str().unwrap().to_owned();
    assert_eq!(v["bytes_read"], data.len() as u64, "{v}");
    assert_eq!(v["bytes_total"], data.len() as u64, "{v}");

    assert!(env.ls(&id, None).contains("/db.sql"));
    let dumped = env.strata(["dump", "latest", "/db.sql"]).success();
    assert!(dumped.stdout == data, "dumped content differs from stdin");
    let dumped = env.strata(["dump", &id[..8], "/db.sql"]).success();
    assert!(dumped.stdout == data);

    let target = env.path("restore");
    env.restore(&id, &target);
    assert!(fs::read(target.join("db.sql")).unwrap() == data);

    // Empty input is a valid (empty) dump.
    env.cmd()
        .args(["backup", "--stdin", "--stdin-filename", "empty.sql"])
        .stdin(Vec::new())
        .run()
        .success();
    assert_eq!(
        env.strata(["dump", "latest", "/empty.sql"])
            .success()
            .stdout,
        b""
    );
}

// ---------------------------------------------------------------------------
// snapshots and cat
// ---------------------------------------------------------------------------

#[test]
fn snapshots_json_fields() {
    let env = Env::init();
    let src = small_tree(&env, "src");
    let other = small_tree(&env, "other");
    let b1 = env.backup_json(&[&src], &["--tag", "daily", "--tag", "db"]);
    let id1 = b1["snapshot_id"].as_str().unwrap().to_owned();
    let b2 = env.backup_json(&[&other], &["--host", "e2e-host", "--parent", &id1]);
    let id2 = b2["snapshot_id"].as_str().unwrap().to_owned();

    let snaps = env.snapshots();
    assert_eq!(snaps.len(), 2);
    let s1 = snaps
        .iter()
        .find(|s| s["id"] == id1.as_str())
        .expect("first listed");
    let s2 = snaps
        .iter()
        .find(|s| s["id"] == id2.as_str())
        .expect("second listed");

    for s in [s1, s2] {
        let id = s["id"].as_str().unwrap();
        assert!(is_hex(id), "{s}");
        let short = s["short_id"].as_str().unwrap();
        assert!(
            !short.is_empty() && short.len() < id.len() && id.starts_with(short),
            "{s}"
        );
        assert!(is_rfc3339(s["time"].as_str().unwrap()), "time: {s}");
        assert!(is_hex(s["tree"].as_str().unwrap()), "tree: {s}");
        assert!(!s["user"].as_str().unwrap().is_empty(), "{s}");
    }
    let hostname = nix::unistd::gethostname()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert_eq!(s1["host"], hostname.as_str());
    assert_eq!(s2["host"], "e2e-host");
    assert_eq!(s1["paths"], serde_json::json!([src.to_string_lossy()]));
    assert_eq!(s2["paths"], serde_json::json!([other.to_string_lossy()]));
    let tags: BTreeSet<&str> = s1["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(tags, BTreeSet::from(["daily", "db"]));
    assert_eq!(s2["tags"].as_array().map(Vec::len), Some(0));
    assert!(s1["parent"].is_null(), "{s1}");
    assert_eq!(s2["parent"], id1.as_str());

    // The summary repeats the backup's counters.
    for (s, b) in [(s1, &b1), (s2, &b2)] {
        for key in [
            "files_new",
            "files_changed",
            "files_unchanged",
            "dirs",
            "bytes_read",
            "bytes_total",
            "bytes_added",
            "data_blobs_added",
            "tree_blobs_added",
        ] {
            assert_eq!(s["summary"][key], b[key], "{key}: {s} vs {b}");
        }
    }

    // The table names each snapshot by its short id.
    let table = env.strata(["snapshots"]).success().stdout_str();
    for s in [s1, s2] {
        assert!(table.contains(s["short_id"].as_str().unwrap()), "{table}");
    }
}

#[test]
fn cat_prints_json() {
    let env = Env::init();
    let config = env.strata(["cat", "config"]).success().json();
    assert!(config.is_object(), "{config}");

    let src = small_tree(&env, "src");
    let id = env.backup(&[&src]);
    let snap = env.strata(["cat", "snapshot", &id]).success();
    let snap_json = snap.json();
    assert!(snap_json.is_object(), "{snap_json}");
    let listed = env.snapshots();
    let tree = listed[0]["tree"].as_str().unwrap();
    assert!(
        snap.stdout_str().contains(tree),
        "the snapshot's tree id is not in `cat snapshot`\n{}",
        snap.describe()
    );

    let index = env.repo_files("index");
    assert!(!index.is_empty());
    for file in index {
        let v = env
            .strata(["cat", "index", &file_name(&file)])
            .success()
            .json();
        assert!(v.is_object() || v.is_array(), "{v}");
    }
    env.strata(["cat", "no-such-kind", "x"]).failure();
}

#[test]
fn backup_with_one_file_system() {
    let env = Env::init();
    let src = small_tree(&env, "src");
    let v = env.backup_json(&[&src], &["--one-file-system"]);
    let target = env.path("restore");
    env.restore(v["snapshot_id"].as_str().unwrap(), &target);
    assert_same_tree(&src, &restored(&target, &src));
}

/// `copy` either way round: `-r SRC copy --to-repo DST`, and restic's `-r DST copy
/// --from-repo SRC`; each repository opens with its own password (the `--from-`/`--to-`
/// one for the side the option names, the usual one for -r). Exactly one of the two
/// options: both, or neither, is a usage error.
#[test]
fn copy_either_way_round_with_each_sides_password() {
    let src = Env::init();
    let data = small_tree(&src, "src");
    let id = src.backup(&[&data]);
    let other_password = |env: &Env, pw: &str| {
        fs::write(&env.password_file, pw).unwrap();
        env.strata(["init", "--kdf-memory", "1024", "--kdf-iterations", "1"])
            .success();
    };
    let copied_id = |out: Output| {
        let report = out.json();
        assert_eq!(report["copied"][0][0], id.as_str(), "{report}");
        report["copied"][0][1].as_str().unwrap().to_string()
    };
    let restores_identical = |env: &Env, copy: &str| {
        let target = env.path(format!("restore-{copy}"));
        env.restore(copy, &target).success();
        assert_same_tree(&data, &restored(&target, &data));
    };

    // restic's way: -r (and the usual password) is the destination.
    let dst = Env::new();
    other_password(&dst, "the destination's own\n");
    dst.cmd()
        .args(["copy", "--json", "--from-repo"])
        .arg(&src.repo)
        .run()
        .code(12); // the source does not open with the destination's password
    let out = dst
        .cmd()
        .args(["copy", "--json", "--from-repo"])
        .arg(&src.repo)
        .arg("--from-password-file")
        .arg(&src.password_file)
        .run()
        .success();
    restores_identical(&dst, &copied_id(out));

    // --to-repo: -r is the source.
    let dst2 = Env::new();
    other_password(&dst2, "yet another\n");
    let out = src
        .cmd()
        .args(["copy", "--json", "--to-repo"])
        .arg(&dst2.repo)
        .arg("--to-password-file")
        .arg(&dst2.password_file)
        .run()
        .success();
    restores_identical(&dst2, &copied_id(out));

    src.cmd()
        .args(["copy", "--to-repo"])
        .arg(&dst.repo)
        .arg("--from-repo")
        .arg(&dst2.repo)
        .run()
        .code(2);
    src.strata(["copy"]).code(2);
}

/// `dump SNAPSHOT DIR` writes a tar archive, as restic: unpacked with tar(1), it is the
/// backed-up tree (contents, a large file of many chunks, symlinks, an empty directory, a
/// name longer than a tar header holds, modes, times); `dump SNAPSHOT /` holds the whole
/// snapshot. A file is still written as it is.
#[test]
fn dump_of_a_directory_is_a_tar_that_unpacks_identical() {
    require("tar", "tar");
    let env = Env::init();
    let src = small_tree(&env, "src");
    write_file(&src.join("big.bin"), &random_bytes(9, 5 * 1024 * 1024 + 77));
    std::os::unix::fs::symlink("a.txt", src.join("link")).unwrap();
    fs::create_dir(src.join("empty-dir")).unwrap();
    let long = src.join(format!("{}/{}", "d".repeat(80), "n".repeat(90)));
    write_file(&long, b"a long path\n");
    let id = env.backup(&[&src]);

    let unpack = |args: &[&OsStr], dir: &str| {
        let out = env.cmd().arg("dump").args(args).run().success();
        let tar_file = env.path(format!("{dir}.tar"));
        fs::write(&tar_file, &out.stdout).unwrap();
        let into = env.path(dir);
        fs::create_dir(&into).unwrap();
        let status = std::process::Command::new("tar")
            .arg("-xpf")
            .arg(&tar_file)
            .arg("-C")
            .arg(&into)
            .status()
            .unwrap();
        assert!(status.success(), "tar -x failed");
        into.join(src.strip_prefix("/").unwrap())
    };
    let one = unpack(&[OsStr::new(&id), src.as_os_str()], "one");
    assert_same_tree(&src, &one);
    let whole = unpack(&[OsStr::new(&id), OsStr::new("/")], "whole");
    assert_same_tree(&src, &whole);

    let out = env
        .cmd()
        .args(["dump", &id])
        .arg(src.join("a.txt"))
        .run()
        .success();
    assert_eq!(out.stdout, fs::read(src.join("a.txt")).unwrap());
}
