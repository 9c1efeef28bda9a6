//! Include/exclude glob patterns, shared by backup and restore.
//!
//! A pattern without `/` matches an entry's base name at any depth (`*.log`); a pattern
//! with `/` matches the whole absolute path (`/var/cache/**`). `*` does not cross `/`;
//! `**` does.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::{EngineError, Result};

/// A compiled set of patterns.
#[derive(Debug, Clone)]
pub struct Filter {
    names: GlobSet,
    paths: GlobSet,
    empty: bool,
}

impl Filter {
    pub fn new(patterns: &[String]) -> Result<Self> {
        let mut names = GlobSetBuilder::new();
        let mut paths = GlobSetBuilder::new();
        for p in patterns {
            let glob = GlobBuilder::new(p)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| EngineError::Invalid(format!("invalid pattern {p:?}: {e}")))?;
            if p.contains('/') {
                paths.add(glob);
            } else {
                names.add(glob);
            }
        }
        let build = |b: GlobSetBuilder| {
            b.build()
                .map_err(|e| EngineError::Invalid(format!("invalid patterns: {e}")))
        };
        Ok(Filter {
            names: build(names)?,
            paths: build(paths)?,
            empty: patterns.is_empty(),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.empty
    }

    /// Whether the absolute `path` (as stored in a snapshot) matches any pattern.
    pub fn matches(&self, path: &Path) -> bool {
        if self.empty {
            return false;
        }
        if self.paths.is_match(path) {
            return true;
        }
        match path.file_name() {
            Some(name) => self.names.is_match(Path::new(name)),
            None => false,
        }
    }

    /// The patterns of an exclude file (`--exclude-file`, as restic reads it): one a line,
    /// whitespace around it trimmed, blank lines and lines starting with `#` ignored.
    pub fn patterns_from_text(text: &str) -> Vec<String> {
        Self::numbered_patterns(text)
            .into_iter()
            .map(|(_, p)| p)
            .collect()
    }

    /// [`Filter::patterns_from_text`] with each pattern's line number (from 1), for
    /// errors that name the line.
    pub fn numbered_patterns(text: &str) -> Vec<(usize, String)> {
        text.lines()
            .enumerate()
            .map(|(n, l)| (n + 1, l.trim()))
            .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
            .map(|(n, l)| (n, l.to_string()))
            .collect()
    }

    /// Like [`Filter::matches`] for a path given as raw bytes.
    pub fn matches_bytes(&self, path: &[u8]) -> bool {
        self.matches(Path::new(std::ffi::OsStr::from_bytes(path)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_paths() {
        let f = Filter::new(&["*.log".into(), "/var/cache/**".into(), "/etc/*".into()]).unwrap();
        assert!(f.matches(Path::new("/a/b/x.log")));
        assert!(!f.matches(Path::new("/a/b/x.log.gz")));
        assert!(f.matches(Path::new("/var/cache/a/b")));
        assert!(f.matches(Path::new("/etc/passwd")));
        assert!(!f.matches(Path::new("/etc/ssl/certs")));
        assert!(!Filter::new(&[]).unwrap().matches(Path::new("/x")));
        assert!(Filter::new(&["[".into()]).is_err());
    }

    #[test]
    fn exclude_files_hold_one_pattern_a_line_and_comments() {
        let text = "# caches\n*.tmp\n\n   /var/cache/**  \r\n  # indented comment\nnode_modules";
        assert_eq!(
            Filter::patterns_from_text(text),
            ["*.tmp", "/var/cache/**", "node_modules"]
        );
    }
}
