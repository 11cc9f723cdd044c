//! The proposer: drives one decision at a time (single-decree Paxos over the base view's
//! voters) and keeps the rounds it heard of and when it may try again. It knows what a
//! proposal collected; what to propose and whom to tell is the membership core's business.

use crate::id::{ProcessId, ViewId};
#[cfg(feature = "planted-bugs")]
use crate::proto::planted::{self, PlantedBug};
use crate::proto::Time;
use crate::view::View;
use crate::wire::{Ballot, Decision, FlushReport, Round};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// The promises a proposer collected: what each promiser accepted before, and its report.
pub(super) type Promises = BTreeMap<ProcessId, (Option<(Ballot, Decision)>, FlushReport)>;

#[derive(Clone, Debug)]
enum Phase {
    Preparing {
        promises: Promises,
    },
    Accepting {
        decision: Decision,
        accepted: BTreeSet<ProcessId>,
    },
}

/// One attempt to decide the successor of `base`.
#[derive(Clone, Debug)]
struct Proposal {
    base: View,
    ballot: Ballot,
    started: Time,
    phase: Phase,
}

/// What a proposer asks of the membership core once a majority promised.
pub(super) enum Value<'a> {
    /// Propose this value again: it may have been chosen already.
    Adopt(Decision),
    /// Compose a value from these promises.
    Compose(&'a Promises),
}

/// This process's proposer state in one group.
#[derive(Clone, Debug, Default)]
pub(super) struct Proposer {
    proposal: Option<Proposal>,
    highest_round: Round,
    /// When this process last started a proposal.
    last_attempt: Option<Time>,
    /// Outbid by another proposer: no new proposal before this time.
    retry_not_before: Option<Time>,
    /// Since when the last proposal found no promiser holding the group's state: the view
    /// change waits (blocked) for a holder instead of deciding a view without the state.
    no_holder_since: Option<Time>,
}

impl Proposer {
    /// A round heard from a peer: the next proposal goes above it.
    pub(super) fn heard(&mut self, round: Round) {
        self.highest_round = self.highest_round.max(round);
    }

    /// Abandons the proposal in progress, if any.
    pub(super) fn abandon(&mut self) {
        self.proposal = None;
    }

    /// Abandons the proposal in progress unless it is about `view`.
    pub(super) fn abandon_unless_about(&mut self, view: ViewId) {
        if self.proposal.as_ref().is_some_and(|p| p.base.id != view) {
            self.proposal = None;
        }
    }

    /// A new view is installed: the backoff and the wait for a holder are over.
    pub(super) fn installed(&mut self) {
        self.retry_not_before = None;
        self.no_holder_since = None;
    }

    /// Joining again: the wait for a holder is over.
    pub(super) fn rejoining(&mut self) {
        self.proposal = None;
        self.no_holder_since = None;
    }

    /// Whether the last proposal found no promiser holding the state.
    pub(super) fn waits_for_holder(&self) -> bool {
        self.no_holder_since.is_some()
    }

    /// Keeps a proposal about `view` that has not timed out (true); drops any other.
    pub(super) fn keep_live(&mut self, now: Time, view: ViewId, timeout: Duration) -> bool {
        let Some(proposal) = &self.proposal else {
            return false;
        };
        let timed_out = now.saturating_sub(proposal.started) >= timeout;
        if proposal.base.id == view && !timed_out {
            return true;
        }
        self.proposal = None;
        false
    }

    /// Whether a new proposal may start now: not backing off after being outbid, and not
    /// retrying a search for a holder of the state before `timeout` (at the view change
    /// timeout, not at every tick).
    pub(super) fn may_start(&self, now: Time, timeout: Duration) -> bool {
        if self.retry_not_before.is_some_and(|t| now < t) {
            return false;
        }
        !self.no_holder_since.is_some_and(|_| {
            self.last_attempt
                .is_some_and(|t| now.saturating_sub(t) < timeout)
        })
    }

