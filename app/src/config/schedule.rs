//! When things run: a 5-field cron expression or an alias, and the arithmetic on it.
//!
//! - **Syntax**: `minute hour day-of-month month day-of-week`, each field `*`, a number, a
//!   range `a-b`, a step `*/n`, `a-b/n` or `a/n` (from a to the end), or a comma list of
//!   those; months and weekdays may be named (`jan`, `mon`); weekday 0 and 7 are Sunday.
//!   Aliases: `hourly` (`0 * * * *`), `daily` (`0 0 * * *`), `daily HH:MM`, `weekly`
//!   (**Monday** 00:00, the ISO week's start: a weekly check then runs before the working
//!   week, not in the middle of a weekend that `0 0 * * 0` would put it at), `weekly DAY
//!   [HH:MM]`, `monthly` (the 1st, 00:00), `yearly`, and their `@` forms (`@daily`).
//! - **Day of month and day of week** combine as in Vixie cron: when both are restricted
//!   (neither field starts with `*`), a day matching either runs (`0 0 1 * mon`: the 1st
//!   and every Monday); otherwise a day must match both.
//! - **Time zone**: slots are wall-clock times in the given zone. A slot that falls into a
//!   skipped hour (the spring change) runs once, at the end of the gap; a slot in a
//!   repeated hour (the autumn change) runs once, at its first occurrence.
//! - **Bounded**: an expression that never happens (`0 0 31 2 *`) is refused when read, and
//!   every search gives up after fifty years of calendar, returning `None`: longer than the
//!   longest gap of any expression that happens at all (a February 29 alone comes back
//!   within eight years; one that must also be a Sunday, `0 0 29 2 */7`, within 28, or 40
//!   across 2100, which is no leap year).
//! - **Interval** ([`Schedule::interval`]): the *longest* gap between two slots (computed
//!   once, in UTC). For regular schedules that is the nominal interval (hourly 1 h, daily
//!   24 h, monthly 31 days); for `0 3 * * 1-5` it is the weekend's 72 h, so that health's
//!   default max-age (twice the interval plus an hour) does not call every Monday morning
//!   critical.

use std::time::Duration;

use jiff::civil::{Date, DateTime};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{Timestamp, ToSpan};

/// When something runs: a cron expression (`0 3 * * *`) or an alias (`hourly`,
/// `daily [HH:MM]`, `weekly`, `monthly`), in the machine's time zone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// As written in the config (trimmed).
    pub text: String,
    /// The parsed form ([`Schedule::parse`] makes it).
    pub(crate) cron: Cron,
    /// The longest gap between two slots ([`Schedule::interval`]).
    pub(crate) interval: Duration,
}

/// The parsed form of a schedule: one bit per allowed value of each field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Cron {
    minutes: u64,
    hours: u32,
    /// Bits 1..=31.
    doms: u32,
    /// Bits 1..=12.
    months: u16,
    /// Bits 0..=6, 0 = Sunday.
    dows: u8,
    /// The day-of-month field starts with `*` (Vixie cron's rule, see the module docs).
    dom_star: bool,
    dow_star: bool,
}

/// How far any search looks, in days (fifty years: see the module docs).
const SEARCH_DAYS: u32 = 50 * 366;
/// How many candidate slots one search may reject for the time zone's sake.
const SEARCH_SLOTS: usize = 10_000;

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

