//! The archiver: turns file trees and streams into blobs, trees and a snapshot.
//!
//! Directories are walked recursively; the entries of each directory are archived in
//! parallel on rayon (nested directories too, by work stealing), so both cores chunk, hash,
//! compress and encrypt. Full packs go to uploader threads over a bounded queue. Files whose
//! size, mtime, ctime and inode match the parent snapshot are not read: their blob list is
//! reused. Order of writes: packs, then the index, then the snapshot.
//!
//! The source is not trusted to hold still or to behave like stored data: pseudo file
//! systems are skipped, and a file is read only if it is still the one listed, without
//! ever waiting on a FIFO put in its place ([`source`]).

mod exclude;
mod file;
mod lists;
mod roots;
mod scan;
mod source;
mod walk;

use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use strata_format::blob::BlobType;
use strata_format::chunker::ChunkerParams;
use strata_format::id::{BlobId, SnapshotId};
use strata_format::snapshot::{SnapshotFile, SnapshotSummary, SourceKind};
use strata_format::tree::{Node, NodeKind, Tree};
use strata_storage::FileType;

use crate::filter::Filter;
use crate::meta::NameCache;
use crate::packer::Packer;
use crate::progress::{Phase, Progress};
use crate::report::{Finding, FindingKind};
use crate::{snapshots, EngineError, Repository, Result};

pub use exclude::{TagFile, CACHEDIR_SIGNATURE, CACHEDIR_TAG};
pub use lists::PathList;

/// What to back up and how to label it.
#[derive(Debug, Clone, Default)]
pub struct BackupOptions {
    pub tags: Vec<String>,
    /// Host name recorded in the snapshot (default: this machine's).
    pub hostname: Option<String>,
    pub excludes: Vec<String>,
    /// Leave out the contents of directories holding a `CACHEDIR.TAG` with the standard
    /// signature, keeping the tag file itself (`--exclude-caches`).
    pub exclude_caches: bool,
    /// Leave out the contents of directories holding one of these files, keeping the
    /// file itself (`--exclude-if-present NAME[:HEADER]`).
    pub exclude_if_present: Vec<TagFile>,
    /// Leave out regular files larger than this many bytes (`--exclude-larger-than`).
    pub exclude_larger_than: Option<u64>,
    /// Read and count everything as a backup would, and write nothing to the repository:
    /// no pack, no index, no snapshot (`--dry-run`).
    pub dry_run: bool,
    /// Do not descend into directories on other filesystems than the backed-up path.
    pub one_file_system: bool,
    /// Back up pseudo file systems (proc, sysfs, cgroup, ...) too; by default each mount
    /// of one is skipped and reported, and a path given on one is refused (see `source`).
    pub include_pseudo_fs: bool,
    /// Parent snapshot for change detection (default: latest of the same host and paths).
    pub parent: Option<SnapshotId>,
    /// Snapshot time (default: now).
    pub time_ns: Option<i64>,
    /// Project the snapshot belongs to (retention groups by it).
    pub project: Option<String>,
    /// Retention hold: `forget` keeps the snapshot until this time (Unix nanoseconds).
    pub keep_until_ns: Option<i64>,
    /// An entry that vanishes while the backup reads it is left out silently rather than
    /// reported: for a source that deletes files as it runs and replays the deletion on
    /// restore (a PostgreSQL data directory during a base backup).
    pub ignore_vanished: bool,
}

impl BackupOptions {
    /// The options of a safety snapshot (what a restore replaces, saved first): these
    /// labels (host, project, tags, hold) and `tag`, and nothing that could leave out or
    /// skip what is at risk — no excludes, no tag files, no size limit, no dry run, across
    /// file systems — whatever the caller's backup options say.
    pub fn for_safety_snapshot(&self, tag: &str) -> BackupOptions {
        let mut tags = self.tags.clone();
        if !tags.iter().any(|t| t == tag) {
            tags.push(tag.to_string());
        }
        BackupOptions {
            tags,
            hostname: self.hostname.clone(),
            project: self.project.clone(),
            keep_until_ns: self.keep_until_ns,
            ..BackupOptions::default()
        }
    }
}

