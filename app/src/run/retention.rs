//! A project's retention in one repository: the policy planned over the project's
//! snapshots there (grouped as `forget` groups them by default: host, paths, project),
//! the removals forgotten, and the survivors a `hold-<rule>` names held for its span.
//!
//! Holds are applied before anything is forgotten, planned with one slot more than the
//! rule keeps, so that the newest snapshot of the period that just ended is held even when
//! the new period takes the rule's last slot (`keep-monthly = 1`).
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
    let list = || -> Result<Vec<_>, String> {
        Ok(snapshots::list(repo)
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|(_, s)| s.project.as_deref() == Some(project))
            .collect())
    };
    let plan_with = |all: &[_], keep: &strata_engine::retention::KeepPolicy| {
        retention::plan(
            all,
            &PlanOptions {
                policy: keep,
                group_by: GroupBy::default(),
                now_ns,
                tz: &tz,
                allow_empty: false,
            },
        )
    };
    let mut all = list()?;

    // Holds first, before anything is forgotten: the newest snapshot of a period that has
    // just ended must be held even when the period that began since takes the rule's last
    // slot (`keep-monthly = 1`: on February 1st, February's first snapshot is the monthly
    // survivor and January's newest would be forgotten unheld). So the hold rules are
    // planned with one slot more than they keep.
    let mut hold_keep = policy.keep.clone();
    for h in &policy.holds {
        let count = match h.rule {
            KeepRule::Last => continue,
            KeepRule::Hourly => &mut hold_keep.hourly,
            KeepRule::Daily => &mut hold_keep.daily,
            KeepRule::Weekly => &mut hold_keep.weekly,
            KeepRule::Monthly => &mut hold_keep.monthly,
            KeepRule::Yearly => &mut hold_keep.yearly,
        };
        *count = count.saturating_add(1);
    }
    let hold_plan = plan_with(&all, &hold_keep);
    let mut would_hold = Vec::new();
    for d in hold_plan
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
            would_hold.push(d.id);
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
    if !out.held.is_empty() && !dry_run {
        // A hold rewrites the snapshot: plan over what is there now.
        all = list()?;
    }

    // Then the policy itself; what is held is kept (and in a dry run, what would be).
    let plan = plan_with(&all, &policy.keep);
    let remove: Vec<_> = plan
        .remove()
        .filter(|id| !would_hold.contains(id))
        .collect();
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
