//! Key management over the in-memory backend: nobody is locked out.

use crate::common;

use std::sync::Arc;

use strata_engine::{keys, Repository};
use strata_format::keyfile::KdfParams;
use strata_storage::{Backend, FileType};

const CHEAP: KdfParams = KdfParams {
    m_kib: 64,
    t: 1,
    p: 1,
};

/// Two commands opened with two passwords each remove the other's key: the second must
/// refuse, or no key that opens the repository would be left.
#[test]
fn crossed_removes_leave_a_working_key() {
    let backend = common::init_memory(1 << 20);
    let alice = Repository::open_without_index(backend.clone(), b"pw").unwrap();
    let bob_key = keys::add(&alice, b"bob", CHEAP).unwrap();
    let bob = Repository::open_without_index(backend.clone(), b"bob").unwrap();
    assert_eq!(bob.key_name(), bob_key);
    // A third key nobody remembers.
    keys::add(&alice, b"forgotten", CHEAP).unwrap();

    keys::remove(&alice, &bob_key).unwrap();
    let err = keys::remove(&bob, alice.key_name())
        .unwrap_err()
        .to_string();
    assert!(err.contains("is gone"), "{err}");
    Repository::open_without_index(backend.clone(), b"pw").unwrap();
    assert!(Repository::open_without_index(backend, b"bob").is_err());
}

/// `passwd` replaces the key in use, and the old password no longer opens.
#[test]
fn change_password_replaces_the_key() {
    let backend = common::init_memory(1 << 20);
    let repo = Repository::open_without_index(backend.clone(), b"pw").unwrap();
    let new = keys::change_password(&repo, b"new", CHEAP).unwrap();
    let names: Vec<String> = repo
        .block_on(backend.list(FileType::Key))
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, vec![new]);
    assert!(Repository::open_without_index(backend.clone(), b"pw").is_err());
    Repository::open_without_index(backend, b"new").unwrap();
}

/// A key file copied from another repository, with the same password, does not lock the
/// real key out: it unwraps, fails to open the config, and the next key is tried.
#[test]
fn a_foreign_key_with_the_same_password_is_skipped() {
    let ours = common::init_memory(1 << 20);
    let theirs = common::init_memory(1 << 20);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (name, _) = rt.block_on(theirs.list(FileType::Key)).unwrap().remove(0);
    let bytes = rt.block_on(theirs.read(FileType::Key, &name)).unwrap();
    // Named to sort first, so it is tried first.
    rt.block_on(ours.write(FileType::Key, &"0".repeat(64), bytes))
        .unwrap();
    let ours: Arc<dyn Backend> = ours;
    Repository::open_without_index(ours, b"pw").unwrap();
}
