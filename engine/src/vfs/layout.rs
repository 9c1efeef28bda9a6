//! The virtual directories above the snapshots: which name appears in which directory.
//!
//! ```text
//! snapshots/<time>-<shortid>/         every snapshot
//! projects/<project>/<time>/          snapshots of one project, and
//! projects/<project>/latest           a symlink to the newest of them
//! tags/<tag>/<time>/                  snapshots carrying one tag
//! hosts/<host>/<time>/                snapshots of one host
//! ```
//! Times are UTC (`2026-11-24T01:09:46Z`, [`time_name`]); where two snapshots in one
//! directory share a time, both names get `-<shortid>` appended. Pure: built from the
//! snapshot list alone.

use std::collections::BTreeMap;

use strata_format::id::SnapshotId;
use strata_format::snapshot::SnapshotFile;

/// What a name in a virtual directory stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Slot {
    /// Another virtual directory (an index into [`Layout::dirs`]).
    Dir(usize),
    /// The root of a snapshot (an index into the snapshot list given to [`Layout::build`]).
    Snapshot(usize),
    /// A symbolic link (`latest`), with its target and time.
    Symlink { target: String, time_ns: i64 },
}

/// One virtual directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Dir {
    /// Entries sorted by name, names unique.
    pub entries: Vec<(String, Slot)>,
    /// The time of the newest snapshot below (0 when there is none).
    pub time_ns: i64,
}

/// Every virtual directory; `dirs[0]` is the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Layout {
    pub dirs: Vec<Dir>,
}

/// The name of the symlink to a project's newest snapshot.
pub const LATEST: &str = "latest";

impl Layout {
    /// Lays out `snaps` (oldest first, as `snapshots::list` returns them), with the
    /// `latest` links only when `latest_links` (not while an unreadable snapshot may be the
    /// newest: `snapshots::find`).
    pub(super) fn build(snaps: &[(SnapshotId, SnapshotFile)], latest_links: bool) -> Layout {
        let mut layout = Layout {
            dirs: vec![Dir::default()],
        };
        let all: Vec<usize> = (0..snaps.len()).collect();
        let mut projects: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        let mut tags: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        let mut hosts: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, (_, s)) in snaps.iter().enumerate() {
            if let Some(p) = &s.project {
                push_once(projects.entry(dir_name(p)).or_default(), i);
            }
            for t in &s.tags {
                push_once(tags.entry(dir_name(t)).or_default(), i);
            }
            push_once(hosts.entry(dir_name(&s.hostname)).or_default(), i);
        }

        let listing = layout.add_dir(snapshot_dir(snaps, &all, true, false));
        let projects = layout.add_groups(snaps, projects, latest_links);
        let tags = layout.add_groups(snaps, tags, false);
        let hosts = layout.add_groups(snaps, hosts, false);
        let mut root = Dir {
            entries: vec![
                ("hosts".into(), Slot::Dir(hosts)),
                ("projects".into(), Slot::Dir(projects)),
                ("snapshots".into(), Slot::Dir(listing)),
                ("tags".into(), Slot::Dir(tags)),
            ],
            time_ns: 0,
        };
        root.time_ns = newest(snaps, &all);
        layout.dirs[0] = root;
        layout
    }

    fn add_dir(&mut self, dir: Dir) -> usize {
        self.dirs.push(dir);
        self.dirs.len() - 1
    }

    /// A directory with one subdirectory per group, each listing the group's snapshots.
    fn add_groups(
        &mut self,
        snaps: &[(SnapshotId, SnapshotFile)],
        groups: BTreeMap<String, Vec<usize>>,
        latest: bool,
    ) -> usize {
        let mut entries = Vec::new();
        let mut members = Vec::new();
        for (name, group) in groups {
            let dir = self.add_dir(snapshot_dir(snaps, &group, false, latest));
            entries.push((name, Slot::Dir(dir)));
            members.extend(group);
        }
        self.add_dir(Dir {
            entries,
            time_ns: newest(snaps, &members),
        })
    }
}

fn push_once(v: &mut Vec<usize>, i: usize) {
    if v.last() != Some(&i) {
        v.push(i);
    }
}

/// The time of the newest of `group` (0 for none).
fn newest(snaps: &[(SnapshotId, SnapshotFile)], group: &[usize]) -> i64 {
    group.iter().map(|&i| snaps[i].1.time_ns).max().unwrap_or(0)
}

