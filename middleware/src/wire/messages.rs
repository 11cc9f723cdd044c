//! Message types. Requests and their answers come in pairs (`Prepare`/`Promise`,
//! `Accept`/`Accepted`, `MembersRequest`/`MembersResponse`).

use crate::id::{GroupName, ProcessId, ViewId};
use crate::view::{Member, View};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// The protocol version carried in every envelope. A frame of another version is refused.
pub const PROTOCOL_VERSION: u16 = 7;

/// A ballot's round. On the wire it is the bare integer it wraps (`serde(transparent)`), so
/// the encoding is the same as before it had a type.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Round(pub u64);

impl Round {
    /// The round after this one; `None` past `u64::MAX` (never reached: rounds heard from
    /// peers are at most [`PROTOCOL_COUNTER_MAX`]).
    pub fn next(self) -> Option<Round> {
        self.0.checked_add(1).map(Round)
    }
}

/// A position in one member's multicast stream of one view: entries are numbered from 1, and
/// `Seq(0)` means "none yet" (as in "every entry up to 0 is held"). On the wire it is the bare
/// integer it wraps (`serde(transparent)`), so the encoding is the same as before it had a type.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Seq(pub u64);

impl Seq {
    /// Before the first entry.
    pub const ZERO: Seq = Seq(0);
    /// Past every entry (no limit).
    pub const MAX: Seq = Seq(u64::MAX);

    /// The entry after this one.
    pub fn next(self) -> Seq {
        Seq(self.0 + 1)
    }

    /// `n` entries past this one, at most [`Seq::MAX`].
    pub fn saturating_add(self, n: u64) -> Seq {
        Seq(self.0.saturating_add(n))
    }

    /// How many entries lie after `earlier` up to this one (0 if `earlier` is not earlier).
    pub fn since(self, earlier: Seq) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

impl std::ops::Add<u64> for Seq {
    type Output = Seq;

