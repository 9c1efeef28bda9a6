//! `strata migrate`

use anyhow::Result;
use strata_engine::migrate::{self, MigrationState};
use strata_engine::Operation;

use crate::output::json;
use crate::{exit, open, Cli};

/// Upgrade the repository's format in place (without an argument: list what applies).
///
/// `strata migrate` lists the migrations and whether this repository needs each;
/// `strata migrate wal` applies the one named.
///
/// wal: format version 3 to 4. Repositories made before WAL archiving (format 1 to 3) keep
/// working, but `strata pg wal-push` refuses them: an older Strata does not know WAL files
/// and its prune would delete their data, so only a version 4 repository, which older
/// Strata refuses to open, may hold them. Version 4 is version 3's layout plus WAL files, so
/// the migration only raises the version in the config and in the copy of it that every key
/// file keeps (from which `strata repair config` restores a lost config). It runs under an
/// exclusive lock, writes the config first and reads it back, then each key file (the new
/// one written and read back before the old one is deleted); if it is interrupted, the
/// repository still opens, and running it again finishes it. Afterwards, Strata older than
/// this version refuses to open the repository ("upgrade strata"). Formats 1 and 2 are
/// refused (their layout lacks what version 3 added): create a new repository and `strata
/// copy` the snapshots into it. On a version 4 repository it says so and changes nothing.
///
/// Exit codes: 0 done or nothing to do, 1 refused or failed, 10/11/12 as for every command
/// (no repository, locked, wrong password).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The migration to apply (`wal`); none: list them.
    #[arg(value_parser = [migrate::WAL])]
    name: Option<String>,
    /// Print the list or the report as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(cli: &Cli, args: &Args) -> Result<u8> {
    let (repo, _) = open::open(cli, Operation::Migrate)?;
    let Some(_wal) = &args.name else {
        let list = migrate::list(&repo)?;
        if args.json {
            json(&list)?;
            return Ok(exit::OK);
        }
        for m in &list {
            let state = match &m.state {
                MigrationState::Needed(why) => format!("needed: {why}"),
                MigrationState::Done => "not needed (done)".to_string(),
                MigrationState::Refused(why) => format!("not possible: {why}"),
            };
            println!("{}  {}\n     {state}", m.name, m.description);
        }
        return Ok(exit::OK);
    };
    let wait = cli.retry_lock.map(Into::into).unwrap_or_default();
    let r = migrate::wal(&repo, wait)?;
    if args.json {
        json(&r)?;
        return Ok(exit::OK);
    }
    if r.was_done() {
        println!(
            "already version {}: nothing to do (WAL archiving works)",
            r.to_version
        );
        return Ok(exit::OK);
    }
    if r.config_written {
        println!(
            "the repository is now of format version {} (was {}): `strata pg wal-push` may \
             archive into it; Strata older than this version refuses to open it",
            r.to_version, r.from_version
        );
    } else {
        println!("already version {}", r.to_version);
    }
    for (old, new) in &r.key_files_updated {
        println!(
            "key file {} now keeps a copy of the version {} config (as {})",
            old.get(..8).unwrap_or(old),
            r.to_version,
            new.get(..8).unwrap_or(new)
        );
    }
    for skipped in &r.key_files_skipped {
        eprintln!("left as it is: {skipped}");
    }
    Ok(exit::OK)
}
