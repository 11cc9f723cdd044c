//! What the membership core tells its shell, and where a process stands in a group.

use crate::id::ViewId;
use crate::proto::multicast::MulticastOutput;
use crate::proto::Time;
use crate::view::ViewChange;
use crate::wire::{AcceptedView, Body};
use std::net::SocketAddr;

/// What the membership core asks its shell to do or tell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MembershipOutput {
    /// Send `body`, scoped to this group, to `to`.
    Send {
        /// Destination address.
        to: SocketAddr,
        /// The message.
        body: Body,
    },
    /// Send `body`, scoped to this group, to each of `to` (one frame, sealed once).
    SendAll {
        /// Destination addresses.
        to: Vec<SocketAddr>,
        /// The message.
        body: Body,
    },
    /// A new view is installed.
    ViewInstalled(ViewChange),
    /// This process accepted `view` as the successor of `base` in a view change. A shell with
    /// a data directory records it durably before it sends any later output of the same
    /// step (the `Accepted` among them): after a total failure, the restarted members must
    /// know of every view that may have been decided (see `join`).
    ViewAccepted(AcceptedView),
    /// This process was removed from the group (suspected, or its view yielded in a merge);
    /// it is joining again.
    Excluded {
        /// The view that excludes this process, if it is known.
        by: Option<ViewId>,
    },
    /// A graceful leave completed (or timed out); this process is no longer a member.
    Left,
    /// A seed refused this process's frames (wrong key or protocol); logged by the shell.
    RefusedBy {
        /// The seed.
        seed: SocketAddr,
        /// Its reason.
        reason: String,
    },
    /// An output of the group's multicast core that a membership step caused (promising
    /// freezes it, a decision installs it), passed on as it is, sends included: the node
    /// turns it into a frame or a service event, as it does the multicast's own outputs.
    Multicast(MulticastOutput),
}

/// Passes a membership step's multicast outputs on, in order.
pub(super) fn emit(out: &mut Vec<MembershipOutput>, outputs: Vec<MulticastOutput>) {
    out.extend(outputs.into_iter().map(MembershipOutput::Multicast));
}

/// Where a process stands in a group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// Asking seeds to join.
    Joining {
        /// When this join attempt began.
        since: Time,
        /// A member address learned to be in the group; tried first.
        via: Option<SocketAddr>,
    },
    /// In the installed view.
    Member,
    /// Waiting for the view without this process.
    Leaving {
        /// When the leave began.
        since: Time,
    },
    /// Left the group.
    Left,
}
