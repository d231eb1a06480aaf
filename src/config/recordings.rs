//! Where recordings go and how many may run (`--recordings-dir`,
//! `--max-recordings`, `--max-recordings-per-app`; `crate::recording`).

use super::flags::{FileConfig, ServeArgs};
use crate::recording::RecordingConfig;

/// The flags over the file over the defaults.
pub(super) fn resolve(args: &ServeArgs, file: &FileConfig) -> RecordingConfig {
    let d = RecordingConfig::default();
    RecordingConfig {
        dir: args
            .recordings_dir
            .clone()
            .or(file.recordings_dir.clone())
            .unwrap_or(d.dir),
        max: args.max_recordings.or(file.max_recordings).unwrap_or(d.max),
        max_per_app: args
            .max_recordings_per_app
            .or(file.max_recordings_per_app)
            .unwrap_or(d.max_per_app),
    }
}
