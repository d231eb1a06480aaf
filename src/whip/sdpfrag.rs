//! Trickle ICE SDP fragments (RFC 8840, `application/trickle-ice-sdpfrag`),
//! the body of a WHIP/WHEP `PATCH` (RFC 9725 §4.3): reading the client's
//! (new ICE credentials for a restart, candidates, end of candidates) and
//! writing ours in answer to a restart.
//!
//! Where it sits: under the WHIP/WHEP routes, on the control side; sans-IO,
//! text in and out.

use std::fmt;

/// Most candidate lines one fragment may carry.
pub const MAX_CANDIDATES: usize = 64;

/// Most lines one fragment may have.
const MAX_LINES: usize = 512;

/// What a client's fragment says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fragment {
    /// New ICE credentials (ufrag, pwd): an ICE restart (RFC 8840 §4.4).
    pub restart: Option<(String, String)>,
    /// The `a=candidate` lines' values.
    pub candidates: Vec<String>,
    /// `a=end-of-candidates` was present.
    pub end_of_candidates: bool,
}

/// Why a fragment is refused (400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FragmentError(pub String);

impl fmt::Display for FragmentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Fragment {
    /// Reads a fragment. Lines are `a=` attributes, `m=` lines (which say
    /// which media section the following ones belong to; with BUNDLE they
    /// all belong to one transport) or empty.
    pub fn parse(text: &str) -> Result<Fragment, FragmentError> {
        let mut out = Fragment::default();
        let (mut ufrag, mut pwd) = (None, None);
        for (n, line) in text.lines().enumerate() {
            if n >= MAX_LINES {
                return Err(FragmentError(format!("more than {MAX_LINES} lines")));
            }
            let line = line.trim_end_matches('\r');
            if line.is_empty() || line.starts_with("m=") {
                continue;
            }
            let Some(attr) = line.strip_prefix("a=") else {
                return Err(FragmentError(format!(
                    "line {} is neither a=… nor m=…",
                    n + 1
                )));
            };
            let (name, value) = attr.split_once(':').unwrap_or((attr, ""));
            match name {
                "ice-ufrag" => set_once(&mut ufrag, value, "ice-ufrag")?,
                "ice-pwd" => set_once(&mut pwd, value, "ice-pwd")?,
                "candidate" => {
                    if out.candidates.len() == MAX_CANDIDATES {
                        return Err(FragmentError(format!(
                            "more than {MAX_CANDIDATES} candidates"
                        )));
                    }
                    if value.split_whitespace().count() < 8 {
                        return Err(FragmentError(format!("malformed candidate {value:?}")));
                    }
                    out.candidates.push(value.to_owned());
                }
                "end-of-candidates" => out.end_of_candidates = true,
                // ice-options, group, mid and the like change nothing here.
                _ => {}
            }
        }
        out.restart = match (ufrag, pwd) {
            (None, None) => None,
            (Some(u), Some(p)) => {
                use crate::sdp::bounds::{PWD_LEN, UFRAG_LEN, is_ice_credential};
                let ok = is_ice_credential(&u, UFRAG_LEN) && is_ice_credential(&p, PWD_LEN);
                if !ok {
                    return Err(FragmentError(
                        "ice-ufrag must be 4-256 and ice-pwd 22-256 ice-chars".into(),
                    ));
                }
                Some((u, p))
            }
            _ => {
                return Err(FragmentError(
                    "an ICE restart needs both ice-ufrag and ice-pwd".into(),
                ));
            }
        };
        Ok(out)
    }
}

fn set_once(slot: &mut Option<String>, value: &str, what: &str) -> Result<(), FragmentError> {
    match slot {
        Some(old) if old != value => Err(FragmentError(format!("two different {what} values"))),
        _ => {
            *slot = Some(value.to_owned());
            Ok(())
        }
    }
}

