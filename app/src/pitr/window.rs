//! The restorable window: from which moment to which a project's cluster can be recovered,
//! judged from its base backups and the segments its WAL archive holds.
//!
//! Pure: lists in, verdicts out (`pg verify`, health and their tests share it). A base
//! backup is *restorable* when every segment from its start segment to its stop segment is
//! archived; from it, recovery replays on without a gap up to its *reach*, the last segment
//! of the continuous run after its stop segment. A timeline's window runs from the stop
//! time of the oldest restorable base backup that reaches furthest to the push time of that
//! last segment (a commit after it may not be archived yet). Base backups cut off by a gap
//! before the furthest reach give earlier, separate windows.
//!
//! Base backups are judged on their own timeline only: a timeline forked later (a promoted
//! restore) has no window here until it has a base backup of its own.

use std::collections::BTreeMap;

use strata_db::wal::{SegmentName, SegmentSize};

use super::base::BaseBackup;
use super::{BaseBackupReport, Gap, WindowReport};
use crate::run::report::rfc3339;

/// One timeline's archived segments: segment number -> when it was pushed (Unix ns).
pub type Segments = BTreeMap<u64, i64>;

/// One timeline of a WAL archive, as read.
#[derive(Debug, Clone, Default)]
pub struct Line {
    /// The segment size its WAL files give (`None`: no segment).
    pub size: Option<SegmentSize>,
    pub pushed: Segments,
    /// Whether its history file is archived.
    pub history: bool,
}

/// What the window needs of a base backup (see [`super::base::BaseBackup`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseSpan {
    pub timeline: u32,
    /// The numbers of its start and stop segments.
    pub start: u64,
    pub stop: u64,
    /// When `pg_backup_stop` returned (Unix ns): the earliest time it restores to.
    pub stop_time_ns: i64,
}

/// A run of missing segments, by number, first to last (inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Missing {
    pub first: u64,
    pub last: u64,
}

/// What a base backup's WAL allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaseState {
    /// Its WAL from start to stop is archived; recovery replays on to segment `reach`,
    /// pushed at `reach_pushed_ns`; `gap_after` is the first gap after it, when a later
    /// segment is archived (recovery cannot reach that one from here).
    Restorable {
        reach: u64,
        reach_pushed_ns: i64,
        gap_after: Option<Missing>,
    },
    /// Segments between its start and stop segments are not archived: it cannot be
    /// restored (`missing` is never empty).
    Incomplete { missing: Vec<Missing> },
}

/// From when to when a timeline can be recovered (Unix ns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub earliest_ns: i64,
    pub latest_ns: i64,
    /// The index (in the list given) of the base backup it starts from.
    pub base: usize,
    /// The number of its last segment.
    pub reach: u64,
}

/// The runs of numbers in `from..=to` that `segments` does not hold.
fn missing_in(segments: &Segments, from: u64, to: u64) -> Vec<Missing> {
    let mut out = Vec::new();
    let mut next = from;
    for &n in segments.range(from..=to).map(|(n, _)| n) {
        if n > next {
            out.push(Missing {
                first: next,
                last: n - 1,
            });
        }
        next = n.saturating_add(1);
    }
    if next <= to {
        out.push(Missing {
            first: next,
            last: to,
        });
    }
    out
}

/// What `base`'s WAL allows, given its timeline's archived `segments`.
pub fn assess(base: &BaseSpan, segments: &Segments) -> BaseState {
    if base.stop < base.start {
        // Facts that do not agree are refused when read; never a window from them.
        return BaseState::Incomplete {
            missing: vec![Missing {
                first: base.start,
                last: base.start,
            }],
        };
    }
    let missing = missing_in(segments, base.start, base.stop);
    if !missing.is_empty() {
        return BaseState::Incomplete { missing };
    }
    let mut reach = base.stop;
    for &n in segments.range(base.stop..).map(|(n, _)| n).skip(1) {
        if n != reach + 1 {
            break;
        }
        reach = n;
    }
    let gap_after = segments
        .range(reach.saturating_add(1)..)
        .next()
        .map(|(&n, _)| Missing {
            first: reach + 1,
            last: n - 1,
        });
    BaseState::Restorable {
        reach,
        // Present: every number from start to reach was found above.
        reach_pushed_ns: segments.get(&reach).copied().unwrap_or(i64::MIN),
        gap_after,
    }
}

/// The windows of one timeline from its base backups and their states (as [`assess`]
/// gives them, same order): the one that reaches furthest first (from the oldest base
/// backup that reaches there), then earlier, separate ones, newest first. Empty when no
/// base backup is restorable.
pub fn windows(bases: &[(BaseSpan, BaseState)]) -> Vec<Window> {
    // reach -> the window from the oldest restorable base backup reaching it.
    let mut by_reach: BTreeMap<u64, Window> = BTreeMap::new();
    for (i, (base, state)) in bases.iter().enumerate() {
        let BaseState::Restorable {
            reach,
            reach_pushed_ns,
            ..
        } = state
        else {
            continue;
        };
        let candidate = Window {
            earliest_ns: base.stop_time_ns,
            // The stop segment is pushed before `pg_backup_stop` returns: with no WAL
            // after it, the window is the stop time alone, never inverted.
            latest_ns: (*reach_pushed_ns).max(base.stop_time_ns),
            base: i,
            reach: *reach,
        };
        by_reach
            .entry(*reach)
            .and_modify(|w| {
                if candidate.earliest_ns < w.earliest_ns {
                    *w = candidate;
                }
            })
            .or_insert(candidate);
    }
    by_reach.into_values().rev().collect()
}

