//! Log output: `tracing` for switchboard itself, and a bridge for the
//! libraries that log through the `log` crate (DTLS, SRTP). WARN must mean
//! that an operator should act, so library warnings that every real client
//! triggers in a normal handshake are demoted to DEBUG here.
//!
//! Where it sits: set up once by `main`; nothing on the packet path.

use log::{Level, Log, Metadata, Record};

/// Library warnings that are normal with real clients: (target prefix,
/// message prefix).
const EXPECTED: &[(&str, &str)] = &[
    // Chrome and Firefox offer TLS extensions rtc-dtls does not implement
    // (e.g. renegotiation_info, supported_versions); they are skipped.
    ("rtc_dtls::handshake::", "Unsupported Extension Type"),
    // As DTLS client (a peer answered a=setup:passive) there is no server
    // name to check: peers are identified by their certificate fingerprint.
    ("rtc_dtls::config", "conn.remote_addr is empty"),
];

/// The level a library's record is logged at.
pub fn library_level(target: &str, message: &str, level: Level) -> Level {
    let expected = EXPECTED
        .iter()
        .any(|(t, m)| target.starts_with(t) && message.starts_with(m));
    if expected && matches!(level, Level::Warn | Level::Info) {
        Level::Debug
    } else {
        level
    }
}

/// Passes `log` records to `tracing` at the level [`library_level`] gives.
struct LibraryLog;

impl Log for LibraryLog {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        let level = match metadata.level() {
            Level::Error => tracing::Level::ERROR,
            Level::Warn => tracing::Level::WARN,
            Level::Info => tracing::Level::INFO,
            Level::Debug => tracing::Level::DEBUG,
            Level::Trace => tracing::Level::TRACE,
        };
        tracing::level_filters::LevelFilter::current() >= level
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let message = record.args().to_string();
        let level = library_level(record.target(), &message, record.level());
        let _ = tracing_log::format_trace(
            &Record::builder()
                .level(level)
                .target(record.target())
                .module_path(record.module_path())
                .file(record.file())
                .line(record.line())
                .args(format_args!("{message}"))
                .build(),
        );
    }

    fn flush(&self) {}
}

/// Installs the subscriber (filter from `RUST_LOG`, else `default_filter`)
/// and the library bridge.
pub fn init(default_filter: &str) {
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| default_filter.into());
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .finish();
    // Not `try_init`: it would install tracing-log's own bridge, which
    // passes every library level through unchanged.
    let _ = tracing::subscriber::set_global_default(subscriber);
    if log::set_boxed_logger(Box::new(LibraryLog)).is_ok() {
        log::set_max_level(log::LevelFilter::Trace);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_handshake_warnings_are_demoted_and_others_kept() {
        let hello = "rtc_dtls::handshake::handshake_message_client_hello";
        assert_eq!(
            library_level(hello, "Unsupported Extension Type 0 23", Level::Warn),
            Level::Debug
        );
        assert_eq!(
            library_level(
                "rtc_dtls::handshake::handshake_message_server_hello",
                "Unsupported Extension Type 255 1",
                Level::Warn
            ),
            Level::Debug
        );
        // Anything else keeps its level: a failed handshake is worth a WARN.
        let flight = "rtc_dtls::handshaker";
        assert_eq!(
            library_level(flight, "[handshake:srv] Flight 4 retransmit", Level::Warn),
            Level::Warn
        );
        assert_eq!(
            library_level(hello, "Unsupported Extension Type", Level::Error),
            Level::Error
        );
        assert_eq!(
            library_level("other_crate", "Unsupported Extension Type", Level::Warn),
            Level::Warn
        );
    }
}
