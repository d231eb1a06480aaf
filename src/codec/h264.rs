//! H.264 RTP payloads (RFC 6184 §5.2–5.8), read for keyframe starts: a
//! keyframe begins with its sequence parameter set (NAL unit type 7), sent
//! alone, inside a STAP-A aggregate, or as the first fragment of an FU-A.
//! (An IDR slice without a parameter set before it cannot start a decoder
//! that switches resolution, so it does not count.)

/// NAL unit type of a sequence parameter set.
const SPS: u8 = 7;
/// Single-time aggregation packet (RFC 6184 §5.7.1).
const STAP_A: u8 = 24;
/// Fragmentation unit (RFC 6184 §5.8).
const FU_A: u8 = 28;

/// Whether the payload starts an H.264 keyframe.
pub fn starts_keyframe(payload: &[u8]) -> bool {
    let Some(&first) = payload.first() else {
        return false;
    };
    match first & 0x1f {
        SPS => true,
        STAP_A => {
            let mut rest = &payload[1..];
            while let [hi, lo, tail @ ..] = rest {
                let size = usize::from(u16::from_be_bytes([*hi, *lo]));
                let Some(nal) = tail.get(..size) else {
                    return false;
                };
                if nal.first().is_some_and(|n| n & 0x1f == SPS) {
                    return true;
                }
                rest = &tail[size..];
            }
            false
        }
        FU_A => payload
            .get(1)
            .is_some_and(|fu| fu & 0x80 != 0 && fu & 0x1f == SPS),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_sps_alone_in_an_aggregate_or_a_first_fragment_starts_a_keyframe() {
        // Single NAL: SPS (0x67), then a non-IDR slice (0x41), an IDR (0x65).
        assert!(starts_keyframe(&[0x67, 0x42, 0xc0, 0x1f]));
        assert!(!starts_keyframe(&[0x41, 0x9a]));
        assert!(!starts_keyframe(&[0x65, 0x88]));
        // STAP-A: [size 2: SEI 0x06 ..] [size 3: SPS 0x67 ..] [size 1: PPS 0x68].
        let stap = [0x78, 0, 2, 0x06, 0x05, 0, 3, 0x67, 0x42, 0xc0, 0, 1, 0x68];
        assert!(starts_keyframe(&stap));
        // STAP-A without an SPS.
        assert!(!starts_keyframe(&[0x78, 0, 1, 0x68, 0, 1, 0x06]));
        // FU-A (0x7c) with S set and type 7; later fragments do not count.
        assert!(starts_keyframe(&[0x7c, 0x87, 0x42]));
        assert!(!starts_keyframe(&[0x7c, 0x07, 0x42]));
        assert!(
            !starts_keyframe(&[0x7c, 0x85, 0x88]),
            "an IDR fragment without SPS"
        );
    }

    #[test]
    fn truncated_aggregates_are_not_keyframes() {
        // The SPS size runs past the end.
        assert!(!starts_keyframe(&[0x78, 0, 9, 0x67, 0x42]));
        assert!(!starts_keyframe(&[0x78, 0]));
        assert!(!starts_keyframe(&[0x7c]));
        assert!(!starts_keyframe(&[]));
    }
}
