//! Deterministic simulation of a group of nodes.
//!
//! The simulator runs the production composition: each simulated process is a
//! [`NodeCore`] whose outputs are carried out by [`dispatch`], the same function the node actor
//! uses, over a [`MemoryNetwork`] that seals every message with the real codec and cluster key.
//! Time is virtual and every random choice (fault model, scenario, timing) comes from one seed,
//! so a seed replays exactly.
//!
//! A run has a fault phase (crashes, restarts with a new incarnation, graceful leaves, rejoins,
//! partitions and heals over a lossy, duplicating, reordering network) and a quiet phase (the
//! network heals, crashed nodes restart, left nodes rejoin). The checker runs after every step;
//! at the end, all processes must agree on one view holding every node, unless the fault phase
//! left no live majority of the latest view (then the group blocks by design, and only safety
//! is checked).

pub mod checker;
pub mod delivery_checker;

use crate::id::{GroupName, Incarnation, NodeId, ProcessId, ViewId};
use crate::proto::multicast::{Delivery, MulticastOutput};
use crate::proto::node::{NodeCore, NodeOutput, NodeSettings};
use crate::proto::Time;
use crate::runtime::TICK_INTERVAL;
use crate::transport::dispatch;
use crate::transport::memory::{Faults, MemoryEndpoint, MemoryNetwork, NetworkStats};
use crate::view::{Member, View};
use crate::wire::codec::FRAME_BYTES_MAX_DEFAULT;
use crate::wire::{ClusterKey, FrameCodec, Ordering};
use bytes::{Bytes, BytesMut};
use checker::{MembershipChecker, Violation};
use delivery_checker::{mix, DeliveryChecker, StateDigest};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;
use tokio_util::codec::Decoder;

/// What to simulate.
#[derive(Clone, Debug, PartialEq)]
pub struct SimConfig {
    /// The seed every random choice derives from.
    pub seed: u64,
    /// Number of nodes.
    pub nodes: usize,
    /// Length of the fault phase (virtual time).
    pub fault_time: Duration,
    /// Length of the quiet phase that follows.
    pub quiet_time: Duration,
    /// Network faults during the fault phase.
    pub faults: Faults,
    /// Protocol settings (the production defaults unless a test changes them).
    pub settings: NodeSettings,
    /// Chance that a live member multicasts at each of its ticks during traffic.
    pub send_probability: f64,
    /// Chance that a multicast overrides the group's ordering with a random one.
    pub override_probability: f64,
    /// Also trace every delivery (for replaying one seed).
    pub trace_deliveries: bool,
}

impl SimConfig {
    /// A scenario drawn from `seed`: 3 to 7 nodes, a 12 s fault phase with up to 20% loss,
    /// 10% duplication and up to 80 ms delay, and a 20 s quiet phase.
    pub fn from_seed(seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed_5eed);
        let delay_max = Duration::from_micros(rng.gen_range(200..80_000));
        let mut settings = NodeSettings::default();
        let m = &mut settings.multicast;
        m.ordering = [Ordering::Fifo, Ordering::Causal, Ordering::Total][rng.gen_range(0..3)];
        m.delivery = if rng.gen_bool(0.25) {
            Delivery::Safe
        } else {
            Delivery::Agreed
        };
        // Small windows and chunks, so flow control and chunked transfers happen often.
        m.window_messages = rng.gen_range(8..256);
        m.window_bytes = 64 << 10;
        m.outbox_messages = rng.gen_range(16..512);
        m.state_chunk_bytes = 512;
        m.state_window_chunks = 4;
        m.ack_interval = Duration::from_millis(40);
        m.flush_fetch_timeout = Duration::from_secs(3);
        SimConfig {
            seed,
            nodes: rng.gen_range(3..=7),
            fault_time: Duration::from_secs(12),
            quiet_time: Duration::from_secs(20),
            faults: Faults {
                drop_probability: rng.gen_range(0.0..0.2),
                duplicate_probability: rng.gen_range(0.0..0.1),
                delay_min: Duration::from_micros(50),
                delay_max,
                late_probability: 0.0,
                late_delay_max: Duration::ZERO,
            },
            settings,
            send_probability: rng.gen_range(0.05..0.4),
            override_probability: if rng.gen_bool(0.5) { 0.3 } else { 0.0 },
            trace_deliveries: false,
        }
    }
}

