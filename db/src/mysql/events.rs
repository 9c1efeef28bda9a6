//! Scheduled events in a mysqldump stream, created disabled when a restore test loads the
//! dump into a scratch database beside live ones.

use std::io::Write;

use crate::dialect::LoadFilter;

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
pub(crate) struct DisableEvents<W: Write> {
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
    pub(crate) fn new(inner: W) -> Self {
        DisableEvents {
            inner,
            line: Vec::new(),
            event: false,
            passing: false,
            refused: None,
        }
    }

    /// Why the stream was refused, if an event line could not be disabled.
    pub(crate) fn refused(&self) -> Option<&str> {
        self.refused.as_deref()
    }

    fn refuse(&mut self, e: std::io::Error) -> std::io::Error {
        self.refused = Some(e.to_string());
        e
    }

    /// Writes what is held back (a last line without a newline) and returns the sink.
    pub(crate) fn finish(mut self) -> std::io::Result<W> {
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

impl<W: Write> LoadFilter for DisableEvents<W> {
    fn finish(self: Box<Self>) -> std::io::Result<()> {
        DisableEvents::finish(*self).map(drop)
    }

    fn refused(&self) -> Option<&str> {
        DisableEvents::refused(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
