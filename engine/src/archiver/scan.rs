//! The scanner: counts what a backup has in front of it, beside the backup (as restic's
//! scanner does), so that progress can show a percentage and an ETA.
//!
//! It runs on a thread of its own while the archiver works, does nothing but `lstat` and
//! `readdir`, follows the archiver's rules for what is walked (excludes, tag files,
//! `--exclude-larger-than`, `--one-file-system`, pseudo file systems) and reports the regular files and their bytes
//! through [`Progress::set_totals`] as it goes, then once more with `complete` set. It
//! never changes what is backed up: the archiver does not read its numbers. It stops when
//! the backup has finished or is cancelled. A source that changes under it only makes the
//! totals approximate; percentages are capped by whoever shows them.
//!
//! [`Progress::set_totals`]: crate::progress::Progress::set_totals

use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{source, Ctx};
use crate::progress::Totals;

/// How often totals so far are reported while the walk goes on.
const REPORT_EVERY: Duration = Duration::from_millis(100);

/// A directory still to list, with the devices the archiver would compare its entries to.
struct Pending {
    path: PathBuf,
    root_dev: u64,
    dir_dev: u64,
}

struct Scanner<'c, 'a> {
    ctx: &'c Ctx<'a>,
    done: &'c AtomicBool,
    totals: Totals,
    last_report: Instant,
}

/// Walks `roots` (the normalized paths given to backup) and reports their totals, until
/// the walk ends or `done` is set (the backup has finished) or the backup is cancelled.
pub(super) fn scan(ctx: &Ctx<'_>, roots: &[PathBuf], done: &AtomicBool) {
    let mut scanner = Scanner {
        ctx,
        done,
        totals: Totals::default(),
        last_report: Instant::now(),
    };
    if scanner.walk(roots) {
        scanner.totals.complete = true;
        ctx.progress.set_totals(scanner.totals);
    }
}

impl Scanner<'_, '_> {
    fn stopped(&self) -> bool {
        self.done.load(Ordering::Relaxed) || self.ctx.progress.should_stop()
    }

    /// `false` when stopped before the end.
    fn walk(&mut self, roots: &[PathBuf]) -> bool {
        let mut stack = Vec::new();
        for root in roots {
            if self.ctx.excludes.matches(root) {
                continue;
            }
            let Ok(md) = std::fs::symlink_metadata(root) else {
                continue;
            };
            let ft = md.file_type();
            if ft.is_file() {
                self.count_file(&md);
            } else if ft.is_dir() {
                stack.push(Pending {
                    path: root.clone(),
                    root_dev: md.dev(),
                    dir_dev: md.dev(),
                });
            }
        }
        while let Some(dir) = stack.pop() {
            if self.stopped() {
                return false;
            }
            let Ok(entries) = std::fs::read_dir(&dir.path) else {
                continue;
            };
            let mut names: Vec<Vec<u8>> = entries
                .flatten()
                .map(|e| e.file_name().into_vec())
                .collect();
            names.sort(); // as the archiver's: tag files are looked up in sorted names
                          // A directory marked by a tag file (--exclude-caches, --exclude-if-present)
                          // keeps only its tags, as in the archiver.
            if !self.ctx.tag_files.is_empty() {
                if let Some(tags) = super::exclude::marked(&dir.path, &names, &self.ctx.tag_files) {
                    names = tags;
                }
            }
            for name in names {
                let path = dir.path.join(std::ffi::OsString::from_vec(name));
                if self.ctx.excludes.matches(&path) {
                    continue;
                }
                let Ok(md) = std::fs::symlink_metadata(&path) else {
                    continue;
                };
                let ft = md.file_type();
                if !(ft.is_file() || ft.is_dir()) {
                    continue;
                }
                if md.dev() != dir.dir_dev && self.left_out_mount(&path, ft.is_dir(), &md, &dir) {
                    continue;
                }
                if ft.is_file() {
                    self.count_file(&md);
                } else {
                    stack.push(Pending {
                        path,
                        root_dev: dir.root_dev,
                        dir_dev: md.dev(),
                    });
                }
            }
        }
        true
    }

    /// Whether the archiver leaves out what is mounted at `path`: a directory on another
    /// file system with `--one-file-system`, or a pseudo file system not asked for.
    fn left_out_mount(
        &self,
        path: &Path,
        is_dir: bool,
        md: &std::fs::Metadata,
        dir: &Pending,
    ) -> bool {
        if is_dir && self.ctx.one_file_system && md.dev() != dir.root_dev {
            return true;
        }
        !self.ctx.include_pseudo_fs && source::pseudo_fs_at(path).is_some()
    }

    fn count_file(&mut self, md: &std::fs::Metadata) {
        if self
            .ctx
            .exclude_larger_than
            .is_some_and(|max| md.len() > max)
        {
            return;
        }
        self.totals.items += 1;
        self.totals.bytes += md.len();
        if self.last_report.elapsed() >= REPORT_EVERY {
            self.last_report = Instant::now();
            self.ctx.progress.set_totals(self.totals);
        }
    }
}
