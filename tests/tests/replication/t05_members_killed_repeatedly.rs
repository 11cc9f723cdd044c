//! A member killed with SIGKILL many times, at random points while clients write (in the
//! middle of its log writes too), always restarts from its data directory (a torn log tail is
//! cut off, never applied), rejoins, and the group's history stays linearizable with every
//! acknowledged write present.

use super::fixture::*;
use rand::{Rng, SeedableRng};
use std::time::Duration;
use viewsync_services::frontend::Routing;
use viewsync_services::state_machine::kv::KvOp;
use viewsync_tests::process::{timing_shared, CONVERGE_TIMEOUT};

#[test]
fn members_killed_at_random_points_recover_a_consistent_state() {
    let _shared = timing_shared();
    let mut cluster = start_cluster(3, "passive", "kv", "fsync");
    let recorder = Recorder::new();
    let clients = Clients::start(
        3,
        cluster.addrs(),
        key(&cluster),
        &recorder,
        Duration::ZERO,
        |c, n, _| {
            let k = format!("k{}", n % 8);
            if n % 3 == 0 {
                KvOp::get(k)
            } else {
                KvOp::put(k, format!("c{c}-{n}"))
            }
        },
        Routing::Primary,
    );
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    // Backups and the primary alike; each restart must recover from its own directory.
    for victim in [3, 2, 3, 1, 3] {
        std::thread::sleep(Duration::from_millis(rng.gen_range(200..700)));
        cluster.node(victim).sigkill();
        drop(cluster.remove(victim));
        let others: Vec<u64> = cluster.ids();
        cluster.wait_converged(&others, CONVERGE_TIMEOUT);
        restart(&mut cluster, victim, "passive", "kv", "fsync");
        cluster.wait_converged(&[1, 2, 3], CONVERGE_TIMEOUT);
        let log = cluster.node(victim).stderr_lines().join("\n");
        assert!(
            log.contains("replica recovered its state"),
            "node {victim} recovered from its data directory:\n{log}"
        );
    }
    clients.stop();
    let keys: Vec<String> = (0..8).map(|k| format!("k{k}")).collect();
    read_back(&cluster, &recorder, &keys);
    assert_linearizable(&cluster, &recorder.history());
    for id in [1, 2, 3] {
        let log = cluster.node(id).stderr_lines().join("\n");
        assert!(!log.contains("replica stopped"), "node {id}: {log}");
    }
}
