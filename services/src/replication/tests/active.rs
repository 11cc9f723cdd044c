//! Active replication: execution in delivery order everywhere, answers by the member a
//! request reached once durable, duplicates, view changes, local reads, recovery.

use std::collections::BTreeMap;

use bytes::Bytes;
use viewsync::runtime::ServiceEvent;
use viewsync::wire::{BusyReason, Refusal};
use viewsync::ViewId;

use super::{assert_same_snapshots, group, pid, refusal, Harness, SharedLog};
use crate::replication::active::{ActiveConfig, ActiveReads, ActiveReplica};
use crate::replication::store::Recovered;
use crate::replication::{ReplicaCore, Reply, RequestId};
use crate::state_machine::kv::{KvOp, KvOutput, KvStore};

fn config(n: u64, tweak: &dyn Fn(&mut ActiveConfig)) -> ActiveConfig {
    let mut config = ActiveConfig::new(pid(n), group(), "kv");
    tweak(&mut config);
    config
}

/// Replicas `nodes` in one view, empty logs.
fn cluster(
    nodes: &[u64],
    tweak: impl Fn(&mut ActiveConfig),
) -> (Harness<ActiveReplica<KvStore>>, BTreeMap<u64, SharedLog>) {
    let logs: BTreeMap<u64, SharedLog> = nodes.iter().map(|&n| (n, SharedLog::default())).collect();
    let cores = nodes.iter().map(|&n| {
        let core = ActiveReplica::recover(
            config(n, &tweak),
            Box::new(logs[&n].clone()),
            Recovered::default(),
        )
        .expect("an empty log recovers");
        (n, core)
    });
    let mut h = Harness::new("kv", cores, |core: &ActiveReplica<KvStore>| {
        assert_eq!(
            core.stats().waiters,
            core.recount_waiters(),
            "the count of held requests drifted"
        );
    });
    h.install(nodes, None);
    (h, logs)
}

/// Every live replica in a view holds the same state, position and executed table.
fn assert_same_state(h: &Harness<ActiveReplica<KvStore>>) {
    assert_same_snapshots(h, |r| r.view().is_some());
}

#[test]
fn every_member_executes_in_delivery_order_and_the_receiver_answers_once_durable() {
    let (mut h, _) = cluster(&[1, 2, 3], |_| {});
    // Two clients at two members, concurrently: the total order decides.
    let a = h.request(2, 7, 1, KvOp::cas("k", None, "a"), 0);
    let b = h.request(3, 8, 1, KvOp::cas("k", None, "b"), 0);
    assert_eq!(h.in_flight(), 2);
    assert!(h.reply(a).is_none() && h.reply(b).is_none());
    assert_eq!(
        h.node(1).state().value("k"),
        None,
        "nothing runs at arrival"
    );
    h.deliver_all();
    for n in 1..=3 {
        assert_eq!(h.node(n).committed_index(), 2);
        assert_eq!(h.node(n).state().value("k"), Some("a"));
    }
    assert!(
        h.reply(a).is_none(),
        "answered before it was durable at a majority"
    );
    h.tick(2);
    h.route();
    assert!(h.reply(a).is_none(), "durable at one member of three");
    h.tick(1);
    h.route();
    let first: Reply<KvOutput> = h.ok(a);
    assert_eq!(
        (first.id, first.position, first.output),
        (RequestId { client: 7, seq: 1 }, 1, KvOutput::Swapped)
    );
    h.settle();
    let second: Reply<KvOutput> = h.ok(b);
    assert_eq!(
        (second.position, second.output),
        (
            2,
            KvOutput::CasMismatch {
                current: Some("a".into())
            }
        )
    );
    assert_same_state(&h);
}

