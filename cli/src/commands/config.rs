//! `strata config` (issue #16; being built).

use anyhow::Result;

use crate::Cli;

/// Check strata.toml, or show it with every secret redacted.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_cli: &Cli, _args: &Args) -> Result<u8> {
    anyhow::bail!("`strata config` is not built yet")
}
