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
    /// `scheme://user@host[:port]/database[?options]`, without a password; `localhost`
    /// stands for the empty host of a local socket (`socket`).
    url: url::Url,
    password: Option<DbPassword>,
    /// The URL named no host (`postgres://app@/shop`): the tools' default local socket.
    socket: bool,
}

impl Server {
    /// Parses a URL of one of `schemes` (the first names it in errors). A password in it is
    /// moved into [`Server::password`]; one in its query is refused.
    pub(crate) fn parse(text: &str, schemes: &[&str]) -> Result<Server> {
        let socket_form = with_socket_host(text);
        let socket = socket_form.is_some();
        let mut u = url::Url::parse(socket_form.as_deref().unwrap_or(text))
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
        let server = Server {
            url: u,
            password,
            socket,
        };
        if server.database().is_empty() {
            return Err(DbError::Invalid(format!(
                "{}: the URL names no database (…/DATABASE)",
                redact(text)
            )));
        }
        Ok(server)
    }

    /// The URL, which holds no password (and `localhost` for a local socket: see
    /// [`Server::socket`]).
    pub(crate) fn url(&self) -> &url::Url {
        &self.url
    }

    /// Whether the URL named no host: the tools' default local socket.
    pub(crate) fn socket(&self) -> bool {
        self.socket
    }

    /// The host the URL names; `None` for a local socket.
    pub(crate) fn host(&self) -> Option<&str> {
        if self.socket {
            None
        } else {
            self.url.host_str()
        }
    }

    /// The URL as the command-line tools take it (a local socket's with its empty host).
    pub(crate) fn tool_url(&self) -> String {
        self.text(true)
    }

    fn text(&self, query: bool) -> String {
        let mut u = self.url.clone();
        if !query {
            u.set_query(None);
        }
        if !self.socket {
            return u.to_string();
        }
        let user = u.username();
        let mut out = format!("{}://", u.scheme());
        if !user.is_empty() {
            out.push_str(user);
            out.push('@');
        }
        if let Some(port) = u.port() {
            out.push_str(&format!(":{port}"));
        }
        out.push_str(u.path());
        if let Some(q) = u.query() {
            out.push('?');
            out.push_str(q);
        }
        out
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
        self.text(false)
    }

    /// The same server and credentials with another database.
    pub(crate) fn with_database(&self, name: &str) -> Server {
        let mut url = self.url.clone();
        url.set_path(&format!("/{name}"));
        Server {
            url,
            password: self.password.clone(),
            socket: self.socket,
        }
    }
}

/// `text` with `localhost` for its empty host (`postgres://app@/shop`,
/// `postgres:///shop`, `mysql://u@:3307/db`); `None` when it names a host or is not a URL
/// of that form.
fn with_socket_host(text: &str) -> Option<String> {
    let (scheme, rest) = text.split_once("://")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    if !(hostport.is_empty() || hostport.starts_with(':')) {
        return None;
    }
    let userinfo = userinfo.map(|u| format!("{u}@")).unwrap_or_default();
    Some(format!("{scheme}://{userinfo}localhost{hostport}{tail}"))
}

/// The URL text without a password (or query), for error messages; a local socket's
/// with its empty host, as it was written.
fn redact(text: &str) -> String {
    let socket = with_socket_host(text);
    match url::Url::parse(socket.as_deref().unwrap_or(text)) {
        Ok(mut u) if !u.cannot_be_a_base() => {
            let _ = u.set_password(None);
            Server {
                url: u,
                password: None,
                socket: socket.is_some(),
            }
            .display()
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

    /// An empty host names the local socket (libpq's and the mysql tools' default): the
    /// tools get the URL with its empty host, people see it so, and no password is kept.
    #[test]
    fn an_empty_host_is_the_local_socket() {
        for (text, tool, user) in [
            (
                "postgres://kanbu@/kanbu",
                "postgres://kanbu@/kanbu",
                Some("kanbu"),
            ),
            ("postgres:///kanbu", "postgres:///kanbu", None),
            (
                "postgresql://kanbu:pw@:5433/kanbu?sslmode=disable",
                "postgresql://kanbu@:5433/kanbu?sslmode=disable",
                Some("kanbu"),
            ),
        ] {
            let s = Server::parse(text, &["postgres", "postgresql"]).unwrap();
            assert!(s.socket(), "{text}");
            assert_eq!(s.host(), None);
            assert_eq!(s.tool_url(), tool);
            assert_eq!(s.user().as_deref(), user);
            assert_eq!(s.database(), "kanbu");
            assert!(!s.display().contains("pw") && !s.display().contains('?'));
            let other = s.with_database("scratch");
            assert!(other.socket());
            let at = tool.rfind("/kanbu").unwrap();
            let want = format!("{}/scratch{}", &tool[..at], &tool[at + "/kanbu".len()..]);
            assert_eq!(other.tool_url(), want);
        }
        let tcp = Server::parse("postgres://u@db.example:5432/x", &["postgres"]).unwrap();
        assert!(!tcp.socket());
        assert_eq!(tcp.host(), Some("db.example"));
        assert_eq!(tcp.tool_url(), "postgres://u@db.example:5432/x");
        // Still refused: no database, or not a URL at all; named as written, without its
        // password.
        let err = Server::parse("postgres://u:pw@/", &["postgres"])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("postgres://u@/: "), "{err}");
        assert!(Server::parse("postgres:u@/x", &["postgres"]).is_err());
    }

    #[test]
    fn percent_escapes_decode() {
        assert_eq!(percent_decode("a%2Fb%"), "a/b%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
