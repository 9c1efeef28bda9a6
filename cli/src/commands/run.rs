//! `strata run` (issue #16; being built).

use anyhow::Result;

use crate::Cli;

/// Run projects of strata.toml: back up each source once into the primary repository, copy to the others, apply each repository's retention, and record and notify (for cron: `strata run --due`).
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_cli: &Cli, _args: &Args) -> Result<u8> {
    anyhow::bail!("`strata run` is not built yet")
}
