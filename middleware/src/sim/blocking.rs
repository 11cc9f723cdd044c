//! Blocking scenarios: what the normal scenario avoids, each with the outcome it states and
//! checks. Each waits until the group has settled in a view `V` (every live process installed
//! it, holds the state and is in it with its service, and no `Accept` for its successor was
//! sent: so the successor is not decided yet), then acts at once:
//!
//! - [`BlockingKind::JoinersCutOff`]: one or two nodes start late; when the `Accept` of the
//!   view admitting them goes out, they are partitioned away, before the install reaches
//!   them. Expected: they install nothing while cut off; the voters install the view
//!   admitting them (as learners) and then a view without them (the group does not wait for
//!   learners); after the heal they join and the group agrees (liveness checked).
//! - [`BlockingKind::MajorityCrashed`]: a majority of `V`'s voters (or all) crash at once and
//!   restart 2–4 s later as new processes. Expected: no view after `V` is ever installed (a
//!   crashed voter's vote is lost for good); each surviving member of `V` still has `V` and
//!   reports being blocked for want of a majority; the record exempts liveness, naming `V`.
//! - [`BlockingKind::NoMajoritySide`]: a majority of `V`'s voters pause (`SIGSTOP`), or a
//!   partition into parts none of which holds a majority of the voters, for 2–5 s. Expected:
//!   no view after `V` is installed meanwhile; once they return the group recovers (liveness
//!   checked, no exemption).
//! - [`BlockingKind::LeaveTimesOut`]: a voter is partitioned away and leaves; its leave times
//!   out (`leave_timeout`) before any view without it reaches it. Expected: it reports having
//!   left one leave timeout after it asked; the rest (a majority) install a view without it
//!   meanwhile. With `vote_needed` (three voters, another one paused for 9 s) the one voter
//!   left cannot decide anything while the leaver is away, and once the partition heals the
//!   departed voter's vote moves the group on before the paused one returns: a view after
//!   `V` is installed with the leaver's `Accepted` sent after it left. Then liveness.
//! - [`BlockingKind::SoleHolderSnapshotFails`]: instead of waiting to settle, the first time
//!   the only voter of a view with learners (the founder admitting the first joiners) is
//!   asked for their snapshot, it fails: its service lost the state. Expected: it stops
//!   vouching for the state and nobody restores anything; no view after that one is ever
//!   installed (none can start from nothing); it reports being blocked for want of a holder;
//!   the record exempts liveness, naming that view. A failed snapshot never leads to an
//!   empty state.

use super::scenario::Scenario;
use super::world::{choose, WorldFaults};
use super::{SimConfig, Simulation, NEVER};
use crate::id::ProcessId;
use crate::proto::Time;
use crate::transport::memory::Faults;
use crate::view::View;
use crate::wire::{BlockedReason, Body, Envelope};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::net::SocketAddr;
use std::time::Duration;

/// A blocking scenario (see the module documentation for what each expects).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockingKind {
    /// Joiners cut off before they install the view that admits them.
    JoinersCutOff,
    /// A majority of a settled view's voters (all of them, with `all`) crash at once.
    MajorityCrashed {
        /// Every voter crashes, not just a majority.
        all: bool,
    },
    /// No side holds a majority of the voters for a while: a majority paused (`paused`), or
    /// a partition into parts without a majority.
    NoMajoritySide {
        /// Pause a majority rather than partition.
        paused: bool,
    },
    /// A voter's graceful leave times out while it is cut off.
    LeaveTimesOut {
        /// Three voters, another one paused: the departed voter's vote is needed.
        vote_needed: bool,
    },
    /// The only voter of a view with learners (the founder admitting the first joiners)
    /// fails the snapshot they need.
    SoleHolderSnapshotFails,
}

impl BlockingKind {
    /// The kind of blocking run `seed` makes: the five kinds in turn, and their variants.
    pub fn from_seed(seed: u64) -> Self {
        let variant = (seed / 5) % 2 == 1;
        match seed % 5 {
            0 => BlockingKind::JoinersCutOff,
            1 => BlockingKind::MajorityCrashed {
                all: (seed / 5) % 4 == 3,
            },
            2 => BlockingKind::NoMajoritySide { paused: variant },
            3 => BlockingKind::LeaveTimesOut {
                vote_needed: variant,
            },
            _ => BlockingKind::SoleHolderSnapshotFails,
        }
    }
}