/// The outcome of a run.
#[derive(Debug)]
pub struct SimReport {
    /// The seed.
    pub seed: u64,
    /// Safety and liveness violations found.
    pub violations: Vec<Violation>,
    /// Whether the liveness check applied (`false`: the fault phase left no live majority,
    /// and the group blocked by design).
    pub liveness_checked: bool,
    /// Distinct views installed.
    pub views_seen: usize,
    /// What the network did.
    pub network: NetworkStats,
    /// Multicasts made by the services.
    pub multicasts: u64,
    /// Deliveries to the services.
    pub deliveries: u64,
    /// State transfers completed.
    pub state_transfers: u64,
    /// The scenario and the views, in order, for a replay.
    pub trace: Vec<String>,
}

impl SimReport {
    /// The command that replays this run.
    pub fn replay_command(&self) -> String {
        format!(
            "SIM_SEED={} cargo test --locked -p viewsync-tests --test sim -- --nocapture",
            self.seed
        )
    }
}

/// The simulated replicated service: its state is the set of ids it delivered (or restored)
/// and a hash chain of its total-order deliveries, streamed in chunks to joiners.
#[derive(Debug, Default)]
struct SimService {
    delivered: BTreeSet<u64>,
    total_chain: u64,
    view: Option<ViewId>,
    /// Per sender, the highest counter delivered in the current view.
    last_counter: BTreeMap<ProcessId, u64>,
    counter: u64,
}

impl SimService {
    fn digest(&self) -> StateDigest {
        StateDigest {
            count: self.delivered.len() as u64,
            set_hash: self.delivered.iter().fold(0, |h, id| h ^ mix(*id)),
            total_chain: self.total_chain,
        }
    }

    fn snapshot(&self) -> Bytes {
        let mut bytes = Vec::with_capacity(8 * (self.delivered.len() + 1));
        bytes.extend_from_slice(&self.total_chain.to_le_bytes());
        for id in &self.delivered {
            bytes.extend_from_slice(&id.to_le_bytes());
        }
        Bytes::from(bytes)
    }

    /// Restores a snapshot; `false` if it is malformed. An empty state is malformed: every
    /// snapshot holds at least the chain, so an empty one means the group's state was
    /// replaced by nothing.
    fn restore(&mut self, state: &[u8]) -> bool {
        if state.is_empty() || state.len() % 8 != 0 {
            return false;
        }
        let mut words = state
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")));
        self.total_chain = words.next().expect("not empty");
        self.delivered = words.collect();
        true
    }
}

struct SimNode {
    node_id: NodeId,
    addr: SocketAddr,
    incarnations: u64,
    core: Option<NodeCore>,
    codec: FrameCodec,
    endpoint: MemoryEndpoint,
    next_tick: Time,
    in_group: bool,
    service: SimService,
}

/// A simulation in progress.
pub struct Simulation {
    config: SimConfig,
    rng: StdRng,
    now: Time,
    network: Rc<RefCell<MemoryNetwork>>,
    nodes: Vec<SimNode>,
    key: ClusterKey,
    group: GroupName,
    checker: MembershipChecker,
    deliveries: DeliveryChecker,
    /// Multicasts made while the network is quiet, which must reach every final member.
    quiet_multicasts: Vec<(ProcessId, u64)>,
    multicasts: u64,
    trace: Vec<String>,
    next_scenario_event: Time,
    final_violations: Vec<Violation>,
    replays_refused: u64,
    quiet: bool,
    /// Some process installed a view: the group exists and is never founded again.
    group_formed: bool,
    dumped: bool,
}

