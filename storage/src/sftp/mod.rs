//! [`Backend`] over SFTP: one SSH connection per process (the system `ssh`, see
//! [`session`]), its requests pipelined.
//!
//! Every round trip counts over a real network (80 ms to a server across a continent), so
//! nothing here waits for an answer it does not need before sending the next request:
//! - a read opens the file, then asks for all of its pieces at once (up to
//!   [`PIECES_IN_FLIGHT`], each as large as the server allows);
//! - a write opens a temporary name (mode 0600), sends every piece and the mode at once,
//!   fsyncs (`fsync@openssh.com`), then closes and renames it into place
//!   (`posix-rename`, which replaces atomically): four round trips for a small object,
//!   where opendal's sftp service took a dozen and a second connection;
//! - the pack directories are listed and created many at once.
//!
//! Writes are durable before they are renamed into place where the server offers the fsync
//! extension (OpenSSH does; a server without it gets a warning, once); the rename itself is
//! not made durable: SFTP has no way to fsync a directory. A server that refuses to set
//! modes gets a warning, once, and its files keep the modes its umask gives. What a write
//! sends is acknowledged piece by piece (`sftp-server` answers a short write with a
//! failure), so no stat afterwards is needed to know that the server kept all of it.
//!
//! Logins use a key (the ssh agent, `~/.ssh/config` and the default keys, or the key file
//! in `STRATA_SSH_KEY`) and check the host key against `known_hosts` strictly: an unknown
//! host is an error, never silently trusted.

mod session;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::{StreamExt, TryStreamExt};
use openssh_sftp_client::file::File;
use openssh_sftp_client::metadata::Permissions;
use openssh_sftp_client::Error as SftpError;
use tokio::io::AsyncSeekExt;
use tracing::{debug, debug_span, warn, Instrument};

use self::session::{answered, error, Channel, Connector};
use crate::backend::{layout_dirs, object_path};
use crate::error::{ErrorKind, StorageError};
use crate::{temp_names, Backend, FileType, FreeSpace, Result};

/// Mode of every object written.
const FILE_MODE: u16 = 0o600;
/// Mode of every directory of a new repository.
const DIR_MODE: u16 = 0o700;
/// The size of one read or write request: what OpenSSH's `sftp-server` allows (its
/// `limits@openssh.com`); a server that allows less gets more requests per piece.
const PIECE: u64 = 255 << 10;
/// Requests for pieces of one file kept in flight.
const PIECES_IN_FLIGHT: usize = 32;
/// Directories listed or created at once.
const DIRS_IN_FLIGHT: usize = 64;
/// How long one request (a whole read or write included) may take before the channel
/// counts as dead: a large pack over a slow link gets its time.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(900);

/// A repository in a directory of an SFTP server.
#[derive(Debug)]
pub struct SftpBackend {
    location: String,
    /// The repository root on the server (absolute, no trailing `/`).
    root: String,
    conn: Connector,
    warned_no_fsync: AtomicBool,
    warned_no_chmod: AtomicBool,
    warned_no_posix_rename: AtomicBool,
}

/// What a write found out about the server.
struct Written {
    /// Why the server refused to set the mode, if it did.
    chmod_refused: Option<String>,
    /// Whether it offers `fsync@openssh.com`.
    fsync: bool,
    /// Whether it offers `posix-rename@openssh.com`.
    posix_rename: bool,
}

/// An entry of a directory listing.
struct Entry {
    name: String,
    size: u64,
    is_dir: bool,
    /// Last written, by the server's clock (when it says).
    modified: Option<std::time::SystemTime>,
}

impl SftpBackend {
    /// The repository in `path` (absolute) on `host`, logging in as `user` (else ssh's
    /// default) with `key` (else ssh's defaults), over `channels` SFTP channels. Nothing
    /// is contacted until the first request.
    pub fn new(
        location: String,
        user: Option<&str>,
        host: &str,
        port: Option<u16>,
        path: &str,
        key: Option<String>,
        channels: usize,
    ) -> Self {
        let mut endpoint = String::from("ssh://");
        if let Some(u) = user {
            endpoint.push_str(u);
            endpoint.push('@');
        }
        endpoint.push_str(host);
        if let Some(p) = port {
            endpoint.push_str(&format!(":{p}"));
        }
        SftpBackend {
            location,
            root: path.trim_end_matches('/').to_string(),
            conn: Connector::new(endpoint, user.map(str::to_string), key, channels),
            warned_no_fsync: AtomicBool::new(false),
            warned_no_chmod: AtomicBool::new(false),
            warned_no_posix_rename: AtomicBool::new(false),
        }
    }

