//! When each project is next due (`strata schedule list`): the next slot of its backup,
//! check, prune and restore-test schedules after a given time.
//!
//! These are the schedules' own slots. Whether a run is *due* also depends on when it
//! last ran (a slot passed since the last recorded run, [`Schedule::is_due`]); that
//! history is the catalog's, and `strata run --due` asks it.

use jiff::tz::TimeZone;
use serde::Serialize;

use super::model::{Config, Schedule};

/// One project's schedules and their next slots.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ProjectSlots {
    pub project: String,
    pub backup: Option<Slot>,
    pub check: Option<Slot>,
    pub prune: Option<Slot>,
    pub restore_test: Option<Slot>,
}

/// A schedule as written and its next slot (Unix ns; None: none within fifty years).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Slot {
    pub schedule: String,
    pub next_ns: Option<i64>,
}

/// Every project's next slots after `now_ns`, in `tz`, in the order of their names.
pub fn next_slots(config: &Config, now_ns: i64, tz: &TimeZone) -> Vec<ProjectSlots> {
    let slot = |s: &Option<Schedule>| {
        s.as_ref().map(|s| Slot {
            schedule: s.text.clone(),
            next_ns: s.next_slot(now_ns, tz),
        })
    };
    config
        .projects
        .values()
        .map(|p| ProjectSlots {
            project: p.name.clone(),
            backup: slot(&p.schedule),
            check: slot(&p.check),
            prune: slot(&p.prune),
            restore_test: slot(&p.restore_test),
        })
        .collect()
}
