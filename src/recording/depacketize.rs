//! RTP payloads to coded frames, as a container stores them: the payload
//! descriptors stripped (VP8, RFC 7741; VP9, RFC 9628), NAL units
//! reassembled from aggregates and fragments and written in Annex B form
//! (H.264, RFC 6184; H.265, RFC 7798), OBU elements reassembled and
//! written with their sizes, temporal delimiters left out (AV1, the
//! AOMedia RTP payload format §4), Opus as is (RFC 7587).
//!
//! Where it sits: in the recorder, after the jitter buffer has put a
//! frame's packets in order ([`super::jitter`]); before the muxer. A frame
//! is depacketised packet by packet ([`Depacketizer::push`]) and taken
//! whole ([`Depacketizer::finish`]). Payloads a publisher controls are
//! read with checked offsets: a malformed one is an error for its frame,
//! never a panic.

use crate::codec::Codec;

/// A recordable payload format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Opus audio (48 kHz).
    Opus,
    /// VP8 video.
    Vp8,
    /// VP9 video.
    Vp9,
    /// AV1 video.
    Av1,
    /// H.264 video.
    H264,
    /// H.265 video.
    H265,
}

impl Format {
    /// The format of an `a=rtpmap` encoding name, if it can be recorded.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name.to_ascii_uppercase().as_str() {
            "OPUS" => Format::Opus,
            "VP8" => Format::Vp8,
            "VP9" => Format::Vp9,
            "AV1" => Format::Av1,
            "H264" => Format::H264,
            "H265" => Format::H265,
            _ => return None,
        })
    }

    /// Its name, as the API and metrics give it.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Opus => "opus",
            Format::Vp8 => "vp8",
            Format::Vp9 => "vp9",
            Format::Av1 => "av1",
            Format::H264 => "h264",
            Format::H265 => "h265",
        }
    }

    /// Whether it is video.
    pub fn is_video(self) -> bool {
        self != Format::Opus
    }

    /// Whether WebM may hold it (Matroska holds them all).
    pub fn in_webm(self) -> bool {
        !matches!(self, Format::H264 | Format::H265)
    }

    /// RTP clock rate.
    pub fn clock_rate(self) -> u32 {
        if self.is_video() { 90_000 } else { 48_000 }
    }

    /// Whether a frame whose first packet has this payload starts a
    /// keyframe (a decoder can start there). Audio frames always can.
    pub fn starts_keyframe(self, payload: &[u8]) -> bool {
        match self {
            Format::Opus => true,
            Format::Vp8 => Codec::Vp8.starts_keyframe(payload),
            Format::Vp9 => Codec::Vp9.starts_keyframe(payload),
            Format::Av1 => Codec::Av1.starts_keyframe(payload),
            Format::H264 => Codec::H264.starts_keyframe(payload),
            Format::H265 => h265_starts_keyframe(payload),
        }
    }
}

