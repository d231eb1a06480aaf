//! One recording's media logic, sans-IO: the tracks' packets in, the file
//! operations out. Per track it keeps the stream it records (one SSRC: a
//! simulcast track is recorded at its highest layer, a publisher that
//! changes SSRC is followed), its jitter buffer and its clock; it starts a
//! file once every video track has a keyframe (asking for them) and the
//! tracks are placed on one timeline, writes frames in time order a short
//! while after they are whole, and starts the next file at a keyframe once
//! a segment's time is up.
//!
//! Where it sits: inside the recorder thread ([`super::thread`]), between
//! the taps it drains and the muxer it drives ([`super::mux`]).
//!
//! Call contract: [`Recorder::handle_rtp`] and
//! [`Recorder::handle_sender_report`] for what the taps give; then
//! [`Recorder::poll`] with `now`, and carry out every [`Action`] in order;
//! [`Recorder::finish`] when the recording stops, for the last frames.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::depacketize::Format;
use super::jitter::{Frame, JitterBuffer, Losses};
use super::mux::{TrackSpec, opus_head, video_spec};
use super::timeline::{StreamClock, Timeline};
use crate::simulcast::Layer;
use crate::wire::rtcp::SenderInfo;
use crate::wire::rtp::RtpHeader;

/// How long a whole frame waits before it is written, so that the tracks'
/// frames go to the file in time order.
pub const MERGE_DELAY: Duration = Duration::from_millis(300);

/// How long a track waits for its publisher's first sender report before
/// the file starts (then the track is placed by arrival).
pub const REPORT_WAIT: Duration = Duration::from_millis(1_500);

/// A stream silent this long gives way to another SSRC of the track.
const STREAM_SILENCE: Duration = Duration::from_secs(1);

/// Most frames held before a file starts (about 4 s of 30 fps video and audio).
const MAX_WAITING_FRAMES: usize = 512;

/// Most bytes of frames held before a file starts (a publisher controls
/// their size).
const MAX_WAITING_BYTES: usize = 16 << 20;

/// A lead video track silent this long gives up the lead (rotation goes
/// on with the others, or at any frame).
const LEAD_SILENCE: Duration = Duration::from_secs(2);

/// How often a keyframe is asked for while one is awaited.
const KEYFRAME_RETRY: Duration = Duration::from_secs(1);

/// What a recorded track is.
#[derive(Debug, Clone)]
pub struct TrackInput {
    /// The publisher's payload types and their formats.
    pub formats: Vec<(u8, Format)>,
    /// Which of the recording's publishers (sessions) pushes it.
    pub publisher: usize,
    /// Video or audio.
    pub video: bool,
    /// Simulcast: each layer's rank (by layer index), 0 the best (the
    /// Calls API's rule: the rids a–z, the first the best). Empty when the
    /// track is not simulcast.
    pub layer_ranks: Vec<u8>,
}

/// A file operation for the I/O side to carry out, in order.
#[derive(Debug)]
pub enum Action {
    /// Close the current file, if one is open, and start the next with
    /// these tracks (every track of the recording, in order).
    Open {
        /// The tracks.
        specs: Vec<TrackSpec>,
        /// Where the file starts on the timeline: seconds since the
        /// recorder's `now` at [`Recorder::new`] (capture time, by the
        /// sender reports).
        start: f64,
    },
    /// Write a frame of track `track` at `pts_ms` since the file started.
    Write {
        /// The track.
        track: usize,
        /// Milliseconds since the file's start.
        pts_ms: i64,
        /// A keyframe.
        keyframe: bool,
        /// The coded frame.
        data: Vec<u8>,
    },
    /// Ask the publisher for a keyframe of track `track`.
    RequestKeyframe(usize),
}

/// Frames dropped, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dropped {
    /// The jitter buffers' losses.
    pub losses: Losses,
    /// Before the file started, or before the track's keyframe in a file.
    pub before_keyframe: u64,
    /// Packets of a format the track did not negotiate, or not RTP.
    pub unknown_format: u64,
}

