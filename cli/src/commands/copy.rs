//! `strata copy`

use std::path::PathBuf;

use anyhow::{bail, Result};
use strata_engine::Operation;
use strata_engine::{copy, snapshots};

use crate::output::{bytes, json};
use crate::progress::Bar;
use crate::{exit, open, Cli};

/// Copy snapshots to another repository (replication).
///
/// Copies the named snapshots (default: all of them, or those matching --host, --project
/// and --tag) between two repositories: give exactly one of --to-repo (`-r SRC copy
/// --to-repo DST`) or --from-repo (restic's way: `-r DST copy --from-repo SRC`); -r/--repo
/// is the other side. The repositories may have different passwords
/// and keys; only the data the destination lacks is transferred. Copying is idempotent:
/// a snapshot already copied is skipped, and an interrupted copy resumes (packs are
/// indexed as they are stored: only the last few, at most about an eighth of what was
/// stored, are sent again). Copied snapshots keep their time, host, paths, tags and hold;
/// each records the source snapshot's id (`cat snapshot`).
///
/// Each repository's password comes from its own --from-/--to-password-file or -command,
/// else from --password-file / STRATA_PASSWORD_FILE / STRATA_PASSWORD_COMMAND.
///
/// With --json: {"copied": [[source id, new id], …], "skipped": [ids], "holds_updated":
/// [ids of copies whose hold was extended to the source's], "data_blobs_added",
/// "tree_blobs_added", "bytes_added"}.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("other side").required(true).args(["from_repo", "to_repo"])))]
pub struct Args {
    /// Snapshots to copy (ids, prefixes or `latest`; default: all that match the filters).
    #[arg(value_name = "SNAPSHOT")]
    snapshots: Vec<String>,
    /// Source repository; -r/--repo is then the destination (as `restic copy`).
    #[arg(long, value_name = "REPO")]
    from_repo: Option<String>,
    /// Destination repository; -r/--repo is then the source.
    #[arg(long, value_name = "REPO")]
    to_repo: Option<String>,
    /// File holding the source repository's password.
    #[arg(long, value_name = "FILE", conflicts_with = "from_password_command")]
    from_password_file: Option<PathBuf>,
    /// Command printing the source repository's password.
    #[arg(long, value_name = "CMD")]
    from_password_command: Option<String>,
    /// File holding the destination repository's password.
    #[arg(long, value_name = "FILE", conflicts_with = "to_password_command")]
    to_password_file: Option<PathBuf>,
    /// Command printing the destination repository's password.
    #[arg(long, value_name = "CMD")]
    to_password_command: Option<String>,
    #[command(flatten)]
    filter: super::SnapshotFilter,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// The spec of one side of the copy: its own password options win; else the global ones.
fn side(
    cli: &Cli,
    location: &str,
    file: Option<&std::path::Path>,
    command: Option<&str>,
) -> strata_app::RepoSpec {
    let (file, command) = if file.is_some() || command.is_some() {
        (file, command)
    } else {
        (
            cli.password_file.as_deref(),
            cli.password_command.as_deref(),
        )
    };
    open::spec_at(cli, location, file, command)
}

pub fn run(cli: &Cli, args: &Args) -> Result<u8> {
    let filter = args.filter.for_specs(&args.snapshots);
    // -r/--repo is the side --from-repo or --to-repo does not name (clap allows exactly
    // one of them).
    let Some(repo) = cli.repo.as_deref() else {
        let other = if args.from_repo.is_some() {
            "destination"
        } else {
            "source"
        };
        crate::usage_error(format!(
            "no {other} repository: give it with -r/--repo (or STRATA_REPOSITORY)"
        ));
    };
    let (from_location, to_location) = match (&args.from_repo, &args.to_repo) {
        (Some(from), _) => (from.as_str(), repo),
        (None, Some(to)) => (repo, to.as_str()),
        (None, None) => crate::usage_error("give --to-repo or --from-repo"),
    };
    let from = side(
        cli,
        from_location,
        args.from_password_file.as_deref(),
        args.from_password_command.as_deref(),
    );
    let to = side(
        cli,
        to_location,
        args.to_password_file.as_deref(),
        args.to_password_command.as_deref(),
    );
    // The source is only read (it may be read-only); the destination is written.
    let (from, _from_lock) = open::open_spec(cli, &from, Operation::CopyFrom)?;
    let (to, _to_lock) = open::open_spec(cli, &to, Operation::CopyTo)?;
    if from.config().repo_id == to.config().repo_id {
        bail!("source and destination are the same repository");
    }

    let selected = if args.snapshots.is_empty() {
        snapshots::list(&from)?
            .into_iter()
            .filter(|(_, s)| filter.matches(s))
            .collect()
    } else {
        snapshots::select(&from, &args.snapshots, &filter)?
    };
    let bar = Bar::new("copy", cli.quiet || args.json);
    let report = copy::copy(&from, &to, &selected, &bar)?;
    if args.json {
        json(&report)?;
    } else if !cli.quiet {
        for (src, dst) in &report.copied {
            println!("copied snapshot {} as {}", src.short(), dst.short());
        }
        println!(
            "{} snapshots copied, {} already there; added {} ({} data blobs, {} tree blobs)",
            report.copied.len(),
            report.skipped.len(),
            bytes(report.bytes_added),
            report.data_blobs_added,
            report.tree_blobs_added
        );
    }
    Ok(exit::OK)
}
