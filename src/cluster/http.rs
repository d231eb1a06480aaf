//! Calls from one node to another's API: forwarded client calls and the
//! relays' set-up. HTTP/1.1 over plain TCP (the nodes' internal network),
//! one connection per call, bounded in time and in reply size.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use hyper_util::rt::TokioIo;

/// How long a forwarded call may take, connection included: a forwarded
/// tracks/new may set up a relay on the owner (three calls of its own, each
/// within [`RELAY_CALL_TIMEOUT`], and a directory lookup).
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(20);
/// How long one of a relay's set-up calls may take.
pub const RELAY_CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest reply read (API replies are SDP-sized).
const MAX_REPLY: usize = 4 << 20;

/// A node's answer.
#[derive(Debug)]
pub struct Reply {
    /// Its status.
    pub status: StatusCode,
    /// Its body.
    pub body: Bytes,
    /// Its `Retry-After` (a draining node's).
    pub retry_after: Option<header::HeaderValue>,
}

/// Why a call got no answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The base URL is not one a node may call (`peers::ApiUrl`).
    #[error(transparent)]
    Url(#[from] crate::config::peers::UrlError),
    /// Connecting, sending or reading failed.
    #[error("calling {0}: {1}")]
    Io(String, String),
    /// No answer in time.
    #[error("calling {0}: no answer within {1:?}")]
    Timeout(String, Duration),
}

/// Sends `method path` (with its query) to the node at `base`
/// (`http://host:port`, checked by `peers::ApiUrl`), with `headers` and
/// `body`, waiting at most `timeout` for the whole reply.
pub async fn call(
    base: &str,
    method: Method,
    path: &str,
    (headers, body): (HeaderMap, Bytes),
    timeout: Duration,
) -> Result<Reply, CallError> {
    let authority = crate::config::peers::ApiUrl::parse(base)?
        .authority()
        .to_owned();
    let io_err = |e: &dyn std::fmt::Display| CallError::Io(authority.clone(), e.to_string());
    let run = async {
        let stream = tokio::net::TcpStream::connect(&authority)
            .await
            .map_err(|e| io_err(&e))?;
        let _ = stream.set_nodelay(true);
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| io_err(&e))?;
        tokio::spawn(connection);
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::from(body))
            .map_err(|e| io_err(&e))?;
        *request.headers_mut() = headers;
        request.headers_mut().insert(
            header::HOST,
            header::HeaderValue::from_str(&authority).map_err(|e| io_err(&e))?,
        );
        let response = sender.send_request(request).await.map_err(|e| io_err(&e))?;
        let status = response.status();
        let retry_after = response.headers().get(header::RETRY_AFTER).cloned();
        let body = axum::body::to_bytes(Body::new(response.into_body()), MAX_REPLY)
            .await
            .map_err(|e| io_err(&e))?;
        Ok(Reply {
            status,
            body,
            retry_after,
        })
    };
    tokio::time::timeout(timeout, run)
        .await
        .map_err(|_| CallError::Timeout(authority.clone(), timeout))?
}