/// The outcome of a backup.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct BackupResult {
    /// The snapshot saved; all zeros after a dry run, which saves none.
    pub snapshot_id: SnapshotId,
    /// A dry run: `snapshot` and its summary say what a backup would have saved and
    /// added; nothing was written.
    pub dry_run: bool,
    pub snapshot: SnapshotFile,
    /// Source entries that could not be read and were left out, each with its path on
    /// the source; the message reads "path: reason".
    pub errors: Vec<Finding>,
    /// Mount points of pseudo file systems that were left out (not errors).
    pub skipped_pseudo_fs: Vec<SkippedFs>,
}

/// A mount point of a pseudo file system that a backup left out.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SkippedFs {
    pub path: PathBuf,
    /// The file system's type, as `mount` names it (`proc`, `sysfs`, ...).
    pub fs_type: String,
}

#[derive(Default)]
struct Counters {
    files_new: AtomicU64,
    files_changed: AtomicU64,
    files_unchanged: AtomicU64,
    dirs: AtomicU64,
    bytes_read: AtomicU64,
    /// The sizes of files reused unread from the parent (the rest of `bytes_total`).
    bytes_unchanged: AtomicU64,
}

/// An [`Epilogue`] in a backup: `output` is the `source_meta` once it ran.
struct EpilogueState<'a> {
    dir: PathBuf,
    run: EpilogueFn<'a>,
    output: Option<Vec<(String, String)>>,
}

/// State shared by every thread of one backup.
struct Ctx<'a> {
    epilogue: Option<Mutex<EpilogueState<'a>>>,
    ignore_vanished: bool,
    repo: &'a Repository,
    packer: Packer<'a>,
    excludes: Filter,
    tag_files: Vec<exclude::TagFile>,
    exclude_larger_than: Option<u64>,
    dry_run: bool,
    names: NameCache,
    progress: &'a dyn Progress,
    one_file_system: bool,
    include_pseudo_fs: bool,
    counters: Counters,
    errors: Mutex<Vec<Finding>>,
    skipped: Mutex<Vec<SkippedFs>>,
}

impl<'a> Ctx<'a> {
    fn new(repo: &'a Repository, opts: &BackupOptions, progress: &'a dyn Progress) -> Result<Self> {
        if repo.index_is_metadata_only() {
            return Err(EngineError::Invalid(
                "a backup needs the repository's whole index (opened for metadata only)".into(),
            ));
        }
        Ok(Ctx {
            epilogue: None,
            ignore_vanished: opts.ignore_vanished,
            repo,
            packer: if opts.dry_run {
                Packer::dry_run(repo)
            } else {
                Packer::new(repo)
            },
            excludes: Filter::new(&opts.excludes)?,
            tag_files: opts
                .exclude_caches
                .then(exclude::TagFile::cachedir)
                .into_iter()
                .chain(opts.exclude_if_present.iter().cloned())
                .collect(),
            exclude_larger_than: opts.exclude_larger_than,
            dry_run: opts.dry_run,
            names: NameCache::default(),
            progress,
            one_file_system: opts.one_file_system,
            include_pseudo_fs: opts.include_pseudo_fs,
            counters: Counters::default(),
            errors: Mutex::new(Vec::new()),
            skipped: Mutex::new(Vec::new()),
        })
    }

    /// A snapshot of this backup with the fields every source kind shares.
    fn snapshot(
        &self,
        opts: &BackupOptions,
        time_ns: i64,
        paths: Vec<String>,
        source: SourceKind,
        tree: BlobId,
    ) -> SnapshotFile {
        SnapshotFile {
            time_ns,
            hostname: opts.hostname.clone().unwrap_or_else(crate::hostname),
            username: crate::username(),
            uid: nix::unistd::getuid().as_raw(),
            gid: nix::unistd::getgid().as_raw(),
            paths,
            tags: opts.tags.clone(),
            project: opts.project.clone(),
            excludes: opts.excludes.clone(),
            source,
            source_meta: Vec::new(),
            tree,
            parent: None,
            program_version: format!("strata {}", env!("CARGO_PKG_VERSION")),
            summary: SnapshotSummary::default(),
            keep_until_ns: opts.keep_until_ns,
            original: None,
            rewrites: Vec::new(),
        }
    }

