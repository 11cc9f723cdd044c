//! Starting a node, and the handle applications use to talk to it.

use super::events::{GroupEvent, NodeStats};
use super::node::{
    ActorTransport, DirectRequest, GetStats, GetView, LeaveAll, MulticastRequest, NodeActor,
    RegisterService, ReplyToClient, Request, Stop, Subscribe,
};
use super::service::{ServiceEvent, ServiceRecipients, TakeDelta, TakeSnapshot};
use crate::config::NodeConfig;
use crate::error::{NodeError, StartError};
use crate::id::{GroupName, Incarnation, ProcessId};
use crate::proto::node::NodeCore;
use crate::proto::service_edge::ReplyTo;
use crate::transport::tcp::{TcpSender, TcpTransport};
use crate::transport::Inbound;
use crate::view::{Member, View};
use crate::wire::FrameCodec;
use crate::wire::Outcome;
use actix::prelude::*;
use bytes::Bytes;
use std::net::SocketAddr;
use tokio::sync::mpsc;

/// Starts nodes.
pub struct Node;

impl Node {
    /// Binds the listen address, starts the transport and the node actor on the current
    /// arbiter, and joins the configured groups. Must run inside an actix system.
    ///
    /// The incarnation comes from the clock; with a `data_dir` it is also above every
    /// incarnation this node had before (recorded there before the node listens), so a clock
    /// stepped back cannot give a restarted node an incarnation its peers refuse as stale.
    pub async fn spawn(config: NodeConfig) -> Result<NodeHandle, StartError> {
        let incarnation = Self::incarnation(&config)?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| StartError::Listen {
                addr: config.listen,
                source,
            })?;
        let local = listener.local_addr().map_err(|source| StartError::Listen {
            addr: config.listen,
            source,
        })?;
        let transport_config = config.transport;
        Self::start(config, incarnation, local, move |me, codec, inbound| {
            TcpTransport::start(listener, me, codec, transport_config, inbound).1
        })
    }

    /// Starts the node actor on the current arbiter over a transport `connect` makes (from
    /// this process, its codec and where arriving envelopes go), and joins the configured
    /// groups. [`Node::spawn`] does it over TCP; the memory network's runtime
    /// ([`super::MemoryRuntime`]) over its endpoints.
    pub(crate) fn start<T: ActorTransport>(
        config: NodeConfig,
        incarnation: Incarnation,
        addr: SocketAddr,
        connect: impl FnOnce(Member, FrameCodec, Recipient<Inbound>) -> T + 'static,
    ) -> Result<NodeHandle<T>, StartError> {
        let me = Member {
            id: ProcessId {
                node: config.node_id,
                incarnation,
            },
            addr,
        };
        let codec = FrameCodec::new(config.key.clone(), config.transport.frame_bytes_max);
        let mut settings = config.settings;
        let member_of = match &config.data_dir {
            Some(dir) => super::data_dir::recorded_memberships(dir)?,
            None => Default::default(),
        };
        if settings.membership.bootstrap && !member_of.is_empty() {
            // `bootstrap` is for the cluster's first start: a node that was a member before
            // only ever rejoins, or a restart with its seeds unreachable would found a second
            // group beside the real one.
            tracing::info!(
                groups = ?member_of,
                "bootstrap ignored: this node was a member before (data_dir); it rejoins through its seeds"
            );
            settings.membership.bootstrap = false;
        }
        let mut core = NodeCore::new(me, config.seeds.clone(), settings);
        for (group, multicast) in &config.group_multicast {
            core.set_group_multicast(group.clone(), *multicast);
        }
        let actor = NodeActor::create(move |ctx| {
            let transport = connect(me, codec.clone(), ctx.address().recipient());
            NodeActor::new(core, codec, transport, &config, member_of)
        });
        Ok(NodeHandle { actor, me })
    }

    /// This start's incarnation: from the clock, and above the last one `data_dir` records.
    pub(crate) fn incarnation(config: &NodeConfig) -> Result<Incarnation, StartError> {
        Ok(match &config.data_dir {
            Some(dir) => {
                let incarnation = super::data_dir::next_incarnation(dir, Incarnation::now())?;
                tracing::info!(
                    node = %config.node_id,
                    incarnation = incarnation.0,
                    data_dir = %dir.display(),
                    "incarnation above the last one recorded in data_dir"
                );
                incarnation
            }
            None => {
                let incarnation = Incarnation::now();
                tracing::info!(
                    node = %config.node_id,
                    incarnation = incarnation.0,
                    "no data_dir: the incarnation comes from the clock alone, so a restart \
                     relies on the clock; after a step back peers refuse the node as stale"
                );
                incarnation
            }
        })
    }
}

