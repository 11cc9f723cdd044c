//! What a process outside a group uses: resolve a group name to its current members through
//! any node, and multicast to a group by name (group address expansion for clients).

use crate::id::{GroupName, Incarnation, NodeId, ProcessId};
use crate::view::View;
use crate::wire::codec::FRAME_BYTES_MAX_DEFAULT;
use crate::wire::{Blocked, Body, ClusterKey, Envelope, FrameCodec, FrameError, PROTOCOL_VERSION};
use bytes::Bytes;
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
    Ok(query_group(via, group, key, timeout).await?.view)
}

/// What a node says of a group: its view, and whether (and on what) it is blocked there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupStatus {
    /// The node's current view, or `None` if it is not a member.
    pub view: Option<View>,
    /// Why the node cannot go on in the group, if it is blocked.
    pub blocked: Option<Blocked>,
}

/// Asks the node at `via` for its view of `group` and whether it is blocked there (as
/// [`query_members`] does, with the blocked report).
pub async fn query_group(
    via: SocketAddr,
    group: &GroupName,
    key: Option<ClusterKey>,
    timeout: Duration,
) -> Result<GroupStatus, ClientError> {
    match request(via, group, Body::MembersRequest, key, timeout).await? {
        Body::MembersResponse { view, blocked } => Ok(GroupStatus { view, blocked }),
        other => Err(unexpected(via, &other)),
    }
}

/// Why a multicast by group name failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No node answered, or none is a member of the group.
    #[error("no member of group {group} reachable through {tried} address(es): {last}")]
    NoMember {
        /// The group.
        group: GroupName,
        /// How many addresses were tried.
        tried: usize,
        /// The last problem seen.
        last: String,
    },
    /// A member refused the multicast (too large, outbox full); nothing was sent.
    #[error("{addr} refused the multicast: {reason}")]
    Refused {
        /// The member.
        addr: SocketAddr,
        /// Its reason.
        reason: String,
    },
}

/// Multicasts `payload` to `group` from outside it: resolves the group name through `seeds`
/// to its current view, then hands the message to a member (the coordinator first), which
/// multicasts it with the group's ordering. Needs the cluster key (nodes accept no change of
/// state unauthenticated). Returns the member that accepted it.
pub async fn send_to_group(
    seeds: &[SocketAddr],
    group: &GroupName,
    payload: Bytes,
    key: Option<ClusterKey>,
    timeout: Duration,
) -> Result<SocketAddr, SendError> {
    let mut last = String::from("no address given");
    let mut tried = 0;
    let mut members: Vec<SocketAddr> = Vec::new();
    for seed in seeds {
        tried += 1;
        match query_members(*seed, group, key.clone(), timeout).await {
            Ok(Some(view)) => {
                members = view.members.iter().map(|m| m.addr).collect();
                break;
            }
            Ok(None) => last = format!("{seed} is not a member"),
            Err(error) => last = error.to_string(),
        }
    }
    for member in members {
        tried += 1;
        let body = Body::GroupSend {
            ordering: None,
            payload: payload.clone(),
        };
        match request(member, group, body, key.clone(), timeout).await {
            Ok(Body::GroupSendResult { error: None }) => return Ok(member),
            Ok(Body::GroupSendResult {
                error: Some(reason),
            }) => {
                return Err(SendError::Refused {
                    addr: member,
                    reason,
                })
            }
            Ok(other) => last = unexpected(member, &other).to_string(),
            Err(error) => last = error.to_string(),
        }
    }
    Err(SendError::NoMember {
        group: group.clone(),
        tried,
        last,
    })
}

fn unexpected(addr: SocketAddr, body: &Body) -> ClientError {
    ClientError::Frame {
        addr,
        source: FrameError::Malformed(format!("unexpected {} answer", body.kind())),
    }
}

/// Sends one request to the node at `via` and returns its answer.
async fn request(
    via: SocketAddr,
    group: &GroupName,
    body: Body,
    key: Option<ClusterKey>,
    timeout: Duration,
) -> Result<Body, ClientError> {
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
            body,
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
                Body::Refused { reason } => Err(ClientError::Refused { addr: via, reason }),
                body => Ok(body),
            },
            Some(Err(source)) => Err(ClientError::Frame { addr: via, source }),
            None => Err(ClientError::Closed(via)),
        }
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| ClientError::Timeout(via))?
}
