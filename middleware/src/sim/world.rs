//! The world beyond a lossy network: fault families drawn per seed, and the timed actions
//! that carry them out.
//!
//! Each family is on for a run with its own probability, drawn from the run's seed on a
//! stream apart from the scenario's (a seed whose families are all off replays the run it
//! made before they existed):
//!
//! - *partitions of three or more parts*: the scenario's partitions split the nodes into 2 to
//!   4 parts instead of 2;
//! - *one-way links*: a link, or all of a node's outgoing or incoming links, cut in one
//!   direction for 0.2–4 s;
//! - *late frames*: some frames (0.2–2%) arrive up to 0.5–12 s late (at times past the
//!   receiver's replay window), and cuts (partitions, one-way links) may stall instead of
//!   losing frames: what they held is delivered, late and in order, once they heal (a TCP
//!   connection after a stall);
//! - *pauses*: a process stops (`SIGSTOP`) for 0.05–3 s: no ticks, no inputs; the frames for
//!   it wait and arrive in a burst when it resumes, before or after its first tick;
//! - *clock steps*: each process's monotonic clock counts from its own start (as the node
//!   actor's does), wall clocks disagree, and a restart's wall clock may have been stepped
//!   back (1 ms to hours): its incarnation is `max(clock, last + 1)` from its data directory;
//! - *slow snapshots*: the service answers `SnapshotWanted` 50 ms–3 s late (the snapshot is
//!   taken when asked, in delivery order, as a service actor takes it);
//! - *failed snapshots*: the service answers `SnapshotFailed` instead, as the node does when
//!   its service actor stopped (the service's state is lost there). Like a crash, a failure
//!   never takes the last voter of the view holding the state away, nor any holder while a
//!   successor may already be chosen (it may keep only this holder): the snapshot is then
//!   answered after all (the blocking scenario `SoleHolderSnapshotFails` does it on purpose);
//! - *paused services*: a service stops consuming for 0.2–4 s (delivery paused).
//!
//! When the faults stop, partitions and links heal, paused processes and services resume,
//! and snapshots no longer fail or lag.

use super::coverage::Hit;
use super::Simulation;
use crate::id::{Incarnation, ProcessId, ViewId};
use crate::proto::membership::Status;
use crate::proto::node::SnapshotFailed;
use crate::proto::Time;
use bytes::Bytes;
use rand::rngs::StdRng;
use rand::Rng;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::net::SocketAddr;
use std::time::Duration;

pub use super::observe::Observed;

/// The fault families of a run (see the module documentation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorldFaults {
    /// Partitions split the nodes into 2 to 4 parts.
    pub multi_part_partitions: bool,
    /// Links are cut in one direction for a while.
    pub one_way_links: bool,
    /// Frames arrive seconds late, and cuts may stall and deliver once healed.
    pub late_frames: bool,
    /// Processes stop for a while and resume with a burst of inputs.
    pub pauses: bool,
    /// Clocks count from each start, and a restart's wall clock may be stepped back.
    pub clock_steps: bool,
    /// Snapshots are answered late.
    pub slow_snapshots: bool,
    /// Snapshots fail.
    pub failed_snapshots: bool,
    /// Services stop consuming for a while.
    pub paused_services: bool,
}

/// The probability that each family is on in a run.
pub const FAMILY_PROBABILITY: f64 = 0.35;

impl WorldFaults {
    /// No family: the lossy, duplicating, reordering network alone.
    pub fn none() -> Self {
        WorldFaults::default()
    }

    /// Every family.
    pub fn all() -> Self {
        WorldFaults {
            multi_part_partitions: true,
            one_way_links: true,
            late_frames: true,
            pauses: true,
            clock_steps: true,
            slow_snapshots: true,
            failed_snapshots: true,
            paused_services: true,
        }
    }

    /// Each family on with [`FAMILY_PROBABILITY`].
    pub fn draw(rng: &mut StdRng) -> Self {
        let mut on = || rng.gen_bool(FAMILY_PROBABILITY);
        WorldFaults {
            multi_part_partitions: on(),
            one_way_links: on(),
            late_frames: on(),
            pauses: on(),
            clock_steps: on(),
            slow_snapshots: on(),
            failed_snapshots: on(),
            paused_services: on(),
        }
    }

