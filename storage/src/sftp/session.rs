//! One SSH connection per backend, and the SFTP channels over it.
//!
//! The connection is the system `ssh` as a control master (the `openssh` crate), with the
//! user's configuration, a strict host key check, a connect timeout and keepalives; it is
//! made on first use. Over it run `channels` SFTP sessions (each a `sftp-server` process
//! on the server), made as they are first needed and handed out in turn: one channel
//! keeps any number of requests in flight, but the server answers them one after another,
//! so a second channel lets one file's fsync proceed beside another file's writes.
//!
//! A channel whose transport fails is forgotten, and with it the connection it ran on:
//! the next request makes new ones (after a restarted server, or a dropped link).

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openssh::{ControlPersist, KnownHosts, Session, SessionBuilder, Stdio};
use openssh_sftp_client::{Error as SftpError, Sftp, SftpAuxiliaryData, SftpOptions};
use tokio::sync::Mutex;

use crate::error::{ErrorKind, StorageError};
use crate::Result;

/// How long making the SSH connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Keepalives: a dead link is noticed within a few of these.
const ALIVE_INTERVAL: Duration = Duration::from_secs(15);
/// How long making the connection, or a channel over it, may take in all.
const CHANNEL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a failed connection attempt answers for the callers that waited for it.
const FAILURE_SHARED_FOR: Duration = Duration::from_secs(2);

/// Whether the server answered (with a status): the channel itself is fine.
pub(super) fn answered(e: &SftpError) -> bool {
    matches!(e, SftpError::SftpError(..))
}

/// The storage error for a failed SFTP request on `path`.
pub(super) fn error(op: &'static str, path: &str, e: &SftpError) -> StorageError {
    use openssh_sftp_client::error::SftpErrorKind;
    let kind = match e {
        SftpError::SftpError(SftpErrorKind::NoSuchFile, _) => ErrorKind::NotFound,
        SftpError::SftpError(SftpErrorKind::PermDenied, _) => ErrorKind::PermissionDenied,
        SftpError::SftpError(..) => ErrorKind::Other,
        // The server or the connection went away: worth another try, on a new channel.
        _ => ErrorKind::Transient,
    };
    StorageError::new(kind, op, path, e.to_string())
}

/// `host` and `port` of an `ssh://[user@]host[:port]` endpoint (port 22 when none is
/// given; an IPv6 address in brackets keeps them).
pub(super) fn host_port(endpoint: &str) -> (&str, u16) {
    let rest = endpoint.strip_prefix("ssh://").unwrap_or(endpoint);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    match rest.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => (host, port.parse().unwrap_or(22)),
        _ => (rest, 22),
    }
}

/// What to do about a connection ssh refused because of the server's host key, if it did:
/// an unknown key is added with `ssh-keyscan` (after checking it), a changed one removed
/// with `ssh-keygen -R` (after finding out why it changed).
fn host_key_hint(message: &str, endpoint: &str) -> Option<String> {
    let (host, port) = host_port(endpoint);
    let (keyscan, known) = if port == 22 {
        (format!("ssh-keyscan {host}"), host.to_string())
    } else {
        (
            format!("ssh-keyscan -p {port} {host}"),
            format!("[{host}]:{port}"),
        )
    };
    if message.contains("REMOTE HOST IDENTIFICATION HAS CHANGED") {
        Some(format!(
            "the host key of {known} differs from the one in ~/.ssh/known_hosts: if the \
             server was really reinstalled, remove the old key with `ssh-keygen -R '{known}'` \
             and add the new one with `{keyscan} >> ~/.ssh/known_hosts`"
        ))
    } else if message.contains("Host key verification failed")
        || message.contains("host key is known")
    {
        Some(format!(
            "the host key of {known} is not in ~/.ssh/known_hosts (strata never trusts an \
             unknown host): check the server's key fingerprint, then add it with \
             `{keyscan} >> ~/.ssh/known_hosts`"
        ))
    } else {
        None
    }
}

/// The storage error for a connection that could not be made: ssh's own words (an unknown
/// host key, a refused login) are kept, with what to do about a host key, and only what
/// may pass (a refused or dropped connection, a timeout) is transient.
fn connect_error(op: &'static str, path: &str, endpoint: &str, e: &openssh::Error) -> StorageError {
    let mut message = format!("ssh: {e}");
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let text = cause.to_string();
        let text = text.trim();
        if !text.is_empty() && !message.ends_with(text) {
            message.push_str(": ");
            message.push_str(text);
        }
        source = cause.source();
    }
    let kind = if message.contains("Permission denied")
        || message.contains("Too many authentication failures")
    {
        ErrorKind::PermissionDenied
    } else if matches!(e, openssh::Error::Ssh(_))
        || message.contains("Host key verification failed")
        || message.contains("Could not resolve hostname")
        || message.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
        || message.contains("Bad configuration option")
        || message.contains("Bad owner or permissions")
    {
        // Nothing another try would change: no `ssh` to run, or it refuses.
        ErrorKind::Other
    } else {
        ErrorKind::Transient
    };
    if let Some(hint) = host_key_hint(&message, endpoint) {
        message = format!("{hint} ({message})");
    }
    StorageError::new(kind, op, path, message)
}

