//! The top of a snapshot: the backed-up paths laid out under `/` as in the filesystem, with
//! the metadata of their real parent directories.

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use strata_format::id::BlobId;
use strata_format::tree::{NodeKind, Tree};

use super::walk::Place;
use super::{source, walk, Ctx};
use crate::meta::node_from_metadata;
use crate::{EngineError, Result};

enum Entry {
    /// A path given to backup: archived whole.
    Real(PathBuf),
    /// A parent directory of given paths: only the listed children are archived.
    Virtual(PathBuf, BTreeMap<Vec<u8>, Entry>),
}

pub(super) struct Roots {
    paths: Vec<PathBuf>,
    /// `None` when `/` itself is backed up.
    top: Option<BTreeMap<Vec<u8>, Entry>>,
}

/// Makes a path absolute and removes `.` and `..` without following symlinks.
fn normalize(p: &Path) -> Result<PathBuf> {
    let abs = std::path::absolute(p).map_err(|e| EngineError::io(p, e))?;
    let mut out = PathBuf::from("/");
    for c in abs.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    Ok(out)
}

impl Roots {
    /// The roots of the paths given, and those of them that cannot be backed up (missing,
    /// or not even `lstat`-able), each with why: as restic, the rest is backed up and
    /// those are reported (exit code 3). None of them there at all is an error.
    pub fn new(paths: &[PathBuf]) -> Result<(Self, Vec<(PathBuf, std::io::Error)>)> {
        if paths.is_empty() {
            return Err(EngineError::Invalid(
                "nothing to back up: give at least one path".into(),
            ));
        }
        let mut normalized = Vec::new();
        let mut unusable = Vec::new();
        for p in paths {
            let n = normalize(p)?;
            match std::fs::symlink_metadata(&n) {
                Ok(_) => normalized.push(n),
                Err(e) => unusable.push((p.clone(), e)),
            }
        }
        if normalized.is_empty() {
            let (p, e) = unusable.swap_remove(0);
            return Err(match e.kind() {
                std::io::ErrorKind::NotFound => {
                    EngineError::NotFound(format!("{}: no such file or directory", p.display()))
                }
                _ => EngineError::io(&p, e),
            });
        }
        normalized.sort();
        normalized.dedup();
        let mut top = Some(BTreeMap::new());
        for p in &normalized {
            let comps: Vec<Vec<u8>> = p
                .components()
                .skip(1)
                .map(|c| c.as_os_str().as_bytes().to_vec())
                .collect();
            if comps.is_empty() {
                top = None;
                break;
            }
            insert(
                top.as_mut().expect("set above"),
                &comps,
                PathBuf::from("/"),
                p,
            );
        }
        Ok((
            Roots {
                paths: normalized,
                top,
            },
            unusable,
        ))
    }

    /// The paths given, absolute and normalized, that exist.
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    pub fn path_strings(&self) -> Vec<String> {
        self.paths
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect()
    }

    /// Refuses, unless `include` says to back them up, the given paths that lie on a pseudo
    /// file system: named on purpose, they are not quietly left out (nor read, since some
    /// of their files never end); the error says how to include them. A symlink is
    /// recorded as such, never read, so its target does not count.
    pub fn refuse_pseudo_fs(&self, include: bool) -> Result<()> {
        if include {
            return Ok(());
        }
        for p in &self.paths {
            if std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink()) {
                continue;
            }
            if let Some(fs) = source::pseudo_fs_at(p) {
                return Err(EngineError::Invalid(format!(
                    "{} is on a {fs} file system, which the kernel makes up as it is read \
                     (not stored data; some of its files never end or wait for ever): not \
                     backed up; give --include-pseudo-fs to back it up anyway",
                    p.display()
                )));
            }
        }
        Ok(())
    }

    /// Archives everything and returns the root tree id.
    pub fn archive(&self, ctx: &Ctx<'_>, parent: Option<&Tree>) -> Result<BlobId> {
        match &self.top {
            None => {
                let root = Path::new("/");
                let md = std::fs::symlink_metadata(root).map_err(|e| EngineError::io(root, e))?;
                let place = Place::root(&md, source::pseudo_fs_at(root).is_some());
                walk::archive_dir(ctx, root, parent, place)
            }
            Some(children) => archive_virtual(ctx, children, parent),
        }
    }
}

fn insert(map: &mut BTreeMap<Vec<u8>, Entry>, comps: &[Vec<u8>], prefix: PathBuf, full: &Path) {
    let here = prefix.join(std::ffi::OsStr::from_bytes(&comps[0]));
    if comps.len() == 1 {
        map.insert(comps[0].clone(), Entry::Real(full.to_path_buf()));
        return;
    }
    let entry = map
        .entry(comps[0].clone())
        .or_insert_with(|| Entry::Virtual(here.clone(), BTreeMap::new()));
    if let Entry::Virtual(_, children) = entry {
        insert(children, &comps[1..], here, full);
    }
    // A `Real` entry already covers everything below it.
}

fn archive_virtual(
    ctx: &Ctx<'_>,
    children: &BTreeMap<Vec<u8>, Entry>,
    parent: Option<&Tree>,
) -> Result<BlobId> {
    let mut tree = Tree::default();
    for (name, entry) in children {
        let parent_node = parent.and_then(|t| t.get(name));
        match entry {
            Entry::Real(path) => {
                let md = std::fs::symlink_metadata(path).map_err(|e| EngineError::io(path, e))?;
                // Given by name: on a pseudo file system only when asked for (see
                // `refuse_pseudo_fs`), and then read without waiting.
                let pseudo = !md.file_type().is_symlink() && source::pseudo_fs_at(path).is_some();
                let place = Place::root(&md, pseudo);
                if let Some(node) =
                    walk::archive_entry(ctx, path, name.clone(), parent_node, place)?
                {
                    tree.nodes.push(node);
                }
            }
            Entry::Virtual(path, grandchildren) => {
                let md = std::fs::symlink_metadata(path).map_err(|e| EngineError::io(path, e))?;
                let parent_sub = match parent_node.map(|n| &n.kind) {
                    Some(NodeKind::Dir { subtree }) => ctx.load_parent_tree(Some(subtree)),
                    _ => None,
                };
                let subtree = archive_virtual(ctx, grandchildren, parent_sub.as_ref())?;
                let node = node_from_metadata(
                    name.clone(),
                    path,
                    &md,
                    NodeKind::Dir { subtree },
                    &ctx.names,
                );
                tree.nodes.push(node);
            }
        }
    }
    ctx.save_tree(tree)
}
