//! The lexer of the MySQL and SQLite scanner: words, quoted names, strings and comments,
//! in pieces of any size, handed as tokens to the statement machine.

use super::statement::{Stmt, Token};
use super::tables::{Tables, MAX_PREFIX};

/// `mysqldump` and `sqlite3 .dump`: a small lexer (words, quoted names, strings, comments)
/// feeding tokens to a statement state machine ([`Stmt`]).
#[derive(Debug)]
pub(super) struct StatementScanner {
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

impl StatementScanner {
    pub(super) fn new(sqlite: bool) -> Self {
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

    pub(super) fn feed(&mut self, tables: &mut Tables, bytes: &[u8]) {
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
    pub(super) fn finish(&mut self, tables: &mut Tables) {
        match self.lex {
            Lex::Word => self.end_word(tables),
            Lex::NameQuote(_) => self.emit(tables, Token::Name),
            Lex::StrQuote(_) => self.end_string(tables),
            _ => {}
        }
        self.lex = Lex::Between;
    }

    /// The capacity of its one buffer, which never grows.
    #[cfg(test)]
    pub(super) fn buffer_capacity(&self) -> usize {
        self.token.capacity()
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

/// Bytes of bare words: ASCII letters, digits, `_`, `$`, and anything not ASCII.
fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}
