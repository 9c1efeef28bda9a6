//! A database server's address and credentials: a URL that never holds a password, and the
//! password beside it ([`DbPassword`]).
//!
//! A password written into a URL on a command line (`postgres://app:SECRET@host/db`) is
//! taken out of it when the URL is parsed. From then on the password goes only where it is
//! needed: to the dump and load tools through their environment (`PGPASSWORD`,
//! `MYSQL_PWD`), never their command line, and to sqlx through its connect options. It is
//! never shown: not in errors, in logs, in `Debug` output, nor in a snapshot.

use std::fmt;

use crate::error::{DbError, Result};

/// A database password. Its `Debug` form hides it; only this crate reads it.
#[derive(Clone, PartialEq, Eq)]
pub struct DbPassword(String);

impl DbPassword {
    pub fn new(password: impl Into<String>) -> Self {
        DbPassword(password.into())
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for DbPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DbPassword(<hidden>)")
    }
}

/// A PostgreSQL or MySQL/MariaDB database: where it is, and the password to log in with
/// when one was given (else the tools' own sources apply: `PGPASSWORD`, `~/.pgpass`,
/// `MYSQL_PWD`, option files).
#[derive(Debug, Clone)]
pub struct Server {
    /// `scheme://user@host[:port]/database[?options]`, without a password.
    url: url::Url,
    password: Option<DbPassword>,
}

impl Server {
    /// Parses a URL of one of `schemes` (the first names it in errors). A password in it is
    /// moved into [`Server::password`]; one in its query is refused.
    pub(crate) fn parse(text: &str, schemes: &[&str]) -> Result<Server> {
        let mut u = url::Url::parse(text)
            .map_err(|e| DbError::Invalid(format!("{}: {e}", redact(text))))?;
        if !schemes.contains(&u.scheme()) {
            return Err(DbError::Invalid(format!(
                "{}: expected a {}:// URL",
                redact(text),
                schemes[0]
            )));
        }
        if u.cannot_be_a_base() || u.host_str().is_none_or(str::is_empty) {
            return Err(DbError::Invalid(format!(
                "{}: expected {}://USER@HOST[:PORT]/DATABASE",
                redact(text),
                schemes[0]
            )));
        }
        if u.query_pairs()
            .any(|(k, _)| k.eq_ignore_ascii_case("password"))
        {
            return Err(DbError::Invalid(format!(
                "{}: give the password with --db-password-file or --db-password-command \
                 (or PGPASSWORD / MYSQL_PWD, ~/.pgpass), not in the URL's query",
                redact(text)
            )));
        }
        let password = u.password().map(|p| DbPassword(percent_decode(p)));
        // Cannot fail: the URL has a host.
        let _ = u.set_password(None);
        let server = Server { url: u, password };
        if server.database().is_empty() {
            return Err(DbError::Invalid(format!(
                "{}: the URL names no database (…/DATABASE)",
                redact(text)
            )));
        }
        Ok(server)
    }

    /// The URL, which holds no password.
    pub(crate) fn url(&self) -> &url::Url {
        &self.url
    }

    /// The password given with the URL or set since, if any.
    pub fn password(&self) -> Option<&DbPassword> {
        self.password.as_ref()
    }

    pub fn set_password(&mut self, password: DbPassword) {
        self.password = Some(password);
    }

    /// The database's name: the URL's path, percent-decoded.
    pub fn database(&self) -> String {
        percent_decode(self.url.path().trim_start_matches('/'))
    }

    /// The user (percent-decoded), if the URL names one.
    pub(crate) fn user(&self) -> Option<String> {
        (!self.url.username().is_empty()).then(|| percent_decode(self.url.username()))
    }

    /// The URL without its query, for people and for snapshots.
    pub fn display(&self) -> String {
        let mut u = self.url.clone();
        u.set_query(None);
        u.to_string()
    }

    /// The same server and credentials with another database.
    pub(crate) fn with_database(&self, name: &str) -> Server {
        let mut url = self.url.clone();
        url.set_path(&format!("/{name}"));
        Server {
            url,
            password: self.password.clone(),
        }
    }
}

/// The URL text without a password (or query), for error messages.
fn redact(text: &str) -> String {
    match url::Url::parse(text) {
        Ok(mut u) if !u.cannot_be_a_base() => {
            let _ = u.set_password(None);
            u.set_query(None);
            u.to_string()
        }
        _ => "the database URL".into(),
    }
}

pub(crate) fn percent_decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_in_the_url_is_taken_out_of_it() {
        let s = Server::parse(
            "postgres://u:s%40cret@127.0.0.1:5433/app?sslmode=disable",
            &["postgres"],
        )
        .unwrap();
        assert_eq!(s.password().map(DbPassword::expose), Some("s@cret"));
        assert_eq!(s.url().password(), None);
        assert!(!s.url().as_str().contains("cret"), "{}", s.url());
        assert_eq!(s.user().as_deref(), Some("u"));
        assert_eq!(s.database(), "app");
        assert_eq!(s.display(), "postgres://u@127.0.0.1:5433/app");
        let debug = format!("{s:?}");
        assert!(!debug.contains("cret"), "{debug}");
        let other = s.with_database("scratch");
        assert_eq!(other.database(), "scratch");
        assert_eq!(other.password(), s.password());
    }

    #[test]
    fn a_password_given_apart_replaces_none() {
        let mut s = Server::parse("mysql://u@h/db", &["mysql"]).unwrap();
        assert!(s.password().is_none());
        s.set_password(DbPassword::new("pw"));
        assert_eq!(s.password().map(DbPassword::expose), Some("pw"));
        assert_eq!(s.display(), "mysql://u@h/db");
    }

    #[test]
    fn percent_escapes_decode() {
        assert_eq!(percent_decode("a%2Fb%"), "a/b%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