/// A channel, and the connection it runs on.
#[derive(Clone)]
pub(super) struct Channel {
    pub(super) sftp: Arc<Sftp>,
    session: Arc<Session>,
    slot: usize,
}

/// How to reach the server, the connection once made, and its channels (shared with the
/// tasks that make channels in the background).
pub(super) struct Connector(Arc<Shared>);

struct Shared {
    endpoint: String,
    user: Option<String>,
    key: Option<String>,
    session: Mutex<Option<Arc<Session>>>,
    /// The last failed connection attempt: when, and what it gave.
    last_failure: Mutex<Option<(Instant, ErrorKind, String)>>,
    channels: Vec<Mutex<Option<Channel>>>,
    next: AtomicUsize,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("endpoint", &self.0.endpoint)
            .field("channels", &self.0.channels.len())
            .finish_non_exhaustive()
    }
}

impl Connector {
    /// `endpoint`: `ssh://[user@]host[:port]`; `channels`: at least one.
    pub(super) fn new(
        endpoint: String,
        user: Option<String>,
        key: Option<String>,
        channels: usize,
    ) -> Self {
        Connector(Arc::new(Shared {
            endpoint,
            user,
            key,
            session: Mutex::new(None),
            last_failure: Mutex::new(None),
            channels: (0..channels.max(1)).map(|_| Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
        }))
    }

    pub(super) fn endpoint(&self) -> &str {
        &self.0.endpoint
    }

    /// A channel: the next ready one in turn; if none is ready yet, this turn's one, made
    /// now (and the connection with it), while the others are made in the background.
    pub(super) async fn channel(&self, op: &'static str, path: &str) -> Result<Channel> {
        let shared = &self.0;
        let n = shared.channels.len();
        let turn = shared.next.fetch_add(1, Ordering::Relaxed) % n;
        for k in 0..n {
            // A slot being made is locked: skipped, not waited for.
            if let Ok(slot) = shared.channels[(turn + k) % n].try_lock() {
                if let Some(channel) = &*slot {
                    return Ok(channel.clone());
                }
            }
        }
        let mut slot = shared.channels[turn].lock().await;
        if let Some(channel) = &*slot {
            return Ok(channel.clone());
        }
        let channel = shared.make(turn, op, path).await?;
        *slot = Some(channel.clone());
        drop(slot);
        for other in (0..n).filter(|&j| j != turn) {
            let shared = self.0.clone();
            tokio::spawn(async move {
                let mut slot = shared.channels[other].lock().await;
                if slot.is_none() {
                    // A failure here is no one's: the next request finds no channel there
                    // and makes one, or reports why it cannot.
                    if let Ok(channel) = shared.make(other, "connect", "").await {
                        *slot = Some(channel);
                    }
                }
            });
        }
        Ok(channel)
    }

    /// After `e` on `channel`: a failed transport makes the next request use a new
    /// channel on a new connection; a status from the server changes nothing.
    pub(super) async fn failed(&self, channel: &Channel, e: &SftpError) {
        if answered(e) {
            return;
        }
        self.forget(channel).await;
    }

    /// Forgets `channel` and its connection (if they are still the ones in use).
    pub(super) async fn forget(&self, channel: &Channel) {
        tracing::debug!(
            slot = channel.slot,
            "sftp channel and its connection forgotten"
        );
        {
            let mut slot = self.0.channels[channel.slot].lock().await;
            if slot
                .as_ref()
                .is_some_and(|c| Arc::ptr_eq(&c.sftp, &channel.sftp))
            {
                slot.take();
            }
        }
        self.0.forget_session(&channel.session).await;
    }
}

impl Shared {
    /// The SSH connection, made if there is none.
    async fn session(&self, op: &'static str, path: &str) -> Result<Arc<Session>> {
        let mut slot = self.session.lock().await;
        if let Some(session) = &*slot {
            return Ok(session.clone());
        }
        // Callers that waited for an attempt that just failed share its failure, rather
        // than each making one more (64 listings in flight would try 64 times in turn).
        if let Some((when, kind, message)) = &*self.last_failure.lock().await {
            if when.elapsed() < FAILURE_SHARED_FOR {
                return Err(StorageError::new(*kind, op, path, message.clone()));
            }
        }
        let mut builder = SessionBuilder::default();
        if let Some(user) = &self.user {
            builder.user(user.clone());
        }
        if let Some(key) = &self.key {
            builder.keyfile(key);
        }
        builder
            .known_hosts_check(KnownHosts::Strict)
            .connect_timeout(CONNECT_TIMEOUT)
            .server_alive_interval(ALIVE_INTERVAL)
            // The ssh master goes a minute after its last channel (a killed process's too).
            .control_persist(ControlPersist::IdleFor(
                NonZeroUsize::new(60).expect("not zero"),
            ));
        let made =
            match tokio::time::timeout(CHANNEL_TIMEOUT, builder.connect(&self.endpoint)).await {
                Ok(made) => made.map_err(|e| connect_error(op, path, &self.endpoint, &e)),
                Err(_) => Err(StorageError::new(
                    ErrorKind::Transient,
                    op,
                    path,
                    format!(
                        "ssh: no connection to {} within {} s",
                        self.endpoint,
                        CHANNEL_TIMEOUT.as_secs()
                    ),
                )),
            };
        let session = match made {
            Ok(session) => session,
            Err(e) => {
                let message = e.source.to_string();
                *self.last_failure.lock().await = Some((Instant::now(), e.kind, message));
                return Err(e);
            }
        };
        tracing::debug!(endpoint = %self.endpoint, "ssh connection made");
        let session = Arc::new(session);
        *slot = Some(session.clone());
        Ok(session)
    }

