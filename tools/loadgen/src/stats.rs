//! What a run measures, per thread then merged, and the JSON report.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Counters and histograms of one loop thread.
pub struct Stats {
    /// Latency (µs) of packets received in the measured window.
    pub latency_us: Histogram<u64>,
    /// Setup time (ms): first API call to first media, per subscriber.
    pub setup_ms: Histogram<u64>,
    /// The same in µs: a join's latency.
    pub join_us: Histogram<u64>,
    /// First API call to SRTP ready, µs, per subscriber.
    pub connect_us: Histogram<u64>,
    /// When the last subscriber connected.
    pub last_connected: Option<Instant>,
    /// Subscribers that connected here.
    pub handshakes: u64,
    /// CPU time their handshakes took here (DTLS and SRTP keys).
    pub handshake_cpu: Duration,
    /// Packets received in the measured window.
    pub received: u64,
    /// Packets decrypted and checked.
    pub sampled: u64,
    /// Checked packets whose payload differed.
    pub mismatches: u64,
    /// Packets in the window that filled a gap (a resend), with `--loss`.
    pub recovered: u64,
    /// Packets received twice (dropped before counting), with `--loss`.
    pub duplicates: u64,
    /// Packets publishers sent again on the server's NACKs.
    pub publisher_resent: u64,
    /// Packets received in the window, by stream index.
    pub received_per_stream: Vec<u64>,
}

impl Stats {
    /// One more packet of stream `index` received in the window.
    pub fn count_stream(&mut self, index: u32) {
        let i = index as usize;
        if i >= self.received_per_stream.len() {
            self.received_per_stream.resize(i + 1, 0);
        }
        self.received_per_stream[i] += 1;
    }
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            latency_us: Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds"),
            setup_ms: Histogram::new_with_bounds(1, 600_000, 3).expect("histogram bounds"),
            join_us: Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram bounds"),
            connect_us: Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram bounds"),
            last_connected: None,
            handshakes: 0,
            handshake_cpu: Duration::ZERO,
            received: 0,
            sampled: 0,
            mismatches: 0,
            recovered: 0,
            duplicates: 0,
            publisher_resent: 0,
            received_per_stream: Vec::new(),
        }
    }
}

impl Stats {
    /// Adds another thread's stats.
    pub fn merge(&mut self, other: &Stats) {
        let _ = self.latency_us.add(&other.latency_us);
        let _ = self.setup_ms.add(&other.setup_ms);
        let _ = self.join_us.add(&other.join_us);
        let _ = self.connect_us.add(&other.connect_us);
        self.last_connected = self.last_connected.max(other.last_connected);
        self.handshakes += other.handshakes;
        self.handshake_cpu += other.handshake_cpu;
        self.received += other.received;
        self.sampled += other.sampled;
        self.mismatches += other.mismatches;
        self.recovered += other.recovered;
        self.duplicates += other.duplicates;
        self.publisher_resent += other.publisher_resent;
        let streams = self
            .received_per_stream
            .len()
            .max(other.received_per_stream.len());
        self.received_per_stream.resize(streams, 0);
        for (mine, theirs) in self
            .received_per_stream
            .iter_mut()
            .zip(&other.received_per_stream)
        {
            *mine += theirs;
        }
    }
}

/// What subscribers received of a simulcast publisher's layers.
#[derive(Debug, Serialize)]
pub struct SimulcastReport {
    /// The rid subscribers pulled with (`simulcast.preferredRid`).
    pub preferred_rid: String,
    /// Packets received per layer (rid) and of audio, in the window.
    pub forwarded_per_layer: std::collections::BTreeMap<String, u64>,
}

/// Latency percentiles in µs.
#[derive(Debug, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest.
    pub max: u64,
}

/// Setup time percentiles in ms.
#[derive(Debug, Serialize)]
pub struct Setup {
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
}

