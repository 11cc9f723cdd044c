//! Primary-backup: the five phases, view changes, recovery and the executed table.

use std::collections::BTreeMap;

use bytes::Bytes;
use viewsync::proto::multicast::Message as Delivered;
use viewsync::runtime::ServiceEvent;
use viewsync::wire::{BusyReason, Ordering, Refusal, Seq};
use viewsync::ViewId;

use super::{addr, assert_same_snapshots, group, pid, refusal, Harness, SharedLog};
use crate::replication::passive::{PassiveConfig, PassiveMessage, PassiveReplica, ReadPolicy};
use crate::replication::store::Recovered;
use crate::replication::{encode, ReplicaCore, Reply, Request, RequestId};
use crate::state_machine::bank::{Bank, BankOp, BankOutput};
use crate::state_machine::kv::{KvOp, KvOutput, KvStore};
use crate::state_machine::StateMachine;

fn config(n: u64, machine: &str, tweak: &dyn Fn(&mut PassiveConfig)) -> PassiveConfig {
    let mut config = PassiveConfig::new(pid(n), group(), machine);
    tweak(&mut config);
    config
}

/// Replicas `nodes` with empty logs, no view installed yet.
fn unstarted<S>(
    machine: &'static str,
    nodes: &[u64],
    tweak: impl Fn(&mut PassiveConfig),
) -> (Harness<PassiveReplica<S>>, BTreeMap<u64, SharedLog>)
where
    S: StateMachine + Clone + Default + 'static,
{
    let logs: BTreeMap<u64, SharedLog> = nodes.iter().map(|&n| (n, SharedLog::default())).collect();
    let cores = nodes.iter().map(|&n| {
        let core = PassiveReplica::recover(
            config(n, machine, &tweak),
            Box::new(logs[&n].clone()),
            Recovered::default(),
        )
        .expect("an empty log recovers");
        (n, core)
    });
    let harness = Harness::new(machine, cores, |core: &PassiveReplica<S>| {
        assert_eq!(
            core.stats().waiters,
            core.recount_waiters(),
            "the count of held requests drifted"
        );
    });
    (harness, logs)
}

/// Replicas `nodes` in one view (the first is the primary).
fn cluster<S>(
    machine: &'static str,
    nodes: &[u64],
    tweak: impl Fn(&mut PassiveConfig),
) -> (Harness<PassiveReplica<S>>, BTreeMap<u64, SharedLog>)
where
    S: StateMachine + Clone + Default + 'static,
{
    let (mut h, logs) = unstarted(machine, nodes, tweak);
    h.install(nodes, None);
    (h, logs)
}

/// Every live replica in a view holds the same committed state, position and executed table.
fn assert_same_state<S: StateMachine + Clone + Default>(h: &Harness<PassiveReplica<S>>) {
    assert_same_snapshots(h, |r| r.view().is_some());
}

fn deliver_forged(h: &mut Harness<PassiveReplica<KvStore>>, to: u64, sender: u64, payload: Bytes) {
    let view = h.node(to).view().expect("in a view").id;
    h.run(
        to,
        ServiceEvent::Deliver {
            group: group(),
            message: Delivered {
                sender: pid(sender),
                view,
                seq: Seq(1_000),
                ordering: Ordering::Total,
                payload,
            },
        },
    );
}

#[test]
fn a_write_is_answered_after_delivery_and_a_majority_durable() {
    let (mut h, _) = cluster::<KvStore>("kv", &[1, 2, 3], |_| {});
    let w = h.request(1, 7, 1, KvOp::put("k", "v"), 0);
    assert!(
        h.reply(w).is_none(),
        "answered before its update was delivered"
    );
    assert_eq!(h.in_flight(), 1);
    assert_eq!(
        h.node(1).state().value("k"),
        None,
        "the committed state holds only delivered updates"
    );
    h.deliver_all();
    for n in 1..=3 {
        assert_eq!(h.node(n).committed_index(), 1);
    }
    assert!(
        h.reply(w).is_none(),
        "answered before it was durable anywhere"
    );
    h.tick(2);
    h.route();
    assert!(
        h.reply(w).is_none(),
        "answered while durable at one member of three (the primary had not synced)"
    );
    h.tick(1);
    let reply: Reply<KvOutput> = h.ok(w);
    assert_eq!(reply.id, RequestId { client: 7, seq: 1 });
    assert_eq!(reply.output, KvOutput::Written);
    assert_eq!(reply.position, 1);
    h.settle();
    assert_same_state(&h);
    for n in 1..=3 {
        assert_eq!(h.node(n).state().value("k"), Some("v"));
        assert_eq!(h.node(n).stats().updates_applied, 1);
    }
}

#[test]
fn without_quorum_durability_a_write_is_answered_at_delivery() {
    let (mut h, _) = cluster::<KvStore>("kv", &[1, 2, 3], |c| c.quorum_durability = false);
    let w = h.request(1, 7, 1, KvOp::cas("k", None, "v"), 0);
    assert!(h.reply(w).is_none());
    h.deliver_one();
    assert_eq!(h.ok::<KvOutput>(w).output, KvOutput::Swapped);
    h.settle();
    assert_same_state(&h);
}

