//! restic's backup options (#15): what `--exclude-file`, `--files-from` (and `-verbatim`,
//! `-raw`), `--exclude-caches`, `--exclude-if-present` and `--exclude-larger-than` leave
//! in a snapshot, path for path; `--dry-run` leaving the repository as it was; `-v`
//! listing exactly the new and modified files; `--limit-upload`/`--limit-download`;
//! `init --copy-chunker-params`; and the password options that exclude each other.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::*;

/// The paths below `src` (relative to it, `""` for `src` itself) in `snapshot`, from
/// `ls --json`.
fn paths_in(env: &Env, snapshot: &str, src: &Path) -> BTreeSet<String> {
    let prefix = src.to_string_lossy().into_owned();
    env.strata(["ls", snapshot, "--json"])
        .success()
        .json_lines()
        .iter()
        .filter_map(|e| {
            let p = e["path"].as_str()?;
            if p == prefix {
                Some(String::new())
            } else {
                p.strip_prefix(&format!("{prefix}/")).map(str::to_owned)
            }
        })
        .collect()
}

fn set(paths: &[&str]) -> BTreeSet<String> {
    paths.iter().map(|s| s.to_string()).collect()
}

/// `backup --json ARGS...`, asserting success; returns the snapshot id.
#[track_caller]
fn backup_with(env: &Env, args: &[&std::ffi::OsStr]) -> String {
    let out = env
        .cmd()
        .args(["backup", "--json"])
        .args(args)
        .run()
        .success();
    out.json()["snapshot_id"].as_str().unwrap().to_string()
}

#[test]
fn exclude_file_leaves_out_its_patterns_and_ignores_comments() {
    let env = Env::init();
    let src = env.path("src");
    write_file(&src.join("keep.txt"), b"k");
    write_file(&src.join("debug.log"), b"l");
    write_file(&src.join("sub/x.tmp"), b"t");
    write_file(&src.join("sub/y.txt"), b"y");
    write_file(&src.join("node_modules/m.js"), b"m");
    // A comment line that would match everything if it were read as a pattern.
    write_file(&src.join("#*"), b"hash");
    let list = env.path("excludes");
    fs::write(
        &list,
        "# build output\n#*\n\n*.log\n   *.tmp  \r\nnode_modules\n",
    )
    .unwrap();
    let id = backup_with(
        &env,
        &[src.as_os_str(), "--exclude-file".as_ref(), list.as_os_str()],
    );
    assert_eq!(
        paths_in(&env, &id, &src),
        set(&["", "#*", "keep.txt", "sub", "sub/y.txt"])
    );
    // A pattern that cannot be read fails the backup, naming the file; nothing is saved.
    fs::write(&list, "ok\n[oops\n").unwrap();
    env.cmd()
        .arg("backup")
        .arg(&src)
        .arg("--exclude-file")
        .arg(&list)
        .run()
        .failure()
        .stderr_contains(&list.to_string_lossy());
    env.cmd()
        .arg("backup")
        .arg(&src)
        .args(["--exclude-file", "/nonexistent/excludes"])
        .run()
        .failure()
        .stderr_contains("/nonexistent/excludes");
    assert_eq!(env.snapshots().len(), 1);
}

