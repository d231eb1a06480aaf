//! What a run measures, per thread then merged, and the JSON report.

use hdrhistogram::Histogram;
use serde::Serialize;

/// Counters and histograms of one loop thread.
pub struct Stats {
    /// Latency (µs) of packets received in the measured window.
    pub latency_us: Histogram<u64>,
    /// Setup time (ms): first API call to first media, per subscriber.
    pub setup_ms: Histogram<u64>,
    /// Packets received in the measured window.
    pub received: u64,
    /// Packets decrypted and checked.
    pub sampled: u64,
    /// Checked packets whose payload differed.
    pub mismatches: u64,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            latency_us: Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds"),
            setup_ms: Histogram::new_with_bounds(1, 600_000, 3).expect("histogram bounds"),
            received: 0,
            sampled: 0,
            mismatches: 0,
        }
    }
}

impl Stats {
    /// Adds another thread's stats.
    pub fn merge(&mut self, other: &Stats) {
        let _ = self.latency_us.add(&other.latency_us);
        let _ = self.setup_ms.add(&other.setup_ms);
        self.received += other.received;
        self.sampled += other.sampled;
        self.mismatches += other.mismatches;
    }
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
        let cpu = self
            .server_cpu_us_per_packet
            .map_or("n/a".to_owned(), |c| format!("{c:.2} µs"));
        format!(
            "target {}  publishers {}  subscribers/publisher {}  window {:.1} s\n\
             sent {}  expected {}  received {}  loss {:.4} %  forwarded {:.0} pps\n\
             latency µs  p50 {}  p90 {}  p99 {}  p99.9 {}  max {}\n\
             setup ms  p50 {}  p99 {}\n\
             server CPU {}  per packet {}  loadgen CPU {:.2} s  payload checked {} mismatches {}",
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
