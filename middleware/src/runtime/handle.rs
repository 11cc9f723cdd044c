//! Starting a node, and the handle applications use to talk to it.

use super::events::{GroupEvent, NodeStats};
use super::node::{
    ActorTransport, Delivery, DirectRequest, GetStats, GetStatus, GetStopRequested, GetView,
    LeaveAll, MulticastRequest, NodeActor, QueryServiceStatus, RegisterService, ReplyToClient,
    ReportServiceStatus, Request, ServiceInfo, SetAvailableWhileBlocked, Stop, Subscribe, Until,
};
use super::service::{
    EventsRecipient, ServiceEvent, ServiceEvents, ServiceRecipients, TakeDelta, TakeSnapshot,
};
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
        let metrics_listener = match config.metrics_listen {
            Some(addr) => {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|source| StartError::Listen { addr, source })?;
                let local = listener
                    .local_addr()
                    .map_err(|source| StartError::Listen { addr, source })?;
                Some((listener, local))
            }
            None => None,
        };
        let transport_config = config.transport;
        let mut handle = Self::start(config, incarnation, local, move |me, codec, inbound| {
            TcpTransport::start(listener, me, codec, transport_config, inbound).1
        })?;
        if let Some((listener, addr)) = metrics_listener {
            let actor = handle.actor.clone();
            let status: super::metrics::StatusSource = std::sync::Arc::new(move || {
                let request = actor.send(GetStatus);
                Box::pin(async move { request.await.ok() })
            });
            actix::spawn(super::metrics::serve(
                listener,
                status,
                handle.latency.clone(),
            ));
            tracing::info!(%addr, "metrics endpoint listening");
            handle.metrics = Some(addr);
        }
        Ok(handle)
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
        // Frames of this node's earlier incarnations (delayed, or replayed) are stale here too.
        codec.replay_guard().track_own_process(me.id);
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
        let latency = super::metrics::RequestLatency::default();
        let actor_latency = latency.clone();
        let actor = NodeActor::create(move |ctx| {
            let transport = connect(me, codec.clone(), ctx.address().recipient());
            NodeActor::new(core, codec, transport, &config, member_of, actor_latency)
        });
        Ok(NodeHandle {
            actor,
            me,
            metrics: None,
            latency,
        })
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
    /// Where the metrics endpoint listens, if the configuration asks for one.
    metrics: Option<SocketAddr>,
    /// The request latency histograms the actor observes and the endpoint encodes.
    latency: super::metrics::RequestLatency,
}

impl<T: ActorTransport> Clone for NodeHandle<T> {
    fn clone(&self) -> Self {
        NodeHandle {
            actor: self.actor.clone(),
            me: self.me,
            metrics: self.metrics,
            latency: self.latency.clone(),
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

    /// Where the metrics endpoint listens (`metrics_listen`), if it runs.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics
    }

    /// The node's status, as `viewsync status` shows it: its groups (views, coordinators,
    /// blocks, suspicions, buffers, what each service reports), its peers and its counters.
    pub async fn status(&self) -> Result<crate::wire::status::NodeStatus, NodeError> {
        self.actor
            .send(GetStatus)
            .await
            .map_err(|_| NodeError::Stopped)
    }

    /// Resolves when an operator has asked the node to leave every group and stop
    /// (`viewsync leave` without `--group`). The node is then leaving its groups already;
    /// the caller stops it once they are left (as `viewsync node` does on SIGTERM).
    pub async fn stop_requested(&self) -> Result<(), NodeError> {
        let notify = self
            .actor
            .send(GetStopRequested)
            .await
            .map_err(|_| NodeError::Stopped)?;
        notify.notified().await;
        Ok(())
    }

    /// Says what `viewsync status` and the metrics show of `group`'s service: its
    /// `strategy` (also the `strategy` label of the request latency histograms) and, if
    /// `query` is given, whatever the service answers to [`QueryServiceStatus`] at each
    /// status request (its position, log, data directory). A service that does not answer
    /// within 2 s is shown with its strategy only.
    pub async fn report_service_status(
        &self,
        group: GroupName,
        strategy: impl Into<String>,
        query: Option<Recipient<QueryServiceStatus>>,
    ) -> Result<(), NodeError> {
        self.actor
            .send(ReportServiceStatus {
                group,
                info: ServiceInfo {
                    strategy: strategy.into(),
                    query,
                },
            })
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
            events: EventsRecipient::OneByOne(service.clone().recipient()),
            snapshot: service.recipient(),
            delta: None,
        };
        self.register(group, recipients, None).await
    }

