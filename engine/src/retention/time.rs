//! Calendar spans (`30d`, `1y2m`) and the times `--time`, `--hold-until` and `forget` read
//! and show.

use std::fmt;
use std::str::FromStr;

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Span, Timestamp};

use super::ParseError;

/// A calendar length such as `1y2m` or `30d`: years, months and days are counted on the
/// calendar (a day is not always 24 hours), hours as elapsed time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CalendarSpan {
    /// Calendar years.
    pub years: u32,
    /// Calendar months.
    pub months: u32,
    /// Calendar days.
    pub days: u32,
    /// Elapsed hours.
    pub hours: u32,
}

impl CalendarSpan {
    fn is_zero(&self) -> bool {
        self.years == 0 && self.months == 0 && self.days == 0 && self.hours == 0
    }

    /// The years/months/days part as a jiff span, negated when `sign` is -1.
    fn calendar_part(&self, sign: i64) -> Result<Span, jiff::Error> {
        Span::new()
            .try_years(sign * i64::from(self.years))?
            .try_months(sign * i64::from(self.months))?
            .try_days(sign * i64::from(self.days))
    }
}

/// Writes the span as [`parse_span`] reads it, leaving out zero units (`1y2m`, `30d`); the
/// all-zero span is `0h`.
impl fmt::Display for CalendarSpan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_zero() {
            return f.write_str("0h");
        }
        for (n, unit) in [
            (self.years, 'y'),
            (self.months, 'm'),
            (self.days, 'd'),
            (self.hours, 'h'),
        ] {
            if n != 0 {
                write!(f, "{n}{unit}")?;
            }
        }
        Ok(())
    }
}

impl FromStr for CalendarSpan {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        parse_span(s)
    }
}

const SPAN_HELP: &str = "write a span as numbers with units y (years), m (months), d (days), \
                         h (hours) in that order, such as `30d`, `1y2m` or `12h`";

/// Reads a span such as `30d`, `1y2m`, `7y`, `12h` or `1y2m3d4h`: each of the units y, m, d,
/// h at most once and in that order. Zero units are allowed (`1y0m`) but not an all-zero
/// span, nor one too large for the calendar.
pub fn parse_span(s: &str) -> Result<CalendarSpan, ParseError> {
    read_span(s).map_err(ParseError)
}

fn read_span(s: &str) -> Result<CalendarSpan, String> {
    const UNITS: [char; 4] = ['y', 'm', 'd', 'h'];
    if s.trim().is_empty() {
        return Err(format!("empty time span; {SPAN_HELP}"));
    }
    let mut values: [Option<u32>; 4] = [None; 4];
    let mut rest = s.trim();
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let (number, after) = rest.split_at(digits);
        let Some(unit) = after.chars().next() else {
            return Err(format!("`{number}` in span `{s}` has no unit; {SPAN_HELP}"));
        };
        if digits == 0 {
            return Err(format!(
                "expected a number before `{unit}` in span `{s}`; {SPAN_HELP}"
            ));
        }
        let Some(index) = UNITS.iter().position(|&u| u == unit) else {
            return Err(format!("unknown unit `{unit}` in span `{s}`; {SPAN_HELP}"));
        };
        if values[index].is_some() {
            return Err(format!(
                "unit `{unit}` appears twice in span `{s}`; {SPAN_HELP}"
            ));
        }
        if values[index + 1..].iter().any(Option::is_some) {
            return Err(format!("units out of order in span `{s}`; {SPAN_HELP}"));
        }
        let n: u32 = number
            .parse()
            .map_err(|_| format!("`{number}{unit}` in span `{s}` is too large"))?;
        values[index] = Some(n);
        rest = &after[unit.len_utf8()..];
    }
    let [years, months, days, hours] = values.map(|v| v.unwrap_or(0));
    let span = CalendarSpan {
        years,
        months,
        days,
        hours,
    };
    if span.is_zero() {
        return Err(format!(
            "span `{s}` is zero; give a positive length such as `1d`"
        ));
    }
    if span.calendar_part(-1).is_err() {
        return Err(format!("span `{s}` is too large for the calendar"));
    }
    Ok(span)
}

/// Unix nanoseconds as a jiff timestamp; every `i64` fits (years 1677 to 2262).
pub(super) fn timestamp(t_ns: i64) -> Timestamp {
    Timestamp::from_nanosecond(i128::from(t_ns)).expect("i64 nanoseconds are within jiff's range")
}