#[test]
fn with_per_record_fsync_backups_report_at_once() {
    let logs = [1, 2, 3].map(|n| (n, SharedLog::per_record()));
    let cores = logs.clone().map(|(n, log)| {
        let core = PassiveReplica::<KvStore>::recover(
            config(n, "kv", &|_| {}),
            Box::new(log),
            Recovered::default(),
        )
        .expect("empty");
        (n, core)
    });
    let mut h = Harness::new("kv", cores, |_: &PassiveReplica<KvStore>| {});
    h.install(&[1, 2, 3], None);
    let w = h.request(1, 7, 1, KvOp::put("k", "v"), 0);
    h.deliver_all();
    assert!(
        h.reply(w).is_none(),
        "answered before a backup's report arrived"
    );
    h.route();
    assert_eq!(h.ok::<KvOutput>(w).position, 1, "no tick needed");
}

#[test]
fn refusals_by_role_and_phase() {
    let (mut h, _) = unstarted::<KvStore>("kv", &[1, 2, 3], |_| {});
    let early = h.request(1, 7, 1, KvOp::put("k", "v"), 0);
    assert_eq!(refusal(&h, early), Refusal::Busy(BusyReason::Joining));

    h.install(&[1, 2, 3], None);
    let at_backup = h.request(2, 7, 1, KvOp::put("k", "v"), 0);
    assert_eq!(
        refusal(&h, at_backup),
        Refusal::NotPrimary {
            primary: Some(addr(1))
        }
    );
    let read_at_backup = h.request(3, 7, 1, KvOp::get("k"), 0);
    assert_eq!(
        refusal(&h, read_at_backup),
        Refusal::NotPrimary {
            primary: Some(addr(1))
        }
    );
    let garbage = h.raw_request(1, 7, Bytes::from_static(b"\xff\xff\xff"));
    assert!(matches!(refusal(&h, garbage), Refusal::Malformed(_)));
    let other_machine = h.raw_request(
        1,
        7,
        encode(&Request {
            id: RequestId { client: 7, seq: 1 },
            machine: "bank".into(),
            after: 0,
            causal: None,
            op: BankOp::get("x"),
        }),
    );
    assert!(matches!(refusal(&h, other_machine), Refusal::Malformed(m) if m.contains("bank")));

    h.block();
    let blocked = h.request(1, 7, 1, KvOp::put("k", "v"), 0);
    assert_eq!(refusal(&h, blocked), Refusal::Busy(BusyReason::ViewChange));
    h.install(&[1, 2, 3], None);
    let served = h.request(1, 7, 1, KvOp::put("k", "v"), 0);
    h.settle();
    assert_eq!(h.ok::<KvOutput>(served).output, KvOutput::Written);
    assert_eq!(h.in_flight(), 0);
}

#[test]
fn a_transfer_retransmitted_after_failover_is_answered_from_the_table() {
    let (mut h, _) = cluster::<Bank>("bank", &[1, 2, 3], |_| {});
    let x = h.request(1, 1, 1, BankOp::set("x", 100), 0);
    let y = h.request(1, 1, 2, BankOp::set("y", 0), 0);
    h.settle();
    assert_eq!(h.ok::<BankOutput>(x).output, BankOutput::BalanceSet);
    assert_eq!(h.ok::<BankOutput>(y).output, BankOutput::BalanceSet);

    let transfer = BankOp::transfer("x", "y", 30);
    let first = h.request(1, 2, 1, transfer.clone(), 0);
    h.deliver_all();
    assert!(h.reply(first).is_none(), "not durable yet");
    // The primary crashes after every member applied the transfer, before answering.
    h.crash(1);
    h.change_view(&[2, 3], None);
    assert!(h.node(2).is_primary());
    let again = h.request(2, 2, 1, transfer.clone(), 0);
    assert!(
        h.reply(again).is_none(),
        "the new primary answered before it knew a majority of its view holds the transfer"
    );
    h.settle();
    let reply: Reply<BankOutput> = h.ok(again);
    assert_eq!(reply.output, BankOutput::Transferred);
    assert_eq!(reply.position, 3);
    // Once more: still answered from the table.
    let third = h.request(2, 2, 1, transfer, 0);
    h.settle();
    assert_eq!(h.ok::<BankOutput>(third), reply);
    for n in [2, 3] {
        let bank = h.node(n).state();
        assert_eq!(
            (bank.balance("x"), bank.balance("y"), bank.total()),
            (Some(70), Some(30), 100),
            "replica {n}: the transfer must take effect exactly once"
        );
        assert_eq!(h.node(n).stats().updates_applied, 3);
        assert_eq!(h.node(n).committed_index(), 3);
    }
    assert_eq!(h.node(2).stats().duplicates, 2);
    assert!(
        h.reply(first).is_none(),
        "the crashed primary never answered"
    );
}

