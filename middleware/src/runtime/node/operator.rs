//! What the node actor does for operators: its status (`viewsync status`, the metrics
//! endpoint), its events streamed to monitors (`viewsync monitor`), and the commands
//! `viewsync leave` and `viewsync evict`. The protocol cores never see these requests
//! ([`Body::is_operator`]); the codec has already refused the commands when they were not
//! authenticated (a keyed node accepts only status and monitor requests without the key).

use super::{ActorTransport, NodeActor};
use crate::id::{ConnectionId, GroupName, NodeId, ProcessId};
use crate::proto::membership::Status;
use crate::proto::node::NodeOutput;
use crate::proto::service_edge::ReplyTo;
use crate::runtime::metrics::RequestLatency;
use crate::wire::status::{
    GroupState, NodeEvent, NodeStatus, ServiceState, StampedEvent, Standing, StatusCounters,
};
use crate::wire::{Body, Envelope, PROTOCOL_VERSION};
use actix::prelude::*;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Monitors (`viewsync monitor` connections) a node serves at once; a further one is refused.
pub const MONITORS_MAX: usize = 16;
/// Events buffered per monitor that its connection has not taken yet. At the limit the
/// oldest is dropped, and the next frame tells the monitor how many were (it prints
/// `dropped N events`).
pub const MONITOR_BUFFER_EVENTS: usize = 256;
/// Events per frame to a monitor.
const MONITOR_FRAME_EVENTS: usize = 64;
/// Client requests whose arrival time the node keeps, to measure their latency. At the
/// limit, requests older than [`REQUEST_TIMER_EXPIRY`] are forgotten (never answered: their
/// service lost them, or the client left); if none is, further requests are answered as
/// usual but not measured. A service that never answers cannot grow the table.
pub const REQUEST_TIMERS_MAX: usize = 65_536;
/// How long a request may wait for its answer and still be measured once the timing table
/// is full.
pub const REQUEST_TIMER_EXPIRY: std::time::Duration = std::time::Duration::from_secs(60);

/// Asks a group's service what it reports of itself (its strategy's position, log, data
/// directory) for `viewsync status` and the metrics. See
/// [`NodeHandle::report_service_status`](crate::runtime::NodeHandle::report_service_status).
#[derive(Clone, Debug, PartialEq, Eq, Message)]
#[rtype(result = "ServiceState")]
pub struct QueryServiceStatus {
    /// The group.
    pub group: GroupName,
}

/// A group's service as the operator sees it.
pub(in crate::runtime) struct ServiceInfo {
    pub(in crate::runtime) strategy: String,
    pub(in crate::runtime) query: Option<Recipient<QueryServiceStatus>>,
}

/// One `viewsync monitor` connection.
struct Monitor {
    connection: ConnectionId,
    buffer: VecDeque<StampedEvent>,
    dropped: u64,
}

impl Monitor {
    /// Buffers `event`, dropping the oldest at [`MONITOR_BUFFER_EVENTS`]; true if one was.
    fn push(&mut self, event: StampedEvent) -> bool {
        let full = self.buffer.len() >= MONITOR_BUFFER_EVENTS;
        if full {
            self.buffer.pop_front();
            self.dropped += 1;
        }
        self.buffer.push_back(event);
        full
    }
}

/// The actor's operator state.
pub(in crate::runtime) struct Operator {
    monitors: Vec<Monitor>,
    /// Arrival of each client request handed to a service and not answered yet.
    timers: HashMap<ReplyTo, (Instant, GroupName)>,
    pub(in crate::runtime) requests: u64,
    pub(in crate::runtime) requests_answered: u64,
    pub(in crate::runtime) services: BTreeMap<GroupName, ServiceInfo>,
    /// Set when an operator asked the node to leave every group and stop.
    pub(in crate::runtime) stop_requested: Arc<tokio::sync::Notify>,
    pub(in crate::runtime) latency: RequestLatency,
}

