//! MySQL and MariaDB: `mysqldump --single-transaction` (one consistent InnoDB snapshot, rows in
//! primary key order, no dump date, so that unchanged data dumps to the same bytes) to back
//! up, `mysql` (stops at the first error) to restore, sqlx for the rest.

use std::io::Write;
use std::process::Command;
use std::str::FromStr;

use sqlx::mysql::{MySqlConnectOptions, MySqlConnection};
use sqlx::{Connection, Row};

use super::{db_error, Check, Server, ServerInfo};
use crate::{EngineError, Result};

/// The password: the one given (with the URL or apart), else `MYSQL_PWD` (which the tools
/// read too).
fn password(s: &Server) -> Option<String> {
    s.password()
        .map(|pw| pw.expose().to_string())
        .or_else(|| std::env::var("MYSQL_PWD").ok())
}

/// Connection flags for the command-line tools; the password goes to `MYSQL_PWD`.
fn tool_command(program: &str, s: &Server) -> Command {
    let mut cmd = Command::new(program);
    if let Some(host) = s.url().host_str() {
        cmd.arg(format!(
            "--host={}",
            host.trim_start_matches('[').trim_end_matches(']')
        ));
    }
    if let Some(port) = s.url().port() {
        cmd.arg(format!("--port={port}"));
    }
    if let Some(user) = s.user() {
        cmd.arg(format!("--user={user}"));
    }
    if let Some(pw) = password(s) {
        cmd.env("MYSQL_PWD", pw);
    }
    cmd
}

/// mysqldump for the database of `s`; `tool_version` is its `--version` line.
pub(super) fn dump_command(s: &Server, tool_version: &str) -> Command {
    let mut cmd = tool_command("mysqldump", s);
    cmd.args([
        "--single-transaction",
        "--routines",
        "--triggers",
        "--events",
        "--order-by-primary",
        "--skip-dump-date",
        "--no-tablespaces",
        "--default-character-set=utf8mb4",
    ]);
    if writes_gtid_purged(tool_version) {
        cmd.arg("--set-gtid-purged=OFF");
    }
    cmd.arg(s.database());
    cmd
}

/// Whether this mysqldump (by its `--version` line) is MySQL's own, 5.6 or newer. Of a server
/// with GTIDs on, it writes `SET @@GLOBAL.GTID_PURGED` into the dump, which fails a restore
/// into any server that has run transactions of its own (the original included); a backup
/// is not a replica's seed, so `--set-gtid-purged=OFF`. MariaDB's tool has no such option,
/// and a line this cannot read gets none.
fn writes_gtid_purged(version: &str) -> bool {
    if version.contains("MariaDB") {
        return false;
    }
    // "mysqldump  Ver 8.0.36 for Linux on x86_64 (MySQL Community Server - GPL)" or
    // "mysqldump  Ver 10.13 Distrib 5.7.44, for Linux (x86_64)".
    let number = match version.split_once("Distrib ") {
        Some((_, rest)) => rest,
        None => match version.split_once("Ver ") {
            Some((_, rest)) => rest,
            None => return false,
        },
    };
    let mut parts = number.split(|c: char| !c.is_ascii_digit());
    let mut next = || parts.next().and_then(|p| p.parse::<u32>().ok());
    match (next(), next()) {
        (Some(major), Some(minor)) => (major, minor) >= (5, 6),
        _ => false,
    }
}

pub(super) fn load_command(s: &Server) -> Command {
    let mut cmd = tool_command("mysql", s);
    cmd.args(["--batch", "--default-character-set=utf8mb4"])
        .arg(format!("--database={}", s.database()));
    cmd
}