/// Moves `t_ns` by `span` (forward for sign 1, back for -1): years, months and days on the
/// civil calendar in `tz` (day clamped to the month's end; a wall time that falls into a DST
/// gap or fold resolved as jiff's "compatible" does), then hours as elapsed time. `None` when
/// the result does not fit in `i64` nanoseconds.
fn shift(t_ns: i64, span: CalendarSpan, tz: &TimeZone, sign: i64) -> Option<i64> {
    let mut ts = timestamp(t_ns);
    let calendar = span.calendar_part(sign).ok()?;
    if !calendar.is_zero() {
        let dt = tz.to_datetime(ts).checked_add(calendar).ok()?;
        ts = tz.to_ambiguous_timestamp(dt).compatible().ok()?;
    }
    let hours = SignedDuration::from_hours(sign * i64::from(span.hours));
    let ts = ts.checked_add(hours).ok()?;
    i64::try_from(ts.as_nanosecond()).ok()
}

/// `t_ns` minus `span` in `tz`, as Go's `t.AddDate(-y, -m, -d).Add(-h)` but clamping to the
/// month's end (31 March minus 1m is the end of February, not 3 March). Saturates at
/// `i64::MIN` when the result is earlier than Unix nanoseconds can say.
pub fn subtract_span(t_ns: i64, span: CalendarSpan, tz: &TimeZone) -> i64 {
    shift(t_ns, span, tz, -1).unwrap_or(i64::MIN)
}

/// `t_ns` plus `span` in `tz` (for holds such as `--hold-for 7y`), the mirror of
/// [`subtract_span`]. Saturates at `i64::MAX` (a hold that never ends).
pub fn add_span(t_ns: i64, span: CalendarSpan, tz: &TimeZone) -> i64 {
    shift(t_ns, span, tz, 1).unwrap_or(i64::MAX)
}

/// Reads a time: `2025-01-31 03:00:00`, `2025-01-31 03:00`, `2025-01-31T03:00:00`,
/// `2025-01-31T03:00` or `2025-01-31` (midnight) as wall time in `tz`, or RFC 3339 with an
/// offset (`2025-01-31T03:00:00Z`, `2025-01-31T03:00:00+01:00`). Returns Unix nanoseconds.
///
/// A wall time that does not exist in `tz` (skipped by a DST change) or exists twice is
/// resolved the "compatible" way (RFC 5545, Temporal): a skipped time moves forward by the
/// gap (Berlin 02:30 on the spring-forward day is 03:30 CEST); a repeated time is the
/// earlier one.
pub fn parse_time(s: &str, tz: &TimeZone) -> Result<i64, ParseError> {
    read_time(s, tz).map_err(ParseError)
}

fn read_time(s: &str, tz: &TimeZone) -> Result<i64, String> {
    let text = s.trim();
    let ts = match text.parse::<Timestamp>() {
        Ok(ts) => ts,
        Err(_) => {
            let dt = parse_civil(text).ok_or_else(|| {
                format!(
                    "cannot read time `{s}`; write `YYYY-MM-DD`, `YYYY-MM-DD HH:MM[:SS]` \
                     (local time) or RFC 3339 such as `2025-01-31T03:00:00Z`"
                )
            })?;
            tz.to_ambiguous_timestamp(dt)
                .compatible()
                .map_err(|e| format!("time `{s}` is out of range: {e}"))?
        }
    };
    i64::try_from(ts.as_nanosecond())
        .map_err(|_| format!("time `{s}` is outside the years 1678 to 2261 that Strata can store"))
}

/// The wall-time forms [`parse_time`] accepts.
fn parse_civil(text: &str) -> Option<DateTime> {
    const FORMATS: [&str; 4] = [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
    ];
    FORMATS
        .iter()
        .find_map(|f| DateTime::strptime(f, text).ok())
        .or_else(|| {
            Date::strptime("%Y-%m-%d", text)
                .ok()
                .map(|d| d.to_datetime(jiff::civil::Time::midnight()))
        })
}

/// `t_ns` as wall time in `tz`: `2025-01-31 03:00:00`.
pub fn format_time(t_ns: i64, tz: &TimeZone) -> String {
    let dt = tz.to_datetime(timestamp(t_ns));
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    )
}