    /// Like [`NodeHandle::register_service`], for a service that takes its events in bursts
    /// ([`ServiceEvents`]: the events of one step of the node in one actor message) rather
    /// than one [`ServiceEvent`] message each: the same events in the same order, with one
    /// mailbox round trip per burst instead of per delivery (what a service receiving
    /// hundreds of thousands of deliveries a second wants).
    pub async fn register_service_in_bursts<A>(
        &self,
        group: GroupName,
        service: Addr<A>,
    ) -> Result<(), NodeError>
    where
        A: Actor + Handler<ServiceEvents> + Handler<TakeSnapshot>,
        A::Context:
            actix::dev::ToEnvelope<A, ServiceEvents> + actix::dev::ToEnvelope<A, TakeSnapshot>,
    {
        let recipients = ServiceRecipients {
            events: EventsRecipient::Bursts(service.clone().recipient()),
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
            events: EventsRecipient::OneByOne(service.clone().recipient()),
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
        self.multicast_until(group, ordering, payload, Until::Accepted)
            .await
            .map(|_| ())
    }

    /// Like [`NodeHandle::multicast_ordered`], but resolves when `until` says:
    ///
    /// - [`Until::Accepted`]: once the multicast is accepted for sending (as `multicast`
    ///   does); `Ok(None)`.
    /// - [`Until::Delivered`]: once this node delivered it to `group`'s service, in the
    ///   group's agreed order, *and the service handled that delivery* (its effects are in the
    ///   service when this resolves); `Ok(Some(delivery))` says where: the view it was
    ///   delivered in and its sequence number in this node's stream of that view.
    /// - [`Until::Stable`]: once it is delivered here (as above) and *stable*: every member of
    ///   the view it was delivered in holds it (the multicast core's stability, from their
    ///   acknowledgements), so each of them delivers it unless it fails; or that view ended
    ///   and this node moved on to the next one. In the latter case, by view synchrony,
    ///   every member that moved on with this node delivered the same multicasts of the old
    ///   view, this one among them: it is stable among the survivors, while a member that
    ///   failed or was excluded in that change may never have delivered it. Stability says
    ///   the others *hold* it, not that their services have handled it yet.
    ///
    /// **Matching.** The node counts its own multicasts per group as the core accepts them
    /// (every `multicast*` call, waited for or not, parked ones when they leave the queue)
    /// and as its own deliveries reach the service: a sender's multicasts are delivered in
    /// the order they were accepted (FIFO per sender; those still in the outbox at a view
    /// change go out, in order, in the next view), so the `n`th own delivery is the `n`th
    /// accepted multicast. When this node is excluded or leaves, the own multicasts that had
    /// left the outbox undelivered are lost; those count as settled and their callers fail.
    /// Known limit: two rarer paths also drop own multicasts without an exclusion (a survivor
    /// that cannot fetch the cut of a view in time and takes a state transfer instead, and a
    /// view installed without its decision); they are not reconciled yet, so after one of
    /// them a waiter of that group may be matched with a later delivery. The fix is for the
    /// core to report the `(view, seq)` it assigns at send time.
    ///
    /// **Failures.** Fails with [`NodeError::Abandoned`] when the multicast will never be
    /// delivered here (this node was excluded from or left the group before it was
    /// delivered; after an exclusion, those still in the outbox wait for the next view and
    /// resolve there), when its stability can no longer be learnt (excluded or left after
    /// delivering it), when the service stops, or at once when `group` has no registered
    /// service (nothing would be delivered to wait for); with [`NodeError::Stopped`] when
    /// the node stops. Refusals are as for `multicast` (nothing sent).
    ///
    /// **Bound.** At most [`PARKED_MULTICASTS`](super::PARKED_MULTICASTS) callers wait for a
    /// delivery or stability at once (all groups); past that a `Delivered` or `Stable` call
    /// fails at once with [`NodeError::TooManyWaiters`] and nothing is sent.
    pub async fn multicast_until(
        &self,
        group: GroupName,
        ordering: Option<crate::wire::Ordering>,
        payload: Bytes,
        until: Until,
    ) -> Result<Option<Delivery>, NodeError> {
        self.actor
            .send(MulticastRequest {
                group,
                ordering,
                payload,
                until,
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
            until: Until::Accepted,
        });
        async move { request.await.map_err(|_| NodeError::Stopped)?.map(|_| ()) }
    }

    /// Makes `group`'s service *available while blocked*: this node hands it client requests
    /// while the group is blocked or this member rejoins, instead of refusing them (see
    /// `NodeCore::set_available_while_blocked`). For a service that answers from its own
    /// state and never relies on agreed delivery to answer (the gossip architecture).
    pub async fn set_available_while_blocked(&self, group: GroupName) -> Result<(), NodeError> {
        self.actor
            .send(SetAvailableWhileBlocked { group })
            .await
            .map_err(|_| NodeError::Stopped)
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
            metrics_listen: None,
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

    /// Records the deliveries its node hands it: sender, view, seq, payload.
    type Records =
        std::sync::Arc<std::sync::Mutex<Vec<(ProcessId, crate::id::ViewId, u64, Bytes)>>>;

    struct Recorder(Records);

    impl Actor for Recorder {
        type Context = Context<Self>;
    }

    impl Handler<ServiceEvent> for Recorder {
        type Result = ();
        fn handle(&mut self, event: ServiceEvent, _ctx: &mut Self::Context) {
            if let ServiceEvent::Deliver { message, .. } = event {
                self.0.lock().unwrap().push((
                    message.sender,
                    message.view,
                    message.seq.0,
                    message.payload,
                ));
            }
        }
    }

    impl Handler<TakeSnapshot> for Recorder {
        type Result = MessageResult<TakeSnapshot>;
        fn handle(&mut self, _: TakeSnapshot, _ctx: &mut Self::Context) -> Self::Result {
            MessageResult(Bytes::new())
        }
    }

    fn has(records: &Records, sender: ProcessId, at: Delivery, payload: &[u8]) -> bool {
        records
            .lock()
            .unwrap()
            .iter()
            .any(|r| r.0 == sender && r.1 == at.view && r.2 == at.seq.0 && r.3 == payload)
    }

    /// Three members over TCP, each with a recording service registered before it joins.
    async fn three_recording_members() -> (Vec<NodeHandle>, Vec<Records>, View) {
        let group = GroupName::new("g").unwrap();
        let mut nodes: Vec<NodeHandle> = Vec::new();
        let mut records = Vec::new();
        for node in 1..=3u64 {
            let seeds = nodes.last().map(|n| vec![n.me().addr]).unwrap_or_default();
            let mut config = config(node, seeds);
            config.groups = Vec::new();
            let handle = Node::spawn(config).await.unwrap();
            let record = Records::default();
            handle
                .register_service(group.clone(), Recorder(record.clone()).start())
                .await
                .unwrap();
            handle.join(group.clone()).await.unwrap();
            nodes.push(handle);
            records.push(record);
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let mut views = Vec::new();
            for node in &nodes {
                views.push(node.view(group.clone()).await.unwrap());
            }
            let full = views[0].clone().filter(|v| v.members.len() == 3);
            if let Some(full) = full {
                if views
                    .iter()
                    .all(|v| v.as_ref().map(|v| v.id) == Some(full.id))
                {
                    return (nodes, records, full);
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "three members in time"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[actix_rt::test]
    async fn multicast_until_delivered_and_stable_over_tcp() {
        let group = GroupName::new("g").unwrap();
        let (nodes, records, view) = three_recording_members().await;
        let sender = &nodes[1];
        let me = sender.me().id;
        // A plain multicast first: the waiter must be matched with its own delivery, not
        // with the one before it.
        sender
            .multicast(group.clone(), Bytes::from_static(b"plain"))
            .await
            .unwrap();
        let delivered = tokio::time::timeout(
            Duration::from_secs(10),
            sender.multicast_until(
                group.clone(),
                None,
                Bytes::from_static(b"d"),
                Until::Delivered,
            ),
        )
        .await
        .expect("delivered in time")
        .unwrap()
        .expect("a delivery");
        assert_eq!(delivered.view, view.id);
        assert!(
            has(&records[1], me, delivered, b"d"),
            "the sender's service handled the delivery when the future resolved: {:?}",
            records[1].lock().unwrap()
        );

        let stable = tokio::time::timeout(
            Duration::from_secs(10),
            sender.multicast_until(group.clone(), None, Bytes::from_static(b"s"), Until::Stable),
        )
        .await
        .expect("stable in time")
        .unwrap()
        .expect("a delivery");
        assert_eq!(stable.view, view.id);
        assert!(stable.seq > delivered.seq);
        assert!(has(&records[1], me, stable, b"s"));
        // Stable: every member holds it, so every member's service gets it (their mailboxes
        // may still be handling it).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !records.iter().all(|r| has(r, me, stable, b"s")) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "every member delivers a stable multicast"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }

        // Accepted: the existing behaviour, no delivery reported.
        assert_eq!(
            sender
                .multicast_until(
                    group.clone(),
                    None,
                    Bytes::from_static(b"a"),
                    Until::Accepted
                )
                .await
                .unwrap(),
            None
        );

        // A member that stops right after multicasting never sees it stable: the caller
        // fails instead of waiting forever.
        let third = &nodes[2];
        let waiting = third.actor.send(MulticastRequest {
            group: group.clone(),
            ordering: None,
            payload: Bytes::from_static(b"lost"),
            until: Until::Stable,
        });
        third.crash();
        let outcome = tokio::time::timeout(Duration::from_secs(10), waiting)
            .await
            .expect("the waiter is answered, not left hanging");
        assert!(
            matches!(outcome, Err(_) | Ok(Err(_))),
            "a stopped node's waiter fails: {outcome:?}"
        );
    }

    #[actix_rt::test]
    async fn multicast_until_without_a_service_fails_at_once() {
        let node = Node::spawn(config(1, vec![])).await.unwrap();
        let group = GroupName::new("g").unwrap();
        let outcome = node
            .multicast_until(group, None, Bytes::from_static(b"x"), Until::Delivered)
            .await;
        assert!(
            matches!(outcome, Err(NodeError::Abandoned(_))),
            "{outcome:?}"
        );
        node.crash();
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
