//! `strata.toml`: every project (its sources, repositories, retention, schedules, hooks,
//! notifications) in one file, read into [`Config`] and checked before anything runs.
//!
//! The model below is the contract the runner, health and notifications read; `load` and
//! the schedule arithmetic are this module's (see the config contract: keys are
//! kebab-case, unknown keys are errors, every error is `FILE:LINE:COLUMN: key: message`).

mod model;

pub use model::*;
