//! The node actor and the handle applications use.

use super::service::{ServiceEvent, ServiceRecipients, TakeSnapshot};
use crate::config::NodeConfig;
use crate::error::{NodeError, StartError};
use crate::id::{GroupName, Incarnation, ProcessId, ViewId};
use crate::proto::node::{NodeCore, NodeOutput, SnapshotFailed};
use crate::proto::service_edge::{Admitted, EdgeLimits, EdgeOutput, ServiceEdge};
use crate::proto::Time;
use crate::shell::dispatch;
use crate::transport::tcp::{TcpSender, TcpTransport};
use crate::transport::{Inbound, Transport};
use crate::view::{Member, View, ViewChange};
use crate::wire::{FrameCodec, WireStats};
use actix::prelude::*;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

pub use crate::proto::TICK_INTERVAL;
/// Events buffered per subscriber. A subscriber that falls further behind loses the newest
/// events (counted in [`NodeStats::events_dropped`]); read them.
pub const EVENT_QUEUE_EVENTS: usize = 1024;
/// Events in a service's mailbox not yet handled, past which the node stops delivering to it
/// (its credit then runs out and the group's senders wait) until it catches up.
pub const SERVICE_BACKLOG_EVENTS: u64 = EdgeLimits::NODE.backlog_events;
/// Multicasts waiting in the node for outbox room; past this `multicast` fails with
/// [`MulticastError::Full`](crate::proto::multicast::MulticastError::Full) at once.
pub const PARKED_MULTICASTS: usize = EdgeLimits::NODE.parked_multicasts;

/// A transport a node actor can run on: TCP ([`TcpSender`]) or the memory network
/// ([`MemoryEndpoint`](crate::transport::memory::MemoryEndpoint)).
pub trait ActorTransport: Transport + Unpin + 'static {}

impl<T: Transport + Unpin + 'static> ActorTransport for T {}

/// How a parked multicast's caller is answered.
type Reply = tokio::sync::oneshot::Sender<Result<(), NodeError>>;

/// How often a node blocked in a group logs it again.
pub const BLOCKED_REPORT_INTERVAL: Duration = Duration::from_secs(5);

/// What a node tells its subscribers.
#[derive(Clone, Debug, PartialEq, Eq, Message)]
#[rtype(result = "()")]
pub enum GroupEvent {
    /// A group installed a new view.
    ViewInstalled {
        /// The group.
        group: GroupName,
        /// The view and what changed.
        change: ViewChange,
    },
    /// This process was removed from a group and is joining again.
    Excluded {
        /// The group.
        group: GroupName,
        /// The view without this process, if known.
        by: Option<ViewId>,
    },
    /// This process left a group.
    Left {
        /// The group.
        group: GroupName,
    },
    /// The failure detector suspects a peer.
    Suspected(ProcessId),
    /// A suspected peer was heard from again (a false suspicion).
    Unsuspected(ProcessId),
    /// A seed refused this node's frames (wrong key or protocol version).
    RefusedBy {
        /// The group being joined.
        group: GroupName,
        /// The seed.
        seed: SocketAddr,
        /// Its reason.
        reason: String,
    },
}

impl GroupEvent {
    fn from_output(output: NodeOutput) -> Option<Self> {
        Some(match output {
            NodeOutput::ViewInstalled { group, change } => {
                GroupEvent::ViewInstalled { group, change }
            }
            NodeOutput::Excluded { group, by } => GroupEvent::Excluded { group, by },
            NodeOutput::Left { group } => GroupEvent::Left { group },
            NodeOutput::Suspected(p) => GroupEvent::Suspected(p),
            NodeOutput::Unsuspected(p) => GroupEvent::Unsuspected(p),
            NodeOutput::RefusedBy {
                group,
                seed,
                reason,
            } => GroupEvent::RefusedBy {
                group,
                seed,
                reason,
            },
            NodeOutput::Send { .. }
            | NodeOutput::SendAll { .. }
            | NodeOutput::Reply { .. }
            | NodeOutput::Group { .. } => return None,
        })
    }
}

