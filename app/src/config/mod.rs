//! `strata.toml`: every project (its sources, repositories, retention, schedules, hooks,
//! notifications) in one file, read into [`Config`] and checked before anything runs.
//!
//! The model ([`model`]) is the contract the runner, health and notifications read;
//! [`load`] reads a file into it (keys are kebab-case, unknown keys are errors, every
//! error is `FILE:LINE:COLUMN: key: message`, all of them at once), [`Schedule`] does the
//! calendar arithmetic, [`show`] gives the effective config with every secret redacted,
//! and [`timer`] the systemd units and crontab line that run `strata run --due`.

mod context;
mod error;
mod load;
mod model;
mod project;
mod reader;
mod schedule;
mod server;
pub mod show;
pub mod slots;
pub mod timer;

pub use error::{ConfigError, ConfigErrors};
pub use load::{default_path, default_state_dir, load, parse};
pub use model::*;
pub use server::ROLES;
