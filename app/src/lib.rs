//! Strata's application layer: what the command line, the runner (`strata run`) and the
//! server share, so that none of them holds logic another would need.
//!
//! - [`repo`]: a repository as the user names it ([`RepoSpec`]: location, password source,
//!   remote options) turned into the decorated storage stack and into a repository opened
//!   and locked for an [`strata_engine::Operation`] — the operation alone decides the lock,
//!   the index and the cache.
//! - [`secret`]: passwords named, not inlined ([`SecretRef`]: file, command, environment),
//!   read with a timeout and never shown.
//!
//! Front ends parse their input into these types, call one function, and render.

mod error;
pub mod repo;
pub mod secret;

pub use error::{AppError, Result};
pub use repo::{CachePlace, OpenOptions, Opened, RepoSpec};
pub use secret::{check_password, EmptyPassword, Secret, SecretRef};
