//! `GET /metrics`: the Prometheus text of the workers' counters and drops,
//! the histograms, the data-channel, adapter and cluster counters, the gauges the
//! control thread counts, and panics; behind `--metrics-token` when set.
//!
//! Where it sits: an HTTP route beside the Calls API (`super::routes`); it
//! reads counters the workers and threads keep, and nothing per session.

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};

use super::state::ApiState;
use crate::calls::CallsError;

/// Prometheus text: per-worker packet counters and drops by reason.
pub async fn metrics(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    if let Some(token) = &state.metrics_token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if given.is_empty() || !crate::ids::secrets_equal(given.as_bytes(), token.as_bytes()) {
            return CallsError::unauthorized().into_response();
        }
    }
    use crate::engine::counters::{Counters, DropReason};
    use std::fmt::Write as _;
    use std::sync::atomic::AtomicU64;
    let mut out = String::new();
    let workers = state.control.workers();
    /// Name, type, help, and where the value is.
    type Series = (
        &'static str,
        &'static str,
        &'static str,
        fn(&Counters) -> &AtomicU64,
    );
    let series: [Series; 17] = [
        (
            "switchboard_packets_in_total",
            "counter",
            "Datagrams received",
            |c| &c.packets_in,
        ),
        (
            "switchboard_packets_out_total",
            "counter",
            "Datagrams sent",
            |c| &c.packets_out,
        ),
        (
            "switchboard_rtp_forwarded_total",
            "counter",
            "RTP packets forwarded to subscribers",
            |c| &c.rtp_forwarded,
        ),
        (
            "switchboard_nacked_packets_total",
            "counter",
            "Sequence numbers subscribers reported lost (generic NACK)",
            |c| &c.nacked_packets,
        ),
        (
            "switchboard_rtp_retransmitted_total",
            "counter",
            "RTP packets sent again in answer to a subscriber's NACK",
            |c| &c.rtp_retransmitted,
        ),
        (
            "switchboard_upstream_nacked_total",
            "counter",
            "Sequence numbers NACKed to publishers (each try)",
            |c| &c.upstream_nacked,
        ),
        (
            "switchboard_upstream_recovered_total",
            "counter",
            "Publishers' lost packets repaired (in the stream or by RTX)",
            |c| &c.upstream_recovered,
        ),
        (
            "switchboard_upstream_unrecovered_total",
            "counter",
            "Publishers' lost packets given up (a keyframe request instead)",
            |c| &c.upstream_unrecovered,
        ),
        (
            "switchboard_paused_video",
            "gauge",
            "Subscribers whose video is paused because their bandwidth estimate cannot carry it",
            |c| &c.paused_video,
        ),
        (
            "switchboard_layer_switches_total",
            "counter",
            "Simulcast layer switches made for subscribers (each at a keyframe of the new layer)",
            |c| &c.layer_switches,
        ),
        (
            "switchboard_video_pauses_total",
            "counter",
            "Times a subscriber's video was paused for its bandwidth estimate",
            |c| &c.video_pauses,
        ),
        (
            "switchboard_probe_packets_total",
            "counter",
            "Padding packets sent to probe subscribers' bandwidth",
            |c| &c.probe_packets,
        ),
        (
            "switchboard_handoffs_total",
            "counter",
            "Runs of packets handed to another worker",
            |c| &c.handoffs,
        ),
        (
            "switchboard_receive_calls_total",
            "counter",
            "recvmmsg calls that returned datagrams (packets_in over this: mean receive batch)",
            |c| &c.receive_calls,
        ),
        (
            "switchboard_send_calls_total",
            "counter",
            "Send batches (packets_out over this: mean send batch)",
            |c| &c.send_calls,
        ),
        (
            "switchboard_ring_occupancy",
            "gauge",
            "Hand-offs waiting in the worker's inbound rings, last seen",
            |c| &c.ring_occupancy,
        ),
        (
            "switchboard_gso_sends_total",
            "counter",
            "Messages that carried several datagrams (UDP GSO)",
            |c| &c.gso_sends,
        ),
    ];
    for (name, kind, help, counter) in series {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (w, h) in workers.iter().enumerate() {
            let v = Counters::get(counter(&h.counters));
            let _ = writeln!(out, "{name}{{worker=\"{w}\"}} {v}");
        }
    }
    let _ = writeln!(
        out,
        "# HELP switchboard_drops_total Datagrams dropped, by reason\n# TYPE switchboard_drops_total counter"
    );
    for (w, h) in workers.iter().enumerate() {
        for r in DropReason::ALL {
            let _ = writeln!(
                out,
                "switchboard_drops_total{{worker=\"{w}\",reason=\"{}\"}} {}",
                r.as_str(),
                h.counters.drops(r)
            );
        }
    }
    write_histogram(
        &mut out,
        "switchboard_rtt_seconds",
        "Round-trip times measured for sessions (RTCP echoes)",
        workers.iter().map(|h| h.counters.rtt.read()),
    );
    write_histogram(
        &mut out,
        "switchboard_forwarding_latency_seconds",
        "Per received batch: from the read's return to the end of the sends it caused on its worker",
        workers.iter().map(|h| h.counters.forwarding.read()),
    );
    write_histogram(
        &mut out,
        "switchboard_worker_busy_seconds",
        "Per wake-up of a media worker: how long it was busy before it polled again",
        workers.iter().map(|h| h.counters.loop_busy.read()),
    );
    write_histogram(
        &mut out,
        "switchboard_subscriber_estimate_bps",
        "Subscribers' bandwidth estimates (transport-cc), sampled once a second each",
        workers.iter().map(|h| h.counters.estimates.read()),
    );
    write_series(
        &mut out,
        "switchboard_dtls_handshake_seconds",
        "First DTLS handshakes: from a session's first record to its keys",
        std::iter::once((String::new(), state.control.handshake_time().read())),
    );
    write_series(
        &mut out,
        "switchboard_api_request_duration_seconds",
        "API calls by route, from the request head to the response",
        state
            .latency
            .routes()
            .map(|(route, h)| (format!("route=\"{route}\""), h.read())),
    );
    let dc = state.control.data_channel_counters();
    type Dc = crate::datachannel::counters::DataChannelCounters;
    let _ = writeln!(
        out,
        "# HELP switchboard_datachannel_messages_received_total Data-channel messages clients sent\n# TYPE switchboard_datachannel_messages_received_total counter\nswitchboard_datachannel_messages_received_total {}",
        Dc::get(&dc.received)
    );
    let _ = writeln!(
        out,
        "# HELP switchboard_datachannel_messages_delivered_total Data-channel messages sent to clients\n# TYPE switchboard_datachannel_messages_delivered_total counter\nswitchboard_datachannel_messages_delivered_total {}",
        Dc::get(&dc.delivered)
    );
    let _ = writeln!(
        out,
        "# HELP switchboard_datachannel_drops_total Data-channel messages dropped, by reason\n# TYPE switchboard_datachannel_drops_total counter"
    );
    for (reason, n) in dc.drops() {
        let _ = writeln!(
            out,
            "switchboard_datachannel_drops_total{{reason=\"{reason}\"}} {n}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP switchboard_panics_total Panics in the process (contained, or ending it)\n# TYPE switchboard_panics_total counter\nswitchboard_panics_total {}",
        crate::supervise::panics()
    );
    let consent = state.control.consent_counters();
    for (name, help, value) in [
        (
            "switchboard_consent_checks_total",
            "Consent checks (RFC 7675) sent to sessions' addresses",
            consent.checks,
        ),
        (
            "switchboard_consent_answers_total",
            "Consent checks answered",
            consent.answers,
        ),
        (
            "switchboard_consent_lost_total",
            "Sessions whose media stopped: their address answered no consent check in time",
            consent.lost,
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
        );
    }
    let (sessions, tracks, subscriptions) = state.control.population();
    for (name, help, value) in [
        ("switchboard_sessions", "Sessions", sessions),
        ("switchboard_tracks", "Pushed tracks", tracks),
        (
            "switchboard_subscriptions",
            "Pulls of pushed tracks",
            subscriptions,
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
        );
    }
    let (publishers, players) = state.whip.counts();
    let _ = writeln!(
        out,
        "# HELP switchboard_whip_sessions WHIP publishers and WHEP players\n\
         # TYPE switchboard_whip_sessions gauge\n\
         switchboard_whip_sessions{{role=\"publish\"}} {publishers}\n\
         switchboard_whip_sessions{{role=\"play\"}} {players}"
    );
    super::adapter_metrics::write(&mut out, state.adapters.counters());
    super::recording_metrics::write(&mut out, state.recordings.totals());
    if let Some(cluster) = &state.cluster {
        use std::sync::atomic::Ordering::Relaxed;
        let c = &cluster.counters;
        for (name, kind, help, value) in [
            (
                "switchboard_cluster_forwarded_calls_total",
                "counter",
                "API calls forwarded to the node that owns their session",
                c.forwarded.load(Relaxed),
            ),
            (
                "switchboard_cluster_relays_opened_total",
                "counter",
                "Relays set up from other nodes (one per app and node pulled from)",
                c.relays_opened.load(Relaxed),
            ),
            (
                "switchboard_cluster_relays_closed_total",
                "counter",
                "Relays closed (unused, or their node left)",
                c.relays_closed.load(Relaxed),
            ),
            (
                "switchboard_cluster_directory_up",
                "gauge",
                "Whether the cluster directory (Redis) answered the last heartbeat",
                c.directory_up.load(Relaxed),
            ),
            (
                "switchboard_cluster_relays",
                "gauge",
                "Relays open now (one per app and node pulled from)",
                state.control.mirror_count() as u64,
            ),
            (
                "switchboard_cluster_session_rewrites_total",
                "counter",
                "Times this node wrote all its sessions to the directory (start, outage, late heartbeat, lost records, periodic)",
                c.resyncs.load(Relaxed),
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP switchboard_cluster_distrusted_total Directory records not believed (each answered 503), by reason\n# TYPE switchboard_cluster_distrusted_total counter"
        );
        for (why, n) in cluster.distrusted() {
            let _ = writeln!(
                out,
                "switchboard_cluster_distrusted_total{{reason=\"{}\"}} {n}",
                why.as_str()
            );
        }
        let _ = writeln!(
            out,
            "# HELP switchboard_cluster_node_calls_refused_total Calls signed as another node's that were refused, by reason\n# TYPE switchboard_cluster_node_calls_refused_total counter"
        );
        for why in crate::cluster::node_call::REFUSALS {
            let _ = writeln!(
                out,
                "switchboard_cluster_node_calls_refused_total{{reason=\"{}\"}} {}",
                why.as_str(),
                c.node_calls_refused[why.index()].load(Relaxed)
            );
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

/// Writes one Prometheus histogram with a series per worker.
fn write_histogram(
    out: &mut String,
    name: &str,
    help: &str,
    per_worker: impl Iterator<Item = (Vec<(f64, u64)>, u64, f64)>,
) {
    let series = per_worker
        .enumerate()
        .map(|(w, read)| (format!("worker=\"{w}\""), read));
    write_series(out, name, help, series);
}

/// Writes one Prometheus histogram with a series per label set
/// (`name="value"`, without braces; empty for none).
fn write_series(
    out: &mut String,
    name: &str,
    help: &str,
    series: impl Iterator<Item = (String, (Vec<(f64, u64)>, u64, f64))>,
) {
    use std::fmt::Write as _;
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
    for (labels, (buckets, count, sum)) in series {
        let (open, sep, close) = if labels.is_empty() {
            ("", "", "")
        } else {
            ("{", ",", "}")
        };
        for (le, n) in buckets {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}\n{name}_sum{open}{labels}{close} {sum}\n{name}_count{open}{labels}{close} {count}"
        );
    }
}
