//! `strata mount`: the repository as a read-only FUSE file system, a thin adapter over
//! [`strata_engine::vfs`] (the virtual layout, the snapshots' trees, ranged reads and their
//! caches live there, for a web server to share).
//!
//! - [`fs`]: the inode table over the vfs, and errors as errnos; [`ops`]: the FUSE
//!   operations on it; [`attr`]: attributes as the kernel wants them.
//! - [`signals`]: waiting for Ctrl-C / SIGTERM (signal-hook) or the end of the session.
//!
//! The session runs on a thread of its own, serving one request at a time; the command's
//! thread waits for a signal or for the session to end (an unmount from outside), then
//! unmounts. The repository lock is held by the command for the whole mount and refreshed
//! by the lock's own thread.

mod attr;
mod fs;
mod ops;
mod signals;

use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use fuser::MountOption;

pub use fs::StrataFs;

/// How long an unmount may take before the mount is detached lazily.
const UNMOUNT_WAIT: Duration = Duration::from_secs(3);

/// How the file system is mounted.
#[derive(Debug, Clone, Default)]
pub struct MountOptions {
    /// Let other users in (`allow_other`); the kernel then enforces the recorded modes
    /// and owners (`default_permissions`).
    pub allow_other: bool,
    /// Print nothing on success.
    pub quiet: bool,
}

/// Why a mountpoint cannot be used, before anything is opened.
pub fn check_mountpoint(path: &Path) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(md) if md.is_dir() => {}
        Ok(_) => bail!("mountpoint {} is not a directory", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!(
                "mountpoint {} does not exist: create it first",
                path.display()
            )
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => bail!(
            "mountpoint {} is a mount whose process is gone: unmount it with \
             `fusermount -u {}` (or `umount -l`)",
            path.display(),
            path.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("mountpoint {}", path.display())),
    }
    let dev = Path::new("/dev/fuse");
    if !dev.exists() {
        bail!("cannot mount: /dev/fuse is missing (load the fuse kernel module: modprobe fuse)");
    }
    use nix::unistd::{access, AccessFlags};
    if access(dev, AccessFlags::R_OK | AccessFlags::W_OK).is_err() {
        bail!("cannot mount as this user: /dev/fuse is not readable and writable for it");
    }
    Ok(())
}

/// Mounts `fs` at `mountpoint` and serves it until SIGINT, SIGTERM or SIGHUP, or until it
/// is unmounted from outside; returns once it is unmounted.
pub fn serve(fs: StrataFs, mountpoint: &Path, opts: &MountOptions) -> Result<()> {
    let mut signals = signals::Signals::install().context("installing signal handlers")?;
    let mut options = vec![
        MountOption::RO,
        MountOption::NoDev,
        MountOption::NoSuid,
        MountOption::FSName("strata".into()),
        MountOption::Subtype("strata".into()),
    ];
    if opts.allow_other {
        options.extend([MountOption::AllowOther, MountOption::DefaultPermissions]);
    }
    let mut session =
        fuser::Session::new(fs, mountpoint, &options).map_err(|e| mount_error(mountpoint, e))?;
    let mut unmounter = session.unmount_callable();
    let notifier = signals.notifier()?;
    let thread = std::thread::Builder::new()
        .name("fuse".into())
        .spawn(move || {
            // Tells the waiter when this thread ends, even by a panic: the process must
            // not sit on its lock with nothing mounted.
            struct Ended(signals::Notifier);
            impl Drop for Ended {
                fn drop(&mut self) {
                    self.0.ended();
                }
            }
            let _ended = Ended(notifier);
            let r = session.run();
            // Not dropped: after an unmount from outside, dropping the session would try to
            // unmount again (fuser 0.16 takes the dead connection for a live mount) and log
            // a spurious error. The process ends right after; nothing else is held.
            std::mem::forget(session);
            r
        })
        .context("starting the FUSE session")?;
    if !opts.quiet {
        eprintln!(
            "mounted at {}; Ctrl-C or SIGTERM unmounts",
            mountpoint.display()
        );
    }
    match signals.wait()? {
        signals::Event::Ended => return finish(thread),
        signals::Event::Signal(sig) => {
            tracing::info!(
                "{}: unmounting {}",
                signals::name(sig),
                mountpoint.display()
            );
        }
    }
    if let Err(e) = unmounter.unmount() {
        tracing::warn!("unmounting {}: {e}", mountpoint.display());
    }
    if wait_for(&thread, UNMOUNT_WAIT) {
        return finish(thread);
    }
    // Something holds the mount (a shell inside it, an open file): detach it from the
    // namespace now. Its users see it fail once this process exits.
    detach(mountpoint);
    eprintln!(
        "strata: {} was in use: detached it (its remaining users get errors from now on)",
        mountpoint.display()
    );
    Ok(())
}

/// Waits up to `limit` for the session thread to end.
fn wait_for(thread: &JoinHandle<std::io::Result<()>>, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while !thread.is_finished() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

fn finish(thread: JoinHandle<std::io::Result<()>>) -> Result<()> {
    thread
        .join()
        .map_err(|_| anyhow!("internal error: the FUSE session panicked"))?
        .context("the FUSE session failed")
}

/// Lazily unmounts `mountpoint` with whichever tool is there.
fn detach(mountpoint: &Path) {
    let tools: [(&str, &[&str]); 3] = [
        ("umount", &["-l"]),
        ("fusermount3", &["-u", "-z", "-q"]),
        ("fusermount", &["-u", "-z", "-q"]),
    ];
    for (tool, args) in tools {
        let status = std::process::Command::new(tool)
            .args(args)
            .arg(mountpoint)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        if status.is_ok_and(|s| s.success()) {
            return;
        }
    }
    tracing::warn!("could not detach {}", mountpoint.display());
}

/// Whether a program is on PATH.
fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d: PathBuf| d.join(name).is_file()))
}

/// An error of the mount itself, with what to do about it.
fn mount_error(mountpoint: &Path, e: std::io::Error) -> anyhow::Error {
    let at = mountpoint.display();
    if !on_path("fusermount3") && !on_path("fusermount") {
        // Not allowed to mount directly (not root): fuser needed the setuid helper.
        return anyhow!(
            "cannot mount at {at}: {e}; mounting as a user needs fusermount3 (install fuse3)"
        );
    }
    anyhow!("cannot mount at {at}: {e}")
}

#[cfg(test)]
mod tests {
    /// The mount names snapshots by the time `strata snapshots` shows (the engine's layout
    /// and the CLI's rendering must agree, or a name found in one is missing in the other).
    #[test]
    fn snapshot_names_use_the_times_the_snapshot_list_shows() {
        const SEC: i64 = 1_000_000_000;
        for ns in [
            0,
            1,
            SEC - 1,
            1_795_000_000 * SEC + 999_999_999,
            951_782_400 * SEC,
            4_102_444_799 * SEC,
            -1,
            -86_400 * SEC,
            i64::MAX,
            i64::MIN,
        ] {
            assert_eq!(
                strata_engine::vfs::time_name(ns),
                crate::output::rfc3339(ns),
                "{ns}"
            );
        }
    }
}
