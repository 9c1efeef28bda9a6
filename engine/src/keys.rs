//! Key management: every password is one key file (`keys/<id>`) wrapping the same master key
//! under argon2id. Adding a key writes a new file; removing one deletes it. The last key
//! can never be removed, nor the key the running command opened the repository with (open
//! with another password to remove it), so that nobody locks themselves out by accident.
//! Changing a password writes the new key file before the old one is deleted. Every key file
//! written carries a copy of the config, from which `repair config` restores a lost one.

use bytes::Bytes;
use serde::Serialize;
use strata_format::id::{Digest, KeyId};
use strata_format::keyfile::{KdfParams, KeyFile};
use strata_storage::FileType;

pub use crate::keycache::remember_on_disk;
use crate::keyfiles::read_all;
use crate::{EngineError, Repository, Result};

/// Writes `file` as a new key file in place of `old` (named by its hash): the new file is
/// written and read back before the old one is deleted. Returns the new name.
pub(crate) fn replace(repo: &Repository, old: &str, file: &KeyFile) -> Result<String> {
    let bytes = file.encode();
    let new = KeyId(Digest::of_stored(&bytes)).to_hex();
    if new == old {
        return Ok(new);
    }
    let backend = repo.backend();
    repo.block_on(backend.write(FileType::Key, &new, Bytes::from(bytes)))?;
    let back = repo.block_on(backend.read(FileType::Key, &new))?;
    if KeyFile::decode(&back).ok().as_ref() != Some(file) {
        return Err(EngineError::Corrupt(format!(
            "the new key file {} does not read back as written; keys/{} is kept",
            short(&new),
            short(old)
        )));
    }
    repo.block_on(backend.delete(FileType::Key, old))?;
    Ok(new)
}

/// One key file, as `key list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct KeyInfo {
    pub id: String,
    /// Whether this command opened the repository with it.
    pub current: bool,
    /// Unix nanoseconds.
    pub created_ns: i64,
    pub hostname: String,
    pub username: String,
    /// argon2id memory (KiB), iterations and lanes.
    pub kdf: (u32, u32, u32),
    /// Why the file could not be read, if it could not.
    pub error: Option<String>,
}

/// Every key file of the repository, oldest first (unreadable ones last, with the reason).
pub fn list(repo: &Repository) -> Result<Vec<KeyInfo>> {
    let listed = repo.block_on(repo.backend().list(FileType::Key))?;
    let mut keys = Vec::new();
    for k in repo.block_on(read_all(&**repo.backend(), &listed)) {
        let current = k.name == repo.key_name();
        keys.push(match (k.usable(), k.problem()) {
            (Some(kf), _) => KeyInfo {
                id: k.name.clone(),
                current,
                created_ns: kf.created_ns,
                hostname: kf.hostname.clone(),
                username: kf.username.clone(),
                kdf: (kf.kdf.m_kib, kf.kdf.t, kf.kdf.p),
                error: None,
            },
            (None, problem) => KeyInfo {
                id: k.name,
                current,
                created_ns: 0,
                hostname: String::new(),
                username: String::new(),
                kdf: (0, 0, 0),
                error: problem,
            },
        });
    }
    keys.sort_by_key(|k| (k.error.is_some(), k.created_ns));
    Ok(keys)
}

/// Adds a key file for `password` (recording this host, user and time); returns its id.
///
/// An empty password is allowed here, as at `Repository::init`: refusing one unless the
/// user asked for it is the front ends' policy, kept in one place for all of them
/// (`strata_app::check_password`, the command line's `--new-insecure-no-password`).
pub fn add(repo: &Repository, password: &[u8], kdf: KdfParams) -> Result<String> {
    let mut kf = KeyFile::wrap(
        repo.key(),
        password,
        kdf,
        &mut rand::thread_rng(),
        crate::now_ns(),
        crate::hostname(),
        crate::username(),
    )
    .map_err(|e| EngineError::format("key file", e))?;
    kf.config = Some(repo.config_bytes().to_vec());
    let bytes = kf.encode();
    let id = KeyId(Digest::of_stored(&bytes)).to_hex();
    repo.block_on(repo.backend().write(FileType::Key, &id, Bytes::from(bytes)))?;
    Ok(id)
}

/// Resolves a key id or unique prefix of one.
pub fn resolve(repo: &Repository, prefix: &str) -> Result<String> {
    let names: Vec<String> = repo
        .block_on(repo.backend().list(FileType::Key))?
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    let found: Vec<&String> = names.iter().filter(|n| n.starts_with(prefix)).collect();
    match found.as_slice() {
        [one] if !prefix.is_empty() => Ok((*one).clone()),
        [] | [_] => Err(EngineError::NotFound(format!("no key {prefix:?}"))),
        _ => Err(EngineError::Invalid(format!(
            "key prefix {prefix:?} is ambiguous ({} keys)",
            found.len()
        ))),
    }
}

/// The first 8 characters of a key id, for messages (any file name is safe here).
pub fn short(id: &str) -> &str {
    id.char_indices().nth(8).map_or(id, |(i, _)| &id[..i])
}

/// Removes key `id` (a full id). Never the key this command opened the repository with:
/// that key is known to open it, so as long as it stays, nobody is locked out, whatever
/// the other key files are (forgotten, foreign, damaged). Call under an exclusive lock.
pub fn remove(repo: &Repository, id: &str) -> Result<()> {
    if id == repo.key_name() {
        return Err(EngineError::Invalid(format!(
            "key {} is the one this command opened the repository with; open it with \
             another password to remove this one (or use `key passwd` to change it)",
            short(id)
        )));
    }
    let keys = list(repo)?;
    if !keys.iter().any(|k| k.id == id) {
        return Err(EngineError::NotFound(format!("no key {id}")));
    }
    // Another process may have removed the key in use since this one opened the
    // repository: then removing one more could leave no key that opens it.
    if !keys
        .iter()
        .any(|k| k.id == repo.key_name() && k.error.is_none())
    {
        return Err(EngineError::Invalid(format!(
            "the key this command opened the repository with ({}) is gone (removed by \
             another process?); the last key that opens the repository cannot be removed",
            short(repo.key_name())
        )));
    }
    repo.block_on(repo.backend().delete(FileType::Key, id))?;
    Ok(())
}

/// Changes the current key's password: the new key file is written, read back and checked
/// to open the repository's master key with the new password, and only then is the old one
/// deleted. Returns the new key's id.
pub fn change_password(repo: &Repository, password: &[u8], kdf: KdfParams) -> Result<String> {
    let new = add(repo, password, kdf)?;
    let back = repo.block_on(repo.backend().read(FileType::Key, &new))?;
    let opens = KeyFile::decode(&back)
        .and_then(|kf| kf.unwrap_key(password))
        .is_ok_and(|k| &k == repo.key());
    if !opens {
        return Err(EngineError::Corrupt(format!(
            "the new key {} does not read back as written; the old key is kept",
            short(&new)
        )));
    }
    repo.block_on(repo.backend().delete(FileType::Key, repo.key_name()))
        .map_err(|e| {
            EngineError::Invalid(format!(
                "the new key {} works, but the old key {} could not be removed ({e}): run \
                 `strata key remove {}` with the new password",
                short(&new),
                short(repo.key_name()),
                short(repo.key_name())
            ))
        })?;
    Ok(new)
}