struct Stream {
    ssrc: u32,
    layer: Option<Layer>,
    last: Instant,
    jitter: JitterBuffer,
    clock: StreamClock,
    /// The jitter buffer's restarts the clock follows.
    restarts: u64,
}

struct Track {
    input: TrackInput,
    stream: Option<Stream>,
    /// Sender reports by SSRC (the last of each, at most a few SSRCs).
    reports: Vec<(u32, Instant, SenderInfo)>,
    spec: Option<TrackSpec>,
    /// It has had its keyframe in the current file (audio: always).
    keyed: bool,
    last_pts: Option<i64>,
    keyframe_asked: Option<Instant>,
    /// When its last whole frame came (a lead video track that stops
    /// gives up the lead).
    last_frame: Option<Instant>,
    ended: bool,
    losses: Losses,
}

/// A frame placed on the timeline, waiting to be written.
struct Placed {
    secs: f64,
    track: usize,
    ready: Instant,
    frame: Frame,
}

/// One recording's media logic.
pub struct Recorder {
    tracks: Vec<Track>,
    timeline: Timeline,
    started_at: Instant,
    segment: Option<Duration>,
    /// Whole frames not yet placed (before the first file starts).
    waiting: VecDeque<(usize, Frame)>,
    /// Their bytes.
    waiting_bytes: usize,
    placed: Vec<Placed>,
    /// The current file's start on the timeline, once one is open.
    file_start: Option<f64>,
    /// The next file is due (a keyframe was asked for).
    rotate_due: bool,
    dropped: Dropped,
}

impl Recorder {
    /// A recorder of `tracks` by `publishers` sessions, started at `now`;
    /// files of `segment` each (one file when `None`).
    pub fn new(
        tracks: Vec<TrackInput>,
        publishers: usize,
        segment: Option<Duration>,
        now: Instant,
    ) -> Self {
        let tracks = tracks
            .into_iter()
            .map(|input| Track {
                spec: (!input.video).then(|| TrackSpec {
                    format: Format::Opus,
                    width: 0,
                    height: 0,
                    extradata: opus_head(),
                }),
                keyed: !input.video,
                input,
                stream: None,
                reports: Vec::new(),
                last_pts: None,
                keyframe_asked: None,
                last_frame: None,
                ended: false,
                losses: Losses::default(),
            })
            .collect();
        Recorder {
            tracks,
            timeline: Timeline::new(now, publishers),
            started_at: now,
            segment,
            waiting: VecDeque::new(),
            waiting_bytes: 0,
            placed: Vec::new(),
            file_start: None,
            rotate_due: false,
            dropped: Dropped::default(),
        }
    }

    /// Frames dropped so far, by reason.
    pub fn dropped(&self) -> Dropped {
        let mut d = self.dropped;
        for t in &self.tracks {
            let l = t
                .stream
                .as_ref()
                .map(|s| s.jitter.losses())
                .unwrap_or_default();
            d.losses.lost += t.losses.lost + l.lost;
            d.losses.late += t.losses.late + l.late;
            d.losses.malformed += t.losses.malformed + l.malformed;
        }
        d
    }

    /// Marks a track whose publisher is gone (its frames so far are kept).
    pub fn end_track(&mut self, track: usize) {
        if let Some(t) = self.tracks.get_mut(track) {
            t.ended = true;
        }
    }

    /// Whether every track ended.
    pub fn all_ended(&self) -> bool {
        self.tracks.iter().all(|t| t.ended)
    }

