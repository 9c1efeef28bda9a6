//! Reading a restore back: every file it wrote is read from the target and checked
//! against the snapshot's content ids ([`content_differs`]), after the restore, so that
//! what is on disk now (not what was written) is what is checked.

use std::collections::HashSet;
use std::path::Path;

use strata_format::snapshot::SnapshotFile;
use strata_format::tree::{NodeKind, Tree};

use super::{content_differs, target_path, target_problem, RestoreOptions};
use crate::filter::Filter;
use crate::progress::Progress;
use crate::report::{Finding, FindingKind};
use crate::{Repository, Result};

/// What the read-back found.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct VerifyStats {
    /// Files read back, and their bytes.
    pub files: u64,
    pub bytes: u64,
    /// Files that do not hold the snapshot's content, each with its path in the snapshot;
    /// the message reads "path: what differs".
    pub mismatches: Vec<Finding>,
}

/// Walks the snapshot as the restore did and checks every file it wrote.
pub(super) struct Verifier<'a> {
    repo: &'a Repository,
    target: &'a Path,
    inc: Filter,
    exc: Filter,
    /// Left alone by the restore (not written, so not checked).
    skip: &'a HashSet<Vec<u8>>,
    /// Reported as not restored already.
    failed: &'a HashSet<Vec<u8>>,
    progress: &'a dyn Progress,
    stats: VerifyStats,
}

impl<'a> Verifier<'a> {
    pub(super) fn new(
        repo: &'a Repository,
        target: &'a Path,
        opts: &RestoreOptions,
        skip: &'a HashSet<Vec<u8>>,
        failed: &'a HashSet<Vec<u8>>,
        progress: &'a dyn Progress,
    ) -> Result<Self> {
        Ok(Verifier {
            repo,
            target,
            inc: Filter::new(&opts.includes)?,
            exc: Filter::new(&opts.excludes)?,
            skip,
            failed,
            progress,
            stats: VerifyStats::default(),
        })
    }

    pub(super) fn run(mut self, snapshot: &SnapshotFile) -> Result<VerifyStats> {
        let root = self.repo.load_tree(&snapshot.tree)?;
        let all = self.inc.is_empty();
        self.dir(root, b"", all, 0)?;
        Ok(self.stats)
    }

    fn dir(&mut self, tree: Tree, prefix: &[u8], included: bool, depth: usize) -> Result<()> {
        crate::treewalk::check_depth(depth, prefix)?;
        for node in tree.nodes {
            let mut path = prefix.to_vec();
            path.push(b'/');
            path.extend_from_slice(&node.name);
            if self.exc.matches_bytes(&path)
                || self.skip.contains(&path)
                || self.failed.contains(&path)
            {
                continue;
            }
            let here = included || self.inc.matches_bytes(&path);
            match &node.kind {
                NodeKind::Dir { subtree } => {
                    // An unreadable subtree was reported by the restore.
                    if let Ok(sub) = self.repo.load_tree(subtree) {
                        self.dir(sub, &path, here, depth + 1)?;
                    }
                }
                NodeKind::File { content } if here => {
                    crate::progress::check_stop(self.progress)?;
                    let full = target_path(self.target, &path);
                    let problem = match content_differs(self.repo, &full, content, node.size) {
                        Ok(None) => None,
                        Ok(Some(why)) => Some(why),
                        Err(e) => Some(format!("cannot be read back: {e}")),
                    };
                    self.stats.files += 1;
                    self.stats.bytes = self.stats.bytes.saturating_add(node.size);
                    if let Some(why) = problem {
                        let shown = String::from_utf8_lossy(&path).into_owned();
                        let finding = target_problem(
                            FindingKind::TargetWriteFailed,
                            format!("{shown}: read back, it does not hold the snapshot's content: {why}"),
                        )
                        .at_path(path.as_slice());
                        self.progress.warn(&finding.message);
                        self.stats.mismatches.push(finding);
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archiver::{backup_paths, BackupOptions};
    use crate::progress::NoProgress;
    use crate::restorer::{restore, Overwrite};

    /// A file changed after it was restored (here: one byte, size and mtime kept) is found
    /// by the read-back, and the file left as restored is not.
    #[test]
    fn a_file_changed_after_the_restore_is_a_mismatch() {
        let backend = crate::test_support::memory_repository();
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().canonicalize().unwrap().join("src");
        std::fs::create_dir(&src).unwrap();
        let content: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(src.join("big"), &content).unwrap();
        std::fs::write(src.join("small"), b"small file").unwrap();
        let repo = Repository::open(backend.clone(), crate::test_support::PASSWORD).unwrap();
        let saved = backup_paths(
            &repo,
            std::slice::from_ref(&src),
            &BackupOptions::default(),
            &NoProgress,
        )
        .unwrap();
        let repo = Repository::open(backend, crate::test_support::PASSWORD).unwrap();
        let target = tmp.path().join("target");
        let restore_opts = RestoreOptions {
            overwrite: Overwrite::Always,
            verify: true,
            ..Default::default()
        };
        let stats = restore(&repo, &saved.snapshot, &target, &restore_opts, &NoProgress).unwrap();
        let verified = stats.verify.unwrap();
        assert_eq!(verified.files, 2);
        assert!(verified.mismatches.is_empty(), "{:?}", verified.mismatches);

        let big = target.join(src.strip_prefix("/").unwrap()).join("big");
        let mut changed = content.clone();
        changed[2_500_000] ^= 1;
        std::fs::write(&big, &changed).unwrap();
        let none = HashSet::new();
        let target = target.canonicalize().unwrap();
        let checker =
            Verifier::new(&repo, &target, &restore_opts, &none, &none, &NoProgress).unwrap();
        let found = checker.run(&saved.snapshot).unwrap();
        assert_eq!(found.files, 2);
        assert_eq!(found.mismatches.len(), 1, "{:?}", found.mismatches);
        let m = &found.mismatches[0];
        assert!(m.message.contains("/big: read back"), "{}", m.message);
        assert!(m.message.contains("differ"), "{}", m.message);
    }
}
