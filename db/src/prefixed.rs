//! A database whose tools run through an exec prefix (`docker exec -i CONTAINER`, `runuser
//! -u postgres --`): a server this machine may not reach at all (in a container, behind a
//! socket only its user may open). Its dump and load tools run through the prefix, and so
//! does every question the restores and restore tests ask: the dialect's SQL
//! ([`Dialect::tool_sql`]) run by its load tool ([`Dialect::sql_command`]), never sqlx.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use strata_format::snapshot::SourceKind;

use crate::check::Check;
use crate::child::{prefixed, watch};
use crate::dialect::{number, Dialect, LoadFilter, RunSql, ToolSql, Tools};
use crate::error::{DbError, Result};
use crate::info::ServerInfo;
use crate::scan::Syntax;
use crate::server::Server;

/// `inner`, with its tools run through `prefix`, each killed (with its process group) at
/// `deadline`: a hung connection or container never holds a scheduled run forever.
#[derive(Debug)]
pub(crate) struct Prefixed {
    inner: Box<dyn Dialect>,
    prefix: Vec<String>,
    deadline: Option<Instant>,
}

impl Clone for Prefixed {
    fn clone(&self) -> Self {
        Prefixed {
            inner: self.inner.clone_box(),
            prefix: self.prefix.clone(),
            deadline: self.deadline,
        }
    }
}

impl Prefixed {
    pub(crate) fn new(
        inner: Box<dyn Dialect>,
        prefix: Vec<String>,
        deadline: Option<Instant>,
    ) -> Self {
        Prefixed {
            inner,
            prefix,
            deadline,
        }
    }

    fn sql(&self) -> Result<ToolSql> {
        self.inner.tool_sql().ok_or_else(|| {
            DbError::Invalid(format!(
                "{} cannot be asked through an exec prefix",
                self.inner.display()
            ))
        })
    }

    /// Runs `statements` through the prefix, in the maintenance database with `admin`.
    fn rows(&self, statements: &[String], admin: bool) -> Result<Vec<Vec<String>>> {
        let tool = self.inner.tools().load;
        let Some(cmd) = self.inner.sql_command(admin) else {
            return Err(DbError::Invalid(format!(
                "{} cannot be asked through an exec prefix",
                self.inner.display()
            )));
        };
        let escaped = self.sql()?.escaped;
        let io = |e| DbError::io(format!("{} (the exec prefix)", self.prefix[0]), e);
        let mut child = prefixed(cmd, &self.prefix)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(io)?;
        let fired = Arc::new(AtomicBool::new(false));
        let watchdog = self.deadline.map(|d| watch(child.id(), d, fired.clone()));
        let script: String = statements.iter().map(|s| format!("{s};\n")).collect();
        let stdin = child.stdin.take();
        // Written beside the reading, so that a long answer never blocks a long question.
        let writer = std::thread::spawn(move || {
            if let Some(mut stdin) = stdin {
                let _ = stdin.write_all(script.as_bytes());
            }
        });
        let out = child.wait_with_output().map_err(io)?;
        drop(watchdog);
        let _ = writer.join();
        if fired.load(Ordering::SeqCst) {
            return Err(DbError::Unavailable(format!(
                "{tool} through {} on {}: killed at its deadline",
                self.prefix.join(" "),
                self.inner.display()
            )));
        }
        if !out.status.success() {
            let said = String::from_utf8_lossy(&out.stderr);
            return Err(DbError::Unavailable(format!(
                "{tool} through {} on {} failed: {}",
                self.prefix.join(" "),
                self.inner.display(),
                said.trim()
            )));
        }
        Ok(parse_rows(&out.stdout, escaped))
    }
}

/// Lines of tab-separated fields; an empty line is no row. With `escaped` (mysql's batch
/// output) a field's `\t`, `\n`, `\0` and `\\` are its tab, newline, NUL and backslash.
fn parse_rows(out: &[u8], escaped: bool) -> Vec<Vec<String>> {
    String::from_utf8_lossy(out)
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            l.split('\t')
                .map(|f| if escaped { unescape(f) } else { f.to_string() })
                .collect()
        })
        .collect()
}