    /// Takes an RTP packet of track `track` that arrived at `at`.
    pub fn handle_rtp(&mut self, track: usize, at: Instant, layer: Option<Layer>, packet: &[u8]) {
        let Some(t) = self.tracks.get_mut(track) else {
            return;
        };
        let Ok(header) = RtpHeader::new_checked(packet) else {
            self.dropped.unknown_format += 1;
            return;
        };
        let pt = header.payload_type();
        let Some(format) = t
            .input
            .formats
            .iter()
            .find(|(p, _)| *p == pt)
            .map(|(_, f)| *f)
        else {
            self.dropped.unknown_format += 1;
            return;
        };
        let ssrc = header.ssrc();
        let switch = match &t.stream {
            None => true,
            Some(s) if s.ssrc == ssrc => false,
            // A higher simulcast layer, or the stream went silent.
            Some(s) => {
                rank(&t.input, layer) < rank(&t.input, s.layer)
                    || at.saturating_duration_since(s.last) >= STREAM_SILENCE
            }
        };
        if switch {
            if let Some(old) = t.stream.take() {
                let l = old.jitter.losses();
                t.losses.lost += l.lost;
                t.losses.late += l.late;
                t.losses.malformed += l.malformed;
                // The new stream starts at a keyframe of its own; before the
                // first file, the file starts with the new stream.
                t.keyed = !t.input.video;
                if self.file_start.is_none() {
                    // The old stream's frames are on another clock: gone.
                    if t.input.video {
                        t.spec = None;
                    }
                    self.waiting.retain(|(i, _)| *i != track);
                    self.waiting_bytes = self.waiting.iter().map(|(_, f)| f.data.len()).sum();
                }
            }
            let mut clock = StreamClock::new(format.clock_rate(), t.input.publisher);
            if let Some((_, at, info)) = t.reports.iter().find(|(s, ..)| *s == ssrc) {
                clock.sender_report(&mut self.timeline, *at, info);
            }
            t.stream = Some(Stream {
                ssrc,
                layer,
                last: at,
                jitter: JitterBuffer::new(format),
                clock,
                restarts: 0,
            });
        }
        let Some(s) = t.stream.as_mut().filter(|s| s.ssrc == ssrc) else {
            return;
        };
        s.last = at;
        let mut payload = &packet[header.payload_offset().min(packet.len())..];
        if packet[0] & 0x20 != 0 {
            // Padding (RFC 3550 §5.1): its length is the last byte.
            let pad = usize::from(*packet.last().unwrap_or(&0));
            payload = &payload[..payload.len().saturating_sub(pad)];
        }
        s.jitter.push(
            at,
            header.sequence_number(),
            header.timestamp(),
            header.marker(),
            payload,
        );
    }

    /// Takes a sender report of track `track`'s publisher.
    pub fn handle_sender_report(&mut self, track: usize, at: Instant, info: SenderInfo) {
        let Some(t) = self.tracks.get_mut(track) else {
            return;
        };
        if let Some(s) = t.stream.as_mut().filter(|s| s.ssrc == info.ssrc) {
            s.clock.sender_report(&mut self.timeline, at, &info);
        }
        t.reports.retain(|(s, ..)| *s != info.ssrc);
        if t.reports.len() >= 4 {
            t.reports.remove(0);
        }
        t.reports.push((info.ssrc, at, info));
    }

    /// What to do now: frames to write, files to start, keyframes to ask for.
    pub fn poll(&mut self, now: Instant, actions: &mut Vec<Action>) {
        self.collect(now, actions);
        if self.file_start.is_none() && !self.try_start(now, actions) {
            return;
        }
        self.release(now, false, actions);
    }

    /// The last frames, when the recording stops: everything whole is
    /// written (nothing more will come).
    pub fn finish(&mut self, now: Instant, actions: &mut Vec<Action>) {
        self.collect(now, actions);
        if self.file_start.is_none() {
            self.try_start(now + REPORT_WAIT, actions);
        }
        self.release(now, true, actions);
    }