#[test]
fn a_pending_id_gathers_waiters_and_an_older_seq_is_superseded() {
    let (mut h, _) = cluster::<KvStore>("kv", &[1, 2, 3], |_| {});
    let first = h.request(1, 5, 1, KvOp::put("a", "1"), 0);
    let second = h.request(1, 5, 1, KvOp::put("a", "1"), 0);
    assert_eq!(
        h.in_flight(),
        1,
        "a retransmission in flight was executed again"
    );
    assert_eq!(h.node(1).stats().waiters, 2);
    h.settle();
    assert_eq!(h.ok::<KvOutput>(first), h.ok::<KvOutput>(second));
    assert_eq!(h.node(1).stats().waiters, 0);

    let next = h.request(1, 5, 2, KvOp::put("a", "2"), 0);
    h.settle();
    assert_eq!(h.ok::<KvOutput>(next).position, 2);
    let stale = h.request(1, 5, 1, KvOp::put("a", "1"), 0);
    assert!(
        matches!(refusal(&h, stale), Refusal::Malformed(m) if m.starts_with("superseded")),
        "a request older than the client's latest must not be executed"
    );
    // Superseded by a request still in flight, too.
    let in_flight = h.request(1, 5, 4, KvOp::put("a", "4"), 0);
    let older = h.request(1, 5, 3, KvOp::put("a", "3"), 0);
    assert!(matches!(refusal(&h, older), Refusal::Malformed(m) if m.starts_with("superseded")));
    h.settle();
    assert_eq!(h.ok::<KvOutput>(in_flight).position, 3);
    for n in 1..=3 {
        assert_eq!(h.node(n).state().value("a"), Some("4"));
        assert_eq!(h.node(n).stats().updates_applied, 3);
    }
}

#[test]
fn an_update_lost_with_its_primary_is_executed_once_when_retransmitted() {
    let (mut h, _) = cluster::<KvStore>("kv", &[1, 2, 3], |_| {});
    let lost = h.request(1, 9, 1, KvOp::put("k", "v"), 0);
    assert_eq!(h.in_flight(), 1);
    h.crash(1);
    h.change_view(&[2, 3], None);
    assert!(h.reply(lost).is_none());
    for n in [2, 3] {
        assert_eq!(h.node(n).committed_index(), 0);
        assert_eq!(h.node(n).state().value("k"), None);
    }
    assert!(
        h.node(2).is_primary(),
        "the next oldest member is the primary"
    );
    let retry = h.request(2, 9, 1, KvOp::put("k", "v"), 0);
    h.settle();
    assert_eq!(h.ok::<KvOutput>(retry).position, 1);
    let again = h.request(2, 9, 1, KvOp::put("k", "v"), 0);
    h.settle();
    assert_eq!(h.ok::<KvOutput>(again), h.ok::<KvOutput>(retry));
    for n in [2, 3] {
        assert_eq!(h.node(n).stats().updates_applied, 1, "replica {n}");
        assert_eq!(h.node(n).state().value("k"), Some("v"));
    }
    assert_same_state(&h);
}

#[test]
fn a_read_at_the_primary_is_answered_once_its_marker_is_delivered() {
    let (mut h, _) = cluster::<KvStore>("kv", &[1, 2, 3], |_| {});
    h.request(1, 1, 1, KvOp::put("k", "1"), 0);
    h.settle();
    let write = h.request(1, 1, 2, KvOp::put("k", "2"), 0);
    let read = h.request(1, 2, 1, KvOp::get("k"), 0);
    assert_eq!(h.in_flight(), 2, "the update, then the read's marker");
    h.deliver_one();
    assert!(
        h.reply(read).is_none(),
        "answered before its marker was delivered"
    );
    h.deliver_one();
    assert!(
        h.reply(read).is_none(),
        "answered with a write that is not yet durable at a majority"
    );
    h.settle();
    let reply: Reply<KvOutput> = h.ok(read);
    assert_eq!(reply.output, KvOutput::value("2"));
    assert_eq!(reply.position, 2);
    assert_eq!(h.ok::<KvOutput>(write).position, 2);
    assert_eq!(h.node(1).stats().reads, 1);
    // Reads are not logged and take no position.
    assert_eq!(h.node(2).committed_index(), 2);
}

#[test]
fn a_deposed_primary_never_answers_a_read() {
    let (mut h, _) = cluster::<KvStore>("kv", &[1, 2, 3], |_| {});
    h.request(1, 1, 1, KvOp::put("k", "old"), 0);
    h.settle();
    // Member 1 is cut off; the others move on without it and acknowledge a newer write.
    h.isolate(1);
    h.change_view(&[2, 3], None);
    let write = h.request(2, 1, 2, KvOp::put("k", "new"), 0);
    h.settle();
    assert_eq!(h.ok::<KvOutput>(write).position, 2);
    assert!(
        h.node(1).is_primary(),
        "member 1 does not know it was deposed"
    );
    let stale = h.request(1, 2, 1, KvOp::get("k"), 0);
    let lost_write = h.request(1, 3, 1, KvOp::put("j", "x"), 0);
    for _ in 0..5 {
        h.settle();
        h.tick(1);
    }
    assert!(
        h.reply(stale).is_none(),
        "the deposed primary answered a read (it would have returned the old value)"
    );
    assert!(h.reply(lost_write).is_none());
    assert_eq!(h.node(2).state().value("j"), None);
}

