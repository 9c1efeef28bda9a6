//! Progress with totals: the backup's scanner, the per-file status a backup reports, and
//! the totals restore and `check --read-data` know up front. What is reported done must
//! add up to the totals, or a percentage never reaches 100 (or passes it).

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use strata_engine::archiver::{backup_paths, BackupOptions};
use strata_engine::checker::{check_with, CheckOptions};
use strata_engine::progress::{FileStatus, Progress, Totals};
use strata_engine::restorer::{restore, Overwrite, RestoreOptions};
use strata_engine::Repository;

/// Records what an operation reports. `slow` delays each file a backup starts, so that the
/// scanner, which only lists, is sure to finish first.
#[derive(Default)]
struct Recorder {
    totals: Mutex<Vec<Totals>>,
    items: AtomicU64,
    bytes: AtomicU64,
    files: Mutex<BTreeMap<PathBuf, FileStatus>>,
    slow: bool,
}

impl Progress for Recorder {
    fn set_totals(&self, totals: Totals) {
        self.totals.lock().unwrap().push(totals);
    }
    fn add_bytes(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::SeqCst);
    }
    fn add_item(&self) {
        self.items.fetch_add(1, Ordering::SeqCst);
    }
    fn current(&self, _path: &Path) {
        if self.slow {
            std::thread::sleep(Duration::from_millis(30));
        }
    }
    fn file_done(&self, path: &Path, status: FileStatus) {
        let old = self
            .files
            .lock()
            .unwrap()
            .insert(path.to_path_buf(), status);
        assert!(old.is_none(), "{} reported twice", path.display());
    }
}

impl Recorder {
    fn slow() -> Self {
        Recorder {
            slow: true,
            ..Default::default()
        }
    }

    /// The last totals reported, which must be final.
    fn final_totals(&self) -> Totals {
        let totals = self.totals.lock().unwrap();
        let last = *totals.last().expect("totals reported");
        assert!(last.complete, "{totals:?}");
        // Totals so far only grow, and only the last is final.
        for pair in totals.windows(2) {
            assert!(pair[0].items <= pair[1].items && pair[0].bytes <= pair[1].bytes);
            assert!(!pair[0].complete, "{totals:?}");
        }
        last
    }

    fn done(&self) -> (u64, u64) {
        (
            self.items.load(Ordering::SeqCst),
            self.bytes.load(Ordering::SeqCst),
        )
    }
}

fn write(path: &Path, len: usize, seed: u64) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, common::pseudo_random(len, seed)).unwrap();
}

#[test]
fn a_backup_reports_each_file_new_modified_or_unchanged_and_done_adds_up_to_the_scanned_totals() {
    let backend = common::init_memory(1 << 20);
    let repo = Repository::open(backend.clone(), b"pw").unwrap();
    let src = tempfile::tempdir().unwrap();
    let s = src.path();
    write(&s.join("a/one"), 100_000, 1);
    write(&s.join("a/two"), 300_000, 2);
    write(&s.join("b/c/three"), 700_000, 3);
    write(&s.join("b/empty"), 0, 4);
    write(&s.join("b/skip.log"), 50_000, 5); // excluded: neither counted nor done
    std::os::unix::fs::symlink("a/one", s.join("link")).unwrap(); // not a regular file
    let opts = BackupOptions {
        excludes: vec!["*.log".into()],
        ..Default::default()
    };
    let paths = [s.to_path_buf()];

    let first = Recorder::slow();
    backup_paths(&repo, &paths, &opts, &first).unwrap();
    let all_new: BTreeMap<PathBuf, FileStatus> = ["a/one", "a/two", "b/c/three", "b/empty"]
        .iter()
        .map(|p| (s.join(p), FileStatus::New))
        .collect();
    assert_eq!(*first.files.lock().unwrap(), all_new);
    let totals = first.final_totals();
    assert_eq!((totals.items, totals.bytes), (4, 1_100_000));
    assert_eq!(first.done(), (4, 1_100_000));

    // Change one file, add one: the others are unchanged, and count as done all the same.
    std::thread::sleep(Duration::from_millis(20));
    write(&s.join("a/one"), 120_000, 6);
    write(&s.join("b/new"), 10_000, 7);
    let repo = Repository::open(backend, b"pw").unwrap();
    let second = Recorder::slow();
    backup_paths(&repo, &paths, &opts, &second).unwrap();
    let expected: BTreeMap<PathBuf, FileStatus> = [
        ("a/one", FileStatus::Modified),
        ("a/two", FileStatus::Unchanged),
        ("b/c/three", FileStatus::Unchanged),
        ("b/empty", FileStatus::Unchanged),
        ("b/new", FileStatus::New),
    ]
    .iter()
    .map(|(p, st)| (s.join(p), *st))
    .collect();
    assert_eq!(*second.files.lock().unwrap(), expected);
    let totals = second.final_totals();
    assert_eq!((totals.items, totals.bytes), (5, 1_130_000));
    assert_eq!(second.done(), (5, 1_130_000));
}

