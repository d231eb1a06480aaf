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
//!
//! Once connected, the same thread runs the session's data channels (SCTP
//! inside its DTLS association, [`crate::datachannel`]): application-data
//! records come straight from the media workers ([`JobQueues::data`],
//! bounded), the control thread's wiring comes as [`Job::Channel`], and a
//! message for sessions of another thread goes there as [`Job::Deliver`]
//! (bounded too: a thread that is behind loses them, counted as
//! `overload`).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use rustc_hash::FxHashMap;
use tokio::sync::mpsc::Sender as EventSender;

use super::{DtlsIdentity, DtlsRole, DtlsTransport, Fingerprint};
use crate::datachannel::channels::{ChannelRef, Drops, Message, Output, SessionChannels};
use crate::datachannel::counters::DataChannelCounters;
use crate::datachannel::ops::{ChannelEvent, ChannelOp};
use crate::engine::counters::{Histogram, Milliseconds};
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

/// Application-data records queued to one thread at most: past this, a
/// media worker drops them (counted) and SCTP retransmits.
pub const DATA_QUEUE: usize = 4096;

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
    jobs: Arc<[Sender<Job>]>,
    /// Application-data records queued to each thread.
    queued: Arc<[AtomicUsize]>,
    /// [`Job::Deliver`]s queued to each thread, and their message bytes.
    deliveries: Arc<[AtomicUsize]>,
    delivery_bytes: Arc<[AtomicUsize]>,
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
    fn deliver(&self, thread: usize, to: Vec<ChannelRef>, message: Message) -> bool {
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
    fn delivered(&self, thread: usize, bytes: usize) {
        self.deliveries[thread].fetch_sub(1, Ordering::Relaxed);
        self.delivery_bytes[thread].fetch_sub(bytes, Ordering::Relaxed);
    }
}

/// The handshake threads.
pub struct HandshakePool {
    queues: JobQueues,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// What the data channels of all sessions counted.
    pub counters: Arc<DataChannelCounters>,
    /// How long first handshakes took: from the session's first DTLS
    /// record to its keys (the client's round trips included).
    pub handshake_time: Arc<Histogram<Milliseconds>>,
}

impl HandshakePool {
    /// Starts one thread per receiving end of `queues`. Flights go out
    /// through `workers`; handshake ends go to `events`.
    pub fn spawn(
        queues: JobQueues,
        receivers: Vec<Receiver<Job>>,
        identity: Arc<DtlsIdentity>,
        workers: Vec<WorkerHandle>,
        events: EventSender<EngineEvent>,
    ) -> std::io::Result<Self> {
        let mut handles = Vec::new();
        let counters = Arc::new(DataChannelCounters::default());
        let handshake_time = Arc::new(Histogram::default());
        for (i, rx) in receivers.into_iter().enumerate() {
            let handshaker = Handshaker {
                thread: i,
                counters: counters.clone(),
                handshake_time: handshake_time.clone(),
                queues: queues.clone(),
                identity: identity.clone(),
                workers: workers.clone(),
                events: events.clone(),
                sessions: FxHashMap::default(),
                timers: BinaryHeap::new(),
                timeouts: Default::default(),
                to_wake: vec![false; workers.len()],
                overload: Default::default(),
            };
            let handle =
                crate::supervise::spawn_critical(format!("dtls-{i}"), move || handshaker.run(&rx))?;
            handles.push(handle);
        }
        Ok(HandshakePool {
            queues,
            threads: Mutex::new(handles),
            counters,
            handshake_time,
        })
    }

    /// Hands a job to the thread that owns its session.
    pub fn send(&self, job: Job) {
        self.queues.send(job);
    }

