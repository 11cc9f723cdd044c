//! Exact-output tests of the membership core, through its public interface.

use super::*;
use crate::id::{Incarnation, NodeId};
use crate::view::ViewChange;
use crate::wire::{AcceptedView, BlockedReason, FlushReport, RecoveryVote, Round};
use std::time::Duration;

fn member(n: u64) -> Member {
    Member {
        id: ProcessId {
            node: NodeId(n),
            incarnation: Incarnation(1),
        },
        addr: SocketAddr::from(([10, 0, 0, n as u8], 7000)),
    }
}

fn group() -> GroupName {
    GroupName::new("g").unwrap()
}

fn view(epoch: u64, members: &[u64]) -> View {
    View {
        group: group(),
        id: ViewId {
            epoch,
            coordinator: member(members[0]).id,
        },
        members: members.iter().map(|n| member(*n)).collect(),
        voters: members.len(),
    }
}

/// A view of `voters` followed by `learners`.
fn view_with_learners(epoch: u64, voters: &[u64], learners: &[u64]) -> View {
    let mut view = view(epoch, &[voters, learners].concat());
    view.voters = voters.len();
    view
}

/// Settings of the process that founds the group.
fn founding() -> MembershipConfig {
    MembershipConfig {
        bootstrap: true,
        ..MembershipConfig::default()
    }
}

fn ms(n: u64) -> Time {
    Duration::from_millis(n)
}

fn ballot(round: u64, n: u64) -> Ballot {
    Ballot {
        round: Round(round),
        proposer: member(n).id,
    }
}

/// A core of process `me` that has installed `installed` (through the protocol itself).
fn core_with_view(me: u64, installed: &View) -> Membership {
    let seeds = installed.members.iter().map(|m| m.addr).collect();
    let mut core = Membership::new(
        group(),
        member(me),
        seeds,
        MembershipConfig::default(),
        MulticastConfig::default(),
    );
    core.handle_start(ms(0));
    let out = core.handle_message(
        ms(1),
        installed.coordinator().to_owned(),
        Body::Install {
            base: None,
            ballot: ballot(0, installed.members[0].id.node.0),
            decision: decided(installed, &[], &[]),
        },
    );
    assert!(matches!(
        out.as_slice(),
        [MembershipOutput::ViewInstalled(_)]
    ));
    core
}

/// A decision for `view` with the given cut (`upto`, holder rank) and joiners.
fn decided(view: &View, cut: &[(u64, u32)], joiners: &[u64]) -> Decision {
    Decision {
        view: view.clone(),
        cut: cut
            .iter()
            .map(|&(upto, holder)| crate::wire::CutEntry {
                upto: crate::wire::Seq(upto),
                holder: crate::wire::Rank(holder),
            })
            .collect(),
        joiners: joiners.iter().map(|n| member(*n).id).collect(),
    }
}

fn send(to: u64, body: Body) -> MembershipOutput {
    MembershipOutput::Send {
        to: member(to).addr,
        body,
    }
}

#[test]
fn without_seeds_a_process_creates_the_group() {
    let mut core = Membership::new(
        group(),
        member(1),
        vec![],
        founding(),
        MulticastConfig::default(),
    );
    let change = ViewChange {
        view: view(1, &[1]),
        joined: vec![member(1)],
        left: vec![],
    };
    assert_eq!(
        core.handle_start(ms(0)),
        vec![
            MembershipOutput::ViewInstalled(change.clone()),
            MembershipOutput::Multicast(MulticastOutput::View(change)),
        ]
    );
    assert!(
        core.multicast().is_ready(),
        "the creator holds the (empty) state"
    );
    assert_eq!(core.status(), &Status::Member);
}

#[test]
fn a_joiner_asks_every_seed_and_retries() {
    let seeds = vec![member(1).addr, member(2).addr];
    let mut core = Membership::new(
        group(),
        member(3),
        seeds,
        MembershipConfig::default(),
        MulticastConfig::default(),
    );
    let request = Body::JoinRequest {
        member: member(3),
        last_epoch: 0,
    };
    let expected = vec![send(1, request.clone()), send(2, request.clone())];
    assert_eq!(core.handle_start(ms(0)), expected);
    assert_eq!(core.handle_tick(ms(100)), vec![]);
    assert_eq!(core.handle_tick(ms(200)), expected);
}

#[test]
fn a_joiner_that_hears_of_the_group_never_creates_another() {
    let mut core = Membership::new(
        group(),
        member(3),
        vec![member(1).addr],
        MembershipConfig::default(),
        MulticastConfig::default(),
    );
    core.handle_start(ms(0));
    core.handle_message(
        ms(10),
        member(1),
        Body::DiscoverReply {
            view: Some(view(4, &[1, 2])),
        },
    );
    let out = core.handle_tick(ms(5000));
    assert!(out
        .iter()
        .all(|o| !matches!(o, MembershipOutput::ViewInstalled(_))));
}

#[test]
fn only_a_founding_process_creates_the_group() {
    // No seeds and no bootstrap: nobody to ask, and founding is never implicit.
    let mut alone = Membership::new(
        group(),
        member(1),
        vec![],
        MembershipConfig::default(),
        MulticastConfig::default(),
    );
    assert_eq!(alone.handle_start(ms(0)), vec![]);
    assert_eq!(alone.handle_tick(ms(60_000)), vec![]);
    assert!(matches!(alone.status(), Status::Joining { .. }));
    // Seeds that never answer: it keeps asking them, long after the bootstrap timeout.
    let mut joiner = Membership::new(
        group(),
        member(3),
        vec![member(1).addr],
        MembershipConfig::default(),
        MulticastConfig::default(),
    );
    joiner.handle_start(ms(0));
    let request = send(
        1,
        Body::JoinRequest {
            member: member(3),
            last_epoch: 0,
        },
    );
    assert_eq!(joiner.handle_tick(ms(60_000)), vec![request]);
    assert!(joiner.view().is_none());
    // The same process configured to found the group creates it after the timeout.
    let mut founder = Membership::new(
        group(),
        member(3),
        vec![member(1).addr],
        founding(),
        MulticastConfig::default(),
    );
    founder.handle_start(ms(0));
    let out = founder.handle_tick(ms(1000));
    assert!(matches!(
        out.first(),
        Some(MembershipOutput::ViewInstalled(_))
    ));
}

