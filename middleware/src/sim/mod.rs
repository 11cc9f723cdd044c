//! Deterministic simulation of a group of nodes.
//!
//! The simulator runs the production composition: each simulated process is a
//! [`NodeCore`] with the node actor's [`ServiceEdge`] (parked multicasts, services that fall
//! behind, the snapshot round trip), whose outputs are carried out by
//! [`dispatch`](crate::shell::dispatch), the same function the node actor uses, over a
//! [`MemoryNetwork`] that seals every message with the real codec and cluster key. The
//! service at each process is any [`SimulatedService`] ([`SimConfig::service`]). Time is virtual and every random choice (fault model,
//! scenario, timing) comes from one seed, so a seed replays exactly.
//!
//! - [`world`]: the fault model beyond loss, duplication and delay: fault families drawn per
//!   seed (partitions of three or more parts, one-way links, late frames and stalled links,
//!   paused processes, clock steps at restart, slow and failed snapshots, paused services).
//! - [`scenario`]: what a run does. The normal scenario has a fault phase (crashes, restarts
//!   with a new incarnation, graceful leaves, rejoins, partitions and heals) and a quiet phase
//!   (the network heals, crashed nodes restart, left nodes rejoin); the blocking scenarios
//!   do what the normal one avoids (joiners cut off, a majority of voters crashed or cut
//!   off, a leave that times out) and check the outcome they state; the total-failure
//!   scenario ([`total_failure`]) crashes every node at once and restarts them one by one.
//!   Each keeps a [`scenario::Record`] of what it did that may block the group for good;
//!   liveness is exempted only when that record says so.
//! - [`service`], [`client`]: the services the processes run (any [`SimulatedService`], which
//!   may act: multicast its own payloads, send, answer clients, keep a disk across crashes)
//!   and the simulated clients that send them requests through the network.
//! - [`checker`], [`delivery_checker`]: the properties, checked after every step.
//! - [`coverage`]: how often each fault and protocol path was hit.

mod blocking;
pub mod checker;
pub mod client;
pub mod coverage;
pub mod delivery_checker;
mod observe;
mod process;
pub mod scenario;
pub mod service;
pub mod total_failure;
pub mod world;

use crate::id::{GroupName, ProcessId, ViewId};
use crate::proto::multicast::Delivery;
use crate::proto::node::{NodeCore, NodeSettings};
use crate::proto::service_edge::{EdgeLimits, ServiceEdge};
use crate::proto::Time;
use crate::transport::memory::{Faults, MemoryEndpoint, MemoryNetwork, NetworkStats};
use crate::view::View;
use crate::wire::codec::FRAME_BYTES_MAX_DEFAULT;
use crate::wire::{ClusterKey, FrameCodec, Ordering};
use checker::{MembershipChecker, Violation};
use client::{ClientFactory, ClientStats, SimClient, SimulatedClient};
use coverage::{Coverage, Hit};
use delivery_checker::DeliveryChecker;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use scenario::{Record, Scenario, Script};
use service::{Disk, ServiceFactory, ServiceRecord, ServiceStart, SimulatedService};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;
use world::{Agenda, Observed, WorldFaults};

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
    /// The fault families of the richer world drawn for this run.
    pub world: WorldFaults,
    /// What the run does.
    pub scenario: Scenario,
    /// Protocol settings (the production defaults unless a test changes them).
    pub settings: NodeSettings,
    /// Chance that a live member multicasts at each of its ticks during traffic.
    pub send_probability: f64,
    /// Chance that a multicast overrides the group's ordering with a random one.
    pub override_probability: f64,
    /// Also trace every delivery (for replaying one seed).
    pub trace_deliveries: bool,
    /// Also trace every process's protocol state once, at this virtual time (replays:
    /// `SIM_DUMP_AT=2.5`).
    pub dump_at: Option<Duration>,
    /// The service every process runs ([`ServiceFactory::LOG`] from
    /// [`SimConfig::from_seed`]).
    pub service: ServiceFactory,
    /// Simulated clients of the service (none from [`SimConfig::from_seed`]).
    pub clients: Option<ClientFactory>,
    /// Chance that a crash of a process whose service keeps a disk is a power loss (what the
    /// disk had not synced is gone); drawn only for such crashes.
    pub power_loss_probability: f64,
    /// A bug planted in the cores for the run (`None` from [`SimConfig::from_seed`]).
    #[cfg(feature = "planted-bugs")]
    pub planted: Option<crate::proto::planted::PlantedBug>,
    /// A deliberately broken total-failure recovery: the simulated data directories make
    /// wrong claims (`None` from [`SimConfig::from_seed`]; checker self-tests only).
    pub claim_fault: Option<total_failure::ClaimFault>,
}

