//! Reading key files, and finding the one a password opens. Needs no repository handle:
//! opening a repository starts here.

use strata_format::crypto::MasterKey;
use strata_format::keyfile::KeyFile;
use strata_storage::{Backend, FileType};

use crate::stored::{check_size, verify_name};
use crate::EngineError;
use crate::Result;

/// Master keys this process has unwrapped, by [`memo_key`]: a long-running process (the
/// server opens a repository for every request) derives each key with argon2id once, not
/// per open (~0.2 s and 19 MiB each). Only ever a handful of entries.
static UNWRAPPED: std::sync::Mutex<Vec<([u8; 32], MasterKey)>> = std::sync::Mutex::new(Vec::new());

/// At most this many remembered keys (the oldest goes first).
const REMEMBERED: usize = 16;

/// What names one (key file, password) pair: BLAKE3 of the key file's bytes and of the
/// password's own BLAKE3. A different password, or a key file rewritten (a password
/// change), is a different entry; the entry reveals neither.
pub(crate) fn memo_key(kf: &KeyFile, password: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key("strata 2026 unwrapped master key memo");
    h.update(blake3::hash(password).as_bytes());
    h.update(&kf.encode());
    *h.finalize().as_bytes()
}

/// The key remembered for (`kf`, `password`) in this process or in the cache on disk,
/// without deriving one.
fn remembered(kf: &KeyFile, password: &[u8]) -> Option<MasterKey> {
    let memo = memo_key(kf, password);
    let known = UNWRAPPED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, key)) = known.iter().find(|(m, _)| *m == memo) {
        return Some(key.clone());
    }
    drop(known);
    crate::keycache::cached(kf, password)
}

/// `kf.unwrap_key(password)`, remembered for this process once it succeeds (and on disk
/// when a caller switched that on: [`crate::keycache`]).
fn unwrap_remembered(
    kf: &KeyFile,
    password: &[u8],
) -> std::result::Result<MasterKey, strata_format::FormatError> {
    let memo = memo_key(kf, password);
    {
        let known = UNWRAPPED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, key)) = known.iter().find(|(m, _)| *m == memo) {
            return Ok(key.clone());
        }
    }
    let key = crate::keycache::unwrap(kf, password)?;
    let mut known = UNWRAPPED.lock().unwrap_or_else(|e| e.into_inner());
    if known.len() >= REMEMBERED {
        known.remove(0);
    }
    known.push((memo, key.clone()));
    Ok(key)
}

/// Forgets every remembered key, as if this process had just started.
#[cfg(test)]
pub(crate) fn forget_remembered() {
    UNWRAPPED.lock().unwrap_or_else(|e| e.into_inner()).clear();
}

/// One key file as read from storage, whatever state it is in.
pub(crate) struct KeyRead {
    pub name: String,
    /// Damage in storage (its bytes do not hash to its name, or it is too large to be a
    /// key file), or why it could not be read at all.
    pub damage: Option<EngineError>,
    /// The decoded file (also of a damaged one, if it decodes), or why it does not decode.
    pub file: std::result::Result<KeyFile, EngineError>,
}

impl KeyRead {
    /// Intact and decoded.
    pub fn usable(&self) -> Option<&KeyFile> {
        match (&self.damage, &self.file) {
            (None, Ok(kf)) => Some(kf),
            _ => None,
        }
    }

    /// What is wrong with it, if anything.
    pub fn problem(&self) -> Option<String> {
        match (&self.damage, &self.file) {
            (Some(e), _) | (None, Err(e)) => Some(e.to_string()),
            (None, Ok(_)) => None,
        }
    }
}

/// Reads every listed key file. One unreadable, damaged or hostile key file never stops
/// the others from being read (nobody is locked out by one bad file); a file removed
/// meanwhile is left out.
pub(crate) async fn read_all(backend: &dyn Backend, listed: &[(String, u64)]) -> Vec<KeyRead> {
    let mut out = Vec::with_capacity(listed.len());
    for (name, size) in listed {
        let read = |damage: EngineError| KeyRead {
            name: name.clone(),
            file: Err(EngineError::Corrupt(format!("keys/{name} was not decoded"))),
            damage: Some(damage),
        };
        if let Err(e) = check_size(FileType::Key, name, *size) {
            out.push(read(e));
            continue;
        }
        let bytes = match backend.read(FileType::Key, name).await {
            Ok(b) => b,
            Err(e) if e.kind == strata_storage::ErrorKind::NotFound => continue,
            Err(e) => {
                out.push(read(EngineError::Corrupt(format!(
                    "key file keys/{name} could not be read ({e})"
                ))));
                continue;
            }
        };
        out.push(KeyRead {
            name: name.clone(),
            damage: verify_name(FileType::Key, name, &bytes).err(),
            file: KeyFile::decode(&bytes)
                .map_err(|e| EngineError::format(format!("keys/{name}"), e)),
        });
    }
    out
}

/// The master key a password unwraps, or why none was found.
pub(crate) enum Unlocked {
    Key {
        key: MasterKey,
        name: String,
    },
    NoKey {
        /// Key files found damaged on the way, described.
        damaged: Vec<String>,
        /// Key files the password unwrapped whose master key `accept` refused.
        refused: Vec<String>,
    },
}

/// Tries key files one by one until one unwraps with `password` to a master key that
/// `accept`s (one that opens this repository's config; a key file copied from another
/// repository with the same password does not). A key file that is damaged in storage is
/// reported, and still tried in case the damage spared what matters; one that cannot be
/// read is reported and skipped. No key file, however broken, stops the search.
pub(crate) async fn unlock_master_key(
    backend: &dyn Backend,
    keys: &[(String, u64)],
    password: &[u8],
    accept: &dyn Fn(&MasterKey) -> std::result::Result<(), String>,
) -> Result<Unlocked> {
    let read = read_all(backend, keys).await;
    // A remembered key first: the key file this password opens may be listed after others
    // that it does not, each an argon2id derivation.
    for k in &read {
        if let Some(key) = k.usable().and_then(|kf| remembered(kf, password)) {
            if accept(&key).is_ok() {
                return Ok(Unlocked::Key {
                    key,
                    name: k.name.clone(),
                });
            }
        }
    }
    let mut damaged = Vec::new();
    let mut refused = Vec::new();
    for k in read {
        let name = &k.name;
        if let Some(e) = &k.damage {
            tracing::warn!("{e}");
        }
        let kf = match &k.file {
            Ok(kf) => kf,
            Err(e) => {
                match &k.damage {
                    // Damaged in storage, it may have been the password's.
                    Some(damage) => damaged.push(damage.to_string()),
                    // Intact but undecodable (hostile, or a newer version): only skipped.
                    None => tracing::warn!("skipping key file keys/{name}: {e}"),
                }
                continue;
            }
        };
        match unwrap_remembered(kf, password) {
            Ok(key) => match accept(&key) {
                Ok(()) => {
                    if k.damage.is_some() {
                        tracing::warn!("key file keys/{name} still opens the repository");
                    }
                    return Ok(Unlocked::Key {
                        key,
                        name: name.clone(),
                    });
                }
                Err(e) => {
                    tracing::warn!("key file keys/{name} does not open this repository: {e}");
                    refused.push(format!("keys/{name}: {e}"));
                }
            },
            Err(e) => {
                if !matches!(e, strata_format::FormatError::WrongPassword) {
                    tracing::warn!("skipping key file keys/{name}: {e}");
                }
                if let Some(damage) = &k.damage {
                    damaged.push(damage.to_string());
                }
            }
        }
    }
    Ok(Unlocked::NoKey { damaged, refused })
}
