//! RTP as the publisher's worker reads it after SRTP (RFC 3550, RFC 8285
//! header extensions), the payload descriptors simulcast reads (keyframe
//! starts, VP8 numbering), and the rewrite every forwarded copy gets.
//! Each record is one packet; the VP8 rewrite carries over between them as
//! it does on one subscriber's stream.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard::codec::{Codec, vp8};
use switchboard::wire::rtp::{self, Rewrite, RtpHeader};
use switchboard_fuzz::records;

fuzz_target!(|data: &[u8]| {
    let mut numbering = vp8::Rewrite::default();
    // Publisher id → subscriber id: some kept, some moved, the rest blanked.
    let extensions: [u8; 16] = std::array::from_fn(|id| match id {
        1..=4 => id as u8,
        5..=8 => 13 - id as u8,
        _ => 0,
    });
    for record in records(data) {
        let _ = rtp::header_len(record.bytes);
        let Ok(header) = RtpHeader::new_checked(record.bytes) else {
            continue;
        };
        let layout = header.layout();
        let offset = header.payload_offset();
        assert!(offset <= record.bytes.len());
        let _ = (
            header.payload_type(),
            header.marker(),
            header.sequence_number(),
        );
        let _ = (header.timestamp(), header.ssrc());
        for id in 0..=15 {
            if let Some(value) = header.extension(id) {
                assert!(value.len() <= record.bytes.len());
            }
        }
        let payload = &record.bytes[offset..];
        for codec in ["VP8", "VP9", "H264", "AV1", "opus"] {
            let _ = Codec::from_name(codec).starts_keyframe(payload);
        }
        if let Some(d) = vp8::Descriptor::parse(payload) {
            assert!(d.payload_offset <= payload.len());
            let _ = d.read_picture_id(payload);
        }

        let mut copy = record.bytes.to_vec();
        let rewrite = Rewrite {
            ssrc: 0x5eed,
            payload_type: record.tag & 0x7f,
            extensions: &extensions,
            transport_cc: (record.tag & 0x80 != 0).then_some((5, 77)),
        };
        rtp::rewrite_in_place(&mut copy, layout, rewrite);
        assert_eq!(
            copy.len(),
            record.bytes.len(),
            "the rewrite keeps the length"
        );
        let again = RtpHeader::new_checked(&copy).expect("a rewritten packet still reads");
        assert_eq!(again.ssrc(), 0x5eed);
        assert_eq!(again.payload_offset(), offset);
        if record.tag & 1 != 0 {
            numbering.switched();
        }
        let before = copy.len();
        numbering.apply(&mut copy[offset..]);
        numbering.resend(&mut copy[offset..]);
        assert_eq!(copy.len(), before);
    }
});
