//! `strata log` (issue #16; being built).

use anyhow::Result;

use crate::Cli;

/// The audit catalog: runs, backups, copies, retention, checks, restores, restore tests and notifications.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_cli: &Cli, _args: &Args) -> Result<u8> {
    anyhow::bail!("`strata log` is not built yet")
}
