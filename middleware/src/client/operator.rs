//! An operator's requests to one node: its status (`viewsync status`), its events as they
//! happen (`viewsync monitor`), and the commands `viewsync leave` and `viewsync evict`.
//! Status and monitor are read-only and go plain without a key; the commands need the
//! cluster key (a keyed node refuses them otherwise, and says so).

use super::{Client, ClientError, Connection};
use crate::id::{GroupName, NodeId, ProcessId};
use crate::wire::status::{NodeStatus, StampedEvent};
use crate::wire::{Body, ClusterKey, Envelope, FrameCodec, FrameError, PROTOCOL_VERSION};
use futures::StreamExt;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

impl Client {
    /// Sends one operator's request (scoped to `group`, or to the node) and returns the
    /// answer. Any failure drops the connection.
    async fn operator_request(
        &mut self,
        group: Option<GroupName>,
        body: Body,
    ) -> Result<Body, ClientError> {
        self.exchange(group, body).await
    }

    /// The node's status.
    pub async fn status(&mut self) -> Result<NodeStatus, ClientError> {
        match self.operator_request(None, Body::StatusRequest).await? {
            Body::StatusResponse { status } => Ok(*status),
            other => Err(self.unexpected(&other)),
        }
    }

    /// Asks the node to leave `group` gracefully, or, with `None`, to leave every group and
    /// stop. Returns what the node says it does; a node that cannot do it answers
    /// [`ClientError::Declined`].
    pub async fn leave(&mut self, group: Option<GroupName>) -> Result<String, ClientError> {
        let answer = self.operator_request(group, Body::LeaveCommand).await?;
        self.command_result(answer)
    }

    /// Asks the node, a member of `group`, to evict `node` from it now (see
    /// `NodeCore::handle_evict`). Returns what the node says it does.
    pub async fn evict(&mut self, group: GroupName, node: NodeId) -> Result<String, ClientError> {
        let answer = self
            .operator_request(Some(group), Body::EvictCommand { node })
            .await?;
        self.command_result(answer)
    }

    fn command_result(&mut self, answer: Body) -> Result<String, ClientError> {
        match answer {
            Body::CommandResult { outcome: Ok(done) } => Ok(done),
            Body::CommandResult {
                outcome: Err(reason),
            } => Err(ClientError::Declined {
                addr: self.node,
                reason,
            }),
            other => Err(self.unexpected(&other)),
        }
    }
}

/// Asks the node at `via` for its status, as a one-shot [`Client`].
pub async fn query_status(
    via: SocketAddr,
    key: Option<ClusterKey>,
    timeout: Duration,
) -> Result<NodeStatus, ClientError> {
    Client::new(via, key, timeout).status().await
}

/// What a monitor receives: events, and how many were dropped before them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MonitorBatch {
    /// Events the node dropped (the oldest) before these, because this monitor's buffer at
    /// the node was full.
    pub dropped: u64,
    /// The events, oldest first.
    pub events: Vec<StampedEvent>,
}

/// A `viewsync monitor` connection: the node's events as they happen.
#[derive(Debug)]
pub struct Monitor {
    addr: SocketAddr,
    connection: Connection,
}

impl Monitor {
    /// Connects to the node at `via` (within `timeout`) and asks for its events. The node
    /// first sends the views it is in and any block.
    pub async fn connect(
        via: SocketAddr,
        key: Option<ClusterKey>,
        timeout: Duration,
    ) -> Result<Monitor, ClientError> {
        let codec = FrameCodec::new(key, crate::wire::codec::FRAME_BYTES_MAX_DEFAULT);
        let stream = tokio::time::timeout(timeout, tokio::net::TcpStream::connect(via))
            .await
            .map_err(|_| ClientError::Timeout(via))?
            .map_err(|source| ClientError::Connect { addr: via, source })?;
        let _ = stream.set_nodelay(true);
        let (read, mut write) = stream.into_split();
        let request = Envelope {
            version: PROTOCOL_VERSION,
            sender: ProcessId::new_client(),
            sender_addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            seq: 0,
            group: None,
            body: Body::MonitorRequest,
        };
        let frame = codec
            .seal(request)
            .map_err(|source| ClientError::Frame { addr: via, source })?;
        write
            .write_all(&frame)
            .await
            .map_err(|source| ClientError::Connect { addr: via, source })?;
        Ok(Monitor {
            addr: via,
            connection: Connection {
                frames: tokio_util::codec::FramedRead::new(read, codec.decoder()),
                write,
                // The monitor request was just sent on it: the connection is in use.
                unused_since: None,
            },
        })
    }

    /// The next events; `None` once the node closed the connection (it stopped).
    pub async fn next(&mut self) -> Option<Result<MonitorBatch, ClientError>> {
        let addr = self.addr;
        match self.connection.frames.next().await? {
            Ok(envelope) => Some(match envelope.body {
                Body::MonitorEvents { events, dropped } => Ok(MonitorBatch { dropped, events }),
                Body::CommandResult {
                    outcome: Err(reason),
                } => Err(ClientError::Declined { addr, reason }),
                Body::Refused { reason } => Err(ClientError::Refused { addr, reason }),
                other => Err(ClientError::Frame {
                    addr,
                    source: FrameError::Malformed(format!("unexpected {} frame", other.kind())),
                }),
            }),
            Err(FrameError::Io(_)) => None,
            Err(source) => Some(Err(ClientError::Frame { addr, source })),
        }
    }
}