    /// A new channel for slot `slot`, on the connection (made if there is none).
    async fn make(&self, slot: usize, op: &'static str, path: &str) -> Result<Channel> {
        let session = self.session(op, path).await?;
        let options = SftpOptions::new()
            // Requests are sent at once rather than gathered for half a millisecond: each
            // one waits a round trip anyway, and many are in flight.
            .flush_interval(Duration::ZERO);
        // The subsystem is started here rather than by `Sftp::from_clonable_session`, whose
        // task panics if the future waiting for it is dropped first (a command ending while
        // a channel is being made); the ssh process stays with the channel until it ends.
        // A server whose SFTP subsystem never answers (a home on a hung mount) must not
        // hold this slot for ever.
        let start = async {
            let mut child = Session::to_subsystem(session.clone(), "sftp")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .await
                .map_err(|e| connect_error(op, path, &self.endpoint, &e))?;
            let (Some(stdin), Some(stdout)) = (child.stdin().take(), child.stdout().take()) else {
                return Err(StorageError::other(
                    op,
                    path,
                    "ssh gave no pipes to the SFTP server",
                ));
            };
            let keep = SftpAuxiliaryData::Boxed(Box::new(std::sync::Mutex::new(child)));
            Sftp::new_with_auxiliary(stdin, stdout, options, keep)
                .await
                .map_err(|e| error(op, path, &e))
        };
        let made = tokio::time::timeout(CHANNEL_TIMEOUT, start).await;
        let sftp = match made {
            Ok(Ok(sftp)) => sftp,
            failed => {
                // A refused channel (sshd's MaxSessions) leaves a working connection be.
                if session.check().await.is_err() {
                    self.forget_session(&session).await;
                }
                return Err(match failed {
                    Ok(Err(e)) => e,
                    _ => StorageError::new(
                        ErrorKind::Transient,
                        op,
                        path,
                        format!(
                            "the SFTP server did not start a session within {} s",
                            CHANNEL_TIMEOUT.as_secs()
                        ),
                    ),
                });
            }
        };
        tracing::debug!(slot, "sftp channel made");
        Ok(Channel {
            sftp: Arc::new(sftp),
            session,
            slot,
        })
    }

    async fn forget_session(&self, session: &Arc<Session>) {
        let mut slot = self.session.lock().await;
        if slot.as_ref().is_some_and(|s| Arc::ptr_eq(s, session)) {
            slot.take();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_give_host_and_port() {
        assert_eq!(
            host_port("ssh://backup@example.org:2222"),
            ("example.org", 2222)
        );
        assert_eq!(host_port("ssh://example.org"), ("example.org", 22));
        assert_eq!(host_port("ssh://u@[::1]:2200"), ("[::1]", 2200));
        assert_eq!(host_port("ssh://[::1]"), ("[::1]", 22));
    }

    /// An unknown host key is met with the command that adds it, for the port used.
    #[test]
    fn host_key_refusals_say_what_to_run() {
        let unknown = "ssh: No ED25519 host key is known for [127.0.0.1]:2222 and you have \
                       requested strict checking.\nHost key verification failed.";
        let hint = host_key_hint(unknown, "ssh://me@127.0.0.1:2222").unwrap();
        assert!(
            hint.contains("`ssh-keyscan -p 2222 127.0.0.1 >> ~/.ssh/known_hosts`"),
            "{hint}"
        );
        let hint = host_key_hint("Host key verification failed.", "ssh://h").unwrap();
        assert!(
            hint.contains("`ssh-keyscan h >> ~/.ssh/known_hosts`"),
            "{hint}"
        );
        let changed = "WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!";
        let hint = host_key_hint(changed, "ssh://h:2200").unwrap();
        assert!(hint.contains("ssh-keygen -R '[h]:2200'"), "{hint}");
        assert_eq!(
            host_key_hint("Permission denied (publickey)", "ssh://h"),
            None
        );
    }
}
