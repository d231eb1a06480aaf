//! Reading an SDP into a [`SessionDescription`]: line by line, tolerant of
//! what it does not interpret, strict about what a WebRTC session needs.

use super::*;

/// Why an SDP was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// A line is not `x=value`, or an m-line or attribute is malformed.
    #[error("line {line}: {reason}")]
    Malformed {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// No `v=0` first line.
    #[error("not an SDP (no v=0)")]
    NotSdp,
    /// Past one of the reader's bounds ([`super::bounds`]).
    #[error("line {line}: {what} (at most {limit})")]
    TooLarge {
        /// 1-based line number.
        line: usize,
        /// What is over its bound.
        what: &'static str,
        /// The bound.
        limit: usize,
    },
}

/// Parses an SDP offer or answer, within the bounds of [`super::bounds`]:
/// the work and the memory are linear in the description's size.
pub fn parse(sdp: &str) -> Result<SessionDescription, SdpError> {
    let mut desc = SessionDescription::default();
    let mut lines = sdp
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .enumerate();
    match lines.next() {
        Some((_, "v=0")) => {}
        _ => return Err(SdpError::NotSdp),
    }
    let mut fingerprints = Fingerprints::default();
    for (index, line) in lines {
        let n = index + 1;
        let bad = |reason| SdpError::Malformed { line: n, reason };
        let too_large = |what, limit| SdpError::TooLarge {
            line: n,
            what,
            limit,
        };
        if line.len() > bounds::MAX_LINE {
            return Err(too_large("line too long", bounds::MAX_LINE));
        }
        let (kind, value) = line.split_once('=').ok_or(bad("expected x=value"))?;
        match kind {
            "m" => {
                if desc.media.len() == bounds::MAX_MEDIA {
                    return Err(too_large("too many m-lines", bounds::MAX_MEDIA));
                }
                let m = media_line(value).ok_or(bad("malformed m-line"))?;
                if m.formats.len() > bounds::MAX_FORMATS {
                    return Err(too_large("too many formats", bounds::MAX_FORMATS));
                }
                desc.media.push(m);
            }
            "a" => {
                let (name, arg) = value.split_once(':').unwrap_or((value, ""));
                if name == "candidate" {
                    // One transport (the bundle's): any level counts.
                    add_candidate(&mut desc, arg);
                    continue;
                }
                if name == "fingerprint" && !fingerprints.note(arg.trim()) {
                    return Err(too_large(
                        "too many distinct fingerprints",
                        bounds::MAX_FINGERPRINTS,
                    ));
                }
                let applied = match desc.media.last_mut() {
                    Some(m) => media_attribute(m, name, arg),
                    None => session_attribute(&mut desc, name, arg),
                };
                applied.map_err(|e| match e {
                    Refused::Malformed(reason) => bad(reason),
                    Refused::TooLarge(what, limit) => too_large(what, limit),
                })?;
            }
            k if k.len() == 1 => {}
            _ => return Err(bad("expected a one-letter type")),
        }
    }
    // bundle-only means "bundled" only inside the BUNDLE group.
    for i in 0..desc.media.len() {
        let bundled = desc.media[i]
            .mid
            .as_ref()
            .is_some_and(|mid| desc.in_bundle(mid));
        desc.media[i].bundle_only &= bundled;
    }
    Ok(desc)
}

fn media_line(value: &str) -> Option<MediaSection> {
    let mut parts = value.split_ascii_whitespace();
    let kind = MediaKind::parse(parts.next()?)?;
    let port = parts.next()?.split('/').next()?.parse().ok()?;
    let proto = parts.next()?.to_owned();
    let formats: Vec<String> = parts.map(str::to_owned).collect();
    let codecs = if kind == MediaKind::Application {
        Vec::new()
    } else {
        formats
            .iter()
            .filter_map(|f| f.parse().ok())
            .map(|pt| Codec {
                pt,
                name: String::new(),
                clock_rate: 0,
                channels: None,
                fmtp: None,
                rtcp_fb: Vec::new(),
            })
            .collect()
    };
    Some(MediaSection {
        kind,
        port,
        proto,
        formats,
        mid: None,
        direction: Direction::SendRecv,
        codecs,
        extmaps: Vec::new(),
        ssrcs: Vec::new(),
        msid: None,
        rids: Vec::new(),
        simulcast_send: Vec::new(),
        rtcp_mux: false,
        rtcp_rsize: false,
        ice_ufrag: None,
        ice_pwd: None,
        fingerprints: Vec::new(),
        setup: None,
        bundle_only: false,
        max_message_size: None,
    })
}

