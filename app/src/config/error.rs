//! What is wrong with a config file, and where: `FILE:LINE:COLUMN: key: message`.
//!
//! Reading a config collects every problem it finds (a [`Sink`] per file) instead of
//! stopping at the first, so that one `strata config check` shows all of them. Positions
//! come from the byte spans the TOML parser keeps for every key and value, turned into
//! 1-based lines and columns (columns count characters, not bytes). No message carries a
//! secret's value: inline secrets are never quoted back.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// One problem in a config file, with where it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based; 0 when the problem has no place (the file cannot be read).
    pub line: usize,
    pub column: usize,
    /// The dotted key (`projects.shop.schedule`), empty when none.
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem of a config, one per line when displayed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl ConfigErrors {
    /// One error without a place (the file cannot be read).
    pub fn whole_file(file: &Path, message: impl Into<String>) -> ConfigErrors {
        ConfigErrors(vec![ConfigError {
            file: file.to_path_buf(),
            line: 0,
            column: 0,
            key: String::new(),
            message: message.into(),
        }])
    }
}

/// Collects the errors of one file, placing byte offsets as line and column.
pub(crate) struct Sink<'t> {
    file: PathBuf,
    text: &'t str,
    /// The byte offset where each line starts.
    line_starts: Vec<usize>,
    errors: Vec<ConfigError>,
}

impl<'t> Sink<'t> {
    pub(crate) fn new(file: &Path, text: &'t str) -> Sink<'t> {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Sink {
            file: file.to_path_buf(),
            text,
            line_starts,
            errors: Vec::new(),
        }
    }

    /// Records a problem of `key` at the start of `span`.
    pub(crate) fn error(&mut self, span: &Range<usize>, key: &str, message: impl Into<String>) {
        let (line, column) = self.position(span.start);
        self.errors.push(ConfigError {
            file: self.file.clone(),
            line,
            column,
            key: key.to_string(),
            message: message.into(),
        });
    }

    /// The 1-based line and column (in characters) of a byte offset; an offset past the
    /// end or inside a character is moved back to a place that exists.
    pub(crate) fn position(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.line_starts.partition_point(|&s| s <= offset).max(1);
        let start = self.line_starts[line - 1];
        let column = self.text[start..offset].chars().count() + 1;
        (line, column)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// The errors in the order of the file.
    pub(crate) fn finish(mut self) -> ConfigErrors {
        self.errors.sort_by_key(|e| (e.line, e.column));
        self.errors.dedup();
        ConfigErrors(self.errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_become_lines_and_character_columns() {
        let text = "a = 1\nbé = 2\n\nc";
        let sink = Sink::new(Path::new("f"), text);
        assert_eq!(sink.position(0), (1, 1));
        assert_eq!(sink.position(4), (1, 5));
        assert_eq!(sink.position(6), (2, 1));
        // After the two-byte é: column 3, not 4.
        assert_eq!(sink.position(9), (2, 3));
        // Inside the é: moved back to its start.
        assert_eq!(sink.position(8), (2, 2));
        assert_eq!(sink.position(14), (3, 1));
        assert_eq!(sink.position(15), (4, 1));
        assert_eq!(sink.position(999), (4, 2));
    }
}
