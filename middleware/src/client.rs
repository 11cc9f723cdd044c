//! What a process outside a group uses: resolve a group name to its current members through
//! any node (group address expansion for clients).

use crate::id::{GroupName, Incarnation, NodeId, ProcessId};
use crate::view::View;
use crate::wire::codec::FRAME_BYTES_MAX_DEFAULT;
use crate::wire::{Body, ClusterKey, Envelope, FrameCodec, FrameError, PROTOCOL_VERSION};
use futures::StreamExt;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio_util::codec::FramedRead;

/// The node id clients use in envelopes; nodes never have it.
pub const CLIENT_NODE_ID: NodeId = NodeId(0);

/// A query that failed. Nothing changed at the node.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No connection to the node.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The node.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The node did not answer in time.
    #[error("no answer from {0} in time")]
    Timeout(SocketAddr),
    /// The node refused the query.
    #[error("{addr} refused the query: {reason}")]
    Refused {
        /// The node.
        addr: SocketAddr,
        /// Its reason.
        reason: String,
    },
    /// The node closed the connection without answering.
    #[error("{0} closed the connection without answering")]
    Closed(SocketAddr),
    /// The answer did not open.
    #[error("bad answer from {addr}: {source}")]
    Frame {
        /// The node.
        addr: SocketAddr,
        /// What was wrong.
        source: FrameError,
    },
}

/// Asks the node at `via` for the current view of `group`. `Ok(None)`: the node is not a
/// member of that group. With `key`, the query is authenticated; without, it is sent plain,
/// which nodes accept for this read-only query.
pub async fn query_members(
    via: SocketAddr,
    group: &GroupName,
    key: Option<ClusterKey>,
    timeout: Duration,
) -> Result<Option<View>, ClientError> {
    let work = async {
        let stream = tokio::net::TcpStream::connect(via)
            .await
            .map_err(|source| ClientError::Connect { addr: via, source })?;
        let (read, mut write) = stream.into_split();
        let codec = FrameCodec::new(key, FRAME_BYTES_MAX_DEFAULT);
        let request = Envelope {
            version: PROTOCOL_VERSION,
            sender: ProcessId {
                node: CLIENT_NODE_ID,
                incarnation: Incarnation::now(),
            },
            sender_addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            seq: 0,
            group: Some(group.clone()),
            body: Body::MembersRequest,
        };
        let frame = codec
            .seal(request)
            .map_err(|source| ClientError::Frame { addr: via, source })?;
        write
            .write_all(&frame)
            .await
            .map_err(|source| ClientError::Connect { addr: via, source })?;
        let mut frames = FramedRead::new(read, codec.decoder());
        match frames.next().await {
            Some(Ok(envelope)) => match envelope.body {
                Body::MembersResponse { view } => Ok(view),
                Body::Refused { reason } => Err(ClientError::Refused { addr: via, reason }),
                other => Err(ClientError::Frame {
                    addr: via,
                    source: FrameError::Malformed(format!("unexpected {} answer", other.kind())),
                }),
            },
            Some(Err(source)) => Err(ClientError::Frame { addr: via, source }),
            None => Err(ClientError::Closed(via)),
        }
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| ClientError::Timeout(via))?
}
