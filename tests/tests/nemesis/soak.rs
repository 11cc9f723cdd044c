//! Resource samples of running processes and what "flat" means for them.
//!
//! Every second the soak reads each node's resident set size (`VmRSS` in
//! `/proc/<pid>/status`) and its open file descriptors (the entries of `/proc/<pid>/fd`).
//! The first third of the samples is warm-up (allocator pools, connections being made);
//! a series is *flat* when the median of the last third is at most [`RSS_SLACK_FRACTION`]
//! or [`RSS_SLACK_KIB`] (whichever is larger) above the median of the middle third, and its
//! descriptors' median at most [`FD_SLACK`] above. Medians make one sample taken during a
//! burst (a garbage pass, a client reconnecting) count for nothing; a leak moves them.

use std::fmt::Write as _;

/// Resident memory growth that is not a leak, absolute (KiB).
pub const RSS_SLACK_KIB: u64 = 4 * 1024;
/// … and relative to the middle third's median.
pub const RSS_SLACK_FRACTION: f64 = 0.10;
/// Open descriptors the last third's median may exceed the middle third's by.
pub const FD_SLACK: u64 = 2;

/// One sample of one process.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// Resident set size, KiB.
    pub rss_kib: u64,
    /// Open file descriptors.
    pub fds: u64,
}

/// Reads `pid`'s resident set size and open descriptors; `None` if it is gone.
pub fn sample(pid: u32) -> Option<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    Some(Sample { rss_kib, fds })
}

/// The samples of one process.
#[derive(Clone, Debug)]
pub struct Series {
    /// Which process (`replica node 1`, `log node 2`).
    pub name: String,
    /// Its samples, in time order.
    pub samples: Vec<Sample>,
}

fn median(mut values: Vec<u64>) -> u64 {
    values.sort_unstable();
    values.get(values.len() / 2).copied().unwrap_or(0)
}

impl Series {
    /// The medians of (RSS KiB, fds) over the middle and the last third.
    fn thirds(&self) -> ((u64, u64), (u64, u64)) {
        let n = self.samples.len();
        let part = |range: std::ops::Range<usize>| {
            let s = &self.samples[range];
            (
                median(s.iter().map(|x| x.rss_kib).collect()),
                median(s.iter().map(|x| x.fds).collect()),
            )
        };
        (part(n / 3..2 * n / 3), part(2 * n / 3..n))
    }

    /// Whether the series is flat (see the module documentation); `Err` says how not.
    pub fn flat(&self) -> Result<(), String> {
        if self.samples.len() < 6 {
            return Err(format!(
                "{}: {} samples, too few to judge",
                self.name,
                self.samples.len()
            ));
        }
        let ((rss_mid, fds_mid), (rss_last, fds_last)) = self.thirds();
        let slack = RSS_SLACK_KIB.max((rss_mid as f64 * RSS_SLACK_FRACTION) as u64);
        let mut problems = Vec::new();
        if rss_last > rss_mid + slack {
            problems.push(format!(
                "resident memory grew: median {rss_mid} KiB in the middle third, {rss_last} KiB \
                 in the last (more than {slack} KiB)"
            ));
        }
        if fds_last > fds_mid + FD_SLACK {
            problems.push(format!(
                "open descriptors grew: median {fds_mid} in the middle third, {fds_last} in the last"
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!("{}: {}", self.name, problems.join("; ")))
        }
    }

    /// One line: samples, first, middle and last third medians, maxima.
    pub fn summary(&self) -> String {
        let first = self.samples.first().copied();
        let ((rss_mid, fds_mid), (rss_last, fds_last)) = self.thirds();
        let rss_max = self.samples.iter().map(|s| s.rss_kib).max().unwrap_or(0);
        let fds_max = self.samples.iter().map(|s| s.fds).max().unwrap_or(0);
        let mut out = String::new();
        let _ = write!(
            out,
            "{:<16} {:>3} samples  RSS KiB first {:>7} mid {:>7} last {:>7} max {:>7}  fds first {:>3} mid {:>3} last {:>3} max {:>3}",
            self.name,
            self.samples.len(),
            first.map_or(0, |s| s.rss_kib),
            rss_mid,
            rss_last,
            rss_max,
            first.map_or(0, |s| s.fds),
            fds_mid,
            fds_last,
            fds_max
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(rss: &[u64], fds: &[u64]) -> Series {
        Series {
            name: "made up".into(),
            samples: rss
                .iter()
                .zip(fds)
                .map(|(r, f)| Sample {
                    rss_kib: *r,
                    fds: *f,
                })
                .collect(),
        }
    }

    #[test]
    fn flatness_tolerates_warm_up_and_spikes_but_not_growth() {
        // Warm-up in the first third and one spike later: flat.
        let rss = [
            10_000, 40_000, 50_000, 50_000, 51_000, 50_500, 90_000, 50_800, 51_000,
        ];
        assert!(series(&rss, &[9; 9]).flat().is_ok());
        // Steady growth of 30 MiB: not flat.
        let growing: Vec<u64> = (0..9).map(|i| 50_000 + i * 4_000).collect();
        let err = series(&growing, &[9; 9]).flat().unwrap_err();
        assert!(err.contains("resident memory grew"), "{err}");
        // One descriptor more per sample: not flat.
        let fds: Vec<u64> = (0..9).map(|i| 10 + i).collect();
        let err = series(&[50_000; 9], &fds).flat().unwrap_err();
        assert!(err.contains("open descriptors grew"), "{err}");
        // Too few samples to judge.
        assert!(series(&[1; 3], &[1; 3]).flat().is_err());
    }
}