/// Salt of the blocking scenarios' draws.
const BLOCKING_SALT: u64 = 0xb10c_5eed;

impl SimConfig {
    /// A blocking scenario drawn from `seed`: the kind from [`BlockingKind::from_seed`], a
    /// mildly lossy network (up to 5% loss, 3% duplication, 20 ms delay), no fault families,
    /// a 16 s fault phase and a 20 s quiet phase.
    pub fn blocking_from_seed(seed: u64) -> Self {
        let mut config = SimConfig::from_seed(seed);
        let mut rng = StdRng::seed_from_u64(seed ^ BLOCKING_SALT);
        let kind = BlockingKind::from_seed(seed);
        config.scenario = Scenario::Blocking(kind);
        config.world = WorldFaults::none();
        config.fault_time = Duration::from_secs(16);
        config.nodes = match kind {
            BlockingKind::JoinersCutOff => rng.gen_range(4..=6),
            BlockingKind::SoleHolderSnapshotFails => rng.gen_range(3..=6),
            BlockingKind::LeaveTimesOut { vote_needed: true } => 3,
            BlockingKind::LeaveTimesOut { vote_needed: false } => rng.gen_range(3..=5),
            _ => rng.gen_range(3..=7),
        };
        config.faults = Faults {
            drop_probability: rng.gen_range(0.0..0.05),
            duplicate_probability: rng.gen_range(0.0..0.03),
            delay_min: Duration::from_micros(50),
            delay_max: Duration::from_micros(rng.gen_range(200..20_000)),
            late_probability: 0.0,
            late_delay_max: Duration::ZERO,
        };
        config
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// Waiting for the group to settle.
    Forming,
    /// Joiners started; waiting for the `Accept` that admits them.
    Armed,
    /// The block is in place until `returns`.
    Blocked,
    /// The processes returned (or the script gave up).
    Returned,
}

/// A blocking scenario in progress.
#[derive(Debug)]
pub(in crate::sim) struct Script {
    kind: BlockingKind,
    step: Step,
    /// The settled view the block applies to.
    view: Option<View>,
    /// The nodes acted on (joiners, crashed or paused voters, the leaver).
    targets: Vec<usize>,
    /// Their processes when acted on.
    processes: Vec<ProcessId>,
    /// When the block began, and when the processes return.
    began: Time,
    returns: Time,
    /// A voter paused meanwhile (the leave variant), until then.
    paused_voter: Option<(ProcessId, Time)>,
    /// Views after the settled one, installed after the block began: (process, view, when).
    progress: Vec<(ProcessId, View, Time)>,
    armed_at: Time,
}

/// How long the scripts wait for the group to settle.
const SETTLE_BY: Duration = Duration::from_secs(9);

impl Script {
    pub(super) fn new(kind: BlockingKind) -> Self {
        Script {
            kind,
            step: Step::Forming,
            view: None,
            targets: Vec::new(),
            processes: Vec::new(),
            began: Time::ZERO,
            returns: Time::ZERO,
            paused_voter: None,
            progress: Vec::new(),
            armed_at: Time::ZERO,
        }
    }

    fn epoch(&self) -> u64 {
        self.view.as_ref().map_or(0, |v| v.id.epoch)
    }

    /// Views after the settled one installed in `[from, to)`.
    fn progress_between(
        &self,
        from: Time,
        to: Time,
    ) -> impl Iterator<Item = &(ProcessId, View, Time)> {
        self.progress
            .iter()
            .filter(move |(_, _, at)| *at >= from && *at < to)
    }
}

impl Simulation {
    /// Holds back the late joiners of a cut-off scenario.
    pub(super) fn script_setup(&mut self) {
        let Some(script) = self.script.as_mut() else {
            return;
        };
        if script.kind == BlockingKind::JoinersCutOff {
            let n = self.nodes.len();
            let joiners = if n >= 5 { 2 } else { 1 };
            script.targets = (n - joiners..n).collect();
            for &i in &script.targets {
                self.nodes[i].next_tick = NEVER;
            }
        }
    }

