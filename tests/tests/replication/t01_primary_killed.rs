//! Concurrent clients against a 3-member passive group while the primary is killed with
//! SIGKILL and restarted from its data directory: the history is linearizable (reads
//! included), and every acknowledged write is there at the end (final reads of every key are
//! part of the history).

use super::fixture::*;
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use viewsync_services::frontend::Routing;
use viewsync_services::state_machine::kv::{KvOp, KvStore};
use viewsync_tests::process::{timing_shared, CONVERGE_TIMEOUT};

const KEYS: [&str; 4] = ["a", "b", "c", "d"];

#[test]
fn kill_the_primary_under_load_lose_nothing_stay_linearizable() {
    let _shared = timing_shared();
    let mut cluster = start_cluster(3, "passive", "kv", "grouped");
    let seeds = cluster.addrs();
    let key = key(&cluster);
    let recorder = Recorder::new();
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..5u64)
        .map(|c| {
            let (seeds, key, recorder, stop) =
                (seeds.clone(), key.clone(), recorder.clone(), stop.clone());
            std::thread::spawn(move || {
                runtime().block_on(async move {
                    let mut fe = front_end::<KvStore>(seeds, key, "kv", Routing::Primary);
                    let mut rng = rand::rngs::StdRng::seed_from_u64(c);
                    let mut n = 0u64;
                    let mut acknowledged = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        let k = KEYS[rng.gen_range(0..KEYS.len())];
                        let op = match rng.gen_range(0..10) {
                            0..=3 => KvOp::put(k, format!("c{c}-{n}")),
                            4..=7 => KvOp::get(k),
                            8 => KvOp::delete(k),
                            _ => KvOp::cas(k, None, format!("c{c}-{n}")),
                        };
                        if recorder.call(&mut fe, op).await.is_ok() {
                            acknowledged += 1;
                        }
                        tokio::time::sleep(Duration::from_millis(3)).await;
                    }
                    acknowledged
                })
            })
        })
        .collect();

    std::thread::sleep(Duration::from_millis(1500));
    let primary = 1;
    let killed_at = Instant::now();
    cluster.node(primary).sigkill();
    let _ = cluster.remove(primary);
    let survivors = [2, 3];
    cluster.wait_converged(&survivors, CONVERGE_TIMEOUT);
    eprintln!(
        "the survivors installed a view without the primary {:?} after the kill",
        killed_at.elapsed()
    );
    std::thread::sleep(Duration::from_millis(1500));
    restart(&mut cluster, primary, "passive", "kv", "grouped");
    cluster.wait_converged(&[1, 2, 3], CONVERGE_TIMEOUT);
    std::thread::sleep(Duration::from_millis(1000));
    stop.store(true, Ordering::Relaxed);
    let acknowledged: Vec<u64> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    assert!(
        acknowledged.iter().all(|n| *n > 10),
        "every client made progress: {acknowledged:?}"
    );

    // Every key read at the end, through a new front end: part of the history, so a lost
    // acknowledged write makes it non-linearizable.
    runtime().block_on(async {
        let mut fe = front_end::<KvStore>(cluster.addrs(), key, "kv", Routing::Primary);
        for k in KEYS {
            recorder
                .call(&mut fe, KvOp::get(k))
                .await
                .expect("the final reads are answered");
        }
    });
    let history = recorder.history();
    assert_linearizable(&cluster, &history);
    // The restarted member recovered from its data directory, and no replica stopped.
    let log = cluster.node(primary).stderr_lines().join("\n");
    assert!(log.contains("replica recovered its state"), "{log}");
    for id in [1, 2, 3] {
        let log = cluster.node(id).stderr_lines().join("\n");
        assert!(!log.contains("replica stopped"), "node {id}: {log}");
    }
}
