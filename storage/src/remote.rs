//! The settings of remote services, and the operator of S3 for [`crate::OpendalBackend`]
//! (SFTP has a backend of its own, [`crate::SftpBackend`]).
//!
//! Every request has timeouts (opendal's timeout layer); transient failures are retried
//! above, by [`crate::RetryBackend`], for every backend alike. Writes are atomic: S3
//! replaces an object with one PUT (or one completed multipart upload).
//!
//! S3 reads the standard AWS environment: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`
//! (and `AWS_SESSION_TOKEN`), `AWS_REGION` (default `us-east-1`) and `AWS_ENDPOINT_URL` for
//! S3-compatible servers, which are addressed path-style.

use std::time::Duration;

use opendal::layers::TimeoutLayer;
use opendal::services::S3;
use opendal::Operator;

use crate::error::StorageError;
use crate::Result;

fn finish(op: Operator) -> Operator {
    op.layer(
        TimeoutLayer::new()
            .with_timeout(Duration::from_secs(900))
            // A whole pack may go up in one request: allow a slow link its time.
            .with_io_timeout(Duration::from_secs(900)),
    )
}

/// Settings of remote services given on the command line; each overrides its environment
/// variable.
#[derive(Debug, Clone, Default)]
pub struct RemoteOptions {
    /// S3 endpoint URL (else `AWS_ENDPOINT_URL`).
    pub s3_endpoint: Option<String>,
    /// S3 region (else `AWS_REGION`, else `us-east-1`).
    pub s3_region: Option<String>,
    /// SSH private key file (else `STRATA_SSH_KEY`, else ssh's defaults).
    pub ssh_key: Option<String>,
}

pub(crate) fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The operator for `prefix` in an S3 bucket.
pub(crate) fn s3(bucket: &str, prefix: &str, opts: &RemoteOptions) -> Result<Operator> {
    opendal::install_default();
    let region = opts
        .s3_region
        .clone()
        .or_else(|| env("AWS_REGION"))
        .or_else(|| env("AWS_DEFAULT_REGION"))
        .unwrap_or_else(|| "us-east-1".to_string());
    let mut builder = S3::default()
        .bucket(bucket)
        .root(&format!("/{prefix}"))
        .region(&region)
        // No instance-metadata probing: outside EC2 it only delays the error.
        .disable_ec2_metadata();
    let endpoint = opts
        .s3_endpoint
        .clone()
        .or_else(|| env("AWS_ENDPOINT_URL_S3"))
        .or_else(|| env("AWS_ENDPOINT_URL"));
    if let Some(endpoint) = endpoint {
        builder = builder.endpoint(&endpoint);
    }
    if let (Some(id), Some(secret)) = (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
        builder = builder.access_key_id(&id).secret_access_key(&secret);
    }
    let op = Operator::new(builder).map_err(|e| StorageError::from_opendal("open", "", e))?;
    Ok(finish(op))
}
