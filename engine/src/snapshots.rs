//! Finding snapshots: all of them, by id prefix, `latest`, and the parent of a backup; and
//! selecting them: [`Filter`] (host, project, tags, paths) and [`select`], the one place where
//! a command's snapshot arguments and filter become snapshots.
//!
//! # Selection rules (every front end gets the same)
//! - With no snapshot named, a command acts on every snapshot the filter matches.
//! - `latest` is the newest snapshot the filter matches (the newest of all without one).
//! - An id or prefix names its snapshot. A filter beside an id is refused
//!   ([`Filter::check_specs`]): it could only be ignored, and a silently ignored filter
//!   (`copy ID --tag nightly`) acts on a snapshot the caller did not mean.

use strata_format::envelope::EncryptedObject;
use strata_format::id::SnapshotId;
use strata_format::snapshot::SnapshotFile;
use strata_storage::FileType;

use crate::retention::{group_key, GroupBy, GroupKey};
use crate::{EngineError, Repository, Result};

mod cache;
pub use cache::{Refresh, SnapshotCache, SnapshotList};

/// Loads one snapshot.
pub fn load(repo: &Repository, id: &SnapshotId) -> Result<SnapshotFile> {
    repo.load_object(FileType::Snapshot, &id.to_hex())
}

/// Every snapshot, oldest first; an unreadable one is an error naming it.
pub fn list(repo: &Repository) -> Result<Vec<(SnapshotId, SnapshotFile)>> {
    let mut out = Vec::new();
    for (id, s) in list_lenient(repo)? {
        out.push((id, s?));
    }
    Ok(out)
}

/// Every snapshot with its own result, oldest readable first (for `check`).
pub fn list_lenient(repo: &Repository) -> Result<Vec<(SnapshotId, Result<SnapshotFile>)>> {
    let mut read: std::collections::BTreeMap<String, Result<SnapshotFile>> =
        std::collections::BTreeMap::new();
    let mut listed = repo.list_objects(FileType::Snapshot)?;
    let mut relists = 0;
    loop {
        let new: Vec<(String, u64)> = listed
            .into_iter()
            .filter(|(n, _)| !read.contains_key(n))
            .collect();
        let reads = repo.read_many_listed(FileType::Snapshot, &new);
        let mut vanished = false;
        for ((name, _), r) in new.into_iter().zip(reads) {
            match r {
                Err(EngineError::Storage(e)) if e.kind == strata_storage::ErrorKind::NotFound => {
                    vanished = true;
                }
                r => {
                    let s = r.and_then(|b| {
                        SnapshotFile::decode(repo.key(), &b)
                            .map_err(|e| EngineError::format(format!("snapshots/{name}"), e))
                    });
                    read.insert(name, s);
                }
            }
        }
        if !vanished {
            break;
        }
        // Gone since it was listed: forgotten, or replaced (`hold`, `tag`, a copy carrying
        // a hold over), and a replacement is written before the old file is deleted. List
        // again and read what is new, so that a replacement is never missed.
        relists += 1;
        if relists > SNAPSHOT_RELISTS {
            return Err(EngineError::locked(format!(
                "the snapshots kept changing while they were read ({SNAPSHOT_RELISTS} \
                 listings); try again"
            )));
        }
        listed = repo.block_on(repo.backend().list(FileType::Snapshot))?;
    }
    let mut out: Vec<(SnapshotId, Result<SnapshotFile>)> = read
        .into_iter()
        .map(|(name, s)| (name.parse::<SnapshotId>().unwrap_or_default(), s))
        .collect();
    out.sort_by_key(|(id, s)| (s.as_ref().map(|s| s.time_ns).unwrap_or(i64::MIN), *id));
    Ok(out)
}

/// How many times the snapshots are listed again when a listed one vanished before it was
/// read.
const SNAPSHOT_RELISTS: usize = 8;

/// Every readable snapshot, oldest first; unreadable ones are skipped with a warning (so
/// one damaged snapshot does not stop backups or listings; `check` reports it). Not for
/// `latest`: see [`find`].
pub fn list_readable(repo: &Repository) -> Result<Vec<(SnapshotId, SnapshotFile)>> {
    Ok(list_lenient(repo)?
        .into_iter()
        .filter_map(|(id, s)| match s {
            Ok(s) => Some((id, s)),
            Err(e) => {
                tracing::warn!("skipping unreadable snapshot {id}: {e}");
                None
            }
        })
        .collect())
}

/// Resolves `latest`, a full id or a unique hex prefix.
///
/// `latest` is the newest of all snapshots, and an unreadable snapshot could be the newest
/// (its time is inside it): while any snapshot is unreadable, `latest` fails naming it,
/// rather than silently meaning an older one. Every command that takes `latest` resolves it
/// here. (The parent of a backup, [`find_parent`], does skip unreadable snapshots: a damaged
/// old snapshot must not stop backups.)
pub fn find(repo: &Repository, spec: &str) -> Result<(SnapshotId, SnapshotFile)> {
    find_in(repo, spec, &Filter::default())
}

