//! The packets publishers send: RTP with a transport-wide sequence number
//! (as browsers send) and a one-byte header extension that carries the
//! send time, the stream and a sequence (header extensions are
//! not encrypted by SRTP, so subscribers measure without decrypting), and a
//! payload derived from stream and sequence, so that a sample can be
//! decrypted and checked byte for byte. A simulcast layer's packets also
//! carry their rid (RFC 8852) and start with a VP8 payload descriptor
//! that marks keyframes (RFC 7741), so that the SFU can switch layers.

use switchboard::wire::rtp::RtpHeader;

/// Fixed header (12) + extension header (4) + send-time element (1 + 16) +
/// transport-wide number element (1 + 2), or padding (3).
pub const HEADER_LEN: usize = 36;
/// The SRTP tag of AEAD_AES_128_GCM.
pub const SRTP_OVERHEAD: usize = 16;

/// Bytes before the send time in a simulcast layer's payload: the VP8
/// payload descriptor (S set, partition 0) and the first byte of the VP8
/// payload header (P clear on keyframes).
pub const VP8_PREFIX: usize = 2;

/// What marks a simulcast layer's packet.
#[derive(Debug, Clone, Copy)]
pub struct Layered<'a> {
    /// The `rtp-stream-id` extension's id.
    pub rid_id: u8,
    /// The layer's rid.
    pub rid: &'a [u8],
    /// The packet is its frame's first (S set in the descriptor).
    pub first: bool,
    /// The frame is a keyframe.
    pub keyframe: bool,
}

/// What the send-time extension carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendTime {
    /// Microseconds since the load generator's epoch.
    pub sent_us: u64,
    /// The stream's index in the run.
    pub stream: u32,
    /// The packet's sequence within its stream.
    pub seq: u32,
}

/// Writes one RTP packet into `out`.
#[allow(clippy::too_many_arguments)]
pub fn write_packet(
    out: &mut Vec<u8>,
    pt: u8,
    marker: bool,
    rtp_seq: u16,
    timestamp: u32,
    ssrc: u32,
    ext_id: u8,
    send: SendTime,
    transport_cc: Option<(u8, u16)>,
    layered: Option<Layered<'_>>,
    payload_len: usize,
) {
    out.clear();
    out.push(0x90); // V=2, X=1
    out.push(if marker { 0x80 | pt } else { pt });
    out.extend_from_slice(&rtp_seq.to_be_bytes());
    out.extend_from_slice(&timestamp.to_be_bytes());
    out.extend_from_slice(&ssrc.to_be_bytes());
    // One-byte extensions (RFC 8285), their length in words filled in below.
    out.extend_from_slice(&[0xbe, 0xde, 0x00, 0x00]);
    let elements = out.len();
    out.push((ext_id << 4) | 15); // 16 bytes
    out.extend_from_slice(&send.sent_us.to_be_bytes());
    out.extend_from_slice(&send.stream.to_be_bytes());
    out.extend_from_slice(&send.seq.to_be_bytes());
    match transport_cc {
        Some((id, number)) => {
            out.push((id << 4) | 1);
            out.extend_from_slice(&number.to_be_bytes());
        }
        None => out.extend_from_slice(&[0, 0, 0]),
    }
    if let Some(l) = layered {
        out.push((l.rid_id << 4) | (l.rid.len() as u8 - 1));
        out.extend_from_slice(l.rid);
    }
    while !(out.len() - elements).is_multiple_of(4) {
        out.push(0);
    }
    out[elements - 1] = ((out.len() - elements) / 4) as u8;
    if let Some(l) = layered {
        let start = if l.first { 0x10 } else { 0x00 };
        out.extend_from_slice(&[start, u8::from(!l.keyframe)]);
    }
    let start = out.len();
    out.resize(start + payload_len.max(SEND_TIME_LEN), 0);
    write_payload(&mut out[start..], &send);
}

/// Bytes of the send time at the start of every payload.
const SEND_TIME_LEN: usize = 16;

/// A payload: the send time (for SFUs that drop unknown header extensions;
/// then subscribers decrypt every packet), then bytes derived from stream
/// and sequence.
fn write_payload(payload: &mut [u8], send: &SendTime) {
    payload[0..8].copy_from_slice(&send.sent_us.to_be_bytes());
    payload[8..12].copy_from_slice(&send.stream.to_be_bytes());
    payload[12..16].copy_from_slice(&send.seq.to_be_bytes());
    fill_payload(&mut payload[SEND_TIME_LEN..], send.stream, send.seq);
}

