//! Whether a project's run lock (`state_dir/locks/<project>.lock`, a kernel file lock the
//! runner holds while it runs) is held, by whom, and since when at the latest.
//!
//! It is read from `/proc/locks` (flock, POSIX and OFD locks alike), which takes no lock
//! itself: a test that took the lock for a moment could make a run starting in that
//! moment give up as "already running". Only where `/proc/locks` cannot be read is the
//! lock tried (non-blocking, shared, released at once).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Where the runner keeps `project`'s run lock.
pub fn run_lock_path(state_dir: &Path, project: &str) -> PathBuf {
    state_dir.join("locks").join(format!("{project}.lock"))
}

/// A lock that is held.
#[derive(Debug, PartialEq, Eq)]
pub struct Held {
    pub pid: Option<u32>,
    /// How long it has been held at most: the lesser of the lock file's age and its
    /// holder's (real time, not `--now`'s).
    pub held_for: Duration,
}

/// Who holds the lock on `path`, if anyone.
pub fn holder(path: &Path) -> Option<Held> {
    let meta = std::fs::metadata(path).ok()?;
    let file_age = meta
        .modified()
        .ok()
        .and_then(|m| SystemTime::now().duration_since(m).ok())
        .unwrap_or_default();
    let pid = match std::fs::read_to_string("/proc/locks") {
        Ok(locks) => Some(pid_in_proc_locks(&locks, meta.dev(), meta.ino())?),
        Err(_) => {
            if !held_by_someone(path) {
                return None;
            }
            None
        }
    };
    let held_for = match pid.and_then(process_age) {
        Some(p) => p.min(file_age),
        None => file_age,
    };
    Some(Held { pid, held_for })
}

/// The pid holding a lock on the file `(dev, ino)` according to `/proc/locks`. On
/// overlay file systems `stat` may show the device of the layer below while the lock
/// shows the overlay's: a lock on the same inode number is taken when no line matches
/// both (another file system's file of that number being locked at once is unlikely, and
/// would only show a run as running).
fn pid_in_proc_locks(locks: &str, dev: u64, ino: u64) -> Option<u32> {
    let want = (nix::sys::stat::major(dev), nix::sys::stat::minor(dev));
    let mut same_inode = None;
    for line in locks.lines() {
        let Some((pid, device, inode)) = parse_lock_line(line) else {
            continue;
        };
        if inode != ino {
            continue;
        }
        if device == want {
            return Some(pid);
        }
        same_inode.get_or_insert(pid);
    }
    same_inode
}

/// `1: FLOCK  ADVISORY  WRITE 4121 08:01:131090 0 EOF` → (pid, (major, minor), inode);
/// None for waiters (`1: -> FLOCK …`) and anything else.
fn parse_lock_line(line: &str) -> Option<(u32, (u64, u64), u64)> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.get(1) == Some(&"->") {
        return None;
    }
    let pid: u32 = fields.get(4)?.parse().ok()?;
    let mut file = fields.get(5)?.split(':');
    let major = u64::from_str_radix(file.next()?, 16).ok()?;
    let minor = u64::from_str_radix(file.next()?, 16).ok()?;
    let inode: u64 = file.next()?.parse().ok()?;
    Some((pid, (major, minor), inode))
}

/// How long process `pid` has been running (Linux `/proc`).
fn process_age(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields follow the last `)`.
    let rest = &stat[stat.rfind(')')? + 1..];
    // Field 22 (starttime, clock ticks after boot) is the 20th after the name.
    let start_ticks: u64 = rest.split_whitespace().nth(19)?.parse().ok()?;
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok()??;
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let age = uptime - start_ticks as f64 / ticks as f64;
    Some(Duration::from_secs_f64(age.max(0.0)))
}

/// Tries a shared lock without waiting; releases it at once.
fn held_by_someone(path: &Path) -> bool {
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockSharedNonblock) {
        Ok(_released_on_drop) => false,
        Err((_, errno)) => errno == nix::errno::Errno::EWOULDBLOCK,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_locks_lines_are_matched_by_device_and_inode() {
        let dev = nix::sys::stat::makedev(0x08, 0x01);
        let locks = "1: POSIX  ADVISORY  WRITE 900 08:01:555 0 EOF\n\
                     2: FLOCK  ADVISORY  WRITE 4121 08:01:131090 0 EOF\n\
                     2: -> FLOCK  ADVISORY  WRITE 4200 08:01:131090 0 EOF\n";
        assert_eq!(pid_in_proc_locks(locks, dev, 131090), Some(4121));
        assert_eq!(pid_in_proc_locks(locks, dev, 555), Some(900));
        assert_eq!(pid_in_proc_locks(locks, dev, 7), None);
        let other_dev = nix::sys::stat::makedev(0, 0x2f);
        assert_eq!(pid_in_proc_locks(locks, other_dev, 131090), Some(4121));
        assert_eq!(pid_in_proc_locks("garbage\n1: x", dev, 7), None);
    }

    #[test]
    fn a_lock_held_by_this_process_is_seen_and_a_free_one_is_not() {
        let tmp = tempfile::tempdir().unwrap();
        let path = run_lock_path(tmp.path(), "shop");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "").unwrap();
        assert_eq!(holder(&path), None);
        let f = std::fs::File::create(&path).unwrap();
        let lock = nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock)
            .map_err(|(_, e)| e)
            .unwrap();
        let held = holder(&path).expect("held");
        assert_eq!(held.pid, Some(std::process::id()));
        assert!(held.held_for < Duration::from_secs(60), "{held:?}");
        drop(lock);
        assert_eq!(holder(&path), None);
    }
}