    /// Whether a family acts through timed world events (one-way links, pauses, paused
    /// services).
    pub fn has_events(&self) -> bool {
        self.one_way_links || self.pauses || self.paused_services
    }

    /// The names of the families that are on.
    pub fn names(&self) -> Vec<&'static str> {
        [
            (self.multi_part_partitions, "multi-part partitions"),
            (self.one_way_links, "one-way links"),
            (self.late_frames, "late frames"),
            (self.pauses, "pauses"),
            (self.clock_steps, "clock steps"),
            (self.slow_snapshots, "slow snapshots"),
            (self.failed_snapshots, "failed snapshots"),
            (self.paused_services, "paused services"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect()
    }
}

/// A timed action.
#[derive(Debug)]
pub(super) enum Action {
    /// A paused process runs again.
    Resume { node: usize, process: ProcessId },
    /// A paused service consumes again.
    ResumeService { node: usize, process: ProcessId },
    /// A one-way cut heals.
    HealLink { from: SocketAddr, to: SocketAddr },
    /// The service's late answer to `SnapshotWanted`, with the state taken when asked.
    Snapshot {
        node: usize,
        process: ProcessId,
        view: ViewId,
        state: Bytes,
        fail: Fail,
    },
    /// A node whose process stopped itself (its service's fail-stop) starts again, unless
    /// the scenario restarted it first.
    Restart { node: usize },
}

/// Whether a snapshot answer is a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Fail {
    /// The snapshot is answered.
    No,
    /// It fails, unless the process is the last member of its view holding the state: a
    /// failed snapshot means the service lost its state (in production, its actor stopped),
    /// and the normal scenario never takes the last holder away.
    UnlessLastHolder,
    /// It fails regardless (a blocking scenario's deliberate failure).
    Always,
}

/// Timed actions, in time order (then in the order they were scheduled).
#[derive(Debug, Default)]
pub(super) struct Agenda {
    queue: BinaryHeap<Reverse<(Time, u64)>>,
    actions: BTreeMap<u64, Action>,
    next: u64,
}

impl Agenda {
    pub(super) fn at(&mut self, time: Time, action: Action) {
        self.queue.push(Reverse((time, self.next)));
        self.actions.insert(self.next, action);
        self.next += 1;
    }

    pub(super) fn next_due(&self) -> Option<Time> {
        self.queue.peek().map(|Reverse((t, _))| *t)
    }

    fn pop(&mut self) -> Option<Action> {
        let Reverse((_, id)) = self.queue.pop()?;
        self.actions.remove(&id)
    }
}

/// Wall clocks read about this many microseconds since the epoch (2023).
const WALL_CLOCK_BASE: i64 = 1_700_000_000_000_000;

impl Simulation {
    /// One timed fault of an enabled family, at a random node.
    pub(super) fn world_event(&mut self) {
        let world = self.config.world;
        let kinds: Vec<u8> = [
            (world.one_way_links, 0),
            (world.pauses, 1),
            (world.paused_services, 2),
        ]
        .into_iter()
        .filter_map(|(on, k)| on.then_some(k))
        .collect();
        let kind = kinds[self.world_rng.gen_range(0..kinds.len())];
        let i = self.world_rng.gen_range(0..self.nodes.len());
        match kind {
            0 => self.cut_one_way(i),
            1 if self.nodes[i].core.is_some() && self.nodes[i].paused_until.is_none() => {
                // Mostly short stops (no suspicion), some long enough to be suspected.
                let ms = if self.world_rng.gen_bool(0.5) {
                    self.world_rng.gen_range(50..500)
                } else {
                    self.world_rng.gen_range(500..3000)
                };
                self.pause_node(i, self.now + Duration::from_millis(ms));
            }
            2 if self.nodes[i].in_group && !self.nodes[i].service_paused => {
                let ms = self.world_rng.gen_range(200..4000);
                self.pause_service(i, self.now + Duration::from_millis(ms));
            }
            _ => {}
        }
    }