/// [`find`], where `latest` is the newest snapshot `filter` matches (of a host, a project,
/// with a tag, holding a path). An id with a non-empty filter is refused (see
/// [`Filter::check_specs`]).
pub fn find_in(
    repo: &Repository,
    spec: &str,
    filter: &Filter,
) -> Result<(SnapshotId, SnapshotFile)> {
    filter.check_specs(std::slice::from_ref(&spec))?;
    if spec == LATEST {
        return latest(repo, filter);
    }
    let id = resolve(repo, spec)?;
    Ok((id, load(repo, &id)?))
}

/// The word that names the newest snapshot (matching the filter).
pub const LATEST: &str = "latest";

/// The newest snapshot `filter` matches, if every snapshot can be read (an unreadable one
/// might be the newest match: its host and project are inside it).
fn latest(repo: &Repository, filter: &Filter) -> Result<(SnapshotId, SnapshotFile)> {
    let (readable, unreadable) = list_split(repo)?;
    if !unreadable.is_empty() {
        return Err(latest_unknown(&unreadable));
    }
    let total = readable.len();
    let found = readable.into_iter().rev().find(|(_, s)| filter.matches(s));
    found.ok_or_else(|| no_match(filter, total))
}

/// Nothing matched `filter` among `total` snapshots: which filter, and how many there are.
fn no_match(filter: &Filter, total: usize) -> EngineError {
    EngineError::NotFound(match (filter.is_empty(), total) {
        (_, 0) => "the repository has no snapshots".into(),
        (true, _) => "no snapshot matches".into(),
        (false, 1) => format!(
            "no snapshot {}: the one snapshot in the repository does not match \
             (`strata snapshots` lists it)",
            filter.describe()
        ),
        (false, n) => format!(
            "no snapshot {}: none of the repository's {n} snapshots matches \
             (`strata snapshots` lists them)",
            filter.describe()
        ),
    })
}

/// Every snapshot: the readable ones, oldest first, and those that cannot be read, with
/// why. Whoever shows a newest snapshot (a `latest` link) must show none while the second
/// list is not empty (see [`find`]).
#[allow(clippy::type_complexity)]
pub fn list_split(
    repo: &Repository,
) -> Result<(
    Vec<(SnapshotId, SnapshotFile)>,
    Vec<(SnapshotId, EngineError)>,
)> {
    let mut readable = Vec::new();
    let mut unreadable = Vec::new();
    for (id, s) in list_lenient(repo)? {
        match s {
            Ok(s) => readable.push((id, s)),
            Err(e) => unreadable.push((id, e)),
        }
    }
    Ok((readable, unreadable))
}

/// Why there is no telling which snapshot is the latest while `unreadable` cannot be read,
/// and what to do about it.
pub fn latest_unknown(unreadable: &[(SnapshotId, EngineError)]) -> EngineError {
    let named: Vec<String> = unreadable
        .iter()
        .map(|(id, e)| format!("snapshot {} ({e})", id.to_hex()))
        .collect();
    EngineError::Corrupt(format!(
        "cannot tell which snapshot is the latest: {} cannot be read, and may be newer than \
         every readable one; give the id of the snapshot you want (`strata snapshots` lists \
         the readable ones), or, if the unreadable one is of no use, remove it with `strata \
         forget ID`",
        named.join(", ")
    ))
}

/// Resolves a full id or a unique hex prefix to a snapshot id by name only, without
/// reading the snapshot (which may be damaged).
pub fn resolve(repo: &Repository, spec: &str) -> Result<SnapshotId> {
    if spec.is_empty() || !spec.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(EngineError::Invalid(format!(
            "{spec:?} is not a snapshot id: give `latest`, an id or a hex prefix of one"
        )));
    }
    let spec_lc = spec.to_ascii_lowercase();
    let matches: Vec<String> = repo
        .list_objects(FileType::Snapshot)?
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| n.starts_with(&spec_lc))
        .collect();
    match matches.as_slice() {
        [] => Err(EngineError::NotFound(format!("no snapshot matches {spec}"))),
        [one] => one
            .parse()
            .map_err(|e| EngineError::format(format!("snapshots/{one}"), e)),
        many => Err(EngineError::Invalid(format!(
            "snapshot prefix {spec} is ambiguous: it matches {} snapshots; give more digits",
            many.len()
        ))),
    }
}

