//! Routes and handlers. Every response is JSON with `Content-Type:
//! application/json`, carries CORS headers, and never redirects.

use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post, put};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::control::Control;
use crate::ids::AppId;

use super::auth::{Caller, authorize};
use super::body::{read_json, reply};
use super::draining::refuse_while_draining;
use super::latency::{self, ApiLatency};
pub use super::state::{ApiState, json};
use crate::calls::CallsError;

/// The demo page's template.
pub const DEMO_TEMPLATE: &str = include_str!("demo.html");

/// The whole HTTP API.
pub fn router(state: ApiState) -> Router {
    let timed = |label: &str| {
        let route = (state.latency.clone(), ApiLatency::route(label));
        middleware::from_fn_with_state(route, latency::timed)
    };
    let app_routes = Router::new()
        .route(
            "/sessions/new",
            post(new_session).route_layer(timed("POST sessions/new")),
        )
        .route(
            "/sessions/{session}/tracks/new",
            post(tracks_new).route_layer(timed("POST tracks/new")),
        )
        .route(
            "/sessions/{session}/renegotiate",
            put(renegotiate).route_layer(timed("PUT renegotiate")),
        )
        .route(
            "/sessions/{session}/tracks/update",
            put(tracks_update).route_layer(timed("PUT tracks/update")),
        )
        .route(
            "/sessions/{session}/tracks/close",
            put(tracks_close).route_layer(timed("PUT tracks/close")),
        )
        .route(
            "/sessions/{session}",
            get(get_session).route_layer(timed("GET session")),
        )
        .route(
            "/sessions/{session}/stats",
            get(session_stats).route_layer(timed("GET stats")),
        )
        .route(
            "/recordings/new",
            post(super::recordings::new).route_layer(timed("POST recordings/new")),
        )
        .route(
            "/recordings/{recording}/close",
            post(super::recordings::close).route_layer(timed("POST recordings/close")),
        )
        .route(
            "/recordings/{recording}",
            get(super::recordings::get).route_layer(timed("GET recording")),
        )
        .route(
            "/recordings",
            get(super::recordings::list).route_layer(timed("GET recordings")),
        )
        .route(
            "/adapters/websocket/new",
            post(super::adapters::open).route_layer(timed("POST adapters/websocket/new")),
        )
        .route(
            "/adapters/websocket/close",
            post(super::adapters::close).route_layer(timed("POST adapters/websocket/close")),
        )
        .route(
            "/whip/{stream}",
            post(super::whip::publish)
                .get(super::whip::live)
                .route_layer(timed("whip")),
        )
        .route(
            "/whip/{stream}/{session}",
            patch(super::whip::patch)
                .delete(super::whip::delete)
                .route_layer(timed("whip session"))
                .route_layer(axum::Extension(crate::whip::Door::Whip)),
        )
        .route(
            "/whep/{stream}",
            post(super::whip::play).route_layer(timed("whep")),
        )
        .route(
            "/whep/{stream}/{session}",
            patch(super::whip::patch)
                .delete(super::whip::delete)
                .route_layer(timed("whep session"))
                .route_layer(axum::Extension(crate::whip::Door::Whep)),
        )
        .route(
            "/sessions/{session}/datachannels/{op}",
            post(data_channels)
                .put(data_channels)
                .route_layer(timed("datachannels")),
        )
        .route_layer(middleware::from_fn_with_state(
            state.draining.clone(),
            refuse_while_draining,
        ));
    Router::new()
        .route("/", get(demo))
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .route(
            "/metrics",
            get(super::metrics::metrics).route_layer(timed("GET metrics")),
        )
        .route(
            "/v1/turn/keys/{key}/credentials/generate-ice-servers",
            post(super::turn::generate_ice_servers).route_layer(timed("POST turn credentials")),
        )
        .route(
            "/v1/turn/keys/{key}/credentials/generate",
            post(super::turn::generate).route_layer(timed("POST turn credentials")),
        )
        .route(
            "/v1/turn/keys/{key}/credentials/{username}/revoke",
            post(super::turn::revoke).route_layer(timed("POST turn revoke")),
        )
        .nest("/v1/apps/{app}", app_routes.clone())
        .nest("/apps/{app}", app_routes)
        .fallback(|| async { CallsError::not_found("No such route").into_response() })
        .method_not_allowed_fallback(|| async {
            json(
                StatusCode::METHOD_NOT_ALLOWED,
                &json!({
                    "errorCode": "invalid_params",
                    "errorDescription": "Method not allowed on this route",
                }),
            )
        })
        .layer(middleware::from_fn_with_state(
            state.clone(),
            super::node_calls::to_owner,
        ))
        .layer(middleware::from_fn(cors))
        .with_state(state)
}

/// CORS on every response; preflights answered here.
async fn cors(req: Request, next: Next) -> Response {
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("*"));
    let whip = req.uri().path().contains("/whip/") || req.uri().path().contains("/whep/");
    let mut response = if req.method() == Method::OPTIONS {
        let mut r = StatusCode::NO_CONTENT.into_response();
        if whip {
            // RFC 9725 §4.2: what a WHIP/WHEP endpoint accepts.
            r.headers_mut().insert(
                header::HeaderName::from_static("accept-post"),
                HeaderValue::from_static("application/sdp"),
            );
            r.headers_mut().insert(
                header::HeaderName::from_static("accept-patch"),
                HeaderValue::from_static("application/trickle-ice-sdpfrag"),
            );
        }
        r
    } else {
        next.run(req).await
    };
    let h = response.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, PUT, PATCH, DELETE, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("authorization, content-type, if-match"),
    );
    // WHIP/WHEP clients in browsers read these from the 201 and PATCH answers.
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(
            "location, etag, link, accept-patch, accept-post, x-calls-session, x-calls-tracks",
        ),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    response
}