    /// The path on the server of `rel` (below the root).
    fn full(&self, rel: &str) -> PathBuf {
        let rel = rel.trim_matches('/');
        if rel.is_empty() {
            PathBuf::from(&self.root)
        } else {
            PathBuf::from(format!("{}/{rel}", self.root))
        }
    }

    fn warn_once(&self, flag: &AtomicBool, what: &str) {
        if !flag.swap(true, Ordering::Relaxed) {
            warn!("the SFTP server {} {what}", self.conn.endpoint());
        }
    }

    /// Runs `work` on a channel, with the request timeout; a failed transport makes the
    /// next request use a new connection.
    async fn on_channel<T, F, Fut>(&self, op: &'static str, path: &str, work: F) -> Result<T>
    where
        F: FnOnce(Channel) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, SftpError>>,
    {
        let channel = self.conn.channel(op, path).await?;
        match tokio::time::timeout(REQUEST_TIMEOUT, work(channel.clone())).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => {
                self.conn.failed(&channel, &e).await;
                Err(error(op, path, &e))
            }
            Err(_) => {
                self.conn.forget(&channel).await;
                let msg = format!(
                    "the SFTP server did not answer within {} minutes",
                    REQUEST_TIMEOUT.as_secs() / 60
                );
                Err(StorageError::new(ErrorKind::Transient, op, path, msg))
            }
        }
    }

    /// Reads `length` bytes at `offset` of the file at `full`, or up to its end if
    /// `length` is `None`. A file that ends before is an error.
    async fn read_at(
        &self,
        op: &'static str,
        rel: &str,
        offset: u64,
        length: Option<u64>,
    ) -> Result<Bytes> {
        let full = self.full(rel);
        let past_end = |got: usize| {
            let len = length.map(|l| l.to_string()).unwrap_or_default();
            let msg = format!("range {offset}+{len} is beyond the end (short read: {got} bytes)");
            StorageError::other(op, rel, msg)
        };
        let read = self
            .on_channel(op, rel, |ch| async move {
                let file = ch.sftp.open(&full).await?;
                // A whole object: its first piece and its size are asked for together, so
                // that a small one (a key, an index file) takes one round trip after the open.
                let (mut head, offset, length) = match length {
                    Some(l) => (BytesMut::new(), offset, l),
                    None => {
                        let (mut f, mut g) = (file.clone(), file.clone());
                        let (first, meta) =
                            tokio::join!(f.read(PIECE as u32, BytesMut::new()), g.metadata());
                        let mut first = first?.unwrap_or_default();
                        let got = first.len() as u64;
                        match meta?.len() {
                            Some(size) => (first, got, size.max(got) - got),
                            None => {
                                // No size given: the rest piece by piece, to its end.
                                loop {
                                    let at = first.len() as u64;
                                    let piece = read_piece(&mut f, at, PIECE).await?;
                                    first.extend_from_slice(&piece);
                                    if (piece.len() as u64) < PIECE {
                                        break;
                                    }
                                }
                                let got = first.len() as u64;
                                (first, got, 0)
                            }
                        }
                    }
                };
                let pieces = split(offset, length, PIECE);
                let parts: Vec<BytesMut> = futures::stream::iter(pieces)
                    .map(|(at, len)| {
                        let mut f = file.clone();
                        async move { read_piece(&mut f, at, len).await }
                    })
                    .buffered(PIECES_IN_FLIGHT)
                    .try_collect()
                    .await?;
                // The last handle's drop sends the close; its answer is not waited for.
                drop(file);
                let wanted = head.len() as u64 + length;
                head.reserve(parts.iter().map(BytesMut::len).sum());
                for part in parts {
                    head.extend_from_slice(&part);
                }
                Ok((head.freeze(), wanted))
            })
            .await?;
        let (bytes, wanted) = read;
        if (bytes.len() as u64) < wanted {
            return Err(past_end(bytes.len()));
        }
        Ok(bytes)
    }