#[test]
fn without_quorum_durability_a_request_is_answered_at_delivery() {
    let (mut h, _) = cluster(&[1, 2, 3], |c| c.quorum_durability = false);
    let w = h.request(3, 7, 1, KvOp::put("k", "v"), 0);
    assert!(h.reply(w).is_none());
    h.deliver_one();
    assert_eq!(h.ok::<KvOutput>(w).output, KvOutput::Written);
    // An ordered read is answered at its delivery too, at the position it read.
    let r = h.request(1, 8, 1, KvOp::get("k"), 0);
    assert!(
        h.reply(r).is_none(),
        "ordered reads wait for their delivery"
    );
    h.deliver_one();
    let read: Reply<KvOutput> = h.ok(r);
    assert_eq!(
        (read.position, read.output),
        (1, KvOutput::Value(Some("v".into())))
    );
    assert_eq!(h.node(1).committed_index(), 1, "a read takes no position");
}

#[test]
fn a_retransmission_multicast_by_two_members_is_executed_once_everywhere() {
    let (mut h, _) = cluster(&[1, 2, 3], |_| {});
    let first = h.request(1, 7, 1, KvOp::put("k", "v"), 0);
    // The front end timed out and sent the same id to member 2 (which multicasts it too),
    // and again to member 1 (where it is in flight: it waits with the first).
    let second = h.request(2, 7, 1, KvOp::put("k", "v"), 0);
    let third = h.request(1, 7, 1, KvOp::put("k", "v"), 0);
    assert_eq!(h.in_flight(), 2);
    h.settle();
    for to in [first, second, third] {
        let reply: Reply<KvOutput> = h.ok(to);
        assert_eq!((reply.position, reply.output), (1, KvOutput::Written));
    }
    for n in 1..=3 {
        let stats = h.node(n).stats();
        assert_eq!(stats.updates_applied, 1, "member {n} executed it twice");
        assert_eq!(stats.duplicate_deliveries, 1);
    }
    // Later still, at member 3: from the executed table, without a multicast.
    let fourth = h.request(3, 7, 1, KvOp::put("k", "v"), 0);
    assert_eq!(h.in_flight(), 0);
    assert_eq!(h.ok::<KvOutput>(fourth).position, 1);
    // An older request of a client that moved on is refused as superseded.
    h.request(3, 7, 2, KvOp::put("k", "w"), 0);
    h.settle();
    let old = h.request(2, 7, 1, KvOp::put("k", "v"), 0);
    assert!(matches!(refusal(&h, old), Refusal::Malformed(m) if m.contains("superseded")));
    assert_same_state(&h);
}

#[test]
fn a_cut_off_member_never_answers_from_a_stale_state() {
    let (mut h, _) = cluster(&[1, 2, 3], |_| {});
    h.request(1, 1, 1, KvOp::put("k", "old"), 0);
    h.settle();
    // Member 3 is cut off; the others move on and acknowledge a newer write.
    h.isolate(3);
    h.change_view(&[1, 2], None);
    let write = h.request(2, 1, 2, KvOp::put("k", "new"), 0);
    h.settle();
    assert_eq!(h.ok::<KvOutput>(write).position, 2);
    let stale = h.request(3, 2, 1, KvOp::get("k"), 0);
    for _ in 0..5 {
        h.settle();
        h.tick(3);
    }
    assert!(
        h.reply(stale).is_none(),
        "a member cut off answered an ordered read (it would have returned the old value)"
    );
}

#[test]
fn a_request_multicast_after_the_block_is_executed_in_the_next_view_by_every_member() {
    let (mut h, _) = cluster(&[1, 2, 3], |_| {});
    h.request(1, 1, 1, KvOp::put("k", "v1"), 0);
    h.settle();
    // The request reaches member 2's core before its Block does, the middleware's after:
    // the multicast goes out in the next view, where member 4 joins.
    h.nodes.insert(4, {
        ActiveReplica::recover(
            config(4, &|_| {}),
            Box::new(SharedLog::default()),
            Recovered::default(),
        )
        .unwrap()
    });
    h.late = true;
    let late = h.request(2, 2, 1, KvOp::put("k", "v2"), 0);
    h.late = false;
    h.change_view(&[1, 2, 3, 4], Some(1));
    assert_eq!(
        h.node(4).committed_index(),
        1,
        "the joiner got the boundary state"
    );
    h.settle();
    let reply: Reply<KvOutput> = h.ok(late);
    assert_eq!(reply.position, 2);
    for n in 1..=4 {
        assert_eq!(h.node(n).state().value("k"), Some("v2"), "member {n}");
    }
    assert_same_state(&h);
}

