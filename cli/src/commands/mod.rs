//! One module per subcommand.

pub mod backup;
pub mod cache;
pub mod cat;
pub mod check;
pub mod copy;
pub mod diff;
pub mod dump;
mod dump_zip;
pub mod find;
pub mod forget;
pub mod generate;
pub mod hold;
pub mod init;
pub mod key;
pub mod list;
pub mod ls;
pub mod mount;
pub mod prune;
pub mod repair;
mod repair_config;
pub mod restore;
pub mod rewrite;
pub mod snapshots;
pub mod stats;
pub mod tag;
pub mod unlock;
pub mod verify;
pub mod version;

use anyhow::Result;

use crate::{Cli, Command};

/// `--host`, `--project`, `--tag`: which snapshots a command considers.
#[derive(Debug, Clone, clap::Args)]
pub struct SnapshotFilter {
    /// Only snapshots of this host.
    #[arg(long)]
    host: Option<String>,
    /// Only snapshots of this project.
    #[arg(long)]
    project: Option<String>,
    /// Only snapshots with this tag (repeatable: any of them).
    #[arg(long = "tag")]
    tags: Vec<String>,
}

impl SnapshotFilter {
    pub fn engine(&self) -> strata_engine::snapshots::Filter {
        strata_engine::snapshots::Filter {
            host: self.host.clone(),
            project: self.project.clone(),
            tags: self.tags.clone(),
        }
    }
}

/// Runs the chosen command; returns the exit code.
pub fn run(cli: &Cli) -> Result<u8> {
    match &cli.command {
        Command::Init(a) => init::run(cli, a),
        Command::Key(a) => key::run(cli, a),
        Command::Backup(a) => backup::run(cli, a),
        Command::Snapshots(a) => snapshots::run(cli, a),
        Command::Ls(a) => ls::run(cli, a),
        Command::Mount(a) => mount::run(cli, a),
        Command::Restore(a) => restore::run(cli, a),
        Command::Dump(a) => dump::run(cli, a),
        Command::Cat(a) => cat::run(cli, a),
        Command::Check(a) => check::run(cli, a),
        Command::Copy(a) => copy::run(cli, a),
        Command::Forget(a) => forget::run(cli, a),
        Command::Hold(a) => hold::run(cli, a),
        Command::Prune(a) => prune::run(cli, a),
        Command::Repair(a) => repair::run(cli, a),
        Command::Unlock(a) => unlock::run(cli, a),
        Command::Find(a) => find::run(cli, a),
        Command::Diff(a) => diff::run(cli, a),
        Command::Stats(a) => stats::run(cli, a),
        Command::Verify(a) => verify::run(cli, a),
        Command::Version(a) => version::run(a),
        Command::Generate(a) => generate::run(a),
        Command::Tag(a) => tag::run(cli, a),
        Command::Rewrite(a) => rewrite::run(cli, a),
        Command::List(a) => list::run(cli, a),
        Command::Cache(a) => cache::run(cli, a),
    }
}