/// The simulated service edge's limits. The simulated service handles every event as it is
/// handed over, so each event is a checkpoint and one left unhandled means the service
/// stopped consuming (the world's paused services): delivery pauses as the node pauses it
/// once its service is `SERVICE_BACKLOG_EVENTS` behind. Parked multicasts as in the node.
pub const SIM_EDGE_LIMITS: EdgeLimits = EdgeLimits {
    backlog_events: 1,
    checkpoint_events: 1,
    parked_multicasts: EdgeLimits::NODE.parked_multicasts,
};

/// Salt of the generator the world's fault families are drawn from: a stream apart from the
/// scenario's, so a seed whose families are all off replays the run it made before they
/// existed.
const WORLD_SALT: u64 = 0x0f_a017_5eed;

/// Salt of the generator for what only clients and services with disks draw.
const AUX_SALT: u64 = 0xa0c5_5eed;

impl SimConfig {
    /// A normal scenario drawn from `seed`: 3 to 7 nodes, a 12 s fault phase with up to 20%
    /// loss, 10% duplication and up to 80 ms delay, the world's fault families each drawn
    /// with its probability, and a 20 s quiet phase.
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
        let mut config = SimConfig {
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
            world: WorldFaults::none(),
            scenario: Scenario::Normal,
            settings,
            send_probability: rng.gen_range(0.05..0.4),
            override_probability: if rng.gen_bool(0.5) { 0.3 } else { 0.0 },
            trace_deliveries: false,
            dump_at: None,
            service: ServiceFactory::LOG,
            clients: None,
            power_loss_probability: 0.5,
            #[cfg(feature = "planted-bugs")]
            planted: None,
            claim_fault: None,
        };
        let mut world_rng = StdRng::seed_from_u64(seed ^ WORLD_SALT);
        config.world = WorldFaults::draw(&mut world_rng);
        if config.world.late_frames {
            config.faults.late_probability = world_rng.gen_range(0.002..0.02);
            config.faults.late_delay_max = Duration::from_millis(world_rng.gen_range(500..12_000));
        }
        config
    }
}

/// The outcome of a run.
#[derive(Debug)]
pub struct SimReport {
    /// The seed.
    pub seed: u64,
    /// What the run did.
    pub scenario: Scenario,
    /// The fault families drawn.
    pub world: WorldFaults,
    /// Safety and liveness violations found.
    pub violations: Vec<Violation>,
    /// Whether the liveness checks applied.
    pub liveness_checked: bool,
    /// Why they did not: the entry of the scenario's record that exempts the run (the
    /// scenario itself crashed so many of a view's voters that no majority is left, or the last holders of the
    /// state, and the group never got past that view).
    pub exemption: Option<String>,
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
    /// How often each fault and protocol path was hit.
    pub coverage: Coverage,
    /// The scenario and the views, in order, for a replay.
    pub trace: Vec<String>,
    /// What the simulated clients did, and the services' fail-stops and disks.
    pub client_stats: ClientStats,
    /// The simulated clients as the run left them (for the test to read what they recorded).
    pub clients: Vec<Box<dyn SimulatedClient>>,
    /// What the total-failure scenario did and saw, if the run is one.
    pub total_failure: Option<total_failure::TotalFailureReport>,
}

impl SimReport {
    /// The command that replays this run.
    pub fn replay_command(&self) -> String {
        let test = match self.scenario {
            Scenario::Normal => "group_properties",
            Scenario::Blocking(scenario::BlockingKind::LeaveTimesOut { vote_needed: true }) => {
                "departed_voter"
            }
            Scenario::Blocking(_) => "blocking",
            Scenario::TotalFailure => "total_failure_without_durable_state",
        };
        format!(
            "SIM_SEED={} cargo test --release --locked -p viewsync-tests --test sim {test} -- --include-ignored --nocapture",
            self.seed
        )
    }
}

