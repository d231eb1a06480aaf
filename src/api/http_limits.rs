//! Limits on HTTP clients: how long each part of a request may take, how
//! large its head and body may be, and how much of a refused body is still
//! read. With these, a client holds at most one connection slot, a bounded
//! buffer, and a file descriptor for a bounded time. The cap on concurrent
//! connections is configuration (`--http-max-connections`).

use std::time::Duration;

/// From a connection's accept, or from the first byte after an idle
/// keep-alive period, until the request head (request line and headers)
/// is complete. Past it the connection is closed without an answer.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// From the end of the request head until its body is complete. Past it
/// the request is answered 408 and the connection closed.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Added to [`BODY_READ_TIMEOUT`] for a request in progress before its
/// connection is closed without an answer: the time a handler has to
/// answer once the body is in.
pub const HANDLER_GRACE: Duration = Duration::from_secs(5);

/// A keep-alive connection with no request in progress is closed after
/// this long, counted from the end of the last answer.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest request head (request line and headers) in bytes, and the most
/// a connection buffers while reading; a longer head is answered 431 and
/// the connection closed.
pub const MAX_HEADER_BYTES: usize = 32 << 10;

/// Largest request body accepted. A larger declared length is refused with
/// 413 before any of the body is read; a chunked body is refused as soon as
/// it passes this size.
pub const BODY_LIMIT: usize = 1 << 20;

/// After answering a request whose body was not read (a refused body), the
/// connection sends its end and then discards at most this many more
/// bytes, so that a client still writing its body reads the answer rather
/// than a reset.
pub const LINGER_BYTES: usize = 4 << 20;

/// The longest a closing connection discards its client's bytes (see
/// [`LINGER_BYTES`]).
pub const LINGER_TIME: Duration = Duration::from_secs(2);

/// On shutdown, how long open connections get to finish their request.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// After an accept error that is not one connection's (e.g. out of file
/// descriptors), how long the listener waits before accepting again.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