    /// Cuts one link from node `i`, or all its outgoing or incoming links, one way.
    fn cut_one_way(&mut self, i: usize) {
        let stall = self.config.world.late_frames && self.world_rng.gen_bool(0.5);
        let heal = self.now + Duration::from_millis(self.world_rng.gen_range(200..4000));
        let me = self.nodes[i].addr;
        let others: Vec<SocketAddr> = self
            .nodes
            .iter()
            .map(|n| n.addr)
            .filter(|a| *a != me)
            .collect();
        let links: Vec<(SocketAddr, SocketAddr)> = match self.world_rng.gen_range(0..3) {
            0 => vec![(me, others[self.world_rng.gen_range(0..others.len())])],
            1 => others.iter().map(|o| (me, *o)).collect(),
            _ => others.iter().map(|o| (*o, me)).collect(),
        };
        self.coverage.hit(Hit::OneWayLink);
        if stall {
            self.coverage.hit(Hit::StallingCut);
        }
        let shown: Vec<String> = links.iter().map(|(a, b)| format!("{a}->{b}")).collect();
        self.log(format!(
            "cut one way{} until {:.3}s: {}",
            if stall { " (stalling)" } else { "" },
            heal.as_secs_f64(),
            shown.join(" ")
        ));
        for (from, to) in links {
            self.network.borrow_mut().cut_link(from, to, stall);
            self.agenda.at(heal, Action::HealLink { from, to });
        }
    }

    /// Stops node `i`'s process until `until`.
    pub(super) fn pause_node(&mut self, i: usize, until: Time) {
        let Some(process) = self.nodes[i].core.as_ref().map(|c| c.me().id) else {
            return;
        };
        self.coverage.hit(Hit::Pause);
        self.log(format!("pause {process} until {:.3}s", until.as_secs_f64()));
        let node = &mut self.nodes[i];
        node.paused_until = Some(until);
        node.next_tick = until;
        self.network.borrow_mut().pause(node.addr);
        self.agenda.at(until, Action::Resume { node: i, process });
    }

    /// Node `i`'s process runs again: what waited for it arrives in a burst, before or after
    /// its first tick.
    fn resume_node(&mut self, i: usize) {
        if self.nodes[i].paused_until.take().is_none() {
            return;
        }
        let tick_first = self.world_rng.gen_bool(0.5);
        let after = if tick_first {
            Duration::from_micros(1)
        } else {
            Duration::ZERO
        };
        let process = self.nodes[i].core.as_ref().map(|c| c.me().id);
        self.log(format!(
            "resume {}{}",
            process.map(|p| p.to_string()).unwrap_or_default(),
            if tick_first { " (tick first)" } else { "" }
        ));
        self.nodes[i].next_tick = self.now;
        let addr = self.nodes[i].addr;
        self.network.borrow_mut().resume(addr, after);
    }

    /// Node `i`'s service stops consuming until `until`: it reports nothing handled, so its
    /// edge pauses delivery once it holds an event it has not handled.
    fn pause_service(&mut self, i: usize, until: Time) {
        let Some(core) = self.nodes[i].core.as_ref() else {
            return;
        };
        let process = core.me().id;
        self.nodes[i].service_paused = true;
        self.coverage.hit(Hit::ServicePaused);
        self.log(format!(
            "{process} service stops consuming until {:.3}s",
            until.as_secs_f64()
        ));
        self.agenda
            .at(until, Action::ResumeService { node: i, process });
    }

    /// Node `i`'s service consumes again and catches up on everything it was handed; the
    /// edge resumes delivery (and flushes) as the node actor does.
    fn resume_service(&mut self, i: usize) {
        if !std::mem::take(&mut self.nodes[i].service_paused) {
            return;
        }
        let group = self.group.clone();
        let now = self.local_now(i);
        let node = &mut self.nodes[i];
        let Some(core) = node.core.as_mut() else {
            return;
        };
        let process = core.me().id;
        let upto = node.edge.handed(&group);
        node.edge.handle_handled(&group, upto);
        let work = node.edge.refresh(core, now);
        self.log(format!("{process} service consumes again"));
        self.carry_out(i, work);
    }