struct SimNode {
    node_id: crate::id::NodeId,
    addr: SocketAddr,
    /// Starts so far; the multicast ids of a run carry it.
    incarnations: u64,
    /// The last incarnation, as the node's data directory keeps it.
    last_incarnation: Option<crate::id::Incarnation>,
    /// How far this node's wall clock is off the simulation's, in microseconds.
    wall_offset: i64,
    /// The instant its monotonic clock counts from (its start, with clock steps on).
    origin: Time,
    core: Option<NodeCore>,
    codec: FrameCodec,
    endpoint: MemoryEndpoint,
    next_tick: Time,
    in_group: bool,
    /// The policy between the core and the service, as in the node actor; tokens of parked
    /// multicasts are their ids.
    edge: ServiceEdge<u64>,
    service: Box<dyn SimulatedService>,
    /// Whether the simulator stamps its service's multicasts ([`SimulatedService::stamped`]).
    stamped: bool,
    record: ServiceRecord,
    /// What the node's last process left on disk, and whether its crash lost power.
    disk: Option<(Disk, bool)>,
    /// The last view it installed in each group, as its data directory keeps it across
    /// crashes (`runtime::data_dir::record_last_view`).
    last_views: BTreeMap<GroupName, View>,
    /// The latest view it accepted in each group's view changes, as its data directory keeps
    /// it across crashes (`runtime::data_dir::record_accepted_view`).
    accepted_views: BTreeMap<GroupName, crate::wire::AcceptedView>,
    /// The durable position its service recovered at this start, if the node claimed it for
    /// total-failure recovery ([`NodeCore::set_recovery`]).
    claimed: Option<u64>,
    /// Stopped (`SIGSTOP`) until then: no ticks, no inputs.
    paused_until: Option<Time>,
    /// Its service stopped consuming: it handles what it is handed (so the checkers see it)
    /// but reports none of it handled, so the edge pauses delivery.
    service_paused: bool,
}

impl SimNode {
    /// The ids its service's state holds: the simulator's ledger for a stamped service.
    fn ids(&self) -> &BTreeSet<u64> {
        match self.stamped {
            true => &self.record.ledger.ids,
            false => self.service.ids(),
        }
    }

    /// Its service's state digest, with the simulator's ledger for a stamped service.
    fn digest(&self) -> delivery_checker::StateDigest {
        match self.stamped {
            true => self.record.ledger.digest(self.service.digest()),
            false => self.service.digest(),
        }
    }
}

/// A simulation in progress.
pub struct Simulation {
    config: SimConfig,
    rng: StdRng,
    /// Draws of the world's fault families, apart from `rng` (see [`WORLD_SALT`]).
    world_rng: StdRng,
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
    next_world_event: Option<Time>,
    /// Timed actions: resumes, heals of one-way links, late snapshot answers.
    agenda: Agenda,
    final_violations: Vec<Violation>,
    replays_refused: u64,
    quiet: bool,
    /// Some process installed a view: the group exists and is never founded again.
    group_formed: bool,
    dumped: bool,
    /// What the scenario did that may block the group for good.
    record: Record,
    /// What the simulator saw the protocol do.
    observed: Observed,
    coverage: Coverage,
    /// The blocking scenario's script, if the run is one.
    script: Option<Script>,
    /// Draws for the clients' sides of partitions, power losses and restarts after a
    /// fail-stop: a stream apart, so runs without clients or disks replay as before.
    aux_rng: StdRng,
    clients: Vec<SimClient>,
    clients_stats: ClientStats,
    /// Processes whose services stopped (fail-stop) in the step at hand.
    stopping: Vec<(usize, ProcessId)>,
    /// The total-failure scenario in progress, if the run is one.
    total_failure: Option<total_failure::TotalFailure>,
}

/// Far enough in the future to never come.
const NEVER: Time = Duration::from_secs(1 << 40);

