//! The TURN keys routes (calls-api.md, "TURN credentials"), outside any
//! app: `POST /v1/turn/keys/{keyId}/credentials/generate-ice-servers`, the
//! legacy `…/generate`, and `…/credentials/{username}/revoke`; answered by
//! [`crate::turn::Turn`]. 404 when this server has no TURN (or no such
//! key), 401 for a wrong token.

use std::time::Instant;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::auth::Caller;
use super::body::{read_json, reply};
use super::state::{ApiState, json as respond};
use crate::calls::CallsError;
use crate::turn::{IceServer, KeyCheck, Turn, TurnError};

/// A credentials request.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Generate {
    /// Lifetime in seconds [default: 86400; at most 172800].
    #[serde(default = "default_ttl")]
    ttl: u64,
    /// Part of the username, for the application's own accounting.
    custom_identifier: Option<String>,
}

fn default_ttl() -> u64 {
    86_400
}

impl From<TurnError> for CallsError {
    fn from(e: TurnError) -> Self {
        match e {
            TurnError::Invalid(why) => CallsError::invalid_params(why),
            TurnError::RateLimited => CallsError::rate_limited(),
            TurnError::Store(e) => CallsError::temporarily_unavailable(e.to_string()),
        }
    }
}

/// The TURN service, if `key` and the caller's token are its key's.
fn keyed<'a>(s: &'a ApiState, key: &str, caller: &Caller) -> Result<&'a Turn, CallsError> {
    let turn = s
        .turn
        .as_deref()
        .ok_or_else(|| CallsError::not_found("This server has no TURN server configured"))?;
    match turn.key_matches(key, caller.bearer()) {
        KeyCheck::Ok => Ok(turn),
        KeyCheck::UnknownKey => Err(CallsError::not_found("Unknown TURN key")),
        KeyCheck::WrongToken => Err(CallsError::unauthorized()),
    }
}

async fn issue(
    s: &ApiState,
    key: &str,
    caller: &Caller,
    body: Body,
) -> Result<[IceServer; 2], CallsError> {
    let turn = keyed(s, key, caller)?;
    let req: Generate = read_json(body).await?;
    let unix = crate::cluster::store::unix_ms() / 1000;
    Ok(turn
        .issue(
            req.ttl,
            req.custom_identifier.as_deref(),
            Instant::now(),
            unix,
        )
        .await?)
}

/// POST …/credentials/generate-ice-servers: 201 `{"iceServers": [stun, turn]}`.
pub async fn generate_ice_servers(
    State(s): State<ApiState>,
    Path(key): Path<String>,
    caller: Caller,
    body: Body,
) -> Response {
    reply(
        async {
            let servers = issue(&s, &key, &caller, body).await?;
            Ok(respond(
                StatusCode::CREATED,
                &json!({ "iceServers": servers }),
            ))
        }
        .await,
    )
}

/// POST …/credentials/generate (legacy): 201 `{"iceServers": {urls,
/// username, credential}}`, every URL in one entry.
pub async fn generate(
    State(s): State<ApiState>,
    Path(key): Path<String>,
    caller: Caller,
    body: Body,
) -> Response {
    reply(
        async {
            let [stun, turn] = issue(&s, &key, &caller, body).await?;
            let merged = IceServer {
                urls: stun.urls.into_iter().chain(turn.urls).collect(),
                ..turn
            };
            Ok(respond(
                StatusCode::CREATED,
                &json!({ "iceServers": merged }),
            ))
        }
        .await,
    )
}

/// POST …/credentials/{username}/revoke: 204; the TURN server refuses the
/// username from now on.
pub async fn revoke(
    State(s): State<ApiState>,
    Path((key, username)): Path<(String, String)>,
    caller: Caller,
) -> Response {
    reply(
        async {
            let turn = keyed(&s, &key, &caller)?;
            let existed = turn.revoke(&username).await?;
            tracing::info!(%username, existed, "TURN credentials revoked");
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        .await,
    )
}
