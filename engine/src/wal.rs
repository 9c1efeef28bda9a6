//! Archived PostgreSQL WAL (spec/wal.md): pushing a file PostgreSQL hands to
//! `archive_command` into the repository, listing a project's archive, and fetching a file
//! back for `restore_command`. The engine knows the archive's rules (one cluster per
//! project, identical re-pushes succeed, conflicting ones fail, durable before success);
//! what a segment's bytes mean (its header, its number) is the caller's (`strata-db`).
//!
//! A push writes the file's content as data blobs (the repository's file chunker, as a
//! file of a snapshot), waits until their packs and index are durable, and only then writes
//! the WAL file `wal/<id>` that names them.

use std::collections::BTreeMap;

use strata_format::envelope::EncryptedObject;
use strata_format::wal::{name_timeline, WalEntry, WalFile};
use strata_storage::FileType;

use crate::archiver::{BackupOptions, StreamBackup};
use crate::progress::NoProgress;
use crate::{EngineError, Repository, Result};

mod expire;
pub use expire::{expire, ExpireStats};

/// What PostgreSQL hands to `archive_command`, with what its header says (for a segment;
/// the caller read it) and whose archive it goes into.
#[derive(Debug, Clone)]
pub struct Push<'a> {
    pub project: &'a str,
    pub system_id: u64,
    pub timeline: u32,
    pub seg_size: u32,
    /// `XLOG_PAGE_MAGIC` of a segment's page header; 0 for a history or backup file.
    pub wal_magic: u16,
    /// `%f`: the file's name.
    pub name: &'a str,
    pub content: &'a [u8],
}

/// How a push ended (both are a success for `archive_command`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Stored now; `bytes_added` stored bytes were new to the repository.
    Stored { bytes_added: u64 },
    /// The archive already held this very file (PostgreSQL pushed it again).
    AlreadyThere,
}

/// The WAL files of a repository, as read.
#[derive(Debug, Default)]
pub struct Archive {
    /// Every readable WAL file, by its object name.
    pub files: BTreeMap<String, WalFile>,
    /// WAL files that could not be read, with why.
    pub unreadable: Vec<(String, EngineError)>,
}

/// One archived file as the archive knows it, and the WAL file that lists it.
#[derive(Debug, Clone, Copy)]
pub struct Found<'a> {
    pub file: &'a WalFile,
    pub entry: &'a WalEntry,
}

impl Archive {
    /// The WAL files of `project`.
    pub fn of_project(&self, project: &str) -> Vec<&WalFile> {
        self.files
            .values()
            .filter(|f| f.project == project)
            .collect()
    }

    /// The cluster (system identifier) `project`'s archive is of, if it has any file; an
    /// archive of two clusters (which pushes refuse to make) is an error naming both.
    pub fn system_id(&self, project: &str) -> Result<Option<u64>> {
        let mut ids: Vec<u64> = self
            .of_project(project)
            .iter()
            .map(|f| f.system_id)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        match ids.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(*one)),
            many => Err(EngineError::Corrupt(format!(
                "the WAL archive of project {project} holds files of {} clusters (system \
                 identifiers {}): each project archives one cluster",
                many.len(),
                many.iter()
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// The archived file `name` of `project`: none, one (listed once or in several WAL
    /// files with the same hash), or an error when two WAL files list it with different
    /// contents.
    pub fn find(&self, project: &str, name: &str) -> Result<Option<Found<'_>>> {
        let mut found: Option<Found<'_>> = None;
        for file in self.of_project(project) {
            let Ok(i) = file.entries.binary_search_by(|e| e.name.as_str().cmp(name)) else {
                continue;
            };
            let entry = &file.entries[i];
            match found {
                Some(f) if f.entry.hash != entry.hash => {
                    return Err(EngineError::Corrupt(format!(
                        "the WAL archive of project {project} holds two different files named \
                         {name}"
                    )))
                }
                Some(_) => {}
                None => found = Some(Found { file, entry }),
            }
        }
        Ok(found)
    }

    /// Every archived file of `project`, by name (one entry per name; see [`Archive::find`]
    /// for names listed with two contents, which this leaves to `find`).
    pub fn entries(&self, project: &str) -> BTreeMap<&str, Found<'_>> {
        let mut out = BTreeMap::new();
        for file in self.of_project(project) {
            for entry in &file.entries {
                out.entry(entry.name.as_str())
                    .or_insert(Found { file, entry });
            }
        }
        out
    }
}

/// How many times [`read_archive`] lists again when a listed WAL file is gone by the time
/// it is read (a merge replaced it).
const RELIST: usize = 5;

/// Reads every WAL file of the repository.
///
/// A merge ([`merge`]) writes the merged file before it deletes those it replaces, so a
/// file listed here but gone when read was merged into one written before it went: the
/// archive is listed and read again (skipping the gone file could miss its entries, and a
/// recovery told "not archived" ends early).
pub fn read_archive(repo: &Repository) -> Result<Archive> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let listed = repo.list_objects(FileType::Wal)?;
        let reads = repo.read_many_listed(FileType::Wal, &listed);
        let mut archive = Archive::default();
        let mut vanished = false;
        for ((name, _), read) in listed.into_iter().zip(reads) {
            if let Err(EngineError::Storage(e)) = &read {
                if e.is_not_found() && attempt < RELIST {
                    vanished = true;
                    break;
                }
            }
            let decoded = read.and_then(|bytes| {
                WalFile::decode(repo.key(), &bytes)
                    .map_err(|e| EngineError::format(FileType::Wal.path(&name), e))
            });
            match decoded {
                Ok(file) => {
                    archive.files.insert(name, file);
                }
                Err(e) => archive.unreadable.push((name, e)),
            }
        }
        if !vanished {
            return Ok(archive);
        }
        tracing::debug!("a WAL file was merged away while the archive was read: reading again");
    }
}