#[test]
fn files_from_backs_up_exactly_the_listed_paths_in_each_format() {
    let env = Env::init();
    let src = env.path("src");
    for f in ["a", "b", "c/d", "e", "trail ", "new\nline"] {
        write_file(&src.join(f), f.as_bytes());
    }
    let p = |f: &str| src.join(f).to_string_lossy().into_owned();
    // Lines: comments, blank lines and surrounding whitespace dropped; with a path given
    // on the command line too.
    let lines = env.path("lines");
    fs::write(
        &lines,
        format!("# the list\n{}\n\n   {}  \n", p("a"), p("c")),
    )
    .unwrap();
    let id = backup_with(
        &env,
        &[
            src.join("e").as_os_str(),
            "--files-from".as_ref(),
            lines.as_os_str(),
        ],
    );
    assert_eq!(paths_in(&env, &id, &src), set(&["", "a", "c", "c/d", "e"]));
    // Verbatim: a name ending in a space is kept as it is.
    let verbatim = env.path("verbatim");
    fs::write(&verbatim, format!("{}\n{}\n", p("trail "), p("b"))).unwrap();
    let id = backup_with(
        &env,
        &["--files-from-verbatim".as_ref(), verbatim.as_os_str()],
    );
    assert_eq!(paths_in(&env, &id, &src), set(&["", "b", "trail "]));
    // Raw: NUL-separated, a newline inside a name.
    let raw = env.path("raw");
    fs::write(&raw, format!("{}\0{}\0", p("new\nline"), p("a"))).unwrap();
    let id = backup_with(&env, &["--files-from-raw".as_ref(), raw.as_os_str()]);
    assert_eq!(paths_in(&env, &id, &src), set(&["", "a", "new\nline"]));
    // `-`: the list on standard input.
    let out = env
        .cmd()
        .args(["backup", "--json", "--files-from", "-"])
        .stdin(format!("{}\n", p("b")))
        .run()
        .success();
    let id = out.json()["snapshot_id"].as_str().unwrap().to_string();
    assert_eq!(paths_in(&env, &id, &src), set(&["", "b"]));
    // A list naming nothing, and no other source: a usage error, no snapshot.
    let empty = env.path("empty");
    fs::write(&empty, "# nothing\n\n").unwrap();
    env.cmd()
        .args(["backup", "--files-from"])
        .arg(&empty)
        .run()
        .code(2)
        .stderr_contains("nothing to back up");
    assert_eq!(env.snapshots().len(), 4);
}

#[test]
fn exclude_caches_keeps_only_the_tag_of_a_tagged_directory() {
    let env = Env::init();
    let src = env.path("src");
    let signature = b"Signature: 8a477f597d28d172789f06886806bc55\n# a cache\n";
    write_file(&src.join("cache/CACHEDIR.TAG"), signature);
    write_file(&src.join("cache/blob.bin"), &random_bytes(1, 10_000));
    write_file(&src.join("cache/sub/x"), b"x");
    // A tag without the signature marks nothing.
    write_file(
        &src.join("fake/CACHEDIR.TAG"),
        b"Signature: something else\n",
    );
    write_file(&src.join("fake/y"), b"y");
    write_file(&src.join("keep.txt"), b"k");
    let id = backup_with(&env, &[src.as_os_str(), "--exclude-caches".as_ref()]);
    assert_eq!(
        paths_in(&env, &id, &src),
        set(&[
            "",
            "cache",
            "cache/CACHEDIR.TAG",
            "fake",
            "fake/CACHEDIR.TAG",
            "fake/y",
            "keep.txt"
        ])
    );
    // Without the option, everything.
    let id = backup_with(&env, &[src.as_os_str()]);
    assert!(paths_in(&env, &id, &src).contains("cache/sub/x"));
}

#[test]
fn exclude_if_present_keeps_the_marker_and_reads_its_header() {
    let env = Env::init();
    let src = env.path("src");
    write_file(&src.join("a/.nobackup"), b"");
    write_file(&src.join("a/f"), b"f");
    write_file(&src.join("a/deep/g"), b"g");
    write_file(&src.join("b/.skip"), b"no, keep it");
    write_file(&src.join("b/h"), b"h");
    write_file(&src.join("c/.skip"), b"yes please");
    write_file(&src.join("c/i"), b"i");
    write_file(&src.join("d/j"), b"j");
    let id = backup_with(
        &env,
        &[
            src.as_os_str(),
            "--exclude-if-present".as_ref(),
            ".nobackup".as_ref(),
            "--exclude-if-present".as_ref(),
            ".skip:yes".as_ref(),
        ],
    );
    assert_eq!(
        paths_in(&env, &id, &src),
        set(&[
            "",
            "a",
            "a/.nobackup",
            "b",
            "b/.skip",
            "b/h",
            "c",
            "c/.skip",
            "d",
            "d/j"
        ])
    );
    // A path is no file name.
    env.cmd()
        .arg("backup")
        .arg(&src)
        .args(["--exclude-if-present", "a/b"])
        .run()
        .code(2);
}