/// A snapshot of a node's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Views installed over all groups.
    pub views_installed: u64,
    /// Suspicions raised by the failure detector.
    pub suspicions: u64,
    /// Suspicions contradicted later (the peer was alive).
    pub false_suspicions: u64,
    /// Frames accepted by the codec.
    pub frames_accepted: u64,
    /// Frames refused by the codec (malformed, unauthenticated, replayed, too large).
    pub frames_refused: u64,
    /// Clients' replay windows forgotten to make room for newer clients (more than
    /// [`REPLAY_CLIENTS_MAX`](crate::wire::codec::REPLAY_CLIENTS_MAX) clients heard from).
    pub client_windows_evicted: u64,
    /// Connections closed over a bad frame.
    pub connections_closed_bad_frame: u64,
    /// Frames dropped because a peer's send queue was full.
    pub frames_dropped_queue_full: u64,
    /// Write calls; with `frames_sent`, shows how well batching works.
    pub write_batches: u64,
    /// Frames sealed for sending.
    pub frames_sent: u64,
    /// Bytes written to peer connections (every frame, length prefixes and tags included).
    pub bytes_sent: u64,
    /// Events a slow subscriber lost.
    pub events_dropped: u64,
    /// Multicasts accepted, over all groups.
    pub multicasts: u64,
    /// Multicasts delivered, over all groups.
    pub delivered: u64,
    /// Entries retransmitted in answer to retransmission requests.
    pub retransmitted: u64,
    /// Entries received more than once.
    pub duplicates: u64,
    /// Multicast entries held in buffers now.
    pub buffered_entries: u64,
    /// Multicasts waiting for credit now (outboxes plus parked requests).
    pub waiting_multicasts: u64,
    /// State transfers completed as a joiner.
    pub state_transfers: u64,
}

/// The actor that runs a node's protocol core, over transport `T` (TCP unless chosen).
pub struct NodeActor<T: ActorTransport = TcpSender> {
    core: NodeCore,
    /// The service policy shared with the simulator: parked multicasts, service backlogs,
    /// the snapshot round trip.
    edge: ServiceEdge<Reply>,
    codec: FrameCodec,
    transport: T,
    origin: Instant,
    initial_groups: Vec<GroupName>,
    subscribers: Vec<Subscriber>,
    events_dropped: u64,
    services: BTreeMap<GroupName, ServiceRecipients>,
    flush_scheduled: bool,
    /// Groups this node is blocked in, with when that was last logged.
    blocked_logged: BTreeMap<GroupName, Time>,
    /// Where the node records the groups it has been a member of (with `data_dir`).
    data_dir: Option<std::path::PathBuf>,
    /// The groups recorded there.
    member_of: std::collections::BTreeSet<String>,
}

/// Where events go: a channel, or an actor's mailbox.
enum Subscriber {
    Channel(mpsc::Sender<GroupEvent>),
    Actor(Recipient<GroupEvent>),
}

impl Subscriber {
    fn is_closed(&self) -> bool {
        match self {
            Subscriber::Channel(tx) => tx.is_closed(),
            Subscriber::Actor(recipient) => !recipient.connected(),
        }
    }

    /// Delivers without waiting; `false` if the subscriber's buffer or mailbox is full.
    fn offer(&self, event: GroupEvent) -> bool {
        match self {
            Subscriber::Channel(tx) => tx.try_send(event).is_ok(),
            Subscriber::Actor(recipient) => recipient.try_send(event).is_ok(),
        }
    }
}

impl<T: ActorTransport> NodeActor<T> {
    fn now(&self) -> Time {
        self.origin.elapsed()
    }

    /// Carries out the core's outputs through the service edge.
    fn execute(&mut self, outputs: Vec<NodeOutput>, ctx: &mut Context<Self>) {
        let now = self.now();
        let work = self.edge.absorb(&mut self.core, now, outputs);
        self.carry_out(work, ctx);
    }

