//! Stream names in WHIP/WHEP paths, and the names a WHIP session's tracks
//! are pushed under, so that any Calls API session can pull them:
//! `{stream}-audio`, `{stream}-video`, then `{stream}-audio-2`, … for more
//! sections of one kind, in the offer's order.
//!
//! Where it sits: on the control side, under the WHIP/WHEP routes; pure.

use crate::ids::Mid;
use crate::sdp::{MediaKind, SessionDescription};

/// Longest stream name (`-video-256` adds at most 10 bytes: within the
/// Calls API's 64 for a track name).
pub const MAX_STREAM_LEN: usize = 48;

/// Whether `stream` may name a stream: 1–48 of `A-Z a-z 0-9 _ . -`.
pub fn valid_stream(stream: &str) -> bool {
    (1..=MAX_STREAM_LEN).contains(&stream.len())
        && stream
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// One media section a WHIP client sends, and the track name it gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The section's mid.
    pub mid: Mid,
    /// Audio or video.
    pub kind: MediaKind,
    /// The track's name.
    pub track_name: String,
}

/// The sending audio and video sections of a WHIP offer, named.
/// Receive-only, inactive, rejected (port 0), mid-less and data sections
/// are not tracks.
pub fn published(stream: &str, offer: &SessionDescription) -> Vec<Published> {
    let (mut audio, mut video) = (0, 0);
    offer
        .media
        .iter()
        .filter(|m| m.is_active() && m.direction.sends())
        .filter_map(|m| {
            let mid = m.mid.clone()?;
            let n = match m.kind {
                MediaKind::Audio => &mut audio,
                MediaKind::Video => &mut video,
                MediaKind::Application => return None,
            };
            *n += 1;
            let track_name = match *n {
                1 => format!("{stream}-{}", m.kind.as_str()),
                k => format!("{stream}-{}-{k}", m.kind.as_str()),
            };
            Some(Published {
                mid,
                kind: m.kind,
                track_name,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(sections: &[(&str, &str, &str)]) -> SessionDescription {
        let mut sdp = String::from("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n");
        for (kind, mid, dir) in sections {
            let fmt = if *kind == "application" {
                "UDP/DTLS/SCTP webrtc-datachannel"
            } else {
                "UDP/TLS/RTP/SAVPF 96"
            };
            sdp += &format!("m={kind} 9 {fmt}\r\nc=IN IP4 0.0.0.0\r\na=mid:{mid}\r\na={dir}\r\n");
            if *kind != "application" {
                sdp += "a=rtpmap:96 opus/48000/2\r\n";
            }
        }
        crate::sdp::parse(&sdp).unwrap()
    }

    #[test]
    fn names_sending_sections_by_kind_and_order() {
        let o = offer(&[
            ("audio", "0", "sendonly"),
            ("video", "1", "sendonly"),
            ("video", "2", "sendrecv"),
            ("audio", "3", "recvonly"),
            ("application", "4", "sendrecv"),
        ]);
        let names: Vec<_> = published("show", &o)
            .into_iter()
            .map(|p| (p.mid.0, p.track_name))
            .collect();
        assert_eq!(
            names,
            [
                ("0".to_owned(), "show-audio".to_owned()),
                ("1".into(), "show-video".into()),
                ("2".into(), "show-video-2".into()),
            ]
        );
    }

    #[test]
    fn rejected_sections_are_no_tracks() {
        let sdp = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
            m=audio 0 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\na=sendonly\r\na=rtpmap:96 opus/48000/2\r\n\
            m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=sendonly\r\na=rtpmap:96 VP8/90000\r\n";
        let named = published("s", &crate::sdp::parse(sdp).unwrap());
        assert_eq!(named.len(), 1);
        assert_eq!(named[0].track_name, "s-video");
    }

    #[test]
    fn stream_names_are_bounded_and_plain() {
        assert!(valid_stream("obs_1.main-2"));
        assert!(valid_stream(&"a".repeat(MAX_STREAM_LEN)));
        for bad in [
            "",
            "a/b",
            "a b",
            "ä",
            "%2e",
            &"a".repeat(MAX_STREAM_LEN + 1),
        ] {
            assert!(!valid_stream(bad), "{bad:?}");
        }
    }
}