    /// `n` entries past this one.
    fn add(self, n: u64) -> Seq {
        Seq(self.0 + n)
    }
}

impl std::fmt::Display for Seq {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A member's position in a view's member list: 0 is the oldest member (the coordinator, and
/// the multicast sequencer). Streams, acks and cuts are indexed by rank. On the wire it is
/// the bare `u32` it wraps (`serde(transparent)`).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Rank(pub u32);

impl Rank {
    /// The sequencer's rank.
    pub const SEQUENCER: Rank = Rank(0);

    /// The rank at position `index` of a member list.
    pub fn of(index: usize) -> Rank {
        Rank(index as u32)
    }

    /// The position in a member list (or in anything indexed by rank).
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl std::fmt::Display for Rank {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A proposal number for deciding a group's next view (one consensus instance per view).
/// Ordered by round, then by proposer, so two proposers never share a ballot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Ballot {
    /// Raised by a proposer above every round it has seen.
    pub round: Round,
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
        /// How `base` itself was decided (its base, ballot and decision), if the proposer
        /// knows: a member that missed that install ends its previous view with the decided
        /// cut instead of losing track of the state.
        base_decided: Option<(ViewId, Ballot, Decision)>,
    },
    /// Answer to [`Body::Prepare`]: a promise to accept nothing below `ballot`, with the
    /// proposal this member already accepted, if any.
    Promise {
        /// The view being succeeded.
        base: ViewId,
        /// The ballot promised.
        ballot: Ballot,
        /// The highest proposal accepted so far for this base view.
        accepted: Option<(Ballot, Decision)>,
        /// What this member holds of the base view's multicasts; it delivers no more of them
        /// until the next view is installed.
        report: FlushReport,
    },
    /// Membership, phase 2: accept `decision` as the successor of `base`.
    Accept {
        /// The view being succeeded.
        base: View,
        /// The proposal number.
        ballot: Ballot,
        /// How `base` itself was decided, as in [`Body::Prepare`].
        base_decided: Option<(ViewId, Ballot, Decision)>,
        /// The proposed next view and the cut of the base view's multicasts.
        decision: Decision,
    },
    /// Answer to [`Body::Accept`], sent once this member holds every multicast of the cut.
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
    /// Membership: `decision` was decided as the successor of `base` by a majority of `base`.
    Install {
        /// The view it succeeds (`None` when resent to a member that missed it: no cut).
        base: Option<ViewId>,
        /// The ballot that decided it.
        ballot: Ballot,
        /// The decided view and cut.
        decision: Decision,
    },
    /// Membership: a member has been blocked (it promised) for long without a new view; the
    /// coordinator finishes the view change.
    ViewChangeStalled {
        /// The view the member is blocked in.
        base: ViewId,
    },
    /// Membership: a learner of `view` (a member admitted without the state) has restored its
    /// state transfer and asks the coordinator to promote it to a voter in a view change.
    LearnerReady {
        /// The view the learner holds the state of.
        view: ViewId,
    },
    /// Multicast: entries of the stream of the member at rank `origin` of `view`, sent by that
    /// member or retransmitted by any holder.
    Data {
        /// The view the entries were sent in.
        view: ViewId,
        /// The rank of the original sender in `view`.
        origin: Rank,
        /// The entries, in sequence order.
        entries: Vec<Entry>,
    },
    /// Multicast: the sender's received-contiguous sequence number of every stream of `view`
    /// (its own entry is the highest it sent). Drives stability, garbage collection, flow
    /// control and retransmission of lost tails.
    Ack {
        /// The view.
        view: ViewId,
        /// Per rank, the highest sequence number up to which the sender holds every entry.
        received: Vec<Seq>,
    },
    /// Multicast: retransmit entries `from..=to` of the stream of rank `origin`.
    Nak {
        /// The view.
        view: ViewId,
        /// The stream.
        origin: Rank,
        /// First missing sequence number.
        from: Seq,
        /// Last sequence number wanted.
        to: Seq,
    },
    /// State transfer: a joiner asks the provider for the state snapshot of `view`, from
    /// `offset` on.
    StateRequest {
        /// The view at whose start the snapshot was taken.
        view: ViewId,
        /// The first byte wanted.
        offset: u64,
        /// The position of the durable state the joiner recovered and has applied nothing
        /// to since (a restarted member): the provider may send the updates after it (a
        /// delta) instead of the whole state. `None`: the whole state.
        since: Option<u64>,
    },
    /// State transfer: one chunk of the snapshot, or of a delta.
    StateChunk {
        /// The view at whose start the snapshot was taken.
        view: ViewId,
        /// Where this chunk starts.
        offset: u64,
        /// The snapshot's (or delta's) total length.
        total: u64,
        /// `Some(p)`: the bytes are a delta from position `p` (what the joiner asked
        /// `since`) up to the snapshot; `None`: the whole snapshot.
        since: Option<u64>,
        /// The chunk.
        bytes: Bytes,
    },
    /// Point-to-point message to one member of a group (not ordered with the multicasts).
    Direct {
        /// The message.
        payload: Bytes,
    },
    /// A process outside the group asks a member to multicast `payload` to the group on its
    /// behalf (group address expansion on the sending side).
    GroupSend {
        /// The ordering to use, or the group's default.
        ordering: Option<Ordering>,
        /// The message.
        payload: Bytes,
    },
    /// Answer to [`Body::GroupSend`].
    GroupSendResult {
        /// `None` if the member accepted the message, else why not.
        error: Option<String>,
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
    /// Membership, total-failure recovery: a restarted former member that finds no member of
    /// the group says which view it last installed and how far its durable service state
    /// goes, so the restarted members of that view can agree which of them re-forms the group
    /// (see `proto::membership::join`). Only restarted former members with durable state
    /// send it; the others ignore it.
    Recovering {
        /// The sender's claim.
        claim: RecoveryClaim,
        /// Whether the receiver, recovering too, should answer with its own claim.
        answer: bool,
        /// Whose bid to re-form the group the sender backs, and its own bid.
        vote: RecoveryVote,
    },
    /// Client: a request for the group's service (its bytes in the service's own encoding).
    /// The member answers with [`Body::Response`] carrying the same `tag`, at once when it
    /// refuses, or when the service has answered.
    Request {
        /// Chosen by the client to match the answer (a later answer to an earlier request
        /// cannot be taken for this one's).
        tag: u64,
        /// The request.
        #[serde(deserialize_with = "crate::wire::codec::frame_bytes")]
        payload: Bytes,
    },
    /// Answer to [`Body::Request`]: the service's reply, or why the request was not taken.
    Response {
        /// The request's tag.
        tag: u64,
        /// The reply or the refusal.
        outcome: Outcome,
    },
    /// Client: resolve a group name to its current members (group address expansion).
    MembersRequest,
    /// Answer to [`Body::MembersRequest`].
    MembersResponse {
        /// The node's current view of the group, or `None` if it is not a member.
        view: Option<View>,
        /// Why the node cannot go on in the group, if it is blocked.
        blocked: Option<Blocked>,
    },
    /// Sent (unauthenticated) just before a node closes a connection over a bad frame.
    Refused {
        /// Why, for the peer's log.
        reason: String,
    },
    /// Operator: the node's status (`viewsync status`). Read-only, so accepted without the
    /// key, like [`Body::MembersRequest`].
    StatusRequest,
    /// Answer to [`Body::StatusRequest`].
    StatusResponse {
        /// The node's status.
        status: Box<super::status::NodeStatus>,
    },
    /// Operator: stream this node's events on this connection (`viewsync monitor`) until it
    /// closes. Read-only, accepted without the key.
    MonitorRequest,
    /// The events streamed after a [`Body::MonitorRequest`], oldest first.
    MonitorEvents {
        /// The events.
        events: Vec<super::status::StampedEvent>,
        /// Events dropped (the oldest) since the previous frame because the subscriber's
        /// buffer was full.
        dropped: u64,
    },
    /// Operator, authenticated: leave the envelope's group gracefully, or, without a group,
    /// leave every group and stop the node (`viewsync leave`).
    LeaveCommand,
    /// Operator, authenticated: remove `node` from the envelope's group at once, as if the
    /// failure detector suspected it (`viewsync evict`). A member that is not the acting
    /// coordinator passes it on to the coordinator.
    EvictCommand {
        /// The node to remove.
        node: crate::id::NodeId,
    },
    /// Answer to [`Body::LeaveCommand`] and [`Body::EvictCommand`].
    CommandResult {
        /// What the node did, or why it did nothing.
        outcome: Result<String, String>,
    },
    /// A member of view `base` tells its acting coordinator which members of `base` its
    /// failure detector suspects. In a view larger than `monitors + 1` only a member's
    /// watchers notice its crash, so they report it (and repeat the report while it stands).
    Suspicions {
        /// The view the suspects are members of.
        base: ViewId,
        /// The suspected members (at most the view's members).
        suspects: Vec<ProcessId>,
    },
}

/// The largest view epoch or ballot round a peer may send. Cores add one to what they hear
/// (next epoch, next round); a value past this is refused as a bad frame, so that arithmetic
/// can never overflow, however long a group lives (2^62 view changes).
pub const PROTOCOL_COUNTER_MAX: u64 = 1 << 62;

impl Body {
    /// The largest view epoch or ballot round this body carries (0 if none), checked against
    /// [`PROTOCOL_COUNTER_MAX`] when a frame is opened.
    pub fn max_counter(&self) -> u64 {
        fn view(v: &View) -> u64 {
            v.id.epoch
        }
        fn decision(d: &Decision) -> u64 {
            d.view.id.epoch
        }
        fn decided(d: &Option<(ViewId, Ballot, Decision)>) -> u64 {
            d.as_ref().map_or(0, |(b, ballot, d)| {
                b.epoch.max(ballot.round.0).max(decision(d))
            })
        }
        match self {
            Body::Heartbeat { views } => views.iter().map(|(_, v)| v.epoch).max().unwrap_or(0),
            Body::JoinRequest { last_epoch, .. } => *last_epoch,
            Body::Recovering { claim, vote, .. } => claim
                .last_view
                .id
                .epoch
                .max(claim.accepted.as_ref().map_or(0, |a| a.view.id.epoch))
                .max(vote.round),
            Body::Prepare {
                base,
                ballot,
                base_decided,
            } => view(base).max(ballot.round.0).max(decided(base_decided)),
            Body::Promise {
                base,
                ballot,
                accepted,
                ..
            } => base.epoch.max(ballot.round.0).max(
                accepted
                    .as_ref()
                    .map_or(0, |(b, d)| b.round.0.max(decision(d))),
            ),
            Body::Accept {
                base,
                ballot,
                base_decided,
                decision: d,
            } => view(base)
                .max(ballot.round.0)
                .max(decided(base_decided))
                .max(decision(d)),
            Body::Accepted { base, ballot } => base.epoch.max(ballot.round.0),
            Body::Rejected { base, promised } => base.epoch.max(promised.round.0),
            Body::Install {
                base,
                ballot,
                decision: d,
            } => base
                .map_or(0, |b| b.epoch)
                .max(ballot.round.0)
                .max(decision(d)),
            Body::ViewChangeStalled { base } | Body::Suspicions { base, .. } => base.epoch,
            Body::LearnerReady { view } => view.epoch,
            Body::Data { view, .. }
            | Body::Ack { view, .. }
            | Body::Nak { view, .. }
            | Body::StateRequest { view, .. }
            | Body::StateChunk { view, .. } => view.epoch,
            Body::Stale { view: v } => view(v),
            Body::Discover { view: v }
            | Body::DiscoverReply { view: v }
            | Body::MembersResponse { view: v, .. } => v.as_ref().map_or(0, view),
            Body::Probe
            | Body::ProbeAck
            | Body::LeaveRequest { .. }
            | Body::Direct { .. }
            | Body::GroupSend { .. }
            | Body::GroupSendResult { .. }
            | Body::Request { .. }
            | Body::Response { .. }
            | Body::MergeInto { .. }
            | Body::MembersRequest
            | Body::Refused { .. }
            | Body::StatusRequest
            | Body::StatusResponse { .. }
            | Body::MonitorRequest
            | Body::MonitorEvents { .. }
            | Body::LeaveCommand
            | Body::EvictCommand { .. }
            | Body::CommandResult { .. } => 0,
        }
    }

    /// Bodies a node accepts without authentication: a client's read-only queries (members,
    /// status, monitor), the answers to them, and the notice of a refusal. Nothing that
    /// changes a node's state: the operator's commands ([`Body::LeaveCommand`],
    /// [`Body::EvictCommand`]) need the key.
    pub fn allowed_unauthenticated(&self) -> bool {
        matches!(
            self,
            Body::MembersRequest
                | Body::MembersResponse { .. }
                | Body::Refused { .. }
                | Body::StatusRequest
                | Body::StatusResponse { .. }
                | Body::MonitorRequest
                | Body::MonitorEvents { .. }
                | Body::CommandResult { .. }
        )
    }

    /// Whether this is an operator's request (status, monitor, leave, evict) or the answer to
    /// one: the node's shell handles these, never the protocol cores.
    pub fn is_operator(&self) -> bool {
        matches!(
            self,
            Body::StatusRequest
                | Body::StatusResponse { .. }
                | Body::MonitorRequest
                | Body::MonitorEvents { .. }
                | Body::LeaveCommand
                | Body::EvictCommand { .. }
                | Body::CommandResult { .. }
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
            Body::ViewChangeStalled { .. } => "view_change_stalled",
            Body::LearnerReady { .. } => "learner_ready",
            Body::Data { .. } => "data",
            Body::Ack { .. } => "ack",
            Body::Nak { .. } => "nak",
            Body::StateRequest { .. } => "state_request",
            Body::StateChunk { .. } => "state_chunk",
            Body::Direct { .. } => "direct",
            Body::GroupSend { .. } => "group_send",
            Body::GroupSendResult { .. } => "group_send_result",
            Body::Request { .. } => "request",
            Body::Recovering { .. } => "recovering",
            Body::Response { .. } => "response",
            Body::Stale { .. } => "stale",
            Body::Discover { .. } => "discover",
            Body::DiscoverReply { .. } => "discover_reply",
            Body::MergeInto { .. } => "merge_into",
            Body::MembersRequest => "members_request",
            Body::MembersResponse { .. } => "members_response",
            Body::Refused { .. } => "refused",
            Body::StatusRequest => "status_request",
            Body::StatusResponse { .. } => "status_response",
            Body::MonitorRequest => "monitor_request",
            Body::MonitorEvents { .. } => "monitor_events",
            Body::LeaveCommand => "leave_command",
            Body::EvictCommand { .. } => "evict_command",
            Body::CommandResult { .. } => "command_result",
            Body::Suspicions { .. } => "suspicions",
        }
    }
}

/// The order in which a multicast is delivered relative to others.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ordering {
    /// Per sender, in the order sent.
    #[default]
    Fifo,
    /// After every multicast its sender had delivered when sending it (and FIFO).
    Causal,
    /// In the same order at every member (and FIFO); the view's sequencer assigns it.
    Total,
}

impl std::fmt::Display for Ordering {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Ordering::Fifo => "fifo",
            Ordering::Causal => "causal",
            Ordering::Total => "total",
        })
    }
}

