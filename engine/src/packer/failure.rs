//! How a failure stops a packer: the first one is recorded (its kind and message), and
//! every thread that finds the packer stopped afterwards gets it.

use super::handle::Packer;
use crate::{EngineError, ErrorKind, Result};

impl Packer<'_> {
    /// Records that the backup failed: nothing more is packed or indexed.
    pub(super) fn poison(&self, e: EngineError) -> EngineError {
        self.shared
            .cause
            .lock()
            .expect("no panics while locked")
            .get_or_insert_with(|| (e.kind(), e.to_string()));
        self.failed.store(true, std::sync::atomic::Ordering::SeqCst);
        e
    }

    /// The error for a thread that finds the packer stopped: the first failure's.
    pub(super) fn stopped(&self) -> EngineError {
        let cause = self.shared.cause.lock().expect("no panics while locked");
        let (kind, message) = cause.clone().unwrap_or_else(|| {
            (
                ErrorKind::Invalid,
                "an earlier error stopped this backup".into(),
            )
        });
        EngineError::Stopped { kind, message }
    }

    pub(super) fn check_poisoned(&self) -> Result<()> {
        if self.failed.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(self.stopped());
        }
        Ok(())
    }

    /// Returns an uploader's failure to the first thread that asks, and stops the
    /// packer, so that later callers get the same message.
    pub(super) fn check_error(&self) -> Result<()> {
        let taken = self
            .shared
            .error
            .lock()
            .expect("no panics while locked")
            .take();
        match taken {
            Some(e) => Err(self.poison(e)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use strata_format::blob::BlobType;
    use strata_format::id::BlobId;
    use strata_storage::StorageError;

    use super::*;
    use crate::Repository;

    /// Whichever thread finds the packer stopped after an upload failed reports that
    /// failure, not a bare "stopped": the first takes the error itself, later ones a copy.
    #[test]
    fn every_caller_after_a_failed_upload_names_it() {
        let backend = crate::test_support::memory_repository();
        let repo = Repository::open(backend, crate::test_support::PASSWORD).unwrap();
        let packer = Packer::new(&repo);
        let failure = || StorageError::other("write", "data/ab/abcd", "connection refused");
        let message = EngineError::from(failure()).to_string();
        *packer.shared.error.lock().unwrap() = Some(failure().into());
        let first = packer.check_error().unwrap_err();
        assert!(matches!(first, EngineError::Storage(_)), "{first}");
        for later in [
            packer.check_poisoned().unwrap_err(),
            packer.stopped(),
            packer
                .add(
                    BlobType::Data,
                    BlobId(strata_format::id::Digest([7; 32])),
                    b"x",
                )
                .unwrap_err(),
        ] {
            assert_eq!(later.kind(), ErrorKind::Storage);
            assert_eq!(later.to_string(), message);
        }
    }
}
