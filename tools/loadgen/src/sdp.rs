//! The client side's SDP: a publisher's offer (sendonly audio and video with
//! the send-time extension), a subscriber's answer to a server offer, and
//! reading the server's ICE credentials, fingerprint and candidates.

use std::fmt::Write as _;
use std::net::SocketAddr;

use anyhow::{Context as _, bail};
use switchboard::dtls::{DtlsRole, Fingerprint};
use switchboard::sdp::{self, Direction, MediaKind, extension};

use crate::endpoint::Remote;

/// The payload types and extension id the publisher uses.
pub const VIDEO_PT: u8 = 96;
/// Opus.
pub const AUDIO_PT: u8 = 111;
/// The send-time extension's id in our offers.
pub const SEND_TIME_ID: u8 = 5;
/// The transport-wide sequence number extension's id in publishers' offers.
pub const TWCC_ID: u8 = 3;
/// The `rtp-stream-id` extension's id in publishers' simulcast offers.
pub const RID_ID: u8 = 4;
/// A simulcast publisher's layers, best first (as browsers name them).
pub const RIDS: [&str; 3] = ["f", "h", "q"];

/// One m-line the publisher offers.
#[derive(Debug, Clone, Copy)]
pub struct Sending {
    /// Audio or video.
    pub kind: MediaKind,
    /// Its SSRC (one layer's, with `simulcast`).
    pub ssrc: u32,
    /// Sent as the simulcast layers [`RIDS`] (no `a=ssrc`: the SFU learns
    /// each layer's SSRC from its rid).
    pub simulcast: bool,
}

fn session_header(out: &mut String, mids: &[String]) {
    let _ = write!(
        out,
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE {}\r\n",
        mids.join(" "),
    );
}

/// Transport attributes, written in every m-section as browsers do (some
/// SFUs read them only there).
/// Our side of the transport, for every SDP we write.
#[derive(Debug, Clone, Copy)]
pub struct Local<'a> {
    /// Our ice-ufrag.
    pub ufrag: &'a str,
    /// Our ice-pwd.
    pub pwd: &'a str,
    /// Our certificate's fingerprint.
    pub fingerprint: &'a Fingerprint,
    /// Our UDP socket (the host candidate).
    pub addr: SocketAddr,
}

fn transport(out: &mut String, local: &Local<'_>, setup: &str) {
    let _ = write!(
        out,
        "a=ice-ufrag:{}\r\na=ice-pwd:{}\r\na=fingerprint:{}\r\na=setup:{setup}\r\n\
         a=candidate:1 1 udp 2130706431 {} {} typ host\r\na=end-of-candidates\r\n",
        local.ufrag,
        local.pwd,
        local.fingerprint.to_sdp(),
        local.addr.ip(),
        local.addr.port()
    );
}

/// A publisher's offer: one sendonly m-line per stream, mids 0, 1, …,
/// with transport-wide sequence numbers as browsers send them.
/// With `repair`, every stream also offers generic NACK (the server then
/// NACKs the gaps in what it gets; audio too, so that every loss counts).
pub fn publisher_offer(streams: &[Sending], repair: bool, local: &Local<'_>) -> String {
    let mids: Vec<String> = (0..streams.len()).map(|i| i.to_string()).collect();
    let mut out = String::new();
    session_header(&mut out, &mids);
    for (i, s) in streams.iter().enumerate() {
        let (pt, rtpmap) = match s.kind {
            MediaKind::Audio => (AUDIO_PT, "opus/48000/2"),
            _ => (VIDEO_PT, "VP8/90000"),
        };
        let _ = write!(
            out,
            "m={} 9 UDP/TLS/RTP/SAVPF {pt}\r\nc=IN IP4 0.0.0.0\r\na=mid:{i}\r\na=sendonly\r\na=rtcp-mux\r\n\
             a=extmap:{SEND_TIME_ID} {}\r\na=extmap:{TWCC_ID} {}\r\na=rtpmap:{pt} {rtpmap}\r\n\
             a=rtcp-fb:{pt} nack pli\r\na=rtcp-fb:{pt} transport-cc\r\n",
            s.kind.as_str(),
            extension::SEND_TIME,
            extension::TRANSPORT_CC,
        );
        if s.simulcast {
            let _ = write!(out, "a=extmap:{RID_ID} {}\r\n", extension::RTP_STREAM_ID);
            for rid in RIDS {
                let _ = write!(out, "a=rid:{rid} send\r\n");
            }
            let _ = write!(out, "a=simulcast:send {}\r\n", RIDS.join(";"));
        } else {
            let _ = write!(out, "a=ssrc:{} cname:loadgen\r\n", s.ssrc);
        }
        if repair {
            let _ = write!(out, "a=rtcp-fb:{pt} nack\r\n");
        }
        transport(&mut out, local, "actpass");
    }
    out
}

