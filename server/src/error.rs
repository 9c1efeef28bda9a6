//! Every failure of a request as JSON: `{"error": {"code": "...", "message": "..."}}` with
//! the status that goes with its code. Codes are a contract (`docs/api.md`); messages are
//! for people and hold no secret (app errors never do).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// A failed request.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    /// Stable: `unauthorized`, `forbidden`, `not_found`, `locked`, `conflict`, `invalid`,
    /// `bad_request`, `too_many_requests`, `payload_too_large`, `internal`, `unavailable`.
    pub code: &'static str,
    pub message: String,
    /// Headers the answer carries besides the JSON (`Content-Range` of a 416).
    pub headers: Vec<(axum::http::HeaderName, axum::http::HeaderValue)>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "log in, or send Authorization: Bearer TOKEN",
        )
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    pub fn locked(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "locked", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }
}

/// The largest request body accepted (1 MiB): the API takes small JSON and forms only.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// 413 `payload_too_large`.
pub fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("a request body may hold at most {BODY_LIMIT} bytes"),
    )
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'a str,
    message: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: Inner {
                code: self.code,
                message: &self.message,
            },
        };
        let mut resp = (self.status, axum::Json(body)).into_response();
        for (k, v) in &self.headers {
            resp.headers_mut().insert(k.clone(), v.clone());
        }
        resp
    }
}

/// An application error with the status its kind calls for: a repository another
/// operation holds is `locked` (409), what cannot be done as asked is `invalid` (422), a
/// missing snapshot or file `not_found`, a storage or database failure `unavailable`.
impl From<strata_app::AppError> for ApiError {
    fn from(e: strata_app::AppError) -> Self {
        match e {
            strata_app::AppError::Engine(e) => e.into(),
            strata_app::AppError::Invalid(m) => ApiError::invalid(m),
            other => ApiError::unavailable(other.to_string()),
        }
    }
}

impl From<strata_engine::EngineError> for ApiError {
    fn from(e: strata_engine::EngineError) -> Self {
        use strata_engine::ErrorKind as K;
        let message = e.to_string();
        match e.kind() {
            K::NotFound => ApiError::not_found(message),
            K::Locked => ApiError::locked(message),
            K::Invalid => ApiError::invalid(message),
            K::Internal => ApiError::internal(message),
            _ => ApiError::unavailable(message),
        }
    }
}
