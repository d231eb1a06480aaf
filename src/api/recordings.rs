//! The recordings routes (docs/calls-api.md, "Recordings", our
//! extension): `POST …/recordings/new`, `POST …/recordings/{id}/close`,
//! `GET …/recordings/{id}`, `GET …/recordings`; answered by
//! [`crate::recording::Recordings`]. A close waits for the files to be
//! finished, off the control thread.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::auth::{Caller, authorize};
use super::body::{read_json, reply};
use super::state::{ApiState, json};
use crate::calls::CallsError;
use crate::recording::NewRecordingRequest;

/// `POST /v1/apps/{app}/recordings/new`: 201 with the recording.
pub async fn new(
    State(s): State<ApiState>,
    Path(app): Path<String>,
    caller: Caller,
    body: Body,
) -> Response {
    reply(
        async {
            let app = authorize(&s, &app, &caller)?;
            let request: NewRecordingRequest = read_json(body).await?;
            let recording = s.recordings.start(&app, request)?;
            Ok(json(StatusCode::CREATED, &recording))
        }
        .await,
    )
}

/// `POST /v1/apps/{app}/recordings/{id}/close`: 200 with the final files.
pub async fn close(
    State(s): State<ApiState>,
    Path((app, id)): Path<(String, String)>,
    caller: Caller,
) -> Response {
    reply(
        async {
            let app = authorize(&s, &app, &caller)?;
            let recordings = Arc::clone(&s.recordings);
            let closed = tokio::task::spawn_blocking(move || recordings.close(&app, &id))
                .await
                .map_err(|e| CallsError::internal(e.to_string()))??;
            Ok(json(StatusCode::OK, &closed))
        }
        .await,
    )
}

/// `GET /v1/apps/{app}/recordings/{id}`.
pub async fn get(
    State(s): State<ApiState>,
    Path((app, id)): Path<(String, String)>,
    caller: Caller,
) -> Response {
    reply((|| {
        let app = authorize(&s, &app, &caller)?;
        Ok(json(StatusCode::OK, &s.recordings.get(&app, &id)?))
    })())
}

/// `GET /v1/apps/{app}/recordings`.
pub async fn list(State(s): State<ApiState>, Path(app): Path<String>, caller: Caller) -> Response {
    reply((|| {
        let app = authorize(&s, &app, &caller)?;
        let list = s.recordings.list(&app);
        Ok(json(
            StatusCode::OK,
            &serde_json::json!({ "recordings": list }),
        ))
    })())
}
