//! One DTLS thread: the handshakes of the sessions it owns (by key), their
//! retransmission timers, and the flights it sends through the media
//! workers. The same thread hosts each session's data channels once DTLS is
//! connected (`data_channels`).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crossbeam_channel::{Receiver, RecvTimeoutError};
use rustc_hash::FxHashMap;
use tokio::sync::mpsc::Sender as EventSender;

use super::{Job, JobQueues, Route};
use crate::datachannel::channels::SessionChannels;
use crate::datachannel::counters::DataChannelCounters;
use crate::dtls::{DtlsIdentity, DtlsRole, DtlsTransport, Fingerprint};
use crate::engine::counters::{Histogram, Milliseconds};
use crate::engine::messages::{EngineEvent, WorkerCommand};
use crate::ids::SessionKey;
use crate::worker::WorkerHandle;

/// One session's handshake on its thread.
pub(super) struct Handshake {
    pub(super) dtls: DtlsTransport,
    pub(super) fingerprints: Vec<Fingerprint>,
    pub(super) role: DtlsRole,
    pub(super) path: Option<Route>,
    /// Its data channels, once `m=application` was negotiated.
    pub(super) channels: Option<SessionChannels>,
    /// The deadline its entry in the timer heap has (one entry at a time).
    pub(super) armed: Option<Instant>,
    /// When its first record arrived; taken when the first handshake ends.
    pub(super) first_record: Option<Instant>,
    /// Whether a handshake completed (later ones are not timed).
    pub(super) completed: bool,
}

/// One handshake thread's state.
pub(super) struct Handshaker {
    /// This thread's index among the queues.
    pub(super) thread: usize,
    pub(super) queues: JobQueues,
    pub(super) counters: Arc<DataChannelCounters>,
    pub(super) handshake_time: Arc<Histogram<Milliseconds>>,
    pub(super) identity: Arc<DtlsIdentity>,
    pub(super) workers: Vec<WorkerHandle>,
    pub(super) events: EventSender<EngineEvent>,
    pub(super) sessions: FxHashMap<SessionKey, Handshake>,
    /// Deadlines of the transports' and channels' timers; an entry that is
    /// no longer its session's armed deadline is skipped.
    pub(super) timers: BinaryHeap<Reverse<(Instant, SessionKey)>>,
    /// Handshakes that timed out, logged once per [`LOG_INTERVAL`].
    pub(super) timeouts: crate::logging::Repeats,
    /// Workers sent datagrams since they were last woken.
    pub(super) to_wake: Vec<bool>,
    /// The share of deliveries dropped while this thread is behind.
    pub(super) overload: crate::datachannel::overload::Overload,
}

/// Jobs handled at most before the workers are woken for what they were sent.
const JOB_BATCH: usize = 64;

/// A repeating log line of a handshake thread is written at most this often.
const LOG_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

impl Handshaker {
    pub(super) fn run(mut self, jobs: &Receiver<Job>) {
        loop {
            let now = Instant::now();
            self.fire_timers(now);
            self.wake_workers();
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
            // Jobs that are already waiting go in the same batch: the
            // workers are woken once for all they were sent.
            for _ in 0..JOB_BATCH {
                let Ok(job) = jobs.try_recv() else { break };
                if !self.handle(job, Instant::now()) {
                    return;
                }
            }
            self.wake_workers();
        }
    }

    /// Wakes the workers that were sent datagrams since the last wake.
    fn wake_workers(&mut self) {
        for (w, woken) in self.to_wake.iter_mut().enumerate() {
            if std::mem::take(woken)
                && let Some(worker) = self.workers.get(w)
            {
                worker.wake();
            }
        }
    }