impl Simulation {
    /// Sets up the nodes; none has started.
    pub fn new(config: SimConfig) -> Self {
        let mut rng = StdRng::seed_from_u64(config.seed);
        let safe = config.settings.multicast.delivery == Delivery::Safe;
        let network = Rc::new(RefCell::new(MemoryNetwork::new(rng.gen(), config.faults)));
        let key_bytes: [u8; 32] = rng.gen();
        let key = ClusterKey::from_hex(&hex::encode(key_bytes)).expect("32 bytes");
        let nodes = (0..config.nodes)
            .map(|i| {
                let addr = SocketAddr::from(([10, 0, 0, (i + 1) as u8], 7000));
                SimNode {
                    node_id: NodeId(i as u64 + 1),
                    addr,
                    incarnations: 0,
                    core: None,
                    codec: FrameCodec::new(Some(key.clone()), FRAME_BYTES_MAX_DEFAULT),
                    endpoint: MemoryEndpoint::new(addr, network.clone()),
                    next_tick: Time::ZERO,
                    in_group: false,
                    service: SimService::default(),
                }
            })
            .collect();
        Simulation {
            config,
            rng,
            now: Time::ZERO,
            network,
            nodes,
            key,
            group: GroupName::new("sim").expect("valid"),
            checker: MembershipChecker::default(),
            deliveries: DeliveryChecker::new(safe),
            quiet_multicasts: Vec::new(),
            multicasts: 0,
            trace: Vec::new(),
            next_scenario_event: Time::ZERO,
            final_violations: Vec::new(),
            replays_refused: 0,
            quiet: false,
            group_formed: false,
            dumped: false,
        }
    }

    /// Runs the whole scenario and reports.
    pub fn run(mut self) -> SimReport {
        // Nodes start within the first half second: a bootstrap race on purpose.
        for i in 0..self.nodes.len() {
            let at = Duration::from_millis(self.rng.gen_range(0..500));
            self.nodes[i].next_tick = at;
        }
        let fault_end = self.config.fault_time;
        let end = fault_end + self.config.quiet_time;
        self.next_scenario_event = Duration::from_millis(1500);
        loop {
            let quiet = self.quiet;
            let next_net = self.network.borrow().next_due();
            let next_tick = self.nodes.iter().map(|n| n.next_tick).min().expect("nodes");
            let mut now = next_tick;
            if let Some(t) = next_net {
                now = now.min(t);
            }
            if !quiet {
                now = now.min(self.next_scenario_event).min(fault_end);
            }
            if now > end {
                break;
            }
            self.now = now;
            self.network.borrow_mut().set_now(now);
            if !quiet && now >= fault_end {
                self.quiet = true;
                self.begin_quiet_phase();
            } else if !quiet && now >= self.next_scenario_event {
                self.scenario_event();
                self.next_scenario_event =
                    now + Duration::from_millis(self.rng.gen_range(200..1500));
            } else if next_net == Some(now) {
                self.deliver_one();
            } else {
                self.tick_due_node();
            }
            self.checker.check_step();
        }
        let liveness_checked = self.check_final_agreement();
        let duplicated = self.network.borrow().stats().duplicated;
        if self.replays_refused > duplicated {
            let detail = format!(
                "{} frames refused as replays, but the network duplicated only {duplicated}",
                self.replays_refused
            );
            self.checker_violation("frame integrity", detail);
        }
        let membership: BTreeMap<ProcessId, ViewId> = self
            .nodes
            .iter()
            .filter_map(|n| {
                let core = n.core.as_ref()?;
                Some((core.me().id, core.view(&self.group)?.id))
            })
            .collect();
        self.deliveries.finish(&membership);
        if self.config.trace_deliveries {
            let lines: Vec<String> = self
                .nodes
                .iter()
                .filter_map(|n| n.core.as_ref())
                .flat_map(|c| {
                    let me = c.me().id;
                    c.groups().map(move |g| {
                        format!(
                            "{me} {:?}: {} | {}",
                            g.status(),
                            g.describe(),
                            g.multicast().describe()
                        )
                    })
                })
                .collect();
            for line in lines {
                self.log(line);
            }
        }
        if liveness_checked {
            self.check_final_deliveries();
            let finals = self
                .nodes
                .iter()
                .filter_map(|n| Some((n.core.as_ref()?.me().id, n.service.delivered.clone())))
                .collect();
            self.deliveries.check_final_states(&finals);
        }
        // Live processes' counters; a crashed one's lost state showed as an empty restore.
        let states_lost = self
            .nodes
            .iter()
            .filter_map(|n| n.core.as_ref())
            .flat_map(|c| c.groups().map(|g| g.multicast().stats().states_lost))
            .sum();
        self.deliveries.check_states_lost(states_lost);
        let mut violations = self.checker.violations().to_vec();
        violations.extend(self.deliveries.violations().iter().cloned());
        violations.append(&mut self.final_violations);
        let state_transfers = self
            .nodes
            .iter()
            .filter_map(|n| n.core.as_ref())
            .flat_map(|c| c.groups().map(|g| g.multicast().stats().state_transfers))
            .sum();
        SimReport {
            seed: self.config.seed,
            violations,
            liveness_checked,
            views_seen: self.checker.views_seen(),
            network: self.network.borrow().stats(),
            multicasts: self.multicasts,
            deliveries: self.deliveries.deliveries(),
            state_transfers,
            trace: self.trace,
        }
    }

