//! The WebSocket adapter routes (calls-api.md, "WebSocket adapters"):
//! `POST adapters/websocket/new` and `/close` under an app, answered by
//! [`crate::adapters::Adapters`]: 200 when at least one item succeeded,
//! 503 when all failed, each item with its own error.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::auth::{Caller, authorize};
use super::body::{read_json, reply};
use super::state::{ApiState, json};

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// POST adapters/websocket/new.
pub async fn open(
    State(s): State<ApiState>,
    Path(app): Path<String>,
    caller: Caller,
    body: Body,
) -> Response {
    reply(
        async {
            let app = authorize(&s, &app, &caller)?;
            let req = read_json(body).await?;
            let (code, out) = s.adapters.open(&app, req).await?;
            Ok(json(status(code), &out))
        }
        .await,
    )
}

/// POST adapters/websocket/close.
pub async fn close(
    State(s): State<ApiState>,
    Path(app): Path<String>,
    caller: Caller,
    body: Body,
) -> Response {
    reply(
        async {
            let app = authorize(&s, &app, &caller)?;
            let req = read_json(body).await?;
            let (code, out) = s.adapters.close(&app, req)?;
            Ok(json(status(code), &out))
        }
        .await,
    )
}
