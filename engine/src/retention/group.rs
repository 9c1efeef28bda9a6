//! Grouping snapshots: the fields whose values split them into groups decided apart.

use std::fmt;

use serde::Serialize;
use strata_format::snapshot::SnapshotFile;

/// Which snapshot fields split snapshots into groups that are decided separately.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupBy {
    /// Group by host name.
    pub host: bool,
    /// Group by the set of backed-up paths.
    pub paths: bool,
    /// Group by project.
    pub project: bool,
    /// Group by the set of tags.
    pub tags: bool,
}

/// Host, paths and project.
impl Default for GroupBy {
    fn default() -> Self {
        GroupBy {
            host: true,
            paths: true,
            project: true,
            tags: false,
        }
    }
}

impl GroupBy {
    /// Reads a comma-separated list of `host`, `paths`, `project` and `tags` (the default is
    /// `host,paths,project`); the empty string puts every snapshot into one group.
    pub fn parse(s: &str) -> Result<GroupBy, super::ParseError> {
        Self::read(s).map_err(super::ParseError)
    }

    fn read(s: &str) -> Result<GroupBy, String> {
        let mut by = GroupBy {
            host: false,
            paths: false,
            project: false,
            tags: false,
        };
        for field in s.split(',').map(str::trim).filter(|f| !f.is_empty()) {
            match field {
                "host" => by.host = true,
                "paths" => by.paths = true,
                "project" => by.project = true,
                "tags" => by.tags = true,
                other => {
                    return Err(format!(
                        "cannot group by `{other}`; use a comma-separated list of host, \
                         paths, project and tags, or an empty string for one group"
                    ))
                }
            }
        }
        Ok(by)
    }
}

/// Writes the fields as [`GroupBy::parse`] reads them (`host,paths,project`).
impl fmt::Display for GroupBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fields = [
            (self.host, "host"),
            (self.paths, "paths"),
            (self.project, "project"),
            (self.tags, "tags"),
        ];
        let names: Vec<&str> = fields
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, n)| *n)
            .collect();
        f.write_str(&names.join(","))
    }
}

/// The fields a group shares; a field is `None` when snapshots are not grouped by it.
/// Paths and tags are sorted and deduplicated, so their order does not split groups.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct GroupKey {
    /// The host name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The backed-up paths, sorted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
    /// The project; `Some(None)` is the group of snapshots without one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<Option<String>>,
    /// The tags, sorted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
}

/// `host=a paths=[/x,/y] project=p tags=[t]`, leaving out fields not grouped by; a snapshot
/// without a project shows `project=(none)`, a key without fields `(all snapshots)`.
impl fmt::Display for GroupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(host) = &self.hostname {
            parts.push(format!("host={host}"));
        }
        if let Some(paths) = &self.paths {
            parts.push(format!("paths=[{}]", paths.join(",")));
        }
        if let Some(project) = &self.project {
            parts.push(format!(
                "project={}",
                project.as_deref().unwrap_or("(none)")
            ));
        }
        if let Some(tags) = &self.tags {
            parts.push(format!("tags=[{}]", tags.join(",")));
        }
        if parts.is_empty() {
            return f.write_str("(all snapshots)");
        }
        f.write_str(&parts.join(" "))
    }
}

pub(super) fn sorted_set(items: &[String]) -> Vec<String> {
    let mut v = items.to_vec();
    v.sort();
    v.dedup();
    v
}

/// The group `s` belongs to under `by`.
pub fn group_key(s: &SnapshotFile, by: GroupBy) -> GroupKey {
    GroupKey {
        hostname: by.host.then(|| s.hostname.clone()),
        paths: by.paths.then(|| sorted_set(&s.paths)),
        project: by.project.then(|| s.project.clone()),
        tags: by.tags.then(|| sorted_set(&s.tags)),
    }
}
