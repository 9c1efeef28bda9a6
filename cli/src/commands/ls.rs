//! `strata ls`

use std::io::Write;
use std::os::unix::ffi::OsStrExt;

use anyhow::Result;
use serde::Serialize;
use strata_engine::treewalk::{self, Found};
use strata_engine::Operation;
use strata_format::tree::{Node, NodeKind};

use crate::output::{printable, rfc3339, time};
use crate::{exit, open, Cli};

/// List the entries of a snapshot: without PATH, everything; with PATH, PATH itself and
/// the entries directly in it (`--recursive`: everything below it), as restic does.
///
/// SNAPSHOT is `latest`, a snapshot id, or a unique prefix of one. `--long` shows mode,
/// owner, size and modification time; `--json` one object per line.
#[derive(Debug, clap::Args)]
pub struct Args {
    snapshot: String,
    /// Which snapshot `latest` means: the newest of this host, project, tag or path.
    #[command(flatten)]
    filter: super::SnapshotFilter,
    /// Absolute path inside the snapshot (any bytes, not only UTF-8).
    path: Option<std::path::PathBuf>,
    /// Show mode, owner, size and modification time.
    #[arg(short, long)]
    long: bool,
    /// With PATH: list everything below it, not only the entries directly in it.
    #[arg(short = 'R', long)]
    recursive: bool,
    /// Print one JSON object per entry and line.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct EntryJson<'a> {
    path: String,
    #[serde(rename = "type")]
    kind: &'a str,
    size: u64,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    link_target: Option<String>,
}

fn mode_string(node: &Node) -> String {
    let t = match node.kind {
        NodeKind::Dir { .. } => 'd',
        NodeKind::Symlink { .. } => 'l',
        NodeKind::Fifo => 'p',
        NodeKind::CharDevice { .. } => 'c',
        NodeKind::BlockDevice { .. } => 'b',
        NodeKind::Socket => 's',
        NodeKind::File { .. } => '-',
    };
    let mut s = String::from(t);
    for shift in [6, 3, 0] {
        let bits = (node.mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    s
}

fn print(out: &mut impl Write, args: &Args, path: &[u8], node: &Node) -> Result<()> {
    let shown = if args.json {
        String::from_utf8_lossy(path).into_owned()
    } else {
        printable(path)
    };
    let target = match &node.kind {
        NodeKind::Symlink { target } if args.json => {
            Some(String::from_utf8_lossy(target).into_owned())
        }
        NodeKind::Symlink { target } => Some(printable(target)),
        _ => None,
    };
    if args.json {
        let e = EntryJson {
            path: shown,
            kind: node.kind.name(),
            size: node.size,
            mode: node.mode,
            uid: node.uid,
            gid: node.gid,
            mtime: rfc3339(node.mtime_ns),
            link_target: target,
        };
        serde_json::to_writer(&mut *out, &e)?;
        writeln!(out)?;
    } else if args.long {
        let owner = node.user.clone().unwrap_or_else(|| node.uid.to_string());
        let group = node.group.clone().unwrap_or_else(|| node.gid.to_string());
        let arrow = target.map(|t| format!(" -> {t}")).unwrap_or_default();
        writeln!(
            out,
            "{} {owner:>8} {group:>8} {:>12} {} {shown}{arrow}",
            mode_string(node),
            node.size,
            time(node.mtime_ns)
        )?;
    } else {
        writeln!(out, "{shown}")?;
    }
    Ok(())
}

pub fn run(cli: &Cli, args: &Args) -> Result<u8> {
    let filter = args.filter.for_specs(&[&args.snapshot]);
    let (repo, _lock) = open::open(cli, Operation::Ls)?;
    let (_, snap) = strata_engine::snapshots::find_in(&repo, &args.snapshot, &filter)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let path = args
        .path
        .as_deref()
        .map(|p| p.as_os_str().as_bytes())
        .unwrap_or(b"/");
    let (tree, prefix) = match treewalk::resolve(&repo, &snap.tree, path)? {
        Found::Root(t) => (Some(t), Vec::new()),
        Found::Node { path, node } => {
            print(&mut out, args, &path, &node)?;
            match node.kind {
                NodeKind::Dir { subtree } => (Some(subtree), path),
                _ => (None, path),
            }
        }
    };
    // Without PATH, everything; with PATH, one level unless --recursive.
    let descend = args.path.is_none() || args.recursive;
    if let Some(tree) = tree {
        let mut failed = None;
        treewalk::walk(&repo, &tree, &prefix, &mut |p, n| {
            if let Err(e) = print(&mut out, args, p, n) {
                failed = Some(e);
                return Err(strata_engine::EngineError::Invalid("output failed".into()));
            }
            Ok(descend)
        })
        .map_err(|e| match failed.take() {
            Some(io) => io,
            None => e.into(),
        })?;
    }
    out.flush()?;
    Ok(exit::OK)
}