    /// Starts a proposal for the successor of `base` with a ballot above every round heard.
    pub(super) fn start(&mut self, now: Time, base: &View, me: ProcessId) -> Ballot {
        self.last_attempt = Some(now);
        // Rounds heard from peers are at most PROTOCOL_COUNTER_MAX (the codec refuses more).
        self.highest_round = self
            .highest_round
            .next()
            .expect("round below the protocol counter limit");
        let ballot = Ballot {
            round: self.highest_round,
            proposer: me,
        };
        self.proposal = Some(Proposal {
            base: base.clone(),
            ballot,
            started: now,
            phase: Phase::Preparing {
                promises: BTreeMap::new(),
            },
        });
        ballot
    }

    /// Records `from`'s promise if it answers the proposal in progress (phase 1).
    pub(super) fn record_promise(
        &mut self,
        from: ProcessId,
        base: ViewId,
        ballot: Ballot,
        accepted: Option<(Ballot, Decision)>,
        report: FlushReport,
    ) -> bool {
        let Some(proposal) = self.answered(from, base, ballot) else {
            return false;
        };
        let Phase::Preparing { promises } = &mut proposal.phase else {
            return false;
        };
        promises.insert(from, (accepted, report));
        true
    }

    fn answered(&mut self, from: ProcessId, base: ViewId, ballot: Ballot) -> Option<&mut Proposal> {
        self.proposal
            .as_mut()
            .filter(|p| p.base.id == base && p.ballot == ballot && p.base.contains(from))
    }

    /// Whether the proposal may move to phase 2, and with what: once a majority of voters
    /// promised and either every member not in `suspected` did, or the flush timeout passed
    /// (the silent ones are left out: every member of the next view that comes from the base
    /// must have promised, so that the cut covers whatever it delivered). Returns the base.
    pub(super) fn ready_to_accept(
        &self,
        now: Time,
        suspected: &BTreeSet<ProcessId>,
        flush_timeout: Duration,
    ) -> Option<(&View, Value<'_>)> {
        let proposal = self.proposal.as_ref()?;
        let Phase::Preparing { promises } = &proposal.phase else {
            return None;
        };
        if proposal.base.count_voters(promises.keys()) < proposal.base.majority() {
            return None;
        }
        let everyone_trusted = proposal
            .base
            .members
            .iter()
            .filter(|m| !suspected.contains(&m.id))
            .all(|m| promises.contains_key(&m.id));
        if !everyone_trusted && now.saturating_sub(proposal.started) < flush_timeout {
            return None;
        }
        let previously_accepted = possibly_chosen(&proposal.base, promises);
        #[cfg(feature = "planted-bugs")]
        let previously_accepted =
            previously_accepted.filter(|_| !planted::active(PlantedBug::ProposerIgnoresAccepted));
        let value = match previously_accepted {
            Some(decision) => Value::Adopt(decision),
            None => Value::Compose(promises),
        };
        Some((&proposal.base, value))
    }

    /// No promiser holds the group's state: deciding a view now would start it from nothing.
    /// The proposal is dropped and the view change waits for a holder to come back.
    pub(super) fn no_holder(&mut self, now: Time) {
        self.proposal = None;
        self.no_holder_since.get_or_insert(now);
    }

    /// Moves the proposal to phase 2 with `decision`; returns its ballot.
    pub(super) fn begin_accepting(&mut self, decision: Decision) -> Ballot {
        let proposal = self.proposal.as_mut().expect("ready to accept");
        proposal.phase = Phase::Accepting {
            decision,
            accepted: BTreeSet::new(),
        };
        proposal.ballot
    }

    /// Records `from`'s acceptance; once a majority of the base's voters accepted, the
    /// proposal is over and its decision and base are returned.
    pub(super) fn record_accepted(
        &mut self,
        from: ProcessId,
        base: ViewId,
        ballot: Ballot,
    ) -> Option<(Decision, View)> {
        let proposal = self.answered(from, base, ballot)?;
        let Phase::Accepting { decision, accepted } = &mut proposal.phase else {
            return None;
        };
        accepted.insert(from);
        let votes = proposal.base.count_voters(accepted.iter());
        #[cfg(feature = "planted-bugs")]
        let votes = if planted::active(PlantedBug::MajorityCountsLearners) {
            accepted.len()
        } else {
            votes
        };
        if votes < proposal.base.majority() {
            return None;
        }
        let decided = decision.clone();
        let base_view = proposal.base.clone();
        self.proposal = None;
        Some((decided, base_view))
    }

