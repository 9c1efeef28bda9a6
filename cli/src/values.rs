//! Value parsers for options whose values must be read before anything runs: a value
//! that cannot be read is a usage error (clap reports it, exit code 2), like any other
//! bad argument, not a failure of the command.

use strata_engine::retention;

/// A time in local time (`2025-01-31`, `2025-01-31 03:00[:00]`) or RFC 3339, as Unix
/// nanoseconds (`--time`, `--hold-until`, `hold --until`, `find --newer/--older`).
pub fn local_time(text: &str) -> Result<i64, retention::ParseError> {
    retention::parse_time(text, &jiff::tz::TimeZone::system())
}

/// A glob pattern as `--exclude`, `--include` and `find` read them; checked here, kept as
/// its text (the engine builds its filter from the texts).
pub fn glob(text: &str) -> Result<String, String> {
    let pattern = text.to_string();
    strata_engine::filter::Filter::new(std::slice::from_ref(&pattern))
        .map_err(|e| e.to_string())?;
    Ok(pattern)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_or_say_how_to_write_them() {
        assert_eq!(
            local_time("2025-01-31T03:00:00Z"),
            Ok(1_738_292_400_000_000_000)
        );
        let err = local_time("yesterday").unwrap_err().to_string();
        assert!(err.contains("YYYY-MM-DD"), "{err}");
    }

    #[test]
    fn globs_are_checked_and_kept() {
        assert_eq!(glob("/var/cache/**").as_deref(), Ok("/var/cache/**"));
        assert!(glob("a[").unwrap_err().contains("unclosed"));
    }
}
