//! Graceful shutdown as the API shows it: once the server drains (SIGTERM),
//! every call under `/v1/apps/{appId}` (and `/apps/{appId}`) is answered
//! 503 `temporarily_unavailable_error` with `Retry-After`, so that clients
//! and load balancers go to another node; `/metrics` and the demo page go
//! on answering, and media already flowing is untouched.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::calls::CallsError;

/// Whether the server drains, and for how long it will.
#[derive(Debug, Clone)]
pub struct Draining {
    flag: Arc<AtomicBool>,
    retry_after: Duration,
}

impl Draining {
    /// Not draining; a drain will last `period`.
    pub fn new(period: Duration) -> Self {
        Draining {
            flag: Arc::default(),
            retry_after: period,
        }
    }

    /// From now on API calls are refused.
    pub fn begin(&self) {
        self.flag.store(true, Ordering::Release);
    }

    /// Whether the server drains.
    pub fn is_draining(&self) -> bool {
        self.flag.load(Ordering::Acquire)
    }
}

/// Refuses API calls while the server drains.
pub async fn refuse_while_draining(
    State(draining): State<Draining>,
    req: Request,
    next: Next,
) -> Response {
    if !draining.is_draining() {
        return next.run(req).await;
    }
    let mut response =
        CallsError::temporarily_unavailable("The server is shutting down; retry on another node")
            .into_response();
    let seconds = draining.retry_after.as_secs().max(1).to_string();
    if let Ok(value) = HeaderValue::from_str(&seconds) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}
