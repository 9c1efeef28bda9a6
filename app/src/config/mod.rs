//! `strata.toml`: every project (its sources, repositories, retention, schedules, hooks,
//! notifications) in one file, read into [`Config`] and checked before anything runs.
//!
//! The model below is the contract the runner, health and notifications read; `load` and
//! the schedule arithmetic are this module's (see the config contract: keys are
//! kebab-case, unknown keys are errors, every error is `FILE:LINE:COLUMN: key: message`).

mod model;

pub use model::*;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Reads and checks the config at `path` (None: [`default_path`]); every problem found is
/// reported, not only the first.
pub fn load(path: Option<&Path>) -> Result<Config, ConfigErrors> {
    let file = path.map(Path::to_path_buf).unwrap_or_else(default_path);
    Err(ConfigErrors(vec![ConfigError {
        file,
        line: 0,
        column: 0,
        key: String::new(),
        message: "reading strata.toml is being built (#16 part A)".into(),
    }]))
}

/// `/etc/strata/strata.toml` for root, else `$XDG_CONFIG_HOME/strata/strata.toml`.
pub fn default_path() -> PathBuf {
    PathBuf::from("/etc/strata/strata.toml")
}

/// One problem in a config file, with where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based; 0 when the problem has no place (the file cannot be read).
    pub line: usize,
    pub column: usize,
    /// The dotted key (`projects.shop.schedule`), empty when none.
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem of a config, one per line when displayed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// The schedule arithmetic (part A fills these in).
impl Schedule {
    /// Reads a cron expression or an alias.
    pub fn parse(text: &str) -> Result<Schedule, String> {
        Ok(Schedule { text: text.into() })
    }

    /// The latest slot at or before `at_ns`.
    pub fn prev_slot(&self, _at_ns: i64, _tz: &jiff::tz::TimeZone) -> Option<i64> {
        unimplemented!("#16 part A")
    }

    /// The first slot after `after_ns`.
    pub fn next_slot(&self, _after_ns: i64, _tz: &jiff::tz::TimeZone) -> Option<i64> {
        unimplemented!("#16 part A")
    }

    /// Whether a slot passed since `last_run_ns` (never run: due); a run missed while the
    /// machine was off is caught up once.
    pub fn is_due(
        &self,
        _last_run_ns: Option<i64>,
        _now_ns: i64,
        _tz: &jiff::tz::TimeZone,
    ) -> bool {
        unimplemented!("#16 part A")
    }

    /// The nominal interval between slots.
    pub fn interval(&self) -> Duration {
        unimplemented!("#16 part A")
    }

    /// Health's default max-age: twice the interval plus an hour.
    pub fn default_max_age(&self) -> Duration {
        self.interval() * 2 + Duration::from_secs(3600)
    }
}
