//! What a process outside a group uses: resolve a group name to its current members through
//! any node, and multicast to a group by name (group address expansion for clients).
//!
//! - [`Client`]: a long-lived client. One connection to one node, any number of requests over
//!   it (one at a time), and an identity of its own: a random client id
//!   ([`ProcessId::new_client`]) with its own frame counter, which nodes track in a replay
//!   window per client. Any number of clients may talk to a node at once, started in any
//!   order; each is still protected against replays of its frames. It reconnects by itself
//!   after a failed request, keeping its identity and counter. A front end holds one (or a
//!   few, for requests in parallel) for its whole life.
//! - [`query_members`] and [`send_to_group`]: one-shot helpers (the `viewsync members` and
//!   `viewsync send` commands), each a short-lived [`Client`].

mod operator;

pub use crate::id::CLIENT_NODE_ID;
use crate::id::{GroupName, ProcessId};
use crate::view::View;
use crate::wire::codec::{FrameDecoder, FRAME_BYTES_MAX_DEFAULT};
use crate::wire::{
    Blocked, Body, ClusterKey, Envelope, FrameCodec, FrameError, Ordering, Outcome,
    PROTOCOL_VERSION,
};
use bytes::Bytes;
use futures::StreamExt;
pub use operator::{query_status, Monitor, MonitorBatch};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_util::codec::FramedRead;

/// A request that failed. A query changed nothing at the node; for a multicast see
/// [`Client::group_send`].
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
    /// The node refused the request's frame (wrong key, replay, malformed) and closed the
    /// connection.
    #[error("{addr} refused the request: {reason}")]
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
    /// The node answered an operator's command without carrying it out (not a member of
    /// the group, no such member, ...); nothing changed, and the connection stays open.
    #[error("{addr} declined: {reason}")]
    Declined {
        /// The node.
        addr: SocketAddr,
        /// Its reason.
        reason: String,
    },
    /// The node answered a multicast request without taking the message (it is not a member
    /// of the group, its outbox is full, the message is too large); nothing was sent, and the
    /// connection stays open.
    #[error("{addr} did not accept the multicast: {reason}")]
    NotAccepted {
        /// The node.
        addr: SocketAddr,
        /// Its reason.
        reason: String,
    },
}

/// The open connection of a [`Client`].
#[derive(Debug)]
struct Connection {
    frames: FramedRead<OwnedReadHalf, FrameDecoder>,
    write: OwnedWriteHalf,
    /// When it was opened, until its first request: nodes close a connection that sends no
    /// frame within their `transport.auth_timeout`.
    unused_since: Option<std::time::Instant>,
}

/// A connection opened this long ago and not used yet is replaced before the first request,
/// rather than risking one the node is about to close for sending nothing
/// (`transport.auth_timeout`, at least twice this).
pub const FRESH_CONNECTION_MAX: Duration = Duration::from_millis(500);

/// A long-lived client of one node: one connection, many requests, its own identity and
/// frame counter (see the [module documentation](self)).
///
/// Requests take `&mut self`, so they go one at a time, each answered before the next is
/// sent; for requests in parallel use several clients (each with its own identity). A request
/// that fails for the connection's sake (connect, write, timeout, a refusal, a bad answer)
/// drops the connection, and the next request opens a new one to the same node (or to the
/// node chosen with [`Client::set_node`]) with the same identity, its counter going on.
#[derive(Debug)]
pub struct Client {
    id: ProcessId,
    node: SocketAddr,
    codec: FrameCodec,
    timeout: Duration,
    connection: Option<Connection>,
    /// The tag of the last [`Client::call`].
    next_tag: u64,
}

impl Client {
    /// A client of the node at `node`, with a fresh identity. Authenticated with `key` (which
    /// keyed clusters need for anything but [`Client::members`]); each request waits at most
    /// `timeout` (connecting included). Connects with the first request.
    pub fn new(node: SocketAddr, key: Option<ClusterKey>, timeout: Duration) -> Client {
        Client {
            id: ProcessId::new_client(),
            node,
            codec: FrameCodec::new(key, FRAME_BYTES_MAX_DEFAULT),
            timeout,
            connection: None,
            next_tag: 0,
        }
    }

    /// Like [`Client::new`], connecting at once.
    pub async fn connect(
        node: SocketAddr,
        key: Option<ClusterKey>,
        timeout: Duration,
    ) -> Result<Client, ClientError> {
        let mut client = Client::new(node, key, timeout);
        let connected = tokio::time::timeout(timeout, client.connection())
            .await
            .map_err(|_| ClientError::Timeout(node))?;
        connected?;
        Ok(client)
    }

    /// This client's identity: [`CLIENT_NODE_ID`] and its random client id.
    pub fn id(&self) -> ProcessId {
        self.id
    }

    /// The node the requests go to.
    pub fn node(&self) -> SocketAddr {
        self.node
    }