/// The distinct fingerprints read so far (at most
/// [`bounds::MAX_FINGERPRINTS`]: a description repeats its one fingerprint
/// on every m-line).
#[derive(Default)]
struct Fingerprints(Vec<String>);

impl Fingerprints {
    /// Notes a fingerprint; false when it is one too many.
    fn note(&mut self, value: &str) -> bool {
        if self.0.iter().any(|f| f == value) {
            return true;
        }
        if self.0.len() == bounds::MAX_FINGERPRINTS {
            return false;
        }
        self.0.push(value.to_owned());
        true
    }
}

/// Why an attribute was refused.
enum Refused {
    /// Not of its syntax: why.
    Malformed(&'static str),
    /// Past a bound: what, and the bound.
    TooLarge(&'static str, usize),
}

/// Refuses pushing one more onto a list that holds `limit` already.
fn room(len: usize, limit: usize, what: &'static str) -> Result<(), Refused> {
    if len < limit {
        Ok(())
    } else {
        Err(Refused::TooLarge(what, limit))
    }
}

/// An ice-ufrag (RFC 8839 §5.4), or why not.
fn ice_ufrag(arg: &str) -> Result<String, Refused> {
    let arg = arg.trim();
    bounds::is_ice_credential(arg, bounds::UFRAG_LEN)
        .then(|| arg.to_owned())
        .ok_or(Refused::Malformed(
            "a=ice-ufrag must be 4 to 256 ice-chars (RFC 8839)",
        ))
}

/// An ice-pwd (RFC 8839 §5.4), or why not.
fn ice_pwd(arg: &str) -> Result<String, Refused> {
    let arg = arg.trim();
    bounds::is_ice_credential(arg, bounds::PWD_LEN)
        .then(|| arg.to_owned())
        .ok_or(Refused::Malformed(
            "a=ice-pwd must be 22 to 256 ice-chars (RFC 8839)",
        ))
}

fn session_attribute(desc: &mut SessionDescription, name: &str, arg: &str) -> Result<(), Refused> {
    match name {
        "ice-ufrag" => desc.ice_ufrag = Some(ice_ufrag(arg)?),
        "ice-pwd" => desc.ice_pwd = Some(ice_pwd(arg)?),
        "fingerprint" => {
            let value = arg.trim();
            if !desc.fingerprints.iter().any(|f| f == value) {
                desc.fingerprints.push(value.to_owned());
            }
        }
        "setup" => desc.setup = Some(arg.to_owned()),
        "extmap-allow-mixed" => desc.extmap_allow_mixed = true,
        "group" => {
            let mut parts = arg.split_ascii_whitespace();
            if parts.next() == Some("BUNDLE") && desc.bundle.is_none() {
                let mids: Vec<Mid> = parts.map(|m| Mid(m.to_owned())).collect();
                if mids.len() > bounds::MAX_MEDIA || !mids.iter().all(|m| bounds::is_mid(&m.0)) {
                    return Err(Refused::Malformed(
                        "a BUNDLE group of more than 1,024 mids, or of invalid ones",
                    ));
                }
                desc.bundle = Some(mids);
            }
        }
        _ => {}
    }
    Ok(())
}

/// Keeps a UDP candidate's address (see [`super::udp_candidate`]).
fn add_candidate(desc: &mut SessionDescription, value: &str) {
    if let Some(addr) = super::udp_candidate(value)
        && desc.candidates.len() < super::MAX_CANDIDATES
        && !desc.candidates.contains(&addr)
    {
        desc.candidates.push(addr);
    }
}

/// Applies one media-level attribute, or says why not.
fn media_attribute(m: &mut MediaSection, name: &str, arg: &str) -> Result<(), Refused> {
    match name {
        "ice-ufrag" => m.ice_ufrag = Some(ice_ufrag(arg)?),
        "ice-pwd" => m.ice_pwd = Some(ice_pwd(arg)?),
        "fmtp" if arg.len() > bounds::MAX_FMTP + 4 => {
            return Err(Refused::TooLarge("an fmtp too long", bounds::MAX_FMTP));
        }
        "rtpmap" if arg.len() > bounds::MAX_ENCODING_NAME + 24 => {
            return Err(Refused::TooLarge(
                "an rtpmap too long",
                bounds::MAX_ENCODING_NAME,
            ));
        }
        "mid" if !bounds::is_mid(arg) => {
            return Err(Refused::Malformed(
                "a=mid must be 1 to 32 visible characters",
            ));
        }
        "rtcp-fb" => {
            let (pt, fb) = arg.split_once(' ').ok_or(MALFORMED)?;
            let fb = fb.trim();
            if fb.len() > bounds::MAX_FEEDBACK_VALUE {
                return Err(Refused::TooLarge(
                    "an rtcp-fb value too long",
                    bounds::MAX_FEEDBACK_VALUE,
                ));
            }
            if pt == "*" {
                for c in &mut m.codecs {
                    room(
                        c.rtcp_fb.len(),
                        bounds::MAX_FEEDBACK,
                        "too many rtcp-fb values",
                    )?;
                    c.rtcp_fb.push(fb.to_owned());
                }
            } else if let Some(codec) = codec_mut(m, pt) {
                room(
                    codec.rtcp_fb.len(),
                    bounds::MAX_FEEDBACK,
                    "too many rtcp-fb values",
                )?;
                codec.rtcp_fb.push(fb.to_owned());
            }
        }
        "extmap" => {
            room(m.extmaps.len(), bounds::MAX_EXTMAPS, "too many extmaps")?;
            media_value(m, name, arg).ok_or(MALFORMED)?;
        }
        "ssrc" => {
            media_value(m, name, arg).ok_or(MALFORMED)?;
            if m.ssrcs.len() > bounds::MAX_SSRCS {
                return Err(Refused::TooLarge("too many SSRCs", bounds::MAX_SSRCS));
            }
        }
        "rid" => {
            room(m.rids.len(), bounds::MAX_RIDS, "too many rids")?;
            media_value(m, name, arg).ok_or(MALFORMED)?;
        }
        "simulcast" => {
            media_value(m, name, arg).ok_or(MALFORMED)?;
            if m.simulcast_send.len() > bounds::MAX_RIDS {
                return Err(Refused::TooLarge(
                    "too many simulcast streams",
                    bounds::MAX_RIDS,
                ));
            }
        }
        _ => media_value(m, name, arg).ok_or(MALFORMED)?,
    }
    Ok(())
}

/// An attribute that does not follow its syntax.
const MALFORMED: Refused = Refused::Malformed("malformed attribute");

/// Reads one media-level attribute's value; `None` if it is malformed.
fn media_value(m: &mut MediaSection, name: &str, arg: &str) -> Option<()> {
    match name {
        "mid" => m.mid = Some(Mid(arg.to_owned())),
        "sendrecv" => m.direction = Direction::SendRecv,
        "sendonly" => m.direction = Direction::SendOnly,
        "recvonly" => m.direction = Direction::RecvOnly,
        "inactive" => m.direction = Direction::Inactive,
        "rtcp-mux" => m.rtcp_mux = true,
        "rtcp-rsize" => m.rtcp_rsize = true,
        "max-message-size" => m.max_message_size = arg.trim().parse().ok(),
        "fingerprint" => {
            let value = arg.trim();
            if !m.fingerprints.iter().any(|f| f == value) {
                m.fingerprints.push(value.to_owned());
            }
        }
        "setup" => m.setup = Some(arg.to_owned()),
        "bundle-only" => m.bundle_only = true,
        "msid" => m.msid = Some(arg.to_owned()),
        "rtpmap" => {
            let (pt, rest) = arg.split_once(' ')?;
            let codec = codec_mut(m, pt)?;
            let mut enc = rest.trim().split('/');
            codec.name = enc.next()?.to_owned();
            codec.clock_rate = enc.next()?.parse().ok()?;
            codec.channels = enc.next().map(|c| c.parse()).transpose().ok()?;
        }
        "fmtp" => {
            let (pt, params) = arg.split_once(' ')?;
            if let Some(codec) = codec_mut(m, pt) {
                codec.fmtp = Some(params.trim().to_owned());
            }
        }
        "extmap" => {
            let (id, rest) = arg.split_once(' ')?;
            // "1/sendonly" carries a direction after the id.
            let id: u8 = id.split('/').next()?.parse().ok()?;
            let uri = rest.split_ascii_whitespace().next()?.to_owned();
            m.extmaps.push(Extmap { id, uri });
        }
        "ssrc" => {
            let ssrc: u32 = arg.split(' ').next()?.parse().ok()?;
            if !m.ssrcs.contains(&ssrc) {
                m.ssrcs.push(ssrc);
            }
        }
        "simulcast" => {
            // "send 1;2,3;~4 recv 5": streams split by ';', alternatives by ','.
            let mut parts = arg.split_ascii_whitespace();
            while let (Some(dir), Some(list)) = (parts.next(), parts.next()) {
                if dir == "send" {
                    m.simulcast_send = list
                        .split(';')
                        .filter_map(|stream| stream.split(',').next())
                        .map(|rid| rid.trim_start_matches('~').to_owned())
                        .filter(|rid| !rid.is_empty())
                        .collect();
                }
            }
        }
        "rid" => {
            let mut parts = arg.split_ascii_whitespace();
            let id = parts.next()?;
            if parts.next() == Some("send") {
                m.rids.push(id.to_owned());
            }
        }
        _ => {}
    }
    Some(())
}

/// The codec of a payload type listed on the m-line (rtpmap of unlisted
/// types is ignored, as JSEP says).
fn codec_mut<'a>(m: &'a mut MediaSection, pt: &str) -> Option<&'a mut Codec> {
    let pt: u8 = pt.trim().parse().ok()?;
    m.codecs.iter_mut().find(|c| c.pt == pt)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR")))
            .unwrap()
    }

    #[test]
    fn parses_a_chrome_offer() {
        let d = parse(&fixture("chrome-offer.sdp")).unwrap();
        assert_eq!(d.media.len(), 2);
        let (audio, video) = (&d.media[0], &d.media[1]);
        assert_eq!(audio.kind, MediaKind::Audio);
        assert_eq!(audio.mid, Some(Mid("0".into())));
        assert_eq!(audio.direction, Direction::SendOnly);
        assert!(audio.rtcp_mux);
        let opus = audio.codecs.iter().find(|c| c.name == "opus").unwrap();
        assert_eq!(
            (opus.pt, opus.clock_rate, opus.channels),
            (111, 48000, Some(2))
        );
        assert_eq!(opus.fmtp.as_deref(), Some("minptime=10;useinbandfec=1"));
        assert!(opus.rtcp_fb.contains(&"transport-cc".to_owned()));
        assert_eq!(audio.ssrcs.len(), 1);
        assert!(audio.extmaps.iter().any(|e| e.uri == extension::MID));
        assert_eq!(video.kind, MediaKind::Video);
        assert!(video.codecs.iter().any(|c| c.name == "VP8"));
        assert!(video.codecs.iter().any(|c| c.name == "rtx"));
        assert_eq!(d.ice_credentials().map(|c| c.0), Some("kdj6"));
        assert!(d.fingerprints()[0].starts_with("sha-256 "));
        assert_eq!(d.bundle, Some(vec![Mid("0".into()), Mid("1".into())]));
        assert!(d.extmap_allow_mixed);
    }

    #[test]
    fn keeps_the_udp_candidates_of_component_one() {
        let sdp = "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
            a=candidate:1 1 udp 2113937151 10.0.0.5 40000 typ host\r\n\
            m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n\
            a=candidate:2 1 UDP 2113937150 fd00::1 40001 typ host generation 0\r\n\
            a=candidate:3 2 udp 2113937149 10.0.0.5 40002 typ host\r\n\
            a=candidate:4 1 tcp 1518280447 10.0.0.5 9 typ host tcptype active\r\n\
            a=candidate:5 1 udp 2113937151 3c8a7e2e-2f4a.local 40003 typ host\r\n\
            a=candidate:1 1 udp 2113937151 10.0.0.5 40000 typ host\r\n\
            a=candidate:6 1 udp\r\n";
        let d = parse(sdp).unwrap();
        let want: Vec<std::net::SocketAddr> = vec![
            "10.0.0.5:40000".parse().unwrap(),
            "[fd00::1]:40001".parse().unwrap(),
        ];
        assert_eq!(d.candidates, want);
    }

    #[test]
    fn parses_firefox_and_safari_offers() {
        let ff = parse(&fixture("firefox-offer.sdp")).unwrap();
        assert_eq!(ff.media.len(), 2);
        assert_eq!(ff.media[0].direction, Direction::SendRecv);
        assert!(
            ff.media[0]
                .codecs
                .iter()
                .any(|c| c.name == "opus" && c.pt == 109)
        );
        assert!(
            ff.media[1]
                .codecs
                .iter()
                .any(|c| c.name == "VP8" && c.pt == 120)
        );
        assert!(!ff.media[0].ssrcs.is_empty());
        assert!(ff.ice_credentials().is_some());
        assert_eq!(
            ff.fingerprints().len(),
            1,
            "the same line in every m-line counts once"
        );

        let safari = parse(&fixture("safari-offer.sdp")).unwrap();
        assert_eq!(safari.media[0].kind, MediaKind::Video);
        assert_eq!(safari.media[0].direction, Direction::RecvOnly);
        assert!(safari.media[0].codecs.iter().any(|c| c.name == "H264"));
        assert!(safari.ice_credentials().is_some());
    }

    #[test]
    fn refuses_what_is_not_sdp() {
        assert_eq!(parse("hello").unwrap_err(), SdpError::NotSdp);
        assert!(parse("v=0\r\nm=video notaport UDP/TLS/RTP/SAVPF 96\r\n").is_err());
        assert!(parse("v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus\r\n").is_err());
        assert!(parse("v=0\r\nnonsense\r\n").is_err());
        // Unknown attributes and lines are kept out of the way, not refused.
        assert!(parse("v=0\r\na=x-unknown:1\r\nm=audio 9 RTP/AVP 0\r\na=foo\r\n").is_ok());
    }

    #[test]
    fn format_identity_follows_the_parameters_that_matter() {
        let h264 = |fmtp: &str| Codec {
            pt: 96,
            name: "H264".into(),
            clock_rate: 90000,
            channels: None,
            fmtp: Some(fmtp.into()),
            rtcp_fb: vec![],
        };
        let a = h264("level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f");
        let b = h264("profile-level-id=42e034;packetization-mode=1");
        let c = h264("profile-level-id=42e01f;packetization-mode=0");
        assert!(a.same_format(&b));
        assert!(!a.same_format(&c));
        // Absent parameters take their defaults; odd values never panic.
        let bare = h264("");
        assert!(bare.same_format(&h264("packetization-mode=0;profile-level-id=42001f")));
        let hostile = h264("profile-level-id=424\u{e9}1;packetization-mode=1");
        assert!(!hostile.same_format(&a));
        let vp9 = |fmtp: Option<&str>| Codec {
            name: "VP9".into(),
            fmtp: fmtp.map(str::to_owned),
            ..h264("")
        };
        assert!(vp9(None).same_format(&vp9(Some("profile-id=0"))));
        assert!(!vp9(None).same_format(&vp9(Some("profile-id=2"))));
    }
}
