//! A node that cannot go on says so: a member that lost the majority of its view, and a node
//! whose seeds never answer (it does not found a second group), log a WARN line saying what
//! they wait for, and `viewsync members` prints `blocked: …` and exits with code 3.

use std::time::Duration;
use viewsync_tests::process::{members_cli, parse_members, timing_shared, Cluster, GROUP};

/// `viewsync members`'s exit code for a blocked node.
const EXIT_BLOCKED: i32 = 3;

/// Asks `members` through `via` until it reports the node blocked; returns its stdout.
fn wait_blocked(cluster: &Cluster, id: u64, timeout: Duration) -> String {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let out = members_cli(GROUP, cluster.addr(id), Some(&cluster.key_file));
        if out.status.code() == Some(EXIT_BLOCKED) {
            return out.stdout;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "node {id} never reported blocked; last answer {}: {}{}",
            out.status,
            out.stdout,
            out.stderr
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_member_without_a_majority_says_it_is_blocked() {
    let _timing = timing_shared();
    let (mut cluster, view) = Cluster::start(3);
    cluster.node(2).sigkill();
    cluster.node(3).sigkill();
    let stdout = wait_blocked(&cluster, 1, Duration::from_secs(15));
    // It still shows the view it is blocked in, then why.
    let answer = parse_members(&stdout);
    assert_eq!(answer.sorted_nodes(), vec![1, 2, 3], "{stdout}");
    let blocked = stdout
        .lines()
        .find(|l| l.starts_with("blocked:"))
        .unwrap_or_else(|| panic!("no blocked line: {stdout}"));
    assert!(
        blocked.contains("no majority of view")
            && blocked.contains("reachable: 1 of voters")
            && blocked.contains("2 needed"),
        "{blocked}"
    );
    assert!(answer.epoch >= view.epoch);
    // The node's log says it too, at WARN.
    let line = cluster
        .node(1)
        .wait_stderr(&["WARN", "blocked", "no majority"], Duration::from_secs(10));
    assert!(line.contains(GROUP), "{line}");
}

#[test]
fn a_node_whose_seeds_never_answer_waits_and_says_so() {
    let _timing = timing_shared();
    let (mut cluster, _) = Cluster::start(1);
    let gone = cluster.addr(1);
    cluster.node(1).sigkill();
    // Node 2 only knows the dead node 1 and is not configured to found the group: it must
    // keep asking, not start a second group of its own.
    cluster.launch(2, &[gone], "");
    let stdout = wait_blocked(&cluster, 2, Duration::from_secs(15));
    assert!(
        stdout.starts_with("blocked: waiting for the group"),
        "no view, only the reason: {stdout}"
    );
    cluster
        .node(2)
        .wait_stderr(&["WARN", "no seed answered"], Duration::from_secs(10));
    let views = cluster.node(2).views_since(0);
    assert!(views.is_empty(), "node 2 founded a group: {views:?}");
}

#[test]
fn a_founder_restarted_from_its_data_dir_never_founds_again() {
    let _timing = timing_shared();
    let mut cluster = viewsync_tests::process::Cluster::new();
    let data = cluster.dir.path().join("data1");
    let extra = format!("data_dir = {:?}\n", data.display().to_string());
    // First start: node 1 founds the group (no seeds, `bootstrap`).
    cluster.launch(1, &[], &extra);
    cluster.wait_converged(&[1], Duration::from_secs(10));
    cluster.node(1).sigkill();
    let _old = cluster.remove(1);
    // The same configuration again: its data dir says it was a member, so `bootstrap` no
    // longer applies and, with nobody to ask, it waits instead of founding a second group.
    cluster.launch(1, &[], &extra);
    let stdout = wait_blocked(&cluster, 1, Duration::from_secs(15));
    assert!(
        stdout.starts_with("blocked: waiting for the group"),
        "{stdout}"
    );
    let views = cluster.node(1).views_since(0);
    assert!(
        views.is_empty(),
        "the restarted founder founded again: {views:?}"
    );
    cluster
        .node(1)
        .wait_stderr(&["bootstrap ignored"], Duration::from_secs(5));
}
