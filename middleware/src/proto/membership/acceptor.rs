//! The acceptor: this member's side of the consensus that decides each view change. It
//! answers `Prepare` and `Accept` for one instance (the successor of one base view) and keeps
//! what it promised and accepted there; it knows nothing of proposals, joins or multicast.

use crate::id::ViewId;
#[cfg(feature = "planted-bugs")]
use crate::proto::planted::{self, PlantedBug};
use crate::view::Member;
use crate::wire::{AcceptedView, Ballot, Body, CutEntry, Decision};

/// A proposal this member will accept once it holds the cut. Until then it has only
/// promised: an acceptor that cannot get the cut (its holders crashed) never accepts it, so
/// a later proposer is never forced to adopt a cut nobody can deliver.
#[derive(Clone, Debug)]
struct AwaitingCut {
    proposer: Member,
    base: ViewId,
    ballot: Ballot,
    decision: Decision,
}

/// This member's acceptor state for the instance deciding the successor of `base`.
#[derive(Clone, Debug, Default)]
pub(super) struct Acceptor {
    base: Option<ViewId>,
    promised: Option<Ballot>,
    accepted: Option<(Ballot, Decision)>,
    /// Kept apart from the instance state: moving to another instance does not drop it (it
    /// is dropped when next checked, or explicitly), as before the acceptor had a type.
    awaiting_cut: Option<AwaitingCut>,
}

impl Acceptor {
    /// Moves to the instance deciding the successor of `base`, forgetting the previous one.
    fn instance(&mut self, base: ViewId) {
        if self.base != Some(base) {
            self.base = Some(base);
            self.promised = None;
            self.accepted = None;
        }
    }

    /// Forgets the instance (promises and acceptances), not a proposal awaiting its cut.
    pub(super) fn reset(&mut self) {
        self.base = None;
        self.promised = None;
        self.accepted = None;
    }

    /// Forgets the instance unless it decides the successor of `view`: promises made for the
    /// installed view's successor (as a listed voter before this process installed it) stand,
    /// forgetting them could accept a lower ballot.
    pub(super) fn keep_only(&mut self, view: ViewId) {
        if self.base != Some(view) {
            self.reset();
        }
    }

    /// Drops the proposal waiting for its cut.
    pub(super) fn forget_awaiting(&mut self) {
        self.awaiting_cut = None;
    }

    /// Phase 1b: promises `ballot` for the successor of `base` unless a higher one was
    /// promised. `Ok` carries what was accepted before; `Err` the ballot promised instead.
    pub(super) fn on_prepare(
        &mut self,
        base: ViewId,
        ballot: Ballot,
    ) -> Result<Option<(Ballot, Decision)>, Ballot> {
        self.instance(base);
        if self.promised.is_none_or(|p| ballot > p) {
            #[cfg(feature = "planted-bugs")]
            let forgotten = self.promised;
            self.promised = Some(ballot);
            #[cfg(feature = "planted-bugs")]
            if planted::active(PlantedBug::AcceptorForgetsPromise) {
                self.promised = forgotten;
            }
            Ok(self.accepted.clone())
        } else {
            Err(self.promised.unwrap_or(ballot))
        }
    }

    /// Phase 2b, first half: takes `decision` of `proposer` unless a higher ballot was
    /// promised (`Err` carries it). It is only accepted (and answered) once this member
    /// holds the cut: see [`Acceptor::answer_once_held`]. Returns the decision kept.
    pub(super) fn on_accept(
        &mut self,
        proposer: Member,
        base: ViewId,
        ballot: Ballot,
        decision: Decision,
    ) -> Result<&Decision, Ballot> {
        self.instance(base);
        if self.promised.is_some_and(|p| ballot < p) {
            return Err(self.promised.unwrap_or(ballot));
        }
        self.promised = Some(ballot);
        let awaiting = self.awaiting_cut.insert(AwaitingCut {
            proposer,
            base,
            ballot,
            decision,
        });
        Ok(&awaiting.decision)
    }

    /// Phase 2b, second half: accepts the proposal waiting for its cut once `holds` says
    /// this member holds it, and returns the `Accepted` to send its proposer, with the view
    /// accepted (for the shell to record durably first). A proposal outbid meanwhile is
    /// dropped.
    pub(super) fn answer_once_held(
        &mut self,
        holds: impl FnOnce(ViewId, &[CutEntry]) -> bool,
    ) -> Option<(Member, Body, AcceptedView)> {
        let awaiting = self.awaiting_cut.as_ref()?;
        let still_promised =
            self.base == Some(awaiting.base) && self.promised.is_some_and(|p| p <= awaiting.ballot);
        if !still_promised {
            self.awaiting_cut = None;
            return None;
        }
        if !holds(awaiting.base, &awaiting.decision.cut) {
            return None;
        }
        let awaiting = self.awaiting_cut.take().expect("checked");
        let accepted = AcceptedView {
            base: awaiting.base,
            view: awaiting.decision.view.clone(),
        };
        self.promised = Some(awaiting.ballot);
        self.accepted = Some((awaiting.ballot, awaiting.decision));
        let reply = Body::Accepted {
            base: awaiting.base,
            ballot: awaiting.ballot,
        };
        Some((awaiting.proposer, reply, accepted))
    }

    /// Whether this acceptor already answered for the successor of a later view than
    /// `base`. Its state for `base` is gone then (an acceptor keeps one instance), so it must
    /// not answer for `base` again: a fresh promise there could go below one it made.
    pub(super) fn answered_later_instance(&self, base: ViewId) -> bool {
        self.base
            .is_some_and(|answered| answered.epoch > base.epoch)
    }

    /// Whether it promised anything for the successor of `view` (members are blocked then).
    pub(super) fn promised_in(&self, view: ViewId) -> bool {
        self.base == Some(view) && self.promised.is_some()
    }

    /// Whether a value for the successor of `view` has been accepted here, or waits for
    /// its cut.
    pub(super) fn accepted_in(&self, view: ViewId) -> bool {
        self.base == Some(view) && (self.accepted.is_some() || self.awaiting_cut.is_some())
    }

    /// A one-line account, for traces.
    pub(super) fn describe(&self) -> String {
        format!(
            "acceptor {:?}/{:?}/{:?} awaiting {:?}",
            self.base,
            self.promised,
            self.accepted.as_ref().map(|(b, d)| (b, d.view.id)),
            self.awaiting_cut
                .as_ref()
                .map(|a| (a.base, a.ballot, &a.decision.cut)),
        )
    }
}
