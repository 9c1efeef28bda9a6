//! What a point-in-time restore needs, decided from lists alone (no repository): the target
//! time ([`parse_target_time`]), the timelines a recovery to a timeline passes through
//! ([`TimelinePath`], from its history file), the base backup to start from
//! ([`choose_base`]) and the archived segments it replays ([`needed_segments`]), refused
//! with the first missing segment named before anything is restored.
//!
//! Which timeline's file a recovery reads for a segment follows PostgreSQL
//! (`XLogFileReadAnyTLI`): the newest timeline of the path that began at or before the
//! segment. The segment holding a switch point is read from the child timeline, whose copy
//! starts with the parent's WAL up to the switch.

use std::collections::BTreeMap;

use jiff::Timestamp;
use strata_db::wal::{History, Lsn, SegmentName, SegmentSize};

use super::base::BaseBackup;
use crate::{AppError, Result};

/// Parses a target time, which must say its offset from UTC: `2026-12-06 14:03:27+01`,
/// `2026-12-06T13:03:27.25Z`, `2026-12-06 14:03:27+01:00`. A time without one is refused
/// (the server's, the client's and the archive's zones may all differ, and an hour off is
/// a restore to the wrong state).
pub fn parse_target_time(text: &str) -> Result<Timestamp> {
    let trimmed = text.trim();
    match trimmed.parse::<Timestamp>() {
        Ok(t) => Ok(t),
        Err(e) => {
            let civil = trimmed.parse::<jiff::civil::DateTime>().is_ok()
                || trimmed.parse::<jiff::civil::Date>().is_ok();
            Err(AppError::Invalid(if civil {
                format!(
                    "target time {text:?} has no time zone offset: say which zone it is in, \
                     e.g. \"{trimmed}+01\" or \"{trimmed}Z\" (UTC)"
                )
            } else {
                format!(
                    "target time {text:?} is not a time ({e}): write it as \"2026-12-06 \
                     14:03:27+01\" (date, time, offset from UTC or Z)"
                )
            }))
        }
    }
}

/// `t` as `recovery_target_time` takes it: UTC, cut to the microsecond PostgreSQL keeps.
/// Cut, not rounded: a commit (microseconds too) is at or before the cut time exactly when
/// it is at or before `t`.
pub fn recovery_time_text(t: Timestamp) -> String {
    let micros = t.as_microsecond();
    let cut = Timestamp::from_microsecond(micros).unwrap_or(t);
    cut.strftime("%Y-%m-%d %H:%M:%S%.6f+00").to_string()
}

/// One timeline of a [`TimelinePath`]: its WAL from `begin` (where its parent switched to
/// it) to `end` (where its child of the path left it; `None` for the target timeline).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub timeline: u32,
    pub begin: Lsn,
    pub end: Option<Lsn>,
}

/// The timelines a recovery to one timeline passes through, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelinePath {
    spans: Vec<Span>,
}

impl TimelinePath {
    /// The path to `timeline`: its `history` (every timeline after 1 has one; a history
    /// of another timeline is refused).
    pub fn new(timeline: u32, history: Option<&History>) -> Result<TimelinePath> {
        match (timeline, history) {
            (0, _) => Err(AppError::Invalid("timeline 0 does not exist".into())),
            (1, _) => Ok(TimelinePath {
                spans: vec![Span {
                    timeline: 1,
                    begin: Lsn(0),
                    end: None,
                }],
            }),
            (t, None) => Err(AppError::Invalid(format!(
                "timeline {t} needs its history file ({t:08X}.history) to be followed"
            ))),
            (t, Some(h)) if h.timeline() != t => Err(AppError::Invalid(format!(
                "the history of timeline {} is not that of timeline {t}",
                h.timeline()
            ))),
            (t, Some(h)) => {
                let mut spans = Vec::with_capacity(h.entries().len() + 1);
                let mut begin = Lsn(0);
                for e in h.entries() {
                    spans.push(Span {
                        timeline: e.parent,
                        begin,
                        end: Some(e.switch),
                    });
                    begin = e.switch;
                }
                spans.push(Span {
                    timeline: t,
                    begin,
                    end: None,
                });
                Ok(TimelinePath { spans })
            }
        }
    }

    /// The timeline recovered to.
    pub fn target(&self) -> u32 {
        self.spans.last().map_or(1, |s| s.timeline)
    }

    pub fn spans(&self) -> &[Span] {
        &self.spans
    }

