//! The numbers of a moment of an operation, and how they read: the terminal line
//! (percent, counts, sizes, rate, ETA) and the JSON status object.

use std::time::Duration;

use strata_engine::progress::Totals;

use crate::output::bytes;

/// The numbers of a moment, and how they are shown.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Status {
    pub elapsed: Duration,
    pub items: u64,
    pub bytes: u64,
    pub totals: Option<Totals>,
}

impl Status {
    /// Done, from 0 to 1: by bytes, or by items when there are no bytes to count.
    fn fraction(&self) -> Option<f64> {
        let t = self.totals?;
        let (done, total) = if t.bytes > 0 {
            (self.bytes, t.bytes)
        } else if t.items > 0 {
            (self.items, t.items)
        } else {
            return None;
        };
        Some((done as f64 / total as f64).min(1.0))
    }

    /// Time left at the average rate so far; only with final totals and some work done.
    fn remaining(&self) -> Option<Duration> {
        self.totals.filter(|t| t.complete)?;
        let fraction = self.fraction()?;
        if fraction <= 0.0 || self.elapsed.is_zero() {
            return None;
        }
        Some(self.elapsed.mul_f64((1.0 - fraction) / fraction))
    }

    fn rate(&self) -> Option<u64> {
        let secs = self.elapsed.as_secs_f64();
        (secs >= 0.5).then(|| (self.bytes as f64 / secs) as u64)
    }

    /// The terminal line, without the current file.
    pub fn line(&self, unit: &str) -> String {
        let mut parts = Vec::new();
        if let Some(f) = self.fraction() {
            parts.push(format!("{:.2}%", f * 100.0));
        }
        let totals = self.totals.unwrap_or_default();
        if !unit.is_empty() {
            parts.push(if totals.items > 0 {
                format!("{} / {} {unit}", self.items, totals.items)
            } else {
                format!("{} {unit}", self.items)
            });
        }
        parts.push(if totals.bytes > 0 {
            format!("{} / {}", bytes(self.bytes), bytes(totals.bytes))
        } else {
            bytes(self.bytes)
        });
        if let Some(rate) = self.rate() {
            parts.push(format!("{}/s", bytes(rate)));
        }
        if let Some(left) = self.remaining() {
            parts.push(format!("ETA {}", clock(left)));
        }
        format!("[{}] {}", clock(self.elapsed), parts.join("  "))
    }

    /// The JSON status object (restic's `status` message, with our unit's name).
    pub fn json(&self, unit: &str) -> serde_json::Value {
        let unit = if unit.is_empty() { "items" } else { unit };
        let totals = self.totals.unwrap_or_default();
        let mut m = serde_json::Map::new();
        m.insert("message_type".into(), "status".into());
        m.insert(
            "percent_done".into(),
            self.fraction().map_or(serde_json::Value::Null, |f| {
                serde_json::json!((f * 10_000.0).round() / 10_000.0)
            }),
        );
        m.insert(format!("{unit}_done"), self.items.into());
        m.insert(format!("total_{unit}"), totals.items.into());
        m.insert("bytes_done".into(), self.bytes.into());
        m.insert("total_bytes".into(), totals.bytes.into());
        m.insert("totals_complete".into(), totals.complete.into());
        m.insert("seconds_elapsed".into(), self.elapsed.as_secs().into());
        if let Some(left) = self.remaining() {
            m.insert("seconds_remaining".into(), left.as_secs().into());
        }
        serde_json::Value::Object(m)
    }
}

/// `m:ss`, or `h:mm:ss` from an hour on.
fn clock(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(secs: u64, items: u64, bytes: u64, totals: Option<(u64, u64, bool)>) -> Status {
        Status {
            elapsed: Duration::from_secs(secs),
            items,
            bytes,
            totals: totals.map(|(items, bytes, complete)| Totals {
                items,
                bytes,
                complete,
            }),
        }
    }

    #[test]
    fn the_line_has_percent_counts_sizes_rate_and_eta_once_totals_are_final() {
        let gib = 1 << 30;
        let s = status(12, 3313, gib / 8, Some((27201, gib, true)));
        assert_eq!(
            s.line("files"),
            "[0:12] 12.50%  3313 / 27201 files  128.00 MiB / 1.00 GiB  10.67 MiB/s  ETA 1:24"
        );
        // The scanner still counting: totals so far, no ETA.
        let s = status(12, 3313, gib / 8, Some((27201, gib, false)));
        assert_eq!(
            s.line("files"),
            "[0:12] 12.50%  3313 / 27201 files  128.00 MiB / 1.00 GiB  10.67 MiB/s"
        );
        // No totals yet, nothing done yet.
        assert_eq!(status(0, 0, 0, None).line("files"), "[0:00] 0 files  0 B");
        // Hours; and more done than counted (a file grew) stays at 100%.
        let s = status(3 * 3600 + 5, 10, 2000, Some((8, 1000, true)));
        assert_eq!(
            s.line("packs"),
            "[3:00:05] 100.00%  10 / 8 packs  1.95 KiB / 1000 B  0 B/s  ETA 0:00"
        );
    }

    #[test]
    fn percent_counts_items_when_there_are_no_bytes_and_eta_follows_the_average_rate() {
        let s = status(30, 1, 0, Some((4, 0, true)));
        assert_eq!(s.fraction(), Some(0.25));
        assert_eq!(s.remaining(), Some(Duration::from_secs(90)));
        assert_eq!(status(30, 0, 0, Some((4, 0, true))).remaining(), None);
        assert_eq!(status(30, 0, 0, Some((0, 0, true))).fraction(), None);
        assert_eq!(clock(Duration::from_secs(59)), "0:59");
        assert_eq!(clock(Duration::from_secs(3600)), "1:00:00");
    }

    #[test]
    fn json_status_names_the_unit_and_leaves_out_the_eta_while_counting() {
        let s = status(2, 3, 500, Some((4, 1000, false)));
        let v = s.json("files");
        assert_eq!(v["message_type"], "status");
        assert_eq!(v["percent_done"], 0.5);
        assert_eq!(
            (v["files_done"].as_u64(), v["total_files"].as_u64()),
            (Some(3), Some(4))
        );
        assert_eq!(
            (v["bytes_done"].as_u64(), v["total_bytes"].as_u64()),
            (Some(500), Some(1000))
        );
        assert_eq!(v["seconds_elapsed"], 2);
        assert!(v.get("seconds_remaining").is_none());
        let v = status(2, 3, 500, Some((4, 1000, true))).json("packs");
        assert_eq!(v["seconds_remaining"], 2);
        assert_eq!(v["packs_done"], 3);
    }
}
