//! `strata init`

use anyhow::Result;
use strata_engine::{InitOptions, Operation, Repository};
use strata_format::chunker::ChunkerParams;
use strata_format::keyfile::KdfParams;

use crate::{exit, open, Cli};

/// Create a new repository at -r/--repo, protected by the given password.
///
/// The repository gets a random master key, wrapped under the password with argon2id
/// (64 MiB, 3 iterations by default), and a config with the chunker and pack parameters.
/// An empty password is refused (and nothing is created) unless --insecure-no-password
/// is given.
///
/// --copy-chunker-params --from-repo OTHER gives the new repository OTHER's chunker
/// parameters (for files and for databases) and chunker seed, so that both cut the same
/// content into the same chunks: snapshots copied between them (`strata copy`) then
/// deduplicate against what was backed up into each directly. The keys stay apart: blob
/// ids are computed in each repository with its own key, which dedup does not need to
/// share. OTHER's password comes from --from-password-file or --from-password-command,
/// else from the same source as the new repository's.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Take the chunker parameters and seed of the repository given with --from-repo.
    #[arg(long, requires = "from_repo")]
    copy_chunker_params: bool,
    /// The repository whose chunker parameters to take (with --copy-chunker-params).
    #[arg(long, value_name = "REPO", requires = "copy_chunker_params")]
    from_repo: Option<String>,
    /// File holding the --from-repo repository's password.
    #[arg(
        long,
        value_name = "FILE",
        requires = "from_repo",
        conflicts_with = "from_password_command"
    )]
    from_password_file: Option<std::path::PathBuf>,
    /// Command printing the --from-repo repository's password.
    #[arg(long, value_name = "CMD", requires = "from_repo")]
    from_password_command: Option<String>,
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
          value_parser = clap::value_parser!(u32).range(1..=1024),
          conflicts_with = "copy_chunker_params")]
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
    // The other repository first: a wrong password for it leaves nothing created.
    let other = match &args.from_repo {
        Some(location) => {
            let spec = open::spec_at(
                cli,
                location,
                args.from_password_file.as_deref(),
                args.from_password_command.as_deref(),
            );
            // Only its key and config are read: no lock, no index.
            Some(open::open_spec(cli, &spec, Operation::CatObject)?.0)
        }
        None => None,
    };
    let backend = open::backend(cli, Operation::Init.uses_cache())?;
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
    let opts = match &other {
        Some(other) => opts.chunk_like(other),
        None => opts,
    };
    let id = Repository::init(backend, &pw, &opts)?;
    println!("created repository {} at {location}", id.short());
    if let (Some(other), Some(from)) = (&other, &args.from_repo) {
        println!(
            "with the chunker parameters of repository {} at {from}",
            other.config().repo_id.short()
        );
    }
    if pw.is_empty() {
        tracing::warn!(
            "the repository has no password (--insecure-no-password): whoever can read its \
             files can read its data; add one with `strata key passwd`"
        );
    }
    Ok(exit::OK)
}
