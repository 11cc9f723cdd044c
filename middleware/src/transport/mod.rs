//! Transports move sealed frames between nodes. Both promise little (frames may be lost,
//! delayed, reordered or duplicated; connections drop and come back): reliability and order
//! are protocol work.
//!
//! - [`tcp`]: real TCP, one outbound connection per peer with a bounded queue and batched
//!   writes, and a listener whose connections feed the node actor.
//! - [`memory`]: an in-process network for the simulator that carries the same sealed frames
//!   and injects seeded faults.

pub mod memory;
pub mod tcp;

use crate::id::{ConnectionId, ProcessId};
use crate::wire::Envelope;
use bytes::Bytes;
use std::net::SocketAddr;

/// A frame could not be queued. The frame is dropped; nothing else changes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The peer's send queue is full (the peer is slow, stopped or unreachable).
    #[error("send queue to {0} is full; frame dropped")]
    QueueFull(SocketAddr),
    /// The connection to answer on is gone.
    #[error("connection {0:?} is closed; frame dropped")]
    ConnectionClosed(ConnectionId),
    /// The connection to answer on has as many answers queued as it takes (its reader is
    /// slow); the frame is dropped, the connection stays.
    #[error("reply queue of connection {0:?} is full; frame dropped")]
    ReplyQueueFull(ConnectionId),
    /// The transport has shut down.
    #[error("transport is shut down")]
    Shutdown,
}

/// Moves sealed frames (length prefix included) to nodes and back to inbound connections.
/// Never blocks: a frame that cannot be queued is refused with a [`SendError`].
///
/// The node actor runs over any transport that implements it (TCP in production, the memory
/// network in multi-node tests); envelopes that arrive reach the actor as [`Inbound`].
pub trait Transport {
    /// Queues `frame` for the node listening at `to`.
    fn send(&mut self, to: SocketAddr, frame: Bytes) -> Result<(), SendError>;
    /// Queues `frame` as an answer on inbound `connection`.
    fn reply(&mut self, connection: ConnectionId, frame: Bytes) -> Result<(), SendError>;
    /// The processes frames arrived from since the last call, with when the last one did. A
    /// transport that reads frames apart from the node (TCP's reader tasks) reports them so
    /// that a node busy with a backlog still sees its peers alive; one that hands every frame
    /// to the node at once has nothing to add.
    fn take_heard(&mut self) -> Vec<(ProcessId, std::time::Instant)> {
        Vec::new()
    }
    /// The outbound connections it keeps to peers now: address, whether connected, and the
    /// frames queued (for `viewsync status`). None by default.
    fn peers(&self) -> Vec<crate::wire::status::PeerState> {
        Vec::new()
    }
    /// Its counters now.
    fn counters(&self) -> TransportCounters {
        TransportCounters::default()
    }
    /// Stops sending and receiving (the node stopped).
    fn shutdown(&mut self) {}
}

/// A transport's counters, as a node reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TransportCounters {
    /// Connections closed over a frame that failed to open.
    pub connections_closed_bad_frame: u64,
    /// Frames dropped because a peer's queue was full.
    pub frames_dropped_queue_full: u64,
    /// Write calls (each carries a batch of frames).
    pub write_batches: u64,
    /// Bytes written.
    pub bytes_written: u64,
}

/// An envelope that arrived, for the node actor.
#[derive(actix::Message, Debug)]
#[rtype(result = "()")]
pub struct Inbound {
    /// The opened envelope.
    pub envelope: Envelope,
    /// The connection it came on (answers to clients go back on it).
    pub connection: ConnectionId,
}
