//! The install lifecycle of the membership core: catching up to a decided view this process
//! missed, installing a decided view (or one heard of without its decision), creating the
//! group, being excluded and joining again, leaving.
//!
//! These are methods of [`Membership`] itself, since installing a view resets every role it
//! owns; they call only downward (into the roles and the multicast core), never back into
//! the rest of the core, so the core's dispatch in `mod.rs` uses them and they use nothing
//! of it.

use super::compose::Changes;
use super::output::{emit, MembershipOutput, Status};
use super::Membership;
use crate::id::ViewId;
use crate::proto::Time;
use crate::view::{View, ViewChange};
use crate::wire::{Ballot, Decision};
use std::net::SocketAddr;

impl Membership {
    /// Installs `base` first if it is a decided view this process missed. Returns whether
    /// `base` is the last view this process installed, so that it votes on its successor.
    pub(super) fn catch_up_to(
        &mut self,
        now: Time,
        base: &View,
        base_decided: Option<(ViewId, Ballot, Decision)>,
        out: &mut Vec<MembershipOutput>,
    ) -> bool {
        if base.id.epoch > self.last_epoch && base.contains(self.me.id) {
            // With the decision that made `base`, this member ends its previous view at the
            // decided cut, as if the missed install had arrived.
            self.handle_decided_view(now, base.clone(), base_decided, out);
        }
        // Also while joining again or after leaving: the group may still list this process in
        // its last view and need its vote.
        if self.view.as_ref().is_some_and(|v| v.id == base.id) {
            // After yielding or leaving, its streams are gone: it still holds the cut it
            // accepts, so give it streams to fetch into (a member keeps its own).
            self.multicast.shadow(base);
            return true;
        }
        // A bootstrap race can list a joiner in two views of the same epoch; it installs one,
        // yields it to the other and joins that one. It never installed the other (epochs
        // must increase), but its vote is needed to move it on: it votes as a member without
        // state, and the next view lists it as a joiner.
        let rival_lineage = matches!(self.status, Status::Joining { .. })
            && base.contains(self.me.id)
            && base.id.epoch == self.last_epoch;
        // A process whose leave timed out may be listed in a view decided after it gave up
        // (a value accepted before the leave was known and adopted by a later proposer):
        // without its vote that view may never reach a majority again. It votes, and asks
        // to be removed in the same view change.
        let left_but_listed = self.status == Status::Left
            && base.contains(self.me.id)
            && base.id.epoch >= self.last_epoch;
        let votes = rival_lineage || left_but_listed;
        if votes {
            // It must hold the cut like any acceptor: give it streams to fetch into.
            self.multicast.shadow(base);
        }
        votes
    }

    /// A view decided by a majority of its predecessor arrived: with its base, ballot and
    /// decision (from an `Install`), or alone (the base unknown: no cut).
    pub(super) fn handle_decided_view(
        &mut self,
        now: Time,
        view: View,
        decided: Option<(ViewId, Ballot, Decision)>,
        out: &mut Vec<MembershipOutput>,
    ) {
        if view.group != self.group || view.id.epoch <= self.last_epoch {
            return;
        }
        let decided = decided.filter(|(_, _, d)| d.view == view);
        if decided.is_none() && self.defers_undecided(now, &view) {
            return;
        }
        match self.status {
            Status::Left => {}
            Status::Joining { .. } => {
                if view.contains(self.me.id) {
                    self.install(now, view, decided, out);
                }
            }
            Status::Member | Status::Leaving { .. } => {
                if view.contains(self.me.id) {
                    self.install(now, view, decided, out);
                } else if matches!(self.status, Status::Leaving { .. }) {
                    self.last_epoch = view.id.epoch;
                    // Kept to pass on: a member that missed this install may hear of it only
                    // from this process.
                    self.last_decision = decided;
                    self.finish_leaving(out);
                } else {
                    let by = Some(view.id);
                    let via = view.coordinator().addr;
                    self.last_epoch = view.id.epoch;
                    self.last_decision = decided;
                    self.begin_joining(now, Some(via));
                    out.push(MembershipOutput::Excluded { by });
                }
            }
        }
    }