/// The name of segment `number` of `timeline` (or `segment N` when no size is known).
pub fn segment_name(timeline: u32, number: u64, size: Option<SegmentSize>) -> String {
    size.and_then(|size| SegmentName::from_number(timeline, number, size).ok())
        .map(|s| s.to_string())
        .unwrap_or_else(|| format!("segment {number}"))
}

/// The base backups and windows of a project, for `pg verify`.
#[derive(Debug, Default)]
pub struct Judged {
    /// One per base backup, in the order given.
    pub reports: Vec<BaseBackupReport>,
    /// Per timeline: the windows, the one reaching furthest first.
    pub windows: BTreeMap<u32, Vec<WindowReport>>,
    /// Base backups that cannot be restored, or are not of the archive's cluster.
    pub problems: Vec<String>,
}

const SECOND: i64 = 1_000_000_000;

/// `ns` rounded up to a whole second (a restore to the second of a stop time that is not
/// whole would be before the stop).
fn ceil_second(ns: i64) -> i64 {
    match ns.rem_euclid(SECOND) {
        0 => ns,
        r => ns.saturating_add(SECOND - r),
    }
}

/// Judges each of `bases` against the archive's `lines` (of cluster `system_id`).
pub fn judge(bases: &[BaseBackup], lines: &BTreeMap<u32, Line>, system_id: Option<u64>) -> Judged {
    let mut out = Judged::default();
    let empty = Line::default();
    // Per timeline: (span, state, snapshot, size) of each base backup judged.
    let mut per_timeline: BTreeMap<u32, Vec<(BaseSpan, BaseState, String, SegmentSize)>> =
        BTreeMap::new();
    for b in bases {
        let short = b.snapshot.short();
        let mut report = BaseBackupReport {
            snapshot: b.snapshot.to_hex(),
            timeline: b.timeline,
            start_wal: String::new(),
            stop_wal: String::new(),
            stop_time: rfc3339(b.stop_time_ns),
            restorable: false,
            missing: Vec::new(),
            reaches: None,
            gap_after: None,
        };
        let numbered = b.size().and_then(|size| {
            let (start, stop) = (b.start_segment()?, b.stop_segment()?);
            let number = |s: SegmentName| {
                s.number(size)
                    .map_err(|e| crate::AppError::Invalid(e.to_string()))
            };
            report.start_wal = start.to_string();
            report.stop_wal = stop.to_string();
            Ok((size, number(start)?, number(stop)?))
        });
        let (size, start, stop) = match numbered {
            Ok(n) => n,
            Err(e) => {
                out.problems.push(format!("base backup {short}: {e}"));
                out.reports.push(report);
                continue;
            }
        };
        if let Some(id) = system_id.filter(|id| *id != b.system_id) {
            out.problems.push(format!(
                "base backup {short} is of the cluster with system identifier {}, but the \
                 archive is of cluster {id}: it cannot be restored with this archive",
                b.system_id
            ));
            out.reports.push(report);
            continue;
        }
        let line = lines.get(&b.timeline).unwrap_or(&empty);
        if line.size.is_some_and(|s| s != size) {
            out.problems.push(format!(
                "base backup {short} has {size} segments, but the archive of timeline {} has \
                 {}",
                b.timeline,
                line.size.map(|s| s.to_string()).unwrap_or_default()
            ));
            out.reports.push(report);
            continue;
        }
        let span = BaseSpan {
            timeline: b.timeline,
            start,
            stop,
            stop_time_ns: b.stop_time_ns,
        };
        let state = assess(&span, &line.pushed);
        let gap = |m: Missing| Gap {
            from: segment_name(b.timeline, m.first, Some(size)),
            to: segment_name(b.timeline, m.last, Some(size)),
            missing: m.last - m.first + 1,
        };
        match &state {
            BaseState::Restorable {
                reach, gap_after, ..
            } => {
                report.restorable = true;
                report.reaches = Some(segment_name(b.timeline, *reach, Some(size)));
                report.gap_after = gap_after.map(gap);
            }
            BaseState::Incomplete { missing } => {
                report.missing = missing.iter().copied().map(gap).collect();
                out.problems.push(format!(
                    "base backup {short} (stopped {}) cannot be restored: {} of its WAL ({} .. \
                     {}) {} not archived",
                    report.stop_time,
                    report
                        .missing
                        .iter()
                        .map(|g| format!("{} .. {}", g.from, g.to))
                        .collect::<Vec<_>>()
                        .join(", "),
                    report.start_wal,
                    report.stop_wal,
                    if report.missing.iter().map(|g| g.missing).sum::<u64>() == 1 {
                        "is"
                    } else {
                        "are"
                    }
                ));
            }
        }
        out.reports.push(report);
        per_timeline
            .entry(b.timeline)
            .or_default()
            .push((span, state, b.snapshot.to_hex(), size));
    }
    for (timeline, judged) in per_timeline {
        let pairs: Vec<(BaseSpan, BaseState)> = judged
            .iter()
            .map(|(span, state, _, _)| (span.clone(), state.clone()))
            .collect();
        let reports = windows(&pairs)
            .into_iter()
            .map(|w| WindowReport {
                earliest: rfc3339(ceil_second(w.earliest_ns)),
                latest: rfc3339(w.latest_ns.max(ceil_second(w.earliest_ns))),
                base_snapshot: judged[w.base].2.clone(),
                last_segment: segment_name(timeline, w.reach, Some(judged[w.base].3)),
            })
            .collect();
        out.windows.insert(timeline, reports);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Segments `numbers`, segment n pushed at 1000 + n.
    fn segs(numbers: impl IntoIterator<Item = u64>) -> Segments {
        numbers.into_iter().map(|n| (n, 1000 + n as i64)).collect()
    }

    fn base(start: u64, stop: u64, stop_time_ns: i64) -> BaseSpan {
        BaseSpan {
            timeline: 1,
            start,
            stop,
            stop_time_ns,
        }
    }

    fn judged(bases: &[BaseSpan], s: &Segments) -> Vec<(BaseSpan, BaseState)> {
        bases.iter().map(|b| (b.clone(), assess(b, s))).collect()
    }

    #[test]
    fn a_continuous_archive_restores_from_the_oldest_stop_to_the_last_push() {
        let s = segs(3..=20);
        let bases = [base(4, 5, 50), base(10, 11, 110)];
        let j = judged(&bases, &s);
        assert_eq!(
            j[0].1,
            BaseState::Restorable {
                reach: 20,
                reach_pushed_ns: 1020,
                gap_after: None
            }
        );
        assert_eq!(
            windows(&j),
            [Window {
                earliest_ns: 50,
                latest_ns: 1020,
                base: 0,
                reach: 20
            }]
        );
    }

    #[test]
    fn a_missing_stop_segment_makes_a_base_backup_incomplete_and_the_next_one_counts() {
        // Segment 5 (the older backup's stop) and 6 are lost.
        let s = segs((3..=4).chain(7..=20));
        let bases = [base(4, 5, 50), base(10, 11, 110)];
        let j = judged(&bases, &s);
        assert_eq!(
            j[0].1,
            BaseState::Incomplete {
                missing: vec![Missing { first: 5, last: 5 }]
            }
        );
        let w = windows(&j);
        assert_eq!(w.len(), 1);
        assert_eq!(
            (w[0].earliest_ns, w[0].latest_ns, w[0].base),
            (110, 1020, 1)
        );
        // Nothing archived at all past the start: the stop segment is missing too.
        let j = judged(&[base(4, 6, 50)], &segs([4]));
        assert_eq!(
            j[0].1,
            BaseState::Incomplete {
                missing: vec![Missing { first: 5, last: 6 }]
            }
        );
        assert!(windows(&j).is_empty());
    }

    #[test]
    fn a_gap_after_a_base_backup_ends_its_window_and_is_named() {
        // 13..=14 missing: the older backup reaches 12, the newer one 30.
        let s = segs((4..=12).chain(15..=30));
        let bases = [base(4, 5, 50), base(20, 21, 210)];
        let j = judged(&bases, &s);
        assert_eq!(
            j[0].1,
            BaseState::Restorable {
                reach: 12,
                reach_pushed_ns: 1012,
                gap_after: Some(Missing {
                    first: 13,
                    last: 14
                })
            }
        );
        let w = windows(&j);
        assert_eq!(
            w.iter()
                .map(|w| (w.earliest_ns, w.latest_ns))
                .collect::<Vec<_>>(),
            [(210, 1030), (50, 1012)],
            "the window reaching furthest first, the one cut off by the gap after it"
        );
    }

    #[test]
    fn no_base_backup_or_no_segment_gives_no_window() {
        assert!(windows(&[]).is_empty());
        let j = judged(&[base(4, 4, 40)], &Segments::new());
        assert!(matches!(j[0].1, BaseState::Incomplete { .. }));
        assert!(windows(&j).is_empty());
        // A backup whose start and stop are one segment, the last archived.
        let j = judged(&[base(4, 4, 40)], &segs([4]));
        assert_eq!(windows(&j)[0].latest_ns, 1004);
        // ...pushed before the backup stopped (pg_backup_stop waits for it): the window
        // is the stop time alone, not inverted.
        let j = judged(&[base(4, 4, 2000)], &segs([4]));
        let w = windows(&j)[0];
        assert_eq!((w.earliest_ns, w.latest_ns), (2000, 2000));
    }
}