    /// Lists the directory `rel` (every entry, hidden ones too, not `.` or `..`); a missing
    /// directory is empty.
    async fn list_dir(&self, rel: &str) -> Result<Vec<Entry>> {
        let full = self.full(rel);
        let listed = self
            .on_channel("list", rel, |ch| async move {
                let dir = ch.sftp.fs().open_dir(&full).await?;
                let entries: Vec<_> = dir.read_dir().try_collect().await?;
                Ok(entries)
            })
            .await;
        let entries = match listed {
            Ok(entries) => entries,
            Err(e) if e.kind == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        Ok(entries
            .into_iter()
            .filter_map(|e| {
                let name = e.filename().to_str()?.to_string();
                if name == "." || name == ".." {
                    return None;
                }
                let meta = e.metadata();
                let is_dir = meta.file_type().is_some_and(|t| t.is_dir());
                Some(Entry {
                    name,
                    size: meta.len().unwrap_or(0),
                    is_dir,
                    modified: meta
                        .modified()
                        .map(|t| std::time::UNIX_EPOCH + t.as_duration()),
                })
            })
            .collect())
    }

    /// Every file in `rel` and in its subdirectories (one level: `data/xx/`), the
    /// subdirectories listed many at once; with the directory each is in.
    async fn list_subdirs(&self, rel: &str) -> Result<Vec<(String, Entry)>> {
        let (subdirs, top): (Vec<Entry>, Vec<Entry>) = self
            .list_dir(rel)
            .await?
            .into_iter()
            .partition(|e| e.is_dir);
        let listed: Vec<(String, Vec<Entry>)> = futures::stream::iter(subdirs)
            .map(|sub| async move {
                let dir = format!("{rel}/{}", sub.name);
                let entries = self.list_dir(&dir).await?;
                Ok::<_, StorageError>((dir, entries))
            })
            .buffer_unordered(DIRS_IN_FLIGHT)
            .try_collect()
            .await?;
        let files = std::iter::once((rel.to_string(), top))
            .chain(listed)
            .flat_map(|(dir, entries)| {
                entries
                    .into_iter()
                    .filter(|e| !e.is_dir)
                    .map(move |e| (dir.clone(), e))
            });
        Ok(files.collect())
    }

    /// Writes `data` to `path` through a temporary name (see the module docs). A directory
    /// of the layout that is missing (a repository copied without its empty directories)
    /// is made, and the write tried again.
    async fn write_object(&self, path: &str, data: Bytes) -> Result<()> {
        const OP: &str = "write";
        let (dir, _) = path.rsplit_once('/').unwrap_or(("", path));
        let tmp = if dir.is_empty() {
            temp_names::rename_write()
        } else {
            format!("{dir}/{}", temp_names::rename_write())
        };
        let mut outcome = self.write_through(path, &tmp, &data).await;
        if matches!(&outcome, Err(e) if e.kind == ErrorKind::NotFound) && !dir.is_empty() {
            let _ = self.remove(&tmp).await;
            if self.make_dir(dir).await.is_ok() {
                outcome = self.write_through(path, &tmp, &data).await;
            }
        }
        match outcome {
            Ok(done) => {
                if let Some(e) = done.chmod_refused {
                    self.warn_once(
                        &self.warned_no_chmod,
                        &format!(
                            "refuses to set modes ({e}): files keep the modes its umask gives"
                        ),
                    );
                }
                if !done.fsync {
                    self.warn_once(
                        &self.warned_no_fsync,
                        "does not offer fsync@openssh.com: writes are not made durable before \
                         they are renamed into place",
                    );
                }
                if !done.posix_rename {
                    self.warn_once(
                        &self.warned_no_posix_rename,
                        "does not offer posix-rename@openssh.com: an object that exists is not \
                         replaced",
                    );
                }
                Ok(())
            }
            Err(e) => {
                // What a failed write left is removed if it can be (else prune does).
                let _ = self.remove(&tmp).await;
                Err(StorageError {
                    op: OP,
                    path: path.to_string(),
                    ..e
                })
            }
        }
    }

    /// One try of [`SftpBackend::write_object`]: `data` written to `tmp`, made 0600 and
    /// durable, and renamed to `path`.
    async fn write_through(&self, path: &str, tmp: &str, data: &Bytes) -> Result<Written> {
        let (tmp_full, full) = (self.full(tmp), self.full(path));
        self.on_channel("write", path, |ch| async move {
            let mut file = ch
                .sftp
                .options()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp_full)
                .await?;
            let pieces = split(0, data.len() as u64, PIECE);
            let mut mode = file.clone();
            let chmod = async move { mode.set_permissions(Permissions::from(FILE_MODE)).await };
            let writes = futures::stream::iter(pieces)
                .map(|(at, len)| {
                    let mut f = file.clone();
                    let bytes = data.slice(at as usize..(at + len) as usize);
                    async move {
                        f.seek(std::io::SeekFrom::Start(at))
                            .await
                            .map_err(SftpError::from)?;
                        f.write_all(&bytes).await
                    }
                })
                .buffer_unordered(PIECES_IN_FLIGHT)
                .try_collect::<Vec<()>>();
            let (chmod, writes) = tokio::join!(chmod, writes);
            writes?;
            let chmod_refused = match chmod {
                Ok(()) => None,
                Err(e) if answered(&e) => Some(e.to_string()),
                Err(e) => return Err(e),
            };
            let fsync = ch.sftp.support_fsync();
            let mut fs = ch.sftp.fs();
            let renamed = if fsync {
                file.sync_all().await?;
                // The file is durable: its close and its rename go together.
                let (closed, renamed) = tokio::join!(file.close(), fs.rename(&tmp_full, &full));
                closed?;
                renamed
            } else {
                // Without an fsync, errors the server holds back until the close (a full
                // disk on NFS) must be known before the object gets its name.
                file.close().await?;
                fs.rename(&tmp_full, &full).await
            };
            let posix_rename = ch.sftp.support_posix_rename();
            match renamed {
                Ok(()) => {}
                // A plain rename does not replace: an object of this name and size is
                // there already, and names are content addressed.
                Err(e) if answered(&e) && !posix_rename => match fs.metadata(&full).await {
                    Ok(meta) if meta.len() == Some(data.len() as u64) => {
                        let _ = fs.remove_file(&tmp_full).await;
                    }
                    _ => return Err(e),
                },
                Err(e) => return Err(e),
            }
            Ok(Written {
                chmod_refused,
                fsync,
                posix_rename,
            })
        })
        .await
    }