    /// The service's answer to `SnapshotWanted` for `view`, with `state` taken now: at once,
    /// or `None` when it comes late (or fails) through the agenda.
    pub(super) fn answer_snapshot(
        &mut self,
        i: usize,
        process: ProcessId,
        view: ViewId,
        state: Bytes,
    ) -> Option<Result<Bytes, SnapshotFailed>> {
        let world = self.config.world;
        let (fail, at) = if self.script_fails_snapshot(i, process) {
            (Fail::Always, self.now)
        } else if self.quiet || !(world.slow_snapshots || world.failed_snapshots) {
            return Some(Ok(state));
        } else if world.failed_snapshots && self.world_rng.gen_bool(0.3) {
            let at = self.now + Duration::from_millis(self.world_rng.gen_range(0..500));
            (Fail::UnlessLastHolder, at)
        } else if world.slow_snapshots && self.world_rng.gen_bool(0.6) {
            self.coverage.hit(Hit::SnapshotSlow);
            let at = self.now + Duration::from_millis(self.world_rng.gen_range(50..3000));
            (Fail::No, at)
        } else {
            return Some(Ok(state));
        };
        self.log(format!(
            "{process} snapshot for {view} {} at {:.3}s",
            if fail == Fail::No {
                "comes"
            } else {
                "may fail"
            },
            at.as_secs_f64()
        ));
        let action = Action::Snapshot {
            node: i,
            process,
            view,
            state,
            fail,
        };
        self.agenda.at(at, action);
        None
    }

    /// Whether another live voter of node `i`'s view holds the state, as `may_remove` counts
    /// holders: a voter (a learner holding the state may be left out of a successor already
    /// decided without it), ready and done with the previous view's cut (one still fetching
    /// it may yet give the state up). While a successor may already be chosen (a member of
    /// the view accepted one), the holders it keeps are not known: the answer is no, as a
    /// failure then could take the only copy that successor continues from.
    fn other_holder(&self, i: usize) -> bool {
        let view = |n: &super::SimNode| n.core.as_ref()?.view(&self.group).cloned();
        let Some(mine) = view(&self.nodes[i]) else {
            return false;
        };
        let in_view = |n: &super::SimNode| view(n).is_some_and(|v| v.id == mine.id);
        let deciding = self.nodes.iter().filter(|n| in_view(n)).any(|n| {
            n.core
                .as_ref()
                .is_some_and(|c| c.groups().any(|g| g.successor_accepted()))
        });
        if deciding {
            return false;
        }
        self.nodes.iter().enumerate().any(|(j, n)| {
            j != i
                && view(n).is_some_and(|v| v.id == mine.id)
                && n.core.as_ref().is_some_and(|c| {
                    // A holder on its way out does not count: its leave may time out and
                    // take the state with it (ring seed 11588).
                    mine.is_voter(c.me().id)
                        && c.groups().all(|g| {
                            g.multicast().holds_state()
                                && !matches!(g.status(), Status::Leaving { .. })
                        })
                })
        })
    }