impl Schedule {
    /// Reads a cron expression or an alias (see the module docs).
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let cron = Cron::parse(text)?;
        let interval = cron
            .longest_gap()
            .ok_or_else(|| format!("`{}` never happens (no such day in any month)", text.trim()))?;
        Ok(Schedule {
            text: text.trim().to_string(),
            cron,
            interval,
        })
    }

    /// The latest slot at or before `at_ns` (None: none within fifty years).
    pub fn prev_slot(&self, at_ns: i64, tz: &TimeZone) -> Option<i64> {
        let at = civil(at_ns, tz)?;
        // A slot up to a fold's length after `at`'s wall-clock time may map to an instant
        // before `at` (its first occurrence): start later and walk back.
        let mut c = truncate(at).checked_add(3.hours()).ok()?;
        for _ in 0..SEARCH_SLOTS {
            let slot = self.cron.prev_civil(c)?;
            let t = instant(slot, tz)?;
            if t <= at_ns {
                return Some(t);
            }
            c = slot.checked_sub(1.minute()).ok()?;
        }
        None
    }

    /// The first slot after `after_ns` (None: none within fifty years).
    pub fn next_slot(&self, after_ns: i64, tz: &TimeZone) -> Option<i64> {
        let mut c = truncate(civil(after_ns, tz)?);
        for _ in 0..SEARCH_SLOTS {
            let slot = self.cron.next_civil(c)?;
            let t = instant(slot, tz)?;
            if t > after_ns {
                return Some(t);
            }
            c = slot.checked_add(1.minute()).ok()?;
        }
        None
    }

    /// Whether a slot passed since `last_run_ns` (never run: due). However many slots
    /// passed (the machine was off for a week), it is one run that catches up: after it,
    /// the next slot is in the future again.
    pub fn is_due(&self, last_run_ns: Option<i64>, now_ns: i64, tz: &TimeZone) -> bool {
        let Some(last) = last_run_ns else {
            return true;
        };
        self.prev_slot(now_ns, tz).is_some_and(|slot| slot > last)
    }

    /// The longest gap between two slots (see the module docs).
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Health's default max-age: twice the interval plus an hour.
    pub fn default_max_age(&self) -> Duration {
        self.interval() * 2 + Duration::from_secs(3600)
    }
}

/// `ns` as wall-clock time in `tz`.
fn civil(ns: i64, tz: &TimeZone) -> Option<DateTime> {
    let t = Timestamp::from_nanosecond(i128::from(ns)).ok()?;
    Some(tz.to_datetime(t))
}

/// The minute `dt` is in.
fn truncate(dt: DateTime) -> DateTime {
    dt.date().at(dt.hour(), dt.minute(), 0, 0)
}

/// The instant of the wall-clock time `dt` in `tz`: in a gap, the gap's end; in a fold,
/// the first occurrence.
fn instant(dt: DateTime, tz: &TimeZone) -> Option<i64> {
    let t = match tz.to_ambiguous_timestamp(dt).offset() {
        AmbiguousOffset::Unambiguous { offset } => offset.to_timestamp(dt).ok()?,
        AmbiguousOffset::Fold { before, .. } => before.to_timestamp(dt).ok()?,
        AmbiguousOffset::Gap { after, .. } => {
            // `dt` read with the later offset lies before the change; the change itself
            // is the end of the gap.
            let early = after.to_timestamp(dt).ok()?;
            tz.following(early).next()?.timestamp()
        }
    };
    i64::try_from(t.as_nanosecond()).ok()
}

