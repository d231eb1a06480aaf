//! A bandwidth estimate per subscriber session: what the path from us to
//! that client carries, from its transport-cc feedback (GCC, as libwebrtc
//! runs it on the send side): a delay-based detector and AIMD controller
//! ([`delay`], [`rate`]), a loss cap, the acknowledged rate, and probing
//! ([`probe`]) so that the estimate can rise again above what is sent.
//!
//! Where it sits: on the subscriber's worker. Every packet we send to the
//! session carries our transport-wide sequence number (the worker keeps
//! the counter) and is reported to [`BandwidthEstimator::sent`]; each transport-cc feedback packet from the
//! client goes to [`BandwidthEstimator::on_feedback`]; the worker's timer
//! asks [`BandwidthEstimator::poll_probe`] for probe padding to send. The
//! engine reads [`BandwidthEstimator::estimate`] to pause and resume the
//! subscriber's video (and the simulcast allocator will read it to pick
//! layers). Sans-IO: every call takes `now`; nothing allocates after
//! construction. The worker makes one only once the client's first
//! feedback arrives, so a subscriber that sends none costs nothing.

pub mod acked;
pub mod delay;
pub mod feedback;
pub mod pause;
pub mod probe;
pub mod rate;

use std::time::{Duration, Instant};

use acked::AckedRate;
use delay::{DelayDetector, Usage};
use feedback::Status;
use probe::Prober;
use rate::RateControl;

/// Where an estimate starts, bit/s (libwebrtc: 300 kbit/s).
pub const START_RATE: f64 = 300_000.0;
/// Sent packets remembered for feedback (a power of two: about 250 ms at
/// 2000 packets a second, more than a feedback interval).
const SENT: usize = 512;
/// Loss is judged over at least this many reported packets.
const LOSS_PACKETS: u32 = 20;
/// A new estimate is only its start value and the first probe results
/// until a congestion signal comes or this long has passed since it was
/// made (the start's exponential probing climbs a step per round trip).
pub const FIRST_MEASURE: Duration = Duration::from_secs(1);

/// One packet we sent (12 bytes).
#[derive(Debug, Clone, Copy, Default)]
struct Sent {
    seq: u16,
    /// Its probe cluster (0: none).
    probe: u8,
    /// 0: free, 1: sent, 2: reported.
    state: u8,
    /// µs since the epoch, wrapping (unwrapped against `now`).
    send: u32,
    size: u16,
}

/// One subscriber session's estimate (about 9 KB).
#[derive(Debug)]
pub struct BandwidthEstimator {
    epoch: Instant,
    sent: Box<[Sent; SENT]>,
    delay: DelayDetector,
    rate: RateControl,
    prober: Prober,
    started: bool,
    acked: AckedRate,
    /// Reported packets and losses since the loss was last judged.
    reported: u32,
    lost: u32,
    /// The best probe result since [`Self::take_probed`], bit/s.
    probed: f64,
    /// Feedback packets read.
    pub feedback_read: u64,
    /// Feedback packets that were malformed.
    pub feedback_malformed: u64,
}

impl BandwidthEstimator {
    /// An estimate starting at [`START_RATE`].
    pub fn new(now: Instant) -> Self {
        BandwidthEstimator {
            epoch: now,
            sent: Box::new([Sent::default(); SENT]),
            delay: DelayDetector::default(),
            rate: RateControl::new(START_RATE),
            prober: Prober::default(),
            started: false,
            acked: AckedRate::default(),
            reported: 0,
            lost: 0,
            probed: 0.0,
            feedback_read: 0,
            feedback_malformed: 0,
        }
    }

    fn us(&self, at: Instant) -> i64 {
        at.saturating_duration_since(self.epoch).as_micros() as i64
    }

    /// The estimate, bit/s.
    pub fn estimate(&self) -> u64 {
        self.rate.rate() as u64
    }

    /// A packet of `size` bytes numbered `seq` (our transport-wide
    /// sequence, which the caller keeps) leaves now; a probe's when
    /// `probe` is set (from [`Self::poll_probe`]).
    pub fn sent(&mut self, seq: u16, size: usize, now: Instant, probe: Option<u8>) {
        let send_us = self.us(now);
        if !self.started {
            // Probe at once at 3× and 6× the start (libwebrtc's initial
            // exponential probing).
            self.started = true;
            let d = probe::CLUSTER_DURATION;
            self.prober.request(3.0 * START_RATE, d, send_us, true);
            self.prober.request(6.0 * START_RATE, d, send_us, false);
        }
        self.sent[usize::from(seq) & (SENT - 1)] = Sent {
            seq,
            probe: probe.unwrap_or(0),
            state: 1,
            send: send_us as u32,
            size: size.min(usize::from(u16::MAX)) as u16,
        };
    }

