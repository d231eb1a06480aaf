//! An adapter's WebRTC client: each adapter reaches the media of this
//! server exactly as any client does, through a session of its own. Egress
//! pulls the track (server offer, our answer: NACK, keyframe requests,
//! consent and congestion feedback as for any subscriber, on the worker
//! that serves its session); ingest pushes one Opus track that anyone
//! pulls. The client is str0m (sans-IO) on a UDP socket of the adapter
//! task, talking to the media port over the host's own address, so no
//! media worker changes for adapters and none of their work runs there.
//!
//! Where it sits: the adapter tasks (`egress`, `ingest`) own one each;
//! signalling goes straight to the control plane's operations
//! ([`Control::new_session`], `tracks_new`, `renegotiate`), as the HTTP
//! API's handlers call them; the adapter ends the session
//! ([`Control::end_session`]) when it closes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer};
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};

use crate::calls::types::{
    NewSessionRequest, RenegotiateRequest, SessionDescriptionJson, TrackObject, TracksNewRequest,
};
use crate::control::Control;
use crate::ids::AppId;

/// What a failed setup answers in its item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemError {
    /// The item's `errorCode`.
    pub code: String,
    /// The item's `errorDescription`.
    pub description: String,
}

impl ItemError {
    /// An item error.
    pub fn new(code: &str, description: impl Into<String>) -> Self {
        ItemError {
            code: code.to_owned(),
            description: description.into(),
        }
    }
}

impl From<crate::calls::CallsError> for ItemError {
    fn from(e: crate::calls::CallsError) -> Self {
        ItemError::new(e.code.as_str(), e.description)
    }
}

/// The client: its str0m instance, socket and session.
pub struct LocalClient {
    rtc: Rtc,
    socket: tokio::net::UdpSocket,
    local: SocketAddr,
    /// The adapter's session id.
    pub session_id: String,
    /// The mid of its one track.
    pub mid: Mid,
    next_timeout: Instant,
}

/// The media port as seen from this host: the bound address, or loopback
/// when bound to every address.
pub fn media_target(media: SocketAddr) -> SocketAddr {
    let ip = if media.ip().is_unspecified() {
        match media {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        }
    } else {
        media.ip()
    };
    SocketAddr::new(ip, media.port())
}

async fn bind(server: SocketAddr) -> Result<(tokio::net::UdpSocket, SocketAddr), ItemError> {
    let any = SocketAddr::new(server.ip(), 0);
    let socket = tokio::net::UdpSocket::bind(any)
        .await
        .map_err(|e| ItemError::new("internal_error", format!("adapter socket: {e}")))?;
    let local = socket
        .local_addr()
        .map_err(|e| ItemError::new("internal_error", format!("adapter socket: {e}")))?;
    Ok((socket, local))
}

/// The SDP without its candidates: the client adds the media port's
/// local address itself (announced addresses may be public ones this
/// host cannot reach itself through).
fn without_candidates(sdp: &str) -> String {
    sdp.split_inclusive('\n')
        .filter(|l| !l.starts_with("a=candidate:") && !l.starts_with("a=end-of-candidates"))
        .collect()
}

impl LocalClient {
    fn new(
        rtc: Rtc,
        socket: tokio::net::UdpSocket,
        local: SocketAddr,
        session_id: String,
        mid: Mid,
    ) -> Self {
        LocalClient {
            rtc,
            socket,
            local,
            session_id,
            mid,
            next_timeout: Instant::now(),
        }
    }

