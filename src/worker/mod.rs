//! Media workers: the only code with sockets, syscalls and the clock on the
//! media path. Each worker is a thread, pinned to a core, with its own UDP
//! socket bound to the shared media port with SO_REUSEPORT (the kernel
//! spreads client 5-tuples across workers), running a mio loop around its
//! sans-IO [`Engine`].
//!
//! Cross-worker hand-off: a lock-free bounded queue per (from, to) pair of
//! workers, and a mio waker per worker.

mod socket;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};
use crossbeam_queue::ArrayQueue;
use mio::{Events, Interest, Poll, Token, Waker};
use tokio::sync::mpsc::Sender as EventSender;
use tokio::sync::mpsc::error::TrySendError;

use crate::engine::Engine;
use crate::engine::counters::{Counters, DropReason};
use crate::engine::ice_directory::IceDirectory;
use crate::engine::messages::{EngineEvent, Handoff, WorkerCommand};
use crate::ids::{SessionKey, WorkerId};

const SOCKET: Token = Token(0);
const WAKER: Token = Token(1);
/// Capacity of one hand-off queue.
const RING_CAPACITY: usize = 8192;

/// Where a worker hands the application-data (SCTP) records it receives:
/// the DTLS thread that owns the session (`crate::dtls_threads`). The
/// worker knows it only through this call, so the threads may in turn send
/// through [`WorkerHandle`]s.
pub trait RecordSink: Send + Sync {
    /// Hands `bytes`, from `from` through this worker, to `key`'s DTLS
    /// thread; false (dropped, counted by the caller) when that thread is
    /// behind.
    fn data(&self, key: SessionKey, from: (WorkerId, SocketAddr), bytes: Vec<u8>) -> bool;
}

/// The control thread's handle on one worker.
#[derive(Clone)]
pub struct WorkerHandle {
    commands: Sender<WorkerCommand>,
    waker: Arc<Waker>,
    /// The worker's counters.
    pub counters: Arc<Counters>,
}

impl WorkerHandle {
    /// Sends a command and wakes the worker.
    pub fn send(&self, command: WorkerCommand) {
        if self.commands.send(command).is_ok() {
            let _ = self.waker.wake();
        }
    }

    /// Queues a command without waking the worker: for a sender with many
    /// in a row, which then calls [`Self::wake`] once.
    pub fn queue(&self, command: WorkerCommand) {
        let _ = self.commands.send(command);
    }

    /// Wakes the worker to read what was queued.
    pub fn wake(&self) {
        let _ = self.waker.wake();
    }
}

/// The hand-off queues between workers.
struct Rings {
    /// `queues[from][to]`.
    queues: Vec<Vec<ArrayQueue<Arc<Handoff>>>>,
    wakers: Vec<Arc<Waker>>,
}

/// The running workers.
pub struct Workers {
    /// One handle per worker, by index.
    pub handles: Vec<WorkerHandle>,
    /// The media port's actual address (port resolved when 0 was asked).
    pub local_addr: SocketAddr,
    threads: Vec<JoinHandle<()>>,
}