#[test]
fn a_multicast_never_delivered_is_refused_two_views_later() {
    let (mut h, _) = cluster(&[1, 2, 3], |_| {});
    let w = h.request(1, 7, 1, KvOp::put("k", "v"), 0);
    // Member 1 is cut off (its multicast lost), and the group moves on twice while it
    // keeps its view; its own view changes are what the core is told.
    h.isolate(1);
    let view = |epoch| ViewId {
        epoch,
        coordinator: pid(1),
    };
    for epoch in [10, 11] {
        assert!(h.reply(w).is_none());
        let change = viewsync::ViewChange::between(
            h.node(1).view(),
            viewsync::View::of_voters(
                group(),
                view(epoch),
                h.node(1).view().unwrap().members.clone(),
            ),
        );
        h.run(
            1,
            ServiceEvent::ViewChange {
                group: group(),
                change,
            },
        );
    }
    assert_eq!(refusal(&h, w), Refusal::Busy(BusyReason::ViewChange));
    assert_eq!(h.node(1).stats().lost_multicasts, 1);
}

#[test]
fn local_reads_wait_for_the_position_their_client_saw_and_are_not_ordered() {
    let (mut h, _) = cluster(&[1, 2, 3], |c| c.reads = ActiveReads::Local);
    // Member 3 is slow: it receives nothing for now.
    h.isolate(3);
    let w = h.request(1, 7, 1, KvOp::put("k", "v"), 0);
    h.deliver_all();
    h.tick_all();
    h.route();
    h.tick_all();
    let position = h.ok::<KvOutput>(w).position;
    // The same client at member 3: its read waits for what it saw.
    let own = h.request(3, 7, 2, KvOp::get("k"), position);
    assert!(h.reply(own).is_none());
    // Another client, with nothing seen: answered at once from member 3's stale state.
    let other = h.request(3, 8, 1, KvOp::get("k"), 0);
    assert_eq!(h.ok::<KvOutput>(other).output, KvOutput::Value(None));
    assert_eq!(h.in_flight(), 0, "local reads are not multicast");
    // Member 3 catches up (here by a delta, as when it rejoins).
    let view = ViewId {
        epoch: 9,
        coordinator: pid(1),
    };
    let snapshot = h.nodes.get_mut(&1).unwrap().snapshot_for(view);
    let delta = h.node(1).delta(view, 0).expect("the tail holds position 1");
    h.run(
        3,
        ServiceEvent::Restore {
            group: group(),
            view,
            state: delta,
            since: Some(0),
        },
    );
    assert_eq!(h.node(3).snapshot(), snapshot);
    // Restored state: held requests are refused (the front end retries), as at any
    // state transfer.
    assert_eq!(refusal(&h, own), Refusal::Busy(BusyReason::ViewChange));
    let again = h.request(3, 7, 2, KvOp::get("k"), position);
    assert_eq!(
        h.ok::<KvOutput>(again).output,
        KvOutput::Value(Some("v".into()))
    );
}

#[test]
fn local_reads_are_sequentially_consistent_but_not_linearizable() {
    use crate::history::{linearizability, sequential, History, SearchLimits, StateMachineModel};
    let (mut h, _) = cluster(&[1, 2, 3], |c| c.reads = ActiveReads::Local);
    h.isolate(3);
    let mut history: History<KvOp, KvOutput> = History::new();
    history.invoke(1, 1, KvOp::put("k", "1"), 1);
    let write = h.request(1, 1, 1, KvOp::put("k", "1"), 0);
    h.settle();
    history.ok(1, 1, h.ok::<KvOutput>(write).output, 2);
    history.invoke(2, 1, KvOp::get("k"), 3);
    let read = h.request(3, 2, 1, KvOp::get("k"), 0);
    let stale = h.ok::<KvOutput>(read).output;
    assert_eq!(stale, KvOutput::Value(None));
    history.ok(2, 1, stale, 4);
    let operations = history.operations().unwrap();
    let model = StateMachineModel::new(KvStore::new());
    assert!(linearizability::check(&model, &operations, SearchLimits::default()).is_violation());
    assert!(sequential::check(&model, &operations, SearchLimits::default()).is_consistent());
}

