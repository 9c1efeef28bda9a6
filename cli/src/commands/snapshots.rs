//! `strata snapshots`

use std::io::Write;

use anyhow::Result;
use serde::Serialize;
use strata_engine::retention::{GroupBy, GroupKey};
use strata_engine::{snapshots, Operation};
use strata_format::id::SnapshotId;
use strata_format::snapshot::{SnapshotFile, SnapshotSummary};

use crate::output::{bytes, json, printable, rfc3339, time};
use crate::{exit, open, Cli};

/// List the snapshots in the repository, oldest first.
///
/// The table shows each snapshot's id, time (local time; --utc for UTC), host, project,
/// tags, the end of its retention hold while one is in force, the bytes it added and its
/// paths; --compact one short line each (id, time, host, project, tags; `*` marks a held
/// snapshot). --group-by splits the list into groups that share the given fields (as
/// `forget` groups them), each under a heading; --latest N shows only the N newest of
/// each group (grouped by host, paths and project unless --group-by says otherwise).
///
/// With --json: an array of snapshots; with --group-by, an array of {"group_key": {the
/// fields grouped by}, "snapshots": [...]}. Times are RFC 3339 in UTC.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only these snapshots (ids, prefixes or `latest`; default: all that match the
    /// filters).
    #[arg(value_name = "SNAPSHOT", value_parser = snapshot_spec)]
    snapshots: Vec<String>,
    /// Only snapshots of this host, project, tag or path.
    #[command(flatten)]
    filter: super::SnapshotFilter,
    /// Only the N newest snapshots of each group.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    latest: Option<u32>,
    /// Group by these fields: any of host, paths, project, tags, comma-separated ("" puts
    /// all snapshots in one group).
    #[arg(long, value_name = "FIELDS", value_parser = GroupBy::parse)]
    group_by: Option<GroupBy>,
    /// One short line per snapshot: id, time, host, project, tags.
    #[arg(long, conflicts_with = "json")]
    compact: bool,
    /// Print a JSON array instead of a table.
    #[arg(long)]
    json: bool,
}

/// The `--json` form of a snapshot (a documented contract; add fields, never rename).
#[derive(Serialize)]
pub struct SnapshotJson<'a> {
    id: String,
    short_id: String,
    time: String,
    host: &'a str,
    user: &'a str,
    paths: &'a [String],
    tags: &'a [String],
    tree: String,
    parent: Option<String>,
    project: Option<&'a str>,
    /// End of the retention hold, if any.
    keep_until: Option<String>,
    /// The id the backup first wrote, if the snapshot was rewritten (hold, repair).
    original: Option<String>,
    summary: &'a SnapshotSummary,
    /// "files", "stdin", "postgres", "mysql" or "sqlite".
    source: &'static str,
    /// What the source recorded (database, server_version, rows:<table>, …).
    source_meta: std::collections::BTreeMap<&'a str, &'a str>,
}

impl<'a> SnapshotJson<'a> {
    pub fn new(id: &strata_format::id::SnapshotId, s: &'a SnapshotFile) -> Self {
        SnapshotJson {
            id: id.to_hex(),
            short_id: id.short(),
            time: rfc3339(s.time_ns),
            host: &s.hostname,
            user: &s.username,
            paths: &s.paths,
            tags: &s.tags,
            tree: s.tree.to_hex(),
            parent: s.parent.map(|p| p.to_hex()),
            project: s.project.as_deref(),
            keep_until: s.keep_until_ns.map(rfc3339),
            original: s.original.map(|o| o.to_hex()),
            summary: &s.summary,
            source: strata_db::kind_name(&s.source),
            source_meta: s
                .source_meta
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect(),
        }
    }
}

/// `latest`, or what can be an id or a prefix of one (hex digits); anything else is a usage
/// error (exit code 2) before the repository is opened.
fn snapshot_spec(text: &str) -> Result<String, String> {
    if text == snapshots::LATEST
        || (!text.is_empty() && text.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        Ok(text.to_string())
    } else {
        Err("give `latest`, a snapshot id or a hex prefix of one".to_string())
    }
}

#[derive(Serialize)]
struct GroupJson<'a> {
    group_key: &'a GroupKey,
    snapshots: Vec<SnapshotJson<'a>>,
}