    /// Removes the file `rel`; a missing one is no error.
    async fn remove(&self, rel: &str) -> Result<()> {
        let full = self.full(rel);
        match self
            .on_channel("delete", rel, |ch| async move {
                ch.sftp.fs().remove_file(&full).await
            })
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Makes the directory `rel` (mode 0700), and its parents as far as need be; one that
    /// exists is no error.
    async fn make_dir(&self, rel: &str) -> Result<()> {
        let mut missing = Vec::new();
        let mut at = self.full(rel);
        // Up from the directory to the first that exists.
        loop {
            let probe = at.clone();
            let exists = self
                .on_channel("create_layout", rel, |ch| async move {
                    match ch.sftp.fs().metadata(&probe).await {
                        Ok(_) => Ok(true),
                        Err(e) if is_not_found(&e) => Ok(false),
                        Err(e) => Err(e),
                    }
                })
                .await?;
            if exists {
                break;
            }
            missing.push(at.clone());
            match at.parent() {
                Some(parent) if parent != Path::new("/") && parent != Path::new("") => {
                    at = parent.to_path_buf();
                }
                _ => break,
            }
        }
        for dir in missing.into_iter().rev() {
            self.mkdir(rel, dir).await?;
        }
        Ok(())
    }

    /// One `mkdir` of `full`; a directory that is there already (made meanwhile, or before)
    /// is no error. One the user may not make is an error that names it and the host.
    async fn mkdir(&self, rel: &str, full: PathBuf) -> Result<()> {
        let shown = full.clone();
        let made = self
            .on_channel("create_layout", rel, |ch| async move {
                let mut fs = ch.sftp.fs();
                match fs
                    .dir_builder()
                    .permissions(Permissions::from(DIR_MODE))
                    .create(&full)
                    .await
                {
                    Ok(()) => Ok(()),
                    Err(e) if answered(&e) => match fs.metadata(&full).await {
                        Ok(meta) if meta.file_type().is_some_and(|t| t.is_dir()) => Ok(()),
                        _ => Err(e),
                    },
                    Err(e) => Err(e),
                }
            })
            .await;
        match made {
            Err(e) if e.kind == ErrorKind::PermissionDenied => {
                let parent = shown.parent().unwrap_or(Path::new("/"));
                Err(StorageError::new(
                    ErrorKind::PermissionDenied,
                    "create_layout",
                    rel,
                    format!(
                        "cannot create {} on {}: permission denied (the SFTP user may not \
                         write in {}: choose a path it owns, or create the directory for it)",
                        shown.display(),
                        self.host(),
                        parent.display()
                    ),
                ))
            }
            other => other,
        }
    }

    /// The server's host name, for messages.
    fn host(&self) -> &str {
        session::host_port(self.conn.endpoint()).0
    }

    /// Gives the directories `dirs` mode 0700; a server that refuses modes gets a warning.
    async fn restrict_dirs(&self, dirs: Vec<String>) -> Result<()> {
        let refused = futures::stream::iter(dirs)
            .map(|dir| async move {
                let full = self.full(&dir);
                let set = self
                    .on_channel("create_layout", &dir, |ch| async move {
                        match ch
                            .sftp
                            .fs()
                            .set_permissions(&full, Permissions::from(DIR_MODE))
                            .await
                        {
                            Ok(()) => Ok(None),
                            Err(e) if answered(&e) && !is_not_found(&e) => Ok(Some(e.to_string())),
                            Err(e) => Err(e),
                        }
                    })
                    .await?;
                Ok::<_, StorageError>(set)
            })
            .buffer_unordered(DIRS_IN_FLIGHT)
            .try_collect::<Vec<Option<String>>>()
            .await?;
        if let Some(e) = refused.into_iter().flatten().next() {
            self.warn_once(
                &self.warned_no_chmod,
                &format!("refuses to set modes ({e}): directories keep the modes its umask gives"),
            );
        }
        Ok(())
    }
}

/// Whether the server said that there is no such file.
fn is_not_found(e: &SftpError) -> bool {
    error("", "", e).kind == ErrorKind::NotFound
}

/// `(offset, length)` pieces of at most `piece` bytes covering `length` bytes at `offset`
/// (made as they are asked for: a huge `length` from a damaged index costs nothing before
/// the read that fails).
fn split(offset: u64, length: u64, piece: u64) -> impl Iterator<Item = (u64, u64)> {
    let piece = piece.max(1);
    (0..length.div_ceil(piece)).map(move |i| {
        let at = i * piece;
        (offset + at, piece.min(length - at))
    })
}

/// Reads `len` bytes at `at` of `file` (a clone of an open file); fewer only at its end.
async fn read_piece(
    file: &mut File,
    at: u64,
    len: u64,
) -> std::result::Result<BytesMut, SftpError> {
    let mut out = BytesMut::with_capacity(len.min(PIECE) as usize);
    while (out.len() as u64) < len {
        // A server may answer with less than asked for before the end (and the file's
        // offset moves by what was asked for): each read says where it starts.
        file.seek(std::io::SeekFrom::Start(at + out.len() as u64))
            .await
            .map_err(SftpError::from)?;
        let want = (len - out.len() as u64).min(u64::from(u32::MAX)) as u32;
        match file.read(want, BytesMut::new()).await? {
            Some(bytes) if !bytes.is_empty() => out.extend_from_slice(&bytes),
            _ => break,
        }
    }
    Ok(out)
}

fn span(op: &'static str, path: &str) -> tracing::Span {
    debug_span!("storage", op, path)
}

#[async_trait]
impl Backend for SftpBackend {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn is_remote(&self) -> bool {
        true
    }