    /// Whether `e`, reading `path`, is an entry that vanished during the backup and is to
    /// be left out silently ([`BackupOptions::ignore_vanished`]).
    fn vanished(&self, e: &std::io::Error) -> bool {
        self.ignore_vanished && e.kind() == std::io::ErrorKind::NotFound
    }

    /// Runs the epilogue if `dir` is its directory, and returns the files it adds there
    /// as nodes (owned as `dir` is).
    fn epilogue_nodes(&self, dir: &std::path::Path) -> Result<Vec<Node>> {
        let Some(state) = &self.epilogue else {
            return Ok(Vec::new());
        };
        let mut state = state.lock().expect("no panics while locked");
        if state.dir != dir {
            return Ok(Vec::new());
        }
        if state.output.is_some() {
            return Err(EngineError::Invalid(format!(
                "{} was reached twice in one backup",
                dir.display()
            )));
        }
        let errors = self.errors.lock().expect("no panics while locked").clone();
        let out = (state.run)(&errors)?;
        state.output = Some(out.source_meta);
        drop(state);
        let md = std::fs::symlink_metadata(dir).map_err(|e| EngineError::io(dir, e))?;
        let now = crate::now_ns();
        let mut nodes = Vec::new();
        for (name, bytes) in out.files {
            if !strata_format::tree::valid_name(name.as_bytes()) {
                return Err(EngineError::Invalid(format!("invalid file name {name:?}")));
            }
            let (content, size) =
                file::chunk_stream(self, &mut bytes.as_slice(), self.repo.config().chunker)
                    .map_err(|e| e.into_engine(&name))?;
            self.counters.files_new.fetch_add(1, Ordering::Relaxed);
            self.counters.bytes_read.fetch_add(size, Ordering::Relaxed);
            let mut node = crate::meta::node_from_metadata(
                name.into_bytes(),
                dir,
                &md,
                NodeKind::File { content },
                &self.names,
            );
            node.mode = 0o600;
            node.size = size;
            node.mtime_ns = now;
            node.ctime_ns = now;
            node.atime_ns = now;
            node.inode = 0;
            node.links = 1;
            node.xattrs = Vec::new();
            nodes.push(node);
        }
        Ok(nodes)
    }

    /// Reports a source entry left out (unreadable, or nested too deep): `path: why`.
    fn source_error(&self, path: &std::path::Path, kind: FindingKind, why: impl std::fmt::Display) {
        use std::os::unix::ffi::OsStrExt;
        let finding = Finding::new(kind, None, format!("{}: {why}", path.display()))
            .at_path(path.as_os_str().as_bytes());
        self.progress.warn(&finding.message);
        self.errors
            .lock()
            .expect("no panics while locked")
            .push(finding);
    }

    /// Reports a pseudo file system left out (a warning, not an error).
    fn skipped_pseudo_fs(&self, path: &std::path::Path, fs_type: &'static str) {
        self.progress.warn(&format!(
            "{}: a {fs_type} file system (made by the kernel, not stored data): skipped",
            path.display()
        ));
        self.skipped
            .lock()
            .expect("no panics while locked")
            .push(SkippedFs {
                path: path.to_path_buf(),
                fs_type: fs_type.to_string(),
            });
    }

    /// Encodes and stores a tree, returning its id.
    fn save_tree(&self, mut tree: Tree) -> Result<BlobId> {
        tree.sort();
        let bytes = tree.encode();
        let id = self.repo.key().blob_id(&bytes);
        self.packer.add(BlobType::Tree, id, &bytes)?;
        Ok(id)
    }

    fn load_parent_tree(&self, id: Option<&BlobId>) -> Option<Tree> {
        let id = id?;
        match self.repo.load_tree(id) {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::warn!("parent tree {id} unreadable, reading everything: {e}");
                None
            }
        }
    }
}

/// Backs up file trees.
pub fn backup_paths(
    repo: &Repository,
    paths: &[PathBuf],
    opts: &BackupOptions,
    progress: &dyn Progress,
) -> Result<BackupResult> {
    backup_paths_with(repo, paths, opts, progress, None)
}

