//! What a node tells an operator: its status (`viewsync status`, the metrics endpoint) and
//! its events as they happen (`viewsync monitor`). These travel in [`Body::StatusResponse`]
//! and [`Body::MonitorEvents`]; their field names are the ones `viewsync status --json`
//! prints (see docs/OPERATIONS.md, "Reading status").
//!
//! [`Body::StatusResponse`]: super::Body::StatusResponse
//! [`Body::MonitorEvents`]: super::Body::MonitorEvents

use super::messages::Blocked;
use crate::id::{GroupName, NodeId, ProcessId, ViewId};
use crate::view::View;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// A node's status: who it is, its groups, its peers and its counters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// The node process (node id and incarnation).
    pub process: ProcessId,
    /// The address it listens on.
    pub addr: SocketAddr,
    /// Milliseconds since the node started.
    pub uptime_ms: u64,
    /// Each group it belongs to or is joining.
    pub groups: Vec<GroupState>,
    /// The peers the failure detector suspects now.
    pub suspected: Vec<ProcessId>,
    /// The outbound connections to peers.
    pub peers: Vec<PeerState>,
    /// The node's counters.
    pub counters: StatusCounters,
}

impl NodeStatus {
    /// Whether the node is blocked in any of its groups.
    pub fn is_blocked(&self) -> bool {
        self.groups.iter().any(|g| g.blocked.is_some())
    }
}

/// Where a node stands in one group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Standing {
    /// Asking to join (or rejoining after an exclusion).
    Joining,
    /// A member of the installed view.
    Member,
    /// Leaving gracefully.
    Leaving,
    /// Left.
    Left,
}

impl Standing {
    /// The lower-case name printed by `viewsync status`.
    pub fn name(self) -> &'static str {
        match self {
            Standing::Joining => "joining",
            Standing::Member => "member",
            Standing::Leaving => "leaving",
            Standing::Left => "left",
        }
    }
}

/// One group at a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupState {
    /// The group.
    pub group: GroupName,
    /// Where the node stands in it.
    pub standing: Standing,
    /// The installed view, if the node is a member.
    pub view: Option<View>,
    /// The member this node treats as coordinator: the oldest member it does not suspect.
    pub coordinator: Option<ProcessId>,
    /// The total order's sequencer: the view's first member.
    pub sequencer: Option<ProcessId>,
    /// Why the node cannot go on in the group, if it is blocked.
    pub blocked: Option<Blocked>,
    /// Members the next view change treats as suspected.
    pub suspected: Vec<ProcessId>,
    /// Multicast entries held in the group's buffers (not yet stable or not yet delivered).
    pub unstable_entries: u64,
    /// Multicasts waiting in the group's outbox for credit.
    pub outbox: u64,
    /// What the group's service says of itself, if it reports anything.
    pub service: Option<ServiceState>,
}

/// What a group's service reports of itself (see
/// [`NodeHandle::report_service_status`](crate::runtime::NodeHandle::report_service_status)).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceState {
    /// The strategy's name (`passive`, `active`, `gossip`, `log`, ...).
    pub strategy: String,
    /// The position of the last update applied (the log index), if the strategy numbers them.
    pub applied: Option<u64>,
    /// Records in the write-ahead log (after the last snapshot), if it keeps one.
    pub log_records: Option<u64>,
    /// The data directory, if it keeps one.
    pub data_dir: Option<String>,
    /// Bytes of the files in the data directory.
    pub data_dir_bytes: Option<u64>,
}

/// An outbound connection to a peer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerState {
    /// The peer's address.
    pub addr: SocketAddr,
    /// Whether the connection is established now (`false`: connecting or backing off).
    pub connected: bool,
    /// Frames queued for it, not yet written.
    pub queued_frames: u64,
}

/// A node's counters, as `viewsync status` and the metrics show them. Every field but the
/// ones marked "now" counts up from the node's start.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCounters {
    /// Views installed over all groups.
    pub views_installed: u64,
    /// Suspicions raised by the failure detector.
    pub suspicions: u64,
    /// Suspicions contradicted later (the peer was alive).
    pub false_suspicions: u64,
    /// Frames accepted.
    pub frames_accepted: u64,
    /// Frames refused: over the size limit.
    pub frames_refused_too_large: u64,
    /// Frames refused: truncated, bad flag, malformed or wrong protocol version.
    pub frames_refused_malformed: u64,
    /// Frames refused: missing or wrong authentication.
    pub frames_refused_unauthenticated: u64,
    /// Frames refused: replayed or from a stale incarnation.
    pub frames_refused_replayed: u64,
    /// Connections closed over a bad frame.
    pub connections_closed_bad_frame: u64,
    /// Clients' replay windows forgotten to make room for newer clients.
    pub client_windows_evicted: u64,
    /// Frames sealed for sending.
    pub frames_sent: u64,
    /// Bytes written to peer connections.
    pub bytes_sent: u64,
    /// Write calls.
    pub write_batches: u64,
    /// Frames dropped because a peer's send queue was full.
    pub frames_dropped_queue_full: u64,
    /// Events a slow subscriber lost (the node's own subscribers and monitors).
    pub events_dropped: u64,
    /// Multicasts accepted.
    pub multicasts: u64,
    /// Multicasts delivered.
    pub delivered: u64,
    /// Entries retransmitted in answer to retransmission requests.
    pub retransmitted: u64,
    /// Entries received more than once.
    pub duplicates: u64,
    /// State transfers completed as a joiner.
    pub state_transfers: u64,
    /// Client requests handed to services.
    pub requests: u64,
    /// Client requests answered by services.
    pub requests_answered: u64,
    /// Multicast entries held in buffers now.
    pub buffered_entries: u64,
    /// Multicasts waiting for credit now.
    pub waiting_multicasts: u64,
}

/// Something that happened at a node, for `viewsync monitor`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeEvent {
    /// A view was installed.
    View {
        /// The view.
        view: View,
        /// Members new in it (since the previous view this node installed).
        joined: Vec<ProcessId>,
        /// Members of the previous view not in it.
        left: Vec<ProcessId>,
    },
    /// The node was removed from a group and joins it again.
    Excluded {
        /// The group.
        group: GroupName,
    },
    /// The node left a group.
    Left {
        /// The group.
        group: GroupName,
    },
    /// The failure detector suspects a peer.
    Suspected(ProcessId),
    /// A suspected peer was heard again (a false suspicion).
    Unsuspected(ProcessId),
    /// The node became blocked in a group.
    Blocked {
        /// The group.
        group: GroupName,
        /// On what.
        blocked: Blocked,
    },
    /// The node is no longer blocked in a group.
    Unblocked {
        /// The group.
        group: GroupName,
    },
    /// The node received a group's state by transfer (it joined or rejoined).
    StateTransferred {
        /// The group.
        group: GroupName,
        /// The view the state is the start of.
        view: ViewId,
    },
    /// A seed refused this node's frames (wrong key or protocol version).
    RefusedBy {
        /// The group being joined.
        group: GroupName,
        /// The seed.
        seed: SocketAddr,
        /// Its reason.
        reason: String,
    },
    /// An operator asked this node to evict a member (`viewsync evict`).
    EvictAsked {
        /// The group.
        group: GroupName,
        /// The node to evict.
        node: NodeId,
    },
}

/// A [`NodeEvent`] with when it happened (milliseconds since 1970, UTC, the node's clock).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StampedEvent {
    /// When, in milliseconds since 1970 (UTC).
    pub unix_ms: u64,
    /// What.
    pub event: NodeEvent,
}
