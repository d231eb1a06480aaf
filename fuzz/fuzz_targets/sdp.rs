//! SDP from clients (RFC 8866, RFC 8829 offers and answers) through the
//! control thread's negotiation: the input is a client offer, applied to a
//! new session with autoDiscover (every sending m-line becomes a pushed
//! track, pulled by a second session), and then the same text as the answer
//! to the second session's offer. Our own answer and offer must read back
//! with our parser.
#![no_main]

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use switchboard::calls::types::TrackObject;
use switchboard::control::negotiate::{self, Context};
use switchboard::control::registry::Registry;
use switchboard::dtls::DtlsIdentity;
use switchboard::ids::AppId;
use switchboard::sdp;

static IDENTITY: OnceLock<DtlsIdentity> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = sdp::parse(text);
    let Ok(offer) = negotiate::parse_description("offer", "offer", text, 64) else {
        return;
    };
    let identity = IDENTITY.get_or_init(|| DtlsIdentity::generate().expect("certificate"));
    let candidates = [SocketAddr::from(([127, 0, 0, 1], 40000))];
    let now = Instant::now();
    let ctx = Context {
        identity,
        candidates: &candidates,
        now,
    };
    let app = AppId::from("app");
    let mut reg = Registry::new([(app.clone(), "secret".to_owned())]);
    let publisher = reg.create_session(&app, now).expect("session");
    let mut items = Vec::new();
    let answer = negotiate::apply_offer(&mut reg, &app, publisher, &offer, &mut items, true, &ctx);
    if let Ok(answer) = answer {
        let read = sdp::parse(&answer).expect("our answer reads back");
        assert_eq!(
            read.media.len(),
            offer.media.len(),
            "one answer m-line per offered one"
        );
    }

    // A subscriber of every track the offer pushed; the text is its answer.
    let publisher_id = reg.session(publisher).expect("publisher").id.to_string();
    let subscriber = reg.create_session(&app, now).expect("session");
    let pulls: Vec<_> = items
        .iter()
        .filter(|i| i.error_code.is_none())
        .filter_map(|i| {
            let pull = TrackObject {
                location: Some("remote".into()),
                session_id: Some(publisher_id.clone()),
                track_name: i.track_name.clone(),
                ..TrackObject::default()
            };
            let (track, _) = switchboard::control::pulls::resolve_pull(&reg, &app, &pull)?;
            Some((track, pull))
        })
        .collect();
    let session = reg.session_mut(subscriber).expect("subscriber");
    for (track, pull) in &pulls {
        negotiate::add_pull(session, track, pull);
    }
    negotiate::add_data_channel_mline(session);
    let ours = negotiate::write_offer(session, &ctx);
    sdp::parse(&ours).expect("our offer reads back");
    let _ = negotiate::apply_answer(session, &offer, now);
});
