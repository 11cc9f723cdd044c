//! Property checkers for membership. The simulator feeds them every view installed and every
//! consensus message sent, and calls [`MembershipChecker::check_step`] after every step.

use crate::id::{GroupName, ProcessId, ViewId};
use crate::view::View;
use crate::wire::{Ballot, Body, Envelope};
use std::collections::{BTreeMap, BTreeSet};

/// A violated property, with what shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The property's name.
    pub property: &'static str,
    /// What happened.
    pub detail: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} violated: {}", self.property, self.detail)
    }
}

/// Records membership history and checks the membership properties.
#[derive(Debug, Default)]
pub struct MembershipChecker {
    /// Every view id seen installed, with its members.
    views: BTreeMap<(GroupName, ViewId), View>,
    /// Views installed by each process, in order.
    installed: BTreeMap<(GroupName, ProcessId), Vec<ViewId>>,
    /// `Accept` proposals sent: (base, ballot) -> (base view, proposed view, proposer).
    proposals: BTreeMap<(ViewId, Ballot), (View, View, ProcessId)>,
    /// `Accepted` answers sent: (base, ballot) -> acceptors.
    acceptances: BTreeMap<(ViewId, Ballot), BTreeSet<ProcessId>>,
    /// `Install` messages sent by a proposer: (base, ballot) -> (decided view, proposer).
    installs: BTreeMap<(ViewId, Ballot), (View, ProcessId)>,
    /// Views installed but not yet checked for a majority.
    unchecked: Vec<(ProcessId, View)>,
    violations: Vec<Violation>,
}

impl MembershipChecker {
    /// Observes a message a process sends (consensus messages are recorded).
    pub fn observe_send(&mut self, envelope: &Envelope) {
        match &envelope.body {
            Body::Accept { base, ballot, view } => {
                self.proposals
                    .entry((base.id, *ballot))
                    .or_insert_with(|| (base.clone(), view.clone(), envelope.sender));
            }
            Body::Accepted { base, ballot } => {
                self.acceptances
                    .entry((*base, *ballot))
                    .or_default()
                    .insert(envelope.sender);
            }
            Body::Install {
                base: Some(base),
                ballot,
                view,
            } => {
                self.installs
                    .entry((*base, *ballot))
                    .or_insert_with(|| (view.clone(), envelope.sender));
            }
            _ => {}
        }
    }

    /// Observes `process` installing `view`.
    pub fn observe_install(&mut self, process: ProcessId, view: &View) {
        let group = view.group.clone();
        if !view.contains(process) {
            self.violate(
                "self-inclusion",
                format!("{process} installed {view} without itself"),
            );
        }
        let history = self.installed.entry((group.clone(), process)).or_default();
        if let Some(last) = history.last() {
            if view.id.epoch <= last.epoch {
                let detail = format!("{process} installed {} after {}", view.id, last);
                self.violate("monotonic views", detail);
            }
        }
        self.installed
            .get_mut(&(group.clone(), process))
            .expect("inserted")
            .push(view.id);
        match self.views.get(&(group.clone(), view.id)) {
            Some(known) if known.members != view.members => {
                let detail = format!("{process} installed {view}, others installed {known}");
                self.violate("view agreement", detail);
            }
            Some(_) => {}
            None => {
                self.views.insert((group, view.id), view.clone());
                self.unchecked.push((process, view.clone()));
            }
        }
    }

    /// Checks that each newly seen view was decided by a majority of its predecessor, or is a
    /// group's creation (a single member that installs it as its first view of the group).
    pub fn check_step(&mut self) {
        for (process, view) in std::mem::take(&mut self.unchecked) {
            let creation = view.members.len() == 1
                && view.members[0].id == process
                && self.installed[&(view.group.clone(), process)].len() == 1;
            if creation {
                continue;
            }
            let decided =
                self.proposals
                    .iter()
                    .any(|((base, ballot), (base_view, proposed, proposer))| {
                        if *proposed != view {
                            return false;
                        }
                        let mut voters = self
                            .acceptances
                            .get(&(*base, *ballot))
                            .cloned()
                            .unwrap_or_default();
                        voters.insert(*proposer);
                        let in_base = voters.iter().filter(|v| base_view.contains(**v)).count();
                        in_base >= base_view.majority()
                    });
            // A one-member base is its own majority: its proposer decides alone, and the
            // only trace on the wire is the `Install` it sends.
            let decided_alone = self
                .installs
                .iter()
                .any(|((base, _), (installed, proposer))| {
                    *installed == view
                        && self
                            .views
                            .get(&(view.group.clone(), *base))
                            .is_some_and(|b| b.members.len() == 1 && b.members[0].id == *proposer)
                });
            if !decided && !decided_alone {
                self.violate(
                    "primary partition",
                    format!("{view} was installed (first by {process}) without a majority of its predecessor"),
                );
            }
        }
    }

    fn violate(&mut self, property: &'static str, detail: String) {
        self.violations.push(Violation { property, detail });
    }

    /// Violations found so far.
    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    /// Distinct views seen installed.
    pub fn views_seen(&self) -> usize {
        self.views.len()
    }
}