#[test]
fn recovery_rebuilds_state_table_and_position() {
    for snapshot_every in [0, 4] {
        let (mut h, logs) =
            cluster::<Bank>("bank", &[1, 2, 3], |c| c.snapshot_every = snapshot_every);
        let mut last = None;
        let ops = [
            (1, BankOp::set("x", 50)),
            (2, BankOp::set("y", 50)),
            (3, BankOp::transfer("x", "y", 10)),
            (1, BankOp::transfer("y", "x", 5)),
            (2, BankOp::set("z", 0)),
            (3, BankOp::transfer("x", "z", 100)),
            (1, BankOp::transfer("y", "z", 20)),
            (2, BankOp::transfer("z", "x", 1)),
            (3, BankOp::get("x")),
            (1, BankOp::transfer("x", "y", 2)),
            (2, BankOp::set("w", 3)),
        ];
        for (seq, (client, op)) in ops.into_iter().enumerate() {
            let to = h.request(1, client, seq as u64 + 1, op.clone(), 0);
            h.settle();
            last = Some((client, seq as u64 + 1, op, h.ok::<BankOutput>(to)));
        }
        let (client, seq, op, answered) = last.expect("requests were made");
        let live = h.node(2);
        assert_eq!(live.committed_index(), 10, "ten updates and one read");
        let recovered = logs[&2].recover(false);
        if snapshot_every == 4 {
            assert_eq!(recovered.snapshot.as_ref().map(|(i, _)| *i), Some(8));
            assert_eq!(
                recovered.records.len(),
                2,
                "compaction dropped what the snapshot covers"
            );
        } else {
            assert!(recovered.snapshot.is_none());
            assert_eq!(recovered.records.len(), 10);
        }
        for power_loss in [false, true] {
            let restarted = PassiveReplica::<Bank>::recover(
                config(2, "bank", &|c| c.snapshot_every = snapshot_every),
                Box::new(logs[&2].memory()),
                logs[&2].recover(power_loss),
            )
            .expect("recovers");
            assert_eq!(restarted.committed_index(), 10);
            assert_eq!(restarted.state(), live.state());
            assert_eq!(
                restarted.snapshot(),
                live.snapshot(),
                "state, position and executed table as a replica that never stopped"
            );
        }
        // The restarted replica answers a retransmission from its table.
        let restarted = PassiveReplica::<Bank>::recover(
            config(2, "bank", &|_| {}),
            Box::new(logs[&2].memory()),
            logs[&2].recover(false),
        )
        .expect("recovers");
        let mut solo = Harness::new("bank", [(2, restarted)], |_: &PassiveReplica<Bank>| {});
        solo.install(&[2], None);
        let again = solo.request(2, client, seq, op, 0);
        solo.settle();
        assert_eq!(solo.ok::<BankOutput>(again), answered);
        assert_eq!(
            solo.node(2).committed_index(),
            10,
            "executed again after recovery"
        );
    }
}

#[test]
fn a_corrupt_snapshot_or_record_is_a_store_error() {
    let (mut h, logs) = cluster::<KvStore>("kv", &[1, 2, 3], |_| {});
    for seq in 1..=3 {
        h.request(1, 1, seq, KvOp::put(format!("k{seq}"), "v"), 0);
    }
    h.settle();
    let good = logs[&1].recover(false);
    let recover = |recovered: Recovered| {
        PassiveReplica::<KvStore>::recover(
            config(1, "kv", &|_| {}),
            Box::new(SharedLog::default()),
            recovered,
        )
    };
    assert_eq!(
        recover(good.clone()).expect("recovers").committed_index(),
        3
    );

    let mut garbage = good.clone();
    garbage.records[1].1 = Bytes::from_static(b"\x00\xff\xff\xff\xff");
    assert!(recover(garbage).is_err(), "a record that does not decode");
    let mut truncated = good.clone();
    let record = truncated.records[2].1.clone();
    truncated.records[2].1 = record.slice(..record.len() - 1);
    assert!(recover(truncated).is_err(), "a torn record");
    let mut gap = good.clone();
    gap.records.remove(1);
    assert!(recover(gap).is_err(), "a missing record");
    let mut not_an_update = good.clone();
    not_an_update.records[0].1 = encode(&PassiveMessage::<KvOp, KvOutput>::Read {
        view: ViewId {
            epoch: 1,
            coordinator: pid(1),
        },
        id: RequestId { client: 1, seq: 1 },
    });
    assert!(
        recover(not_an_update).is_err(),
        "a record that is not an update"
    );

    let snapshot = h.node(1).snapshot();
    let at = |index: u64, bytes: Bytes| Recovered {
        snapshot: Some((index, bytes)),
        records: Vec::new(),
    };
    assert_eq!(
        recover(at(3, snapshot.clone()))
            .expect("recovers")
            .committed_index(),
        3
    );
    assert!(
        recover(at(2, snapshot.clone())).is_err(),
        "a snapshot stored at the wrong position"
    );
    let mut flipped = snapshot.to_vec();
    flipped[10] ^= 1;
    assert!(
        recover(at(3, Bytes::from(flipped.clone()))).is_err(),
        "a corrupt snapshot"
    );
    // A corrupt state transfer is refused too: nothing invented.
    let mut fresh = recover(Recovered::default()).expect("empty");
    let restore = ServiceEvent::Restore {
        group: group(),
        view: ViewId {
            epoch: 2,
            coordinator: pid(1),
        },
        state: Bytes::from(flipped),
        since: None,
    };
    assert!(fresh.handle(&restore).is_err());
    assert_eq!(fresh.committed_index(), 0);
}

