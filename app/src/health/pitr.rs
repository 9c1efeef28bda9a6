//! The `wal-archive` check of a project with `[projects.NAME.pitr]`: whether its cluster is
//! restorable to a recent second. Unlike the other checks it reads the repository (its WAL
//! archive and base backups, as `pg verify` does) through [`super::SpaceProbe::pitr`], so a
//! probe that does not read repositories gives no item.
//!
//! | finding | status |
//! |---|---|
//! | the archive cannot be read | unknown |
//! | no base backup (nothing restorable) | warning |
//! | a gap (or a base backup whose WAL is missing) after the oldest base backup's start | warning |
//! | the newest segment pushed longer ago than `max-wal-age` (when set), or none | warning |
//! | `pg_stat_archiver` says the last push failed (the server answered) | warning |
//! | otherwise | ok |

use std::time::Duration;

use super::{human_age, Check, Item};
use crate::config::Project;
use crate::ops::Status;
use crate::pitr::ArchiveReport;

/// What the check judges of a project's WAL archive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PitrFacts {
    /// When the newest segment was pushed (Unix ns); `None`: no segment archived.
    pub newest_push_ns: Option<i64>,
    pub base_backups: usize,
    /// Gaps a recovery from a kept base backup would meet, and base backups whose WAL is
    /// not all archived, for people.
    pub breaks: Vec<String>,
    /// What `pg_stat_archiver` says of a failing `archive_command`, when the server
    /// answered and its last push failed (a server that cannot be asked adds nothing: the
    /// archive's own facts above still judge it).
    pub archiver_failing: Option<String>,
}

impl PitrFacts {
    /// The facts of `pg verify`'s report: gaps at or after the oldest base backup's start
    /// (on its timeline; every gap of a later timeline), and base backups not restorable.
    pub fn of_report(r: &ArchiveReport) -> PitrFacts {
        let newest_push_ns = r
            .timelines
            .iter()
            .filter_map(|t| t.last_pushed.as_deref())
            .filter_map(|t| t.parse::<jiff::Timestamp>().ok())
            .map(|t| t.as_nanosecond() as i64)
            .max();
        let mut breaks = Vec::new();
        if let Some(oldest) = r
            .base_backups
            .iter()
            .min_by(|a, b| a.start_wal.cmp(&b.start_wal))
        {
            for t in &r.timelines {
                for g in &t.gaps {
                    let after = t.timeline > oldest.timeline
                        || (t.timeline == oldest.timeline && g.to >= oldest.start_wal);
                    if after {
                        breaks.push(format!(
                            "timeline {}: {} .. {} missing ({} segment{})",
                            t.timeline,
                            g.from,
                            g.to,
                            g.missing,
                            if g.missing == 1 { "" } else { "s" }
                        ));
                    }
                }
            }
        }
        for b in r.base_backups.iter().filter(|b| !b.restorable) {
            breaks.push(format!(
                "base backup {} cannot be restored (its WAL {} .. {} is not all archived)",
                &b.snapshot[..8.min(b.snapshot.len())],
                b.start_wal,
                b.stop_wal
            ));
        }
        PitrFacts {
            newest_push_ns,
            base_backups: r.base_backups.len(),
            breaks,
            archiver_failing: None,
        }
    }
}

