//! Active replication on real processes: `strategy = "active"` and `"active-local-reads"`,
//! the same key-value state machine and front end as passive, with front ends spread over
//! the members (each sends everything to its own member, `Routing::Anywhere`).
//!
//! - concurrent clients while the view's first member (the total order's sequencer) is
//!   killed with SIGKILL and restarted from its data directory: the history, final reads of
//!   every key included, is linearizable (so every acknowledged write is read back);
//! - local reads: the history is sequentially consistent while a member is killed and
//!   restarted;
//! - `viewsync client` against an active group, through any member.

use super::fixture::*;
use rand::Rng;
use std::time::{Duration, Instant};
use viewsync_services::frontend::Routing;
use viewsync_services::state_machine::kv::KvOp;
use viewsync_tests::process::{timing_shared, CONVERGE_TIMEOUT};

/// Kills `victim` with SIGKILL mid-load, waits for the others' view, restarts it from its
/// data directory and waits until all three are in one view again.
fn kill_and_restart(cluster: &mut viewsync_tests::process::Cluster, victim: u64, strategy: &str) {
    let killed_at = Instant::now();
    cluster.node(victim).sigkill();
    let _ = cluster.remove(victim);
    let survivors: Vec<u64> = [1, 2, 3].into_iter().filter(|n| *n != victim).collect();
    cluster.wait_converged(&survivors, CONVERGE_TIMEOUT);
    eprintln!(
        "the survivors installed a view without node {victim} {:?} after the kill",
        killed_at.elapsed()
    );
    std::thread::sleep(Duration::from_millis(1000));
    restart(cluster, victim, strategy, "kv", "grouped");
    cluster.wait_converged(&[1, 2, 3], CONVERGE_TIMEOUT);
}

/// Every member logged no stop, and `victim` recovered its state from its directory.
fn assert_recovered(cluster: &mut viewsync_tests::process::Cluster, victim: u64) {
    let log = cluster.node(victim).stderr_lines().join("\n");
    assert!(log.contains("replica recovered its state"), "{log}");
    for id in [1, 2, 3] {
        let log = cluster.node(id).stderr_lines().join("\n");
        assert!(!log.contains("replica stopped"), "node {id}: {log}");
    }
}

#[test]
fn kill_the_sequencer_under_load_lose_nothing_stay_linearizable() {
    let _shared = timing_shared();
    let mut cluster = start_cluster(3, "active", "kv", "grouped");
    let recorder = Recorder::new();
    let clients = Clients::start(
        6,
        cluster.addrs(),
        key(&cluster),
        &recorder,
        Duration::from_millis(3),
        mixed_op,
        Routing::Anywhere,
    );
    std::thread::sleep(Duration::from_millis(1500));
    // Node 1 is the view's first member: the total order's sequencer, and the member two
    // of the clients send to.
    kill_and_restart(&mut cluster, 1, "active");
    std::thread::sleep(Duration::from_millis(1000));
    let acknowledged = clients.stop();
    assert!(
        acknowledged.iter().all(|n| *n > 10),
        "every client made progress: {acknowledged:?}"
    );
    let keys: Vec<String> = MIXED_KEYS.iter().map(|k| k.to_string()).collect();
    read_back(&cluster, &recorder, &keys);
    assert_linearizable(&cluster, &recorder.history());
    assert_recovered(&mut cluster, 1);
}

#[test]
fn local_reads_stay_sequentially_consistent_while_a_member_is_killed() {
    let _shared = timing_shared();
    let mut cluster = start_cluster(3, "active-local-reads", "kv", "grouped");
    let recorder = Recorder::new();
    // Few clients and keys: the sequential-consistency search covers the whole history.
    let clients = Clients::start(
        3,
        cluster.addrs(),
        key(&cluster),
        &recorder,
        Duration::from_millis(15),
        |c, n, rng| {
            let k = ["a", "b"][rng.gen_range(0..2)];
            if rng.gen_bool(0.4) {
                KvOp::put(k, format!("c{c}-{n}"))
            } else {
                KvOp::get(k)
            }
        },
        Routing::Anywhere,
    );
    std::thread::sleep(Duration::from_millis(800));
    kill_and_restart(&mut cluster, 2, "active-local-reads");
    std::thread::sleep(Duration::from_millis(500));
    let acknowledged = clients.stop();
    assert!(
        acknowledged.iter().all(|n| *n > 5),
        "every client made progress: {acknowledged:?}"
    );
    assert_sequentially_consistent(&cluster, "local-reads-history.jsonl", &recorder.history());
    assert_recovered(&mut cluster, 2);
}

#[test]
fn the_client_command_talks_to_an_active_group_through_any_member() {
    let _shared = timing_shared();
    let cluster = start_cluster(3, "active", "kv", "grouped");
    let client = |via: u64, args: &[&str]| viewsync_client(&cluster, cluster.addr(via), args);
    let out = client(3, &["put", "colour", "blue"]);
    assert_eq!(
        (out.status.code(), out.stdout.trim()),
        (Some(0), "ok"),
        "{out:?}"
    );
    // Read at another member, sent to it (every member takes requests): ordered, so it
    // sees the acknowledged write.
    let out = client(2, &["--reads", "local", "get", "colour"]);
    assert_eq!(
        (out.status.code(), out.stdout.trim()),
        (Some(0), "value=blue"),
        "{out:?}"
    );
    let out = client(1, &["cas", "colour", "red", "green"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(out.stdout.contains("cas failed"), "{out:?}");
    // A bank request to the key-value group: refused, nothing changed.
    let out = client(2, &["bank", "set", "colour", "5"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let out = client(3, &["--reads", "local", "get", "colour"]);
    assert_eq!(out.stdout.trim(), "value=blue", "{out:?}");
}