/// What [`Epilogue::run`] adds to a backup once every entry below its directory is read.
#[derive(Debug, Default)]
pub struct EpilogueOutput {
    /// Files added to the directory (replacing an entry of the same name), owned as the
    /// directory is, mode 0600.
    pub files: Vec<(String, Vec<u8>)>,
    /// The snapshot's `source_meta`.
    pub source_meta: Vec<(String, String)>,
}

/// An epilogue's step: called with the source errors so far.
pub type EpilogueFn<'a> = Box<dyn FnMut(&[Finding]) -> Result<EpilogueOutput> + Send + 'a>;

/// A step run inside a backup of paths, once every entry below `dir` (one of the paths,
/// absolute and normalized) is read and before that directory's tree is written: what it
/// returns is added to the directory and the snapshot; an error fails the backup, which
/// then writes no snapshot. It runs exactly once, or the backup fails. For a PostgreSQL
/// base backup, it ends the backup on the server, whose `backup_label` must then go into
/// the data directory's tree.
pub struct Epilogue<'a> {
    pub dir: PathBuf,
    /// Called with the source errors so far (entries left out): a source that cannot do
    /// without them fails here.
    pub run: EpilogueFn<'a>,
}

/// [`backup_paths`] with an [`Epilogue`].
pub fn backup_paths_with(
    repo: &Repository,
    paths: &[PathBuf],
    opts: &BackupOptions,
    progress: &dyn Progress,
    epilogue: Option<Epilogue<'_>>,
) -> Result<BackupResult> {
    let started = Instant::now();
    progress.phase(Phase::Preparing);
    let time_ns = opts.time_ns.unwrap_or_else(crate::now_ns);
    let (roots, unusable) = roots::Roots::new(paths)?;
    roots.refuse_pseudo_fs(opts.include_pseudo_fs)?;
    let hostname = opts.hostname.clone().unwrap_or_else(crate::hostname);
    let path_strings = roots.path_strings();
    let parent = match opts.parent {
        Some(id) => Some((id, snapshots::load(repo, &id)?)),
        None => snapshots::find_parent(repo, &hostname, &path_strings)?,
    };
    let mut ctx = Ctx::new(repo, opts, progress)?;
    let epilogue_dir = epilogue.as_ref().map(|e| e.dir.clone());
    ctx.epilogue = epilogue.map(|e| {
        Mutex::new(EpilogueState {
            dir: e.dir,
            run: e.run,
            output: None,
        })
    });
    for (path, e) in unusable {
        let why = match e.kind() {
            std::io::ErrorKind::NotFound => "no such file or directory: not backed up".to_string(),
            _ => format!("{e}: not backed up"),
        };
        ctx.source_error(&path, FindingKind::UnreadableSource, why);
    }
    let parent_root = parent
        .as_ref()
        .and_then(|(_, s)| ctx.load_parent_tree(Some(&s.tree)));
    // Directories are archived recursively on rayon threads; give them room for the
    // deepest trees a path can name (about 2048 levels).
    let pool = rayon::ThreadPoolBuilder::new()
        .stack_size(crate::STACK_SIZE)
        .build()
        .map_err(|e| EngineError::Internal(format!("starting worker threads: {e}")))?;
    progress.phase(Phase::BackingUp);
    // The scanner counts the sources beside the archiver, for progress only; it stops when
    // the archive is done, whether or not it has finished counting.
    let archived = AtomicBool::new(false);
    let tree = std::thread::scope(|s| {
        if ctx.progress.wants_totals() {
            let scanner = std::thread::Builder::new()
                .name("strata-scan".into())
                .spawn_scoped(s, || scan::scan(&ctx, roots.paths(), &archived));
            if let Err(e) = scanner {
                tracing::debug!("no scanner thread, progress without totals: {e}");
            }
        }
        let tree = pool.install(|| roots.archive(&ctx, parent_root.as_ref()));
        archived.store(true, Ordering::Relaxed);
        tree
    })?;
    let mut snapshot = ctx.snapshot(opts, time_ns, path_strings, SourceKind::Files, tree);
    snapshot.parent = parent.map(|(id, _)| id);
    if let Some(state) = ctx.epilogue.take() {
        let state = state.into_inner().expect("no panics while locked");
        let Some(out) = state.output else {
            return Err(EngineError::Invalid(format!(
                "{} was not backed up as a directory: its backup cannot be completed",
                epilogue_dir.unwrap_or_default().display()
            )));
        };
        snapshot.source_meta = out;
    }
    finish(ctx, snapshot, started)
}