/// A running node, over transport `T` (TCP unless chosen).
pub struct NodeHandle<T: ActorTransport = TcpSender> {
    actor: Addr<NodeActor<T>>,
    me: Member,
}

impl<T: ActorTransport> Clone for NodeHandle<T> {
    fn clone(&self) -> Self {
        NodeHandle {
            actor: self.actor.clone(),
            me: self.me,
        }
    }
}

impl<T: ActorTransport> NodeHandle<T> {
    /// This process and the address it listens on.
    pub fn me(&self) -> Member {
        self.me
    }

    /// Receives every event from now on (views, exclusions, suspicions), starting with the
    /// view of each group this node is already a member of.
    pub async fn subscribe(&self) -> Result<mpsc::Receiver<GroupEvent>, NodeError> {
        self.actor
            .send(Subscribe::Channel)
            .await
            .map_err(|_| NodeError::Stopped)?
            .ok_or(NodeError::Stopped)
    }

    /// Sends every event from now on to an actor (starting with the current views). Events
    /// that find its mailbox full are dropped and counted in [`NodeStats::events_dropped`].
    pub async fn subscribe_actor(&self, recipient: Recipient<GroupEvent>) -> Result<(), NodeError> {
        self.actor
            .send(Subscribe::Actor(recipient))
            .await
            .map(|_| ())
            .map_err(|_| NodeError::Stopped)
    }

    /// Joins `group`.
    pub async fn join(&self, group: GroupName) -> Result<(), NodeError> {
        self.actor
            .send(Request::Join(group))
            .await
            .map_err(|_| NodeError::Stopped)?
    }

    /// Leaves `group` gracefully.
    pub async fn leave(&self, group: GroupName) -> Result<(), NodeError> {
        self.actor
            .send(Request::Leave(group))
            .await
            .map_err(|_| NodeError::Stopped)?
    }

    /// The installed view of `group`, or `None` if this node is not a member.
    pub async fn view(&self, group: GroupName) -> Result<Option<View>, NodeError> {
        self.actor
            .send(GetView(group))
            .await
            .map_err(|_| NodeError::Stopped)
    }

    /// Counters.
    pub async fn stats(&self) -> Result<NodeStats, NodeError> {
        self.actor
            .send(GetStats)
            .await
            .map_err(|_| NodeError::Stopped)
    }

    /// Registers `service` for `group`'s events (deliveries, views, blocks, restores) and
    /// snapshots. Register before joining, so it sees the first view.
    pub async fn register_service<A>(
        &self,
        group: GroupName,
        service: Addr<A>,
    ) -> Result<(), NodeError>
    where
        A: Actor + Handler<ServiceEvent> + Handler<TakeSnapshot>,
        A::Context:
            actix::dev::ToEnvelope<A, ServiceEvent> + actix::dev::ToEnvelope<A, TakeSnapshot>,
    {
        let recipients = ServiceRecipients {
            events: service.clone().recipient(),
            snapshot: service.recipient(),
            delta: None,
        };
        self.register(group, recipients, None).await
    }

