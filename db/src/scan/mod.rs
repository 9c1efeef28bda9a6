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

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{self, Read};

/// The most bytes kept of the start of a line (PostgreSQL) or of a name (MySQL, SQLite).
/// A longer table name is cut to this length.
const MAX_PREFIX: usize = 4096;

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

/// Tables in order of first appearance.
#[derive(Debug, Default)]
struct Tables {
    counts: Vec<(String, u64)>,
    index: HashMap<String, usize>,
}

impl Tables {
    /// The table's position, recording it with no rows when it is new.
    fn get(&mut self, name: &str) -> usize {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        self.counts.push((name.to_string(), 0));
        self.index.insert(name.to_string(), self.counts.len() - 1);
        self.counts.len() - 1
    }

    fn add_row(&mut self, table: usize) {
        let rows = &mut self.counts[table].1;
        *rows = rows.saturating_add(1);
    }
}

// PostgreSQL ---------------------------------------------------------------------------

const COPY_START: &[u8] = b"COPY ";
const COPY_END: &[u8; 12] = b" FROM stdin;";
const BLOCK_END: &[u8] = b"\\.";

/// `pg_dump`'s plain format, line by line.
#[derive(Debug)]
struct CopyScanner {
    /// The table whose `COPY` block we are in.
    block: Option<usize>,
    /// The start of the current line: up to `MAX_PREFIX` bytes while it may be a `COPY`
    /// line, two inside a block (enough to tell `\.`), none once it cannot matter.
    head: Vec<u8>,
    /// The last bytes of the current line, right-aligned (outside blocks).
    tail: [u8; COPY_END.len()],
    /// The current line's length so far.
    len: usize,
}

impl CopyScanner {
    fn new() -> Self {
        CopyScanner {
            block: None,
            head: Vec::with_capacity(MAX_PREFIX),
            tail: [0; COPY_END.len()],
            len: 0,
        }
    }

    fn feed(&mut self, tables: &mut Tables, mut bytes: &[u8]) {
        while let Some(end) = bytes.iter().position(|&b| b == b'\n') {
            self.extend(&bytes[..end]);
            self.end_line(tables);
            bytes = &bytes[end + 1..];
        }
        self.extend(bytes);
    }

    fn finish(&mut self, tables: &mut Tables) {
        if self.len > 0 {
            self.end_line(tables);
        }
    }

    /// Adds a piece of the current line (without its newline).
    fn extend(&mut self, part: &[u8]) {
        self.len = self.len.saturating_add(part.len());
        let keep = match self.block {
            Some(_) => BLOCK_END.len(),
            None if self.head.len() >= COPY_START.len() && !self.head.starts_with(COPY_START) => 0,
            None => MAX_PREFIX,
        };
        let room = keep.saturating_sub(self.head.len());
        self.head.extend_from_slice(&part[..part.len().min(room)]);
        if self.block.is_none() {
            let n = part.len().min(self.tail.len());
            self.tail.copy_within(n.., 0);
            let keep_from = self.tail.len() - n;
            self.tail[keep_from..].copy_from_slice(&part[part.len() - n..]);
        }
    }

    fn end_line(&mut self, tables: &mut Tables) {
        match self.block {
            Some(_) if self.len == BLOCK_END.len() && self.head == BLOCK_END => self.block = None,
            Some(table) => tables.add_row(table),
            None if self.len >= COPY_START.len() + COPY_END.len()
                && self.head.starts_with(COPY_START)
                && self.tail == *COPY_END =>
            {
                let name = copy_table_name(&self.head[COPY_START.len()..]);
                if !name.is_empty() {
                    self.block = Some(tables.get(&String::from_utf8_lossy(name)));
                }
            }
            None => {}
        }
        self.head.clear();
        self.tail = [0; COPY_END.len()];
        self.len = 0;
    }
}

/// The table name at the start of what follows `COPY `: up to a space outside double quotes.
fn copy_table_name(rest: &[u8]) -> &[u8] {
    let mut quoted = false;
    let end = rest.iter().position(|&b| {
        if b == b'"' {
            quoted = !quoted;
        }
        b == b' ' && !quoted
    });
    &rest[..end.unwrap_or(rest.len())]
}

// MySQL and SQLite ---------------------------------------------------------------------

/// `mysqldump` and `sqlite3 .dump`: a small lexer (words, quoted names, strings, comments)
/// feeding tokens to a statement state machine ([`Stmt`]).
#[derive(Debug)]
struct StatementScanner {
    sqlite: bool,
    lex: Lex,
    /// The current word or quoted name as written, or the rest of a `DELIMITER` line (at most
    /// `MAX_PREFIX` bytes).
    token: Vec<u8>,
    /// The current string goes into `token` too: SQLite, where a name is expected
    /// (`CREATE TABLE IF NOT EXISTS 'ft_data'(...)`, written for virtual tables).
    keep_string: bool,
    /// Nothing but whitespace since the last newline.
    line_start: bool,
    /// The current word began its line.
    word_at_line_start: bool,
    stmt: Stmt,
    /// MySQL: between `DELIMITER ;;` and `DELIMITER ;`, where every statement is skipped.
    custom_delimiter: bool,
}

/// Where the lexer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lex {
    Between,
    /// A bare word: keyword, name or number.
    Word,
    /// A quoted name, closed by this byte (`"`, `` ` ``, `]`).
    Name(u8),
    /// After the closing quote of a name: a second one is a doubled quote.
    NameQuote(u8),
    /// A string literal in this quote.
    Str(u8),
    /// After a backslash in a MySQL string.
    StrEscape(u8),
    /// After the closing quote of a string: a second one is a doubled quote.
    StrQuote(u8),
    /// After `-`.
    Dash,
    /// MySQL, after `--`: a comment only if whitespace follows.
    DashDash,
    LineComment,
    /// After `/`.
    Slash,
    BlockComment,
    /// After `*` in a block comment.
    BlockStar,
    /// MySQL, the rest of a `DELIMITER` line.
    DelimiterLine,
}