#[test]
fn the_executed_table_survives_a_state_transfer() {
    let (mut h, _) = unstarted::<Bank>("bank", &[1, 2, 3], |_| {});
    h.install(&[1, 2], None);
    h.request(1, 1, 1, BankOp::set("x", 100), 0);
    h.request(1, 1, 2, BankOp::set("y", 0), 0);
    let transfer = BankOp::transfer("x", "y", 30);
    let first = h.request(1, 2, 1, transfer.clone(), 0);
    h.settle();
    let answered: Reply<BankOutput> = h.ok(first);
    // Member 3 joins by state transfer; then the two older members fail.
    h.change_view(&[1, 2, 3], Some(1));
    assert_eq!(h.node(3).snapshot(), h.node(1).snapshot());
    h.crash(1);
    h.crash(2);
    h.change_view(&[3], None);
    // The front end never saw the answer and retransmits to the new primary.
    let again = h.request(3, 2, 1, transfer, 0);
    h.settle();
    assert_eq!(h.ok::<BankOutput>(again), answered);
    let bank = h.node(3).state();
    assert_eq!(
        (bank.balance("x"), bank.balance("y"), bank.total()),
        (Some(70), Some(30), 100)
    );
    assert_eq!(
        h.node(3).stats().updates_applied,
        0,
        "member 3 executed nothing itself"
    );
    assert_eq!(h.node(3).stats().duplicates, 1);
}

#[test]
fn backup_reads_wait_for_the_position_their_client_saw() {
    let (mut h, _) = cluster::<KvStore>("kv", &[1, 2, 3], |c| c.reads = ReadPolicy::AnyReplica);
    let w1 = h.request(1, 1, 1, KvOp::put("k", "1"), 0);
    h.settle();
    assert_eq!(h.ok::<KvOutput>(w1).position, 1);
    let read = h.request(3, 2, 1, KvOp::get("k"), 1);
    let reply: Reply<KvOutput> = h.ok(read);
    assert_eq!((reply.output, reply.position), (KvOutput::value("1"), 1));

    let w2 = h.request(1, 1, 2, KvOp::put("k", "2"), 0);
    // Another client, which saw nothing newer, reads the committed state at once: sequentially
    // consistent, not linearizable.
    let other = h.request(3, 3, 1, KvOp::get("k"), 0);
    assert_eq!(h.ok::<KvOutput>(other).output, KvOutput::value("1"));
    // The writer reads its own write at a backup: it waits for position 2.
    let mine = h.request(3, 1, 3, KvOp::get("k"), 2);
    assert!(h.reply(mine).is_none());
    assert_eq!(h.node(3).stats().waiters, 1);
    h.deliver_all();
    let reply: Reply<KvOutput> = h.ok(mine);
    assert_eq!((reply.output, reply.position), (KvOutput::value("2"), 2));
    h.settle();
    assert_eq!(h.ok::<KvOutput>(w2).position, 2);
    // Writes still go to the primary.
    let write_at_backup = h.request(2, 4, 1, KvOp::put("k", "3"), 0);
    assert_eq!(
        refusal(&h, write_at_backup),
        Refusal::NotPrimary {
            primary: Some(addr(1))
        }
    );
    // The primary, too, reads its committed state.
    let at_primary = h.request(1, 5, 1, KvOp::get("k"), 0);
    assert_eq!(h.ok::<KvOutput>(at_primary).output, KvOutput::value("2"));
    assert_eq!(h.in_flight(), 0, "backup reads are not multicast");
}

#[test]
fn the_executed_table_is_bounded_and_evicts_the_same_client_everywhere() {
    let (mut h, _) = unstarted::<KvStore>("kv", &[1, 2, 3, 4], |c| c.clients_max = 2);
    h.install(&[1, 2, 3], None);
    let mut first = BTreeMap::new();
    for client in 1..=3 {
        let to = h.request(1, client, 1, KvOp::put(format!("c{client}"), "1"), 0);
        h.settle();
        first.insert(client, h.ok::<KvOutput>(to));
    }
    for n in 1..=3 {
        assert_eq!(h.node(n).stats().evicted_clients, 1, "replica {n}");
    }
    assert_same_state(&h);
    // Client 3 is remembered: answered from the table.
    let again = h.request(1, 3, 1, KvOp::put("c3", "1"), 0);
    h.settle();
    assert_eq!(h.ok::<KvOutput>(again), first[&3]);
    assert_eq!(h.node(1).committed_index(), 3);
    // Client 1, the least recently updated, was evicted: its retransmission is executed
    // again (the cost of the bound), and it evicts client 2 at every replica.
    let evicted = h.request(1, 1, 1, KvOp::put("c1", "1"), 0);
    h.settle();
    assert_eq!(h.ok::<KvOutput>(evicted).position, 4);
    assert_same_state(&h);
    // A joiner receives the same table, in the same order: the next eviction agrees.
    h.change_view(&[1, 2, 3, 4], Some(2));
    h.request(1, 5, 1, KvOp::put("c5", "1"), 0);
    h.settle();
    assert_same_state(&h);
    let still = h.request(1, 1, 1, KvOp::put("c1", "1"), 0);
    h.settle();
    assert_eq!(
        h.ok::<KvOutput>(still).position,
        4,
        "client 1 is still remembered"
    );
    assert_eq!(h.node(4).committed_index(), 5);
}

