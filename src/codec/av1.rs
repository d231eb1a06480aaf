//! AV1 RTP payloads (the AOMedia "RTP Payload Format for AV1", §4.4), read
//! for keyframe starts: the aggregation header's N bit marks the first
//! packet of a coded video sequence, which begins with a sequence header
//! OBU before a key frame. A packet whose first OBU element (not a
//! continuation) is a sequence header counts too.
//!
//! ```text
//!  aggregation header: |Z|Y| W |N|-|-|-|
//!  OBU header:         |F| type  |X|S|-|
//! ```

/// OBU type of a sequence header.
const OBU_SEQUENCE_HEADER: u8 = 1;

/// Whether the payload starts an AV1 keyframe.
pub fn starts_keyframe(payload: &[u8]) -> bool {
    let Some(&aggregation) = payload.first() else {
        return false;
    };
    let continues = aggregation & 0x80 != 0;
    let new_sequence = aggregation & 0x08 != 0;
    if continues {
        return false;
    }
    if new_sequence {
        return payload.len() > 1;
    }
    // The first element: with W = 0 it carries a LEB128 length first.
    let counted = (aggregation >> 4) & 0x03;
    let mut at = 1;
    if counted == 0 {
        while payload.get(at).is_some_and(|b| b & 0x80 != 0) {
            at += 1;
        }
        at += 1;
    }
    payload
        .get(at)
        .is_some_and(|obu| (obu >> 3) & 0x0f == OBU_SEQUENCE_HEADER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_coded_video_sequence_or_a_leading_sequence_header_starts_a_keyframe() {
        // Z=0 Y=0 W=1 N=1, then a sequence header OBU (0x08).
        assert!(starts_keyframe(&[0x18, 0x08, 0x00]));
        // N clear but the first element (W=1) is a sequence header.
        assert!(starts_keyframe(&[0x10, 0x08, 0x00]));
        // W=0: a LEB128 length (0x81 0x01 = 129) before the element.
        assert!(starts_keyframe(&[0x00, 0x81, 0x01, 0x0a, 0x00]));
        // A frame OBU (type 6: 0x30) is not a start.
        assert!(!starts_keyframe(&[0x10, 0x30, 0x00]));
        // Z=1: the first element continues the previous packet's OBU.
        assert!(!starts_keyframe(&[0x98, 0x08, 0x00]));
    }

    #[test]
    fn short_payloads_are_not_keyframes() {
        for bytes in [&[][..], &[0x18], &[0x10], &[0x00, 0x81]] {
            assert!(!starts_keyframe(bytes), "{bytes:?}");
        }
    }
}