fn options(s: &Server, with_database: bool) -> Result<MySqlConnectOptions> {
    let mut plain = s.url().clone();
    plain.set_path("/");
    plain.set_query(None);
    // sqlx knows only mysql://.
    let text = plain.as_str().replacen("mariadb://", "mysql://", 1);
    let mut opts = MySqlConnectOptions::from_str(&text).map_err(|e| db_error(&s.display(), e))?;
    if let Some(pw) = password(s) {
        opts = opts.password(&pw);
    }
    if with_database {
        opts = opts.database(&s.database());
    }
    Ok(opts)
}

async fn connect(s: &Server, with_database: bool) -> Result<MySqlConnection> {
    MySqlConnection::connect_with(&options(s, with_database)?)
        .await
        .map_err(|e| db_error(&s.display(), e))
}

/// `` `name` ``, quoted for MySQL.
fn quote(ident: &str) -> String {
    format!("`{}`", ident.replace('`', "``"))
}

fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.starts_with('-') || name.contains('\0') {
        return Err(EngineError::Invalid(format!(
            "{name:?} is not a database name this program uses"
        )));
    }
    Ok(())
}

pub(super) async fn info(s: &Server) -> Result<ServerInfo> {
    check_name(&s.database())?;
    let what = s.display();
    let mut c = connect(s, true).await?;
    let version: String = sqlx::query_scalar("SELECT CAST(VERSION() AS CHAR)")
        .fetch_one(&mut c)
        .await
        .map_err(|e| db_error(&what, e))?;
    let database: String = sqlx::query_scalar("SELECT CAST(DATABASE() AS CHAR)")
        .fetch_one(&mut c)
        .await
        .map_err(|e| db_error(&what, e))?;
    let rows = sqlx::query(
        "SELECT CAST(table_name AS CHAR), \
                CAST(COALESCE(data_length, 0) + COALESCE(index_length, 0) AS UNSIGNED) \
         FROM information_schema.tables \
         WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE' ORDER BY 1",
    )
    .fetch_all(&mut c)
    .await
    .map_err(|e| db_error(&what, e))?;
    let mut sizes = Vec::new();
    for r in rows {
        let name: String = r.try_get(0).map_err(|e| db_error(&what, e))?;
        let bytes: u64 = r.try_get(1).map_err(|e| db_error(&what, e))?;
        sizes.push((name, bytes));
    }
    let _ = c.close().await;
    let host = s.url().host_str().unwrap_or("localhost");
    Ok(ServerInfo {
        server: format!("{host}:{}", s.url().port().unwrap_or(3306)),
        version,
        database,
        sizes,
        extra: Vec::new(),
    })
}

async fn base_tables(c: &mut MySqlConnection, what: &str) -> Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT CAST(table_name AS CHAR) FROM information_schema.tables \
         WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE' ORDER BY 1",
    )
    .fetch_all(c)
    .await
    .map_err(|e| db_error(what, e))
}

/// How many tables, views, routines and events the database holds; `None` if it does not
/// exist.
pub(super) async fn object_count(s: &Server) -> Result<Option<u64>> {
    let what = s.display();
    let mut c = match MySqlConnection::connect_with(&options(s, true)?).await {
        Ok(c) => c,
        Err(sqlx::Error::Database(d))
            if d.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                .is_some_and(|m| m.number() == 1049) =>
        {
            // ER_BAD_DB_ERROR: unknown database.
            return Ok(None);
        }
        Err(e) => return Err(db_error(&what, e)),
    };
    let n: i64 = sqlx::query_scalar(
        "SELECT (SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE()) \
              + (SELECT COUNT(*) FROM information_schema.routines WHERE routine_schema = DATABASE()) \
              + (SELECT COUNT(*) FROM information_schema.events WHERE event_schema = DATABASE())",
    )
    .fetch_one(&mut c)
    .await
    .map_err(|e| db_error(&what, e))?;
    let _ = c.close().await;
    Ok(Some(n.max(0) as u64))
}

pub(super) async fn tables(s: &Server) -> Result<Vec<String>> {
    let what = s.display();
    let mut c = connect(s, true).await?;
    let names = base_tables(&mut c, &what).await?;
    let _ = c.close().await;
    Ok(names)
}

