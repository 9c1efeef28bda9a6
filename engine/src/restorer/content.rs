//! Writing file contents pack by pack.
//!
//! The blobs every restored file needs are grouped by the pack holding them and sorted by
//! offset; nearby blobs are read together with one ranged read of at most [`RUN_LIMIT`]
//! bytes, so each needed part of a pack is read once however many files share it. Runs are
//! decoded (decrypted, decompressed, verified against their ids) in parallel, and each blob
//! is written with positional writes to every place that needs it. A file is created when
//! its first blob arrives and gets its metadata through the still-open descriptor when its
//! last blob is written. Memory is bounded by the runs in flight (one per worker thread).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Mutex;

use rayon::prelude::*;
use strata_format::blob::BlobType;
use strata_format::id::BlobId;
use strata_format::tree::{Node, NodeKind};

use super::{clear, target_problem, Fail};
use crate::meta::apply_file_metadata;
use crate::packread::{Held, PackFile};
use crate::progress::Progress;
use crate::report::{Finding, FindingKind, ObjectRef};
use crate::Repository;

/// The most bytes one ranged read covers (unless a single blob is larger).
pub(super) const RUN_LIMIT: u64 = 2 << 20;
/// Needed blobs at most this far apart are read together, gap included.
pub(super) const MAX_GAP: u64 = 256 << 10;

/// A file whose content is restored.
pub(super) struct FileToWrite<'a> {
    /// Absolute path in the snapshot (it is written to the same path below the target).
    pub snapshot_path: &'a [u8],
    pub node: &'a Node,
}

/// Where a blob's content goes: a file (by position) at an offset.
#[derive(Clone, Copy)]
struct Target {
    file: u32,
    offset: u64,
}

struct BlobJob {
    id: BlobId,
    offset: u64,
    length: u64,
    /// Plaintext length the index records: where the next blob of a file starts.
    raw_length: u64,
    /// Most blobs go to one place; others are listed in `more` (no allocation otherwise).
    first: Target,
    more: Vec<Target>,
}

impl BlobJob {
    fn targets(&self) -> impl Iterator<Item = &Target> {
        std::iter::once(&self.first).chain(&self.more)
    }
}

/// Blobs of one pack read with one ranged read.
struct Run {
    pack: u32,
    start: u64,
    end: u64,
    blobs: Vec<BlobJob>,
}

#[derive(Default)]
struct FileState {
    /// Blob writes still to do.
    remaining: u32,
    /// (device, inode) of the file once created: a later open by path must find the same
    /// file (on a case-insensitive file system another entry may have taken the name).
    created: Option<(u64, u64)>,
    /// Failed and already reported: nothing more is done to it.
    failed: bool,
}

/// What the content phase reports back.
pub(super) struct Outcome {
    pub bytes: u64,
    /// Files whose content (and metadata) could not be restored; already reported.
    pub failed: u64,
    /// Their paths in the snapshot (hard links to them are not made).
    pub failed_paths: Vec<Vec<u8>>,
}

struct Writer<'a, 'f> {
    repo: &'a Repository,
    target: &'a Path,
    files: &'a [FileToWrite<'f>],
    states: Vec<Mutex<FileState>>,
    is_root: bool,
    progress: &'a dyn Progress,
    fail: Fail<'a>,
}

