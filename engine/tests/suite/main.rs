//! The engine's integration tests, one binary (one link, one process): each module is
//! one subject, over the in-memory backend unless it says otherwise. The real backends and
//! the binary are tested end to end in `tests/e2e`.

mod basics;
mod chunker;
mod common;
mod config;
mod evidence;
mod findings;
mod hostile;
mod keys;
mod listings;
mod locks;
mod metadata;
mod migrate;
mod progress;
mod prune;
mod prune_sessions;
mod repair;
mod retention;
mod runtime;
mod sources;
mod stats;
mod vfs;
