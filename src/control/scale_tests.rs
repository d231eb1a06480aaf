//! The control plane's cost follows the change, not the crowd: with 20,000
//! sessions in one app, each operation sends the workers only what it
//! changed. Counted in commands, table swaps and sessions looked at; never
//! timed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use super::Control;
use super::session::TransportBinding;
use super::sync::SyncCounts;
use crate::calls::types::{TrackObject, TracksCloseRequest, TracksNewRequest};
use crate::config::Limits;
use crate::dtls::DtlsIdentity;
use crate::dtls_threads::{HandshakePool, JobQueues};
use crate::engine::ice_directory::IceDirectory;
use crate::engine::messages::WorkerCommand;
use crate::ids::{AppId, TrackKey, WorkerId};
use crate::srtp::SrtpKeys;
use crate::worker::WorkerHandle;

const SESSIONS: usize = 20_000;
const WORKERS: usize = 2;

struct Harness {
    control: Arc<Control>,
    commands: Vec<Receiver<WorkerCommand>>,
    app: AppId,
    now: Instant,
    next_port: u16,
}

/// What one operation sent.
#[derive(Debug, Default, PartialEq, Eq)]
struct Sent {
    media: usize,
    detach: usize,
    other: usize,
    table_swaps: u64,
    sessions_examined: u64,
}

impl Harness {
    fn new() -> Self {
        let (handles, commands): (Vec<_>, Vec<_>) =
            (0..WORKERS).map(|_| WorkerHandle::detached()).unzip();
        let app = AppId("app".into());
        let identity = Arc::new(DtlsIdentity::generate().expect("identity"));
        let (events, _) = tokio::sync::mpsc::channel(16);
        let (queues, receivers) = JobQueues::new(1);
        let handshakes =
            HandshakePool::spawn(queues, receivers, identity.clone(), handles.clone(), events)
                .expect("handshake thread");
        let control = Control::new(
            vec![(app.clone(), "secret".into())],
            handles,
            identity,
            handshakes,
            Arc::new(IceDirectory::default()),
            vec!["127.0.0.1:40000".parse().expect("addr")],
            Limits::default(),
        );
        Harness {
            control,
            commands,
            app,
            now: Instant::now(),
            next_port: 1,
        }
    }

    fn session(&self) -> String {
        let (id, _) = self
            .control
            .new_session(&self.app, None, Default::default(), self.now)
            .expect("sessions/new");
        id
    }

    /// Binds a session to `worker` and completes its "DTLS" (keys given).
    fn connect(&mut self, id: &str, worker: usize) {
        self.next_port = self.next_port.wrapping_add(1);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.next_port));
        let mut st = self.control.lock();
        let key = st.reg.session_key(&self.app, id).expect("session");
        if let Some(s) = st.reg.session_mut(key) {
            s.transport = Some(TransportBinding {
                worker: WorkerId(worker),
                addr,
                nominated: true,
            });
        }
        let keys = SrtpKeys {
            profile: rtc_srtp::protection_profile::ProtectionProfile::AeadAes128Gcm,
            local: (vec![1; 16], vec![2; 12]),
            remote: (vec![3; 16], vec![4; 12]),
        };
        self.control.on_connected(&mut st, key, keys, self.now);
    }

    fn push(&self, id: &str, name: &str) {
        // As if the client had answered the previous offer.
        {
            let mut st = self.control.lock();
            let key = st.reg.session_key(&self.app, id).expect("session");
            if let Some(s) = st.reg.session_mut(key) {
                s.signalling.answered();
            }
        }
        let req = TracksNewRequest {
            session_description: None,
            tracks: vec![TrackObject {
                location: Some("local".into()),
                track_name: Some(name.into()),
                kind: Some("video".into()),
                ..TrackObject::default()
            }],
            auto_discover: false,
        };
        let r = self.control.tracks_new(&self.app, id, req, self.now);
        assert!(r.expect("push").tracks[0].error_code.is_none());
    }

    fn pull(&self, id: &str, publisher: &str, name: &str) -> String {
        let req = TracksNewRequest {
            session_description: None,
            tracks: vec![TrackObject {
                location: Some("remote".into()),
                session_id: Some(publisher.into()),
                track_name: Some(name.into()),
                ..TrackObject::default()
            }],
            auto_discover: false,
        };
        let r = self.control.tracks_new(&self.app, id, req, self.now);
        let item = r.expect("pull").tracks.remove(0);
        assert!(item.error_code.is_none(), "{item:?}");
        item.mid.expect("mid")
    }

    /// tracks/close with force of one transceiver.
    fn close(&self, id: &str, mid: String) {
        let req = TracksCloseRequest {
            tracks: vec![TrackObject {
                mid: Some(mid),
                ..TrackObject::default()
            }],
            session_description: None,
            force: true,
        };
        let r = self.control.tracks_close(&self.app, id, req, self.now);
        assert!(r.expect("close").tracks[0].error_code.is_none());
    }

    fn track(&self, publisher: &str, name: &str) -> TrackKey {
        let st = self.control.lock();
        st.reg
            .find_track(&self.app, publisher, &crate::ids::TrackName(name.into()))
            .expect("track")
            .key()
    }

    /// Subscribers per worker in the track's current fan-out table.
    fn table(&self, track: TrackKey) -> Vec<usize> {
        let st = self.control.lock();
        let (_, p) = st.reg.track_owner(track).expect("owner");
        p.fanout.load().per_worker.iter().map(Vec::len).collect()
    }

    /// Runs `op`, then the end of the control-loop turn (the flush), and
    /// returns what went to the workers.
    fn measure(&mut self, op: impl FnOnce(&mut Self)) -> Sent {
        self.drain();
        let before = self.control.sync_counts();
        op(self);
        self.control.flush_fanout();
        let after = self.control.sync_counts();
        let mut sent = self.drain();
        sent.table_swaps = after.table_swaps - before.table_swaps;
        sent.sessions_examined = after.sessions_examined - before.sessions_examined;
        sent
    }

    fn drain(&self) -> Sent {
        let mut sent = Sent::default();
        for rx in &self.commands {
            for c in rx.try_iter() {
                match c {
                    WorkerCommand::Media { .. } => sent.media += 1,
                    WorkerCommand::Detach { .. } => sent.detach += 1,
                    _ => sent.other += 1,
                }
            }
        }
        sent
    }
}