    /// Pops whole frames from the jitter buffers: placed on the timeline
    /// once a file started, else kept waiting (bounded).
    fn collect(&mut self, now: Instant, actions: &mut Vec<Action>) {
        for (i, t) in self.tracks.iter_mut().enumerate() {
            let Some(s) = t.stream.as_mut() else {
                continue;
            };
            if s.jitter.restarts() != s.restarts {
                // The stream restarted its numbering (same SSRC): its
                // timestamps may have too, and its old reports are stale.
                s.restarts = s.jitter.restarts();
                s.clock = StreamClock::new(s.jitter.format().clock_rate(), t.input.publisher);
                let ssrc = s.ssrc;
                t.reports.retain(|(r, ..)| *r != ssrc);
                t.keyed = !t.input.video;
                if self.file_start.is_none() {
                    if t.input.video {
                        t.spec = None;
                    }
                    self.waiting.retain(|(j, _)| *j != i);
                    self.waiting_bytes = self.waiting.iter().map(|(_, f)| f.data.len()).sum();
                }
            }
            if s.jitter.take_keyframe_request() {
                t.keyframe_asked = Some(now);
                actions.push(Action::RequestKeyframe(i));
            }
            while let Some(frame) = s.jitter.pop(now) {
                t.last_frame = Some(now);
                if t.input.video && t.spec.is_none() && frame.keyframe {
                    t.spec = video_spec(s.jitter_format(), &frame.data);
                }
                if let Some(start) = self.file_start {
                    let secs = s.clock.place(&self.timeline, frame.timestamp, frame.at);
                    // A segment's time is up: ask for the keyframe the next
                    // file starts at now, not when the frame is written.
                    if let Some(segment) = self.segment
                        && t.input.video
                        && !self.rotate_due
                        && secs - start >= segment.as_secs_f64()
                    {
                        self.rotate_due = true;
                        t.keyframe_asked = Some(now);
                        actions.push(Action::RequestKeyframe(i));
                    }
                    self.placed.push(Placed {
                        secs,
                        track: i,
                        ready: now,
                        frame,
                    });
                } else {
                    self.waiting_bytes += frame.data.len();
                    self.waiting.push_back((i, frame));
                    while self.waiting.len() > MAX_WAITING_FRAMES
                        || self.waiting_bytes > MAX_WAITING_BYTES
                    {
                        let Some((_, old)) = self.waiting.pop_front() else {
                            break;
                        };
                        self.waiting_bytes -= old.data.len();
                        self.dropped.before_keyframe += 1;
                    }
                }
            }
            // Still waiting for a keyframe: ask again now and then.
            let waiting = t.input.video && (t.spec.is_none() || !t.keyed || self.rotate_due);
            if waiting
                && t.keyframe_asked
                    .is_none_or(|a| now.saturating_duration_since(a) >= KEYFRAME_RETRY)
            {
                t.keyframe_asked = Some(now);
                actions.push(Action::RequestKeyframe(i));
            }
        }
    }

    /// Starts the first file when every video track has its keyframe and
    /// every track its sender report (or waited long enough).
    fn try_start(&mut self, now: Instant, actions: &mut Vec<Action>) -> bool {
        let reported = self
            .tracks
            .iter()
            .all(|t| t.ended || t.stream.as_ref().is_some_and(|s| s.clock.has_report()));
        let waited = now.saturating_duration_since(self.started_at) >= REPORT_WAIT;
        let keyed = self.tracks.iter().all(|t| t.ended || t.spec.is_some());
        let any = !self.waiting.is_empty();
        if !(keyed && any && (reported || waited)) {
            return false;
        }
        // Each video track's keyframe must still be waiting (a long wait
        // may have pushed it out): else it waits for the next one.
        let mut missing = false;
        for (i, t) in self.tracks.iter_mut().enumerate() {
            if t.input.video && !t.ended && !self.waiting.iter().any(|(j, f)| *j == i && f.keyframe)
            {
                t.spec = None;
                missing = true;
            }
        }
        if missing {
            return false;
        }
        // Place the waiting frames; the file starts at the latest first
        // keyframe of the video tracks (at the first frame if none).
        let mut origin: Option<f64> = None;
        let mut first_any: Option<f64> = None;
        self.waiting_bytes = 0;
        for (i, frame) in std::mem::take(&mut self.waiting) {
            let t = &mut self.tracks[i];
            let Some(s) = t.stream.as_mut() else {
                continue;
            };
            let secs = s.clock.place(&self.timeline, frame.timestamp, frame.at);
            first_any = Some(first_any.map_or(secs, |f: f64| f.min(secs)));
            if t.input.video && frame.keyframe && !t.keyed {
                t.keyed = true;
                origin = Some(origin.map_or(secs, |o: f64| o.max(secs)));
            }
            self.placed.push(Placed {
                secs,
                track: i,
                ready: now,
                frame,
            });
        }
        let has_video = self.tracks.iter().any(|t| t.input.video && !t.ended);
        let start = if has_video { origin } else { first_any };
        let Some(start) = start else {
            self.dropped.before_keyframe += self.placed.len() as u64;
            self.placed.clear();
            return false;
        };
        // Frames before the start (audio before the keyframe) are dropped.
        let before = self.placed.len();
        self.placed.retain(|p| p.secs >= start - 1e-6);
        self.dropped.before_keyframe += (before - self.placed.len()) as u64;
        for t in &mut self.tracks {
            if t.input.video {
                t.keyed = false;
            }
        }
        self.file_start = Some(start);
        actions.push(Action::Open {
            specs: self.specs(),
            start,
        });
        true
    }

