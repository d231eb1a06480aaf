//! The WHIP (RFC 9725) and WHEP routes under an app
//! (docs/calls-api.md, "WHIP and WHEP"): SDP in and out, `Location`,
//! `ETag`, ICE server `Link`s, trickle and ICE restart `PATCH`es,
//! `DELETE`; answered by [`crate::whip::Whip`]. Errors carry RFC 9725's
//! statuses (400 bad SDP or fragment, 401 token, 404 unknown stream or
//! session, 408/413 body late or over [`SDP_LIMIT`], 412 `If-Match`
//! mismatch, 415 content type, 429 rate, 503 caps) and the Calls API's JSON
//! body.

use std::time::Instant;

use axum::body::Body;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::auth::{Caller, authorize_scoped};
use super::body::read_limited;
use super::state::{ApiState, json};
use crate::control::Grant;
use crate::ids::AppId;
use crate::whip::{Created, Door, Patched, PlayRequest, WhipError};

/// The content type of offers and answers.
const SDP: &str = "application/sdp";
/// The content type of trickle and restart fragments (RFC 8840).
const SDPFRAG: &str = "application/trickle-ice-sdpfrag";

/// The largest offer or fragment taken (real offers are 3–15 KB; each
/// session keeps its offer for ICE restarts).
pub const SDP_LIMIT: usize = 64 * 1024;

/// How long the TURN credentials in a session's `Link` headers last (long
/// enough for the client to allocate, and again after an ICE restart soon
/// after; revoked when the session is deleted).
pub const LINK_CREDENTIALS_TTL: u64 = 3600;

fn scope(door: Door, stream: &str) -> String {
    format!("{}:{stream}", door.as_str())
}

impl IntoResponse for WhipError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        json(
            status,
            &serde_json::json!({
                "errorCode": self.code,
                "errorDescription": self.description,
            }),
        )
    }
}

fn unsupported_type(wanted: &str) -> Response {
    WhipError {
        status: 415,
        code: "invalid_content_type",
        description: format!("Content-Type must be {wanted}"),
    }
    .into_response()
}

/// Whether the request's content type is `wanted` (parameters aside).
fn has_type(headers: &HeaderMap, wanted: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case(wanted))
}

/// Checks the stream name and the token for `door` on `stream`.
fn admit(
    s: &ApiState,
    app: &str,
    stream: &str,
    caller: &Caller,
    door: Door,
) -> Result<(AppId, Grant), WhipError> {
    if !crate::whip::names::valid_stream(stream) {
        return Err(WhipError::not_found(
            "stream names are 1 to 48 of A-Z a-z 0-9 _ . -",
        ));
    }
    Ok(authorize_scoped(s, app, caller, &scope(door, stream))?)
}

/// The body as text (SDP and fragments are UTF-8), at most [`SDP_LIMIT`].
async fn text(body: Body) -> Result<String, WhipError> {
    let bytes = read_limited(body).await?;
    if bytes.len() > SDP_LIMIT {
        return Err(crate::calls::CallsError::payload_too_large().into());
    }
    String::from_utf8(bytes.to_vec()).map_err(|_| WhipError::bad_request("the body is not UTF-8"))
}

fn header_value(v: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(v).ok()
}

/// 201 with the answer and the session's headers; `Location` is the
/// session's absolute path. The session is recorded in the cluster's
/// directory (its tracks are pulled from other nodes like any session's).
async fn created(s: &ApiState, (app, stream, door): (&AppId, &str, Door), c: Created) -> Response {
    if let Some(cluster) = &s.cluster {
        cluster.record_new_session(app, &c.session_id).await;
    }
    let location = format!("/v1/apps/{app}/{}/{stream}/{}", door.as_str(), c.session_id);
    let links = ice_server_links(s).await;
    if let Some((username, _)) = &links {
        s.whip
            .set_turn_username((app, stream, door), &c.session_id, username.clone());
    }
    let mut response = (StatusCode::CREATED, c.answer).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(SDP));
    let names: Vec<&str> = c.tracks.iter().map(|(n, _)| n.as_str()).collect();
    for (name, value) in [
        (header::LOCATION, location),
        (header::ETAG, c.etag),
        (
            header::HeaderName::from_static("x-calls-session"),
            c.session_id,
        ),
        (
            header::HeaderName::from_static("x-calls-tracks"),
            names.join(", "),
        ),
    ] {
        if let Some(v) = header_value(&value) {
            h.insert(name, v);
        }
    }
    h.insert(
        header::HeaderName::from_static("accept-patch"),
        HeaderValue::from_static(SDPFRAG),
    );
    for link in links.map(|(_, l)| l).unwrap_or_default() {
        if let Some(v) = header_value(&link) {
            h.append(header::LINK, v);
        }
    }
    response
}

/// RFC 9725 §4.4 `Link` headers for the TURN server, with fresh
/// credentials, and their username; none without TURN or when its user
/// store fails (the session works without, as it would on an open network).
async fn ice_server_links(s: &ApiState) -> Option<(String, Vec<String>)> {
    let turn = s.turn.as_ref()?;
    let unix = crate::cluster::store::unix_ms() / 1000;
    match turn.issue_for_session(LINK_CREDENTIALS_TTL, unix).await {
        Ok(servers) => {
            let username = servers.iter().find_map(|s| s.username.clone())?;
            let links = servers
                .iter()
                .flat_map(|server| {
                    server.urls.iter().map(move |url| match (&server.username, &server.credential) {
                        (Some(u), Some(c)) => format!(
                            "<{url}>; rel=\"ice-server\"; username=\"{u}\"; credential=\"{c}\"; credential-type=\"password\""
                        ),
                        _ => format!("<{url}>; rel=\"ice-server\""),
                    })
                })
                .collect();
            Some((username, links))
        }
        Err(e) => {
            tracing::warn!(error = %e, "no TURN credentials for a WHIP/WHEP session");
            None
        }
    }
}

