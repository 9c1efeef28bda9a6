//! Login rate limits, in memory: after [`MAX_FAILURES`] failed logins within [`WINDOW`]
//! from one client address (an IPv6 client by its /64), or for one user name, further
//! logins from there or for that name are refused with 429 until the oldest failure is
//! [`WINDOW`] old. An attempt counts as a failure from the moment it starts (so a burst of
//! parallel guesses cannot slip past the count) and is taken back when it succeeds; a
//! success also clears its own address's failures, never another address's.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

/// Failed logins allowed per address and per user name within [`WINDOW`].
pub const MAX_FAILURES: usize = 5;
/// How long a failed login counts.
pub const WINDOW: Duration = Duration::from_secs(300);

/// Beyond this many tracked keys, stale ones are swept at the next attempt.
const SWEEP_ABOVE: usize = 10_000;

#[derive(Debug, Default)]
pub struct LoginLimits {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    by_addr: HashMap<IpAddr, VecDeque<i64>>,
    by_user: HashMap<String, VecDeque<i64>>,
}

/// A login under way (counted as a failure until [`LoginLimits::succeeded`]).
#[derive(Debug, Clone)]
pub struct Attempt {
    addr: IpAddr,
    user: String,
    at_ns: i64,
}

impl LoginLimits {
    /// Counts a login by `user` from `addr` at `now_ns`, or refuses it with how long to wait.
    pub fn begin(&self, addr: IpAddr, user: &str, now_ns: i64) -> Result<Attempt, Duration> {
        let addr = key_of(addr);
        let user = user_key(user);
        let window = WINDOW.as_nanos() as i64;
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.by_addr.len() + inner.by_user.len() > SWEEP_ABOVE {
            let cut = now_ns - window;
            inner
                .by_addr
                .retain(|_, v| v.back().is_some_and(|t| *t > cut));
            inner
                .by_user
                .retain(|_, v| v.back().is_some_and(|t| *t > cut));
        }
        let Inner { by_addr, by_user } = &mut *inner;
        let a = by_addr.entry(addr).or_default();
        let u = by_user.entry(user.clone()).or_default();
        let mut wait_ns = 0i64;
        for list in [&mut *a, &mut *u] {
            while list.front().is_some_and(|t| *t <= now_ns - window) {
                list.pop_front();
            }
            if list.len() >= MAX_FAILURES {
                let oldest = list[list.len() - MAX_FAILURES];
                wait_ns = wait_ns.max(oldest + window - now_ns);
            }
        }
        if wait_ns > 0 {
            // Whole seconds, rounded up: Retry-After never says "now" too early.
            let secs = (wait_ns as u64).div_ceil(1_000_000_000).max(1);
            return Err(Duration::from_secs(secs));
        }
        a.push_back(now_ns);
        u.push_back(now_ns);
        Ok(Attempt {
            addr,
            user,
            at_ns: now_ns,
        })
    }

    /// The attempt succeeded: it is no failure, and its address starts afresh.
    pub fn succeeded(&self, attempt: &Attempt) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.by_addr.remove(&attempt.addr);
        if let Some(list) = inner.by_user.get_mut(&attempt.user) {
            if let Some(i) = list.iter().position(|t| *t == attempt.at_ns) {
                list.remove(i);
            }
        }
    }
}

/// An IPv4 address as it is; an IPv6 one by its /64 (one host usually has a whole /64).
fn key_of(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

/// A user name as counted: names the config cannot hold share one count.
fn user_key(user: &str) -> String {
    if super::users::valid_name(user) {
        user.to_string()
    } else {
        "\0invalid".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    #[test]
    fn five_failures_then_wait_per_address_and_per_user() {
        let l = LoginLimits::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for i in 0..5 {
            l.begin(a, &format!("u{i}"), i * S).unwrap();
        }
        // The address is spent, whatever the name.
        let wait = l.begin(a, "other", 10 * S).unwrap_err();
        assert_eq!(wait, Duration::from_secs(290));
        // Another address is not.
        let ok = l.begin(b, "alice", 10 * S).unwrap();
        l.succeeded(&ok);
        // One name from many addresses.
        for i in 0..5u8 {
            l.begin(IpAddr::from([192, 168, 0, i]), "bob", 20 * S)
                .unwrap();
        }
        assert!(l
            .begin(IpAddr::from([192, 168, 1, 1]), "bob", 21 * S)
            .is_err());
        // A success elsewhere does not free address a; time does.
        assert!(l.begin(a, "x", 299 * S).is_err());
        assert!(l.begin(a, "x", 300 * S).is_ok());
    }

    #[test]
    fn a_success_is_no_failure() {
        let l = LoginLimits::default();
        let a: IpAddr = "::1".parse().unwrap();
        for i in 0..10 {
            let t = l.begin(a, "alice", i * S).unwrap();
            l.succeeded(&t);
        }
    }

    #[test]
    fn ipv6_by_its_64() {
        let l = LoginLimits::default();
        for i in 0..5u16 {
            let ip = IpAddr::from([0x2001, 0xdb8, 0, 1, 0, 0, 0, i]);
            l.begin(ip, "u", 0).unwrap_or_else(|_| panic!("{i}"));
        }
        let other_host_same_64 = IpAddr::from([0x2001, 0xdb8, 0, 1, 9, 9, 9, 9]);
        assert!(l.begin(other_host_same_64, "v", S).is_err());
    }
}
