//! Shared test helpers: an in-process server on loopback, a small HTTP
//! client for the Calls API, and a str0m peer (an independent WebRTC stack)
//! driven over a real UDP socket.
#![allow(dead_code)]

pub mod binary;
pub mod browser;
pub mod cluster;
pub mod dtls_pair;
pub mod http;
pub mod media;
pub mod sdp_text;
pub mod ws_endpoint;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use switchboard::config::Config;
use switchboard::server::Server;

/// A server on 127.0.0.1 with ephemeral ports.
pub fn server(workers: usize) -> Server {
    Server::start(Config::loopback(workers)).expect("server starts")
}

/// One metric's value (the first series of that name, labels included
/// when given) from the server whose HTTP base is `http`.
pub fn metric_at(http: &str, name: &str) -> Option<f64> {
    let text = ureq::get(&format!("{http}/metrics"))
        .call()
        .ok()?
        .body_mut()
        .read_to_string()
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// The Calls API of one app.
pub struct Api {
    pub base: String,
    pub secret: String,
    agent: ureq::Agent,
}

impl Api {
    pub fn new(server: &Server) -> Self {
        let (app, secret) = server.app();
        Self::at(&format!("http://{}", server.http_addr), app, secret)
    }

    /// The API of `app` on the server at `http` (`http://host:port`).
    pub fn at(http: &str, app: &str, secret: &str) -> Self {
        Api {
            base: format!("{http}/v1/apps/{app}"),
            secret: secret.to_owned(),
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(10)))
                .build()
                .into(),
        }
    }

    /// Sends a request with the app's bearer token; returns status and JSON.
    pub fn call(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        self.call_with(
            method,
            &format!("{}{path}", self.base),
            Some(&self.secret),
            body,
        )
    }

    /// Sends a request to any URL with any token.
    pub fn call_with(
        &self,
        method: &str,
        url: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (u16, Value) {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut response = match method {
            "GET" => {
                let mut r = self.agent.get(url);
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.call()
            }
            "POST" | "PUT" => {
                let mut r = if method == "POST" {
                    self.agent.post(url)
                } else {
                    self.agent.put(url)
                };
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.header("Content-Type", "text/plain;charset=UTF-8")
                    .send(body.unwrap_or(""))
            }
            _ => panic!("method {method}"),
        }
        .expect("HTTP request");
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let text = response.body_mut().read_to_string().expect("body");
        assert_eq!(
            content_type, "application/json",
            "{method} {url}: {status} {text}"
        );
        (status, serde_json::from_str(&text).expect("JSON body"))
    }

    /// POST sessions/new; the session id.
    pub fn new_session(&self) -> String {
        let (status, body) = self.call("POST", "/sessions/new", None);
        assert_eq!(status, 201, "{body}");
        body["sessionId"].as_str().expect("sessionId").to_owned()
    }

    /// POST tracks/new.
    pub fn tracks_new(&self, session: &str, body: Value) -> (u16, Value) {
        self.call(
            "POST",
            &format!("/sessions/{session}/tracks/new"),
            Some(&body.to_string()),
        )
    }

    /// PUT renegotiate with an answer.
    pub fn renegotiate(&self, session: &str, sdp: &str) -> (u16, Value) {
        let body = json!({"sessionDescription": {"type": "answer", "sdp": sdp}});
        self.call(
            "PUT",
            &format!("/sessions/{session}/renegotiate"),
            Some(&body.to_string()),
        )
    }

    /// GET sessions/{id}.
    pub fn get_session(&self, session: &str) -> Value {
        let (status, body) = self.call("GET", &format!("/sessions/{session}"), None);
        assert_eq!(status, 200, "{body}");
        body
    }
}

/// Decides which received datagrams a peer drops.
pub type DropFilter = Box<dyn FnMut(&[u8]) -> bool>;

/// A str0m peer on a loopback UDP socket.
pub struct Peer {
    pub name: &'static str,
    pub rtc: Rtc,
    pub socket: UdpSocket,
    pub addr: SocketAddr,
    pub events: Vec<Event>,
    pub connected: bool,
    /// Received datagrams for which this returns true are dropped (loss injection).
    pub drop_incoming: Option<DropFilter>,
    /// Datagrams to send for which this returns true are not sent (loss injection).
    pub drop_outgoing: Option<DropFilter>,
    timeout: Instant,
}

