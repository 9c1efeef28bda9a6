//! `strata forget`

use anyhow::{bail, Result};
use serde::Serialize;
use strata_engine::prune::PruneStats;
use strata_engine::retention::{self, CalendarSpan, GroupBy, KeepPolicy, PlanOptions};
use strata_engine::snapshots;
use strata_engine::Operation;
use strata_format::id::SnapshotId;

use crate::commands::prune::{prune_locked, PruneArgs};
use crate::output::json;
use crate::{exit, open, Cli};

/// Remove snapshots by retention policy (or by id); with --prune, also their data.
///
/// Snapshots are grouped by host, paths and project (see --group-by); within each group the
/// policy keeps the newest N snapshots (--keep-last), the newest snapshot of each of the
/// last N hours, days, ISO weeks, months and years that have one (--keep-hourly ...
/// --keep-yearly), every snapshot within a span of the group's newest (--keep-within), and
/// every snapshot with a given tag (--keep-tag). Buckets are calendar periods in local time.
/// A snapshot under a hold (`backup --hold-for`, `strata hold`) is kept whatever the policy
/// says, and a group never loses its last snapshot unless --allow-empty. Every snapshot is
/// listed with the reasons it is kept or that it is removed. Forgetting only deletes
/// snapshot files; the data they alone referenced is removed by `prune` (or --prune).
///
/// With --json: {"groups": [{"key", "snapshots": [{"id", "short_id", "time", "keep",
/// "reasons"}]}], "removed": [ids], "dry_run", "prune": {prune summary} or null}.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Forget these snapshots (ids or prefixes) instead of applying a policy.
    #[arg(value_name = "SNAPSHOT", conflicts_with_all = ["keep_last", "keep_hourly", "keep_daily",
          "keep_weekly", "keep_monthly", "keep_yearly", "keep_within", "keep_tag"])]
    ids: Vec<String>,
    /// Keep the N newest snapshots of each group.
    #[arg(long, value_name = "N", default_value_t = 0)]
    keep_last: u32,
    /// Keep the newest snapshot of each of the last N hours that have one.
    #[arg(long, value_name = "N", default_value_t = 0)]
    keep_hourly: u32,
    /// Keep the newest snapshot of each of the last N days that have one.
    #[arg(long, value_name = "N", default_value_t = 0)]
    keep_daily: u32,
    /// Keep the newest snapshot of each of the last N ISO weeks that have one.
    #[arg(long, value_name = "N", default_value_t = 0)]
    keep_weekly: u32,
    /// Keep the newest snapshot of each of the last N months that have one.
    #[arg(long, value_name = "N", default_value_t = 0)]
    keep_monthly: u32,
    /// Keep the newest snapshot of each of the last N years that have one.
    #[arg(long, value_name = "N", default_value_t = 0)]
    keep_yearly: u32,
    /// Keep every snapshot within this span of its group's newest: `30d`, `1y2m`, `12h`.
    #[arg(long, value_name = "SPAN")]
    keep_within: Option<CalendarSpan>,
    /// Keep every snapshot with this tag (repeatable).
    #[arg(long, value_name = "TAG")]
    keep_tag: Vec<String>,
    /// Group snapshots by these fields: any of host, paths, project, tags, comma-separated;
    /// "" puts all snapshots in one group.
    #[arg(long, value_name = "FIELDS", default_value = "host,paths,project",
          value_parser = GroupBy::parse)]
    group_by: GroupBy,
    /// Only consider snapshots of this host, project, tag or path (and `latest` among ids: the
    /// newest of them).
    #[command(flatten)]
    filter: super::SnapshotFilter,
    /// Let a group lose all its snapshots when the policy keeps none of them.
    #[arg(long)]
    allow_empty: bool,
    /// Run prune afterwards (under the same prune lock).
    #[arg(long)]
    prune: bool,
    #[command(flatten)]
    prune_args: PruneArgs,
    /// Print the plan (and prune summary) as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct JsonSnapshot {
    id: String,
    short_id: String,
    /// RFC 3339, UTC.
    time: String,
    #[serde(skip)]
    time_ns: i64,
    keep: bool,
    reasons: Vec<String>,
}

#[derive(Serialize)]
struct JsonGroup {
    key: retention::GroupKey,
    snapshots: Vec<JsonSnapshot>,
}

#[derive(Serialize)]
struct JsonOut {
    groups: Vec<JsonGroup>,
    removed: Vec<String>,
    dry_run: bool,
    prune: Option<PruneStats>,
}

