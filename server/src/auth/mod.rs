//! Who is asking, and what they may do.
//!
//! A request names its caller by `Authorization: Bearer TOKEN` (an API token, see
//! [`tokens`]) or by the session cookie a browser got at login (see [`session`]). Roles,
//! weakest first: a **viewer** reads and browses; an **operator** also downloads, runs
//! backups and restore tests, and restores to new places; an **admin** also restores in
//! place, forgets and holds.

pub mod limits;
pub mod login;
pub mod session;
pub mod tokens;
pub mod users;

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;

use crate::error::ApiError;
use crate::state::AppState;

/// A role, weakest first (so `role >= Role::Operator` reads as it should).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Operator,
    Admin,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    pub fn parse(name: &str) -> Option<Role> {
        [Role::Viewer, Role::Operator, Role::Admin]
            .into_iter()
            .find(|r| r.name() == name)
    }
}

/// How the caller proved who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    Token,
    /// A browser session (its CSRF token guards every state-changing request).
    Session {
        csrf: String,
    },
}

/// The caller of a request: a user (by session) or a token (by name), with its role and
/// address. Extracting it fails with 401 when the request names nobody.
#[derive(Debug, Clone)]
pub struct Principal {
    pub name: String,
    pub role: Role,
    pub via: Via,
    pub address: SocketAddr,
}

impl Principal {
    /// `Ok` when the caller has at least `role`, else 403 naming what `action` needs.
    pub fn require(&self, role: Role, action: &str) -> Result<(), ApiError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "{action} needs the {} role; {} is {}",
                role.name(),
                self.name,
                self.role.name()
            )))
        }
    }
}

/// The client's address (the socket's peer; a reverse proxy's own address behind one).
pub fn peer(parts: &Parts) -> SocketAddr {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)))
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let address = peer(parts);
        if let Some(value) = parts.headers.get(header::AUTHORIZATION) {
            let text = value.to_str().map_err(|_| ApiError::unauthorized())?;
            let Some(token) = text.strip_prefix("Bearer ") else {
                return Err(ApiError::unauthorized());
            };
            let Some((name, role)) = state.tokens().verify(token.trim()) else {
                return Err(ApiError::unauthorized());
            };
            return Ok(Principal {
                name,
                role,
                via: Via::Token,
                address,
            });
        }
        match state.sessions().principal(parts, state)? {
            Some(mut p) => {
                p.address = address;
                Ok(p)
            }
            None => Err(ApiError::unauthorized()),
        }
    }
}
