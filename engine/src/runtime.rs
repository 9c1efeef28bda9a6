//! Where the engine runs its storage futures.
//!
//! The engine is synchronous at its surface (CPU work on rayon, storage I/O on tokio), so it
//! blocks on storage futures. It never owns the caller's runtime: a caller with a runtime of
//! its own (a server) passes a [`Handle`] to it with [`EngineRuntime::from_handle`], and
//! calls the engine from a thread that may block (`tokio::task::spawn_blocking`, or any
//! thread of its own), never from an async task. A caller without one (the CLI, tests) lets
//! the engine start its own with [`EngineRuntime::new`].
//!
//! Every wait goes through [`tokio::runtime::Handle::block_on`], which may be called from
//! `spawn_blocking` threads of the same runtime (unlike `Runtime::block_on`, which refuses
//! to start inside any runtime's context). The runtime must be a multi-thread one: a
//! current-thread runtime drives no I/O while its one thread waits here.

use std::future::Future;
use std::sync::Arc;

use tokio::runtime::{Handle, Runtime};

use crate::{EngineError, Result};

/// A runtime the engine started itself, or a handle to the caller's.
#[derive(Clone)]
pub struct EngineRuntime {
    handle: Handle,
    /// Keeps a runtime the engine started alive while any repository or lock uses it.
    _owned: Option<Arc<Runtime>>,
}

impl std::fmt::Debug for EngineRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineRuntime")
            .field("owned", &self._owned.is_some())
            .finish()
    }
}

impl EngineRuntime {
    /// Starts a runtime of the engine's own (two worker threads: storage I/O only).
    pub fn new() -> Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("strata-io")
            .enable_all()
            .build()
            .map_err(|e| EngineError::io("tokio runtime", e))?;
        Ok(EngineRuntime {
            handle: rt.handle().clone(),
            _owned: Some(Arc::new(rt)),
        })
    }

    /// Runs on the caller's (multi-thread) runtime.
    pub fn from_handle(handle: Handle) -> Self {
        EngineRuntime {
            handle,
            _owned: None,
        }
    }

    /// Waits for a storage future. Call only from a thread that may block (see the module
    /// docs).
    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.handle.block_on(f)
    }

    pub fn handle(&self) -> &Handle {
        &self.handle
    }
}
