//! Exclusions decided by what the source holds rather than by name: directories marked by
//! a tag file (`--exclude-caches`, `--exclude-if-present`) and files over a size
//! (`--exclude-larger-than`). As in restic, a tagged directory is kept with the tag file
//! itself, and everything else in it is left out.

use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::{EngineError, Result};

/// The name of the tag file of the Cache Directory Tagging Specification.
pub const CACHEDIR_TAG: &str = "CACHEDIR.TAG";
/// The first bytes a valid `CACHEDIR.TAG` starts with.
pub const CACHEDIR_SIGNATURE: &str = "Signature: 8a477f597d28d172789f06886806bc55";

/// A file whose presence leaves the rest of its directory out: `NAME`, or `NAME:HEADER`
/// when the file must start with `HEADER` to count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagFile {
    pub name: Vec<u8>,
    pub header: Option<Vec<u8>>,
}

impl TagFile {
    /// The cache directory tag, which counts only with its signature.
    pub fn cachedir() -> Self {
        TagFile {
            name: CACHEDIR_TAG.as_bytes().to_vec(),
            header: Some(CACHEDIR_SIGNATURE.as_bytes().to_vec()),
        }
    }

    /// Reads `NAME` or `NAME:HEADER` (restic's `--exclude-if-present`). The name is one
    /// file name, not a path.
    pub fn parse(spec: &str) -> Result<Self> {
        let (name, header) = match spec.split_once(':') {
            Some((n, h)) => (n, Some(h.as_bytes().to_vec())),
            None => (spec, None),
        };
        if !strata_format::tree::valid_name(name.as_bytes()) {
            return Err(EngineError::Invalid(format!(
                "--exclude-if-present {spec:?}: {name:?} is not a file name (no `/`, not \
                 empty, `.` or `..`)"
            )));
        }
        Ok(TagFile {
            name: name.as_bytes().to_vec(),
            header: header.filter(|h| !h.is_empty()),
        })
    }

    /// Whether `dir`, whose entry names are `names` (sorted), holds this tag: a regular
    /// file of the name, starting with the header if one is asked for.
    fn marks(&self, dir: &Path, names: &[Vec<u8>]) -> bool {
        if names.binary_search(&self.name).is_err() {
            return false;
        }
        let path = dir.join(std::ffi::OsStr::from_bytes(&self.name));
        match std::fs::symlink_metadata(&path) {
            Ok(md) if md.file_type().is_file() => {}
            _ => return false,
        }
        let Some(header) = &self.header else {
            return true;
        };
        let mut start = vec![0; header.len()];
        // Not following a symlink and not waiting on a FIFO swapped in since the lstat;
        // only a regular file is read.
        let opened = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&path)
            .and_then(|f| match f.metadata() {
                Ok(md) if md.file_type().is_file() => Ok(f),
                Ok(_) => Err(std::io::Error::other("not a regular file")),
                Err(e) => Err(e),
            });
        match opened.and_then(|f| f.take(header.len() as u64).read_exact(&mut start)) {
            Ok(()) => start == *header,
            Err(_) => false,
        }
    }
}

/// The entries of `dir` (its sorted `names`) to archive when one of `tags` marks it: only
/// the tag files that mark it. `None`: not marked, archive everything.
pub(super) fn marked(dir: &Path, names: &[Vec<u8>], tags: &[TagFile]) -> Option<Vec<Vec<u8>>> {
    let mut found: Vec<Vec<u8>> = tags
        .iter()
        .filter(|t| t.marks(dir, names))
        .map(|t| t.name.clone())
        .collect();
    found.sort();
    found.dedup();
    (!found.is_empty()).then_some(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<Vec<u8>> {
        let mut n: Vec<Vec<u8>> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().as_bytes().to_vec())
            .collect();
        n.sort();
        n
    }

    #[test]
    fn a_cache_tag_counts_only_with_its_signature() {
        let d = tempfile::tempdir().unwrap();
        let tags = [TagFile::cachedir()];
        std::fs::write(d.path().join("a"), "x").unwrap();
        assert_eq!(marked(d.path(), &names(d.path()), &tags), None);
        std::fs::write(d.path().join(CACHEDIR_TAG), "Signature: wrong").unwrap();
        assert_eq!(marked(d.path(), &names(d.path()), &tags), None);
        std::fs::write(
            d.path().join(CACHEDIR_TAG),
            format!("{CACHEDIR_SIGNATURE}\n# a cache\n"),
        )
        .unwrap();
        assert_eq!(
            marked(d.path(), &names(d.path()), &tags),
            Some(vec![CACHEDIR_TAG.as_bytes().to_vec()])
        );
    }

    #[test]
    fn a_tag_is_a_regular_file_of_that_name_with_the_header_asked_for() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join(".nobackup")).unwrap();
        let plain = [TagFile::parse(".nobackup").unwrap()];
        assert_eq!(marked(d.path(), &names(d.path()), &plain), None);
        std::fs::remove_dir(d.path().join(".nobackup")).unwrap();
        std::fs::write(d.path().join(".nobackup"), "").unwrap();
        assert!(marked(d.path(), &names(d.path()), &plain).is_some());
        let with_header = [TagFile::parse(".nobackup:skip me").unwrap()];
        assert_eq!(marked(d.path(), &names(d.path()), &with_header), None);
        std::fs::write(d.path().join(".nobackup"), "skip me please").unwrap();
        assert!(marked(d.path(), &names(d.path()), &with_header).is_some());
        assert!(TagFile::parse("a/b").is_err());
        assert!(TagFile::parse("").is_err());
        assert!(TagFile::parse("..").is_err());
    }
}
