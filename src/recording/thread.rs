//! The recorder thread of one recording: drains its taps every few
//! milliseconds, runs the [`Recorder`], carries out its file operations
//! with the muxer, and keeps the recording's [`Status`] for the API. All
//! disk I/O of a recording happens here, never on a media worker: a slow
//! or full disk stalls this thread only, whose taps then drop (counted).
//!
//! Where it sits: between the taps on the tracks' fan-outs and the files
//! under `--recordings-dir`; started and stopped by [`super::Recordings`].

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime};

use super::mux::{Container, MuxError, SegmentFile};
use super::recorder::{Action, Recorder};
use super::{FileInfo, Shared, State};
use crate::fanout::TrackFanout;
use crate::fanout::tap::{Tap, Tapped};

/// How often the taps are drained.
pub const TICK: Duration = Duration::from_millis(10);

/// What the thread records.
pub struct Job {
    /// The recording's id (in file names).
    pub id: String,
    /// Where files go.
    pub dir: PathBuf,
    /// The container.
    pub container: Container,
    /// Per track: its tap and its fan-out (gone when the track is).
    pub taps: Vec<(Arc<Tap>, Weak<TrackFanout>)>,
    /// The media logic.
    pub recorder: Recorder,
    /// The wall-clock time of the recorder's start (its timeline's zero).
    pub epoch: SystemTime,
    /// The API's status of the recording.
    pub shared: Arc<Shared>,
}

struct Open {
    file: SegmentFile,
    path: PathBuf,
    last_pts: i64,
}

/// Runs a recording to its end (closed, every publisher gone, or failed).
pub fn run(mut job: Job) {
    let mut open: Option<Open> = None;
    let mut actions = Vec::new();
    let mut index = 0u32;
    let mut last_flush = Instant::now();
    let outcome = loop {
        let now = Instant::now();
        for (i, (tap, fanout)) in job.taps.iter().enumerate() {
            tap.drain(|t| match t {
                Tapped::Rtp { at, layer, packet } => {
                    job.recorder.handle_rtp(i, at, layer, &packet);
                    tap.recycle(packet);
                }
                Tapped::SenderReport { at, info } => job.recorder.handle_sender_report(i, at, info),
            });
            // The publisher closed the track or its session is gone.
            if fanout.upgrade().is_none_or(|f| f.is_closed()) {
                job.recorder.end_track(i);
            }
        }
        let stopping = job.shared.stop.load(Ordering::Relaxed) || job.recorder.all_ended();
        if stopping {
            job.recorder.finish(now, &mut actions);
        } else {
            job.recorder.poll(now, &mut actions);
        }
        let result = carry_out(&mut job, &mut actions, &mut open, &mut index);
        if result.is_ok() && now.saturating_duration_since(last_flush) >= Duration::from_secs(1) {
            last_flush = now;
            if let Some(o) = open.as_mut() {
                // Writes to a file whose directory was removed succeed (the
                // inode lives on) and are lost: say so instead.
                if !o.path.exists() {
                    break Err(MuxError("the file or its directory was removed".into()));
                }
                if let Err(e) = o.file.flush() {
                    break Err(e);
                }
            }
        }
        job.shared.update(|s| {
            s.dropped = job.recorder.dropped();
            s.tap_dropped = job.taps.iter().map(|(t, _)| t.dropped()).sum();
            s.queue_depth = job.taps.iter().map(|(t, _)| t.depth()).sum();
            if let (Some(o), Some(f)) = (open.as_ref(), s.files.last_mut()) {
                f.bytes = file_len(&o.path);
                f.duration_ms = o.last_pts.max(0) as u64;
            }
        });
        if let Err(e) = result {
            break Err(e);
        }
        if stopping {
            break Ok(());
        }
        std::thread::sleep(TICK);
    };
    let closed = close(&job, open.take());
    for (tap, fanout) in &job.taps {
        if let Some(f) = fanout.upgrade() {
            f.remove_tap(tap);
        }
    }
    let outcome = outcome.and(closed);
    job.shared.update(|s| {
        s.state = match outcome {
            Ok(()) => State::Closed,
            Err(e) => State::Failed(e.0),
        };
    });
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// Finishes the open file (trailer and Cues) and records its final size.
fn close(job: &Job, open: Option<Open>) -> Result<(), MuxError> {
    let Some(o) = open else {
        return Ok(());
    };
    let result = o.file.finish();
    job.shared.update(|s| {
        if let Some(f) = s.files.last_mut() {
            f.bytes = file_len(&o.path);
            f.duration_ms = o.last_pts.max(0) as u64;
        }
    });
    result
}

fn carry_out(
    job: &mut Job,
    actions: &mut Vec<Action>,
    open: &mut Option<Open>,
    index: &mut u32,
) -> Result<(), MuxError> {
    for action in actions.drain(..) {
        match action {
            Action::RequestKeyframe(i) => {
                if let Some((tap, _)) = job.taps.get(i) {
                    tap.request_keyframe();
                }
            }
            Action::Open { specs, start } => {
                close(job, open.take())?;
                *index += 1;
                let started = job.epoch + Duration::from_secs_f64(start.max(0.0));
                let name = file_name(started, &job.id, *index, job.container);
                let path = job.dir.join(&name);
                let file = SegmentFile::create(&path, job.container, &specs)?;
                let started_at = started
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64);
                job.shared.update(|s| {
                    s.files.push(FileInfo {
                        path: name,
                        bytes: 0,
                        duration_ms: 0,
                        started_at,
                    })
                });
                *open = Some(Open {
                    file,
                    path,
                    last_pts: 0,
                });
            }
            Action::Write {
                track,
                pts_ms,
                keyframe,
                data,
            } => {
                if let Some(o) = open.as_mut() {
                    o.file.write(track, pts_ms, keyframe, &data)?;
                    o.last_pts = o.last_pts.max(pts_ms);
                    job.shared.add_written(data.len() as u64);
                }
            }
        }
    }
    Ok(())
}

/// `{UTC time}-{recording}-{index}.{ext}`: a listing sorts by time.
pub fn file_name(now: SystemTime, id: &str, index: u32, container: Container) -> String {
    let secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z-{id}-{index:04}.{}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        container.as_str()
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01
/// (H. Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_carry_the_utc_time_and_sort_by_it() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_700_000);
        assert_eq!(
            file_name(t, "abc", 3, Container::Webm),
            "20261208T032000Z-abc-0003.webm"
        );
        let earlier = file_name(
            SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400),
            "z",
            1,
            Container::Mkv,
        );
        assert_eq!(earlier, "20000229T000000Z-z-0001.mkv");
        assert!(earlier < file_name(t, "a", 1, Container::Mkv));
    }
}
