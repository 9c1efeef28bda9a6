//! `dump --archive zip`: a directory of a snapshot as a zip archive, streamed to standard
//! output (no seeking: entries carry data descriptors), file contents read from the
//! repository with their content ids checked.
//!
//! What zip can keep is kept: permission bits (rwx, as unix modes, which unzip restores;
//! the zip crate keeps no setuid, setgid or sticky bit),
//! modification times (as local DOS time, two-second steps, and to the second in an
//! extended timestamp field, which unzip prefers) and symlinks (entries with the link mode,
//! their target as content). Owners, nanoseconds, devices, fifos and sockets cannot be in a
//! zip: the first two are dropped, the others left out with a warning. A name that is not
//! UTF-8 is written with its invalid bytes replaced, with a warning.

use std::io::{BufWriter, Write};

use anyhow::{bail, Result};
use strata_engine::restorer;
use strata_engine::treewalk;
use strata_engine::{EngineError, Repository};
use strata_format::id::BlobId;
use strata_format::tree::{Node, NodeKind};
use zip::write::{FullFileOptions, StreamWriter};
use zip::{CompressionMethod, ZipWriter};

type Zip = ZipWriter<StreamWriter<BufWriter<std::io::StdoutLock<'static>>>>;

/// Writes a zip archive of the directory `dir` (its path and node), or of the whole
/// snapshot whose root tree is `root`, to standard output.
pub fn write(repo: &Repository, dir: Option<(Vec<u8>, Node)>, root: BlobId) -> Result<()> {
    let mut zip: Zip = ZipWriter::new_stream(BufWriter::new(std::io::stdout().lock()));
    let tz = jiff::tz::TimeZone::system();
    let (tree, prefix) = match &dir {
        Some((path, node)) => {
            append(repo, &mut zip, &tz, path, node)?;
            let NodeKind::Dir { subtree } = &node.kind else {
                unreachable!("a directory")
            };
            (*subtree, path.clone())
        }
        None => (root, Vec::new()),
    };
    let mut failed = None;
    treewalk::walk(repo, &tree, &prefix, &mut |p, n| {
        if let Err(e) = append(repo, &mut zip, &tz, p, n) {
            failed = Some(e);
            return Err(EngineError::Invalid("writing the archive failed".into()));
        }
        Ok(true)
    })
    .map_err(|e| match failed.take() {
        Some(e) => e,
        None => e.into(),
    })?;
    zip.finish()?.into_inner().flush()?;
    Ok(())
}

/// The entry's options: deflate, its mode, and its time both ways (see the module docs).
fn options(node: &Node, tz: &jiff::tz::TimeZone) -> Result<FullFileOptions<'static>> {
    let secs = node.mtime_ns.div_euclid(1_000_000_000);
    let mut opts = FullFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .unix_permissions(node.mode)
        .large_file(node.size >= u64::from(u32::MAX));
    let dos = jiff::Timestamp::from_second(secs).ok().and_then(|t| {
        let c = t.to_zoned(tz.clone()).datetime();
        zip::DateTime::from_date_and_time(
            u16::try_from(c.year()).ok()?,
            c.month() as u8,
            c.day() as u8,
            c.hour() as u8,
            c.minute() as u8,
            c.second() as u8,
        )
        .ok()
    });
    if let Some(dos) = dos {
        opts = opts.last_modified_time(dos);
    }
    // Extended timestamp (0x5455): flags (bit 0: mtime present), mtime as i32 seconds.
    if let Ok(secs) = i32::try_from(secs) {
        let mut field = vec![1u8];
        field.extend_from_slice(&secs.to_le_bytes());
        opts.add_extra_data(0x5455, field, false)?;
    }
    Ok(opts)
}

fn append(
    repo: &Repository,
    zip: &mut Zip,
    tz: &jiff::tz::TimeZone,
    path: &[u8],
    node: &Node,
) -> Result<()> {
    let shown = String::from_utf8_lossy(path);
    let name = String::from_utf8_lossy(path.strip_prefix(b"/").unwrap_or(path)).into_owned();
    if std::str::from_utf8(path).is_err() {
        tracing::warn!("{shown}: the name is not UTF-8; written to the zip as {name:?}");
    }
    match &node.kind {
        NodeKind::File { .. } => {
            zip.start_file(name, options(node, tz)?)?;
            let written = restorer::write_content(repo, node, zip)?;
            if written != node.size {
                bail!(
                    "{shown}: the snapshot says {} bytes, its content has {written}: the \
                     archive is broken from here",
                    node.size
                );
            }
        }
        NodeKind::Dir { .. } => zip.add_directory(name, options(node, tz)?)?,
        NodeKind::Symlink { target } => {
            let target = String::from_utf8_lossy(target).into_owned();
            zip.add_symlink(name, target, options(node, tz)?)?
        }
        NodeKind::Fifo
        | NodeKind::CharDevice { .. }
        | NodeKind::BlockDevice { .. }
        | NodeKind::Socket => {
            tracing::warn!(
                "{shown}: a zip archive cannot hold devices, fifos or sockets: left out"
            );
        }
    }
    Ok(())
}
