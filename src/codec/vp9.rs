//! VP9 payload descriptor (RFC 9628 §4.2), read for keyframe starts.
//!
//! ```text
//!       0 1 2 3 4 5 6 7
//!      +-+-+-+-+-+-+-+-+
//!      |I|P|L|F|B|E|V|Z|  required
//!  I:  |M| PICTURE ID  |  (a second byte when M)
//!  L:  | TID |U| SID |D|  (then TL0PICIDX when F is clear)
//!      +-+-+-+-+-+-+-+-+
//! ```
//! A keyframe starts where B (start of a frame) is set, P (inter-picture
//! predicted) is clear, and the spatial layer is 0.

/// Whether the payload starts a VP9 keyframe.
pub fn starts_keyframe(payload: &[u8]) -> bool {
    let Some(&first) = payload.first() else {
        return false;
    };
    let (inter, layers, begins) = (first & 0x40 != 0, first & 0x20 != 0, first & 0x08 != 0);
    if inter || !begins {
        return false;
    }
    let mut at = 1;
    if first & 0x80 != 0 {
        let Some(&id) = payload.get(at) else {
            return false;
        };
        at += if id & 0x80 != 0 { 2 } else { 1 };
    }
    if !layers {
        return payload.len() > at;
    }
    payload
        .get(at)
        .is_some_and(|layer| (layer >> 1) & 0x07 == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_keyframe_begins_a_frame_is_not_predicted_and_is_spatial_layer_0() {
        // I=1 P=0 L=1 F=0 B=1 | M=1 picture id 0x0102 | TID 0 U 0 SID 0 D 0 | TL0PICIDX.
        let key = [0xa8, 0x81, 0x02, 0x00, 0x05, 0xff];
        assert!(starts_keyframe(&key));
        let mut predicted = key;
        predicted[0] |= 0x40; // P
        assert!(!starts_keyframe(&predicted));
        let mut later = key;
        later[0] &= !0x08; // B clear: not the frame's first packet
        assert!(!starts_keyframe(&later));
        let mut upper = key;
        upper[3] = 0x02; // SID 1
        assert!(!starts_keyframe(&upper));
        // No picture id, no layer indices: B=1, P=0.
        assert!(starts_keyframe(&[0x08, 0x00]));
        // A 7-bit picture id.
        assert!(starts_keyframe(&[0x88, 0x05, 0x00]));
    }

    #[test]
    fn short_payloads_are_not_keyframes() {
        for bytes in [
            &[][..],
            &[0x08],
            &[0x88],
            &[0xa8, 0x81, 0x02],
            &[0x88, 0x81],
        ] {
            assert!(!starts_keyframe(bytes), "{bytes:?}");
        }
    }
}
