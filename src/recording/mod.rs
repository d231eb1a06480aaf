//! Recording (docs/calls-api.md, "Recordings", our extension): any pushed
//! tracks, of one session or several, into one WebM or Matroska file (or a
//! series of files of `segmentSeconds` each), as they come, without
//! transcoding.
//!
//! Where it sits: beside the media path, never in it. A recording puts a
//! [`crate::fanout::tap::Tap`] on each track's fan-out; the publisher's worker copies the
//! track's unprotected packets and sender reports into it after its
//! subscribers got them (bounded, never blocking: a recorder that falls
//! behind loses packets, counted). One thread per recording
//! ([`thread`]) drains the taps, puts frames back together
//! ([`jitter`], [`depacketize`]), aligns the tracks ([`timeline`]),
//! decides files and keyframes ([`recorder`]) and writes ([`mux`]).
//! Repairs come from the engine, which asks publishers to resend what it
//! lost (NACK) for every track; a recorder's keyframe request goes the way
//! of a subscriber's PLI.
//!
//! [`Recordings`] is the registry the API drives: it checks the request and
//! the limits, resolves tracks through the control plane, starts and stops
//! threads, and answers for each recording's state and files.

pub mod depacketize;
pub mod jitter;
pub mod mux;
pub mod recorder;
#[cfg(test)]
mod testing;
pub mod thread;
pub mod timeline;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::calls::CallsError;
use crate::calls::types::TrackObject;
use crate::config::RecordingConfig;
use crate::control::Control;
use crate::fanout::TrackFanout;
use crate::fanout::tap::Tap;
use crate::ids::AppId;

use depacketize::Format;
use mux::Container;
use recorder::{Dropped, Recorder, TrackInput};

/// Most tracks in one recording.
pub const MAX_TRACKS: usize = 16;
/// The shortest and longest segment.
pub const SEGMENT_SECONDS: std::ops::RangeInclusive<u64> = 5..=86_400;
/// Ended recordings remembered for `GET` (the oldest are forgotten first).
pub const MAX_ENDED: usize = 1_024;

/// A track to record, as the request names it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrackRef {
    /// The publisher's session.
    pub session_id: String,
    /// The track's name.
    pub track_name: String,
}

/// `POST …/recordings/new`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewRecordingRequest {
    /// The tracks, each recorded as one stream of the file.
    pub tracks: Vec<TrackRef>,
    /// `webm` (default) or `mkv`.
    #[serde(default)]
    pub container: Option<String>,
    /// Start a new file every this many seconds.
    #[serde(default)]
    pub segment_seconds: Option<u64>,
}

/// One file of a recording.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct FileInfo {
    /// Its name under `--recordings-dir`.
    pub path: String,
    /// Its size so far.
    pub bytes: u64,
    /// Its media time so far.
    pub duration_ms: u64,
    /// When its first frame was captured (Unix time, ms; by the
    /// publishers' sender reports, else by arrival): files of several
    /// recordings line up by it.
    pub started_at: u64,
}

/// Where a recording is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Writing.
    Recording,
    /// Ended: closed through the API, every publisher gone, or the server
    /// stopping; its files are complete.
    Closed,
    /// Stopped by an error (the reason); the files so far are playable.
    Failed(String),
}

/// What the API answers of a recording.
#[derive(Debug, Clone)]
pub struct Status {
    /// Its state.
    pub state: State,
    /// Its files, in order.
    pub files: Vec<FileInfo>,
    /// Frames dropped by the recorder, by reason.
    pub dropped: Dropped,
    /// Packets its taps dropped because it fell behind.
    pub tap_dropped: u64,
    /// Packets waiting in its taps.
    pub queue_depth: usize,
}

/// A recording's state, shared by its thread (writer) and the API.
pub struct Shared {
    status: Mutex<Status>,
    stop: AtomicBool,
    written: AtomicU64,
}

impl Shared {
    fn new() -> Self {
        Shared {
            status: Mutex::new(Status {
                state: State::Recording,
                files: Vec::new(),
                dropped: Dropped::default(),
                tap_dropped: 0,
                queue_depth: 0,
            }),
            stop: AtomicBool::new(false),
            written: AtomicU64::new(0),
        }
    }

    fn update(&self, f: impl FnOnce(&mut Status)) {
        let mut s = self.status.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut s);
    }

    fn add_written(&self, bytes: u64) {
        self.written.fetch_add(bytes, Ordering::Relaxed);
    }

    /// A copy of the status.
    pub fn status(&self) -> Status {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The state alone (no copy of the files).
    pub fn state(&self) -> State {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .state
            .clone()
    }

    /// The status without its files (for the metrics).
    fn counts(&self) -> Status {
        let s = self.status.lock().unwrap_or_else(|e| e.into_inner());
        Status {
            state: s.state.clone(),
            files: Vec::new(),
            dropped: s.dropped,
            tap_dropped: s.tap_dropped,
            queue_depth: s.queue_depth,
        }
    }
}

