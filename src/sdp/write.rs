//! Writing switchboard's answers and offers: one BUNDLE group, rtcp-mux,
//! `a=ice-lite`, our ICE credentials and DTLS fingerprint, and our host
//! candidates in every m-line (there is no trickle ICE).

use std::fmt::Write as _;
use std::net::SocketAddr;

use super::*;
use crate::dtls::Fingerprint;
use crate::ids::Rid;

/// What every SDP we write says about our transport.
#[derive(Debug, Clone)]
pub struct Transport<'a> {
    /// Our ice-ufrag for this session.
    pub ice_ufrag: &'a str,
    /// Our ice-pwd for this session.
    pub ice_pwd: &'a str,
    /// Our certificate's fingerprint.
    pub fingerprint: &'a Fingerprint,
    /// `passive` in answers, `actpass` in offers.
    pub setup: &'static str,
    /// Host candidates: the media port on each announced address.
    pub candidates: &'a [SocketAddr],
}

/// A stream we send on an m-line: what `a=ssrc` and `a=msid` say.
#[derive(Debug, Clone)]
pub struct SendStream {
    /// Our SSRC towards this client.
    pub ssrc: u32,
    /// Our SSRC for retransmissions (RFC 4588), when we offer RTX.
    pub rtx_ssrc: Option<u32>,
    /// MediaStream id.
    pub stream_id: String,
    /// MediaStreamTrack id.
    pub track_id: String,
}

/// One m-line to write.
#[derive(Debug, Clone)]
pub struct MediaOut<'a> {
    /// What it carries.
    pub kind: MediaKind,
    /// Its mid.
    pub mid: &'a Mid,
    /// Rejected or stopped: port 0 and no attributes but the mid.
    pub rejected: bool,
    /// Our direction.
    pub direction: Direction,
    /// Payload formats (non-empty unless rejected).
    pub codecs: &'a [Codec],
    /// Header extensions.
    pub extmaps: &'a [Extmap],
    /// Whether to write `a=rtcp-rsize`.
    pub rtcp_rsize: bool,
    /// The stream we send, if we send.
    pub send: Option<&'a SendStream>,
    /// Simulcast layers we receive (`a=rid:… recv`, `a=simulcast:recv`).
    pub recv_rids: &'a [Rid],
}

/// Builds one SDP.
pub struct SdpWriter {
    out: String,
}

impl SdpWriter {
    /// Starts an SDP with origin `session_id` and `version`, and the BUNDLE
    /// group `bundle` (written even when empty: a client with
    /// `bundlePolicy: "max-bundle"` refuses a description without one;
    /// `None` writes no group). `ice_lite`: we only answer checks (every
    /// session but third-party ones, where we are a full agent).
    pub fn new(
        session_id: u64,
        version: u64,
        bundle: Option<&[&Mid]>,
        extmap_allow_mixed: bool,
        ice_lite: bool,
    ) -> Self {
        let mut out = String::with_capacity(2048);
        let _ = write!(
            out,
            "v=0\r\no=- {session_id} {version} IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
        );
        if let Some(bundle) = bundle {
            out.push_str("a=group:BUNDLE");
            for mid in bundle {
                out.push(' ');
                out.push_str(mid.as_str());
            }
            out.push_str("\r\n");
        }
        if extmap_allow_mixed {
            out.push_str("a=extmap-allow-mixed\r\n");
        }
        if ice_lite {
            out.push_str("a=ice-lite\r\n");
        }
        out.push_str("a=msid-semantic: WMS *\r\n");
        SdpWriter { out }
    }

