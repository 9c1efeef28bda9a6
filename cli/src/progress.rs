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

mod status;

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use strata_engine::progress::{FileStatus, Progress, Totals};

use crate::output::printable;
use status::Status;

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
    fn wants_totals(&self) -> bool {
        !matches!(self.out, Output::Hidden)
    }
}
