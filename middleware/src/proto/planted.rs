//! Planted bugs, for testing the tests (cargo feature `planted-bugs`, off by default).
//!
//! Each [`PlantedBug`] is a small, realistic mistake in a core that the simulator's checkers
//! must catch; `tests --test planted` sweeps seeds against each one (see `docs/TESTING.md`).
//! A hook in a core reads
//!
//! ```ignore
//! #[cfg(feature = "planted-bugs")]
//! if planted::active(PlantedBug::CutMinimum) { /* the buggy variant */ }
//! ```
//!
//! so without the feature the hooks do not exist. With it they are dormant unless a bug is
//! planted on the running thread ([`plant`]; the simulator does it for `SimConfig::planted`
//! and is single-threaded): a dormant hook costs one thread-local read, and real nodes never
//! plant anything.

use crate::id::ProcessId;
use crate::wire::{CutEntry, FlushReport, Rank, Seq};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// A deliberate bug that can be planted in the cores.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PlantedBug {
    /// The flush cut takes, per stream, the *least* any promiser holds instead of the most: a
    /// survivor that delivered past it has delivered what others never will in that view.
    CutMinimum,
    /// A proposer ignores the values its promisers accepted before and proposes its own:
    /// Paxos' phase-1 rule broken, so two ballots can decide two successors of one view.
    ProposerIgnoresAccepted,
    /// A joiner delivers the new view's multicasts while its state transfer is still under
    /// way, before `Restore` (which then overwrites what it delivered).
    JoinerDeliversBeforeRestore,
    /// An acceptor sends its `Promise` but does not record it, so it still accepts a lower
    /// ballot: a late `Accept`, or one whose cut it was still fetching when it promised.
    AcceptorForgetsPromise,
    /// Stability off by one: an entry counts as held by every member one entry early, so it
    /// may be garbage-collected (and, with safe delivery, delivered) before all hold it.
    StabilityOffByOne,
    /// The sequencer rescans each stream from what it delivered instead of what it ordered,
    /// so an entry ordered but not yet delivered gets a second place in the total order.
    SequencerOrdersTwice,
    /// The flush ignores the proposer's own report (its promise never crosses the wire):
    /// what only the proposer held is cut off although it may have delivered it.
    FlushIgnoresOwnReport,
    /// A phase-2 majority counts learners as well as voters.
    MajorityCountsLearners,
}

impl PlantedBug {
    /// Every planted bug.
    pub const ALL: [PlantedBug; 8] = [
        PlantedBug::CutMinimum,
        PlantedBug::ProposerIgnoresAccepted,
        PlantedBug::JoinerDeliversBeforeRestore,
        PlantedBug::AcceptorForgetsPromise,
        PlantedBug::StabilityOffByOne,
        PlantedBug::SequencerOrdersTwice,
        PlantedBug::FlushIgnoresOwnReport,
        PlantedBug::MajorityCountsLearners,
    ];

    /// The bug's name, as `SIM_PLANT` takes it (`cut-minimum`, …).
    pub fn name(self) -> &'static str {
        match self {
            PlantedBug::CutMinimum => "cut-minimum",
            PlantedBug::ProposerIgnoresAccepted => "proposer-ignores-accepted",
            PlantedBug::JoinerDeliversBeforeRestore => "joiner-delivers-before-restore",
            PlantedBug::AcceptorForgetsPromise => "acceptor-forgets-promise",
            PlantedBug::StabilityOffByOne => "stability-off-by-one",
            PlantedBug::SequencerOrdersTwice => "sequencer-orders-twice",
            PlantedBug::FlushIgnoresOwnReport => "flush-ignores-own-report",
            PlantedBug::MajorityCountsLearners => "majority-counts-learners",
        }
    }
}

impl fmt::Display for PlantedBug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not a planted bug's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no planted bug is named {0:?}")]
pub struct UnknownBug(pub String);

