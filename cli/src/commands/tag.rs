//! `strata tag`

use anyhow::Result;
use strata_engine::tags::{self, TagChange};
use strata_engine::{snapshots, Operation};

use crate::output::json;
use crate::{exit, open, Cli};

/// Add, remove or replace the tags of snapshots.
///
/// Acts on the snapshots named (ids, prefixes, `latest`), or on every snapshot the filters
/// match when none is named (every snapshot when there are no filters either, as restic
/// does). --add and --remove may be combined; --set replaces all tags and stands alone
/// (`--set ""` removes every tag). Since a snapshot is named by the hash of its content, a
/// changed snapshot is written anew (recording its old id and the change, see `cat
/// snapshot`) before the old file is deleted: its id changes; its time, data and hold stay.
///
/// With --json: [{"id", "new_id", "tags", "changed"}].
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("change").required(true).multiple(true)
    .args(["add", "remove", "set"])))]
pub struct Args {
    /// Snapshots to change (ids, prefixes or `latest`); none: all the filters match.
    #[arg(value_name = "SNAPSHOT")]
    snapshots: Vec<String>,
    #[command(flatten)]
    filter: super::SnapshotFilter,
    /// Add this tag (repeatable).
    #[arg(long, value_name = "TAG")]
    add: Vec<String>,
    /// Remove this tag (repeatable).
    #[arg(long, value_name = "TAG")]
    remove: Vec<String>,
    /// Replace all tags with these (repeatable; `--set ""` clears them).
    #[arg(long, value_name = "TAG", conflicts_with_all = ["add", "remove"])]
    set: Vec<String>,
    /// Print the outcome as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(cli: &Cli, args: &Args) -> Result<u8> {
    let change = TagChange {
        set: (!args.set.is_empty())
            .then(|| args.set.iter().filter(|t| !t.is_empty()).cloned().collect()),
        add: args.add.clone(),
        remove: args.remove.clone(),
    };
    if let Err(e) = change.validate() {
        crate::usage_error(e);
    }
    let filter = args.filter.for_specs(&args.snapshots);
    let (repo, _lock) = open::open(cli, Operation::Tag)?;
    let found = snapshots::select(&repo, &args.snapshots, &filter)?;
    let outcomes = tags::tag(&repo, &found, &change)?;
    if args.json {
        json(&outcomes)?;
    } else if !cli.quiet {
        for o in outcomes.iter().filter(|o| o.changed) {
            println!(
                "snapshot {} tagged [{}]: now {}",
                o.id.short(),
                crate::output::printable(o.tags.join(", ").as_bytes()),
                o.new_id.short()
            );
        }
        let changed = outcomes.iter().filter(|o| o.changed).count();
        println!("{changed} of {} snapshots changed", outcomes.len());
    }
    Ok(exit::OK)
}
