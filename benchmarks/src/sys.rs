//! What the harness reads from the operating system: a monotonic clock that every process on
//! the machine shares, the CPU time of this process, and the bytes it sent over TCP.

use nix::sys::resource::{getrusage, UsageWho};
use nix::time::{clock_gettime, ClockId};

/// Nanoseconds of `CLOCK_MONOTONIC`.
///
/// Unlike [`std::time::Instant`], the value can be printed and compared between processes:
/// every process on one machine reads the same clock. Members print it in their event lines
/// and the parent reads it when it kills, stops or starts a member.
pub fn now_ns() -> u64 {
    match clock_gettime(ClockId::CLOCK_MONOTONIC) {
        Ok(ts) => (ts.tv_sec() as u64) * 1_000_000_000 + ts.tv_nsec() as u64,
        // CLOCK_MONOTONIC is always there on Linux; never reached in practice.
        Err(_) => 0,
    }
}

/// CPU seconds (user plus system) this process has used so far, all threads included.
pub fn cpu_seconds() -> f64 {
    match getrusage(UsageWho::RUSAGE_SELF) {
        Ok(usage) => {
            let seconds = |tv: nix::sys::time::TimeVal| {
                tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1_000_000.0
            };
            seconds(usage.user_time()) + seconds(usage.system_time())
        }
        Err(_) => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_moves_forward_and_cpu_is_counted() {
        let a = now_ns();
        let mut x = 0u64;
        for i in 0..1_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        std::hint::black_box(x);
        assert!(now_ns() > a);
        assert!(cpu_seconds() > 0.0);
    }
}
