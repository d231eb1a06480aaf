//! The codecs the control plane offers and accepts: the defaults of a
//! transceiver it creates itself, and the RTCP feedback it sends and
//! supports per codec.

use crate::sdp::{Codec, MediaKind};

/// The codecs switchboard offers for a transceiver it creates itself
/// (`bidirectionalMediaStream` without an SDP).
pub fn default_codecs(kind: MediaKind) -> Vec<Codec> {
    let fb = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    match kind {
        MediaKind::Audio => vec![Codec {
            pt: 111,
            name: "opus".into(),
            clock_rate: 48000,
            channels: Some(2),
            fmtp: Some("minptime=10;useinbandfec=1".into()),
            rtcp_fb: fb(&["transport-cc"]),
        }],
        MediaKind::Video => {
            let video = |pt, name: &str, fmtp: Option<&str>| Codec {
                pt,
                name: name.into(),
                clock_rate: 90000,
                channels: None,
                fmtp: fmtp.map(str::to_owned),
                rtcp_fb: fb(&["nack pli", "ccm fir", "transport-cc"]),
            };
            vec![
                video(96, "VP8", None),
                video(98, "VP9", Some("profile-id=0")),
                video(
                    102,
                    "H264",
                    Some("level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"),
                ),
                video(45, "AV1", None),
            ]
        }
        MediaKind::Application => Vec::new(),
    }
}

/// A codec as our offer of a pulled m-line (one we send on) carries it:
/// video with keyframe requests; both kinds with generic NACK and
/// transport-cc (the subscriber's bandwidth estimate).
pub fn sending_feedback(codec: Codec, kind: MediaKind) -> Codec {
    let fb: &[&str] = match kind {
        MediaKind::Video => &["nack", "nack pli", "ccm fir", "transport-cc"],
        // Audio NACK is offered for the clients that use it (browsers
        // answer without it and conceal losses instead).
        _ => &["nack", "transport-cc"],
    };
    Codec {
        rtcp_fb: fb.iter().map(|f| (*f).to_owned()).collect(),
        ..codec
    }
}

/// The rtcp-fb values we honour: keyframe requests, generic NACK (answered
/// with resends, and sent to publishers) and transport-cc (our feedback to
/// publishers; subscribers' feedback to us). REMB is not negotiated.
pub fn supported_feedback(codec: &Codec) -> Codec {
    let mut c = codec.clone();
    c.rtcp_fb
        .retain(|fb| fb == "nack pli" || fb == "ccm fir" || fb == "nack" || fb == "transport-cc");
    c
}
