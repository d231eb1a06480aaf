//! VP8 payload descriptor (RFC 7741 §4.2): keyframe start, and the picture
//! id, TL0PICIDX and KEYIDX a forwarder keeps continuous across layer
//! switches.
//!
//! ```text
//!       0 1 2 3 4 5 6 7
//!      +-+-+-+-+-+-+-+-+
//!      |X|R|N|S|R| PID |  required
//!  X:  |I|L|T|K| RSV   |
//!  I:  |M| PictureID   |  (a second byte when M)
//!  L:  |   TL0PICIDX   |
//!  T/K:|TID|Y| KEYIDX  |
//!      +-+-+-+-+-+-+-+-+
//! ```
//! Then the VP8 payload header, whose first byte's low bit is P, the
//! inverse keyframe flag (RFC 7741 §4.3).

/// Where a descriptor's optional fields lie, read once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Descriptor {
    /// Offset of the picture id, and whether it is the 15-bit form.
    pub picture_id: Option<(usize, bool)>,
    /// Offset of TL0PICIDX.
    pub tl0picidx: Option<usize>,
    /// Offset of the TID/Y/KEYIDX byte, when K is set.
    pub keyidx: Option<usize>,
    /// Start of partition 0 (S set, PID 0).
    pub starts_frame: bool,
    /// Where the VP8 payload (header) begins.
    pub payload_offset: usize,
}

impl Descriptor {
    /// Reads the descriptor at the start of an RTP payload.
    pub fn parse(payload: &[u8]) -> Option<Self> {
        let first = *payload.first()?;
        let mut at = 1;
        let (mut picture_id, mut tl0picidx, mut keyidx) = (None, None, None);
        if first & 0x80 != 0 {
            let x = *payload.get(at)?;
            at += 1;
            if x & 0x80 != 0 {
                let wide = *payload.get(at)? & 0x80 != 0;
                picture_id = Some((at, wide));
                at += if wide { 2 } else { 1 };
            }
            if x & 0x40 != 0 {
                tl0picidx = Some(at);
                at += 1;
            }
            if x & 0x30 != 0 {
                if x & 0x10 != 0 {
                    keyidx = Some(at);
                }
                at += 1;
            }
        }
        (payload.len() >= at).then_some(Descriptor {
            picture_id,
            tl0picidx,
            keyidx,
            starts_frame: first & 0x10 != 0 && first & 0x07 == 0,
            payload_offset: at,
        })
    }

    /// The picture id (7 or 15 bits).
    pub fn read_picture_id(&self, payload: &[u8]) -> Option<u16> {
        let (at, wide) = self.picture_id?;
        Some(if wide {
            u16::from_be_bytes([payload[at] & 0x7f, payload[at + 1]])
        } else {
            u16::from(payload[at] & 0x7f)
        })
    }
}

/// Whether the payload starts a VP8 keyframe: the start of partition 0
/// with P clear.
pub fn starts_keyframe(payload: &[u8]) -> bool {
    Descriptor::parse(payload).is_some_and(|d| {
        d.starts_frame
            && payload
                .get(d.payload_offset)
                .is_some_and(|header| header & 0x01 == 0)
    })
}

/// One subscriber's VP8 numbering: the fields it was sent, shifted by
/// offsets chosen at each layer switch so that they continue where the
/// previous layer left off. Call [`Rewrite::switched`] before the first
/// packet (a keyframe) of a new layer, then [`Rewrite::apply`] to every
/// packet sent, in order.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rewrite {
    picture_id: u16,
    tl0picidx: u8,
    keyidx: u8,
    /// The last values sent: (picture id, TL0PICIDX, KEYIDX).
    last: (Option<u16>, Option<u8>, Option<u8>),
    rebase: bool,
}

impl Rewrite {
    /// The next packet starts a keyframe of another layer: its numbers
    /// follow the last ones sent.
    pub fn switched(&mut self) {
        self.rebase = true;
    }

    /// Rewrites a resent packet's descriptor with the offsets in force,
    /// changing nothing else (it was sent before, from the current layer).
    /// Nothing happens unless VP8 packets were rewritten before.
    pub fn resend(&self, payload: &mut [u8]) {
        if self.last == (None, None, None) {
            return;
        }
        let mut again = *self;
        again.rebase = false;
        again.apply(payload);
    }

