//! [`Database`]: the database a command names (`--postgres URL`, `--mysql URL`,
//! `--sqlite FILE` and their restore and scratch twins), built once from its options and
//! from then on used through its [`Dialect`].

use std::ops::{Deref, DerefMut};
use std::path::Path;

use strata_format::snapshot::SourceKind;

use crate::dialect::Dialect;
use crate::error::{DbError, Result};
use crate::mysql::Mysql;
use crate::postgres::Postgres;
use crate::prefixed::Prefixed;
use crate::snapshot::kind_name;
use crate::sqlite::Sqlite;

/// A database: where to back up from, restore into, or test a restore in. It dereferences
/// to its [`Dialect`] (`db.display()`, `db.server_mut()`).
#[derive(Debug)]
pub struct Database(Box<dyn Dialect>);

impl Database {
    /// Parses a `postgres://` or `postgresql://` URL (a password in it is taken out, see
    /// [`crate::Server`]).
    pub fn postgres(url: &str) -> Result<Self> {
        Ok(Database(Box::new(Postgres::parse(url)?)))
    }

    /// Parses a `mysql://` or `mariadb://` URL (a password in it is taken out).
    pub fn mysql(url: &str) -> Result<Self> {
        Ok(Database(Box::new(Mysql::parse(url)?)))
    }

    /// A SQLite file (made absolute).
    pub fn sqlite(path: &Path) -> Result<Self> {
        let abs = std::path::absolute(path).map_err(|e| DbError::io(path, e))?;
        Ok(Database(Box::new(Sqlite(abs))))
    }

    /// A SQLite file at `path` as given (a scratch file this crate made).
    pub(crate) fn sqlite_at(path: std::path::PathBuf) -> Database {
        Database(Box::new(Sqlite(path)))
    }

    /// The database one of three exclusive options names (`--postgres`, `--mysql`,
    /// `--sqlite` and their restore twins), if any.
    pub fn from_options(
        postgres: Option<&str>,
        mysql: Option<&str>,
        sqlite: Option<&Path>,
    ) -> Result<Option<Self>> {
        match (postgres, mysql, sqlite) {
            (Some(url), _, _) => Self::postgres(url).map(Some),
            (None, Some(url), _) => Self::mysql(url).map(Some),
            (None, None, Some(file)) => Self::sqlite(file).map(Some),
            (None, None, None) => Ok(None),
        }
    }

    /// A database of the same kind as the snapshot source `kind`: a URL, or a file for
    /// SQLite (for `--scratch`, which names a server of the snapshot's kind).
    pub fn of_kind(kind: &SourceKind, text: &str) -> Result<Self> {
        match kind {
            SourceKind::Postgres => Self::postgres(text),
            SourceKind::Mysql => Self::mysql(text),
            SourceKind::Sqlite => Self::sqlite(Path::new(text)),
            other => Err(DbError::Invalid(format!(
                "a {} snapshot is not a database dump",
                kind_name(other)
            ))),
        }
    }

    /// The same database with its tools run through `prefix` (`docker exec -i NAME`,
    /// `runuser -u postgres --`), and everything else asked of it too, by its load tool
    /// run through the prefix (see `prefixed`); itself when `prefix` is empty or it is a
    /// file (SQLite, read here).
    pub fn through(self, prefix: Vec<String>) -> Database {
        self.through_until(prefix, None)
    }

    /// [`Database::through`], with every tool run through the prefix killed (with its
    /// process group) at `deadline`: a connection or container that hangs fails the work
    /// instead of holding it forever.
    pub fn through_until(
        self,
        prefix: Vec<String>,
        deadline: Option<std::time::Instant>,
    ) -> Database {
        if prefix.is_empty() || self.file().is_some() {
            return self;
        }
        Database(Box::new(Prefixed::new(self.0, prefix, deadline)))
    }

    /// The same server and login with another database (for scratch databases).
    pub(crate) fn with_database(&self, name: &str) -> Database {
        Database(self.0.with_database(name))
    }
}

impl Clone for Database {
    fn clone(&self) -> Self {
        Database(self.0.clone_box())
    }
}

impl Deref for Database {
    type Target = dyn Dialect;

    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

impl DerefMut for Database {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut *self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::DbPassword;

    #[test]
    fn urls_lose_their_passwords_for_display() {
        let mut db =
            Database::postgres("postgres://u:s%40cret@127.0.0.1:5433/app?sslmode=disable").unwrap();
        assert_eq!(db.display(), "postgres://u@127.0.0.1:5433/app");
        assert_eq!(db.name(), "app");
        assert!(db.server_mut().unwrap().password().is_some());
        let scratch = db.with_database("strata_verify_1");
        assert_eq!(scratch.name(), "strata_verify_1");
        assert!(!format!("{scratch:?}").contains("cret"), "{scratch:?}");
        let err = Database::mysql("mysql://u:pw@host/")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("names no database") && !err.contains("pw"),
            "{err}"
        );
        let err = Database::mysql("postgres://u:pw@host/x")
            .unwrap_err()
            .to_string();
        assert!(err.contains("mysql://") && !err.contains("pw"), "{err}");
    }

