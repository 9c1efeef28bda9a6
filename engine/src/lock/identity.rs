//! Who this process is, and whether the process a lock names still runs.
//!
//! A lock can be judged stale for certain only by a process that shares the holder's
//! kernel (equal boot ids) and PID namespace (equal namespace inodes): only then does the
//! lock's pid mean the same process here as there. Even then a pid may have been reused
//! by a later process, which the start time (clock ticks after boot, the same in every
//! namespace of one kernel) tells apart.

use std::sync::OnceLock;

use strata_format::lock::ProcessIdentity;

/// This process's identity (read once; none of it changes while the process runs).
pub fn this_process() -> &'static ProcessIdentity {
    static ME: OnceLock<ProcessIdentity> = OnceLock::new();
    ME.get_or_init(|| {
        let mut instance = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut instance);
        ProcessIdentity {
            boot_id: boot_id(),
            pid_namespace: pid_namespace(),
            start_ticks: stat_of("self").map_or(0, |s| s.start_ticks),
            instance,
        }
    })
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn pid_namespace() -> u64 {
    use std::os::unix::fs::MetadataExt;
    // The link's target, an nsfs inode: one number per namespace.
    std::fs::metadata("/proc/self/ns/pid").map_or(0, |m| m.ino())
}

/// The fields of `/proc/<pid>/stat` used here.
struct Stat {
    pid: u32,
    start_ticks: u64,
}

/// Parses `/proc/<pid>/stat`: `pid (comm) state ppid …`, where `comm` may hold spaces and
/// parentheses, so fields are counted from the last `)`. Field 22 is the start time.
fn parse_stat(text: &str) -> Option<Stat> {
    let pid = text.split(' ').next()?.parse().ok()?;
    let after = &text[text.rfind(')')? + 1..];
    // After the comm: field 3 (state) is the first, so field 22 is the 20th.
    let start_ticks = after.split_whitespace().nth(19)?.parse().ok()?;
    Some(Stat { pid, start_ticks })
}

fn stat_of(pid: &str) -> Option<Stat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Whether `/proc` shows this process's own PID namespace (it shows another one when it
/// was mounted in a parent namespace and not mounted again), so that `/proc/<pid>` there
/// is the process that has `pid` here.
fn proc_is_ours() -> bool {
    stat_of("self").is_some_and(|s| s.pid == std::process::id())
}

/// Whether a process with `pid` runs in this PID namespace (a process we may not signal
/// still runs).
fn process_exists(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        // 0 and negative numbers name process groups, not a process.
        return false;
    }
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) => true,
        Err(nix::errno::Errno::ESRCH) => false,
        Err(_) => true,
    }
}

/// Why the process a lock names certainly no longer runs, if it certainly does not.
/// `None` when it runs, or when nothing here can tell (another kernel, another PID
/// namespace, or a lock without an identity).
pub(crate) fn certainly_gone(pid: u32, holder: Option<&ProcessIdentity>) -> Option<&'static str> {
    let holder = holder?;
    let me = this_process();
    let same_kernel = !me.boot_id.is_empty() && holder.boot_id == me.boot_id;
    let same_namespace = me.pid_namespace != 0 && holder.pid_namespace == me.pid_namespace;
    if !(same_kernel && same_namespace) {
        return None;
    }
    if holder.instance == me.instance {
        return None;
    }
    if !process_exists(pid) {
        return Some("its process no longer runs");
    }
    if holder.start_ticks != 0 && proc_is_ours() {
        if let Some(now) = stat_of(&pid.to_string()) {
            if now.start_ticks != holder.start_ticks {
                return Some("its process no longer runs (the pid belongs to a later process)");
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_with_hostile_command_names_parse() {
        let line = "4121 (a) b (c)) S 1 4121 4121 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 \
                    987654 1000 10 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0";
        let s = parse_stat(line).unwrap();
        assert_eq!(s.pid, 4121);
        assert_eq!(s.start_ticks, 987654);
        assert!(parse_stat("").is_none());
        assert!(parse_stat("12 (x").is_none());
        assert!(parse_stat("12 (x) S 1").is_none());
    }

    #[test]
    fn this_process_is_known_on_linux() {
        let me = this_process();
        assert_eq!(me.boot_id.len(), 36, "{me:?}");
        assert_ne!(me.pid_namespace, 0);
        assert_ne!(me.start_ticks, 0);
        assert!(proc_is_ours());
        assert_eq!(
            stat_of(&std::process::id().to_string())
                .unwrap()
                .start_ticks,
            me.start_ticks
        );
    }

    #[test]
    fn only_a_shared_kernel_and_namespace_prove_a_process_gone() {
        let me = this_process().clone();
        // pids stay below 2^22 on Linux: this one runs nowhere.
        let ghost = 4_999_999;
        let other = |f: &dyn Fn(&mut ProcessIdentity)| {
            let mut p = me.clone();
            p.instance = [9; 16];
            f(&mut p);
            p
        };
        let same = other(&|_| {});
        assert!(certainly_gone(ghost, Some(&same)).is_some());
        assert!(certainly_gone(ghost, None).is_none(), "no identity");
        let reboot = other(&|p| p.boot_id = "another boot".into());
        assert!(certainly_gone(ghost, Some(&reboot)).is_none());
        let container = other(&|p| p.pid_namespace += 1);
        assert!(certainly_gone(ghost, Some(&container)).is_none());
        let unknown = other(&|p| {
            p.boot_id.clear();
            p.pid_namespace = 0;
        });
        assert!(certainly_gone(ghost, Some(&unknown)).is_none());
        // A live pid with another start time: the pid was reused.
        let recycled = other(&|p| p.start_ticks += 1);
        assert!(certainly_gone(std::process::id(), Some(&recycled)).is_some());
        assert!(certainly_gone(std::process::id(), Some(&same)).is_none());
        // Pid 0 names a process group, never a holder.
        assert!(certainly_gone(0, Some(&same)).is_some());
    }
}
