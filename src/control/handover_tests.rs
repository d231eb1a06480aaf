//! A session's path moving to a 5-tuple another worker receives, through
//! the control thread and two real engines: within one DTLS association the
//! old worker hands its state over and the new one adopts it (no fresh
//! Attach and Keys there); after a new handshake the new worker starts
//! afresh.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::Receiver;

use super::Control;
use super::session::TransportBinding;
use super::transport::Keys;
use crate::config::Limits;
use crate::dtls::DtlsIdentity;
use crate::dtls_threads::{HandshakePool, JobQueues};
use crate::engine::Engine;
use crate::engine::counters::Counters;
use crate::engine::ice_directory::IceDirectory;
use crate::engine::messages::WorkerCommand;
use crate::ids::{AppId, SessionKey, WorkerId};
use crate::srtp::SrtpKeys;
use crate::worker::WorkerHandle;

struct Harness {
    control: Arc<Control>,
    commands: Vec<Receiver<WorkerCommand>>,
    engines: Vec<Engine>,
    now: Instant,
}

impl Harness {
    fn new() -> Self {
        let (handles, commands): (Vec<_>, Vec<_>) =
            (0..2).map(|_| WorkerHandle::detached()).unzip();
        let identity = Arc::new(DtlsIdentity::generate().expect("identity"));
        let (events, _) = tokio::sync::mpsc::channel(16);
        let (queues, receivers) = JobQueues::new(1);
        let handshakes =
            HandshakePool::spawn(queues, receivers, identity.clone(), handles.clone(), events)
                .expect("handshake thread");
        let directory = Arc::new(IceDirectory::default());
        let now = Instant::now();
        let engines = (0..2)
            .map(|w| {
                Engine::new(
                    WorkerId(w),
                    2,
                    directory.clone(),
                    Arc::new(Counters::default()),
                    now,
                )
            })
            .collect();
        let control = Control::new(
            vec![(AppId("app".into()), "secret".into())],
            handles,
            identity,
            handshakes,
            directory,
            vec!["127.0.0.1:40000".parse().expect("addr")],
            Limits::default(),
        );
        Harness {
            control,
            commands,
            engines,
            now,
        }
    }

    /// A session connected on worker 1 at `addr`.
    fn connected(&mut self, addr: SocketAddr) -> SessionKey {
        let app = AppId("app".into());
        let (id, _) = self
            .control
            .new_session(&app, None, Default::default(), self.now)
            .expect("sessions/new");
        let key = {
            let mut st = self.control.lock();
            let key = st.reg.session_key(&app, &id).expect("session");
            let binding = TransportBinding {
                worker: WorkerId(1),
                addr,
                nominated: true,
            };
            self.control
                .switch_path(&mut st, key, binding, Keys::Same, self.now);
            self.control.on_connected(&mut st, key, keys(1), self.now);
            key
        };
        self.pump();
        key
    }

    /// Delivers commands to the engines and their events to the control
    /// thread until nothing moves; returns the commands each worker got,
    /// by name.
    fn pump(&mut self) -> Vec<Vec<&'static str>> {
        let mut got = vec![Vec::new(); 2];
        loop {
            let mut moved = false;
            for (w, engine) in self.engines.iter_mut().enumerate() {
                while let Ok(command) = self.commands[w].try_recv() {
                    got[w].push(name(&command));
                    engine.handle_command(command);
                    moved = true;
                }
                while let Some(event) = engine.poll_event() {
                    self.control.handle_event(event, self.now);
                    moved = true;
                }
            }
            if !moved {
                return got;
            }
        }
    }

    /// Moves `key`'s path to `worker`, at `addr`, with `keys`.
    fn switch(&self, key: SessionKey, worker: usize, addr: &str, keys: Keys) {
        let mut st = self.control.lock();
        let binding = TransportBinding {
            worker: WorkerId(worker),
            addr: addr.parse().unwrap(),
            nominated: true,
        };
        self.control
            .switch_path(&mut st, key, binding, keys, self.now);
    }

    /// A session connected on worker 1 moves to worker 0 with `keys`;
    /// returns the commands each worker got for the move.
    fn moved(keys: Keys) -> Vec<Vec<&'static str>> {
        let mut h = Harness::new();
        let key = h.connected("127.0.0.1:5001".parse().unwrap());
        h.switch(key, 0, "127.0.0.1:5002", keys);
        h.pump()
    }
}

