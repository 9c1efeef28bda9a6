//! Progress for the engine's `Progress` hooks, in one of three forms:
//!
//! - on a terminal (stderr), a line redrawn in place, restic's shape:
//!   `[0:12] 12.18%  3313 / 27201 files  446.00 MiB / 3.65 GiB  37.00 MiB/s  ETA 0:42  /current/file`
//!   (no ETA while a backup's scanner is still counting, nor before anything is done);
//! - with `--json`, machine status lines on stderr, one JSON object a line, at most four a
//!   second and one at the end (stdout keeps the one JSON result);
//! - otherwise (cron, a pipe, `--quiet`): nothing; warnings are always printed, as plain
//!   text, control characters escaped.
//!
//! With `-v`, a backup lists the files it found new or modified (`-vv`: unchanged too) on
//! stdout, restic's way (`new       /path`); with `--json` as `verbose_status` lines on
//! stderr instead.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use strata_engine::progress::{FileStatus, Progress, Totals};

use crate::output::{bytes, printable};

/// JSON status lines are at most this frequent.
const JSON_EVERY: Duration = Duration::from_millis(250);

/// Where progress goes; a terminal line carries a label or not.
enum Want<'a> {
    Hidden,
    Terminal(Option<&'a str>),
    Json,
}

enum Output {
    Hidden,
    Terminal(ProgressBar),
    Json,
}

/// Counts shared between the engine's threads and the renderer.
struct State {
    start: Instant,
    /// What items are (`files`, `packs`); empty: not counted in the line.
    unit: &'static str,
    items: AtomicU64,
    bytes: AtomicU64,
    totals: Mutex<Option<Totals>>,
    /// Milliseconds after `start` of the last JSON status line.
    last_json_ms: AtomicU64,
}

impl State {
    fn status(&self) -> Status {
        Status {
            elapsed: self.start.elapsed(),
            items: self.items.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            totals: *self.totals.lock().expect("no panics while locked"),
        }
    }
}

/// The numbers of a moment, and how they are shown.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Status {
    elapsed: Duration,
    items: u64,
    bytes: u64,
    totals: Option<Totals>,
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
    fn line(&self, unit: &str) -> String {
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
    fn json(&self, unit: &str) -> serde_json::Value {
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

/// What `-v` lists of a backup's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Listing {
    Nothing,
    Changes,
    All,
}

pub struct Bar {
    out: Output,
    state: Arc<State>,
    listing: Listing,
}

impl Bar {
    /// A progress line labelled `what`, counting bytes; hidden unless stderr is a terminal
    /// and `hidden` is false.
    pub fn new(what: &str, hidden: bool) -> Self {
        let want = if hidden || !std::io::stderr().is_terminal() {
            Want::Hidden
        } else {
            Want::Terminal(Some(what))
        };
        Bar::with_output(want, "")
    }

    /// Progress of an operation that knows (or counts) its totals of `unit` (`files`,
    /// `packs`): a line on a terminal, status lines on stderr with `json`, else nothing.
    /// `quiet` hides it all.
    pub fn with_totals(unit: &'static str, quiet: bool, json: bool) -> Self {
        let want = if quiet {
            Want::Hidden
        } else if json {
            Want::Json
        } else if std::io::stderr().is_terminal() {
            Want::Terminal(None)
        } else {
            Want::Hidden
        };
        Bar::with_output(want, unit)
    }

    fn with_output(want: Want<'_>, unit: &'static str) -> Self {
        let state = Arc::new(State {
            start: Instant::now(),
            unit,
            items: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            totals: Mutex::new(None),
            last_json_ms: AtomicU64::new(0),
        });
        let out = match want {
            Want::Hidden => Output::Hidden,
            Want::Json => Output::Json,
            Want::Terminal(label) => Output::Terminal(terminal_bar(label, state.clone())),
        };
        Bar {
            out,
            state,
            listing: Listing::Nothing,
        }
    }

    /// Lists a backup's new and modified files (`verbose` 1), and unchanged ones too (2
    /// and more); `quiet` lists nothing.
    pub fn listing(mut self, verbose: u8, quiet: bool) -> Self {
        self.listing = match verbose {
            _ if quiet => Listing::Nothing,
            0 => Listing::Nothing,
            1 => Listing::Changes,
            _ => Listing::All,
        };
        self
    }

    /// A JSON status line, unless one was written less than [`JSON_EVERY`] ago (`force`:
    /// regardless).
    fn json_status(&self, force: bool) {
        let now = self.state.start.elapsed().as_millis() as u64;
        let last = self.state.last_json_ms.load(Ordering::Relaxed);
        if !force
            && (now < last + JSON_EVERY.as_millis() as u64
                || self
                    .state
                    .last_json_ms
                    .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err())
        {
            return;
        }
        let line = self.state.status().json(self.state.unit);
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    }

    fn updated(&self) {
        if matches!(self.out, Output::Json) {
            self.json_status(false);
        }
    }
}

/// An indicatif line on stderr: `[label] status current-file`, the status drawn from
/// `state` at each tick.
fn terminal_bar(label: Option<&str>, state: Arc<State>) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    let template = match label {
        Some(what) => format!("{what} {{status}}  {{wide_msg}}"),
        None => "{status}  {wide_msg}".to_string(),
    };
    let style = ProgressStyle::with_template(&template)
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
        .with_key(
            "status",
            move |_: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = w.write_str(&state.status().line(state.unit));
            },
        );
    bar.set_style(style);
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

impl Progress for Bar {
    fn set_total(&self, bytes: u64) {
        self.set_totals(Totals {
            items: 0,
            bytes,
            complete: true,
        });
    }
    fn set_totals(&self, totals: Totals) {
        *self.state.totals.lock().expect("no panics while locked") = Some(totals);
        self.updated();
    }
    fn add_bytes(&self, n: u64) {
        self.state.bytes.fetch_add(n, Ordering::Relaxed);
        self.updated();
    }
    fn add_item(&self) {
        self.state.items.fetch_add(1, Ordering::Relaxed);
        self.updated();
    }
    fn current(&self, path: &Path) {
        if let Output::Terminal(b) = &self.out {
            b.set_message(printable(path.as_os_str().as_encoded_bytes()));
        }
    }
    fn file_done(&self, path: &Path, status: FileStatus) {
        let wanted = match status {
            FileStatus::New | FileStatus::Modified => Listing::Changes,
            _ => Listing::All,
        };
        if self.listing < wanted {
            return;
        }
        let shown = printable(path.as_os_str().as_encoded_bytes());
        match &self.out {
            Output::Json => {
                let line = serde_json::json!({
                    "message_type": "verbose_status",
                    "action": status.as_str(),
                    "item": shown,
                });
                let _ = writeln!(std::io::stderr().lock(), "{line}");
            }
            Output::Terminal(b) => b.suspend(|| {
                let _ = writeln!(std::io::stdout().lock(), "{:<9} {shown}", status.as_str());
            }),
            Output::Hidden => {
                let _ = writeln!(std::io::stdout().lock(), "{:<9} {shown}", status.as_str());
            }
        }
    }
    fn warn(&self, message: &str) {
        let line = format!("warning: {}", printable(message.as_bytes()));
        match &self.out {
            Output::Terminal(b) => b.suspend(|| eprintln!("{line}")),
            _ => eprintln!("{line}"),
        }
    }
    fn finish(&self) {
        match &self.out {
            Output::Terminal(b) => b.finish_and_clear(),
            Output::Json => self.json_status(true),
            Output::Hidden => {}
        }
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
