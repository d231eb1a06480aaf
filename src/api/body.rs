//! Reading a request body within [`BODY_LIMIT`] and [`BODY_READ_TIMEOUT`]:
//! a declared length over the limit is refused before any of the body is
//! read, a streamed one as soon as it passes the limit, and nothing more
//! than the limit is ever buffered; and the JSON of a request body, and the
//! response of a handler's result.

use std::future::poll_fn;
use std::pin::Pin;

use axum::body::{Body, HttpBody as _};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use serde::de::DeserializeOwned;

use super::http_limits::{BODY_LIMIT, BODY_READ_TIMEOUT};
use crate::calls::CallsError;

/// The whole body, or 413 `payload_too_large`, or 408 when it does not
/// arrive within [`BODY_READ_TIMEOUT`].
pub async fn read_limited(mut body: Body) -> Result<Bytes, CallsError> {
    if body.size_hint().lower() > BODY_LIMIT as u64 {
        return Err(CallsError::payload_too_large());
    }
    let collect = async {
        let mut out = BytesMut::new();
        while let Some(frame) = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
            let frame =
                frame.map_err(|e| CallsError::decoding(format!("Reading the body: {e}")))?;
            if let Ok(data) = frame.into_data() {
                if out.len() + data.len() > BODY_LIMIT {
                    return Err(CallsError::payload_too_large());
                }
                out.extend_from_slice(&data);
            }
        }
        Ok(out.freeze())
    };
    tokio::time::timeout(BODY_READ_TIMEOUT, collect)
        .await
        .unwrap_or_else(|_| Err(CallsError::request_timeout()))
}

/// Reads a JSON body whatever its content type; empty means `{}`.
pub async fn read_json<T: DeserializeOwned>(body: Body) -> Result<T, CallsError> {
    let bytes = read_limited(body).await?;
    let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        &bytes
    };
    serde_json::from_slice(text).map_err(|e| CallsError::decoding(e.to_string()))
}

pub fn reply(result: Result<Response, CallsError>) -> Response {
    result.unwrap_or_else(IntoResponse::into_response)
}
