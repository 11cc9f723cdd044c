//! The total-failure scenario ([`Scenario::TotalFailure`]): every node crashes at once (a
//! power loss of the whole cluster), then the nodes restart one after another, and the group
//! must re-form from its durable state, or stay blocked for good without one.
//!
//! Each simulated node keeps, across its crashes, the last view it installed in each group,
//! as the real node's data directory does (`runtime::data_dir::record_last_view`, at every
//! install). At a start, if its service recovered a durable state
//! ([`SimulatedService::durable_position`](super::service::SimulatedService::durable_position))
//! and its data directory records a last view, the simulator makes the node a recovery
//! claimant ([`NodeCore::set_recovery`](crate::proto::node::NodeCore::set_recovery)), as the
//! replica shell does when it registers a durable replica. That happens in every scenario; it
//! only matters when no member is left to join (see `proto::membership::join`).
//!
//! The scenario: the seed's network faults and fault families as in the normal scenario,
//! but no crashes, leaves or partitions of its own. Once the group has formed, at a random
//! time 3–6 s in, every node crashes at once (each crash a power loss or not, drawn per node
//! as for any crash of a process with a disk). The nodes restart in a random order, each
//! 0.1–2.5 s after the one before, and one in four much later (6–12 s after the failure; the
//! quiet phase starts whoever is still down). It states and checks:
//!
//! - with durable claims from a majority of the voters of the last view installed before the
//!   failure: the group is re-formed, by a process that re-forms it (founds it again alone,
//!   its first view) only once a majority of that view's voters have restarted, from a
//!   position at least that of a majority of them (the most advanced durable state of any
//!   majority is at least that: what a majority made durable is never lost); then liveness
//!   applies (the re-formed view resolves the record's entries for the crashed views);
//! - without (a service with no durable state, such as the log service): no view is ever
//!   installed after the failure, every process ends joining and blocked on
//!   `NoSeedAnswered`, and the record exempts liveness: the group is never re-formed from
//!   nothing;
//! - in any scenario, *one group*: a restarted claimant never re-forms the group while
//!   another live process is a member of a view (a second group beside the first).
//!
//! What the group delivered before the failure lived in the processes: the delivery
//! checker no longer expects it in the final states ([`DeliveryChecker::total_failure`]);
//! what the services made durable is judged by the service's own checks (a replicated
//! service's clients: every history linearizable, every key read back at the end).
//!
//! [`ClaimFault`] breaks recovery on purpose (claims with position 0, or inverted so the
//! least advanced claimant re-forms), to show the checks catch a group re-formed from a
//! state missing acknowledged updates.
//!
//! [`Scenario::TotalFailure`]: super::scenario::Scenario::TotalFailure
//! [`DeliveryChecker::total_failure`]: super::delivery_checker::DeliveryChecker::total_failure

use super::scenario::Scenario;
use super::world::{choose, Action};
use super::{SimConfig, Simulation, NEVER};
use crate::id::{NodeId, ProcessId};
use crate::proto::Time;
use crate::view::View;
use crate::wire::{BlockedReason, RecoveryClaim};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Salt of the total-failure scenario's draws.
const TOTAL_FAILURE_SALT: u64 = 0x7074_a1fa_11ed;

/// A deliberately broken total-failure recovery: the simulated data directories claim a
/// wrong position (checker self-tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClaimFault {
    /// Every claim says position 0: the latest view, then the lowest node, re-forms.
    Zero,
    /// Positions inverted: the least advanced claimant re-forms.
    Inverted,
}

impl ClaimFault {
    /// The position claimed for a durable state recovered up to `position`.
    pub fn claimed(self, position: u64) -> u64 {
        match self {
            ClaimFault::Zero => 0,
            ClaimFault::Inverted => u64::MAX - position,
        }
    }
}