impl Cron {
    fn parse(text: &str) -> Result<Cron, String> {
        let text = text.trim();
        let lower = text.to_ascii_lowercase();
        let words: Vec<&str> = lower.split_whitespace().collect();
        let at = |hhmm: Option<&&str>| -> Result<(u32, u32), String> {
            match hhmm {
                None => Ok((0, 0)),
                Some(t) => parse_hhmm(t),
            }
        };
        let expr = match words.as_slice() {
            [] => return Err("empty schedule".into()),
            ["hourly" | "@hourly"] => "0 * * * *".to_string(),
            ["daily" | "@daily" | "@midnight", rest @ ..] if rest.len() <= 1 => {
                let (h, m) = at(rest.first())?;
                format!("{m} {h} * * *")
            }
            ["weekly" | "@weekly"] => "0 0 * * 1".to_string(),
            ["weekly" | "@weekly", day, rest @ ..] if rest.len() <= 1 => {
                let d = name_value(day, &DAYS)
                    .ok_or_else(|| format!("`{day}` is no day of the week (mon, tue, …)"))?;
                let (h, m) = at(rest.first())?;
                format!("{m} {h} * * {d}")
            }
            ["monthly" | "@monthly"] => "0 0 1 * *".to_string(),
            ["yearly" | "@yearly" | "@annually"] => "0 0 1 1 *".to_string(),
            [_, _, _, _, _] => lower.clone(),
            _ => {
                return Err(format!(
                    "expected a cron expression of 5 fields (minute hour day-of-month month \
                     day-of-week), or hourly, daily [HH:MM], weekly [DAY [HH:MM]], monthly; \
                     found {} word{}",
                    words.len(),
                    if words.len() == 1 { "" } else { "s" }
                ))
            }
        };
        let f: Vec<&str> = expr.split_whitespace().collect();
        let minutes = field(f[0], "minute", 0, 59, None)?;
        let hours = field(f[1], "hour", 0, 23, None)?;
        let doms = field(f[2], "day of month", 1, 31, None)?;
        let months = field(f[3], "month", 1, 12, Some(&MONTHS))?;
        let mut dows = field(f[4], "day of week", 0, 7, Some(&DAYS))?;
        if dows & (1 << 7) != 0 {
            dows = (dows & !(1 << 7)) | 1;
        }
        Ok(Cron {
            minutes,
            hours: hours as u32,
            doms: doms as u32,
            months: months as u16,
            dows: dows as u8,
            dom_star: f[2].starts_with('*'),
            dow_star: f[4].starts_with('*'),
        })
    }