impl Simulation {
    /// Sets up the nodes; none has started.
    pub fn new(config: SimConfig) -> Self {
        let mut rng = StdRng::seed_from_u64(config.seed);
        let mut world_rng = StdRng::seed_from_u64(config.seed ^ WORLD_SALT ^ 1);
        let safe = config.settings.multicast.delivery == Delivery::Safe;
        let network = Rc::new(RefCell::new(MemoryNetwork::new(rng.gen(), config.faults)));
        let key_bytes: [u8; 32] = rng.gen();
        let key = ClusterKey::from_hex(&hex::encode(key_bytes)).expect("32 bytes");
        let clock_steps = config.world.clock_steps;
        let nodes = (0..config.nodes)
            .map(|i| {
                let addr = SocketAddr::from(([10, 0, 0, (i + 1) as u8], 7000));
                SimNode {
                    node_id: crate::id::NodeId(i as u64 + 1),
                    addr,
                    incarnations: 0,
                    last_incarnation: None,
                    // Clocks of different machines disagree by up to a second.
                    wall_offset: if clock_steps {
                        world_rng.gen_range(-1_000_000..1_000_000)
                    } else {
                        0
                    },
                    origin: Time::ZERO,
                    core: None,
                    codec: FrameCodec::new(Some(key.clone()), FRAME_BYTES_MAX_DEFAULT),
                    endpoint: MemoryEndpoint::new(addr, network.clone()),
                    next_tick: Time::ZERO,
                    in_group: false,
                    edge: ServiceEdge::new(SIM_EDGE_LIMITS),
                    // A placeholder until the node starts.
                    service: config.service.make(ServiceStart {
                        me: crate::view::Member {
                            id: ProcessId {
                                node: crate::id::NodeId(i as u64 + 1),
                                incarnation: crate::id::Incarnation(0),
                            },
                            addr,
                        },
                        start: 0,
                        disk: None,
                        power_loss: false,
                    }),
                    stamped: false,
                    record: ServiceRecord::default(),
                    disk: None,
                    last_views: BTreeMap::new(),
                    accepted_views: BTreeMap::new(),
                    claimed: None,
                    paused_until: None,
                    service_paused: false,
                }
            })
            .collect();
        let script = match config.scenario {
            Scenario::Normal | Scenario::TotalFailure => None,
            Scenario::Blocking(kind) => Some(Script::new(kind)),
        };
        let total_failure = (config.scenario == Scenario::TotalFailure)
            .then(|| total_failure::TotalFailure::new(config.seed));
        let aux_rng = StdRng::seed_from_u64(config.seed ^ AUX_SALT);
        let mut simulation = Simulation {
            config,
            rng,
            world_rng,
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
            next_world_event: None,
            agenda: Agenda::default(),
            final_violations: Vec::new(),
            replays_refused: 0,
            quiet: false,
            group_formed: false,
            dumped: false,
            record: Record::default(),
            observed: Observed::default(),
            coverage: Coverage::default(),
            script,
            aux_rng,
            clients: Vec::new(),
            clients_stats: ClientStats::default(),
            stopping: Vec::new(),
            total_failure,
        };
        simulation.make_clients();
        simulation
    }

    /// Runs the whole scenario and reports.
    pub fn run(mut self) -> SimReport {
        #[cfg(feature = "planted-bugs")]
        let _planted = crate::proto::planted::plant(self.config.planted);
        // Nodes start within the first half second: a bootstrap race on purpose.
        for i in 0..self.nodes.len() {
            let at = Duration::from_millis(self.rng.gen_range(0..500));
            self.nodes[i].next_tick = at;
        }
        self.script_setup();
        let fault_end = self.config.fault_time;
        let end = fault_end + self.config.quiet_time;
        self.next_scenario_event = Duration::from_millis(1500);
        if self.config.world.has_events() && self.script.is_none() {
            self.next_world_event =
                Some(Duration::from_millis(self.world_rng.gen_range(500..1500)));
        }
        loop {
            let quiet = self.quiet;
            let next_net = self.network.borrow().next_due();
            let next_tick = self.nodes.iter().map(|n| n.next_tick).min().expect("nodes");
            let next_action = self.agenda.next_due();
            let next_client = self
                .clients
                .iter()
                .filter(|c| !c.done)
                .map(|c| c.wake)
                .min();
            let mut now = next_tick;
            for t in [next_net, next_action, next_client].into_iter().flatten() {
                now = now.min(t);
            }
            if !quiet {
                now = now.min(self.next_scenario_event).min(fault_end);
                if let Some(t) = self.next_world_event {
                    now = now.min(t);
                }
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
                if self.script.is_some() {
                    self.script_step();
                    self.next_scenario_event = now + Duration::from_millis(50);
                } else if self.total_failure.is_some() {
                    self.next_scenario_event = self.total_failure_step();
                } else {
                    self.scenario_event();
                    self.next_scenario_event =
                        now + Duration::from_millis(self.rng.gen_range(200..1500));
                }
            } else if !quiet && self.next_world_event.is_some_and(|t| now >= t) {
                self.world_event();
                self.next_world_event =
                    Some(now + Duration::from_millis(self.world_rng.gen_range(300..1500)));
            } else if next_action == Some(now) {
                self.run_action();
            } else if next_net == Some(now) {
                self.deliver_one();
            } else if next_client == Some(now) {
                self.client_step();
            } else {
                self.tick_due_node();
            }
            if !self.stopping.is_empty() {
                self.stop_failed();
            }
            self.checker.check_step();
        }
        self.finish()
    }