/// A start of a node after the total failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Restart {
    /// The node.
    pub node: NodeId,
    /// Its new process.
    pub process: ProcessId,
    /// When.
    pub at: Time,
    /// The durable position its service recovered, if its state is durable.
    pub position: Option<u64>,
    /// The last view its data directory recorded, if it claimed it (with `position`).
    pub claimed: Option<View>,
    /// The later view it recorded accepting, if its claim named one (it had accepted a view
    /// that it crashed before installing).
    pub accepted: Option<View>,
}

/// A restarted claimant re-forming the group (founding it again, alone).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reformation {
    /// The process.
    pub process: ProcessId,
    /// The view it installed.
    pub view: View,
    /// When.
    pub at: Time,
    /// The durable position its service recovered (the state the group continues from).
    pub position: u64,
    /// The voters of the last view before the failure that had restarted by then.
    pub back: Vec<NodeId>,
}

/// What the total-failure scenario did and saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TotalFailureReport {
    /// When every node crashed (`None`: the group never formed, so it never happened).
    pub failed_at: Option<Time>,
    /// The latest view any node had installed then (from the data directories).
    pub last_view: Option<View>,
    /// Every start after the failure, in order.
    pub restarts: Vec<Restart>,
    /// Every re-formation after the failure, in order.
    pub reformations: Vec<Reformation>,
    /// The first view installed after the failure: by whom, and when.
    pub first_install: Option<(ProcessId, View, Time)>,
}

impl TotalFailureReport {
    /// The voters of the last view before the failure (by node: restarts are new processes).
    pub fn last_voters(&self) -> Vec<NodeId> {
        self.last_view
            .iter()
            .flat_map(|v| v.voters().iter().map(|m| m.id.node))
            .collect()
    }

    /// The position each node's service recovered at its first start after the failure.
    pub fn positions(&self) -> BTreeMap<NodeId, Option<u64>> {
        let mut positions = BTreeMap::new();
        for restart in &self.restarts {
            positions.entry(restart.node).or_insert(restart.position);
        }
        positions
    }

    /// The position a majority of the last view's voters had made durable (the highest
    /// position held by at least a majority of them), if every voter's is known: the state any
    /// majority's most advanced member holds, and every update acknowledged as durable at a
    /// majority.
    pub fn majority_position(&self) -> Option<u64> {
        let view = self.last_view.as_ref()?;
        let positions = self.positions();
        let mut held: Vec<u64> = self
            .last_voters()
            .iter()
            .map(|n| positions.get(n).copied().flatten())
            .collect::<Option<Vec<u64>>>()?;
        held.sort_unstable_by(|a, b| b.cmp(a));
        held.get(view.majority() - 1).copied()
    }
}

/// The total-failure scenario in progress.
#[derive(Debug)]
pub(super) struct TotalFailure {
    rng: StdRng,
    /// When every node crashes (postponed until the group has formed).
    at: Time,
    report: TotalFailureReport,
}

impl TotalFailure {
    pub(super) fn new(seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed ^ TOTAL_FAILURE_SALT);
        let at = Duration::from_millis(rng.gen_range(3000..6000));
        TotalFailure {
            rng,
            at,
            report: TotalFailureReport::default(),
        }
    }
}

impl SimConfig {
    /// The total-failure scenario drawn from `seed`: the nodes, network faults, fault
    /// families and settings of [`SimConfig::from_seed`], with [`Scenario::TotalFailure`].
    pub fn total_failure_from_seed(seed: u64) -> Self {
        let mut config = SimConfig::from_seed(seed);
        config.scenario = Scenario::TotalFailure;
        config
    }
}

impl Simulation {
    /// The scenario's next move; returns when the next one is due.
    pub(super) fn total_failure_step(&mut self) -> Time {
        let tf = self.total_failure.as_mut().expect("a total-failure run");
        if tf.report.failed_at.is_some() {
            return NEVER;
        }
        if self.now < tf.at {
            return tf.at;
        }
        if !self.group_formed {
            return self.now + Duration::from_millis(100);
        }
        self.fail_totally();
        NEVER
    }

