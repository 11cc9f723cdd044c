//! (b) `gossip` across a partition: member 3 is cut off (its bridge port down); both sides
//! keep answering reads and writes (member 3, blocked in the group, serves its clients from
//! its own state), each side's writes stay on its side while the cut lasts, and after the
//! heal the group is one view again and every member holds the same value for every key,
//! the writes of both sides included. The clients' history is causally consistent.

use crate::harness::*;
use crate::replication::{save_history, Recorder};
use rand::Rng;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use viewsync_services::frontend::{FrontEnd, FrontEndConfig, Routing};
use viewsync_services::history::causal::{self, Causality};
use viewsync_services::state_machine::kv::{KvOp, KvOutput, KvStore};
use viewsync_tests::process::GROUP;

const KEYS: usize = 6;

fn op(c: u64, n: u64, rng: &mut rand::rngs::StdRng) -> KvOp {
    let k = format!("k{}", rng.gen_range(0..KEYS));
    match rng.gen_range(0..10) {
        0..=3 => KvOp::put(k, format!("c{c}-{n}")),
        4 => KvOp::delete(k),
        _ => KvOp::get(k),
    }
}

/// Calls `ops` in order through one front end inside host `host_name` talking to `member`
/// alone, recorded; returns the outputs (panics on an error).
fn calls_at(
    p: &Partitioned,
    host_name: &str,
    member: u64,
    recorder: &Recorder<KvOp, KvOutput>,
    ops: Vec<KvOp>,
) -> Vec<KvOutput> {
    let (addr, key, recorder) = (p.cluster.addr(member), p.key(), recorder.clone());
    p.net
        .spawn_in(host_name, move || {
            runtime().block_on(async move {
                let mut config = FrontEndConfig::new(group(), vec![addr], "kv");
                config.key = Some(key);
                config.routing = Routing::Anywhere;
                config.attempt_timeout = Duration::from_secs(1);
                config.deadline = Duration::from_secs(10);
                let mut fe = FrontEnd::<KvStore>::new(config);
                let mut outputs = Vec::new();
                for op in ops {
                    let sent = Instant::now();
                    match recorder.call(&mut fe, op.clone()).await {
                        Ok(output) => outputs.push(output),
                        Err(e) => panic!("{op:?} at node {member}: {e}"),
                    }
                    // Answered from the member's own state, never waiting for the other
                    // side (a front end told the member is blocked first tries the other
                    // members it knows, one attempt of a second each).
                    assert!(
                        sent.elapsed() < Duration::from_secs(5),
                        "{op:?} at node {member} took {:?}",
                        sent.elapsed()
                    );
                }
                outputs
            })
        })
        .join()
        .expect("the calling thread")
}