impl Peer {
    /// A peer that speaks Opus and VP8.
    pub fn new(name: &'static str) -> Self {
        Self::with_codecs(name, |c| c.enable_opus(true, false).enable_vp8(true))
    }

    /// A peer that speaks the codecs `codecs` enables on an empty list.
    pub fn with_codecs(
        name: &'static str,
        codecs: impl FnOnce(str0m::RtcConfig) -> str0m::RtcConfig,
    ) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
        socket.set_nonblocking(true).expect("nonblocking");
        let addr = socket.local_addr().expect("addr");
        let mut rtc = codecs(Rtc::builder().clear_codecs())
            .set_stats_interval(Some(Duration::from_millis(250)))
            .build(Instant::now());
        rtc.add_local_candidate(Candidate::host(addr, "udp").expect("candidate"));
        Peer {
            name,
            rtc,
            socket,
            addr,
            events: Vec::new(),
            connected: false,
            drop_incoming: None,
            drop_outgoing: None,
            timeout: Instant::now(),
        }
    }

    /// Drains outputs: sends transmits, keeps events, notes the timeout.
    pub fn drain(&mut self) {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    self.timeout = t;
                    return;
                }
                Ok(Output::Transmit(t)) => {
                    if self.drop_outgoing.as_mut().is_some_and(|f| f(&t.contents)) {
                        continue;
                    }
                    let _ = self.socket.send_to(&t.contents, t.destination);
                }
                Ok(Output::Event(e)) => {
                    if matches!(e, Event::Connected) {
                        self.connected = true;
                    }
                    self.events.push(e);
                }
                Err(e) => panic!("{}: str0m error {e:?}", self.name),
            }
        }
    }

    /// Feeds received datagrams and due timeouts; returns whether anything happened.
    pub fn step(&mut self) -> bool {
        let mut buf = [0u8; 2000];
        let mut busy = false;
        while let Ok((n, from)) = self.socket.recv_from(&mut buf) {
            busy = true;
            if self.drop_incoming.as_mut().is_some_and(|f| f(&buf[..n])) {
                continue;
            }
            let input = Input::Receive(
                Instant::now(),
                Receive {
                    proto: Protocol::Udp,
                    source: from,
                    destination: self.addr,
                    contents: (&buf[..n]).try_into().expect("datagram"),
                },
            );
            if self.rtc.accepts(&input) {
                self.rtc.handle_input(input).expect("handle_input");
                self.drain();
            }
        }
        let now = Instant::now();
        if now >= self.timeout {
            self.rtc.handle_input(Input::Timeout(now)).expect("timeout");
            self.drain();
        }
        busy
    }

    /// Makes an offer with the given changes applied.
    pub fn offer(
        &mut self,
        f: impl FnOnce(&mut str0m::change::SdpApi),
    ) -> (String, SdpPendingOffer) {
        let mut api = self.rtc.sdp_api();
        f(&mut api);
        let (offer, pending) = api.apply().expect("offer");
        self.drain();
        (offer.to_sdp_string(), pending)
    }

    /// Applies the server's answer.
    pub fn accept_answer(&mut self, pending: SdpPendingOffer, sdp: &str) {
        let answer = SdpAnswer::from_sdp_string(sdp).expect("answer parses");
        self.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .expect("answer accepted");
        self.drain();
    }

    /// Answers the server's offer.
    pub fn accept_offer(&mut self, sdp: &str) -> String {
        let offer = SdpOffer::from_sdp_string(sdp).expect("offer parses");
        let answer = self
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .expect("offer accepted");
        self.drain();
        answer.to_sdp_string()
    }
}

/// Drives peers until `done` or the deadline; returns whether `done` held.
pub fn drive(
    peers: &mut [&mut Peer],
    limit: Duration,
    mut done: impl FnMut(&mut [&mut Peer]) -> bool,
) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        let mut busy = false;
        for p in peers.iter_mut() {
            busy |= p.step();
        }
        if done(peers) {
            return true;
        }
        if !busy {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    false
}

/// Writes `count` Opus frames tagged `tag` from `peer` on `mid`, driving
/// `others` meanwhile (20 ms apart).
pub fn send_opus(
    peer: &mut Peer,
    mid: str0m::media::Mid,
    tag: &[u8],
    count: u64,
    others: &mut [&mut Peer],
) {
    let pt = payload_type(peer, mid, str0m::format::Codec::Opus);
    for i in 0..count {
        let frame = [tag, &i.to_be_bytes()].concat();
        let t = str0m::media::MediaTime::from_micros(i * 20_000);
        write_frame(peer, mid, pt, t, frame);
        step_for(peer, others, Duration::from_millis(20));
    }
}