    /// Every node crashes at once; their restarts are scheduled.
    fn fail_totally(&mut self) {
        let group = self.group.clone();
        let last_view = self
            .nodes
            .iter()
            .filter_map(|n| n.last_views.get(&group))
            .max_by_key(|v| v.id)
            .cloned();
        self.log(format!(
            "total failure: every node crashes at once (last view {})",
            last_view.as_ref().map_or("none".into(), |v| v.to_string())
        ));
        for i in 0..self.nodes.len() {
            self.crash(i);
        }
        self.deliveries.total_failure();
        let now = self.now;
        let n = self.nodes.len();
        let tf = self.total_failure.as_mut().expect("a total-failure run");
        tf.report.failed_at = Some(now);
        tf.report.last_view = last_view;
        let order = choose(&mut tf.rng, &(0..n).collect::<Vec<usize>>(), n);
        let mut next = now;
        let mut plan = Vec::new();
        for i in order {
            let at = if tf.rng.gen_bool(0.25) {
                now + Duration::from_millis(tf.rng.gen_range(6000..12_000))
            } else {
                next += Duration::from_millis(tf.rng.gen_range(100..2500));
                next
            };
            plan.push((i, at));
        }
        for &(i, at) in &plan {
            self.agenda.at(at, Action::Restart { node: i });
        }
        let shown: Vec<String> = plan
            .iter()
            .map(|(i, at)| format!("{} at {:.3}s", self.nodes[*i].node_id, at.as_secs_f64()))
            .collect();
        self.log(format!("total failure: restarts {}", shown.join(", ")));
    }

    /// Node `i` just started: if its service recovered a durable state and its data directory
    /// records a last view, it claims them for total-failure recovery.
    pub(super) fn claim_recovery(&mut self, i: usize) {
        let group = self.group.clone();
        let fault = self.config.claim_fault;
        let now = self.now;
        let node = &mut self.nodes[i];
        let position = node.service.durable_position();
        let last_view = node.last_views.get(&group).cloned();
        let accepted = node.accepted_views.get(&group).cloned().filter(|a| {
            last_view
                .as_ref()
                .is_some_and(|last| a.view.id.epoch > last.id.epoch)
        });
        node.claimed = None;
        let Some(core) = node.core.as_mut() else {
            return;
        };
        let process = core.me().id;
        let claimed = match (position, &last_view) {
            (Some(position), Some(last_view)) => {
                let claim = RecoveryClaim {
                    last_view: last_view.clone(),
                    accepted: accepted.clone(),
                    position: fault.map_or(position, |f| f.claimed(position)),
                };
                core.set_recovery(&group, Some(claim));
                node.claimed = Some(position);
                Some(last_view.clone())
            }
            _ => None,
        };
        if let Some(view) = &claimed {
            let position = position.expect("claimed");
            self.log(format!(
                "{process} recovered a durable state up to {position}: claims {view}"
            ));
        }
        let Some(tf) = self.total_failure.as_mut() else {
            return;
        };
        if tf.report.failed_at.is_some() {
            tf.report.restarts.push(Restart {
                node: process.node,
                process,
                at: now,
                position,
                accepted: claimed.as_ref().and(accepted).map(|a| a.view),
                claimed,
            });
        }
    }

    /// Node `i`'s `process` installs `view` (before the simulator records it as installed). A
    /// restarted claimant installing, as its first view, one with itself alone re-forms the
    /// group: never while another live process is a member (*one group*).
    pub(super) fn saw_install_recovering(&mut self, i: usize, process: ProcessId, view: &View) {
        let now = self.now;
        if let Some(tf) = self.total_failure.as_mut() {
            if tf.report.failed_at.is_some() && tf.report.first_install.is_none() {
                tf.report.first_install = Some((process, view.clone(), now));
            }
        }
        let first = !self.observed.installed.contains_key(&process);
        let alone = view.members.len() == 1 && view.members[0].id == process;
        let Some(position) = self.nodes[i].claimed.filter(|_| first && alone) else {
            return;
        };
        self.log(format!(
            "{process} re-forms the group at {} from its state up to {position}",
            view.id
        ));
        let members: Vec<String> = self
            .nodes
            .iter()
            .filter_map(|n| n.core.as_ref())
            .filter(|c| c.me().id != process)
            .filter_map(|c| Some(format!("{} in {}", c.me().id, c.view(&self.group)?.id)))
            .collect();
        if !members.is_empty() {
            let detail = format!(
                "{process} re-formed the group at {} while {} (a second group)",
                view.id,
                members.join(", ")
            );
            self.checker_violation("one group", detail);
        }
        let Some(tf) = self.total_failure.as_mut() else {
            return;
        };
        if tf.report.failed_at.is_none() {
            return;
        }
        let restarted: BTreeSet<NodeId> = tf.report.restarts.iter().map(|r| r.node).collect();
        let back = tf
            .report
            .last_voters()
            .into_iter()
            .filter(|n| restarted.contains(n))
            .collect();
        tf.report.reformations.push(Reformation {
            process,
            view: view.clone(),
            at: now,
            position,
            back,
        });
    }

