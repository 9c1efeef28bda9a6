//! Parsing of repository locations given by users (`-r`, `STRATA_REPOSITORY`, config files).
//!
//! Accepted forms:
//! - a plain path, absolute or relative (`/srv/backup`, `backup`, `./a:b`);
//! - `file:///absolute/path` (percent-escapes such as `%20` are decoded);
//! - `memory://` (a fresh in-memory store, for tests);
//! - `sftp://[user@]host[:port]/absolute/path` (absolute: `~` is refused);
//! - `s3://bucket[/prefix]` (endpoint, region and credentials come from the standard AWS
//!   environment variables; path-style addressing, as S3-compatible servers want).
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
    /// A directory on an SFTP server.
    Sftp {
        user: Option<String>,
        host: String,
        port: Option<u16>,
        /// Absolute, without a trailing `/` (`~` is refused: it would not mean the home
        /// directory).
        path: String,
    },
    /// A bucket (and a prefix in it) of an S3-compatible store.
    S3 { bucket: String, prefix: String },
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
            "sftp" => parse_sftp(s, s[scheme.len()..].strip_prefix("://").unwrap_or("")),
            "s3" => parse_s3(s, s[scheme.len()..].strip_prefix("://").unwrap_or("")),
            _ => Err(StorageError::other(
                OP,
                "",
                format!(
                    "unsupported repository URL {s:?}: use a local path, file:///path, \
                     sftp://user@host/path, s3://bucket/prefix or memory:// (write ./{s} for a \
                     relative path containing ':')"
                ),
            )),
        }
    }
}

fn invalid(url: &str, what: &str) -> StorageError {
    StorageError::other(OP, "", format!("invalid repository URL {url:?}: {what}"))
}

/// `[user@]host[:port]/path` after `sftp://`.
fn parse_sftp(url: &str, rest: &str) -> Result<Location> {
    let Some(slash) = rest.find('/') else {
        return Err(invalid(url, "expected sftp://[user@]host[:port]/path"));
    };
    let (authority, path) = rest.split_at(slash);
    let (user, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) if !u.is_empty() => (Some(percent_decode(url, u)?), h),
        Some(_) => return Err(invalid(url, "empty user name")),
        None => (None, authority),
    };
    let bracketed = hostport.starts_with('[') && hostport.ends_with(']');
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) if !bracketed && (!h.starts_with('[') || h.ends_with(']')) => {
            let port = p
                .parse::<u16>()
                .map_err(|_| invalid(url, "the port is not a number"))?;
            (h, Some(port))
        }
        _ => (hostport, None),
    };
    if host.is_empty() {
        return Err(invalid(url, "no host name"));
    }
    let path = percent_decode(url, path)?;
    if path.starts_with("/~") {
        // SFTP paths are taken as given: `~` would be a directory named `~` below `/`.
        // Refuse rather than write somewhere unexpected.
        return Err(invalid(
            url,
            "paths relative to the home directory are not supported; give the absolute path",
        ));
    }
    if path.len() <= 1 {
        return Err(invalid(url, "no repository path after the host"));
    }
    Ok(Location::Sftp {
        user,
        host: host.to_string(),
        port,
        path: path.trim_end_matches('/').to_string(),
    })
}

/// `bucket[/prefix]` after `s3://`.
fn parse_s3(url: &str, rest: &str) -> Result<Location> {
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let valid = (3..=63).contains(&bucket.len())
        && bucket
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.'));
    if !valid {
        return Err(invalid(
            url,
            "expected s3://bucket/prefix with a bucket name of 3 to 63 lowercase letters, \
             digits, '-' or '.'",
        ));
    }
    Ok(Location::S3 {
        bucket: bucket.to_string(),
        prefix: percent_decode(url, prefix)?.trim_matches('/').to_string(),
    })
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
    fn sftp_urls() {
        let sftp = |user: Option<&str>, host: &str, port, path: &str| Location::Sftp {
            user: user.map(str::to_string),
            host: host.to_string(),
            port,
            path: path.to_string(),
        };
        assert_eq!(
            Location::parse("sftp://ana@box.example:2222/srv/backup/").unwrap(),
            sftp(Some("ana"), "box.example", Some(2222), "/srv/backup")
        );
        assert!(Location::parse("sftp://box/~/backups/repo").is_err());
        assert_eq!(
            Location::parse("sftp://box/srv/r").unwrap(),
            sftp(None, "box", None, "/srv/r")
        );
        assert_eq!(
            Location::parse("sftp://[::1]/r").unwrap(),
            sftp(None, "[::1]", None, "/r")
        );
        assert_eq!(
            Location::parse("sftp://u@[::1]:22/r").unwrap(),
            sftp(Some("u"), "[::1]", Some(22), "/r")
        );
        for bad in [
            "sftp://host",
            "sftp://host/",
            "sftp://@h/r",
            "sftp://h:x/r",
            "sftp:///r",
        ] {
            assert!(Location::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn s3_urls() {
        let s3 = |b: &str, p: &str| Location::S3 {
            bucket: b.to_string(),
            prefix: p.to_string(),
        };
        assert_eq!(Location::parse("s3://strata").unwrap(), s3("strata", ""));
        assert_eq!(
            Location::parse("s3://my-bucket/hosts/web1/").unwrap(),
            s3("my-bucket", "hosts/web1")
        );
        for bad in ["s3://", "s3://ab", "s3://Upper/x", "s3://a_b/x"] {
            assert!(Location::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn memory_and_unsupported() {
        assert_eq!(Location::parse("memory://").unwrap(), Location::Memory);
        assert!(Location::parse("memory://x").is_err());
        assert!(Location::parse("").is_err());
        let err = Location::parse("ftp://host/repo").unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::Other);
        assert!(err.to_string().contains("unsupported repository URL"));
        assert!(Location::parse("s3:bucket/repo").is_err());
    }
}