/// One entry of a member's multicast stream in a view.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Position in the sender's stream, from 1, per view.
    pub seq: Seq,
    /// How the entry is ordered.
    pub ordering: Ordering,
    /// For causal entries: per rank, how many entries of that stream the sender had delivered
    /// when it sent this one. Empty otherwise.
    pub clock: Vec<Seq>,
    /// What it carries.
    pub item: Item,
}

/// What a stream entry carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Item {
    /// An application message (decoded as a slice of its frame, no copy).
    Payload(#[serde(deserialize_with = "crate::wire::codec::frame_bytes")] Bytes),
    /// The sequencer's total order for the listed `(rank, seq)` entries; only in the stream of
    /// rank 0.
    Order(Vec<(Rank, Seq)>),
}

/// Per stream of a view, the last entry delivered in that view and a member holding it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CutEntry {
    /// Entries `1..=upto` are delivered in the view; later ones are discarded.
    pub upto: Seq,
    /// Rank (in the base view) of a member that reported holding them.
    pub holder: Rank,
}

/// The value each view change decides: the next view and how the base view ends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// The next view.
    pub view: View,
    /// Per rank of the base view, the last entry delivered in the base view.
    pub cut: Vec<CutEntry>,
    /// Members of the next view that need a state transfer before delivering in it.
    pub joiners: Vec<ProcessId>,
}

