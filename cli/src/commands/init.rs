//! `strata init`

use anyhow::Result;
use strata_engine::{InitOptions, Repository};
use strata_format::chunker::ChunkerParams;
use strata_format::keyfile::KdfParams;

use crate::{exit, open, Cli};

/// Create a new repository at -r/--repo, protected by the given password.
///
/// The repository gets a random master key, wrapped under the password with argon2id
/// (64 MiB, 3 iterations by default), and a config with the chunker and pack parameters.
/// An empty password is refused (and nothing is created) unless --insecure-no-password
/// is given.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// argon2id memory in KiB (for tests and small machines).
    #[arg(long, hide = true, default_value_t = KdfParams::DEFAULT.m_kib)]
    kdf_memory: u32,
    /// argon2id iterations.
    #[arg(long, hide = true, default_value_t = KdfParams::DEFAULT.t)]
    kdf_iterations: u32,
    /// Target pack size in MiB.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pack_size: u32,
    /// Average chunk size in KiB for database dumps (minimum a quarter of it, maximum four
    /// times it). Smaller chunks dedup scattered row changes better and cost more index
    /// entries. Fixed for the repository's life.
    #[arg(long, default_value_t = ChunkerParams::DATABASE.avg_size / 1024, value_name = "KiB",
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    db_chunk_size: u32,
    /// zstd compression level for blobs (1-22).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=22))]
    compression_level: i32,
}

/// The repository parameters from `--pack-size` (MiB), `--db-chunk-size` (KiB) and
/// `--compression-level` (shared with `repair config --rebuild`).
pub(crate) fn layout_options(pack_mib: u32, db_chunk_kib: u32, level: i32) -> InitOptions {
    InitOptions {
        pack_size: pack_mib * 1024 * 1024,
        compression_level: level,
        db_chunker: ChunkerParams {
            min_size: db_chunk_kib * 256,
            avg_size: db_chunk_kib * 1024,
            max_size: db_chunk_kib * 4096,
        },
        ..InitOptions::default()
    }
}

pub fn run(cli: &Cli, args: &Args) -> Result<u8> {
    let backend = open::backend(cli, strata_engine::Operation::Init.uses_cache())?;
    let location = backend.location();
    let pw = open::password(cli, true)?;
    let opts = InitOptions {
        kdf: KdfParams {
            m_kib: args.kdf_memory,
            t: args.kdf_iterations,
            p: 1,
        },
        ..layout_options(args.pack_size, args.db_chunk_size, args.compression_level)
    };
    let id = Repository::init(backend, &pw, &opts)?;
    println!("created repository {} at {location}", id.short());
    if pw.is_empty() {
        tracing::warn!(
            "the repository has no password (--insecure-no-password): whoever can read its \
             files can read its data; add one with `strata key passwd`"
        );
    }
    Ok(exit::OK)
}
