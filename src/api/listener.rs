//! The HTTP accept loop: at most `max` connections are served at once;
//! beyond that, new ones wait unaccepted in the kernel's listen queue
//! (costing this process no file descriptor) until one closes. While every
//! slot is taken, connections idle between requests (keep-alive) are
//! closed, so idle clients cannot hold the server's slots from others; and
//! one address may hold at most `per_address` of them (when set).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use super::connection::{self, Signals};
use super::limits::{ACCEPT_BACKOFF, SHUTDOWN_GRACE};

/// How many connections are served at once.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// In all.
    pub max: usize,
    /// From one client address (`None`: no cap of its own).
    pub per_address: Option<usize>,
}

/// Connections open per client address.
#[derive(Default)]
struct PerAddress(Mutex<HashMap<IpAddr, usize>>);

impl PerAddress {
    /// Counts a connection from `ip`, unless it holds `cap` already.
    fn enter(&self, ip: IpAddr, cap: usize) -> bool {
        let mut open = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(ip).or_default();
        if *n >= cap {
            return false;
        }
        *n += 1;
        true
    }

    /// A connection from `ip` ended.
    fn leave(&self, ip: IpAddr) {
        let mut open = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&ip);
            }
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes; then stops
/// accepting and gives open connections [`SHUTDOWN_GRACE`] to finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    let max_connections = limits.max.clamp(1, u32::MAX as usize);
    let slots = Arc::new(Semaphore::new(max_connections));
    let per_address = Arc::new(PerAddress::default());
    let (stop_tx, stop_rx) = watch::channel(());
    let (reclaim_tx, reclaim_rx) = watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        if slots.available_permits() == 0 {
            // Full: idle keep-alive connections make room.
            reclaim_tx.send_replace(());
        }
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
            Ok((stream, peer)) => {
                let ip = peer.ip().to_canonical();
                if let Some(cap) = limits.per_address
                    && !per_address.enter(ip, cap)
                {
                    tracing::debug!(%ip, "HTTP connection over the per-address cap: closed");
                    continue;
                }
                let router = router.clone();
                let signals = Signals {
                    stop: stop_rx.clone(),
                    reclaim: reclaim_rx.clone(),
                };
                let per_address = per_address.clone();
                tokio::spawn(async move {
                    connection::serve(stream, router, signals).await;
                    if limits.per_address.is_some() {
                        per_address.leave(ip);
                    }
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
