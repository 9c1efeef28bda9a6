//! Spool files: local files in which a caller assembles an object (a pack) before
//! [`crate::Backend::write_file`] stores it, so that an object costs no memory however large
//! it is.
//!
//! A backend says where they go ([`crate::Backend::spool_dir`]): a local repository keeps
//! them in its own `data/` directory, on the same file system, so that storing one is a
//! rename and its bytes are never copied; other backends use the system's temporary
//! directory. The name is made by [`crate::temp_names`], which also recognises it: a spool
//! file left by a killed process is hidden from listings and removed by
//! [`crate::Backend::remove_leftovers`].
//!
//! A [`SpoolFile`] removes its file when dropped, unless `write_file` already moved it away:
//! a failed or abandoned write leaves nothing behind (but a SIGKILL does).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::temp_names;

/// Mode of a spool file: it holds repository bytes.
const MODE: u32 = 0o600;

/// A spool file could not be made.
#[derive(Debug, thiserror::Error)]
#[error("spool file {}: {source}", path.display())]
pub struct SpoolError {
    /// The file that could not be created.
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// A new, empty local file, open for writing, removed when dropped.
#[derive(Debug)]
pub struct SpoolFile {
    file: File,
    path: PathBuf,
}

impl SpoolFile {
    /// Creates a spool file in `dir` (mode 0600, a name no other file has).
    pub(crate) fn create_in(dir: &Path) -> Result<SpoolFile, SpoolError> {
        let path = dir.join(temp_names::spool());
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(MODE)
            .open(&path)
        {
            Ok(file) => Ok(SpoolFile { file, path }),
            Err(source) => Err(SpoolError { path, source }),
        }
    }

    /// Where the file is: what to pass to [`crate::Backend::write_file`].
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Write for SpoolFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Drop for SpoolFile {
    /// Removes the file; one that `write_file` moved into place is no longer at this path.
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn a_spool_file_is_private_and_gone_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = SpoolFile::create_in(dir.path()).unwrap();
        spool.write_all(b"pack bytes").unwrap();
        let path = spool.path().to_path_buf();
        assert_eq!(path.parent(), Some(dir.path()));
        let name = path.file_name().unwrap().to_str().unwrap();
        assert!(temp_names::is_spool(name), "{name}");
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, MODE);
        assert_eq!(std::fs::read(&path).unwrap(), b"pack bytes");
        drop(spool);
        assert!(!path.exists());
    }

    #[test]
    fn a_missing_directory_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = SpoolFile::create_in(&dir.path().join("gone")).unwrap_err();
        assert_eq!(err.source.kind(), io::ErrorKind::NotFound);
        assert!(err.path.starts_with(dir.path().join("gone")), "{err}");
        assert!(err.to_string().starts_with("spool file "), "{err}");
    }
}