/// A data-channel client's offer: only an `m=application` (RFC 8841).
pub fn data_channel_offer(local: &Local<'_>) -> String {
    let mut out = String::new();
    session_header(&mut out, &["0".to_owned()]);
    out.push_str(
        "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\n\
         a=mid:0\r\na=sctp-port:5000\r\na=max-message-size:262144\r\n",
    );
    transport(&mut out, local, "actpass");
    out
}

/// A subscriber's answer to the server's offer: every live m-line received
/// with the offered codecs and extensions, DTLS active, with the feedback
/// a browser answers (generic NACK and PLI on video, transport-cc). With
/// `repair`: generic NACK on audio too (so that every loss counts) and no
/// RTX (resends come in the original stream).
pub fn subscriber_answer(offer: &str, repair: bool, local: &Local<'_>) -> anyhow::Result<String> {
    let desc = sdp::parse(offer).map_err(|e| anyhow::anyhow!("server offer: {e}"))?;
    let live: Vec<String> = desc
        .media
        .iter()
        .filter(|m| m.is_active() && m.kind != MediaKind::Application)
        .filter_map(|m| m.mid.as_ref().map(|mid| mid.0.clone()))
        .collect();
    let mut out = String::new();
    session_header(&mut out, &live);
    for m in &desc.media {
        let mid = m.mid.as_ref().map(|m| m.0.as_str()).unwrap_or("");
        let codecs: Vec<_> = m
            .codecs
            .iter()
            .filter(|c| !repair || c.rtx_of().is_none())
            .collect();
        let formats = if repair {
            let kept: Vec<String> = codecs.iter().map(|c| c.pt.to_string()).collect();
            kept.join(" ")
        } else {
            m.formats.join(" ")
        };
        if !m.is_active() || m.kind == MediaKind::Application {
            let _ = write!(
                out,
                "m={} 0 {} {formats}\r\nc=IN IP4 0.0.0.0\r\na=mid:{mid}\r\n",
                m.kind.as_str(),
                m.proto
            );
            continue;
        }
        let direction = if m.direction.sends() {
            Direction::RecvOnly
        } else {
            Direction::Inactive
        };
        let _ = write!(
            out,
            "m={} 9 {} {formats}\r\nc=IN IP4 0.0.0.0\r\na=mid:{mid}\r\na={}\r\na=rtcp-mux\r\n",
            m.kind.as_str(),
            m.proto,
            direction.as_str()
        );
        transport(&mut out, local, "active");
        for e in &m.extmaps {
            let _ = write!(out, "a=extmap:{} {}\r\n", e.id, e.uri);
        }
        for c in codecs {
            let _ = write!(out, "a=rtpmap:{} {}/{}", c.pt, c.name, c.clock_rate);
            if let Some(ch) = c.channels {
                let _ = write!(out, "/{ch}");
            }
            out.push_str("\r\n");
            if let Some(f) = &c.fmtp {
                let _ = write!(out, "a=fmtp:{} {f}\r\n", c.pt);
            }
            // As browsers answer (audio NACK too with `repair`).
            if m.kind == MediaKind::Video || repair {
                let _ = write!(out, "a=rtcp-fb:{} nack\r\n", c.pt);
            }
            if m.kind == MediaKind::Video {
                let _ = write!(out, "a=rtcp-fb:{} nack pli\r\n", c.pt);
            }
            let _ = write!(out, "a=rtcp-fb:{} transport-cc\r\n", c.pt);
        }
    }
    Ok(out)
}

