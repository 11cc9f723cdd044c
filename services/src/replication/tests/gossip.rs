//! The gossip core: queries wait for `prev`, updates apply in causal order, replicas
//! converge and fold their logs, state transfers merge, storage keeps the numbering.

use super::*;
use crate::replication::gossip::{GossipConfig, GossipMessage, GossipReplica, LogEntry};
use crate::replication::{CausalToken, VectorClock};
use crate::state_machine::kv::{KvOp, KvOutput, KvStore};
use std::collections::BTreeMap;
use viewsync::wire::{BusyReason, Refusal};

type Kv = GossipReplica<KvStore>;

fn config(n: u64) -> GossipConfig {
    let mut config = GossipConfig::new(pid(n), group(), "kv");
    config.gossip_interval = Duration::from_millis(10);
    config
}

fn replica_with(config: GossipConfig, log: SharedLog) -> Kv {
    let recovered = log.recover(false);
    Kv::recover(config, Box::new(log), recovered, KvStore::new()).unwrap()
}

fn replica(n: u64) -> Kv {
    replica_with(config(n), SharedLog::default())
}

fn group_of(nodes: &[u64]) -> Harness<Kv> {
    let mut h = Harness::new("kv", nodes.iter().map(|&n| (n, replica(n))), |_| {});
    h.install(nodes, None);
    h
}

/// Ticks and routes for `ms` milliseconds of shell time.
fn run_for(h: &mut Harness<Kv>, ms: u64) {
    for _ in 0..ms / 2 {
        h.tick_all();
        h.route();
    }
}

fn token(reply: &Reply<KvOutput>) -> CausalToken {
    reply.causal.clone().expect("gossip replies carry a token")
}

fn value(h: &Harness<Kv>, n: u64, key: &str) -> Option<String> {
    h.node(n).value().value(key).map(str::to_owned)
}

#[test]
fn a_query_waits_until_prev_is_covered_and_answers_when_gossip_brings_the_update() {
    let mut h = group_of(&[1, 2, 3]);
    let put = h.causal_request(1, 10, 1, KvOp::put("x", "1"), 0, None);
    // Held until the record is synced (the next tick).
    assert!(h.reply(put).is_none());
    h.tick(1);
    let written = token(&h.ok::<KvOutput>(put));
    assert_eq!(written.prev.get(1), 1);
    // Before any gossip, node 2 cannot answer a query that saw the update.
    let get = h.causal_request(2, 10, 2, KvOp::get("x"), 0, Some(written.clone()));
    assert!(h.reply(get).is_none());
    assert_eq!(h.node(2).waiting(), 1);
    assert_eq!(h.node(2).stats().queries_waited, 1);
    assert_eq!(h.node(2).stats().gaps_noticed, 1);
    // A query without that prev is answered at once, from the older value.
    let other = h.causal_request(2, 11, 1, KvOp::get("x"), 0, None);
    h.tick(2);
    assert_eq!(h.ok::<KvOutput>(other).output, KvOutput::Value(None));
    run_for(&mut h, 40);
    let answer = h.ok::<KvOutput>(get);
    assert_eq!(answer.output, KvOutput::value("1"));
    assert!(written.prev.le(&token(&answer).prev));
    assert_eq!(h.node(2).waiting(), 0);
}

fn entry(origin: u64, seq: u64, lamport: u64, prev: &[(u64, u64)], op: KvOp) -> LogEntry<KvOp> {
    let prev = VectorClock(prev.iter().copied().collect());
    let mut ts = prev.clone();
    ts.set(origin, seq);
    LogEntry {
        origin,
        seq,
        lamport,
        ts,
        prev,
        id: RequestId {
            client: 100 + origin,
            seq,
        },
        op,
    }
}

fn gossip(h: &mut Harness<Kv>, from: u64, to: u64, entries: Vec<LogEntry<KvOp>>) {
    let mut replica_ts = VectorClock::default();
    for e in &entries {
        replica_ts.set(e.origin, replica_ts.get(e.origin).max(e.seq));
    }
    h.run(
        to,
        ServiceEvent::Direct {
            group: group(),
            from: pid(from),
            payload: encode(&GossipMessage::Gossip {
                replica_ts,
                entries,
            }),
        },
    );
}

#[test]
fn an_update_is_applied_only_after_the_updates_it_depends_on() {
    let mut h = group_of(&[1, 2, 3]);
    // u2 at node 2 depends on u1 at node 1; node 3 hears of u2 first.
    let u1 = entry(1, 1, 1, &[], KvOp::put("x", "a"));
    let u2 = entry(2, 1, 2, &[(1, 1)], KvOp::put("y", "b"));
    gossip(&mut h, 2, 3, vec![u2.clone()]);
    assert_eq!(h.node(3).log_len(), 1);
    assert_eq!(value(&h, 3, "y"), None, "applied before what it depends on");
    assert_eq!(h.node(3).value_ts(), &VectorClock::default());
    gossip(&mut h, 1, 3, vec![u1]);
    assert_eq!(value(&h, 3, "x").as_deref(), Some("a"));
    assert_eq!(value(&h, 3, "y").as_deref(), Some("b"));
    assert_eq!(h.node(3).value_ts(), &u2.ts);
}

