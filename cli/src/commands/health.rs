//! `strata health` (issue #16; being built).

use anyhow::Result;

use crate::Cli;

/// Whether each project's backups are recent, plausible, copied, tested and checked (exit codes as Nagios reads them: 0 ok, 1 warning, 2 critical, 3 unknown).
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_cli: &Cli, _args: &Args) -> Result<u8> {
    anyhow::bail!("`strata health` is not built yet")
}
