//! `strata mount`

use std::path::PathBuf;

use anyhow::Result;
use strata_engine::vfs::Vfs;
use strata_engine::Operation;

use crate::mount::{self, MountOptions, StrataFs};
use crate::{exit, open, Cli};

/// Mount the repository read-only at MOUNTPOINT (FUSE) to browse every snapshot.
///
/// Layout (times in UTC, like 2026-11-24T01:09:46Z):
///
///   snapshots/TIME-SHORTID/     every snapshot
///   projects/PROJECT/TIME/      the snapshots of one project
///   projects/PROJECT/latest     a symlink to the project's newest snapshot
///   tags/TAG/TIME/              the snapshots carrying a tag
///   hosts/HOST/TIME/            the snapshots of a host
///
/// While a snapshot cannot be read (it may be the newest), there are no latest links.
/// Where two snapshots in one directory share a time, -SHORTID is appended to both. A
/// snapshot directory holds the backed-up paths as absolute paths (a backup of /srv/x
/// shows srv/x/...); a database snapshot holds its dump, DATABASE.sql.
///
/// Entries show their metadata as recorded: mode, owner, times, size, symlink targets,
/// hard links, device numbers, extended attributes. Reading a file fetches only the
/// chunks the read covers. The mount holds a shared lock on the repository (so prune
/// waits); it runs in the foreground until Ctrl-C or SIGTERM, then unmounts. Unmounting
/// it from outside (`fusermount -u MOUNTPOINT`) ends it too.
///
/// As a user other than root, mounting needs fusermount3 (Debian: the fuse3 package).
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// An existing directory to mount on.
    mountpoint: PathBuf,
    /// Let other users in (needs user_allow_other in /etc/fuse.conf when not root); the
    /// kernel then enforces the recorded modes and owners.
    #[arg(long)]
    allow_other: bool,
}

pub fn run(cli: &Cli, args: &Args) -> Result<u8> {
    mount::check_mountpoint(&args.mountpoint)?;
    let (repo, _lock) = open::open(cli, Operation::Mount)?;
    let vfs = Vfs::new(repo)?;
    // An unreadable snapshot may be the newest: the vfs shows no `latest` link then.
    if !vfs.unreadable().is_empty() {
        eprintln!(
            "warning: {}; the mount leaves out the `latest` links",
            strata_engine::snapshots::latest_unknown(vfs.unreadable())
        );
    }
    let fs = StrataFs::new(vfs)?;
    let opts = MountOptions {
        allow_other: args.allow_other,
        quiet: cli.quiet,
    };
    mount::serve(fs, &args.mountpoint, &opts)?;
    // `_lock` is dropped here: the repository is unlocked once the mount is gone.
    Ok(exit::OK)
}
