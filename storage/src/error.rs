use std::fmt;

/// Result of storage operations.
pub type Result<T> = std::result::Result<T, StorageError>;

/// What kind of failure a storage operation hit; callers match on this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The object (or the repository root) does not exist.
    NotFound,
    /// Access was refused.
    PermissionDenied,
    /// A failure that may go away when retried (network, timeouts, throttling).
    Transient,
    /// The repository root is not a directory (a file is in its way): no repository can be
    /// there.
    NotADirectory,
    /// Anything else (full disk, invalid configuration, unexpected response).
    Other,
}

/// A storage failure naming the operation and the object.
#[derive(Debug, thiserror::Error)]
pub struct StorageError {
    pub kind: ErrorKind,
    /// The operation that failed, e.g. "read".
    pub op: &'static str,
    /// The object path relative to the repository root (empty for whole-backend errors).
    pub path: String,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            ErrorKind::NotFound => "not found",
            ErrorKind::PermissionDenied => "permission denied",
            ErrorKind::Transient => "temporary failure",
            ErrorKind::NotADirectory => "not a directory",
            ErrorKind::Other => "failed",
        };
        if self.path.is_empty() {
            write!(f, "storage {}: {what}: {}", self.op, self.source)
        } else {
            write!(
                f,
                "storage {} of {}: {what}: {}",
                self.op, self.path, self.source
            )
        }
    }
}

impl StorageError {
    /// An error of `kind` for operation `op` on `path`, caused by `source`.
    pub fn new(
        kind: ErrorKind,
        op: &'static str,
        path: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        StorageError {
            kind,
            op,
            path: path.into(),
            source: source.into(),
        }
    }

    /// An `ErrorKind::Other` error with a plain message.
    pub fn other(op: &'static str, path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Other, op, path, message.into())
    }

    /// Wraps an I/O error, keeping its kind where it maps onto ours.
    pub fn from_io(op: &'static str, path: impl Into<String>, err: std::io::Error) -> Self {
        use std::io::ErrorKind as Io;
        let kind = match err.kind() {
            Io::NotFound => ErrorKind::NotFound,
            Io::PermissionDenied | Io::ReadOnlyFilesystem => ErrorKind::PermissionDenied,
            Io::Interrupted | Io::TimedOut | Io::WouldBlock => ErrorKind::Transient,
            _ => ErrorKind::Other,
        };
        Self::new(kind, op, path, err)
    }

    /// Wraps an opendal error, keeping its kind where it maps onto ours: not found,
    /// permission denied, temporary (retryable) or other.
    pub(crate) fn from_opendal(op: &'static str, path: &str, err: opendal::Error) -> Self {
        let kind = match err.kind() {
            opendal::ErrorKind::NotFound => ErrorKind::NotFound,
            opendal::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
            _ if err.is_temporary() => ErrorKind::Transient,
            _ => ErrorKind::Other,
        };
        Self::new(kind, op, path, err)
    }

    /// Whether this is a `NotFound` error.
    pub fn is_not_found(&self) -> bool {
        self.kind == ErrorKind::NotFound
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_op_path_and_cause() {
        let err = StorageError::other("write", "keys/ab", "disk full");
        assert_eq!(
            err.to_string(),
            "storage write of keys/ab: failed: disk full"
        );
        let err = StorageError::other("open", "", "unsupported repository URL x://y");
        assert_eq!(
            err.to_string(),
            "storage open: failed: unsupported repository URL x://y"
        );
    }

    #[test]
    fn io_kinds_map() {
        let io = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let err = StorageError::from_io("read", "config", io);
        assert_eq!(err.kind, ErrorKind::PermissionDenied);
        assert_eq!(
            err.to_string(),
            "storage read of config: permission denied: permission denied"
        );
        let io = std::io::Error::from(std::io::ErrorKind::NotFound);
        assert!(StorageError::from_io("read", "config", io).is_not_found());
        let io = std::io::Error::from(std::io::ErrorKind::TimedOut);
        let err = StorageError::from_io("read", "config", io);
        assert_eq!(err.kind, ErrorKind::Transient);
    }

    #[test]
    fn opendal_kinds_map() {
        let map = |e| StorageError::from_opendal("read", "keys/x", e);
        let e = opendal::Error::new(opendal::ErrorKind::NotFound, "gone");
        assert_eq!(map(e).kind, ErrorKind::NotFound);
        let e = opendal::Error::new(opendal::ErrorKind::PermissionDenied, "no");
        assert_eq!(map(e).kind, ErrorKind::PermissionDenied);
        let e = opendal::Error::new(opendal::ErrorKind::Unexpected, "503").set_temporary();
        assert_eq!(map(e).kind, ErrorKind::Transient);
        let e = opendal::Error::new(opendal::ErrorKind::Unexpected, "bad");
        let err = map(e);
        assert_eq!(err.kind, ErrorKind::Other);
        assert!(err
            .to_string()
            .starts_with("storage read of keys/x: failed: "));
    }
}
