//! JPEG egress from a non-browser publisher: str0m sends real VP8 and
//! H.264 (encoded here by libavcodec's libvpx and libx264) with packets
//! lost on the way; the adapter's pictures keep coming at the asked rate,
//! at the encoded size, as JPEG files (read here by a marker parser of the
//! test's own).

mod common;

use std::time::{Duration, Instant};

use common::ws_endpoint::{Behaviour, Endpoint};
use common::{Api, Peer, drive};
use ffmpeg_next as ffmpeg;
use serde_json::json;
use str0m::format::Codec;
use str0m::media::{MediaKind, MediaTime};
use switchboard::config::Config;
use switchboard::server::Server;

const W: u32 = 320;
const H: u32 = 240;

/// `n` frames of a moving picture encoded by libavcodec's encoder `name`
/// (a keyframe every second at 30 frames a second).
fn encode(name: &str, n: usize) -> Vec<Vec<u8>> {
    ffmpeg::init().unwrap();
    let codec =
        ffmpeg::encoder::find_by_name(name).unwrap_or_else(|| panic!("libavcodec has no {name}"));
    let mut ctx = ffmpeg::codec::context::Context::new_with_codec(codec)
        .encoder()
        .video()
        .unwrap();
    ctx.set_width(W);
    ctx.set_height(H);
    ctx.set_format(ffmpeg::format::Pixel::YUV420P);
    ctx.set_time_base((1, 30));
    ctx.set_gop(30);
    ctx.set_max_b_frames(0);
    ctx.set_bit_rate(400_000);
    let mut options = ffmpeg::Dictionary::new();
    if name == "libx264" {
        options.set("preset", "ultrafast");
        options.set("tune", "zerolatency");
        options.set("profile", "baseline");
    } else {
        options.set("deadline", "realtime");
        options.set("cpu-used", "8");
    }
    let mut enc = ctx.open_with(options).unwrap();
    let mut out = Vec::new();
    let take = |enc: &mut ffmpeg::encoder::Video, out: &mut Vec<Vec<u8>>| {
        let mut p = ffmpeg::Packet::empty();
        while enc.receive_packet(&mut p).is_ok() {
            out.push(p.data().unwrap().to_vec());
        }
    };
    for i in 0..n {
        let mut f = ffmpeg::frame::Video::new(ffmpeg::format::Pixel::YUV420P, W, H);
        for plane in 0..3 {
            let stride = f.stride(plane);
            for (k, b) in f.data_mut(plane).iter_mut().enumerate() {
                *b = ((k % stride + k / stride + i * 3 + plane * 60) % 256) as u8;
            }
        }
        f.set_pts(Some(i as i64));
        enc.send_frame(&f).unwrap();
        take(&mut enc, &mut out);
    }
    enc.send_eof().unwrap();
    take(&mut enc, &mut out);
    out
}

/// A JPEG file's size from its SOF marker; `None` unless it is a JPEG.
fn jpeg_size(b: &[u8]) -> Option<(u32, u32)> {
    if b.get(..2)? != [0xff, 0xd8] || b.get(b.len() - 2..)? != [0xff, 0xd9] {
        return None;
    }
    let mut i = 2;
    while i + 9 < b.len() {
        if b[i] != 0xff {
            return None;
        }
        let marker = b[i + 1];
        let len = usize::from(u16::from_be_bytes([b[i + 2], b[i + 3]]));
        if (0xc0..=0xc3).contains(&marker) {
            let h = u16::from_be_bytes([b[i + 5], b[i + 6]]);
            let w = u16::from_be_bytes([b[i + 7], b[i + 8]]);
            return Some((u32::from(w), u32::from(h)));
        }
        i += 2 + len;
    }
    None
}

fn jpeg_egress_survives_loss(codec: Codec, encoder: &str) {
    let frames = encode(encoder, 240);
    let mut config = Config::loopback(1);
    config.adapters.allow_local = Some(true);
    let server = Server::start(config).expect("server starts");
    let api = Api::new(&server);
    let mut peer = Peer::with_codecs("publisher", |c| match codec {
        Codec::H264 => c.enable_h264(true),
        _ => c.enable_vp8(true),
    });
    let (session, mid, _) = common::push_one(&api, &mut peer, MediaKind::Video, "cam", |s| s);
    assert!(
        drive(&mut [&mut peer], Duration::from_secs(10), |p| p[0]
            .connected),
        "publisher connects"
    );
    let pt = common::payload_type(&mut peer, mid, codec);
    // 3 % of the RTP packets lost.
    let mut n = 0u64;
    peer.drop_outgoing = Some(Box::new(move |d: &[u8]| {
        let rtp = d.len() > 12 && (128..192).contains(&d[0]) && !(200..=206).contains(&d[1]);
        n += u64::from(rtp);
        rtp && n % 33 == 5
    }));
    let endpoint = Endpoint::start(Behaviour::Collect, None);
    let (status, body) = api.call(
        "POST",
        "/adapters/websocket/new",
        Some(
            &json!({"tracks": [{"location": "remote", "sessionId": session, "trackName": "cam",
                                "endpoint": endpoint.url(), "outputCodec": "jpeg", "frameRate": 2}]})
            .to_string(),
        ),
    );
    assert_eq!(status, 200, "{body}");
    let start = Instant::now();
    for (i, frame) in frames.iter().enumerate() {
        common::write_frame(
            &mut peer,
            mid,
            pt,
            MediaTime::from_90khz(i as u64 * 3000),
            frame.clone(),
        );
        let next = start + Duration::from_millis(i as u64 * 1000 / 30 + 33);
        while Instant::now() < next {
            if !peer.step() {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
    let pictures = endpoint.received();
    // 8 s of video at 2 pictures a second, less the start (first keyframe).
    assert!(
        pictures.len() >= 12,
        "{codec:?}: {} pictures",
        pictures.len()
    );
    for p in &pictures {
        assert_eq!(
            jpeg_size(&p.payload),
            Some((W, H)),
            "{codec:?}: a {W}x{H} JPEG"
        );
    }
    let span = pictures
        .last()
        .unwrap()
        .at
        .duration_since(pictures[0].at)
        .as_secs_f64();
    let rate = (pictures.len() - 1) as f64 / span;
    assert!(
        (1.6..=2.4).contains(&rate),
        "{codec:?}: {rate} pictures a second"
    );
}

#[test]
fn vp8_from_str0m_with_loss_becomes_jpeg_pictures() {
    jpeg_egress_survives_loss(Codec::Vp8, "libvpx");
}

#[test]
fn h264_from_str0m_with_loss_becomes_jpeg_pictures() {
    jpeg_egress_survives_loss(Codec::H264, "libx264");
}