#[test]
fn an_entry_past_a_gap_is_refused_and_asked_for() {
    let mut h = group_of(&[1, 2]);
    gossip(&mut h, 1, 2, vec![entry(1, 2, 2, &[], KvOp::put("x", "b"))]);
    assert_eq!(h.node(2).log_len(), 0);
    assert_eq!(h.node(2).stats().gaps_noticed, 1);
}

#[test]
fn concurrent_updates_converge_and_the_logs_empty_once_gossip_has_spread() {
    let mut h = group_of(&[1, 2, 3]);
    let a = h.causal_request(1, 10, 1, KvOp::put("x", "from-1"), 0, None);
    let b = h.causal_request(2, 20, 1, KvOp::put("x", "from-2"), 0, None);
    let c = h.causal_request(3, 30, 1, KvOp::put("y", "from-3"), 0, None);
    run_for(&mut h, 100);
    for r in [a, b, c] {
        h.ok::<KvOutput>(r);
    }
    let x = value(&h, 1, "x");
    assert!(x.is_some());
    for n in [1, 2, 3] {
        assert_eq!(value(&h, n, "x"), x, "node {n}");
        assert_eq!(value(&h, n, "y").as_deref(), Some("from-3"));
        assert_eq!(h.node(n).log_len(), 0, "node {n} kept entries everyone has");
        assert_eq!(h.node(n).stats().folded, 3);
    }
}

#[test]
fn the_same_request_logged_at_two_replicas_is_applied_once() {
    let mut h = group_of(&[1, 2]);
    // A put, then the same request id retransmitted to node 2 after a delete.
    let put = h.causal_request(1, 10, 1, KvOp::put("x", "1"), 0, None);
    h.tick(1);
    let t = token(&h.ok::<KvOutput>(put));
    let del = h.causal_request(1, 11, 1, KvOp::delete("x"), 0, Some(t.clone()));
    h.tick(1);
    let t2 = token(&h.ok::<KvOutput>(del));
    let again = h.causal_request(2, 10, 1, KvOp::put("x", "1"), 0, Some(t2));
    run_for(&mut h, 100);
    h.ok::<KvOutput>(again);
    for n in [1, 2] {
        assert_eq!(value(&h, n, "x"), None, "node {n} applied the put twice");
    }
    assert_eq!(
        h.node(1).stats().duplicates_skipped + h.node(2).stats().duplicates_skipped,
        2
    );
}

#[test]
fn a_replica_cut_off_keeps_serving_and_merges_the_state_it_is_given_on_rejoining() {
    let mut h = group_of(&[1, 2, 3]);
    h.isolate(3);
    let cut_off = h.causal_request(3, 30, 1, KvOp::put("z", "while-cut-off"), 0, None);
    h.tick(3);
    h.ok::<KvOutput>(cut_off);
    let majority = h.causal_request(1, 10, 1, KvOp::put("x", "majority"), 0, None);
    run_for(&mut h, 40);
    h.ok::<KvOutput>(majority);
    h.change_view(&[1, 2], None);
    run_for(&mut h, 40);
    // Node 3 rejoins: the transfer from node 1 must not wipe what it accepted.
    h.reconnect(3);
    h.change_view(&[1, 2, 3], Some(1));
    assert_eq!(h.node(3).stats().restores_merged, 1);
    assert_eq!(value(&h, 3, "z").as_deref(), Some("while-cut-off"));
    assert_eq!(value(&h, 3, "x").as_deref(), Some("majority"));
    run_for(&mut h, 100);
    for n in [1, 2, 3] {
        assert_eq!(
            value(&h, n, "z").as_deref(),
            Some("while-cut-off"),
            "node {n}"
        );
        assert_eq!(value(&h, n, "x").as_deref(), Some("majority"), "node {n}");
    }
}

#[test]
fn a_read_only_replica_refuses_updates_and_learns_them_by_gossip() {
    let mut read_only = config(2);
    read_only.read_only = true;
    let nodes = vec![
        (1, replica(1)),
        (2, replica_with(read_only, SharedLog::default())),
    ];
    let mut h = Harness::new("kv", nodes, |_| {});
    h.install(&[1, 2], None);
    let refused = h.causal_request(2, 10, 1, KvOp::put("x", "1"), 0, None);
    assert_eq!(
        h.reply(refused),
        Some(&Err(Refusal::NotPrimary { primary: None }))
    );
    let put = h.causal_request(1, 10, 1, KvOp::put("x", "1"), 0, None);
    run_for(&mut h, 40);
    let t = token(&h.ok::<KvOutput>(put));
    let get = h.causal_request(2, 10, 2, KvOp::get("x"), 0, Some(t));
    h.tick(2);
    assert_eq!(h.ok::<KvOutput>(get).output, KvOutput::value("1"));
}