    /// Handles one job; false on shutdown.
    fn handle(&mut self, job: Job, now: Instant) -> bool {
        let waiting = self.queues.queued[self.thread].load(Ordering::Relaxed)
            + self.queues.deliveries[self.thread].load(Ordering::Relaxed);
        self.overload.update(now, waiting);
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
                        channels: None,
                        armed: None,
                        first_record: None,
                        completed: false,
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
            Job::Data { key, from, bytes } => {
                self.queues.queued[self.thread].fetch_sub(1, Ordering::Relaxed);
                self.record(key, from, &bytes, now);
            }
            Job::Channel { key, op } => self.channel_op(key, op, now),
            Job::Deliver { to, message } => {
                self.queues.delivered(self.thread, message.bytes.len());
                for target in to {
                    self.deliver(target, &message, now);
                }
            }
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
    pub(super) fn start(&mut self, key: SessionKey, now: Instant) {
        let Some(h) = self.sessions.get_mut(&key) else {
            return;
        };
        if let Err(e) = h.dtls.start(now) {
            tracing::warn!(session = key.0, error = %e, "DTLS client start");
        }
        self.flush(key, None);
    }

    pub(super) fn record(&mut self, key: SessionKey, from: Route, bytes: &[u8], now: Instant) {
        let Some(h) = self.sessions.get_mut(&key) else {
            tracing::debug!(session = key.0, "DTLS record for a closed handshake");
            return;
        };
        if !h.completed {
            h.first_record.get_or_insert(now);
        }
        let result = h.dtls.handle_datagram(now, bytes);
        tracing::trace!(
            session = key.0,
            len = bytes.len(),
            ok = result.is_ok(),
            "DTLS record"
        );
        let (result, flight) = match result {
            Ok(None) => return self.take_application_data(key, from, now),
            Ok(Some(keys)) => {
                if let Some(first) = h.first_record.take() {
                    let ms = now.saturating_duration_since(first).as_millis();
                    self.handshake_time
                        .observe(ms.min(u128::from(u64::MAX)) as u64);
                }
                h.completed = true;
                // Our last flight tells the client the handshake is done:
                // it goes out only once the control thread has installed
                // the keys and the session's fan-out, so that the client's
                // first media finds them.
                let mut flight = Vec::new();
                while let Some(d) = h.dtls.poll_transmit() {
                    flight.push(d);
                }
                if let Some(channels) = h.channels.as_mut() {
                    // The first handshake starts the association; a second
                    // one (a new DTLS association) starts it over.
                    channels.restart(now);
                    channels.start(now);
                }
                self.take_application_data(key, from, now);
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
    /// client does not try again). Runs the data channels' timers.
    fn fire_timers(&mut self, now: Instant) {
        while let Some(Reverse((at, key))) = self.timers.peek().copied() {
            if at > now {
                return;
            }
            self.timers.pop();
            let Some(h) = self.sessions.get_mut(&key) else {
                continue;
            };
            if h.armed != Some(at) {
                continue;
            }
            h.armed = None;
            if h.dtls.poll_timeout().is_some_and(|t| t <= now)
                && let Err(e) = h.dtls.handle_timeout(now)
            {
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
            if let Some(channels) = h.channels.as_mut()
                && channels.poll_timeout().is_some_and(|t| t <= now)
            {
                channels.handle_timeout(now);
            }
            self.drain_channels(key, None, now);
        }
    }

    /// Sends what the transport queued, through the worker the record came
    /// from (a client may start a new handshake from a new address), else
    /// along the path; then arms its timer.
    pub(super) fn flush(&mut self, key: SessionKey, via: Option<Route>) {
        let Some(h) = self.sessions.get_mut(&key) else {
            return;
        };
        let route = via.or(h.path);
        while let Some(datagram) = h.dtls.poll_transmit() {
            tracing::trace!(session = key.0, len = datagram.len(), to = ?route, "DTLS send");
            if let Some((worker, to)) = route
                && let Some(w) = self.workers.get(worker.0)
            {
                w.queue(WorkerCommand::Send {
                    to,
                    bytes: datagram,
                });
                if let Some(woken) = self.to_wake.get_mut(worker.0) {
                    *woken = true;
                }
            }
        }
        let next = h
            .dtls
            .poll_timeout()
            .into_iter()
            .chain(h.channels.as_ref().and_then(|c| c.poll_timeout()))
            .min();
        if let Some(at) = next
            && h.armed.is_none_or(|armed| at < armed)
        {
            h.armed = Some(at);
            self.timers.push(Reverse((at, key)));
        }
    }
}