fn unescape(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('0') => out.push('\0'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

impl RunSql for Prefixed {
    fn rows(&self, statements: &[String]) -> Result<Vec<Vec<String>>> {
        Prefixed::rows(self, statements, false)
    }
}

#[async_trait]
impl Dialect for Prefixed {
    fn kind(&self) -> SourceKind {
        self.inner.kind()
    }

    fn syntax(&self) -> Syntax {
        self.inner.syntax()
    }

    fn name(&self) -> String {
        self.inner.name()
    }

    fn display(&self) -> String {
        self.inner.display()
    }

    fn server_mut(&mut self) -> Option<&mut Server> {
        self.inner.server_mut()
    }

    fn tool_password_sources(&self) -> Option<&'static str> {
        self.inner.tool_password_sources()
    }

    fn file(&self) -> Option<&Path> {
        self.inner.file()
    }

    fn with_database(&self, name: &str) -> Box<dyn Dialect> {
        Box::new(Prefixed {
            inner: self.inner.with_database(name),
            prefix: self.prefix.clone(),
            deadline: self.deadline,
        })
    }

    fn clone_box(&self) -> Box<dyn Dialect> {
        Box::new(self.clone())
    }

    fn tools(&self) -> Tools {
        self.inner.tools()
    }

    fn dump_command(&self, tool_version: &str) -> Command {
        prefixed(self.inner.dump_command(tool_version), &self.prefix)
    }

    fn dump_complete(&self, tail: &[u8]) -> bool {
        self.inner.dump_complete(tail)
    }

    fn load_command(&self) -> Command {
        prefixed(self.inner.load_command(), &self.prefix)
    }

    fn scratch_filter<'w>(&self, out: &'w mut dyn Write) -> Box<dyn LoadFilter + 'w> {
        self.inner.scratch_filter(out)
    }

    fn exec_prefix(&self) -> &[String] {
        &self.prefix
    }

    fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    async fn info(&self) -> Result<ServerInfo> {
        self.inner.info_through(&self.prefix)
    }

    async fn object_count(&self) -> Result<Option<u64>> {
        let sql = self.sql()?;
        let name = self.inner.name();
        let exists = (sql.exists)(&name).ok_or_else(|| {
            DbError::Invalid(format!(
                "{name:?} is not a database name asked about through an exec prefix"
            ))
        })?;
        if self.rows(&[exists], true)?.is_empty() {
            return Ok(None);
        }
        let n = number(&Prefixed::rows(self, &[sql.object_count], false)?)?;
        Ok(Some(n.max(0) as u64))
    }

    async fn tables(&self) -> Result<Vec<String>> {
        let sql = self.sql()?;
        Ok(Prefixed::rows(self, &[sql.tables], false)?
            .into_iter()
            .filter_map(|r| r.into_iter().next())
            .collect())
    }

    /// All counts in one run of the tool; when one fails, each on its own, so that one
    /// table that cannot be counted costs only its own count.
    async fn count_rows(&self, tables: &[String]) -> Result<Vec<Option<u64>>> {
        let sql = self.sql()?;
        let statements: Vec<Option<String>> = tables.iter().map(|t| (sql.count)(t)).collect();
        let count = |rows: &[Vec<String>]| number(rows).ok().map(|n| n.max(0) as u64);
        if statements.iter().all(Option::is_some) {
            let all: Vec<String> = statements.iter().flatten().cloned().collect();
            if let Ok(rows) = Prefixed::rows(self, &all, false) {
                if rows.len() == all.len() {
                    return Ok(rows
                        .iter()
                        .map(|r| count(std::slice::from_ref(r)))
                        .collect());
                }
            }
        }
        // One at a time; when none could be counted, the tool's own reason (the prefix or
        // the login failing) is the answer, not a table of mismatches.
        let mut first_error = None;
        let mut counts = Vec::with_capacity(statements.len());
        for s in &statements {
            let n = match s {
                Some(s) => match Prefixed::rows(self, std::slice::from_ref(s), false) {
                    Ok(r) => count(&r),
                    Err(e) => {
                        first_error.get_or_insert(e);
                        None
                    }
                },
                None => None,
            };
            counts.push(n);
        }
        match first_error {
            Some(e) if counts.iter().all(Option::is_none) => Err(e),
            _ => Ok(counts),
        }
    }

    async fn integrity(&self) -> Result<Vec<Check>> {
        (self.sql()?.integrity)(self)
    }

    async fn recreate(&self) -> Result<()> {
        let sql = self.sql()?;
        let name = self.inner.name();
        self.rows(&(sql.drop)(&name), true)?;
        self.rows(&(sql.create)(&name), true)?;
        Ok(())
    }

    async fn drop_database(&self) -> Result<()> {
        let sql = self.sql()?;
        self.rows(&(sql.drop)(&self.inner.name()), true)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_lines_of_tab_separated_fields() {
        assert_eq!(
            parse_rows(b"a\t1\n\nb\t2\n", false),
            vec![vec!["a", "1"], vec!["b", "2"]]
        );
        assert!(parse_rows(b"", true).is_empty());
        // mysql --batch escapes what would break a line or a field.
        assert_eq!(
            parse_rows(b"my\\ttab\\\\x\t3\n", true),
            vec![vec!["my\ttab\\x", "3"]]
        );
        assert_eq!(parse_rows(b"a\\tb\n", false), vec![vec!["a\\tb"]]);
    }

    /// A prefix that hangs (a dead connection, a stuck container) is killed at the
    /// deadline, and the question fails saying so, instead of holding the run forever.
    #[test]
    fn a_hung_prefix_is_killed_at_the_deadline() {
        let inner = crate::Database::postgres("postgres://app@/shop").unwrap();
        let hung: Vec<String> = ["sh", "-c", "sleep 30", "--"].map(String::from).to_vec();
        let p = Prefixed::new(
            inner.clone_box(),
            hung,
            Some(Instant::now() + std::time::Duration::from_millis(300)),
        );
        let started = Instant::now();
        let err = p
            .rows(&["SELECT 1".to_string()], false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("killed at its deadline"), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
    }
}