    fn specs(&self) -> Vec<TrackSpec> {
        self.tracks
            .iter()
            .map(|t| {
                t.spec.clone().unwrap_or(TrackSpec {
                    format: t.input.formats.first().map_or(Format::Vp8, |(_, f)| *f),
                    width: 640,
                    height: 480,
                    extradata: Vec::new(),
                })
            })
            .collect()
    }

    /// Writes the placed frames that waited [`MERGE_DELAY`] (all of them
    /// when `all`), in time order; starts the next file when one is due.
    fn release(&mut self, now: Instant, all: bool, actions: &mut Vec<Action>) {
        let Some(mut start) = self.file_start else {
            return;
        };
        self.placed.sort_by(|a, b| a.secs.total_cmp(&b.secs));
        let ready = self
            .placed
            .iter()
            .position(|p| !all && now.saturating_duration_since(p.ready) < MERGE_DELAY)
            .unwrap_or(self.placed.len());
        // The video track whose keyframes start files: the first that is
        // live (one that stopped sending leaves rotation to the others).
        let lead = self.tracks.iter().position(|t| {
            t.input.video
                && !t.ended
                && t.last_frame
                    .is_some_and(|f| now.saturating_duration_since(f) < LEAD_SILENCE)
        });
        for p in self.placed.drain(..ready).collect::<Vec<_>>() {
            if let Some(segment) = self.segment
                && p.secs - start >= segment.as_secs_f64()
            {
                let lead_keyframe = lead == Some(p.track) && p.frame.keyframe;
                if lead.is_none() || lead_keyframe {
                    start = p.secs;
                    self.file_start = Some(start);
                    self.rotate_due = false;
                    let t = &mut self.tracks[p.track];
                    let format = t.stream.as_ref().map(|s| s.jitter.format());
                    if lead_keyframe
                        && let Some(spec) = format.and_then(|f| video_spec(f, &p.frame.data))
                    {
                        t.spec = Some(spec);
                    }
                    for other in &mut self.tracks {
                        other.keyed = !other.input.video;
                        other.last_pts = None;
                    }
                    actions.push(Action::Open {
                        specs: self.specs(),
                        start,
                    });
                } else if !self.rotate_due {
                    self.rotate_due = true;
                    if let Some(l) = lead {
                        self.tracks[l].keyframe_asked = Some(now);
                        actions.push(Action::RequestKeyframe(l));
                    }
                }
            }
            let t = &mut self.tracks[p.track];
            if !t.keyed {
                if !p.frame.keyframe {
                    self.dropped.before_keyframe += 1;
                    continue;
                }
                t.keyed = true;
            }
            let mut pts = ((p.secs - start) * 1000.0).round() as i64;
            if pts < 0 {
                self.dropped.losses.late += 1;
                continue;
            }
            if let Some(last) = t.last_pts
                && pts <= last
            {
                pts = last + 1;
            }
            t.last_pts = Some(pts);
            actions.push(Action::Write {
                track: p.track,
                pts_ms: pts,
                keyframe: p.frame.keyframe,
                data: p.frame.data,
            });
        }
    }
}

/// A layer's rank for recording (lower is better; a stream without a layer
/// ranks last).
fn rank(input: &TrackInput, layer: Option<Layer>) -> u8 {
    layer
        .and_then(|l| input.layer_ranks.get(l.index()).copied())
        .unwrap_or(u8::MAX)
}

