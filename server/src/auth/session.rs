//! Browser sessions: a login with a user's password (argon2id hash in `[server.users]`)
//! gives a session cookie (HttpOnly, SameSite=Strict, Secure under TLS) that expires after
//! `[server] session-ttl`, and a CSRF token every state-changing request of that session
//! must carry. Logins are rate-limited per address and per user.
//!
//! CONTRACT (step 0): [`Sessions::principal`] is what the [`super::Principal`] extractor
//! asks; the rest is to be built (login and logout routes, CSRF, rate limits).

use axum::http::request::Parts;

use super::Principal;
use crate::error::ApiError;
use crate::state::AppState;

/// The sessions of the running server (in memory: a restart logs everybody out).
#[derive(Debug, Default)]
pub struct Sessions {}

impl Sessions {
    /// The session the request's cookie names, if it is live; an expired or unknown one is
    /// no caller (401). A state-changing request (not GET/HEAD) of a session must carry its
    /// CSRF token, else 403.
    pub fn principal(
        &self,
        _parts: &Parts,
        _state: &AppState,
    ) -> Result<Option<Principal>, ApiError> {
        Ok(None)
    }
}