/// What a member reports when it promises: how far it holds each stream of the base view.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlushReport {
    /// Per rank of the base view, the highest sequence number up to which it holds every entry
    /// (empty if it has no multicast state for the base view).
    pub received: Vec<Seq>,
    /// Whether it holds the service state (a member that joined and has not yet received its
    /// state transfer does not).
    pub ready: bool,
}

/// What a restarted former member recovers from its data directory: the last view it
/// installed, the latest view it accepted in a view change (which may have been decided and
/// installed by others after it crashed), and the position of its durable service state (the
/// service's own measure, e.g. the index of the last update in its log; larger is more
/// advanced).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryClaim {
    /// The last view the member installed.
    pub last_view: View,
    /// The latest view it accepted as the successor of a view it had installed, if that is
    /// later than `last_view`.
    pub accepted: Option<AcceptedView>,
    /// How far its durable state goes.
    pub position: u64,
}

/// A view an acceptor accepted as the successor of `base` (recorded durably before its
/// `Accepted` left, so that a total failure cannot hide a view that may have been decided).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcceptedView {
    /// The view it succeeds.
    pub base: ViewId,
    /// The view accepted.
    pub view: View,
}

/// Where a recovering former member stands on who re-forms the group after a total failure
/// (see `proto::membership::join`): its own bid, and the one bid it backs. A member backs at
/// most one bid at a time and keeps backing it until that bid ends (its bidder says so, or a
/// later incarnation of the bidder's node shows it died): a bidder that counted a majority of
/// backers has them to itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryVote {
    /// The round of its latest bid (0: it never bid).
    pub round: u64,
    /// Whether it bids now (in `round`): it holds the best claim it knows of.
    pub bidding: bool,
    /// The bid it backs: the bidder and its round (its own while it bids).
    pub backs: Option<(ProcessId, u64)>,
}