/// Keys of one DTLS association.
fn keys(seed: u8) -> SrtpKeys {
    SrtpKeys {
        profile: rtc_srtp::protection_profile::ProtectionProfile::AeadAes128Gcm,
        local: (vec![seed; 16], vec![seed + 1; 12]),
        remote: (vec![seed + 2; 16], vec![seed + 3; 12]),
    }
}

fn name(command: &WorkerCommand) -> &'static str {
    match command {
        WorkerCommand::Attach { .. } => "Attach",
        WorkerCommand::Keys { .. } => "Keys",
        WorkerCommand::Media { .. } => "Media",
        WorkerCommand::Detach { .. } => "Detach",
        WorkerCommand::HandOver { .. } => "HandOver",
        WorkerCommand::Adopt { .. } => "Adopt",
        _ => "other",
    }
}

#[test]
fn within_one_association_the_state_moves_to_the_new_worker() {
    let got = Harness::moved(Keys::Same);
    assert!(got[1].contains(&"HandOver"), "{got:?}");
    assert!(!got[1].contains(&"Detach"), "{got:?}");
    assert!(got[0].contains(&"Adopt"), "{got:?}");
    assert!(
        !got[0].contains(&"Attach") && !got[0].contains(&"Keys"),
        "the adopted SRTP state stays: {got:?}"
    );
    // Its media follows it there.
    let adopt = got[0].iter().position(|c| *c == "Adopt").unwrap();
    assert!(got[0][adopt..].contains(&"Media"), "{got:?}");
}

#[test]
fn after_a_new_handshake_the_new_worker_starts_afresh() {
    let got = Harness::moved(Keys::New);
    assert_eq!(got[1], vec!["Detach"], "{got:?}");
    assert!(got[0].starts_with(&["Attach", "Keys"]), "{got:?}");
    assert!(!got[0].contains(&"Adopt"), "{got:?}");
}

#[test]
fn a_second_move_while_the_state_is_in_flight_sends_it_to_the_latest_path() {
    let mut h = Harness::new();
    let key = h.connected("127.0.0.1:5001".parse().unwrap());
    h.switch(key, 0, "127.0.0.1:5002", Keys::Same);
    // Before worker 1 reported the state, the client moved back to a
    // 5-tuple worker 1 receives.
    h.switch(key, 1, "127.0.0.1:5003", Keys::Same);
    let got = h.pump();
    assert_eq!(
        got[1].iter().filter(|c| **c == "HandOver").count(),
        1,
        "{got:?}"
    );
    assert!(got[1].contains(&"Adopt"), "{got:?}");
    for w in &got {
        assert!(
            !w.contains(&"Attach") && !w.contains(&"Keys"),
            "no fresh state anywhere: {got:?}"
        );
    }
}

#[test]
fn keys_of_a_handshake_completed_while_the_state_is_in_flight_follow_it() {
    let mut h = Harness::new();
    let key = h.connected("127.0.0.1:5001".parse().unwrap());
    h.switch(key, 0, "127.0.0.1:5002", Keys::Same);
    {
        let mut st = h.control.lock();
        h.control.on_connected(&mut st, key, keys(5), h.now);
    }
    let got = h.pump();
    let adopt = got[0].iter().position(|c| *c == "Adopt").expect("adopted");
    assert!(got[0][adopt..].contains(&"Keys"), "{got:?}");
}
