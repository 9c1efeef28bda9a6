//! `strata init`

use anyhow::Result;
use strata_engine::{InitOptions, Repository};
use strata_format::keyfile::KdfParams;

use crate::{exit, open, Cli};

/// Create a new repository at -r/--repo, protected by the given password.
///
/// The repository gets a random master key, wrapped under the password with argon2id
/// (64 MiB, 3 iterations by default), and a config with the chunker and pack parameters.
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
    /// zstd compression level for blobs (1-22).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=22))]
    compression_level: i32,
}

pub fn run(cli: &Cli, args: &Args) -> Result<u8> {
    let backend = open::backend(cli)?;
    let location = backend.location();
    let pw = open::password(cli, true)?;
    let opts = InitOptions {
        kdf: KdfParams {
            m_kib: args.kdf_memory,
            t: args.kdf_iterations,
            p: 1,
        },
        pack_size: args.pack_size * 1024 * 1024,
        compression_level: args.compression_level,
        ..InitOptions::default()
    };
    let id = Repository::init(backend, &pw, &opts)?;
    println!("created repository {} at {location}", id.short());
    Ok(exit::OK)
}