    fn log(&mut self, line: String) {
        self.trace
            .push(format!("{:>9.3}s {line}", self.now.as_secs_f64()));
    }

    fn start_node(&mut self, i: usize) {
        let seeds: Vec<SocketAddr> = self.nodes.iter().map(|n| n.addr).collect();
        let node = &mut self.nodes[i];
        node.incarnations += 1;
        let me = Member {
            id: ProcessId {
                node: node.node_id,
                incarnation: Incarnation(node.incarnations),
            },
            addr: node.addr,
        };
        // A restarted process has a fresh codec: a new frame counter, an empty replay window.
        node.codec = FrameCodec::new(Some(self.key.clone()), FRAME_BYTES_MAX_DEFAULT);
        // Founding is explicit: node 1 is configured to bootstrap the group. A restarted
        // process never founds again once the group exists (as a node with a data directory
        // knows it was a member), or a restart during a partition would start a second group.
        let mut settings = self.config.settings;
        settings.membership.bootstrap = i == 0 && !self.group_formed;
        node.core = Some(NodeCore::new(me, seeds, settings));
        node.service = SimService::default();
        self.network.borrow_mut().restart(node.addr);
        self.log(format!("start {}", me.id));
        self.join(i);
    }

    fn join(&mut self, i: usize) {
        let now = self.now;
        let group = self.group.clone();
        let node = &mut self.nodes[i];
        let core = node.core.as_mut().expect("started");
        if let Ok(outputs) = core.handle_join(now, group) {
            node.in_group = true;
            self.execute(i, outputs);
        }
    }

    fn crash(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        if let Some(core) = node.core.take() {
            self.network.borrow_mut().crash(node.addr);
            let id = core.me().id;
            self.log(format!("crash {id}"));
        }
    }

    fn leave(&mut self, i: usize) {
        let now = self.now;
        let group = self.group.clone();
        let Some(core) = self.nodes[i].core.as_mut() else {
            return;
        };
        let id = core.me().id;
        if let Ok(outputs) = core.handle_leave(now, &group) {
            self.nodes[i].in_group = false;
            self.log(format!("leave {id}"));
            self.execute(i, outputs);
        }
    }