    async fn read(&self, ft: FileType, name: &str) -> Result<Bytes> {
        let path = object_path("read", ft, name)?;
        async {
            let bytes = self.read_at("read", &path, 0, None).await?;
            debug!(bytes = bytes.len(), "read done");
            Ok(bytes)
        }
        .instrument(span("read", &path))
        .await
    }

    async fn read_range(
        &self,
        ft: FileType,
        name: &str,
        offset: u64,
        length: u64,
    ) -> Result<Bytes> {
        const OP: &str = "read_range";
        let path = object_path(OP, ft, name)?;
        async {
            if offset.checked_add(length).is_none() {
                let msg = format!("range {offset}+{length} overflows");
                return Err(StorageError::other(OP, &path, msg));
            }
            if length == 0 {
                let size = self.stat(ft, name).await?.ok_or_else(|| {
                    StorageError::new(ErrorKind::NotFound, OP, &path, "no such file")
                })?;
                if offset > size {
                    let msg = format!("range {offset}+0 is beyond the end ({size} bytes)");
                    return Err(StorageError::other(OP, &path, msg));
                }
                return Ok(Bytes::new());
            }
            let bytes = self.read_at(OP, &path, offset, Some(length)).await?;
            debug!(offset, bytes = length, "read_range done");
            Ok(bytes)
        }
        .instrument(span(OP, &path))
        .await
    }

