//! The statement machine of the MySQL and SQLite scanner: which statement the tokens form,
//! which table it names, and which of its parentheses open a row.

use std::borrow::Cow;

use super::tables::Tables;

/// What the lexer hands to the statement machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Token {
    /// A bare word, in the lexer's token.
    Word,
    /// A quoted name as written, in the lexer's token.
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
pub(super) enum Stmt {
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

impl Stmt {
    /// Whether the next word is a table name.
    pub(super) fn expects_name(self) -> bool {
        matches!(self, Stmt::Insert { .. } | Stmt::CreateTable)
    }

    /// The state after `token` (`text` holds a word or name).
    pub(super) fn next(self, token: Token, text: &[u8], sqlite: bool, tables: &mut Tables) -> Stmt {
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
