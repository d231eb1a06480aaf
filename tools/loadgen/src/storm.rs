//! A flash crowd: S subscribers per publisher join at a set rate, each
//! join what a browser does (sessions/new, tracks/new pulling the
//! publisher's tracks, renegotiate with its answer, then ICE and DTLS on a
//! loop thread). Join i starts i / rate after the first, on one of several
//! joiner threads that each keep their own HTTP connection, so that a slow
//! answer holds back only its own thread. Every HTTP call is timed, and so
//! is the load generator's own CPU per join (its API calls and SDP here,
//! its DTLS on the loop threads), which tells whether the server or the
//! load generator held the rate back.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use switchboard::dtls::DtlsIdentity;

use crate::procstat::{self, thread_cpu_time};
use crate::run::{HandOff, Shared};
use crate::scenario::{Scenario, bar, join};
use crate::stats::{Spread, Stats, Storm};
use crate::target::{Calls, Switchboard};

/// How long joined subscribers may take to connect after the last join's
/// API calls.
const CONNECT_LIMIT: Duration = Duration::from_secs(15);

/// A side whose cores were at least this busy over a storm that did not
/// hold its rate is taken to have held it back.
const SATURATED: f64 = 0.85;

/// What the joins did, before the loop threads' measures come in.
pub struct Joined {
    rate: f64,
    joins: usize,
    api_failures: usize,
    first_error: Option<String>,
    connect_failures: usize,
    api_us: Histogram<u64>,
    max_start_lag: Duration,
    achieved_rate: f64,
    threads: usize,
    joiner_cpu: Duration,
    start: Instant,
    storm: Duration,
    server_cpu: Option<Duration>,
    own_cpu: Option<Duration>,
}

/// Joiner threads for `rate` joins/s: `asked`, or enough for joins that
/// take 100 ms each (4 to 128); never more than there are joins.
pub fn threads_for(rate: f64, asked: usize, joins: usize) -> usize {
    let n = if asked > 0 {
        asked
    } else {
        ((rate / 10.0).ceil() as usize).clamp(4, 128)
    };
    n.min(joins).max(1)
}

/// What one joiner thread did.
#[derive(Default)]
struct Joiner {
    calls: Calls,
    failures: usize,
    first_error: Option<String>,
    max_lag: Duration,
    last_start: Option<Instant>,
    cpu: Duration,
}

/// The joins of one storm, shared by its joiner threads.
struct Plan<'a> {
    s: &'a Scenario,
    rate: f64,
    identity: &'a Arc<DtlsIdentity>,
    publishers: &'a [(String, Vec<String>)],
    hand_off: &'a HandOff,
    joins: usize,
    next: AtomicUsize,
    start: Instant,
}

impl Plan<'_> {
    /// When join `i` is due.
    fn due(&self, i: usize) -> Instant {
        self.start + Duration::from_secs_f64(i as f64 / self.rate)
    }

    /// A joiner thread: takes the next join, waits for its time, joins.
    fn joiner(&self) -> Joiner {
        let cpu0 = thread_cpu_time();
        let mut api = Switchboard::new(&self.s.url, &self.s.app_id, &self.s.app_secret)
            .prefer_rid(self.s.simulcast.clone());
        let mut out = Joiner::default();
        loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            if i >= self.joins {
                break;
            }
            let due = self.due(i);
            let wait = due.saturating_duration_since(Instant::now());
            if !wait.is_zero() {
                std::thread::sleep(wait);
            }
            let started = Instant::now();
            out.max_lag = out.max_lag.max(started.saturating_duration_since(due));
            out.last_start = out.last_start.max(Some(started));
            let (publisher, names) = &self.publishers[i % self.publishers.len()];
            match join(&mut api, self.s, self.identity, publisher, names) {
                Ok(client) => self.hand_off.send(client),
                Err(e) => {
                    out.failures += 1;
                    out.first_error.get_or_insert_with(|| format!("{e:#}"));
                }
            }
        }
        out.calls = api.take_calls();
        out.cpu = thread_cpu_time().saturating_sub(cpu0);
        out
    }
}

/// Runs the storm: every join, then the wait for the joined subscribers
/// to connect (or fail, or [`CONNECT_LIMIT`]).
pub fn run(
    s: &Scenario,
    rate: f64,
    identity: &Arc<DtlsIdentity>,
    publishers: &[(String, Vec<String>)],
    hand_off: &HandOff,
    shared: &Shared,
) -> anyhow::Result<Joined> {
    let joins = publishers.len() * s.subscribers;
    let threads = threads_for(rate, s.join_threads, joins);
    let progress = bar(s.progress, joins, "joining");
    let server_cpu0 = s.server_pid.and_then(procstat::cpu_time);
    let own_cpu0 = procstat::cpu_time(std::process::id());
    let plan = Plan {
        s,
        rate,
        identity,
        publishers,
        hand_off,
        joins,
        next: AtomicUsize::new(0),
        start: Instant::now(),
    };
    let joiners: Vec<Joiner> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| scope.spawn(|| plan.joiner()))
            .collect();
        while !handles.iter().all(|h| h.is_finished()) {
            progress.set_position(plan.next.load(Ordering::Relaxed).min(joins) as u64);
            std::thread::sleep(Duration::from_millis(50));
        }
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    progress.finish_and_clear();

    let api_failures: usize = joiners.iter().map(|j| j.failures).sum();
    let want = s.publishers + joins - api_failures;
    let deadline = Instant::now() + CONNECT_LIMIT;
    let connecting = bar(s.progress, want, "connecting");
    loop {
        let connected = shared.connected.load(Ordering::Acquire);
        connecting.set_position(connected as u64);
        let done = connected + shared.failed.load(Ordering::Acquire);
        if done >= want || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    connecting.finish_and_clear();
    let storm = plan.start.elapsed();
    let spent = |before: Option<Duration>, now: Option<Duration>| {
        now.zip(before).map(|(b, a)| b.saturating_sub(a))
    };
    let server_cpu = spent(server_cpu0, s.server_pid.and_then(procstat::cpu_time));
    let own_cpu = spent(own_cpu0, procstat::cpu_time(std::process::id()));

    let mut api_us = Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram bounds");
    for us in joiners.iter().flat_map(|j| &j.calls.us) {
        let _ = api_us.record(*us);
    }
    let last_start = joiners.iter().filter_map(|j| j.last_start).max();
    let span = last_start.map_or(Duration::ZERO, |t| t.saturating_duration_since(plan.start));
    Ok(Joined {
        rate,
        joins,
        api_failures,
        first_error: joiners.iter().find_map(|j| j.first_error.clone()),
        connect_failures: want.saturating_sub(shared.connected.load(Ordering::Acquire)),
        api_us,
        max_start_lag: joiners.iter().map(|j| j.max_lag).max().unwrap_or_default(),
        achieved_rate: joins as f64 / (span.as_secs_f64() + 1.0 / rate),
        threads,
        joiner_cpu: joiners.iter().map(|j| j.cpu).sum(),
        start: plan.start,
        storm,
        server_cpu,
        own_cpu,
    })
}

