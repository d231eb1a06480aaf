//! Video payload formats, as far as a forwarder must read them: where a
//! keyframe starts (a simulcast switch may happen only there) and the VP8
//! fields that must stay continuous when one subscriber's stream is made
//! of several layers one after the other.
//!
//! Where it sits: on the publisher's worker, between unprotect and the
//! fan-out inbox, for simulcast tracks only ([`Codec::starts_keyframe`]
//! marks the packet once for every subscriber); and before protect, per
//! subscriber, for the VP8 rewrite ([`vp8::Rewrite`]).
//!
//! Every reader takes the RTP payload (after header and extensions) and
//! never panics: bytes too short for what they announce are "not a
//! keyframe".

pub mod av1;
pub mod h264;
#[cfg(test)]
pub mod testing;
pub mod vp8;
pub mod vp9;

/// A video payload format, by its `a=rtpmap` encoding name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// RFC 7741.
    Vp8,
    /// RFC 9628.
    Vp9,
    /// RFC 6184.
    H264,
    /// The AV1 RTP payload format (AOMedia).
    Av1,
    /// Anything else: never a switching point.
    Other,
}

impl Codec {
    /// The format of an encoding name (case-insensitive).
    pub fn from_name(name: &str) -> Self {
        match name.to_ascii_uppercase().as_str() {
            "VP8" => Codec::Vp8,
            "VP9" => Codec::Vp9,
            "H264" => Codec::H264,
            "AV1" => Codec::Av1,
            _ => Codec::Other,
        }
    }

    /// Whether this packet's payload is the first packet of a keyframe: a
    /// decoder that starts here decodes from here on.
    pub fn starts_keyframe(self, payload: &[u8]) -> bool {
        match self {
            Codec::Vp8 => vp8::starts_keyframe(payload),
            Codec::Vp9 => vp9::starts_keyframe(payload),
            Codec::H264 => h264::starts_keyframe(payload),
            Codec::Av1 => av1::starts_keyframe(payload),
            Codec::Other => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_matched_without_case() {
        assert_eq!(Codec::from_name("vp8"), Codec::Vp8);
        assert_eq!(Codec::from_name("H264"), Codec::H264);
        assert_eq!(Codec::from_name("AV1"), Codec::Av1);
        assert_eq!(Codec::from_name("VP9"), Codec::Vp9);
        assert_eq!(Codec::from_name("opus"), Codec::Other);
        assert!(!Codec::Other.starts_keyframe(&[0; 8]));
    }
}
