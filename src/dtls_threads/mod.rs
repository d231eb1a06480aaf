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

use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crossbeam_channel::Receiver;
use rustc_hash::FxHashMap;
use tokio::sync::mpsc::Sender as EventSender;

use crate::datachannel::counters::DataChannelCounters;
use crate::dtls::DtlsIdentity;
use crate::engine::counters::{Histogram, Milliseconds};
use crate::engine::messages::EngineEvent;
use crate::ids::WorkerId;
use crate::worker::WorkerHandle;

mod data_channels;
mod jobs;
mod thread;

pub use jobs::{DELIVER_QUEUE, DELIVER_QUEUE_BYTES, Job, JobQueues};
use thread::Handshaker;

/// A media worker and a client address: where a flight is sent.
pub type Route = (WorkerId, std::net::SocketAddr);

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
