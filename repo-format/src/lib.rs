//! Strata repository format: identifiers, cryptography and the byte encodings of every
//! repository object. The normative description is `spec/` at the workspace root; this crate
//! mirrors it and its golden vectors are checked by the tests in `tests/golden.rs`.
//!
//! The crate is pure: no I/O, no async, no clock. Randomness (nonces, salts, keys) comes in
//! from the caller as an `RngCore + CryptoRng`, so every encoding is reproducible in tests.
//! Every decoder takes untrusted bytes and returns an error, never panics.

pub mod blob;
pub mod chunker;
pub mod config;
pub mod crypto;
pub mod dict;
pub mod envelope;
mod error;
pub mod evidence;
pub mod id;
pub mod index;
pub mod keyfile;
pub mod lock;
pub mod pack;
pub mod snapshot;
pub mod tree;
pub mod wal;

pub use error::FormatError;

/// Result of format operations.
pub type Result<T> = std::result::Result<T, FormatError>;

/// Upper bound on the decompressed size of any blob or object, so that a damaged or hostile
/// length field cannot make a reader allocate without limit. Never lower this: repositories
/// written with larger objects would become unreadable.
pub const MAX_OBJECT_SIZE: usize = 1 << 30;