impl Stream {
    fn jitter_format(&self) -> Format {
        self.jitter.format()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::testing::vp8_frames;
    use crate::recording::testing::{Rng, rtp};

    const VIDEO_PT: u8 = 96;
    const AUDIO_PT: u8 = 111;

    fn inputs() -> Vec<TrackInput> {
        vec![
            TrackInput {
                formats: vec![(VIDEO_PT, Format::Vp8)],
                publisher: 0,
                video: true,
                layer_ranks: Vec::new(),
            },
            TrackInput {
                formats: vec![(AUDIO_PT, Format::Opus)],
                publisher: 0,
                video: false,
                layer_ranks: Vec::new(),
            },
        ]
    }

    /// One publisher's packets, each with its capture time in ms: VP8 at
    /// 30 fps (real libvpx frames, a keyframe every 10) split into packets
    /// of 400 bytes, Opus every 20 ms; video RTP starts at 1_000_000,
    /// audio at 5_000 (independent random offsets, as RFC 3550 has them).
    fn media(seconds: u64) -> Vec<(u64, usize, Vec<u8>)> {
        let frames = vp8_frames(90, 320, 240).expect("libavcodec with libvpx");
        let mut out = Vec::new();
        let mut seq = 100u16;
        for n in 0..seconds * 30 {
            let (frame, _) = &frames[(n % 90) as usize];
            let at = n * 100 / 3;
            let chunks: Vec<&[u8]> = frame.chunks(400).collect();
            for (i, c) in chunks.iter().enumerate() {
                let mut payload = vec![if i == 0 { 0x10 } else { 0 }];
                payload.extend_from_slice(c);
                let ts = 1_000_000 + (n * 3000) as u32;
                out.push((
                    at,
                    0,
                    rtp(VIDEO_PT, seq, ts, 1, i + 1 == chunks.len(), &payload),
                ));
                seq = seq.wrapping_add(1);
            }
        }
        for n in 0..seconds * 50 {
            let ts = 5_000 + (n * 960) as u32;
            out.push((
                n * 20,
                1,
                rtp(AUDIO_PT, n as u16, ts, 2, false, &[0xfc, n as u8]),
            ));
        }
        out.sort_by_key(|(at, ..)| *at);
        out
    }

    /// Sender reports of both streams at capture time `ms` (NTP 1000 s + ms).
    fn reports(r: &mut Recorder, now: Instant, ms: u64) {
        let ntp = |ms: u64| ((1000.0 + ms as f64 / 1000.0) * 4_294_967_296.0) as u64;
        for (track, ssrc, rtp, rate) in [(0, 1, 1_000_000u32, 90u64), (1, 2, 5_000, 48)] {
            r.handle_sender_report(
                track,
                now,
                SenderInfo {
                    ssrc,
                    ntp: ntp(ms),
                    rtp_timestamp: rtp + (ms * rate) as u32,
                    packet_count: 0,
                    octet_count: 0,
                },
            );
        }
    }

    struct Run {
        actions: Vec<Action>,
        keyframe_requests: usize,
    }

    /// Delivers `media` through a path that delays each packet by 5 to 45
    /// ms (reordering them) and loses `loss` percent, each lost packet
    /// repaired (NACK) 60 ms later unless `permanent`; polls every 10 ms.
    fn deliver(
        seconds: u64,
        segment: Option<Duration>,
        loss: u64,
        permanent: bool,
    ) -> (Run, Recorder) {
        let t0 = Instant::now();
        let mut rng = Rng(42);
        let mut arrivals: Vec<(u64, usize, Vec<u8>)> = Vec::new();
        for (at, track, p) in media(seconds) {
            let delay = 5 + rng.next() % 40;
            if rng.next() % 100 < loss {
                if !permanent {
                    arrivals.push((at + delay + 60, track, p));
                }
                continue;
            }
            arrivals.push((at + delay, track, p));
        }
        arrivals.sort_by_key(|(at, ..)| *at);
        let mut r = Recorder::new(inputs(), 1, segment, t0);
        let mut run = Run {
            actions: Vec::new(),
            keyframe_requests: 0,
        };
        let mut next = arrivals.into_iter().peekable();
        let mut polled = Vec::new();
        for tick in 0..(seconds * 1000 + 2000) / 10 {
            let ms = tick * 10;
            let now = t0 + Duration::from_millis(ms);
            if ms % 1000 == 0 {
                reports(&mut r, now, ms);
            }
            while let Some((at, track, p)) = next.next_if(|(at, ..)| *at <= ms) {
                r.handle_rtp(track, t0 + Duration::from_millis(at), None, &p);
            }
            r.poll(now, &mut polled);
            for a in polled.drain(..) {
                match a {
                    Action::RequestKeyframe(_) => run.keyframe_requests += 1,
                    a => run.actions.push(a),
                }
            }
        }
        r.finish(t0 + Duration::from_secs(seconds + 2), &mut run.actions);
        (run, r)
    }

    /// The writes of each file: (track, pts, keyframe) per file.
    fn files(actions: &[Action]) -> Vec<Vec<(usize, i64, bool)>> {
        let mut out: Vec<Vec<(usize, i64, bool)>> = Vec::new();
        for a in actions {
            match a {
                Action::Open { .. } => out.push(Vec::new()),
                Action::Write {
                    track,
                    pts_ms,
                    keyframe,
                    ..
                } => out
                    .last_mut()
                    .expect("a file is open before a write")
                    .push((*track, *pts_ms, *keyframe)),
                Action::RequestKeyframe(_) => {}
            }
        }
        out
    }

    #[test]
    fn reordered_and_repaired_packets_make_one_file_in_sync_from_a_keyframe() {
        let (run, r) = deliver(6, None, 5, false);
        let Some(Action::Open { specs, .. }) = run.actions.first() else {
            panic!("the file opens first");
        };
        assert_eq!((specs[0].width, specs[0].height), (320, 240));
        assert_eq!(specs[1].format, Format::Opus);
        let files = files(&run.actions);
        assert_eq!(files.len(), 1);
        let video: Vec<_> = files[0].iter().filter(|w| w.0 == 0).collect();
        let audio: Vec<_> = files[0].iter().filter(|w| w.0 == 1).collect();
        assert!(video[0].2, "the file starts at a keyframe");
        // Every frame from the first keyframe (the first frame) on: none
        // lost, the repairs came in time.
        assert_eq!(video.len(), 180);
        assert_eq!(r.dropped().losses.lost, 0, "{:?}", r.dropped());
        assert!(
            video.windows(2).all(|w| w[1].1 > w[0].1) && audio.windows(2).all(|w| w[1].1 > w[0].1)
        );
        // Lip-sync: a video frame and the audio packet captured at the same
        // instant (every 100 ms: frames every 33.3 ms, packets every 20 ms)
        // are written at the same time, although their RTP clocks started
        // apart and their packets arrived 5 to 45 ms late, unevenly.
        let on_boundary: Vec<_> = video.iter().filter(|v| v.1 % 100 == 0).collect();
        let synced = on_boundary
            .iter()
            .filter(|v| audio.iter().any(|a| (a.1 - v.1).abs() <= 1))
            .count();
        assert!(
            on_boundary.len() >= 50 && synced == on_boundary.len(),
            "{synced} of {} in sync",
            on_boundary.len()
        );
        // Audio starts with the video (not before the keyframe).
        assert!(audio[0].1 >= 0 && audio[0].1 <= 20, "{:?}", audio[0]);
    }

    #[test]
    fn segments_start_at_keyframes_and_follow_each_other_without_a_gap() {
        let (run, _) = deliver(12, Some(Duration::from_secs(5)), 0, false);
        let files = files(&run.actions);
        assert_eq!(files.len(), 3, "12 s in files of 5 s");
        let mut total = 0;
        for (n, f) in files.iter().enumerate() {
            let video: Vec<_> = f.iter().filter(|w| w.0 == 0).collect();
            let audio: Vec<_> = f.iter().filter(|w| w.0 == 1).collect();
            assert!(
                video[0].2 && video[0].1 == 0,
                "file {n} starts with a keyframe at 0: {:?}",
                video[0]
            );
            let end = video.last().unwrap().1 + 33;
            if n < 2 {
                // Rotated at the first keyframe after 5 s (keyframes every 333 ms).
                assert!((5_000..5_400).contains(&end), "file {n} lasts {end} ms");
            }
            assert!(
                audio.first().unwrap().1 <= 20,
                "file {n}'s audio starts with it"
            );
            total += end;
        }
        assert!(
            (11_500..=12_100).contains(&total),
            "files hold {total} ms of 12 s"
        );
        assert!(
            run.keyframe_requests >= 2,
            "a keyframe asked for at each segment's end"
        );
    }

    #[test]
    fn packets_lost_for_good_skip_to_the_next_keyframe_and_ask_for_one() {
        let (run, r) = deliver(6, None, 3, true);
        let files = files(&run.actions);
        let video: Vec<_> = files[0].iter().filter(|w| w.0 == 0).collect();
        assert!(video[0].2);
        assert!(r.dropped().losses.lost > 0, "{:?}", r.dropped());
        assert!(run.keyframe_requests > 1, "the losses asked for keyframes");
        // After a skip the next frame written is a keyframe.
        let stamps: Vec<i64> = video.iter().map(|v| v.1).collect();
        for w in video.windows(2) {
            if w[1].1 - w[0].1 > 40 {
                assert!(w[1].2, "a gap ends at a keyframe: {:?} in {stamps:?}", w[1]);
            }
        }
    }

    #[test]
    fn hostile_packets_never_panic_and_hold_bounded_frames() {
        let t0 = Instant::now();
        let mut r = Recorder::new(inputs(), 1, None, t0);
        let mut rng = Rng(7);
        let mut actions = Vec::new();
        for i in 0..50_000u64 {
            let len = (rng.next() % 300) as usize;
            let mut p: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            if let Some(b) = p.get_mut(1) {
                // Mostly the negotiated payload types, the rest anything.
                *b = [VIDEO_PT, AUDIO_PT, *b][(rng.next() % 3) as usize];
            }
            if let Some(b) = p.first_mut() {
                *b = 0x80 | (*b & 0x3f);
            }
            let now = t0 + Duration::from_millis(i / 10);
            r.handle_rtp(
                (rng.next() % 3) as usize,
                now,
                Some(Layer((rng.next() % 5) as u8)),
                &p,
            );
            if i % 100 == 0 {
                r.poll(now, &mut actions);
                assert!(r.waiting.len() <= MAX_WAITING_FRAMES);
                assert!(r.waiting_bytes <= MAX_WAITING_BYTES);
                assert!(r.placed.len() <= MAX_WAITING_FRAMES * 2);
            }
        }
        // Random bytes are never a VP8 keyframe that decodes: no file.
        assert!(!actions.iter().any(|a| matches!(a, Action::Open { .. })));
    }

    #[test]
    fn frames_held_before_a_file_starts_are_bounded_in_bytes() {
        // Large frames that look like VP8 keyframes but decode as nothing:
        // no file ever starts, and what waits stays under the bound.
        let t0 = Instant::now();
        let mut r = Recorder::new(inputs(), 1, None, t0);
        let mut actions = Vec::new();
        let mut seq = 0u16;
        for n in 0..100u32 {
            for i in 0..200 {
                let mut payload = if i == 0 {
                    vec![0x10, 0x00, 0, 0, 0x9d, 0x01, 0x2a]
                } else {
                    vec![0x00]
                };
                payload.resize(1_200, n as u8);
                let p = rtp(VIDEO_PT, seq, n * 3000, 1, i == 199, &payload);
                seq = seq.wrapping_add(1);
                r.handle_rtp(0, t0, None, &p);
            }
            r.poll(t0 + Duration::from_millis(u64::from(n)), &mut actions);
            assert!(r.waiting_bytes <= MAX_WAITING_BYTES, "{}", r.waiting_bytes);
        }
        assert!(r.dropped().before_keyframe > 0);
        assert!(!actions.iter().any(|a| matches!(a, Action::Open { .. })));
    }
}
