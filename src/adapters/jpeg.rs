//! Video to JPEG for video egress: whole frames of the pulled track in
//! (VP8, VP9, H.264, H.265, AV1, as the WebRTC client depacketised them),
//! one JPEG picture per interval out (1 a second by default).
//!
//! Decoding is libavcodec's (through `ffmpeg-next`; AV1 through its dav1d
//! wrapper where the system's libavcodec has it), one thread per decoder;
//! colour conversion is libswscale's; the picture is written by the
//! `jpeg-encoder` crate. Between pictures the decoder is told to skip
//! frames no other frame refers to (`AVDISCARD_NONREF`): they are never
//! shown, so decoding them is wasted.
//!
//! Where it sits: the video egress task hands each frame here with its
//! keyframe flag and whether it follows the previous one without a gap;
//! after a gap, frames are skipped until a keyframe (the task asks the
//! publisher for one). Runs on an adapter thread.

use std::time::{Duration, Instant};

use ffmpeg::codec::{self, Id};
use ffmpeg::software::scaling;
use ffmpeg::util::format::Pixel;
use ffmpeg::util::frame::Video as VideoFrame;
use ffmpeg_next as ffmpeg;

/// The video codecs a pulled track may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    /// VP8.
    Vp8,
    /// VP9.
    Vp9,
    /// H.264.
    H264,
    /// H.265.
    H265,
    /// AV1.
    Av1,
}

impl VideoCodec {
    fn id(self) -> Id {
        match self {
            VideoCodec::Vp8 => Id::VP8,
            VideoCodec::Vp9 => Id::VP9,
            VideoCodec::H264 => Id::H264,
            VideoCodec::H265 => Id::HEVC,
            VideoCodec::Av1 => Id::AV1,
        }
    }
}

/// Pictures wider or taller than this are refused (a publisher's claim
/// must not cost unbounded memory).
pub const MAX_DIMENSION: u32 = 4096;
/// JPEG quality (1-100).
const QUALITY: u8 = 80;

/// Why a frame gave no picture.
#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    /// The machine's libavcodec has no decoder for the codec.
    #[error("no decoder for {0:?} on this machine")]
    NoDecoder(VideoCodec),
    /// libavcodec or libswscale failed.
    #[error("{0}")]
    Codec(#[from] ffmpeg::Error),
    /// The picture is larger than [`MAX_DIMENSION`].
    #[error("picture of {0}x{1} is too large")]
    TooLarge(u32, u32),
    /// The JPEG writer failed.
    #[error("JPEG: {0}")]
    Jpeg(String),
}

/// One JPEG picture.
#[derive(Debug, Clone)]
pub struct Picture {
    /// The JPEG file's bytes.
    pub jpeg: Vec<u8>,
    /// Its size.
    pub width: u32,
    /// Its size.
    pub height: u32,
}

struct Decoder {
    codec: VideoCodec,
    decoder: ffmpeg::decoder::Video,
    scaler: Option<(Pixel, u32, u32, Scaler)>,
}

/// A libswscale context. It has no thread affinity: the adapter task that
/// owns it may move between the runtime's threads, and only that task
/// uses it.
struct Scaler(scaling::Context);

// SAFETY: an SwsContext is plain memory with no thread-local state; it is
// owned by one task and never used by two threads at once.
unsafe impl Send for Scaler {}

/// The decoder and the picture clock.
///
/// Call contract: [`Self::frame`] for every frame received, in order.
pub struct JpegMaker {
    interval: Duration,
    next_picture: Option<Instant>,
    decoder: Option<Decoder>,
    /// After a gap: frames are skipped until a keyframe.
    awaiting_keyframe: bool,
    /// Frames skipped while waiting for a keyframe.
    pub skipped: u64,
}

impl JpegMaker {
    /// Pictures every `interval` (at most one per frame).
    pub fn new(interval: Duration) -> Self {
        JpegMaker {
            interval,
            next_picture: None,
            decoder: None,
            awaiting_keyframe: true,
            skipped: 0,
        }
    }

    /// Whether frames are being skipped until a keyframe (the task asks
    /// for one).
    pub fn awaiting_keyframe(&self) -> bool {
        self.awaiting_keyframe
    }

    /// One frame: `keyframe` where the codec tells (`None`: unknown),
    /// `contiguous` when no frame was lost before it. A picture when one is
    /// due and this frame gave it.
    pub fn frame(
        &mut self,
        now: Instant,
        codec: VideoCodec,
        data: &[u8],
        keyframe: Option<bool>,
        contiguous: bool,
    ) -> Result<Option<Picture>, VideoError> {
        if !contiguous {
            self.awaiting_keyframe = true;
        }
        if self.awaiting_keyframe {
            match keyframe {
                Some(false) => {
                    self.skipped += 1;
                    return Ok(None);
                }
                // A keyframe, or a codec that does not say: try it.
                _ => self.awaiting_keyframe = false,
            }
        }
        if self.decoder.as_ref().is_none_or(|d| d.codec != codec) {
            self.decoder = Some(open(codec)?);
        }
        let due = self.next_picture.is_none_or(|t| now >= t);
        let Some(d) = self.decoder.as_mut() else {
            return Ok(None);
        };
        d.decoder.skip_frame(if due {
            codec::discard::Discard::Default
        } else {
            codec::discard::Discard::NonReference
        });
        if let Err(e) = d.decoder.send_packet(&ffmpeg::Packet::copy(data)) {
            // A broken frame: wait for the next keyframe.
            self.awaiting_keyframe = true;
            return Err(e.into());
        }
        let mut frame = VideoFrame::empty();
        let mut picture = None;
        while d.decoder.receive_frame(&mut frame).is_ok() {
            if due && picture.is_none() {
                picture = Some(d.to_jpeg(&frame)?);
            }
        }
        if picture.is_some() {
            let base = self.next_picture.unwrap_or(now);
            // Keep the pace; a late picture does not cause a burst.
            let next = base + self.interval;
            self.next_picture = Some(if next <= now {
                now + self.interval
            } else {
                next
            });
        }
        Ok(picture)
    }
}

