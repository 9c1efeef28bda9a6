//! Row counts per table, taken from a plain SQL dump while it streams into the archiver.
//!
//! The dump passes through a [`CountingReader`] (or is fed to a [`SqlScanner`] in pieces of
//! any size). The counts are exact for what the dump tools write and do not depend on how
//! the stream is split. The scanner keeps at most 4 KiB of the current line or name
//! (`MAX_PREFIX`), so a line of many megabytes, or a stream of garbage, costs no memory: what it
//! keeps grows only with the number of distinct tables. It never panics.
//!
//! # PostgreSQL (`pg_dump`, plain format)
//! Line based. A table's data is one `COPY` block (`→` is a tab):
//! ```text
//! COPY public.pgbench_branches (bid, bbalance, filler) FROM stdin;
//! 1→0→\N
//! 2→0→two\nlines
//! \.
//! ```
//! A line that starts with `COPY ` and ends with ` FROM stdin;` opens the block of the table
//! named between `COPY ` and the next space outside double quotes, kept as written
//! (`public."My Table"`). Every following line is one row (the text format writes a newline
//! inside a value as `\n`) up to the line `\.`. Everything outside the blocks is ignored,
//! function bodies included.
//!
//! # MySQL and MariaDB (`mysqldump`, `mariadb-dump`)
//! SQL statements, extended inserts holding thousands of rows on one line:
//! ```text
//! /*!40101 SET NAMES utf8mb4 */;
//! CREATE TABLE `sbtest1` (`id` int(11) NOT NULL, `c` char(120) NOT NULL DEFAULT '');
//! INSERT INTO `sbtest1` VALUES (1,'it\'s; (a)'),(2,_binary 'x'),(3,0x00ff);
//! ```
//! `CREATE TABLE name` records a table with no rows yet. In `INSERT [IGNORE] INTO name` and
//! `REPLACE INTO name`, each `(` at depth zero after `VALUES` is one row; a column list before
//! `VALUES` is not. Strings are `'...'` or `"..."` with backslash escapes and doubled quotes.
//! `--`, `#` and `/* */` comments are skipped, conditional `/*!NNNNN ... */` ones included
//! (they hold settings, triggers and views). Names lose their backticks (`` `a``b` `` is
//! `` a`b ``). Between `DELIMITER ;;` and `DELIMITER ;`, where the dump puts stored
//! routines, nothing is counted: an `INSERT` there is part of a routine's body.
//!
//! # SQLite (`sqlite3 FILE .dump`)
//! ```text
//! CREATE TABLE IF NOT EXISTS "users" (id integer primary key, name text);
//! INSERT INTO users VALUES(1,replace('a\nb;','\n',char(10)));
//! INSERT INTO "my t" VALUES(X'00ff',NULL);
//! ```
//! Counted like MySQL (one `INSERT` per row). Strings are `'...'` with doubled quotes and no
//! escapes. The shell writes a table's `CREATE` as it was once typed, but quotes the names
//! in its `INSERT`s itself, so one table can appear as `"users"`, `[users]` or `'users'` and
//! as `users` in the same dump. Names are therefore reported in one form: bare when a plain
//! identifier (`[A-Za-z_][A-Za-z0-9_]*`), else double-quoted (`"my t"`). As in
//! `sqlite3_complete`, a `CREATE TRIGGER` ends only at `END;`, so the `INSERT`s in its body
//! are not counted.

mod copy;
mod lexer;
mod statement;
mod tables;
#[cfg(test)]
mod tests;

use std::io::{self, Read};

use copy::CopyScanner;
use lexer::StatementScanner;
use tables::Tables;

/// The SQL of the dump tool that wrote the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    Postgres,
    Mysql,
    Sqlite,
}

/// Counts rows per table in a plain SQL dump fed in pieces of any size. Memory is bounded (a
/// small per-statement prefix buffer, not whole lines). Never panics on any input.
#[derive(Debug)]
pub struct SqlScanner {
    syntax: Syntax,
    tables: Tables,
    machine: Machine,
}

#[derive(Debug)]
enum Machine {
    Copy(CopyScanner),
    Statements(StatementScanner),
}

impl SqlScanner {
    pub fn new(syntax: Syntax) -> Self {
        let machine = match syntax {
            Syntax::Postgres => Machine::Copy(CopyScanner::new()),
            Syntax::Mysql => Machine::Statements(StatementScanner::new(false)),
            Syntax::Sqlite => Machine::Statements(StatementScanner::new(true)),
        };
        SqlScanner {
            syntax,
            tables: Tables::default(),
            machine,
        }
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        match &mut self.machine {
            Machine::Copy(m) => m.feed(&mut self.tables, bytes),
            Machine::Statements(m) => m.feed(&mut self.tables, bytes),
        }
    }

    /// Tables in order of first appearance, with their row counts. An unterminated last line
    /// or statement counts as far as it goes. SQLite's schema table is left out: `.dump`
    /// writes into it only the virtual tables it cannot create otherwise, so its rows in the
    /// dump say nothing about its rows after a restore.
    pub fn finish(mut self) -> Vec<(String, u64)> {
        match &mut self.machine {
            Machine::Copy(m) => m.finish(&mut self.tables),
            Machine::Statements(m) => m.finish(&mut self.tables),
        }
        let schema = |name: &str| {
            let bare = name.trim_matches('"').to_ascii_lowercase();
            bare == "sqlite_schema" || bare == "sqlite_master"
        };
        let mut counts = self.tables.counts;
        if self.syntax == Syntax::Sqlite {
            counts.retain(|(name, _)| !schema(name));
        }
        counts
    }
}

/// A reader that passes bytes through unchanged and feeds them to a scanner.
#[derive(Debug)]
pub struct CountingReader<R> {
    inner: R,
    scanner: SqlScanner,
}

impl<R: Read> CountingReader<R> {
    pub fn new(inner: R, syntax: Syntax) -> Self {
        CountingReader {
            inner,
            scanner: SqlScanner::new(syntax),
        }
    }

    /// The counts so far (call after EOF).
    pub fn finish(self) -> Vec<(String, u64)> {
        self.scanner.finish()
    }
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        // `min`: a reader claiming more than the buffer holds must not make us panic.
        self.scanner.feed(&buf[..n.min(buf.len())]);
        Ok(n)
    }
}
