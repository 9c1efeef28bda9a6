//! The audit catalog: every run, snapshot, copy, retention decision, prune, check, restore,
//! restore test, hook and notification, in SQLite in the state directory, each record
//! chained to the one before by a hash (`strata log --verify`).