/// One recording as the registry keeps it.
struct Entry {
    app: AppId,
    created: Instant,
    tracks: Vec<TrackRef>,
    container: Container,
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A recording as the API answers it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordingObject {
    /// Its id.
    pub recording_id: String,
    /// `recording`, `closed` or `failed`.
    pub state: &'static str,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `webm` or `mkv`.
    pub container: &'static str,
    /// The tracks, with per-item errors on `new`.
    pub tracks: Vec<TrackObject>,
    /// Its files.
    pub files: Vec<FileInfo>,
    /// Frames dropped, by reason; packets lost to a recorder behind.
    pub dropped: DroppedObject,
}

/// Drops as the API answers them.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DroppedObject {
    /// Frames lost on the way (not repaired in time).
    pub lost: u64,
    /// Frames skipped to start at a keyframe.
    pub before_keyframe: u64,
    /// Frames that could not be read.
    pub malformed: u64,
    /// Packets that came too late.
    pub late: u64,
    /// Packets dropped because the recorder fell behind (a slow disk).
    pub queue_full: u64,
}

/// Totals for the metrics.
#[derive(Debug, Clone, Copy, Default)]
pub struct Totals {
    /// Recordings writing now.
    pub active: usize,
    /// Recordings failed (of those remembered).
    pub failed: usize,
    /// Bytes of frames written, ever.
    pub bytes_written: u64,
    /// Frames dropped by reason (of those remembered).
    pub dropped: Dropped,
    /// Packets lost to full taps.
    pub queue_full: u64,
    /// Packets waiting in taps.
    pub queue_depth: usize,
}

/// Every recording of this server.
pub struct Recordings {
    control: Arc<Control>,
    config: RecordingConfig,
    entries: Mutex<Registry>,
}

#[derive(Default)]
struct Registry {
    by_id: HashMap<String, Entry>,
    ended: VecDeque<String>,
    /// Bytes written by recordings no longer remembered.
    forgotten_bytes: u64,
}