/// A directory of snapshots named by time (always with the short id when `with_id`), plus
/// a `latest` symlink to the newest when `latest`.
fn snapshot_dir(
    snaps: &[(SnapshotId, SnapshotFile)],
    group: &[usize],
    with_id: bool,
    latest: bool,
) -> Dir {
    let time_names: Vec<String> = group
        .iter()
        .map(|&i| time_name(snaps[i].1.time_ns))
        .collect();
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for t in &time_names {
        *count.entry(t).or_default() += 1;
    }
    let mut entries: Vec<(String, Slot)> = group
        .iter()
        .zip(&time_names)
        .map(|(&i, t)| {
            let name = if with_id || count[t.as_str()] > 1 {
                format!("{t}-{}", snaps[i].0.short())
            } else {
                t.clone()
            };
            (name, Slot::Snapshot(i))
        })
        .collect();
    // Two snapshots of one second whose ids share 8 digits: the full id tells them apart.
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    for k in 1..entries.len() {
        if entries[k].0 == entries[k - 1].0 {
            for j in [k - 1, k] {
                if let Slot::Snapshot(i) = entries[j].1 {
                    let t = time_name(snaps[i].1.time_ns);
                    entries[j].0 = format!("{t}-{}", snaps[i].0.to_hex());
                }
            }
        }
    }
    // The newest: the last of the group (the list is oldest first).
    if let (true, Some(&last)) = (latest, group.last()) {
        let target = entries
            .iter()
            .find(|(_, e)| *e == Slot::Snapshot(last))
            .map(|(n, _)| n.clone())
            .expect("every member has an entry");
        entries.push((
            LATEST.into(),
            Slot::Symlink {
                target,
                time_ns: snaps[last].1.time_ns,
            },
        ));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    Dir {
        entries,
        time_ns: newest(snaps, group),
    }
}

/// A snapshot time as the layout names it: UTC to the second, `2026-11-24T01:09:46Z` (a
/// time before 1970 as 1970-01-01T00:00:00Z). The same text `strata snapshots` shows, so
/// that a name found there is a name in the mount.
pub fn time_name(ns: i64) -> String {
    let secs = ns.max(0) / 1_000_000_000;
    let t = jiff::Timestamp::from_second(secs).expect("i64 nanoseconds are within jiff's range");
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A project, tag or host name as one path component: `/` and NUL escaped as `%2F` and
/// `%00` (and `%` itself as `%25`, so that distinct names stay distinct); the empty name,
/// `.` and `..` are spelled with `%2E` or shown as `%`.
pub fn dir_name(name: &str) -> String {
    match name {
        "" => "%".into(),
        "." => "%2E".into(),
        ".." => "%2E%2E".into(),
        _ => name
            .replace('%', "%25")
            .replace('/', "%2F")
            .replace('\0', "%00"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_format::id::{BlobId, Digest};
    use strata_format::snapshot::{SnapshotSummary, SourceKind};

    const SEC: i64 = 1_000_000_000;

    fn snap(
        n: u8,
        secs: i64,
        host: &str,
        project: Option<&str>,
        tags: &[&str],
    ) -> (SnapshotId, SnapshotFile) {
        (
            SnapshotId(Digest::of_stored(&[n])),
            SnapshotFile {
                time_ns: secs * SEC + 123,
                hostname: host.into(),
                username: "root".into(),
                uid: 0,
                gid: 0,
                paths: vec!["/srv".into()],
                tags: tags.iter().map(|t| t.to_string()).collect(),
                project: project.map(Into::into),
                excludes: vec![],
                source: SourceKind::Files,
                source_meta: vec![],
                tree: BlobId(Digest::of_stored(b"tree")),
                parent: None,
                program_version: "test".into(),
                summary: SnapshotSummary::default(),
                keep_until_ns: None,
                original: None,
                rewrites: vec![],
            },
        )
    }

    fn dir<'a>(layout: &'a Layout, path: &[&str]) -> &'a Dir {
        let mut d = &layout.dirs[0];
        for name in path {
            match d.entries.iter().find(|(n, _)| n == name) {
                Some((_, Slot::Dir(i))) => d = &layout.dirs[*i],
                other => panic!("{name}: {other:?}"),
            }
        }
        d
    }

    fn names(d: &Dir) -> Vec<&str> {
        d.entries.iter().map(|(n, _)| n.as_str()).collect()
    }

    #[test]
    fn lays_out_snapshots_projects_tags_and_hosts() {
        let t = 1_795_000_000; // 2026-11-18T...
        let snaps = vec![
            snap(1, t, "web1", Some("shop"), &["daily"]),
            snap(2, t + 60, "web1", Some("shop"), &["daily", "weekly"]),
            snap(3, t + 60, "db1", Some("crm"), &["daily"]),
        ];
        let l = Layout::build(&snaps, true);
        let short = |i: usize| snaps[i].0.short();
        let time = |s: i64| time_name(s * SEC);
        assert_eq!(
            names(&l.dirs[0]),
            ["hosts", "projects", "snapshots", "tags"]
        );
        assert_eq!(l.dirs[0].time_ns, (t + 60) * SEC + 123);
        assert_eq!(names(dir(&l, &["snapshots"])), {
            let mut v = vec![
                format!("{}-{}", time(t), short(0)),
                format!("{}-{}", time(t + 60), short(1)),
                format!("{}-{}", time(t + 60), short(2)),
            ];
            v.sort();
            v
        });
        let shop = dir(&l, &["projects", "shop"]);
        assert_eq!(names(shop), [time(t), time(t + 60), LATEST.to_string()]);
        assert_eq!(
            shop.entries[2].1,
            Slot::Symlink {
                target: time(t + 60),
                time_ns: (t + 60) * SEC + 123
            }
        );
        assert_eq!(
            dir(&l, &["projects", "shop"]).entries[0].1,
            Slot::Snapshot(0)
        );
        // Two daily snapshots share a time: both get their short id.
        let daily = dir(&l, &["tags", "daily"]);
        let mut expected = vec![
            time(t),
            format!("{}-{}", time(t + 60), short(1)),
            format!("{}-{}", time(t + 60), short(2)),
        ];
        expected.sort();
        assert_eq!(names(daily), expected);
        assert_eq!(names(dir(&l, &["tags", "weekly"])), [time(t + 60)]);
        assert_eq!(names(dir(&l, &["hosts"])), ["db1", "web1"]);
        assert_eq!(names(dir(&l, &["hosts", "web1"])), [time(t), time(t + 60)]);
        assert_eq!(dir(&l, &["hosts", "db1"]).time_ns, (t + 60) * SEC + 123);
        assert!(names(dir(&l, &["projects"])) == ["crm", "shop"]);
    }

    #[test]
    fn no_latest_link_while_a_snapshot_is_unreadable() {
        let snaps = vec![snap(1, 1_000, "h", Some("shop"), &[])];
        let l = Layout::build(&snaps, false);
        assert_eq!(names(dir(&l, &["projects", "shop"])).len(), 1);
        assert!(!names(dir(&l, &["projects", "shop"])).contains(&LATEST));
    }

    #[test]
    fn an_empty_repository_has_the_four_empty_directories() {
        let l = Layout::build(&[], true);
        assert_eq!(
            names(&l.dirs[0]),
            ["hosts", "projects", "snapshots", "tags"]
        );
        for d in ["hosts", "projects", "snapshots", "tags"] {
            assert!(dir(&l, &[d]).entries.is_empty());
        }
    }

    #[test]
    fn times_are_named_in_utc_to_the_second() {
        assert_eq!(time_name(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            time_name(1_795_000_000 * SEC + 999_999_999),
            "2026-11-18T11:06:40Z"
        );
        assert_eq!(time_name(951_782_400 * SEC), "2000-02-29T00:00:00Z");
        assert_eq!(time_name(-5 * SEC), "1970-01-01T00:00:00Z");
        assert_eq!(time_name(i64::MAX), "2262-04-11T23:47:16Z");
    }

    #[test]
    fn names_that_are_not_path_components_are_escaped() {
        assert_eq!(dir_name("a/b"), "a%2Fb");
        assert_eq!(dir_name("100%"), "100%25");
        assert_eq!(dir_name(".."), "%2E%2E");
        assert_eq!(dir_name("."), "%2E");
        assert_eq!(dir_name(""), "%");
        assert_eq!(dir_name("x\0y"), "x%00y");
        assert_eq!(dir_name("plain-name"), "plain-name");
        // A snapshot tagged twice with names that escape alike appears once.
        let snaps = vec![snap(1, 1_000, "h", None, &["a/b", "a/b"])];
        assert_eq!(
            dir(&Layout::build(&snaps, true), &["tags", "a%2Fb"])
                .entries
                .len(),
            1
        );
    }
}
