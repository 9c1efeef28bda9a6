//! Parsing of repository locations given by users (`-r`, `STRATA_REPOSITORY`, config files).
//!
//! Accepted forms:
//! - a plain path, absolute or relative (`/srv/backup`, `backup`, `./a:b`);
//! - `file:///absolute/path` (percent-escapes such as `%20` are decoded);
//! - `memory://` (a fresh in-memory store, for tests).
//!
//! Anything that starts like a URL scheme (`name:`, at least two characters, as in
//! `sftp://host/x` or `s3:bucket`) and is not one of the above is refused rather than
//! taken as a relative path, so a remote location never silently becomes a local directory.
//! A relative path containing a colon can be written with a leading `./`.

use std::path::PathBuf;

use crate::{Result, StorageError};

/// A parsed repository location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Location {
    /// A local directory.
    Fs(PathBuf),
    /// The in-memory store.
    Memory,
}

const OP: &str = "open";

impl Location {
    /// Parses a location string.
    pub(crate) fn parse(s: &str) -> Result<Location> {
        if s.is_empty() {
            return Err(StorageError::other(OP, "", "empty repository location"));
        }
        let Some(scheme) = scheme_of(s) else {
            return Ok(Location::Fs(PathBuf::from(s)));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "memory" if &s[scheme.len()..] == "://" => Ok(Location::Memory),
            "file" => {
                let rest = s[scheme.len()..].strip_prefix("://").unwrap_or("");
                // `file:///p` has an empty host; `file://localhost/p` is the same place.
                let path = rest.strip_prefix("localhost").unwrap_or(rest);
                if !path.starts_with('/') {
                    return Err(StorageError::other(
                        OP,
                        "",
                        format!("invalid repository URL {s:?}: expected file:///absolute/path"),
                    ));
                }
                Ok(Location::Fs(PathBuf::from(percent_decode(s, path)?)))
            }
            _ => Err(StorageError::other(
                OP,
                "",
                format!(
                    "unsupported repository URL {s:?}: use a local path, file:///path or \
                     memory:// (write ./{s} for a relative path containing ':')"
                ),
            )),
        }
    }
}

/// The URL scheme `s` starts with, if it looks like one (RFC 3986 scheme characters, at
/// least two of them so that a Windows drive letter is not mistaken for a scheme).
fn scheme_of(s: &str) -> Option<&str> {
    let (scheme, _) = s.split_once(':')?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    let valid = first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    (valid && scheme.len() >= 2).then_some(scheme)
}

/// Decodes `%XX` escapes in the path part of a `file://` URL.
fn percent_decode(url: &str, path: &str) -> Result<String> {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = path
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            let Some(b) = hex else {
                return Err(StorageError::other(
                    OP,
                    "",
                    format!("invalid repository URL {url:?}: bad percent-escape"),
                ));
            };
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| {
        StorageError::other(
            OP,
            "",
            format!("invalid repository URL {url:?}: path is not UTF-8"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fs(p: &str) -> Location {
        Location::Fs(PathBuf::from(p))
    }

    #[test]
    fn plain_paths() {
        assert_eq!(Location::parse("/srv/backup").unwrap(), fs("/srv/backup"));
        assert_eq!(Location::parse("backup").unwrap(), fs("backup"));
        assert_eq!(Location::parse("./a:b").unwrap(), fs("./a:b"));
        assert_eq!(Location::parse("C:/repo").unwrap(), fs("C:/repo"));
    }

    #[test]
    fn file_urls() {
        assert_eq!(Location::parse("file:///srv/b").unwrap(), fs("/srv/b"));
        assert_eq!(Location::parse("FILE:///srv/b").unwrap(), fs("/srv/b"));
        assert_eq!(Location::parse("file://localhost/x").unwrap(), fs("/x"));
        assert_eq!(Location::parse("file:///a%20b/c").unwrap(), fs("/a b/c"));
        assert!(Location::parse("file://relative/x").is_err());
        assert!(Location::parse("file:relative").is_err());
        assert!(Location::parse("file:///bad%2").is_err());
    }

    #[test]
    fn memory_and_unsupported() {
        assert_eq!(Location::parse("memory://").unwrap(), Location::Memory);
        assert!(Location::parse("memory://x").is_err());
        assert!(Location::parse("").is_err());
        let err = Location::parse("sftp://host/repo").unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::Other);
        assert!(err.to_string().contains("unsupported repository URL"));
        assert!(Location::parse("s3:bucket/repo").is_err());
    }
}