/// Backs up one stream as a file named `filename` at the root of the snapshot.
pub fn backup_stream(
    repo: &Repository,
    filename: &str,
    reader: &mut dyn Read,
    opts: &BackupOptions,
    progress: &dyn Progress,
) -> Result<BackupResult> {
    if !strata_format::tree::valid_name(filename.as_bytes()) {
        return Err(EngineError::Invalid(format!(
            "invalid stdin file name {filename:?}"
        )));
    }
    let backup = StreamBackup::new(repo, opts, progress)?;
    let (content, size) = backup.read(reader, repo.config().chunker, "stdin")?;
    backup.finish(
        StreamFile {
            name: filename.to_string(),
            content,
            size,
        },
        SourceKind::Stdin {
            filename: filename.to_string(),
        },
        vec![format!("/{filename}")],
        Vec::new(),
    )
}

/// A file made of one stream, the only entry of a snapshot's root.
pub struct StreamFile {
    pub name: String,
    pub content: Vec<BlobId>,
    pub size: u64,
}

/// A backup of one stream (standard input, a database dump) in two steps: [`read`] chunks
/// it, [`finish`] writes the snapshot. In between the caller can decide that the stream
/// was not complete (a dump tool that failed at the end) and drop the backup, which then
/// writes no snapshot.
///
/// [`read`]: StreamBackup::read
/// [`finish`]: StreamBackup::finish
pub struct StreamBackup<'a> {
    ctx: Ctx<'a>,
    opts: BackupOptions,
    time_ns: i64,
    started: Instant,
}

impl<'a> StreamBackup<'a> {
    pub fn new(
        repo: &'a Repository,
        opts: &BackupOptions,
        progress: &'a dyn Progress,
    ) -> Result<Self> {
        progress.phase(Phase::BackingUp);
        Ok(StreamBackup {
            ctx: Ctx::new(
                repo,
                &BackupOptions {
                    excludes: Vec::new(),
                    exclude_caches: false,
                    exclude_if_present: Vec::new(),
                    exclude_larger_than: None,
                    one_file_system: false,
                    ..opts.clone()
                },
                progress,
            )?,
            opts: opts.clone(),
            time_ns: opts.time_ns.unwrap_or_else(crate::now_ns),
            started: Instant::now(),
        })
    }

    /// Chunks `reader` to its end with `chunker` (one of the repository's parameter sets:
    /// the same input must always be cut the same way). A read error fails the backup,
    /// named `what`.
    pub fn read(
        &self,
        reader: &mut dyn Read,
        chunker: ChunkerParams,
        what: &str,
    ) -> Result<(Vec<BlobId>, u64)> {
        let config = self.ctx.repo.config();
        if chunker != config.chunker && chunker != config.db_chunker {
            return Err(EngineError::Invalid(format!(
                "chunker {chunker:?} is not one of the repository's"
            )));
        }
        let read =
            file::chunk_stream(&self.ctx, reader, chunker).map_err(|e| e.into_engine(what))?;
        self.ctx.counters.files_new.fetch_add(1, Ordering::Relaxed);
        Ok(read)
    }

    /// Waits until the blobs read so far are durable (their packs, then the index naming
    /// them), writing no snapshot: for content that another object names (a WAL file).
    /// Returns the stored bytes added.
    pub fn finish_without_snapshot(self) -> Result<u64> {
        crate::progress::check_stop(self.ctx.progress)?;
        let stats = self.ctx.packer.finish()?;
        Ok(stats.bytes_added + stats.index_bytes)
    }

