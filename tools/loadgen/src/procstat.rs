//! CPU time of a process from /proc/PID/stat (utime + stime), of the
//! calling thread, and what machine this is; used to report CPU per
//! forwarded packet and per join.

use std::time::Duration;

/// Clock ticks per second of /proc times (USER_HZ; 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// User + system CPU time of `pid` (`None` if unreadable).
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 here.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_secs_f64((utime + stime) / TICKS_PER_SECOND))
}

/// User + system CPU time of the calling thread, in ns resolution (zero
/// where the clock is missing).
pub fn thread_cpu_time() -> Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes only the timespec it is given.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// Cores this process may run on (its CPU affinity).
pub fn usable_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Cores process `pid` may run on (its CPU affinity; `None` if unreadable).
pub fn cores_of(pid: u32) -> Option<usize> {
    // SAFETY: all-zero is an empty cpu_set_t; sched_getaffinity writes at
    // most the size it is given.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let r = unsafe {
        libc::sched_getaffinity(
            pid as libc::pid_t,
            std::mem::size_of::<libc::cpu_set_t>(),
            &mut set,
        )
    };
    if r != 0 {
        return None;
    }
    // SAFETY: a set the kernel filled.
    let n = unsafe { libc::CPU_COUNT(&set) };
    usize::try_from(n).ok().filter(|&n| n > 0)
}

/// CPU model and core count.
pub fn machine() -> serde_json::Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown".into());
    // All the machine's cores, not only those this process may run on.
    let cores = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    serde_json::json!({ "cpu": model, "cores": cores })
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_own_cpu_time() {
        let t0 = super::cpu_time(std::process::id()).unwrap();
        let mut x = 0u64;
        for i in 0..50_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        std::hint::black_box(x);
        assert!(super::cpu_time(std::process::id()).unwrap() >= t0);
    }

    #[test]
    fn reads_thread_cpu_time() {
        let t0 = super::thread_cpu_time();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        std::hint::black_box(x);
        let spent = super::thread_cpu_time() - t0;
        assert!(spent > std::time::Duration::ZERO, "{spent:?}");
        // Sleeping costs no CPU.
        let t1 = super::thread_cpu_time();
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(super::thread_cpu_time() - t1 < std::time::Duration::from_millis(20));
    }

    #[test]
    fn reads_own_cores() {
        let own = super::cores_of(std::process::id()).unwrap();
        assert!(own >= 1);
        assert_eq!(own, super::usable_cores());
    }
}
