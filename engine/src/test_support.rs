//! What the engine's unit tests share.

use std::sync::Arc;

use strata_format::keyfile::KdfParams;
use strata_storage::{Backend, OpendalBackend};

/// The password of [`memory_repository`].
pub(crate) const PASSWORD: &[u8] = b"pw";

/// A new repository in memory with a cheap key derivation, and its storage (to open it
/// again with [`PASSWORD`]).
pub(crate) fn memory_repository() -> Arc<dyn Backend> {
    let backend: Arc<dyn Backend> = Arc::new(OpendalBackend::memory().unwrap());
    let opts = crate::InitOptions {
        kdf: KdfParams {
            m_kib: 64,
            t: 1,
            p: 1,
        },
        ..Default::default()
    };
    crate::Repository::init(backend.clone(), PASSWORD, &opts).unwrap();
    backend
}