async fn demo(State(state): State<ApiState>) -> Response {
    match &state.demo_page {
        Some(page) => (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            page.to_string(),
        )
            .into_response(),
        None => CallsError::not_found("The demo page is disabled").into_response(),
    }
}

async fn new_session(
    State(s): State<ApiState>,
    Path(app): Path<String>,
    peer: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    caller: Caller,
    body: Body,
) -> Response {
    reply(
        async {
            let app = authorize(&s, &app, &caller)?;
            let mut req: crate::calls::types::NewSessionRequest = read_json(body).await?;
            req.third_party = query
                .as_deref()
                .unwrap_or("")
                .split('&')
                .any(|p| p.eq_ignore_ascii_case("thirdparty=true"));
            // Another node's calls (relays) are not one client's.
            req.relay = caller.is_node();
            let client = peer.map(|p| p.0.0.ip()).filter(|_| !caller.is_node());
            let (id, answer) = s.control.new_session(&app, client, req, Instant::now())?;
            if let Some(cluster) = &s.cluster {
                cluster.record_new_session(&app, &id).await;
            }
            let mut out = json!({ "sessionId": id });
            if let Some(a) = answer {
                out["sessionDescription"] = serde_json::to_value(a).unwrap_or_default();
            }
            Ok(json(StatusCode::CREATED, &out))
        }
        .await,
    )
}

/// A session operation: authorize, read the JSON body, run `op` on the
/// control plane, answer 200 with its result.
async fn session_op<Req, Res, F>(
    s: ApiState,
    (app, session): (String, String),
    caller: Caller,
    body: Body,
    op: F,
) -> Response
where
    Req: DeserializeOwned,
    Res: Serialize,
    F: FnOnce(&Control, &AppId, &str, Req, Instant) -> Result<Res, CallsError>,
{
    reply(
        async {
            let app = authorize(&s, &app, &caller)?;
            let req = read_json(body).await?;
            let result = op(&s.control, &app, &session, req, Instant::now())?;
            Ok(json(StatusCode::OK, &result))
        }
        .await,
    )
}

async fn tracks_new(
    State(s): State<ApiState>,
    Path((app, session)): Path<(String, String)>,
    caller: Caller,
    body: Body,
) -> Response {
    reply(
        async {
            let app = authorize(&s, &app, &caller)?;
            let req = read_json(body).await?;
            // Everything that bounds the request comes before a relay's
            // work: its session, its rate, its item cap.
            let admitted = s
                .control
                .admit_tracks_new(&app, &session, &req, Instant::now())?;
            super::node_calls::relays_for(&s, &app, &req).await?;
            let result = s
                .control
                .tracks_new_admitted(admitted, &app, req, Instant::now())?;
            Ok(json(StatusCode::OK, &result))
        }
        .await,
    )
}

async fn renegotiate(
    State(s): State<ApiState>,
    Path(p): Path<(String, String)>,
    h: Caller,
    b: Body,
) -> Response {
    session_op(
        s,
        p,
        h,
        b,
        |c: &Control, app: &AppId, id: &str, req, now| {
            c.renegotiate(app, id, req, now).map(|()| json!({}))
        },
    )
    .await
}

async fn tracks_update(
    State(s): State<ApiState>,
    Path(p): Path<(String, String)>,
    h: Caller,
    b: Body,
) -> Response {
    session_op(s, p, h, b, Control::tracks_update).await
}

async fn tracks_close(
    State(s): State<ApiState>,
    Path(p): Path<(String, String)>,
    h: Caller,
    b: Body,
) -> Response {
    session_op(s, p, h, b, Control::tracks_close).await
}

async fn get_session(
    State(s): State<ApiState>,
    Path((app, session)): Path<(String, String)>,
    caller: Caller,
) -> Response {
    reply((|| {
        let app = authorize(&s, &app, &caller)?;
        let r = s.control.get_session(&app, &session, Instant::now())?;
        Ok(json(StatusCode::OK, &r))
    })())
}

/// Our extension: the session's media figures (README, "Session stats").
async fn session_stats(
    State(s): State<ApiState>,
    Path((app, session)): Path<(String, String)>,
    caller: Caller,
) -> Response {
    reply(
        async {
            let app = authorize(&s, &app, &caller)?;
            let request = s.control.stats_request(&app, &session, Instant::now())?;
            Ok(json(StatusCode::OK, &request.into_json().await?))
        }
        .await,
    )
}

async fn data_channels(
    State(s): State<ApiState>,
    Path((app, session, op)): Path<(String, String, String)>,
    h: Caller,
    b: Body,
) -> Response {
    let p = (app, session);
    match op.as_str() {
        "establish" => session_op(s, p, h, b, Control::datachannels_establish).await,
        "new" => session_op(s, p, h, b, Control::datachannels_new).await,
        "update" => session_op(s, p, h, b, Control::datachannels_update).await,
        "close" => session_op(s, p, h, b, Control::datachannels_close).await,
        _ => CallsError::not_found("No such route").into_response(),
    }
}
