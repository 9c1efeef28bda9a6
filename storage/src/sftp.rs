//! A second SFTP channel beside opendal's, for what opendal 0.59's sftp service does not do:
//! make a written file durable and private before it is renamed into place.
//!
//! opendal's sftp writer closes a file without `fsync` and cannot set modes, so an object
//! it wrote could be lost by a crash of the server after the rename, and would have the
//! server's umask. Through this channel each temporary file gets mode 0600 and, where the
//! server offers the `fsync@openssh.com` extension (OpenSSH does), an fsync before the
//! rename; the directories of a new repository get 0700. A server without the extension,
//! or one that refuses modes, gets a warning, once, and its writes go on. The rename itself
//! is not made durable: SFTP has no way to fsync a directory.
//!
//! The channel is made on first use with the same login and host key check as opendal's
//! (the system `ssh`), with timeouts and keepalives, and made again after it fails.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use openssh::{ControlPersist, KnownHosts, SessionBuilder};
use openssh_sftp_client::metadata::Permissions;
use openssh_sftp_client::{Error as SftpError, Sftp, SftpOptions};
use tokio::sync::Mutex;
use tracing::warn;

use crate::error::{ErrorKind, StorageError};
use crate::Result;

/// Mode of every object written.
const FILE_MODE: u16 = 0o600;
/// Mode of every directory of a new repository.
const DIR_MODE: u16 = 0o700;
/// How long one file's chmod and fsync may take before the channel counts as dead.
const SEAL_TIMEOUT: Duration = Duration::from_secs(600);

/// How to reach the server, and the channel once made.
pub(crate) struct Sealer {
    endpoint: String,
    user: Option<String>,
    key: Option<String>,
    /// The repository root on the server (absolute).
    root: String,
    channel: Mutex<Option<Arc<Sftp>>>,
    warned_no_fsync: AtomicBool,
    warned_no_chmod: AtomicBool,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("endpoint", &self.endpoint)
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

/// Whether the server answered (with a status): the channel itself is fine.
fn answered(e: &SftpError) -> bool {
    matches!(e, SftpError::SftpError(..))
}

fn error(op: &'static str, path: &str, e: &SftpError) -> StorageError {
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

impl Sealer {
    pub(crate) fn new(
        endpoint: String,
        user: Option<String>,
        key: Option<String>,
        root: String,
    ) -> Self {
        Sealer {
            endpoint,
            user,
            key,
            root,
            channel: Mutex::new(None),
            warned_no_fsync: AtomicBool::new(false),
            warned_no_chmod: AtomicBool::new(false),
        }
    }

    async fn channel(&self, op: &'static str, path: &str) -> Result<Arc<Sftp>> {
        let mut slot = self.channel.lock().await;
        if let Some(sftp) = &*slot {
            return Ok(sftp.clone());
        }
        let mut session = SessionBuilder::default();
        if let Some(user) = &self.user {
            session.user(user.clone());
        }
        if let Some(key) = &self.key {
            session.keyfile(key);
        }
        session
            .known_hosts_check(KnownHosts::Strict)
            .connect_timeout(Duration::from_secs(30))
            .server_alive_interval(Duration::from_secs(15))
            // The ssh master goes a minute after its last channel (a killed process's too).
            .control_persist(ControlPersist::IdleFor(
                NonZeroUsize::new(60).expect("not zero"),
            ));
        let session = session
            .connect(&self.endpoint)
            .await
            .map_err(|e| StorageError::new(ErrorKind::Transient, op, path, format!("ssh: {e}")))?;
        let sftp = Sftp::from_session(session, SftpOptions::default())
            .await
            .map_err(|e| error(op, path, &e))?;
        let sftp = Arc::new(sftp);
        *slot = Some(sftp.clone());
        Ok(sftp)
    }

    /// Forgets `failed` (if it is still the channel), so that the next call makes a new
    /// one; a channel made meanwhile by another caller stays.
    async fn drop_channel(&self, failed: &Arc<Sftp>) {
        let mut slot = self.channel.lock().await;
        if slot.as_ref().is_some_and(|c| Arc::ptr_eq(c, failed)) {
            slot.take();
        }
    }

    fn full(&self, rel: &str) -> PathBuf {
        PathBuf::from(&self.root).join(rel.trim_start_matches('/'))
    }

    fn warn_once(&self, flag: &AtomicBool, what: &str) {
        if !flag.swap(true, Ordering::Relaxed) {
            warn!("the SFTP server {} {what}", self.endpoint);
        }
    }

    /// Makes the file at `rel` (below the root) mode 0600 and durable. A server that
    /// refuses modes, or offers no fsync, gets a warning (once) and the write goes on; a
    /// failed fsync fails it.
    pub(crate) async fn seal(&self, rel: &str) -> Result<()> {
        const OP: &str = "write";
        let sftp = self.channel(OP, rel).await?;
        let work = async {
            let mut file = sftp.options().write(true).open(self.full(rel)).await?;
            match file.set_permissions(Permissions::from(FILE_MODE)).await {
                Ok(()) => {}
                Err(e) if answered(&e) => self.warn_once(
                    &self.warned_no_chmod,
                    &format!("refuses to set modes ({e}): files keep the modes its umask gives"),
                ),
                Err(e) => return Err(e),
            }
            if sftp.support_fsync() {
                file.sync_all().await?;
            } else {
                self.warn_once(
                    &self.warned_no_fsync,
                    "does not offer fsync@openssh.com: writes are not made durable before \
                     they are renamed into place",
                );
            }
            file.close().await
        };
        let outcome = match tokio::time::timeout(SEAL_TIMEOUT, work).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => (answered(&e), error(OP, rel, &e)),
            Err(_) => (
                false,
                StorageError::new(
                    ErrorKind::Transient,
                    OP,
                    rel,
                    "the SFTP server did not answer the fsync within 10 minutes",
                ),
            ),
        };
        if !outcome.0 {
            self.drop_channel(&sftp).await;
        }
        Err(outcome.1)
    }

    /// Gives the root and the directories `dirs` (below it) mode 0700; a server that
    /// refuses modes gets a warning.
    pub(crate) async fn restrict_dirs(&self, dirs: &[String]) -> Result<()> {
        const OP: &str = "create_layout";
        let sftp = self.channel(OP, "").await?;
        let mut fs = sftp.fs();
        for dir in std::iter::once("").chain(dirs.iter().map(String::as_str)) {
            match fs
                .set_permissions(self.full(dir), Permissions::from(DIR_MODE))
                .await
            {
                Ok(()) => {}
                Err(e) if answered(&e) => {
                    self.warn_once(
                        &self.warned_no_chmod,
                        &format!(
                            "refuses to set modes ({e}): directories keep the modes its umask \
                             gives"
                        ),
                    );
                    return Ok(());
                }
                Err(e) => {
                    self.drop_channel(&sftp).await;
                    return Err(error(OP, dir, &e));
                }
            }
        }
        Ok(())
    }
}