    /// Carries out the edge's outputs: frames to the transport, events to subscribers and
    /// services, answers to parked callers; then lets the edge pause or resume delivery for
    /// what the services now hold.
    fn carry_out(&mut self, work: Vec<EdgeOutput<Reply>>, ctx: &mut Context<Self>) {
        let mut events = Vec::new();
        dispatch(work, &self.codec, &mut self.transport, |e| events.push(e));
        for output in events {
            match output {
                EdgeOutput::Service {
                    group,
                    event,
                    checkpoint,
                } => self.hand_to_service(group, event, checkpoint, ctx),
                EdgeOutput::TakeSnapshot { group, view } => self.request_snapshot(group, view, ctx),
                EdgeOutput::Answer { token, result } => {
                    let _ = token.send(result.map_err(NodeError::from));
                }
                EdgeOutput::Flush => self.schedule_flush(ctx),
                EdgeOutput::Node(output) => self.notify(output),
            }
        }
        let now = self.now();
        let more = self.edge.refresh(&mut self.core, now);
        if !more.is_empty() {
            self.carry_out(more, ctx);
        }
    }

    /// Tells subscribers of a node event.
    fn notify(&mut self, output: NodeOutput) {
        if let NodeOutput::ViewInstalled { group, .. } = &output {
            self.record_membership(group);
        }
        log_event(&output);
        let Some(event) = GroupEvent::from_output(output) else {
            return;
        };
        self.subscribers.retain(|s| !s.is_closed());
        for subscriber in &self.subscribers {
            if !subscriber.offer(event.clone()) {
                self.events_dropped += 1;
            }
        }
    }

    fn schedule_flush(&mut self, ctx: &mut Context<Self>) {
        if !self.flush_scheduled {
            self.flush_scheduled = true;
            ctx.notify(FlushNow);
        }
    }

    /// Hands an event to the group's service; a checkpoint is awaited, and its handling
    /// reported to the edge.
    fn hand_to_service(
        &mut self,
        group: GroupName,
        event: ServiceEvent,
        checkpoint: Option<u64>,
        ctx: &mut Context<Self>,
    ) {
        let Some(recipients) = self.services.get(&group) else {
            return;
        };
        if let ServiceEvent::ViewChange { change, .. } = &event {
            tracing::info!(view = %change.view, "service view");
        }
        let Some(upto) = checkpoint else {
            recipients.events.do_send(event);
            return;
        };
        // Mailboxes are FIFO: once this one is handled, so is everything before it.
        let request = recipients.events.send(event);
        ctx.spawn(request.into_actor(self).map(move |_, actor, ctx| {
            actor.edge.handle_handled(&group, upto);
            let now = actor.now();
            let more = actor.edge.refresh(&mut actor.core, now);
            actor.carry_out(more, ctx);
        }));
    }

    /// Asks `group`'s service for the snapshot joiners of `view` need. If the service cannot
    /// answer (it stopped), the core is told the snapshot failed: this process stops vouching
    /// for the state and gets it again, and the joiners get it from another member. Never
    /// empty bytes in its place.
    fn request_snapshot(&mut self, group: GroupName, view: ViewId, ctx: &mut Context<Self>) {
        let Some(recipients) = self.services.get(&group) else {
            return;
        };
        let request = recipients.snapshot.send(TakeSnapshot {
            group: group.clone(),
            view,
        });
        ctx.spawn(request.into_actor(self).map(move |result, actor, ctx| {
            let state = result.map_err(|error| {
                tracing::error!(%group, %view, %error, "the service cannot take a snapshot: this member stops providing the state and gets it again");
                SnapshotFailed {
                    reason: error.to_string(),
                }
            });
            let now = actor.now();
            let work = actor
                .edge
                .handle_snapshot(&mut actor.core, now, &group, view, state);
            actor.carry_out(work, ctx);
            actor.schedule_flush(ctx);
        }));
    }