/// Rows of each table, over one connection (`None`: the table could not be counted).
pub(super) async fn count_rows(s: &Server, tables: &[String]) -> Result<Vec<Option<u64>>> {
    let c = connect(s, true).await?;
    let quoted = tables.iter().map(|t| Some(quote(t))).collect();
    Ok(super::count_each(c, quoted).await)
}

/// `CHECK TABLE` on every table.
pub(super) async fn integrity(s: &Server) -> Result<Vec<Check>> {
    let what = s.display();
    let mut c = connect(s, true).await?;
    let mut bad = Vec::new();
    let names = base_tables(&mut c, &what).await?;
    for t in &names {
        let rows = sqlx::query(&format!("CHECK TABLE {}", quote(t)))
            .fetch_all(&mut c)
            .await
            .map_err(|e| db_error(t, e))?;
        // (Table, Op, Msg_type, Msg_text); the last row is the verdict.
        let verdict = rows.last().map(|r| {
            let kind: String = r.try_get::<String, _>(2).unwrap_or_default();
            let text: String = r.try_get::<String, _>(3).unwrap_or_default();
            (kind, text)
        });
        match verdict {
            Some((kind, text)) if kind == "status" && text == "OK" => {}
            Some((kind, text)) => bad.push(format!("{t}: {kind} {text}")),
            None => bad.push(format!("{t}: no verdict")),
        }
    }
    // Events were loaded disabled (see `DisableEvents`): none may be able to run here.
    let (events, enabled): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), CAST(COALESCE(SUM(status = 'ENABLED'), 0) AS SIGNED) \
         FROM information_schema.events WHERE event_schema = DATABASE()",
    )
    .fetch_one(&mut c)
    .await
    .map_err(|e| db_error(&what, e))?;
    let _ = c.close().await;
    Ok(vec![
        Check {
            name: "check table".into(),
            ok: bad.is_empty(),
            detail: if bad.is_empty() {
                format!("{} tables OK", names.len())
            } else {
                bad.join("; ")
            },
        },
        Check {
            name: "events disabled".into(),
            ok: enabled == 0,
            detail: if enabled == 0 {
                format!(
                    "{events} scheduled event{}, none enabled in the scratch database",
                    if events == 1 { "" } else { "s" }
                )
            } else {
                format!(
                    "{enabled} of {events} scheduled events are enabled in the scratch database"
                )
            },
        },
    ])
}

pub(super) async fn recreate(s: &Server) -> Result<()> {
    let name = s.database();
    check_name(&name)?;
    let what = s.display();
    let mut c = connect(s, false).await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {}", quote(&name)))
        .execute(&mut c)
        .await
        .map_err(|e| db_error(&what, e))?;
    sqlx::query(&format!("CREATE DATABASE {}", quote(&name)))
        .execute(&mut c)
        .await
        .map_err(|e| db_error(&what, e))?;
    let _ = c.close().await;
    Ok(())
}

pub(super) async fn drop_database(s: &Server) -> Result<()> {
    let name = s.database();
    let mut c = connect(s, false).await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {}", quote(&name)))
        .execute(&mut c)
        .await
        .map_err(|e| db_error(&s.display(), e))?;
    let _ = c.close().await;
    Ok(())
}

/// How mysqldump starts the line of a `CREATE EVENT` statement.
const EVENT_LINE: &[u8] = b"/*!50106 CREATE*/ ";
/// The longest first line of an event statement held back to be rewritten.
const MAX_EVENT_LINE: usize = 1 << 20;

