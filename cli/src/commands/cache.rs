//! `strata cache`

use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use serde::Serialize;
use strata_storage::cache_dirs;

use crate::output::json;
use crate::{exit, Cli};

/// List the local caches of remote repositories (with --cleanup: remove old ones).
///
/// Index files, snapshots and trees of SFTP and S3 repositories are cached on this machine,
/// one directory per repository, under the cache directory (--cache-dir,
/// STRATA_CACHE_DIR, else $XDG_CACHE_HOME/strata, else ~/.cache/strata). Each is listed with
/// its size and when it was last used; --cleanup removes those not used for --max-age days.
/// Removing a cache loses nothing: it is filled again from the repository when next used.
///
/// With --json: {"dir", "caches": [{"name", "path", "bytes", "last_used", "old",
/// "removed"}]}.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Remove the caches of repositories not used for --max-age days.
    #[arg(long)]
    cleanup: bool,
    /// How many days unused make a cache old.
    #[arg(long, value_name = "DAYS", default_value_t = 30)]
    max_age: u32,
    /// Print the caches as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Listed {
    name: String,
    path: String,
    bytes: u64,
    last_used: String,
    old: bool,
    removed: bool,
}

#[derive(Serialize)]
struct Report {
    dir: Option<String>,
    caches: Vec<Listed>,
}

pub fn run(cli: &Cli, args: &Args) -> Result<u8> {
    let Some(root) = cli.cache_place().root() else {
        if args.json {
            json(&Report {
                dir: None,
                caches: Vec::new(),
            })?;
        } else {
            println!("no cache is used (--no-cache, STRATA_NO_CACHE, or no home directory)");
        }
        return Ok(exit::OK);
    };
    let dirs = cache_dirs::list(&root)
        .with_context(|| format!("cannot list the cache directory {}", root.display()))?;
    let max_age = Duration::from_secs(u64::from(args.max_age) * 86_400);
    let now = SystemTime::now();
    let mut listed = Vec::new();
    for d in &dirs {
        let age = now.duration_since(d.last_used).unwrap_or_default();
        let old = age > max_age;
        let removed = if args.cleanup && old {
            cache_dirs::remove(d)
                .with_context(|| format!("cannot remove the cache {}", d.path.display()))?;
            true
        } else {
            false
        };
        let ns = d
            .last_used
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |t| t.as_nanos() as i64);
        listed.push(Listed {
            name: d.name.clone(),
            path: d.path.display().to_string(),
            bytes: d.bytes,
            last_used: crate::output::time(ns),
            old,
            removed,
        });
    }
    if args.json {
        json(&Report {
            dir: Some(root.display().to_string()),
            caches: listed,
        })?;
        return Ok(exit::OK);
    }
    if cli.quiet {
        return Ok(exit::OK);
    }
    println!("cache directory {}", root.display());
    if listed.is_empty() {
        println!("no repository caches");
    }
    let tz = jiff::tz::TimeZone::system();
    for (l, d) in listed.iter().zip(&dirs) {
        let days = now
            .duration_since(d.last_used)
            .unwrap_or_default()
            .as_secs()
            / 86_400;
        let ns = d
            .last_used
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |t| t.as_nanos() as i64);
        let mark = match (l.removed, l.old) {
            (true, _) => "  removed",
            (false, true) => "  old (--cleanup removes it)",
            _ => "",
        };
        println!(
            "{}  {:>10}  last used {} ({days} days ago){mark}",
            l.name,
            crate::output::bytes(l.bytes),
            strata_engine::retention::format_time(ns, &tz),
        );
    }
    let freed: u64 = listed.iter().filter(|l| l.removed).map(|l| l.bytes).sum();
    if args.cleanup {
        let n = listed.iter().filter(|l| l.removed).count();
        println!("removed {n} caches, {}", crate::output::bytes(freed));
    }
    Ok(exit::OK)
}
