//! `strata serve`: the REST API under `/api/v1` and the web dashboard, over the projects of
//! `strata.toml` and everything the audit catalog records.
//!
//! # Layout
//! - [`state`]: what every handler shares ([`AppState`]): the config, the engine's runtime
//!   handle, the token store, the jobs; opening a repository by its name.
//! - [`auth`]: roles, the caller ([`Principal`], an extractor: a bearer token, or a session
//!   cookie), tokens stored hashed ([`auth::TokenStore`]).
//! - [`error`]: every failure as JSON with a stable `code` ([`ApiError`]).
//! - [`audit`]: every request that changes or downloads something, recorded in the catalog.
//! - [`blocking`]: the engine and the catalog are synchronous; handlers call them on tokio's
//!   blocking threads, never inside the server's own async tasks.
//! - `api/`: the REST endpoints, one module per area.
//! - `web/`: the dashboard's pages (askama templates in `server/templates/`).
//!
//! Nothing here is logic the CLI would need: that lives in `strata-app`.

pub mod api;
pub mod audit;
pub mod auth;
pub mod blocking;
pub mod error;
pub mod security;
pub mod state;
pub mod tls;
pub mod web;

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::serve::ListenerExt;
use axum::Router;

pub use auth::{Principal, Role};
pub use error::ApiError;
pub use state::AppState;

/// How `strata serve` listens.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    /// Certificate chain and private key (PEM) for HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Allow plain HTTP on an address other than loopback.
    pub insecure_http: bool,
}

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0}")]
    Refused(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

/// Whether `opts` may listen as asked: loopback always; any other address only with TLS or
/// `--insecure-http`.
pub fn check_listen(opts: &ServeOptions) -> Result<(), ServeError> {
    if opts.listen.ip().is_loopback() || opts.tls.is_some() || opts.insecure_http {
        return Ok(());
    }
    Err(ServeError::Refused(format!(
        "{} is not a loopback address: give --tls-cert and --tls-key, or --insecure-http \
         behind a reverse proxy that terminates TLS",
        opts.listen
    )))
}

/// The whole application: the API under `/api/v1`, the dashboard everywhere else.
pub fn router(state: AppState) -> Router {
    let app = Router::new()
        .nest("/api/v1", api::routes())
        .merge(web::routes())
        .fallback(web::not_found);
    // Last, so that they wrap every route above: CSRF form fields, the body limit, the
    // security headers.
    security::layers(app, &state).with_state(state)
}

/// Serves until SIGINT or SIGTERM, on a runtime of its own.
pub fn serve(
    state_for: impl FnOnce(tokio::runtime::Handle) -> AppState,
    opts: ServeOptions,
) -> Result<(), ServeError> {
    check_listen(&opts)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("strata-serve")
        .build()
        .map_err(|e| ServeError::Io {
            what: "starting the server's runtime".into(),
            source: e,
        })?;
    let state = state_for(rt.handle().clone());
    state.sessions().set_secure(opts.tls.is_some());
    let jobs = state.clone();
    let served = rt.block_on(async move {
        // A certificate or key that cannot be used is an error before anything listens.
        let acceptor = match &opts.tls {
            Some((cert, key)) => Some(tls::acceptor(cert, key)?),
            None => None,
        };
        let listener = tokio::net::TcpListener::bind(opts.listen)
            .await
            .map_err(|e| ServeError::Io {
                what: format!("listening on {}", opts.listen),
                source: e,
            })?;
        let addr = listener.local_addr().map_err(|e| ServeError::Io {
            what: "the listening address".into(),
            source: e,
        })?;
        let scheme = if acceptor.is_some() { "https" } else { "http" };
        // Scripts and tests read this line to learn the port (`--listen 127.0.0.1:0`).
        println!("strata serve: listening on {scheme}://{addr}");
        let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
        let served = match acceptor {
            Some(acceptor) => {
                let listener =
                    tls::TlsListener::new(listener, acceptor).map_err(|e| ServeError::Io {
                        what: "the listening address".into(),
                        source: e,
                    })?;
                // tap_io: the way axum hands a custom listener's peer address to ConnectInfo.
                axum::serve(listener.tap_io(|_| {}), app)
                    .with_graceful_shutdown(first_signal(jobs.clone()))
                    .await
            }
            None => {
                axum::serve(listener, app)
                    .with_graceful_shutdown(first_signal(jobs.clone()))
                    .await
            }
        };
        served.map_err(|e| ServeError::Io {
            what: "serving".into(),
            source: e,
        })?;
        // Stopped listening; a backup or restore under way is let finish (stopped halfway,
        // it would have to be run again). A second signal ends the process at once
        // ([`first_signal`]).
        jobs.jobs().idle().await;
        Ok(())
    });
    // Whatever still runs on a blocking thread (a job stopped halfway) is not waited for.
    rt.shutdown_background();
    served
}

/// The first SIGINT or SIGTERM: the server stops listening and drains its connections;
/// jobs not yet started are refused (queued ones fail: "the server is stopping"), running
/// ones are let finish. From then on a second signal ends the process at once, even while
/// a long download or an event stream keeps the drain waiting.
async fn first_signal(state: AppState) {
    shutdown().await;
    state.jobs().close();
    let busy = state.jobs().active();
    if busy > 0 {
        eprintln!(
            "strata serve: stopping; waiting for {busy} job(s) to finish; send the signal \
             again to stop now"
        );
    }
    tokio::spawn(async {
        shutdown().await;
        eprintln!("strata serve: stopped at once (a job stopped halfway must be run again)");
        std::process::exit(1);
    });
}

async fn shutdown() {
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
