//! The node actor and the handle applications use.

use super::events::{GroupEvent, NodeStats};
use super::service::{
    EventsRecipient, ServiceEvent, ServiceEvents, ServiceRecipients, TakeDelta, TakeSnapshot,
};
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
use crate::wire::Seq;
use crate::wire::{FrameCodec, Outcome, WireStats};
use actix::prelude::*;
use bytes::Bytes;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

mod operator;

pub use crate::proto::TICK_INTERVAL;
pub(super) use operator::{GetStatus, ReportServiceStatus, ServiceInfo};
pub use operator::{
    QueryServiceStatus, MONITORS_MAX, MONITOR_BUFFER_EVENTS, REQUEST_TIMERS_MAX,
    REQUEST_TIMER_EXPIRY,
};
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

/// How long [`NodeHandle::multicast_until`](super::NodeHandle::multicast_until) waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Until {
    /// Until the node accepted the multicast for sending (what `multicast` waits for).
    Accepted,
    /// Until this node delivered it to its own service, in the group's agreed order, and
    /// the service handled that delivery.
    Delivered,
    /// Until it is delivered here (as with `Delivered`) and *stable*: every member of the
    /// view it was delivered in holds it, or that view ended (see `multicast_until`).
    Stable,
}

/// Where this node delivered one of its own multicasts: the view it was sent and delivered
/// in, and its place in this node's stream of that view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Delivery {
    /// The view.
    pub view: ViewId,
    /// Its sequence number in this node's stream of `view`.
    pub seq: Seq,
}

/// How a caller of `multicast_until` learns of the delivery (or stability).
type WaitReply = tokio::sync::oneshot::Sender<Result<Delivery, NodeError>>;

/// How a parked multicast's caller is answered: its acceptance, and what it waits for after.
#[derive(Debug)]
pub(super) struct Reply {
    answer: tokio::sync::oneshot::Sender<Result<(), NodeError>>,
    group: GroupName,
    wait: Option<(Until, WaitReply)>,
}

/// A caller waiting for the delivery of this node's `index`th accepted multicast in a group.
#[derive(Debug)]
struct Waiter {
    index: u64,
    until: Until,
    reply: WaitReply,
}