    /// The span of `timeline`, if it is on the path.
    pub fn span(&self, timeline: u32) -> Option<&Span> {
        self.spans.iter().find(|s| s.timeline == timeline)
    }

    /// Whether a recovery along this path can start from `b`: taken on a timeline of the
    /// path, and consistent (its stop LSN) before the path leaves that timeline.
    pub fn admits(&self, b: &BaseBackup) -> bool {
        self.span(b.timeline)
            .is_some_and(|s| s.end.is_none_or(|end| b.stop_lsn <= end))
    }

    /// The timeline whose file of segment `number` a recovery reads: the newest of the path
    /// that began in or before it.
    pub fn timeline_of_segment(&self, number: u64, size: SegmentSize) -> u32 {
        let seg = u64::from(size.get());
        self.spans
            .iter()
            .rev()
            .find(|s| s.begin.0 / seg <= number)
            .map_or(1, |s| s.timeline)
    }

    /// The path in words: "1 → 2 (at 0/5000060)".
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for (i, s) in self.spans.iter().enumerate() {
            if i > 0 {
                out.push_str(&format!(" -> {} (from {})", s.timeline, s.begin));
            } else {
                out.push_str(&s.timeline.to_string());
            }
        }
        out
    }
}

/// Unix nanoseconds as RFC 3339 UTC, to the second, for messages.
fn shown_time(ns: i64) -> String {
    Timestamp::from_nanosecond(i128::from(ns))
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%SZ").to_string())
        .unwrap_or_else(|_| format!("{ns} ns"))
}

/// Whether `b` can start a recovery to `target_ns` (`None`: the end of the archive) along
/// `path` (`None`: any timeline); else why not.
pub fn check_base(
    b: &BaseBackup,
    path: Option<&TimelinePath>,
    target_ns: Option<i64>,
) -> Result<()> {
    if let Some(t) = target_ns {
        if b.stop_time_ns > t {
            return Err(AppError::Invalid(format!(
                "base backup {} ended at {}, after the target time {}: a recovery cannot go \
                 back before the end of its base backup",
                b.snapshot.short(),
                shown_time(b.stop_time_ns),
                shown_time(t)
            )));
        }
    }
    if let Some(p) = path {
        if !p.admits(b) {
            return Err(AppError::Invalid(format!(
                "base backup {} (timeline {}, consistent at {}) is not on the way to timeline \
                 {} (path {}): its timeline is not an ancestor, or the path left it before the \
                 backup ended",
                b.snapshot.short(),
                b.timeline,
                b.stop_lsn,
                p.target(),
                p.describe()
            )));
        }
    }
    Ok(())
}

/// The newest of `bases` (oldest first, as `base::of_project` gives them) that can start a
/// recovery to `target_ns` along `path` (see [`check_base`]); else why none can.
pub fn choose_base<'a>(
    bases: &'a [BaseBackup],
    path: Option<&TimelinePath>,
    target_ns: Option<i64>,
) -> Result<&'a BaseBackup> {
    if let Some(b) = bases
        .iter()
        .rev()
        .find(|b| check_base(b, path, target_ns).is_ok())
    {
        return Ok(b);
    }
    let Some(oldest) = bases.first() else {
        return Err(AppError::Invalid(
            "the project has no base backup: take one with `strata pg basebackup` (a restore \
             starts from a base backup and replays archived WAL from there)"
                .into(),
        ));
    };
    let before: Vec<&BaseBackup> = bases
        .iter()
        .filter(|b| target_ns.is_none_or(|t| b.stop_time_ns <= t))
        .collect();
    if before.is_empty() {
        return Err(AppError::Invalid(format!(
            "no base backup ended before the target time {}: the oldest ended at {} (snapshot \
             {}); the earliest restorable time is its end",
            target_ns.map(shown_time).unwrap_or_default(),
            shown_time(oldest.stop_time_ns),
            oldest.snapshot.short()
        )));
    }
    let path = path.map(TimelinePath::describe).unwrap_or_default();
    Err(AppError::Invalid(format!(
        "no base backup before the target is on the way to the target timeline (path \
         {path}): those before it are of timelines {}; choose another --timeline, or take a \
         base backup on this one",
        before
            .iter()
            .map(|b| b.timeline.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )))
}