#[test]
fn too_many_requests_in_hand_is_overloaded() {
    let (mut h, _) = cluster::<KvStore>("kv", &[1, 2, 3], |c| c.pending_max = 2);
    let a = h.request(1, 1, 1, KvOp::put("a", "1"), 0);
    let b = h.request(1, 2, 1, KvOp::put("b", "1"), 0);
    let c = h.request(1, 3, 1, KvOp::put("c", "1"), 0);
    assert_eq!(refusal(&h, c), Refusal::Busy(BusyReason::Overloaded));
    assert_eq!(h.in_flight(), 2, "the refused request was not executed");
    h.settle();
    h.ok::<KvOutput>(a);
    h.ok::<KvOutput>(b);
    let c = h.request(1, 3, 1, KvOp::put("c", "1"), 0);
    h.settle();
    assert_eq!(h.ok::<KvOutput>(c).position, 3);
}

#[test]
fn speculation_never_leaks_and_an_update_sent_after_the_block_is_skipped_everywhere() {
    let (mut h, _) = cluster::<KvStore>("kv", &[1, 2, 3], |_| {});
    h.request(1, 1, 1, KvOp::put("k", "1"), 0);
    h.settle();
    let before = h.node(2).snapshot();
    // The primary executes a write; its multicast reaches the middleware only after the
    // `Block` (the shell racing the node), so it goes out in the next view.
    h.late = true;
    let write = h.request(1, 2, 1, KvOp::put("k", "2"), 0);
    h.late = false;
    assert_eq!(
        h.node(1).snapshot(),
        before,
        "a snapshot holds only delivered updates"
    );
    assert_eq!(h.node(1).state().value("k"), Some("1"));
    h.change_view(&[1, 2, 3], None);
    assert_eq!(refusal(&h, write), Refusal::Busy(BusyReason::ViewChange));
    h.settle();
    for n in 1..=3 {
        let replica = h.node(n);
        assert_eq!(
            replica.committed_index(),
            1,
            "replica {n} applied a stale update"
        );
        assert_eq!(replica.stats().skipped, 1);
        assert_eq!(replica.state().value("k"), Some("1"));
    }
    // The rolled-back write is gone from the primary's reads too.
    let read = h.request(1, 3, 1, KvOp::get("k"), 0);
    h.settle();
    assert_eq!(
        h.ok::<KvOutput>(read).output,
        KvOutput::value("1"),
        "a read saw a write that was never delivered"
    );
    // The front end retries: executed once, at the next position.
    let retry = h.request(1, 2, 1, KvOp::put("k", "2"), 0);
    h.settle();
    assert_eq!(h.ok::<KvOutput>(retry).position, 2);
    assert_same_state(&h);
}

#[test]
fn a_wrong_response_is_counted_and_an_update_out_of_position_is_refused() {
    let (mut h, _) = cluster::<KvStore>("kv", &[1, 2, 3], |_| {});
    let view = h.node(2).view().expect("a view").id;
    let update = |index: u64, response: KvOutput| {
        encode(&PassiveMessage::<KvOp, KvOutput>::Update {
            view,
            index,
            id: RequestId {
                client: 9,
                seq: index,
            },
            op: KvOp::put("k", "v"),
            response,
        })
    };
    // A nondeterministic state machine at the primary would produce this.
    deliver_forged(&mut h, 2, 1, update(1, KvOutput::Swapped));
    assert_eq!(h.node(2).stats().output_mismatches, 1);
    assert_eq!(h.node(2).committed_index(), 1);
    // Not from the primary: skipped.
    deliver_forged(&mut h, 2, 3, update(2, KvOutput::Written));
    assert_eq!(h.node(2).stats().skipped, 1);
    assert_eq!(h.node(2).committed_index(), 1);
    // A gap: not applied, the replica stops serving and asks its shell to stop it.
    deliver_forged(&mut h, 3, 1, update(5, KvOutput::Written));
    assert!(h.node(3).stats().diverged);
    assert!(
        h.failed.get(&3).is_some_and(|e| e.0.contains("diverged")),
        "{:?}",
        h.failed
    );
    assert_eq!(h.node(3).committed_index(), 0);
    let read = h.request(3, 4, 1, KvOp::get("k"), 0);
    assert_eq!(refusal(&h, read), Refusal::Busy(BusyReason::Joining));
}

#[test]
fn a_read_marker_of_an_earlier_view_answers_nothing() {
    let (mut h, _) = cluster::<KvStore>("kv", &[1, 2, 3], |_| {});
    h.request(1, 1, 1, KvOp::put("k", "1"), 0);
    h.settle();
    h.late = true;
    let first = h.request(1, 2, 1, KvOp::get("k"), 0);
    h.late = false;
    h.change_view(&[1, 2, 3], None);
    assert_eq!(refusal(&h, first), Refusal::Busy(BusyReason::ViewChange));
    // The retransmission is ordered by a marker of its own, behind the stale one.
    let again = h.request(1, 2, 1, KvOp::get("k"), 0);
    assert_eq!(h.in_flight(), 2);
    h.deliver_one();
    assert!(
        h.reply(again).is_none(),
        "answered on the marker of a read ordered in an earlier view"
    );
    h.settle();
    assert_eq!(h.ok::<KvOutput>(again).output, KvOutput::value("1"));
}

// ---- catch-up by a delta --------------------------------------------------------------

