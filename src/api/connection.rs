//! Serving one HTTP/1.1 connection: hyper with the head size limit, the
//! deadlines of [`super::phase`], graceful shutdown, and a bounded linger
//! after the server ends a connection whose client may still be sending.

use std::future::poll_fn;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::{Service as _, service_fn};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::http_limits::{LINGER_BYTES, LINGER_TIME, MAX_HEADER_BYTES};
use super::phase::{Phase, Phases, Watched};

/// What the accept loop tells every connection.
pub struct Signals {
    /// The server stops.
    pub stop: watch::Receiver<()>,
    /// Every slot is taken: a connection between requests ends.
    pub reclaim: watch::Receiver<()>,
}

/// How long an idle connection ended for another client's sake discards
/// what its client still sends (a request that crossed the end).
const RECLAIM_LINGER: std::time::Duration = std::time::Duration::from_millis(100);

/// Serves `stream` until the client or the server ends it, a phase
/// deadline passes, `stop` fires (then a request in progress is answered
/// first; a connection between requests ends at once), or `reclaim` fires
/// while it is between requests.
pub async fn serve(stream: TcpStream, router: Router, signals: Signals) {
    let Signals {
        mut stop,
        mut reclaim,
    } = signals;
    reclaim.mark_unchanged();
    let phases = Arc::new(Phases::new(Instant::now()));
    let peer = stream.peer_addr().ok();
    let io = TokioIo::new(Watched::new(stream, phases.clone()));
    let routes = TowerToHyperService::new(router);
    let service_phases = phases.clone();
    let service = service_fn(move |mut request: hyper::Request<Incoming>| {
        service_phases.request_started();
        if let Some(peer) = peer {
            request
                .extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
        }
        let answer = routes.call(request);
        let phases = service_phases.clone();
        Box::pin(async move {
            let response = answer.await;
            phases.answered();
            response
        })
    });
    let mut connection = http1::Builder::new()
        // The deadlines of `Phases` replace hyper's own header timer, which
        // would also close idle keep-alive connections.
        .header_read_timeout(None)
        .max_buf_size(MAX_HEADER_BYTES)
        .max_header_size(MAX_HEADER_BYTES)
        .serve_connection(io, service);
    let mut stopping = false;
    // Ended to give its slot to another client: it lingers only briefly.
    let mut reclaimed = false;
    let ended = loop {
        let deadline = phases.deadline();
        tokio::select! {
            ended = poll_fn(|cx| connection.poll_without_shutdown(cx)) => break ended,
            () = tokio::time::sleep_until(deadline.into()) => {
                if phases.deadline() <= Instant::now() {
                    tracing::debug!(phase = ?phases.phase(), "HTTP connection timed out");
                    return;
                }
            }
            Ok(()) = reclaim.changed(), if !stopping => {
                // Ended like a stop between requests: a request that has
                // arrived meanwhile is answered, then the connection ends
                // (lingering, so that nothing unread resets it).
                if phases.phase() == Phase::Idle {
                    tracing::debug!("idle HTTP connection ends: every slot is taken");
                    stopping = true;
                    reclaimed = true;
                    std::pin::Pin::new(&mut connection).graceful_shutdown();
                }
            }
            _ = stop.changed(), if !stopping => {
                // Only a request in progress is finished.
                if phases.phase() != Phase::Request {
                    return;
                }
                stopping = true;
                std::pin::Pin::new(&mut connection).graceful_shutdown();
            }
        }
    };
    match ended {
        Ok(()) => {
            let time = if reclaimed {
                RECLAIM_LINGER
            } else {
                LINGER_TIME
            };
            linger(connection.into_parts().io.into_inner().into_inner(), time).await
        }
        Err(e) => tracing::debug!(error = %e, "HTTP connection"),
    }
}

/// Ends a connection the server is done with: sends its end, then discards
/// what the client still sends (at most [`LINGER_BYTES`] for at most
/// [`LINGER_TIME`]) until the client ends too. Closing with unread bytes
/// would reset the connection, and a client still writing a refused body
/// would see the reset instead of the answer.
async fn linger(stream: TcpStream, time: std::time::Duration) {
    if socket2::SockRef::from(&stream)
        .shutdown(std::net::Shutdown::Write)
        .is_err()
    {
        return;
    }
    let mut left = LINGER_BYTES;
    let mut sink = vec![0u8; 16 << 10];
    let discard = async {
        while left > 0 {
            if stream.readable().await.is_err() {
                return;
            }
            match stream.try_read(&mut sink) {
                Ok(0) => return,
                Ok(n) => left = left.saturating_sub(n),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
    };
    let _ = tokio::time::timeout(time, discard).await;
}
