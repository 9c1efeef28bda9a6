//! The engine, the catalog and the database tools are synchronous (the engine drives its
//! own I/O on the runtime handle it was given): handlers call them here, on tokio's
//! blocking threads, never inside the server's async tasks.

use crate::error::ApiError;

/// Runs `f` on a blocking thread; a panic in it is an `internal` error, never a crash of
/// the server.
pub async fn blocking<T, F>(f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("a request's work failed: {e}");
            Err(ApiError::internal(
                "the request's work failed; see the server's log",
            ))
        }
    }
}
