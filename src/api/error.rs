//! A [`CallsError`] as an HTTP response: its status, and the Calls
//! `errorCode` / `errorDescription` body.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::calls::{CallsError, ErrorCode};

/// Whether the connection must end with this answer: the rest of the
/// request's body was not read.
fn ends_connection(code: ErrorCode) -> bool {
    matches!(code, ErrorCode::PayloadTooLarge | ErrorCode::RequestTimeout)
}

impl IntoResponse for CallsError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "errorCode": self.code.as_str(),
            "errorDescription": self.description,
        });
        let status =
            StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = super::state::json(status, &body);
        if ends_connection(self.code) {
            response.headers_mut().insert(
                header::CONNECTION,
                header::HeaderValue::from_static("close"),
            );
        }
        response
    }
}
