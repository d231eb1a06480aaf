//! Probing: short clusters of padding sent above the estimate, whose
//! arrival spread (read back from transport-cc feedback) tells what the
//! path carries, so that an estimate can rise faster than 8 %/s, and rise
//! at all while little media flows (a paused subscriber). As libwebrtc's
//! probe controller and bitrate estimator do it: clusters of
//! [`CLUSTER_DURATION`] with at least [`MIN_PACKETS`] packets; at the start
//! 3× and 6× the start rate, then 2× each result that got through (≥ 70 %
//! of the cluster's rate) up to [`MAX_PROBE_RATE`]; on request, as long as
//! asked (a paused subscriber's probe lasts long enough that a policer's
//! or shaper's burst allowance cannot pass it whole). A cluster counts when ≥ 80 % of its packets arrived; its
//! result is min(send rate, receive rate), or 0.95 × the receive rate when
//! the receiver saw it slower than sent (a bottleneck).
//!
//! Where it sits: inside [`super::BandwidthEstimator`]: the engine asks it
//! what to send when ([`Prober::poll`]) and tells it what came back.
//! Sans-IO: times are µs of our clock.

use std::collections::VecDeque;

/// How long a cluster lasts, µs.
pub const CLUSTER_DURATION: i64 = 15_000;
/// Packets per cluster at least.
pub const MIN_PACKETS: usize = 5;
/// The padding packet's size on the wire, about (RTP header, extension,
/// 255 bytes of padding, SRTP tag).
pub const PROBE_PACKET: usize = 296;
/// No probe asks for more than this, bit/s.
pub const MAX_PROBE_RATE: f64 = 20_000_000.0;
/// A result at least this share of its cluster's rate probes further.
const FURTHER: f64 = 0.7;
/// Clusters whose packets are followed.
const FOLLOWED: usize = 8;

/// One cluster being sent or waited for.
#[derive(Debug, Clone, Copy, Default)]
struct Cluster {
    id: u8,
    rate: f64,
    packets: usize,
    sent: usize,
    next_us: i64,
    /// Whether the start's further probing follows from its result.
    exponential: bool,
    // What came back.
    received: usize,
    bytes: usize,
    first_send: i64,
    last_send: i64,
    first_arrival: i64,
    last_arrival: i64,
    first_size: usize,
    last_size: usize,
    done: bool,
}

/// The probe schedule and results of one subscriber.
#[derive(Debug, Default)]
pub struct Prober {
    next_id: u8,
    queue: VecDeque<Cluster>,
    followed: VecDeque<Cluster>,
}

impl Prober {
    /// Asks for a cluster at `rate` bit/s lasting `duration_us`, to start
    /// at `now_us`; `exponential` probes further from its result.
    pub fn request(&mut self, rate: f64, duration_us: i64, now_us: i64, exponential: bool) {
        let rate = rate.min(MAX_PROBE_RATE);
        let bytes = rate * duration_us as f64 / 8e6;
        let packets = ((bytes / PROBE_PACKET as f64).ceil() as usize).max(MIN_PACKETS);
        self.next_id = self.next_id.wrapping_add(1).max(1);
        self.queue.push_back(Cluster {
            id: self.next_id,
            rate,
            packets,
            next_us: now_us,
            exponential,
            ..Cluster::default()
        });
    }

    /// Whether a cluster is being sent or waits to be.
    pub fn is_probing(&self) -> bool {
        !self.queue.is_empty()
    }

    /// When the next probe packet is due, µs.
    pub fn next_at(&self) -> Option<i64> {
        self.queue.front().map(|c| c.next_us)
    }

    /// The cluster of a probe packet due at `now_us`, if one is; the
    /// caller sends it (about [`PROBE_PACKET`] bytes) and reports it with
    /// [`Prober::on_sent`].
    pub fn poll(&mut self, now_us: i64) -> Option<u8> {
        let c = self.queue.front_mut()?;
        if c.next_us > now_us {
            return None;
        }
        if c.sent == 0 {
            // A cluster queued behind another starts when it is reached,
            // not when it was asked for (or it would go out in one burst).
            c.next_us = now_us;
        }
        c.sent += 1;
        let gap = (PROBE_PACKET as f64 * 8e6 / c.rate) as i64;
        c.next_us += gap.max(1);
        let id = c.id;
        if c.sent >= c.packets {
            let done = self.queue.pop_front().expect("the front");
            if self.followed.len() == FOLLOWED {
                self.followed.pop_front();
            }
            self.followed.push_back(done);
        }
        Some(id)
    }

    /// A packet of cluster `id` was sent at `send_us`, `size` bytes, and
    /// arrived at `arrival_us` (receiver's clock) or was lost.
    pub fn on_feedback(&mut self, id: u8, send_us: i64, size: usize, arrival_us: Option<i64>) {
        // A long cluster's first packets are reported while it is sent.
        let mut all = self.followed.iter_mut().chain(self.queue.iter_mut());
        let Some(c) = all.find(|c| c.id == id && !c.done) else {
            return;
        };
        let Some(arrival) = arrival_us else {
            return;
        };
        if c.received == 0 {
            (c.first_send, c.last_send) = (send_us, send_us);
            (c.first_arrival, c.last_arrival) = (arrival, arrival);
            (c.first_size, c.last_size) = (size, size);
        }
        c.received += 1;
        c.bytes += size;
        if send_us >= c.last_send {
            c.last_send = send_us;
            c.last_size = size;
        }
        c.first_send = c.first_send.min(send_us);
        if arrival < c.first_arrival {
            c.first_arrival = arrival;
            c.first_size = size;
        }
        c.last_arrival = c.last_arrival.max(arrival);
    }

