//! The names of temporary files: the one place that makes them and the one that recognises
//! them, so that a leftover is never mistaken for an object, nor an object for a leftover.
//!
//! Three kinds, each ending in 16 hex digits of randomness:
//! - `.NAME.tmp-<hex>`: a local write of object NAME in progress (renamed over NAME);
//! - `.tmp-<hex>`: an SFTP write in progress (renamed into place);
//! - `.pack-<hex>.tmp`: a spool file ([`crate::SpoolFile`]), in which a caller assembles an
//!   object before [`crate::Backend::write_file`] moves it into place. The name says "pack"
//!   because packs are what the engine spools; it is kept so that spool files left by older
//!   versions are still recognised.
//!
//! Object names never start with `.` (the backends refuse them), so every temporary name is
//! hidden from listings. Only names of these three shapes are ever removed as leftovers;
//! other hidden files are left alone.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

/// Whether a listed name is hidden: a temporary file (or some other file that is not an
/// object).
pub(crate) fn is_hidden(name: &str) -> bool {
    name.starts_with('.')
}

/// The temporary name of a local write of `name`, in the same directory.
pub(crate) fn local_write(name: &str) -> String {
    format!(".{name}.tmp-{:016x}", random())
}

/// The temporary name of an SFTP write, in the directory of the object.
pub(crate) fn rename_write() -> String {
    format!(".tmp-{:016x}", random())
}

/// The name of a new spool file.
pub(crate) fn spool() -> String {
    format!(".pack-{:016x}.tmp", random())
}

/// Whether `name` is a spool file's name.
pub(crate) fn is_spool(name: &str) -> bool {
    name.strip_prefix(".pack-")
        .and_then(|r| r.strip_suffix(".tmp"))
        .is_some_and(is_hex16)
}

/// Whether `name` is one of the temporary names above (a killed writer's leftover when no
/// writer is running).
pub(crate) fn is_leftover(name: &str) -> bool {
    if is_spool(name) {
        return true;
    }
    match name.strip_prefix('.').and_then(|r| r.rsplit_once("tmp-")) {
        // `head` is empty (`.tmp-<hex>`) or `NAME.` (`.NAME.tmp-<hex>`).
        Some((head, tail)) => {
            (head.is_empty() || (head.len() > 1 && head.ends_with('.'))) && is_hex16(tail)
        }
        None => false,
    }
}

/// Whether a leftover last written at `modified` (`None`: the store does not say) is at
/// least `min_age` old by this host's clock: a younger one may be a running writer's.
pub(crate) fn old_enough(
    modified: Option<std::time::SystemTime>,
    min_age: std::time::Duration,
) -> bool {
    if min_age.is_zero() {
        return true;
    }
    modified.is_some_and(|m| {
        std::time::SystemTime::now()
            .duration_since(m)
            .is_ok_and(|age| age >= min_age)
    })
}

fn is_hex16(s: &str) -> bool {
    s.len() == 16 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A suffix unique across threads and, with overwhelming probability, processes.
fn random() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    RandomState::new().hash_one((std::process::id(), count, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_made_here_is_a_hidden_leftover() {
        for name in [local_write("abcd"), rename_write(), spool()] {
            assert!(is_hidden(&name), "{name}");
            assert!(is_leftover(&name), "{name}");
        }
        assert!(is_spool(&spool()));
        assert!(!is_spool(&rename_write()));
        assert_ne!(spool(), spool());
        assert_ne!(local_write("a"), local_write("a"));
    }

    #[test]
    fn other_names_are_not_leftovers() {
        for name in [
            "abcd",
            ".hidden",
            ".ab03.tmp-0123",
            ".tmp-0123456789abcdeg",
            ".pack-0123456789abcdef.tmp.more",
            "not.tmp-0123456789abcdef",
            "..tmp-0123456789abcdef",
        ] {
            assert!(!is_leftover(name), "{name}");
        }
        assert!(!is_hidden("abcd"));
    }
}