/// A payload that cannot be read: its frame is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed {0} payload")]
pub struct Malformed(pub &'static str);

/// Depacketises one track's frames.
#[derive(Debug)]
pub struct Depacketizer {
    format: Format,
    frame: Vec<u8>,
    /// AV1: the OBU being reassembled across packets.
    obu: Vec<u8>,
    /// H.264 / H.265: where the fragmented NAL unit being reassembled starts in `frame`.
    fragment: Option<usize>,
}

/// Annex B start code.
const START: [u8; 4] = [0, 0, 0, 1];

impl Depacketizer {
    /// A depacketiser of `format`.
    pub fn new(format: Format) -> Self {
        Depacketizer {
            format,
            frame: Vec::new(),
            obu: Vec::new(),
            fragment: None,
        }
    }

    /// Its format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Adds the next packet's payload of the current frame.
    pub fn push(&mut self, payload: &[u8]) -> Result<(), Malformed> {
        match self.format {
            Format::Opus => {
                self.frame.extend_from_slice(payload);
                Ok(())
            }
            Format::Vp8 => {
                let at = vp8_descriptor_len(payload).ok_or(Malformed("VP8"))?;
                self.frame.extend_from_slice(&payload[at..]);
                Ok(())
            }
            Format::Vp9 => {
                let at = vp9_descriptor_len(payload).ok_or(Malformed("VP9"))?;
                self.frame.extend_from_slice(&payload[at..]);
                Ok(())
            }
            Format::H264 => self.push_h264(payload),
            Format::H265 => self.push_h265(payload),
            Format::Av1 => self.push_av1(payload),
        }
    }

    /// The frame depacketised so far, taken (the depacketiser starts the
    /// next frame empty). `None` when it holds nothing usable.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        self.obu.clear();
        self.fragment = None;
        let frame = std::mem::take(&mut self.frame);
        (!frame.is_empty()).then_some(frame)
    }

    /// Drops what was depacketised of the current frame.
    pub fn discard(&mut self) {
        self.frame.clear();
        self.obu.clear();
        self.fragment = None;
    }

    fn push_h264(&mut self, payload: &[u8]) -> Result<(), Malformed> {
        const E: Malformed = Malformed("H.264");
        let &first = payload.first().ok_or(E)?;
        match first & 0x1f {
            1..=23 => self.nal(payload),
            // STAP-A: 16-bit sizes, each followed by a NAL unit.
            24 => self.aggregate(&payload[1..], E)?,
            // FU-A.
            28 => {
                let &fu = payload.get(1).ok_or(E)?;
                let header = (first & 0xe0) | (fu & 0x1f);
                self.fragment_part(fu & 0x80 != 0, &[header], &payload[2..], E)?;
            }
            _ => return Err(E),
        }
        Ok(())
    }

    fn push_h265(&mut self, payload: &[u8]) -> Result<(), Malformed> {
        const E: Malformed = Malformed("H.265");
        let [b0, b1, ..] = *payload else {
            return Err(E);
        };
        match (b0 >> 1) & 0x3f {
            0..=47 => self.nal(payload),
            // Aggregation packet (AP).
            48 => self.aggregate(&payload[2..], E)?,
            // Fragmentation unit (FU).
            49 => {
                let &fu = payload.get(2).ok_or(E)?;
                let header = [(b0 & 0x81) | ((fu & 0x3f) << 1), b1];
                self.fragment_part(fu & 0x80 != 0, &header, &payload[3..], E)?;
            }
            _ => return Err(E),
        }
        Ok(())
    }

    fn nal(&mut self, nal: &[u8]) {
        self.fragment = None;
        self.frame.extend_from_slice(&START);
        self.frame.extend_from_slice(nal);
    }

    fn aggregate(&mut self, mut rest: &[u8], e: Malformed) -> Result<(), Malformed> {
        while !rest.is_empty() {
            let [hi, lo, tail @ ..] = rest else {
                return Err(e);
            };
            let size = usize::from(u16::from_be_bytes([*hi, *lo]));
            let nal = tail.get(..size).ok_or(e)?;
            if !nal.is_empty() {
                self.nal(nal);
            }
            rest = &tail[size..];
        }
        Ok(())
    }

    fn fragment_part(
        &mut self,
        start: bool,
        header: &[u8],
        body: &[u8],
        e: Malformed,
    ) -> Result<(), Malformed> {
        if start {
            self.fragment = Some(self.frame.len());
            self.frame.extend_from_slice(&START);
            self.frame.extend_from_slice(header);
        } else if self.fragment.is_none() {
            // A continuation without its start: the unit is lost.
            return Err(e);
        }
        self.frame.extend_from_slice(body);
        Ok(())
    }

    fn push_av1(&mut self, payload: &[u8]) -> Result<(), Malformed> {
        const E: Malformed = Malformed("AV1");
        let &aggregation = payload.first().ok_or(E)?;
        let continues = aggregation & 0x80 != 0;
        let will_continue = aggregation & 0x40 != 0;
        let count = usize::from((aggregation >> 4) & 0x03);
        if !continues {
            self.obu.clear();
        } else if self.obu.is_empty() {
            return Err(E);
        }
        let mut rest = &payload[1..];
        let mut index = 0;
        while !rest.is_empty() {
            index += 1;
            // With W = 0 every element has a length; else all but the Wth.
            let element = if count == 0 || index < count {
                let (len, used) = leb128(rest).ok_or(E)?;
                let len = usize::try_from(len).map_err(|_| E)?;
                let element = rest.get(used..used + len).ok_or(E)?;
                rest = &rest[used + len..];
                element
            } else {
                std::mem::take(&mut rest)
            };
            self.obu.extend_from_slice(element);
            let last = rest.is_empty();
            if !(last && will_continue) {
                self.write_obu()?;
            }
        }
        Ok(())
    }

    /// Writes the reassembled OBU with its size field (temporal delimiters
    /// and tile lists left out, as Matroska stores AV1).
    fn write_obu(&mut self) -> Result<(), Malformed> {
        const E: Malformed = Malformed("AV1");
        let obu = std::mem::take(&mut self.obu);
        let &header = obu.first().ok_or(E)?;
        let extension = header & 0x04 != 0;
        let has_size = header & 0x02 != 0;
        let header_len = if extension { 2 } else { 1 };
        let head = obu.get(..header_len).ok_or(E)?;
        let body = if has_size {
            let (len, used) = leb128(&obu[header_len..]).ok_or(E)?;
            let len = usize::try_from(len).map_err(|_| E)?;
            obu.get(header_len + used..header_len + used + len)
                .ok_or(E)?
        } else {
            &obu[header_len..]
        };
        let kind = (header >> 3) & 0x0f;
        // 2: temporal delimiter, 8: tile list.
        if kind != 2 && kind != 8 {
            self.frame.push(head[0] | 0x02);
            self.frame.extend_from_slice(&head[1..]);
            write_leb128(&mut self.frame, body.len() as u64);
            self.frame.extend_from_slice(body);
        }
        self.obu = obu;
        self.obu.clear();
        Ok(())
    }
}