    /// Like [`NodeHandle::register_service`], for a service whose state is durable: it
    /// recovered its state from disk up to `position` (its own measure: larger is more
    /// advanced). If this node was a member of `group` before and, restarted, finds no member
    /// left (a total failure), it re-forms the group with the other restarted members of the
    /// last view once a majority of its voters are back, from the most advanced state among
    /// them (see `proto::membership::join`). Needs the node's `data_dir`, where the last view
    /// installed is recorded.
    ///
    /// **Catch-up.** A joining member restarted with a state at `position` (above 0) asks its
    /// state transfer for a *delta* from there: the provider's service answers [`TakeDelta`]
    /// with the updates it missed, which this service gets as a
    /// [`ServiceEvent::Restore`] with `since: Some(position)`, or with `None` (the whole
    /// snapshot, as without a position). Position 0 (an empty state) always gets the whole
    /// snapshot. The service answers [`TakeDelta`] for other joiners itself.
    pub async fn register_durable_service<A>(
        &self,
        group: GroupName,
        service: Addr<A>,
        position: u64,
    ) -> Result<(), NodeError>
    where
        A: Actor + Handler<ServiceEvent> + Handler<TakeSnapshot> + Handler<TakeDelta>,
        A::Context: actix::dev::ToEnvelope<A, ServiceEvent>
            + actix::dev::ToEnvelope<A, TakeSnapshot>
            + actix::dev::ToEnvelope<A, TakeDelta>,
    {
        let recipients = ServiceRecipients {
            events: service.clone().recipient(),
            snapshot: service.clone().recipient(),
            delta: Some(service.recipient()),
        };
        self.register(group, recipients, Some(position)).await
    }

    async fn register(
        &self,
        group: GroupName,
        recipients: ServiceRecipients,
        durable_position: Option<u64>,
    ) -> Result<(), NodeError> {
        self.actor
            .send(RegisterService {
                group,
                recipients,
                durable_position,
            })
            .await
            .map_err(|_| NodeError::Stopped)
    }

    /// Multicasts `payload` to `group` with the group's ordering. Resolves once the multicast
    /// is accepted for sending; waits while flow control withholds credit (up to
    /// [`PARKED_MULTICASTS`](super::PARKED_MULTICASTS) waiting, then fails with
    /// [`MulticastError::Full`](crate::proto::multicast::MulticastError::Full)).
    pub async fn multicast(&self, group: GroupName, payload: Bytes) -> Result<(), NodeError> {
        self.multicast_ordered(group, None, payload).await
    }

    /// Like [`NodeHandle::multicast`], with the ordering of this one message chosen.
    pub async fn multicast_ordered(
        &self,
        group: GroupName,
        ordering: Option<crate::wire::Ordering>,
        payload: Bytes,
    ) -> Result<(), NodeError> {
        self.actor
            .send(MulticastRequest {
                group,
                ordering,
                payload,
            })
            .await
            .map_err(|_| NodeError::Stopped)?
    }