#[test]
fn exclude_larger_than_leaves_out_bigger_files_only() {
    let env = Env::init();
    let src = env.path("src");
    write_file(&src.join("small"), &[1; 1000]);
    write_file(&src.join("exact"), &[2; 1024]);
    write_file(&src.join("over"), &[3; 1025]);
    write_file(&src.join("sub/big"), &random_bytes(2, 3 << 20));
    let id = backup_with(
        &env,
        &[
            src.as_os_str(),
            "--exclude-larger-than".as_ref(),
            "1K".as_ref(),
        ],
    );
    assert_eq!(
        paths_in(&env, &id, &src),
        set(&["", "small", "exact", "sub"])
    );
    let id = backup_with(
        &env,
        &[
            src.as_os_str(),
            "--exclude-larger-than".as_ref(),
            "2M".as_ref(),
        ],
    );
    assert_eq!(
        paths_in(&env, &id, &src),
        set(&["", "small", "exact", "over", "sub"])
    );
    for bad in ["1.5M", "lots", "-1"] {
        env.cmd()
            .arg("backup")
            .arg(&src)
            .args(["--exclude-larger-than", bad])
            .run()
            .code(2);
    }
}

/// Every file of the repository with its size and a hash of its content.
fn repository_files(env: &Env) -> Vec<(PathBuf, u64, u64)> {
    use std::hash::{Hash, Hasher};
    env.repo_files("")
        .into_iter()
        .map(|p| {
            let content = fs::read(&p).unwrap();
            let mut h = std::hash::DefaultHasher::new();
            content.hash(&mut h);
            (p, content.len() as u64, h.finish())
        })
        .collect()
}