    /// Asks for a probe at `rate` bit/s lasting `duration` (a paused
    /// subscriber whose video needs that much), unless one is under way.
    pub fn request_probe(&mut self, rate: f64, duration: Duration, now: Instant) {
        if !self.prober.is_probing() {
            let at = self.us(now);
            let d = duration.as_micros() as i64;
            self.prober.request(rate, d, at, false);
        }
    }

    /// The best probe result since the last call (0 without one), bit/s:
    /// what the path carried then, even if a delay or loss signal cut the
    /// estimate right after.
    pub fn take_probed(&mut self) -> f64 {
        std::mem::take(&mut self.probed)
    }

    /// When the next probe packet is due.
    pub fn probe_at(&self) -> Option<Instant> {
        self.prober
            .next_at()
            .map(|us| self.epoch + Duration::from_micros(us.max(0) as u64))
    }

    /// The cluster of a probe packet to send now, if one is due; the
    /// caller sends about [`probe::PROBE_PACKET`] bytes of padding and
    /// reports it with [`Self::sent`].
    pub fn poll_probe(&mut self, now: Instant) -> Option<u8> {
        let at = self.us(now);
        self.prober.poll(at)
    }

    /// Takes one transport-cc feedback packet (whole) from the client,
    /// received at `now`, with the session's round trip; `statuses` is
    /// the caller's scratch buffer.
    pub fn on_feedback(
        &mut self,
        packet: &[u8],
        now: Instant,
        rtt: Duration,
        statuses: &mut Vec<Status>,
    ) {
        if !feedback::read(packet, statuses, SENT) {
            self.feedback_malformed += 1;
        }
        self.feedback_read += 1;
        let now_us = self.us(now);
        for s in statuses.iter() {
            let slot = &mut self.sent[usize::from(s.seq) & (SENT - 1)];
            if slot.state == 0 || slot.seq != s.seq {
                continue;
            }
            let send_us = now_us - i64::from((now_us as u32).wrapping_sub(slot.send));
            let (size, probe, reported) = (slot.size, slot.probe, slot.state == 2);
            if probe != 0 {
                self.prober
                    .on_feedback(probe, send_us, usize::from(size), s.arrival_us);
            }
            match s.arrival_us {
                Some(arrival) => {
                    if !reported {
                        self.reported += 1;
                    } else if self.lost > 0 {
                        self.lost -= 1; // reported lost before, arrived late
                    }
                    slot.state = 2;
                    self.acked.push(arrival, u32::from(size));
                    self.delay.on_packet(send_us, arrival);
                }
                None if !reported => {
                    slot.state = 2;
                    self.reported += 1;
                    self.lost += 1;
                }
                None => {}
            }
        }
        let rtt_us = rtt.as_micros() as i64;
        let (rate, probed) = (&mut self.rate, &mut self.probed);
        self.prober.results(now_us, |r| {
            rate.probed(r);
            *probed = probed.max(r);
        });
        let acked = self.acked.rate();
        self.rate.update(now_us, self.delay.usage(), acked, rtt_us);
        if self.reported >= LOSS_PACKETS {
            let ratio = f64::from(self.lost) / f64::from(self.reported);
            self.rate.on_loss(now_us, ratio, rtt_us);
            self.reported = 0;
            self.lost = 0;
        }
    }

    /// Whether the path showed congestion (a growing queue, or more than
    /// 10 % loss) within `within` before `now`: a low estimate then means
    /// a narrow path, not one still being ramped up to.
    pub fn congested(&self, now: Instant, within: Duration) -> bool {
        let now_us = self.us(now);
        self.rate
            .last_congestion
            .is_some_and(|t| now_us - t <= within.as_micros() as i64)
    }

    /// Whether the estimate rests on a measurement: a congestion signal,
    /// or [`FIRST_MEASURE`] since it was made (at the client's first
    /// feedback), by when the start's probing has found what the path
    /// carries. Until then a layer is not chosen by it.
    pub fn measured(&self, now: Instant) -> bool {
        self.rate.last_congestion.is_some()
            || now.saturating_duration_since(self.epoch) >= FIRST_MEASURE
    }

    /// The delay detector's latest verdict.
    pub fn usage(&self) -> Usage {
        self.delay.usage()
    }
}

#[cfg(test)]
mod bottleneck_tests;
