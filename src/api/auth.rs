//! Who makes an API call and which app it may act as: a client with its
//! app's bearer token, or another node of the cluster whose signature the
//! cluster middleware (`super::node_calls`) verified.

use axum::http::header;

use super::state::ApiState;
use crate::calls::CallsError;
use crate::control::Grant;
use crate::ids::AppId;

/// Marks a request whose node signature verified (a request extension,
/// which only this middleware sets): the handlers serve it as the app of
/// its path, without a bearer token.
#[derive(Debug, Clone, Copy)]
pub struct NodeCall;

/// Who makes a call: a client with its bearer token, or another node of the
/// cluster, whose signature the cluster middleware verified
/// (`NodeCall`; that node checked its client's token).
pub struct Caller {
    bearer: Option<String>,
    node: bool,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Caller::of(parts))
    }
}

impl Caller {
    /// Whether another node of the cluster makes the call (for its client).
    pub fn is_node(&self) -> bool {
        self.node
    }

    /// The bearer token, if the request has one.
    pub fn bearer(&self) -> Option<&str> {
        self.bearer.as_deref()
    }

    /// The caller of a request.
    pub(super) fn of(parts: &axum::http::request::Parts) -> Caller {
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.trim().split_once(' ')?;
                scheme
                    .eq_ignore_ascii_case("bearer")
                    .then(|| token.trim().to_owned())
            });
        Caller {
            bearer,
            node: parts.extensions.get::<NodeCall>().is_some(),
        }
    }
}

/// The app a call may act as: its token's, or, for a node's call, the app
/// of its path.
pub(super) fn authorize(state: &ApiState, app: &str, caller: &Caller) -> Result<AppId, CallsError> {
    if caller.node {
        return state.control.known_app(app);
    }
    state.control.authorize(app, caller.bearer.as_deref())
}

/// Like [`authorize`], also accepting the token derived for `scope`
/// (WHIP/WHEP per-stream tokens, [`crate::ids::scoped_token`]); says which
/// it was (a node's call counts as the app's secret: that node checked its
/// client's token).
pub(super) fn authorize_scoped(
    state: &ApiState,
    app: &str,
    caller: &Caller,
    scope: &str,
) -> Result<(AppId, Grant), CallsError> {
    if caller.node {
        return Ok((state.control.known_app(app)?, Grant::AppSecret));
    }
    state
        .control
        .authorize_scoped(app, caller.bearer.as_deref(), scope)
}