    /// The view every live process settled in, if they did: all installed it, hold the state
    /// and have their services in it, it lists exactly them, its successor has not been
    /// proposed for acceptance, and no consensus message went out for a while.
    fn settled_view(&self) -> Option<View> {
        let mut settled: Option<View> = None;
        let mut live = 0;
        for node in &self.nodes {
            let Some(core) = node.core.as_ref() else {
                continue;
            };
            live += 1;
            let view = core.view(&self.group)?;
            if settled.as_ref().is_some_and(|s| s.id != view.id) || !node.in_group {
                return None;
            }
            let g = core.groups().next()?;
            let in_step = g.multicast().holds_state()
                && g.multicast()
                    .service_view()
                    .is_some_and(|v| v.id == view.id)
                && node.paused_until.is_none();
            if !in_step {
                return None;
            }
            settled = Some(view.clone());
        }
        let view = settled?;
        let quiet =
            self.now.saturating_sub(self.observed.last_consensus) >= Duration::from_millis(300);
        (view.members.len() == live && quiet && !self.observed.accepts_for.contains(&view.id))
            .then_some(view)
    }

    fn node_of(&self, process: ProcessId) -> Option<usize> {
        self.nodes
            .iter()
            .position(|n| n.core.as_ref().is_some_and(|c| c.me().id == process))
    }

    fn script_violation(&mut self, detail: String) {
        self.checker_violation("expected outcome", detail);
    }

    /// The script's next move (polled every 50 ms during the fault phase).
    pub(super) fn script_step(&mut self) {
        let Some(script) = self.script.as_ref() else {
            return;
        };
        let (kind, step) = (script.kind, script.step);
        match step {
            // This kind acts when the snapshot is asked for, not once the group settled.
            Step::Forming
                if kind == BlockingKind::SoleHolderSnapshotFails && self.now > SETTLE_BY =>
            {
                self.script_violation("the only voter was never asked for a snapshot".into());
                self.script.as_mut().expect("script").step = Step::Returned;
            }
            Step::Forming if kind == BlockingKind::SoleHolderSnapshotFails => {}
            Step::Forming if self.now >= Duration::from_secs(3) => {
                if self.now > SETTLE_BY {
                    self.script_violation(format!(
                        "the group never settled by {}s",
                        SETTLE_BY.as_secs()
                    ));
                    self.script.as_mut().expect("script").step = Step::Returned;
                    return;
                }
                if let Some(view) = self.settled_view() {
                    self.log(format!("script: settled in {view}"));
                    self.script.as_mut().expect("script").view = Some(view.clone());
                    self.script_act(kind, &view);
                }
            }
            Step::Armed if self.now > script.armed_at + Duration::from_secs(6) => {
                self.script_violation("the joiners were never proposed as members".into());
                self.script.as_mut().expect("script").step = Step::Returned;
            }
            Step::Blocked if self.now >= script.returns => self.script_return(kind),
            _ => {}
        }
    }