/// The storm's part of the report, with what the loop threads measured.
pub fn report(s: &Scenario, j: Joined, stats: &Stats) -> Storm {
    let joins = j.joins.max(1) as f64;
    let storm_s = j.storm.as_secs_f64().max(1e-6);
    let per_join = |cpu: Duration, n: f64| cpu.as_secs_f64() * 1e6 / n;
    let dtls_us = if stats.handshakes == 0 {
        0.0
    } else {
        per_join(stats.handshake_cpu, stats.handshakes as f64)
    };
    let api_us = per_join(j.joiner_cpu, joins);
    let cores = procstat::usable_cores();
    // A join's own work shares the load generator's cores; its DTLS runs
    // on a loop thread, so on no more cores than there are of those.
    let loadgen_capacity = (dtls_us + api_us > 0.0).then(|| {
        let by_cores = cores as f64 * 1e6 / (dtls_us + api_us);
        let by_loops = if dtls_us > 0.0 {
            s.threads.clamp(1, cores) as f64 * 1e6 / dtls_us
        } else {
            f64::MAX
        };
        by_cores.min(by_loops)
    });
    let loadgen_busy = j.own_cpu.map(|c| c.as_secs_f64() / storm_s / cores as f64);
    let server_cores = s.server_pid.and_then(procstat::cores_of).unwrap_or(1);
    let server_busy = j
        .server_cpu
        .map(|c| c.as_secs_f64() / storm_s / server_cores as f64);
    let connected = stats.handshakes;
    let completed_rate = match stats.last_connected {
        Some(last) if connected > 0 => {
            connected as f64
                / last
                    .saturating_duration_since(j.start)
                    .as_secs_f64()
                    .max(1e-6)
        }
        _ => 0.0,
    };
    let with_media = stats.join_us.len();
    let held = j.achieved_rate >= 0.95 * j.rate
        && completed_rate >= 0.9 * j.rate
        && with_media == j.joins as u64;
    let saturated = |busy: Option<f64>| busy.is_some_and(|b| b >= SATURATED);
    let limited_by = if held {
        "none"
    } else if loadgen_capacity.is_some_and(|c| c < j.rate) {
        "loadgen"
    } else {
        match (saturated(loadgen_busy), saturated(server_busy)) {
            (true, true) => "both",
            (true, false) => "loadgen",
            _ => "server",
        }
    };
    Storm {
        join_rate: j.rate,
        achieved_rate: j.achieved_rate,
        completed_rate,
        joins: j.joins,
        joins_with_media: with_media,
        api_failures: j.api_failures,
        connect_failures: j.connect_failures,
        first_error: j.first_error,
        join_latency_ms: Spread::of(&stats.join_us, 1e3),
        connect_latency_ms: Spread::of(&stats.connect_us, 1e3),
        api_latency_us: Spread::of(&j.api_us, 1.0),
        api_calls: j.api_us.len() as usize,
        max_start_lag_ms: j.max_start_lag.as_secs_f64() * 1e3,
        join_threads: j.threads,
        storm_s: j.storm.as_secs_f64(),
        server_cpu_s: j.server_cpu.map(|c| c.as_secs_f64()),
        server_cpu_us_per_join: j.server_cpu.map(|c| per_join(c, joins)),
        server_busy,
        loadgen_cpu_us_per_join: j.own_cpu.map_or(0.0, |c| per_join(c, joins)),
        loadgen_busy,
        loadgen_dtls_us_per_join: dtls_us,
        loadgen_api_us_per_join: api_us,
        loadgen_cores: cores,
        loadgen_join_capacity: loadgen_capacity,
        limited_by: limited_by.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::threads_for;

    #[test]
    fn joiner_threads_follow_the_rate() {
        assert_eq!(threads_for(20.0, 0, 1000), 4);
        assert_eq!(threads_for(200.0, 0, 1000), 20);
        assert_eq!(threads_for(100_000.0, 0, 1000), 128);
        assert_eq!(threads_for(1000.0, 0, 3), 3);
        assert_eq!(threads_for(1000.0, 7, 1000), 7);
    }
}
