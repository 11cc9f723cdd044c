//! What every shell (the node actor, the simulator) does with a node's outputs, written once:
//! [`dispatch`] seals the frames and queues them on the transport, and hands everything else
//! back to the shell. With [`crate::proto::service_edge`] it is the whole of the composition
//! both shells run, so the simulator executes outputs exactly as production does.
//!
//! It sits above `proto`, `wire` and `transport` and below `runtime` and `sim`: the transports
//! know nothing of the cores' outputs, and the cores nothing of codecs or transports.

use crate::proto::node::NodeOutput;
use crate::proto::service_edge::EdgeOutput;
use crate::transport::Transport;
use crate::wire::FrameCodec;

/// Carries out the transport part of the edge's outputs, the same way in every shell: each
/// `Send`, `SendAll` and `Reply` is sealed by `codec` and queued on `transport`; every other
/// output (an event for subscribers or services, a snapshot request, an answer, a flush) is
/// handed to `on_event` in order. A frame that cannot be sealed or queued is dropped with a
/// log line: the protocols treat it as lost.
pub fn dispatch<T>(
    outputs: Vec<EdgeOutput<T>>,
    codec: &FrameCodec,
    transport: &mut (impl Transport + ?Sized),
    mut on_event: impl FnMut(EdgeOutput<T>),
) {
    for output in outputs {
        let queued = match output {
            EdgeOutput::Node(NodeOutput::Send { to, envelope }) => codec
                .seal(envelope)
                .map_err(|e| e.to_string())
                .and_then(|frame| transport.send(to, frame).map_err(|e| e.to_string())),
            // One frame for all: the receivers' replay windows are per sender, so each of them
            // accepts the frame's counter once.
            EdgeOutput::Node(NodeOutput::SendAll { to, envelope }) => codec
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
            EdgeOutput::Node(NodeOutput::Reply {
                connection,
                envelope,
            }) => codec
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