/// Passes a mysqldump stream on, with every scheduled event created disabled.
///
/// A restore test loads the dump into a scratch database on a live server. An enabled event
/// would run there on its schedule (with `event_scheduler=ON`, MySQL 8's default) while the
/// test lasts, and its body may write to other schemas, production's included. mysqldump
/// writes an event as one statement whose first line is
/// ``/*!50106 CREATE*/ /*!50117 DEFINER=…*/ /*!50106 EVENT `name` ON SCHEDULE … ON COMPLETION
/// [NOT] PRESERVE ENABLE [COMMENT '…'] DO …``; the status word after `PRESERVE` becomes
/// `DISABLE`. An event line this cannot read fails the load rather than create the event.
pub(super) struct DisableEvents<W: Write> {
    inner: W,
    /// The current line, while it may still be (or is) an event's first line.
    line: Vec<u8>,
    /// Whether `line` is known to be an event's first line.
    event: bool,
    /// Whether the current line is being passed on unchanged.
    passing: bool,
    /// Why an event line was refused.
    refused: Option<String>,
}

impl<W: Write> DisableEvents<W> {
    pub(super) fn new(inner: W) -> Self {
        DisableEvents {
            inner,
            line: Vec::new(),
            event: false,
            passing: false,
            refused: None,
        }
    }

    /// Why the stream was refused, if an event line could not be disabled.
    pub(super) fn refused(&self) -> Option<&str> {
        self.refused.as_deref()
    }

    fn refuse(&mut self, e: std::io::Error) -> std::io::Error {
        self.refused = Some(e.to_string());
        e
    }

    /// Writes what is held back (a last line without a newline) and returns the sink.
    pub(super) fn finish(mut self) -> std::io::Result<W> {
        self.end_line()?;
        Ok(self.inner)
    }

    fn end_line(&mut self) -> std::io::Result<()> {
        if self.event {
            disable_event(&mut self.line).map_err(|e| self.refuse(e))?;
        }
        self.inner.write_all(&self.line)?;
        self.line.clear();
        self.event = false;
        Ok(())
    }
}