impl Workers {
    /// Starts `count` workers on `bind`, optionally pinned to cores.
    pub fn spawn(
        count: usize,
        bind: SocketAddr,
        pin: bool,
        directory: Arc<IceDirectory>,
        events: EventSender<EngineEvent>,
        dtls: Arc<dyn RecordSink>,
    ) -> io::Result<Self> {
        let count = count.max(1);
        let mut sockets = Vec::with_capacity(count);
        let first = socket::bind_reuse_port(bind)?;
        let local_addr = first.local_addr()?;
        sockets.push(first);
        for _ in 1..count {
            sockets.push(socket::bind_reuse_port(local_addr)?);
        }
        let mut polls = Vec::with_capacity(count);
        let mut wakers = Vec::with_capacity(count);
        for _ in 0..count {
            let poll = Poll::new()?;
            wakers.push(Arc::new(Waker::new(poll.registry(), WAKER)?));
            polls.push(poll);
        }
        let rings = Arc::new(Rings {
            queues: (0..count)
                .map(|_| (0..count).map(|_| ArrayQueue::new(RING_CAPACITY)).collect())
                .collect(),
            wakers: wakers.clone(),
        });
        let cores = if pin {
            core_affinity::get_core_ids().unwrap_or_default()
        } else {
            Vec::new()
        };
        let mut handles = Vec::with_capacity(count);
        let mut threads = Vec::with_capacity(count);
        for (i, (poll, socket)) in polls.into_iter().zip(sockets).enumerate() {
            let (tx, rx) = crossbeam_channel::unbounded();
            let counters = Arc::new(Counters::default());
            handles.push(WorkerHandle {
                commands: tx,
                waker: wakers[i].clone(),
                counters: counters.clone(),
            });
            let core = (!cores.is_empty()).then(|| cores[i % cores.len()]);
            let engine = Engine::new(
                WorkerId(i),
                count,
                directory.clone(),
                counters,
                Instant::now(),
            );
            let worker = Worker {
                id: i,
                batch: socket::BatchSender::new(),
                receiver: socket::BatchReceiver::new(),
                pending: Vec::with_capacity(socket::BATCH),
                to_wake: vec![false; count],
                poll,
                socket: mio::net::UdpSocket::from_std(socket),
                commands: rx,
                rings: rings.clone(),
                events: events.clone(),
                dtls: dtls.clone(),
                engine,
            };
            threads.push(crate::supervise::spawn_critical(
                format!("media-{i}"),
                move || {
                    if let Some(core) = core {
                        core_affinity::set_for_current(core);
                    }
                    if let Err(e) = worker.run() {
                        // Its sessions would be gone while the API still
                        // answers: end the process for the supervisor.
                        tracing::error!(worker = i, error = %e, exit = crate::supervise::EXIT_PANIC, "media worker stopped");
                        std::process::exit(crate::supervise::EXIT_PANIC);
                    }
                },
            )?);
        }
        Ok(Workers {
            handles,
            local_addr,
            threads,
        })
    }