    async fn write(&self, ft: FileType, name: &str, data: Bytes) -> Result<()> {
        let path = object_path("write", ft, name)?;
        async {
            let bytes = data.len();
            self.write_object(&path, data).await?;
            debug!(bytes, "write done");
            Ok(())
        }
        .instrument(span("write", &path))
        .await
    }

    async fn write_file(&self, ft: FileType, name: &str, file: &Path) -> Result<()> {
        // The file is removed only once the upload succeeded, so that a transient failure
        // can be retried with it (the caller removes it after a final failure).
        let path = file.to_path_buf();
        let data = tokio::task::spawn_blocking(move || std::fs::read(path))
            .await
            .map_err(|e| StorageError::other("write", name, e.to_string()))?
            .map_err(|e| StorageError::from_io("write", name, e))?;
        self.write(ft, name, Bytes::from(data)).await?;
        let _ = std::fs::remove_file(file);
        Ok(())
    }

    async fn list(&self, ft: FileType) -> Result<Vec<(String, u64)>> {
        if ft == FileType::Config {
            let size = self.stat(ft, "").await?;
            return Ok(size
                .map(|s| ("config".to_string(), s))
                .into_iter()
                .collect());
        }
        let dir = ft.dir();
        async {
            let entries: Vec<Entry> = if ft == FileType::Pack {
                self.list_subdirs(dir)
                    .await?
                    .into_iter()
                    .map(|(_, e)| e)
                    .collect()
            } else {
                self.list_dir(dir).await?
            };
            let mut objects: Vec<(String, u64)> = entries
                .into_iter()
                .filter(|e| !e.is_dir && !temp_names::is_hidden(&e.name))
                .map(|e| (e.name, e.size))
                .collect();
            objects.sort_unstable();
            debug!(objects = objects.len(), "list done");
            Ok(objects)
        }
        .instrument(span("list", dir))
        .await
    }

    async fn list_each(
        &self,
        ft: FileType,
        each: &mut (dyn for<'n> FnMut(&'n str, u64) + Send),
    ) -> Result<()> {
        if ft != FileType::Pack {
            for (name, size) in self.list(ft).await? {
                each(&name, size);
            }
            return Ok(());
        }
        // Packs a subdirectory at a time: what is held is the subdirectories in flight.
        let dir = ft.dir();
        async {
            let mut pass = |entries: Vec<Entry>| {
                for e in entries {
                    if !e.is_dir && !temp_names::is_hidden(&e.name) {
                        each(&e.name, e.size);
                    }
                }
            };
            let (subdirs, top): (Vec<Entry>, Vec<Entry>) = self
                .list_dir(dir)
                .await?
                .into_iter()
                .partition(|e| e.is_dir);
            pass(top);
            let mut listed = futures::stream::iter(subdirs)
                .map(|sub| async move { self.list_dir(&format!("{dir}/{}", sub.name)).await })
                .buffer_unordered(DIRS_IN_FLIGHT);
            while let Some(entries) = listed.try_next().await? {
                pass(entries);
            }
            debug!("list done");
            Ok(())
        }
        .instrument(span("list", dir))
        .await
    }

    async fn delete(&self, ft: FileType, name: &str) -> Result<()> {
        let path = object_path("delete", ft, name)?;
        async {
            self.remove(&path).await?;
            debug!("delete done");
            Ok(())
        }
        .instrument(span("delete", &path))
        .await
    }

    async fn stat(&self, ft: FileType, name: &str) -> Result<Option<u64>> {
        let path = object_path("stat", ft, name)?;
        async {
            let full = self.full(&path);
            let size = match self
                .on_channel("stat", &path, |ch| async move {
                    ch.sftp.fs().metadata(&full).await
                })
                .await
            {
                Ok(meta) => Some(meta.len().unwrap_or(0)),
                Err(e) if e.kind == ErrorKind::NotFound => None,
                Err(e) => return Err(e),
            };
            debug!(bytes = size, "stat done");
            Ok(size)
        }
        .instrument(span("stat", &path))
        .await
    }

