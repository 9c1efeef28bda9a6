//! `strata notify` (issue #16; being built).

use anyhow::Result;

use crate::Cli;

/// Send a test message to a notification channel of strata.toml.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_cli: &Cli, _args: &Args) -> Result<u8> {
    anyhow::bail!("`strata notify` is not built yet")
}
