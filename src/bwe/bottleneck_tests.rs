//! The estimator against a simulated bottleneck on a virtual clock: a
//! FIFO link of a given capacity (a queue of at most 400 ms, drop-tail),
//! 20 ms each way, an encoder that sends at the estimate, the client's
//! feedback written by our own transport-cc writer every 50 ms.

use super::*;
use crate::streams::twcc::TwccReceiver;
use std::collections::VecDeque;

const STEP: Duration = Duration::from_micros(100);
const ONE_WAY: Duration = Duration::from_millis(20);
const QUEUE_LIMIT: Duration = Duration::from_millis(400);
const MEDIA_PACKET: usize = 1200;
/// What the encoder can send at most, bit/s.
const SOURCE_MAX: f64 = 5_000_000.0;

struct Link {
    free_at: Instant,
    /// (arrival, transport-wide seq) in flight to the client.
    to_client: VecDeque<(Instant, u16)>,
    /// (arrival, feedback packet) in flight back.
    to_sender: VecDeque<(Instant, Vec<u8>)>,
    dropped: u64,
}

/// What a simulated run shows.
struct Run {
    /// The estimate every 100 ms: (seconds since start, bit/s).
    samples: Vec<(f64, f64)>,
    /// Seconds from the start until the estimate was measured, and what
    /// it was then.
    measured: Option<(f64, f64)>,
}

/// Runs `phases` of (seconds, capacity bit/s, random loss in 1/1000);
/// returns the estimate sampled every 100 ms as (seconds since start, bit/s).
fn simulate(phases: &[(u64, f64, u32)]) -> Vec<(f64, f64)> {
    run(phases).samples
}

fn run(phases: &[(u64, f64, u32)]) -> Run {
    let t0 = Instant::now();
    let mut est = BandwidthEstimator::new(t0);
    let mut client = TwccReceiver::new(t0);
    let mut link = Link {
        free_at: t0,
        to_client: VecDeque::new(),
        to_sender: VecDeque::new(),
        dropped: 0,
    };
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut now = t0;
    let mut next_media = t0;
    let mut next_feedback = t0 + FEEDBACK;
    let mut next_sample = t0;
    let mut samples = Vec::new();
    let mut measured = None;
    let mut packet = Vec::new();
    let mut statuses = Vec::new();
    let mut next_seq = 0u16;
    let mut phase_end = t0;
    for &(seconds, capacity, loss) in phases {
        phase_end += Duration::from_secs(seconds);
        while now < phase_end {
            // What leaves us now: media at the estimate, and probes.
            let mut send = |size: usize, probe: Option<u8>, est: &mut BandwidthEstimator| {
                let seq = next_seq;
                next_seq = next_seq.wrapping_add(1);
                est.sent(seq, size, now, probe);
                let start = link.free_at.max(now);
                if start.saturating_duration_since(now) > QUEUE_LIMIT
                    || rand() % 1000 < u64::from(loss)
                {
                    link.dropped += 1;
                    return;
                }
                let done = start + Duration::from_secs_f64(size as f64 * 8.0 / capacity);
                link.free_at = done;
                link.to_client.push_back((done + ONE_WAY, seq));
            };
            if now >= next_media {
                send(MEDIA_PACKET, None, &mut est);
                let rate = (est.estimate() as f64).min(SOURCE_MAX);
                next_media += Duration::from_secs_f64(MEDIA_PACKET as f64 * 8.0 / rate);
            }
            while let Some(cluster) = est.poll_probe(now) {
                send(probe::PROBE_PACKET, Some(cluster), &mut est);
            }
            while link.to_client.front().is_some_and(|(at, _)| *at <= now) {
                let (at, seq) = link.to_client.pop_front().expect("front");
                client.record(seq, at);
            }
            if now >= next_feedback {
                next_feedback += FEEDBACK;
                loop {
                    packet.clear();
                    if !client.poll_feedback(1, 2, &mut packet) {
                        break;
                    }
                    link.to_sender.push_back((now + ONE_WAY, packet.clone()));
                }
            }
            while link.to_sender.front().is_some_and(|(at, _)| *at <= now) {
                let (_, fb) = link.to_sender.pop_front().expect("front");
                est.on_feedback(&fb, now, ONE_WAY * 2, &mut statuses);
            }
            if measured.is_none() && est.measured(now) {
                measured = Some((now.duration_since(t0).as_secs_f64(), est.estimate() as f64));
            }
            if now >= next_sample {
                next_sample += Duration::from_millis(100);
                samples.push((now.duration_since(t0).as_secs_f64(), est.estimate() as f64));
            }
            now += STEP;
        }
    }
    assert_eq!(est.feedback_malformed, 0);
    Run { samples, measured }
}