    /// Whether to wait for the decision of `view`, a later view listing this process heard of
    /// without it (see `undecided_view`).
    fn defers_undecided(&mut self, now: Time, view: &View) -> bool {
        let holds_state = self.status == Status::Member
            && self.multicast.holds_state()
            && view.contains(self.me.id)
            && self
                .view
                .as_ref()
                .is_some_and(|v| v.id.epoch < view.id.epoch);
        if !holds_state {
            return false;
        }
        // As the view's only voter this process is the only member it can get the state
        // from, and no successor of it can be decided without this process: installing it
        // without its cut would leave the group with no holder for good, while its decision
        // is still held by those that installed it and reaches this process when they are
        // reachable again (ring seed 13154: a joiner that had the view without its decision
        // told the only voter, cut off from the rest, and the voter gave its state up).
        let only_voter = matches!(view.voters(), [only] if only.id == self.me.id);
        if only_voter {
            if self.undecided_view.is_none() {
                self.undecided_view = Some((view.clone(), now));
            }
            return true;
        }
        match &self.undecided_view {
            Some((waiting, since)) if waiting.id.epoch >= view.id.epoch => {
                now.saturating_sub(*since) < self.config.view_change_timeout
            }
            _ => {
                self.undecided_view = Some((view.clone(), now));
                true
            }
        }
    }

    /// Installs `view`; `decided` carries its base, ballot and decision when known (a group's
    /// first view has none and is created here).
    fn install(
        &mut self,
        now: Time,
        view: View,
        decided: Option<(ViewId, Ballot, Decision)>,
        out: &mut Vec<MembershipOutput>,
    ) {
        let change = ViewChange::between(self.view.as_ref(), view.clone());
        self.last_epoch = view.id.epoch;
        debug_assert!(
            view.is_well_formed(),
            "installing an ill-formed view {view:?}"
        );
        debug_assert!(
            view.contains(self.me.id),
            "installing a view without this process"
        );
        self.changes.settle(now, &view);
        self.consensus.proposer.abandon_unless_about(view.id);
        self.consensus.acceptor.keep_only(view.id);
        if !matches!(self.status, Status::Leaving { .. }) {
            self.status = Status::Member;
        }
        self.force_change = false;
        self.consensus.promised_since = None;
        self.consensus.acceptor.forget_awaiting();
        self.joiner.saw_group();
        self.changes.promotions.clear();
        self.consensus.proposer.installed();
        self.undecided_view = None;
        out.push(MembershipOutput::ViewInstalled(change));
        let mut outputs = Vec::new();
        match &decided {
            Some((base, _, decision)) => {
                self.multicast
                    .install_decided(now, *base, decision, &mut outputs)
            }
            None => self.multicast.install_unverified(&view),
        }
        emit(out, outputs);
        self.last_decision = decided;
        self.view = Some(view);
    }

    pub(super) fn create_group(&mut self, out: &mut Vec<MembershipOutput>) {
        let view = View::of_voters(
            self.group.clone(),
            ViewId {
                epoch: self.last_epoch + 1,
                coordinator: self.me.id,
            },
            vec![self.me],
        );
        let mut outputs = Vec::new();
        self.multicast.install_created(&view, &mut outputs);
        let change = ViewChange::between(None, view.clone());
        self.last_epoch = view.id.epoch;
        self.consensus.acceptor.reset();
        self.status = Status::Member;
        self.view = Some(view);
        self.joiner.saw_group();
        self.last_decision = None;
        out.push(MembershipOutput::ViewInstalled(change));
        emit(out, outputs);
    }

    /// Starts (or restarts) joining. The last installed view and the acceptor state are kept:
    /// while the group still lists this process in that view, its vote may be needed to decide
    /// the next one, and a vote must never contradict a promise it made before.
    pub(super) fn begin_joining(&mut self, now: Time, via: Option<SocketAddr>) {
        self.status = Status::Joining { since: now, via };
        self.consensus.proposer.rejoining();
        self.changes = Changes::default();
        self.joiner.restart(via);
        self.last_request = None;
        self.consensus.acceptor.forget_awaiting();
        self.force_change = false;
        self.consensus.promised_since = None;
        self.multicast.leave_group(false);
    }

    pub(super) fn finish_leaving(&mut self, out: &mut Vec<MembershipOutput>) {
        self.status = Status::Left;
        self.consensus.proposer.abandon();
        self.consensus.acceptor.forget_awaiting();
        self.multicast.leave_group(true);
        out.push(MembershipOutput::Left);
    }
}
