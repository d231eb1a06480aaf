//! The HTTP accept loop: at most `max_connections` connections are served
//! at once; beyond that, new ones wait unaccepted in the kernel's listen
//! queue (costing this process no file descriptor) until one closes.

use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use super::connection;
use super::limits::{ACCEPT_BACKOFF, SHUTDOWN_GRACE};

/// Serves `router` on `listener` until `shutdown` completes; then stops
/// accepting and gives open connections [`SHUTDOWN_GRACE`] to finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    max_connections: usize,
    shutdown: impl Future<Output = ()>,
) {
    let max_connections = max_connections.clamp(1, u32::MAX as usize);
    let slots = Arc::new(Semaphore::new(max_connections));
    let (stop_tx, stop_rx) = watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot,
            () = &mut shutdown => break,
        };
        let Ok(slot) = slot else { break };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        match accepted {
            Ok((stream, _peer)) => {
                let router = router.clone();
                let stop = stop_rx.clone();
                tokio::spawn(async move {
                    connection::serve(stream, router, stop).await;
                    drop(slot);
                });
            }
            Err(e) if is_per_connection(&e) => {}
            Err(e) => {
                tracing::warn!(error = %e, "accepting an HTTP connection");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
    drop(listener);
    let _ = stop_tx.send(());
    let all = u32::try_from(max_connections).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, slots.acquire_many(all)).await;
}

/// An accept error that concerns only the connection being accepted.
fn is_per_connection(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset | Interrupted
    )
}