#[test]
fn each_operation_sends_only_what_it_changed_among_20000_sessions() {
    let mut h = Harness::new();
    let publisher = h.session();
    h.push(&publisher, "cam");
    h.connect(&publisher, 0);
    let cam = h.track(&publisher, "cam");
    // The crowd: every other session pulls the camera, half on each worker.
    let mut subscribers = Vec::new();
    for i in 0..SESSIONS - 1 {
        let id = h.session();
        h.connect(&id, i % WORKERS);
        h.pull(&id, &publisher, "cam");
        subscribers.push(id);
    }
    h.control.flush_fanout();
    h.drain();
    assert_eq!(h.control.session_count(), SESSIONS);
    assert_eq!(h.table(cam), vec![SESSIONS / 2, SESSIONS / 2 - 1]);

    // sessions/new without an offer: nothing for the workers.
    let joined = h.measure(|h| {
        h.session();
    });
    assert_eq!(joined, Sent::default(), "sessions/new");

    // One more subscriber connects and pulls: its own media (twice: on
    // connect, then with the outlet) and one table swap.
    let late = h.session();
    let sent = h.measure(|h| {
        h.connect(&late, 1);
        h.pull(&late, &publisher, "cam");
    });
    assert_eq!((sent.media, sent.table_swaps), (2, 1), "{sent:?}");
    assert!(sent.sessions_examined <= 2, "{sent:?}");
    assert_eq!(h.table(cam), vec![SESSIONS / 2, SESSIONS / 2]);

    // 100 pulls of the same track in one turn: one swap.
    let batch: Vec<String> = (0..100).map(|_| h.session()).collect();
    for (i, id) in batch.iter().enumerate() {
        h.connect(id, i % WORKERS);
    }
    let sent = h.measure(|h| {
        for id in &batch {
            h.pull(id, &publisher, "cam");
        }
    });
    assert_eq!((sent.media, sent.table_swaps), (100, 1), "{sent:?}");
    assert_eq!(sent.sessions_examined, 100);
    assert_eq!(h.table(cam), vec![SESSIONS / 2 + 50, SESSIONS / 2 + 50]);

    // A subscriber closes its pull: its media, one swap.
    let leaving = subscribers[10].clone();
    let mid = {
        let st = h.control.lock();
        let key = st.reg.session_key(&h.app, &leaving).expect("key");
        st.reg.session(key).expect("session").transceivers[0]
            .mid
            .0
            .clone()
    };
    let sent = h.measure(|h| h.close(&leaving, mid));
    assert_eq!((sent.media, sent.table_swaps), (1, 1), "{sent:?}");
    assert_eq!(sent.sessions_examined, 1);

    // A subscriber removed: a Detach per worker, one swap, no media.
    let gone = subscribers[11].clone();
    let sent = h.measure(|h| {
        let mut st = h.control.lock();
        let key = st.reg.session_key(&h.app, &gone).expect("key");
        h.control.remove_session(&mut st, key);
    });
    assert_eq!(
        (sent.media, sent.detach, sent.table_swaps),
        (0, WORKERS, 1),
        "{sent:?}"
    );

    // The publisher pushes a second track: its own media, and the new
    // track's (empty) table; the camera's subscribers hear nothing.
    let sent = h.measure(|h| h.push(&publisher, "screen"));
    assert_eq!((sent.media, sent.table_swaps), (1, 1), "{sent:?}");
    assert_eq!(sent.sessions_examined, 1);

    // The publisher closes the camera: its media and the camera's table
    // (emptied), nothing per subscriber.
    let cam_mid = {
        let st = h.control.lock();
        st.reg.track_owner(cam).expect("owner").1.mid.0.clone()
    };
    let sent = h.measure(|h| h.close(&publisher, cam_mid));
    assert_eq!((sent.media, sent.table_swaps), (1, 1), "{sent:?}");
    assert_eq!(sent.sessions_examined, 1);
    assert!(h.table(cam).is_empty(), "a closed track forwards to no one");
}

