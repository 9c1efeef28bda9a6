//! The backend for a location as a user gives it.

use std::sync::Arc;

use crate::location::Location;
use crate::remote::{env, RemoteOptions};
use crate::{Backend, OpendalBackend, Result, SftpBackend};

/// The backend for `location` (a plain path, `file:///abs/path`, `sftp://…`, `s3://…` or
/// `memory://`, see [`crate::location`]), with options for remote services (which override
/// the environment); `connections`: how many requests a remote backend is used for at once
/// (SFTP opens that many channels over its one connection). Nothing remote is contacted
/// yet. Other URLs are refused with an `ErrorKind::Other` error.
pub fn open(location: &str, opts: &RemoteOptions, connections: usize) -> Result<Arc<dyn Backend>> {
    match Location::parse(location)? {
        Location::Sftp {
            user,
            host,
            port,
            path,
        } => {
            let key = opts.ssh_key.clone().or_else(|| env("STRATA_SSH_KEY"));
            Ok(Arc::new(SftpBackend::new(
                location.to_string(),
                user.as_deref(),
                &host,
                port,
                &path,
                key,
                connections,
            )))
        }
        _ => Ok(Arc::new(OpendalBackend::from_location_with(
            location, opts,
        )?)),
    }
}