    fn script_act(&mut self, kind: BlockingKind, view: &View) {
        let voters: Vec<ProcessId> = view.voters().iter().map(|m| m.id).collect();
        let now = self.now;
        let returns = now + Duration::from_millis(self.world_rng.gen_range(2000..5000));
        let mut script = self.script.take().expect("script");
        script.began = now;
        script.returns = returns;
        script.step = Step::Blocked;
        match kind {
            BlockingKind::JoinersCutOff => {
                for &i in &script.targets {
                    self.nodes[i].next_tick = now;
                }
                script.step = Step::Armed;
                script.armed_at = now;
                self.log("script: the late joiners start".into());
            }
            BlockingKind::MajorityCrashed { all } => {
                let k = if all { voters.len() } else { view.majority() };
                script.processes = choose(&mut self.world_rng, &voters, k);
                script.targets = script
                    .processes
                    .iter()
                    .filter_map(|p| self.node_of(*p))
                    .collect();
                script.returns = now + Duration::from_millis(self.world_rng.gen_range(2000..4000));
                self.log(format!(
                    "script: crash {k} of the {} voters of {view} at once",
                    voters.len()
                ));
                for &i in &script.targets {
                    self.crash(i);
                }
            }
            BlockingKind::NoMajoritySide { paused: true } => {
                script.processes = choose(&mut self.world_rng, &voters, view.majority());
                script.targets = script
                    .processes
                    .iter()
                    .filter_map(|p| self.node_of(*p))
                    .collect();
                self.log(format!("script: pause a majority of the voters of {view}"));
                for &i in &script.targets {
                    self.pause_node(i, returns);
                }
            }
            BlockingKind::NoMajoritySide { paused: false } => {
                // Parts of at most majority - 1 voters each; the others anywhere.
                let per_part = view.majority() - 1;
                let shuffled = choose(&mut self.world_rng, &voters, voters.len());
                let parts = voters.len().div_ceil(per_part.max(1)).max(2);
                let mut sides: Vec<Vec<SocketAddr>> = vec![Vec::new(); parts];
                for (k, voter) in shuffled.iter().enumerate() {
                    let i = self.node_of(*voter).expect("live");
                    sides[k / per_part.max(1)].push(self.nodes[i].addr);
                }
                for node in &self.nodes {
                    let listed = node
                        .core
                        .as_ref()
                        .is_some_and(|c| voters.contains(&c.me().id));
                    if !listed {
                        sides[self.world_rng.gen_range(0..parts)].push(node.addr);
                    }
                }
                let stall = self.world_rng.gen_bool(0.5);
                self.log(format!(
                    "script: no part holds a majority of the voters of {view}"
                ));
                self.apply_partition(sides, stall);
            }
            BlockingKind::LeaveTimesOut { vote_needed } => {
                let leaver = choose(&mut self.world_rng, &voters, 1)[0];
                let i = self.node_of(leaver).expect("live");
                script.targets = vec![i];
                script.processes = vec![leaver];
                script.returns = now
                    + self.config.settings.membership.leave_timeout
                    + Duration::from_millis(600);
                if vote_needed {
                    let others: Vec<ProcessId> =
                        voters.iter().copied().filter(|p| *p != leaver).collect();
                    let paused = choose(&mut self.world_rng, &others, 1)[0];
                    let until = now + Duration::from_secs(9);
                    script.paused_voter = Some((paused, until));
                    let j = self.node_of(paused).expect("live");
                    self.pause_node(j, until);
                }
                let addr = self.nodes[i].addr;
                let rest = self
                    .nodes
                    .iter()
                    .map(|n| n.addr)
                    .filter(|a| *a != addr)
                    .collect();
                let stall = self.world_rng.gen_bool(0.5);
                self.log(format!("script: {leaver} is cut off and leaves"));
                self.apply_partition(vec![vec![addr], rest], stall);
                self.leave(i);
            }
            BlockingKind::SoleHolderSnapshotFails => {}
        }
        self.script = Some(script);
    }

    /// Whether the snapshot node `i`'s `process` was just asked for fails on purpose: the
    /// first time the only voter of a view with learners is asked.
    pub(super) fn script_fails_snapshot(&mut self, i: usize, process: ProcessId) -> bool {
        let view = self.nodes[i]
            .core
            .as_ref()
            .and_then(|c| c.view(&self.group).cloned());
        let Some(script) = self.script.as_mut() else {
            return false;
        };
        let Some(view) = view else {
            return false;
        };
        let sole = view.voters == 1 && view.members.len() > 1 && view.is_voter(process);
        if script.kind != BlockingKind::SoleHolderSnapshotFails
            || script.step != Step::Forming
            || !sole
        {
            return false;
        }
        script.step = Step::Blocked;
        script.began = self.now;
        script.returns = NEVER;
        script.processes = vec![process];
        script.view = Some(view.clone());
        self.log(format!(
            "script: the snapshot of {process}, the only voter of {view}, fails"
        ));
        true
    }

    /// The cut-off processes return (crashed ones restart as new processes).
    fn script_return(&mut self, kind: BlockingKind) {
        let targets = self
            .script
            .as_ref()
            .map(|s| s.targets.clone())
            .unwrap_or_default();
        self.log("script: the processes return".into());
        match kind {
            BlockingKind::MajorityCrashed { .. } => {
                for i in targets {
                    if self.nodes[i].core.is_none() {
                        self.start_node(i);
                    }
                }
            }
            // Paused voters resume on their own.
            BlockingKind::NoMajoritySide { paused: true } => {}
            _ => {
                self.log("heal".into());
                self.network.borrow_mut().heal();
            }
        }
        self.script.as_mut().expect("script").step = Step::Returned;
    }