#[test]
fn restore_and_check_read_data_report_their_totals_up_front_and_reach_them() {
    let backend = common::init_memory(256 << 10);
    let repo = Repository::open(backend.clone(), b"pw").unwrap();
    let src = tempfile::tempdir().unwrap();
    let s = src.path();
    write(&s.join("a/one"), 400_000, 1);
    write(&s.join("a/two"), 900_000, 2);
    write(&s.join("b/empty"), 0, 3);
    std::fs::hard_link(s.join("a/one"), s.join("b/one-again")).unwrap();
    let done = backup_paths(
        &repo,
        &[s.to_path_buf()],
        &BackupOptions::default(),
        &strata_engine::progress::NoProgress,
    )
    .unwrap();
    let repo = Repository::open(backend, b"pw").unwrap();

    let target = tempfile::tempdir().unwrap();
    let restored = Recorder::default();
    let stats = restore(
        &repo,
        &done.snapshot,
        target.path(),
        &RestoreOptions::default(),
        &restored,
    )
    .unwrap();
    assert!(stats.errors.is_empty(), "{:?}", stats.errors);
    let totals = *restored.totals.lock().unwrap().first().unwrap();
    assert_eq!(restored.totals.lock().unwrap().len(), 1);
    let expected = (4, 1_700_000); // the hard link is a file of its size
    assert_eq!(
        (totals.items, totals.bytes, totals.complete),
        (4, 1_700_000, true)
    );
    assert_eq!(restored.done(), expected);

    // Again over an edited file, with a safety snapshot first: that backup's own counts
    // (its scanner's totals, its files) are not the restore's.
    let back = target.path().join(s.strip_prefix("/").unwrap());
    std::fs::write(back.join("a/two"), b"edited").unwrap();
    let again = Recorder::default();
    let opts = RestoreOptions {
        overwrite: Overwrite::IfChanged,
        safety: Some(BackupOptions::default()),
        ..Default::default()
    };
    let stats = restore(&repo, &done.snapshot, target.path(), &opts, &again).unwrap();
    assert!(stats.safety_snapshot.is_some());
    let totals = again.totals.lock().unwrap().clone();
    assert_eq!(totals.len(), 1, "{totals:?}");
    assert_eq!((totals[0].items, totals[0].bytes), (1, 900_000));
    assert_eq!(again.done(), (1, 900_000));
    assert!(again.files.lock().unwrap().is_empty());
    let repo = Repository::open(repo.backend().clone(), b"pw").unwrap();

    let checked = Recorder::default();
    let opts = CheckOptions {
        read_data: true,
        ..Default::default()
    };
    let report = check_with(&repo, &opts, &checked).unwrap();
    assert!(report.is_ok(), "{:?}", report.errors);
    let totals = checked.final_totals();
    assert!(totals.items > 2, "several packs: {totals:?}");
    assert_eq!(totals.items, report.packs_read);
    assert_eq!(checked.done(), (totals.items, totals.bytes));
    assert_eq!(totals.bytes, report.bytes_read);
}

/// The scanner leaves out what the archiver leaves out: a directory marked by a cache tag or
/// a tag file keeps only its tag, and files over `--exclude-larger-than` are not counted.
#[test]
fn the_scanner_counts_only_what_the_exclusion_options_leave_in() {
    use strata_engine::archiver::{TagFile, CACHEDIR_SIGNATURE};
    let backend = common::init_memory(1 << 20);
    let repo = Repository::open(backend, b"pw").unwrap();
    let src = tempfile::tempdir().unwrap();
    let s = src.path();
    write(&s.join("keep/a"), 100_000, 1);
    write(&s.join("keep/big"), 900_000, 2); // over the limit
    write(&s.join("cache/blob"), 200_000, 3);
    let tag = format!("{CACHEDIR_SIGNATURE}\n# a cache\n");
    std::fs::write(s.join("cache/CACHEDIR.TAG"), &tag).unwrap();
    write(&s.join("marked/x"), 300_000, 4);
    std::fs::write(s.join("marked/.nobackup"), b"").unwrap();
    let opts = BackupOptions {
        exclude_caches: true,
        exclude_if_present: vec![TagFile::parse(".nobackup").unwrap()],
        exclude_larger_than: Some(500_000),
        ..Default::default()
    };
    let recorder = Recorder::slow();
    backup_paths(&repo, &[s.to_path_buf()], &opts, &recorder).unwrap();
    let kept: Vec<PathBuf> = recorder.files.lock().unwrap().keys().cloned().collect();
    assert_eq!(
        kept,
        vec![
            s.join("cache/CACHEDIR.TAG"),
            s.join("keep/a"),
            s.join("marked/.nobackup"),
        ]
    );
    let totals = recorder.final_totals();
    let expected = (3, 100_000 + tag.len() as u64);
    assert_eq!((totals.items, totals.bytes), expected);
    assert_eq!(recorder.done(), expected);
}

/// Progress that shows no totals gets none: no scanner runs beside the backup (a cron
/// job's backup without a terminal pays nothing for them).
#[test]
fn no_scanner_runs_when_no_totals_are_wanted() {
    struct Blind(Recorder);
    impl Progress for Blind {
        fn set_totals(&self, totals: Totals) {
            self.0.set_totals(totals)
        }
        fn add_item(&self) {
            self.0.add_item()
        }
        fn wants_totals(&self) -> bool {
            false
        }
    }
    let backend = common::init_memory(1 << 20);
    let repo = Repository::open(backend, b"pw").unwrap();
    let src = tempfile::tempdir().unwrap();
    write(&src.path().join("a"), 10_000, 1);
    write(&src.path().join("b"), 10_000, 2);
    let blind = Blind(Recorder::slow());
    backup_paths(
        &repo,
        &[src.path().to_path_buf()],
        &BackupOptions::default(),
        &blind,
    )
    .unwrap();
    assert!(blind.0.totals.lock().unwrap().is_empty());
    assert_eq!(blind.0.done().0, 2);
}
