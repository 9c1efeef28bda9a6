//! The per-project run lock: a kernel `flock` on `STATE_DIR/locks/<project>.lock`, so
//! that two runs of one project never overlap, and a run killed by any means (SIGKILL,
//! a reboot) frees it with its file descriptor. The file says who holds it (pid, start,
//! run id), for the message the second run prints; what is in the file never decides
//! anything, only the kernel lock does.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use crate::ops::RunId;

/// A held run lock; dropping it releases the lock.
#[derive(Debug)]
pub struct RunLock {
    _file: Flock<File>,
}

/// Why the lock could not be taken.
#[derive(Debug)]
pub enum LockError {
    /// Another process holds it; the message says who and since when.
    Held(String),
    /// The lock file could not be made or locked.
    Io(String),
}

/// Where a project's run lock is.
pub fn lock_path(state_dir: &Path, project: &str) -> PathBuf {
    state_dir.join("locks").join(format!("{project}.lock"))
}

/// Takes `project`'s run lock without waiting and writes the holder's pid, `start_ns`
/// and `run_id` into it.
pub fn acquire(
    state_dir: &Path,
    project: &str,
    start_ns: i64,
    run_id: &RunId,
) -> Result<RunLock, LockError> {
    let path = lock_path(state_dir, project);
    let dir = path.parent().expect("the lock path has a directory");
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| LockError::Io(format!("creating {}: {e}", dir.display())))?;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(|e| LockError::Io(format!("opening {}: {e}", path.display())))?;
    let mut file = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(f) => f,
        Err((mut file, Errno::EWOULDBLOCK)) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            return Err(LockError::Held(held_message(project, &text)));
        }
        Err((_, e)) => {
            return Err(LockError::Io(format!("locking {}: {e}", path.display())));
        }
    };
    let text = format!(
        "pid {}\nstarted {start_ns}\nrun {run_id}\n",
        std::process::id()
    );
    let written = file
        .set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(text.as_bytes()));
    if let Err(e) = written {
        // The kernel lock is what counts; the file only helps the message.
        tracing::warn!("writing the run lock {}: {e}", path.display());
    }
    Ok(RunLock { _file: file })
}

/// `project shop: already running since 03:00:02 (pid 4121)`, from the lock file's
/// text (written by [`acquire`]); what cannot be read is left out.
fn held_message(project: &str, text: &str) -> String {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .map(str::trim)
    };
    let pid = field("pid").and_then(|p| p.parse::<u32>().ok());
    let since = field("started")
        .and_then(|t| t.parse::<i64>().ok())
        .and_then(|ns| jiff::Timestamp::from_nanosecond(i128::from(ns)).ok())
        .map(|t| {
            t.to_zoned(jiff::tz::TimeZone::system())
                .strftime("%H:%M:%S")
                .to_string()
        });
    let mut m = format!("project {project}: already running");
    if let Some(since) = since {
        m.push_str(&format!(" since {since}"));
    }
    if let Some(pid) = pid {
        m.push_str(&format!(" (pid {pid})"));
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_with_who_holds_it_and_freed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let start = jiff::civil::date(2026, 3, 1)
            .at(3, 0, 2, 0)
            .to_zoned(jiff::tz::TimeZone::system())
            .unwrap()
            .timestamp()
            .as_nanosecond() as i64;
        let first = acquire(dir.path(), "shop", start, &RunId("r1".into())).unwrap();
        match acquire(dir.path(), "shop", start, &RunId("r2".into())) {
            Err(LockError::Held(m)) => assert_eq!(
                m,
                format!(
                    "project shop: already running since 03:00:02 (pid {})",
                    std::process::id()
                )
            ),
            other => panic!("{other:?}"),
        }
        // Another project is not blocked.
        let _other = acquire(dir.path(), "blog", start, &RunId("r2".into())).unwrap();
        drop(first);
        acquire(dir.path(), "shop", start, &RunId("r3".into())).unwrap();
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(dir.path().join("locks"))
                .unwrap()
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn an_unreadable_lock_file_still_gives_a_message() {
        assert_eq!(
            held_message("shop", "garbage"),
            "project shop: already running"
        );
    }
}
