//! PostgreSQL's plain `pg_dump` format, line by line: every line of a `COPY` block is one
//! row (see the module above for the format).

use super::tables::{Tables, MAX_PREFIX};

pub(super) const COPY_START: &[u8] = b"COPY ";
const COPY_END: &[u8; 12] = b" FROM stdin;";
const BLOCK_END: &[u8] = b"\\.";

/// `pg_dump`'s plain format, line by line.
#[derive(Debug)]
pub(super) struct CopyScanner {
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
    pub(super) fn new() -> Self {
        CopyScanner {
            block: None,
            head: Vec::with_capacity(MAX_PREFIX),
            tail: [0; COPY_END.len()],
            len: 0,
        }
    }

    pub(super) fn feed(&mut self, tables: &mut Tables, mut bytes: &[u8]) {
        while let Some(end) = bytes.iter().position(|&b| b == b'\n') {
            self.extend(&bytes[..end]);
            self.end_line(tables);
            bytes = &bytes[end + 1..];
        }
        self.extend(bytes);
    }

    pub(super) fn finish(&mut self, tables: &mut Tables) {
        if self.len > 0 {
            self.end_line(tables);
        }
    }

    /// The capacity of its one buffer, which never grows.
    #[cfg(test)]
    pub(super) fn buffer_capacity(&self) -> usize {
        self.head.capacity()
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
