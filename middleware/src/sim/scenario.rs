//! What a run does, and its record of what it did that may block the group for good.
//!
//! The normal scenario draws crashes (of any member, the coordinator and sequencer
//! included), restarts, graceful leaves, rejoins, partitions and heals during the fault
//! phase; it removes a process only if that keeps a live majority of the latest view's
//! state-holding voters (`may_remove`). The blocking scenarios ([`BlockingKind`]) do what it
//! avoids.
//!
//! Both keep a [`Record`]: the processes the scenario crashed, and an entry whenever those
//! crashes left fewer than a majority of the voters of a view no later view had replaced (checked
//! at each crash, and at each view's first install, since a view decided while a crash
//! happened may list the crashed process), or the last live holder of the state (crashed, or
//! its service failed a snapshot: its state is lost). Paxos needs
//! a majority of a view's voters to decide its successor, and a crashed process never comes
//! back (a restart is a new process), so such a view can never be followed: the group is
//! blocked by design. An entry is resolved when a later view is installed after it. Liveness
//! is exempted only for an unresolved entry: the exemption comes from what the scenario did,
//! never from how the nodes ended.

pub use super::blocking::BlockingKind;
pub(super) use super::blocking::Script;
use super::coverage::Hit;
use super::Simulation;
use crate::id::ProcessId;
use crate::proto::Time;
use crate::view::View;
use rand::Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;

/// What a run does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// Random crashes, restarts, leaves, rejoins and partitions (with the world's faults) that
    /// try never to take a majority of a view's state-holding voters away.
    Normal,
    /// One thing the normal scenario avoids, with the outcome it states.
    Blocking(BlockingKind),
    /// Every node crashes at once, then they restart one after another, under the seed's
    /// faults: the group re-forms from the most advanced durable state of a majority of its
    /// last view, or stays blocked for good without durable state (see
    /// [`total_failure`](super::total_failure)).
    TotalFailure,
}

/// What the scenario did that blocks the group for good.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Blocking {
    /// It crashed so many of the view's voters that no majority is left: no successor can be
    /// decided.
    MajorityCrashed {
        /// The voters it crashed.
        crashed: Vec<ProcessId>,
    },
    /// It crashed the last live process holding the group's state: no view can continue it.
    HoldersCrashed {
        /// That process.
        last: ProcessId,
    },
    /// It failed the snapshot of the last member of the view holding the state (its
    /// service's state is lost): no view can continue it.
    SnapshotFailedAtLastHolder {
        /// That process.
        last: ProcessId,
    },
}

/// An entry of the [`Record`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// When.
    pub at: Time,
    /// The view it blocks.
    pub view: View,
    /// What the scenario did.
    pub what: Blocking,
    /// When a later view was installed after all (the entry no longer blocks anything).
    pub resolved: Option<Time>,
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = self.at.as_secs_f64();
        match &self.what {
            Blocking::MajorityCrashed { crashed } => {
                let crashed: Vec<String> = crashed.iter().map(|p| p.to_string()).collect();
                write!(
                    f,
                    "by {at:.3}s the scenario crashed {} of the {} voters of {}: fewer than a majority ({}) are left",
                    crashed.join(", "),
                    self.view.voters,
                    self.view,
                    self.view.majority()
                )
            }
            Blocking::HoldersCrashed { last } => write!(
                f,
                "at {at:.3}s the scenario crashed {last}, the last live process holding the state (in {})",
                self.view
            ),
            Blocking::SnapshotFailedAtLastHolder { last } => write!(
                f,
                "at {at:.3}s the scenario failed the snapshot of {last}, the last member holding the state (in {})",
                self.view
            ),
        }
    }
}

/// The scenario's record of what it did that can block the group for good.
#[derive(Clone, Debug, Default)]
pub struct Record {
    crashed: BTreeMap<ProcessId, Time>,
    entries: Vec<Entry>,
}

impl Record {
    /// The scenario crashed `process` at `at`.
    pub fn crashed(&mut self, process: ProcessId, at: Time) {
        self.crashed.insert(process, at);
    }

    /// Adds an entry if the scenario's crashes left fewer than a majority of `view`'s voters
    /// (once per view). Returns whether it did.
    pub fn note_majority(&mut self, view: &View, at: Time) -> bool {
        let crashed: Vec<ProcessId> = view
            .voters()
            .iter()
            .map(|m| m.id)
            .filter(|p| self.crashed.contains_key(p))
            .collect();
        let known = self
            .entries
            .iter()
            .any(|e| e.view.id == view.id && matches!(e.what, Blocking::MajorityCrashed { .. }));
        if view.voters - crashed.len() >= view.majority() || known {
            return false;
        }
        self.entries.push(Entry {
            at,
            view: view.clone(),
            what: Blocking::MajorityCrashed { crashed },
            resolved: None,
        });
        true
    }

