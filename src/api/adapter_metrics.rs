//! The WebSocket adapters' part of `GET /metrics`: adapters open and
//! opened by kind, closes by reason, messages and bytes each way, drops by
//! reason, reconnects, concealed audio frames, and the time from a video
//! frame to its JPEG picture.

use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;

use crate::adapters::counters::{AdapterCounters, CloseReason, Drop, Kind};

/// Appends the adapter series to `out`.
pub fn write(out: &mut String, c: &AdapterCounters) {
    let kinds = || Kind::ALL.into_iter().map(|k| (k.label(), k));
    labelled(
        out,
        "switchboard_adapters",
        "gauge",
        "WebSocket adapters open, by kind",
        "kind",
        kinds().map(|(l, k)| (l, c.open(k))),
    );
    labelled(
        out,
        "switchboard_adapters_opened_total",
        "counter",
        "WebSocket adapters opened, by kind",
        "kind",
        kinds().map(|(l, k)| (l, c.opened_total(k))),
    );
    labelled(
        out,
        "switchboard_adapters_closed_total",
        "counter",
        "WebSocket adapters closed, by reason",
        "reason",
        CloseReason::ALL
            .into_iter()
            .map(|r| (r.label(), c.closed_total(r))),
    );
    labelled(
        out,
        "switchboard_adapter_drops_total",
        "counter",
        "Adapter messages dropped or held back, by reason",
        "reason",
        Drop::ALL.into_iter().map(|d| (d.label(), c.drops(d))),
    );
    for (name, help, value) in [
        (
            "switchboard_adapter_messages_out_total",
            "Messages adapters sent to endpoints",
            &c.messages_out,
        ),
        (
            "switchboard_adapter_bytes_out_total",
            "Payload bytes adapters sent to endpoints",
            &c.bytes_out,
        ),
        (
            "switchboard_adapter_messages_in_total",
            "Messages adapters read from endpoints",
            &c.messages_in,
        ),
        (
            "switchboard_adapter_bytes_in_total",
            "Payload bytes adapters read from endpoints",
            &c.bytes_in,
        ),
        (
            "switchboard_adapter_reconnects_total",
            "Egress adapters that reached their endpoint again",
            &c.reconnects,
        ),
        (
            "switchboard_adapter_concealed_frames_total",
            "Audio egress frames lost upstream: concealed, or rebuilt from FEC",
            &c.concealed_frames,
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
            value.load(Relaxed)
        );
    }
    let (buckets, sum_us) = c.picture_histogram();
    let name = "switchboard_adapter_picture_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} Time from a video frame to its JPEG picture (decode, convert, encode)\n# TYPE {name} histogram"
    );
    let mut count = 0;
    for (le, n) in buckets {
        let le = le.map_or("+Inf".to_owned(), |us| (us as f64 / 1e6).to_string());
        let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {n}");
        count = n;
    }
    let _ = writeln!(
        out,
        "{name}_sum {}\n{name}_count {count}",
        sum_us as f64 / 1e6
    );
}

/// One series with a label per value.
fn labelled(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    label: &str,
    values: impl Iterator<Item = (&'static str, u64)>,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (value, n) in values {
        let _ = writeln!(out, "{name}{{{label}=\"{value}\"}} {n}");
    }
}