impl FromStr for PlantedBug {
    type Err = UnknownBug;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PlantedBug::ALL
            .into_iter()
            .find(|b| b.name() == s.trim())
            .ok_or_else(|| UnknownBug(s.to_string()))
    }
}

thread_local! {
    static PLANTED: Cell<Option<PlantedBug>> = const { Cell::new(None) };
}

/// Whether `bug` is planted on this thread.
#[inline]
pub fn active(bug: PlantedBug) -> bool {
    PLANTED.with(|p| p.get() == Some(bug))
}

/// Plants `bug` (or none) on this thread until the returned guard drops, which puts back
/// what was planted before.
#[must_use = "the bug is planted only while the guard lives"]
pub fn plant(bug: Option<PlantedBug>) -> Planting {
    Planting {
        previous: PLANTED.with(|p| p.replace(bug)),
    }
}

/// Keeps a bug planted on this thread; see [`plant`].
#[derive(Debug)]
pub struct Planting {
    previous: Option<PlantedBug>,
}

impl Drop for Planting {
    fn drop(&mut self) {
        PLANTED.with(|p| p.set(self.previous));
    }
}

/// [`PlantedBug::CutMinimum`]: per stream, the least any promiser holds (and one that holds
/// just that).
pub(crate) fn cut_minimum<'a>(
    base_len: usize,
    reports: impl Iterator<Item = (usize, &'a FlushReport)>,
) -> Vec<CutEntry> {
    let mut cut: Vec<Option<CutEntry>> = vec![None; base_len];
    for (rank, report) in reports {
        if report.received.len() != base_len {
            continue;
        }
        for (entry, &upto) in cut.iter_mut().zip(&report.received) {
            if entry.is_none_or(|e| upto < e.upto) {
                *entry = Some(CutEntry {
                    upto,
                    holder: Rank::of(rank),
                });
            }
        }
    }
    cut.into_iter()
        .enumerate()
        .map(|(r, e)| {
            e.unwrap_or(CutEntry {
                upto: Seq::ZERO,
                holder: Rank::of(r),
            })
        })
        .collect()
}

/// [`PlantedBug::FlushIgnoresOwnReport`]: the promises without `me`'s own (a copy either way;
/// only test builds have it).
pub(crate) fn without_report_of<V: Clone>(
    promises: &BTreeMap<ProcessId, V>,
    me: ProcessId,
) -> BTreeMap<ProcessId, V> {
    let mut promises = promises.clone();
    if active(PlantedBug::FlushIgnoresOwnReport) {
        promises.remove(&me);
    }
    promises
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_planting_is_scoped_to_the_guard() {
        for bug in PlantedBug::ALL {
            assert_eq!(bug.name().parse(), Ok(bug));
        }
        assert!("cut-maximum".parse::<PlantedBug>().is_err());
        assert!(!active(PlantedBug::CutMinimum));
        {
            let _outer = plant(Some(PlantedBug::CutMinimum));
            assert!(active(PlantedBug::CutMinimum));
            {
                let _inner = plant(None);
                assert!(!active(PlantedBug::CutMinimum));
            }
            assert!(active(PlantedBug::CutMinimum));
            assert!(!active(PlantedBug::StabilityOffByOne));
        }
        assert!(!active(PlantedBug::CutMinimum));
    }

    #[test]
    fn the_minimum_cut_takes_the_least_each_promiser_holds() {
        let a = FlushReport {
            received: vec![crate::wire::Seq(3), crate::wire::Seq(1)],
            ready: true,
        };
        let b = FlushReport {
            received: vec![crate::wire::Seq(2), crate::wire::Seq(5)],
            ready: true,
        };
        let cut = cut_minimum(2, [(0, &a), (1, &b)].into_iter());
        assert_eq!(
            cut,
            vec![
                CutEntry {
                    upto: crate::wire::Seq(2),
                    holder: crate::wire::Rank(1)
                },
                CutEntry {
                    upto: crate::wire::Seq(1),
                    holder: crate::wire::Rank(0)
                }
            ]
        );
    }
}