#[test]
fn a_single_member_admits_a_joiner_alone() {
    let mut core = Membership::new(
        group(),
        member(1),
        vec![],
        founding(),
        MulticastConfig::default(),
    );
    core.handle_start(ms(0));
    let out = core.handle_message(
        ms(5),
        member(2),
        Body::JoinRequest {
            member: member(2),
            last_epoch: 0,
        },
    );
    // The joiner is a learner until it holds the state.
    let next = view_with_learners(2, &[1], &[2]);
    let change = ViewChange {
        view: next.clone(),
        joined: vec![member(2)],
        left: vec![],
    };
    assert_eq!(
        out,
        vec![
            send(
                2,
                Body::DiscoverReply {
                    view: Some(view(1, &[1]))
                }
            ),
            // Promising blocks its own service until the next view.
            MembershipOutput::Multicast(MulticastOutput::Block),
            // Accepting its own proposal: recorded before anything else of the step leaves.
            MembershipOutput::ViewAccepted(AcceptedView {
                base: view(1, &[1]).id,
                view: next.clone(),
            }),
            send(
                2,
                Body::Install {
                    base: Some(view(1, &[1]).id),
                    ballot: ballot(1, 1),
                    decision: decided(&next, &[(0, 0)], &[2]),
                }
            ),
            MembershipOutput::ViewInstalled(change.clone()),
            // Nothing to flush: the service moves on and, as the oldest member that
            // holds the state, provides it to the joiner.
            MembershipOutput::Multicast(MulticastOutput::View(change)),
            MembershipOutput::Multicast(MulticastOutput::SnapshotWanted(next.id)),
        ]
    );
}

#[test]
fn a_suspicion_runs_both_phases_with_a_majority_of_the_base() {
    let base = view(3, &[1, 2, 3]);
    let mut core = core_with_view(1, &base);
    assert_eq!(
        core.handle_suspect(ms(10), member(3).id),
        vec![
            send(
                2,
                Body::Prepare {
                    base: base.clone(),
                    ballot: ballot(1, 1),
                    base_decided: None,
                }
            ),
            send(
                3,
                Body::Prepare {
                    base: base.clone(),
                    ballot: ballot(1, 1),
                    base_decided: None,
                }
            ),
        ]
    );
    // This process joined through an install without a cut, so it does not hold the
    // state: the next view lists it as a learner, after member 2, the only voter.
    let next = view_with_learners(4, &[2], &[1]);
    // Member 2 holds two entries of member 3's stream; the cut takes them.
    let promise = Body::Promise {
        base: base.id,
        ballot: ballot(1, 1),
        accepted: None,
        report: FlushReport {
            received: vec![
                crate::wire::Seq(0),
                crate::wire::Seq(0),
                crate::wire::Seq(2),
            ],
            ready: true,
        },
    };
    // It gets the state from member 2.
    let decision = decided(&next, &[(0, 0), (0, 1), (2, 1)], &[1]);
    let out = core.handle_message(ms(11), member(2), promise);
    assert_eq!(
        out[..2],
        [
            send(
                2,
                Body::Accept {
                    base: base.clone(),
                    ballot: ballot(1, 1),
                    base_decided: None,
                    decision: decision.clone(),
                }
            ),
            send(
                3,
                Body::Accept {
                    base: base.clone(),
                    ballot: ballot(1, 1),
                    base_decided: None,
                    decision: decision.clone(),
                }
            ),
        ]
    );
    // It does not hold the cut yet: it asks for the missing entries and does not accept.
    assert!(out[2..].iter().all(|o| matches!(
        o,
        MembershipOutput::Multicast(MulticastOutput::Send {
            body: Body::Nak {
                origin: crate::wire::Rank(2),
                from: crate::wire::Seq(1),
                to: crate::wire::Seq(2),
                ..
            },
            ..
        })
    )));
    assert!(!out[2..].is_empty());
    let entries: Vec<crate::wire::Entry> = (1..=2)
        .map(|seq| crate::wire::Entry {
            seq: crate::wire::Seq(seq),
            ordering: crate::wire::Ordering::Fifo,
            clock: vec![],
            item: crate::wire::Item::Payload(bytes::Bytes::from_static(b"m")),
        })
        .collect();
    // Multicast traffic goes to the multicast core (the node routes it there).
    let data = Body::Data {
        view: base.id,
        origin: crate::wire::Rank(2),
        entries,
    };
    let (_, multicast, out) =
        core.with_multicast(ms(11), |m, o| m.handle_message(ms(11), member(2), data, o));
    // Holding the cut, it accepts its own proposal (its shell records that first).
    assert_eq!(multicast, vec![]);
    assert_eq!(
        out,
        vec![MembershipOutput::ViewAccepted(AcceptedView {
            base: base.id,
            view: next.clone(),
        })]
    );
    let accepted = Body::Accepted {
        base: base.id,
        ballot: ballot(1, 1),
    };
    let install = Body::Install {
        base: Some(base.id),
        ballot: ballot(1, 1),
        decision,
    };
    let out = core.handle_message(ms(12), member(2), accepted);
    assert_eq!(
        out[..3],
        [
            send(2, install.clone()),
            send(3, install),
            MembershipOutput::ViewInstalled(ViewChange {
                view: next.clone(),
                joined: vec![],
                left: vec![member(3)],
            }),
        ]
    );
    // As a joiner of the new view it asks member 2 for the state.
    assert_eq!(
        out[3..],
        [MembershipOutput::Multicast(MulticastOutput::Send {
            to: member(2).addr,
            body: Body::StateRequest {
                view: next.id,
                offset: 0,
                since: None,
            }
        })]
    );
}

#[test]
fn a_minority_blocks_instead_of_installing() {
    let base = view(3, &[1, 2, 3]);
    let mut core = core_with_view(1, &base);
    core.handle_suspect(ms(10), member(2).id);
    core.handle_suspect(ms(10), member(3).id);
    for t in (20..5000).step_by(20) {
        let out = core.handle_tick(ms(t));
        assert!(out
            .iter()
            .all(|o| !matches!(o, MembershipOutput::ViewInstalled(_))));
    }
    assert_eq!(core.view(), Some(&base));
    // It kept retrying with ever higher ballots.
    let out = core.handle_tick(ms(5400));
    assert!(
        out.iter().any(|o| matches!(o,
        MembershipOutput::Send { body: Body::Prepare { ballot, .. }, .. } if ballot.round > Round(5)))
    );
}