pub fn run(cli: &Cli, args: &Args) -> Result<u8> {
    let filter = args.filter.for_specs(&args.snapshots);
    let (repo, _) = open::open(cli, Operation::Snapshots)?;
    let list = if args.snapshots.is_empty() {
        let mut list = snapshots::list(&repo)?;
        list.retain(|(_, s)| filter.matches(s));
        list
    } else {
        snapshots::select(&repo, &args.snapshots, &filter)?
    };
    let latest = args.latest.map(|n| n as usize);
    let groups = match (args.group_by, latest) {
        (Some(by), _) => snapshots::group(list, by, latest),
        (None, Some(_)) => {
            // The newest of each default group, shown as one list, oldest first.
            let mut flat: Vec<_> = snapshots::group(list, GroupBy::default(), latest)
                .into_iter()
                .flat_map(|g| g.snapshots)
                .collect();
            flat.sort_by_key(|(id, s)| (s.time_ns, *id));
            one_group(flat)
        }
        (None, None) => one_group(list),
    };
    let grouped = args.group_by.is_some();
    if args.json {
        if grouped {
            let out: Vec<GroupJson> = groups
                .iter()
                .map(|g| GroupJson {
                    group_key: &g.key,
                    snapshots: items(g),
                })
                .collect();
            json(&out)?;
        } else {
            json(&groups.iter().flat_map(items).collect::<Vec<_>>())?;
        }
        return Ok(exit::OK);
    }
    let now = strata_engine::now_ns();
    let mut out = std::io::stdout().lock();
    let mut total = 0;
    let mut any_held = false;
    for (n, g) in groups.iter().enumerate() {
        if grouped {
            if n > 0 {
                writeln!(out)?;
            }
            writeln!(out, "group {}:", printable(g.key.to_string().as_bytes()))?;
        }
        if args.compact {
            for (id, s) in &g.snapshots {
                let held = s.keep_until_ns.is_some_and(|u| u > now);
                any_held |= held;
                writeln!(
                    out,
                    "{}{} {} {} {}{}",
                    id.short(),
                    if held { "*" } else { " " },
                    minutes(s.time_ns),
                    printable(s.hostname.as_bytes()),
                    printable(s.project.as_deref().unwrap_or("-").as_bytes()),
                    if s.tags.is_empty() {
                        String::new()
                    } else {
                        format!(" [{}]", printable(s.tags.join(",").as_bytes()))
                    }
                )?;
            }
        } else {
            table(&mut out, &g.snapshots, now)?;
        }
        total += g.snapshots.len();
    }
    if any_held {
        writeln!(out, "* held: forget keeps it (see `strata hold`)")?;
    }
    if grouped {
        writeln!(out)?;
    }
    writeln!(out, "{total} snapshots")?;
    Ok(exit::OK)
}

/// The `--json` form of a group's snapshots.
fn items(g: &snapshots::SnapshotGroup) -> Vec<SnapshotJson<'_>> {
    g.snapshots
        .iter()
        .map(|(id, s)| SnapshotJson::new(id, s))
        .collect()
}

/// Every snapshot in one group (for listings not grouped).
fn one_group(snapshots: Vec<(SnapshotId, SnapshotFile)>) -> Vec<snapshots::SnapshotGroup> {
    vec![snapshots::SnapshotGroup {
        key: GroupKey {
            hostname: None,
            paths: None,
            project: None,
            tags: None,
        },
        snapshots,
    }]
}

/// The full table: id, time, host, project, tags, end of a hold in force, bytes added,
/// paths.
fn table(out: &mut impl Write, list: &[(SnapshotId, SnapshotFile)], now: i64) -> Result<()> {
    writeln!(
        out,
        "{:<8}  {:<19}  {:<16}  {:<12}  {:<12}  {:<10}  {:>10}  paths",
        "id", "time", "host", "project", "tags", "held until", "added"
    )?;
    for (id, s) in list {
        let held = s
            .keep_until_ns
            .filter(|u| *u > now)
            .map(|u| time(u).split(' ').next().unwrap_or_default().to_string())
            .unwrap_or_default();
        writeln!(
            out,
            "{:<8}  {:<19}  {:<16}  {:<12}  {:<12}  {:<10}  {:>10}  {}",
            id.short(),
            time(s.time_ns),
            printable(s.hostname.as_bytes()),
            printable(s.project.as_deref().unwrap_or("-").as_bytes()),
            printable(s.tags.join(",").as_bytes()),
            held,
            bytes(s.summary.bytes_added),
            printable(s.paths.join(" ").as_bytes())
        )?;
    }
    Ok(())
}

/// A time for people without its seconds: `2025-01-31 04:00`.
fn minutes(ns: i64) -> String {
    let t = time(ns);
    t.rsplit_once(':').map_or(t.clone(), |(m, _)| m.to_string())
}
