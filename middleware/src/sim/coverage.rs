//! Coverage counts: how often a run hit each fault and each protocol path, so a sweep that
//! never reaches one shows it (a checker that never sees a path proves nothing about it).
//!
//! Faults are counted where the simulator injects them; protocol paths from what the cores
//! send and report (`MulticastStats`, the failure detector's counters, `Membership::blocked`)
//! and from the events the simulator observes.

use std::fmt;

macro_rules! hits {
    ($($(#[doc = $doc:literal])* $name:ident => $label:literal,)*) => {
        /// A fault injected or a protocol path taken.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Hit {
            $($(#[doc = $doc])* $name,)*
        }

        impl Hit {
            /// Every kind, in the order the summary prints them.
            pub const ALL: &'static [Hit] = &[$(Hit::$name,)*];

            /// The name printed in summaries.
            pub fn label(self) -> &'static str {
                match self {
                    $(Hit::$name => $label,)*
                }
            }
        }
    };
}

hits! {
    /// A partition into two parts.
    Partition2 => "partition: 2 parts",
    /// A partition into three or more parts.
    Partition3Plus => "partition: 3+ parts",
    /// A partition or cut link that held its frames and delivered them after it healed.
    StallingCut => "cut that stalls (frames delivered after heal)",
    /// A link cut in one direction only.
    OneWayLink => "one-way link cut",
    /// Frames delivered late: held back seconds, or held by a stalled link.
    LateFrame => "late frames",
    /// A process paused (its ticks and inputs stop, then arrive in a burst).
    Pause => "process paused",
    /// Frames that waited for a paused process and arrived in a burst.
    PauseBurstFrame => "frames delivered in a resume burst",
    /// A restart whose wall clock was behind its last incarnation (max(clock, last + 1)).
    ClockStepBack => "restart with the clock stepped back",
    /// A snapshot answered late.
    SnapshotSlow => "snapshot answered late",
    /// A snapshot that failed.
    SnapshotFailed => "snapshot failed",
    /// A failed snapshot the core acted on (it stopped vouching for the state).
    SnapshotFailureTaken => "snapshot failure taken by the core",
    /// A service that stopped consuming for a while (paused delivery).
    ServicePaused => "service paused (delivery paused)",
    /// A process crashed.
    Crash => "crash",
    /// The coordinator of its view crashed.
    CrashCoordinator => "crash of the coordinator",
    /// The coordinator crashed while total order was in use (it is the sequencer).
    CrashSequencer => "crash of the sequencer",
    /// A crash while the process was receiving the state.
    CrashDuringTransfer => "crash of a joiner mid-transfer",
    /// A crashed process restarted.
    Restart => "restart",
    /// A restart while a partition or a cut link was in place.
    RestartDuringPartition => "restart during a partition",
    /// A graceful leave began.
    Leave => "graceful leave",
    /// A graceful leave gave up (leave timeout) before a view without the leaver came.
    LeaveTimedOut => "leave timed out",
    /// A process excluded from a view (suspected, or its view yielded).
    Excluded => "excluded",
    /// A distinct view installed.
    View => "views installed",
    /// A view that promoted a learner to voter.
    LearnerPromotion => "view change promoting a learner",
    /// A state transfer a joiner asked for.
    TransferStarted => "state transfer started",
    /// A state transfer completed.
    TransferCompleted => "state transfer completed",
    /// A completed state transfer that was the whole snapshot.
    TransferWhole => "  of which the whole snapshot",
    /// A completed state transfer that was a delta from the joiner's recovered position.
    TransferDelta => "  of which a delta (catch-up from a position)",
    /// A state transfer that never completed (joiner or provider crashed, view changed).
    TransferInterrupted => "state transfer interrupted",
    /// A retransmission request.
    Nak => "NAKs sent",
    /// A retransmission request for the cut of a view being ended.
    CutFetchNak => "cut-fetch NAKs",
    /// An entry retransmitted.
    Retransmitted => "entries retransmitted",
    /// An entry received twice.
    Duplicate => "duplicate entries received",
    /// A multicast refused because the outbox was full.
    OutboxFull => "outbox full (core refusals; parked retries too)",
    /// A failure-detector suspicion.
    Suspicion => "suspicions",
    /// A suspicion withdrawn (the peer was heard again).
    FalseSuspicion => "false suspicions",
    /// A view whose members reported being blocked for want of a majority of voters.
    BlockedNoMajority => "views blocked on no majority",
    /// A view whose members reported being blocked for want of a holder of the state.
    BlockedNoHolder => "views blocked on no holder",
    /// A frame refused as older than the receiver's replay window.
    FrameTooOld => "frames refused as too old",
    /// A frame refused as coming from a stale incarnation.
    FrameStale => "frames refused from a stale incarnation",
}

/// The counts of one run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Coverage {
    counts: Vec<u64>,
}

impl Coverage {
    /// Counts `n` more of `hit`.
    pub fn add(&mut self, hit: Hit, n: u64) {
        if self.counts.len() < Hit::ALL.len() {
            self.counts.resize(Hit::ALL.len(), 0);
        }
        self.counts[hit as usize] += n;
    }

    /// Counts one more of `hit`.
    pub fn hit(&mut self, hit: Hit) {
        self.add(hit, 1);
    }

    /// How often `hit` happened.
    pub fn get(&self, hit: Hit) -> u64 {
        self.counts.get(hit as usize).copied().unwrap_or(0)
    }
}

/// Coverage over a sweep: per kind, the runs that hit it and the total count.
#[derive(Clone, Debug, Default)]
pub struct SweepCoverage {
    runs: u64,
    runs_hit: Vec<u64>,
    total: Coverage,
}

impl SweepCoverage {
    /// Adds one run's counts.
    pub fn add(&mut self, run: &Coverage) {
        self.runs += 1;
        self.runs_hit.resize(Hit::ALL.len(), 0);
        for &hit in Hit::ALL {
            let n = run.get(hit);
            if n > 0 {
                self.runs_hit[hit as usize] += 1;
            }
            self.total.add(hit, n);
        }
    }

    /// Runs that hit `hit`.
    pub fn runs_hit(&self, hit: Hit) -> u64 {
        self.runs_hit.get(hit as usize).copied().unwrap_or(0)
    }

    /// Total count of `hit` over the sweep.
    pub fn total(&self, hit: Hit) -> u64 {
        self.total.get(hit)
    }

    /// Kinds no run hit.
    pub fn never_hit(&self) -> Vec<Hit> {
        Hit::ALL
            .iter()
            .copied()
            .filter(|h| self.runs_hit(*h) == 0)
            .collect()
    }
}

impl fmt::Display for SweepCoverage {
    /// One line per kind: the runs that hit it, and how often; kinds no run hit are marked.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "coverage over {} runs (runs that hit it, total):",
            self.runs
        )?;
        for &hit in Hit::ALL {
            let runs = self.runs_hit(hit);
            let mark = if runs == 0 { "   <- never hit" } else { "" };
            writeln!(
                f,
                "  {:<46} {:>6} runs {:>10}{mark}",
                hit.label(),
                runs,
                self.total(hit)
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sweep_counts_runs_and_totals_and_shows_what_was_never_hit() {
        let mut a = Coverage::default();
        a.add(Hit::Crash, 3);
        let mut b = Coverage::default();
        b.hit(Hit::Crash);
        b.hit(Hit::Pause);
        let mut sweep = SweepCoverage::default();
        sweep.add(&a);
        sweep.add(&b);
        assert_eq!(
            (sweep.runs_hit(Hit::Crash), sweep.total(Hit::Crash)),
            (2, 4)
        );
        assert_eq!(
            (sweep.runs_hit(Hit::Pause), sweep.total(Hit::Pause)),
            (1, 1)
        );
        assert!(sweep.never_hit().contains(&Hit::Partition2));
        assert!(sweep.to_string().contains("partition: 2 parts"));
    }
}
