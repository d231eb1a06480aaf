//! Writes a recording's frames into one WebM or Matroska file, without
//! transcoding, through libavformat's Matroska muxer (the reference
//! writer of the format, already linked for the adapters): Cues for
//! seeking at the end, a cluster at least every second flushed to disk as
//! it closes, so that a file cut short by a crash still plays up to its
//! last cluster.
//!
//! Where it sits: the I/O end of the recorder thread, after the timeline.
//! It is handed whole frames with their time in milliseconds, per stream
//! in order. Errors (a full disk, a missing directory) come back as
//! [`MuxError`] with words a user can act on.

use std::path::Path;

use ffmpeg::codec::{self, Id};
use ffmpeg::format::context::Output;
use ffmpeg::{Dictionary, Rational, media};
use ffmpeg_next as ffmpeg;
use ffmpeg_next::ffi;

use super::depacketize::Format;

/// The container of a recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    /// WebM: Opus, VP8, VP9, AV1.
    Webm,
    /// Matroska: the same, H.264 and H.265 too.
    Mkv,
}

impl Container {
    /// From the API's name.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "webm" => Some(Container::Webm),
            "mkv" => Some(Container::Mkv),
            _ => None,
        }
    }

    /// The API's name, also the file extension.
    pub fn as_str(self) -> &'static str {
        match self {
            Container::Webm => "webm",
            Container::Mkv => "mkv",
        }
    }

    fn muxer(self) -> &'static str {
        match self {
            Container::Webm => "webm",
            Container::Mkv => "matroska",
        }
    }
}

/// What the file header says of one track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackSpec {
    /// Its payload format.
    pub format: Format,
    /// Video: picture size.
    pub width: u32,
    /// Video: picture size.
    pub height: u32,
    /// The codec's private data (OpusHead; H.264/H.265 parameter sets;
    /// the AV1 sequence header).
    pub extradata: Vec<u8>,
}

/// A muxer error, with the reason as the API reports it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MuxError(pub String);

impl MuxError {
    fn of(what: &str, e: ffmpeg::Error) -> Self {
        let reason = match e {
            ffmpeg::Error::Other {
                errno: libc::ENOSPC,
            } => "the disk is full".to_string(),
            ffmpeg::Error::Other {
                errno: libc::EDQUOT,
            } => "the disk quota is exceeded".to_string(),
            ffmpeg::Error::Other {
                errno: libc::EACCES,
            }
            | ffmpeg::Error::Other { errno: libc::EPERM } => "permission denied".to_string(),
            ffmpeg::Error::Other {
                errno: libc::ENOENT,
            } => "the directory does not exist".to_string(),
            e => e.to_string(),
        };
        MuxError(format!("{what}: {reason}"))
    }
}

fn codec_id(format: Format) -> Id {
    match format {
        Format::Opus => Id::OPUS,
        Format::Vp8 => Id::VP8,
        Format::Vp9 => Id::VP9,
        Format::Av1 => Id::AV1,
        Format::H264 => Id::H264,
        Format::H265 => Id::HEVC,
    }
}

/// Opus pre-skip written in the header (RFC 7845 §4.2: 80 ms is safe; the
/// encoder's own is 6.5 ms at 48 kHz).
const OPUS_PRE_SKIP: u16 = 312;

/// The 19-byte OpusHead of a stereo 48 kHz stream (RFC 7845 §5.1).
pub fn opus_head() -> Vec<u8> {
    let mut h = b"OpusHead".to_vec();
    h.push(1);
    h.push(2);
    h.extend_from_slice(&OPUS_PRE_SKIP.to_le_bytes());
    h.extend_from_slice(&48_000u32.to_le_bytes());
    h.extend_from_slice(&0i16.to_le_bytes());
    h.push(0);
    h
}

/// One open file.
pub struct SegmentFile {
    out: Output,
    /// Each track's stream time base (the muxer's own, 1/1000).
    time_bases: Vec<Rational>,
}

/// Copies `data` into `par`'s extradata (libavformat frees it).
///
/// # Safety
/// `par` must point to a valid `AVCodecParameters` without extradata.
unsafe fn set_extradata(par: *mut ffi::AVCodecParameters, data: &[u8]) -> Result<(), MuxError> {
    if data.is_empty() {
        return Ok(());
    }
    let padding = ffi::AV_INPUT_BUFFER_PADDING_SIZE as usize;
    // SAFETY: a fresh, zeroed allocation of the size copied plus padding,
    // handed to the parameters that own it from here on.
    unsafe {
        let buf = ffi::av_mallocz(data.len() + padding).cast::<u8>();
        if buf.is_null() {
            return Err(MuxError("out of memory".into()));
        }
        std::ptr::copy_nonoverlapping(data.as_ptr(), buf, data.len());
        (*par).extradata = buf;
        (*par).extradata_size = data.len() as i32;
    }
    Ok(())
}