    /// Another proposer's higher ballot `promised` was preferred to the proposal in progress.
    pub(super) fn outbid(
        &mut self,
        now: Time,
        base: ViewId,
        promised: Ballot,
        me: ProcessId,
        timeout: Duration,
    ) {
        self.heard(promised.round);
        let Some(proposal) = self
            .proposal
            .as_ref()
            .filter(|p| p.base.id == base && p.ballot < promised)
        else {
            return;
        };
        // Outbid: drop this attempt and retry above `promised` after a backoff, if this
        // process is still the acting coordinator then. Two proposers that retried at once
        // would outbid each other forever (both suspect the other, or a healed partition
        // left two acting coordinators): the backoff is jittered per process and round, and
        // a proposer outbid by an older member of the base waits a whole timeout longer,
        // so the older one finishes.
        let older = proposal.base.rank_of(promised.proposer) < proposal.base.rank_of(me);
        let jitter = timeout.mul_f64(backoff_fraction(me, promised.round));
        let defer = if older { timeout } else { Duration::ZERO };
        self.retry_not_before = Some(now + timeout / 4 + jitter + defer);
        self.proposal = None;
    }

    /// A one-line account of the proposal in progress, for traces.
    pub(super) fn describe(&self) -> String {
        let proposal = self.proposal.as_ref().map(|p| {
            let phase = match &p.phase {
                Phase::Preparing { promises } => {
                    format!("preparing {:?}", promises.keys().collect::<Vec<_>>())
                }
                Phase::Accepting { decision, accepted } => format!(
                    "accepting {} cut {:?} joiners {:?} accepted {:?}",
                    decision.view, decision.cut, decision.joiners, accepted
                ),
            };
            format!(
                "{} ballot {:?} started {:?} {phase}",
                p.base.id, p.ballot, p.started
            )
        });
        format!("proposal {proposal:?}")
    }
}

/// A fraction in `[0, 0.5)` that differs between processes and rounds, for a proposer's
/// backoff (cores take no randomness; a hash of who and when spreads retries just as well).
fn backoff_fraction(me: ProcessId, round: Round) -> f64 {
    let mut x = me.node.0 ^ me.incarnation.0.rotate_left(17) ^ round.0.rotate_left(41);
    // splitmix64's finaliser.
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    (x % 1000) as f64 / 2000.0
}

/// The value a proposer must adopt from `promises` (Paxos phase 1b): the one accepted under
/// the highest ballot among those that may have been chosen.
///
/// A value was chosen only if a majority of the base's voters accepted it, and every proposal
/// after a choice carries the chosen value, so each of those voters still reports it as its
/// latest accepted value. A value that fewer than a majority of voters can report (counting
/// every voter that did not promise as one that might) was never chosen, and adopting it
/// would only be a liability: it was composed from promises that may no longer be true (its
/// only voter's snapshot may have failed since), and following it can block the group for
/// good. Learners' acceptances count for nothing, as in the decision itself.
fn possibly_chosen(base: &View, promises: &Promises) -> Option<Decision> {
    let silent_voters = base
        .voters()
        .iter()
        .filter(|m| !promises.contains_key(&m.id))
        .count();
    let reported_by_voters = |decision: &Decision| {
        promises
            .iter()
            .filter(|(id, (accepted, _))| {
                base.is_voter(**id) && accepted.as_ref().is_some_and(|(_, d)| d == decision)
            })
            .count()
    };
    promises
        .values()
        .filter_map(|(accepted, _)| accepted.as_ref())
        .filter(|(_, decision)| reported_by_voters(decision) + silent_voters >= base.majority())
        .max_by_key(|(ballot, _)| *ballot)
        .map(|(_, decision)| decision.clone())
}