/// What a member answers a client's [`Body::Request`]: the service's reply bytes, or a
/// [`Refusal`].
pub type Outcome = Result<Bytes, Refusal>;

/// Why a member did not take a client's request, or gave up on it. Refused on arrival, the
/// request was not executed; but a member that held a request and then had to let it go (a
/// deposed primary answering `NotPrimary`, a primary answering `Busy(ViewChange)` for an
/// update caught in a view change) may have seen it executed elsewhere: a front end
/// retransmits the same request id, which the group answers from its stored response, and a
/// history records such an outcome as unknown until then. Which refusals are worth retrying,
/// and where, is [`Refusal::retry`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Refusal {
    /// This node is not a member of the group (or has not yet joined it).
    #[error("this node is not a member of the group")]
    NotMember,
    /// No service for the group runs on this node.
    #[error("no service for the group runs on this node")]
    NoService,
    /// The strategy serves this request at another member: the primary, whose address is
    /// given when this member knows it.
    #[error("not the primary{}", primary.map(|a| format!("; the primary is {a}")).unwrap_or_default())]
    NotPrimary {
        /// Where the primary listens, if known.
        primary: Option<SocketAddr>,
    },
    /// The member cannot go on in the group (no majority, no member holding the state): it
    /// answers nothing rather than answer from a view it may have lost.
    #[error("blocked: {}", .0.reason)]
    Blocked(Blocked),
    /// The request is larger than the member takes.
    #[error("request of {size} bytes is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The request's size in bytes.
        size: u64,
        /// The largest taken.
        limit: u64,
    },
    /// The member cannot take the request now; retry later (here or at another member).
    #[error("busy ({0}); retry later")]
    Busy(BusyReason),
    /// The service could not read the request (another service's encoding, a corrupt body).
    #[error("malformed request: {0}")]
    Malformed(String),
}