    /// The scenario took the last holder of the state in `view` away (`what` says how).
    pub fn note_holders(&mut self, view: &View, what: Blocking, at: Time) {
        self.entries.push(Entry {
            at,
            view: view.clone(),
            what,
            resolved: None,
        });
    }

    /// A view of `epoch` was installed at `at`: entries of earlier views are resolved.
    pub fn resolve(&mut self, epoch: u64, at: Time) {
        for entry in &mut self.entries {
            if entry.resolved.is_none() && entry.view.id.epoch < epoch {
                entry.resolved = Some(at);
            }
        }
    }

    /// The entry that exempts the run from the liveness checks: one never resolved.
    pub fn exemption(&self) -> Option<&Entry> {
        self.entries.iter().find(|e| e.resolved.is_none())
    }

    /// Every entry, in order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }
}

impl Simulation {
    /// The scenario crashed `victim`; `before` was the latest view before, and `held` whether
    /// the victim held the state.
    pub(super) fn note_crash(&mut self, victim: ProcessId, before: Option<View>, held: bool) {
        let now = self.now;
        self.record.crashed(victim, now);
        if let Some(view) = self.latest_view() {
            self.note_view(&view);
        }
        let holders = self
            .nodes
            .iter()
            .filter_map(|n| n.core.as_ref())
            .filter(|c| c.view(&self.group).is_some())
            .any(|c| c.groups().all(|g| g.multicast().is_ready()));
        if let (Some(view), true, false) = (before, held, holders) {
            let what = Blocking::HoldersCrashed { last: victim };
            self.record.note_holders(&view, what, now);
            self.log_last_record_entry();
        }
    }

    /// Traces the entry just added to the record.
    fn log_last_record_entry(&mut self) {
        let entry = self
            .record
            .entries()
            .last()
            .expect("just added")
            .to_string();
        self.log(format!("record: {entry}"));
    }

    /// Node `i`'s process, the last member of its view holding the state, fails its snapshot.
    pub(super) fn note_snapshot_lost(&mut self, i: usize, process: ProcessId) {
        let Some(view) = self.nodes[i]
            .core
            .as_ref()
            .and_then(|c| c.view(&self.group).cloned())
        else {
            return;
        };
        let what = Blocking::SnapshotFailedAtLastHolder { last: process };
        self.record.note_holders(&view, what, self.now);
        self.log_last_record_entry();
    }