    /// A password given apart (`--db-password-file`) reaches the dump and load tools in
    /// their environment, never on their command line.
    #[test]
    fn passwords_reach_the_tools_only_through_their_environment() {
        for (url, var) in [
            ("postgres://u@127.0.0.1:5433/app", "PGPASSWORD"),
            ("mysql://u@127.0.0.1:3306/app", "MYSQL_PWD"),
        ] {
            let mut db = Database::postgres(url)
                .or_else(|_| Database::mysql(url))
                .unwrap();
            db.server_mut()
                .unwrap()
                .set_password(DbPassword::new("s3cret-pw"));
            let dump = db.dump_command("mysqldump  Ver 10.19 Distrib 10.11.6-MariaDB");
            let load = db.load_command();
            for cmd in [dump, load] {
                let args: Vec<String> = cmd
                    .get_args()
                    .map(|a| a.to_string_lossy().into_owned())
                    .collect();
                assert!(!args.iter().any(|a| a.contains("s3cret")), "{args:?}");
                let env: Vec<_> = cmd.get_envs().collect();
                assert!(
                    env.contains(&(
                        std::ffi::OsStr::new(var),
                        Some(std::ffi::OsStr::new("s3cret-pw"))
                    )),
                    "{url}: {var} not set"
                );
            }
            assert!(!format!("{db:?}").contains("s3cret"));
        }
    }

    /// Every command goes through the prefix, and the SQL through the load tool, with the
    /// password in the environment only.
    #[test]
    fn tools_and_questions_go_through_the_prefix() {
        let prefix: Vec<String> = ["runuser", "-u", "postgres", "--"]
            .map(String::from)
            .to_vec();
        let mut db = Database::postgres("postgres://app@/shop").unwrap();
        db.server_mut()
            .unwrap()
            .set_password(crate::DbPassword::new("s3cret"));
        let db = db.through(prefix.clone());
        assert_eq!(db.exec_prefix(), prefix.as_slice());
        let scratch = db.with_database("strata_verify_1");
        for cmd in [
            scratch.load_command(),
            scratch.dump_command("pg_dump (PostgreSQL) 16"),
        ] {
            let args: Vec<String> = std::iter::once(cmd.get_program())
                .chain(cmd.get_args())
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            assert_eq!(args[..4], prefix[..], "{args:?}");
            assert!(!args.iter().any(|a| a.contains("s3cret")), "{args:?}");
        }
        assert_eq!(scratch.exec_prefix(), prefix.as_slice());
        assert_eq!(scratch.name(), "strata_verify_1");
    }

    /// The questions asked through a prefix are SQL the load tool reads on its standard
    /// input: its command line holds fixed flags and the URL (the maintenance database's
    /// for creating and dropping), never SQL or a password.
    #[test]
    fn sql_goes_to_the_load_tool_on_its_input() {
        let argv = |c: &std::process::Command| -> Vec<String> {
            c.get_args()
                .map(|a| a.to_string_lossy().into_owned())
                .collect()
        };
        let mut pg = Database::postgres("postgres://app@/shop").unwrap();
        pg.server_mut()
            .unwrap()
            .set_password(crate::DbPassword::new("s3cret"));
        let admin = argv(&pg.sql_command(true).unwrap());
        assert!(admin.contains(&"--file=-".to_string()), "{admin:?}");
        assert!(admin.contains(&"ON_ERROR_STOP=1".to_string()), "{admin:?}");
        assert_eq!(admin.last().unwrap(), "postgres://app@/postgres");
        let own = argv(&pg.sql_command(false).unwrap());
        assert_eq!(own.last().unwrap(), "postgres://app@/shop");
        let my = Database::mysql("mysql://app@127.0.0.1/blog").unwrap();
        let admin = argv(&my.sql_command(true).unwrap());
        assert!(
            !admin.iter().any(|a| a.starts_with("--database")),
            "{admin:?}"
        );
        let own = argv(&my.sql_command(false).unwrap());
        assert!(own.contains(&"--database=blog".to_string()), "{own:?}");
        for args in [admin, own] {
            assert!(args.iter().all(|a| a.starts_with("--")), "{args:?}");
            assert!(!args
                .iter()
                .any(|a| a.contains("s3cret") || a.contains("SELECT")));
        }
        let sqlite = Database::sqlite(std::path::Path::new("/x/a.db")).unwrap();
        assert!(sqlite.sql_command(false).is_none() && sqlite.tool_sql().is_none());
    }

    #[test]
    fn urls_that_would_leak_a_password_are_refused() {
        for bad in [
            "postgres:user:pw@host/db",
            "postgres://u@host/db?password=pw",
        ] {
            let err = Database::postgres(bad).unwrap_err().to_string();
            assert!(!err.contains("pw@") && !err.contains("=pw"), "{bad}: {err}");
        }
    }

    #[test]
    fn each_kind_of_database_has_its_dialect() {
        for (db, kind, tool) in [
            (
                Database::postgres("postgresql://u@h/a"),
                SourceKind::Postgres,
                "pg_dump",
            ),
            (
                Database::mysql("mariadb://u@h/a"),
                SourceKind::Mysql,
                "mysqldump",
            ),
            (
                Database::sqlite(Path::new("/x/a.db")),
                SourceKind::Sqlite,
                "sqlite3",
            ),
        ] {
            let db = db.unwrap();
            assert_eq!(db.kind(), kind);
            assert_eq!(db.tools().dump, tool);
            assert_eq!(db.name(), "a");
            let again = Database::of_kind(&kind, &db.display()).unwrap();
            assert_eq!(again.kind(), kind);
        }
        let err = Database::of_kind(&SourceKind::Files, "x").unwrap_err();
        assert_eq!(err.kind(), crate::error::ErrorKind::Invalid);
    }
}