/// Our fragment after an ICE restart, from our new answer: the session-level
/// ICE lines (ice-lite, options, credentials, the BUNDLE group), then the
/// first m-line with its mid and our candidates (RFC 9725 §4.3.2).
pub fn answer_fragment(answer_sdp: &str) -> String {
    let mut head = String::new();
    let mut media = String::new();
    let mut in_first_media = false;
    let mut seen_media = false;
    for line in answer_sdp.lines().map(|l| l.trim_end_matches('\r')) {
        if line.starts_with("m=") {
            in_first_media = !seen_media;
            seen_media = true;
            if in_first_media {
                media.push_str(line);
                media.push_str("\r\n");
            }
            continue;
        }
        let session_level = [
            "a=ice-lite",
            "a=ice-options:",
            "a=ice-ufrag:",
            "a=ice-pwd:",
            "a=group:BUNDLE",
        ]
        .iter()
        .any(|p| line.starts_with(p));
        let media_level = ["a=mid:", "a=candidate:", "a=end-of-candidates"]
            .iter()
            .any(|p| line.starts_with(p));
        if session_level && !head.contains(line.split(':').next().unwrap_or(line)) {
            head.push_str(line);
            head.push_str("\r\n");
        } else if media_level && in_first_media {
            media.push_str(line);
            media.push_str("\r\n");
        }
    }
    head + &media
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 8840 §4.4's example fragment, as RFC 9725 §4.3.1 sends it.
    const TRICKLE: &str = "a=ice-options:trickle ice2\r\n\
        a=group:BUNDLE 0 1\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n\
        a=mid:0\r\n\
        a=ice-ufrag:EsAw\r\n\
        a=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\r\n\
        a=candidate:1387637174 1 udp 2122260223 192.0.2.1 61764 typ host generation 0 ufrag EsAw network-id 1\r\n\
        a=candidate:3471623853 1 udp 2122194687 198.51.100.2 61765 typ host generation 0 ufrag EsAw network-id 2\r\n\
        a=end-of-candidates\r\n";

    #[test]
    fn reads_rfc_9725_trickle_fragment() {
        let f = Fragment::parse(TRICKLE).unwrap();
        assert_eq!(f.candidates.len(), 2);
        assert!(f.candidates[0].contains("192.0.2.1 61764"));
        assert!(f.end_of_candidates);
        // The fragment repeats the current credentials; whether they are
        // new (a restart) is for the caller to compare.
        assert_eq!(
            f.restart,
            Some(("EsAw".into(), "P2uYro0UCOQ4zxjKXaWCBui1".into()))
        );
    }

    #[test]
    fn candidates_alone_are_no_restart() {
        let f = Fragment::parse("a=candidate:1 1 udp 1 192.0.2.1 5000 typ host\r\n").unwrap();
        assert_eq!(f.restart, None);
        assert!(!f.end_of_candidates);
    }

    #[test]
    fn refuses_what_is_not_a_fragment() {
        for bad in [
            "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n",
            "a=ice-ufrag:abcd\r\n",
            "a=ice-ufrag:ab\r\na=ice-pwd:0123456789012345678901\r\n",
            "a=ice-ufrag:abcd\r\na=ice-pwd:short\r\n",
            "a=ice-ufrag:ab d\r\na=ice-pwd:0123456789012345678901\r\n",
            "a=ice-ufrag:abcd\r\na=ice-ufrag:efgh\r\na=ice-pwd:0123456789012345678901\r\n",
            "a=candidate:1 1 udp\r\n",
        ] {
            assert!(Fragment::parse(bad).is_err(), "{bad:?}");
        }
        let many = "a=candidate:1 1 udp 1 192.0.2.1 5000 typ host\r\n".repeat(MAX_CANDIDATES + 1);
        assert!(Fragment::parse(&many).is_err());
        assert!(Fragment::parse(&"a=x\r\n".repeat(MAX_LINES + 1)).is_err());
    }

    #[test]
    fn our_fragment_holds_credentials_and_first_section_candidates() {
        let answer = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
            a=ice-lite\r\na=group:BUNDLE 0 1\r\n\
            m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n\
            a=ice-ufrag:srvA\r\na=ice-pwd:serverpasswordserverpw\r\n\
            a=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host\r\na=end-of-candidates\r\n\
            m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\n\
            a=ice-ufrag:srvA\r\na=ice-pwd:serverpasswordserverpw\r\n\
            a=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host\r\n";
        let frag = answer_fragment(answer);
        assert_eq!(
            frag,
            "a=ice-lite\r\na=group:BUNDLE 0 1\r\na=ice-ufrag:srvA\r\n\
             a=ice-pwd:serverpasswordserverpw\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n\
             a=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host\r\na=end-of-candidates\r\n"
        );
        let back = Fragment::parse(&frag).unwrap();
        assert_eq!(back.candidates.len(), 1);
        assert_eq!(back.restart.unwrap().0, "srvA");
    }
}