/// What the lexer hands to the statement machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    /// A bare word, in `StatementScanner::token`.
    Word,
    /// A quoted name as written, in `StatementScanner::token`.
    Name,
    Str,
    Open,
    Close,
    Comma,
    Semi,
    Other,
}

/// Where the current statement is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stmt {
    Start,
    /// After `INSERT` or `REPLACE`: modifiers, `INTO`, then the table.
    Insert {
        into: bool,
    },
    /// After `CREATE`: `OR REPLACE`, `TEMPORARY`, then `TABLE` or `TRIGGER`.
    Create,
    /// After `CREATE TABLE`: `IF NOT EXISTS`, then the table.
    CreateTable,
    /// After the table of an `INSERT`: a column list, then `VALUES`.
    Target(usize),
    Columns {
        table: usize,
        depth: u32,
    },
    /// After `VALUES`: each `(` at depth zero is a row.
    Rows {
        table: usize,
        depth: u32,
    },
    /// SQLite `CREATE TRIGGER`: only `END ;` ends it.
    Trigger {
        after_end: bool,
    },
    /// Nothing more to learn from this statement.
    Skip,
}

/// Words between `INSERT`/`REPLACE` and the table (MySQL and SQLite).
const INSERT_MODIFIERS: &[&str] = &[
    "LOW_PRIORITY",
    "DELAYED",
    "HIGH_PRIORITY",
    "IGNORE",
    "OR",
    "REPLACE",
    "ROLLBACK",
    "ABORT",
    "FAIL",
];

impl StatementScanner {
    fn new(sqlite: bool) -> Self {
        StatementScanner {
            sqlite,
            lex: Lex::Between,
            token: Vec::with_capacity(MAX_PREFIX),
            keep_string: false,
            line_start: true,
            word_at_line_start: false,
            stmt: Stmt::Start,
            custom_delimiter: false,
        }
    }

    fn feed(&mut self, tables: &mut Tables, bytes: &[u8]) {
        let mut i = 0;
        while i < bytes.len() {
            i += self.skippable(&bytes[i..]);
            if let Some(&b) = bytes.get(i) {
                if self.step(tables, b) {
                    i += 1;
                }
            }
        }
    }

    /// The end of the stream ends a word or a quoted name.
    fn finish(&mut self, tables: &mut Tables) {
        match self.lex {
            Lex::Word => self.end_word(tables),
            Lex::NameQuote(_) => self.emit(tables, Token::Name),
            Lex::StrQuote(_) => self.end_string(tables),
            _ => {}
        }
        self.lex = Lex::Between;
    }

    /// How many of `bytes` cannot change the state (the bulk of strings and comments).
    fn skippable(&self, bytes: &[u8]) -> usize {
        let stop = match self.lex {
            Lex::Str(q) if !self.keep_string => bytes
                .iter()
                .position(|&b| b == q || (b == b'\\' && !self.sqlite)),
            Lex::LineComment => bytes.iter().position(|&b| b == b'\n'),
            Lex::BlockComment => bytes.iter().position(|&b| b == b'*'),
            _ => Some(0),
        };
        stop.unwrap_or(bytes.len())
    }

    /// Takes one byte; false if it must be read again in the new state.
    fn step(&mut self, tables: &mut Tables, b: u8) -> bool {
        match self.lex {
            Lex::Between => self.start_token(tables, b),
            Lex::Word if is_word_byte(b) => self.push(b),
            Lex::Word => {
                self.lex = Lex::Between;
                self.end_word(tables);
                return false;
            }
            Lex::Name(close) if b == close => {
                self.push(b);
                if close == b']' {
                    self.lex = Lex::Between;
                    self.emit(tables, Token::Name);
                } else {
                    self.lex = Lex::NameQuote(close);
                }
            }
            Lex::Name(_) => self.push(b),
            Lex::NameQuote(close) if b == close => {
                self.push(b);
                self.lex = Lex::Name(close);
            }
            Lex::NameQuote(_) => {
                self.lex = Lex::Between;
                self.emit(tables, Token::Name);
                return false;
            }
            Lex::Str(q) if b == q => {
                self.push_string(b);
                self.lex = Lex::StrQuote(q);
            }
            Lex::Str(q) if b == b'\\' && !self.sqlite => self.lex = Lex::StrEscape(q),
            Lex::Str(_) => self.push_string(b),
            Lex::StrEscape(q) => self.lex = Lex::Str(q),
            Lex::StrQuote(q) if b == q => {
                self.push_string(b);
                self.lex = Lex::Str(q);
            }
            Lex::StrQuote(_) => {
                self.lex = Lex::Between;
                self.end_string(tables);
                return false;
            }
            Lex::Dash if b == b'-' => {
                self.lex = if self.sqlite {
                    Lex::LineComment
                } else {
                    Lex::DashDash
                };
            }
            Lex::Slash if b == b'*' => self.lex = Lex::BlockComment,
            Lex::Dash | Lex::Slash => {
                self.lex = Lex::Between;
                self.emit(tables, Token::Other);
                return false;
            }
            Lex::DashDash => {
                // MySQL needs whitespace or a control character after `--`.
                if b <= b' ' {
                    self.lex = Lex::LineComment;
                } else {
                    self.lex = Lex::Between;
                    self.emit(tables, Token::Other);
                }
                return false;
            }
            Lex::LineComment if b == b'\n' => {
                self.lex = Lex::Between;
                return false;
            }
            Lex::LineComment => {}
            Lex::BlockComment if b == b'*' => self.lex = Lex::BlockStar,
            Lex::BlockComment => {}
            Lex::BlockStar if b == b'/' => self.lex = Lex::Between,
            Lex::BlockStar if b == b'*' => {}
            Lex::BlockStar => self.lex = Lex::BlockComment,
            Lex::DelimiterLine if b == b'\n' => {
                self.lex = Lex::Between;
                self.set_delimiter();
                return false;
            }
            Lex::DelimiterLine => self.push(b),
        }
        true
    }