/// A WAL file listing fewer entries than this is small: once a group (project, cluster,
/// timeline) has [`MERGE_AT`] files of one size class, they are merged into one.
const MERGE_AT: usize = 64;

/// The size class of a WAL file of `entries` entries: 0 below [`MERGE_AT`], 1 below
/// `MERGE_AT²`, and so on. Merging files of one class gives one of the next, so a group
/// keeps at most about `MERGE_AT` files per class and each entry is rewritten once per
/// class, never once per push.
fn size_class(entries: usize) -> u32 {
    let mut class = 0;
    let mut bound = MERGE_AT;
    while entries >= bound && class < 8 {
        class += 1;
        bound = bound.saturating_mul(MERGE_AT);
    }
    class
}

/// Merges `project`'s WAL files where a group (cluster, timeline) has [`MERGE_AT`] of one
/// size class: their union is written as one WAL file, durable before the files it
/// replaces are deleted (a crash in between leaves duplicates, which readers take as one).
/// Returns how many files were replaced. Entries listed with two contents are never merged
/// (they stay for `check` and `pg verify` to report).
pub fn merge(repo: &Repository, archive: &Archive, project: &str) -> Result<usize> {
    // (cluster, timeline, size class) -> the WAL files (name, file) of the group.
    type Group = (u64, u32, u32);
    let mut groups: BTreeMap<Group, Vec<(&String, &WalFile)>> = BTreeMap::new();
    for (name, file) in &archive.files {
        if file.project == project {
            groups
                .entry((
                    file.system_id,
                    file.timeline,
                    size_class(file.entries.len()),
                ))
                .or_default()
                .push((name, file));
        }
    }
    let mut replaced = 0;
    for files in groups.values().filter(|f| f.len() >= MERGE_AT) {
        let mut entries: BTreeMap<&str, &WalEntry> = BTreeMap::new();
        let mut conflict = false;
        for (_, file) in files {
            for e in &file.entries {
                match entries.get(e.name.as_str()) {
                    Some(seen) if seen.hash != e.hash => conflict = true,
                    Some(_) => {}
                    None => {
                        entries.insert(&e.name, e);
                    }
                }
            }
        }
        if conflict {
            continue;
        }
        let first = files[0].1;
        let merged = WalFile {
            project: project.to_string(),
            system_id: first.system_id,
            timeline: first.timeline,
            seg_size: files.iter().map(|(_, f)| f.seg_size).max().unwrap_or(0),
            wal_magic: files.iter().map(|(_, f)| f.wal_magic).max().unwrap_or(0),
            entries: entries.into_values().cloned().collect(),
        };
        if merged.validate().is_err() {
            continue;
        }
        repo.save_object(FileType::Wal, &merged)?;
        for (name, _) in files {
            repo.block_on(repo.backend().delete(FileType::Wal, name))?;
            replaced += 1;
        }
    }
    Ok(replaced)
}

