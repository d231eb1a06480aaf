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
use super::http_limits::{ACCEPT_BACKOFF, SHUTDOWN_GRACE};

/// How many connections are served at once.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// In all.
    pub max: usize,
    /// From one client address (`None`: no cap of its own).
    pub per_address: Option<usize>,
}

/// Connections open per client address (an IPv6 client by its /64: one
/// host holds a whole /64).
#[derive(Default)]
struct PerAddress(Mutex<HashMap<IpAddr, usize>>);

/// One connection counted against its address; uncounted when dropped
/// (also when its task unwinds).
struct Entered {
    open: Arc<PerAddress>,
    key: IpAddr,
}

impl Drop for Entered {
    fn drop(&mut self) {
        let mut open = self.open.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

impl PerAddress {
    /// Counts a connection from `ip`, unless its address holds `cap`
    /// already.
    fn enter(self: &Arc<Self>, ip: IpAddr, cap: usize) -> Option<Entered> {
        let key = match ip.to_canonical() {
            IpAddr::V6(v6) => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
            v4 => v4,
        };
        let mut open = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(key).or_default();
        if *n >= cap {
            return None;
        }
        *n += 1;
        Some(Entered {
            open: self.clone(),
            key,
        })
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
                let entered = match limits.per_address {
                    Some(cap) => match per_address.enter(peer.ip(), cap) {
                        Some(entered) => Some(entered),
                        None => {
                            tracing::debug!(ip = %peer.ip(), "HTTP connection over the per-address cap: closed");
                            continue;
                        }
                    },
                    None => None,
                };
                let router = router.clone();
                let signals = Signals {
                    stop: stop_rx.clone(),
                    reclaim: reclaim_rx.clone(),
                };
                tokio::spawn(async move {
                    connection::serve(stream, router, signals).await;
                    drop((entered, slot));
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