/// Restores the content and metadata of `files`. Problems are reported through `fail`, one
/// per file; the rest of the restore goes on.
pub(super) fn write_files(
    repo: &Repository,
    target: &Path,
    files: &[FileToWrite<'_>],
    is_root: bool,
    progress: &dyn Progress,
    fail: Fail<'_>,
) -> Outcome {
    let mut w = Writer {
        repo,
        target,
        files,
        states: Vec::with_capacity(files.len()),
        is_root,
        progress,
        fail,
    };
    let (runs, empty) = w.plan();
    empty.par_iter().for_each(|&i| w.write(i, 0, &[], true));
    repo.with_read_threads(|| runs.par_iter().for_each(|run| w.run(run)));
    let mut out = Outcome {
        bytes: 0,
        failed: 0,
        failed_paths: Vec::new(),
    };
    for (i, state) in w.states.iter().enumerate() {
        let mut s = state.lock().expect("no panics while locked");
        if s.remaining > 0 && !s.failed {
            w.fail_file(
                i as u32,
                &mut s,
                target_problem(
                    FindingKind::IncompleteContent,
                    "not all content was written",
                ),
            );
        }
        if s.failed {
            out.failed += 1;
            out.failed_paths.push(files[i].snapshot_path.to_vec());
        } else {
            out.bytes = out.bytes.saturating_add(files[i].node.size);
        }
    }
    out
}

impl Writer<'_, '_> {
    /// Groups the blobs of every file by pack; returns the reads to do and the files that
    /// have no content. Files whose blobs are not all in the index are reported here.
    fn plan(&mut self) -> (Vec<Run>, Vec<u32>) {
        let index = self.repo.index();
        let mut jobs: HashMap<BlobId, (u32, usize)> = HashMap::new();
        let mut by_pack: HashMap<u32, Vec<BlobJob>> = HashMap::new();
        let mut empty = Vec::new();
        for (i, f) in self.files.iter().enumerate() {
            let i = i as u32;
            let NodeKind::File { content } = &f.node.kind else {
                unreachable!("only files are planned as files")
            };
            let mut state = FileState::default();
            match self.content_problem(content, f.node.size) {
                Some(problem) => {
                    (self.fail)(
                        f.snapshot_path,
                        problem.reworded(|why| format!("{why}; not restored")),
                    );
                    state.failed = true;
                }
                None if content.is_empty() => empty.push(i),
                None => {
                    let mut offset = 0u64;
                    for id in content {
                        let loc = index.get(id).expect("checked above");
                        let target = Target { file: i, offset };
                        offset += loc.raw_length as u64;
                        state.remaining += 1;
                        match jobs.get(id) {
                            Some(&(pack, pos)) => {
                                by_pack.get_mut(&pack).expect("recorded with the job")[pos]
                                    .more
                                    .push(target)
                            }
                            None => {
                                let list = by_pack.entry(loc.pack).or_default();
                                jobs.insert(*id, (loc.pack, list.len()));
                                list.push(BlobJob {
                                    id: *id,
                                    offset: loc.offset as u64,
                                    length: loc.length as u64,
                                    raw_length: loc.raw_length as u64,
                                    first: target,
                                    more: Vec::new(),
                                });
                            }
                        }
                    }
                }
            }
            self.states.push(Mutex::new(state));
        }
        let mut packs: Vec<(u32, Vec<BlobJob>)> = by_pack.into_iter().collect();
        packs.sort_unstable_by_key(|(p, _)| *p);
        let mut runs = Vec::new();
        for (pack, mut blobs) in packs {
            blobs.sort_unstable_by_key(|b| b.offset);
            let mut run: Option<Run> = None;
            for b in blobs {
                let end = b.offset + b.length;
                if let Some(r) = &mut run {
                    if b.offset >= r.end
                        && b.offset - r.end <= MAX_GAP
                        && end - r.start <= RUN_LIMIT
                    {
                        r.end = end;
                        r.blobs.push(b);
                        continue;
                    }
                    runs.push(run.take().expect("checked above"));
                }
                run = Some(Run {
                    pack,
                    start: b.offset,
                    end,
                    blobs: vec![b],
                });
            }
            runs.extend(run);
        }
        (runs, empty)
    }

    /// What is wrong with a file's content, if anything: a blob that is not an indexed
    /// data blob, or lengths that do not add up to the recorded size.
    fn content_problem(&self, content: &[BlobId], size: u64) -> Option<Finding> {
        let index = self.repo.index();
        let mut total = 0u64;
        for id in content {
            let blob = Some(ObjectRef::blob(BlobType::Data, *id));
            match index.get(id) {
                None => {
                    return Some(Finding::new(
                        FindingKind::MissingBlob,
                        blob,
                        format!("data blob {id} is not in the index"),
                    ))
                }
                Some(loc) if loc.blob_type != BlobType::Data => {
                    return Some(Finding::new(
                        FindingKind::BlobTypeMismatch,
                        blob,
                        format!("blob {id} is a {} blob, not data", loc.blob_type.name()),
                    ))
                }
                Some(loc) => total = total.saturating_add(loc.raw_length as u64),
            }
        }
        (total != size).then(|| {
            Finding::new(
                FindingKind::ContentSizeMismatch,
                None,
                format!("content is {total} bytes but the snapshot recorded {size}"),
            )
        })
    }

    /// Reads, verifies and writes out one run of blobs.
    fn run(&self, run: &Run) {
        // Cancelled: the files this run would have finished stay incomplete, and are
        // removed as every file that could not be restored in full is.
        if self.progress.should_stop() {
            return;
        }
        let (pack, size) = self.repo.index().pack(run.pack);
        let read = PackFile::indexed(&pack, size, Held::FileContent).read(
            self.repo,
            run.start,
            run.end - run.start,
        );
        let bytes = match read {
            Ok(b) => b,
            Err(e) => {
                let problem = Finding::new(
                    FindingKind::UnreadablePack,
                    Some(ObjectRef::pack(pack)),
                    e.to_string(),
                );
                for b in &run.blobs {
                    self.fail_targets(b, &problem);
                }
                return;
            }
        };
        for b in &run.blobs {
            let at = (b.offset - run.start) as usize;
            let stored = &bytes[at..at + b.length as usize];
            let damaged = |message: String| {
                Finding::new(
                    FindingKind::DamagedBlob,
                    Some(ObjectRef::blob(BlobType::Data, b.id)),
                    message,
                )
            };
            match self
                .repo
                .decode_stored_blob(BlobType::Data, &b.id, &pack, stored)
            {
                Ok(data) if data.len() as u64 != b.raw_length => self.fail_targets(
                    b,
                    &damaged(format!(
                        "blob {} decodes to {} bytes, the index records {}",
                        b.id,
                        data.len(),
                        b.raw_length
                    )),
                ),
                Ok(data) => {
                    let zero = data.iter().all(|&x| x == 0);
                    for t in b.targets() {
                        self.write(t.file, t.offset, &data, zero);
                    }
                }
                Err(e) => self.fail_targets(b, &damaged(e.to_string())),
            }
        }
    }

    fn fail_targets(&self, blob: &BlobJob, problem: &Finding) {
        for t in blob.targets() {
            let mut s = self.states[t.file as usize]
                .lock()
                .expect("no panics while locked");
            if !s.failed {
                self.fail_file(t.file, &mut s, problem.clone());
            }
        }
    }

    /// Marks a file failed and reports it, once. A file this restore already created is
    /// incomplete (sized in full, holes where content is missing): it is removed, so that
    /// nothing is left that looks restored. Called with the file's state locked, so no
    /// write to it is under way.
    fn fail_file(&self, file: u32, s: &mut FileState, problem: Finding) {
        s.failed = true;
        let f = &self.files[file as usize];
        let outcome = match s.created {
            None => "not restored".to_string(),
            Some(identity) => {
                let path = super::target_path(self.target, f.snapshot_path);
                match remove_if_same(&path, identity) {
                    Ok(()) => "the incomplete file was removed".to_string(),
                    Err(e) => format!("the incomplete file could not be removed: {e}"),
                }
            }
        };
        (self.fail)(
            f.snapshot_path,
            problem.reworded(|why| format!("{why}; {outcome}")),
        );
    }

    /// Writes one blob into a file (creating it first), and finishes the file when it was
    /// its last blob. `data` empty with `remaining == 0` finishes a file without content.
    fn write(&self, file: u32, offset: u64, data: &[u8], zero: bool) {
        let f = &self.files[file as usize];
        let mut s = self.states[file as usize]
            .lock()
            .expect("no panics while locked");
        if s.failed {
            return;
        }
        let path = super::target_path(self.target, f.snapshot_path);
        let result = (|| {
            use std::os::unix::fs::MetadataExt;
            let handle = if let Some(identity) = s.created {
                let h = OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&path)?;
                let md = h.metadata()?;
                if (md.dev(), md.ino()) != identity {
                    return Err(std::io::Error::other(
                        "replaced by another entry of the same name while restored \
                         (case-insensitive file system?)",
                    ));
                }
                h
            } else {
                let h = create(&path)?;
                let md = h.metadata()?;
                s.created = Some((md.dev(), md.ino()));
                if f.node.size > 0 {
                    // Holes (all-zero blocks are not written) up to the end.
                    h.set_len(f.node.size)?;
                }
                h
            };
            if !zero {
                write_sparse(&handle, data, offset)?;
            }
            Ok::<_, std::io::Error>(handle)
        })();
        match result {
            Ok(handle) => {
                self.progress.add_bytes(data.len() as u64);
                s.remaining = s.remaining.saturating_sub(1);
                if s.remaining == 0 {
                    if let Err(e) = apply_file_metadata(&handle, f.node, self.is_root) {
                        (self.fail)(
                            f.snapshot_path,
                            target_problem(FindingKind::MetadataNotApplied, e),
                        );
                    }
                    self.progress.add_item();
                }
            }
            Err(e) => self.fail_file(
                file,
                &mut s,
                target_problem(FindingKind::TargetWriteFailed, e.to_string()),
            ),
        }
    }
}