    fn day_matches(&self, d: Date) -> bool {
        if self.months & (1 << d.month()) == 0 {
            return false;
        }
        let dom = self.doms & (1 << d.day()) != 0;
        let dow = self.dows & (1 << d.weekday().to_sunday_zero_offset()) != 0;
        if self.dom_star || self.dow_star {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// The first (hour, minute) of a matching day at or after `from`.
    fn first_time(&self, from: (i8, i8)) -> Option<(i8, i8)> {
        for h in from.0..24 {
            if self.hours & (1 << h) == 0 {
                continue;
            }
            let start = if h == from.0 { from.1 } else { 0 };
            let left = self.minutes >> start;
            if left != 0 {
                return Some((h, start + left.trailing_zeros() as i8));
            }
        }
        None
    }

    /// The last (hour, minute) of a matching day at or before `to`.
    fn last_time(&self, to: (i8, i8)) -> Option<(i8, i8)> {
        for h in (0..=to.0).rev() {
            if self.hours & (1 << h) == 0 {
                continue;
            }
            let end = if h == to.0 { to.1 } else { 59 };
            let below = self.minutes & (u64::MAX >> (63 - end));
            if below != 0 {
                return Some((h, 63 - below.leading_zeros() as i8));
            }
        }
        None
    }

    /// The first slot at or after the wall-clock minute `c`.
    fn next_civil(&self, c: DateTime) -> Option<DateTime> {
        let mut date = c.date();
        let mut from = (c.hour(), c.minute());
        for _ in 0..SEARCH_DAYS {
            if self.day_matches(date) {
                if let Some((h, m)) = self.first_time(from) {
                    return Some(date.at(h, m, 0, 0));
                }
            }
            date = date.tomorrow().ok()?;
            from = (0, 0);
        }
        None
    }

    /// The last slot at or before the wall-clock minute `c`.
    fn prev_civil(&self, c: DateTime) -> Option<DateTime> {
        let mut date = c.date();
        let mut to = (c.hour(), c.minute());
        for _ in 0..SEARCH_DAYS {
            if self.day_matches(date) {
                if let Some((h, m)) = self.last_time(to) {
                    return Some(date.at(h, m, 0, 0));
                }
            }
            date = date.yesterday().ok()?;
            to = (23, 59);
        }
        None
    }

    /// The longest gap between two slots over up to a thousand slots from 2024 (UTC);
    /// None when it never happens.
    fn longest_gap(&self) -> Option<Duration> {
        let start = jiff::civil::date(2024, 1, 1).at(0, 0, 0, 0);
        let end = start
            .checked_add(jiff::Span::new().days(i64::from(SEARCH_DAYS)))
            .ok()?;
        let mut prev = self.next_civil(start)?;
        let mut longest = Duration::ZERO;
        for _ in 0..1000 {
            let Some(next) = prev
                .checked_add(1.minute())
                .ok()
                .and_then(|c| self.next_civil(c))
                .filter(|n| *n <= end)
            else {
                break;
            };
            let gap = next.duration_since(prev).unsigned_abs();
            longest = longest.max(gap);
            prev = next;
        }
        // A schedule with one slot in fifty years: its gap is at least that.
        if longest.is_zero() {
            longest = end.duration_since(start).unsigned_abs();
        }
        Some(longest)
    }
}

/// `HH:MM` (or `H:MM`).
fn parse_hhmm(text: &str) -> Result<(u32, u32), String> {
    let bad = || format!("`{text}` is no time of day: write it as HH:MM (03:00)");
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    let h: u32 = h.parse().map_err(|_| bad())?;
    let m: u32 = m.parse().map_err(|_| bad())?;
    if h > 23 || m > 59 || text.len() > 5 {
        return Err(bad());
    }
    Ok((h, m))
}

/// A name's value (`mon` = 1, `jan` = 1) in `names` (which start at 0 for days, 1 for
/// months).
fn name_value(name: &str, names: &[&str]) -> Option<u32> {
    let i = names.iter().position(|n| n.eq_ignore_ascii_case(name))? as u32;
    Some(if names.len() == 12 { i + 1 } else { i })
}

/// One field: a comma list of `*`, `N`, `A-B`, each with an optional `/STEP`.
fn field(
    text: &str,
    what: &str,
    min: u32,
    max: u32,
    names: Option<&[&str]>,
) -> Result<u64, String> {
    let value = |t: &str| -> Result<u32, String> {
        let n = match t.parse::<u32>() {
            Ok(n) => n,
            Err(_) => names
                .and_then(|names| name_value(t, names))
                .ok_or_else(|| format!("{what} `{t}` is neither a number nor a name"))?,
        };
        if n < min || n > max {
            return Err(format!("{what} {n} is out of range {min}-{max}"));
        }
        Ok(n)
    };
    let mut bits = 0u64;
    for item in text.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s
                    .parse()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("{what} step `{s}` is not a positive number"))?;
                (r, Some(step))
            }
            None => (item, None),
        };
        let (lo, hi) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (value(a)?, value(b)?);
            if a > b {
                return Err(format!("{what} range {a}-{b} runs backwards"));
            }
            (a, b)
        } else {
            let a = value(range)?;
            // `5/15`: from 5 to the end, every 15th.
            (a, if step.is_some() { max } else { a })
        };
        let step = step.unwrap_or(1);
        let mut n = lo;
        while n <= hi {
            bits |= 1 << n;
            n = n.saturating_add(step);
        }
    }
    Ok(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_read_lists_ranges_steps_and_names() {
        assert_eq!(
            field("*/15", "minute", 0, 59, None),
            Ok(1 | 1 << 15 | 1 << 30 | 1 << 45)
        );
        assert_eq!(field("1-3,5", "hour", 0, 23, None), Ok(0b101110));
        assert_eq!(field("50/5", "minute", 0, 59, None), Ok(1 << 50 | 1 << 55));
        assert_eq!(field("mon-wed", "dow", 0, 7, Some(&DAYS)), Ok(0b1110));
        assert_eq!(
            field("JAN,dec", "month", 1, 12, Some(&MONTHS)),
            Ok(1 << 1 | 1 << 12)
        );
        for bad in ["60", "5-1", "*/0", "x", "1-", "", "*/", "-1"] {
            assert!(field(bad, "minute", 0, 59, None).is_err(), "{bad}");
        }
    }

    #[test]
    fn sunday_is_0_and_7() {
        let a = Cron::parse("0 0 * * 7").unwrap();
        let b = Cron::parse("0 0 * * sun").unwrap();
        assert_eq!(a.dows, 1);
        assert_eq!(a, b);
    }
}
