//! `gossip` on three real `viewsync node` processes: concurrent front ends (each keeping its
//! `prev`) talk to different members while one member is SIGKILLed and restarted from its
//! data directory and another is SIGSTOPped for longer than the failure detector's timeout
//! (the group excludes it; it rejoins when continued, merging the state it is given with what
//! it holds) and is used again afterwards. The clients' history is judged causally
//! consistent, and every member ends with the same value for every key.

use super::fixture::*;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use viewsync_services::frontend::Routing;
use viewsync_services::history::causal::{self, Causality};
use viewsync_services::state_machine::kv::{KvOp, KvOutput, KvStore};
use viewsync_tests::process::{timing_shared, CONVERGE_TIMEOUT};

const KEYS: usize = 6;

fn op(c: u64, n: u64, rng: &mut rand::rngs::StdRng) -> KvOp {
    let k = format!("k{}", rng.gen_range(0..KEYS));
    match rng.gen_range(0..10) {
        0..=3 => KvOp::put(k, format!("c{c}-{n}")),
        4 => KvOp::delete(k),
        _ => KvOp::get(k),
    }
}

/// Sends `SIG<name>` to the child process `pid` (this test's own node process).
fn signal(pid: u32, name: &str) {
    let status = std::process::Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{name} {pid}");
}

/// Every key's value at member `id`, read by a front end that talks to it alone.
fn values_at(cluster: &mut viewsync_tests::process::Cluster, id: u64) -> Vec<Option<String>> {
    let (addr, key) = (cluster.addr(id), key(cluster));
    runtime().block_on(async {
        let mut fe = front_end::<KvStore>(vec![addr], key, "kv", Routing::Anywhere);
        let mut values = Vec::new();
        for k in 0..KEYS {
            match fe.call(KvOp::get(format!("k{k}"))).await {
                Ok(KvOutput::Value(v)) => values.push(v),
                other => panic!("read of k{k} at node {id}: {other:?}"),
            }
        }
        values
    })
}

#[test]
fn gossip_members_killed_and_stopped_stay_causal_and_converge() {
    let _shared = timing_shared();
    let mut cluster = start_cluster(3, "gossip", "kv", "grouped");
    let addrs = cluster.addrs();
    let recorder = Recorder::new();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Three clients, each starting at a different member (and staying while it answers).
    let workers: Vec<_> = (0..3u64)
        .map(|c| {
            let mut seeds = addrs.clone();
            seeds.rotate_left(c as usize);
            let (key, recorder, stop) = (key(&cluster), recorder.clone(), stop.clone());
            std::thread::spawn(move || {
                runtime().block_on(async move {
                    let mut fe = front_end::<KvStore>(seeds, key, "kv", Routing::Anywhere);
                    let mut rng = rand::rngs::StdRng::seed_from_u64(100 + c);
                    let (mut n, mut ok) = (0, 0);
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        n += 1;
                        if recorder.call(&mut fe, op(c, n, &mut rng)).await.is_ok() {
                            ok += 1;
                        }
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    ok
                })
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(800));

    // SIGKILL node 3 and restart it from its data directory.
    cluster.node(3).sigkill();
    drop(cluster.remove(3));
    cluster.wait_converged(&[1, 2], CONVERGE_TIMEOUT);
    std::thread::sleep(Duration::from_millis(500));
    restart(&mut cluster, 3, "gossip", "kv", "grouped");
    cluster.wait_converged(&[1, 2, 3], CONVERGE_TIMEOUT);

    // SIGSTOP node 2 for three seconds (the failure detector suspects within one): the
    // others install a view without it and the clients go on at them.
    let pid = cluster.node(2).pid();
    signal(pid, "STOP");
    std::thread::sleep(Duration::from_secs(3));
    signal(pid, "CONT");
    cluster.wait_converged(&[1, 2, 3], CONVERGE_TIMEOUT);
    // The continued member is used again.
    std::thread::sleep(Duration::from_millis(800));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let acknowledged: Vec<u64> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    assert!(acknowledged.iter().all(|n| *n > 10), "{acknowledged:?}");

    let history = recorder.history();
    let path = save_history(&cluster, "gossip-history.jsonl", &history);
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

    // Convergence: once gossip has had its rounds, every member holds the same values.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let values: BTreeMap<u64, Vec<Option<String>>> = (1..=3)
            .map(|id| (id, values_at(&mut cluster, id)))
            .collect();
        if values[&1] == values[&2] && values[&2] == values[&3] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "members did not converge: {values:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    for id in [1, 2, 3] {
        let log = cluster.node(id).stderr_lines().join("\n");
        assert!(!log.contains("replica stopped"), "node {id}: {log}");
    }
}
