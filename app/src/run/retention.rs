//! A project's retention in one repository: the policy planned over the project's
//! snapshots there (grouped as `forget` groups them by default: host, paths, project),
//! the removals forgotten, and the survivors a `hold-<rule>` names held for its span.
//!
//! A survivor is held only once its rule's period is over (`hold-monthly`: once the month
//! of the snapshot has ended at "now"): during a month, the newest snapshot is the month's
//! survivor only until the next day's replaces it, and holding each of them would keep
//! every daily snapshot for years. `hold-last` holds at once (it has no period).

use jiff::tz::TimeZone;
use strata_engine::retention::{self, GroupBy, PlanOptions, Reason};
use strata_engine::{snapshots, Repository};

use super::report::{rfc3339, HeldItem, RetentionItem};
use crate::config::{KeepRule, Retention};

/// What retention did (or, in a dry run, would do) in one repository.
#[derive(Debug, Default)]
pub(crate) struct RetentionOutcome {
    pub forgotten: Vec<RetentionItem>,
    pub held: Vec<(HeldItem, i64)>,
}

/// Whether the period of `rule` that holds `t_ns` is over at `now_ns`, in `tz`.
fn period_over(rule: KeepRule, t_ns: i64, now_ns: i64, tz: &TimeZone) -> bool {
    let at = |ns: i64| {
        jiff::Timestamp::from_nanosecond(i128::from(ns))
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
            .to_zoned(tz.clone())
    };
    let (t, now) = (at(t_ns), at(now_ns));
    let week = |z: &jiff::Zoned| {
        let w = z.date().iso_week_date();
        (w.year(), w.week())
    };
    match rule {
        KeepRule::Last => true,
        KeepRule::Hourly => (t.date(), t.hour()) != (now.date(), now.hour()),
        KeepRule::Daily => t.date() != now.date(),
        KeepRule::Weekly => week(&t) != week(&now),
        KeepRule::Monthly => (t.year(), t.month()) != (now.year(), now.month()),
        KeepRule::Yearly => t.year() != now.year(),
    }
}

/// Whether `reason` is the one `rule` gives.
fn is_rule(reason: &Reason, rule: KeepRule) -> bool {
    matches!(
        (reason, rule),
        (Reason::Last(_), KeepRule::Last)
            | (Reason::Hourly, KeepRule::Hourly)
            | (Reason::Daily, KeepRule::Daily)
            | (Reason::Weekly, KeepRule::Weekly)
            | (Reason::Monthly, KeepRule::Monthly)
            | (Reason::Yearly, KeepRule::Yearly)
    )
}

/// Applies `policy` to `project`'s snapshots in `repo` (opened for forget), at `now_ns`.
/// With `dry_run` nothing is changed. A policy that keeps nothing by rule (no `keep-*`)
/// thins nothing.
pub(crate) fn apply(
    repo: &Repository,
    repository: &str,
    project: &str,
    policy: &Retention,
    now_ns: i64,
    dry_run: bool,
) -> Result<RetentionOutcome, String> {
    let mut out = RetentionOutcome::default();
    if policy.keep.is_empty() {
        return Ok(out);
    }
    let tz = TimeZone::system();
    let all: Vec<_> = snapshots::list(repo)
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|(_, s)| s.project.as_deref() == Some(project))
        .collect();
    let plan = retention::plan(
        &all,
        &PlanOptions {
            policy: &policy.keep,
            group_by: GroupBy::default(),
            now_ns,
            tz: &tz,
            allow_empty: false,
        },
    );
    let remove: Vec<_> = plan.remove().collect();
    for id in &remove {
        out.forgotten.push(RetentionItem {
            repository: repository.to_string(),
            snapshot_id: id.to_hex(),
            reasons: vec!["no rule keeps it".to_string()],
        });
    }
    if !dry_run && !remove.is_empty() {
        snapshots::forget(repo, &remove).map_err(|e| e.to_string())?;
    }
    for d in plan
        .groups
        .iter()
        .flat_map(|g| &g.decisions)
        .filter(|d| d.keep)
    {
        let Some(until) = policy
            .holds
            .iter()
            .filter(|h| d.reasons.iter().any(|r| is_rule(r, h.rule)))
            .filter(|h| period_over(h.rule, d.time_ns, now_ns, &tz))
            .map(|h| retention::add_span(d.time_ns, h.span, &tz))
            .max()
        else {
            continue;
        };
        let Some((_, snap)) = all.iter().find(|(id, _)| *id == d.id) else {
            continue;
        };
        if snap.keep_until_ns.is_some_and(|u| u >= until) {
            continue;
        }
        let reasons: Vec<String> = d.reasons.iter().map(|r| r.describe(&tz)).collect();
        let new_id = if dry_run {
            d.id
        } else {
            let why = format!("retention of {project}: {}", reasons.join(", "));
            snapshots::hold(repo, &d.id, snap, Some(until), Some(&why))
                .map_err(|e| e.to_string())?
                .0
        };
        out.held.push((
            HeldItem {
                repository: repository.to_string(),
                snapshot_id: d.id.to_hex(),
                new_id: new_id.to_hex(),
                until: rfc3339(until),
                reasons,
            },
            until,
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_period_is_over_once_now_is_in_the_next_one() {
        let tz = TimeZone::UTC;
        let at = |y, m, d| {
            jiff::civil::date(y, m, d)
                .at(12, 0, 0, 0)
                .to_zoned(TimeZone::UTC)
                .unwrap()
                .timestamp()
                .as_nanosecond() as i64
        };
        let jan31 = at(2025, 1, 31);
        assert!(!period_over(KeepRule::Monthly, at(2025, 1, 5), jan31, &tz));
        assert!(period_over(KeepRule::Monthly, jan31, at(2025, 2, 1), &tz));
        assert!(period_over(KeepRule::Daily, at(2025, 1, 30), jan31, &tz));
        assert!(!period_over(KeepRule::Yearly, at(2025, 1, 30), jan31, &tz));
        assert!(period_over(KeepRule::Last, jan31, jan31, &tz));
    }
}
