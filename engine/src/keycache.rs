//! An opt-in cache on disk of unwrapped master keys, so that a short-lived process started
//! again and again (`archive_command = 'strata pg wal-push …'`: one process per WAL
//! segment) does not derive the key with argon2id every time (~0.25 s and 64 MiB each).
//!
//! **What this trades.** A key file makes guessing its password cost one argon2id run per
//! guess. A cache file is sealed under a key derived with BLAKE3 from the password's hash
//! and the key file's bytes, so anyone who can read both the cache file and the key file
//! can try passwords at BLAKE3 speed instead. That is why it is off unless a caller
//! switches it on ([`remember_on_disk`]; only `strata pg wal-push`/`wal-fetch` do), why it
//! lives in a 0700 directory of the state dir on the database host, next to the password
//! file the same user can already read, and why it is never written into a repository.
//!
//! One file per key file, named by a BLAKE3 hash of the key file alone (so the name says
//! nothing about the password), sealed under a key from the password and the key file:
//!
//! ```text
//! "STRATAKC" (8) || version u16 LE (1)
//!   || seal(blake3_derive_key("strata 2026 key cache sealing key", blake3(password) || key file),
//!           aad "strata:keycache" || the 10 bytes before,
//!           version u16 LE (1) || postcard(MasterKey))
//! ```
//!
//! A missing, short, corrupt, other-version or other-key cache file is never an error: it
//! is ignored (a debug line), argon2id runs and the file is written again. A cached key is
//! still checked by the caller like a freshly unwrapped one (it must open this repository's
//! config). Opening tries the key files with a remembered or cached key before deriving any
//! (the key file a password opens may be listed after others). A password change or `key
//! remove` leaves a file that matches no (key file, password) any more: harmless, and not
//! deleted.

use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use strata_format::crypto::{self, MasterKey, NONCE_LEN};
use strata_format::envelope::{aad, decode_postcard, encode_versioned, split_version};
use strata_format::keyfile::KeyFile;
use strata_format::FormatError;

/// First bytes of every cache file. Never change.
const CACHE_MAGIC: &[u8; 8] = b"STRATAKC";
/// Cache file version written by this program. Never reuse a number.
const CACHE_VERSION: u16 = 1;
/// Larger than any cache file (a sealed master key is about 120 bytes).
const MAX_CACHE_FILE: u64 = 1024;
/// BLAKE3 context of the sealing key; differs from the file name's ([`crate::keyfiles`]).
const SEALING_CONTEXT: &str = "strata 2026 key cache sealing key";
/// The BLAKE3 context of a cache file's name.
const NAME_CONTEXT: &str = "strata 2026 key cache file name";

/// The directory switched on by [`remember_on_disk`]; `None`: no cache (the default).
static CACHE_DIR: std::sync::Mutex<Option<PathBuf>> = std::sync::Mutex::new(None);

/// Keeps master keys unwrapped in this process also in `dir` (created 0700 if missing),
/// for later processes of the same user: one argon2id derivation per (key file, password)
/// instead of one per process. Process-wide, and off until called; the caller gives a
/// directory of its own in the state dir (not shared with anything else). A directory that
/// is not the current user's, or is writable by group or others, is refused when first
/// used (a warning, and keys are derived as without the cache). See the module docs for
/// what this trades.
pub fn remember_on_disk(dir: &Path) {
    *CACHE_DIR.lock().unwrap_or_else(|e| e.into_inner()) = Some(dir.to_path_buf());
}