#[test]
fn an_acceptor_refuses_lower_ballots_and_reports_what_it_accepted() {
    let base = view(3, &[1, 2, 3]);
    let mut core = core_with_view(2, &base);
    let proposal = view(4, &[1, 2]);
    assert_eq!(
        core.handle_message(
            ms(5),
            member(1),
            Body::Accept {
                base: base.clone(),
                ballot: ballot(1, 1),
                base_decided: None,
                decision: decided(&proposal, &[(0, 0), (0, 1), (0, 2)], &[]),
            }
        ),
        vec![
            // Recorded (by a shell with a data directory) before the `Accepted` leaves.
            MembershipOutput::ViewAccepted(AcceptedView {
                base: base.id,
                view: proposal.clone(),
            }),
            send(
                1,
                Body::Accepted {
                    base: base.id,
                    ballot: ballot(1, 1)
                }
            )
        ]
    );
    // The next-oldest member, suspecting the coordinator, learns of the accepted value.
    assert_eq!(
        core.handle_message(
            ms(6),
            member(3),
            Body::Prepare {
                base: base.clone(),
                ballot: ballot(2, 3),
                base_decided: None,
            }
        ),
        vec![send(
            3,
            Body::Promise {
                base: base.id,
                ballot: ballot(2, 3),
                accepted: Some((
                    ballot(1, 1),
                    decided(&proposal, &[(0, 0), (0, 1), (0, 2)], &[])
                )),
                report: FlushReport {
                    received: vec![
                        crate::wire::Seq(0),
                        crate::wire::Seq(0),
                        crate::wire::Seq(0)
                    ],
                    ready: false,
                },
            }
        )]
    );
    assert_eq!(
        core.handle_message(
            ms(7),
            member(1),
            Body::Prepare {
                base: base.clone(),
                ballot: ballot(1, 1),
                base_decided: None,
            }
        ),
        vec![send(
            1,
            Body::Rejected {
                base: base.id,
                promised: ballot(2, 3)
            }
        )]
    );
}

#[test]
fn without_a_holder_of_the_state_no_view_is_decided_and_the_block_is_reported() {
    // This process installed its view without the cut (it does not hold the state), and
    // neither does member 2: a view of the two would start from nothing.
    let base = view(3, &[1, 2, 3]);
    let mut core = core_with_view(1, &base);
    core.handle_suspect(ms(0), member(3).id);
    let promise = Body::Promise {
        base: base.id,
        ballot: ballot(1, 1),
        accepted: None,
        report: FlushReport {
            received: vec![
                crate::wire::Seq(0),
                crate::wire::Seq(0),
                crate::wire::Seq(0),
            ],
            ready: false,
        },
    };
    let out = core.handle_message(ms(1), member(2), promise);
    let accepts = |out: &[MembershipOutput]| {
        out.iter().any(|o| {
            matches!(
                o,
                MembershipOutput::Send {
                    body: Body::Accept { .. },
                    ..
                }
            )
        })
    };
    assert!(
        !accepts(&out),
        "a view without a holder was proposed: {out:?}"
    );
    // Not before the view change has been stuck for twice its timeout.
    assert_eq!(core.blocked(ms(100)), None);
    let blocked = core.blocked(ms(1000)).expect("blocked");
    assert_eq!(blocked.reason, BlockedReason::NoStateHolder);
    assert_eq!(blocked.view, Some(base.id));
    // Retried at the view change timeout, not at every tick, and still nothing decided.
    assert!(!accepts(&core.handle_tick(ms(20))));
}

#[test]
fn a_join_request_sent_before_the_base_does_not_make_a_holder_a_learner() {
    // Active seed 2025: the coordinator (1) lost its state in view 14 and asks for it again;
    // member 2 holds the state, but a join request it sent in view 11 reached the coordinator
    // late, forwarded by 3. Counting that request would leave the view with no holder.
    let base = view(14, &[1, 2, 3]);
    let promise = |ready: bool| {
        (
            None,
            FlushReport {
                received: vec![crate::wire::Seq(0); 3],
                ready,
            },
        )
    };
    let promises: proposer::Promises = [
        (member(1).id, promise(false)),
        (member(2).id, promise(true)),
    ]
    .into_iter()
    .collect();
    let decide = |member_2_last_epoch: u64| {
        let mut changes = Changes::default();
        changes.suspected.insert(member(3).id);
        changes.joins.insert(member(1).id, (member(1), 14));
        changes
            .joins
            .insert(member(2).id, (member(2), member_2_last_epoch));
        changes.decision(&group(), member(1).id, &base, &promises)
    };
    let decision = decide(11).expect("member 2 holds the state");
    assert_eq!(decision.view.voters(), &[member(2)]);
    assert_eq!(decision.joiners, vec![member(1).id]);
    // A request sent in the base itself asks for the state (a resync): member 2 is a learner,
    // and with no holder left nothing is decided.
    assert_eq!(decide(14), None);
}

/// The ballot of the first `Prepare` in `out`.
fn prepared(out: &[MembershipOutput]) -> Option<(ViewId, Ballot)> {
    out.iter().find_map(|o| match o {
        MembershipOutput::Send {
            body: Body::Prepare { base, ballot, .. },
            ..
        } => Some((base.id, *ballot)),
        _ => None,
    })
}

/// The decision of the first `Accept` in `out`.
fn accept_of(out: &[MembershipOutput]) -> Option<Decision> {
    out.iter().find_map(|o| match o {
        MembershipOutput::Send {
            body: Body::Accept { decision, .. },
            ..
        } => Some(decision.clone()),
        _ => None,
    })
}

/// A promise in the ballot of the prepare found in `out`, holding nothing of the base's
/// streams (`ranks` of them).
fn promise_to(out: &[MembershipOutput], ranks: usize, ready: bool) -> Body {
    let (base, ballot) = prepared(out).expect("a prepare");
    Body::Promise {
        base,
        ballot,
        accepted: None,
        report: FlushReport {
            received: vec![crate::wire::Seq(0); ranks],
            ready,
        },
    }
}

