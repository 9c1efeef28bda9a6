//! API tokens: `strata serve token add NAME --role R` makes one, shows it once, and keeps
//! only its SHA-256 (a token is 32 random bytes: a fast hash cannot be brute-forced) in
//! `STATE_DIR/server-tokens.json` (0600). `Authorization: Bearer strata_...` names it.

use std::path::{Path, PathBuf};
use std::sync::RwLock;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Role;

/// The prefix every token starts with (so a leaked one is recognisable in a scanner).
pub const PREFIX: &str = "strata_";

/// One stored token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StoredToken {
    pub name: String,
    pub role: String,
    /// SHA-256 of the whole token text, hex.
    pub sha256: String,
    /// When it was made, RFC 3339.
    pub created: String,
}

/// The tokens of a state directory, kept in memory and read again whenever the file
/// changes (`strata serve token remove` takes effect on a running server at once).
#[derive(Debug)]
pub struct TokenStore {
    path: PathBuf,
    tokens: RwLock<Vec<StoredToken>>,
    /// The file's modification time and length when it was last read (`None`: no file).
    seen: RwLock<Option<(std::time::SystemTime, u64)>>,
}

/// Why the token file could not be read or written (its path named, never a token).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TokenError(pub String);

impl TokenStore {
    pub fn file(state_dir: &Path) -> PathBuf {
        state_dir.join("server-tokens.json")
    }

    /// Reads the tokens of `state_dir` (none when the file does not exist).
    pub fn load(state_dir: &Path) -> Result<TokenStore, TokenError> {
        let path = Self::file(state_dir);
        let seen = stamp(&path);
        let tokens = read(&path)?;
        Ok(TokenStore {
            path,
            tokens: RwLock::new(tokens),
            seen: RwLock::new(seen),
        })
    }

    /// Reads the file again if it changed since it was last read. A file that cannot be
    /// read or parsed any more leaves no token valid (closed, not open), and says why.
    fn refresh(&self) {
        let now = stamp(&self.path);
        if self.seen.read().map(|s| *s == now).unwrap_or(false) {
            return;
        }
        let tokens = read(&self.path).unwrap_or_else(|e| {
            tracing::error!("API tokens: {e}; no token is accepted until it reads again");
            Vec::new()
        });
        if let (Ok(mut t), Ok(mut s)) = (self.tokens.write(), self.seen.write()) {
            *t = tokens;
            *s = now;
        }
    }

    pub fn list(&self) -> Vec<StoredToken> {
        self.tokens.read().map(|t| t.clone()).unwrap_or_default()
    }

    /// Makes a token `name` with `role`, stores its hash durably (0600, written beside and
    /// renamed), and returns the token itself: the only time it is ever shown.
    pub fn add(&self, name: &str, role: Role, created: &str) -> Result<String, TokenError> {
        if !super::users::valid_name(name) {
            return Err(TokenError(format!(
                "{name:?} is not a token name: letters, digits, '-', '_' and '.', starting with a \
                 letter or digit, at most 64"
            )));
        }
        let token = format!("{PREFIX}{}", hex::encode(rand::random::<[u8; 32]>()));
        let stored = StoredToken {
            name: name.to_string(),
            role: role.name().to_string(),
            sha256: hash(&token),
            created: created.to_string(),
        };
        let mut all = self.list();
        if all.iter().any(|t| t.name == name) {
            return Err(TokenError(format!(
                "a token named {name} exists: remove it first (strata serve token remove {name})"
            )));
        }
        all.push(stored);
        self.save(&all)?;
        Ok(token)
    }

    /// Removes the token `name`; whether there was one.
    pub fn remove(&self, name: &str) -> Result<bool, TokenError> {
        let mut all = self.list();
        let before = all.len();
        all.retain(|t| t.name != name);
        if all.len() == before {
            return Ok(false);
        }
        self.save(&all)?;
        Ok(true)
    }

    /// The name and role of the token `text`, if it is one of ours.
    pub fn verify(&self, text: &str) -> Option<(String, Role)> {
        if !text.starts_with(PREFIX) {
            return None;
        }
        self.refresh();
        let h = hash(text);
        let tokens = self.tokens.read().ok()?;
        // Every stored hash compared in full: no early exit on the first match.
        let mut found = None;
        for t in tokens.iter() {
            if constant_time_eq(t.sha256.as_bytes(), h.as_bytes()) && found.is_none() {
                found = Role::parse(&t.role).map(|r| (t.name.clone(), r));
            }
        }
        found
    }

    fn save(&self, all: &[StoredToken]) -> Result<(), TokenError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let err = |e: std::io::Error| TokenError(format!("{}: {e}", self.path.display()));
        if let Some(dir) = self.path.parent() {
            use std::os::unix::fs::DirBuilderExt;
            // The state directory, as the catalog makes it: only its owner reads it.
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(err)?;
        }
        let tmp = self.path.with_extension("json.tmp");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(err)?;
        let text = serde_json::to_vec_pretty(all).map_err(|e| TokenError(e.to_string()))?;
        f.write_all(&text).map_err(err)?;
        f.sync_all().map_err(err)?;
        std::fs::rename(&tmp, &self.path).map_err(err)?;
        if let Some(dir) = self.path.parent() {
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        if let (Ok(mut t), Ok(mut s)) = (self.tokens.write(), self.seen.write()) {
            *t = all.to_vec();
            *s = stamp(&self.path);
        }
        Ok(())
    }
}

/// The file's modification time and length (`None`: it does not exist or cannot be read).
fn stamp(path: &Path) -> Option<(std::time::SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

fn read(path: &Path) -> Result<Vec<StoredToken>, TokenError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| TokenError(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(TokenError(format!("{}: {e}", path.display()))),
    }
}

fn hash(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_shown_once_and_stored_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::load(dir.path()).unwrap();
        let token = store
            .add("deploy", Role::Operator, "2026-12-07T00:00:00Z")
            .unwrap();
        assert!(token.starts_with(PREFIX));
        let file = std::fs::read_to_string(TokenStore::file(dir.path())).unwrap();
        assert!(!file.contains(&token), "{file}");
        let again = TokenStore::load(dir.path()).unwrap();
        assert_eq!(
            again.verify(&token),
            Some(("deploy".into(), Role::Operator))
        );
        assert_eq!(again.verify("strata_00"), None);
        assert_eq!(again.verify(&token[..token.len() - 1]), None);
        assert!(store.add("deploy", Role::Admin, "x").is_err());
        assert!(store.add("../x", Role::Admin, "x").is_err());
        // Removed through another handle on the file (the CLI, beside a running server):
        // the first store stops accepting it too.
        assert_eq!(
            store.verify(&token),
            Some(("deploy".into(), Role::Operator))
        );
        assert!(again.remove("deploy").unwrap());
        assert_eq!(again.verify(&token), None);
        assert_eq!(store.verify(&token), None);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(TokenStore::file(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0);
    }
}
