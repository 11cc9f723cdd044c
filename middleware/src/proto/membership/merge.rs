//! Merging concurrent views of one group: coordinators probe their seeds for other views
//! (`Discover`), and of two lineages the one that ranks lower yields and joins the other.

use super::output::MembershipOutput;
use crate::id::ProcessId;
use crate::proto::Time;
use crate::view::{Member, View};
use crate::wire::Body;
use std::net::SocketAddr;
use std::time::Duration;

/// What a member does about another view of its group it learnt of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// A later view that contains this process: install it.
    Install,
    /// Leave this view for the other and join it through the member that told of it; with
    /// `take_members_along`, tell the other members to do the same.
    Yield {
        /// This process coordinates its view and brings its members.
        take_members_along: bool,
    },
    /// Nothing to do.
    Ignore,
}

/// Judges `other`, a view of this group learnt from `from` through discovery, against
/// `mine`, the view installed at `me`. A later view that contains this process is installed;
/// a view of another lineage that ranks higher absorbs this one.
pub(super) fn judge(me: ProcessId, mine: &View, from: ProcessId, other: &View) -> Verdict {
    if other.group != mine.group || other.id == mine.id {
        return Verdict::Ignore;
    }
    if other.contains(me) {
        return Verdict::Install;
    }
    if mine.contains(from) {
        // A member of this view is in a view without this process, as late as this one or
        // later: a later view that excluded this process, or another lineage that took the
        // member over. Either way, follow it; a coordinator takes its members along.
        if other.id.epoch >= mine.id.epoch {
            return Verdict::Yield {
                take_members_along: mine.coordinator().id == me,
            };
        }
        return Verdict::Ignore;
    }
    if mine.coordinator().id != me {
        return Verdict::Ignore;
    }
    // The later view wins: an older one is either a stale view a cut-off minority still
    // holds (it must never absorb the majority that moved on) or the other side of a
    // bootstrap race, where any fixed rule that both sides compute alike will do.
    let rank = |v: &View| {
        (
            v.id.epoch,
            v.members.len(),
            std::cmp::Reverse(v.id.coordinator),
        )
    };
    if rank(other) > rank(mine) {
        Verdict::Yield {
            take_members_along: true,
        }
    } else {
        Verdict::Ignore
    }
}

/// Tells every member of `mine` but `me` and `from` to join the view `from` belongs to.
pub(super) fn take_members_along(
    me: ProcessId,
    mine: &View,
    from: Member,
    out: &mut Vec<MembershipOutput>,
) {
    for member in mine
        .members
        .iter()
        .filter(|m| m.id != me && m.id != from.id)
    {
        out.push(MembershipOutput::Send {
            to: member.addr,
            body: Body::MergeInto { target: from.addr },
        });
    }
}

/// A coordinator's periodic search for other views of its group among its seeds.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Discovery {
    last: Option<Time>,
}

impl Discovery {
    /// Probes the seeds outside `view` with `Discover`, at most once per `interval`, when
    /// `me` coordinates `view`.
    pub(super) fn probe(
        &mut self,
        now: Time,
        interval: Duration,
        me: ProcessId,
        view: &View,
        seeds: &[SocketAddr],
        out: &mut Vec<MembershipOutput>,
    ) {
        if view.coordinator().id != me {
            return;
        }
        if self.last.is_some_and(|t| now.saturating_sub(t) < interval) {
            return;
        }
        self.last = Some(now);
        for seed in seeds {
            if !view.members.iter().any(|m| m.addr == *seed) {
                out.push(MembershipOutput::Send {
                    to: *seed,
                    body: Body::Discover {
                        view: Some(view.clone()),
                    },
                });
            }
        }
    }
}
