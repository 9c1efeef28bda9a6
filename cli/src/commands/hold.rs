//! `strata hold`

use anyhow::{bail, Result};
use serde::Serialize;
use strata_engine::retention::{self, CalendarSpan};
use strata_engine::snapshots;
use strata_engine::Operation;

use crate::output::json;
use crate::{exit, open, values, Cli};

/// Put snapshots under a retention hold (or release one).
///
/// `forget` never removes a held snapshot, whatever its policy says. A hold only ever
/// extends: a snapshot already held longer keeps its hold. --release ends a hold. Since a
/// snapshot is named by the hash of its content, holding it writes a new snapshot file
/// (recording the old id and the change, see `cat snapshot`) and then deletes the old one,
/// so the snapshot's id changes.
///
/// With --json: [{"id", "new_id", "keep_until", "changed"}].
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("how").required(true).args(["until", "for_span", "release"])))]
pub struct Args {
    /// Snapshots to hold (ids, prefixes or `latest`).
    #[arg(required = true, value_name = "SNAPSHOT")]
    snapshots: Vec<String>,
    /// Which snapshot `latest` means: the newest of this host, project, tag or path.
    #[command(flatten)]
    filter: super::SnapshotFilter,
    /// Hold until this date, in local time ("2032-01-31", "2032-01-31 12:00") or RFC 3339.
    #[arg(long, value_name = "DATE", value_parser = values::local_time)]
    until: Option<i64>,
    /// Hold for this long after the snapshot's time: `7y`, `18m`, `90d`.
    #[arg(long = "for", value_name = "SPAN")]
    for_span: Option<CalendarSpan>,
    /// End the hold.
    #[arg(long)]
    release: bool,
    /// Print the outcome as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Outcome {
    id: String,
    new_id: String,
    keep_until: Option<String>,
    changed: bool,
}

pub fn run(cli: &Cli, args: &Args) -> Result<u8> {
    let tz = jiff::tz::TimeZone::system();
    let (until, span) = (args.until, args.for_span);
    let filter = args.filter.for_specs(&args.snapshots);
    let (repo, _lock) = open::open(cli, Operation::Hold)?;
    let mut found = Vec::new();
    for spec in &args.snapshots {
        let (id, snap) = snapshots::find_in(&repo, spec, &filter)?;
        // Named twice (say `latest` and its id): rewrite it once.
        if !found.iter().any(|(f, _)| *f == id) {
            found.push((id, snap));
        }
    }
    let mut out = Vec::new();
    for (id, snap) in found {
        let want = if args.release {
            None
        } else if let Some(u) = until {
            Some(u)
        } else if let Some(span) = span {
            Some(retention::add_span(snap.time_ns, span, &tz))
        } else {
            bail!("say --until, --for or --release");
        };
        let (new_id, new_until) = snapshots::hold(&repo, &id, &snap, want, None)?;
        let o = Outcome {
            id: id.to_hex(),
            new_id: new_id.to_hex(),
            keep_until: new_until.map(crate::output::rfc3339),
            changed: new_id != id,
        };
        if !args.json && !cli.quiet {
            let local = new_until.map(crate::output::time);
            match (&local, o.changed) {
                (Some(u), true) => println!(
                    "snapshot {} held until {u}: now {}",
                    id.short(),
                    new_id.short()
                ),
                (Some(u), false) => println!("snapshot {} already held until {u}", id.short()),
                (None, true) => {
                    println!("snapshot {} released: now {}", id.short(), new_id.short())
                }
                (None, false) => println!("snapshot {} was not held", id.short()),
            }
        }
        if new_until.is_some_and(|u| u <= strata_engine::now_ns()) {
            eprintln!(
                "strata: note: the hold of {} has already ended (holds with --for count from the snapshot's time)",
                new_id.short()
            );
        }
        out.push(o);
    }
    if args.json {
        json(&out)?;
    }
    Ok(exit::OK)
}