/// The server's ICE credentials and fingerprint, our DTLS role, and its
/// first UDP host candidate (IPv4 preferred). `sdp_text` is the server's
/// answer to our offer (its `a=setup` decides) or its offer (we answer
/// `active`).
pub fn remote_of(sdp_text: &str) -> anyhow::Result<(Remote, SocketAddr)> {
    let desc = sdp::parse(sdp_text).map_err(|e| anyhow::anyhow!("server SDP: {e}"))?;
    let (ufrag, pwd) = desc
        .ice_credentials()
        .context("no ICE credentials in the server's SDP")?;
    let fingerprint = desc
        .fingerprints()
        .iter()
        .find_map(|f| Fingerprint::parse(f))
        .context("no supported fingerprint in the server's SDP")?;
    let candidates = candidates(sdp_text);
    let Some(addr) = candidates
        .iter()
        .find(|a| a.is_ipv4())
        .or(candidates.first())
    else {
        bail!("no UDP host candidate in the server's SDP");
    };
    let setup = desc
        .setup
        .as_deref()
        .or_else(|| desc.media.iter().find_map(|m| m.setup.as_deref()));
    let dtls_role = match setup {
        Some("active") => DtlsRole::Server,
        _ => DtlsRole::Client,
    };
    Ok((
        Remote {
            ufrag: ufrag.to_owned(),
            pwd: pwd.to_owned(),
            fingerprint,
            dtls_role,
        },
        *addr,
    ))
}

/// UDP candidates in an SDP (`a=candidate:` lines), in order.
pub fn candidates(sdp_text: &str) -> Vec<SocketAddr> {
    sdp_text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("a=candidate:"))
        .filter_map(switchboard::sdp::udp_candidate)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard::ice::IceCredentials;

    #[test]
    fn offers_and_answers_parse_back() {
        let fp = Fingerprint::of(b"cert");
        let ice = IceCredentials::random();
        let local = Local {
            ufrag: &ice.ufrag,
            pwd: &ice.pwd,
            fingerprint: &fp,
            addr: "127.0.0.1:5000".parse().unwrap(),
        };
        let offer = publisher_offer(
            &[
                Sending {
                    kind: MediaKind::Video,
                    ssrc: 5,
                    simulcast: false,
                },
                Sending {
                    kind: MediaKind::Audio,
                    ssrc: 6,
                    simulcast: false,
                },
            ],
            false,
            &local,
        );
        let d = sdp::parse(&offer).unwrap();
        assert_eq!(d.media.len(), 2);
        assert_eq!(d.media[0].ssrcs, vec![5]);
        assert_eq!(d.media[1].codecs[0].name, "opus");
        // A simulcast video m-line names its layers and no SSRC.
        let simulcast = publisher_offer(
            &[Sending {
                kind: MediaKind::Video,
                ssrc: 5,
                simulcast: true,
            }],
            false,
            &local,
        );
        let v = &sdp::parse(&simulcast).unwrap().media[0];
        assert_eq!(v.simulcast_rids().len(), 3, "{simulcast}");
        assert!(v.ssrcs.is_empty());
        assert!(
            d.media[0]
                .extmaps
                .iter()
                .any(|e| e.uri == extension::SEND_TIME && e.id == SEND_TIME_ID)
        );
        // Answering an offer mirrors its m-lines as recvonly.
        let server_offer = offer.replace(
            "a=sendonly",
            "a=sendonly\r\na=candidate:1 1 udp 1 127.0.0.1 40000 typ host",
        );
        let answer = subscriber_answer(&server_offer, false, &local).unwrap();
        let a = sdp::parse(&answer).unwrap();
        assert!(a.media.iter().all(|m| m.direction == Direction::RecvOnly));
        assert!(answer.contains("a=setup:active"));
        let (remote, addr) = remote_of(&server_offer.replace(
            "a=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host\r\n",
            "",
        ))
        .unwrap();
        assert_eq!(addr, "127.0.0.1:40000".parse::<SocketAddr>().unwrap());
        assert_eq!(remote.fingerprint, fp);
        assert!(candidates("a=candidate:1 1 tcp 1 1.2.3.4 9 typ host").is_empty());
    }
}
