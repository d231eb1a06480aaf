//! DTLS handshakes off the control thread. A handshake's ECDHE and
//! signature are the heaviest per-join work; a join storm run on the
//! control thread would stall the API and the timers. A few handshake
//! threads own the sessions' [`DtlsTransport`]s instead, each session on
//! one thread (by its key), each thread with its own retransmission timers.
//!
//! Where it sits: beside the control thread. DTLS records reach the control
//! thread from the media workers and are passed on here as [`Job`]s; the
//! flights we send go straight to the worker that owns the 5-tuple; a
//! handshake's end (keys, or why it failed) goes back to the control thread
//! as [`EngineEvent::Handshake`].

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use rustc_hash::FxHashMap;
use tokio::sync::mpsc::Sender as EventSender;

use super::{DtlsIdentity, DtlsRole, DtlsTransport, Fingerprint};
use crate::engine::messages::{EngineEvent, WorkerCommand};
use crate::ids::{SessionKey, WorkerId};
use crate::worker::WorkerHandle;

/// A media worker and a client address: where a flight is sent.
pub type Route = (WorkerId, SocketAddr);

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
    /// The session is gone, or its transport failed.
    Close {
        /// The session.
        key: SessionKey,
    },
    /// The thread ends.
    Shutdown,
}

/// The handshake threads.
pub struct HandshakePool {
    jobs: Vec<Sender<Job>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl HandshakePool {
    /// Starts `threads` handshake threads (at least one). Flights go out
    /// through `workers`; handshake ends go to `events`.
    pub fn spawn(
        threads: usize,
        identity: Arc<DtlsIdentity>,
        workers: Vec<WorkerHandle>,
        events: EventSender<EngineEvent>,
    ) -> std::io::Result<Self> {
        let mut jobs = Vec::new();
        let mut handles = Vec::new();
        for i in 0..threads.max(1) {
            let (tx, rx) = crossbeam_channel::unbounded();
            let handshaker = Handshaker {
                identity: identity.clone(),
                workers: workers.clone(),
                events: events.clone(),
                sessions: FxHashMap::default(),
                timers: BinaryHeap::new(),
                timeouts: Default::default(),
            };
            let handle = std::thread::Builder::new()
                .name(format!("dtls-{i}"))
                .spawn(move || handshaker.run(&rx))?;
            jobs.push(tx);
            handles.push(handle);
        }
        Ok(HandshakePool {
            jobs,
            threads: Mutex::new(handles),
        })
    }

    /// Hands a job to the thread that owns its session.
    pub fn send(&self, job: Job) {
        let key = match &job {
            Job::Open { key, .. }
            | Job::Record { key, .. }
            | Job::Path { key, .. }
            | Job::Close { key } => *key,
            Job::Shutdown => return,
        };
        let thread = key.0 as usize % self.jobs.len();
        let _ = self.jobs[thread].send(job);
    }

    /// Ends the threads and waits for them.
    pub fn shutdown(&self) {
        for tx in &self.jobs {
            let _ = tx.send(Job::Shutdown);
        }
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for t in threads {
            let _ = t.join();
        }
    }
}

/// One session's handshake on its thread.
struct Handshake {
    dtls: DtlsTransport,
    fingerprints: Vec<Fingerprint>,
    role: DtlsRole,
    path: Option<Route>,
}

/// One handshake thread's state.
struct Handshaker {
    identity: Arc<DtlsIdentity>,
    workers: Vec<WorkerHandle>,
    events: EventSender<EngineEvent>,
    sessions: FxHashMap<SessionKey, Handshake>,
    /// Retransmission deadlines; an entry whose transport no longer has
    /// that deadline is skipped.
    timers: BinaryHeap<Reverse<(Instant, SessionKey)>>,
    /// Handshakes that timed out, logged once per [`LOG_INTERVAL`].
    timeouts: crate::logging::Repeats,
}

/// A repeating log line of a handshake thread is written at most this often.
const LOG_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

impl Handshaker {
    fn run(mut self, jobs: &Receiver<Job>) {
        loop {
            let now = Instant::now();
            self.fire_timers(now);
            let job = match self.timers.peek() {
                Some(Reverse((at, _))) => {
                    match jobs.recv_timeout(at.saturating_duration_since(now)) {
                        Ok(job) => job,
                        Err(RecvTimeoutError::Timeout) => continue,
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
                None => match jobs.recv() {
                    Ok(job) => job,
                    Err(_) => return,
                },
            };
            if !self.handle(job, Instant::now()) {
                return;
            }
        }
    }

    /// Handles one job; false on shutdown.
    fn handle(&mut self, job: Job, now: Instant) -> bool {
        match job {
            Job::Open {
                key,
                fingerprints,
                role,
                path,
                backlog,
            } => {
                let dtls = DtlsTransport::new(self.identity.clone(), fingerprints.clone(), role);
                self.sessions.insert(
                    key,
                    Handshake {
                        dtls,
                        fingerprints,
                        role,
                        path,
                    },
                );
                if path.is_some() {
                    self.start(key, now);
                }
                for (from, bytes) in backlog {
                    self.record(key, from, &bytes, now);
                }
            }
            Job::Record { key, from, bytes } => self.record(key, from, &bytes, now),
            Job::Path { key, path } => {
                if let Some(h) = self.sessions.get_mut(&key) {
                    h.path = Some(path);
                    self.start(key, now);
                }
            }
            Job::Close { key } => {
                self.sessions.remove(&key);
            }
            Job::Shutdown => return false,
        }
        true
    }

    /// As DTLS client, sends the ClientHello (nothing for a server).
    fn start(&mut self, key: SessionKey, now: Instant) {
        let Some(h) = self.sessions.get_mut(&key) else {
            return;
        };
        if let Err(e) = h.dtls.start(now) {
            tracing::warn!(session = key.0, error = %e, "DTLS client start");
        }
        self.flush(key, None);
    }

    fn record(&mut self, key: SessionKey, from: Route, bytes: &[u8], now: Instant) {
        let Some(h) = self.sessions.get_mut(&key) else {
            tracing::debug!(session = key.0, "DTLS record for a closed handshake");
            return;
        };
        let result = h.dtls.handle_datagram(now, bytes);
        // No data channel is negotiated yet (m=application is refused):
        // application data has no reader.
        while h.dtls.poll_application_data().is_some() {}
        tracing::debug!(
            session = key.0,
            len = bytes.len(),
            ok = result.is_ok(),
            "DTLS record"
        );
        let (result, flight) = match result {
            Ok(None) => return self.flush(key, Some(from)),
            Ok(Some(keys)) => {
                // Our last flight tells the client the handshake is done:
                // it goes out only once the control thread has installed
                // the keys and the session's fan-out, so that the client's
                // first media finds them.
                let mut flight = Vec::new();
                while let Some(d) = h.dtls.poll_transmit() {
                    flight.push(d.to_vec());
                }
                self.flush(key, Some(from));
                (Ok(Box::new(keys)), flight)
            }
            Err(e) => {
                self.flush(key, Some(from));
                (Err(e.to_string()), Vec::new())
            }
        };
        // The control thread must hear every end; it waits if its queue is full.
        let _ = self.events.blocking_send(EngineEvent::Handshake {
            key,
            from,
            result,
            flight,
        });
    }

    /// Retransmits the flights whose timers are due; a handshake whose
    /// retransmissions ran out starts over (the session expires if its
    /// client does not try again).
    fn fire_timers(&mut self, now: Instant) {
        while let Some(Reverse((at, key))) = self.timers.peek().copied() {
            if at > now {
                return;
            }
            self.timers.pop();
            let Some(h) = self.sessions.get_mut(&key) else {
                continue;
            };
            if h.dtls.poll_timeout().is_none_or(|t| t > now) {
                continue;
            }
            if let Err(e) = h.dtls.handle_timeout(now) {
                if let Some(left_out) = self.timeouts.allow(now, LOG_INTERVAL) {
                    tracing::warn!(session = key.0, error = %e, left_out, "DTLS handshake timed out (its client stopped answering); it starts over if the client tries again");
                }
                h.dtls = DtlsTransport::new(self.identity.clone(), h.fingerprints.clone(), h.role);
                if h.path.is_some()
                    && let Err(e) = h.dtls.start(now)
                {
                    tracing::warn!(session = key.0, error = %e, "DTLS client start");
                }
            }
            self.flush(key, None);
        }
    }

    /// Sends what the transport queued, through the worker the record came
    /// from (a client may start a new handshake from a new address), else
    /// along the path; then arms its timer.
    fn flush(&mut self, key: SessionKey, via: Option<Route>) {
        let Some(h) = self.sessions.get_mut(&key) else {
            return;
        };
        let route = via.or(h.path);
        while let Some(datagram) = h.dtls.poll_transmit() {
            tracing::debug!(session = key.0, len = datagram.len(), to = ?route, "DTLS send");
            if let Some((worker, to)) = route
                && let Some(w) = self.workers.get(worker.0)
            {
                w.send(WorkerCommand::Send {
                    to,
                    bytes: datagram.to_vec(),
                });
            }
        }
        if let Some(at) = h.dtls.poll_timeout() {
            self.timers.push(Reverse((at, key)));
        }
    }
}