/// The view a restarted member joins, after the harness's views.
fn joiners_view(epoch: u64) -> ViewId {
    ViewId {
        epoch,
        coordinator: pid(1),
    }
}

/// `count` writes by clients `first_client..`, each answered (so delivered everywhere).
fn writes(h: &mut Harness<PassiveReplica<KvStore>>, first_client: u64, count: u64) {
    for k in 0..count {
        let client = first_client + k % 3;
        let key = format!("k{}", k % 4);
        let w = h.request(
            1,
            client,
            100 + k,
            KvOp::put(key, format!("v{first_client}.{k}")),
            0,
        );
        h.settle();
        assert!(h.reply(w).is_some());
    }
}

/// A replica restarting from `log` (a copy of it), with `tweak`ed configuration.
fn restarted(
    n: u64,
    log: &SharedLog,
    tweak: impl Fn(&mut PassiveConfig),
) -> (PassiveReplica<KvStore>, SharedLog) {
    let disk = SharedLog(
        std::sync::Arc::new(std::sync::Mutex::new(log.memory())),
        false,
    );
    let core = PassiveReplica::recover(
        config(n, "kv", &tweak),
        Box::new(disk.clone()),
        disk.recover(false),
    )
    .expect("its log recovers");
    (core, disk)
}

fn restore(view: ViewId, state: Bytes, since: Option<u64>) -> ServiceEvent {
    ServiceEvent::Restore {
        group: group(),
        view,
        state,
        since,
    }
}

#[test]
fn a_restarted_replica_caught_up_by_a_delta_is_exactly_one_that_never_stopped() {
    // Few clients in the table, so the delta's updates evict some: the table must follow.
    let tweak = |c: &mut PassiveConfig| c.clients_max = 2;
    let (mut h, logs) = cluster::<KvStore>("kv", &[1, 2, 3], tweak);
    writes(&mut h, 10, 5);
    drop(h.crash(3));
    h.change_view(&[1, 2], None);
    writes(&mut h, 20, 7);
    let (mut joiner, disk) = restarted(3, &logs[&3], tweak);
    let since = joiner.committed_index();
    assert_eq!(since, 5, "it recovered what it had applied");
    assert_eq!(joiner.position(), Some(5));

    // The provider takes the snapshot for the joiner's view, and goes on delivering.
    let view = joiners_view(3);
    let snapshot = h.nodes.get_mut(&1).unwrap().snapshot_for(view);
    let upto = h.node(1).committed_index();
    assert_eq!(upto, 12);
    writes(&mut h, 30, 2);
    assert_eq!(h.node(1).committed_index(), 14);
    let delta = h.node(1).delta(view, since).expect("the tail holds 6..=12");
    assert_ne!(delta, snapshot);

    joiner
        .handle(&restore(view, delta, Some(since)))
        .expect("a delta from its own position");
    assert_eq!(joiner.committed_index(), upto, "it ends at the snapshot");
    assert_eq!(
        joiner.snapshot(),
        snapshot,
        "state, executed table and position of the provider at the snapshot"
    );
    assert_eq!(
        joiner.last_restore(),
        Some(crate::replication::passive::Restored {
            since: Some(5),
            position: 12
        })
    );
    // Its log holds the records as delivered: restarted again, it recovers the same state.
    let (again, _) = restarted(3, &disk, tweak);
    assert_eq!(again.snapshot(), snapshot);
    // And it serves deltas from what it applied.
    let mut joiner = joiner;
    let later = joiners_view(4);
    joiner.snapshot_for(later);
    assert!(joiner.delta(later, 5).is_some());
}

#[test]
fn a_delta_is_refused_by_a_replica_not_at_its_position_and_never_taken_for_a_snapshot() {
    let (mut h, logs) = cluster::<KvStore>("kv", &[1, 2, 3], |_| {});
    writes(&mut h, 10, 3);
    drop(h.crash(3));
    h.change_view(&[1, 2], None);
    writes(&mut h, 20, 4);
    let view = joiners_view(3);
    let snapshot = h.nodes.get_mut(&1).unwrap().snapshot_for(view);
    let from_two = h.node(1).delta(view, 2).expect("held");
    let from_three = h.node(1).delta(view, 3).expect("held");

    // At 3, handed a delta from 2 (or told it is at 2): an error, nothing applied.
    let (mut joiner, _) = restarted(3, &logs[&3], |_| {});
    assert_eq!(joiner.committed_index(), 3);
    let before = joiner.snapshot();
    assert!(joiner
        .handle(&restore(view, from_two.clone(), Some(2)))
        .is_err());
    assert!(joiner
        .handle(&restore(view, from_three.clone(), Some(2)))
        .is_err());
    assert_eq!(joiner.snapshot(), before, "nothing applied");
    // A delta is never restored as a snapshot, nor a snapshot as a delta.
    assert!(joiner
        .handle(&restore(view, from_three.clone(), None))
        .is_err());
    assert!(joiner.handle(&restore(view, snapshot, Some(3))).is_err());
    assert_eq!(joiner.snapshot(), before);
    // A corrupted delta is refused.
    let mut flipped = from_three.to_vec();
    flipped[12] ^= 1;
    assert!(joiner
        .handle(&restore(view, Bytes::from(flipped), Some(3)))
        .is_err());
    assert_eq!(joiner.snapshot(), before);
    joiner
        .handle(&restore(view, from_three, Some(3)))
        .expect("the right one");
    assert_eq!(joiner.committed_index(), 7);
}