    fn start_token(&mut self, tables: &mut Tables, b: u8) {
        if b == b'\n' {
            self.line_start = true;
            return;
        }
        if b.is_ascii_whitespace() {
            return;
        }
        let at_line_start = std::mem::replace(&mut self.line_start, false);
        match b {
            b'\'' => self.start_string(b),
            b'"' if !self.sqlite => self.start_string(b),
            b'"' | b'`' => self.start_name(b, b),
            b'[' if self.sqlite => self.start_name(b, b']'),
            b'-' => self.lex = Lex::Dash,
            b'/' => self.lex = Lex::Slash,
            b'#' if !self.sqlite => self.lex = Lex::LineComment,
            b'(' => self.emit(tables, Token::Open),
            b')' => self.emit(tables, Token::Close),
            b',' => self.emit(tables, Token::Comma),
            b';' => self.emit(tables, Token::Semi),
            _ if is_word_byte(b) => {
                self.token.clear();
                self.push(b);
                self.word_at_line_start = at_line_start;
                self.lex = Lex::Word;
            }
            _ => self.emit(tables, Token::Other),
        }
    }

    fn start_string(&mut self, quote: u8) {
        self.token.clear();
        self.keep_string = self.sqlite && self.stmt.expects_name();
        self.push_string(quote);
        self.lex = Lex::Str(quote);
    }

    fn start_name(&mut self, open: u8, close: u8) {
        self.token.clear();
        self.push(open);
        self.lex = Lex::Name(close);
    }

    fn push(&mut self, b: u8) {
        if self.token.len() < MAX_PREFIX {
            self.token.push(b);
        }
    }

    fn push_string(&mut self, b: u8) {
        if self.keep_string {
            self.push(b);
        }
    }

    fn end_string(&mut self, tables: &mut Tables) {
        let token = if self.keep_string {
            Token::Name
        } else {
            Token::Str
        };
        self.keep_string = false;
        self.emit(tables, token);
    }

    /// A word ends: a `DELIMITER` command, or a token for the statement machine.
    fn end_word(&mut self, tables: &mut Tables) {
        let command_position = if self.custom_delimiter {
            self.word_at_line_start
        } else {
            self.stmt == Stmt::Start
        };
        if !self.sqlite && command_position && self.token.eq_ignore_ascii_case(b"DELIMITER") {
            self.token.clear();
            self.lex = Lex::DelimiterLine;
        } else {
            self.emit(tables, Token::Word);
        }
    }

    /// At the end of a `DELIMITER x` line: anything but `;` starts a stretch to skip.
    fn set_delimiter(&mut self) {
        let mut words = self.token.split(|b| b.is_ascii_whitespace());
        if let Some(delimiter) = words.find(|w| !w.is_empty()) {
            self.custom_delimiter = delimiter != b";";
            self.stmt = Stmt::Start;
        }
        self.token.clear();
    }

    fn emit(&mut self, tables: &mut Tables, token: Token) {
        if !self.custom_delimiter {
            self.stmt = self.stmt.next(token, &self.token, self.sqlite, tables);
        }
    }
}

impl Stmt {
    /// Whether the next word is a table name.
    fn expects_name(self) -> bool {
        matches!(self, Stmt::Insert { .. } | Stmt::CreateTable)
    }

    /// The state after `token` (`text` holds a word or name).
    fn next(self, token: Token, text: &[u8], sqlite: bool, tables: &mut Tables) -> Stmt {
        use Stmt::*;
        let word =
            |keyword: &str| token == Token::Word && text.eq_ignore_ascii_case(keyword.as_bytes());
        let any_word = |keywords: &[&str]| keywords.iter().any(|k| word(k));
        let name = matches!(token, Token::Word | Token::Name);
        if token == Token::Semi {
            return match self {
                Trigger { after_end: false } => self,
                _ => Start,
            };
        }
        match self {
            Start if word("INSERT") || word("REPLACE") => Insert { into: false },
            Start if word("CREATE") => Create,
            Insert { into: false } if word("INTO") => Insert { into: true },
            Insert { into: false } if any_word(INSERT_MODIFIERS) => self,
            Insert { .. } if name => Target(tables.get(&table_name(text, sqlite))),
            Create if any_word(&["OR", "REPLACE", "TEMP", "TEMPORARY"]) => self,
            Create if word("TABLE") => CreateTable,
            Create if sqlite && word("TRIGGER") => Trigger { after_end: false },
            CreateTable if any_word(&["IF", "NOT", "EXISTS"]) => self,
            CreateTable if name => {
                tables.get(&table_name(text, sqlite));
                Skip
            }
            Target(table) if word("VALUES") || word("VALUE") => Rows { table, depth: 0 },
            Target(table) if token == Token::Open => Columns { table, depth: 1 },
            Columns { table, depth } => match token {
                Token::Open => Columns {
                    table,
                    depth: depth.saturating_add(1),
                },
                Token::Close if depth <= 1 => Target(table),
                Token::Close => Columns {
                    table,
                    depth: depth - 1,
                },
                _ => self,
            },
            Rows { table, depth } => match token {
                Token::Open => {
                    if depth == 0 {
                        tables.add_row(table);
                    }
                    Rows {
                        table,
                        depth: depth.saturating_add(1),
                    }
                }
                Token::Close => Rows {
                    table,
                    depth: depth.saturating_sub(1),
                },
                _ if depth > 0 || token == Token::Comma => self,
                // `ON DUPLICATE KEY UPDATE`, `RETURNING`, garbage: no more rows.
                _ => Skip,
            },
            Trigger { .. } => Trigger {
                after_end: word("END"),
            },
            _ => Skip,
        }
    }
}

/// Bytes of bare words: ASCII letters, digits, `_`, `$`, and anything not ASCII.
fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