/// Removes the file at `path` if it is still the one this restore created (another entry
/// may have taken the name on a case-insensitive file system).
fn remove_if_same(path: &Path, identity: (u64, u64)) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::symlink_metadata(path)?;
    if (md.dev(), md.ino()) != identity {
        return Err(std::io::Error::other(
            "another entry has taken its name (case-insensitive file system?)",
        ));
    }
    std::fs::remove_file(path)
}

/// Creates a new file for writing, never following a symlink; an entry in the way (not a
/// directory) is removed first.
fn create(path: &std::path::Path) -> std::io::Result<File> {
    let open = || {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(0o600)
            .open(path)
    };
    match open() {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            clear(path, false)?;
            open()
        }
        other => other,
    }
}

/// Writes `data` at `offset`, skipping all-zero blocks so they stay holes (the file is
/// new and sized, so unwritten ranges read as zeros). Consecutive blocks with data are
/// written with one call.
fn write_sparse(f: &File, data: &[u8], offset: u64) -> std::io::Result<()> {
    const BLOCK: usize = 64 * 1024;
    let mut pos = 0;
    while pos < data.len() {
        let block_end = |p: usize| (p + BLOCK).min(data.len());
        if data[pos..block_end(pos)].iter().all(|&b| b == 0) {
            pos = block_end(pos);
            continue;
        }
        let start = pos;
        while pos < data.len() && data[pos..block_end(pos)].iter().any(|&b| b != 0) {
            pos = block_end(pos);
        }
        f.write_all_at(&data[start..pos], offset + start as u64)?;
    }
    Ok(())
}
