//! What a node tells its subscribers, and its counters.

use crate::id::{GroupName, ProcessId, ViewId};
use crate::proto::node::NodeOutput;
use crate::view::ViewChange;
use actix::prelude::*;
use std::net::SocketAddr;

/// What a node tells its subscribers.
#[derive(Clone, Debug, PartialEq, Eq, Message)]
#[rtype(result = "()")]
pub enum GroupEvent {
    /// A group installed a new view.
    ViewInstalled {
        /// The group.
        group: GroupName,
        /// The view and what changed.
        change: ViewChange,
    },
    /// This process was removed from a group and is joining again.
    Excluded {
        /// The group.
        group: GroupName,
        /// The view without this process, if known.
        by: Option<ViewId>,
    },
    /// This process left a group.
    Left {
        /// The group.
        group: GroupName,
    },
    /// The failure detector suspects a peer.
    Suspected(ProcessId),
    /// A suspected peer was heard from again (a false suspicion).
    Unsuspected(ProcessId),
    /// A seed refused this node's frames (wrong key or protocol version).
    RefusedBy {
        /// The group being joined.
        group: GroupName,
        /// The seed.
        seed: SocketAddr,
        /// Its reason.
        reason: String,
    },
}

impl GroupEvent {
    pub(super) fn from_output(output: NodeOutput) -> Option<Self> {
        Some(match output {
            NodeOutput::ViewInstalled { group, change } => {
                GroupEvent::ViewInstalled { group, change }
            }
            NodeOutput::Excluded { group, by } => GroupEvent::Excluded { group, by },
            NodeOutput::Left { group } => GroupEvent::Left { group },
            NodeOutput::Suspected(p) => GroupEvent::Suspected(p),
            NodeOutput::Unsuspected(p) => GroupEvent::Unsuspected(p),
            NodeOutput::RefusedBy {
                group,
                seed,
                reason,
            } => GroupEvent::RefusedBy {
                group,
                seed,
                reason,
            },
            NodeOutput::Send { .. }
            | NodeOutput::ViewAccepted { .. }
            | NodeOutput::SendAll { .. }
            | NodeOutput::Reply { .. }
            | NodeOutput::Request(_)
            | NodeOutput::Group { .. } => return None,
        })
    }
}

/// A snapshot of a node's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Views installed over all groups.
    pub views_installed: u64,
    /// Suspicions raised by the failure detector.
    pub suspicions: u64,
    /// Suspicions contradicted later (the peer was alive).
    pub false_suspicions: u64,
    /// Frames accepted by the codec.
    pub frames_accepted: u64,
    /// Frames refused by the codec (malformed, unauthenticated, replayed, too large).
    pub frames_refused: u64,
    /// Clients' replay windows forgotten to make room for newer clients (more than
    /// [`REPLAY_CLIENTS_MAX`](crate::wire::codec::REPLAY_CLIENTS_MAX) clients heard from).
    pub client_windows_evicted: u64,
    /// Connections closed over a bad frame.
    pub connections_closed_bad_frame: u64,
    /// Frames dropped because a peer's send queue was full.
    pub frames_dropped_queue_full: u64,
    /// Write calls; with `frames_sent`, shows how well batching works.
    pub write_batches: u64,
    /// Frames sealed for sending.
    pub frames_sent: u64,
    /// Bytes written to peer connections (every frame, length prefixes and tags included).
    pub bytes_sent: u64,
    /// Events a slow subscriber lost.
    pub events_dropped: u64,
    /// Multicasts accepted, over all groups.
    pub multicasts: u64,
    /// Multicasts delivered, over all groups.
    pub delivered: u64,
    /// Entries retransmitted in answer to retransmission requests.
    pub retransmitted: u64,
    /// Entries received more than once.
    pub duplicates: u64,
    /// Multicast entries held in buffers now.
    pub buffered_entries: u64,
    /// Multicasts waiting for credit now (outboxes plus parked requests).
    pub waiting_multicasts: u64,
    /// State transfers completed as a joiner.
    pub state_transfers: u64,
}

impl NodeStats {
    pub(super) fn with_multicast<'a>(
        mut self,
        cores: impl Iterator<Item = &'a crate::proto::multicast::Multicast>,
    ) -> Self {
        for core in cores {
            let s = core.stats();
            self.multicasts += s.multicasts;
            self.delivered += s.delivered;
            self.retransmitted += s.retransmitted;
            self.duplicates += s.duplicates;
            self.state_transfers += s.state_transfers;
            self.buffered_entries += core.buffered_entries() as u64;
            self.waiting_multicasts += core.outbox_len() as u64;
        }
        self
    }
}
