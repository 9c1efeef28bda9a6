//! Lists of paths to back up, as `--files-from`, `--files-from-verbatim` and
//! `--files-from-raw` give them (restic's three formats).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// How a list of paths is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathList {
    /// One path a line; blank lines, and lines starting with `#` (after leading
    /// whitespace), are ignored; whitespace around a path is trimmed (`--files-from`).
    Lines,
    /// One path a line, taken as it is (only a trailing `\r` and empty lines dropped):
    /// names with leading spaces or a `#` (`--files-from-verbatim`).
    Verbatim,
    /// Paths separated by NUL bytes, as `find -print0` writes them: any name at all
    /// (`--files-from-raw`).
    Raw,
}

impl PathList {
    /// The paths `bytes` lists, in order.
    pub fn parse(self, bytes: &[u8]) -> Vec<PathBuf> {
        let to_path = |b: &[u8]| PathBuf::from(OsStr::from_bytes(b));
        match self {
            PathList::Raw => bytes
                .split(|&b| b == 0)
                .filter(|p| !p.is_empty())
                .map(to_path)
                .collect(),
            PathList::Verbatim => bytes
                .split(|&b| b == b'\n')
                .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
                .filter(|l| !l.is_empty())
                .map(to_path)
                .collect(),
            PathList::Lines => bytes
                .split(|&b| b == b'\n')
                .map(|l| l.trim_ascii())
                .filter(|l| !l.is_empty() && !l.starts_with(b"#"))
                .map(to_path)
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(list: &[&str]) -> Vec<PathBuf> {
        list.iter().map(PathBuf::from).collect()
    }

    #[test]
    fn each_format_reads_its_own_way() {
        let text = b"# sites\n/var/www/a\n\n  /var/www/b  \r\n #x\n";
        assert_eq!(
            PathList::Lines.parse(text),
            paths(&["/var/www/a", "/var/www/b"])
        );
        assert_eq!(
            PathList::Verbatim.parse(text),
            paths(&["# sites", "/var/www/a", "  /var/www/b  ", " #x"])
        );
        assert_eq!(
            PathList::Raw.parse(b"/a b\n/c\0\0/#d\0"),
            paths(&["/a b\n/c", "/#d"])
        );
    }
}
