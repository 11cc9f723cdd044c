//! The node actor and the handle applications use.

use super::events::{GroupEvent, NodeStats};
use super::service::{ServiceEvent, ServiceRecipients, TakeDelta, TakeSnapshot};
use crate::config::NodeConfig;
use crate::error::NodeError;
use crate::id::{GroupName, ProcessId, ViewId};
use crate::proto::node::{NodeCore, NodeOutput, SnapshotFailed};
use crate::proto::service_edge::{Admitted, EdgeLimits, EdgeOutput, ReplyTo, ServiceEdge};
use crate::proto::Time;
use crate::shell::dispatch;
use crate::transport::tcp::TcpSender;
use crate::transport::{Inbound, Transport};
use crate::view::{View, ViewChange};
use crate::wire::{FrameCodec, Outcome, WireStats};
use actix::prelude::*;
use bytes::Bytes;
use std::collections::BTreeMap;
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
pub(super) enum Subscriber {
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
    /// A node actor over `transport`, for `config`'s groups; `member_of` are the groups its
    /// data directory says it was a member of.
    pub(super) fn new(
        core: NodeCore,
        codec: FrameCodec,
        transport: T,
        config: &NodeConfig,
        member_of: std::collections::BTreeSet<String>,
    ) -> Self {
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
    }

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
                EdgeOutput::TakeDelta { group, view, since } => {
                    self.request_delta(group, view, since, ctx)
                }
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
        if let NodeOutput::ViewInstalled { group, change } = &output {
            self.record_membership(group);
            self.record_last_view(&change.view);
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

    /// Asks `group`'s service for a delta from `since` to its snapshot for `view`. A service
    /// that answers no deltas, or cannot answer (it stopped), counts as `None`: the joiner
    /// gets the whole snapshot.
    fn request_delta(
        &mut self,
        group: GroupName,
        view: ViewId,
        since: u64,
        ctx: &mut Context<Self>,
    ) {
        let recipient = self.services.get(&group).and_then(|r| r.delta.clone());
        let Some(recipient) = recipient else {
            let now = self.now();
            let work = self
                .edge
                .handle_delta(&mut self.core, now, &group, view, since, None);
            self.carry_out(work, ctx);
            return;
        };
        let request = recipient.send(TakeDelta {
            group: group.clone(),
            view,
            since,
        });
        ctx.spawn(request.into_actor(self).map(move |result, actor, ctx| {
            let delta = result.unwrap_or_else(|error| {
                tracing::warn!(%group, %view, since, %error, "the service cannot answer a delta: the joiner gets the whole snapshot");
                None
            });
            let now = actor.now();
            let work = actor
                .edge
                .handle_delta(&mut actor.core, now, &group, view, since, delta);
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

    /// Records `view` as the last view installed in its group (every install: total-failure
    /// recovery needs the latest).
    fn record_last_view(&mut self, view: &View) {
        let Some(dir) = &self.data_dir else { return };
        if let Err(error) = super::data_dir::record_last_view(dir, view) {
            tracing::error!(group = %view.group, %error, "cannot record the last view in data_dir");
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
        | NodeOutput::Request(_)
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
pub(super) struct FlushNow;

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
pub(super) struct MulticastRequest {
    pub(super) group: GroupName,
    pub(super) ordering: Option<crate::wire::Ordering>,
    pub(super) payload: Bytes,
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
pub(super) struct DirectRequest {
    pub(super) group: GroupName,
    pub(super) to: ProcessId,
    pub(super) payload: Bytes,
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
pub(super) struct RegisterService {
    pub(super) group: GroupName,
    pub(super) recipients: ServiceRecipients,
    /// For a service with durable state: the position of the state it recovered.
    pub(super) durable_position: Option<u64>,
}

impl<T: ActorTransport> Handler<RegisterService> for NodeActor<T> {
    type Result = ();
    fn handle(&mut self, msg: RegisterService, ctx: &mut Self::Context) {
        self.services.insert(msg.group.clone(), msg.recipients);
        // A state at position 0 is the empty state: the whole snapshot is the transfer.
        if let Some(position) = msg.durable_position.filter(|p| *p > 0) {
            tracing::info!(group = %msg.group, position, "a state transfer to this member asks for a delta from its recovered position");
            self.core.set_catch_up_from(&msg.group, Some(position));
        }
        if let (Some(position), Some(dir)) = (msg.durable_position, &self.data_dir) {
            // A former member with durable state may re-form the group after a total failure.
            match super::data_dir::recorded_last_view(dir, &msg.group) {
                Ok(Some(last_view)) => {
                    tracing::info!(group = %msg.group, last_view = %last_view.id, position, "recovered a durable state: may re-form the group with a majority of its last view if no member is left");
                    let claim = crate::wire::RecoveryClaim {
                        last_view,
                        position,
                    };
                    self.core.set_recovery(&msg.group, Some(claim));
                }
                Ok(None) => {}
                Err(error) => {
                    tracing::error!(group = %msg.group, %error, "cannot read the last view; this node will not re-form the group after a total failure")
                }
            }
        }
        let work = self.edge.register(&self.core, msg.group);
        self.carry_out(work, ctx);
    }
}

/// A service's answer to a client's request.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct ReplyToClient {
    pub(super) group: GroupName,
    pub(super) reply: ReplyTo,
    pub(super) outcome: Outcome,
}

impl<T: ActorTransport> Handler<ReplyToClient> for NodeActor<T> {
    type Result = ();
    fn handle(&mut self, msg: ReplyToClient, ctx: &mut Self::Context) {
        let output = self.core.response(&msg.group, msg.reply, msg.outcome);
        self.execute(vec![output], ctx);
    }
}

/// Leaves every group; answers the groups left.
#[derive(Message)]
#[rtype(result = "Vec<GroupName>")]
pub(super) struct LeaveAll;

impl<T: ActorTransport> Handler<LeaveAll> for NodeActor<T> {
    type Result = MessageResult<LeaveAll>;
    fn handle(&mut self, _msg: LeaveAll, ctx: &mut Self::Context) -> Self::Result {
        let now = self.now();
        let groups: Vec<GroupName> = self.core.groups().map(|g| g.group().clone()).collect();
        let mut left = Vec::new();
        for group in groups {
            if let Ok(outputs) = self.core.handle_leave(now, &group) {
                self.execute(outputs, ctx);
                left.push(group);
            }
        }
        MessageResult(left)
    }
}

#[derive(Message)]
#[rtype(result = "Result<(), NodeError>")]
pub(super) enum Request {
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
pub(super) struct GetView(pub(super) GroupName);

impl<T: ActorTransport> Handler<GetView> for NodeActor<T> {
    type Result = Option<View>;
    fn handle(&mut self, msg: GetView, _ctx: &mut Self::Context) -> Self::Result {
        self.core.view(&msg.0).cloned()
    }
}

#[derive(Message)]
#[rtype(result = "NodeStats")]
pub(super) struct GetStats;

impl<T: ActorTransport> Handler<GetStats> for NodeActor<T> {
    type Result = MessageResult<GetStats>;
    fn handle(&mut self, _msg: GetStats, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.stats())
    }
}

#[derive(Message)]
#[rtype(result = "Option<mpsc::Receiver<GroupEvent>>")]
pub(super) enum Subscribe {
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
pub(super) struct Stop;

impl<T: ActorTransport> Handler<Stop> for NodeActor<T> {
    type Result = ();
    fn handle(&mut self, _msg: Stop, ctx: &mut Self::Context) {
        ctx.stop();
    }
}