const FEEDBACK: Duration = Duration::from_millis(50);

/// The mean estimate between `from` and `to` seconds.
fn mean(samples: &[(f64, f64)], from: f64, to: f64) -> f64 {
    let v: Vec<f64> = samples
        .iter()
        .filter(|(t, _)| *t >= from && *t < to)
        .map(|(_, r)| *r)
        .collect();
    v.iter().sum::<f64>() / v.len() as f64
}

/// Seconds from `from` until the estimate stays within 20 % of `capacity`
/// for the rest of the window ending at `to`.
fn settle_time(samples: &[(f64, f64)], from: f64, to: f64, capacity: f64) -> Option<f64> {
    let window: Vec<&(f64, f64)> = samples
        .iter()
        .filter(|(t, _)| *t >= from && *t < to)
        .collect();
    let last_out = window
        .iter()
        .rposition(|(_, r)| (r / capacity - 1.0).abs() > 0.2);
    match last_out {
        None => Some(0.0),
        Some(i) if i + 1 < window.len() => Some(window[i + 1].0 - from),
        Some(_) => None,
    }
}

#[test]
fn the_estimate_follows_a_capacity_step_down_and_back_up() {
    let samples = simulate(&[
        (20, 2_000_000.0, 0),
        (20, 500_000.0, 0),
        (40, 2_000_000.0, 0),
    ]);
    let first = settle_time(&samples, 0.0, 20.0, 2_000_000.0).expect("settles at 2 Mbit/s");
    let down = settle_time(&samples, 20.0, 40.0, 500_000.0).expect("settles at 500 kbit/s");
    let up = settle_time(&samples, 40.0, 80.0, 2_000_000.0).expect("settles at 2 Mbit/s again");
    eprintln!(
        "settled within ±20 %: start {first:.1} s, after the step down {down:.1} s, after the step up {up:.1} s; means {:.0} / {:.0} / {:.0} kbit/s",
        mean(&samples, 10.0, 20.0) / 1e3,
        mean(&samples, 30.0, 40.0) / 1e3,
        mean(&samples, 70.0, 80.0) / 1e3
    );
    assert!(first <= 10.0, "{first}");
    assert!(down <= 5.0, "{down}");
    assert!(up <= 30.0, "{up}");
}

#[test]
fn random_loss_of_five_percent_does_not_collapse_the_estimate() {
    // 5 % random (not congestion) loss: the loss cap holds, the delay
    // half sees no queue.
    let samples = simulate(&[(30, 2_000_000.0, 50)]);
    let m = mean(&samples, 15.0, 30.0);
    assert!(m > 0.8 * 2_000_000.0 * 0.95, "{m}");
}

#[test]
fn heavy_loss_lowers_the_estimate() {
    let samples = simulate(&[(10, 2_000_000.0, 0), (10, 2_000_000.0, 250)]);
    assert!(mean(&samples, 17.0, 20.0) < 0.8 * mean(&samples, 7.0, 10.0));
}

#[test]
fn the_estimate_is_measured_after_the_start_probing_or_at_the_first_congestion() {
    // A wide path: measured at FIRST_MEASURE, by when probing has found
    // most of the capacity.
    let wide = run(&[(3, 2_000_000.0, 0)]);
    let (at, rate) = wide.measured.expect("measured");
    assert!(
        (at - FIRST_MEASURE.as_secs_f64()).abs() < 0.01,
        "measured after {at:.2} s"
    );
    assert!(rate > 0.7 * 2_000_000.0, "{rate}");
    // A path losing a quarter of what is sent: the heavy loss is a
    // congestion signal, and a measurement, as soon as it is judged.
    let lossy = run(&[(3, 2_000_000.0, 250)]);
    let (at, _) = lossy.measured.expect("measured");
    assert!(at < FIRST_MEASURE.as_secs_f64(), "measured after {at:.2} s");
}