/// Steps `peer` and `others` for `time`.
pub fn step_for(peer: &mut Peer, others: &mut [&mut Peer], time: Duration) {
    let deadline = Instant::now() + time;
    while Instant::now() < deadline {
        let mut busy = peer.step();
        for o in others.iter_mut() {
            busy |= o.step();
        }
        if !busy {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// The payload type `peer` negotiated for `codec` on `mid`.
pub fn payload_type(
    peer: &mut Peer,
    mid: str0m::media::Mid,
    codec: str0m::format::Codec,
) -> str0m::media::Pt {
    peer.rtc
        .writer(mid)
        .expect("writer")
        .payload_params()
        .find(|p| p.spec().codec == codec)
        .unwrap_or_else(|| panic!("{codec:?} negotiated"))
        .pt()
}

/// Writes one frame on `mid` at media time `t` and sends what it makes.
pub fn write_frame(
    peer: &mut Peer,
    mid: str0m::media::Mid,
    pt: str0m::media::Pt,
    t: str0m::media::MediaTime,
    frame: Vec<u8>,
) {
    peer.rtc
        .writer(mid)
        .expect("writer")
        .write(pt, Instant::now(), t, frame)
        .expect("write");
    peer.drain();
}

/// A VP8 frame of `len` bytes as str0m's writer takes it: the frame tag
/// (a keyframe when `key`) and start code, then `tag` and the frame number
/// `n`, then filler.
pub fn vp8_frame(n: u64, key: bool, tag: &[u8], len: usize) -> Vec<u8> {
    let mut data = vec![u8::from(!key), 0, 0, 0x9d, 0x01, 0x2a];
    data.extend_from_slice(tag);
    data.extend_from_slice(&n.to_be_bytes());
    data.resize(len, (n % 251) as u8);
    data
}

/// Frames received on `mid` whose payload starts with `tag`.
pub fn received(peer: &Peer, mid: str0m::media::Mid, tag: &[u8]) -> usize {
    peer.events
        .iter()
        .filter(|e| matches!(e, Event::MediaData(d) if d.mid == mid && d.data.starts_with(tag)))
        .count()
}

/// Offers one sendonly `kind` m-line from `peer` (its SDP passed through
/// `edit`), pushes it as `name` in a new session and applies the answer
/// (not yet connected). Returns the session, the mid and our answer.
pub fn push_one(
    api: &Api,
    peer: &mut Peer,
    kind: str0m::media::MediaKind,
    name: &str,
    edit: impl FnOnce(String) -> String,
) -> (String, str0m::media::Mid, String) {
    let mut mid = None;
    let (offer, pending) = peer.offer(|s| {
        mid = Some(s.add_media(kind, str0m::media::Direction::SendOnly, None, None, None))
    });
    let mid = mid.expect("mid");
    let session = api.new_session();
    let (status, body) = api.tracks_new(
        &session,
        json!({"sessionDescription": {"type": "offer", "sdp": edit(offer)},
               "tracks": [{"location": "local", "mid": mid.to_string(), "trackName": name}]}),
    );
    assert_eq!(status, 200, "{body}");
    let answer = body["sessionDescription"]["sdp"]
        .as_str()
        .expect("answer")
        .to_owned();
    peer.accept_answer(pending, &answer);
    (session, mid, answer)
}

/// A str0m peer that pushes one audio track (connected); returns it, its
/// session, its mid and the API's result items.
pub fn push_audio(
    api: &Api,
    tracks: Value,
    auto_discover: bool,
) -> (Peer, String, str0m::media::Mid, Value) {
    let mut peer = Peer::new("publisher");
    let mut mid = None;
    let (offer, pending) = peer.offer(|s| {
        mid = Some(s.add_media(
            str0m::media::MediaKind::Audio,
            str0m::media::Direction::SendOnly,
            None,
            None,
            None,
        ))
    });
    let mid = mid.expect("mid");
    let tracks = match tracks {
        Value::String(name) => {
            json!([{"location": "local", "mid": mid.to_string(), "trackName": name}])
        }
        other => other,
    };
    let session = api.new_session();
    let (status, body) = api.tracks_new(
        &session,
        json!({"sessionDescription": {"type": "offer", "sdp": offer}, "tracks": tracks, "autoDiscover": auto_discover}),
    );
    assert_eq!(status, 200, "{body}");
    connect_publisher(&mut peer, pending, &body);
    (peer, session, mid, body["tracks"].clone())
}

/// A push of "mic" (Opus) and "cam" (VP8) from a new str0m peer, offered
/// with tracks/new and answered (status 200); the answer is not applied yet.
pub struct MicCam {
    pub peer: Peer,
    pub session: String,
    pub audio: str0m::media::Mid,
    pub video: str0m::media::Mid,
    pub pending: SdpPendingOffer,
    /// tracks/new's answer.
    pub body: Value,
}

/// Pushes "mic" and "cam" from a new peer through `api` ([`MicCam`]).
pub fn push_mic_cam(api: &Api) -> MicCam {
    use str0m::media::{Direction, MediaKind};
    let mut peer = Peer::new("publisher");
    let (mut audio, mut video) = (None, None);
    let (offer, pending) = peer.offer(|s| {
        audio = Some(s.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None));
        video = Some(s.add_media(MediaKind::Video, Direction::SendOnly, None, None, None));
    });
    let (audio, video) = (audio.expect("mid"), video.expect("mid"));
    let session = api.new_session();
    let (status, body) = api.tracks_new(
        &session,
        json!({
            "sessionDescription": {"type": "offer", "sdp": offer},
            "tracks": [
                {"location": "local", "mid": audio.to_string(), "trackName": "mic"},
                {"location": "local", "mid": video.to_string(), "trackName": "cam"},
            ]
        }),
    );
    assert_eq!(status, 200, "{body}");
    MicCam {
        peer,
        session,
        audio,
        video,
        pending,
        body,
    }
}

/// Sends SIGTERM to a child process (a server started as a binary).
pub fn terminate(child: &std::process::Child) {
    // SAFETY: a plain kill(2) on our own child's pid.
    let sent = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(sent, 0);
}

/// Applies the answer of a push's tracks/new result `body` and waits until
/// the publisher is connected.
pub fn connect_publisher(peer: &mut Peer, pending: SdpPendingOffer, body: &Value) {
    peer.accept_answer(
        pending,
        body["sessionDescription"]["sdp"].as_str().expect("answer"),
    );
    assert!(
        drive(&mut [peer], Duration::from_secs(10), |p| p[0].connected),
        "publisher connects"
    );
}

/// A str0m peer that pulls tracks (server offer, renegotiate; connected).
pub fn pull(api: &Api, tracks: Value, others: &mut [&mut Peer]) -> (Peer, String, Value) {
    let mut peer = Peer::new("subscriber");
    let session = api.new_session();
    let (status, body) = api.tracks_new(&session, json!({ "tracks": tracks }));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["requiresImmediateRenegotiation"], true, "{body}");
    let answer = peer.accept_offer(body["sessionDescription"]["sdp"].as_str().expect("offer"));
    let (status, r) = api.renegotiate(&session, &answer);
    assert_eq!(status, 200, "{r}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !peer.connected && Instant::now() < deadline {
        let mut busy = peer.step();
        for o in others.iter_mut() {
            busy |= o.step();
        }
        if !busy {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    assert!(peer.connected, "subscriber connects");
    (peer, session, body["tracks"].clone())
}

/// A connected str0m publisher of the audio track "mic" and a connected
/// str0m subscriber of it, each with its session and mid.
pub struct AudioPair {
    pub publisher: Peer,
    pub publisher_session: String,
    pub mid: str0m::media::Mid,
    pub subscriber: Peer,
    pub subscriber_session: String,
    pub sub_mid: str0m::media::Mid,
}

/// Sets up an [`AudioPair`].
pub fn audio_pair(api: &Api) -> AudioPair {
    let (mut publisher, publisher_session, mid, _) = push_audio(api, "mic".into(), false);
    let (subscriber, subscriber_session, pulled) = pull(
        api,
        json!([{"location": "remote", "sessionId": publisher_session, "trackName": "mic"}]),
        &mut [&mut publisher],
    );
    let sub_mid = pulled[0]["mid"].as_str().expect("mid").into();
    AudioPair {
        publisher,
        publisher_session,
        mid,
        subscriber,
        subscriber_session,
        sub_mid,
    }
}