    /// Records in the data directory, once per group, that this node is a member of `group`,
    /// so that a restart never founds it again.
    fn record_membership(&mut self, group: &GroupName) {
        let Some(dir) = &self.data_dir else { return };
        if !self.member_of.insert(group.as_str().to_string()) {
            return;
        }
        if let Err(error) = super::data_dir::record_membership(dir, &self.member_of) {
            tracing::error!(%group, %error, "cannot record the membership in data_dir");
        }
    }

    /// Logs, at WARN and again every [`BLOCKED_REPORT_INTERVAL`], each group this node is
    /// blocked in and what it waits for; and once it goes on again.
    fn report_blocked(&mut self) {
        let now = self.now();
        let mut still_blocked = BTreeMap::new();
        for core in self.core.groups() {
            let group = core.group();
            let Some(blocked) = core.blocked(now) else {
                if self.blocked_logged.contains_key(group) {
                    tracing::info!(%group, "no longer blocked");
                }
                continue;
            };
            let last = self.blocked_logged.get(group).copied();
            let due = last.is_none_or(|t| now.saturating_sub(t) >= BLOCKED_REPORT_INTERVAL);
            if due {
                let view = blocked
                    .view
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "none".into());
                tracing::warn!(
                    %group,
                    %view,
                    blocked_s = blocked.blocked_ms / 1000,
                    "blocked: {}",
                    blocked.reason
                );
            }
            still_blocked.insert(group.clone(), if due { now } else { last.unwrap_or(now) });
        }
        self.blocked_logged = still_blocked;
    }

    /// Retries parked multicasts in order while the outboxes take them.
    fn retry_parked(&mut self, ctx: &mut Context<Self>) {
        if self.edge.parked() == 0 {
            return;
        }
        let now = self.now();
        let work = self.edge.retry_parked(&mut self.core, now);
        self.carry_out(work, ctx);
    }

    fn stats(&self) -> NodeStats {
        let wire: &WireStats = self.codec.stats();
        let transport = self.transport.counters();
        NodeStats {
            views_installed: self.core.views_installed(),
            suspicions: self.core.failure_detector().suspicions(),
            false_suspicions: self.core.failure_detector().false_suspicions(),
            frames_accepted: wire.frames_accepted.load(Ordering::Relaxed),
            frames_refused: wire.refused_total(),
            client_windows_evicted: self.codec.replay_guard().clients_evicted(),
            connections_closed_bad_frame: transport.connections_closed_bad_frame,
            frames_dropped_queue_full: transport.frames_dropped_queue_full,
            write_batches: transport.write_batches,
            frames_sent: wire.frames_sealed.load(Ordering::Relaxed),
            bytes_sent: transport.bytes_written,
            events_dropped: self.events_dropped,
            multicasts: 0,
            delivered: 0,
            retransmitted: 0,
            duplicates: 0,
            buffered_entries: 0,
            waiting_multicasts: self.edge.parked() as u64,
            state_transfers: 0,
        }
        .with_multicast(self.core.groups().map(|g| g.multicast()))
    }
}

impl NodeStats {
    fn with_multicast<'a>(
        mut self,
        cores: impl Iterator<Item = &'a crate::proto::multicast::Multicast>,
    ) -> Self {
        for core in cores {
            let s = core.stats();
            self.multicasts += s.multicasts;
            self.delivered += s.delivered;
            self.retransmitted += s.retransmitted;
            self.duplicates += s.duplicates;
            self.state_transfers += s.state_transfers;
            self.buffered_entries += core.buffered_entries() as u64;
            self.waiting_multicasts += core.outbox_len() as u64;
        }
        self
    }
}

fn log_event(output: &NodeOutput) {
    match output {
        NodeOutput::ViewInstalled { change, .. } => {
            tracing::info!(view = %change.view, joined = change.joined.len(), left = change.left.len(), "view installed")
        }
        NodeOutput::Excluded { group, by } => {
            tracing::warn!(%group, ?by, "excluded from the group; joining again")
        }
        NodeOutput::Left { group } => tracing::info!(%group, "left the group"),
        NodeOutput::Suspected(p) => tracing::info!(peer = %p, "suspected"),
        NodeOutput::Unsuspected(p) => tracing::warn!(peer = %p, "false suspicion: peer is alive"),
        NodeOutput::RefusedBy {
            group,
            seed,
            reason,
        } => tracing::error!(%group, %seed, %reason, "seed refused this node"),
        NodeOutput::Send { .. }
        | NodeOutput::SendAll { .. }
        | NodeOutput::Reply { .. }
        | NodeOutput::Group { .. } => {}
    }
}