/// The latest snapshot of the same host and paths, if any.
pub fn find_parent(
    repo: &Repository,
    hostname: &str,
    paths: &[String],
) -> Result<Option<(SnapshotId, SnapshotFile)>> {
    let mut sorted = paths.to_vec();
    sorted.sort();
    Ok(list_readable(repo)?.into_iter().rev().find(|(_, s)| {
        let mut p = s.paths.clone();
        p.sort();
        s.hostname == hostname
            && p == sorted
            && s.source == strata_format::snapshot::SourceKind::Files
    }))
}

/// Deletes snapshot files (what `forget` does; the data goes with the next prune).
pub fn forget(repo: &Repository, ids: &[SnapshotId]) -> Result<()> {
    // Held snapshots are never removed, whoever asks. (One that cannot be read has no hold
    // anyone could honour: it may be removed by name.)
    let now = crate::now_ns();
    let mut held = Vec::new();
    for id in ids {
        if let Ok(s) = load(repo, id) {
            if let Some(until) = s.keep_until_ns.filter(|u| *u > now) {
                held.push((*id, until));
            }
        }
    }
    if !held.is_empty() {
        return Err(EngineError::Held(held));
    }
    let names: Vec<String> = ids.iter().map(|id| id.to_hex()).collect();
    crate::objects::delete_all(repo, FileType::Snapshot, &names)
}

/// Rewrites a snapshot: applies `edit` to a copy, records the rewrite (keeping the id the
/// backup first wrote in `original`), writes the copy, and only then deletes the old file.
/// Returns the new id (the old one when the edit changed nothing).
pub fn rewrite(
    repo: &Repository,
    id: &SnapshotId,
    snap: &SnapshotFile,
    change: String,
    edit: impl FnOnce(&mut SnapshotFile),
) -> Result<SnapshotId> {
    rewrite_keeping(repo, id, snap, change, false, edit)
}

/// [`rewrite`], keeping the old snapshot file too when `keep_old` (the new one still
/// records the old id in `original` and the change in `rewrites`).
pub fn rewrite_keeping(
    repo: &Repository,
    id: &SnapshotId,
    snap: &SnapshotFile,
    change: String,
    keep_old: bool,
    edit: impl FnOnce(&mut SnapshotFile),
) -> Result<SnapshotId> {
    let mut new = snap.clone();
    edit(&mut new);
    if new == *snap {
        return Ok(*id);
    }
    new.original.get_or_insert(*id);
    new.rewrites.push(strata_format::snapshot::Rewrite {
        time_ns: crate::now_ns(),
        hostname: crate::hostname(),
        username: crate::username(),
        change,
    });
    let new_id = SnapshotId(repo.save_object(FileType::Snapshot, &new)?);
    if keep_old {
        return Ok(new_id);
    }
    crate::lock::before_delete(repo)?;
    repo.drop_early_listings();
    repo.block_on(repo.backend().delete(FileType::Snapshot, &id.to_hex()))?;
    Ok(new_id)
}

/// Which snapshots a command acts on: those of a host, of a project, with any of some
/// tags, and holding all of some paths (each criterion only when given).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub host: Option<String>,
    pub project: Option<String>,
    /// Any of these tags (none given: any snapshot).
    pub tags: Vec<String>,
    /// All of these paths among the snapshot's backed-up paths, as restic's `--path`: a
    /// snapshot of `/srv/a /srv/b` matches `/srv/a`, and `/srv/a` with `/srv/b`, but not
    /// `/srv` nor `/srv/a/x`. Paths starting with `/` are compared after lexical
    /// normalization ([`normal_path`]), others (a database's location) as they are.
    pub paths: Vec<String>,
}

impl Filter {
    /// Whether it matches every snapshot.
    pub fn is_empty(&self) -> bool {
        self.host.is_none()
            && self.project.is_none()
            && self.tags.is_empty()
            && self.paths.is_empty()
    }

    /// "of host web1, of project shop, tagged daily or audit, with path /srv/a and /srv/b".
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(h) = &self.host {
            parts.push(format!("of host {h}"));
        }
        if let Some(p) = &self.project {
            parts.push(format!("of project {p}"));
        }
        if !self.tags.is_empty() {
            parts.push(format!("tagged {}", self.tags.join(" or ")));
        }
        if !self.paths.is_empty() {
            parts.push(format!("with path {}", self.paths.join(" and ")));
        }
        parts.join(", ")
    }

    pub fn matches(&self, s: &SnapshotFile) -> bool {
        self.host.as_ref().is_none_or(|h| &s.hostname == h)
            && self
                .project
                .as_ref()
                .is_none_or(|p| s.project.as_ref() == Some(p))
            && (self.tags.is_empty() || s.tags.iter().any(|t| self.tags.contains(t)))
            && self.paths.iter().all(|want| {
                let want = normal_path(want);
                s.paths.iter().any(|have| normal_path(have) == want)
            })
    }

    /// Refuses snapshot ids given together with a non-empty filter: a filter selects among
    /// all snapshots or narrows `latest`, and beside an id it could only be ignored. The
    /// error names both.
    pub fn check_specs<S: AsRef<str>>(&self, specs: &[S]) -> Result<()> {
        if self.is_empty() {
            return Ok(());
        }
        let ids: Vec<&str> = specs
            .iter()
            .map(AsRef::as_ref)
            .filter(|s| *s != LATEST)
            .collect();
        if ids.is_empty() {
            return Ok(());
        }
        Err(EngineError::Invalid(format!(
            "snapshot {} {} given together with a filter (snapshots {}): an id names its \
             snapshot, a filter selects among all of them; give either, or `latest` for the \
             newest snapshot the filter matches",
            if ids.len() == 1 { "id" } else { "ids" },
            ids.join(", "),
            self.describe()
        )))
    }
}