impl<W: Write> Write for DisableEvents<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut rest = buf;
        while !rest.is_empty() {
            let newline = rest.iter().position(|&b| b == b'\n');
            let (part, ends_line) = match newline {
                Some(i) => (&rest[..=i], true),
                None => (rest, false),
            };
            rest = &rest[part.len()..];
            if self.passing {
                self.inner.write_all(part)?;
            } else {
                self.line.extend_from_slice(part);
                if !self.event {
                    let n = self.line.len().min(EVENT_LINE.len());
                    if self.line[..n] != EVENT_LINE[..n] {
                        // Not an event: the held bytes go, and so does the rest of the line.
                        self.inner.write_all(&self.line)?;
                        self.line.clear();
                        self.passing = !ends_line;
                        continue;
                    }
                    self.event = self.line.len() >= EVENT_LINE.len();
                }
                if self.event && self.line.len() > MAX_EVENT_LINE && !ends_line {
                    return Err(self.refuse(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "an event statement's first line is longer than 1 MiB; the restore \
                         test does not load an event it cannot disable",
                    )));
                }
                if ends_line {
                    self.end_line()?;
                }
            }
            if ends_line {
                self.passing = false;
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Turns the first line of an event statement, ``/*!50106 CREATE*/ [/*!50117
/// DEFINER=`user`@`host`*/ ]/*!50106 EVENT `name` ON SCHEDULE … ON COMPLETION [NOT] PRESERVE
/// ENABLE …``, into ``… PRESERVE DISABLE …``; an event already disabled is left alone. The
/// line is read from its start, quoted names as quoted names, so that no name can pass for
/// a part of the statement.
fn disable_event(line: &mut Vec<u8>) -> std::io::Result<()> {
    let unreadable = || {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "cannot read the event statement {:?}; the restore test does not load an \
                 event it cannot disable",
                String::from_utf8_lossy(&line[..line.len().min(200)])
            ),
        )
    };
    // The end of the backquoted name at `i` (a backquote in it is doubled).
    let quoted = |i: usize| -> Option<usize> {
        if line.get(i) != Some(&b'`') {
            return None;
        }
        let mut j = i + 1;
        loop {
            match line.get(j)? {
                b'`' if line.get(j + 1) == Some(&b'`') => j += 2,
                b'`' => return Some(j + 1),
                _ => j += 1,
            }
        }
    };
    let expect = |i: usize, text: &[u8]| -> Option<usize> {
        line.get(i..)?.starts_with(text).then_some(i + text.len())
    };
    let parse = || -> Option<usize> {
        let mut i = EVENT_LINE.len();
        if let Some(at) = expect(i, b"/*!50117 DEFINER=") {
            let user = quoted(at)?;
            let host = quoted(expect(user, b"@")?)?;
            i = expect(host, b"*/ ")?;
        }
        let name = quoted(expect(i, b"/*!50106 EVENT ")?)?;
        let schedule = expect(name, b" ON SCHEDULE ")?;
        let completion = schedule + find(&line[schedule..], b" ON COMPLETION ")? + 15;
        let status =
            expect(completion, b"NOT PRESERVE ").or_else(|| expect(completion, b"PRESERVE "))?;
        Some(status)
    };
    let status = parse().ok_or_else(unreadable)?;
    if line[status..].starts_with(b"ENABLE ") {
        line.splice(status..status + 6, b"DISABLE".iter().copied());
        Ok(())
    } else if line[status..].starts_with(b"DISABLE") {
        Ok(())
    } else {
        Err(unreadable())
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gtids_are_left_out_by_mysqls_own_dump_tool() {
        for (line, off) in [
            (
                "mysqldump  Ver 8.0.36 for Linux on x86_64 (MySQL Community Server - GPL)",
                true,
            ),
            (
                "mysqldump  Ver 8.4.3 for Linux on aarch64 (MySQL Community Server - GPL)",
                true,
            ),
            (
                "mysqldump  Ver 10.13 Distrib 5.7.44, for Linux (x86_64)",
                true,
            ),
            (
                "mysqldump  Ver 10.13 Distrib 5.6.51, for Linux (x86_64)",
                true,
            ),
            (
                "mysqldump  Ver 10.13 Distrib 5.5.62, for Linux (x86_64)",
                false,
            ),
            (
                "mysqldump  Ver 10.19 Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)",
                false,
            ),
            (
                "mysqldump from 11.4.2-MariaDB, client 10.19 for Linux (x86_64)",
                false,
            ),
            ("mysqldump", false),
            ("mysqldump  Ver x", false),
        ] {
            assert_eq!(writes_gtid_purged(line), off, "{line}");
            let s = Server::parse("mysql://u@h/db", &["mysql"]).unwrap();
            let args: Vec<String> = dump_command(&s, line)
                .get_args()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            assert_eq!(
                args.iter().any(|a| a == "--set-gtid-purged=OFF"),
                off,
                "{line}: {args:?}"
            );
            assert_eq!(args.last().map(String::as_str), Some("db"), "{args:?}");
        }
    }

    const DUMP: &str = "-- a comment\n\
        /*!50003 SET time_zone = 'SYSTEM' */ ;;\n\
        /*!50106 CREATE*/ /*!50117 DEFINER=`root`@`localhost`*/ /*!50106 EVENT `ev PRESERVE \
        ENABLE` ON SCHEDULE EVERY 1 DAY STARTS '2026-11-24 02:56:11' ON COMPLETION NOT PRESERVE \
        ENABLE DO SELECT 1 \n*/ ;;\n\
        /*!50106 CREATE*/ /*!50117 DEFINER=`root`@`localhost`*/ /*!50106 EVENT `ev2` ON SCHEDULE \
        AT '2030-01-01 00:00:00' ON COMPLETION PRESERVE DISABLE DO BEGIN\n INSERT INTO \
        witness.hits VALUES ('two');\nEND \n*/ ;;\n\
        /*!50106 CREATE*/ /*!50117 DEFINER=`a``b`@`%`*/ /*!50106 EVENT `x``y` ON SCHEDULE \
        EVERY 1 SECOND STARTS '2026-11-24 02:56:09' ON COMPLETION NOT PRESERVE ENABLE COMMENT \
        'x ENABLE DO y' DO INSERT INTO w.h VALUES (DATABASE()) \n*/ ;;\n\
        /*!50106 CREATE*/ /*!50117 DEFINER=`x /*!50106 EVENT ``y`` ON SCHEDULE AT 1 ON \
        COMPLETION PRESERVE DISABLE `@`%`*/ /*!50106 EVENT `z` ON SCHEDULE EVERY 1 HOUR ON \
        COMPLETION PRESERVE ENABLE DO SELECT 1\n*/ ;;\n\
        INSERT INTO `t` VALUES ('/*!50106 CREATE*/ ENABLE');\n\
        /*!50106 CREATE";

    fn filtered(input: &[u8], piece: usize) -> std::io::Result<Vec<u8>> {
        let mut f = DisableEvents::new(Vec::new());
        for chunk in input.chunks(piece) {
            f.write_all(chunk)?;
        }
        f.finish()
    }

    #[test]
    fn events_are_created_disabled_and_nothing_else_changes() {
        let want = DUMP
            .replacen(
                "NOT PRESERVE ENABLE DO SELECT",
                "NOT PRESERVE DISABLE DO SELECT",
                1,
            )
            .replacen(
                "NOT PRESERVE ENABLE COMMENT",
                "NOT PRESERVE DISABLE COMMENT",
                1,
            )
            .replacen(
                "PRESERVE ENABLE DO SELECT 1\n",
                "PRESERVE DISABLE DO SELECT 1\n",
                1,
            );
        assert_ne!(want, DUMP);
        for piece in [1, 2, 3, 7, 18, 19, 64, 4096] {
            let got = filtered(DUMP.as_bytes(), piece).unwrap();
            assert_eq!(String::from_utf8(got).unwrap(), want, "pieces of {piece}");
        }
    }

    #[test]
    fn an_event_line_it_cannot_read_fails() {
        for line in [
            "/*!50106 CREATE*/ /*!50106 EVENT `unterminated ON COMPLETION PRESERVE ENABLE DO\n",
            "/*!50106 CREATE*/ /*!50106 EVENT `e` ON SCHEDULE EVERY 1 DAY DO SELECT 1\n",
            "/*!50106 CREATE*/ /*!50106 EVENT `e` ON COMPLETION PRESERVE SOMEDAY DO x\n",
            "/*!50106 CREATE*/ /*!50106 PROCEDURE `p`() SELECT 1\n",
            "/*!50106 CREATE*/ /*!50106 EVENT `e` ON SCHEDULE EVERY 1 DAY ON COMPLETION \
             PRESERVE SOMEDAY DO x\n",
            "/*!50106 CREATE*/ /*!50117 DEFINER=root@`%`*/ /*!50106 EVENT `e` ON SCHEDULE \
             EVERY 1 DAY ON COMPLETION PRESERVE ENABLE DO x\n",
            "/*!50106 CREATE*/ /*!50117 DEFINER=`root`@`%` /*!50106 EVENT `e` ON SCHEDULE \
             EVERY 1 DAY ON COMPLETION PRESERVE ENABLE DO x\n",
        ] {
            let err = filtered(line.as_bytes(), 5).unwrap_err();
            assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{line}");
            assert!(err.to_string().contains("cannot read the event"), "{err}");
        }
    }

    #[test]
    fn any_other_stream_passes_unchanged() {
        use proptest::prelude::*;
        proptest!(|(data in proptest::collection::vec(any::<u8>(), 0..2000), piece in 1usize..300)| {
            let has_event = data
                .split(|&b| b == b'\n')
                .any(|l| l.starts_with(EVENT_LINE));
            prop_assume!(!has_event);
            prop_assert_eq!(filtered(&data, piece).unwrap(), data);
        });
    }
}