/// The segments a recovery replays, first to last (each on the timeline it is read from).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Needed {
    pub first: SegmentName,
    pub last: SegmentName,
    pub count: u64,
    /// The first segment missing after `last` (before the last archived), if any. The push
    /// times only bound where the target is: recovery stops at the first commit after the
    /// target, which may lie beyond `last`; if none is committed before this gap, recovery
    /// ends before the target (and `--start` reports it).
    pub gap_after: Option<SegmentName>,
}

/// Archived segments: (timeline, segment number) → when it was pushed (Unix ns).
pub type Archived = BTreeMap<(u32, u64), i64>;

/// The segments a recovery from `base` along `path` to `target_ns` (`None`: to the end of
/// the archive) replays: from the base backup's start segment at least to its stop
/// segment, and on to the first segment pushed at or after the target time. Refused, with
/// the missing segments named (first..last of each run), when any of them is not in
/// `archived`; refused too when no segment was pushed at or after the target time (its
/// WAL is not archived yet).
pub fn needed_segments(
    path: &TimelinePath,
    base: &BaseBackup,
    target_ns: Option<i64>,
    archived: &Archived,
) -> Result<Needed> {
    let size = base.size()?;
    let number = |s: SegmentName| s.number(size).map_err(|e| AppError::Invalid(e.to_string()));
    let start = number(base.start_segment()?)?;
    let stop = number(base.stop_segment()?)?;
    let name = |n: u64| -> String {
        SegmentName::from_number(path.timeline_of_segment(n, size), n, size)
            .map(|s| s.to_string())
            .unwrap_or_else(|_| format!("segment {n}"))
    };
    // The last segment archived on the path (each counted on the timeline read for it).
    let last_archived = archived
        .iter()
        .filter(|((t, n), _)| *n >= start && path.timeline_of_segment(*n, size) == *t)
        .map(|((_, n), _)| *n)
        .max();
    let mut missing: Vec<(u64, u64)> = Vec::new();
    let mut end = None;
    if let Some(last) = last_archived {
        for n in start..=last {
            match archived.get(&(path.timeline_of_segment(n, size), n)) {
                Some(pushed) => {
                    let reached = match target_ns {
                        Some(t) => *pushed >= t,
                        None => n == last,
                    };
                    if n >= stop && reached {
                        end = Some(n);
                        break;
                    }
                }
                None => match missing.last_mut() {
                    Some((_, to)) if *to + 1 == n => *to = n,
                    _ => missing.push((n, n)),
                },
            }
        }
    }
    if !missing.is_empty() {
        let runs: Vec<String> = missing
            .iter()
            .map(|(from, to)| {
                let count = to - from + 1;
                format!(
                    "{}..{} ({count} segment{})",
                    name(*from),
                    name(*to),
                    if count == 1 { "" } else { "s" }
                )
            })
            .collect();
        return Err(AppError::Invalid(format!(
            "the WAL archive has a gap a recovery from base backup {} needs: missing {}; \
             nothing was restored (`strata pg verify` lists the archive; take a new base \
             backup after the gap to restore to later times)",
            base.snapshot.short(),
            runs.join(", ")
        )));
    }
    let Some(end) = end else {
        let newest = archived
            .iter()
            .filter(|((t, n), _)| path.timeline_of_segment(*n, size) == *t)
            .map(|(_, p)| *p)
            .max();
        return Err(AppError::Invalid(match (target_ns, last_archived) {
            (Some(t), Some(_)) => format!(
                "WAL after {} is not archived yet (the newest segment on this timeline was \
                 pushed at {}): run `SELECT pg_switch_wal()` on the server or wait for \
                 archive_timeout, then restore again",
                shown_time(t),
                newest.map(shown_time).unwrap_or_default()
            ),
            _ => format!(
                "the WAL archive does not hold base backup {}'s segments {}..{} yet: the \
                 backup is not complete",
                base.snapshot.short(),
                name(start),
                name(stop)
            ),
        }));
    };
    let seg = |n: u64| {
        SegmentName::from_number(path.timeline_of_segment(n, size), n, size)
            .map_err(|e| AppError::Invalid(e.to_string()))
    };
    let gap_after = match last_archived {
        Some(last) => (end + 1..last)
            .find(|n| !archived.contains_key(&(path.timeline_of_segment(*n, size), *n)))
            .map(seg)
            .transpose()?,
        None => None,
    };
    Ok(Needed {
        first: seg(start)?,
        last: seg(end)?,
        count: end - start + 1,
        gap_after,
    })
}

#[cfg(test)]
#[path = "timeline_tests.rs"]
mod tests;