#[test]
fn gossip_serves_on_both_sides_of_a_partition_and_converges() {
    let test = "gossip_serves_on_both_sides_of_a_partition_and_converges";
    let Some(mut p) = Partitioned::start(test, 3, "gossip") else {
        return;
    };
    let (addrs, key) = (p.addrs(), p.key());
    let recorder = Recorder::new();
    let mut workers = Workers::default();
    let config = WorkerConfig {
        routing: Routing::Anywhere,
        attempt_timeout: Duration::from_secs(1),
        deadline: Duration::from_secs(20),
        pause: Duration::from_millis(10),
    };
    // Two clients on the client host through members 1 and 2, one inside member 3.
    for c in 0..2u64 {
        let mut seeds = addrs.clone();
        seeds.rotate_left(c as usize);
        workers.start(
            &p.net,
            CLIENT_HOST,
            Side::Majority,
            c,
            seeds,
            key.clone(),
            &recorder,
            config,
            op,
        );
    }
    workers.start(
        &p.net,
        &host(3),
        Side::Minority,
        2,
        vec![p.cluster.addr(3)],
        key.clone(),
        &recorder,
        config,
        op,
    );
    std::thread::sleep(Duration::from_secs(1));

    let marks: BTreeMap<u64, usize> = (1..=3).map(|id| (id, p.cluster.node(id).mark())).collect();
    p.net.cut(&host(3));
    for id in [1, 2] {
        p.cluster
            .node(id)
            .wait_view_from(marks[&id], "a view of 1 and 2", SETTLE, |v| {
                v.sorted_members() == [1, 2]
            });
    }
    let cut_view_at = Instant::now();

    // Each side writes a key of its own and reads it back at once; neither sees the other's.
    let minority = calls_at(
        &p,
        &host(3),
        3,
        &recorder,
        vec![
            KvOp::put("minority", "written-at-3"),
            KvOp::get("minority"),
            KvOp::get("majority"),
        ],
    );
    let majority = calls_at(
        &p,
        CLIENT_HOST,
        1,
        &recorder,
        vec![
            KvOp::put("majority", "written-at-1"),
            KvOp::get("majority"),
            KvOp::get("minority"),
        ],
    );
    assert_eq!(
        minority[1..],
        [KvOutput::value("written-at-3"), KvOutput::Value(None)],
        "member 3 while cut off"
    );
    assert_eq!(
        majority[1..],
        [KvOutput::value("written-at-1"), KvOutput::Value(None)],
        "member 1 while 3 is cut off"
    );
    // Member 3 is blocked in the group, and says so, while it serves.
    let via = p.cluster.addr(3).to_string();
    let deadline = Instant::now() + SETTLE;
    loop {
        let members = p.cli_in(3, &["members", GROUP, "--via", &via]);
        if members.status.code() == Some(3) {
            assert!(members.stdout.contains("no majority"), "{members:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "member 3 is not blocked: {members:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // And still serves.
    let again = calls_at(
        &p,
        &host(3),
        3,
        &recorder,
        vec![KvOp::put("minority", "again-at-3")],
    );
    assert_eq!(again, [KvOutput::Written]);
    std::thread::sleep(Duration::from_secs(2));
    let heal_at = Instant::now();
    assert!(
        p.cluster.node(3).views_since(marks[&3]).is_empty(),
        "member 3 installed a view while cut off"
    );
    let served = |side: Side| {
        workers
            .calls()
            .iter()
            .filter(|c| {
                c.side == side
                    && c.invoked >= cut_view_at
                    && c.returned <= heal_at
                    && c.result.is_ok()
            })
            .count()
    };
    let (served_majority, served_minority) = (served(Side::Majority), served(Side::Minority));
    eprintln!("while cut: {served_majority} calls answered with the majority, {served_minority} by member 3");
    assert!(served_majority > 0 && served_minority > 0);

    p.net.heal(&host(3));
    p.cluster.wait_converged(&[1, 2, 3], SETTLE);
    eprintln!("one view of 1, 2, 3 {:?} after the heal", heal_at.elapsed());
    std::thread::sleep(Duration::from_secs(1));
    workers.stop();

    let history = recorder.history();
    let path = save_history(&p.cluster, "gossip-history.jsonl", &history);
    match causal::check_history(&history).expect("a well-formed history") {
        Causality::Consistent { operations, .. } => {
            eprintln!(
                "{operations} operations causally consistent; kept at {}",
                path.display()
            )
        }
        bad => panic!(
            "the history kept at {} is not causally consistent: {bad}",
            path.display()
        ),
    }

    // Convergence: every key read at every member alone, until gossip has spread.
    let mut keys: Vec<String> = (0..KEYS).map(|k| format!("k{k}")).collect();
    keys.extend(["minority".into(), "majority".into()]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let values = loop {
        let values: BTreeMap<u64, Vec<Option<String>>> =
            (1..=3).map(|id| (id, values_at(&p, id, &keys))).collect();
        if values[&1] == values[&2] && values[&2] == values[&3] {
            break values;
        }
        assert!(
            Instant::now() < deadline,
            "members did not converge: {values:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    let at_1 = &values[&1];
    assert_eq!(at_1[KEYS].as_deref(), Some("again-at-3"), "{values:?}");
    assert_eq!(
        at_1[KEYS + 1].as_deref(),
        Some("written-at-1"),
        "{values:?}"
    );
    eprintln!(
        "every member holds the same {} keys, both sides' writes included",
        keys.len()
    );
}