#[test]
fn refusals_before_the_view_while_blocked_and_when_overloaded() {
    let log = SharedLog::default();
    let core =
        ActiveReplica::<KvStore>::recover(config(1, &|_| {}), Box::new(log), Recovered::default())
            .unwrap();
    let mut h = Harness::new("kv", [(1, core)], |_: &ActiveReplica<KvStore>| {});
    let early = h.request(1, 7, 1, KvOp::get("k"), 0);
    assert_eq!(refusal(&h, early), Refusal::Busy(BusyReason::Joining));
    h.install(&[1], None);
    h.block();
    let blocked = h.request(1, 7, 1, KvOp::get("k"), 0);
    assert_eq!(refusal(&h, blocked), Refusal::Busy(BusyReason::ViewChange));

    let (mut h, _) = cluster(&[1, 2], |c| c.pending_max = 2);
    h.request(1, 1, 1, KvOp::put("a", "1"), 0);
    h.request(1, 2, 1, KvOp::put("b", "1"), 0);
    let third = h.request(1, 3, 1, KvOp::put("c", "1"), 0);
    assert_eq!(refusal(&h, third), Refusal::Busy(BusyReason::Overloaded));
    let malformed = h.raw_request(1, 4, Bytes::from_static(b"nonsense"));
    assert!(matches!(refusal(&h, malformed), Refusal::Malformed(_)));
}

#[test]
fn recovery_replays_the_log_and_a_delta_catches_a_restarted_member_up_exactly() {
    let (mut h, logs) = cluster(&[1, 2, 3], |c| c.snapshot_every = 4);
    let write = |h: &mut Harness<ActiveReplica<KvStore>>, at: u64, client: u64, k: u64| {
        let w = h.request(
            at,
            client,
            k,
            KvOp::put(format!("k{}", k % 3), format!("v{k}")),
            0,
        );
        h.settle();
        assert!(h.reply(w).is_some());
    };
    for k in 1..=6 {
        write(&mut h, 1 + k % 3, 10 + k % 2, k);
    }
    drop(h.crash(3));
    h.change_view(&[1, 2], None);
    for k in 7..=10 {
        write(&mut h, 1 + k % 2, 10 + k % 2, k);
    }
    // Restarted from its log (a compaction snapshot at 4, then records): it recovers where
    // it stopped.
    let disk = SharedLog(
        std::sync::Arc::new(std::sync::Mutex::new(logs[&3].memory())),
        false,
    );
    let mut restarted = ActiveReplica::<KvStore>::recover(
        config(3, &|c| c.snapshot_every = 4),
        Box::new(disk.clone()),
        disk.recover(false),
    )
    .expect("its log recovers");
    assert_eq!(restarted.committed_index(), 6);
    let view = ViewId {
        epoch: 3,
        coordinator: pid(1),
    };
    let snapshot = h.nodes.get_mut(&1).unwrap().snapshot_for(view);
    let delta = h.node(1).delta(view, 6).expect("the tail holds 7..=10");
    restarted
        .handle(&ServiceEvent::Restore {
            group: group(),
            view,
            state: delta,
            since: Some(6),
        })
        .expect("a delta from its own position");
    assert_eq!(
        restarted.snapshot(),
        snapshot,
        "state, executed table and position as at the provider"
    );
    // A passive snapshot is never taken for an active one.
    let passive = crate::state_machine::encode_snapshot(
        crate::replication::passive::PASSIVE_SNAPSHOT_KIND,
        &(),
    );
    assert!(restarted
        .handle(&ServiceEvent::Restore {
            group: group(),
            view,
            state: passive,
            since: None,
        })
        .is_err());
}
