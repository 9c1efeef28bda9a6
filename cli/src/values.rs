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

/// A size in bytes: a number, optionally with a 1024-based unit (`K`, `M`, `G`, `T`,
/// also written `KiB`, `KB`, `k`; `B` or none for bytes), as restic reads
/// `--exclude-larger-than`.
pub fn size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(digits);
    let bad =
        || format!("{text:?} is not a size: write bytes, or a number with K, M, G or T (1M, 2G)");
    let number: u64 = number.parse().map_err(|_| bad())?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(bad()),
    };
    number
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_with_1024_based_units() {
        assert_eq!(size("0"), Ok(0));
        assert_eq!(size("1500"), Ok(1500));
        assert_eq!(size("1k"), Ok(1024));
        assert_eq!(size("2M"), Ok(2 << 20));
        assert_eq!(size("3 GiB"), Ok(3 << 30));
        assert_eq!(size("1T"), Ok(1 << 40));
        assert_eq!(size("7B"), Ok(7));
        for bad in ["", "M", "1.5M", "-1", "1X", "99999999999T"] {
            assert!(size(bad).is_err(), "{bad}");
        }
    }

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