#[test]
fn a_full_log_refuses_updates_as_busy_and_changes_nothing() {
    let mut small = config(1);
    small.log_max = 2;
    let mut h = Harness::new(
        "kv",
        vec![
            (1, replica_with(small, SharedLog::default())),
            (2, replica(2)),
        ],
        |_| {},
    );
    h.install(&[1, 2], None);
    h.isolate(2); // nothing folds: node 2 never reports
    for seq in 1..=2 {
        h.causal_request(1, 10, seq, KvOp::put("x", seq.to_string()), 0, None);
    }
    let third = h.causal_request(1, 10, 3, KvOp::put("x", "3"), 0, None);
    assert_eq!(
        h.reply(third),
        Some(&Err(Refusal::Busy(BusyReason::Overloaded)))
    );
    assert_eq!(h.node(1).log_len(), 2);
    assert_eq!(h.node(1).stats().refused_log_full, 1);
}

#[test]
fn a_restarted_replica_recovers_its_updates_and_never_reuses_a_number() {
    let log = SharedLog::default();
    let mut h = Harness::new(
        "kv",
        vec![(1, replica_with(config(1), log.clone()))],
        |_| {},
    );
    h.install(&[1], None);
    let put = h.causal_request(1, 10, 1, KvOp::put("x", "1"), 0, None);
    h.tick(1);
    h.ok::<KvOutput>(put);
    // An update accepted and not synced when the power goes is not acknowledged either.
    let lost = h.causal_request(1, 10, 2, KvOp::put("x", "2"), 0, None);
    assert!(h.reply(lost).is_none());
    let memory = log.memory();
    let recovered = memory.recover(true);
    let restarted = Kv::recover(config(1), Box::new(memory), recovered, KvStore::new()).unwrap();
    assert_eq!(restarted.replica_ts().get(1), 1);
    assert_eq!(restarted.value().value("x"), Some("1"));
}

#[test]
fn updates_that_depend_on_a_crashed_replicas_update_wait_for_its_restart_then_converge() {
    let logs: BTreeMap<u64, SharedLog> = (1..=3).map(|n| (n, SharedLog::default())).collect();
    let mut h = Harness::new(
        "kv",
        (1..=3).map(|n| (n, replica_with(config(n), logs[&n].clone()))),
        |_| {},
    );
    h.install(&[1, 2, 3], None);
    run_for(&mut h, 40);
    // Client 10 writes at node 1, which crashes before gossiping it.
    let first = h.causal_request(1, 10, 1, KvOp::put("a", "1"), 0, None);
    h.tick(1);
    let t = token(&h.ok::<KvOutput>(first));
    h.crash(1);
    h.change_view(&[2, 3], None);
    // Its next write, at node 2, depends on it; client 20's does not.
    let second = h.causal_request(2, 10, 2, KvOp::put("b", "2"), 0, Some(t));
    let other = h.causal_request(2, 20, 1, KvOp::put("c", "3"), 0, None);
    run_for(&mut h, 100);
    h.ok::<KvOutput>(second);
    h.ok::<KvOutput>(other);
    assert_eq!(value(&h, 2, "b"), None, "applied before what it depends on");
    // Node 1 restarts from its disk and rejoins with node 2's state.
    let memory = logs[&1].memory();
    let recovered = memory.recover(false);
    let restarted = Kv::recover(config(1), Box::new(memory), recovered, KvStore::new()).unwrap();
    h.nodes.insert(1, restarted);
    h.change_view(&[2, 3, 1], Some(2));
    run_for(&mut h, 200);
    for n in [1, 2, 3] {
        for (key, v) in [("a", "1"), ("b", "2"), ("c", "3")] {
            assert_eq!(value(&h, n, key).as_deref(), Some(v), "node {n} key {key}");
        }
    }
}

/// Found by the simulator (seed 395): a joiner that took gossip before its first view folded
/// entries by a timestamp table naming only itself, and diverged from the group.
#[test]
fn gossip_before_the_first_view_is_ignored() {
    let mut h = Harness::new("kv", vec![(1, replica(1)), (4, replica(4))], |_| {});
    gossip(&mut h, 1, 4, vec![entry(1, 1, 1, &[], KvOp::put("x", "a"))]);
    assert_eq!(h.node(4).log_len(), 0);
    assert_eq!(h.node(4).stats().folded, 0);
    assert_eq!(h.node(4).replica_ts(), &VectorClock::default());
}
