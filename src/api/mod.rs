//! The HTTP API (calls-api.md) on the control thread: routes under
//! `/v1/apps/{appId}` and `/apps/{appId}`, bearer auth, CORS, JSON bodies
//! whatever their content type, and the demo page at `/`.

pub mod error;
pub mod routes;
pub mod types;