    /// Carries out the next timed action. Actions for a process that crashed since are
    /// dropped; those for a paused one wait for its resume.
    pub(super) fn run_action(&mut self) {
        let Some(action) = self.agenda.pop() else {
            return;
        };
        let (node, process) = match &action {
            Action::HealLink { from, to } => {
                self.network.borrow_mut().heal_link(*from, *to);
                return;
            }
            Action::Restart { node } => {
                if self.nodes[*node].core.is_none() {
                    self.start_node(*node);
                }
                return;
            }
            Action::Resume { node, process }
            | Action::ResumeService { node, process }
            | Action::Snapshot { node, process, .. } => (*node, *process),
        };
        if self.nodes[node].core.as_ref().map(|c| c.me().id) != Some(process) {
            return;
        }
        if let Action::Resume { .. } = action {
            return self.resume_node(node);
        }
        if let Some(until) = self.nodes[node].paused_until {
            self.agenda.at(until, action);
            return;
        }
        match action {
            Action::ResumeService { .. } => self.resume_service(node),
            Action::Snapshot {
                view, state, fail, ..
            } => {
                let failed = match fail {
                    Fail::No => false,
                    Fail::UnlessLastHolder => self.other_holder(node),
                    Fail::Always => true,
                };
                let what = match (failed, fail) {
                    (true, _) => "fails",
                    (false, Fail::UnlessLastHolder) => {
                        "answered (no failure: the last member holding the state)"
                    }
                    (false, _) => "answered",
                };
                self.log(format!("{process} snapshot for {view} {what}"));
                let state = if failed {
                    self.coverage.hit(Hit::SnapshotFailed);
                    if !self.other_holder(node) {
                        self.note_snapshot_lost(node, process);
                    }
                    Err(SnapshotFailed {
                        reason: "simulated service failure".into(),
                    })
                } else {
                    Ok(state)
                };
                let now = self.local_now(node);
                let group = self.group.clone();
                let sim_node = &mut self.nodes[node];
                let core = sim_node.core.as_mut().expect("checked");
                let work = sim_node
                    .edge
                    .handle_snapshot(core, now, &group, view, state);
                self.carry_out(node, work);
                self.flush(node);
            }
            Action::Resume { .. } | Action::HealLink { .. } | Action::Restart { .. } => {}
        }
    }

    /// The incarnation of node `i`'s new start. Without clock steps, its start count (as
    /// before clocks were modelled); with them, its wall clock, stepped back at some restarts,
    /// or one above the last incarnation its data directory holds if that is larger.
    pub(super) fn choose_incarnation(&mut self, i: usize) -> Incarnation {
        if !self.config.world.clock_steps {
            return Incarnation(self.nodes[i].incarnations);
        }
        let restart = self.nodes[i].last_incarnation.is_some();
        if restart && self.world_rng.gen_bool(0.5) {
            // Log-uniform from a millisecond to about three hours.
            let step = 10f64.powf(self.world_rng.gen_range(3.0..10.0)) as i64;
            self.nodes[i].wall_offset -= step;
            let detail = format!(
                "node {} clock stepped back {:.3}s",
                self.nodes[i].node_id,
                step as f64 / 1e6
            );
            self.log(detail);
        }
        let node = &mut self.nodes[i];
        let clock = (WALL_CLOCK_BASE + self.now.as_micros() as i64 + node.wall_offset) as u64;
        let last = node.last_incarnation;
        let next = Incarnation::after(Incarnation(clock), last).expect("far below the maximum");
        node.last_incarnation = Some(next);
        if last.is_some_and(|l| clock <= l.0) {
            self.coverage.hit(Hit::ClockStepBack);
            self.log(format!(
                "node {} clock is behind its last incarnation: takes last + 1",
                self.nodes[i].node_id
            ));
        }
        next
    }

    /// Faults stop: cuts heal (stalled frames are delivered), paused processes and services
    /// resume, late frames and failing snapshots stop.
    pub(super) fn calm_world(&mut self) {
        let mut network = self.network.borrow_mut();
        network.heal_all();
        network.set_faults(crate::transport::memory::Faults::none());
        drop(network);
        for i in 0..self.nodes.len() {
            if self.nodes[i].paused_until.is_some() {
                self.resume_node(i);
            }
            if self.nodes[i].service_paused {
                self.resume_service(i);
            }
        }
    }
}

/// A random subset of `items` of size `k`, in random order.
pub(super) fn choose<T: Copy>(rng: &mut StdRng, items: &[T], k: usize) -> Vec<T> {
    let mut pool = items.to_vec();
    let mut chosen = Vec::new();
    while chosen.len() < k && !pool.is_empty() {
        chosen.push(pool.swap_remove(rng.gen_range(0..pool.len())));
    }
    chosen
}