/// A path as snapshots record them: an absolute path without `.`, `..`, repeated or
/// trailing slashes (`/srv//a/./b/` is `/srv/a/b`); anything not starting with `/` (a
/// database location) is returned as it is.
pub fn normal_path(p: &str) -> String {
    if !p.starts_with('/') {
        return p.to_string();
    }
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    format!("/{}", parts.join("/"))
}

/// The snapshots `specs` name (`latest`: the newest `filter` matches; ids, prefixes), or
/// every readable one `filter` matches when none is given; each once, oldest first. Ids
/// beside a non-empty filter are refused ([`Filter::check_specs`]); `latest` that matches
/// nothing is an error naming the filter and how many snapshots there are. Every command
/// that takes snapshots resolves them here (or in [`find_in`] for one).
pub fn select(
    repo: &Repository,
    specs: &[String],
    filter: &Filter,
) -> Result<Vec<(SnapshotId, SnapshotFile)>> {
    filter.check_specs(specs)?;
    let mut list = if specs.is_empty() {
        let mut all = list_readable(repo)?;
        all.retain(|(_, s)| filter.matches(s));
        all
    } else {
        specs
            .iter()
            .map(|s| find_in(repo, s, filter))
            .collect::<Result<Vec<_>>>()?
    };
    let mut seen = std::collections::HashSet::new();
    list.retain(|(id, _)| seen.insert(*id));
    list.sort_by_key(|(id, s)| (s.time_ns, *id));
    Ok(list)
}

/// Snapshots that share the fields `by` names (`snapshots --group-by`, `--latest`).
#[derive(Debug, Clone)]
pub struct SnapshotGroup {
    /// What the group's snapshots share.
    pub key: GroupKey,
    /// Oldest first.
    pub snapshots: Vec<(SnapshotId, SnapshotFile)>,
}

/// Splits `list` into groups by `by` (the grouping `forget` uses), groups sorted by key,
/// each oldest first; with `latest`, only the N newest of each group are left.
pub fn group(
    list: Vec<(SnapshotId, SnapshotFile)>,
    by: GroupBy,
    latest: Option<usize>,
) -> Vec<SnapshotGroup> {
    let mut groups: std::collections::BTreeMap<GroupKey, Vec<(SnapshotId, SnapshotFile)>> =
        std::collections::BTreeMap::new();
    for entry in list {
        groups
            .entry(group_key(&entry.1, by))
            .or_default()
            .push(entry);
    }
    groups
        .into_iter()
        .map(|(key, mut snapshots)| {
            snapshots.sort_by_key(|(id, s)| (s.time_ns, *id));
            if let Some(n) = latest {
                let drop = snapshots.len().saturating_sub(n);
                snapshots.drain(..drop);
            }
            SnapshotGroup { key, snapshots }
        })
        .collect()
}

/// Puts a snapshot under a hold until `until` (a hold only ever extends: a later existing
/// hold stays), or releases its hold with `None`, recording the change (and `why`, if
/// given). Returns the snapshot's id afterwards (the same when nothing changed) and its hold.
pub fn hold(
    repo: &Repository,
    id: &SnapshotId,
    snap: &SnapshotFile,
    until: Option<i64>,
    why: Option<&str>,
) -> Result<(SnapshotId, Option<i64>)> {
    let new_until = match (snap.keep_until_ns, until) {
        (Some(old), Some(new)) => Some(old.max(new)),
        (_, u) => u,
    };
    let mut change = match new_until {
        Some(u) => format!(
            "hold set until {} UTC",
            crate::retention::format_time(u, &jiff::tz::TimeZone::UTC)
        ),
        None => "hold released".to_string(),
    };
    if let Some(why) = why {
        change.push_str(&format!(" ({why})"));
    }
    let new_id = rewrite(repo, id, snap, change, |s| s.keep_until_ns = new_until)?;
    Ok((new_id, new_until))
}

#[cfg(test)]
mod tests;
