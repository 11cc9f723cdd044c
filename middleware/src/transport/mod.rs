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

use crate::proto::node::ConnectionId;
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
    /// The transport has shut down.
    #[error("transport is shut down")]
    Shutdown,
}

/// Moves sealed frames (length prefix included) to nodes and back to inbound connections.
/// Never blocks: a frame that cannot be queued is refused with a [`SendError`].
pub trait Transport {
    /// Queues `frame` for the node listening at `to`.
    fn send(&mut self, to: SocketAddr, frame: Bytes) -> Result<(), SendError>;
    /// Queues `frame` as an answer on inbound `connection`.
    fn reply(&mut self, connection: ConnectionId, frame: Bytes) -> Result<(), SendError>;
}

use crate::proto::node::NodeOutput;
use crate::wire::FrameCodec;

/// Carries out the transport part of a node core's outputs, the same way in every shell: each
/// `Send`, `SendAll` and `Reply` is sealed by `codec` and queued on `transport`; every other output (an
/// event for the application) is handed to `on_event`. A frame that cannot be sealed or queued
/// is dropped with a log line: the protocols treat it as lost.
pub fn dispatch(
    outputs: Vec<NodeOutput>,
    codec: &FrameCodec,
    transport: &mut impl Transport,
    mut on_event: impl FnMut(NodeOutput),
) {
    for output in outputs {
        let queued = match output {
            NodeOutput::Send { to, envelope } => codec
                .seal(envelope)
                .map_err(|e| e.to_string())
                .and_then(|frame| transport.send(to, frame).map_err(|e| e.to_string())),
            // One frame for all: the receivers' replay windows are per sender, so each of them
            // accepts the frame's counter once.
            NodeOutput::SendAll { to, envelope } => codec
                .seal(envelope)
                .map_err(|e| e.to_string())
                .and_then(|frame| {
                    let mut result = Ok(());
                    for addr in to {
                        if let Err(e) = transport.send(addr, frame.clone()) {
                            result = Err(e.to_string());
                        }
                    }
                    result
                }),
            NodeOutput::Reply {
                connection,
                envelope,
            } => codec
                .seal(envelope)
                .map_err(|e| e.to_string())
                .and_then(|frame| {
                    transport
                        .reply(connection, frame)
                        .map_err(|e| e.to_string())
                }),
            event => {
                on_event(event);
                Ok(())
            }
        };
        if let Err(error) = queued {
            tracing::debug!(%error, "frame not sent");
        }
    }
}