    fn execute(&mut self, i: usize, outputs: Vec<NodeOutput>) {
        for output in &outputs {
            if let NodeOutput::Send { envelope, .. }
            | NodeOutput::SendAll { envelope, .. }
            | NodeOutput::Reply { envelope, .. } = output
            {
                self.checker.observe_send(envelope);
            }
        }
        let mut events = Vec::new();
        let node = &mut self.nodes[i];
        let process = node.core.as_ref().map(|c| c.me().id);
        dispatch(outputs, &node.codec, &mut node.endpoint, |e| events.push(e));
        let mut snapshots = Vec::new();
        for event in events {
            match event {
                NodeOutput::Group { event, .. } => {
                    let process = process.expect("a live process has a service");
                    if let Some(snapshot) = self.hand_to_service(i, process, event) {
                        snapshots.push(snapshot);
                    }
                }
                NodeOutput::ViewInstalled { change, .. } => {
                    let process = process.expect("a live process installs views");
                    self.group_formed = true;
                    self.checker.observe_install(process, &change.view);
                    self.log(format!("{process} installs {}", change.view));
                }
                NodeOutput::Excluded { by, .. } => {
                    self.log(format!("{} excluded by {by:?}", process.expect("live")));
                }
                NodeOutput::Left { .. } => self.log(format!("{} left", process.expect("live"))),
                NodeOutput::Suspected(p) => {
                    self.log(format!("{} suspects {p}", process.expect("live")))
                }
                _ => {}
            }
        }
        for (view, state) in snapshots {
            let now = self.now;
            let group = self.group.clone();
            let Some(core) = self.nodes[i].core.as_mut() else {
                break;
            };
            let outputs = core.handle_snapshot(now, &group, view, Ok(state));
            self.execute(i, outputs);
        }
    }

    /// Applies a multicast event to node `i`'s service; returns a snapshot it asked for.
    fn hand_to_service(
        &mut self,
        i: usize,
        process: ProcessId,
        event: MulticastOutput,
    ) -> Option<(ViewId, Bytes)> {
        let service = &mut self.nodes[i].service;
        match event {
            MulticastOutput::Deliver(message) => {
                let id = match message.payload.get(..8) {
                    Some(bytes) => u64::from_le_bytes(bytes.try_into().expect("8 bytes")),
                    None => 0,
                };
                let fresh = service.delivered.insert(id);
                if message.ordering == Ordering::Total {
                    service.total_chain = mix(service.total_chain ^ id);
                }
                service
                    .last_counter
                    .insert(message.sender, delivery_checker::counter_of(id));
                self.deliveries.on_deliver(process, id, &message);
                if self.config.trace_deliveries {
                    self.log(format!(
                        "{process} delivers {id:#x} ({}, {} seq {} of {})",
                        message.ordering, message.view, message.seq, message.sender
                    ));
                }
                if !fresh {
                    self.checker_violation(
                        "no duplication",
                        format!("{process} delivered {id:#x}, already in its state"),
                    );
                }
            }
            MulticastOutput::View(change) => {
                service.view = Some(change.view.id);
                service.last_counter.clear();
                let digest = service.digest();
                self.log(format!("{process} service enters {}", change.view));
                self.deliveries.on_view(process, change.view.id, digest);
            }
            MulticastOutput::Restore { view, state } => {
                let restored = service.restore(&state);
                service.view = None;
                if !restored {
                    let what = if state.is_empty() {
                        "an empty state (the group's state replaced by nothing)".to_string()
                    } else {
                        format!("a malformed state of {} bytes", state.len())
                    };
                    self.checker_violation("state transfer", format!("{process} got {what}"));
                }
                self.log(format!(
                    "{process} restores {} bytes for {view}",
                    state.len()
                ));
                let restored_ids = self.nodes[i].service.delivered.iter().copied();
                self.deliveries
                    .on_restore(process, state.len(), restored_ids);
            }
            MulticastOutput::SnapshotWanted(view) => return Some((view, service.snapshot())),
            MulticastOutput::Block | MulticastOutput::Direct { .. } => {}
            MulticastOutput::Send { .. } | MulticastOutput::SendAll { .. } => {}
        }
        None
    }