impl SegmentFile {
    /// Creates `path` and writes its header.
    pub fn create(
        path: &Path,
        container: Container,
        tracks: &[TrackSpec],
    ) -> Result<Self, MuxError> {
        let _ = ffmpeg::init();
        let mut out = ffmpeg::format::output_as(path, container.muxer())
            .map_err(|e| MuxError::of("cannot create the file", e))?;
        for spec in tracks {
            let mut stream = out
                .add_stream(None::<ffmpeg::Codec>)
                .map_err(|e| MuxError::of("cannot add a stream", e))?;
            let mut par = codec::Parameters::new();
            par.set_medium(if spec.format.is_video() {
                media::Type::Video
            } else {
                media::Type::Audio
            });
            par.set_id(codec_id(spec.format));
            // SAFETY: fields of parameters this function owns, set before
            // they are copied into the stream.
            unsafe {
                let p = par.as_mut_ptr();
                if spec.format.is_video() {
                    (*p).width = spec.width as i32;
                    (*p).height = spec.height as i32;
                } else {
                    (*p).sample_rate = 48_000;
                    ffi::av_channel_layout_default(&mut (*p).ch_layout, 2);
                    (*p).initial_padding = i32::from(OPUS_PRE_SKIP);
                }
                set_extradata(p, &spec.extradata)?;
            }
            stream.set_parameters(par);
            stream.set_time_base(Rational::new(1, 1000));
        }
        let mut options = Dictionary::new();
        // A cluster at least every second, on disk when it closes.
        options.set("cluster_time_limit", "1000");
        options.set("flush_packets", "1");
        let unused = out
            .write_header_with(options)
            .map_err(|e| MuxError::of("cannot write the header", e))?;
        drop(unused);
        let time_bases = (0..tracks.len())
            .map(|i| {
                out.stream(i)
                    .map_or(Rational::new(1, 1000), |s| s.time_base())
            })
            .collect();
        Ok(SegmentFile { out, time_bases })
    }

    /// Writes a frame of track `track` at `pts_ms` (per track in order).
    pub fn write(
        &mut self,
        track: usize,
        pts_ms: i64,
        keyframe: bool,
        data: &[u8],
    ) -> Result<(), MuxError> {
        let mut packet = ffmpeg::Packet::copy(data);
        packet.set_stream(track);
        packet.set_pts(Some(pts_ms));
        packet.set_dts(Some(pts_ms));
        if keyframe {
            packet.set_flags(codec::packet::Flags::KEY);
        }
        let tb = self
            .time_bases
            .get(track)
            .copied()
            .unwrap_or(Rational::new(1, 1000));
        packet.rescale_ts(Rational::new(1, 1000), tb);
        packet
            .write(&mut self.out)
            .map(|_| ())
            .map_err(|e| MuxError::of("cannot write", e))?;
        self.io_error()
    }

    /// The sticky error of the file layer, if a write failed.
    fn io_error(&mut self) -> Result<(), MuxError> {
        // SAFETY: the context and its I/O context live as long as `self`.
        let error = unsafe {
            let pb = (*self.out.as_mut_ptr()).pb;
            if pb.is_null() { 0 } else { (*pb).error }
        };
        if error < 0 {
            return Err(MuxError::of("cannot write", ffmpeg::Error::from(error)));
        }
        Ok(())
    }

    /// Closes the cluster being written and puts it on disk.
    pub fn flush(&mut self) -> Result<(), MuxError> {
        // SAFETY: as in `io_error`; a null packet flushes the muxer.
        unsafe {
            let ctx = self.out.as_mut_ptr();
            ffi::av_write_frame(ctx, std::ptr::null_mut());
            if !(*ctx).pb.is_null() {
                ffi::avio_flush((*ctx).pb);
            }
        }
        self.io_error()
    }

    /// Writes the Cues and the trailer, and closes the file.
    pub fn finish(mut self) -> Result<(), MuxError> {
        self.out
            .write_trailer()
            .map_err(|e| MuxError::of("cannot finish the file", e))?;
        self.io_error()
    }
}

