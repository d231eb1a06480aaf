//! The Calls API's errors, without HTTP: a code from calls-api.md (which
//! fixes its HTTP status) and a human description. The control plane and
//! the cluster answer with them; `crate::api::error` turns one into a
//! response.

/// A `errorCode` of calls-api.md, and the status it is answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// 400 `decoding_error`: the body is not JSON of the right shape.
    Decoding,
    /// 401 `unauthorized`.
    Unauthorized,
    /// 404 `not_found`.
    NotFound,
    /// 406 `invalid_params`.
    InvalidParams,
    /// 406 `invalid_session_description`.
    InvalidSessionDescription,
    /// 408 `request_timeout` (ours: the contract has no code for it).
    RequestTimeout,
    /// 410 `session_error`.
    Session,
    /// 413 `payload_too_large`.
    PayloadTooLarge,
    /// 429 `rate_limited`.
    RateLimited,
    /// 500 `internal_error`.
    Internal,
    /// 503 `temporarily_unavailable_error`.
    TemporarilyUnavailable,
    /// 503 `cluster_unavailable` (ours, docs/cluster.md).
    ClusterUnavailable,
}

impl ErrorCode {
    /// The snake_case code of the JSON body.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Decoding => "decoding_error",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::NotFound => "not_found",
            ErrorCode::InvalidParams => "invalid_params",
            ErrorCode::InvalidSessionDescription => "invalid_session_description",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::Session => "session_error",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Internal => "internal_error",
            ErrorCode::TemporarilyUnavailable => "temporarily_unavailable_error",
            ErrorCode::ClusterUnavailable => "cluster_unavailable",
        }
    }

    /// The HTTP status the code is answered with.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::Decoding => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::NotFound => 404,
            ErrorCode::InvalidParams | ErrorCode::InvalidSessionDescription => 406,
            ErrorCode::RequestTimeout => 408,
            ErrorCode::Session => 410,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::RateLimited => 429,
            ErrorCode::Internal => 500,
            ErrorCode::TemporarilyUnavailable | ErrorCode::ClusterUnavailable => 503,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status(), self.as_str())
    }
}

/// A request-level failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {description}")]
pub struct CallsError {
    /// The code, and so the status.
    pub code: ErrorCode,
    /// Human text.
    pub description: String,
}

impl CallsError {
    /// An error of `code`.
    pub fn new(code: ErrorCode, description: impl Into<String>) -> Self {
        CallsError {
            code,
            description: description.into(),
        }
    }

    /// 400: the body is not JSON of the right shape.
    pub fn decoding(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::Decoding, description)
    }

    /// 401: missing or wrong bearer token.
    pub fn unauthorized() -> Self {
        Self::new(ErrorCode::Unauthorized, "Missing or invalid bearer token")
    }

    /// 404: unknown app or route.
    pub fn not_found(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, description)
    }

    /// 406: invalid parameters or limits.
    pub fn invalid_params(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidParams, description)
    }

    /// 406: an unusable SDP, or a negotiation out of turn.
    pub fn invalid_session_description(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidSessionDescription, description)
    }

    /// 410: unknown or expired session.
    pub fn session_gone() -> Self {
        Self::new(ErrorCode::Session, "Session not found or expired")
    }

    /// 410: the session's transport failed for good (e.g. its DTLS
    /// handshake); the client must start a new session.
    pub fn session_failed(reason: &str) -> Self {
        Self::new(
            ErrorCode::Session,
            format!("Session transport failed: {reason}"),
        )
    }

    /// 413: body too large.
    pub fn payload_too_large() -> Self {
        Self::new(ErrorCode::PayloadTooLarge, "Request body too large")
    }

    /// 408: the request body did not arrive in time.
    pub fn request_timeout() -> Self {
        Self::new(
            ErrorCode::RequestTimeout,
            "The request body did not arrive in time",
        )
    }

    /// 429: more than the per-session request rate.
    pub fn rate_limited() -> Self {
        Self::new(ErrorCode::RateLimited, "Too many requests on this session")
    }

    /// 503: a cap of the server or the app was reached; retry later.
    pub fn temporarily_unavailable(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::TemporarilyUnavailable, description)
    }

    /// 503: the cluster directory (Redis) or the node that owns what the
    /// call needs cannot be reached; retry later (docs/cluster.md).
    pub fn cluster_unavailable(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::ClusterUnavailable, description)
    }

    /// 500.
    pub fn internal(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, description)
    }
}
