//! Concurrent clients against a 3-member passive group while the primary is killed with
//! SIGKILL and restarted from its data directory: the history is linearizable (reads
//! included), and every acknowledged write is there at the end (final reads of every key are
//! part of the history).

use super::fixture::*;
use std::time::{Duration, Instant};
use viewsync_services::frontend::Routing;
use viewsync_tests::process::{timing_shared, CONVERGE_TIMEOUT};

#[test]
fn kill_the_primary_under_load_lose_nothing_stay_linearizable() {
    let _shared = timing_shared();
    let mut cluster = start_cluster(3, "passive", "kv", "grouped");
    let recorder = Recorder::new();
    let clients = Clients::start(
        5,
        cluster.addrs(),
        key(&cluster),
        &recorder,
        Duration::from_millis(3),
        mixed_op,
        Routing::Primary,
    );
    std::thread::sleep(Duration::from_millis(1500));
    let primary = 1;
    let killed_at = Instant::now();
    cluster.node(primary).sigkill();
    let _ = cluster.remove(primary);
    cluster.wait_converged(&[2, 3], CONVERGE_TIMEOUT);
    eprintln!(
        "the survivors installed a view without the primary {:?} after the kill",
        killed_at.elapsed()
    );
    std::thread::sleep(Duration::from_millis(1500));
    restart(&mut cluster, primary, "passive", "kv", "grouped");
    cluster.wait_converged(&[1, 2, 3], CONVERGE_TIMEOUT);
    std::thread::sleep(Duration::from_millis(1000));
    let acknowledged = clients.stop();
    assert!(
        acknowledged.iter().all(|n| *n > 10),
        "every client made progress: {acknowledged:?}"
    );
    let keys: Vec<String> = MIXED_KEYS.iter().map(|k| k.to_string()).collect();
    read_back(&cluster, &recorder, &keys);
    assert_linearizable(&cluster, &recorder.history());
    // The restarted member recovered from its data directory, and no replica stopped.
    let log = cluster.node(primary).stderr_lines().join("\n");
    assert!(log.contains("replica recovered its state"), "{log}");
    for id in [1, 2, 3] {
        let log = cluster.node(id).stderr_lines().join("\n");
        assert!(!log.contains("replica stopped"), "node {id}: {log}");
    }
}
