//! What the simulator sees the protocol do, from the messages the cores send and the events
//! they report: for the coverage counts, the scenario's record and the blocking scripts.

use super::coverage::Hit;
use super::Simulation;
use crate::id::{ProcessId, ViewId};
use crate::proto::Time;
use crate::view::View;
use crate::wire::{Body, Envelope};
use std::collections::{BTreeMap, BTreeSet};

/// Protocol observations of a run.
#[derive(Debug, Default)]
pub struct Observed {
    /// The last view each process installed.
    pub(super) installed: BTreeMap<ProcessId, View>,
    /// When each view was first installed.
    pub(super) first_installed: BTreeMap<ViewId, Time>,
    /// State transfers asked for, by joiner and view, with whether they completed.
    transfers: BTreeMap<(ProcessId, ViewId), bool>,
    /// Views that promoted a learner.
    promotions: BTreeSet<ViewId>,
    /// Views some member reported blocked in for want of a majority of voters.
    pub(super) blocked_no_majority: BTreeSet<ViewId>,
    /// Views some member reported blocked in for want of a holder of the state.
    pub(super) blocked_no_holder: BTreeSet<ViewId>,
    /// Bases for which an `Accept` was sent.
    pub(super) accepts_for: BTreeSet<ViewId>,
    /// When the last `Prepare` or `Accept` was sent.
    pub(super) last_consensus: Time,
    /// The base each process last promised or accepted in.
    promised_in: BTreeMap<ProcessId, ViewId>,
    /// States restored: (process, when).
    restores: Vec<(ProcessId, Time)>,
    /// `Accepted` answers sent: (acceptor, base, when).
    pub(super) accepted: Vec<(ProcessId, ViewId, Time)>,
    /// When each process reported a graceful leave done (or given up), with whether it gave up.
    pub(super) left: Vec<(ProcessId, Time, bool)>,
}

impl Observed {
    /// Whether `process` asked for a state transfer it has not completed.
    pub(super) fn transferring(&self, process: ProcessId) -> bool {
        self.transfers
            .iter()
            .any(|((p, _), done)| *p == process && !done)
    }

    /// Whether any state was restored at or after `at`.
    pub(super) fn restored_after(&self, at: Time) -> bool {
        self.restores.iter().any(|(_, t)| *t >= at)
    }
}

impl Simulation {
    /// A message a process sends.
    pub(super) fn observe_send(&mut self, envelope: &Envelope) {
        let sender = envelope.sender;
        let observed = &mut self.observed;
        match &envelope.body {
            Body::Nak { view, .. } => {
                self.coverage.hit(Hit::Nak);
                // A retransmission request for a view the sender is ending (it promised in it,
                // or installed a later one) fetches the cut.
                let ending = observed.promised_in.get(&sender) == Some(view)
                    || observed
                        .installed
                        .get(&sender)
                        .is_some_and(|v| v.id != *view);
                if ending {
                    self.coverage.hit(Hit::CutFetchNak);
                }
            }
            Body::StateRequest { view, .. } => {
                if let std::collections::btree_map::Entry::Vacant(entry) =
                    observed.transfers.entry((sender, *view))
                {
                    entry.insert(false);
                    self.coverage.hit(Hit::TransferStarted);
                }
            }
            Body::Prepare { .. } => observed.last_consensus = self.now,
            Body::Accept { base, .. } => {
                observed.last_consensus = self.now;
                observed.accepts_for.insert(base.id);
                self.script_saw_accept(envelope);
            }
            Body::Promise { base, .. } => {
                observed.promised_in.insert(sender, *base);
            }
            Body::Accepted { base, .. } => {
                observed.promised_in.insert(sender, *base);
                observed.accepted.push((sender, *base, self.now));
            }
            _ => {}
        }
    }

    /// `process` installed `view`.
    pub(super) fn observe_install(&mut self, process: ProcessId, view: &View) {
        if !self.observed.first_installed.contains_key(&view.id) {
            self.observed.first_installed.insert(view.id, self.now);
            self.coverage.hit(Hit::View);
            self.note_view(view);
        }
        self.record.resolve(view.id.epoch, self.now);
        let previous = self.observed.installed.insert(process, view.clone());
        let promoted = previous.is_some_and(|p| p.contains(process) && !p.is_voter(process))
            && view.is_voter(process);
        if promoted {
            self.observed.promotions.insert(view.id);
        }
        self.script_saw_install(process, view);
    }

    /// Node `i`'s process `process` reported its leave done: it gave up if no view without it
    /// came (its last epoch is still that of the view it installed).
    pub(super) fn observe_left(&mut self, i: usize, process: ProcessId) {
        let last_epoch = self.nodes[i]
            .core
            .as_ref()
            .and_then(|c| c.groups().next())
            .map(|g| g.last_epoch());
        let installed = self.observed.installed.get(&process).map(|v| v.id.epoch);
        let timed_out = last_epoch.is_some() && last_epoch == installed;
        if timed_out {
            self.coverage.hit(Hit::LeaveTimedOut);
        }
        self.observed.left.push((process, self.now, timed_out));
    }

    /// `process` restored the state for `view` (a delta from its own position if `delta`).
    pub(super) fn observe_restore(&mut self, process: ProcessId, view: ViewId, delta: bool) {
        self.coverage.hit(Hit::TransferCompleted);
        self.coverage.hit(if delta {
            Hit::TransferDelta
        } else {
            Hit::TransferWhole
        });
        self.observed.transfers.insert((process, view), true);
        self.observed.restores.push((process, self.now));
    }

    /// Adds what was observed over the run to the coverage (at the end).
    pub(super) fn count_observed(&mut self) {
        let o = &self.observed;
        let interrupted = o.transfers.values().filter(|done| !**done).count() as u64;
        let counts = [
            (Hit::TransferInterrupted, interrupted),
            (Hit::LearnerPromotion, o.promotions.len() as u64),
            (Hit::BlockedNoMajority, o.blocked_no_majority.len() as u64),
            (Hit::BlockedNoHolder, o.blocked_no_holder.len() as u64),
        ];
        for (hit, n) in counts {
            self.coverage.add(hit, n);
        }
        let network = self.network.borrow().stats();
        self.coverage.add(Hit::LateFrame, network.late);
        self.coverage
            .add(Hit::PauseBurstFrame, network.held_for_pause);
    }
}
