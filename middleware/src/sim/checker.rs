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
            Body::Accept {
                base,
                ballot,
                decision,
                ..
            } => {
                self.proposals
                    .entry((base.id, *ballot))
                    .or_insert_with(|| (base.clone(), decision.view.clone(), envelope.sender));
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
                decision,
            } => {
                self.installs
                    .entry((*base, *ballot))
                    .or_insert_with(|| (decision.view.clone(), envelope.sender));
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
                        // Only the base's voters count; learners hold no state to vote with.
                        base_view.count_voters(voters.iter()) >= base_view.majority()
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
                            .is_some_and(|b| b.voters == 1 && b.members[0].id == *proposer)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::{Incarnation, NodeId};
    use crate::view::Member;
    use crate::wire::PROTOCOL_VERSION;

    fn pid(n: u64) -> ProcessId {
        ProcessId {
            node: NodeId(n),
            incarnation: Incarnation(1),
        }
    }

    fn view(epoch: u64, members: &[u64]) -> View {
        View {
            group: GroupName::new("g").unwrap(),
            id: ViewId {
                epoch,
                coordinator: pid(members[0]),
            },
            members: members
                .iter()
                .map(|n| Member {
                    id: pid(*n),
                    addr: SocketAddr::from(([10, 0, 0, *n as u8], 1)),
                })
                .collect(),
            voters: members.len(),
        }
    }

    use std::net::SocketAddr;

    fn sent(from: u64, body: Body) -> Envelope {
        Envelope {
            version: PROTOCOL_VERSION,
            sender: pid(from),
            sender_addr: SocketAddr::from(([10, 0, 0, from as u8], 1)),
            seq: 1,
            group: None,
            body,
        }
    }

    fn properties(checker: &MembershipChecker) -> Vec<&'static str> {
        checker.violations().iter().map(|v| v.property).collect()
    }

    #[test]
    fn a_history_decided_by_a_majority_passes() {
        let mut c = MembershipChecker::default();
        let base = view(1, &[1, 2, 3]);
        let next = view(2, &[1, 2]);
        let ballot = Ballot {
            round: 1,
            proposer: pid(1),
        };
        for n in 1..=3 {
            c.observe_install(pid(n), &base);
        }
        c.observe_send(&sent(
            1,
            Body::Accept {
                base: base.clone(),
                ballot,
                base_decided: None,
                decision: crate::wire::Decision {
                    view: next.clone(),
                    cut: Vec::new(),
                    joiners: Vec::new(),
                },
            },
        ));
        c.observe_send(&sent(
            2,
            Body::Accepted {
                base: base.id,
                ballot,
            },
        ));
        c.observe_install(pid(1), &next);
        c.observe_install(pid(2), &next);
        c.check_step();
        // `base` had no predecessor and three members: the checker flags it as not decided.
        assert_eq!(properties(&c), vec!["primary partition"]);
    }

    #[test]
    fn each_violation_is_caught() {
        let mut c = MembershipChecker::default();
        c.observe_install(pid(1), &view(1, &[1]));
        c.check_step();
        assert!(c.violations().is_empty(), "a creation is allowed");
        c.observe_install(pid(1), &view(2, &[2, 3]));
        assert!(properties(&c).contains(&"self-inclusion"));
        c.observe_install(pid(1), &view(2, &[1]));
        assert!(properties(&c).contains(&"monotonic views"));
        let mut c = MembershipChecker::default();
        c.observe_install(pid(1), &view(1, &[1]));
        let mut other = view(1, &[1]);
        other.members.push(view(1, &[2]).members[0]);
        c.observe_install(pid(2), &other);
        assert!(properties(&c).contains(&"view agreement"));
        let mut c = MembershipChecker::default();
        let base = view(1, &[1, 2, 3]);
        let next = view(2, &[1, 2, 3, 4]);
        let ballot = Ballot {
            round: 1,
            proposer: pid(1),
        };
        c.observe_send(&sent(
            1,
            Body::Accept {
                base: base.clone(),
                ballot,
                base_decided: None,
                decision: crate::wire::Decision {
                    view: next.clone(),
                    cut: Vec::new(),
                    joiners: Vec::new(),
                },
            },
        ));
        c.observe_install(pid(4), &next);
        c.check_step();
        assert_eq!(
            properties(&c),
            vec!["primary partition"],
            "only the proposer accepted"
        );
    }
}