impl Recordings {
    /// An empty registry.
    pub fn new(control: Arc<Control>, config: RecordingConfig) -> Self {
        Recordings {
            control,
            config,
            entries: Mutex::new(Registry::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a recording. Per-item errors are in the answer's `tracks`;
    /// when no track can be recorded, the answer is a 404.
    pub fn start(
        &self,
        app: &AppId,
        request: NewRecordingRequest,
    ) -> Result<RecordingObject, CallsError> {
        let container = match request.container.as_deref() {
            None => Container::Webm,
            Some(name) => Container::from_name(name).ok_or_else(|| {
                CallsError::invalid_params("container must be \"webm\" or \"mkv\"")
            })?,
        };
        let named_twice = request
            .tracks
            .iter()
            .enumerate()
            .any(|(i, t)| request.tracks[..i].contains(t));
        if named_twice {
            return Err(CallsError::invalid_params("a track is named twice"));
        }
        if request.tracks.is_empty() || request.tracks.len() > MAX_TRACKS {
            return Err(CallsError::invalid_params(format!(
                "tracks must name 1 to {MAX_TRACKS} tracks"
            )));
        }
        let segment = match request.segment_seconds {
            None => None,
            Some(s) if SEGMENT_SECONDS.contains(&s) => Some(Duration::from_secs(s)),
            Some(_) => {
                return Err(CallsError::invalid_params(format!(
                    "segmentSeconds must be {} to {}",
                    SEGMENT_SECONDS.start(),
                    SEGMENT_SECONDS.end()
                )));
            }
        };
        let mut reg = self.lock();
        let active = reg
            .by_id
            .values()
            .filter(|e| e.shared.state() == State::Recording);
        let (all, of_app) = active.fold((0, 0), |(all, app_n), e| {
            (all + 1, app_n + usize::from(e.app == *app))
        });
        if all >= self.config.max || of_app >= self.config.max_per_app {
            return Err(CallsError::temporarily_unavailable(
                "too many recordings at once on this server or for this app",
            ));
        }
        // Resolve every item; those that fail carry their error.
        let mut items = Vec::new();
        let mut inputs = Vec::new();
        let mut taps = Vec::new();
        let mut publishers: Vec<String> = Vec::new();
        for t in &request.tracks {
            let mut item = TrackObject {
                session_id: Some(t.session_id.clone()),
                track_name: Some(t.track_name.clone()),
                ..TrackObject::default()
            };
            match self
                .control
                .recordable_track(app, &t.session_id, &t.track_name)
            {
                None => item.fail(
                    "not_found_track_error",
                    "Track not found (unknown session or track name)",
                ),
                Some(found) => {
                    let formats: Vec<(u8, Format)> = found
                        .codecs
                        .iter()
                        .filter_map(|(pt, name)| Some((*pt, Format::from_name(name)?)))
                        .filter(|(_, f)| container == Container::Mkv || f.in_webm())
                        .filter(|(_, f)| f.is_video() == found.video)
                        .collect();
                    if formats.is_empty() {
                        item.fail(
                            crate::control::pulls::INCOMPATIBLE_CODEC,
                            format!(
                                "{} cannot hold the track's codec ({})",
                                container.as_str(),
                                found
                                    .codecs
                                    .iter()
                                    .map(|(_, n)| n.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        );
                    } else {
                        let publisher = match publishers.iter().position(|p| *p == t.session_id) {
                            Some(i) => i,
                            None => {
                                publishers.push(t.session_id.clone());
                                publishers.len() - 1
                            }
                        };
                        let packets = if found.video {
                            crate::fanout::tap::VIDEO_PACKETS
                        } else {
                            crate::fanout::tap::AUDIO_PACKETS
                        };
                        taps.push((
                            Arc::new(crate::fanout::tap::Tap::new(packets)),
                            found.fanout,
                        ));
                        inputs.push(TrackInput {
                            formats,
                            publisher,
                            video: found.video,
                            layer_ranks: layer_ranks(&found.rids),
                        });
                    }
                }
            }
            items.push(item);
        }
        if inputs.is_empty() {
            let reasons: Vec<String> = items
                .iter()
                .map(|i| {
                    format!(
                        "{}/{}: {}",
                        i.session_id.as_deref().unwrap_or(""),
                        i.track_name.as_deref().unwrap_or(""),
                        i.error_description.as_deref().unwrap_or("")
                    )
                })
                .collect();
            return Err(CallsError::not_found(format!(
                "none of the tracks can be recorded ({})",
                reasons.join("; ")
            )));
        }
        std::fs::create_dir_all(&self.config.dir).map_err(|e| {
            CallsError::temporarily_unavailable(format!(
                "the recordings directory cannot be made: {e}"
            ))
        })?;
        let id = crate::ids::hex(&crate::ids::random_bytes::<16>());
        let shared = Arc::new(Shared::new());
        for (tap, fanout) in &taps {
            fanout.add_tap(tap.clone());
        }
        let job = thread::Job {
            id: id.clone(),
            dir: self.config.dir.clone(),
            container,
            taps: taps
                .iter()
                .map(|(tap, f)| (tap.clone(), Arc::downgrade(f)))
                .collect(),
            recorder: Recorder::new(inputs, publishers.len(), segment, Instant::now()),
            epoch: std::time::SystemTime::now(),
            shared: shared.clone(),
        };
        // A recorder that panics fails its recording and lets go of the
        // tracks; one that cannot start never holds them. (Weak: a track
        // whose publisher is gone must be free to go, which is how the
        // recorder learns it.)
        let detach = move |taps: &[(Arc<Tap>, Weak<TrackFanout>)]| {
            for (tap, fanout) in taps {
                if let Some(fanout) = fanout.upgrade() {
                    fanout.remove_tap(tap);
                }
            }
        };
        let weak = |taps: &[(Arc<Tap>, Arc<TrackFanout>)]| -> Vec<(Arc<Tap>, Weak<TrackFanout>)> {
            taps.iter()
                .map(|(t, f)| (t.clone(), Arc::downgrade(f)))
                .collect()
        };
        let held = weak(&taps);
        let failed = shared.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("recorder-{}", &id[..8]))
            .spawn(move || {
                let run =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| thread::run(job)));
                if let Err(payload) = run {
                    crate::supervise::note_contained("a recorder", payload.as_ref());
                    failed.update(|s| s.state = State::Failed("internal error".into()));
                    detach(&held);
                }
            });
        let handle = match spawned {
            Ok(h) => h,
            Err(e) => {
                detach(&weak(&taps));
                return Err(CallsError::temporarily_unavailable(format!(
                    "cannot start a recorder: {e}"
                )));
            }
        };
        drop(taps);
        let recorded: Vec<TrackRef> = request.tracks.clone();
        reg.by_id.insert(
            id.clone(),
            Entry {
                app: app.clone(),
                created: Instant::now(),
                tracks: recorded,
                container,
                shared,
                thread: Some(handle),
            },
        );
        let mut object = object(&id, reg.by_id.get(&id).expect("just inserted"));
        object.tracks = items;
        Ok(object)
    }

    /// Stops a recording and waits for its files to be finished.
    pub fn close(&self, app: &AppId, id: &str) -> Result<RecordingObject, CallsError> {
        let handle = {
            let mut reg = self.lock();
            let entry = reg
                .by_id
                .get_mut(id)
                .filter(|e| e.app == *app)
                .ok_or_else(|| CallsError::not_found("no such recording"))?;
            entry.shared.stop.store(true, Ordering::Relaxed);
            entry.thread.take()
        };
        if let Some(h) = handle {
            let _ = h.join();
        }
        self.forget_ended();
        self.get(app, id)
    }

    /// A recording of `app`.
    pub fn get(&self, app: &AppId, id: &str) -> Result<RecordingObject, CallsError> {
        let reg = self.lock();
        reg.by_id
            .get(id)
            .filter(|e| e.app == *app)
            .map(|e| object(id, e))
            .ok_or_else(|| CallsError::not_found("no such recording"))
    }

    /// Every recording of `app` remembered, oldest first.
    pub fn list(&self, app: &AppId) -> Vec<RecordingObject> {
        let reg = self.lock();
        let mut list: Vec<(&String, &Entry)> =
            reg.by_id.iter().filter(|(_, e)| e.app == *app).collect();
        list.sort_by_key(|(_, e)| e.created);
        list.into_iter().map(|(id, e)| object(id, e)).collect()
    }

    /// Stops every recording (the server is stopping) and waits for their
    /// files to be finished.
    pub fn close_all(&self) {
        let handles: Vec<_> = {
            let mut reg = self.lock();
            reg.by_id
                .values_mut()
                .filter_map(|e| {
                    e.shared.stop.store(true, Ordering::Relaxed);
                    e.thread.take()
                })
                .collect()
        };
        for h in handles {
            let _ = h.join();
        }
    }

    /// Joins the threads of recordings that ended by themselves and
    /// forgets the oldest ended ones past [`MAX_ENDED`].
    pub fn forget_ended(&self) {
        let mut reg = self.lock();
        let mut newly = Vec::new();
        for (id, e) in reg.by_id.iter_mut() {
            if e.thread.as_ref().is_some_and(|h| h.is_finished())
                && let Some(h) = e.thread.take()
            {
                let _ = h.join();
            }
            if e.thread.is_none() && e.shared.state() != State::Recording {
                newly.push(id.clone());
            }
        }
        for id in newly {
            if !reg.ended.contains(&id) {
                reg.ended.push_back(id);
            }
        }
        while reg.ended.len() > MAX_ENDED {
            if let Some(old) = reg.ended.pop_front()
                && let Some(e) = reg.by_id.remove(&old)
            {
                reg.forgotten_bytes += e.shared.written.load(Ordering::Relaxed);
            }
        }
    }

    /// Totals for the metrics.
    pub fn totals(&self) -> Totals {
        let reg = self.lock();
        let mut t = Totals {
            bytes_written: reg.forgotten_bytes,
            ..Totals::default()
        };
        for e in reg.by_id.values() {
            let s = e.shared.counts();
            t.bytes_written += e.shared.written.load(Ordering::Relaxed);
            match s.state {
                State::Recording => t.active += 1,
                State::Failed(_) => t.failed += 1,
                State::Closed => {}
            }
            t.dropped.losses.lost += s.dropped.losses.lost;
            t.dropped.losses.late += s.dropped.losses.late;
            t.dropped.losses.malformed += s.dropped.losses.malformed;
            t.dropped.before_keyframe += s.dropped.before_keyframe;
            t.dropped.unknown_format += s.dropped.unknown_format;
            t.queue_full += s.tap_dropped;
            t.queue_depth += s.queue_depth;
        }
        t
    }
}

/// Each layer's rank (by layer index): the rids a–z, the first the best
/// (the Calls API's order for simulcast).
fn layer_ranks(rids: &[String]) -> Vec<u8> {
    let mut sorted: Vec<&String> = rids.iter().collect();
    sorted.sort();
    rids.iter()
        .map(|r| sorted.iter().position(|s| *s == r).unwrap_or(0) as u8)
        .collect()
}

fn object(id: &str, e: &Entry) -> RecordingObject {
    let s = e.shared.status();
    let (state, reason) = match s.state {
        State::Recording => ("recording", None),
        State::Closed => ("closed", None),
        State::Failed(r) => ("failed", Some(r)),
    };
    RecordingObject {
        recording_id: id.to_string(),
        state,
        reason,
        container: e.container.as_str(),
        tracks: e
            .tracks
            .iter()
            .map(|t| TrackObject {
                session_id: Some(t.session_id.clone()),
                track_name: Some(t.track_name.clone()),
                ..TrackObject::default()
            })
            .collect(),
        files: s.files,
        dropped: DroppedObject {
            lost: s.dropped.losses.lost,
            before_keyframe: s.dropped.before_keyframe,
            malformed: s.dropped.losses.malformed + s.dropped.unknown_format,
            late: s.dropped.losses.late,
            queue_full: s.tap_dropped,
        },
    }
}
