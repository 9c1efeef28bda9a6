//! The cache with a directory per test thread and a count of argon2id derivations per
//! thread (tests run in parallel; neither touches the process-wide switch).

use std::cell::{Cell, RefCell};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use strata_format::crypto::MasterKey;
use strata_format::keyfile::KeyFile;
use strata_storage::{Backend, FileType};

use super::*;
use crate::keyfiles::forget_remembered;
use crate::test_support::{memory_repository, PASSWORD};
use crate::{ErrorKind, Repository};

thread_local! {
    /// This thread's cache directory (in place of [`remember_on_disk`]'s).
    pub(super) static THREAD_DIR: RefCell<Option<PathBuf>> = const { RefCell::new(None) };
    /// argon2id derivations made by this thread.
    pub(super) static DERIVED: Cell<u32> = const { Cell::new(0) };
}

fn use_dir(dir: Option<&Path>) {
    THREAD_DIR.with(|d| *d.borrow_mut() = dir.map(Path::to_path_buf));
}

fn derived() -> u32 {
    DERIVED.with(Cell::get)
}

/// Opens as a fresh process would (nothing remembered in memory).
fn open_fresh(backend: &Arc<dyn Backend>, password: &[u8]) -> crate::Result<MasterKey> {
    forget_remembered();
    Repository::open_without_index(backend.clone(), password).map(|r| r.key().clone())
}

/// The repository's only key file.
fn key_file(backend: &Arc<dyn Backend>) -> KeyFile {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let listed = rt.block_on(backend.list(FileType::Key)).unwrap();
    assert_eq!(listed.len(), 1);
    KeyFile::decode(
        &rt.block_on(backend.read(FileType::Key, &listed[0].0))
            .unwrap(),
    )
    .unwrap()
}

/// The files in `dir`, sorted.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    out.sort();
    out
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A repository, opened once with the cache in a new `tmp/keys`: its storage, the cache
/// directory, the cache file and the master key.
fn cached() -> (Arc<dyn Backend>, tempfile::TempDir, PathBuf, MasterKey) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("keys");
    use_dir(Some(&dir));
    let backend = memory_repository();
    let before = derived();
    let key = open_fresh(&backend, PASSWORD).unwrap();
    assert_eq!(derived(), before + 1, "the first open derives");
    let file = dir.join(file_name(&key_file(&backend)));
    assert_eq!(files(&dir), vec![file.clone()]);
    (backend, tmp, file, key)
}

#[test]
fn a_second_process_reads_the_key_from_the_cache_without_argon2() {
    let (backend, _tmp, file, key) = cached();
    assert_eq!(mode(file.parent().unwrap()), 0o700);
    assert_eq!(mode(&file), 0o600);
    let before = derived();
    assert_eq!(open_fresh(&backend, PASSWORD).unwrap(), key);
    assert_eq!(open_fresh(&backend, PASSWORD).unwrap(), key);
    assert_eq!(derived(), before, "no argon2id with the cache file present");
}

#[test]
fn the_cached_key_file_is_tried_before_others_listed_first() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("keys");
    use_dir(None);
    let backend = memory_repository();
    let repo = Repository::open_without_index(backend.clone(), PASSWORD).unwrap();
    let first = repo.key_name().to_string();
    let kdf = strata_format::keyfile::KdfParams {
        m_kib: 64,
        t: 1,
        p: 1,
    };
    let second = crate::keys::add(&repo, b"second", kdf).unwrap();
    drop(repo);
    use_dir(Some(&dir));
    // The password of the key file listed last.
    let password: &[u8] = if second > first { b"second" } else { PASSWORD };
    let key = open_fresh(&backend, password).unwrap();
    assert_eq!(files(&dir).len(), 1);
    let before = derived();
    assert_eq!(open_fresh(&backend, password).unwrap(), key);
    assert_eq!(
        derived(),
        before,
        "no argon2id for the key file listed first"
    );
}

#[test]
fn a_wrong_password_is_refused_with_a_cache_present_even_under_its_name() {
    let (backend, _tmp, file, _) = cached();
    let err = open_fresh(&backend, b"wrong").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WrongPassword, "{err}");
    // The file's name says nothing of the password: the wrong one finds the right one's
    // file, cannot open it, and argon2id decides.
    assert!(file.exists());
    let before = derived();
    let err = open_fresh(&backend, b"wrong").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WrongPassword, "{err}");
    assert_eq!(derived(), before + 1, "argon2id decided");
}

