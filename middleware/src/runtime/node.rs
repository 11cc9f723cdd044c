//! The node actor and the handle applications use.

use crate::config::NodeConfig;
use crate::error::{NodeError, StartError};
use crate::id::{GroupName, Incarnation, ProcessId, ViewId};
use crate::proto::node::{NodeCore, NodeOutput};
use crate::proto::Time;
use crate::transport::dispatch;
use crate::transport::tcp::{Inbound, Shutdown, TcpSender, TcpTransport, TransportStats};
use crate::view::{Member, View, ViewChange};
use crate::wire::{FrameCodec, WireStats};
use actix::prelude::*;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How often the node core is ticked (failure detector checks, retries, timeouts).
pub const TICK_INTERVAL: Duration = Duration::from_millis(20);
/// Events buffered per subscriber. A subscriber that falls further behind loses the newest
/// events (counted in [`NodeStats::events_dropped`]); read them.
pub const EVENT_QUEUE_EVENTS: usize = 1024;

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
            NodeOutput::Send { .. } | NodeOutput::Reply { .. } => return None,
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
    /// Connections closed over a bad frame.
    pub connections_closed_bad_frame: u64,
    /// Frames dropped because a peer's send queue was full.
    pub frames_dropped_queue_full: u64,
    /// Write calls; with `frames_sent`, shows how well batching works.
    pub write_batches: u64,
    /// Frames sealed for sending.
    pub frames_sent: u64,
    /// Events a slow subscriber lost.
    pub events_dropped: u64,
}

/// The actor that runs a node's protocol core.
pub struct NodeActor {
    core: NodeCore,
    codec: FrameCodec,
    sender: TcpSender,
    transport: Addr<TcpTransport>,
    origin: Instant,
    initial_groups: Vec<GroupName>,
    subscribers: Vec<Subscriber>,
    events_dropped: u64,
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

impl NodeActor {
    fn now(&self) -> Time {
        self.origin.elapsed()
    }

    /// Carries out the core's outputs: frames to the transport, events to subscribers.
    fn execute(&mut self, outputs: Vec<NodeOutput>) {
        let mut events = Vec::new();
        dispatch(outputs, &self.codec, &mut self.sender, |e| events.push(e));
        for output in events {
            log_event(&output);
            let Some(event) = GroupEvent::from_output(output) else {
                continue;
            };
            self.subscribers.retain(|s| !s.is_closed());
            for subscriber in &self.subscribers {
                if !subscriber.offer(event.clone()) {
                    self.events_dropped += 1;
                }
            }
        }
    }

    fn stats(&self) -> NodeStats {
        let wire: &WireStats = self.codec.stats();
        let transport: &TransportStats = self.sender.stats();
        NodeStats {
            views_installed: self.core.views_installed(),
            suspicions: self.core.failure_detector().suspicions(),
            false_suspicions: self.core.failure_detector().false_suspicions(),
            frames_accepted: wire.frames_accepted.load(Ordering::Relaxed),
            frames_refused: wire.refused_total(),
            connections_closed_bad_frame: transport
                .connections_closed_bad_frame
                .load(Ordering::Relaxed),
            frames_dropped_queue_full: transport.frames_dropped_queue_full.load(Ordering::Relaxed),
            write_batches: transport.write_batches.load(Ordering::Relaxed),
            frames_sent: wire.frames_sealed.load(Ordering::Relaxed),
            events_dropped: self.events_dropped,
        }
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
        NodeOutput::Send { .. } | NodeOutput::Reply { .. } => {}
    }
}

impl Actor for NodeActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(256);
        ctx.run_interval(TICK_INTERVAL, |actor, _ctx| {
            let outputs = actor.core.handle_tick(actor.now());
            actor.execute(outputs);
        });
        for group in std::mem::take(&mut self.initial_groups) {
            let now = self.now();
            match self.core.handle_join(now, group) {
                Ok(outputs) => self.execute(outputs),
                Err(error) => tracing::warn!(%error, "join at start"),
            }
        }
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.sender.shutdown();
        self.transport.do_send(Shutdown);
    }
}

impl Handler<Inbound> for NodeActor {
    type Result = ();
    fn handle(&mut self, msg: Inbound, _ctx: &mut Self::Context) {
        let outputs = self
            .core
            .handle_envelope(self.now(), msg.envelope, msg.connection);
        self.execute(outputs);
    }
}

#[derive(Message)]
#[rtype(result = "Result<(), NodeError>")]
enum Request {
    Join(GroupName),
    Leave(GroupName),
}

impl Handler<Request> for NodeActor {
    type Result = Result<(), NodeError>;
    fn handle(&mut self, msg: Request, _ctx: &mut Self::Context) -> Self::Result {
        let now = self.now();
        let outputs = match msg {
            Request::Join(group) => self.core.handle_join(now, group)?,
            Request::Leave(group) => self.core.handle_leave(now, &group)?,
        };
        self.execute(outputs);
        Ok(())
    }
}

#[derive(Message)]
#[rtype(result = "Option<View>")]
struct GetView(GroupName);

impl Handler<GetView> for NodeActor {
    type Result = Option<View>;
    fn handle(&mut self, msg: GetView, _ctx: &mut Self::Context) -> Self::Result {
        self.core.view(&msg.0).cloned()
    }
}

#[derive(Message)]
#[rtype(result = "NodeStats")]
struct GetStats;

impl Handler<GetStats> for NodeActor {
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

impl Handler<Subscribe> for NodeActor {
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

impl Handler<Stop> for NodeActor {
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
    pub async fn spawn(config: NodeConfig) -> Result<NodeHandle, StartError> {
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
        let me = Member {
            id: ProcessId {
                node: config.node_id,
                incarnation: Incarnation::now(),
            },
            addr: local,
        };
        let codec = FrameCodec::new(config.key.clone(), config.transport.frame_bytes_max);
        let actor = NodeActor::create(move |ctx| {
            let (transport, sender) = TcpTransport::start(
                listener,
                me,
                codec.clone(),
                config.transport,
                ctx.address().recipient(),
            );
            NodeActor {
                core: NodeCore::new(me, config.seeds.clone(), config.settings),
                codec,
                sender,
                transport,
                origin: Instant::now(),
                initial_groups: config.groups.clone(),
                subscribers: Vec::new(),
                events_dropped: 0,
            }
        });
        Ok(NodeHandle { actor, me })
    }
}

/// A running node.
#[derive(Clone)]
pub struct NodeHandle {
    actor: Addr<NodeActor>,
    me: Member,
}

impl NodeHandle {
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
        NodeConfig {
            node_id: NodeId(node),
            listen: "127.0.0.1:0".parse().unwrap(),
            seeds,
            groups: vec![GroupName::new("g").unwrap()],
            key: Some(crate::wire::ClusterKey::from_hex(&"ab".repeat(32)).unwrap()),
            settings: NodeSettings::default(),
            transport: TransportConfig::default(),
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
        let group = GroupName::new("g").unwrap();
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