fn open(codec: VideoCodec) -> Result<Decoder, VideoError> {
    let found = if codec == VideoCodec::Av1 {
        ffmpeg::decoder::find_by_name("libdav1d").or_else(|| ffmpeg::decoder::find(codec.id()))
    } else {
        ffmpeg::decoder::find(codec.id())
    };
    let found = found.ok_or(VideoError::NoDecoder(codec))?;
    let mut context = codec::context::Context::new_with_codec(found);
    context.set_threading(codec::threading::Config::count(1));
    // SAFETY: a field of the context this function owns, set before the
    // decoder opens; libavcodec refuses pictures larger than this before
    // allocating them.
    unsafe {
        (*context.as_mut_ptr()).max_pixels = i64::from(MAX_DIMENSION) * i64::from(MAX_DIMENSION);
    }
    let decoder = context.decoder().video()?;
    Ok(Decoder {
        codec,
        decoder,
        scaler: None,
    })
}

impl Decoder {
    fn to_jpeg(&mut self, frame: &VideoFrame) -> Result<Picture, VideoError> {
        let (w, h, format) = (frame.width(), frame.height(), frame.format());
        if w == 0 || h == 0 || w > MAX_DIMENSION || h > MAX_DIMENSION {
            return Err(VideoError::TooLarge(w, h));
        }
        if self
            .scaler
            .as_ref()
            .is_none_or(|(f, sw, sh, _)| (*f, *sw, *sh) != (format, w, h))
        {
            let ctx =
                scaling::Context::get(format, w, h, Pixel::RGB24, w, h, scaling::Flags::BILINEAR)?;
            self.scaler = Some((format, w, h, Scaler(ctx)));
        }
        let Some((_, _, _, scaler)) = self.scaler.as_mut() else {
            return Err(VideoError::Codec(ffmpeg::Error::Bug));
        };
        let mut rgb = VideoFrame::empty();
        scaler.0.run(frame, &mut rgb)?;
        // Rows of the converted frame may be padded: copy them packed.
        let row = w as usize * 3;
        let stride = rgb.stride(0);
        let data = rgb.data(0);
        let mut packed = Vec::with_capacity(row * h as usize);
        for y in 0..h as usize {
            packed.extend_from_slice(&data[y * stride..y * stride + row]);
        }
        let mut jpeg = Vec::new();
        jpeg_encoder::Encoder::new(&mut jpeg, QUALITY)
            .encode(&packed, w as u16, h as u16, jpeg_encoder::ColorType::Rgb)
            .map_err(|e| VideoError::Jpeg(e.to_string()))?;
        Ok(Picture {
            jpeg,
            width: w,
            height: h,
        })
    }
}

/// Makes libavcodec quiet (its log goes to stderr otherwise) and ready;
/// call once before the first decoder.
pub fn init() {
    let _ = ffmpeg::init();
    ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Fatal);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vp8_gives_one_jpeg_per_interval_of_the_camera_size_and_survives_a_gap() {
        let Some(frames) = crate::codec::testing::vp8_frames(60, 320, 240) else {
            panic!(
                "libavcodec has no VP8 encoder (libvpx): install libavcodec-extra or libavcodec59 with libvpx"
            );
        };
        let t0 = Instant::now();
        let mut maker = JpegMaker::new(Duration::from_millis(500));
        let mut pictures = Vec::new();
        for (i, (data, key)) in frames.iter().enumerate() {
            // 30 frames a second; frames 20..23 lost.
            if (20..23).contains(&i) {
                continue;
            }
            let now = t0 + Duration::from_millis(i as u64 * 33);
            if let Some(p) = maker
                .frame(now, VideoCodec::Vp8, data, Some(*key), i != 23)
                .unwrap()
            {
                pictures.push((i, p));
            }
        }
        // 2 s of frames at one picture per 500 ms.
        assert!((3..=5).contains(&pictures.len()), "{}", pictures.len());
        for (_, p) in &pictures {
            assert_eq!((p.width, p.height), (320, 240));
            assert_eq!(&p.jpeg[..2], &[0xff, 0xd8]); // SOI
            assert_eq!(&p.jpeg[p.jpeg.len() - 2..], &[0xff, 0xd9]); // EOI
        }
        // After the gap nothing was decoded until the keyframe at 30.
        assert!(maker.skipped >= 6, "{}", maker.skipped);
        assert!(pictures.iter().all(|(i, _)| !(23..30).contains(i)));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        init();
        let mut maker = JpegMaker::new(Duration::from_secs(1));
        let now = Instant::now();
        for codec in [
            VideoCodec::Vp8,
            VideoCodec::Vp9,
            VideoCodec::H264,
            VideoCodec::H265,
        ] {
            for len in [0usize, 1, 7, 300] {
                let junk: Vec<u8> = (0..len).map(|i| (i * 37 % 256) as u8).collect();
                let _ = maker.frame(now, codec, &junk, None, true);
            }
        }
    }
}
