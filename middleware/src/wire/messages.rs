//! Message types. Requests and their answers come in pairs (`Prepare`/`Promise`,
//! `Accept`/`Accepted`, `MembersRequest`/`MembersResponse`).

use crate::id::{GroupName, ProcessId, ViewId};
use crate::view::{Member, View};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// The protocol version carried in every envelope. A frame of another version is refused.
pub const PROTOCOL_VERSION: u16 = 1;

/// A proposal number for deciding a group's next view (one consensus instance per view).
/// Ordered by round, then by proposer, so two proposers never share a ballot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Ballot {
    /// Raised by a proposer above every round it has seen.
    pub round: u64,
    /// The proposing process.
    pub proposer: ProcessId,
}

/// Everything a frame carries: who sent it, for which group, and what.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// [`PROTOCOL_VERSION`] of the sender.
    pub version: u16,
    /// The sending process.
    pub sender: ProcessId,
    /// The sender's listen address (unspecified for clients, which do not listen).
    pub sender_addr: SocketAddr,
    /// Per-sender frame counter, strictly increasing; authenticated frames with a counter seen
    /// before are refused as replays.
    pub seq: u64,
    /// The group the body concerns, for group-scoped bodies.
    pub group: Option<GroupName>,
    /// The message itself.
    pub body: Body,
}

/// Message bodies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    /// Failure detector: "I am alive". Any frame counts as a sign of life. It also carries the
    /// sender's installed view of each of its groups, so a member that missed a view change, or
    /// was excluded without hearing of it, is told within a heartbeat (anti-entropy).
    Heartbeat {
        /// The sender's installed view id per group.
        views: Vec<(GroupName, ViewId)>,
    },
    /// Failure detector: a peer silent for the suspect timeout is asked directly before it is
    /// suspected.
    Probe,
    /// Answer to [`Body::Probe`].
    ProbeAck,
    /// Membership: `member` asks to join; sent to seeds, forwarded by members to the coordinator.
    /// `last_epoch` is the highest epoch the joiner installed, so its next view is later still.
    JoinRequest {
        /// The joining process and its address.
        member: Member,
        /// The highest view epoch the joiner has installed in this group (0 if none).
        last_epoch: u64,
    },
    /// Membership: `member` leaves gracefully; sent to the coordinator.
    LeaveRequest {
        /// The leaving process.
        member: ProcessId,
    },
    /// Membership, phase 1 of deciding the view after `base`.
    Prepare {
        /// The view being succeeded (carried whole so a lagging member can install it first).
        base: View,
        /// The proposal number.
        ballot: Ballot,
    },
    /// Answer to [`Body::Prepare`]: a promise to accept nothing below `ballot`, with the
    /// proposal this member already accepted, if any.
    Promise {
        /// The view being succeeded.
        base: ViewId,
        /// The ballot promised.
        ballot: Ballot,
        /// The highest proposal accepted so far for this base view.
        accepted: Option<(Ballot, View)>,
    },
    /// Membership, phase 2: accept `view` as the successor of `base`.
    Accept {
        /// The view being succeeded.
        base: View,
        /// The proposal number.
        ballot: Ballot,
        /// The proposed next view.
        view: View,
    },
    /// Answer to [`Body::Accept`].
    Accepted {
        /// The view being succeeded.
        base: ViewId,
        /// The ballot accepted.
        ballot: Ballot,
    },
    /// Answer to `Prepare` or `Accept` that this member promised a higher ballot.
    Rejected {
        /// The view being succeeded.
        base: ViewId,
        /// The ballot this member has promised.
        promised: Ballot,
    },
    /// Membership: `view` was decided as the successor of `base` by a majority of `base`.
    Install {
        /// The view it succeeds (`None` for a group's first view).
        base: Option<ViewId>,
        /// The ballot that decided it.
        ballot: Ballot,
        /// The decided view.
        view: View,
    },
    /// Answer to a membership message about an older view: the sender's newer installed view.
    Stale {
        /// The sender's current view.
        view: View,
    },
    /// Membership: who are you in this group? A view coordinator sends it to seeds outside its
    /// view, with its own view, so two views of one group (a bootstrap race) find each other.
    Discover {
        /// The sender's installed view.
        view: Option<View>,
    },
    /// Answer to [`Body::Discover`] and to a `JoinRequest`: the sender's view, if it is a member.
    DiscoverReply {
        /// The sender's installed view, or `None` while it is not a member.
        view: Option<View>,
    },
    /// Membership: the group you are in yields to another view of the same group (a bootstrap
    /// race or a healed partition made two); leave it and join through `target`.
    MergeInto {
        /// A member of the view that absorbs this one.
        target: SocketAddr,
    },
    /// Client: resolve a group name to its current members (group address expansion).
    MembersRequest,
    /// Answer to [`Body::MembersRequest`].
    MembersResponse {
        /// The node's current view of the group, or `None` if it is not a member.
        view: Option<View>,
    },
    /// Sent (unauthenticated) just before a node closes a connection over a bad frame.
    Refused {
        /// Why, for the peer's log.
        reason: String,
    },
}

impl Body {
    /// Bodies a node accepts without authentication: a client's read-only query, the answer
    /// to it, and the notice of a refusal. Nothing that changes a node's state.
    pub fn allowed_unauthenticated(&self) -> bool {
        matches!(
            self,
            Body::MembersRequest | Body::MembersResponse { .. } | Body::Refused { .. }
        )
    }

    /// A short name for logs and counters.
    pub fn kind(&self) -> &'static str {
        match self {
            Body::Heartbeat { .. } => "heartbeat",
            Body::Probe => "probe",
            Body::ProbeAck => "probe_ack",
            Body::JoinRequest { .. } => "join_request",
            Body::LeaveRequest { .. } => "leave_request",
            Body::Prepare { .. } => "prepare",
            Body::Promise { .. } => "promise",
            Body::Accept { .. } => "accept",
            Body::Accepted { .. } => "accepted",
            Body::Rejected { .. } => "rejected",
            Body::Install { .. } => "install",
            Body::Stale { .. } => "stale",
            Body::Discover { .. } => "discover",
            Body::DiscoverReply { .. } => "discover_reply",
            Body::MergeInto { .. } => "merge_into",
            Body::MembersRequest => "members_request",
            Body::MembersResponse { .. } => "members_response",
            Body::Refused { .. } => "refused",
        }
    }
}
