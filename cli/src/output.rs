//! Rendering helpers: times, sizes, JSON, one-line errors.

use std::io::Write;

use anyhow::Result;
use serde::Serialize;

/// An error and its causes on one line, without repeating a cause already in the message.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if out.contains(&s) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&s);
    }
    // A file name in an error must not send escape sequences to a terminal or a mail.
    printable(out.replace('\n', " ").as_bytes())
}

/// The time zone of human output: the system's (TZ honoured), or UTC after [`use_utc`].
static ZONE: std::sync::OnceLock<jiff::tz::TimeZone> = std::sync::OnceLock::new();

/// Shows times in UTC instead of local time (`--utc`); call before anything is printed.
pub fn use_utc(utc: bool) {
    if utc {
        let _ = ZONE.set(jiff::tz::TimeZone::UTC);
    }
}

/// The time zone human output shows times in: local time (TZ, else /etc/localtime), or
/// UTC with --utc.
pub fn zone() -> &'static jiff::tz::TimeZone {
    ZONE.get_or_init(jiff::tz::TimeZone::system)
}

/// A time for people, as wall time in [`zone`]: `2025-01-31 04:00:00`.
pub fn time(ns: i64) -> String {
    strata_engine::retention::format_time(ns, zone())
}

/// A time for machines (`--json`, mount directory names): RFC 3339 in UTC with seconds,
/// `2025-01-31T03:00:00Z`, the same whatever the time zone or --utc.
pub fn rfc3339(ns: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// A byte count for people (KiB, MiB, ...).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.2} {}", UNITS[u])
    }
}

/// Writes `value` as pretty JSON and a newline to stdout.
pub fn json<T: Serialize>(value: &T) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

/// A name for a terminal: invalid UTF-8 replaced, control characters escaped (a file
/// name must not be able to send escape sequences to the reader's terminal).
pub fn printable(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

#[cfg(test)]
mod one_line_tests {
    use super::*;

    #[test]
    fn errors_are_one_line_without_control_characters() {
        let e =
            anyhow::anyhow!("cannot read /srv/\x1b[31mred\x1b[0m").context("backup failed\nbadly");
        let line = one_line(&e);
        assert_eq!(
            line,
            "backup failed badly: cannot read /srv/\\u{1b}[31mred\\u{1b}[0m"
        );
        assert!(!line.chars().any(char::is_control), "{line:?}");
    }
}