    /// Rewrites the descriptor of `payload` in place (an RTP payload
    /// that is not VP8 enough to parse is left alone).
    pub fn apply(&mut self, payload: &mut [u8]) {
        let Some(d) = Descriptor::parse(payload) else {
            return;
        };
        let rebase = std::mem::take(&mut self.rebase);
        if let Some((at, wide)) = d.picture_id {
            let source = d.read_picture_id(payload).unwrap_or(0);
            let modulus: u16 = if wide { 0x8000 } else { 0x80 };
            if rebase && let Some(last) = self.last.0 {
                self.picture_id = last.wrapping_add(1).wrapping_sub(source);
            }
            let id = source.wrapping_add(self.picture_id) % modulus;
            if wide {
                payload[at] = 0x80 | (id >> 8) as u8;
                payload[at + 1] = id as u8;
            } else {
                payload[at] = id as u8;
            }
            self.last.0 = Some(id);
        }
        if let Some(at) = d.tl0picidx {
            if rebase && let Some(last) = self.last.1 {
                self.tl0picidx = last.wrapping_add(1).wrapping_sub(payload[at]);
            }
            payload[at] = payload[at].wrapping_add(self.tl0picidx);
            self.last.1 = Some(payload[at]);
        }
        if let Some(at) = d.keyidx {
            let source = payload[at] & 0x1f;
            if rebase && let Some(last) = self.last.2 {
                self.keyidx = last.wrapping_add(1).wrapping_sub(source);
            }
            let idx = source.wrapping_add(self.keyidx) & 0x1f;
            payload[at] = (payload[at] & 0xe0) | idx;
            self.last.2 = Some(idx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// X=1 S=1 PID=0 | I=1 L=1 T=1 K=1 | M=1 picture id 0x1234 | TL0PICIDX
    /// 7 | TID 0 Y=0 KEYIDX 3 | VP8 header with P clear (keyframe).
    fn keyframe(picture_id: u16, tl0: u8, keyidx: u8) -> Vec<u8> {
        let [hi, lo] = picture_id.to_be_bytes();
        vec![0x90, 0xf0, 0x80 | hi, lo, tl0, keyidx, 0x10, 0x02, 0x00]
    }

    #[test]
    fn a_keyframe_is_the_start_of_partition_0_with_p_clear() {
        let k = keyframe(0x1234, 7, 3);
        let d = Descriptor::parse(&k).expect("descriptor");
        assert_eq!(d.picture_id, Some((2, true)));
        assert_eq!(d.read_picture_id(&k), Some(0x1234));
        assert_eq!(
            (d.tl0picidx, d.keyidx, d.payload_offset),
            (Some(4), Some(5), 6)
        );
        assert!(starts_keyframe(&k));
        let mut delta = k.clone();
        delta[6] = 0x11; // P set: an interframe
        assert!(!starts_keyframe(&delta));
        let mut middle = k.clone();
        middle[0] = 0x80; // S clear: not the first packet of the frame
        assert!(!starts_keyframe(&middle));
        let mut partition1 = k;
        partition1[0] = 0x91; // PID 1
        assert!(!starts_keyframe(&partition1));
        // Without the extension byte: S=1, PID 0, header P clear.
        assert!(starts_keyframe(&[0x10, 0x00]));
        // A 7-bit picture id.
        let short = [0x90, 0x80, 0x05, 0x00];
        let d = Descriptor::parse(&short).expect("descriptor");
        assert_eq!(d.read_picture_id(&short), Some(5));
        assert!(starts_keyframe(&short));
    }

    #[test]
    fn short_or_empty_payloads_are_not_keyframes() {
        for bytes in [
            &[][..],
            &[0x90],
            &[0x90, 0x80],
            &[0x90, 0xc0, 0x80, 0x01],
            &[0x10],
        ] {
            assert!(!starts_keyframe(bytes), "{bytes:?}");
        }
    }

    #[test]
    fn a_switch_continues_picture_id_tl0picidx_and_keyidx() {
        let mut r = Rewrite::default();
        let mut p = keyframe(0x7ffe, 200, 31);
        r.apply(&mut p);
        assert_eq!(p, keyframe(0x7ffe, 200, 31), "no switch yet: unchanged");
        let mut p = keyframe(0x7fff, 201, 31);
        r.apply(&mut p);
        // Another layer, numbered on its own.
        r.switched();
        let mut p = keyframe(0x0100, 9, 4);
        r.apply(&mut p);
        assert_eq!(p, keyframe(0x0000, 202, 0), "each field wraps in its width");
        let d = Descriptor::parse(&p).expect("descriptor");
        assert_eq!(d.read_picture_id(&p), Some(0));
        // The following packets keep the same offsets.
        let mut p = keyframe(0x0101, 9, 4);
        r.apply(&mut p);
        assert_eq!(p, keyframe(0x0001, 202, 0));
        let mut p = keyframe(0x0102, 10, 5);
        r.apply(&mut p);
        assert_eq!(p, keyframe(0x0002, 203, 1));
        // The flag bits around the fields are kept.
        let mut tid = keyframe(0x0103, 10, 5);
        tid[5] |= 0xe0; // TID 3, Y
        r.apply(&mut tid);
        assert_eq!(tid[5], 0xe0 | 1);
    }
}