fn policy(args: &Args) -> KeepPolicy {
    KeepPolicy {
        last: args.keep_last,
        hourly: args.keep_hourly,
        daily: args.keep_daily,
        weekly: args.keep_weekly,
        monthly: args.keep_monthly,
        yearly: args.keep_yearly,
        within: args.keep_within,
        tags: args.keep_tag.clone(),
    }
}

pub fn run(cli: &Cli, args: &Args) -> Result<u8> {
    let group_by = args.group_by;
    let policy = policy(args);
    if args.ids.is_empty() && policy.is_empty() {
        bail!(
            "no policy given: say what to keep (--keep-last, --keep-daily, ..., --keep-within, \
             --keep-tag) or name the snapshots to forget"
        );
    }
    let op = if args.prune {
        Operation::ForgetAndPrune
    } else {
        Operation::Forget
    };
    let filter = args.filter.for_specs(&args.ids);
    let (mut repo, _lock) = open::open(cli, op)?;
    let tz = jiff::tz::TimeZone::system();
    let now = strata_engine::now_ns();
    let dry = args.prune_args.dry_run;
    let talk = !args.json && !cli.quiet;

    let (groups, remove) = if args.ids.is_empty() {
        let all: Vec<_> = snapshots::list(&repo)?
            .into_iter()
            .filter(|(_, s)| filter.matches(s))
            .collect();
        let plan = retention::plan(
            &all,
            &PlanOptions {
                policy: &policy,
                group_by,
                now_ns: now,
                tz: &tz,
                allow_empty: args.allow_empty,
            },
        );
        let remove: Vec<SnapshotId> = plan.remove().collect();
        let groups: Vec<JsonGroup> = plan
            .groups
            .iter()
            .map(|g| JsonGroup {
                key: g.key.clone(),
                snapshots: g
                    .decisions
                    .iter()
                    .map(|d| JsonSnapshot {
                        id: d.id.to_hex(),
                        short_id: d.id.short(),
                        time: crate::output::rfc3339(d.time_ns),
                        time_ns: d.time_ns,
                        keep: d.keep,
                        reasons: d
                            .reasons
                            .iter()
                            .map(|r| r.describe(crate::output::zone()))
                            .collect(),
                    })
                    .collect(),
            })
            .collect();
        (groups, remove)
    } else {
        let mut remove = Vec::new();
        let mut held = Vec::new();
        for spec in &args.ids {
            let (id, s) = if spec == "latest" {
                let (id, s) = snapshots::find_in(&repo, spec, &filter)?;
                (id, Ok(s))
            } else {
                let id = snapshots::resolve(&repo, spec)?;
                (id, snapshots::load(&repo, &id))
            };
            let s = match s {
                Ok(s) => s,
                // A damaged snapshot restores nothing and would block prune for ever.
                Err(e) if e.kind() == strata_engine::ErrorKind::Corrupt => {
                    eprintln!(
                        "strata: snapshot {} is unreadable ({e}); forgetting it",
                        id.short()
                    );
                    remove.push(id);
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            match s.keep_until_ns {
                Some(until) if until > now => held.push(format!(
                    "{} (held until {})",
                    id.short(),
                    crate::output::time(until)
                )),
                _ => remove.push(id),
            }
        }
        if !held.is_empty() {
            bail!(
                "refusing to forget held snapshots: {}; nothing was removed",
                held.join(", ")
            );
        }
        (Vec::new(), remove)
    };

    if talk {
        for g in &groups {
            println!("group {}:", g.key);
            for s in &g.snapshots {
                let t = crate::output::time(s.time_ns);
                if s.keep {
                    println!("  keep    {}  {t}  {}", s.short_id, s.reasons.join(", "));
                } else {
                    println!("  remove  {}  {t}  no rule keeps it", s.short_id);
                }
            }
        }
        let verb = if dry { "would remove" } else { "removing" };
        println!("{verb} {} snapshots", remove.len());
    }
    if !dry {
        snapshots::forget(&repo, &remove)?;
    }
    let prune = if args.prune {
        // A dry run plans as if the snapshots were gone.
        let ignore = if dry { remove.clone() } else { Vec::new() };
        Some(prune_locked(
            cli,
            &mut repo,
            &args.prune_args,
            args.json,
            ignore,
        )?)
    } else {
        None
    };
    if args.json {
        json(&JsonOut {
            groups,
            removed: remove.iter().map(|i| i.to_hex()).collect(),
            dry_run: dry,
            prune,
        })?;
    }
    Ok(exit::OK)
}
