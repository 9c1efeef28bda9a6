//! `strata version`

use anyhow::Result;
use serde::Serialize;

use crate::exit;
use crate::output::json;

/// Print the version, the commit it was built from, the target and the compiler.
///
/// With --json: {"version", "commit" (null when built outside git), "target", "rustc"}.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the facts as JSON.
    #[arg(long)]
    json: bool,
}

/// What `strata version` reports (from the build script, cli/build.rs).
#[derive(Debug, Serialize)]
pub struct VersionInfo {
    pub version: &'static str,
    pub commit: Option<&'static str>,
    pub target: &'static str,
    pub rustc: Option<&'static str>,
}

pub const INFO: VersionInfo = VersionInfo {
    version: env!("CARGO_PKG_VERSION"),
    commit: option_env!("STRATA_COMMIT"),
    target: env!("STRATA_TARGET"),
    rustc: option_env!("STRATA_RUSTC"),
};

pub fn run(args: &Args) -> Result<u8> {
    if args.json {
        json(&INFO)?;
    } else {
        println!("strata {}", env!("STRATA_LONG_VERSION"));
    }
    Ok(exit::OK)
}