    /// A client that pulls `track_name` of `publisher` (`rtp_mode`: raw
    /// packets, for a jitter buffer of the caller's; otherwise whole
    /// frames).
    pub async fn pull(
        control: Arc<Control>,
        app: &AppId,
        media: SocketAddr,
        publisher: &str,
        track_name: &str,
        rtp_mode: bool,
    ) -> Result<LocalClient, ItemError> {
        let server = media_target(media);
        let (socket, local) = bind(server).await?;
        let now = Instant::now();
        let mut rtc = Rtc::builder()
            .set_rtp_mode(rtp_mode)
            .enable_h265(true)
            .build(now);
        rtc.add_local_candidate(
            Candidate::host(local, "udp")
                .map_err(|e| ItemError::new("internal_error", e.to_string()))?,
        );
        let (session_id, _) = control.new_session(app, None, NewSessionRequest::default(), now)?;
        let ended = |e: ItemError| {
            control.end_session(app, &session_id);
            e
        };
        let item = TrackObject {
            location: Some("remote".into()),
            session_id: Some(publisher.to_owned()),
            track_name: Some(track_name.to_owned()),
            ..Default::default()
        };
        let res = control
            .tracks_new(
                app,
                &session_id,
                TracksNewRequest {
                    tracks: vec![item],
                    ..Default::default()
                },
                now,
            )
            .map_err(|e| ended(e.into()))?;
        let result = res.tracks.first().cloned().unwrap_or_default();
        if let Some(code) = &result.error_code {
            return Err(ended(ItemError::new(
                code,
                result.error_description.clone().unwrap_or_default(),
            )));
        }
        let (Some(offer), Some(mid)) = (res.session_description, result.mid) else {
            return Err(ended(ItemError::new(
                "internal_error",
                "no offer for the pull",
            )));
        };
        let offer = SdpOffer::from_sdp_string(&without_candidates(&offer.sdp))
            .map_err(|e| ended(ItemError::new("internal_error", format!("our offer: {e}"))))?;
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| ended(ItemError::new("internal_error", format!("our offer: {e}"))))?;
        rtc.add_remote_candidate(
            Candidate::host(server, "udp")
                .map_err(|e| ended(ItemError::new("internal_error", e.to_string())))?,
        );
        control
            .renegotiate(
                app,
                &session_id,
                RenegotiateRequest {
                    session_description: SessionDescriptionJson {
                        kind: "answer".into(),
                        sdp: answer.to_sdp_string(),
                    },
                },
                now,
            )
            .map_err(|e| ended(e.into()))?;
        let mid = Mid::from(mid.as_str());
        Ok(LocalClient::new(rtc, socket, local, session_id, mid))
    }

    /// A client that publishes one Opus track named `track_name` in a new
    /// session.
    pub async fn push_audio(
        control: Arc<Control>,
        app: &AppId,
        media: SocketAddr,
        track_name: &str,
    ) -> Result<LocalClient, ItemError> {
        let server = media_target(media);
        let (socket, local) = bind(server).await?;
        let now = Instant::now();
        let mut rtc = Rtc::builder()
            .clear_codecs()
            .enable_opus(true, false)
            .build(now);
        rtc.add_local_candidate(
            Candidate::host(local, "udp")
                .map_err(|e| ItemError::new("internal_error", e.to_string()))?,
        );
        let mut api = rtc.sdp_api();
        let mid = api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        let (offer, pending) = api
            .apply()
            .ok_or_else(|| ItemError::new("internal_error", "no offer"))?;
        let (session_id, _) = control.new_session(app, None, NewSessionRequest::default(), now)?;
        let ended = |e: ItemError| {
            control.end_session(app, &session_id);
            e
        };
        let res = control
            .tracks_new(
                app,
                &session_id,
                TracksNewRequest {
                    session_description: Some(SessionDescriptionJson {
                        kind: "offer".into(),
                        sdp: offer.to_sdp_string(),
                    }),
                    tracks: vec![TrackObject {
                        location: Some("local".into()),
                        mid: Some(mid.to_string()),
                        track_name: Some(track_name.to_owned()),
                        ..Default::default()
                    }],
                    ..Default::default()
                },
                now,
            )
            .map_err(|e| ended(e.into()))?;
        if let Some(t) = res.tracks.first()
            && let Some(code) = &t.error_code
        {
            return Err(ended(ItemError::new(
                code,
                t.error_description.clone().unwrap_or_default(),
            )));
        }
        let Some(answer) = res.session_description else {
            return Err(ended(ItemError::new(
                "internal_error",
                "no answer for the push",
            )));
        };
        let answer = SdpAnswer::from_sdp_string(&without_candidates(&answer.sdp))
            .map_err(|e| ended(ItemError::new("internal_error", format!("our answer: {e}"))))?;
        rtc.sdp_api()
            .accept_answer(pending, answer)
            .map_err(|e| ended(ItemError::new("internal_error", format!("our answer: {e}"))))?;
        rtc.add_remote_candidate(
            Candidate::host(server, "udp")
                .map_err(|e| ended(ItemError::new("internal_error", e.to_string())))?,
        );
        Ok(LocalClient::new(rtc, socket, local, session_id, mid))
    }

    /// The str0m instance (to write media, ask for keyframes).
    pub fn rtc(&mut self) -> &mut Rtc {
        &mut self.rtc
    }

    /// Sends what the client has to send and collects its events; returns
    /// whether it is still alive.
    pub fn poll(&mut self, events: &mut Vec<Event>) -> bool {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    self.next_timeout = t;
                    return self.rtc.is_alive();
                }
                // A datagram the socket cannot take now is lost, as on
                // any network (NACK and the codecs cope).
                Ok(Output::Transmit(t)) => {
                    let _ = self.socket.try_send_to(&t.contents, t.destination);
                }
                Ok(Output::Event(e)) => events.push(e),
                Err(_) => return false,
            }
        }
    }

    /// When the client next wants [`Self::handle_timeout`] (at most
    /// 100 ms ahead).
    pub fn next_timeout(&self, now: Instant) -> Instant {
        self.next_timeout.min(now + Duration::from_millis(100))
    }

    /// Time passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        let _ = self.rtc.handle_input(Input::Timeout(now));
    }

    /// Waits for one datagram and hands it to the client.
    pub async fn receive(&mut self, buf: &mut [u8]) {
        let Ok((n, from)) = self.socket.recv_from(buf).await else {
            return;
        };
        let Ok(contents) = buf[..n].try_into() else {
            return;
        };
        let input = Input::Receive(
            Instant::now(),
            Receive {
                proto: Protocol::Udp,
                source: from,
                destination: self.local,
                contents,
            },
        );
        if self.rtc.accepts(&input) {
            let _ = self.rtc.handle_input(input);
        }
    }

    /// Asks the publisher for a keyframe (egress of video).
    pub fn request_keyframe(&mut self) {
        if let Some(mut w) = self.rtc.writer(self.mid) {
            let _ = w.request_keyframe(None, KeyframeRequestKind::Pli);
        }
    }

    /// The kind of its track (`None` before negotiation).
    pub fn kind(&self) -> Option<MediaKind> {
        self.rtc.media(self.mid).map(|m| m.kind())
    }
}