    /// Node `i`'s service may multicast a fresh id.
    fn maybe_multicast(&mut self, i: usize) {
        let end = self.config.fault_time + self.config.quiet_time;
        // Traffic stops a while before the end, so everything sent can arrive.
        if self.now + Duration::from_secs(6) > end
            || !self.nodes[i].in_group
            || !self.rng.gen_bool(self.config.send_probability)
        {
            return;
        }
        let ordering = if self.rng.gen_bool(self.config.override_probability) {
            Some([Ordering::Fifo, Ordering::Causal, Ordering::Total][self.rng.gen_range(0..3)])
        } else {
            None
        };
        let now = self.now;
        let group = self.group.clone();
        let node = &mut self.nodes[i];
        let Some(core) = node.core.as_mut() else {
            return;
        };
        let me = core.me().id;
        let id = (me.node.0 << 48) | (me.incarnation.0 << 32) | (node.service.counter + 1);
        let deps: Vec<(ProcessId, u64)> = node
            .service
            .last_counter
            .iter()
            .map(|(p, c)| (*p, *c))
            .collect();
        let effective = ordering.unwrap_or(self.config.settings.multicast.ordering);
        self.deliveries
            .on_multicast(id, me, effective, deps, node.service.view);
        let payload = Bytes::copy_from_slice(&id.to_le_bytes());
        if let Ok(outputs) = core.handle_multicast(now, &group, ordering, payload) {
            self.deliveries.on_accepted(id);
            node.service.counter += 1;
            self.multicasts += 1;
            if self.quiet && self.now >= self.config.fault_time + Duration::from_secs(2) {
                self.quiet_multicasts.push((me, id));
            }
            self.execute(i, outputs);
            self.flush(i);
        }
    }

    /// What the shell does after a burst of inputs: send what the cores queued.
    fn flush(&mut self, i: usize) {
        let now = self.now;
        if let Some(core) = self.nodes[i].core.as_mut() {
            let outputs = core.handle_flush(now);
            self.execute(i, outputs);
        }
    }

    /// Once faults stop and the group agrees: every member's service holds the same state,
    /// is in the final view, and holds every id multicast by a final member while quiet.
    fn check_final_deliveries(&mut self) {
        let members: Vec<(ProcessId, Option<ViewId>, StateDigest, usize)> = self
            .nodes
            .iter()
            .filter_map(|n| {
                let core = n.core.as_ref()?;
                Some((
                    core.me().id,
                    n.service.view,
                    n.service.digest(),
                    core.groups().map(|g| g.multicast().outbox_len()).sum(),
                ))
            })
            .collect();
        let final_view = self.latest_view().map(|v| v.id);
        for (process, view, digest, outbox) in &members {
            if *view != final_view {
                let detail =
                    format!("{process}'s service is in {view:?}, the group in {final_view:?}");
                self.checker_violation("liveness", detail);
            }
            if *digest != members[0].2 {
                let detail = format!(
                    "{process} ends with {digest:?}, {} with {:?}",
                    members[0].0, members[0].2
                );
                self.checker_violation("liveness", detail);
            }
            if *outbox > 0 {
                self.checker_violation(
                    "liveness",
                    format!("{process} ends with {outbox} multicasts unsent"),
                );
            }
        }
        let finals: BTreeSet<ProcessId> = members.iter().map(|m| m.0).collect();
        let missing: Vec<(ProcessId, u64)> = self
            .quiet_multicasts
            .iter()
            .filter(|(sender, _)| finals.contains(sender))
            .flat_map(|&(_, id)| {
                self.nodes
                    .iter()
                    .filter(move |n| n.core.is_some() && !n.service.delivered.contains(&id))
                    .map(move |n| (n.core.as_ref().expect("live").me().id, id))
            })
            .take(5)
            .collect();
        for (process, id) in missing {
            self.checker_violation("liveness", format!("{process} never delivered {id:#x}"));
        }
    }

