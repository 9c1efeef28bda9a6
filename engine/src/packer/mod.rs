//! Packing blobs: deduplicate, compress + encrypt (on the caller's thread), append to the
//! open pack file of the blob's kind (data, or metadata), and hand full packs to the
//! uploader over a rendezvous channel. Uploaded packs are indexed in batches (when, and
//! why that lets a killed run resume: [`index`]); `finish` flushes, waits for every upload
//! and writes the last index file. Small data blobs may be compressed against a repository
//! dictionary, trained here from the first ones. The first failure stops the packer for
//! every thread that shares it ([`failure`]).

mod blobs;
mod dictionary;
mod failure;
mod handle;
mod index;
mod upload;

pub(crate) use handle::Packer;
