//! API latency per route, for the metrics: each routed call is timed from
//! the handler's start (the request head read) to its response, whatever
//! the status. Where it sits: a layer on each API route, on the HTTP
//! runtime.

use std::time::Instant;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::engine::counters::{Bounds, Histogram};

/// The routes timed, by the label they get in the metrics.
pub const ROUTES: [&str; 21] = [
    "POST sessions/new",
    "POST tracks/new",
    "PUT renegotiate",
    "PUT tracks/update",
    "PUT tracks/close",
    "GET session",
    "GET stats",
    "datachannels",
    "GET metrics",
    "POST adapters/websocket/new",
    "POST adapters/websocket/close",
    "whip",
    "whip session",
    "whep",
    "whep session",
    "POST turn credentials",
    "POST turn revoke",
    "POST recordings/new",
    "POST recordings/close",
    "GET recording",
    "GET recordings",
];

/// API latencies, in microseconds (100 µs to 1 s).
#[derive(Debug, Default)]
pub struct ApiMicros;

impl Bounds for ApiMicros {
    const BOUNDS: &'static [u64] = &[
        100, 250, 500, 1000, 2500, 5000, 10_000, 25_000, 100_000, 1_000_000,
    ];
    const UNIT: f64 = 1e-6;
}

/// One histogram per route of [`ROUTES`].
#[derive(Debug, Default)]
pub struct ApiLatency {
    per_route: [Histogram<ApiMicros>; ROUTES.len()],
}

impl ApiLatency {
    /// The index of `route` in [`ROUTES`] (a label from the router).
    pub fn route(label: &str) -> usize {
        ROUTES
            .iter()
            .position(|r| *r == label)
            .expect("a route of ROUTES")
    }

    /// The routes with their histograms.
    pub fn routes(&self) -> impl Iterator<Item = (&'static str, &Histogram<ApiMicros>)> {
        ROUTES.iter().copied().zip(&self.per_route)
    }
}

/// The layer: times the call and counts it under its route.
pub async fn timed(
    State((latency, route)): State<(std::sync::Arc<ApiLatency>, usize)>,
    request: Request,
    next: Next,
) -> Response {
    let start = Instant::now();
    let response = next.run(request).await;
    let us = start.elapsed().as_micros().min(u128::from(u64::MAX)) as u64;
    latency.per_route[route].observe(us);
    response
}