    /// Writes the file's tree and, once everything is durable, the snapshot.
    pub fn finish(
        self,
        file: StreamFile,
        source: SourceKind,
        paths: Vec<String>,
        source_meta: Vec<(String, String)>,
    ) -> Result<BackupResult> {
        if !strata_format::tree::valid_name(file.name.as_bytes()) {
            return Err(EngineError::Invalid(format!(
                "invalid file name {:?}",
                file.name
            )));
        }
        let ctx = self.ctx;
        let time_ns = self.time_ns;
        let node = Node {
            name: file.name.into_bytes(),
            kind: NodeKind::File {
                content: file.content,
            },
            mode: 0o600,
            uid: nix::unistd::getuid().as_raw(),
            gid: nix::unistd::getgid().as_raw(),
            user: Some(crate::username()),
            group: None,
            mtime_ns: time_ns,
            atime_ns: time_ns,
            ctime_ns: time_ns,
            inode: 0,
            device: 0,
            links: 1,
            size: file.size,
            xattrs: Vec::new(),
        };
        let tree = ctx.save_tree(Tree { nodes: vec![node] })?;
        let mut snapshot = ctx.snapshot(&self.opts, time_ns, paths, source, tree);
        snapshot.excludes.clear();
        snapshot.source_meta = source_meta;
        finish(ctx, snapshot, self.started)
    }
}

/// Waits for every pack and its index, then writes the snapshot.
fn finish(ctx: Ctx<'_>, mut snapshot: SnapshotFile, started: Instant) -> Result<BackupResult> {
    crate::progress::check_stop(ctx.progress)?;
    ctx.progress.phase(Phase::Uploading);
    let stats = ctx.packer.finish()?;
    let errors = ctx.errors.into_inner().expect("no panics while locked");
    let mut skipped_pseudo_fs = ctx.skipped.into_inner().expect("no panics while locked");
    skipped_pseudo_fs.sort_by(|a, b| a.path.cmp(&b.path));
    let c = &ctx.counters;
    snapshot.summary = SnapshotSummary {
        files_new: c.files_new.load(Ordering::Relaxed),
        files_changed: c.files_changed.load(Ordering::Relaxed),
        files_unchanged: c.files_unchanged.load(Ordering::Relaxed),
        dirs: c.dirs.load(Ordering::Relaxed),
        bytes_read: c.bytes_read.load(Ordering::Relaxed),
        bytes_added: stats.bytes_added + stats.index_bytes,
        data_blobs_added: stats.data_blobs,
        tree_blobs_added: stats.tree_blobs,
        duration_secs: started.elapsed().as_secs_f64(),
        errors: errors.len() as u64,
        bytes_total: c.bytes_read.load(Ordering::Relaxed)
            + c.bytes_unchanged.load(Ordering::Relaxed),
    };
    let snapshot_id = if ctx.dry_run {
        SnapshotId(strata_format::id::Digest([0; 32]))
    } else {
        SnapshotId(ctx.repo.save_object(FileType::Snapshot, &snapshot)?)
    };
    ctx.progress.finish();
    Ok(BackupResult {
        snapshot_id,
        dry_run: ctx.dry_run,
        snapshot,
        errors,
        skipped_pseudo_fs,
    })
}

#[cfg(test)]
mod safety_options_tests {
    use super::*;

    /// A restore's safety snapshot saves everything at risk whatever backup options its
    /// caller passes: only the labels carry over.
    #[test]
    fn a_safety_snapshot_keeps_the_labels_and_nothing_that_leaves_out() {
        let caller = BackupOptions {
            tags: vec!["nightly".into()],
            hostname: Some("web1".into()),
            excludes: vec!["*.php".into()],
            exclude_caches: true,
            exclude_if_present: vec![TagFile::parse(".nobackup").unwrap()],
            exclude_larger_than: Some(1),
            dry_run: true,
            one_file_system: true,
            project: Some("shop".into()),
            keep_until_ns: Some(7),
            ..Default::default()
        };
        let safety = caller.for_safety_snapshot("pre-restore");
        assert_eq!(safety.tags, vec!["nightly", "pre-restore"]);
        assert_eq!(safety.hostname.as_deref(), Some("web1"));
        assert_eq!(safety.project.as_deref(), Some("shop"));
        assert_eq!(safety.keep_until_ns, Some(7));
        assert!(safety.excludes.is_empty() && safety.exclude_if_present.is_empty());
        assert!(!safety.exclude_caches && !safety.dry_run && !safety.one_file_system);
        assert_eq!(safety.exclude_larger_than, None);
        assert_eq!(safety.parent, None);
        assert_eq!(safety.time_ns, None);
        let again = safety.for_safety_snapshot("pre-restore");
        assert_eq!(again.tags, vec!["nightly", "pre-restore"]);
    }
}