    /// Like [`NodeHandle::multicast_ordered`], but the multicast is queued to the node at the
    /// call, not when the returned future is first polled: successive calls keep their order
    /// however their futures are driven (a service actor issuing its updates in order spawns
    /// the futures only to learn whether each was accepted).
    pub fn multicast_enqueued(
        &self,
        group: GroupName,
        ordering: Option<crate::wire::Ordering>,
        payload: Bytes,
    ) -> impl std::future::Future<Output = Result<(), NodeError>> + 'static {
        let request = self.actor.send(MulticastRequest {
            group,
            ordering,
            payload,
        });
        async move { request.await.map_err(|_| NodeError::Stopped)? }
    }

    /// Sends `payload` point-to-point to `to`, a member of `group`'s current view.
    pub async fn send_to(
        &self,
        group: GroupName,
        to: ProcessId,
        payload: Bytes,
    ) -> Result<(), NodeError> {
        self.actor
            .send(DirectRequest { group, to, payload })
            .await
            .map_err(|_| NodeError::Stopped)?
    }

    /// Answers a client's request ([`ServiceEvent::Request`]) with the service's reply bytes
    /// or a refusal. At most once per request: the client takes the first answer with its
    /// tag. An answer for a connection that has closed is dropped (the client retransmits).
    pub fn reply(&self, group: GroupName, reply: ReplyTo, outcome: Outcome) {
        self.actor.do_send(ReplyToClient {
            group,
            reply,
            outcome,
        });
    }

    /// Stops the node gracefully: leaves every group, waits up to `timeout` for the views
    /// without it (so its peers continue at once, without waiting for failure detection),
    /// then stops. Returns the groups it did not hear it had left in time.
    pub async fn stop(&self, timeout: std::time::Duration) -> Result<Vec<GroupName>, NodeError> {
        let mut events = self.subscribe().await?;
        let left = self
            .actor
            .send(LeaveAll)
            .await
            .map_err(|_| NodeError::Stopped)?;
        let mut pending: std::collections::BTreeSet<GroupName> = left.into_iter().collect();
        let deadline = tokio::time::Instant::now() + timeout;
        while !pending.is_empty() {
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(Some(GroupEvent::Left { group })) => {
                    pending.remove(&group);
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        self.crash();
        Ok(pending.into_iter().collect())
    }

    /// Stops the node at once, without leaving its groups: to its peers it looks like a crash.
    pub fn crash(&self) {
        self.actor.do_send(Stop);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TransportConfig;
    use crate::id::NodeId;
    use crate::proto::node::NodeSettings;
    use std::time::Duration;

    fn config(node: u64, seeds: Vec<SocketAddr>) -> NodeConfig {
        let mut settings = NodeSettings::default();
        // The first node, without seeds, founds the group.
        settings.membership.bootstrap = seeds.is_empty();
        NodeConfig {
            node_id: NodeId(node),
            listen: "127.0.0.1:0".parse().unwrap(),
            seeds,
            groups: vec![GroupName::new("g").unwrap()],
            key: Some(crate::wire::ClusterKey::from_hex(&"ab".repeat(32)).unwrap()),
            settings,
            transport: TransportConfig::default(),
            group_multicast: Default::default(),
            data_dir: None,
        }
    }

    /// Collects the views an actor subscriber receives.
    struct Collector(mpsc::UnboundedSender<View>);

    impl Actor for Collector {
        type Context = Context<Self>;
    }

    impl Handler<GroupEvent> for Collector {
        type Result = ();
        fn handle(&mut self, event: GroupEvent, _ctx: &mut Self::Context) {
            if let GroupEvent::ViewInstalled { change, .. } = event {
                let _ = self.0.send(change.view);
            }
        }
    }

    /// A service with no state of its own: it says so with an empty snapshot.
    struct Stateless;

    impl Actor for Stateless {
        type Context = Context<Self>;
    }

    impl Handler<ServiceEvent> for Stateless {
        type Result = ();
        fn handle(&mut self, _event: ServiceEvent, _ctx: &mut Self::Context) {}
    }

    impl Handler<TakeSnapshot> for Stateless {
        type Result = MessageResult<TakeSnapshot>;
        fn handle(&mut self, _: TakeSnapshot, _ctx: &mut Self::Context) -> Self::Result {
            MessageResult(Bytes::new())
        }
    }

    async fn next_view_with(views: &mut mpsc::UnboundedReceiver<View>, size: usize) -> View {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let view = views.recv().await.expect("collector alive");
                if view.members.len() == size {
                    return view;
                }
            }
        })
        .await
        .expect("view in time")
    }

    #[actix_rt::test]
    async fn actors_see_views_as_nodes_join_and_crash_over_tcp() {
        let first = Node::spawn(config(1, vec![])).await.unwrap();
        let (tx, mut views) = mpsc::unbounded_channel();
        let collector = Collector(tx).start();
        first.subscribe_actor(collector.recipient()).await.unwrap();
        assert_eq!(next_view_with(&mut views, 1).await.id.epoch, 1);
        // The state joiners get comes from a service; without one the founder could not
        // provide it and the joiners would wait.
        let group = GroupName::new("g").unwrap();
        first
            .register_service(group.clone(), Stateless.start())
            .await
            .unwrap();

        let second = Node::spawn(config(2, vec![first.me().addr])).await.unwrap();
        let third = Node::spawn(config(3, vec![second.me().addr]))
            .await
            .unwrap();
        let full = next_view_with(&mut views, 3).await;
        assert_eq!(
            full.members.iter().map(|m| m.id).collect::<Vec<_>>()[0],
            first.me().id
        );
        assert!(full.contains(third.me().id));
        // The install reaches the second node a moment later.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while second.view(group.clone()).await.unwrap().map(|v| v.id) != Some(full.id) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "second node installs the view"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }

        third.crash();
        let after = next_view_with(&mut views, 2).await;
        assert!(!after.contains(third.me().id));
        assert!(after.id > full.id);
        let stats = first.stats().await.unwrap();
        assert!(stats.suspicions >= 1);
        assert_eq!(stats.frames_refused, 0);
        assert!(stats.write_batches > 0);
    }
}
