//! The one error type of the WAL parsers.
//!
//! Policy: a message says which file or name is wrong and how, and what PostgreSQL writes
//! instead, so that a failing `archive_command` leaves a line in the server log a person can
//! act on. Names and lines taken from input are quoted with their escapes and cut to
//! [`MAX_SHOWN`] characters, so a hostile name cannot forge log lines or flood them. The
//! parsers do not know which file their bytes came from; the caller that does wraps the
//! error with [`WalError::in_file`].

use std::fmt::Write as _;
use std::path::PathBuf;

/// At most this many characters of an untrusted name or line appear in a message.
pub(crate) const MAX_SHOWN: usize = 80;

/// A WAL file name, LSN, segment header, history file or `pg_control` that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalError {
    /// Not a name PostgreSQL gives a file it archives.
    #[error(
        "{name} is not a PostgreSQL WAL file name: {reason} (PostgreSQL archives \
         TTTTTTTTLLLLLLLLSSSSSSSS, TTTTTTTT.history, <segment>.OOOOOOOO.backup and \
         <segment>.partial, in uppercase hexadecimal)"
    )]
    Name { name: String, reason: String },
    /// Not an LSN as PostgreSQL prints one.
    #[error("{text} is not an LSN: {reason} (PostgreSQL prints them as two hexadecimal numbers, like 16/B374D848)")]
    Lsn { text: String, reason: &'static str },
    /// A WAL segment size PostgreSQL cannot have.
    #[error("{size} bytes is not a WAL segment size: PostgreSQL's are a power of two from 1 MiB to 1 GiB")]
    SegmentSize { size: u64 },
    /// A segment number or name that does not exist for the given segment size or timeline.
    #[error("{0}")]
    OutOfRange(String),
    /// The first page of a segment is not a valid long page header.
    #[error("not the start of a PostgreSQL WAL segment: {0}")]
    Header(String),
    /// A segment's header disagrees with the name it is archived under.
    #[error(
        "{name}: its header does not match its name: {what}; the file is damaged or another \
         file was put in its place (PostgreSQL names a segment after its position)"
    )]
    NameMismatch { name: String, what: String },
    /// A line of a timeline history file cannot be read, or the file breaks its rules.
    #[error("timeline history, line {line}: {reason}")]
    History { line: usize, reason: String },
    /// `global/pg_control` is damaged or not one.
    #[error("{}: {reason}", path.display())]
    Control { path: PathBuf, reason: String },
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `source`, about the file named `file`.
    #[error("{file}: {source}")]
    InFile {
        file: String,
        #[source]
        source: Box<WalError>,
    },
}

impl WalError {
    /// The same error, said of `file` (a WAL file's name or path): the parsers only see
    /// bytes, the caller knows where they came from.
    pub fn in_file(self, file: impl std::fmt::Display) -> WalError {
        WalError::InFile {
            file: file.to_string(),
            source: Box::new(self),
        }
    }

    pub(crate) fn name(name: &str, reason: impl Into<String>) -> WalError {
        WalError::Name {
            name: shown(name),
            reason: reason.into(),
        }
    }

    pub(crate) fn lsn(text: &str, reason: &'static str) -> WalError {
        WalError::Lsn {
            text: shown(text),
            reason,
        }
    }
}

/// `s` quoted with Rust's escapes (no control character reaches a log), cut to
/// [`MAX_SHOWN`] characters with a mark where it was cut.
pub(crate) fn shown(s: &str) -> String {
    let mut out = String::from("\"");
    for (i, c) in s.chars().enumerate() {
        if i == MAX_SHOWN {
            out.push_str("\"…");
            return out;
        }
        let _ = write!(out, "{}", c.escape_debug());
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untrusted_text_is_escaped_and_cut() {
        assert_eq!(shown("a\nb\u{1b}"), r#""a\nb\u{1b}""#);
        let long = "x".repeat(500);
        let s = shown(&long);
        assert!(s.len() < 100, "{s}");
        assert!(s.ends_with("\"…"));
    }

    #[test]
    fn in_file_names_the_file_before_the_reason() {
        let e = WalError::Header("too short".into()).in_file("000000010000000000000001");
        assert_eq!(
            e.to_string(),
            "000000010000000000000001: not the start of a PostgreSQL WAL segment: too short"
        );
    }
}