#[test]
fn a_replica_of_another_history_refuses_the_delta() {
    // Two groups that each applied three different updates: a replica of the second, at
    // position 3, is handed a delta of the first from 3. The record at 3 tells them apart.
    let (mut first, _) = cluster::<KvStore>("kv", &[1, 2], |_| {});
    writes(&mut first, 10, 5);
    let (mut second, logs) = cluster::<KvStore>("kv", &[1, 2], |_| {});
    writes(&mut second, 40, 3);
    let view = joiners_view(2);
    first.nodes.get_mut(&1).unwrap().snapshot_for(view);
    let delta = first.node(1).delta(view, 3).expect("held");
    let (mut stranger, disk) = restarted(2, &logs[&2], |_| {});
    assert_eq!(stranger.committed_index(), 3);
    let before = stranger.snapshot();
    let error = stranger
        .handle(&restore(view, delta, Some(3)))
        .expect_err("another history");
    assert!(error.to_string().contains("another history"), "{error}");
    // Nothing of the delta was applied.
    assert_eq!(stranger.snapshot(), before);
    // Its own copy (never acknowledged: the live group wrote others) is discarded on disk, so
    // the restart after this fail-stop starts empty and gets the whole state, instead of
    // asking for a delta from a position of another history for ever.
    let (again, _) = restarted(2, &disk, |_| {});
    assert_eq!(again.committed_index(), 0);
}

#[test]
fn a_provider_answers_no_delta_once_its_tail_no_longer_holds_the_records() {
    let (mut h, _) = cluster::<KvStore>("kv", &[1, 2], |c| c.catch_up_records = 4);
    writes(&mut h, 10, 10);
    let view = joiners_view(2);
    let provider = h.nodes.get_mut(&1).unwrap();
    assert_eq!(
        provider.delta(view, 8),
        None,
        "no snapshot taken for that view"
    );
    provider.snapshot_for(view);
    assert_eq!(provider.delta(view, 5), None, "record 6 is no longer held");
    assert!(provider.delta(view, 6).is_some(), "7..=10 are");
    assert!(provider.delta(view, 10).is_some(), "nothing to apply");
    assert_eq!(provider.delta(view, 11), None, "not behind the snapshot");
    assert_eq!(provider.delta(joiners_view(3), 8), None, "another view");

    let (mut off, _) = cluster::<KvStore>("kv", &[1, 2], |c| c.catch_up_records = 0);
    writes(&mut off, 10, 2);
    let provider = off.nodes.get_mut(&1).unwrap();
    provider.snapshot_for(view);
    assert_eq!(provider.delta(view, 1), None, "catch-up turned off");

    // A full restore forgets the tail: the records before the snapshot are not known.
    let (mut h, logs) = cluster::<KvStore>("kv", &[1, 2, 3], |_| {});
    writes(&mut h, 10, 3);
    drop(h.crash(3));
    h.change_view(&[1, 2], None);
    writes(&mut h, 20, 2);
    let snapshot = h.nodes.get_mut(&1).unwrap().snapshot_for(view);
    let (mut joiner, _) = restarted(3, &logs[&3], |_| {});
    joiner.handle(&restore(view, snapshot, None)).unwrap();
    assert_eq!(
        joiner.last_restore().map(|r| (r.since, r.position)),
        Some((None, 5))
    );
    let later = joiners_view(9);
    joiner.snapshot_for(later);
    assert_eq!(joiner.delta(later, 4), None);
    assert!(joiner.delta(later, 5).is_some());
}

#[test]
fn backup_reads_are_sequentially_consistent_but_not_linearizable() {
    use crate::history::{linearizability, sequential, History, SearchLimits, StateMachineModel};
    let (mut h, _) = cluster::<KvStore>("kv", &[1, 2, 3], |c| c.reads = ReadPolicy::AnyReplica);
    // Member 3 holds the update but has not applied it yet (here: it is slow to receive it).
    h.isolate(3);
    let mut history: History<KvOp, KvOutput> = History::new();
    let mut t = 0;
    let mut tick = || {
        t += 1;
        t
    };
    let put = KvOp::put("k", "1");
    history.invoke(1, 1, put.clone(), tick());
    let write = h.request(1, 1, 1, put, 0);
    h.settle();
    // Acknowledged: delivered at the primary and durable at a majority (members 1 and 2).
    history.ok(1, 1, h.ok::<KvOutput>(write).output, tick());
    // Afterwards, another client reads at member 3: the old value.
    let get = KvOp::get("k");
    history.invoke(2, 1, get.clone(), tick());
    let read = h.request(3, 2, 1, get, 0);
    let stale = h.ok::<KvOutput>(read).output;
    assert_eq!(stale, KvOutput::Value(None));
    history.ok(2, 1, stale, tick());
    let operations = history.operations().unwrap();
    let model = StateMachineModel::new(KvStore::new());
    assert!(
        linearizability::check(&model, &operations, SearchLimits::default()).is_violation(),
        "a read after an acknowledged write returned the old value: not linearizable"
    );
    assert!(
        sequential::check(&model, &operations, SearchLimits::default()).is_consistent(),
        "but the read can be ordered before the write: sequentially consistent"
    );
}