/// The send time in a decrypted packet's payload, after `prefix` bytes.
pub fn payload_send_time(plain: &[u8], prefix: usize) -> Option<SendTime> {
    let header = RtpHeader::new_checked(plain).ok()?;
    let p = plain
        .get(header.payload_offset() + prefix..)?
        .get(..SEND_TIME_LEN)?;
    Some(SendTime {
        sent_us: u64::from_be_bytes(p[0..8].try_into().ok()?),
        stream: u32::from_be_bytes(p[8..12].try_into().ok()?),
        seq: u32::from_be_bytes(p[12..16].try_into().ok()?),
    })
}

/// The payload of a packet: a function of stream and sequence.
pub fn fill_payload(payload: &mut [u8], stream: u32, seq: u32) {
    let mut x = (u64::from(stream) << 32 | u64::from(seq)).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for b in payload.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
}

/// Reads the send-time extension (id `ext_id`) of an RTP or SRTP packet.
pub fn read_send_time(packet: &[u8], ext_id: u8) -> Option<SendTime> {
    let header = RtpHeader::new_checked(packet).ok()?;
    let v = header.extension(ext_id)?;
    if v.len() != 16 {
        return None;
    }
    Some(SendTime {
        sent_us: u64::from_be_bytes(v[0..8].try_into().ok()?),
        stream: u32::from_be_bytes(v[8..12].try_into().ok()?),
        seq: u32::from_be_bytes(v[12..16].try_into().ok()?),
    })
}

/// Whether a decrypted packet's payload (after `prefix` bytes) is the one
/// its extension says.
pub fn payload_matches(plain: &[u8], prefix: usize, send: &SendTime) -> bool {
    let Ok(header) = RtpHeader::new_checked(plain) else {
        return false;
    };
    let Some(payload) = plain.get(header.payload_offset() + prefix..) else {
        return false;
    };
    if payload.len() < SEND_TIME_LEN {
        return false;
    }
    let mut expected = vec![0u8; payload.len()];
    write_payload(&mut expected, send);
    expected == payload
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_round_trip() {
        let mut p = Vec::new();
        let send = SendTime {
            sent_us: 123_456_789,
            stream: 3,
            seq: 77,
        };
        write_packet(
            &mut p,
            96,
            true,
            9,
            90_000,
            0xabcd,
            5,
            send,
            Some((3, 7)),
            None,
            1000,
        );
        assert_eq!(p.len(), HEADER_LEN + 1000);
        let h = RtpHeader::new_checked(&p).unwrap();
        assert_eq!(
            (h.payload_type(), h.marker(), h.sequence_number(), h.ssrc()),
            (96, true, 9, 0xabcd)
        );
        assert_eq!(read_send_time(&p, 5), Some(send));
        assert_eq!(read_send_time(&p, 6), None);
        assert!(payload_matches(&p, 0, &send));
        assert_eq!(payload_send_time(&p, 0), Some(send));
        p[HEADER_LEN + 10] ^= 1;
        assert!(!payload_matches(&p, 0, &send));
    }

    #[test]
    fn a_layers_packets_carry_the_rid_and_a_vp8_descriptor_that_marks_keyframes() {
        let mut p = Vec::new();
        let send = SendTime {
            sent_us: 1,
            stream: 2,
            seq: 3,
        };
        for keyframe in [true, false] {
            let layered = Layered {
                rid_id: 4,
                rid: b"h",
                first: true,
                keyframe,
            };
            write_packet(
                &mut p,
                96,
                false,
                1,
                2,
                3,
                5,
                send,
                Some((3, 7)),
                Some(layered),
                500,
            );
            let h = RtpHeader::new_checked(&p).unwrap();
            assert_eq!(h.extension(4), Some(&b"h"[..]));
            assert_eq!(read_send_time(&p, 5), Some(send));
            let payload = &p[h.payload_offset()..];
            assert_eq!(
                switchboard::codec::Codec::Vp8.starts_keyframe(payload),
                keyframe
            );
            assert_eq!(payload_send_time(&p, VP8_PREFIX), Some(send));
            assert!(payload_matches(&p, VP8_PREFIX, &send));
        }
    }
}