    /// An `Accept` is about to go out: in the cut-off scenario, one admitting the joiners cuts
    /// them off first, so the install never reaches them.
    pub(super) fn script_saw_accept(&mut self, envelope: &Envelope) {
        let Some(script) = self.script.as_mut() else {
            return;
        };
        let Body::Accept { decision, .. } = &envelope.body else {
            return;
        };
        if script.kind != BlockingKind::JoinersCutOff || script.step != Step::Armed {
            return;
        }
        let joiners: Vec<ProcessId> = script
            .targets
            .iter()
            .filter_map(|&i| self.nodes[i].core.as_ref().map(|c| c.me().id))
            .collect();
        if !decision.joiners.iter().any(|j| joiners.contains(j)) {
            return;
        }
        script.processes = joiners;
        script.step = Step::Blocked;
        script.began = self.now;
        script.returns = self.now + Duration::from_millis(self.world_rng.gen_range(3000..5000));
        let cut: Vec<SocketAddr> = script.targets.iter().map(|&i| self.nodes[i].addr).collect();
        let rest = self
            .nodes
            .iter()
            .map(|n| n.addr)
            .filter(|a| !cut.contains(a))
            .collect();
        let stall = self.world_rng.gen_bool(0.5);
        let view = decision.view.clone();
        self.log(format!(
            "script: the joiners are cut off as {view} is proposed"
        ));
        self.apply_partition(vec![cut, rest], stall);
    }

    /// `process` installed `view`.
    pub(super) fn script_saw_install(&mut self, process: ProcessId, view: &View) {
        let now = self.now;
        let Some(script) = self.script.as_mut() else {
            return;
        };
        if !matches!(script.step, Step::Blocked | Step::Returned) || script.view.is_none() {
            return;
        }
        if view.id.epoch > script.epoch() && now >= script.began {
            script.progress.push((process, view.clone(), now));
        }
        let cut_joiner = script.kind == BlockingKind::JoinersCutOff
            && script.step == Step::Blocked
            && script.processes.contains(&process);
        if cut_joiner {
            self.script_violation(format!("{process} installed {view} while cut off"));
        }
    }

    /// The outcome the script states, checked at the end of the run.
    pub(super) fn script_final_checks(&mut self) {
        let Some(script) = self.script.take() else {
            return;
        };
        let mut failed: Vec<String> = Vec::new();
        // Without a settled view the script never acted (the reason is already a violation:
        // the group never settled, or the snapshot was never asked for).
        let acted = script
            .view
            .clone()
            .filter(|_| script.step == Step::Returned || script.step == Step::Blocked);
        if let Some(view) = acted {
            let (began, returns) = (script.began, script.returns);
            let during: Vec<&(ProcessId, View, Time)> =
                script.progress_between(began, returns).collect();
            let exemption = self.record.exemption().map(|e| e.view.id);
            match script.kind {
                BlockingKind::JoinersCutOff => {
                    let admitted = during
                        .iter()
                        .find(|(_, v, _)| script.processes.iter().any(|p| v.contains(*p)));
                    let moved_on = admitted.is_some_and(|(_, a, _)| {
                        during.iter().any(|(_, v, _)| {
                            v.id.epoch > a.id.epoch
                                && !script.processes.iter().any(|p| v.contains(*p))
                        })
                    });
                    if admitted.is_none() {
                        failed.push("no view admitting the joiners was installed".into());
                    } else if !moved_on {
                        failed.push(
                            "the voters did not install a view without the cut-off joiners".into(),
                        );
                    }
                }
                BlockingKind::MajorityCrashed { .. } => {
                    if let Some((p, v, at)) = script.progress.first() {
                        failed.push(format!(
                            "{p} installed {v} at {:.3}s after a majority of the voters of {view} crashed",
                            at.as_secs_f64()
                        ));
                    }
                    if exemption != Some(view.id) {
                        failed.push(format!(
                            "the record does not exempt {view} (it exempts {exemption:?})"
                        ));
                    }
                    failed.extend(self.survivors_blocked(&view, &script.processes));
                }
                BlockingKind::NoMajoritySide { .. } => {
                    if let Some((p, v, at)) = during.first() {
                        failed.push(format!(
                            "{p} installed {v} at {:.3}s while no side held a majority",
                            at.as_secs_f64()
                        ));
                    }
                    if exemption.is_some() {
                        failed.push("the record exempts a run that must recover".into());
                    }
                }
                BlockingKind::LeaveTimesOut { vote_needed } => {
                    failed.extend(self.leave_outcome(&script, &view, vote_needed));
                    if exemption.is_some() {
                        failed.push("the record exempts a run that must recover".into());
                    }
                }
                BlockingKind::SoleHolderSnapshotFails => {
                    if let Some((p, v, at)) = script.progress.first() {
                        failed.push(format!(
                            "{p} installed {v} at {:.3}s after the only holder lost the state",
                            at.as_secs_f64()
                        ));
                    }
                    if exemption != Some(view.id) {
                        failed.push(format!(
                            "the record does not exempt {view} (it exempts {exemption:?})"
                        ));
                    }
                    if self.observed.restored_after(began) {
                        failed.push("a state was restored after the only holder lost it".into());
                    }
                    failed.extend(self.holder_blocked(&view, script.processes[0]));
                }
            }
        }
        for detail in failed {
            self.script_violation(detail);
        }
        self.script = Some(script);
    }

