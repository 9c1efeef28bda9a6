//! Loading a dump from the repository into a database, through its dialect's load tool.

use std::io::Write;

use strata_engine::progress::Progress;
use strata_engine::restorer::write_content;
use strata_engine::Repository;
use strata_format::tree::Node;

use crate::child::LoadSink;
use crate::dialect::{Dialect, Unfiltered};
use crate::error::{DbError, Result};

/// How a dump is loaded.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Load {
    /// As it was: a restore.
    Restore,
    /// Into a scratch database next to live ones, through the dialect's scratch filter
    /// (MySQL: events are created disabled).
    Scratch,
}

/// Writes the dump `node` into `target`'s load tool, counting bytes for the progress; the
/// tool's own message says why when it stops reading.
pub(crate) fn load_dump(
    repo: &Repository,
    node: &Node,
    target: &dyn Dialect,
    load: Load,
    progress: &dyn Progress,
) -> Result<u64> {
    let tools = target.tools();
    let sink = LoadSink::spawn_until(
        tools.load,
        target.load_command(),
        tools.package,
        target.deadline(),
    )?;
    progress.set_total(node.size);
    let mut counting = Counting {
        sink,
        progress,
        failed: None,
    };
    let written = {
        let mut input = match load {
            Load::Scratch => target.scratch_filter(&mut counting),
            Load::Restore => Box::new(Unfiltered(&mut counting)),
        };
        match write_content(repo, node, &mut input) {
            Ok(n) => match input.finish() {
                Ok(()) => Ok(n),
                Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                    Err(DbError::Invalid(e.to_string()))
                }
                Err(e) => Err(DbError::io(format!("{}'s input", tools.load), e)),
            },
            Err(e) => Err(input
                .refused()
                .map_or(DbError::Engine(e), |why| DbError::Invalid(why.to_string()))),
        }
    };
    let Counting { sink, failed, .. } = counting;
    match (written, failed) {
        (Ok(n), _) => {
            sink.finish()?;
            Ok(n)
        }
        // The tool stopped reading: its own message says why.
        (Err(_), Some(e)) => Err(sink.failed(e)),
        (Err(e), None) => Err(e),
    }
}

/// The load tool's input, counting what it takes and keeping the error that stopped it.
struct Counting<'a> {
    sink: LoadSink,
    progress: &'a dyn Progress,
    failed: Option<std::io::Error>,
}

impl Write for Counting<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.sink.write(buf) {
            Ok(n) => {
                self.progress.add_bytes(n as u64);
                Ok(n)
            }
            Err(e) => {
                self.failed = Some(std::io::Error::new(e.kind(), e.to_string()));
                Err(e)
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.sink.flush()
    }
}