/// A table's name as reported: MySQL without quotes, SQLite bare or in double quotes.
fn table_name(raw: &[u8], sqlite: bool) -> Cow<'_, str> {
    let bare = unquote(raw);
    if !sqlite || is_plain_identifier(&bare) {
        return match bare {
            Cow::Borrowed(b) => String::from_utf8_lossy(b),
            Cow::Owned(v) => Cow::Owned(String::from_utf8_lossy(&v).into_owned()),
        };
    }
    let text = String::from_utf8_lossy(&bare);
    Cow::Owned(format!("\"{}\"", text.replace('"', "\"\"")))
}

/// A name without its quotes (`"a""b"` → `a"b`, `[a b]` → `a b`); a bare word as it is.
/// Copes with a name cut short at `MAX_PREFIX`.
fn unquote(raw: &[u8]) -> Cow<'_, [u8]> {
    let close = match raw.first() {
        Some(b'[') => b']',
        Some(&q @ (b'"' | b'`' | b'\'')) => q,
        _ => return Cow::Borrowed(raw),
    };
    let inner = &raw[1..];
    let inner = inner.strip_suffix(&[close]).unwrap_or(inner);
    if close == b']' || !inner.contains(&close) {
        return Cow::Borrowed(inner);
    }
    let mut out = Vec::with_capacity(inner.len());
    let mut after_quote = false;
    for &b in inner {
        if b == close && after_quote {
            after_quote = false;
            continue;
        }
        after_quote = b == close;
        out.push(b);
    }
    Cow::Owned(out)
}

/// `[A-Za-z_][A-Za-z0-9_]*`: what the SQLite shell writes without quotes.
fn is_plain_identifier(name: &[u8]) -> bool {
    name.first()
        .is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_')
        && name.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use proptest::sample::Index;

    /// `pg_dump` 15 plain format, by hand (`→` is a tab).
    const POSTGRES_DUMP: &str = r#"--
-- PostgreSQL database dump
--

-- Dumped from database version 15.5 (Debian 15.5-0+deb12u1)
-- Dumped by pg_dump version 15.5 (Debian 15.5-0+deb12u1)

SET statement_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);

--
-- Name: f(); Type: FUNCTION; Schema: public; Owner: postgres
--

CREATE FUNCTION public.f() RETURNS void
    LANGUAGE plpgsql
    AS $$
begin
  insert into public.pgbench_branches values (1, 0, 'x;y');
end
$$;

CREATE TABLE public."My Table" (
    "Col A" text,
    b integer
);

--
-- Data for Name: My Table; Type: TABLE DATA; Schema: public; Owner: postgres
--

COPY public."My Table" ("Col A", b) FROM stdin;
two\nlines; and (parens) 'quoted'→1
tab\there→\N
back\\slash \\. not the end→3
\\.→4
→5
\.


--
-- Data for Name: empty; Type: TABLE DATA; Schema: public; Owner: postgres
--

COPY public.empty (a) FROM stdin;
\.


COPY public.pgbench_branches (bid, bbalance, filler) FROM stdin;
1→0→\N
2→0→\N
3→-5→COPY x FROM stdin;
\.


COPY public.nocols  FROM stdin;

\.


COPY public.one_col (t) FROM stdin;

x
\.


COPY public."a (b" (c) FROM stdin;
1
\.


--
-- Name: pgbench_branches pgbench_branches_pkey; Type: CONSTRAINT; Schema: public
--

ALTER TABLE ONLY public.pgbench_branches
    ADD CONSTRAINT pgbench_branches_pkey PRIMARY KEY (bid);

--
-- PostgreSQL database dump complete
--

"#;

    /// `mariadb-dump` 10.11, by hand.
    const MYSQL_DUMP: &str = r#"/*M!999999\- enable the sandbox mode */ 
-- MariaDB dump 10.19-10.11.6-MariaDB, for debian-linux-gnu (x86_64)
--
-- Host: localhost    Database: sbtest
-- ------------------------------------------------------
-- Server version→10.11.6-MariaDB-0+deb12u1

/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;
/*!40101 SET NAMES utf8mb4 */;
/*!40103 SET TIME_ZONE='+00:00' */;
/*!40014 SET @OLD_UNIQUE_CHECKS=@@UNIQUE_CHECKS, UNIQUE_CHECKS=0 */;
/*!40101 SET @OLD_SQL_MODE=@@SQL_MODE, SQL_MODE='NO_AUTO_VALUE_ON_ZERO' */;

--
-- Table structure for table `sbtest1`
--

DROP TABLE IF EXISTS `sbtest1`;
/*!40101 SET @saved_cs_client     = @@character_set_client */;
/*!40101 SET character_set_client = utf8 */;
CREATE TABLE `sbtest1` (
  `id` int(11) NOT NULL AUTO_INCREMENT,
  `k` int(11) NOT NULL DEFAULT 0,
  `c` char(120) NOT NULL DEFAULT '',
  `pad` char(60) NOT NULL DEFAULT '',
  PRIMARY KEY (`id`),
  KEY `k_1` (`k`)
) ENGINE=InnoDB AUTO_INCREMENT=5 DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;
/*!40101 SET character_set_client = @saved_cs_client */;

--
-- Dumping data for table `sbtest1`
--

LOCK TABLES `sbtest1` WRITE;
/*!40000 ALTER TABLE `sbtest1` DISABLE KEYS */;
INSERT INTO `sbtest1` VALUES (1,4993,'83868641912-28773972837-60736120486','67847967377-48000963322'),(2,5020,'it\'s; (a) \\ \"q\" ''x'' \n line','pad ) ('),(3,-1,'',NULL);
INSERT INTO `sbtest1` VALUES (4,0x00FF,_binary '\0\'\\;(',1.5e-3);
/*!40000 ALTER TABLE `sbtest1` ENABLE KEYS */;
UNLOCK TABLES;

