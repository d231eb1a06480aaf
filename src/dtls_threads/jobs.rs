//! What the DTLS threads are asked to do ([`Job`]) and the queues that
//! carry it ([`JobQueues`]): one unbounded queue per thread for the control
//! thread's jobs, with bounded shares for what others may flood it with
//! (media workers' application-data records, other threads' deliveries).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crossbeam_channel::{Receiver, Sender};

use super::Route;
use crate::datachannel::channels::{ChannelRef, Message};
use crate::datachannel::ops::ChannelOp;
use crate::datachannel::overload::DATA_QUEUE;
use crate::dtls::{DtlsRole, Fingerprint};
use crate::ids::SessionKey;
use crate::worker::RecordSink;

/// What the control thread asks of a session's handshake.
#[derive(Debug)]
pub enum Job {
    /// The client's fingerprints are known: the transport is made, records
    /// that arrived before are replayed, and as DTLS client it starts once
    /// it has a path.
    Open {
        /// The session.
        key: SessionKey,
        /// Its client's certificate fingerprints (any may match).
        fingerprints: Vec<Fingerprint>,
        /// Our side of the handshake.
        role: DtlsRole,
        /// Its media path, if ICE found one.
        path: Option<Route>,
        /// Records received before the fingerprints were known, with where
        /// each came from.
        backlog: Vec<(Route, Vec<u8>)>,
    },
    /// A record from the client; what answers it goes back where it came from.
    Record {
        /// The session.
        key: SessionKey,
        /// The worker and address it came from.
        from: Route,
        /// The datagram.
        bytes: Vec<u8>,
    },
    /// The session's media path (re)found: timers retransmit there, and a
    /// DTLS client starts.
    Path {
        /// The session.
        key: SessionKey,
        /// The new path.
        path: Route,
    },
    /// An application-data record (SCTP) straight from a media worker.
    Data {
        /// The session.
        key: SessionKey,
        /// The worker and address it came from.
        from: Route,
        /// The datagram.
        bytes: Vec<u8>,
    },
    /// A change to the session's data channels.
    Channel {
        /// The session.
        key: SessionKey,
        /// The change.
        op: ChannelOp,
    },
    /// A message for channels of this thread's sessions.
    Deliver {
        /// The channels.
        to: Vec<ChannelRef>,
        /// The message.
        message: Message,
    },
    /// The session is gone, or its transport failed.
    Close {
        /// The session.
        key: SessionKey,
    },
    /// The thread ends.
    Shutdown,
}

/// Deliveries queued to one thread at most, and their bytes: past either,
/// a message for that thread's sessions is dropped (counted as `overload`:
/// the thread is behind).
pub const DELIVER_QUEUE: usize = 4096;
/// See [`DELIVER_QUEUE`].
pub const DELIVER_QUEUE_BYTES: usize = 64 << 20;

/// The handshake threads' queues, shared by the control thread, the
/// media workers and the threads themselves.
#[derive(Clone)]
pub struct JobQueues {
    pub(super) jobs: Arc<[Sender<Job>]>,
    /// Application-data records queued to each thread.
    pub(super) queued: Arc<[AtomicUsize]>,
    /// [`Job::Deliver`]s queued to each thread, and their message bytes.
    pub(super) deliveries: Arc<[AtomicUsize]>,
    pub(super) delivery_bytes: Arc<[AtomicUsize]>,
}

impl JobQueues {
    /// Queues for `threads` threads (at least one), and their receiving ends.
    pub fn new(threads: usize) -> (Self, Vec<Receiver<Job>>) {
        let (jobs, receivers): (Vec<_>, Vec<_>) = (0..threads.max(1))
            .map(|_| crossbeam_channel::unbounded())
            .unzip();
        let zeros = || (0..jobs.len()).map(|_| AtomicUsize::new(0)).collect();
        (
            JobQueues {
                queued: zeros(),
                deliveries: zeros(),
                delivery_bytes: zeros(),
                jobs: jobs.into(),
            },
            receivers,
        )
    }

    /// The thread that owns `key`.
    pub fn thread_of(&self, key: SessionKey) -> usize {
        key.0 as usize % self.jobs.len()
    }

    /// Hands a job to the thread that owns its session.
    pub fn send(&self, job: Job) {
        let key = match &job {
            Job::Open { key, .. }
            | Job::Record { key, .. }
            | Job::Data { key, .. }
            | Job::Channel { key, .. }
            | Job::Path { key, .. }
            | Job::Close { key } => *key,
            Job::Deliver { .. } | Job::Shutdown => return,
        };
        let _ = self.jobs[self.thread_of(key)].send(job);
    }

    /// Hands an application-data record to its session's thread; false
    /// (nothing sent) when that thread has [`DATA_QUEUE`] of them waiting.
    pub fn data(&self, key: SessionKey, from: Route, bytes: Vec<u8>) -> bool {
        let thread = self.thread_of(key);
        if self.queued[thread].fetch_add(1, Ordering::Relaxed) >= DATA_QUEUE {
            self.queued[thread].fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        let _ = self.jobs[thread].send(Job::Data { key, from, bytes });
        true
    }

    /// Hands a message for channels of `thread`'s sessions to it; false
    /// (nothing sent) when that thread has [`DELIVER_QUEUE`] deliveries or
    /// [`DELIVER_QUEUE_BYTES`] waiting.
    pub(super) fn deliver(&self, thread: usize, to: Vec<ChannelRef>, message: Message) -> bool {
        let bytes = message.bytes.len();
        let jobs = self.deliveries[thread].fetch_add(1, Ordering::Relaxed);
        let held = self.delivery_bytes[thread].fetch_add(bytes, Ordering::Relaxed);
        if jobs >= DELIVER_QUEUE || held + bytes > DELIVER_QUEUE_BYTES {
            self.delivered(thread, bytes);
            return false;
        }
        let _ = self.jobs[thread].send(Job::Deliver { to, message });
        true
    }

    /// `thread` took a delivery of `bytes` off its queue.
    pub(super) fn delivered(&self, thread: usize, bytes: usize) {
        self.deliveries[thread].fetch_sub(1, Ordering::Relaxed);
        self.delivery_bytes[thread].fetch_sub(bytes, Ordering::Relaxed);
    }
}

impl RecordSink for JobQueues {
    fn data(&self, key: SessionKey, from: Route, bytes: Vec<u8>) -> bool {
        JobQueues::data(self, key, from, bytes)
    }
}

#[cfg(test)]
#[path = "jobs_tests.rs"]
mod tests;
