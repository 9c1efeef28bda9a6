//! Timeline history files (`00000003.history`): the ancestry of a timeline, written by
//! PostgreSQL when a recovery or promotion starts a new timeline, and archived beside the
//! segments. A restore follows it to know which timeline's segments hold which LSNs.
//!
//! Each line is `parentTLI <tab> switchpoint <tab> reason`: the parent timeline and the LSN
//! where the next timeline left it, oldest first; the reason is free text. Lines starting
//! with `#` and blank lines are ignored (PostgreSQL's `readTimeLineHistory` does the same;
//! like its `sscanf`, any run of blanks separates the fields). The file of timeline T lists
//! T's ancestors only, so the parser is told T.

use super::error::{shown, WalError};
use super::lsn::Lsn;

/// At most this many lines are read; a longer file is refused (a real one has a line per
/// timeline switch of the cluster's life).
pub const MAX_HISTORY_LINES: usize = 10_000;

/// One switch in a timeline's ancestry: timeline `parent` ended at `switch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    pub parent: u32,
    pub switch: Lsn,
    pub reason: String,
}

/// The ancestry of one timeline, from its history file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct History {
    timeline: u32,
    entries: Vec<HistoryEntry>,
}

impl History {
    /// Parses the history file of `timeline`. Refused: a line without a parent and switch
    /// point, parents not strictly increasing or not below `timeline`, switch points going
    /// backwards, more than [`MAX_HISTORY_LINES`] lines.
    pub fn parse(timeline: u32, text: &str) -> Result<History, WalError> {
        let err = |line: usize, reason: String| WalError::History { line, reason };
        if timeline == 0 {
            return Err(WalError::OutOfRange(
                "timeline 0 has no history: timelines start at 1".into(),
            ));
        }
        let mut entries: Vec<HistoryEntry> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let n = i + 1;
            if n > MAX_HISTORY_LINES {
                return Err(err(
                    n,
                    format!(
                        "the file has more than {MAX_HISTORY_LINES} lines: not a timeline history"
                    ),
                ));
            }
            let line = line.trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (parent, rest) = field(line);
            let (switch, rest) = field(rest);
            if switch.is_empty() {
                return Err(err(
                    n,
                    format!(
                        "{} lacks a timeline and a switch point (\"parentTLI<tab>LSN<tab>reason\")",
                        shown(line)
                    ),
                ));
            }
            let parent: u32 = parent
                .parse()
                .ok()
                .filter(|p| *p > 0 && parent.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| {
                    err(
                        n,
                        format!("parent timeline {} is not a number from 1", shown(parent)),
                    )
                })?;
            let switch = Lsn::parse(switch).map_err(|e| err(n, e.to_string()))?;
            let reason = rest.trim();
            if let Some(last) = entries.last() {
                if parent <= last.parent {
                    return Err(err(
                        n,
                        format!(
                            "timeline {parent} follows timeline {}: timelines must increase",
                            last.parent
                        ),
                    ));
                }
                if switch < last.switch {
                    return Err(err(
                        n,
                        format!(
                            "switch point {switch} is before the previous one, {}",
                            last.switch
                        ),
                    ));
                }
            }
            if parent >= timeline {
                return Err(err(
                    n,
                    format!("timeline {parent} cannot be an ancestor of timeline {timeline}"),
                ));
            }
            entries.push(HistoryEntry {
                parent,
                switch,
                reason: reason.to_string(),
            });
        }
        Ok(History { timeline, entries })
    }

    /// The timeline whose history this is.
    pub fn timeline(&self) -> u32 {
        self.timeline
    }

    /// The ancestors, oldest first, each with the LSN where its child branched off.
    pub fn entries(&self) -> &[HistoryEntry] {
        &self.entries
    }

    /// The timeline that wrote `lsn` in this timeline's past: the first ancestor that
    /// switched after `lsn`, else this timeline (PostgreSQL's `tliOfPointInHistory`). A
    /// switch point belongs to the child: the parent's WAL ends just before it.
    pub fn timeline_of(&self, lsn: Lsn) -> u32 {
        self.entries
            .iter()
            .find(|e| lsn < e.switch)
            .map_or(self.timeline, |e| e.parent)
    }

    /// Whether `timeline` is this timeline or one of its ancestors.
    pub fn contains(&self, timeline: u32) -> bool {
        timeline == self.timeline || self.entries.iter().any(|e| e.parent == timeline)
    }
}

/// The first blank-separated field of `s` (leading blanks skipped), and what follows it.
fn field(s: &str) -> (&str, &str) {
    let s = s.trim_start_matches([' ', '\t']);
    // Split at an ASCII byte: a character boundary.
    s.split_at(s.find([' ', '\t']).unwrap_or(s.len()))
}

#[cfg(test)]
#[path = "history_tests.rs"]
mod tests;