/// This node's own multicasts in one group, counted to match callers with deliveries: own
/// multicasts are delivered here in the order they were accepted (FIFO per sender, also the
/// outbox's across a view change), so the `n`th own delivery is the `n`th accepted one,
/// except those lost when this node was excluded or left, reconciled then.
#[derive(Debug, Default)]
struct OwnMulticasts {
    /// Own multicasts accepted by the core (every `multicast*` call, waited for or not).
    accepted: u64,
    /// Own multicasts delivered to the service, or known lost.
    settled: u64,
    /// Callers waiting for a delivery, by index.
    waiting: VecDeque<Waiter>,
    /// Callers whose multicast was delivered, waiting for it to be stable.
    stable: Vec<(Delivery, WaitReply)>,
}

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
    /// Events for services that take them in bursts, gathered during one step and sent at
    /// its end (or before anything else the service must see after them): at most one
    /// step's outputs.
    bursts: Vec<(GroupName, Vec<ServiceEvent>)>,
    flush_scheduled: bool,
    /// Groups this node is blocked in, with when that was last logged.
    blocked_logged: BTreeMap<GroupName, Time>,
    /// Where the node records the groups it has been a member of (with `data_dir`).
    data_dir: Option<std::path::PathBuf>,
    /// The groups recorded there.
    member_of: std::collections::BTreeSet<String>,
    /// Own multicasts per group, and the callers waiting for their delivery or stability.
    own: BTreeMap<GroupName, OwnMulticasts>,
    /// Monitors, request latencies, services' reports, operators' commands.
    operator: operator::Operator,
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
        latency: super::metrics::RequestLatency,
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
            bursts: Vec::new(),
            flush_scheduled: false,
            blocked_logged: BTreeMap::new(),
            data_dir: config.data_dir.clone(),
            member_of,
            own: BTreeMap::new(),
            operator: operator::Operator::new(latency),
        }
    }

    /// Notified when an operator asked the node to leave every group and stop.
    pub(super) fn stop_requested(&self) -> std::sync::Arc<tokio::sync::Notify> {
        self.operator.stop_requested.clone()
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
        // A view accepted is on disk before any frame of this step leaves (its `Accepted`).
        for output in &work {
            if let EdgeOutput::Node(NodeOutput::ViewAccepted { accepted, .. }) = output {
                self.record_accepted_view(accepted);
            }
        }
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
                    if result.is_ok() {
                        self.accepted(&token.group, token.wait);
                    }
                    let _ = token.answer.send(result.map_err(NodeError::from));
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
        let stable_awaited: Vec<GroupName> = self
            .own
            .iter()
            .filter(|(_, own)| !own.stable.is_empty())
            .map(|(group, _)| group.clone())
            .collect();
        for group in stable_awaited {
            self.check_stable(&group);
        }
        self.send_bursts();
    }

    /// Sends each service the burst of events gathered for it.
    fn send_bursts(&mut self) {
        for (group, events) in self.bursts.drain(..) {
            if let Some(EventsRecipient::Bursts(recipient)) =
                self.services.get(&group).map(|r| &r.events)
            {
                recipient.do_send(ServiceEvents(events));
            }
        }
    }

    /// The events gathered for `group`'s service and not yet sent (to send them along with,
    /// or before, something that must follow them).
    fn take_burst(&mut self, group: &GroupName) -> Vec<ServiceEvent> {
        match self.bursts.iter().position(|(g, _)| g == group) {
            Some(index) => self.bursts.swap_remove(index).1,
            None => Vec::new(),
        }
    }

    /// Callers waiting for deliveries or stability, in all groups.
    fn waiters(&self) -> usize {
        self.own
            .values()
            .map(|own| own.waiting.len() + own.stable.len())
            .sum()
    }

    /// The core accepted an own multicast in `group`; `wait` is its caller's, if it waits.
    fn accepted(&mut self, group: &GroupName, wait: Option<(Until, WaitReply)>) {
        let own = own_of(&mut self.own, group);
        let index = own.accepted;
        own.accepted += 1;
        if let Some((until, reply)) = wait {
            own.waiting.push_back(Waiter {
                index,
                until,
                reply,
            });
        }
    }

    /// Answers the callers waiting for stability in `group` whose multicast is now stable
    /// (or whose view ended), or can no longer be learnt to be (this node is no member).
    fn check_stable(&mut self, group: &GroupName) {
        let Some(own) = self.own.get_mut(group) else {
            return;
        };
        let multicast = self
            .core
            .groups()
            .find(|g| g.group() == group)
            .map(|g| g.multicast());
        let service_view = multicast.and_then(|m| m.service_view()).map(|v| v.id);
        for (delivery, reply) in std::mem::take(&mut own.stable) {
            let outcome = match service_view {
                None => Some(Err(NodeError::Abandoned(
                    "no longer a member of the group: the multicast's stability is unknown",
                ))),
                // The view ended and this node moved on: every member that moved on with it
                // delivered the same multicasts of that view.
                Some(current) if current > delivery.view => Some(Ok(delivery)),
                Some(_) => multicast
                    .and_then(|m| m.own_stable(delivery.view))
                    .filter(|stable| *stable >= delivery.seq)
                    .map(|_| Ok(delivery)),
            };
            match outcome {
                Some(result) => {
                    let _ = reply.send(result);
                }
                None => own.stable.push((delivery, reply)),
            }
        }
    }

    /// This node was excluded from or left `group`: its own multicasts that had left the
    /// outbox and were not delivered are lost (the outbox's wait for the next view, unless it
    /// left), and stability can no longer be learnt. Their callers are told.
    fn own_lost(&mut self, group: &GroupName) {
        let outbox = self
            .core
            .groups()
            .find(|g| g.group() == group)
            .map_or(0, |g| g.multicast().outbox_len() as u64);
        let Some(own) = self.own.get_mut(group) else {
            return;
        };
        let pending = own.accepted - own.settled;
        let upto = own.settled + pending.saturating_sub(outbox);
        while own.waiting.front().is_some_and(|w| w.index < upto) {
            let waiter = own.waiting.pop_front().expect("checked");
            let _ = waiter.reply.send(Err(NodeError::Abandoned(
                "this node was excluded from or left the group before the multicast was delivered",
            )));
        }
        own.settled = upto;
        for (_, reply) in own.stable.drain(..) {
            let _ = reply.send(Err(NodeError::Abandoned(
                "this node was excluded from or left the group: the multicast's stability is unknown",
            )));
        }
    }

    /// Tells subscribers of a node event.
    fn notify(&mut self, output: NodeOutput) {
        if let NodeOutput::ViewInstalled { group, change } = &output {
            self.record_membership(group);
            self.record_last_view(&change.view);
        }
        if let NodeOutput::Excluded { group, .. } | NodeOutput::Left { group } = &output {
            self.own_lost(group);
        }
        log_event(&output);
        self.monitor_output(&output);
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
        if !self.services.contains_key(&group) {
            return;
        }
        match &event {
            ServiceEvent::ViewChange { change, .. } => {
                tracing::info!(view = %change.view, "service view")
            }
            ServiceEvent::Request(request) => self.request_started(&group, request.reply),
            ServiceEvent::Restore { view, .. } => {
                self.monitor_event(crate::wire::status::NodeEvent::StateTransferred {
                    group: group.clone(),
                    view: *view,
                })
            }
            _ => {}
        }
        let recipients = self.services.get(&group).expect("checked above");
        // An own delivery settles the oldest own multicast not yet settled.
        let mut resolves = None;
        if let ServiceEvent::Deliver { message, .. } = &event {
            if message.sender == self.core.me().id {
                let own = own_of(&mut self.own, &group);
                let index = own.settled;
                own.settled += 1;
                if own.waiting.front().is_some_and(|w| w.index == index) {
                    let delivery = Delivery {
                        view: message.view,
                        seq: message.seq,
                    };
                    resolves = own.waiting.pop_front().map(|w| (w, delivery));
                }
            }
        }
        let confirm = checkpoint.is_some() || resolves.is_some();
        let request = match &recipients.events {
            EventsRecipient::OneByOne(recipient) if !confirm => {
                recipient.do_send(event);
                return;
            }
            EventsRecipient::OneByOne(recipient) => {
                futures::future::Either::Left(recipient.send(event))
            }
            EventsRecipient::Bursts(_) if !confirm => {
                match self.bursts.iter_mut().find(|(g, _)| *g == group) {
                    Some((_, events)) => events.push(event),
                    None => self.bursts.push((group, vec![event])),
                }
                return;
            }
            EventsRecipient::Bursts(recipient) => {
                let recipient = recipient.clone();
                let mut events = self.take_burst(&group);
                events.push(event);
                futures::future::Either::Right(recipient.send(ServiceEvents(events)))
            }
        };
        // Mailboxes are FIFO: once this one is handled, so is everything before it.
        ctx.spawn(request.into_actor(self).map(move |handled, actor, ctx| {
            if let Some((waiter, delivery)) = resolves {
                match (handled, waiter.until) {
                    (Err(_), _) => {
                        let _ = waiter.reply.send(Err(NodeError::Abandoned(
                            "the service stopped before it handled the delivery",
                        )));
                    }
                    (Ok(()), Until::Stable) => {
                        let own = actor.own.entry(group.clone()).or_default();
                        own.stable.push((delivery, waiter.reply));
                        actor.check_stable(&group);
                    }
                    (Ok(()), _) => {
                        let _ = waiter.reply.send(Ok(delivery));
                    }
                }
            }
            if let Some(upto) = checkpoint {
                actor.edge.handle_handled(&group, upto);
                let now = actor.now();
                let more = actor.edge.refresh(&mut actor.core, now);
                actor.carry_out(more, ctx);
            }
        }));
    }

    /// Asks `group`'s service for the snapshot joiners of `view` need. If the service cannot
    /// answer (it stopped), the core is told the snapshot failed: this process stops vouching
    /// for the state and gets it again, and the joiners get it from another member. Never
    /// empty bytes in its place.
    fn request_snapshot(&mut self, group: GroupName, view: ViewId, ctx: &mut Context<Self>) {
        // The snapshot follows every event before it.
        let burst = self.take_burst(&group);
        let Some(recipients) = self.services.get(&group) else {
            return;
        };
        if let (EventsRecipient::Bursts(recipient), false) = (&recipients.events, burst.is_empty())
        {
            recipient.do_send(ServiceEvents(burst));
        }
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
        let burst = self.take_burst(&group);
        if let (Some(EventsRecipient::Bursts(events)), false) = (
            self.services.get(&group).map(|r| &r.events),
            burst.is_empty(),
        ) {
            events.do_send(ServiceEvents(burst));
        }
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

    /// Records `accepted` as the latest view accepted in its group. A node that cannot record
    /// it stops: answering `Accepted` without the record could let a total failure hide a
    /// decided view (see `proto::membership::join`).
    fn record_accepted_view(&mut self, accepted: &crate::wire::AcceptedView) {
        let Some(dir) = &self.data_dir else { return };
        if let Err(error) = super::data_dir::record_accepted_view(dir, accepted) {
            tracing::error!(group = %accepted.view.group, %error, "cannot record an accepted view in data_dir; stopping rather than answer without it");
            std::process::exit(crate::runtime::EXIT_DATA_DIR_FAILED);
        }
    }

    /// Logs, at WARN and again every [`BLOCKED_REPORT_INTERVAL`], each group this node is
    /// blocked in and what it waits for; and once it goes on again.
    fn report_blocked(&mut self) {
        let now = self.now();
        let mut still_blocked = BTreeMap::new();
        let mut changes = Vec::new();
        for core in self.core.groups() {
            let group = core.group();
            let Some(blocked) = core.blocked(now) else {
                if self.blocked_logged.contains_key(group) {
                    tracing::info!(%group, "no longer blocked");
                    changes.push(crate::wire::status::NodeEvent::Unblocked {
                        group: group.clone(),
                    });
                }
                continue;
            };
            if !self.blocked_logged.contains_key(group) {
                changes.push(crate::wire::status::NodeEvent::Blocked {
                    group: group.clone(),
                    blocked: blocked.clone(),
                });
            }
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
        for event in changes {
            self.monitor_event(event);
        }
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

/// `group`'s own-multicast counts, created at first use. Every own multicast and own delivery
/// comes here, so the group name is cloned only the first time, not on the hot path.
fn own_of<'a>(
    own: &'a mut BTreeMap<GroupName, OwnMulticasts>,
    group: &GroupName,
) -> &'a mut OwnMulticasts {
    if !own.contains_key(group) {
        own.insert(group.clone(), OwnMulticasts::default());
    }
    own.get_mut(group).expect("just made")
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
        NodeOutput::ViewAccepted { group, accepted } => {
            tracing::debug!(%group, view = %accepted.view.id, base = %accepted.base, "view accepted")
        }
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
            actor.flush_monitors();
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
        if msg.envelope.body.is_operator() {
            return self.handle_operator(msg.envelope, msg.connection, ctx);
        }
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
#[rtype(result = "Result<Option<Delivery>, NodeError>")]
pub(super) struct MulticastRequest {
    pub(super) group: GroupName,
    pub(super) ordering: Option<crate::wire::Ordering>,
    pub(super) payload: Bytes,
    pub(super) until: Until,
}

impl<T: ActorTransport> Handler<MulticastRequest> for NodeActor<T> {
    // An answer known at once is sent at once: a future would cost a spawned task per
    // multicast.
    type Result = Response<Result<Option<Delivery>, NodeError>>;
    fn handle(&mut self, msg: MulticastRequest, ctx: &mut Self::Context) -> Self::Result {
        let now = self.now();
        let mut wait = None;
        let mut delivered = None;
        if msg.until != Until::Accepted {
            if !self.edge.is_registered(&msg.group) {
                return Response::reply(Err(NodeError::Abandoned(
                    "no service registered for the group: nothing is delivered to wait for",
                )));
            }
            let waiters = self.waiters();
            if waiters >= PARKED_MULTICASTS {
                return Response::reply(Err(NodeError::TooManyWaiters(waiters)));
            }
            let (reply, receiver) = tokio::sync::oneshot::channel();
            wait = Some((msg.until, reply));
            delivered = Some(receiver);
        }
        let mut answered = None;
        let group = msg.group.clone();
        let admitted = self.edge.handle_multicast(
            &mut self.core,
            now,
            &msg.group,
            msg.ordering,
            msg.payload,
            || {
                let (answer, receiver) = tokio::sync::oneshot::channel();
                answered = Some(receiver);
                Reply {
                    answer,
                    group,
                    wait: wait.take(),
                }
            },
        );
        let waits_for_delivery = delivered.is_some();
        let delivered = async move {
            match delivered {
                None => Ok(None),
                Some(receiver) => receiver.await.unwrap_or(Err(NodeError::Stopped)).map(Some),
            }
        };
        match admitted {
            Ok(Admitted::Now(work)) => {
                // Counted before the outputs are carried out: they may hold its delivery.
                self.accepted(&msg.group, wait.take());
                self.carry_out(work, ctx);
                self.schedule_flush(ctx);
                if waits_for_delivery {
                    Response::fut(delivered)
                } else {
                    Response::reply(Ok(None))
                }
            }
            Ok(Admitted::Parked) => {
                let answered = answered.expect("a parked multicast has a waiter");
                Response::fut(async move {
                    answered.await.unwrap_or(Err(NodeError::Stopped))?;
                    delivered.await
                })
            }
            Err(error) => Response::reply(Err(error.into())),
        }
    }
}

#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct SetAvailableWhileBlocked {
    pub(super) group: GroupName,
}

impl<T: ActorTransport> Handler<SetAvailableWhileBlocked> for NodeActor<T> {
    type Result = ();
    fn handle(&mut self, msg: SetAvailableWhileBlocked, _ctx: &mut Self::Context) {
        self.core.set_available_while_blocked(&msg.group, true);
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
            let recorded = super::data_dir::recorded_last_view(dir, &msg.group).and_then(|last| {
                Ok(last.zip(Some(super::data_dir::recorded_accepted_view(
                    dir, &msg.group,
                )?)))
            });
            match recorded {
                Ok(Some((last_view, accepted))) => {
                    let accepted = accepted.filter(|a| a.view.id.epoch > last_view.id.epoch);
                    tracing::info!(group = %msg.group, last_view = %last_view.id, accepted = ?accepted.as_ref().map(|a| a.view.id), position, "recovered a durable state: may re-form the group with a majority of its last view (and of any later view it accepted) if no member is left");
                    let claim = crate::wire::RecoveryClaim {
                        last_view,
                        accepted,
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
        self.request_answered(&msg.reply);
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

/// The notification an operator's `viewsync leave` sets.
#[derive(Message)]
#[rtype(result = "std::sync::Arc<tokio::sync::Notify>")]
pub(super) struct GetStopRequested;

impl<T: ActorTransport> Handler<GetStopRequested> for NodeActor<T> {
    type Result = MessageResult<GetStopRequested>;
    fn handle(&mut self, _msg: GetStopRequested, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.stop_requested())
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
