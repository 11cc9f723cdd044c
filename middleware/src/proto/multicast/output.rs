//! What the multicast core hands its shell: outputs, delivered messages, refusals, counters.

use crate::id::{ProcessId, ViewId};
use crate::view::ViewChange;
use crate::wire::{Body, Ordering, Seq};
use bytes::Bytes;
use std::net::SocketAddr;

/// A delivered multicast.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Who multicast it.
    pub sender: ProcessId,
    /// The view it was sent and is delivered in.
    pub view: ViewId,
    /// Its position in the sender's stream of that view.
    pub seq: Seq,
    /// Its ordering.
    pub ordering: Ordering,
    /// The application bytes.
    pub payload: Bytes,
}

/// What the multicast core asks its shell to do or tell the service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MulticastOutput {
    /// Send `body`, scoped to this group, to `to`.
    Send {
        /// Destination address.
        to: SocketAddr,
        /// The message.
        body: Body,
    },
    /// Send `body` to each of `to` (one frame, sealed once).
    SendAll {
        /// Destination addresses.
        to: Vec<SocketAddr>,
        /// The message.
        body: Body,
    },
    /// Deliver a multicast to the service.
    Deliver(Message),
    /// A view change began: the service should expect no deliveries until the next view, and
    /// its multicasts wait until then.
    Block,
    /// The service's next view: everything of the previous view has been delivered.
    View(ViewChange),
    /// Take a snapshot of the service state now (after the last delivery of the previous
    /// view) and hand it to [`Multicast::handle_snapshot`](super::Multicast::handle_snapshot); joiners of `view` need it.
    SnapshotWanted(ViewId),
    /// A joiner of `view` is at position `since` (its recovered durable state): ask the
    /// service for the updates after `since` up to the snapshot it took for `view`, and hand
    /// the answer to [`Multicast::handle_delta`](super::Multicast::handle_delta) (`None` when
    /// it cannot; the joiner then gets the whole snapshot).
    DeltaWanted {
        /// The view the joiner starts in (whose snapshot the delta ends at).
        view: ViewId,
        /// The joiner's position.
        since: u64,
    },
    /// Replace the service state with `state` (a joiner's transfer is complete). Followed by
    /// the `View` it starts in.
    Restore {
        /// The view the state is the start of.
        view: ViewId,
        /// The state: a whole snapshot with `since: None`; with `since: Some(p)`, a delta
        /// the service applies to its own state at position `p`.
        state: Bytes,
        /// `Some(p)`: `state` is a delta from position `p` (the position this process
        /// registered), not a snapshot.
        since: Option<u64>,
    },
    /// A point-to-point message from a member.
    Direct {
        /// Sender.
        from: ProcessId,
        /// The message.
        payload: Bytes,
    },
}

/// Why a multicast was refused. Nothing was queued or sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MulticastError {
    /// The process is not a member of the group.
    #[error("not a member of the group")]
    NotMember,
    /// The payload exceeds `payload_bytes_max` (multicasts are not fragmented).
    #[error("payload of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// The payload size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// Flow control: the outbox holds `outbox_messages` multicasts waiting for credit.
    #[error("outbox full ({0} multicasts waiting for credit); retry later")]
    Full(usize),
}

/// Counters of the multicast core.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MulticastStats {
    /// Multicasts accepted from the service.
    pub multicasts: u64,
    /// Multicasts delivered.
    pub delivered: u64,
    /// Entries received twice (or retransmitted needlessly).
    pub duplicates: u64,
    /// Entries retransmitted in answer to a `Nak`.
    pub retransmitted: u64,
    /// Multicasts refused because the outbox was full.
    pub refused_full: u64,
    /// State transfers completed as a joiner.
    pub state_transfers: u64,
    /// Of those, the transfers that were deltas from this process's recovered position.
    pub delta_transfers: u64,
    /// Deltas this process served as a provider (the service answered one).
    pub deltas_served: u64,
    /// Snapshots the service could not take (this process then got the state again).
    pub snapshots_failed: u64,
    /// Views this process entered as a joiner with no voter to get the state from (it waits
    /// for a later view instead of starting empty). Never happens: decisions always name a
    /// holder. Checked to stay 0.
    pub states_lost: u64,
}