/// Pushes one archived file (see the module docs). Fails, changing nothing, when the
/// repository predates WAL files, when the name is not one PostgreSQL archives, when the
/// project's archive is of another cluster, when the archive already holds a different
/// file of that name, or when a WAL file of the project cannot be read (it might list this
/// name).
pub fn push(repo: &Repository, p: &Push<'_>) -> Result<Pushed> {
    if !repo.config().allows_wal() {
        return Err(EngineError::Invalid(format!(
            "this repository is of format version {}, which predates WAL archiving \
             (version {}); archive WAL into a repository made by `strata init` of this version",
            repo.config().format_version,
            strata_format::config::WAL_VERSION
        )));
    }
    match name_timeline(p.name) {
        Some(t) if t == p.timeline => {}
        Some(t) => {
            return Err(EngineError::Invalid(format!(
                "{} is of timeline {t}, not {}",
                p.name, p.timeline
            )))
        }
        None => {
            return Err(EngineError::Invalid(format!(
                "{:?} is not the name of a file PostgreSQL archives (a WAL segment, a \
                 .history, .backup or .partial file)",
                p.name
            )))
        }
    }
    let archive = read_archive(repo)?;
    if let Some((name, e)) = archive.unreadable.first() {
        return Err(EngineError::Corrupt(format!(
            "WAL file {} cannot be read ({e}); it may list {}: nothing was pushed. Run \
             `strata check`",
            FileType::Wal.path(name),
            p.name
        )));
    }
    if let Some(theirs) = archive.system_id(p.project)? {
        if theirs != p.system_id {
            return Err(EngineError::Invalid(format!(
                "{} is of the cluster with system identifier {}, but project {}'s WAL archive \
                 is of cluster {theirs}: two clusters never share an archive (a cluster made \
                 anew by initdb or pg_upgrade needs a project of its own)",
                p.name, p.system_id, p.project
            )));
        }
    }
    let hash = repo.key().blob_id(p.content).0 .0;
    if let Some(found) = archive.find(p.project, p.name)? {
        return if found.entry.hash == hash && found.entry.size == p.content.len() as u64 {
            Ok(Pushed::AlreadyThere)
        } else {
            Err(EngineError::Invalid(format!(
                "the WAL archive of project {} already holds a different {} ({} bytes, pushed \
                 before); refusing to replace it: two servers may be archiving into one \
                 project, or the cluster was re-created",
                p.project, p.name, found.entry.size
            )))
        };
    }
    let backup = StreamBackup::new(repo, &BackupOptions::default(), &NoProgress)?;
    let (blobs, size) = backup.read(&mut &p.content[..], repo.config().chunker, p.name)?;
    let bytes_added = backup.finish_without_snapshot()?;
    let file = WalFile {
        project: p.project.to_string(),
        system_id: p.system_id,
        timeline: p.timeline,
        seg_size: p.seg_size,
        wal_magic: p.wal_magic,
        entries: vec![WalEntry {
            name: p.name.to_string(),
            size,
            hash,
            blobs,
            pushed_ns: crate::now_ns(),
        }],
    };
    file.validate()
        .map_err(|e| EngineError::Invalid(format!("{}: {e}", p.name)))?;
    repo.save_object(FileType::Wal, &file)?;
    // The checks above and this write are not one step: another push of the same name (two
    // servers archiving into one project) may have written meanwhile. Look again: a
    // conflict now fails this push, so that at least one server reports it.
    let archive = read_archive(repo)?;
    archive.find(p.project, p.name).map_err(|e| {
        EngineError::Invalid(format!(
            "{e}: another server pushed a different {} at the same time; two servers may be \
             archiving into project {}",
            p.name, p.project
        ))
    })?;
    archive.system_id(p.project)?;
    // The push is durable; keeping the archive cheap to list is a courtesy that must not
    // fail it (PostgreSQL would push again what is already archived).
    if let Err(e) = merge(repo, &archive, p.project) {
        tracing::warn!("WAL files of project {} not merged: {e}", p.project);
    }
    Ok(Pushed::Stored { bytes_added })
}

/// The archived file `name` of `project`, its content verified against the hash it was
/// pushed with; `None` when the archive has no such file.
pub fn fetch(
    repo: &Repository,
    archive: &Archive,
    project: &str,
    name: &str,
) -> Result<Option<Vec<u8>>> {
    let Some(found) = archive.find(project, name)? else {
        // Not listed by a readable WAL file; an unreadable one might list it, and "not
        // archived" ends a recovery early.
        if let Some((file, e)) = archive.unreadable.first() {
            return Err(EngineError::Corrupt(format!(
                "cannot tell whether {name} is archived: WAL file {} cannot be read ({e})",
                FileType::Wal.path(file)
            )));
        }
        return Ok(None);
    };
    let entry = found.entry;
    let mut content = Vec::with_capacity(entry.size.min(1 << 30) as usize);
    for id in &entry.blobs {
        content.extend(repo.read_blob(strata_format::blob::BlobType::Data, id)?);
    }
    if content.len() as u64 != entry.size || repo.key().blob_id(&content).0 .0 != entry.hash {
        return Err(EngineError::Corrupt(format!(
            "archived {name} of project {project} does not match what was pushed ({} bytes \
             read, {} pushed): run `strata check --read-data`",
            content.len(),
            entry.size
        )));
    }
    Ok(Some(content))
}

mod copy;
pub use copy::{copy_archive, WalCopied};

#[cfg(test)]
mod tests;