/// Percentiles of a flash crowd's times.
#[derive(Debug, Serialize)]
pub struct Spread {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

impl Spread {
    /// Percentiles of `h`, divided by `unit` (1 keeps its unit).
    pub fn of(h: &Histogram<u64>, unit: f64) -> Self {
        Spread {
            p50: h.value_at_quantile(0.5) as f64 / unit,
            p99: h.value_at_quantile(0.99) as f64 / unit,
            max: h.max() as f64 / unit,
        }
    }
}

/// A flash crowd (`--join-rate`): subscribers joining at a set rate before
/// the measured window.
#[derive(Debug, Serialize)]
pub struct Storm {
    /// Joins per second asked for.
    pub join_rate: f64,
    /// Joins per second started (the last one's start against the first's).
    pub achieved_rate: f64,
    /// Joins per second connected (the last connection against the first
    /// join's start): below the asked rate when a queue built up.
    pub completed_rate: f64,
    /// Joins tried.
    pub joins: usize,
    /// Joins whose subscriber received media.
    pub joins_with_media: u64,
    /// Joins whose API calls failed.
    pub api_failures: usize,
    /// Joins whose API calls succeeded but that did not connect (ICE or DTLS).
    pub connect_failures: usize,
    /// What the first failed join's API call said.
    pub first_error: Option<String>,
    /// Join latency: a join's first API call to its first media packet, ms
    /// (with the wait for the publisher's next packet: up to a frame).
    pub join_latency_ms: Spread,
    /// A join's first API call to its SRTP being ready (ICE and DTLS done), ms.
    pub connect_latency_ms: Spread,
    /// Round trips of the HTTP calls made while joining, µs.
    pub api_latency_us: Spread,
    /// HTTP calls made while joining.
    pub api_calls: usize,
    /// The most a join started after its scheduled time, ms.
    pub max_start_lag_ms: f64,
    /// Threads making the joins' API calls.
    pub join_threads: usize,
    /// From the first join until every joined subscriber connected (or gave up), s.
    pub storm_s: f64,
    /// The server's CPU over `storm_s` (with --server-pid).
    pub server_cpu_s: Option<f64>,
    /// The server's CPU per join, µs (the media it forwarded meanwhile
    /// included).
    pub server_cpu_us_per_join: Option<f64>,
    /// How busy the server's cores were over the storm (1: all of them).
    pub server_busy: Option<f64>,
    /// The load generator's CPU per join over the storm, µs (all of it:
    /// the media it received meanwhile included).
    pub loadgen_cpu_us_per_join: f64,
    /// The load generator's own CPU per join in its DTLS handshake and SRTP keys, µs.
    pub loadgen_dtls_us_per_join: f64,
    /// Its CPU per join in the API calls and the SDP (the joiner threads), µs.
    pub loadgen_api_us_per_join: f64,
    /// Cores the load generator may use.
    pub loadgen_cores: usize,
    /// How busy its cores were over the storm (1: all of them).
    pub loadgen_busy: Option<f64>,
    /// Joins per second the load generator's own work per join (its DTLS
    /// and API calls) allows on its cores, its DTLS on no more cores than
    /// it has loop threads.
    pub loadgen_join_capacity: Option<f64>,
    /// What held the rate back: `none` (joins started and connected at
    /// the asked rate, and all got media); `loadgen` (its own capacity is
    /// below the rate, or only its cores were saturated, 85 % busy or
    /// more); `both` (both sides' cores were); else `server`.
    pub limited_by: String,
}

impl Storm {
    /// A human summary.
    pub fn summary(&self) -> String {
        let busy = |b: Option<f64>| b.map_or("n/a".to_owned(), |b| format!("{:.0} %", b * 100.0));
        let server = match (self.server_cpu_s, self.server_cpu_us_per_join) {
            (Some(s), Some(per)) => format!(
                "server CPU {s:.2} s ({} busy), {per:.0} µs per join",
                busy(self.server_busy)
            ),
            _ => "server CPU n/a".to_owned(),
        };
        let capacity = self
            .loadgen_join_capacity
            .map_or("n/a".to_owned(), |c| format!("{c:.0}"));
        let error = self
            .first_error
            .as_ref()
            .map_or(String::new(), |e| format!("\nfirst API failure: {e}"));
        format!(
            "joins {} at {:.0}/s asked: {:.0}/s started (max lag {:.1} ms, {} threads), \
             {:.0}/s connected  with media {}  API failures {}  connect failures {}\n\
             join latency ms  p50 {:.1}  p99 {:.1}  max {:.1}  (first API call to first media)\n\
             connect latency ms  p50 {:.1}  p99 {:.1}  max {:.1}  (first API call to SRTP ready)\n\
             API latency µs  p50 {:.0}  p99 {:.0}  max {:.0}  over {} calls\n\
             storm {:.2} s  {server}\n\
             loadgen CPU {:.0} µs per join ({} busy); its own work per join: DTLS {:.0} µs, \
             API calls and SDP {:.0} µs: up to {capacity} joins/s on {} core(s)\n\
             limited by {}{error}",
            self.joins,
            self.join_rate,
            self.achieved_rate,
            self.max_start_lag_ms,
            self.join_threads,
            self.completed_rate,
            self.joins_with_media,
            self.api_failures,
            self.connect_failures,
            self.join_latency_ms.p50,
            self.join_latency_ms.p99,
            self.join_latency_ms.max,
            self.connect_latency_ms.p50,
            self.connect_latency_ms.p99,
            self.connect_latency_ms.max,
            self.api_latency_us.p50,
            self.api_latency_us.p99,
            self.api_latency_us.max,
            self.api_calls,
            self.storm_s,
            self.loadgen_cpu_us_per_join,
            busy(self.loadgen_busy),
            self.loadgen_dtls_us_per_join,
            self.loadgen_api_us_per_join,
            self.loadgen_cores,
            self.limited_by,
        )
    }
}

/// The JSON report (field names are relied on by scripts).
#[derive(Debug, Serialize)]
pub struct Report {
    /// `switchboard` or `janus`.
    pub target: String,
    /// Publishers.
    pub publishers: usize,
    /// Subscribers per publisher.
    pub subscribers_per_publisher: usize,
    /// Measured window, seconds.
    pub duration_s: f64,
    /// Packets publishers sent in the window.
    pub sent_packets: u64,
    /// Packets subscribers should have received (sent × subscribers).
    pub expected_packets: u64,
    /// Packets subscribers received.
    pub received_packets: u64,
    /// 1 - received / expected.
    pub loss_ratio: f64,
    /// Received packets per second.
    pub forwarded_pps: f64,
    /// Send-to-receive latency.
    pub latency_us: Latency,
    /// API call to first media.
    pub setup_ms: Setup,
    /// Server CPU over the window (with --server-pid).
    pub server_cpu_s: Option<f64>,
    /// Server CPU per received packet, µs.
    pub server_cpu_us_per_packet: Option<f64>,
    /// With --pull-url and --pull-server-pid: the subscribers' node's CPU
    /// over the window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull_server_cpu_s: Option<f64>,
    /// The subscribers' node's CPU per received packet, µs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull_server_cpu_us_per_packet: Option<f64>,
    /// The load generator's own CPU over the window.
    pub loadgen_cpu_s: f64,
    /// Checked packets whose payload differed.
    pub payload_mismatches: u64,
    /// Packets decrypted and checked.
    pub payload_checked: u64,
    /// CPU model and cores.
    pub machine: serde_json::Value,
    /// Clients read with UDP GRO.
    pub gro: bool,
    /// Loop threads polled without sleeping.
    pub busy_poll: bool,
    /// The flash crowd, with --join-rate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storm: Option<Storm>,
    /// Repairs, with --loss.
    #[serde(skip_serializing_if = "Option::is_none", flatten)]
    pub repair: Option<Repair>,
    /// With `--simulcast`: the layer subscribers asked for, and the packets
    /// they received of each layer (and of audio) in the window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub simulcast: Option<SimulcastReport>,
}

/// What loss cost and what repairs recovered (`--loss`).
#[derive(Debug, Serialize)]
pub struct Repair {
    /// Percent of datagrams the clients dropped each way.
    pub loss_percent: u32,
    /// Window packets that reached subscribers by a resend.
    pub recovered_packets: u64,
    /// Window packets never received, over those expected (after repairs).
    pub unrecovered_loss_ratio: f64,
    /// Resends received (repairs and duplicates) over packets received.
    pub retransmission_overhead: f64,
    /// Packets publishers sent again on the server's NACKs.
    pub publisher_resent: u64,
}

impl Report {
    /// Latency percentiles from a histogram.
    pub fn latency(h: &Histogram<u64>) -> Latency {
        Latency {
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }

    /// A human summary.
    pub fn summary(&self) -> String {
        let storm = self
            .storm
            .as_ref()
            .map_or(String::new(), |s| format!("\n{}", s.summary()));
        let repair = self.repair.as_ref().map_or(String::new(), |r| {
            format!(
                "\nloss {} % each way at the clients: recovered {}  unrecovered {:.4} %  retransmission overhead {:.2} %  publisher resends {}",
                r.loss_percent,
                r.recovered_packets,
                r.unrecovered_loss_ratio * 100.0,
                r.retransmission_overhead * 100.0,
                r.publisher_resent
            )
        });
        let mut cpu = self
            .server_cpu_us_per_packet
            .map_or("n/a".to_owned(), |c| format!("{c:.2} µs"));
        if let (Some(s), Some(p)) = (self.pull_server_cpu_s, self.pull_server_cpu_us_per_packet) {
            cpu.push_str(&format!(
                "  (subscribers' node: CPU {s:.2} s, per packet {p:.2} µs)"
            ));
        }
        let simulcast = self.simulcast.as_ref().map_or(String::new(), |s| {
            let layers: Vec<String> = s
                .forwarded_per_layer
                .iter()
                .map(|(layer, n)| format!("{layer} {n}"))
                .collect();
            format!(
                "\nsimulcast: pulls prefer {}; received per layer: {}",
                s.preferred_rid,
                layers.join("  ")
            )
        });
        format!(
            "target {}  publishers {}  subscribers/publisher {}  window {:.1} s\n\
             sent {}  expected {}  received {}  loss {:.4} %  forwarded {:.0} pps\n\
             latency µs  p50 {}  p90 {}  p99 {}  p99.9 {}  max {}\n\
             setup ms  p50 {}  p99 {}\n\
             server CPU {}  per packet {}  loadgen CPU {:.2} s  payload checked {} mismatches {}{storm}{repair}{simulcast}",
            self.target,
            self.publishers,
            self.subscribers_per_publisher,
            self.duration_s,
            self.sent_packets,
            self.expected_packets,
            self.received_packets,
            self.loss_ratio * 100.0,
            self.forwarded_pps,
            self.latency_us.p50,
            self.latency_us.p90,
            self.latency_us.p99,
            self.latency_us.p999,
            self.latency_us.max,
            self.setup_ms.p50,
            self.setup_ms.p99,
            self.server_cpu_s
                .map_or("n/a".to_owned(), |c| format!("{c:.2} s")),
            cpu,
            self.loadgen_cpu_s,
            self.payload_checked,
            self.payload_mismatches,
        )
    }
}
