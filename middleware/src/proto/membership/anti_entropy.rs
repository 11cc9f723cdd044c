//! Anti-entropy: what a process that installed a later view tells a peer still in an older
//! one (learnt from its heartbeat or its messages), so lost installs are repaired within a
//! heartbeat interval without acknowledging each one.

use super::output::{MembershipOutput, Status};
use crate::id::{ProcessId, ViewId};
use crate::view::{Member, View};
use crate::wire::{Ballot, Body, Decision};
use std::net::SocketAddr;

/// What this process installed, as anti-entropy sees it.
pub(super) struct Installed<'a> {
    pub(super) me: ProcessId,
    pub(super) status: &'a Status,
    /// The last view installed, also after leaving or being excluded.
    pub(super) view: Option<&'a View>,
    /// The last decision installed, with its base and ballot.
    pub(super) last_decision: &'a Option<(ViewId, Ballot, Decision)>,
}

impl Installed<'_> {
    /// The installed view while this process is a member.
    fn member_view(&self) -> Option<&View> {
        match self.status {
            Status::Member | Status::Leaving { .. } => self.view,
            _ => None,
        }
    }

    /// A peer's heartbeat said it has installed `peer_view` of this group. If this process
    /// knows a later view that contains the peer or excludes it, the peer is told.
    pub(super) fn answer_peer_view(
        &self,
        from: Member,
        peer_view: ViewId,
    ) -> Vec<MembershipOutput> {
        // The peer is still in the base of the last decision this process knows (also after
        // leaving or being excluded by it): send that decision, with its cut.
        if let Some((base, ballot, decision)) = &self.last_decision {
            if *base == peer_view {
                return vec![MembershipOutput::Send {
                    to: from.addr,
                    body: Body::Install {
                        base: Some(*base),
                        ballot: *ballot,
                        decision: decision.clone(),
                    },
                }];
            }
        }
        // This process's leave timed out, and the peer still has the view listing it: tell the
        // peer it left, or the peer may wait for it for ever (as its coordinator: a process
        // that left still answers probes, so it is never suspected).
        let listed = self
            .view
            .is_some_and(|v| v.id == peer_view && v.contains(self.me));
        if *self.status == Status::Left && listed {
            return vec![MembershipOutput::Send {
                to: from.addr,
                body: Body::LeaveRequest { member: self.me },
            }];
        }
        match self.member_view() {
            Some(view) if view.id.epoch > peer_view.epoch => {
                vec![MembershipOutput::Send {
                    to: from.addr,
                    body: newer_view_for(self.view, self.last_decision, peer_view),
                }]
            }
            // A member of this view is in another view of the same epoch: two lineages share
            // it (a bootstrap race). Ask for its view; `consider_other_view` resolves it.
            Some(view)
                if view.id.epoch == peer_view.epoch
                    && view.id != peer_view
                    && view.contains(from.id) =>
            {
                vec![MembershipOutput::Send {
                    to: from.addr,
                    body: Body::Discover {
                        view: Some(view.clone()),
                    },
                }]
            }
            _ => Vec::new(),
        }
    }

    /// Replies `Stale` (or the decision) to `to`, which asked in `base`, if this process
    /// has installed a later view. Returns whether it did.
    pub(super) fn reply_if_stale(
        &self,
        to: SocketAddr,
        base: ViewId,
        out: &mut Vec<MembershipOutput>,
    ) -> bool {
        match self.member_view() {
            Some(view) if view.id.epoch > base.epoch => {
                out.push(MembershipOutput::Send {
                    to,
                    body: newer_view_for(self.view, self.last_decision, base),
                });
                true
            }
            _ => false,
        }
    }
}

/// What to tell a member still in `its_view` about the later view installed here: the
/// decision with its cut if `its_view` is its base, else just the view.
pub(super) fn newer_view_for(
    view: Option<&View>,
    last_decision: &Option<(ViewId, Ballot, Decision)>,
    its_view: ViewId,
) -> Body {
    match last_decision {
        Some((base, ballot, decision)) if *base == its_view && view == Some(&decision.view) => {
            Body::Install {
                base: Some(*base),
                ballot: *ballot,
                decision: decision.clone(),
            }
        }
        _ => Body::Stale {
            view: view.cloned().expect("called with an installed view"),
        },
    }
}