/// The cache directory in use, if any.
fn cache_dir() -> Option<PathBuf> {
    #[cfg(test)]
    if let Some(dir) = tests::THREAD_DIR.with(|d| d.borrow().clone()) {
        return Some(dir);
    }
    CACHE_DIR.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// The key the cache file named by `memo` holds for (`kf`, `password`), if the cache is on
/// and has a valid one in a directory it may use ([`unwrap`] says why not). Never derives.
pub(crate) fn cached(kf: &KeyFile, password: &[u8]) -> Option<MasterKey> {
    let dir = cache_dir()?;
    usable_dir(&dir).ok()?;
    let path = dir.join(file_name(kf));
    match read(&path, &sealing_key(kf, password)) {
        Ok(key) => Some(key),
        Err(why) => {
            // The directory, not the file: its name is nobody's business (logs of
            // archive_command end up in PostgreSQL's log).
            tracing::debug!("a key cache file in {} not used: {why}", dir.display());
            None
        }
    }
}

/// The name of the cache file for key file `kf`: from the key file alone, so that it says
/// nothing about the password (a name derived from the password too would let whoever
/// lists the directory and holds the key file test passwords at BLAKE3 speed without
/// reading any cache file). Another password of the same key file cannot open the file,
/// and replaces it when it derives the key.
fn file_name(kf: &KeyFile) -> String {
    let mut h = blake3::Hasher::new_derive_key(NAME_CONTEXT);
    h.update(&kf.encode());
    h.finalize().to_hex().to_string()
}

/// `kf.unwrap_key(password)`, through the cache file named by `memo` when the cache is on.
pub(crate) fn unwrap(kf: &KeyFile, password: &[u8]) -> Result<MasterKey, FormatError> {
    let Some(dir) = cache_dir() else {
        return derive(kf, password);
    };
    if let Err(why) = usable_dir(&dir) {
        tracing::warn!(
            "not using the key cache {}: {why}; deriving the key with argon2id",
            dir.display()
        );
        return derive(kf, password);
    }
    if let Some(key) = cached(kf, password) {
        return Ok(key);
    }
    let path = dir.join(file_name(kf));
    let sealing = sealing_key(kf, password);
    let key = derive(kf, password)?;
    if let Err(e) = write(&dir, &path, &sealing, &key) {
        tracing::warn!("could not write a key cache file in {}: {e}", dir.display());
    }
    Ok(key)
}

/// The argon2id path.
fn derive(kf: &KeyFile, password: &[u8]) -> Result<MasterKey, FormatError> {
    #[cfg(test)]
    tests::DERIVED.with(|n| n.set(n.get() + 1));
    kf.unwrap_key(password)
}

/// The key a cache file is sealed under.
fn sealing_key(kf: &KeyFile, password: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key(SEALING_CONTEXT);
    h.update(blake3::hash(password).as_bytes());
    h.update(&kf.encode());
    *h.finalize().as_bytes()
}

/// `dir`, created 0700 if missing, if it is a directory of the current user that nobody
/// else may write to; otherwise why not.
fn usable_dir(dir: &Path) -> Result<(), String> {
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("cannot create it: {e}")),
    }
    let meta = std::fs::symlink_metadata(dir).map_err(|e| e.to_string())?;
    if !meta.is_dir() {
        return Err("it is not a directory (a symbolic link is not followed)".into());
    }
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me {
        return Err(format!(
            "it is owned by uid {}, not by this user (uid {me}); remove it or give it to this user",
            meta.uid()
        ));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "group or others may use it (mode {mode:o}); `chmod 700` it"
        ));
    }
    Ok(())
}

/// The 10 bytes that start every cache file of this version.
fn header() -> [u8; 10] {
    let mut h = [0u8; 10];
    h[..8].copy_from_slice(CACHE_MAGIC);
    h[8..].copy_from_slice(&CACHE_VERSION.to_le_bytes());
    h
}

/// The master key a cache file holds, or why it holds none usable.
fn read(path: &Path, sealing: &[u8; 32]) -> Result<MasterKey, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    file.take(MAX_CACHE_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_CACHE_FILE {
        return Err(format!("larger than {MAX_CACHE_FILE} bytes"));
    }
    decode(&bytes, sealing).map_err(|e| e.to_string())
}

/// Decodes a cache file's bytes (any bytes give a key or an error, never a panic).
fn decode(bytes: &[u8], sealing: &[u8; 32]) -> Result<MasterKey, FormatError> {
    if bytes.len() < 10 || &bytes[..8] != CACHE_MAGIC {
        return Err(FormatError::Malformed {
            object: "key cache file",
            reason: "missing STRATAKC magic".into(),
        });
    }
    let (version, sealed) = split_version("key cache file", &bytes[8..], CACHE_VERSION)?;
    if version != CACHE_VERSION {
        return Err(FormatError::UnknownVersion {
            object: "key cache file",
            found: version,
            supported: CACHE_VERSION,
        });
    }
    let plain = crypto::open(
        sealing,
        "key cache file",
        &aad("keycache", &bytes[..10]),
        sealed,
    )?;
    let (_, body) = split_version("key cache file", &plain, CACHE_VERSION)?;
    decode_postcard("master key", body)
}

/// A cache file's bytes for `key`.
fn encode(key: &MasterKey, sealing: &[u8; 32]) -> Vec<u8> {
    let head = header();
    let mut nonce = [0u8; NONCE_LEN];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut nonce);
    let plain = encode_versioned(CACHE_VERSION, key);
    let mut out = head.to_vec();
    crypto::seal_append(sealing, &nonce, &aad("keycache", &head), &plain, &mut out);
    out
}

/// Writes `path` atomically, 0600: a temporary file in `dir`, synced, renamed over it, and
/// the directory synced.
fn write(dir: &Path, path: &Path, sealing: &[u8; 32], key: &MasterKey) -> std::io::Result<()> {
    let bytes = encode(key, sealing);
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("key");
    let tmp = dir.join(format!(
        ".{name}.{}.{:016x}.tmp",
        std::process::id(),
        rand::random::<u64>()
    ));
    let written = write_and_rename(&tmp, path, &bytes);
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    std::fs::File::open(dir)?.sync_all()
}

/// Writes `bytes` into the new file `tmp` (0600), syncs it and renames it to `path`.
fn write_and_rename(tmp: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(tmp, path)
}

#[cfg(test)]
mod tests;
