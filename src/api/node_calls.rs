//! The API's side of a cluster (`crate::cluster`): a call for a session
//! owned by another node is answered by that node (forwarded before
//! routing), a call another node signed is served here as the app of its
//! path, and a pull of another node's track first gets its relay.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::calls::types::TracksNewRequest;
use crate::cluster::{Cluster, node_call};
use crate::ids::AppId;

use super::auth::{Caller, NodeCall, authorize};
use super::body::read_limited;
use super::state::ApiState;
use crate::calls::CallsError;

/// `(app, session)` of `/v1/apps/{app}/sessions/{session}[/…]` (or
/// `/apps/…`); `None` for other paths (sessions/new included).
fn session_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/v1").unwrap_or(path);
    let mut parts = rest.strip_prefix("/apps/")?.split('/');
    let app = parts.next()?;
    if parts.next()? != "sessions" {
        return None;
    }
    let session = parts.next().filter(|s| !s.is_empty() && *s != "new")?;
    Some((app, session))
}

/// Middleware: serves a call here when this node owns its session (or no
/// node does, or another node signed it), else answers with the owner's
/// answer.
pub async fn to_owner(State(s): State<ApiState>, req: Request, next: Next) -> Response {
    let Some(cluster) = s.cluster.clone() else {
        return next.run(req).await;
    };
    if let Some(header) = req.headers().get(node_call::HEADER) {
        let header = header.to_str().unwrap_or("").to_owned();
        return from_node(&cluster, &header, req, next).await;
    }
    let Some((app, session)) = session_path(req.uri().path()) else {
        return next.run(req).await;
    };
    let (app, session) = (app.to_owned(), session.to_owned());
    let (parts, body) = req.into_parts();
    let app = match authorize(&s, &app, &Caller::of(&parts)) {
        Ok(app) => app,
        Err(e) => return e.into_response(),
    };
    if s.control.owns_session(&app, &session) {
        return next.run(Request::from_parts(parts, body)).await;
    }
    let owner = match cluster.owner_elsewhere(&app, &session).await {
        Ok(Some(owner)) => owner,
        // A mirror is not a session of this node's API, even when its
        // owner is gone.
        Ok(None) if s.control.is_mirror(&app, &session) => {
            return CallsError::session_gone().into_response();
        }
        Ok(None) => return next.run(Request::from_parts(parts, body)).await,
        Err(e) => return e.into_response(),
    };
    let body = match read_limited(body).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    cluster
        .forward(
            &owner,
            parts.method,
            &path_and_query(&parts.uri),
            &parts.headers,
            body,
        )
        .await
}

fn path_and_query(uri: &axum::http::Uri) -> String {
    uri.path_and_query()
        .map_or_else(|| uri.path().to_owned(), |p| p.as_str().to_owned())
}

/// A call signed as another node's: served here as [`NodeCall`] once its
/// signature verifies (over the whole body, read first), 401 otherwise.
async fn from_node(cluster: &Cluster, header: &str, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    let body = match read_limited(body).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let path = path_and_query(&parts.uri);
    if cluster
        .verify_call(header, parts.method.as_str(), &path, &body)
        .is_err()
    {
        return CallsError::unauthorized().into_response();
    }
    parts.extensions.insert(NodeCall);
    next.run(Request::from_parts(parts, Body::from(body))).await
}

/// Before a tracks/new is served (and after it was admitted: at most
/// `limits::MAX_ITEMS` items, so as many directory lookups): the relays of
/// the remote tracks it pulls from other nodes, one owner lookup per
/// session named.
pub async fn relays_for(
    s: &ApiState,
    app: &AppId,
    req: &TracksNewRequest,
) -> Result<(), CallsError> {
    let Some(cluster) = &s.cluster else {
        return Ok(());
    };
    let mut by_session: HashMap<&str, Vec<&str>> = HashMap::new();
    for t in &req.tracks {
        if t.location.as_deref() != Some("remote") {
            continue;
        }
        if let (Some(session), Some(name)) = (&t.session_id, &t.track_name) {
            by_session.entry(session).or_default().push(name);
        }
    }
    for (session, names) in by_session {
        cluster.ensure_relays(app, session, &names).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_session_of_a_session_route() {
        assert_eq!(
            session_path("/v1/apps/a1/sessions/s1/tracks/new"),
            Some(("a1", "s1"))
        );
        assert_eq!(session_path("/apps/a1/sessions/s1"), Some(("a1", "s1")));
        assert_eq!(session_path("/v1/apps/a1/sessions/new"), None);
        assert_eq!(session_path("/v1/apps/a1/sessions/"), None);
        assert_eq!(session_path("/metrics"), None);
        assert_eq!(session_path("/v1/apps/a1/adapters/websocket/new"), None);
    }
}
