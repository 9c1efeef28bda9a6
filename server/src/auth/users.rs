//! The users of `[server.users]`: their argon2id password hashes (made by `strata serve user
//! add`, checked at login) and writing a user into `strata.toml` without disturbing the rest
//! of the file.

use std::path::{Path, PathBuf};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

use super::Role;

/// A hash of a password nobody knows, with the parameters [`hash_password`] uses: a login
/// for a user that does not exist is checked against it, so that it takes as long as a
/// wrong password for one that does (and says nothing about which names exist).
pub const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c3RyYXRhLWR1bW15LXNhbHQ$Yk5kb8H2OQ0lS8S8l6eEUwqYkqxBDn0o0nq0ZqkXv7E";

/// The shortest password `strata serve user add` accepts.
pub const MIN_PASSWORD_LEN: usize = 8;

/// Why a password could not be hashed or a user not written (a file named, never a
/// password).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UserError(pub String);

/// The argon2id hash (PHC string, argon2's default parameters: m=19456 KiB, t=2, p=1) of
/// `password` with a random salt.
pub fn hash_password(password: &str) -> Result<String, UserError> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
        .map_err(|e| UserError(format!("making a salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| UserError(format!("hashing the password: {e}")))
}

/// Whether `password` matches the PHC string `hash` (a hash that cannot be read matches
/// nothing). Slow by design: call it on a blocking thread.
pub fn verify_password(password: &str, hash: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(e) => {
            tracing::error!("a password hash in [server.users] cannot be read: {e}");
            false
        }
    }
}

/// Whether `name` is a user name the config accepts: letters, digits, `-`, `_` and `.`,
/// starting with a letter or digit, at most 64 characters.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// What [`write_user`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// A new user, appended as its own table.
    Added,
    /// An existing user's hash and role replaced (`--force`).
    Replaced,
}

/// Writes `[server.users.NAME] password-hash, role` into the config file `path`: a new user
/// is appended as a table of its own, leaving every byte before it as it was (or, when the
/// file's layout does not allow that, inserted by a TOML editor that keeps the rest of the
/// formatting); an existing one is refused unless `force`. The result must load as a config
/// (checked before it replaces the file, which is written beside and renamed, keeping its
/// permissions).
pub fn write_user(
    path: &Path,
    name: &str,
    role: Role,
    hash: &str,
    force: bool,
) -> Result<Written, UserError> {
    if !valid_name(name) {
        return Err(UserError(format!(
            "{name:?}: a user name is letters, digits, `-`, `_` and `.`, starting with a \
             letter or digit, at most 64 characters"
        )));
    }
    let real =
        std::fs::canonicalize(path).map_err(|e| UserError(format!("{}: {e}", path.display())))?;
    let text = std::fs::read_to_string(&real)
        .map_err(|e| UserError(format!("{}: {e}", real.display())))?;
    let doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e| UserError(format!("{}: {e}", real.display())))?;
    let exists = doc
        .get("server")
        .and_then(|s| s.get("users"))
        .and_then(|u| u.get(name))
        .is_some();
    if exists && !force {
        return Err(UserError(format!(
            "user {name} exists in {}: --force replaces its password and role",
            real.display()
        )));
    }
    let appended = (!exists).then(|| append(&text, name, role, hash));
    let new_text = match appended.filter(|t| has_user(t, name, role, hash)) {
        Some(t) => t,
        None => edit(doc, name, role, hash),
    };
    if !has_user(&new_text, name, role, hash) {
        return Err(UserError(format!(
            "{}: could not write user {name} into this file's layout; add it by hand",
            real.display()
        )));
    }
    replace_checked(&real, &new_text, name, hash)?;
    Ok(if exists {
        Written::Replaced
    } else {
        Written::Added
    })
}

fn append(text: &str, name: &str, role: Role, hash: &str) -> String {
    let mut out = text.to_string();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    if !out.is_empty() {
        out.push('\n');
    }
    out.push_str(&format!(
        "[server.users.{}]\npassword-hash = {}\nrole = {}\n",
        toml_edit::Key::new(name),
        toml_edit::Value::from(hash),
        toml_edit::Value::from(role.name()),
    ));
    out
}

fn edit(mut doc: toml_edit::DocumentMut, name: &str, role: Role, hash: &str) -> String {
    let server = doc
        .entry("server")
        .or_insert_with(toml_edit::table)
        .as_table_like_mut();
    let Some(server) = server else {
        return doc.to_string();
    };
    let users = server.entry("users").or_insert(implicit_table());
    let Some(users) = users.as_table_like_mut() else {
        return doc.to_string();
    };
    let user = users.entry(name).or_insert(toml_edit::table());
    if let Some(user) = user.as_table_like_mut() {
        user.insert("password-hash", toml_edit::value(hash));
        user.insert("role", toml_edit::value(role.name()));
    }
    doc.to_string()
}

fn implicit_table() -> toml_edit::Item {
    let mut t = toml_edit::Table::new();
    t.set_implicit(true);
    toml_edit::Item::Table(t)
}

