//! Join and leave requests as a member answers them: a member that is not the acting
//! coordinator forwards them there; the acting coordinator records them for the next view
//! change (or resends an install the joiner missed).

use super::compose::Changes;
use super::output::{MembershipOutput, Status};
use crate::id::{ProcessId, ViewId};
use crate::view::{Member, View};
use crate::wire::{Ballot, Body, Decision, Round};

/// The member who is the acting coordinator of `view` as `me` sees it: the oldest member it
/// does not suspect (itself never).
pub(super) fn acting_coordinator<'v>(
    view: &'v View,
    me: ProcessId,
    changes: &Changes,
) -> Option<&'v Member> {
    view.members
        .iter()
        .find(|m| m.id == me || !changes.suspected.contains(&m.id))
}

/// What answering a request needs of the membership core.
pub(super) struct Requests<'a> {
    pub(super) me: Member,
    pub(super) status: &'a Status,
    /// The installed view, if this process is a member.
    pub(super) view: Option<&'a View>,
    /// The pending changes, which a request adds to.
    pub(super) changes: &'a mut Changes,
    /// The last decision installed, with its base and ballot (resent to a joiner that
    /// missed it).
    pub(super) last_decision: &'a Option<(ViewId, Ballot, Decision)>,
}

impl Requests<'_> {
    fn acting_coordinator(&self) -> Option<&Member> {
        acting_coordinator(self.view?, self.me.id, self.changes)
    }

    fn is_acting_coordinator(&self) -> bool {
        self.acting_coordinator()
            .is_some_and(|m| m.id == self.me.id)
    }

    /// `joiner` asks (through `from`) to join, having installed epochs up to `last_epoch`.
    /// Returns whether the join was recorded for the next view change (the caller then
    /// drives it).
    pub(super) fn join_request(
        &mut self,
        from: Member,
        joiner: Member,
        last_epoch: u64,
        out: &mut Vec<MembershipOutput>,
    ) -> bool {
        let Some(view) = self.view.cloned() else {
            if from.id == joiner.id && !matches!(self.status, Status::Left) {
                out.push(MembershipOutput::Send {
                    to: joiner.addr,
                    body: Body::DiscoverReply { view: None },
                });
            }
            return false;
        };
        if from.id == joiner.id {
            out.push(MembershipOutput::Send {
                to: joiner.addr,
                body: Body::DiscoverReply {
                    view: Some(view.clone()),
                },
            });
        }
        if view.contains(joiner.id) && joiner.id != self.me.id {
            let is_coordinator = self.acting_coordinator().is_some_and(|c| c.id == joiner.id);
            if is_coordinator {
                // The member this process takes for coordinator is asking to join: it is not
                // acting as a member of this view, so stop waiting for it to coordinate.
                self.changes.suspected.insert(joiner.id);
            }
        }
        if !self.is_acting_coordinator() {
            if let Some(coordinator) = self.acting_coordinator() {
                if from.id == joiner.id {
                    out.push(MembershipOutput::Send {
                        to: coordinator.addr,
                        body: Body::JoinRequest {
                            member: joiner,
                            last_epoch,
                        },
                    });
                }
            }
            return false;
        }
        if view.contains(joiner.id)
            && last_epoch < view.id.epoch
            && !self.changes.suspected.contains(&joiner.id)
        {
            // The joiner missed the install; send it again (with the decision if it is the
            // last one, so a joiner learns where its state comes from).
            let body = match self.last_decision {
                Some((base, ballot, decision)) if decision.view == view => Body::Install {
                    base: Some(*base),
                    ballot: *ballot,
                    decision: decision.clone(),
                },
                _ => Body::Install {
                    base: None,
                    ballot: Ballot {
                        round: Round::default(),
                        proposer: self.me.id,
                    },
                    decision: Decision {
                        view,
                        cut: Vec::new(),
                        joiners: Vec::new(),
                    },
                },
            };
            out.push(MembershipOutput::Send {
                to: joiner.addr,
                body,
            });
            return false;
        }
        self.changes.joins.insert(joiner.id, (joiner, last_epoch));
        true
    }

    /// `leaver` asks (through `from`) to leave. Returns whether the leave was recorded for
    /// the next view change (the caller then drives it).
    pub(super) fn leave_request(
        &mut self,
        from: Member,
        leaver: ProcessId,
        out: &mut Vec<MembershipOutput>,
    ) -> bool {
        let Some(view) = self.view else { return false };
        if !view.contains(leaver) {
            return false;
        }
        // The member this process takes for coordinator says itself that it is leaving: it
        // gave up (a leaving coordinator proposes its own leave, it never asks), so stop
        // waiting for it to coordinate, as for a coordinator asking to join.
        let coordinator_left = from.id == leaver
            && leaver != self.me.id
            && self.acting_coordinator().is_some_and(|c| c.id == leaver);
        if coordinator_left {
            self.changes.suspected.insert(leaver);
        }
        if self.is_acting_coordinator() {
            self.changes.leaves.insert(leaver);
            return true;
        } else if let Some(coordinator) = self.acting_coordinator() {
            out.push(MembershipOutput::Send {
                to: coordinator.addr,
                body: Body::LeaveRequest { member: leaver },
            });
        }
        false
    }
}
