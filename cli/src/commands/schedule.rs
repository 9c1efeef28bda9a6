//! `strata schedule` (issue #16; being built).

use anyhow::Result;

use crate::Cli;

/// Print or install the systemd timer or crontab line that runs `strata run --due`; list when each project is due.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_cli: &Cli, _args: &Args) -> Result<u8> {
    anyhow::bail!("`strata schedule` is not built yet")
}