#[test]
fn expiry_looks_only_at_what_is_due() {
    let mut h = Harness::new();
    let connected = h.session();
    h.connect(&connected, 0);
    {
        // Its client keeps answering our consent checks.
        let mut st = h.control.lock();
        let key = st.reg.session_key(&h.app, &connected).expect("key");
        if let Some(consent) = st.reg.session_mut(key).and_then(|s| s.consent.as_mut()) {
            consent.proven(h.now + Duration::from_secs(60));
        }
    }
    for _ in 0..SESSIONS - 1 {
        h.session();
    }
    let before = h.control.sync_counts();
    // Before the timeout: nothing expires, nothing is looked at.
    h.control.handle_tick(h.now + Duration::from_secs(59));
    assert_eq!(h.control.session_count(), SESSIONS);
    assert_eq!(h.control.sync_counts(), before);
    // After it: at most 500 per tick, oldest first; the connected one stays.
    let later = h.now + Duration::from_secs(61);
    h.drain();
    h.control.handle_tick(later);
    assert_eq!(h.control.session_count(), SESSIONS - 500);
    let sent = h.drain();
    assert_eq!(sent.detach, 500 * WORKERS, "one Detach per worker each");
    let mut ticks = 1;
    while h.control.session_count() > 1 {
        h.control.handle_tick(later);
        ticks += 1;
        assert!(ticks <= SESSIONS / 500 + 1);
    }
    let after: SyncCounts = h.control.sync_counts();
    assert_eq!(
        after.sessions_examined - before.sessions_examined,
        (SESSIONS - 1) as u64,
        "each expired session is looked at once"
    );
    assert_eq!(after.media_commands, before.media_commands);
    let st = h.control.lock();
    assert!(st.reg.session_key(&h.app, &connected).is_some());
}

#[test]
fn a_keyframe_request_inside_the_window_is_sent_when_it_ends() {
    let mut h = Harness::new();
    let publisher = h.session();
    h.push(&publisher, "cam");
    h.connect(&publisher, 0);
    let cam = h.track(&publisher, "cam");
    let requests = |h: &Harness| {
        h.commands
            .iter()
            .flat_map(|rx| rx.try_iter())
            .filter(|c| matches!(c, WorkerCommand::RequestKeyframe { track, .. } if *track == cam))
            .count()
    };
    h.drain();
    let t0 = h.now + Duration::from_secs(5);
    {
        let mut st = h.control.lock();
        h.control.request_keyframe(&mut st, cam, t0);
        h.control
            .request_keyframe(&mut st, cam, t0 + Duration::from_millis(100));
        h.control
            .request_keyframe(&mut st, cam, t0 + Duration::from_millis(200));
    }
    assert_eq!(requests(&h), 1, "one at once, the others wait");
    h.control.handle_tick(t0 + Duration::from_millis(400));
    assert_eq!(requests(&h), 0, "the window has not ended");
    h.control.handle_tick(t0 + Duration::from_millis(500));
    assert_eq!(requests(&h), 1, "the waiting ones, as one");
    h.control.handle_tick(t0 + Duration::from_millis(1200));
    assert_eq!(requests(&h), 0, "nothing waits any more");
}
