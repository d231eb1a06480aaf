//! The recordings' lines of `/metrics` (`crate::recording`): recordings
//! writing and failed, bytes written, frames dropped by reason, packets
//! waiting in taps and lost to full ones.

use std::fmt::Write;

use crate::recording::Totals;

/// Appends the recordings' series.
pub fn write(out: &mut String, t: Totals) {
    let d = t.dropped;
    let _ = writeln!(
        out,
        "# HELP switchboard_recordings Recordings by state (writing now; failed, of those remembered)\n\
         # TYPE switchboard_recordings gauge\n\
         switchboard_recordings{{state=\"recording\"}} {}\n\
         switchboard_recordings{{state=\"failed\"}} {}\n\
         # HELP switchboard_recording_bytes_written_total Bytes of frames written to recordings\n\
         # TYPE switchboard_recording_bytes_written_total counter\n\
         switchboard_recording_bytes_written_total {}\n\
         # HELP switchboard_recording_frames_dropped Frames (packets for queue_full and late) recordings dropped, by reason\n\
         # TYPE switchboard_recording_frames_dropped gauge\n\
         switchboard_recording_frames_dropped{{reason=\"lost\"}} {}\n\
         switchboard_recording_frames_dropped{{reason=\"before_keyframe\"}} {}\n\
         switchboard_recording_frames_dropped{{reason=\"malformed\"}} {}\n\
         switchboard_recording_frames_dropped{{reason=\"late\"}} {}\n\
         switchboard_recording_frames_dropped{{reason=\"queue_full\"}} {}\n\
         # HELP switchboard_recording_queue_depth Packets waiting for recorder threads\n\
         # TYPE switchboard_recording_queue_depth gauge\n\
         switchboard_recording_queue_depth {}",
        t.active,
        t.failed,
        t.bytes_written,
        d.losses.lost,
        d.before_keyframe,
        d.losses.malformed + d.unknown_format,
        d.losses.late,
        t.queue_full,
        t.queue_depth,
    );
}