    async fn free_space(&self) -> Result<Option<FreeSpace>> {
        // The `statvfs@openssh.com` extension (OpenSSH and most servers); None without it.
        let root = self.full("");
        let st = self
            .on_channel("free_space", "", |ch| async move {
                if !ch.sftp.support_statvfs() {
                    return Ok(None);
                }
                ch.sftp.fs().statvfs(&root).await.map(Some)
            })
            .await?;
        Ok(st.map(|st| FreeSpace::from_blocks(st.frsize, st.bsize, st.blocks, st.bavail)))
    }

    async fn create_layout(&self) -> Result<()> {
        async {
            self.make_dir("").await?;
            let dirs = layout_dirs();
            let (top, packs): (Vec<String>, Vec<String>) =
                dirs.into_iter().partition(|d| !d.contains('/'));
            for level in [&top, &packs] {
                futures::stream::iter(level.clone())
                    .map(|dir| async move { self.mkdir(&dir, self.full(&dir)).await })
                    .buffer_unordered(DIRS_IN_FLIGHT)
                    .try_collect::<Vec<()>>()
                    .await?;
            }
            let every: Vec<String> = std::iter::once(String::new())
                .chain(top)
                .chain(packs)
                .collect();
            self.restrict_dirs(every).await?;
            debug!("create_layout done");
            Ok(())
        }
        .instrument(span("create_layout", ""))
        .await
    }

    async fn remove_leftovers(&self, min_age: std::time::Duration) -> Result<u64> {
        const OP: &str = "remove_leftovers";
        async {
            let mut found: Vec<String> = Vec::new();
            // Not `locks/`: the caller's own lock refresher may be writing there right now.
            for dir in ["", "keys", "index", "snapshots", "evidence"] {
                for e in self.list_dir(dir).await? {
                    if !e.is_dir
                        && temp_names::is_leftover(&e.name)
                        && temp_names::old_enough(e.modified, min_age)
                    {
                        found.push(if dir.is_empty() {
                            e.name
                        } else {
                            format!("{dir}/{}", e.name)
                        });
                    }
                }
            }
            // `data/` and its subdirectories, each looked through as it is listed (not every
            // pack's entry held at once).
            let leftover = |e: &Entry| {
                !e.is_dir
                    && temp_names::is_leftover(&e.name)
                    && temp_names::old_enough(e.modified, min_age)
            };
            let (subdirs, top): (Vec<Entry>, Vec<Entry>) = self
                .list_dir("data")
                .await?
                .into_iter()
                .partition(|e| e.is_dir);
            found.extend(
                top.iter()
                    .filter(|e| leftover(e))
                    .map(|e| format!("data/{}", e.name)),
            );
            let mut listed = futures::stream::iter(subdirs)
                .map(|sub| async move {
                    let dir = format!("data/{}", sub.name);
                    let entries = self.list_dir(&dir).await?;
                    Ok::<_, StorageError>((dir, entries))
                })
                .buffer_unordered(DIRS_IN_FLIGHT);
            while let Some((dir, entries)) = listed.try_next().await? {
                found.extend(
                    entries
                        .iter()
                        .filter(|e| leftover(e))
                        .map(|e| format!("{dir}/{}", e.name)),
                );
            }
            // One that cannot be removed does not keep the others.
            let outcomes: Vec<Result<()>> = futures::stream::iter(found)
                .map(|rel| async move { self.remove(&rel).await })
                .buffer_unordered(DIRS_IN_FLIGHT)
                .collect()
                .await;
            let removed = outcomes.iter().filter(|r| r.is_ok()).count() as u64;
            debug!(removed, "remove_leftovers done");
            match outcomes.into_iter().find_map(|r| r.err()) {
                Some(e) => Err(StorageError { op: OP, ..e }),
                None => Ok(removed),
            }
        }
        .instrument(span(OP, ""))
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_cover_the_range_exactly() {
        let pieces = |o, l, p| split(o, l, p).collect::<Vec<_>>();
        assert_eq!(pieces(10, 0, 4), vec![]);
        assert_eq!(pieces(10, 4, 4), vec![(10, 4)]);
        assert_eq!(pieces(10, 9, 4), vec![(10, 4), (14, 4), (18, 1)]);
        assert_eq!(pieces(0, 1, 1 << 20), vec![(0, 1)]);
        // Lazily: a length no memory could hold costs nothing up front.
        assert_eq!(split(0, u64::MAX / 2, 1).take(2).count(), 2);
    }
}