    /// After a majority of `view`'s voters (`crashed`) crashed: every surviving member still
    /// has `view` and reports being blocked for want of a majority.
    fn survivors_blocked(&self, view: &View, crashed: &[ProcessId]) -> Vec<String> {
        let mut failed = Vec::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let Some(core) = node.core.as_ref() else {
                continue;
            };
            let me = core.me().id;
            if !view.contains(me) || crashed.contains(&me) {
                continue;
            }
            let now = self.local_now(i);
            let blocked = core.groups().next().and_then(|g| g.blocked(now));
            let in_view = core.view(&self.group).is_some_and(|v| v.id == view.id);
            let no_majority = blocked
                .as_ref()
                .is_some_and(|b| matches!(b.reason, BlockedReason::NoMajority { .. }));
            if !in_view || !no_majority {
                failed.push(format!(
                    "survivor {me} ends in {:?}, blocked {blocked:?}; expected {} blocked on no majority",
                    core.view(&self.group).map(|v| v.id),
                    view.id
                ));
            }
        }
        failed
    }

    /// After the only holder `holder` of `view` lost the state: it still has `view` and
    /// reports being blocked for want of a holder.
    fn holder_blocked(&self, view: &View, holder: ProcessId) -> Option<String> {
        let i = self.node_of(holder)?;
        let core = self.nodes[i].core.as_ref()?;
        let blocked = core
            .groups()
            .next()
            .and_then(|g| g.blocked(self.local_now(i)));
        let in_view = core.view(&self.group).is_some_and(|v| v.id == view.id);
        let no_holder = blocked
            .as_ref()
            .is_some_and(|b| b.reason == BlockedReason::NoStateHolder);
        (!in_view || !no_holder).then(|| {
            format!(
                "{holder} ends in {:?}, blocked {blocked:?}; expected {} blocked on no holder",
                core.view(&self.group).map(|v| v.id),
                view.id
            )
        })
    }

    fn leave_outcome(&self, script: &Script, view: &View, vote_needed: bool) -> Vec<String> {
        let mut failed = Vec::new();
        let leaver = script.processes[0];
        let timeout = self.config.settings.membership.leave_timeout;
        let left = self
            .observed
            .left
            .iter()
            .find(|(p, at, _)| *p == leaver && *at >= script.began);
        let (left_at, timed_out) = match left {
            Some(&(_, at, timed_out)) => (at, timed_out),
            None => {
                failed.push(format!("{leaver} never reported its leave done"));
                return failed;
            }
        };
        let waited = left_at.saturating_sub(script.began);
        if !timed_out || waited < timeout || waited > timeout + Duration::from_millis(200) {
            failed.push(format!(
                "{leaver} left after {:.3}s (timed out: {timed_out}); expected the leave timeout ({:.3}s)",
                waited.as_secs_f64(),
                timeout.as_secs_f64()
            ));
        }
        if !vote_needed {
            let without = script
                .progress_between(script.began, script.returns)
                .any(|(_, v, _)| !v.contains(leaver));
            if !without {
                failed.push(format!(
                    "the rest installed no view without {leaver} while it was cut off"
                ));
            }
            return failed;
        }
        if let Some((p, v, at)) = script.progress_between(script.began, script.returns).next() {
            failed.push(format!(
                "{p} installed {v} at {:.3}s with one voter of {view} reachable",
                at.as_secs_f64()
            ));
        }
        let (paused, until) = script.paused_voter.expect("vote needed");
        let moved_on = script
            .progress_between(script.returns, until)
            .any(|(p, _, _)| *p != paused);
        let voted = self
            .observed
            .accepted
            .iter()
            .any(|(p, base, at)| *p == leaver && *base == view.id && *at >= left_at);
        if !moved_on || !voted {
            failed.push(format!(
                "before {paused} resumed: a view after {} installed: {moved_on}, {leaver} accepted it after leaving: {voted}",
                view.id
            ));
        }
        failed
    }
}