fn has_user(text: &str, name: &str, role: Role, hash: &str) -> bool {
    let Ok(doc) = text.parse::<toml_edit::DocumentMut>() else {
        return false;
    };
    let user = doc
        .get("server")
        .and_then(|s| s.get("users"))
        .and_then(|u| u.get(name));
    user.and_then(|u| u.get("password-hash"))
        .and_then(|v| v.as_str())
        == Some(hash)
        && user.and_then(|u| u.get("role")).and_then(|v| v.as_str()) == Some(role.name())
}

/// Writes `text` beside `real`, loads it as a config (it must load, with the user), and
/// renames it over `real` with `real`'s permissions.
fn replace_checked(real: &Path, text: &str, name: &str, hash: &str) -> Result<(), UserError> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let err = |p: &Path, e: std::io::Error| UserError(format!("{}: {e}", p.display()));
    let mode = std::fs::metadata(real)
        .map_err(|e| err(real, e))?
        .permissions()
        .mode();
    let tmp = beside(real);
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode & 0o7777)
            .open(&tmp)
            .map_err(|e| err(&tmp, e))?;
        f.write_all(text.as_bytes()).map_err(|e| err(&tmp, e))?;
        f.sync_all().map_err(|e| err(&tmp, e))?;
        let cfg = strata_app::config::load(Some(&tmp)).map_err(|e| {
            UserError(format!(
                "{} would no longer load with user {name}, left unchanged:\n{e}",
                real.display()
            ))
        })?;
        if cfg.server.users.get(name).map(|u| u.password_hash.as_str()) != Some(hash) {
            return Err(UserError(format!(
                "{}: user {name} did not read back; left unchanged",
                real.display()
            )));
        }
        std::fs::rename(&tmp, real).map_err(|e| err(real, e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    } else if let Some(dir) = real.parent() {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    result
}

fn beside(real: &Path) -> PathBuf {
    let mut name = real.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.tmp", std::process::id()));
    real.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("correct horsE", &h));
        assert!(!verify_password("correct horse", "$argon2id$nonsense"));
        // The dummy hash is well formed (so checking against it costs a full verification).
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
        assert!(!verify_password("", DUMMY_HASH));
    }

    #[test]
    fn names_as_the_config_wants_them() {
        assert!(valid_name("alice"));
        assert!(valid_name("ops.team-1_x"));
        assert!(!valid_name(""));
        assert!(!valid_name("-x"));
        assert!(!valid_name("a b"));
        assert!(!valid_name(&"a".repeat(65)));
    }

    fn config(dir: &Path, rest: &str) -> PathBuf {
        let p = dir.join("strata.toml");
        std::fs::write(
            &p,
            format!(
                "# my config\nstate-dir = \"{}\"   # keep\n{rest}",
                dir.join("state").display()
            ),
        )
        .unwrap();
        p
    }

    #[test]
    fn a_new_user_is_appended_and_the_rest_kept_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let p = config(dir.path(), "\n[server]\nsession-ttl = \"1h\"  # short\n");
        let before = std::fs::read_to_string(&p).unwrap();
        let h = hash_password("password1").unwrap();
        assert_eq!(
            write_user(&p, "alice", Role::Admin, &h, false).unwrap(),
            Written::Added
        );
        let after = std::fs::read_to_string(&p).unwrap();
        assert!(after.starts_with(&before), "{after}");
        let cfg = strata_app::config::load(Some(&p)).unwrap();
        assert_eq!(cfg.server.users["alice"].password_hash, h);
        assert_eq!(cfg.server.users["alice"].role, "admin");
        // Again: refused without force, replaced with it.
        let e = write_user(&p, "alice", Role::Viewer, &h, false).unwrap_err();
        assert!(e.0.contains("--force"), "{e}");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), after);
        let h2 = hash_password("password2").unwrap();
        assert_eq!(
            write_user(&p, "alice", Role::Viewer, &h2, true).unwrap(),
            Written::Replaced
        );
        let replaced = std::fs::read_to_string(&p).unwrap();
        assert!(replaced.starts_with(&before), "{replaced}");
        let cfg = strata_app::config::load(Some(&p)).unwrap();
        assert_eq!(cfg.server.users["alice"].password_hash, h2);
        assert_eq!(cfg.server.users["alice"].role, "viewer");
    }

    #[test]
    fn an_inline_users_table_is_edited_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let h = hash_password("password1").unwrap();
        let p = config(
            dir.path(),
            &format!(
                "[server]\nusers = {{ bob = {{ password-hash = \"{h}\", role = \"viewer\" }} }}\n"
            ),
        );
        write_user(&p, "carol.x", Role::Operator, &h, false).unwrap();
        let cfg = strata_app::config::load(Some(&p)).unwrap();
        assert_eq!(cfg.server.users["carol.x"].role, "operator");
        assert_eq!(cfg.server.users["bob"].role, "viewer");
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.starts_with("# my config\n"), "{text}");
    }
}
