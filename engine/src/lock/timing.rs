//! How often locks are refreshed and when they expire.

use std::time::Duration;

/// How often a held lock is refreshed, and when an unrefreshed one counts as expired.
#[derive(Debug, Clone, Copy)]
pub struct LockTiming {
    pub refresh_every: Duration,
    /// A holder that has not refreshed its lock for this long (by its own clock) counts
    /// its lock as lost.
    pub stale_after: Duration,
    /// How far another host's clock may be behind this one's: a lock expires only when
    /// it is `stale_after + clock_skew` old by this clock.
    pub clock_skew: Duration,
}

impl Default for LockTiming {
    fn default() -> Self {
        LockTiming {
            refresh_every: Duration::from_secs(5 * 60),
            stale_after: Duration::from_secs(30 * 60),
            clock_skew: Duration::from_secs(15 * 60),
        }
    }
}

/// "45s", "12m", "3h", "2d".
pub(crate) fn humanize_secs(s: i64) -> String {
    match s {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 2 * 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}
