//! Archiving one filesystem entry, and directories recursively in parallel.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::Ordering;

use rayon::prelude::*;
use strata_format::id::BlobId;
use strata_format::tree::{Node, NodeKind, Tree, MAX_TREE_DEPTH};

use super::{file, Ctx};
use crate::meta::{node_from_metadata, special_kind};
use crate::progress::FileStatus;
use crate::report::FindingKind;
use crate::Result;

/// Whether a file is unchanged since the parent snapshot, by its metadata.
fn unchanged(md: &std::fs::Metadata, parent: &Node) -> bool {
    let mtime = md
        .mtime()
        .saturating_mul(1_000_000_000)
        .saturating_add(md.mtime_nsec());
    let ctime = md
        .ctime()
        .saturating_mul(1_000_000_000)
        .saturating_add(md.ctime_nsec());
    matches!(parent.kind, NodeKind::File { .. })
        && parent.size == md.size()
        && parent.mtime_ns == mtime
        && parent.ctime_ns == ctime
        && parent.inode == md.ino()
}

/// Where an entry lies: what the walk knows about the file systems above it.
#[derive(Clone, Copy)]
pub(super) struct Place {
    /// The device of the backed-up path this entry is under (`--one-file-system`).
    pub root_dev: u64,
    /// The device of the directory holding the entry: an entry on another one is a mount
    /// point, whose file system is examined.
    pub dir_dev: u64,
    /// The entry's directory is on a pseudo file system (included on request): its files
    /// are read without waiting.
    pub pseudo: bool,
}

impl Place {
    /// The place of a path given to backup, with its `lstat` metadata.
    pub fn root(md: &std::fs::Metadata, pseudo: bool) -> Place {
        Place {
            root_dev: md.dev(),
            dir_dev: md.dev(),
            pseudo,
        }
    }
}

