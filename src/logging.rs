//! Log output: `tracing` for switchboard itself, and a bridge for the
//! libraries that log through the `log` crate (DTLS, SRTP). WARN must mean
//! that an operator should act, so library warnings that every real client
//! triggers in a normal handshake are demoted to DEBUG here.
//!
//! Where it sits: set up once by `main`; nothing on the packet path.

use log::{Level, Log, Metadata, Record};

use crate::config::LogFormat;

/// Library warnings that are normal with real clients: (target prefix, a
/// part of the message).
const EXPECTED: &[(&str, &str)] = &[
    // Chrome and Firefox offer TLS extensions rtc-dtls does not implement
    // (e.g. renegotiation_info, supported_versions); they are skipped.
    ("rtc_dtls::handshake::", "Unsupported Extension Type"),
    // As DTLS client (a peer answered a=setup:passive) there is no server
    // name to check: peers are identified by their certificate fingerprint.
    ("rtc_dtls::config", "conn.remote_addr is empty"),
    // A client that stops answering mid-handshake (a closed tab): the
    // handshake threads report the timeout themselves, rate-limited.
    ("rtc_dtls::handshaker", "> maximum_retransmit_number"),
    (
        "rtc_dtls::handshaker",
        "last-flight retransmit budget spent",
    ),
];

/// The level a library's record is logged at.
pub fn library_level(target: &str, message: &str, level: Level) -> Level {
    let expected = EXPECTED
        .iter()
        .any(|(t, m)| target.starts_with(t) && message.contains(m));
    if expected && matches!(level, Level::Warn | Level::Info) {
        Level::Debug
    } else {
        level
    }
}

/// One line that network input can repeat, written at most once per
/// interval with the count of those left out since: a client cannot grow
/// the log faster than one line per interval per cause.
#[derive(Debug, Default, Clone)]
pub struct Repeats {
    last: Option<std::time::Instant>,
    left_out: u64,
}

impl Repeats {
    /// Whether to write the line at `now`; `Some(n)`: write it, noting `n`
    /// occurrences left out since the last line.
    pub fn allow(&mut self, now: std::time::Instant, interval: std::time::Duration) -> Option<u64> {
        match self.last {
            Some(at) if now.saturating_duration_since(at) < interval => {
                self.left_out += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.left_out))
            }
        }
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

/// Installs the subscriber (filter from `RUST_LOG`, else `default_filter`;
/// lines as text or JSON) and the library bridge.
pub fn init(default_filter: &str, format: LogFormat) {
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| default_filter.into());
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    // Not `try_init`: it would install tracing-log's own bridge, which
    // passes every library level through unchanged.
    let _ = match format {
        LogFormat::Text => tracing::subscriber::set_global_default(
            builder.with_ansi(std::io::stderr().is_terminal()).finish(),
        ),
        LogFormat::Json => {
            tracing::subscriber::set_global_default(builder.json().flatten_event(true).finish())
        }
    };
    if log::set_boxed_logger(Box::new(LibraryLog)).is_ok() {
        log::set_max_level(log::LevelFilter::Trace);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeating_line_is_written_once_per_interval_with_a_count() {
        let t0 = std::time::Instant::now();
        let second = std::time::Duration::from_secs(1);
        let mut r = Repeats::default();
        let written: Vec<(u64, u64)> = (0..3000u64)
            .filter_map(|ms| {
                let now = t0 + std::time::Duration::from_millis(ms);
                r.allow(now, second).map(|n| (ms, n))
            })
            .collect();
        assert_eq!(written, vec![(0, 0), (1000, 999), (2000, 999)]);
    }

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
        // Retransmissions running out: the handshake threads log that
        // themselves, rate-limited.
        let flight = "rtc_dtls::handshaker";
        assert_eq!(
            library_level(
                flight,
                "[handshake:server] Flight 4 current_retransmit_count 8 > maximum_retransmit_number 7, HandshakeState::Errored",
                Level::Warn
            ),
            Level::Debug
        );
        // Anything else keeps its level: a failed handshake is worth a WARN.
        assert_eq!(
            library_level(
                flight,
                "[handshake:server] Flight 4 result alert",
                Level::Warn
            ),
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