--
-- Table structure for table `empty`
--

DROP TABLE IF EXISTS `empty`;
CREATE TABLE `empty` (
  `a` int(11) DEFAULT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

LOCK TABLES `empty` WRITE;
/*!40000 ALTER TABLE `empty` DISABLE KEYS */;
/*!40000 ALTER TABLE `empty` ENABLE KEYS */;
UNLOCK TABLES;

CREATE TABLE `we``ird; (name)` (`x` varchar(10) DEFAULT 'a;b');
INSERT INTO `we``ird; (name)` (`x`) VALUES ('('),(')');
INSERT IGNORE INTO `log` VALUES (1);
REPLACE INTO `log` VALUES (2),(3);
INSERT INTO `log` VALUES (4) ON DUPLICATE KEY UPDATE a=VALUES(a);

--
-- Dumping routines for database 'sbtest'
--
/*!50003 DROP PROCEDURE IF EXISTS `p` */;
/*!50003 SET @saved_sql_mode       = @@sql_mode */ ;
DELIMITER ;;
CREATE DEFINER=`root`@`localhost` PROCEDURE `p`()
begin
insert into `log` values (100);
insert into `log` values (101),(102);
end ;;
DELIMITER ;
/*!50003 SET sql_mode              = @saved_sql_mode */ ;
DELIMITER ;;
/*!50003 CREATE*/ /*!50017 DEFINER=`root`@`localhost`*/ /*!50003 TRIGGER tr BEFORE INSERT ON `empty` FOR EACH ROW begin
insert into `log` values (200);
insert into `log` values (201);
end */;;
DELIMITER ;
INSERT INTO `after` VALUES (1),(2);
/*!40101 SET SQL_MODE=@OLD_SQL_MODE */;
-- Dump completed on 2024-01-01 12:00:00
"#;

    /// `sqlite3 x.db .dump` (3.40) of tables created with quoted names, a trigger, a view.
    const SQLITE_DUMP: &str = r#"PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE IF NOT EXISTS "users" (id integer primary key autoincrement, name text);
INSERT INTO users VALUES(1,'x;y''z(');
INSERT INTO users VALUES(2,replace('line\ntwo','\n',char(10)));
INSERT INTO users VALUES(3,NULL);
CREATE TABLE [my t](a,b);
INSERT INTO "my t" VALUES(X'00ff',replace('a\nb','\n',char(10)));
CREATE TABLE IF NOT EXISTS "order"(x);
INSERT INTO "order" VALUES(1.5);
INSERT INTO "order" VALUES(-3);
CREATE TABLE `bq`(y);
INSERT INTO bq VALUES('tab→here');
CREATE TABLE q(z);
INSERT INTO q VALUES(1);
CREATE TABLE e(a);
CREATE TABLE IF NOT EXISTS "a""b"(c);
INSERT INTO "a""b" VALUES(2);
DELETE FROM sqlite_sequence;
INSERT INTO sqlite_sequence VALUES('users',3);
CREATE TRIGGER tr after insert on e begin insert into q values(1); insert into q values(2); end;
CREATE VIEW v as select * from q;
CREATE INDEX ix on q(z);
COMMIT;
"#;

    /// `sqlite3 x.db .dump` (3.40) of an FTS5 table (shadow tables named in single quotes)
    /// after `analyze`.
    const SQLITE_FTS_DUMP: &str = r#"PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
PRAGMA writable_schema=ON;
INSERT INTO sqlite_schema(type,name,tbl_name,rootpage,sql)VALUES('table','ft','ft',0,'CREATE VIRTUAL TABLE ft using fts5(x)');
CREATE TABLE IF NOT EXISTS 'ft_data'(id INTEGER PRIMARY KEY, block BLOB);
INSERT INTO ft_data VALUES(1,X'0102');
INSERT INTO ft_data VALUES(10,X'000000000101010001010101');
INSERT INTO ft_data VALUES(137438953473,X'00000018063068656c6c6f0102020105776f726c64010203040a');
CREATE TABLE IF NOT EXISTS 'ft_idx'(segid, term, pgno, PRIMARY KEY(segid, term)) WITHOUT ROWID;
INSERT INTO ft_idx VALUES(1,X'',2);
CREATE TABLE IF NOT EXISTS 'ft_content'(id INTEGER PRIMARY KEY, c0);
INSERT INTO ft_content VALUES(1,'hello; world(');
CREATE TABLE IF NOT EXISTS 'ft_docsize'(id INTEGER PRIMARY KEY, sz BLOB);
INSERT INTO ft_docsize VALUES(1,X'02');
CREATE TABLE IF NOT EXISTS 'ft_config'(k PRIMARY KEY, v) WITHOUT ROWID;
INSERT INTO ft_config VALUES('version',4);
CREATE TABLE e(a);
CREATE TABLE t(a integer primary key autoincrement);
INSERT INTO t VALUES(5);
ANALYZE sqlite_schema;
INSERT INTO sqlite_stat1 VALUES('t',NULL,'1');
INSERT INTO sqlite_stat1 VALUES('ft_data',NULL,'3');
INSERT INTO sqlite_stat1 VALUES('ft_content',NULL,'1');
INSERT INTO sqlite_stat1 VALUES('ft_idx','ft_idx','1 1 1');
INSERT INTO sqlite_stat1 VALUES('ft_docsize',NULL,'1');
INSERT INTO sqlite_stat1 VALUES('ft_config','ft_config','1 1');
DELETE FROM sqlite_sequence;
INSERT INTO sqlite_sequence VALUES('t',5);
PRAGMA writable_schema=OFF;
COMMIT;
"#;

    /// The samples with their tabs, and the syntax each is written in.
    fn samples() -> Vec<(Syntax, Vec<u8>)> {
        [
            (Syntax::Postgres, POSTGRES_DUMP),
            (Syntax::Mysql, MYSQL_DUMP),
            (Syntax::Sqlite, SQLITE_DUMP),
            (Syntax::Sqlite, SQLITE_FTS_DUMP),
        ]
        .into_iter()
        .map(|(d, text)| (d, text.replace('→', "\t").into_bytes()))
        .collect()
    }

    fn scan(syntax: Syntax, input: &[u8]) -> Vec<(String, u64)> {
        let mut s = SqlScanner::new(syntax);
        s.feed(input);
        s.finish()
    }

    /// Feeds `input` cut at `cuts` (positions in any order, repeats allowed).
    fn scan_cut(syntax: Syntax, input: &[u8], cuts: &[usize]) -> Vec<(String, u64)> {
        let mut cuts: Vec<usize> = cuts.iter().map(|&c| c.min(input.len())).collect();
        cuts.sort_unstable();
        let mut s = SqlScanner::new(syntax);
        let mut from = 0;
        for c in cuts {
            s.feed(&input[from..c]);
            from = c;
        }
        s.feed(&input[from..]);
        s.finish()
    }

    fn expect(list: &[(&str, u64)]) -> Vec<(String, u64)> {
        list.iter().map(|(t, n)| (t.to_string(), *n)).collect()
    }

    /// The capacity of the scanner's one buffer: it must never grow.
    fn buffer_capacity(s: &SqlScanner) -> usize {
        match &s.machine {
            Machine::Copy(m) => m.head.capacity(),
            Machine::Statements(m) => m.token.capacity(),
        }
    }

    #[test]
    fn postgres_copy_blocks_count_their_lines() {
        let (_, dump) = &samples()[0];
        assert_eq!(
            scan(Syntax::Postgres, dump),
            expect(&[
                ("public.\"My Table\"", 5),
                ("public.empty", 0),
                ("public.pgbench_branches", 3),
                ("public.nocols", 1),
                ("public.one_col", 2),
                ("public.\"a (b\"", 1),
            ])
        );
    }

    #[test]
    fn postgres_lines_that_only_look_like_copy_are_ignored() {
        let dump = b"-- COPY public.a (x) FROM stdin;\n\
            COPY public.b (x) FROM stdin\n\
            1\n\
            COPY public.c (x) FROM stdin; \n\
            copy public.d (x) FROM stdin;\n\
            \\.\n";
        assert_eq!(scan(Syntax::Postgres, dump), expect(&[]));
    }

    #[test]
    fn postgres_copy_line_longer_than_the_prefix_is_recognised() {
        let columns: Vec<String> = (0..2000).map(|i| format!("column_{i}")).collect();
        let dump = format!(
            "COPY public.wide ({}) FROM stdin;\n1\n2\n\\.\n",
            columns.join(", ")
        );
        assert!(dump.len() > 4 * MAX_PREFIX);
        assert_eq!(
            scan(Syntax::Postgres, dump.as_bytes()),
            expect(&[("public.wide", 2)])
        );
    }

    #[test]
    fn postgres_long_rows_and_names_keep_memory_bounded() {
        let mut s = SqlScanner::new(Syntax::Postgres);
        let capacity = buffer_capacity(&s);
        s.feed(b"COPY public.t (a) FROM stdin;\n");
        let row = vec![b'x'; 3 << 20];
        for _ in 0..3 {
            s.feed(&row);
            s.feed(b"\n");
        }
        s.feed(b"\\.\nCOPY ");
        s.feed(&vec![b'n'; 1 << 20]);
        s.feed(b" FROM stdin;\n1\n\\.\n");
        assert_eq!(buffer_capacity(&s), capacity);
        let counts = s.finish();
        assert_eq!(counts[0], ("public.t".to_string(), 3));
        assert_eq!(counts[1].0.len(), MAX_PREFIX - COPY_START.len());
        assert_eq!(counts[1].1, 1);
    }

    #[test]
    fn postgres_unterminated_last_row_counts() {
        let dump = b"COPY public.t (a) FROM stdin;\n1\n2";
        assert_eq!(scan(Syntax::Postgres, dump), expect(&[("public.t", 2)]));
        let dump = b"COPY public.t (a) FROM stdin;\n1\n\\.";
        assert_eq!(scan(Syntax::Postgres, dump), expect(&[("public.t", 1)]));
    }

    #[test]
    fn mysql_extended_inserts_count_their_rows() {
        let (_, dump) = &samples()[1];
        assert_eq!(
            scan(Syntax::Mysql, dump),
            expect(&[
                ("sbtest1", 4),
                ("empty", 0),
                ("we`ird; (name)", 2),
                ("log", 4),
                ("after", 2),
            ])
        );
    }

    #[test]
    fn mysql_strings_escape_with_backslashes_and_doubled_quotes() {
        let dump = br#"INSERT INTO t VALUES ('\\'),('a\\\'b;('),('it''s)'),("dq\";("),('x'
'y');
INSERT INTO u VALUES ('new
line; (');
"#;
        assert_eq!(scan(Syntax::Mysql, dump), expect(&[("t", 5), ("u", 1)]));
    }

    #[test]
    fn mysql_comments_hide_semicolons_and_parens() {
        let dump = b"-- a comment; (x)\n\
            # another; (y)\n\
            /* block; ( */ INSERT INTO t VALUES (1),/* (2), */(3);\n\
            /*!40000 ALTER TABLE `t` DISABLE KEYS; ( */;\n\
            INSERT INTO t VALUES (4--1),(5);\n\
            --\n\
            INSERT INTO t VALUES (6)--;\n\
            (7);\n";
        // `--` without whitespace after it is two minus signs, so `--;` ends the statement
        // and `(7);` is not an insert.
        assert_eq!(scan(Syntax::Mysql, dump), expect(&[("t", 5)]));
    }

    #[test]
    fn mysql_insert_forms() {
        let dump = b"INSERT INTO `t` (`a`,`b`) VALUES (1,2),(3,4);\n\
            INSERT LOW_PRIORITY IGNORE INTO `t` VALUE (5,6);\n\
            REPLACE `t` SET a=1;\n\
            insert into t values(7,8);\n\
            INSERT INTO `u` SELECT * FROM `t`;\n";
        assert_eq!(scan(Syntax::Mysql, dump), expect(&[("t", 4), ("u", 0)]));
    }

    #[test]
    fn mysql_delimiter_blocks_are_skipped() {
        let dump = b"delimiter //\n\
            CREATE PROCEDURE p() BEGIN INSERT INTO t VALUES (1); INSERT INTO t VALUES (2); END//\n\
            -- a line starting DELIMITER inside a string does not count:\n\
            SELECT 'x\n\
            DELIMITER ;\n\
            '//\n\
            INSERT INTO t VALUES (3)//\n\
            DELIMITER ;\n\
            INSERT INTO t VALUES (4);\n";
        assert_eq!(scan(Syntax::Mysql, dump), expect(&[("t", 1)]));
    }

    #[test]
    fn mysql_long_names_are_cut_and_memory_stays_bounded() {
        let mut s = SqlScanner::new(Syntax::Mysql);
        let capacity = buffer_capacity(&s);
        s.feed(b"CREATE TABLE `");
        s.feed(&vec![b'n'; 1 << 20]);
        s.feed(b"` (a int);\nINSERT INTO `t` VALUES ('");
        s.feed(&vec![b'x'; 3 << 20]);
        s.feed(b"'),(");
        s.feed(&vec![b'9'; 1 << 20]);
        s.feed(b");\n");
        assert_eq!(buffer_capacity(&s), capacity);
        let counts = s.finish();
        assert_eq!(counts[0].0, "n".repeat(MAX_PREFIX - 1));
        assert_eq!(counts[1], ("t".to_string(), 2));
    }

    #[test]
    fn sqlite_dump_counts_inserts_and_names_tables_one_way() {
        let all = samples();
        assert_eq!(
            scan(Syntax::Sqlite, &all[2].1),
            expect(&[
                ("users", 3),
                ("\"my t\"", 1),
                ("order", 2),
                ("bq", 1),
                ("q", 1),
                ("e", 0),
                ("\"a\"\"b\"", 1),
                ("sqlite_sequence", 1),
            ])
        );
        assert_eq!(
            scan(Syntax::Sqlite, &all[3].1),
            // sqlite_schema (the virtual table's row) is left out.
            expect(&[
                ("ft_data", 3),
                ("ft_idx", 1),
                ("ft_content", 1),
                ("ft_docsize", 1),
                ("ft_config", 1),
                ("e", 0),
                ("t", 1),
                ("sqlite_stat1", 6),
                ("sqlite_sequence", 1),
            ])
        );
    }

    #[test]
    fn sqlite_strings_have_no_backslash_escapes() {
        let dump = b"INSERT INTO t VALUES('a\\');\nINSERT INTO t VALUES('b\\''c');\n\
            INSERT INTO t VALUES('multi\nline;(');\nINSERT INTO t VALUES(1),(2)--;\n;\n";
        assert_eq!(scan(Syntax::Sqlite, dump), expect(&[("t", 5)]));
    }

    #[test]
    fn sqlite_names_in_any_quotes() {
        let dump = "CREATE TABLE [x y](a);\nCREATE TABLE 'q''s'(a);\nCREATE TABLE \"tête\"(a);\n\
            CREATE TABLE `_ok1`(a);\nINSERT INTO \"x y\" VALUES(1);\nINSERT INTO \"q's\" VALUES(1);\n\
            INSERT INTO \"tête\" VALUES(1);\nINSERT INTO _ok1 VALUES(1);\n";
        assert_eq!(
            scan(Syntax::Sqlite, dump.as_bytes()),
            expect(&[("\"x y\"", 1), ("\"q's\"", 1), ("\"tête\"", 1), ("_ok1", 1),])
        );
    }

    #[test]
    fn sqlite_trigger_bodies_are_not_counted() {
        let dump = b"CREATE TRIGGER tr AFTER INSERT ON e BEGIN\n\
            INSERT INTO q VALUES(1);\n\
            UPDATE q SET z = CASE WHEN z > 0 THEN 1 ELSE 2 END WHERE z IN (1);\n\
            INSERT INTO q VALUES(2);\n\
            END;\n\
            CREATE TEMP TRIGGER t2 AFTER DELETE ON e BEGIN INSERT INTO q VALUES(3); END;\n\
            INSERT INTO q VALUES(4);\n";
        assert_eq!(scan(Syntax::Sqlite, dump), expect(&[("q", 1)]));
    }

    #[test]
    fn every_cut_gives_the_same_counts() {
        for (syntax, dump) in samples() {
            let whole = scan(syntax, &dump);
            for cut in 0..=dump.len() {
                assert_eq!(scan_cut(syntax, &dump, &[cut]), whole, "cut at {cut}");
            }
            let mut s = SqlScanner::new(syntax);
            for b in &dump {
                s.feed(std::slice::from_ref(b));
            }
            assert_eq!(s.finish(), whole);
        }
    }

    /// A reader that returns at most 3 bytes per call.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(3).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn counting_reader_passes_bytes_through() {
        for (syntax, dump) in samples() {
            let mut reader = CountingReader::new(Trickle(&dump), syntax);
            let mut out = Vec::new();
            let mut buf = [0u8; 5];
            loop {
                let n = reader.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&buf[..n]);
            }
            assert_eq!(out, dump);
            assert_eq!(reader.finish(), scan(syntax, &dump));

            let mut reader = CountingReader::new(&dump[..], syntax);
            let mut out = Vec::new();
            io::copy(&mut reader, &mut out).unwrap();
            assert_eq!(out, dump);
            assert_eq!(reader.finish(), scan(syntax, &dump));
        }
    }

    const DIALECTS: [Syntax; 3] = [Syntax::Postgres, Syntax::Mysql, Syntax::Sqlite];

    /// Bytes that steer the scanners, often; any byte, sometimes.
    fn edit_byte() -> impl Strategy<Value = u8> {
        prop_oneof![
            prop::sample::select(b"'\"`\\;()[],-/*#\n .".to_vec()),
            any::<u8>(),
        ]
    }

    /// A sample with random bytes replaced, inserted and removed.
    fn mutated_sample() -> impl Strategy<Value = Vec<u8>> {
        let edits = prop::collection::vec((any::<Index>(), edit_byte(), 0..3u8), 0..24);
        (any::<Index>(), edits).prop_map(|(which, edits)| {
            let all = samples();
            let mut dump = all[which.index(all.len())].1.clone();
            for (at, byte, op) in edits {
                let i = at.index(dump.len() + 1);
                match op {
                    0 if i < dump.len() => dump[i] = byte,
                    1 if i < dump.len() => {
                        dump.remove(i);
                    }
                    _ => dump.insert(i, byte),
                }
            }
            dump
        })
    }

    fn cuts() -> impl Strategy<Value = Vec<Index>> {
        prop::collection::vec(any::<Index>(), 0..24)
    }

    fn positions(cuts: &[Index], len: usize) -> Vec<usize> {
        cuts.iter().map(|c| c.index(len + 1)).collect()
    }

    proptest! {
        #[test]
        fn samples_cut_anywhere_count_the_same(which in any::<Index>(), cuts in cuts()) {
            let all = samples();
            let (syntax, dump) = &all[which.index(all.len())];
            let whole = scan(*syntax, dump);
            prop_assert_eq!(scan_cut(*syntax, dump, &positions(&cuts, dump.len())), whole);
        }

        #[test]
        fn mutated_samples_never_panic_and_cut_anywhere(
            dump in mutated_sample(),
            syntax in prop::sample::select(DIALECTS.to_vec()),
            cuts in cuts(),
        ) {
            let whole = scan(syntax, &dump);
            prop_assert_eq!(scan_cut(syntax, &dump, &positions(&cuts, dump.len())), whole);
        }

        #[test]
        fn arbitrary_bytes_never_panic_nor_grow_the_buffer(
            bytes in any::<Vec<u8>>(),
            syntax in prop::sample::select(DIALECTS.to_vec()),
            cuts in cuts(),
        ) {
            let mut s = SqlScanner::new(syntax);
            let capacity = buffer_capacity(&s);
            s.feed(&bytes);
            prop_assert_eq!(buffer_capacity(&s), capacity);
            let whole = s.finish();
            prop_assert_eq!(scan_cut(syntax, &bytes, &positions(&cuts, bytes.len())), whole);
        }

        /// Random values, written the way each tool escapes them, are counted exactly.
        #[test]
        fn generated_dumps_count_exactly(
            rows in prop::collection::vec(
                prop::collection::vec(prop::collection::vec(edit_byte(), 0..12), 1..4),
                0..40,
            ),
            per_insert in 1..8usize,
            cuts in cuts(),
        ) {
            let values: Vec<Vec<String>> = rows
                .iter()
                .map(|row| row.iter().map(|v| String::from_utf8_lossy(v).into_owned()).collect())
                .collect();
            for (syntax, dump) in [
                (Syntax::Postgres, pg_copy(&values)),
                (Syntax::Mysql, mysql_inserts(&values, per_insert)),
                (Syntax::Sqlite, sqlite_inserts(&values)),
            ] {
                let counted = scan_cut(syntax, dump.as_bytes(), &positions(&cuts, dump.len()));
                let name = if syntax == Syntax::Postgres { "public.t" } else { "t" };
                prop_assert_eq!(counted, expect(&[(name, values.len() as u64)]), "{}", dump);
            }
        }
    }

    /// A `COPY` block in text format.
    fn pg_copy(rows: &[Vec<String>]) -> String {
        let mut out = String::from("COPY public.t (a, b, c) FROM stdin;\n");
        for row in rows {
            let fields: Vec<String> = row
                .iter()
                .map(|v| {
                    v.replace('\\', "\\\\")
                        .replace('\n', "\\n")
                        .replace('\r', "\\r")
                        .replace('\t', "\\t")
                })
                .collect();
            out.push_str(&fields.join("\t"));
            out.push('\n');
        }
        out.push_str("\\.\n\n");
        out
    }

    /// `mysqldump` extended inserts, `per_insert` rows each.
    fn mysql_inserts(rows: &[Vec<String>], per_insert: usize) -> String {
        let mut out = String::from("CREATE TABLE `t` (`a` text, `b` text, `c` text);\n");
        for chunk in rows.chunks(per_insert) {
            let tuples: Vec<String> = chunk
                .iter()
                .map(|row| {
                    let values: Vec<String> = row
                        .iter()
                        .map(|v| {
                            let escaped = v
                                .replace('\\', "\\\\")
                                .replace('\'', "\\'")
                                .replace('"', "\\\"")
                                .replace('\n', "\\n")
                                .replace('\0', "\\0");
                            format!("'{escaped}'")
                        })
                        .collect();
                    format!("({})", values.join(","))
                })
                .collect();
            out.push_str(&format!("INSERT INTO `t` VALUES {};\n", tuples.join(",")));
        }
        out
    }

    /// `sqlite3 .dump` inserts, one row each.
    fn sqlite_inserts(rows: &[Vec<String>]) -> String {
        let mut out = String::from("CREATE TABLE t(a,b,c);\n");
        for row in rows {
            let values: Vec<String> = row
                .iter()
                .map(|v| {
                    let quoted = format!("'{}'", v.replace('\'', "''"));
                    if v.contains('\n') {
                        format!("replace({},'\\n',char(10))", quoted.replace('\n', "\\n"))
                    } else {
                        quoted
                    }
                })
                .collect();
            out.push_str(&format!("INSERT INTO t VALUES({});\n", values.join(",")));
        }
        out
    }
}
