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

/// Whole frames held before the first file starts, bounded in count and
/// bytes (the oldest go first).
#[derive(Default)]
struct Waiting {
    frames: VecDeque<(usize, Frame)>,
    bytes: usize,
}

impl Waiting {
    /// Holds a frame of `track`; returns how many old frames went.
    fn push(&mut self, track: usize, frame: Frame) -> u64 {
        self.bytes += frame.data.len();
        self.frames.push_back((track, frame));
        let mut dropped = 0;
        while self.frames.len() > MAX_WAITING_FRAMES || self.bytes > MAX_WAITING_BYTES {
            let Some((_, old)) = self.frames.pop_front() else {
                break;
            };
            self.bytes -= old.data.len();
            dropped += 1;
        }
        dropped
    }

    /// Forgets `track`'s frames (its stream started over).
    fn drop_track(&mut self, track: usize) {
        self.frames.retain(|(t, _)| *t != track);
        self.bytes = self.frames.iter().map(|(_, f)| f.data.len()).sum();
    }

    /// Whether a keyframe of `track` is held.
    fn has_keyframe(&self, track: usize) -> bool {
        self.frames.iter().any(|(t, f)| *t == track && f.keyframe)
    }

    /// Everything held, in order.
    fn take(&mut self) -> VecDeque<(usize, Frame)> {
        self.bytes = 0;
        std::mem::take(&mut self.frames)
    }
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
    waiting: Waiting,
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
            waiting: Waiting::default(),
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
                    self.waiting.drop_track(track);
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
                    self.waiting.drop_track(i);
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
                    self.dropped.before_keyframe += self.waiting.push(i, frame);
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
        let any = !self.waiting.frames.is_empty();
        if !(keyed && any && (reported || waited)) {
            return false;
        }
        // Each video track's keyframe must still be waiting (a long wait
        // may have pushed it out): else it waits for the next one.
        let mut missing = false;
        for (i, t) in self.tracks.iter_mut().enumerate() {
            if t.input.video && !t.ended && !self.waiting.has_keyframe(i) {
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
        for (i, frame) in self.waiting.take() {
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
#[path = "recorder_tests.rs"]
mod tests;
