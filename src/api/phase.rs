//! What an HTTP connection is waiting for, and until when: the head of a
//! request ([`HEADER_READ_TIMEOUT`]), the rest of a request in progress
//! ([`BODY_READ_TIMEOUT`] plus [`HANDLER_GRACE`]), or the next request
//! ([`IDLE_TIMEOUT`]). The connection's task closes it once the deadline of
//! its phase passes; [`Watched`] moves an idle connection to the head phase
//! when its next request's first byte arrives.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::http_limits::{BODY_READ_TIMEOUT, HANDLER_GRACE, HEADER_READ_TIMEOUT, IDLE_TIMEOUT};

/// A connection's phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// Waiting for a request head to complete.
    Head,
    /// A request is being read, handled or answered.
    Request,
    /// Between requests (keep-alive).
    Idle,
}

impl Phase {
    /// How long a connection may stay in this phase.
    pub fn limit(self) -> Duration {
        match self {
            Phase::Head => HEADER_READ_TIMEOUT,
            Phase::Request => BODY_READ_TIMEOUT + HANDLER_GRACE,
            Phase::Idle => IDLE_TIMEOUT,
        }
    }

    fn from_u8(v: u8) -> Phase {
        match v {
            0 => Phase::Head,
            1 => Phase::Request,
            _ => Phase::Idle,
        }
    }
}

/// One connection's phase and when it began, shared by its I/O, its
/// service and its task (all on the control thread).
#[derive(Debug)]
pub struct Phases {
    opened: Instant,
    phase: AtomicU8,
    /// When the phase began, in milliseconds since `opened`.
    since_ms: AtomicU64,
}

impl Phases {
    /// A connection accepted at `now`: waiting for its first request head.
    pub fn new(now: Instant) -> Self {
        Phases {
            opened: now,
            phase: AtomicU8::new(Phase::Head as u8),
            since_ms: AtomicU64::new(0),
        }
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::Relaxed))
    }

    /// When the current phase runs out.
    pub fn deadline(&self) -> Instant {
        let since = Duration::from_millis(self.since_ms.load(Ordering::Relaxed));
        self.opened + since + self.phase().limit()
    }

    fn enter(&self, phase: Phase) {
        let since = Instant::now().saturating_duration_since(self.opened);
        let ms = u64::try_from(since.as_millis()).unwrap_or(u64::MAX);
        self.since_ms.store(ms, Ordering::Relaxed);
        self.phase.store(phase as u8, Ordering::Relaxed);
    }

    /// A request head was read: its handler runs now.
    pub fn request_started(&self) {
        self.enter(Phase::Request);
    }

    /// The handler answered: the connection waits for the next request.
    pub fn answered(&self) {
        self.enter(Phase::Idle);
    }

    /// Bytes arrived: on an idle connection they begin a request head.
    fn bytes_read(&self) {
        if self.phase() == Phase::Idle {
            self.enter(Phase::Head);
        }
    }
}

/// A connection's byte stream, reporting reads to its [`Phases`].
#[derive(Debug)]
pub struct Watched<T> {
    inner: T,
    phases: Arc<Phases>,
}

impl<T> Watched<T> {
    /// Wraps `inner`.
    pub fn new(inner: T, phases: Arc<Phases>) -> Self {
        Watched { inner, phases }
    }

    /// The stream back.
    pub fn into_inner(self) -> T {
        self.inner
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.phases.bytes_read();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_move_deadlines() {
        let now = Instant::now();
        let p = Phases::new(now);
        assert_eq!(p.phase(), Phase::Head);
        assert_eq!(p.deadline(), now + HEADER_READ_TIMEOUT);
        p.bytes_read();
        assert_eq!(p.phase(), Phase::Head, "bytes of a head do not extend it");
        assert_eq!(p.deadline(), now + HEADER_READ_TIMEOUT);
        p.request_started();
        assert_eq!(p.phase(), Phase::Request);
        p.bytes_read();
        assert_eq!(
            p.phase(),
            Phase::Request,
            "body bytes keep the request phase"
        );
        p.answered();
        assert_eq!(p.phase(), Phase::Idle);
        assert!(p.deadline() >= now + IDLE_TIMEOUT);
        p.bytes_read();
        assert_eq!(p.phase(), Phase::Head, "the next request's first byte");
        assert!(p.deadline() < now + IDLE_TIMEOUT);
    }
}