    fn deliver_one(&mut self) {
        let Some(datagram) = self.network.borrow_mut().pop_due(self.now) else {
            return;
        };
        let Some(i) = self.nodes.iter().position(|n| n.addr == datagram.to) else {
            return;
        };
        if self.nodes[i].core.is_none() {
            return;
        }
        let mut bytes = BytesMut::from(&datagram.frame[..]);
        let mut decoder = self.nodes[i].codec.decoder();
        let envelope = match decoder.decode(&mut bytes) {
            Ok(Some(envelope)) => envelope,
            // The network's duplicates are refused by the replay window, as a replayed frame
            // on a real connection would be.
            // Frames of a crashed incarnation still in flight after its restart are refused
            // as stale, like data from a killed process's socket arriving late.
            Err(crate::wire::FrameError::StaleIncarnation { .. }) => return,
            // A frame delayed past the sender's replay window is refused, like a real
            // connection's frame arriving that late; the protocols retransmit what matters.
            Err(crate::wire::FrameError::TooOld { .. }) => return,
            Err(crate::wire::FrameError::Replayed { .. }) => {
                self.replays_refused += 1;
                return;
            }
            other => {
                let detail = format!(
                    "frame from {} to {} refused: {other:?}",
                    datagram.from, datagram.to
                );
                self.checker_violation("frame integrity", detail);
                return;
            }
        };
        let connection = MemoryEndpoint::connection_of(datagram.from);
        let now = self.now;
        let outputs = self.nodes[i]
            .core
            .as_mut()
            .expect("checked")
            .handle_envelope(now, envelope, connection);
        self.execute(i, outputs);
        self.flush(i);
    }

    fn tick_due_node(&mut self) {
        if let Some(at) = std::env::var("SIM_DUMP_AT")
            .ok()
            .and_then(|v| v.parse::<f64>().ok())
        {
            if self.now.as_secs_f64() >= at && !self.dumped {
                self.dumped = true;
                let lines: Vec<String> = self
                    .nodes
                    .iter()
                    .filter_map(|n| n.core.as_ref())
                    .flat_map(|c| {
                        let me = c.me().id;
                        c.groups().map(move |g| {
                            format!(
                                "DUMP {me} {:?}: {} | {}",
                                g.status(),
                                g.describe(),
                                g.multicast().describe()
                            )
                        })
                    })
                    .collect();
                for line in lines {
                    self.log(line);
                }
            }
        }
        let i = (0..self.nodes.len())
            .min_by_key(|&i| self.nodes[i].next_tick)
            .expect("nodes");
        let jitter = Duration::from_micros(self.rng.gen_range(0..2000));
        self.nodes[i].next_tick = self.now + TICK_INTERVAL + jitter;
        if self.nodes[i].core.is_none() {
            if self.nodes[i].incarnations == 0 {
                self.start_node(i);
            }
            return;
        }
        if self.quiet && !self.nodes[i].in_group {
            // A leave that was still under way when the faults stopped: join once it is done.
            self.join(i);
        }
        let now = self.now;
        let outputs = self.nodes[i].core.as_mut().expect("live").handle_tick(now);
        self.execute(i, outputs);
        self.maybe_multicast(i);
    }

    /// The view with the highest epoch installed at any live process.
    fn latest_view(&self) -> Option<View> {
        self.nodes
            .iter()
            .filter_map(|n| n.core.as_ref()?.view(&self.group).cloned())
            .max_by_key(|v| v.id)
    }

    fn live_processes(&self) -> BTreeSet<ProcessId> {
        self.nodes
            .iter()
            .filter_map(|n| n.core.as_ref().map(|c| c.me().id))
            .collect()
    }

    /// Whether taking `victim` out keeps a live majority of the latest view, also counting the
    /// joiners it may be about to admit (so the group never blocks because of the scenario).
    fn may_remove(&self, victim: ProcessId) -> bool {
        let Some(view) = self.latest_view() else {
            return true;
        };
        // A leaver may give up (leave timeout) before the view without it is installed, and a
        // process that left does not vote: count only processes that are staying.
        // A joiner admitted to the view but cut off before it installed it does not vote
        // either: count only processes that installed the latest view.
        let live: BTreeSet<ProcessId> = self
            .nodes
            .iter()
            .filter(|n| n.in_group)
            .filter_map(|n| n.core.as_ref())
            .filter(|c| c.view(&self.group).is_some_and(|v| v.id == view.id))
            // Only processes that hold the state can carry the group on.
            .filter(|c| c.groups().all(|g| g.multicast().holds_state()))
            .map(|c| c.me().id)
            .collect();
        let alive_after = |members: &BTreeSet<ProcessId>| {
            members
                .iter()
                .filter(|p| live.contains(p) && **p != victim)
                .count()
        };
        // Only voters decide views (learners wait for their state), so only they count.
        let voters: BTreeSet<ProcessId> = view.voters().iter().map(|m| m.id).collect();
        alive_after(&voters) > voters.len() / 2 + usize::from(voters.len() % 2 == 0)
    }