impl Operator {
    pub(in crate::runtime) fn new(latency: RequestLatency) -> Self {
        Operator {
            monitors: Vec::new(),
            timers: HashMap::new(),
            requests: 0,
            requests_answered: 0,
            services: BTreeMap::new(),
            stop_requested: Arc::new(tokio::sync::Notify::new()),
            latency,
        }
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The monitor event of a node output, if it is one.
fn event_of(output: &NodeOutput) -> Option<NodeEvent> {
    Some(match output {
        NodeOutput::ViewInstalled { change, .. } => NodeEvent::View {
            view: change.view.clone(),
            joined: change.joined.iter().map(|m| m.id).collect(),
            left: change.left.iter().map(|m| m.id).collect(),
        },
        NodeOutput::Excluded { group, .. } => NodeEvent::Excluded {
            group: group.clone(),
        },
        NodeOutput::Left { group } => NodeEvent::Left {
            group: group.clone(),
        },
        NodeOutput::Suspected(p) => NodeEvent::Suspected(*p),
        NodeOutput::Unsuspected(p) => NodeEvent::Unsuspected(*p),
        NodeOutput::RefusedBy {
            group,
            seed,
            reason,
        } => NodeEvent::RefusedBy {
            group: group.clone(),
            seed: *seed,
            reason: reason.clone(),
        },
        _ => return None,
    })
}

impl<T: ActorTransport> NodeActor<T> {
    /// Tells the monitors of `event`.
    pub(super) fn monitor_event(&mut self, event: NodeEvent) {
        if self.operator.monitors.is_empty() {
            return;
        }
        let stamped = StampedEvent {
            unix_ms: unix_ms(),
            event,
        };
        for monitor in &mut self.operator.monitors {
            if monitor.push(stamped.clone()) {
                self.events_dropped += 1;
            }
        }
        self.flush_monitors();
    }

    /// Tells the monitors of a node output that is an event for them.
    pub(super) fn monitor_output(&mut self, output: &NodeOutput) {
        if let Some(event) = event_of(output) {
            self.monitor_event(event);
        }
    }

    /// Sends each monitor what its buffer holds, as far as its connection takes it; forgets
    /// the monitors whose connection closed.
    pub(super) fn flush_monitors(&mut self) {
        let me = self.core.me();
        let mut closed = Vec::new();
        for (index, monitor) in self.operator.monitors.iter_mut().enumerate() {
            while !monitor.buffer.is_empty() || monitor.dropped > 0 {
                let take = monitor.buffer.len().min(MONITOR_FRAME_EVENTS);
                let events: Vec<StampedEvent> = monitor.buffer.iter().take(take).cloned().collect();
                let envelope = Envelope {
                    version: PROTOCOL_VERSION,
                    sender: me.id,
                    sender_addr: me.addr,
                    seq: 0,
                    group: None,
                    body: Body::MonitorEvents {
                        events,
                        dropped: monitor.dropped,
                    },
                };
                let Ok(frame) = self.codec.seal(envelope) else {
                    // Only a frame over the size limit fails: send fewer at once next time.
                    monitor.buffer.drain(..take.max(1));
                    continue;
                };
                match self.transport.reply(monitor.connection, frame) {
                    Ok(()) => {
                        monitor.buffer.drain(..take);
                        monitor.dropped = 0;
                    }
                    // Full: kept for the next tick (and dropped oldest first past the limit).
                    Err(crate::transport::SendError::ReplyQueueFull(_)) => break,
                    Err(_) => {
                        closed.push(index);
                        break;
                    }
                }
            }
        }
        for index in closed.into_iter().rev() {
            let monitor = self.operator.monitors.swap_remove(index);
            tracing::info!(connection = monitor.connection.0, "monitor disconnected");
        }
    }

    /// A client request went to `group`'s service: its latency is measured from now.
    pub(super) fn request_started(&mut self, group: &GroupName, reply: ReplyTo) {
        self.operator.requests += 1;
        if self.operator.timers.len() >= REQUEST_TIMERS_MAX {
            self.operator
                .timers
                .retain(|_, (started, _)| started.elapsed() < REQUEST_TIMER_EXPIRY);
        }
        if self.operator.timers.len() < REQUEST_TIMERS_MAX {
            self.operator
                .timers
                .insert(reply, (Instant::now(), group.clone()));
        }
    }

    /// `group`'s service answered the request `reply` names.
    pub(super) fn request_answered(&mut self, reply: &ReplyTo) {
        let Some((started, group)) = self.operator.timers.remove(reply) else {
            return;
        };
        self.operator.requests_answered += 1;
        let strategy = self
            .operator
            .services
            .get(&group)
            .map_or("unknown", |s| s.strategy.as_str());
        self.operator
            .latency
            .observe(group.as_str(), strategy, started.elapsed());
    }

    /// Answers an operator's request (the codec authenticated the commands).
    pub(super) fn handle_operator(
        &mut self,
        envelope: Envelope,
        connection: ConnectionId,
        ctx: &mut Context<Self>,
    ) {
        let from_client = envelope.sender.is_client();
        match envelope.body {
            Body::StatusRequest => {
                let status = self.status();
                let me = self.core.me();
                let group = envelope.group;
                ctx.spawn(status.into_actor(self).map(move |status, actor, _| {
                    let envelope = Envelope {
                        version: PROTOCOL_VERSION,
                        sender: me.id,
                        sender_addr: me.addr,
                        seq: 0,
                        group,
                        body: Body::StatusResponse {
                            status: Box::new(status),
                        },
                    };
                    actor.answer_on(connection, envelope);
                }));
            }
            Body::MonitorRequest => self.add_monitor(connection),
            Body::LeaveCommand => {
                let outcome = self.leave_command(envelope.group, ctx);
                self.answer_result(connection, outcome);
            }
            Body::EvictCommand { node } => match envelope.group {
                None => self.answer_result(connection, Err("no group named".into())),
                Some(group) => {
                    let outcome = self.evict_command(&group, node, from_client, ctx);
                    // A command passed on by another member is answered to nobody: that
                    // member answered its client already.
                    if from_client {
                        self.answer_result(connection, outcome);
                    } else if let Err(error) = outcome {
                        tracing::warn!(%group, %node, %error, "eviction passed on by a member not carried out");
                    }
                }
            },
            // Answers: this node asks nobody but passes evictions on, unanswered.
            _ => {}
        }
    }

    fn answer_on(&mut self, connection: ConnectionId, envelope: Envelope) {
        match self.codec.seal(envelope) {
            Ok(frame) => {
                let _ = self.transport.reply(connection, frame);
            }
            Err(error) => tracing::warn!(%error, "cannot seal an operator's answer"),
        }
    }

    fn answer_result(&mut self, connection: ConnectionId, outcome: Result<String, String>) {
        let me = self.core.me();
        self.answer_on(
            connection,
            Envelope {
                version: PROTOCOL_VERSION,
                sender: me.id,
                sender_addr: me.addr,
                seq: 0,
                group: None,
                body: Body::CommandResult { outcome },
            },
        );
    }

    fn add_monitor(&mut self, connection: ConnectionId) {
        if self
            .operator
            .monitors
            .iter()
            .any(|m| m.connection == connection)
        {
            return;
        }
        if self.operator.monitors.len() >= MONITORS_MAX {
            self.answer_result(
                connection,
                Err(format!(
                    "this node already serves {MONITORS_MAX} monitors; close one and retry"
                )),
            );
            return;
        }
        tracing::info!(connection = connection.0, "monitor connected");
        // A new monitor first learns where the node stands: its views and blocks.
        let now = self.now();
        let mut buffer = VecDeque::new();
        let stamp = unix_ms();
        for core in self.core.groups() {
            if let Some(view) = core.view() {
                buffer.push_back(StampedEvent {
                    unix_ms: stamp,
                    event: NodeEvent::View {
                        view: view.clone(),
                        joined: Vec::new(),
                        left: Vec::new(),
                    },
                });
            }
            if let Some(blocked) = core.blocked(now) {
                buffer.push_back(StampedEvent {
                    unix_ms: stamp,
                    event: NodeEvent::Blocked {
                        group: core.group().clone(),
                        blocked,
                    },
                });
            }
        }
        self.operator.monitors.push(Monitor {
            connection,
            buffer,
            dropped: 0,
        });
        self.flush_monitors();
    }

    /// `viewsync leave`: leave `group`, or every group and then stop the node.
    fn leave_command(
        &mut self,
        group: Option<GroupName>,
        ctx: &mut Context<Self>,
    ) -> Result<String, String> {
        let now = self.now();
        match group {
            Some(group) => {
                let outputs = self
                    .core
                    .handle_leave(now, &group)
                    .map_err(|e| e.to_string())?;
                tracing::info!(%group, "an operator asked this node to leave the group");
                self.execute(outputs, ctx);
                Ok(format!(
                    "node {} is leaving group {group}",
                    self.core.me().id.node
                ))
            }
            None => {
                let groups: Vec<GroupName> =
                    self.core.groups().map(|g| g.group().clone()).collect();
                let mut leaving = Vec::new();
                for group in groups {
                    if let Ok(outputs) = self.core.handle_leave(now, &group) {
                        self.execute(outputs, ctx);
                        leaving.push(group.to_string());
                    }
                }
                tracing::info!(groups = ?leaving, "an operator asked this node to leave its groups and stop");
                self.operator.stop_requested.notify_one();
                Ok(format!(
                    "node {} is leaving groups [{}] and stops once it has left",
                    self.core.me().id.node,
                    leaving.join(", ")
                ))
            }
        }
    }

    /// `viewsync evict`: treat `node`'s process in `group`'s view as suspected here, and pass
    /// the command on to the acting coordinator when that is another member.
    fn evict_command(
        &mut self,
        group: &GroupName,
        node: NodeId,
        from_client: bool,
        ctx: &mut Context<Self>,
    ) -> Result<String, String> {
        let now = self.now();
        let (process, outputs) = self
            .core
            .handle_evict(now, group, node)
            .map_err(|e| e.to_string())?;
        tracing::warn!(%group, evicted = %process, "an operator asked to evict a member");
        self.monitor_event(NodeEvent::EvictAsked {
            group: group.clone(),
            node,
        });
        self.execute(outputs, ctx);
        self.schedule_flush(ctx);
        let me = self.core.me();
        let coordinator = self
            .core
            .groups()
            .find(|g| g.group() == group)
            .and_then(|g| g.acting_coordinator().copied());
        match coordinator {
            Some(coordinator) if coordinator.id != me.id && from_client => {
                let envelope = Envelope {
                    version: PROTOCOL_VERSION,
                    sender: me.id,
                    sender_addr: me.addr,
                    seq: 0,
                    group: Some(group.clone()),
                    body: Body::EvictCommand { node },
                };
                let sent = self
                    .codec
                    .seal(envelope)
                    .map_err(|e| e.to_string())
                    .and_then(|frame| {
                        self.transport
                            .send(coordinator.addr, frame)
                            .map_err(|e| e.to_string())
                    });
                match sent {
                    Ok(()) => Ok(format!(
                        "evicting {process} from {group}: passed on to the coordinator, node {}",
                        coordinator.id.node
                    )),
                    Err(error) => Err(format!(
                        "cannot pass the eviction on to the coordinator, node {}: {error}",
                        coordinator.id.node
                    )),
                }
            }
            _ => Ok(format!(
                "evicting {process} from {group}: node {} proposes a view without it",
                me.id.node
            )),
        }
    }

    /// The node's status now; the services' parts are asked for (a service that does not
    /// answer is reported without them).
    pub(super) fn status(&self) -> impl std::future::Future<Output = NodeStatus> + 'static {
        let now = self.now();
        let stats = self.stats();
        let wire = self.codec.stats();
        use std::sync::atomic::Ordering::Relaxed;
        let counters = StatusCounters {
            views_installed: stats.views_installed,
            suspicions: stats.suspicions,
            false_suspicions: stats.false_suspicions,
            frames_accepted: stats.frames_accepted,
            frames_refused_too_large: wire.refused_too_large.load(Relaxed),
            frames_refused_malformed: wire.refused_malformed.load(Relaxed),
            frames_refused_unauthenticated: wire.refused_unauthenticated.load(Relaxed),
            frames_refused_replayed: wire.refused_replayed.load(Relaxed),
            connections_closed_bad_frame: stats.connections_closed_bad_frame,
            client_windows_evicted: stats.client_windows_evicted,
            frames_sent: stats.frames_sent,
            bytes_sent: stats.bytes_sent,
            write_batches: stats.write_batches,
            frames_dropped_queue_full: stats.frames_dropped_queue_full,
            events_dropped: stats.events_dropped,
            multicasts: stats.multicasts,
            delivered: stats.delivered,
            retransmitted: stats.retransmitted,
            duplicates: stats.duplicates,
            state_transfers: stats.state_transfers,
            requests: self.operator.requests,
            requests_answered: self.operator.requests_answered,
            buffered_entries: stats.buffered_entries,
            waiting_multicasts: stats.waiting_multicasts,
        };
        let me = self.core.me();
        let fd = self.core.failure_detector();
        let suspected: Vec<ProcessId> = fd.monitored().filter(|p| fd.is_suspected(*p)).collect();
        let mut queries = Vec::new();
        let groups: Vec<GroupState> = self
            .core
            .groups()
            .map(|core| {
                let group = core.group().clone();
                let view = core.view().cloned();
                let multicast = core.multicast();
                let service = self.operator.services.get(&group);
                if let Some(query) = service.and_then(|s| s.query.clone()) {
                    queries.push((group.clone(), query));
                }
                GroupState {
                    standing: match core.status() {
                        Status::Joining { .. } => Standing::Joining,
                        Status::Member => Standing::Member,
                        Status::Leaving { .. } => Standing::Leaving,
                        Status::Left => Standing::Left,
                    },
                    coordinator: core.acting_coordinator().map(|m| m.id),
                    sequencer: view.as_ref().map(|v| v.coordinator().id),
                    blocked: core.blocked(now),
                    suspected: view
                        .as_ref()
                        .map(|v| v.member_ids().filter(|p| core.suspects(*p)).collect())
                        .unwrap_or_default(),
                    unstable_entries: multicast.buffered_entries() as u64,
                    outbox: multicast.outbox_len() as u64,
                    service: service.map(|s| ServiceState {
                        strategy: s.strategy.clone(),
                        ..ServiceState::default()
                    }),
                    view,
                    group,
                }
            })
            .collect();
        let mut status = NodeStatus {
            process: me.id,
            addr: me.addr,
            uptime_ms: now.as_millis() as u64,
            groups,
            suspected,
            peers: self.transport.peers(),
            counters,
        };
        async move {
            for (group, query) in queries {
                let answer = tokio::time::timeout(
                    std::time::Duration::from_secs(2),
                    query.send(QueryServiceStatus {
                        group: group.clone(),
                    }),
                )
                .await;
                if let Ok(Ok(state)) = answer {
                    if let Some(g) = status.groups.iter_mut().find(|g| g.group == group) {
                        g.service = Some(state);
                    }
                }
            }
            status
        }
    }
}

/// The node's status (`NodeHandle::status`, the metrics endpoint).
#[derive(Message)]
#[rtype(result = "NodeStatus")]
pub(in crate::runtime) struct GetStatus;

impl<T: ActorTransport> Handler<GetStatus> for NodeActor<T> {
    type Result = ResponseFuture<NodeStatus>;
    fn handle(&mut self, _msg: GetStatus, _ctx: &mut Self::Context) -> Self::Result {
        Box::pin(self.status())
    }
}

/// Registers what `viewsync status` says of a group's service.
#[derive(Message)]
#[rtype(result = "()")]
pub(in crate::runtime) struct ReportServiceStatus {
    pub(in crate::runtime) group: GroupName,
    pub(in crate::runtime) info: ServiceInfo,
}

impl<T: ActorTransport> Handler<ReportServiceStatus> for NodeActor<T> {
    type Result = ();
    fn handle(&mut self, msg: ReportServiceStatus, _ctx: &mut Self::Context) {
        self.operator.services.insert(msg.group, msg.info);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A monitor that does not keep up loses the oldest events, and counts them.
    #[test]
    fn a_full_monitor_buffer_drops_the_oldest_events_and_counts_them() {
        let mut monitor = Monitor {
            connection: ConnectionId(1),
            buffer: VecDeque::new(),
            dropped: 0,
        };
        let event = |n: u64| StampedEvent {
            unix_ms: n,
            event: NodeEvent::Unblocked {
                group: GroupName::new("g").unwrap(),
            },
        };
        let extra = 44;
        let dropped = (0..MONITOR_BUFFER_EVENTS as u64 + extra)
            .filter(|n| monitor.push(event(*n)))
            .count() as u64;
        assert_eq!(dropped, extra);
        assert_eq!(monitor.dropped, extra);
        assert_eq!(monitor.buffer.len(), MONITOR_BUFFER_EVENTS);
        assert_eq!(monitor.buffer.front().map(|e| e.unix_ms), Some(extra));
        assert_eq!(
            monitor.buffer.back().map(|e| e.unix_ms),
            Some(MONITOR_BUFFER_EVENTS as u64 + extra - 1)
        );
    }
}