    /// How long each request waits for its answer (connecting included).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Whether a connection is open (the next request reuses it).
    pub fn is_connected(&self) -> bool {
        self.connection.is_some()
    }

    /// Sends the next requests to the node at `node` (over a new connection, with the same
    /// identity and counter).
    pub fn set_node(&mut self, node: SocketAddr) {
        if node != self.node {
            self.node = node;
            self.connection = None;
        }
    }

    /// Asks the node for the current view of `group`. `Ok(None)`: the node is not a member of
    /// that group. Without a key the query goes plain, which nodes accept for this read-only
    /// query.
    pub async fn members(&mut self, group: &GroupName) -> Result<Option<View>, ClientError> {
        Ok(self.group_status(group).await?.view)
    }

    /// Asks the node for its view of `group` and whether it is blocked there.
    pub async fn group_status(&mut self, group: &GroupName) -> Result<GroupStatus, ClientError> {
        match self.request(group, Body::MembersRequest).await? {
            Body::MembersResponse { view, blocked } => Ok(GroupStatus { view, blocked }),
            other => Err(self.unexpected(&other)),
        }
    }

    /// Asks the node, a member of `group`, to multicast `payload` to it with the group's
    /// ordering; returns once the node accepted it for sending.
    ///
    /// [`ClientError::NotAccepted`] means nothing was sent. After any other error the message
    /// may or may not have been multicast (an answer lost with the connection): a retry can
    /// deliver it twice.
    pub async fn group_send(
        &mut self,
        group: &GroupName,
        payload: Bytes,
    ) -> Result<(), ClientError> {
        self.group_send_ordered(group, None, payload).await
    }

    /// Like [`Client::group_send`], with the ordering of this one message chosen.
    pub async fn group_send_ordered(
        &mut self,
        group: &GroupName,
        ordering: Option<Ordering>,
        payload: Bytes,
    ) -> Result<(), ClientError> {
        match self
            .request(group, Body::GroupSend { ordering, payload })
            .await?
        {
            Body::GroupSendResult { error: None } => Ok(()),
            Body::GroupSendResult {
                error: Some(reason),
            } => Err(ClientError::NotAccepted {
                addr: self.node,
                reason,
            }),
            other => Err(self.unexpected(&other)),
        }
    }

    /// Sends a request for `group`'s service (in the service's encoding) and waits for the
    /// member's answer: `Ok(Ok(reply))` from the service, `Ok(Err(refusal))` when the member
    /// did not take it (typed: not the primary, blocked, busy, too large...).
    ///
    /// After an `Err` (a timeout, a closed connection) the request may or may not have been
    /// executed: a front end retransmits it with the same request id, which the service
    /// answers from its stored response instead of executing it again.
    pub async fn call(
        &mut self,
        group: &GroupName,
        payload: Bytes,
    ) -> Result<Outcome, ClientError> {
        self.next_tag += 1;
        let tag = self.next_tag;
        match self.request(group, Body::Request { tag, payload }).await? {
            Body::Response {
                tag: answered,
                outcome,
            } if answered == tag => Ok(outcome),
            other => Err(self.unexpected(&other)),
        }
    }

    fn unexpected(&mut self, body: &Body) -> ClientError {
        // Out of step with the node: start over on a new connection.
        self.connection = None;
        ClientError::Frame {
            addr: self.node,
            source: FrameError::Malformed(format!("unexpected {} answer", body.kind())),
        }
    }

    /// The open connection, or a new one.
    async fn connection(&mut self) -> Result<&mut Connection, ClientError> {
        let stale = self.connection.as_ref().and_then(|c| c.unused_since);
        if stale.is_some_and(|since| since.elapsed() > FRESH_CONNECTION_MAX) {
            self.connection = None;
        }
        if self.connection.is_none() {
            let addr = self.node;
            let stream = tokio::net::TcpStream::connect(addr)
                .await
                .map_err(|source| ClientError::Connect { addr, source })?;
            let _ = stream.set_nodelay(true);
            let (read, write) = stream.into_split();
            self.connection = Some(Connection {
                frames: FramedRead::new(read, self.codec.decoder()),
                write,
                unused_since: Some(std::time::Instant::now()),
            });
        }
        Ok(self.connection.as_mut().expect("just opened"))
    }

    /// Sends one request and returns the node's answer. Any failure drops the connection.
    async fn request(&mut self, group: &GroupName, body: Body) -> Result<Body, ClientError> {
        self.exchange(Some(group.clone()), body).await
    }