/// Why a member is [`Refusal::Busy`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BusyReason {
    /// A view change is under way; requests are taken again in the next view.
    ViewChange,
    /// The service has as many requests in hand as it takes.
    Overloaded,
    /// The member is still joining (waiting for its state).
    Joining,
}

impl std::fmt::Display for BusyReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BusyReason::ViewChange => "a view change is under way",
            BusyReason::Overloaded => "too many requests in hand",
            BusyReason::Joining => "still joining the group",
        })
    }
}

/// How a client should go on after a [`Refusal`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// At the member named (the primary).
    At(SocketAddr),
    /// At another member, or here later.
    Elsewhere,
    /// Not at all: the request itself is refused everywhere.
    Never,
}

impl Refusal {
    /// Whether and where the same request may succeed.
    pub fn retry(&self) -> Retry {
        match self {
            Refusal::NotPrimary {
                primary: Some(addr),
            } => Retry::At(*addr),
            Refusal::TooLarge { .. } | Refusal::Malformed(_) => Retry::Never,
            _ => Retry::Elsewhere,
        }
    }
}

/// Why a process cannot go on in a group: it blocks (delivers and installs nothing) rather
/// than continue unsafely, and says so in its log and to `viewsync members`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blocked {
    /// The view it is blocked in (`None` while it has none: joining).
    pub view: Option<ViewId>,
    /// For how long, in milliseconds.
    pub blocked_ms: u64,
    /// What it waits for.
    pub reason: BlockedReason,
}

/// What a blocked process waits for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BlockedReason {
    /// A majority of the view's voters to decide the next view: fewer are reachable.
    NoMajority {
        /// The voters of the view.
        voters: Vec<ProcessId>,
        /// The voters this process does not suspect (itself included).
        reachable: Vec<ProcessId>,
        /// How many must take part.
        needed: usize,
    },
    /// A member holding the group's state: none of the reachable members holds it, and the
    /// group never continues from an empty or invented state.
    NoStateHolder,
    /// A seed that is a member of the group: none answered, and this process does not found
    /// groups (`bootstrap` is not set), so it keeps asking.
    NoSeedAnswered,
    /// A majority of the voters of a view that may have been the last (the last view any
    /// claimant installed, or a later one a claimant accepted), after a total failure: this
    /// restarted former member re-forms the group with the others once enough of them are
    /// back.
    AwaitingLastView {
        /// The latest view any restarted member installed.
        view: ViewId,
        /// Its voters, by node.
        voters: Vec<crate::id::NodeId>,
        /// Those back (restarted and heard from, this process included).
        back: Vec<crate::id::NodeId>,
        /// How many must be back.
        needed: usize,
    },
}

impl std::fmt::Display for BlockedReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let nodes = |ids: &[ProcessId]| {
            ids.iter()
                .map(|p| p.node.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        match self {
            BlockedReason::NoMajority {
                voters,
                reachable,
                needed,
            } => write!(
                f,
                "no majority: {} of voters {} reachable ({}), {needed} needed",
                reachable.len(),
                nodes(voters),
                nodes(reachable)
            ),
            BlockedReason::NoStateHolder => {
                f.write_str("no reachable member holds the group's state")
            }
            BlockedReason::NoSeedAnswered => {
                f.write_str("no seed answered as a member, and this node does not bootstrap")
            }
            BlockedReason::AwaitingLastView {
                view,
                voters,
                back,
                needed,
            } => {
                let list = |ids: &[crate::id::NodeId]| {
                    ids.iter()
                        .map(|n| n.to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                };
                write!(
                    f,
                    "recovering from a total failure: {} of the voters {} of view {view} (which may have been the last) are back ({}), {needed} needed",
                    back.len(),
                    list(voters),
                    list(back)
                )
            }
        }
    }
}
