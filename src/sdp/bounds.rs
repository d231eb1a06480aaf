//! The bounds of a description the SDP reader accepts: what a client's SDP
//! may make the control thread hold and work on. Every API operation that
//! takes an SDP parses it first, so a description past these is refused
//! (406 `invalid_session_description`) before anything else reads it, and
//! the work on one that passes is linear in its size.
//!
//! Each bound sits well above what a browser writes (a Chromium offer of as
//! many m-lines as the 1 MiB body holds passes; `tests/sdp_bounds.rs`) and
//! below what would let one request cost other sessions anything.

/// Most m-lines a description may have (the session cap,
/// `--max-tracks-per-session`, is checked after reading; this bounds the
/// reading itself).
pub const MAX_MEDIA: usize = 1024;

/// Longest line, in bytes. The longest a browser writes is a BUNDLE group
/// (256 mids of a few characters) or an `a=ssrc` line with its msid.
pub const MAX_LINE: usize = 8 * 1024;

/// Most formats on one m-line: there are 128 RTP payload types.
pub const MAX_FORMATS: usize = 128;

/// Most `a=rtcp-fb` values of one format (Chromium lists five).
pub const MAX_FEEDBACK: usize = 16;

/// Longest `a=rtcp-fb` value in bytes (`transport-cc`, `nack pli`,
/// `goog-remb`): a session keeps its client's formats, so what one holds
/// is bounded by these and [`MAX_FMTP`].
pub const MAX_FEEDBACK_VALUE: usize = 64;

/// Longest `a=fmtp` parameter list in bytes (H.264's, with
/// `sprop-parameter-sets`, is a few hundred).
pub const MAX_FMTP: usize = 1024;

/// Longest encoding name in an `a=rtpmap`, in bytes.
pub const MAX_ENCODING_NAME: usize = 32;

/// Most `a=extmap` lines on one m-line (ids 1–14 for one-byte headers;
/// two-byte headers reach 255, which nobody lists).
pub const MAX_EXTMAPS: usize = 32;

/// Most SSRCs on one m-line (simulcast with RTX and FEC uses up to nine).
pub const MAX_SSRCS: usize = 32;

/// Most rids (`a=rid`) or `a=simulcast` streams on one m-line.
pub const MAX_RIDS: usize = 16;

/// Most distinct certificate fingerprints in a description (one per hash
/// function is what anyone sends).
pub const MAX_FINGERPRINTS: usize = 8;

/// Longest `a=mid` value in bytes (RFC 8843 §15: a mid travels in an RTP
/// header extension; a one-byte header carries 16 bytes).
pub const MAX_MID: usize = 32;

/// ice-ufrag length in characters (RFC 8839 §5.4: 4 to 256 ice-chars).
pub const UFRAG_LEN: std::ops::RangeInclusive<usize> = 4..=256;

/// ice-pwd length in characters (RFC 8839 §5.4: 22 to 256 ice-chars).
pub const PWD_LEN: std::ops::RangeInclusive<usize> = 22..=256;

/// Whether `value` is an ice-ufrag or ice-pwd of a length in `len`, all of
/// ice-chars (RFC 8839 §5.4: ALPHA / DIGIT / "+" / "/").
pub fn is_ice_credential(value: &str, len: std::ops::RangeInclusive<usize>) -> bool {
    len.contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

/// Whether `value` may be a mid: 1 to [`MAX_MID`] bytes of visible ASCII
/// (RFC 8843: a token).
pub fn is_mid(value: &str) -> bool {
    (1..=MAX_MID).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ice_credentials_follow_rfc_8839() {
        assert!(is_ice_credential("kdj6", UFRAG_LEN));
        assert!(is_ice_credential("A+LI", UFRAG_LEN));
        assert!(!is_ice_credential("abc", UFRAG_LEN), "shorter than 4");
        assert!(is_ice_credential(&"a".repeat(256), UFRAG_LEN));
        assert!(!is_ice_credential(&"a".repeat(257), UFRAG_LEN));
        assert!(
            !is_ice_credential("ab:cd", UFRAG_LEN),
            "':' separates ufrags"
        );
        assert!(is_ice_credential("PU0Etd+sFyGicmjsWwJscLcq", PWD_LEN));
        assert!(!is_ice_credential("short-password", PWD_LEN));
        assert!(!is_ice_credential(&"p".repeat(60_000), PWD_LEN));
    }

    #[test]
    fn mids_are_short_tokens() {
        assert!(is_mid("0"));
        assert!(is_mid("audio"));
        assert!(is_mid(&"m".repeat(MAX_MID)));
        assert!(!is_mid(&"m".repeat(MAX_MID + 1)));
        assert!(!is_mid(""));
        assert!(!is_mid("a b"));
    }
}