    /// The outcome the total-failure scenario states, checked at the end; its report.
    pub(super) fn total_failure_final_checks(&mut self) -> Option<TotalFailureReport> {
        let report = self.total_failure.take()?.report;
        let mut failed = Vec::new();
        let (Some(failed_at), Some(last_view)) = (report.failed_at, &report.last_view) else {
            self.checker_violation(
                "expected outcome",
                "the group never formed: the total failure never happened".into(),
            );
            return Some(report);
        };
        let voters = report.last_voters();
        let needed = last_view.majority();
        let claimants: BTreeSet<NodeId> = report
            .restarts
            .iter()
            .filter(|r| r.claimed.is_some())
            .map(|r| r.node)
            .collect();
        let claiming = voters.iter().filter(|n| claimants.contains(n)).count();
        let exemption = self.record.exemption().map(|e| e.to_string());
        if claiming >= needed {
            match report.reformations.first() {
                None => failed.push(format!(
                    "the group never re-formed after the total failure at {:.3}s, though {claiming} of the {} voters of {last_view} came back with durable claims",
                    failed_at.as_secs_f64(),
                    voters.len()
                )),
                Some(first) => {
                    if first.back.len() < needed {
                        failed.push(format!(
                            "{} re-formed the group at {:.3}s with {} of the {} voters of {last_view} (the last view before the failure) back, fewer than a majority",
                            first.process,
                            first.at.as_secs_f64(),
                            first.back.len(),
                            voters.len()
                        ));
                    }
                    if let Some(held) = report.majority_position().filter(|h| first.position < *h)
                    {
                        failed.push(format!(
                            "{} re-formed the group from its state up to {}, but a majority of the voters of {last_view} had made their state durable up to {held}: updates durable at a majority are lost",
                            first.process, first.position
                        ));
                    }
                }
            }
            if let Some(why) = exemption {
                failed.push(format!("liveness exempted after a re-formation: {why}"));
            }
        } else {
            if let Some((process, view, at)) = &report.first_install {
                failed.push(format!(
                    "{process} installed {view} at {:.3}s after the total failure without durable claims from a majority of {last_view}: a group from nothing",
                    at.as_secs_f64()
                ));
            }
            for (i, node) in self.nodes.iter().enumerate() {
                let Some(core) = node.core.as_ref() else {
                    continue;
                };
                let blocked = core
                    .groups()
                    .next()
                    .and_then(|g| g.blocked(self.local_now(i)));
                let waiting = blocked
                    .as_ref()
                    .is_some_and(|b| b.reason == BlockedReason::NoSeedAnswered);
                if core.view(&self.group).is_some() || !waiting {
                    failed.push(format!(
                        "{} ends in {:?}, blocked {blocked:?}; expected joining, blocked on no seed answered",
                        core.me().id,
                        core.view(&self.group).map(|v| v.id)
                    ));
                }
            }
            if exemption.is_none() {
                failed.push("the record does not exempt a run that cannot recover".into());
            }
        }
        for detail in failed {
            self.checker_violation("expected outcome", detail);
        }
        Some(report)
    }
}
