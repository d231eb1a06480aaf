//! Opus to PCM for audio egress: one [`FrameSource`] in, one 20 ms frame
//! of s16le 48 kHz stereo interleaved PCM (3,840 bytes) out, decoded by
//! libopus (through the `opus` crate): packets, in-band FEC, and libopus's
//! own loss concealment.
//!
//! Where it sits: between the jitter buffer (`playout`) and the message
//! the egress task sends. Runs on an adapter thread.
//!
//! A packet longer than 20 ms (Opus allows up to 120 ms) decodes into
//! more than one frame: the rest is carried into the frames after it, which
//! the jitter buffer sees as silence (no packet was sent for them).

use super::ingest_pacer::{FRAME_BYTES, FRAME_VALUES};
use super::playout::FrameSource;

/// The longest Opus packet: 120 ms of stereo.
const MAX_VALUES: usize = 5760 * 2;

/// The decoder and what it carries from a long packet.
pub struct PcmDecoder {
    decoder: opus::Decoder,
    carry: Vec<i16>,
    scratch: Vec<i16>,
}

impl PcmDecoder {
    /// A stereo 48 kHz decoder.
    pub fn new() -> Result<Self, opus::Error> {
        Ok(PcmDecoder {
            decoder: opus::Decoder::new(48_000, opus::Channels::Stereo)?,
            carry: Vec::new(),
            scratch: vec![0; MAX_VALUES],
        })
    }

    /// The PCM of one frame.
    pub fn frame(&mut self, source: &FrameSource) -> Vec<u8> {
        let carried = self.carry.len() >= FRAME_VALUES
            && matches!(source, FrameSource::Silence | FrameSource::Conceal);
        let values: Vec<i16> = if carried {
            self.carry.drain(..FRAME_VALUES).collect()
        } else {
            self.carry.clear();
            match source {
                FrameSource::Packet(p) => match self.decoder.decode(p, &mut self.scratch, false) {
                    Ok(n) => {
                        let n = (n * 2).min(self.scratch.len());
                        self.carry
                            .extend_from_slice(&self.scratch[FRAME_VALUES.min(n)..n]);
                        let mut v = self.scratch[..FRAME_VALUES.min(n)].to_vec();
                        v.resize(FRAME_VALUES, 0);
                        v
                    }
                    // A packet libopus refuses is concealed.
                    Err(_) => self.conceal(),
                },
                FrameSource::Fec(next) => {
                    match self
                        .decoder
                        .decode(next, &mut self.scratch[..FRAME_VALUES], true)
                    {
                        Ok(_) => self.scratch[..FRAME_VALUES].to_vec(),
                        Err(_) => self.conceal(),
                    }
                }
                FrameSource::Conceal => self.conceal(),
                FrameSource::Silence => vec![0; FRAME_VALUES],
            }
        };
        let mut bytes = Vec::with_capacity(FRAME_BYTES);
        for v in values {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        bytes
    }

    fn conceal(&mut self) -> Vec<i16> {
        match self
            .decoder
            .decode(&[], &mut self.scratch[..FRAME_VALUES], false)
        {
            Ok(_) => self.scratch[..FRAME_VALUES].to_vec(),
            Err(_) => vec![0; FRAME_VALUES],
        }
    }
}

/// PCM to Opus for audio ingest: 20 ms stereo frames in, packets out.
pub struct OpusEncoder {
    encoder: opus::Encoder,
    out: Vec<u8>,
}

impl OpusEncoder {
    /// A 48 kHz stereo encoder for speech and music, with in-band FEC.
    pub fn new() -> Result<Self, opus::Error> {
        let mut encoder =
            opus::Encoder::new(48_000, opus::Channels::Stereo, opus::Application::Audio)?;
        encoder.set_bitrate(opus::Bitrate::Bits(64_000))?;
        encoder.set_inband_fec(true)?;
        encoder.set_packet_loss_perc(5)?;
        Ok(OpusEncoder {
            encoder,
            out: vec![0; 1500],
        })
    }

    /// One frame's packet; `None` for silence (a frame of zeros).
    pub fn encode(&mut self, frame: Option<&[i16; FRAME_VALUES]>) -> Option<Vec<u8>> {
        let silence = [0i16; FRAME_VALUES];
        let pcm = frame.unwrap_or(&silence);
        let n = self.encoder.encode(pcm, &mut self.out).ok()?;
        Some(self.out[..n].to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::ingest_pacer::FRAME_SAMPLES;

    fn tone(frame: usize, hz: f64) -> [i16; FRAME_VALUES] {
        let mut f = [0i16; FRAME_VALUES];
        for i in 0..FRAME_SAMPLES {
            let t = (frame * FRAME_SAMPLES + i) as f64 / 48_000.0;
            let v = (8000.0 * (2.0 * std::f64::consts::PI * hz * t).sin()) as i16;
            f[2 * i] = v;
            f[2 * i + 1] = v;
        }
        f
    }

    /// Zero crossings per second of the left channel.
    fn crossings(pcm: &[u8]) -> f64 {
        let left: Vec<i16> = pcm
            .chunks_exact(4)
            .map(|c| i16::from_le_bytes([c[0], c[1]]))
            .collect();
        let n = left.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
        n as f64 / 2.0 / (left.len() as f64 / 48_000.0)
    }

    #[test]
    fn a_tone_survives_encode_loss_fec_and_concealment() {
        let mut enc = OpusEncoder::new().unwrap();
        let mut dec = PcmDecoder::new().unwrap();
        let packets: Vec<Vec<u8>> = (0..100)
            .map(|i| enc.encode(Some(&tone(i, 440.0))).unwrap())
            .collect();
        let mut pcm = Vec::new();
        for (i, p) in packets.iter().enumerate() {
            let source = match i % 10 {
                3 => FrameSource::Fec(packets[i + 1].clone()),
                7 => FrameSource::Conceal,
                _ => FrameSource::Packet(p.clone()),
            };
            let frame = dec.frame(&source);
            assert_eq!(frame.len(), FRAME_BYTES);
            pcm.extend(frame);
        }
        // Skip the codec's start-up; the tone is there within 2 %.
        let hz = crossings(&pcm[FRAME_BYTES * 10..]);
        assert!((hz - 440.0).abs() < 440.0 * 0.02, "{hz}");
        assert_eq!(dec.frame(&FrameSource::Silence), vec![0; FRAME_BYTES]);
        assert_eq!(
            dec.frame(&FrameSource::Packet(vec![0xff; 3])).len(),
            FRAME_BYTES
        );
    }
}
