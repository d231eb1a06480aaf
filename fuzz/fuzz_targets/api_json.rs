//! The API's JSON bodies through the control plane, as the HTTP routes
//! hand them over: each record is one call (which, from the tag; the body,
//! from the bytes) on a fresh control plane with one app, made for the
//! input. Sessions the calls create are the ones later calls name.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use switchboard::calls::CallsError;
use switchboard::config::Limits;
use switchboard::control::Control;
use switchboard::dtls::DtlsIdentity;
use switchboard::dtls_threads::{HandshakePool, JobQueues};
use switchboard::engine::ice_directory::IceDirectory;
use switchboard::ids::AppId;
use switchboard::worker::WorkerHandle;
use switchboard_fuzz::records;

static IDENTITY: OnceLock<Arc<DtlsIdentity>> = OnceLock::new();

/// As the routes read a body: blank means `{}`.
fn body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CallsError> {
    let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    serde_json::from_slice(text).map_err(|e| CallsError::decoding(e.to_string()))
}

/// A response or error serialises, as the route would send it.
fn answered<T: serde::Serialize>(result: Result<T, CallsError>) {
    if let Ok(value) = result {
        serde_json::to_vec(&value).expect("a response serialises");
    }
}

fuzz_target!(|data: &[u8]| {
    let identity = IDENTITY
        .get_or_init(|| Arc::new(DtlsIdentity::generate().expect("certificate")))
        .clone();
    let (handle, commands) = WorkerHandle::detached();
    let (events, _events) = tokio::sync::mpsc::channel(1024);
    let (queues, receivers) = JobQueues::new(1);
    let handshakes = HandshakePool::spawn(
        queues,
        receivers,
        identity.clone(),
        vec![handle.clone()],
        events,
    )
    .expect("handshake thread");
    let app = AppId::from("app");
    let control = Control::new(
        vec![(app.clone(), "secret".into())],
        vec![handle],
        identity,
        handshakes,
        Arc::new(IceDirectory::default()),
        vec!["127.0.0.1:40000".parse().expect("address")],
        Limits::default(),
    );
    let mut sessions: Vec<String> = Vec::new();
    let mut now = Instant::now();
    for r in records(data) {
        now += Duration::from_millis(u64::from(r.tag >> 4) * 100);
        let id = match sessions.len() {
            0 => "0123456789abcdef0123456789abcdef".to_owned(),
            n => sessions[usize::from(r.tag >> 4) % n].clone(),
        };
        let b = r.bytes;
        match r.tag % 10 {
            0 => {
                let created = body(b).and_then(|req| control.new_session(&app, None, req, now));
                if let Ok((id, answer)) = created {
                    serde_json::to_vec(&answer).expect("a response serialises");
                    sessions.push(id);
                }
            }
            1 => answered(body(b).and_then(|req| control.tracks_new(&app, &id, req, now))),
            2 => answered(body(b).and_then(|req| control.renegotiate(&app, &id, req, now))),
            3 => answered(body(b).and_then(|req| control.tracks_update(&app, &id, req, now))),
            4 => answered(body(b).and_then(|req| control.tracks_close(&app, &id, req, now))),
            5 => answered(control.get_session(&app, &id, now)),
            6 => answered(
                body(b).and_then(|req| control.datachannels_establish(&app, &id, req, now)),
            ),
            7 => answered(body(b).and_then(|req| control.datachannels_new(&app, &id, req, now))),
            8 => answered(body(b).and_then(|req| control.datachannels_update(&app, &id, req, now))),
            _ => answered(body(b).and_then(|req| control.datachannels_close(&app, &id, req, now))),
        }
        commands.try_iter().for_each(drop);
    }
    control.shutdown();
});