    /// Stops every worker and waits for them.
    pub fn shutdown(self) {
        for h in &self.handles {
            h.send(WorkerCommand::Shutdown);
        }
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// Whole microseconds, for the latency histograms.
fn micros(d: std::time::Duration) -> u64 {
    d.as_micros().min(u128::from(u64::MAX)) as u64
}

struct Worker {
    id: usize,
    batch: socket::BatchSender,
    receiver: socket::BatchReceiver,
    pending: Vec<crate::engine::Transmit>,
    /// Workers handed packets since the last flush (reused, not reallocated).
    to_wake: Vec<bool>,
    poll: Poll,
    socket: mio::net::UdpSocket,
    commands: Receiver<WorkerCommand>,
    rings: Arc<Rings>,
    events: EventSender<EngineEvent>,
    /// The DTLS threads, for data-channel records.
    dtls: Arc<dyn RecordSink>,
    engine: Engine,
}

impl Worker {
    fn run(mut self) -> io::Result<()> {
        self.poll
            .registry()
            .register(&mut self.socket, SOCKET, Interest::READABLE)?;
        let mut events = Events::with_capacity(16);
        loop {
            let now = Instant::now();
            let timeout = self.engine.poll_timeout().saturating_duration_since(now);
            if let Err(e) = self.poll.poll(&mut events, Some(timeout))
                && e.kind() != io::ErrorKind::Interrupted
            {
                return Err(e);
            }
            let woke = Instant::now();
            // Read a batch, forward it, turn to the other inputs, until a
            // batch comes back short (every arrival wakes the poll again).
            let done = loop {
                let read = self.receiver.receive(&self.socket);
                let now = Instant::now();
                for i in 0..read {
                    let (from, datagram) = self.receiver.datagram(i);
                    self.engine.handle_datagram(now, from, datagram);
                }
                if self.service()? {
                    return Ok(());
                }
                // One clock read serves both histograms.
                let done = Instant::now();
                if read > 0 {
                    let counters = self.engine.counters();
                    Counters::add(&counters.receive_calls, 1);
                    counters.forwarding.observe(micros(done - now));
                }
                if read < socket::BATCH {
                    break done;
                }
            };
            self.engine
                .counters()
                .loop_busy
                .observe(micros(done - woke));
        }
    }

    /// Handles commands and hand-offs, then flushes outputs. Returns true
    /// when told to stop.
    fn service(&mut self) -> io::Result<bool> {
        while let Ok(command) = self.commands.try_recv() {
            if matches!(command, WorkerCommand::Shutdown) {
                return Ok(true);
            }
            self.engine.handle_command(command);
        }
        let waiting: usize = (0..self.rings.queues.len())
            .map(|from| self.rings.queues[from][self.id].len())
            .sum();
        Counters::set(&self.engine.counters().ring_occupancy, waiting as u64);
        for from in 0..self.rings.queues.len() {
            while let Some(handoff) = self.rings.queues[from][self.id].pop() {
                self.engine.handle_handoff(&handoff);
            }
        }
        self.engine.handle_timeout(Instant::now());
        self.flush();
        Ok(false)
    }

    fn flush(&mut self) {
        loop {
            self.pending.clear();
            while self.pending.len() < socket::BATCH {
                match self.engine.poll_transmit() {
                    Some(t) => self.pending.push(t),
                    None => break,
                }
            }
            if self.pending.is_empty() {
                break;
            }
            let sent = self.batch.send(&self.socket, &self.pending);
            let datagrams: usize = self.pending.iter().map(|t| t.count()).sum();
            let counters = self.engine.counters();
            Counters::add(&counters.packets_out, sent.datagrams as u64);
            Counters::add(&counters.send_calls, 1);
            Counters::add(&counters.gso_sends, sent.gso_messages as u64);
            counters.count_drops(
                DropReason::SendFailed,
                datagrams - sent.datagrams.min(datagrams),
            );
        }
        while let Some((to, handoff)) = self.engine.poll_handoff() {
            match self.rings.queues[self.id][to.0].push(handoff) {
                Ok(()) => {
                    Counters::add(&self.engine.counters().handoffs, 1);
                    self.to_wake[to.0] = true;
                }
                Err(_) => self.engine.counters().count_drop(DropReason::HandoffFull),
            }
        }
        // One wake-up per worker per flush, however many packets it got.
        for (w, wake) in self.to_wake.iter_mut().enumerate() {
            if std::mem::take(wake) {
                let _ = self.rings.wakers[w].wake();
            }
        }
        while let Some((key, from, bytes)) = self.engine.poll_data_record() {
            if !self.dtls.data(key, (WorkerId(self.id), from), bytes) {
                self.engine.counters().count_drop(DropReason::DataQueueFull);
            }
        }
        while let Some(event) = self.engine.poll_event() {
            // The queue to the control thread is bounded: when it is full
            // (the control thread is behind), events are dropped and
            // counted; ICE and DTLS recover by their own retransmissions.
            if let Err(TrySendError::Full(_)) = self.events.try_send(event) {
                self.engine
                    .counters()
                    .count_drop(DropReason::ControlQueueFull);
            }
        }
    }
}

impl WorkerHandle {
    /// A handle on no thread, and the receiving end of its commands: what
    /// the control thread sends can be counted (tests, fuzz targets).
    pub fn detached() -> (Self, Receiver<WorkerCommand>) {
        let (tx, rx) = crossbeam_channel::unbounded();
        let poll = Poll::new().expect("epoll");
        let waker = Arc::new(Waker::new(poll.registry(), WAKER).expect("eventfd"));
        let handle = WorkerHandle {
            commands: tx,
            waker,
            counters: Arc::new(Counters::default()),
        };
        (handle, rx)
    }
}
