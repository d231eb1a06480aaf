//! Any node answers any call: a call for a session that another node owns
//! is sent there, signed as this node's (`node_call`), and its answer
//! (status and JSON body) goes back to the client as it came. The client's
//! bearer token was checked here and does not travel: the owner serves the
//! call as the app of its path because a node signed it.

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::calls::CallsError;

use super::store::Node;
use super::{Cluster, http, node_call};

impl Cluster {
    /// Sends a client's call, already authorized here, to the session's
    /// owner; its answer.
    pub async fn forward(
        &self,
        owner: &Node,
        method: Method,
        path_and_query: &str,
        client_headers: &HeaderMap,
        body: Bytes,
    ) -> Response {
        let mut headers = HeaderMap::new();
        if let Some(v) = client_headers.get(header::CONTENT_TYPE) {
            headers.insert(header::CONTENT_TYPE, v.clone());
        }
        let signed = self.sign_call(&owner.id, method.as_str(), path_and_query, &body);
        headers.insert(node_call::HEADER, signed);
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
            // A node refuses only our signature (the client's token was
            // checked here): the cluster's secrets or clocks differ.
            Ok(reply) if reply.status == StatusCode::UNAUTHORIZED => {
                tracing::warn!(node = %owner.id, "a node refused this node's signed call: are the cluster secrets the same and the clocks within 30 s?");
                CallsError::cluster_unavailable("The node that owns this session refused this node")
                    .into_response()
            }
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
                CallsError::cluster_unavailable("The node that owns this session did not answer")
                    .into_response()
            }
        }
    }
}
