//! `strata unlock`

use anyhow::Result;
use strata_engine::lock;
use strata_engine::Operation;

use crate::{exit, open, Cli};

/// Remove stale locks.
///
/// Without options, removes stale locks (every command also removes them when it finds
/// them): those whose process is certainly gone (written on this kernel, in this PID
/// namespace, and the pid no longer runs or belongs to a later process), those not
/// refreshed for 45 minutes (a live process refreshes its lock every 5; the expiry allows
/// for clocks that differ between hosts), and damaged ones. A lock from another machine,
/// container or boot whose process is gone stays until it expires. With --remove-all,
/// removes every lock: use it only when you know no other strata process uses the
/// repository, for example after a machine holding a lock died. A process whose lock was
/// removed stops before it writes an index or a snapshot.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Remove every lock, also live ones and those of other hosts.
    #[arg(long)]
    remove_all: bool,
}

pub fn run(cli: &Cli, args: &Args) -> Result<u8> {
    let (repo, _) = open::open(cli, Operation::Unlock)?;
    let found = lock::unlock(&repo, args.remove_all)?;
    for l in &found {
        let what = if l.removed { "removed" } else { "kept" };
        println!(
            "{what} {}: {}",
            &l.name[..l.name.len().min(8)],
            l.description
        );
    }
    if found.is_empty() && !cli.quiet {
        println!("no locks");
    }
    Ok(exit::OK)
}