    /// Ends the threads and waits for them.
    pub fn shutdown(&self) {
        for tx in self.queues.jobs.iter() {
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
    /// Its data channels, once `m=application` was negotiated.
    channels: Option<SessionChannels>,
    /// The deadline its entry in the timer heap has (one entry at a time).
    armed: Option<Instant>,
    /// When its first record arrived; taken when the first handshake ends.
    first_record: Option<Instant>,
    /// Whether a handshake completed (later ones are not timed).
    completed: bool,
}

/// One handshake thread's state.
struct Handshaker {
    /// This thread's index among the queues.
    thread: usize,
    queues: JobQueues,
    counters: Arc<DataChannelCounters>,
    handshake_time: Arc<Histogram<Milliseconds>>,
    identity: Arc<DtlsIdentity>,
    workers: Vec<WorkerHandle>,
    events: EventSender<EngineEvent>,
    sessions: FxHashMap<SessionKey, Handshake>,
    /// Deadlines of the transports' and channels' timers; an entry that is
    /// no longer its session's armed deadline is skipped.
    timers: BinaryHeap<Reverse<(Instant, SessionKey)>>,
    /// Handshakes that timed out, logged once per [`LOG_INTERVAL`].
    timeouts: crate::logging::Repeats,
    /// Workers sent datagrams since they were last woken.
    to_wake: Vec<bool>,
    /// The share of deliveries dropped while this thread is behind.
    overload: crate::datachannel::overload::Overload,
}

/// Jobs handled at most before the workers are woken for what they were sent.
const JOB_BATCH: usize = 64;

/// A repeating log line of a handshake thread is written at most this often.
const LOG_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

impl Handshaker {
    fn run(mut self, jobs: &Receiver<Job>) {
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
    fn start(&mut self, key: SessionKey, now: Instant) {
        let Some(h) = self.sessions.get_mut(&key) else {
            return;
        };
        if let Err(e) = h.dtls.start(now) {
            tracing::warn!(session = key.0, error = %e, "DTLS client start");
        }
        self.flush(key, None);
    }

    /// Applies a change to the session's data channels (the first makes
    /// them); they start once DTLS is connected.
    fn channel_op(&mut self, key: SessionKey, op: ChannelOp, now: Instant) {
        let Some(h) = self.sessions.get_mut(&key) else {
            return;
        };
        let channels = h
            .channels
            .get_or_insert_with(|| SessionChannels::new(h.dtls.role(), None));
        op.apply(channels, now);
        if h.dtls.is_connected() {
            channels.start(now);
        }
        self.drain_channels(key, None, now);
    }

    fn record(&mut self, key: SessionKey, from: Route, bytes: &[u8], now: Instant) {
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

    /// Passes the SCTP packets DTLS decrypted to the session's channels
    /// (dropped while none were negotiated); what answers goes back the way
    /// the record came.
    fn take_application_data(&mut self, key: SessionKey, from: Route, now: Instant) {
        let Some(h) = self.sessions.get_mut(&key) else {
            return;
        };
        while let Some(packet) = h.dtls.poll_application_data() {
            if let Some(channels) = h.channels.as_mut() {
                channels.handle_packet(now, &packet);
            }
        }
        self.drain_channels(key, Some(from), now);
    }

    /// After an input to a session's channels: their packets go into DTLS
    /// (and out `via`, else along the path), their forwards to the target
    /// sessions' threads, their state to the control thread.
    fn drain_channels(&mut self, key: SessionKey, via: Option<Route>, now: Instant) {
        let mut forwards = Vec::new();
        let mut events = Vec::new();
        if let Some(h) = self.sessions.get_mut(&key)
            && let Some(channels) = h.channels.as_mut()
        {
            while let Some(packet) = channels.poll_transmit() {
                if let Err(e) = h.dtls.send_application_data(now, &packet) {
                    tracing::debug!(session = key.0, error = %e, "SCTP packet not sent");
                }
            }
            let counts = channels.take_counts();
            self.counters
                .add(counts.received, counts.delivered, &counts.drops);
            while let Some(output) = channels.poll_output() {
                match output {
                    Output::Forward { to, message } => forwards.push((to, message)),
                    Output::Connected => events.push(ChannelEvent::Connected),
                    Output::Closed => events.push(ChannelEvent::Closed),
                    Output::ChannelClosed { id } => events.push(ChannelEvent::ChannelClosed { id }),
                }
            }
        }
        self.flush(key, via);
        for event in events {
            let _ = self
                .events
                .blocking_send(EngineEvent::DataChannels { key, event });
        }
        for (to, message) in forwards {
            self.forward(&to, message, now);
        }
    }

    /// Sends a message on a channel of one of this thread's sessions.
    fn deliver(&mut self, target: ChannelRef, message: &Message, now: Instant) {
        if let Some(channels) = self
            .sessions
            .get_mut(&target.session)
            .and_then(|h| h.channels.as_mut())
        {
            if self.overload.sheds() {
                channels.shed();
                return;
            }
            channels.deliver(now, target.id, message);
            self.drain_channels(target.session, None, now);
        }
    }

    /// Delivers a message to channels of this thread's sessions, and hands
    /// it to the other threads for theirs.
    /// (Nothing is allocated when every target is on this thread.)
    fn forward(&mut self, to: &[ChannelRef], message: Message, now: Instant) {
        let mut elsewhere: Vec<(usize, Vec<ChannelRef>)> = Vec::new();
        for target in to {
            let thread = self.queues.thread_of(target.session);
            if thread == self.thread {
                self.deliver(*target, &message, now);
                continue;
            }
            match elsewhere.iter_mut().find(|(t, _)| *t == thread) {
                Some((_, targets)) => targets.push(*target),
                None => elsewhere.push((thread, vec![*target])),
            }
        }
        let mut shed = Drops::default();
        for (thread, targets) in elsewhere {
            let n = targets.len() as u64;
            if !self.queues.deliver(thread, targets, message.clone()) {
                shed.overload += n;
            }
        }
        if shed.overload > 0 {
            self.counters.add(0, 0, &shed);
        }
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
    fn flush(&mut self, key: SessionKey, via: Option<Route>) {
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

#[cfg(test)]
#[path = "pool_tests.rs"]
mod tests;
