//! A second SFTP channel beside opendal's, for what opendal 0.59's sftp service does not do:
//! make a written file durable and private before it is renamed into place.
//!
//! opendal's sftp writer closes a file without `fsync` and cannot set modes, so an object
//! it wrote could be lost by a crash of the server after the rename, and would have the
//! server's umask. Through this channel each temporary file gets mode 0600 and, where the
//! server offers the `fsync@openssh.com` extension (OpenSSH does), an fsync before the
//! rename; the directories of a new repository get 0700. A server without the extension
//! gets a warning, once, and its writes go on without fsync.
//!
//! The channel is made on first use with the same login and host key check as opendal's
//! (the system `ssh`), and made again after any failure.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use openssh::{KnownHosts, SessionBuilder};
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

/// How to reach the server, and the channel once made.
pub(crate) struct Sealer {
    endpoint: String,
    user: Option<String>,
    key: Option<String>,
    /// The repository root on the server (absolute).
    root: String,
    channel: Mutex<Option<Arc<Sftp>>>,
    warned_no_fsync: AtomicBool,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("endpoint", &self.endpoint)
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

fn error(op: &'static str, path: &str, e: SftpError) -> StorageError {
    // A failed channel (the server or the connection went away) is worth another try.
    let kind = match &e {
        SftpError::SftpError(kind, _) => match kind {
            openssh_sftp_client::error::SftpErrorKind::NoSuchFile => ErrorKind::NotFound,
            openssh_sftp_client::error::SftpErrorKind::PermDenied => ErrorKind::PermissionDenied,
            _ => ErrorKind::Other,
        },
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
        session.known_hosts_check(KnownHosts::Strict);
        let session = session
            .connect(&self.endpoint)
            .await
            .map_err(|e| StorageError::new(ErrorKind::Transient, op, path, format!("ssh: {e}")))?;
        let sftp = Sftp::from_session(session, SftpOptions::default())
            .await
            .map_err(|e| error(op, path, e))?;
        let sftp = Arc::new(sftp);
        *slot = Some(sftp.clone());
        Ok(sftp)
    }

    /// Forgets a channel that failed, so that the next call makes a new one.
    async fn drop_channel(&self) {
        self.channel.lock().await.take();
    }

    fn full(&self, rel: &str) -> PathBuf {
        PathBuf::from(&self.root).join(rel.trim_start_matches('/'))
    }

    /// Makes the file at `rel` (below the root) mode 0600 and durable.
    pub(crate) async fn seal(&self, rel: &str) -> Result<()> {
        const OP: &str = "write";
        let result = async {
            let sftp = self.channel(OP, rel).await?;
            let mut file = sftp
                .options()
                .write(true)
                .open(self.full(rel))
                .await
                .map_err(|e| error(OP, rel, e))?;
            file.set_permissions(Permissions::from(FILE_MODE))
                .await
                .map_err(|e| error(OP, rel, e))?;
            if sftp.support_fsync() {
                file.sync_all().await.map_err(|e| error(OP, rel, e))?;
            } else if !self.warned_no_fsync.swap(true, Ordering::Relaxed) {
                warn!(
                    "the SFTP server {} does not offer fsync@openssh.com: writes are not \
                     made durable before they are renamed into place",
                    self.endpoint
                );
            }
            file.close().await.map_err(|e| error(OP, rel, e))
        }
        .await;
        if result.is_err() {
            self.drop_channel().await;
        }
        result
    }

    /// Gives the root and the directories `dirs` (below it) mode 0700.
    pub(crate) async fn restrict_dirs(&self, dirs: &[String]) -> Result<()> {
        const OP: &str = "create_layout";
        let result = async {
            let sftp = self.channel(OP, "").await?;
            let mut fs = sftp.fs();
            for dir in std::iter::once("").chain(dirs.iter().map(String::as_str)) {
                fs.set_permissions(self.full(dir), Permissions::from(DIR_MODE))
                    .await
                    .map_err(|e| error(OP, dir, e))?;
            }
            Ok(())
        }
        .await;
        if result.is_err() {
            self.drop_channel().await;
        }
        result
    }
}