    /// Results of clusters that have enough packets back, once each, as
    /// (bit/s, whether it got through to probe further); `now_us` asks for
    /// the further probe.
    pub fn results(&mut self, now_us: i64, mut found: impl FnMut(f64)) {
        let mut further = None;
        for c in self.followed.iter_mut().filter(|c| !c.done) {
            if c.received * 10 < c.packets * 8 {
                continue;
            }
            c.done = true;
            let send_span = c.last_send - c.first_send;
            let recv_span = c.last_arrival - c.first_arrival;
            if send_span <= 0 || recv_span <= 0 || send_span > 1_000_000 || recv_span > 1_000_000 {
                continue;
            }
            let send_rate = (c.bytes - c.last_size) as f64 * 8e6 / send_span as f64;
            let recv_rate = (c.bytes - c.first_size) as f64 * 8e6 / recv_span as f64;
            if recv_rate > 1.5 * send_rate {
                continue;
            }
            let result = if recv_rate < 0.9 * send_rate {
                0.95 * recv_rate
            } else {
                send_rate.min(recv_rate)
            };
            found(result);
            if c.exponential && result >= FURTHER * c.rate && result * 2.0 <= MAX_PROBE_RATE {
                further = Some(result * 2.0);
            }
        }
        if let Some(rate) = further {
            self.request(rate, CLUSTER_DURATION, now_us, true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sends every queued cluster through a bottleneck of `capacity`
    /// bit/s (a queue: each packet leaves when the link is free), feeds
    /// the arrivals back; returns the results.
    fn probe_through(p: &mut Prober, capacity: f64) -> Vec<f64> {
        let mut now = 0i64;
        let mut link_free = 0i64;
        let mut sent = Vec::new();
        while let Some(next) = p.next_at() {
            now = now.max(next);
            while let Some(id) = p.poll(now) {
                let leave = link_free.max(now) + (PROBE_PACKET as f64 * 8e6 / capacity) as i64;
                link_free = leave;
                sent.push((id, now, leave + 20_000));
            }
        }
        for (id, at, arrival) in sent {
            p.on_feedback(id, at, PROBE_PACKET, Some(arrival));
        }
        let mut out = Vec::new();
        p.results(now, |r| out.push(r));
        out
    }

    #[test]
    fn a_cluster_above_the_bottleneck_measures_the_bottleneck() {
        let mut p = Prober::default();
        p.request(3_000_000.0, CLUSTER_DURATION, 0, false);
        let r = probe_through(&mut p, 1_000_000.0);
        assert_eq!(r.len(), 1);
        assert!((r[0] / 1_000_000.0 - 0.95).abs() < 0.1, "{r:?}");
    }

    #[test]
    fn a_cluster_below_the_bottleneck_measures_its_own_rate_and_probes_further() {
        let mut p = Prober::default();
        p.request(900_000.0, CLUSTER_DURATION, 0, true);
        let r = probe_through(&mut p, 10_000_000.0);
        assert!((r[0] / 900_000.0 - 1.0).abs() < 0.15, "{r:?}");
        assert!(p.is_probing(), "a further cluster at twice the result");
        let r2 = probe_through(&mut p, 10_000_000.0);
        assert!((r2[0] / 1_800_000.0 - 1.0).abs() < 0.15, "{r2:?}");
    }

    #[test]
    fn a_long_cluster_reported_while_it_is_sent_gives_a_result() {
        let mut p = Prober::default();
        p.request(1_000_000.0, 250_000, 0, false);
        let mut in_flight = std::collections::VecDeque::new();
        let mut results = Vec::new();
        for now in (0..400_000).step_by(1000) {
            while let Some(id) = p.poll(now) {
                in_flight.push_back((id, now));
            }
            // Feedback every 50 ms reports what arrived 20 ms after sending.
            if now % 50_000 == 0 {
                while in_flight.front().is_some_and(|(_, at)| at + 20_000 <= now) {
                    let (id, at) = in_flight.pop_front().expect("front");
                    p.on_feedback(id, at, PROBE_PACKET, Some(at + 20_000));
                }
                p.results(now, |r| results.push(r));
            }
        }
        assert_eq!(results.len(), 1, "{results:?}");
        assert!((results[0] / 1_000_000.0 - 1.0).abs() < 0.1, "{results:?}");
    }

    #[test]
    fn clusters_queued_together_are_each_paced() {
        let mut p = Prober::default();
        p.request(900_000.0, CLUSTER_DURATION, 0, false);
        p.request(1_800_000.0, CLUSTER_DURATION, 0, false);
        let r = probe_through(&mut p, 10_000_000.0);
        assert_eq!(r.len(), 2, "{r:?}");
        assert!((r[1] / 1_800_000.0 - 1.0).abs() < 0.15, "{r:?}");
    }

    #[test]
    fn a_cluster_mostly_lost_gives_no_result() {
        let mut p = Prober::default();
        p.request(1_000_000.0, CLUSTER_DURATION, 0, false);
        let mut now = 0;
        let mut sent = Vec::new();
        while let Some(next) = p.next_at() {
            now = next;
            while let Some(id) = p.poll(now) {
                sent.push((id, now));
            }
        }
        for (i, (id, at)) in sent.iter().enumerate() {
            let arrival = (i % 2 == 0).then_some(at + 10_000);
            p.on_feedback(*id, *at, PROBE_PACKET, arrival);
        }
        let mut n = 0;
        p.results(now, |_| n += 1);
        assert_eq!(n, 0);
    }
}