type Peer = Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>;

fn client_ip(peer: Peer) -> Option<std::net::IpAddr> {
    peer.map(|p| p.0.0.ip())
}

/// POST of a WHIP endpoint: publish.
pub async fn publish(
    State(s): State<ApiState>,
    Path((app, stream)): Path<(String, String)>,
    peer: Peer,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (app, _) = match admit(&s, &app, &stream, &caller, Door::Whip) {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    if !has_type(&headers, SDP) {
        return unsupported_type(SDP);
    }
    let offer = match text(body).await {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    match s
        .whip
        .publish(&app, &stream, client_ip(peer), &offer, Instant::now())
    {
        Ok(c) => created(&s, (&app, &stream, Door::Whip), c).await,
        Err(e) => e.into_response(),
    }
}

/// GET of a WHIP endpoint: who publishes the stream now (our extension;
/// the publishing token or the app's secret).
pub async fn live(
    State(s): State<ApiState>,
    Path((app, stream)): Path<(String, String)>,
    caller: Caller,
) -> Response {
    let (app, _) = match admit(&s, &app, &stream, &caller, Door::Whip) {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    match s.whip.live(&app, &stream) {
        Some(live) => json(StatusCode::OK, &live),
        None => WhipError::not_found(format!("stream {stream} is not live")).into_response(),
    }
}

/// The query of a WHEP POST (our extension).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlayQuery {
    /// Play this Calls API session's tracks instead of the stream's (the
    /// app's secret only).
    session_id: Option<String>,
    /// Their names, comma-separated.
    tracks: Option<String>,
    /// The simulcast layer to prefer.
    rid: Option<String>,
}

/// POST of a WHEP endpoint: play.
pub async fn play(
    State(s): State<ApiState>,
    Path((app, stream)): Path<(String, String)>,
    Query(query): Query<PlayQuery>,
    peer: Peer,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (app, grant) = match admit(&s, &app, &stream, &caller, Door::Whep) {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    // A stream's play token plays that stream; naming any session of the
    // app takes the app's secret.
    if query.session_id.is_some() && grant != Grant::AppSecret {
        return WhipError {
            status: 401,
            code: "unauthorized",
            description: "sessionId takes the app's secret, not a stream token".into(),
        }
        .into_response();
    }
    if !has_type(&headers, SDP) {
        return unsupported_type(SDP);
    }
    let offer = match text(body).await {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let request = PlayRequest {
        session_id: query.session_id,
        tracks: query
            .tracks
            .as_deref()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect(),
        rid: query.rid,
    };
    match s.whip.play(
        &app,
        &stream,
        client_ip(peer),
        &offer,
        &request,
        Instant::now(),
    ) {
        Ok(c) => created(&s, (&app, &stream, Door::Whep), c).await,
        Err(e) => e.into_response(),
    }
}

/// PATCH of a WHIP or WHEP session (its door set by the route):
/// trickle (204) or ICE restart (200).
pub async fn patch(
    State(s): State<ApiState>,
    Path((app, stream, session)): Path<(String, String, String)>,
    Extension(door): Extension<Door>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (app, _) = match admit(&s, &app, &stream, &caller, door) {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    if !has_type(&headers, SDPFRAG) {
        return unsupported_type(SDPFRAG);
    }
    let fragment = match text(body).await {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    // Present but unreadable names no entity tag: it matches none.
    let if_match = headers
        .get(header::IF_MATCH)
        .map(|v| v.to_str().unwrap_or(""));
    match s.whip.patch(
        (&app, &stream, door),
        &session,
        &fragment,
        if_match,
        Instant::now(),
    ) {
        Ok(Patched::Trickled) => StatusCode::NO_CONTENT.into_response(),
        Ok(Patched::Restarted { fragment, etag }) => {
            let mut r = (StatusCode::OK, fragment).into_response();
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(SDPFRAG));
            if let Some(v) = header_value(&etag) {
                r.headers_mut().insert(header::ETAG, v);
            }
            r
        }
        Err(e) => e.into_response(),
    }
}

/// DELETE of a WHIP or WHEP session (its door set by the route): it ends
/// (200), and the TURN username its `Link` headers carried is revoked.
pub async fn delete(
    State(s): State<ApiState>,
    Path((app, stream, session)): Path<(String, String, String)>,
    Extension(door): Extension<Door>,
    caller: Caller,
) -> Response {
    let (app, _) = match admit(&s, &app, &stream, &caller, door) {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    match s.whip.delete((&app, &stream, door), &session) {
        Ok(turn_username) => {
            if let (Some(turn), Some(username)) = (&s.turn, turn_username)
                && let Err(e) = turn.revoke(&username).await
            {
                tracing::warn!(%username, error = %e, "a deleted session's TURN username not revoked");
            }
            StatusCode::OK.into_response()
        }
        Err(e) => e.into_response(),
    }
}
