//! `strata repair config`

use anyhow::Result;
use strata_engine::config_repair::{self, ConfigState};
use strata_format::chunker::ChunkerParams;

use crate::output::json;
use crate::{exit, open, Cli};

/// Restore a missing or damaged config from the copy every key file keeps.
///
/// Without its config no command opens a repository, though its keys, packs and snapshots
/// are all there. Every key file written by this version carries a sealed copy of the
/// config: with any password of the repository, `repair config` writes it back. On a
/// healthy repository it only gives every key file a current copy (key files written by
/// older versions have none, and an interrupted `strata migrate` leaves copies of the older
/// format): run it once after upgrading. It never restores a copy of a lower format version
/// than the damaged config's, and prefers the highest.
///
/// When no key file holds a copy, --rebuild writes a new config. Every snapshot stays
/// readable (reading needs only the master key); give the --pack-size and
/// --db-chunk-size the repository was created with, or new backups deduplicate less
/// against the old ones.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Write a new config when no key file holds a copy (see above).
    #[arg(long)]
    rebuild: bool,
    /// With --rebuild: target pack size in MiB.
    #[arg(long, default_value_t = 16, requires = "rebuild",
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    pack_size: u32,
    /// With --rebuild: average chunk size in KiB for database dumps.
    #[arg(long, default_value_t = ChunkerParams::DATABASE.avg_size / 1024, value_name = "KiB",
          requires = "rebuild", value_parser = clap::value_parser!(u32).range(1..=1024))]
    db_chunk_size: u32,
    /// With --rebuild: zstd compression level for blobs (1-22).
    #[arg(long, default_value_t = 3, requires = "rebuild",
          value_parser = clap::value_parser!(i32).range(1..=22))]
    compression_level: i32,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(cli: &Cli, args: &Args) -> Result<u8> {
    // The repository itself, not a cache of it.
    let backend = open::backend(cli, false)?;
    let pw = open::password(cli, false)?;
    let rebuild = args.rebuild.then(|| {
        super::init::layout_options(args.pack_size, args.db_chunk_size, args.compression_level)
    });
    let r = config_repair::repair_config(backend, &pw, rebuild.as_ref())?;
    if args.json {
        json(&r)?;
        return Ok(exit::OK);
    }
    match &r.config {
        ConfigState::Healthy => println!("the config is intact"),
        ConfigState::Restored { from_key, was } => println!(
            "the config was {was}: restored from the copy in key file {}",
            &from_key[..from_key.len().min(8)]
        ),
        ConfigState::Rebuilt { repo_id, was } => println!(
            "the config was {was} and no key file held a copy: wrote a new config (repository \
             id {})",
            &repo_id[..repo_id.len().min(8)]
        ),
    }
    for (old, new) in &r.key_files_updated {
        println!(
            "key file {} now keeps a copy of the config (as {})",
            &old[..old.len().min(8)],
            &new[..new.len().min(8)]
        );
    }
    for skipped in &r.key_files_skipped {
        eprintln!("left as it is: {skipped}");
    }
    Ok(exit::OK)
}
