//! Any node answers any call: a call for a session that another node owns
//! is sent there, with the cluster secret, and its answer (status and JSON
//! body) goes back to the client as it came.

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};

use crate::api::error::ApiError;

use super::store::Node;
use super::{Cluster, SECRET_HEADER, http};

impl Cluster {
    /// Sends a client's call to the session's owner; its answer.
    pub async fn forward(
        &self,
        owner: &Node,
        method: Method,
        path_and_query: &str,
        client_headers: &HeaderMap,
        body: Bytes,
    ) -> Response {
        let mut headers = HeaderMap::new();
        for name in [header::AUTHORIZATION, header::CONTENT_TYPE] {
            if let Some(v) = client_headers.get(&name) {
                headers.insert(name, v.clone());
            }
        }
        headers.insert(SECRET_HEADER, self.secret.clone());
        self.counters
            .forwarded
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let call = http::call(
            &owner.api,
            method,
            path_and_query,
            (headers, body),
            http::FORWARD_TIMEOUT,
        );
        match call.await {
            Ok(reply) => {
                let mut response = (reply.status, reply.body).into_response();
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                if let Some(retry) = reply.retry_after {
                    response.headers_mut().insert(header::RETRY_AFTER, retry);
                }
                response
            }
            Err(e) => {
                tracing::warn!(node = %owner.id, error = %e, "a forwarded call got no answer");
                ApiError::cluster_unavailable("The node that owns this session did not answer")
                    .into_response()
            }
        }
    }
}
