//! Opening, creating and reading a repository: the handle and its accessors ([`handle`]),
//! creating and opening one ([`open`]) with what a location already holds ([`contents`]),
//! reading and writing stored objects ([`objects`]), and loading the index and reading
//! blobs through it ([`index`]).

mod contents;
mod handle;
mod index;
mod listings;
mod objects;
mod open;

pub use handle::Repository;
pub(crate) use index::{index_file_vanished, INDEX_RETRIES};
pub(crate) use open::new_config;
pub use open::InitOptions;