impl<T: ActorTransport> Actor for NodeActor<T> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(256);
        ctx.run_interval(TICK_INTERVAL, |actor, ctx| {
            // Frames that came off the sockets count as signs of life before the detector
            // looks for silence, even while their envelopes still wait in the mailbox.
            for (peer, at) in actor.transport.take_heard() {
                let at = at.saturating_duration_since(actor.origin);
                let outputs = actor.core.handle_heard(at, peer);
                actor.execute(outputs, ctx);
            }
            let outputs = actor.core.handle_tick(actor.now());
            actor.execute(outputs, ctx);
            actor.retry_parked(ctx);
            actor.report_blocked();
        });
        for group in std::mem::take(&mut self.initial_groups) {
            let now = self.now();
            match self.core.handle_join(now, group) {
                Ok(outputs) => self.execute(outputs, ctx),
                Err(error) => tracing::warn!(%error, "join at start"),
            }
        }
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.transport.shutdown();
    }
}

impl<T: ActorTransport> Handler<Inbound> for NodeActor<T> {
    type Result = ();
    fn handle(&mut self, msg: Inbound, ctx: &mut Self::Context) {
        let outputs = self
            .core
            .handle_envelope(self.now(), msg.envelope, msg.connection);
        self.execute(outputs, ctx);
        self.schedule_flush(ctx);
    }
}

/// Sends what the cores have waiting; queued behind the mailbox's pending messages, so one
/// flush covers a burst.
#[derive(Message)]
#[rtype(result = "()")]
struct FlushNow;

impl<T: ActorTransport> Handler<FlushNow> for NodeActor<T> {
    type Result = ();
    fn handle(&mut self, _msg: FlushNow, ctx: &mut Self::Context) {
        self.flush_scheduled = false;
        let outputs = self.core.handle_flush(self.now());
        self.execute(outputs, ctx);
        self.retry_parked(ctx);
    }
}

#[derive(Message)]
#[rtype(result = "Result<(), NodeError>")]
struct MulticastRequest {
    group: GroupName,
    ordering: Option<crate::wire::Ordering>,
    payload: Bytes,
}

impl<T: ActorTransport> Handler<MulticastRequest> for NodeActor<T> {
    type Result = ResponseFuture<Result<(), NodeError>>;
    fn handle(&mut self, msg: MulticastRequest, ctx: &mut Self::Context) -> Self::Result {
        let now = self.now();
        let mut waiter = None;
        let admitted = self.edge.handle_multicast(
            &mut self.core,
            now,
            &msg.group,
            msg.ordering,
            msg.payload,
            || {
                let (reply, receiver) = tokio::sync::oneshot::channel();
                waiter = Some(receiver);
                reply
            },
        );
        match admitted {
            Ok(Admitted::Now(work)) => {
                self.carry_out(work, ctx);
                self.schedule_flush(ctx);
                Box::pin(async { Ok(()) })
            }
            Ok(Admitted::Parked) => {
                let waiter = waiter.expect("a parked multicast has a waiter");
                Box::pin(async move { waiter.await.unwrap_or(Err(NodeError::Stopped)) })
            }
            Err(error) => Box::pin(async move { Err(error.into()) }),
        }
    }
}

#[derive(Message)]
#[rtype(result = "Result<(), NodeError>")]
struct DirectRequest {
    group: GroupName,
    to: ProcessId,
    payload: Bytes,
}