    /// Checks whether the scenario's crashes already took a majority of `view`'s voters (a
    /// view first installed, or the latest at a crash).
    pub(super) fn note_view(&mut self, view: &View) {
        if self.record.note_majority(view, self.now) {
            self.log_last_record_entry();
        }
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

    /// One event of the normal scenario's fault phase.
    pub(super) fn scenario_event(&mut self) {
        let choice = self.rng.gen_range(0..100);
        let i = self.rng.gen_range(0..self.nodes.len());
        let live = self.nodes[i].core.as_ref().map(|c| c.me().id);
        // A stopped process cannot be asked to leave or join (it can still be killed).
        let running = self.nodes[i].paused_until.is_none();
        match (choice, live) {
            (0..=29, Some(id)) if self.may_remove(id) => self.crash(i),
            (30..=49, None) => self.start_node(i),
            (50..=64, _) if !self.network.borrow().is_partitioned() => self.partition(),
            (65..=79, _) if self.network.borrow().is_partitioned() => {
                self.log("heal".into());
                self.network.borrow_mut().heal();
            }
            (80..=89, Some(id)) if self.nodes[i].in_group && running && self.may_remove(id) => {
                self.leave(i)
            }
            (90..=99, Some(_)) if !self.nodes[i].in_group && running => {
                self.log(format!("rejoin {}", self.nodes[i].node_id));
                self.join(i);
            }
            _ => {}
        }
    }

    /// Splits the nodes into two parts, or (multi-part partitions) into two to four; with late
    /// frames, the partition may stall.
    fn partition(&mut self) {
        let world = self.config.world;
        let addrs: Vec<SocketAddr> = self.nodes.iter().map(|n| n.addr).collect();
        let parts = if world.multi_part_partitions {
            self.world_rng.gen_range(2..=addrs.len().min(4))
        } else {
            2
        };
        let mut sides = vec![Vec::new(); parts];
        for addr in addrs {
            let side = if world.multi_part_partitions {
                self.world_rng.gen_range(0..parts)
            } else {
                self.rng.gen_range(0..2)
            };
            sides[side].push(addr);
        }
        let stall = world.late_frames && self.world_rng.gen_bool(0.5);
        self.apply_partition(sides, stall);
    }

    /// Puts a partition in place, counted by its real number of parts.
    pub(super) fn apply_partition(&mut self, mut sides: Vec<Vec<SocketAddr>>, stall: bool) {
        let parts = sides.iter().filter(|s| !s.is_empty()).count();
        // Each client is on one side, cut off from the nodes on the others.
        for (side, client) in self.client_sides(sides.len()) {
            sides[side].push(client);
        }
        match parts {
            0 | 1 => {}
            2 => self.coverage.hit(Hit::Partition2),
            _ => self.coverage.hit(Hit::Partition3Plus),
        }
        if stall && parts > 1 {
            self.coverage.hit(Hit::StallingCut);
        }
        let shown: Vec<String> = sides.iter().map(|s| format!("{s:?}")).collect();
        self.log(format!(
            "partition {}{}",
            shown.join(" | "),
            if stall { " (stalling)" } else { "" }
        ));
        self.network.borrow_mut().partition_stalling(&sides, stall);
    }

    pub(super) fn begin_quiet_phase(&mut self) {
        self.log("faults stop: heal, restart crashed nodes, rejoin left ones".into());
        self.calm_world();
        for i in 0..self.nodes.len() {
            if self.nodes[i].core.is_none() {
                self.start_node(i);
            } else if !self.nodes[i].in_group {
                self.join(i);
            }
        }
    }

    /// Once faults stop every node must be in one agreed view holding exactly the live
    /// processes, unless the scenario's record exempts the run. Returns whether the check
    /// applied.
    pub(super) fn check_final_agreement(&mut self) -> bool {
        if let Some(entry) = self.record.exemption() {
            let line = format!("liveness not checked: {entry}");
            self.log(line);
            return false;
        }
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
        if !agreed {
            let detail = views
                .iter()
                .map(|(p, v)| match v {
                    Some(v) => format!("{p}: {v}"),
                    None => format!("{p}: no view"),
                })
                .collect::<Vec<_>>()
                .join("; ");
            self.checker_violation("eventual agreement", detail);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::{GroupName, Incarnation, NodeId, ViewId};
    use crate::view::Member;
    use std::net::SocketAddr;

    fn p(n: u64) -> ProcessId {
        ProcessId {
            node: NodeId(n),
            incarnation: Incarnation(1),
        }
    }

    fn view(epoch: u64, voters: &[u64], learners: &[u64]) -> View {
        let member = |n: &u64| Member {
            id: p(*n),
            addr: SocketAddr::from(([10, 0, 0, *n as u8], 7000)),
        };
        View {
            group: GroupName::new("g").unwrap(),
            id: ViewId {
                epoch,
                coordinator: p(voters[0]),
            },
            members: voters.iter().chain(learners).map(member).collect(),
            voters: voters.len(),
        }
    }

    #[test]
    fn no_majority_of_voters_left_exempts_until_a_later_view_comes() {
        let mut record = Record::default();
        // Of two voters, one crashed leaves no majority.
        record.crashed(p(7), Time::from_secs(1));
        assert!(record.note_majority(&view(2, &[6, 7], &[]), Time::from_secs(1)));
        record.resolve(3, Time::from_secs(1));
        let v = view(3, &[1, 2, 3], &[4, 5]);
        record.crashed(p(1), Time::from_secs(1));
        // One voter of three, however many learners: no entry.
        assert!(!record.note_majority(&v, Time::from_secs(1)));
        record.crashed(p(4), Time::from_secs(1));
        record.crashed(p(5), Time::from_secs(1));
        assert!(!record.note_majority(&v, Time::from_secs(1)));
        record.crashed(p(2), Time::from_secs(2));
        assert!(record.note_majority(&v, Time::from_secs(2)));
        assert!(
            !record.note_majority(&v, Time::from_secs(2)),
            "once per view"
        );
        assert_eq!(record.exemption().map(|e| e.view.id.epoch), Some(3));
        // A later view installed after all: the entry no longer exempts anything.
        record.resolve(3, Time::from_secs(3));
        assert!(record.exemption().is_some());
        record.resolve(4, Time::from_secs(3));
        assert_eq!(record.exemption(), None);
    }

    #[test]
    fn the_last_holder_crashed_exempts() {
        let mut record = Record::default();
        let what = Blocking::HoldersCrashed { last: p(1) };
        record.note_holders(&view(2, &[1], &[2]), what, Time::from_secs(1));
        assert!(record.exemption().is_some_and(|e| e
            .to_string()
            .contains("last live process holding the state")));
    }
}