/// Archives one entry. `Ok(None)` means it was excluded or unreadable (the latter recorded
/// as a source error); `Err` is fatal for the whole backup (storage failure).
pub(super) fn archive_entry(
    ctx: &Ctx<'_>,
    path: &Path,
    name: Vec<u8>,
    parent: Option<&Node>,
    place: Place,
) -> Result<Option<Node>> {
    if ctx.excludes.matches(path) {
        return Ok(None);
    }
    let mut md = match std::fs::symlink_metadata(path) {
        Ok(md) => md,
        Err(e) if ctx.vanished(&e) => return Ok(None),
        Err(e) => {
            ctx.source_error(path, FindingKind::UnreadableSource, e);
            return Ok(None);
        }
    };
    let ft = md.file_type();
    // A directory --one-file-system keeps empty.
    let crosses_out = ft.is_dir() && ctx.one_file_system && md.dev() != place.root_dev;
    // A mount point (an entry on another device than its directory): a pseudo file system
    // is left out unless asked for; a directory stays, empty, as with --one-file-system.
    let mut pseudo = place.pseudo;
    if md.dev() != place.dir_dev && !crosses_out && (ft.is_dir() || ft.is_file()) {
        pseudo = match super::source::pseudo_fs_at(path) {
            Some(fs) if !ctx.include_pseudo_fs => {
                ctx.skipped_pseudo_fs(path, fs);
                if !ft.is_dir() {
                    return Ok(None);
                }
                let subtree = ctx.save_tree(Tree::default())?;
                return Ok(Some(node_from_metadata(
                    name,
                    path,
                    &md,
                    NodeKind::Dir { subtree },
                    &ctx.names,
                )));
            }
            found => found.is_some(),
        };
    }
    if ft.is_dir() && path.components().count() > MAX_TREE_DEPTH {
        ctx.source_error(
            path,
            FindingKind::TooDeep,
            format!("nested deeper than {MAX_TREE_DEPTH} levels, which snapshots cannot hold"),
        );
        return Ok(None);
    }
    let kind = if ft.is_dir() {
        let parent_tree = match parent.map(|n| &n.kind) {
            Some(NodeKind::Dir { subtree }) => ctx.load_parent_tree(Some(subtree)),
            _ => None,
        };
        let subtree = if crosses_out {
            ctx.save_tree(Tree::default())?
        } else {
            let inside = Place {
                dir_dev: md.dev(),
                pseudo,
                ..place
            };
            archive_dir(ctx, path, parent_tree.as_ref(), inside)?
        };
        NodeKind::Dir { subtree }
    } else if ft.is_file() {
        if ctx.exclude_larger_than.is_some_and(|max| md.len() > max) {
            return Ok(None);
        }
        crate::progress::check_stop(ctx.progress)?;
        ctx.progress.current(path);
        let reusable = parent
            .filter(|p| unchanged(&md, p))
            .filter(|p| {
                ctx.reuse_before_ns
                    .is_none_or(|t| p.mtime_ns < t && p.ctime_ns < t)
            })
            .and_then(|p| match &p.kind {
                NodeKind::File { content } if content.iter().all(|id| ctx.packer.has(id)) => {
                    Some(content.clone())
                }
                _ => None,
            });
        let (content, size, status) = match reusable {
            Some(content) => {
                ctx.counters.files_unchanged.fetch_add(1, Ordering::Relaxed);
                ctx.counters
                    .bytes_unchanged
                    .fetch_add(md.len(), Ordering::Relaxed);
                // Not read, but done: progress counts its bytes as the scanner did.
                ctx.progress.add_bytes(md.len());
                (content, md.len(), FileStatus::Unchanged)
            }
            None => match read_file(ctx, path, &mut md, pseudo) {
                Ok((content, size)) => {
                    let (counter, status) = if parent.is_some() {
                        (&ctx.counters.files_changed, FileStatus::Modified)
                    } else {
                        (&ctx.counters.files_new, FileStatus::New)
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    (content, size, status)
                }
                Err(file::FileError::Source(e)) if ctx.vanished(&e) => return Ok(None),
                Err(file::FileError::Source(e)) => {
                    ctx.source_error(path, FindingKind::UnreadableSource, e);
                    return Ok(None);
                }
                Err(file::FileError::Fatal(e)) => return Err(e),
            },
        };
        ctx.progress.add_item();
        ctx.progress.file_done(path, status);
        let mut node = node_from_metadata(name, path, &md, NodeKind::File { content }, &ctx.names);
        node.size = size;
        return Ok(Some(node));
    } else {
        match special_kind(path, &md) {
            Ok(k) => k,
            Err(e) => {
                ctx.source_error(path, FindingKind::UnreadableSource, e);
                return Ok(None);
            }
        }
    };
    Ok(Some(node_from_metadata(name, path, &md, kind, &ctx.names)))
}

/// Reads the regular file `path` listed with `md`. A file replaced by another (renamed
/// over it) after it was listed is read again once, as the new file (`md` becomes its),
/// when the backup leaves vanished entries out: such a source (a database's data
/// directory) replaces files by renames as it runs, and the new file is the one to keep.
fn read_file(
    ctx: &Ctx<'_>,
    path: &Path,
    md: &mut std::fs::Metadata,
    pseudo: bool,
) -> std::result::Result<(Vec<BlobId>, u64), file::FileError> {
    match file::chunk_file(ctx, path, md, pseudo) {
        Err(file::FileError::Source(e))
            if ctx.ignore_vanished && super::source::is_replaced(&e) =>
        {
            match std::fs::symlink_metadata(path) {
                Ok(now) if now.file_type().is_file() => {
                    *md = now;
                    file::chunk_file(ctx, path, md, pseudo)
                }
                _ => Err(file::FileError::Source(e)),
            }
        }
        r => r,
    }
}

/// Archives a directory's entries in parallel and stores its tree.
pub(super) fn archive_dir(
    ctx: &Ctx<'_>,
    path: &Path,
    parent: Option<&Tree>,
    place: Place,
) -> Result<BlobId> {
    ctx.counters.dirs.fetch_add(1, Ordering::Relaxed);
    let mut names: Vec<Vec<u8>> = Vec::new();
    match std::fs::read_dir(path) {
        Ok(rd) => {
            for entry in rd {
                match entry {
                    Ok(e) => names.push(e.file_name().as_bytes().to_vec()),
                    Err(e) => ctx.source_error(path, FindingKind::UnreadableSource, e),
                }
            }
        }
        Err(e) if ctx.vanished(&e) => {}
        Err(e) => ctx.source_error(path, FindingKind::UnreadableSource, e),
    }
    names.sort();
    if !ctx.tag_files.is_empty() {
        if let Some(tags) = super::exclude::marked(path, &names, &ctx.tag_files) {
            names = tags;
        }
    }
    let nodes: Vec<Option<Node>> = names
        .into_par_iter()
        .map(|name| {
            let child = path.join(std::ffi::OsStr::from_bytes(&name));
            let parent_node = parent.and_then(|t| t.get(&name));
            archive_entry(ctx, &child, name, parent_node, place)
        })
        .collect::<Result<_>>()?;
    let mut nodes: Vec<Node> = nodes.into_iter().flatten().collect();
    let added = ctx.epilogue_nodes(path)?;
    nodes.retain(|n| !added.iter().any(|a| a.name == n.name));
    nodes.extend(added);
    ctx.save_tree(Tree { nodes })
}