/// Judges `project`'s WAL archive from `facts` (or why they could not be read) at `now_ns`
/// (see the module docs); no item for a project without `pitr`.
pub fn judge(project: &Project, facts: Result<&PitrFacts, &str>, now_ns: i64) -> Vec<Item> {
    let Some(cluster) = &project.pitr else {
        return Vec::new();
    };
    let item = |status: Status, message: String, value: Option<f64>| Item {
        project: project.name.clone(),
        repository: Some(project.primary().to_string()),
        source: None,
        check: Check::WalArchive,
        status,
        message,
        value,
    };
    let facts = match facts {
        Ok(f) => f,
        Err(e) => {
            return vec![item(
                Status::Unknown,
                format!("the WAL archive cannot be read: {e}"),
                None,
            )]
        }
    };
    let value = facts.newest_push_ns.map(|t| t as f64 / 1e9);
    let mut items = Vec::new();
    if facts.base_backups == 0 {
        items.push(item(
            Status::Warning,
            format!(
                "no base backup: nothing is restorable (`strata pg basebackup --project {}`)",
                project.name
            ),
            value,
        ));
    }
    for b in &facts.breaks {
        items.push(item(
            Status::Warning,
            format!("the WAL archive is not continuous after the oldest base backup: {b}"),
            value,
        ));
    }
    if let Some(f) = &facts.archiver_failing {
        items.push(item(
            Status::Warning,
            format!("archiving is failing: {f}"),
            value,
        ));
    }
    let age = facts
        .newest_push_ns
        .map(|t| Duration::from_nanos(now_ns.saturating_sub(t).max(0) as u64));
    match (age, cluster.max_wal_age) {
        (None, _) => items.push(item(
            Status::Warning,
            "no WAL segment archived yet: is archive_command set?".into(),
            None,
        )),
        (Some(age), Some(max)) if age > max => items.push(item(
            Status::Warning,
            format!(
                "the newest archived segment was pushed {} ago (max-wal-age {}): is archiving \
                 failing? (`strata pg check --project {}`)",
                human_age(age),
                human_age(max),
                project.name
            ),
            value,
        )),
        (Some(age), max) if items.is_empty() => items.push(item(
            Status::Ok,
            format!(
                "newest segment pushed {} ago{}; {} base backup{}, continuous after the oldest",
                human_age(age),
                max.map(|m| format!(" (max-wal-age {})", human_age(m)))
                    .unwrap_or_default(),
                facts.base_backups,
                if facts.base_backups == 1 { "" } else { "s" }
            ),
            value,
        )),
        _ => {}
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PitrCluster;

    const NOW: i64 = 1_796_612_402_000_000_000;
    const MIN: i64 = 60_000_000_000;

    fn project(max_wal_age: Option<Duration>) -> Project {
        Project {
            name: "shop".into(),
            schedule: None,
            sources: vec![],
            repositories: vec!["main".into()],
            retention: Default::default(),
            notify: vec![],
            max_age: None,
            restore_test: None,
            check: None,
            prune: None,
            before: None,
            after: None,
            timeout: None,
            pitr: Some(PitrCluster {
                data_dir: "/pg".into(),
                url: PitrCluster::DEFAULT_URL.into(),
                password: None,
                stop_timeout: PitrCluster::DEFAULT_STOP_TIMEOUT,
                max_wal_age,
                prefetch: 0,
                restore_test_ago: PitrCluster::DEFAULT_RESTORE_TEST_AGO,
            }),
        }
    }

    fn statuses(items: &[Item]) -> Vec<Status> {
        items.iter().map(|i| i.status).collect()
    }

    #[test]
    fn an_old_newest_segment_a_gap_and_no_base_backup_each_warn() {
        let p = project(Some(Duration::from_secs(15 * 60)));
        let fine = PitrFacts {
            newest_push_ns: Some(NOW - 5 * MIN),
            base_backups: 2,
            breaks: vec![],
            archiver_failing: None,
        };
        let items = judge(&p, Ok(&fine), NOW);
        assert_eq!(statuses(&items), [Status::Ok]);
        assert_eq!(items[0].check, Check::WalArchive);
        assert!(items[0].message.contains("5m ago"), "{}", items[0].message);

        let stale = PitrFacts {
            newest_push_ns: Some(NOW - 20 * MIN),
            ..fine.clone()
        };
        let items = judge(&p, Ok(&stale), NOW);
        assert_eq!(statuses(&items), [Status::Warning]);
        assert!(
            items[0].message.contains("20m ago (max-wal-age 15m)"),
            "{}",
            items[0].message
        );
        // Without max-wal-age the age is not judged.
        assert_eq!(
            statuses(&judge(&project(None), Ok(&stale), NOW)),
            [Status::Ok]
        );

        let gap = PitrFacts {
            breaks: vec!["timeline 1: A .. B missing (2 segments)".into()],
            ..fine.clone()
        };
        let items = judge(&p, Ok(&gap), NOW);
        assert_eq!(statuses(&items), [Status::Warning]);
        assert!(
            items[0].message.contains("not continuous"),
            "{}",
            items[0].message
        );

        // The server says its last push failed: a warning naming what it said, even
        // while the archive itself still looks fresh.
        let failing = PitrFacts {
            archiver_failing: Some("pg_stat_archiver: the last push, of X, failed".into()),
            ..fine.clone()
        };
        let items = judge(&p, Ok(&failing), NOW);
        assert_eq!(statuses(&items), [Status::Warning]);
        assert!(
            items[0]
                .message
                .contains("archiving is failing: pg_stat_archiver"),
            "{}",
            items[0].message
        );

        let none = PitrFacts {
            base_backups: 0,
            ..fine.clone()
        };
        let items = judge(&p, Ok(&none), NOW);
        assert_eq!(statuses(&items), [Status::Warning]);
        assert!(
            items[0].message.contains("no base backup"),
            "{}",
            items[0].message
        );

        let empty = PitrFacts::default();
        assert!(statuses(&judge(&p, Ok(&empty), NOW))
            .iter()
            .all(|s| *s == Status::Warning));
        assert_eq!(statuses(&judge(&p, Err("locked"), NOW)), [Status::Unknown]);
        let mut plain = project(None);
        plain.pitr = None;
        assert!(judge(&plain, Ok(&fine), NOW).is_empty(), "no pitr, no item");
    }

    #[test]
    fn only_gaps_after_the_oldest_base_backups_start_break_the_archive() {
        use crate::pitr::{BaseBackupReport, Gap, TimelineReport};
        let gap = |from: &str, to: &str| Gap {
            from: from.into(),
            to: to.into(),
            missing: 1,
        };
        let report = ArchiveReport {
            project: "shop".into(),
            repository: "main".into(),
            system_id: None,
            timelines: vec![TimelineReport {
                timeline: 1,
                segments: 10,
                first: None,
                last: None,
                gaps: vec![
                    gap("000000010000000000000002", "000000010000000000000002"),
                    gap("000000010000000000000009", "000000010000000000000009"),
                ],
                history: false,
                last_pushed: Some("2026-12-07T03:00:00Z".into()),
                window: None,
                earlier_windows: vec![],
            }],
            base_backups: vec![BaseBackupReport {
                snapshot: "abcdef0123".into(),
                timeline: 1,
                start_wal: "000000010000000000000005".into(),
                stop_wal: "000000010000000000000005".into(),
                stop_time: String::new(),
                restorable: true,
                missing: vec![],
                reaches: None,
                gap_after: None,
            }],
            backup_labels: 0,
            partial: 0,
            problems: vec![],
            notes: vec![],
        };
        let facts = PitrFacts::of_report(&report);
        assert_eq!(facts.breaks.len(), 1, "{:?}", facts.breaks);
        assert!(facts.breaks[0].contains("000000010000000000000009"));
        assert_eq!(facts.newest_push_ns, Some(NOW - 2_000_000_000));
        assert_eq!(facts.base_backups, 1);
    }
}
