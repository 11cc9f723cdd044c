//! `viewsync leave` and `viewsync evict`: both change the membership through the existing
//! paths (graceful leave, suspicion), both need the cluster key.

use crate::operator;
use std::time::{Duration, Instant};
use viewsync_tests::process::{timing_shared, Cluster, CONVERGE_TIMEOUT};

/// The node leaves gracefully and stops (exit 0); the others install a view without it.
#[test]
fn leave_makes_the_node_leave_its_groups_and_stop() {
    let _shared = timing_shared();
    let (mut cluster, _) = Cluster::start(3);
    let key = cluster.key_file.clone();
    // Without the key: refused, nothing changes.
    let out = operator("leave", cluster.addr(3), None, &[]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(out.stderr.contains("--key-file"), "{}", out.stderr);
    assert!(cluster.node(3).is_running());

    let out = operator("leave", cluster.addr(3), Some(&key), &[]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        out.stdout.contains("node 3 is leaving groups [demo]"),
        "{}",
        out.stdout
    );
    let status = cluster.node(3).wait_exit(Duration::from_secs(30));
    assert!(status.success(), "node 3 exited with {status}");
    cluster.wait_converged(&[1, 2], CONVERGE_TIMEOUT);
}

/// A stopped member is removed at once by `evict`, long before the (one minute) failure
/// detector timeout would; without the key the command is refused.
#[test]
fn evict_removes_a_stopped_member_well_before_the_detector_would() {
    let _shared = timing_shared();
    let detector = "[failure_detector]\nsuspect_timeout_ms = 60000\n";
    let mut cluster = Cluster::new();
    for id in 1..=3 {
        let seeds = cluster.addrs();
        cluster.launch(id, &seeds, detector);
    }
    cluster.wait_converged(&[1, 2, 3], CONVERGE_TIMEOUT);
    let key = cluster.key_file.clone();
    cluster.node(3).signal("STOP");

    let out = operator("evict", cluster.addr(2), None, &["3", "--group", "demo"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(
        out.stderr.contains("refused") && out.stderr.contains("--key-file"),
        "{}",
        out.stderr
    );

    // Through node 2, which is not the coordinator: it passes the eviction on to node 1.
    let asked = Instant::now();
    let out = operator(
        "evict",
        cluster.addr(2),
        Some(&key),
        &["3", "--group", "demo"],
    );
    assert!(out.status.success(), "{out:?}");
    assert!(
        out.stdout.contains("passed on to the coordinator, node 1"),
        "{}",
        out.stdout
    );
    cluster.wait_converged(&[1, 2], Duration::from_secs(20));
    let took = asked.elapsed();
    assert!(
        took < Duration::from_secs(30),
        "eviction took {took:?}, not much faster than the 60 s detector"
    );
    // Evicting a node no longer in the view is declined, naming why.
    let out = operator(
        "evict",
        cluster.addr(1),
        Some(&key),
        &["3", "--group", "demo"],
    );
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(out.stderr.contains("not in view"), "{}", out.stderr);
    cluster.node(3).signal("CONT");
}

/// `--group`: the node leaves that group only and keeps running.
#[test]
fn leave_of_one_group_keeps_the_node_running() {
    let _shared = timing_shared();
    let (mut cluster, _) = Cluster::start(3);
    let key = cluster.key_file.clone();
    let from = cluster.node(3).mark();
    let out = operator("leave", cluster.addr(3), Some(&key), &["--group", "demo"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        out.stdout.contains("node 3 is leaving group demo"),
        "{}",
        out.stdout
    );
    cluster
        .node(3)
        .wait_line_from(from, "`left group=demo`", Duration::from_secs(20), |l| {
            l == "left group=demo"
        });
    cluster.wait_converged(&[1, 2], CONVERGE_TIMEOUT);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        cluster.node(3).is_running(),
        "node 3 stopped after leaving one group"
    );
    let out = operator("status", cluster.addr(3), None, &[]);
    assert!(out.stdout.contains("group demo: left"), "{}", out.stdout);
}
