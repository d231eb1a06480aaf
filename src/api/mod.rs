//! The HTTP API (calls-api.md) on the control thread: routes under
//! `/v1/apps/{appId}` and `/apps/{appId}`, bearer auth, CORS, JSON bodies
//! whatever their content type, and the demo page at `/`; served with
//! limits on every client's time, head, body and connections.

pub mod adapter_metrics;
pub mod adapters;
pub mod auth;
pub mod body;
pub mod connection;
pub mod draining;
pub mod error;
pub mod http_limits;
pub mod latency;
pub mod listener;
pub mod metrics;
pub mod node_calls;
pub mod phase;
pub mod recording_metrics;
pub mod recordings;
pub mod routes;
pub mod state;
pub mod turn;
pub mod whip;