#[test]
fn a_damaged_cache_file_is_ignored_and_written_again() {
    let (backend, _tmp, file, key) = cached();
    let good = std::fs::read(&file).unwrap();
    let mut flipped = good.clone();
    flipped[40] ^= 1;
    let mut newer = good.clone();
    newer[8] = 2;
    let mut huge = good.clone();
    huge.resize(4096, 0);
    for (what, bytes) in [
        ("a flipped byte", flipped),
        ("a newer version", newer),
        ("cut short", good[..good.len() - 1].to_vec()),
        ("only the header", good[..10].to_vec()),
        ("empty", Vec::new()),
        ("too large", huge),
    ] {
        std::fs::write(&file, &bytes).unwrap();
        let before = derived();
        assert_eq!(open_fresh(&backend, PASSWORD).unwrap(), key, "{what}");
        assert_eq!(derived(), before + 1, "{what}: argon2id ran");
        let rewritten = std::fs::read(&file).unwrap();
        assert_ne!(rewritten, bytes, "{what}: written again");
        assert_eq!(open_fresh(&backend, PASSWORD).unwrap(), key, "{what}");
        assert_eq!(derived(), before + 1, "{what}: the new file serves");
        assert_eq!(mode(&file), 0o600, "{what}");
        assert_eq!(files(file.parent().unwrap()), vec![file.clone()], "{what}");
    }
}

#[test]
fn a_cached_key_must_still_open_the_config() {
    let (backend, _tmp, file, _) = cached();
    let sealing = sealing_key(&key_file(&backend), PASSWORD);
    let mut rng = rand::thread_rng();
    std::fs::write(&file, encode(&MasterKey::random(&mut rng), &sealing)).unwrap();
    let before = derived();
    assert!(open_fresh(&backend, PASSWORD).is_err());
    assert_eq!(derived(), before, "the cached key was the one tried");
}

#[test]
fn a_directory_others_may_write_is_not_used() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("keys");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o770)).unwrap();
    use_dir(Some(&dir));
    let backend = memory_repository();
    let before = derived();
    let key = open_fresh(&backend, PASSWORD).unwrap();
    assert_eq!(open_fresh(&backend, PASSWORD).unwrap(), key);
    assert_eq!(derived(), before + 2, "argon2id every time");
    assert!(files(&dir).is_empty());
    assert!(usable_dir(&dir).unwrap_err().contains("chmod 700"));
    // Nor is a valid cache file read from it.
    let kf = key_file(&backend);
    let file = dir.join(file_name(&kf));
    std::fs::write(&file, encode(&key, &sealing_key(&kf, PASSWORD))).unwrap();
    assert_eq!(open_fresh(&backend, PASSWORD).unwrap(), key);
    assert_eq!(derived(), before + 3, "argon2id again");
    // Nor one others may only read (the names list the key files it caches).
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o750)).unwrap();
    assert!(usable_dir(&dir).unwrap_err().contains("chmod 700"));
    // A file where the directory should be.
    let not_dir = tmp.path().join("file");
    std::fs::write(&not_dir, b"").unwrap();
    assert!(usable_dir(&not_dir).is_err());
}

#[test]
fn off_unless_switched_on() {
    use_dir(None);
    assert_eq!(
        cache_dir(),
        None,
        "nothing switched it on in the unit tests"
    );
    let backend = memory_repository();
    let before = derived();
    let key = open_fresh(&backend, PASSWORD).unwrap();
    assert_eq!(open_fresh(&backend, PASSWORD).unwrap(), key);
    assert_eq!(derived(), before + 2, "argon2id every time");
}

proptest::proptest! {
    #[test]
    fn any_bytes_decode_to_an_error_not_a_panic(bytes in proptest::collection::vec(0u8..=255, 0..200)) {
        let _ = decode(&bytes, &[7; 32]);
        let mut headed = header().to_vec();
        headed.extend_from_slice(&bytes);
        proptest::prop_assert!(decode(&headed, &[7; 32]).is_err());
    }
}