    fn scenario_event(&mut self) {
        let choice = self.rng.gen_range(0..100);
        let i = self.rng.gen_range(0..self.nodes.len());
        let live = self.nodes[i].core.as_ref().map(|c| c.me().id);
        match (choice, live) {
            (0..=29, Some(id)) if self.may_remove(id) => self.crash(i),
            (30..=49, None) => self.start_node(i),
            (50..=64, _) if !self.network.borrow().is_partitioned() => {
                let mut sides = vec![Vec::new(), Vec::new()];
                for node in &self.nodes {
                    sides[self.rng.gen_range(0..2)].push(node.addr);
                }
                self.log(format!("partition {:?} | {:?}", sides[0], sides[1]));
                self.network.borrow_mut().partition(&sides);
            }
            (65..=79, _) if self.network.borrow().is_partitioned() => {
                self.log("heal".into());
                self.network.borrow_mut().heal();
            }
            (80..=89, Some(id)) if self.nodes[i].in_group && self.may_remove(id) => self.leave(i),
            (90..=99, Some(_)) if !self.nodes[i].in_group => {
                self.log(format!("rejoin {}", self.nodes[i].node_id));
                self.join(i);
            }
            _ => {}
        }
    }

    fn begin_quiet_phase(&mut self) {
        self.log("faults stop: heal, restart crashed nodes, rejoin left ones".into());
        let mut network = self.network.borrow_mut();
        network.heal();
        network.set_faults(Faults::none());
        drop(network);
        for i in 0..self.nodes.len() {
            if self.nodes[i].core.is_none() {
                self.start_node(i);
            } else if !self.nodes[i].in_group {
                self.join(i);
            }
        }
    }

    /// Once faults stop every node must be in one agreed view holding exactly the live
    /// processes. Returns whether the check applied.
    fn check_final_agreement(&mut self) -> bool {
        let live = self.live_processes();
        let views: Vec<(ProcessId, Option<View>)> = self
            .nodes
            .iter()
            .filter_map(|n| {
                let core = n.core.as_ref()?;
                Some((core.me().id, core.view(&self.group).cloned()))
            })
            .collect();
        let expected: Vec<ProcessId> = live.iter().copied().collect();
        let agreed = views.iter().all(|(_, v)| {
            v.as_ref().is_some_and(|v| {
                let mut members: Vec<ProcessId> = v.member_ids().collect();
                members.sort();
                members == expected && Some(v.id) == views[0].1.as_ref().map(|v| v.id)
            })
        });
        if agreed {
            return true;
        }
        // The group may have blocked by design: some view lost its live majority at once
        // (the scenario avoids this, but a proposal in flight can still shrink the margin).
        let blocked = views.iter().any(|(_, v)| {
            v.as_ref().is_some_and(|v| {
                v.voters().iter().filter(|m| live.contains(&m.id)).count() < v.majority()
            })
        });
        if blocked {
            return false;
        }
        let detail = views
            .iter()
            .map(|(p, v)| match v {
                Some(v) => format!("{p}: {v}"),
                None => format!("{p}: no view"),
            })
            .collect::<Vec<_>>()
            .join("; ");
        self.checker_violation("eventual agreement", detail);
        true
    }

    fn checker_violation(&mut self, property: &'static str, detail: String) {
        self.trace.push(format!("VIOLATION {property}: {detail}"));
        self.final_violations.push(Violation { property, detail });
    }
}