    /// The end checks and the report.
    fn finish(mut self) -> SimReport {
        let exemption = self.record.exemption().map(|e| e.to_string());
        let liveness_checked = self.check_final_agreement();
        self.script_final_checks();
        let total_failure = self.total_failure_final_checks();
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
            for line in self.describe_cores("") {
                self.log(line);
            }
        }
        if liveness_checked {
            self.check_final_deliveries();
            let finals = self
                .nodes
                .iter()
                .filter_map(|n| Some((n.core.as_ref()?.me().id, n.ids().clone())))
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
        for i in 0..self.nodes.len() {
            if let Some(core) = self.nodes[i].core.take() {
                self.count_core(&core);
            }
        }
        self.count_observed();
        let clients = self.take_clients();
        let mut violations = self.checker.violations().to_vec();
        violations.extend(self.deliveries.violations().iter().cloned());
        violations.append(&mut self.final_violations);
        SimReport {
            seed: self.config.seed,
            scenario: self.config.scenario,
            world: self.config.world,
            violations,
            liveness_checked,
            exemption: if liveness_checked { None } else { exemption },
            views_seen: self.checker.views_seen(),
            network: self.network.borrow().stats(),
            multicasts: self.multicasts,
            deliveries: self.deliveries.deliveries(),
            state_transfers: self.coverage.get(Hit::TransferCompleted),
            coverage: self.coverage,
            trace: self.trace,
            client_stats: self.clients_stats.clone(),
            clients,
            total_failure,
        }
    }

    fn log(&mut self, line: String) {
        self.trace
            .push(format!("{:>9.3}s {line}", self.now.as_secs_f64()));
    }

    /// Node `i`'s clock: a process's monotonic clock counts from its own origin.
    fn local_now(&self, i: usize) -> Time {
        self.now.saturating_sub(self.nodes[i].origin)
    }

    /// Each live process's membership and multicast state, one line per group.
    fn describe_cores(&self, prefix: &str) -> Vec<String> {
        self.nodes
            .iter()
            .filter_map(|n| n.core.as_ref())
            .flat_map(|c| {
                let me = c.me().id;
                c.groups().map(move |g| {
                    format!(
                        "{prefix}{me} {:?}: {} | {}",
                        g.status(),
                        g.describe(),
                        g.multicast().describe()
                    )
                })
            })
            .collect()
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

    /// Once faults stop and the group agrees: every member's service holds the same state,
    /// is in the final view, and holds every id multicast by a final member while quiet.
    fn check_final_deliveries(&mut self) {
        let members: Vec<(
            ProcessId,
            Option<ViewId>,
            delivery_checker::StateDigest,
            usize,
        )> = self
            .nodes
            .iter()
            .filter_map(|n| {
                let core = n.core.as_ref()?;
                Some((
                    core.me().id,
                    n.record.view,
                    n.digest(),
                    core.groups()
                        .map(|g| g.multicast().outbox_len())
                        .sum::<usize>()
                        + n.edge.parked(),
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
                    .filter(move |n| n.core.is_some() && !n.ids().contains(&id))
                    .map(move |n| (n.core.as_ref().expect("live").me().id, id))
            })
            .take(5)
            .collect();
        for (process, id) in missing {
            self.checker_violation("liveness", format!("{process} never delivered {id:#x}"));
        }
    }

    fn checker_violation(&mut self, property: &'static str, detail: String) {
        self.trace.push(format!("VIOLATION {property}: {detail}"));
        self.final_violations.push(Violation { property, detail });
    }
}