/// Length of a VP8 payload descriptor (RFC 7741 §4.2).
fn vp8_descriptor_len(p: &[u8]) -> Option<usize> {
    let &b0 = p.first()?;
    let mut at = 1;
    if b0 & 0x80 != 0 {
        let &x = p.get(1)?;
        at = 2;
        if x & 0x80 != 0 {
            // I: a 7- or 15-bit picture id.
            at += if p.get(at)? & 0x80 != 0 { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            at += 1; // L: TL0PICIDX
        }
        if x & 0x30 != 0 {
            at += 1; // T or K
        }
    }
    (at <= p.len()).then_some(at)
}

/// Length of a VP9 payload descriptor (RFC 9628 §4.2).
fn vp9_descriptor_len(p: &[u8]) -> Option<usize> {
    let &b0 = p.first()?;
    let (i, pbit, l, f, v) = (
        b0 & 0x80 != 0,
        b0 & 0x40 != 0,
        b0 & 0x20 != 0,
        b0 & 0x10 != 0,
        b0 & 0x02 != 0,
    );
    let mut at = 1;
    if i {
        at += if p.get(at)? & 0x80 != 0 { 2 } else { 1 };
    }
    if l {
        at += if f { 1 } else { 2 };
    }
    if f && pbit {
        // Up to three reference indices, each with N (another follows).
        for _ in 0..3 {
            let &r = p.get(at)?;
            at += 1;
            if r & 0x01 == 0 {
                break;
            }
        }
    }
    if v {
        let &ss = p.get(at)?;
        at += 1;
        let spatial = usize::from(ss >> 5) + 1;
        if ss & 0x10 != 0 {
            at += 4 * spatial; // Y: widths and heights
        }
        if ss & 0x08 != 0 {
            // G: the picture group.
            let &groups = p.get(at)?;
            at += 1;
            for _ in 0..groups {
                let &g = p.get(at)?;
                at += 1 + usize::from((g >> 2) & 0x03);
            }
        }
    }
    (at <= p.len()).then_some(at)
}

/// Whether an H.265 payload starts a keyframe: a parameter set or an IRAP
/// picture, alone, first in an aggregate or in a first fragment.
fn h265_starts_keyframe(p: &[u8]) -> bool {
    let irap_or_ps = |t: u8| (16..=21).contains(&t) || (32..=34).contains(&t);
    let Some(&b0) = p.first() else {
        return false;
    };
    match (b0 >> 1) & 0x3f {
        48 => p.get(4).is_some_and(|n| irap_or_ps((n >> 1) & 0x3f)),
        49 => p
            .get(2)
            .is_some_and(|fu| fu & 0x80 != 0 && irap_or_ps(fu & 0x3f)),
        t => irap_or_ps(t),
    }
}

/// A LEB128 number and the bytes it took (at most 8).
fn leb128(p: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &b) in p.iter().take(8).enumerate() {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

fn write_leb128(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let b = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(format: Format, payloads: &[&[u8]]) -> Result<Vec<u8>, Malformed> {
        let mut d = Depacketizer::new(format);
        for p in payloads {
            d.push(p)?;
        }
        Ok(d.finish().unwrap_or_default())
    }

    #[test]
    fn vp8_descriptors_of_every_shape_are_stripped() {
        // Minimal: S set.
        assert_eq!(
            frame(Format::Vp8, &[&[0x10, 0xaa, 0xbb]]),
            Ok(vec![0xaa, 0xbb])
        );
        // X with I (15-bit picture id), L, T: 1 + 1 + 2 + 1 + 1 bytes.
        let p = [0x90, 0xe0, 0x81, 0x23, 0x05, 0x40, 0xcc];
        assert_eq!(
            frame(
                Format::Vp8,
                &[&p, &[0x80, 0xe0, 0x81, 0x23, 0x05, 0x40, 0xdd]]
            ),
            Ok(vec![0xcc, 0xdd])
        );
        // Too short for what X announces.
        assert_eq!(frame(Format::Vp8, &[&[0x90, 0x80]]), Err(Malformed("VP8")));
    }

    #[test]
    fn vp9_descriptors_with_layers_references_and_a_scalability_structure_are_stripped() {
        // I (7-bit id), L (non-flexible: 2 bytes), B, E.
        assert_eq!(
            frame(Format::Vp9, &[&[0xac, 0x05, 0x00, 0x01, 0xee]]),
            Ok(vec![0xee])
        );
        // Flexible with two references (N set on the first).
        assert_eq!(
            frame(Format::Vp9, &[&[0xd8, 0x05, 0x03, 0x02, 0xee]]),
            Ok(vec![0xee])
        );
        // V: one spatial layer with its size, one picture group entry with one reference.
        let p = [
            0x8a, 0x05, 0x18, 0x02, 0x80, 0x01, 0x68, 0x01, 0x04, 0x01, 0xee,
        ];
        assert_eq!(frame(Format::Vp9, &[&p]), Ok(vec![0xee]));
        assert_eq!(
            frame(Format::Vp9, &[&[0x8a, 0x05, 0x18, 0x02]]),
            Err(Malformed("VP9"))
        );
    }

    #[test]
    fn h264_single_aggregated_and_fragmented_units_become_annex_b() {
        // STAP-A with SPS and PPS, then an IDR in three FU-A fragments.
        let stap = [0x78, 0, 2, 0x67, 0x42, 0, 1, 0x68];
        let fu = [
            [0x7c, 0x85, 1].as_slice(),
            &[0x7c, 0x05, 2],
            &[0x7c, 0x45, 3],
        ];
        let f = frame(Format::H264, &[&stap, fu[0], fu[1], fu[2]]).unwrap();
        assert_eq!(
            f,
            [
                0, 0, 0, 1, 0x67, 0x42, 0, 0, 0, 1, 0x68, 0, 0, 0, 1, 0x65, 1, 2, 3
            ]
        );
        assert!(Format::H264.starts_keyframe(&stap));
        // A fragment whose start was lost is an error, as is a truncated aggregate.
        assert_eq!(frame(Format::H264, &[fu[1]]), Err(Malformed("H.264")));
        assert_eq!(
            frame(Format::H264, &[&[0x78, 0, 9, 0x67]]),
            Err(Malformed("H.264"))
        );
        assert_eq!(
            frame(Format::H264, &[&[0x41, 7]]),
            Ok(vec![0, 0, 0, 1, 0x41, 7])
        );
    }

    #[test]
    fn h265_fragments_rebuild_their_nal_header() {
        // FU (type 49) of an IDR_W_RADL (19): start, end.
        let start = [49 << 1, 1, 0x80 | 19, 0xaa];
        let end = [49 << 1, 1, 0x40 | 19, 0xbb];
        let f = frame(Format::H265, &[&start, &end]).unwrap();
        assert_eq!(f, [0, 0, 0, 1, 19 << 1, 1, 0xaa, 0xbb]);
        assert!(Format::H265.starts_keyframe(&start));
        assert!(!Format::H265.starts_keyframe(&end));
        // AP (48) of a VPS (32).
        let ap = [48 << 1, 1, 0, 2, 32 << 1, 1];
        assert!(Format::H265.starts_keyframe(&ap));
        assert_eq!(
            frame(Format::H265, &[&ap]).unwrap(),
            [0, 0, 0, 1, 32 << 1, 1]
        );
    }

    #[test]
    fn av1_elements_are_sized_fragments_joined_and_temporal_delimiters_dropped() {
        // W = 2: a sized temporal delimiter, then a sequence header (type 1)
        // without a size, continued (Y) in the next packet (Z).
        let first = [0x60 | 0x08, 2, 0x12, 0x00, 0x08, 0xaa];
        let second = [0x90, 0xbb, 0xcc];
        let f = frame(Format::Av1, &[&first, &second]).unwrap();
        assert_eq!(f, [0x0a, 3, 0xaa, 0xbb, 0xcc]);
        // W = 0: every element sized; an OBU that carries its own size.
        let p = [0x00, 4, 0x32, 2, 0xdd, 0xee];
        assert_eq!(frame(Format::Av1, &[&p]).unwrap(), [0x32, 2, 0xdd, 0xee]);
        // A continuation with nothing to continue, a length past the end.
        assert_eq!(frame(Format::Av1, &[&second]), Err(Malformed("AV1")));
        assert_eq!(
            frame(Format::Av1, &[&[0x00, 9, 0x30]]),
            Err(Malformed("AV1"))
        );
    }

    #[test]
    fn leb128_round_trips() {
        for v in [0u64, 1, 127, 128, 300, 1 << 20] {
            let mut out = Vec::new();
            write_leb128(&mut out, v);
            assert_eq!(leb128(&out), Some((v, out.len())));
        }
        assert_eq!(leb128(&[0x80; 9]), None);
    }

    #[test]
    fn formats_by_name_and_container() {
        assert_eq!(Format::from_name("opus"), Some(Format::Opus));
        assert_eq!(Format::from_name("H264"), Some(Format::H264));
        assert_eq!(Format::from_name("red"), None);
        assert!(Format::Vp9.in_webm() && !Format::H264.in_webm());
    }
}