    /// Appends an audio or video m-line.
    pub fn media(&mut self, m: &MediaOut<'_>, transport: &Transport<'_>) -> &mut Self {
        let o = &mut self.out;
        let proto = "UDP/TLS/RTP/SAVPF";
        if m.rejected || m.codecs.is_empty() {
            let fmt = m.codecs.first().map_or(0, |c| c.pt);
            let _ = write!(
                o,
                "m={} 0 {proto} {fmt}\r\nc=IN IP4 0.0.0.0\r\n",
                m.kind.as_str()
            );
            let _ = write!(o, "a=mid:{}\r\na=inactive\r\n", m.mid);
            return self;
        }
        let _ = write!(o, "m={} 9 {proto}", m.kind.as_str());
        for c in m.codecs {
            let _ = write!(o, " {}", c.pt);
        }
        o.push_str("\r\n");
        write_transport(o, transport);
        let _ = write!(o, "a=mid:{}\r\n", m.mid);
        for e in m.extmaps {
            let _ = write!(o, "a=extmap:{} {}\r\n", e.id, e.uri);
        }
        let _ = write!(o, "a={}\r\n", m.direction.as_str());
        if let Some(s) = m.send.filter(|_| m.direction.sends()) {
            let _ = write!(o, "a=msid:{} {}\r\n", s.stream_id, s.track_id);
        }
        if m.direction.receives() && !m.recv_rids.is_empty() {
            for rid in m.recv_rids {
                let _ = write!(o, "a=rid:{rid} recv\r\n");
            }
            let list: Vec<&str> = m.recv_rids.iter().map(Rid::as_str).collect();
            let _ = write!(o, "a=simulcast:recv {}\r\n", list.join(";"));
        }
        o.push_str("a=rtcp-mux\r\n");
        if m.rtcp_rsize {
            o.push_str("a=rtcp-rsize\r\n");
        }
        for c in m.codecs {
            let _ = write!(o, "a=rtpmap:{} {}/{}", c.pt, c.name, c.clock_rate);
            if let Some(ch) = c.channels {
                let _ = write!(o, "/{ch}");
            }
            o.push_str("\r\n");
            for fb in &c.rtcp_fb {
                let _ = write!(o, "a=rtcp-fb:{} {fb}\r\n", c.pt);
            }
            if let Some(f) = &c.fmtp {
                let _ = write!(o, "a=fmtp:{} {f}\r\n", c.pt);
            }
        }
        if let Some(s) = m.send.filter(|_| m.direction.sends()) {
            if let Some(rtx) = s.rtx_ssrc {
                let _ = write!(o, "a=ssrc-group:FID {} {rtx}\r\n", s.ssrc);
            }
            for ssrc in std::iter::once(s.ssrc).chain(s.rtx_ssrc) {
                let _ = write!(o, "a=ssrc:{ssrc} cname:switchboard\r\n");
                let _ = write!(o, "a=ssrc:{ssrc} msid:{} {}\r\n", s.stream_id, s.track_id);
            }
        }
        self
    }

    /// Appends a live m=application line for data channels: SCTP over
    /// DTLS (RFC 8841) on port 5000, messages up to `max_message_size`.
    pub fn application(
        &mut self,
        mid: &Mid,
        max_message_size: usize,
        transport: &Transport<'_>,
    ) -> &mut Self {
        let o = &mut self.out;
        o.push_str("m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n");
        write_transport(o, transport);
        let _ = write!(
            o,
            "a=mid:{mid}\r\na=sctp-port:5000\r\na=max-message-size:{max_message_size}\r\n"
        );
        self
    }

    /// Appends a rejected m=application line.
    pub fn rejected_application(&mut self, mid: &Mid) -> &mut Self {
        let _ = write!(
            self.out,
            "m=application 0 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=mid:{mid}\r\n"
        );
        self
    }

    /// The finished SDP.
    pub fn finish(self) -> String {
        self.out
    }
}

fn write_transport(o: &mut String, t: &Transport<'_>) {
    let c_addr = t
        .candidates
        .first()
        .map_or("IN IP4 0.0.0.0".to_owned(), |a| match a {
            SocketAddr::V4(v4) => format!("IN IP4 {}", v4.ip()),
            SocketAddr::V6(v6) => format!("IN IP6 {}", v6.ip()),
        });
    let _ = write!(o, "c={c_addr}\r\n");
    let _ = write!(
        o,
        "a=ice-ufrag:{}\r\na=ice-pwd:{}\r\n",
        t.ice_ufrag, t.ice_pwd
    );
    let _ = write!(
        o,
        "a=fingerprint:{}\r\na=setup:{}\r\n",
        t.fingerprint.to_sdp(),
        t.setup
    );
    for (i, addr) in t.candidates.iter().enumerate() {
        // Host candidates, highest priority first (RFC 8445 §5.1.2.1).
        let priority = (126u32 << 24) | ((65535 - i as u32) << 8) | 255;
        let _ = write!(
            o,
            "a=candidate:{} 1 udp {priority} {} {} typ host\r\n",
            i + 1,
            addr.ip(),
            addr.port()
        );
    }
    o.push_str("a=end-of-candidates\r\n");
}