/// What a video keyframe says of the stream: its picture size (decoded
/// once with libavcodec, the one reader of all five formats' headers) and
/// the codec private data the container needs (parameter sets in Annex B
/// form for H.264/H.265, the sequence header OBU for AV1).
pub fn video_spec(format: Format, keyframe: &[u8]) -> Option<TrackSpec> {
    let (width, height) = picture_size(format, keyframe)?;
    let extradata = match format {
        Format::H264 => annex_b_units(keyframe, |h| matches!(h & 0x1f, 7 | 8)),
        Format::H265 => annex_b_units(keyframe, |h| matches!((h >> 1) & 0x3f, 32..=34)),
        Format::Av1 => av1_sequence_header(keyframe).unwrap_or_default(),
        _ => Vec::new(),
    };
    Some(TrackSpec {
        format,
        width,
        height,
        extradata,
    })
}

/// The largest picture side taken.
const MAX_DIMENSION: u32 = 8_192;

fn picture_size(format: Format, keyframe: &[u8]) -> Option<(u32, u32)> {
    let _ = ffmpeg::init();
    let found = if format == Format::Av1 {
        ffmpeg::decoder::find_by_name("libdav1d").or_else(|| ffmpeg::decoder::find(Id::AV1))
    } else {
        ffmpeg::decoder::find(codec_id(format))
    }?;
    let mut context = codec::context::Context::new_with_codec(found);
    context.set_threading(codec::threading::Config::count(1));
    // SAFETY: a field of the context owned here, set before it opens.
    unsafe {
        (*context.as_mut_ptr()).max_pixels = i64::from(MAX_DIMENSION) * i64::from(MAX_DIMENSION);
    }
    let mut decoder = context.decoder().video().ok()?;
    decoder.send_packet(&ffmpeg::Packet::copy(keyframe)).ok()?;
    let _ = decoder.send_eof();
    let mut frame = ffmpeg::util::frame::Video::empty();
    decoder.receive_frame(&mut frame).ok()?;
    let (w, h) = (frame.width(), frame.height());
    (w > 0 && h > 0 && w <= MAX_DIMENSION && h <= MAX_DIMENSION).then_some((w, h))
}

/// The NAL units of an Annex B frame that `keep` selects (by the first
/// header byte), in Annex B form.
fn annex_b_units(frame: &[u8], keep: impl Fn(u8) -> bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= frame.len() {
        if frame[i..i + 3] == [0, 0, 1] {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    for (n, &s) in starts.iter().enumerate() {
        let mut end = starts.get(n + 1).map_or(frame.len(), |&e| e - 3);
        // A four-byte start code leaves a zero before the three.
        while end > s && frame[end - 1] == 0 && starts.get(n + 1).is_some() {
            end -= 1;
        }
        if let Some(&h) = frame.get(s)
            && keep(h)
        {
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend_from_slice(&frame[s..end]);
        }
    }
    out
}

/// The sequence header OBU of an AV1 frame (sized OBUs, as depacketised).
fn av1_sequence_header(frame: &[u8]) -> Option<Vec<u8>> {
    let mut at = 0;
    while at < frame.len() {
        let header = frame[at];
        let header_len = if header & 0x04 != 0 { 2 } else { 1 };
        let mut size = 0usize;
        let mut used = 0;
        for (i, &b) in frame.get(at + header_len..)?.iter().take(8).enumerate() {
            size |= usize::from(b & 0x7f) << (7 * i);
            used = i + 1;
            if b & 0x80 == 0 {
                break;
            }
        }
        let end = at + header_len + used + size;
        if (header >> 3) & 0x0f == 1 {
            return frame.get(at..end).map(<[u8]>::to_vec);
        }
        at = end;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_sets_are_taken_from_an_annex_b_keyframe() {
        let frame = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 0, 1, 0x68, 3, 0, 0, 1, 0x65, 9, 9,
        ];
        assert_eq!(
            annex_b_units(&frame, |h| matches!(h & 0x1f, 7 | 8)),
            [0, 0, 0, 1, 0x67, 1, 2, 0, 0, 0, 1, 0x68, 3]
        );
    }

    #[test]
    fn the_av1_sequence_header_is_found_among_sized_obus() {
        // A frame header OBU (type 3) of 2 bytes, then a sequence header of 3.
        let frame = [0x1a, 2, 7, 7, 0x0a, 3, 1, 2, 3];
        assert_eq!(av1_sequence_header(&frame), Some(vec![0x0a, 3, 1, 2, 3]));
        assert_eq!(av1_sequence_header(&[0x1a, 9]), None);
    }

    #[test]
    fn the_opus_head_is_nineteen_bytes_of_rfc_7845() {
        let h = opus_head();
        assert_eq!(h.len(), 19);
        assert_eq!(&h[..8], b"OpusHead");
        assert_eq!(h[9], 2);
    }
}