#[test]
fn dry_run_writes_nothing_and_predicts_what_a_backup_adds() {
    let env = Env::init();
    let src = env.path("src");
    write_file(&src.join("same.bin"), &random_bytes(3, 200_000));
    write_file(&src.join("edited.txt"), b"first version\n");
    env.backup(&[&src]);
    write_file(&src.join("edited.txt"), b"second, longer version\n");
    write_file(&src.join("sub/new.bin"), &random_bytes(4, 300_000));
    let before = repository_files(&env);
    let out = env
        .cmd()
        .arg("backup")
        .arg(&src)
        .args(["--dry-run", "--json", "-v"])
        .run()
        .success();
    let plan = out.json();
    assert_eq!(
        repository_files(&env),
        before,
        "a dry run changed the repository"
    );
    assert_eq!(plan["dry_run"], true, "{plan}");
    assert_eq!(plan["files_new"], 1, "{plan}");
    assert_eq!(plan["files_changed"], 1, "{plan}");
    assert_eq!(plan["files_unchanged"], 1, "{plan}");
    let listed: BTreeSet<(String, String)> = plan["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["status"].as_str().unwrap().to_string(),
                f["path"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let path = |rel: &str| src.join(rel).to_string_lossy().into_owned();
    assert_eq!(
        listed,
        BTreeSet::from([
            ("modified".to_string(), path("edited.txt")),
            ("new".to_string(), path("sub/new.bin")),
        ])
    );
    assert!(plan["bytes_added"].as_u64().unwrap() > 300_000, "{plan}");
    // In words, and still nothing written.
    let text = env
        .cmd()
        .arg("backup")
        .arg(&src)
        .arg("-n")
        .run()
        .success()
        .stdout_str();
    assert!(text.contains("dry run"), "{text}");
    assert!(text.contains("nothing was written"), "{text}");
    assert_eq!(repository_files(&env), before);
    assert_eq!(env.snapshots().len(), 1);
    // The backup itself adds the blobs the dry run counted.
    let done = env.backup_json(&[&src], &[]);
    for k in [
        "files_new",
        "files_changed",
        "data_blobs_added",
        "tree_blobs_added",
    ] {
        assert_eq!(done[k], plan[k], "{k}: {done} against {plan}");
    }
}

/// The `(word, path)` pairs of `backup -v`'s listing.
fn listing(out: &Output) -> BTreeSet<(String, String)> {
    out.lines()
        .iter()
        .filter_map(|l| {
            let (word, path) = l.split_once(' ')?;
            matches!(word, "new" | "modified")
                .then(|| (word.to_string(), path.trim_start().to_string()))
        })
        .collect()
}

#[test]
fn verbose_lists_exactly_the_new_and_modified_files() {
    let env = Env::init();
    let src = env.path("src");
    write_file(&src.join("a"), b"a");
    write_file(&src.join("b"), b"b");
    write_file(&src.join("sub/c"), b"c");
    let path = |rel: &str| src.join(rel).to_string_lossy().into_owned();
    let pair = |w: &str, rel: &str| (w.to_string(), path(rel));
    let first = env.cmd().arg("backup").arg(&src).arg("-v").run().success();
    assert_eq!(
        listing(&first),
        BTreeSet::from([pair("new", "a"), pair("new", "b"), pair("new", "sub/c")]),
        "{}",
        first.describe()
    );
    write_file(&src.join("b"), b"b, edited");
    write_file(&src.join("sub/d"), b"d");
    let second = env
        .cmd()
        .arg("backup")
        .arg(&src)
        .arg("--verbose")
        .run()
        .success();
    assert_eq!(
        listing(&second),
        BTreeSet::from([pair("modified", "b"), pair("new", "sub/d")]),
        "{}",
        second.describe()
    );
    // restic's layout: the word, padded, then the path.
    assert!(
        second.lines().contains(&format!("modified  {}", path("b"))),
        "{}",
        second.describe()
    );
    // Without -v, no listing.
    write_file(&src.join("e"), b"e");
    let quiet = env.cmd().arg("backup").arg(&src).run().success();
    assert!(listing(&quiet).is_empty(), "{}", quiet.describe());
}

/// `--limit-upload` and `--limit-download` hold the traffic to their rate. This asserts a
/// lower bound that follows from the rate (2 MiB at 1 MiB/s cannot take less than about
/// two seconds), not how fast anything is.
#[test]
fn bandwidth_limits_hold_uploads_and_downloads_to_their_rate() {
    let env = Env::init();
    let src = env.path("src");
    // Random bytes do not compress: about 2 MiB reach the repository.
    write_file(&src.join("data.bin"), &random_bytes(5, 2 << 20));
    let started = Instant::now();
    let out = env
        .cmd()
        .args(["--limit-upload", "1024", "backup", "--json"])
        .arg(&src)
        .run()
        .success();
    let took = started.elapsed();
    let added = out.json()["bytes_added"].as_u64().unwrap();
    assert!(added >= 2 << 20, "{added}");
    // 2 MiB at 1024 KiB/s is 2 s, less the bucket's burst of 0.1 s.
    assert!(took >= Duration::from_millis(1900), "upload took {took:?}");
    let id = out.json()["snapshot_id"].as_str().unwrap().to_string();
    let target = env.path("restore");
    fs::create_dir(&target).unwrap();
    let started = Instant::now();
    env.cmd()
        .args(["--limit-download", "1024", "restore", &id, "--target"])
        .arg(&target)
        .run()
        .success();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1900),
        "download took {took:?}"
    );
    assert_same_tree(&src, &restored(&target, &src));
    // A limit of nothing is no limit: a usage error.
    env.strata(["--limit-upload", "0", "snapshots"]).code(2);
}

/// `copy` summary of copying every snapshot of `from` (with `env`'s password) into
/// `to`.
fn copy_into(env: &Env, from: &Path, to: &Path) -> Value {
    env.cmd()
        .arg("-r")
        .arg(to)
        .arg("copy")
        .arg("--from-repo")
        .arg(from)
        .arg("--json")
        .run()
        .success()
        .json()
}

