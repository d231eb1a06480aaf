//! API errors: an HTTP status and the Calls `errorCode` / `errorDescription`.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// A request-level failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {code}: {description}")]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// snake_case code from calls-api.md.
    pub code: &'static str,
    /// Human text.
    pub description: String,
}

impl ApiError {
    pub(crate) fn new(
        status: StatusCode,
        code: &'static str,
        description: impl Into<String>,
    ) -> Self {
        ApiError {
            status,
            code,
            description: description.into(),
        }
    }

    /// 400: the body is not JSON of the right shape.
    pub fn decoding(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "decoding_error", description)
    }

    /// 401: missing or wrong bearer token.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Missing or invalid bearer token",
        )
    }

    /// 404: unknown app or route.
    pub fn not_found(description: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", description)
    }

    /// 406: invalid parameters or limits.
    pub fn invalid_params(description: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_ACCEPTABLE, "invalid_params", description)
    }

    /// 406: an unusable SDP, or a negotiation out of turn.
    pub fn invalid_session_description(description: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_ACCEPTABLE,
            "invalid_session_description",
            description,
        )
    }

    /// 410: unknown or expired session.
    pub fn session_gone() -> Self {
        Self::new(
            StatusCode::GONE,
            "session_error",
            "Session not found or expired",
        )
    }

    /// 410: the session's transport failed for good (e.g. its DTLS
    /// handshake); the client must start a new session.
    pub fn session_failed(reason: &str) -> Self {
        Self::new(
            StatusCode::GONE,
            "session_error",
            format!("Session transport failed: {reason}"),
        )
    }

    /// 413: body too large.
    pub fn payload_too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "Request body too large",
        )
    }

    /// 408: the request body did not arrive in time (our rule: the
    /// contract has no code for it).
    pub fn request_timeout() -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "The request body did not arrive in time",
        )
    }

    /// Whether the connection must end with this answer: the rest of the
    /// request's body was not read.
    fn ends_connection(&self) -> bool {
        matches!(
            self.status,
            StatusCode::PAYLOAD_TOO_LARGE | StatusCode::REQUEST_TIMEOUT
        )
    }

    /// 429: more than the per-session request rate.
    pub fn rate_limited() -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "Too many requests on this session",
        )
    }

    /// 503: a cap of the server or the app was reached; retry later.
    pub fn temporarily_unavailable(description: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable_error",
            description,
        )
    }

    /// 503: the cluster directory (Redis) or the node that owns what the
    /// call needs cannot be reached; retry later (docs/cluster.md).
    pub fn cluster_unavailable(description: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "cluster_unavailable",
            description,
        )
    }

    /// 500.
    pub fn internal(description: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            description,
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "errorCode": self.code,
            "errorDescription": self.description,
        });
        let close = self.ends_connection();
        let mut response = super::routes::json(self.status, &body);
        if close {
            response.headers_mut().insert(
                header::CONNECTION,
                header::HeaderValue::from_static("close"),
            );
        }
        response
    }
}
