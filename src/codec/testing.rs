//! Real coded frames for tests (`cfg(test)` only): libavcodec's VP8
//! encoder (libvpx), which the adapters' and the recorder's tests decode
//! or record.

use ffmpeg::codec::{self, Id};
use ffmpeg::util::format::Pixel;
use ffmpeg::util::frame::Video as VideoFrame;
use ffmpeg_next as ffmpeg;

/// Encodes `n` frames of a moving gradient with libavcodec's VP8
/// encoder (libvpx) where the machine has it.
pub fn vp8_frames(n: usize, w: u32, h: u32) -> Option<Vec<(Vec<u8>, bool)>> {
    let _ = ffmpeg::init();
    ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Fatal);
    let codec = ffmpeg::encoder::find(Id::VP8)?;
    let mut ctx = codec::context::Context::new_with_codec(codec)
        .encoder()
        .video()
        .ok()?;
    ctx.set_width(w);
    ctx.set_height(h);
    ctx.set_format(Pixel::YUV420P);
    ctx.set_time_base((1, 30));
    ctx.set_gop(10);
    let mut enc = ctx.open().ok()?;
    let mut out = Vec::new();
    for i in 0..n {
        let mut f = VideoFrame::new(Pixel::YUV420P, w, h);
        let stride = f.stride(0);
        for (k, b) in f.data_mut(0).iter_mut().enumerate() {
            *b = ((k % stride + i * 4) % 256) as u8;
        }
        f.set_pts(Some(i as i64));
        enc.send_frame(&f).ok()?;
        let mut p = ffmpeg::Packet::empty();
        while enc.receive_packet(&mut p).is_ok() {
            out.push((p.data()?.to_vec(), p.is_key()));
        }
    }
    enc.send_eof().ok()?;
    let mut p = ffmpeg::Packet::empty();
    while enc.receive_packet(&mut p).is_ok() {
        out.push((p.data()?.to_vec(), p.is_key()));
    }
    Some(out)
}