fn config(env: &Env, repo: &Path) -> Value {
    env.cmd()
        .arg("-r")
        .arg(repo)
        .args(["cat", "config"])
        .run()
        .success()
        .json()
}

#[test]
fn init_copy_chunker_params_lets_copies_dedup_against_direct_backups() {
    let env = Env::new();
    let init = |repo: &Path, extra: &[&str]| {
        env.cmd()
            .arg("-r")
            .arg(repo)
            .args(["init", "--kdf-memory", "1024", "--kdf-iterations", "1"])
            .args(extra)
            .run()
            .success()
    };
    let source = env.path("source");
    init(&source, &["--db-chunk-size", "32"]);
    let src = env.path("src");
    // Several chunks (1 MiB on average), whose boundaries depend on the chunker's seed.
    write_file(&src.join("big.bin"), &random_bytes(6, 8 << 20));
    env.cmd()
        .arg("-r")
        .arg(&source)
        .arg("backup")
        .arg(&src)
        .run()
        .success();
    let pw = env.password_file.to_string_lossy().into_owned();
    let alike = env.path("alike");
    let out = init(
        &alike,
        &[
            "--copy-chunker-params",
            "--from-repo",
            &source.to_string_lossy(),
            "--from-password-file",
            &pw,
        ],
    );
    assert!(
        out.stdout_str().contains("chunker parameters"),
        "{}",
        out.describe()
    );
    let (a, b) = (config(&env, &source), config(&env, &alike));
    assert_eq!(a["chunker"], b["chunker"]);
    assert_eq!(a["db_chunker"], b["db_chunker"]);
    assert_eq!(b["db_chunker"]["avg_size"], 32 * 1024, "{b}");
    assert_ne!(a["repo_id"], b["repo_id"]);
    let apart = env.path("apart");
    init(&apart, &[]);
    // The same file backed up into each directly, then the source's snapshot copied in.
    for repo in [&alike, &apart] {
        env.cmd()
            .arg("-r")
            .arg(repo)
            .arg("backup")
            .arg(&src)
            .run()
            .success();
    }
    let copied = copy_into(&env, &source, &alike);
    assert_eq!(copied["data_blobs_added"], 0, "{copied}");
    // Without the option the chunks differ, and the copy brings its own.
    let copied = copy_into(&env, &source, &apart);
    assert!(copied["data_blobs_added"].as_u64().unwrap() > 0, "{copied}");
    // --from-repo without --copy-chunker-params, or the option alone: usage errors.
    init(&env.path("x"), &[]);
    for args in [
        vec!["--from-repo", "/elsewhere"],
        vec!["--copy-chunker-params"],
    ] {
        env.cmd()
            .arg("-r")
            .arg(env.path("y"))
            .arg("init")
            .args(args)
            .run()
            .code(2);
        assert!(!env.path("y").exists());
    }
}

/// Two password sources for the same repository (or database) are a usage error that
/// names both, as for the main pair.
#[test]
fn two_password_sources_for_one_side_are_a_usage_error() {
    let env = Env::init();
    let pw = env.password_file.to_string_lossy().into_owned();
    for (side, file, command) in [
        (
            "--from-repo",
            "--from-password-file",
            "--from-password-command",
        ),
        ("--to-repo", "--to-password-file", "--to-password-command"),
    ] {
        env.strata(["copy", side, "/elsewhere", file, &pw, command, "echo pw"])
            .code(2)
            .stderr_contains(file)
            .stderr_contains(command);
    }
    env.strata([
        "init",
        "--copy-chunker-params",
        "--from-repo",
        "/elsewhere",
        "--from-password-file",
        &pw,
        "--from-password-command",
        "echo pw",
    ])
    .code(2)
    .stderr_contains("--from-password-file")
    .stderr_contains("--from-password-command");
    env.strata([
        "backup",
        "--postgres",
        "postgres://u@127.0.0.1/db",
        "--db-password-file",
        &pw,
        "--db-password-command",
        "echo pw",
    ])
    .code(2)
    .stderr_contains("--db-password-file")
    .stderr_contains("--db-password-command");
}