#[test]
fn a_proposer_whose_state_failed_after_its_promise_composes_itself_as_a_learner() {
    // Sim seed 5654: the coordinator promised while it held the state, its snapshot for a
    // joiner failed, and the view it then composed from its own earlier promise listed it as
    // the only voter, holding nothing. Its own state is known when it composes.
    let mut core = Membership::new(
        group(),
        member(1),
        vec![],
        founding(),
        MulticastConfig::default(),
    );
    core.handle_start(ms(0));
    let join = |n: u64| Body::JoinRequest {
        member: member(n),
        last_epoch: 0,
    };
    // 2 joins, gets the state and is promoted: view 3 [1, 2].
    core.handle_message(ms(5), member(2), join(2));
    let second = view_with_learners(2, &[1], &[2]);
    core.with_multicast(ms(6), |m, _| {
        m.handle_snapshot(second.id, bytes::Bytes::from_static(b"state"))
    });
    let out = core.handle_message(ms(7), member(2), Body::LearnerReady { view: second.id });
    let out = core.handle_message(ms(8), member(2), promise_to(&out, 2, true));
    assert_eq!(core.view().map(|v| v.id.epoch), Some(3), "{out:?}");
    // 3 joins; 1 provides its state: view 4 [1, 2, 3~].
    let out = core.handle_message(ms(10), member(3), join(3));
    let out = core.handle_message(ms(11), member(2), promise_to(&out, 2, true));
    let base = core.view().expect("view 3").id;
    let accepted_ballot = out
        .iter()
        .find_map(|o| match o {
            MembershipOutput::Send {
                body: Body::Accept { ballot, .. },
                ..
            } => Some(*ballot),
            _ => None,
        })
        .expect("accept");
    core.handle_message(
        ms(12),
        member(2),
        Body::Accepted {
            base,
            ballot: accepted_ballot,
        },
    );
    let fourth = core.view().cloned().expect("view 4");
    assert_eq!(fourth.id.epoch, 4);
    assert_eq!(fourth.voters(), &[member(1), member(2)]);
    // 4 asks to join: 1 promises while it holds the state, then the snapshot for 3 fails.
    let out = core.handle_message(ms(20), member(4), join(4));
    assert!(prepared(&out).is_some(), "{out:?}");
    core.with_multicast(ms(21), |m, _| m.handle_snapshot_failed(fourth.id));
    assert!(!core.multicast().holds_state());
    core.handle_message(ms(22), member(3), promise_to(&out, 3, false));
    let out = core.handle_message(ms(23), member(2), promise_to(&out, 3, true));
    let decision = accept_of(&out).unwrap_or_else(|| panic!("member 2 holds the state: {out:?}"));
    assert_eq!(decision.view.voters(), &[member(2)], "{decision:?}");
    assert!(decision.joiners.contains(&member(1).id), "{decision:?}");
}

#[test]
fn a_member_without_a_majority_of_voters_reports_whom_it_waits_for() {
    let base = view(3, &[1, 2, 3]);
    let mut core = core_with_view(1, &base);
    core.handle_suspect(ms(0), member(2).id);
    core.handle_suspect(ms(0), member(3).id);
    let blocked = core.blocked(ms(900)).expect("blocked");
    assert_eq!(
        blocked.reason,
        BlockedReason::NoMajority {
            voters: vec![member(1).id, member(2).id, member(3).id],
            reachable: vec![member(1).id],
            needed: 2,
        }
    );
}

