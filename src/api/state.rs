//! What the API's handlers share, and how they answer: JSON with
//! `Content-Type: application/json`.

use std::sync::Arc;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::draining::Draining;
use super::latency::ApiLatency;
use crate::control::Control;

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// The control plane.
    pub control: Arc<Control>,
    /// The WebSocket adapters.
    pub adapters: Arc<crate::adapters::Adapters>,
    /// The demo page with the dev app's credentials filled in, if enabled.
    pub demo_page: Option<Arc<str>>,
    /// Set when the server drains: API calls are refused.
    pub draining: Draining,
    /// Latency per route.
    pub latency: Arc<ApiLatency>,
    /// This node's cluster, if it is in one.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    /// The bearer token `/metrics` wants, if any (`--metrics-token`).
    pub metrics_token: Option<Arc<str>>,
    /// WHIP and WHEP.
    pub whip: Arc<crate::whip::Whip>,
    /// The TURN credentials service, if a TURN server is configured.
    pub turn: Option<Arc<crate::turn::Turn>>,
    /// Recordings.
    pub recordings: Arc<crate::recording::Recordings>,
}

/// A JSON response.
pub fn json<T: Serialize>(status: StatusCode, body: &T) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut r = (status, bytes).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}
