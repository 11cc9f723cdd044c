//! A replica killed and restarted from its data directory catches up from the position it
//! recovered by a delta of the updates it missed (the provider still holds them), not by the
//! whole state; one whose data directory is gone (position 0) gets the whole snapshot. The
//! caught-up replica later serves as the primary, and the history, final reads of every key
//! included, stays linearizable.

use super::fixture::*;
use std::time::Duration;
use viewsync_services::frontend::Routing;
use viewsync_services::state_machine::kv::{KvOp, KvOutput, KvStore};
use viewsync_tests::process::{timing_shared, Cluster, CONVERGE_TIMEOUT};

const KEYS: [&str; 4] = ["a", "b", "c", "d"];

/// `count` writes (and a read every third) through the primary, from front end `client`.
fn write(cluster: &Cluster, recorder: &Recorder<KvOp, KvOutput>, client: &str, count: u64) {
    let key = key(cluster);
    let seeds = cluster.addrs();
    runtime().block_on(async {
        let mut fe = front_end::<KvStore>(seeds, key, "kv", Routing::Primary);
        for n in 0..count {
            let k = KEYS[n as usize % KEYS.len()];
            let op = if n % 3 == 2 {
                KvOp::get(k)
            } else {
                KvOp::put(k, format!("{client}-{n}"))
            };
            recorder.call(&mut fe, op).await.expect("answered");
        }
    });
}

/// The numbers of `replica caught up from position P to N by a delta of K records`.
fn caught_up(line: &str) -> (u64, u64, u64) {
    let rest = line
        .split("caught up from position ")
        .nth(1)
        .expect("the catch-up line");
    let words: Vec<&str> = rest.split_whitespace().collect();
    // P to N by a delta of K records
    let number = |w: &str| {
        w.parse::<u64>()
            .unwrap_or_else(|_| panic!("a number in {line}"))
    };
    (number(words[0]), number(words[2]), number(words[7]))
}

#[test]
fn a_restarted_backup_catches_up_by_a_delta_and_later_serves_as_primary() {
    let _shared = timing_shared();
    let mut cluster = start_cluster(3, "passive", "kv", "fsync");
    let recorder = Recorder::new();
    write(&cluster, &recorder, "before", 30);

    // Backup 3 is killed; the others go on.
    cluster.node(3).sigkill();
    drop(cluster.remove(3));
    cluster.wait_converged(&[1, 2], CONVERGE_TIMEOUT);
    write(&cluster, &recorder, "while-down", 45);

    restart(&mut cluster, 3, "passive", "kv", "fsync");
    cluster.wait_converged(&[1, 2, 3], CONVERGE_TIMEOUT);
    let line = cluster.node(3).wait_stderr(
        &["replica caught up from position"],
        Duration::from_secs(10),
    );
    let (from, to, records) = caught_up(&line);
    // 20 writes before the kill (reads are not updates), 30 while it was down.
    assert_eq!(from, 20, "{line}");
    assert_eq!((to, records), (50, 30), "{line}");
    let log = cluster.node(3).stderr_lines().join("\n");
    assert!(!log.contains("replica restored a full snapshot"), "{log}");
    let provider = cluster.node(1).stderr_lines().join("\n");
    assert!(
        provider.contains("serving a joiner a delta from its position"),
        "{provider}"
    );

    // It serves: the primary and then the next primary go, and node 3 (the oldest left)
    // answers from the state the delta built.
    write(&cluster, &recorder, "after", 15);
    cluster.node(1).sigkill();
    drop(cluster.remove(1));
    cluster.wait_converged(&[2, 3], CONVERGE_TIMEOUT);
    restart(&mut cluster, 1, "passive", "kv", "fsync");
    cluster.wait_converged(&[1, 2, 3], CONVERGE_TIMEOUT);
    cluster.node(1).wait_stderr(
        &["replica caught up from position"],
        Duration::from_secs(10),
    );
    cluster.node(2).sigkill();
    drop(cluster.remove(2));
    let view = cluster.wait_converged(&[1, 3], CONVERGE_TIMEOUT);
    assert_eq!(view.coordinator, 3, "node 3 is the primary now");
    write(&cluster, &recorder, "last", 9);
    let key = key(&cluster);
    runtime().block_on(async {
        let mut fe = front_end::<KvStore>(cluster.addrs(), key, "kv", Routing::Primary);
        for k in KEYS {
            recorder
                .call(&mut fe, KvOp::get(k))
                .await
                .expect("the final reads are answered");
        }
    });
    assert_linearizable(&cluster, &recorder.history());
    for id in cluster.ids() {
        let log = cluster.node(id).stderr_lines().join("\n");
        assert!(!log.contains("replica stopped"), "node {id}: {log}");
    }
}

#[test]
fn a_restarted_member_without_its_data_directory_gets_the_whole_snapshot() {
    let _shared = timing_shared();
    let mut cluster = start_cluster(3, "passive", "kv", "fsync");
    let recorder = Recorder::new();
    write(&cluster, &recorder, "before", 12);
    cluster.node(3).sigkill();
    drop(cluster.remove(3));
    cluster.wait_converged(&[1, 2], CONVERGE_TIMEOUT);
    // Its disk is lost: it restarts empty, at position 0.
    let data = cluster.dir.path().join("data3");
    std::fs::remove_dir_all(&data).expect("the data directory is removed");
    write(&cluster, &recorder, "while-down", 6);
    restart(&mut cluster, 3, "passive", "kv", "fsync");
    cluster.wait_converged(&[1, 2, 3], CONVERGE_TIMEOUT);
    let line = cluster.node(3).wait_stderr(
        &["replica restored a full snapshot at"],
        Duration::from_secs(10),
    );
    assert!(line.contains("snapshot at 12"), "8 + 4 writes: {line}");
    let log = cluster.node(3).stderr_lines().join("\n");
    assert!(!log.contains("caught up from position"), "{log}");
    write(&cluster, &recorder, "after", 6);
    assert_linearizable(&cluster, &recorder.history());
}