#[test]
fn an_outbid_proposer_backs_off_and_defers_to_an_older_one() {
    // Member 2 suspects the coordinator and proposes; member 1 (older) is alive and
    // proposing too, and outbids it. Retrying at once would outbid 1 in turn, forever.
    let base = view(3, &[1, 2, 3]);
    let mut core = core_with_view(2, &base);
    let out = core.handle_suspect(ms(0), member(1).id);
    assert!(out.iter().any(|o| matches!(
        o,
        MembershipOutput::Send {
            body: Body::Prepare { .. },
            ..
        }
    )));
    core.handle_message(
        ms(10),
        member(3),
        Body::Rejected {
            base: base.id,
            promised: ballot(5, 1),
        },
    );
    let prepares = |out: &[MembershipOutput]| {
        out.iter()
            .filter_map(|o| match o {
                MembershipOutput::Send {
                    body: Body::Prepare { ballot, .. },
                    ..
                } => Some(ballot.round),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    // A quarter timeout plus a whole one for deferring to the older member, at least.
    let mut first_retry = None;
    for t in (20..1400).step_by(20) {
        let rounds = prepares(&core.handle_tick(ms(t)));
        if !rounds.is_empty() {
            assert!(
                rounds.iter().all(|r| *r > Round(5)),
                "above the ballot that won: {rounds:?}"
            );
            first_retry = Some(t);
            break;
        }
    }
    let t = first_retry.expect("it retries in the end (1 may be gone after all)");
    assert!((510..=710).contains(&t), "retried at {t} ms");
}

#[test]
fn a_holder_waits_for_the_decision_of_a_view_it_hears_of_without_one() {
    let mut core = Membership::new(
        group(),
        member(1),
        vec![],
        founding(),
        MulticastConfig::default(),
    );
    core.handle_start(ms(0));
    assert!(core.multicast().holds_state());
    let installed = |out: &[MembershipOutput]| {
        out.iter()
            .any(|o| matches!(o, MembershipOutput::ViewInstalled(_)))
    };
    // A member that installed the next view without its cut says it is stale: installing
    // it the same way would drop the state this process holds.
    let next = view(2, &[1, 2]);
    let out = core.handle_message(ms(10), member(2), Body::Stale { view: next.clone() });
    assert!(!installed(&out), "{out:?}");
    assert!(core.multicast().holds_state());
    // The decision arrives (resent on a heartbeat): the view is installed with its cut.
    let mut waiting = core;
    let out = waiting.handle_message(
        ms(20),
        member(2),
        Body::Install {
            base: Some(view(1, &[1]).id),
            ballot: ballot(1, 1),
            decision: decided(&next, &[(0, 0)], &[2]),
        },
    );
    assert!(installed(&out), "{out:?}");
    assert!(waiting.multicast().is_ready(), "a survivor keeps the state");

    // Without a decision within a view change timeout, the view is installed without.
    let mut core = Membership::new(
        group(),
        member(1),
        vec![],
        founding(),
        MulticastConfig::default(),
    );
    core.handle_start(ms(0));
    core.handle_message(ms(10), member(2), Body::Stale { view: next.clone() });
    let timeout = MembershipConfig::default().view_change_timeout;
    assert!(!installed(&core.handle_tick(ms(10) + timeout / 2)));
    assert!(installed(&core.handle_tick(ms(10) + timeout)));
    assert_eq!(core.view(), Some(&next));
    assert!(core.multicast().needs_resync());

    // As the heard-of view's only voter it never installs it without the decision (ring seed
    // 13154): it would leave the group with no holder. The decision still installs it.
    let alone = view_with_learners(2, &[1], &[2]);
    let mut core = Membership::new(
        group(),
        member(1),
        vec![],
        founding(),
        MulticastConfig::default(),
    );
    core.handle_start(ms(0));
    core.handle_message(
        ms(10),
        member(2),
        Body::Stale {
            view: alone.clone(),
        },
    );
    for waited in 1..=10 {
        assert!(!installed(&core.handle_tick(ms(10) + timeout * waited)));
    }
    assert!(core.multicast().holds_state());
    let out = core.handle_message(
        ms(10) + timeout * 11,
        member(2),
        Body::Install {
            base: Some(view(1, &[1]).id),
            ballot: ballot(1, 1),
            decision: decided(&alone, &[(0, 0)], &[2]),
        },
    );
    assert!(installed(&out), "{out:?}");
    assert!(
        core.multicast().is_ready(),
        "the only voter keeps the state"
    );
}

#[test]
fn a_proposer_ignores_a_value_no_majority_of_voters_can_have_accepted() {
    let base = view(3, &[1, 2, 3]);
    let mut core = core_with_view(2, &base);
    core.handle_suspect(ms(5), member(1).id);
    // Every voter promises: only member 1 accepted the earlier value (the old
    // coordinator's own acceptance), so it was never chosen and need not be followed.
    let earlier = decided(&view(4, &[1, 2, 3, 4]), &[(5, 0), (0, 1), (0, 2)], &[4]);
    let promise = |accepted: Option<(Ballot, Decision)>| Body::Promise {
        base: base.id,
        ballot: ballot(1, 2),
        accepted,
        report: FlushReport {
            received: vec![
                crate::wire::Seq(5),
                crate::wire::Seq(0),
                crate::wire::Seq(0),
            ],
            ready: true,
        },
    };
    let out = core.handle_message(
        ms(6),
        member(1),
        promise(Some((ballot(1, 1), earlier.clone()))),
    );
    assert!(out.is_empty(), "waits for the trusted member 3: {out:?}");
    let out = core.handle_message(ms(7), member(3), promise(None));
    let proposed: Vec<&Decision> = out
        .iter()
        .filter_map(|o| match o {
            MembershipOutput::Send {
                body: Body::Accept { decision, .. },
                ..
            } => Some(decision),
            _ => None,
        })
        .collect();
    assert_eq!(proposed.len(), 2, "{out:?}");
    assert!(proposed
        .iter()
        .all(|d| **d != earlier && d.view.id.epoch == 4));
}

#[test]
fn a_proposer_adopts_a_value_already_accepted() {
    let base = view(3, &[1, 2, 3]);
    let mut core = core_with_view(2, &base);
    core.handle_suspect(ms(5), member(1).id);
    // Its own promise is in; member 3 reports a value accepted under the old coordinator.
    let earlier = decided(&view(4, &[1, 2, 3, 4]), &[(5, 0), (0, 1), (0, 2)], &[4]);
    let out = core.handle_message(
        ms(6),
        member(3),
        Body::Promise {
            base: base.id,
            ballot: ballot(1, 2),
            accepted: Some((ballot(1, 1), earlier.clone())),
            report: FlushReport {
                received: vec![
                    crate::wire::Seq(5),
                    crate::wire::Seq(0),
                    crate::wire::Seq(0),
                ],
                ready: true,
            },
        },
    );
    assert_eq!(
        out[..2],
        [
            send(
                1,
                Body::Accept {
                    base: base.clone(),
                    ballot: ballot(1, 2),
                    base_decided: None,
                    decision: earlier.clone(),
                }
            ),
            send(
                3,
                Body::Accept {
                    base: base.clone(),
                    ballot: ballot(1, 2),
                    base_decided: None,
                    decision: earlier,
                }
            ),
        ]
    );
}

#[test]
fn a_view_without_this_process_excludes_it_and_it_joins_again() {
    let base = view(3, &[1, 2, 3]);
    let mut core = core_with_view(3, &base);
    let out = core.handle_message(
        ms(5),
        member(1),
        Body::Install {
            base: Some(base.id),
            ballot: ballot(1, 1),
            decision: decided(&view(4, &[1, 2]), &[(0, 0), (0, 1), (0, 2)], &[]),
        },
    );
    assert_eq!(
        out,
        vec![MembershipOutput::Excluded {
            by: Some(view(4, &[1, 2]).id)
        }]
    );
    assert!(matches!(core.status(), Status::Joining { .. }));
    assert_eq!(core.last_epoch(), 4);
}

#[test]
fn a_message_about_an_older_view_gets_the_newer_one() {
    let current = view(5, &[1, 2, 3]);
    let mut core = core_with_view(2, &current);
    let out = core.handle_message(
        ms(5),
        member(3),
        Body::Prepare {
            base: view(4, &[3, 2]),
            ballot: ballot(1, 3),
            base_decided: None,
        },
    );
    assert_eq!(
        out,
        vec![send(
            3,
            Body::Stale {
                view: current.clone()
            }
        )]
    );
    assert_eq!(
        core.handle_peer_view(member(3), view(4, &[3, 2]).id),
        vec![send(3, Body::Stale { view: current })]
    );
}

#[test]
fn a_process_whose_leave_timed_out_says_so_and_is_not_waited_for_as_coordinator() {
    let v = view(4, &[1, 2, 3]);
    // The coordinator leaves, nothing reaches it, and its leave times out.
    let mut leaver = core_with_view(1, &v);
    leaver.handle_leave(ms(10));
    let timeout = MembershipConfig::default().leave_timeout;
    assert!(leaver
        .handle_tick(ms(10) + timeout)
        .contains(&MembershipOutput::Left));
    // A member whose heartbeat still lists it in that view is told it left.
    let left = Body::LeaveRequest {
        member: member(1).id,
    };
    assert_eq!(
        leaver.handle_peer_view(member(3), v.id),
        vec![send(3, left.clone())]
    );
    // Member 3 suspects 2 and takes 1 (it answers probes) for its coordinator.
    let mut other = core_with_view(3, &v);
    other.handle_suspect(ms(20), member(2).id);
    assert_eq!(other.acting_coordinator(), Some(&member(1)));
    // A leave request about 1 forwarded by someone else is passed on, nothing more.
    let out = other.handle_message(ms(30), member(2), left.clone());
    assert_eq!(out, vec![send(1, left.clone())]);
    assert_eq!(other.acting_coordinator(), Some(&member(1)));
    // From 1 itself it means 1 gave up: 3 stops waiting for it and proposes the view
    // without it.
    let out = other.handle_message(ms(40), member(1), left);
    assert_eq!(other.acting_coordinator(), Some(&member(3)));
    assert!(out.iter().any(|o| matches!(
        o,
        MembershipOutput::Send {
            body: Body::Prepare { .. },
            ..
        }
    )));
}

#[test]
fn a_graceful_leave_of_the_coordinator_installs_the_view_without_it() {
    let base = view(3, &[1, 2, 3]);
    let mut core = core_with_view(1, &base);
    let out = core.handle_leave(ms(5));
    assert_eq!(
        out,
        vec![
            send(
                2,
                Body::Prepare {
                    base: base.clone(),
                    ballot: ballot(1, 1),
                    base_decided: None,
                }
            ),
            send(
                3,
                Body::Prepare {
                    base: base.clone(),
                    ballot: ballot(1, 1),
                    base_decided: None,
                }
            ),
        ]
    );
    for n in [2, 3] {
        core.handle_message(
            ms(6),
            member(n),
            Body::Promise {
                base: base.id,
                ballot: ballot(1, 1),
                accepted: None,
                report: FlushReport {
                    received: vec![
                        crate::wire::Seq(0),
                        crate::wire::Seq(0),
                        crate::wire::Seq(0),
                    ],
                    ready: true,
                },
            },
        );
    }
    let out = core.handle_message(
        ms(7),
        member(3),
        Body::Accepted {
            base: base.id,
            ballot: ballot(1, 1),
        },
    );
    assert_eq!(out.last(), Some(&MembershipOutput::Left));
    assert_eq!(core.status(), &Status::Left);
}

/// Process `me` restarted (incarnation 2, same address) after a total failure, recovering
/// `position` with `last` as its last installed view; its seeds are the others of that view.
fn recovering(me: u64, last: &View, position: u64) -> Membership {
    recovering_started(me, last, position).0
}

/// Like [`recovering`], with what the start sent.
fn recovering_started(me: u64, last: &View, position: u64) -> (Membership, Vec<MembershipOutput>) {
    recovering_with(me, last, None, position)
}

/// Like [`recovering_started`], having also recorded accepting `accepted` (a view after
/// `last`) before the failure.
fn recovering_with(
    me: u64,
    last: &View,
    accepted: Option<AcceptedView>,
    position: u64,
) -> (Membership, Vec<MembershipOutput>) {
    let restarted = Member {
        id: ProcessId {
            node: NodeId(me),
            incarnation: Incarnation(2),
        },
        addr: member(me).addr,
    };
    let seeds = last.members.iter().map(|m| m.addr).collect();
    let mut core = Membership::new(
        group(),
        restarted,
        seeds,
        MembershipConfig::default(),
        MulticastConfig::default(),
    );
    core.set_recovery(Some(RecoveryClaim {
        last_view: last.clone(),
        accepted,
        position,
    }));
    let out = core.handle_start(ms(0));
    (core, out)
}

/// The claims `core` sent (to whom, and whether an answer is asked for).
fn claims_sent(out: &[MembershipOutput]) -> Vec<(SocketAddr, bool)> {
    out.iter()
        .filter_map(|o| match o {
            MembershipOutput::Send {
                to,
                body: Body::Recovering { answer, .. },
            } => Some((*to, *answer)),
            _ => None,
        })
        .collect()
}

#[test]
fn after_a_total_failure_the_most_advanced_of_a_majority_of_the_last_view_re_forms_it() {
    let last = view(7, &[1, 2, 3]);
    let (mut a, out) = recovering_started(1, &last, 40);
    let mut b = recovering(2, &last, 55);
    // Each asks the others of its last view to let it join, with its claim.
    assert_eq!(
        claims_sent(&out),
        vec![(member(2).addr, true), (member(3).addr, true)]
    );
    // Alone for longer than the bootstrap timeout: one of three is no majority, so it waits,
    // and says for what.
    assert!(a
        .handle_tick(ms(3_000))
        .iter()
        .all(|o| !matches!(o, MembershipOutput::ViewInstalled(_))));
    match a.blocked(ms(3_000)).map(|b| b.reason) {
        Some(BlockedReason::AwaitingLastView {
            view,
            voters,
            back,
            needed,
        }) => {
            assert_eq!(view, last.id);
            assert_eq!(voters, vec![NodeId(1), NodeId(2), NodeId(3)]);
            assert_eq!((back, needed), (vec![NodeId(1)], 2));
        }
        other => panic!("blocked on the last view, not {other:?}"),
    }
    // The two exchange claims: b, asked, answers with its own.
    let claim = |core: &Membership| core.recovery.clone().unwrap();
    let b_from = Member {
        id: b.me.id,
        addr: b.me.addr,
    };
    let a_from = Member {
        id: a.me.id,
        addr: a.me.addr,
    };
    // a, alone, bid: its claim was the best it knew of.
    assert_eq!(
        a.joiner.vote(),
        RecoveryVote {
            round: 1,
            bidding: true,
            backs: Some((a.me.id, 1))
        }
    );
    let out = b.handle_message(
        ms(3_001),
        a_from,
        Body::Recovering {
            claim: claim(&a),
            answer: true,
            vote: a.joiner.vote(),
        },
    );
    assert_eq!(claims_sent(&out), vec![(member(1).addr, false)]);
    // b holds more (55 > 40): it bids.
    let b_vote = b.joiner.vote();
    assert!(b_vote.bidding && b_vote.backs == Some((b.me.id, b_vote.round)));
    a.handle_message(
        ms(3_002),
        b_from,
        Body::Recovering {
            claim: claim(&b),
            answer: false,
            vote: b_vote,
        },
    );
    // a's bid ends, and a backs b's.
    assert_eq!(a.joiner.vote().backs, Some((b.me.id, b_vote.round)));
    assert!(!a.joiner.vote().bidding);
    // Two of three are back. a holds less (40 < 55): it waits for b to re-form the group.
    let out = a.handle_tick(ms(3_100));
    assert!(
        out.iter()
            .all(|o| !matches!(o, MembershipOutput::ViewInstalled(_))),
        "{out:?}"
    );
    // b has heard a's claim but not yet that a backs it: not yet.
    let out = b.handle_tick(ms(3_050));
    assert!(
        out.iter()
            .all(|o| !matches!(o, MembershipOutput::ViewInstalled(_))),
        "{out:?}"
    );
    b.handle_message(
        ms(3_060),
        a_from,
        Body::Recovering {
            claim: claim(&a),
            answer: false,
            vote: a.joiner.vote(),
        },
    );
    // b, the most advanced and backed by a majority, re-forms it at the next epoch, alone,
    // from its own state.
    let out = b.handle_tick(ms(3_100));
    let installed: Vec<&ViewChange> = out
        .iter()
        .filter_map(|o| match o {
            MembershipOutput::ViewInstalled(change) => Some(change),
            _ => None,
        })
        .collect();
    assert_eq!(installed.len(), 1, "{out:?}");
    assert_eq!(installed[0].view.id.epoch, 8);
    assert_eq!(installed[0].view.members, vec![b_from]);
}

#[test]
fn a_recovering_process_never_re_forms_a_group_a_member_answered_for() {
    let last = view(7, &[1, 2, 3]);
    let mut a = recovering(1, &last, 90);
    let mut b = recovering(2, &last, 10);
    let b_from = Member {
        id: b.me.id,
        addr: b.me.addr,
    };
    a.handle_message(
        ms(5),
        b_from,
        Body::Recovering {
            claim: b.recovery.clone().unwrap(),
            answer: false,
            vote: RecoveryVote::default(),
        },
    );
    // A live member answers the join request with its view: the group exists.
    let live = view(9, &[3]);
    a.handle_message(
        ms(6),
        member(3),
        Body::DiscoverReply {
            view: Some(live.clone()),
        },
    );
    for t in [1_000, 3_000, 10_000] {
        let out = a.handle_tick(ms(t));
        assert!(
            out.iter()
                .all(|o| !matches!(o, MembershipOutput::ViewInstalled(_))),
            "never a second group beside the live one: {out:?}"
        );
    }
    // And a process without a claim never answers claims (it is not recovering).
    let mut plain = Membership::new(
        group(),
        member(4),
        vec![member(1).addr],
        MembershipConfig::default(),
        MulticastConfig::default(),
    );
    plain.handle_start(ms(0));
    let out = plain.handle_message(
        ms(1),
        b_from,
        Body::Recovering {
            claim: b.recovery.clone().unwrap(),
            answer: true,
            vote: RecoveryVote::default(),
        },
    );
    assert_eq!(out, vec![]);
    let _ = b.handle_tick(ms(1));
}

/// `from`'s claim and vote, as it sends them, handed to `to` at `t`.
fn hear_claim(to: &mut Membership, from: &Membership, t: u64) {
    let member = Member {
        id: from.me.id,
        addr: from.me.addr,
    };
    let body = Body::Recovering {
        claim: from.recovery.clone().unwrap(),
        answer: false,
        vote: from.joiner.vote(),
    };
    to.handle_message(ms(t), member, body);
}

fn re_formed(out: &[MembershipOutput]) -> bool {
    out.iter()
        .any(|o| matches!(o, MembershipOutput::ViewInstalled(_)))
}

/// Seed 72 of the total-failure sweep, reduced: a claimant whose outgoing links are cut hears
/// a majority of the last view's voters and holds the best claim among them, but they never
/// heard it, so none backs it and it does not re-form; the next best, heard by them, re-forms
/// with their backing. (Counting claims alone, both re-formed: two groups.)
#[test]
fn a_claimant_the_others_never_heard_does_not_re_form_beside_the_one_they_back() {
    let last = view(7, &[1, 2, 3, 4]);
    let mut c = recovering(3, &last, 50);
    let mut d = recovering(4, &last, 50);
    let mut b = recovering(2, &last, 30);
    // Alone past the bootstrap timeout, each bids.
    for core in [&mut c, &mut d, &mut b] {
        assert!(!re_formed(&core.handle_tick(ms(1_500))));
        assert!(core.joiner.vote().bidding);
    }
    // d and b hear each other: b's bid ends and it backs d's; d is backed by two of four.
    hear_claim(&mut b, &d, 1_600);
    assert_eq!(b.joiner.vote().backs, Some((d.me.id, 1)));
    hear_claim(&mut d, &b, 1_610);
    assert!(!re_formed(&d.handle_tick(ms(1_700))));
    // c hears both (three of four voters back) and holds the best claim (50, then node 3
    // before node 4), but nobody backs it.
    hear_claim(&mut c, &d, 1_620);
    hear_claim(&mut c, &b, 1_630);
    assert!(c.joiner.vote().bidding);
    assert!(!re_formed(&c.handle_tick(ms(1_700))));
    // Node 1 restarts with the best claim; d and b hear it.
    let mut a = recovering(1, &last, 50);
    assert!(!re_formed(&a.handle_tick(ms(1_700))));
    hear_claim(&mut d, &a, 1_710);
    // d's bid ends: it backs a's. b still backs d's bid until it hears that bid ended.
    assert_eq!(d.joiner.vote().backs, Some((a.me.id, 1)));
    hear_claim(&mut b, &a, 1_720);
    assert_eq!(b.joiner.vote().backs, Some((d.me.id, 1)));
    hear_claim(&mut b, &d, 1_730);
    assert_eq!(b.joiner.vote().backs, Some((a.me.id, 1)));
    hear_claim(&mut a, &d, 1_740);
    assert!(!re_formed(&a.handle_tick(ms(1_750))), "two of four");
    hear_claim(&mut a, &b, 1_760);
    assert!(re_formed(&a.handle_tick(ms(1_800))));
    // c, still cut off and bidding, never gets a backer.
    for t in [2_000, 2_500, 3_000] {
        hear_claim(&mut c, &d, t - 10);
        hear_claim(&mut c, &b, t - 5);
        assert!(!re_formed(&c.handle_tick(ms(t))));
    }
}

/// Every claimant hears every other's claim and vote (twice, so that backing settles), then
/// each ticks at `t`; returns which re-formed, with the view.
fn exchange_and_tick(cores: &mut [&mut Membership], t: u64) -> Vec<(NodeId, View)> {
    for round in 0..2 {
        for i in 0..cores.len() {
            for j in 0..cores.len() {
                if i != j {
                    let (from, to) = if i < j {
                        let (left, right) = cores.split_at_mut(j);
                        (&*left[i], &mut *right[0])
                    } else {
                        let (left, right) = cores.split_at_mut(i);
                        (&*right[0], &mut *left[j])
                    };
                    hear_claim(to, from, t - 10 + round);
                }
            }
        }
    }
    let mut re_formed = Vec::new();
    for core in cores.iter_mut() {
        for output in core.handle_tick(ms(t)) {
            if let MembershipOutput::ViewInstalled(change) = output {
                re_formed.push((core.me.id.node, change.view));
            }
        }
    }
    re_formed
}

/// Seeds 1298, 2949, 3710 and 3834 of the total-failure sweep, reduced: view 8 (nodes 1 to 5)
/// was decided by the acceptances of nodes 1 and 2 of view 7 (nodes 1 to 3), which crashed
/// before installing it; nodes 3, 4 and 5 installed it and acknowledged updates there. After
/// the total failure, nodes 1 and 2 are a majority of the last view they installed, but
/// view 8 may be the last: they wait for a majority of its voters.
#[test]
fn a_view_accepted_after_the_last_installed_one_needs_its_own_majority() {
    let last = view(7, &[1, 2, 3]);
    let next = view(8, &[1, 2, 3, 4, 5]);
    let accepted = Some(AcceptedView {
        base: last.id,
        view: next.clone(),
    });
    let mut a = recovering_with(1, &last, accepted.clone(), 40).0;
    let mut b = recovering_with(2, &last, accepted, 30).0;
    for core in [&mut a, &mut b] {
        assert!(!re_formed(&core.handle_tick(ms(1_500))));
    }
    assert_eq!(exchange_and_tick(&mut [&mut a, &mut b], 1_600), vec![]);
    match a.blocked(ms(1_650)).map(|b| b.reason) {
        Some(BlockedReason::AwaitingLastView {
            view, back, needed, ..
        }) => {
            assert_eq!(view, next.id);
            assert_eq!((back, needed), (vec![NodeId(1), NodeId(2)], 3));
        }
        other => panic!("blocked on the view accepted, not {other:?}"),
    }
    // Node 4 comes back: it installed view 8, which is now the last view; three of its five
    // voters are back, and node 4 (which holds the most) re-forms after it.
    let mut d = recovering_with(4, &next, None, 50).0;
    assert!(!re_formed(&d.handle_tick(ms(1_600))));
    let re_formed = exchange_and_tick(&mut [&mut a, &mut b, &mut d], 1_700);
    assert_eq!(re_formed.len(), 1, "{re_formed:?}");
    assert_eq!(re_formed[0].0, NodeId(4));
    assert_eq!(re_formed[0].1.id.epoch, 9);
}

/// The filter of views accepted after the last installed one: a view that a majority of the
/// last view's voters says they did not accept was never decided, and is not waited for; the
/// group re-forms after its epoch all the same.
#[test]
fn a_view_accepted_by_a_minority_is_not_waited_for() {
    let last = view(7, &[1, 2, 3]);
    let next = view(8, &[1, 2, 3, 4, 5]);
    let accepted = Some(AcceptedView {
        base: last.id,
        view: next.clone(),
    });
    let mut a = recovering_with(1, &last, accepted, 40).0;
    let mut b = recovering_with(2, &last, None, 30).0;
    for core in [&mut a, &mut b] {
        assert!(!re_formed(&core.handle_tick(ms(1_500))));
    }
    // With node 3 unheard from, view 8 may have been decided (nodes 1 and 3 could have
    // accepted it): wait.
    assert_eq!(exchange_and_tick(&mut [&mut a, &mut b], 1_600), vec![]);
    // Node 3 says it did not: only node 1 accepted view 8, which was never decided.
    let mut c = recovering_with(3, &last, None, 20).0;
    assert!(!re_formed(&c.handle_tick(ms(1_600))));
    let re_formed = exchange_and_tick(&mut [&mut a, &mut b, &mut c], 1_700);
    assert_eq!(re_formed.len(), 1, "{re_formed:?}");
    assert_eq!(re_formed[0].0, NodeId(1));
    assert_eq!(re_formed[0].1.id.epoch, 9, "after every epoch known");
}

/// The `Suspicions` reports `core` sent.
fn reports(out: &[MembershipOutput]) -> Vec<(SocketAddr, Vec<ProcessId>)> {
    out.iter()
        .filter_map(|o| match o {
            MembershipOutput::Send {
                to,
                body: Body::Suspicions { suspects, .. },
            } => Some((*to, suspects.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn in_a_view_watched_as_a_ring_a_member_reports_its_suspicions_to_the_coordinator() {
    let base = view(3, &[1, 2, 3, 4, 5, 6, 7, 8, 9]);
    // Watched all-to-all (the default), the coordinator notices by itself: nothing to report.
    let mut all_to_all = core_with_view(5, &base);
    assert_eq!(all_to_all.handle_suspect(ms(10), member(4).id), vec![]);
    // Nine members watched by two each: member 5 watches 4 and 3, the coordinator does not.
    let mut core = core_with_view(5, &base);
    core.set_monitors(2);
    assert_eq!(
        core.handle_suspect(ms(10), member(4).id),
        vec![send(
            1,
            Body::Suspicions {
                base: base.id,
                suspects: vec![member(4).id],
            }
        )]
    );
    // Repeated every retry interval while it stands, with every suspect of the view.
    assert_eq!(reports(&core.handle_tick(ms(100))), vec![]);
    core.handle_suspect(ms(150), member(3).id);
    assert_eq!(
        reports(&core.handle_tick(ms(400))),
        vec![(member(1).addr, vec![member(3).id, member(4).id])]
    );
    // Suspecting the coordinator itself: the report goes to the next in line, without the
    // coordinator (every member watches it and decides for itself).
    assert_eq!(
        reports(&core.handle_suspect(ms(500), member(1).id)),
        vec![(member(2).addr, vec![member(3).id, member(4).id])]
    );
    // Nothing left to report once the suspicions are withdrawn.
    for n in [1, 3, 4] {
        core.handle_unsuspect(ms(600), member(n).id);
    }
    assert_eq!(reports(&core.handle_tick(ms(1000))), vec![]);
}

#[test]
fn a_coordinator_proposes_a_view_without_a_reported_suspect() {
    let base = view(3, &[1, 2, 3, 4, 5, 6, 7, 8, 9]);
    let mut core = core_with_view(1, &base);
    core.set_monitors(2);
    let report = |from_view: ViewId, suspect: u64| Body::Suspicions {
        base: from_view,
        suspects: vec![member(suspect).id, member(1).id],
    };
    // Reports from outside the view, or about another view, change nothing.
    assert_eq!(
        core.handle_message(ms(10), member(12), report(base.id, 4)),
        vec![]
    );
    let other = view(2, &[1, 2, 3, 4, 5, 6, 7, 8, 9]).id;
    assert_eq!(
        core.handle_message(ms(10), member(5), report(other, 4)),
        vec![]
    );
    assert!(!core.suspects(member(4).id));
    // A member's report starts the view change; the coordinator never suspects itself.
    let out = core.handle_message(ms(20), member(5), report(base.id, 4));
    let prepared: Vec<SocketAddr> = out
        .iter()
        .filter_map(|o| match o {
            MembershipOutput::Send {
                to,
                body: Body::Prepare { .. },
            } => Some(*to),
            _ => None,
        })
        .collect();
    assert_eq!(
        prepared,
        (2..=9).map(|n| member(n).addr).collect::<Vec<_>>()
    );
    assert!(core.suspects(member(4).id) && !core.suspects(member(1).id));
}

#[test]
fn a_reported_suspect_counts_for_one_view_change_and_is_then_left_alone_for_a_while() {
    let members = [1, 2, 3, 4, 5, 6, 7, 8, 9];
    let base = view(3, &members);
    let mut core = core_with_view(1, &base);
    core.set_monitors(2);
    let report = |suspect: u64| Body::Suspicions {
        base: base.id,
        suspects: vec![member(suspect).id],
    };
    core.handle_message(ms(20), member(5), report(4));
    core.handle_suspect(ms(20), member(7).id);
    assert!(core.suspects(member(4).id) && core.suspects(member(7).id));
    // A view change keeps both (they promised): the report is spent, this process's own
    // suspicion stands until its detector hears from 7.
    core.changes.settle(ms(100), &view(4, &members));
    assert!(!core.suspects(member(4).id) && core.suspects(member(7).id));
    // Reports about the kept member are ignored for a second, then count again.
    assert_eq!(core.handle_message(ms(600), member(5), report(4)), vec![]);
    assert!(!core.suspects(member(4).id));
    core.handle_message(ms(1100), member(5), report(4));
    assert!(core.suspects(member(4).id));
}
