//! Where recordings go and how many may run (`--recordings-dir`,
//! `--max-recordings`, `--max-recordings-per-app`; `crate::recording`).

use super::flags::{FileConfig, ServeArgs};
use std::path::PathBuf;

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

/// Limits and place of recordings (`--recordings-dir`, `--max-recordings`,
/// `--max-recordings-per-app`; `crate::recording`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingConfig {
    /// Where files go.
    pub dir: PathBuf,
    /// Recordings at once on this server.
    pub max: usize,
    /// Recordings at once per app.
    pub max_per_app: usize,
}

impl Default for RecordingConfig {
    fn default() -> Self {
        RecordingConfig {
            dir: PathBuf::from("recordings"),
            max: 64,
            max_per_app: 16,
        }
    }
}