impl<T: ActorTransport> Handler<DirectRequest> for NodeActor<T> {
    type Result = Result<(), NodeError>;
    fn handle(&mut self, msg: DirectRequest, ctx: &mut Self::Context) -> Self::Result {
        let outputs = self
            .core
            .handle_send_direct(self.now(), &msg.group, msg.to, msg.payload)?;
        self.execute(outputs, ctx);
        Ok(())
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct RegisterService {
    group: GroupName,
    recipients: ServiceRecipients,
}

impl<T: ActorTransport> Handler<RegisterService> for NodeActor<T> {
    type Result = ();
    fn handle(&mut self, msg: RegisterService, ctx: &mut Self::Context) {
        self.services.insert(msg.group.clone(), msg.recipients);
        let work = self.edge.register(&self.core, msg.group);
        self.carry_out(work, ctx);
    }
}

#[derive(Message)]
#[rtype(result = "Result<(), NodeError>")]
enum Request {
    Join(GroupName),
    Leave(GroupName),
}

impl<T: ActorTransport> Handler<Request> for NodeActor<T> {
    type Result = Result<(), NodeError>;
    fn handle(&mut self, msg: Request, ctx: &mut Self::Context) -> Self::Result {
        let now = self.now();
        let outputs = match msg {
            Request::Join(group) => self.core.handle_join(now, group)?,
            Request::Leave(group) => self.core.handle_leave(now, &group)?,
        };
        self.execute(outputs, ctx);
        Ok(())
    }
}

#[derive(Message)]
#[rtype(result = "Option<View>")]
struct GetView(GroupName);

impl<T: ActorTransport> Handler<GetView> for NodeActor<T> {
    type Result = Option<View>;
    fn handle(&mut self, msg: GetView, _ctx: &mut Self::Context) -> Self::Result {
        self.core.view(&msg.0).cloned()
    }
}

#[derive(Message)]
#[rtype(result = "NodeStats")]
struct GetStats;

impl<T: ActorTransport> Handler<GetStats> for NodeActor<T> {
    type Result = MessageResult<GetStats>;
    fn handle(&mut self, _msg: GetStats, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.stats())
    }
}

#[derive(Message)]
#[rtype(result = "Option<mpsc::Receiver<GroupEvent>>")]
enum Subscribe {
    Channel,
    Actor(Recipient<GroupEvent>),
}

impl<T: ActorTransport> Handler<Subscribe> for NodeActor<T> {
    type Result = MessageResult<Subscribe>;
    fn handle(&mut self, msg: Subscribe, _ctx: &mut Self::Context) -> Self::Result {
        let (subscriber, receiver) = match msg {
            Subscribe::Channel => {
                let (tx, rx) = mpsc::channel(EVENT_QUEUE_EVENTS);
                (Subscriber::Channel(tx), Some(rx))
            }
            Subscribe::Actor(recipient) => (Subscriber::Actor(recipient), None),
        };
        // A new subscriber first learns the views installed already.
        for core in self.core.groups() {
            if let Some(view) = core.view() {
                subscriber.offer(GroupEvent::ViewInstalled {
                    group: core.group().clone(),
                    change: ViewChange::between(None, view.clone()),
                });
            }
        }
        self.subscribers.push(subscriber);
        MessageResult(receiver)
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Stop;

impl<T: ActorTransport> Handler<Stop> for NodeActor<T> {
    type Result = ();
    fn handle(&mut self, _msg: Stop, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

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
            NodeActor {
                core,
                edge: ServiceEdge::new(EdgeLimits::NODE),
                codec,
                transport,
                origin: Instant::now(),
                initial_groups: config.groups.clone(),
                subscribers: Vec::new(),
                events_dropped: 0,
                services: BTreeMap::new(),
                flush_scheduled: false,
                blocked_logged: BTreeMap::new(),
                data_dir: config.data_dir.clone(),
                member_of,
            }
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
        };
        self.actor
            .send(RegisterService { group, recipients })
            .await
            .map_err(|_| NodeError::Stopped)
    }

    /// Multicasts `payload` to `group` with the group's ordering. Resolves once the multicast
    /// is accepted for sending; waits while flow control withholds credit (up to
    /// [`PARKED_MULTICASTS`] waiting, then fails with
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