    /// Sends one request (scoped to `group`, or to the node) and returns the answer; the
    /// one path every request takes. Any failure drops the connection.
    async fn exchange(
        &mut self,
        group: Option<GroupName>,
        body: Body,
    ) -> Result<Body, ClientError> {
        let addr = self.node;
        let request = Envelope {
            version: PROTOCOL_VERSION,
            sender: self.id,
            sender_addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            // Stamped by the codec: this client's own counter.
            seq: 0,
            group,
            body,
        };
        let frame = self
            .codec
            .seal(request)
            .map_err(|source| ClientError::Frame { addr, source })?;
        let timeout = self.timeout;
        let exchange = async {
            let connection = self.connection().await?;
            connection.unused_since = None;
            connection
                .write
                .write_all(&frame)
                .await
                .map_err(|source| ClientError::Connect { addr, source })?;
            match connection.frames.next().await {
                Some(Ok(envelope)) => match envelope.body {
                    Body::Refused { reason } => Err(ClientError::Refused { addr, reason }),
                    body => Ok(body),
                },
                Some(Err(source)) => Err(ClientError::Frame { addr, source }),
                None => Err(ClientError::Closed(addr)),
            }
        };
        let result = tokio::time::timeout(timeout, exchange)
            .await
            .unwrap_or(Err(ClientError::Timeout(addr)));
        if result.is_err() {
            // The connection's state is unknown (a late answer would be taken for the next
            // request's): the next request opens a new one.
            self.connection = None;
        }
        result
    }
}

/// Asks the node at `via` for the current view of `group`, as a one-shot [`Client`].
/// `Ok(None)`: the node is not a member of that group. With `key`, the query is
/// authenticated; without, it is sent plain, which nodes accept for this read-only query.
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
/// [`query_members`] does, with the blocked report), as a one-shot [`Client`].
pub async fn query_group(
    via: SocketAddr,
    group: &GroupName,
    key: Option<ClusterKey>,
    timeout: Duration,
) -> Result<GroupStatus, ClientError> {
    Client::new(via, key, timeout).group_status(group).await
}

/// Why a multicast by group name failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No node answered, or none is a member of the group.
    #[error("no member of group {group} reachable through {} ({tried} address(es) tried): {last}", join(.via))]
    NoMember {
        /// The group.
        group: GroupName,
        /// The addresses given to resolve the group through.
        via: Vec<SocketAddr>,
        /// How many distinct addresses were tried (those given and the members learnt).
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
    /// A member was reached but refused the request's frame: it was sent without the cluster
    /// key, or with another key. Nothing was sent; every member would refuse it the same.
    #[error(
        "{addr} refused the multicast's frame ({reason}): {}",
        if *.keyed {
            "the cluster key given is not the cluster's (check --key-file)"
        } else {
            "it was sent without a key, and members take multicasts from authenticated \
             clients only (pass the cluster key with --key-file)"
        }
    )]
    Unauthenticated {
        /// The member.
        addr: SocketAddr,
        /// Its reason.
        reason: String,
        /// Whether a key was given (so it is the wrong one).
        keyed: bool,
    },
}

fn join(addrs: &[SocketAddr]) -> String {
    addrs
        .iter()
        .map(SocketAddr::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Multicasts `payload` to `group` from outside it, as a one-shot [`Client`]: resolves the
/// group name through `seeds` to its current view, then hands the message to a member (the
/// coordinator first), which multicasts it with the group's ordering. Needs the cluster key
/// (nodes accept no change of state unauthenticated). Returns the member that accepted it.
pub async fn send_to_group(
    seeds: &[SocketAddr],
    group: &GroupName,
    payload: Bytes,
    key: Option<ClusterKey>,
    timeout: Duration,
) -> Result<SocketAddr, SendError> {
    let keyed = key.is_some();
    let mut last = String::from("no address given");
    // Distinct addresses: a seed that is also the member sent to counts once.
    let mut tried: std::collections::BTreeSet<SocketAddr> = Default::default();
    let no_member = |tried: &std::collections::BTreeSet<SocketAddr>, last| SendError::NoMember {
        group: group.clone(),
        via: seeds.to_vec(),
        tried: tried.len(),
        last,
    };
    let mut members: Vec<SocketAddr> = Vec::new();
    let Some(first) = seeds.first() else {
        return Err(no_member(&tried, last));
    };
    let mut client = Client::new(*first, key, timeout);
    for seed in seeds {
        tried.insert(*seed);
        client.set_node(*seed);
        match client.members(group).await {
            Ok(Some(view)) => {
                members = view.members.iter().map(|m| m.addr).collect();
                break;
            }
            Ok(None) => last = format!("{seed} is not a member"),
            Err(error) => last = error.to_string(),
        }
    }
    for member in members {
        tried.insert(member);
        client.set_node(member);
        match client.group_send(group, payload.clone()).await {
            Ok(()) => return Ok(member),
            Err(ClientError::NotAccepted { addr, reason }) => {
                return Err(SendError::Refused { addr, reason })
            }
            Err(ClientError::Refused { addr, reason }) => {
                return Err(SendError::Unauthenticated {
                    addr,
                    reason,
                    keyed,
                })
            }
            Err(error) => last = error.to_string(),
        }
    }
    Err(no_member(&tried, last))
}
