//! With a `data_dir`, a node's incarnation grows across restarts whatever the clock says. A
//! data directory holding an incarnation far ahead of the clock (as if the clock had been
//! stepped back since the last run) makes the node start above it, and a restart goes higher
//! still; its peers take the restarted node in, replacing the old incarnation (they would
//! refuse its frames as stale had the restart taken the clock's lower value).

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use viewsync_tests::process::{
    members_cli, parse_members, timing_shared, Cluster, CONVERGE_TIMEOUT, GROUP,
};

/// Ten years ahead of the clock, in microseconds.
fn far_future() -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_micros() as u64;
    now + 10 * 365 * 24 * 3600 * 1_000_000
}

fn recorded(data_dir: &Path) -> u64 {
    let path = data_dir.join("incarnation");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.trim()
        .parse()
        .unwrap_or_else(|e| panic!("{}: {text:?}: {e}", path.display()))
}

/// Checks through nodes 2 and 3 that node 1 is in the group as incarnation `incarnation`, and
/// that neither refused a frame of it as stale.
fn assert_node1_is(cluster: &mut Cluster, incarnation: u64) {
    let view = cluster.wait_converged(&[1, 2, 3], CONVERGE_TIMEOUT);
    for via in [2, 3] {
        let out = members_cli(GROUP, cluster.addr(via), Some(&cluster.key_file));
        assert!(out.status.success(), "{}\n{}", out.status, out.stderr);
        let answer = parse_members(&out.stdout);
        assert_eq!(answer.epoch, view.epoch, "{}", out.stdout);
        assert_eq!(
            answer.member(1),
            Some((1, incarnation, cluster.addr(1))),
            "via node {via}: node 1 is its latest process:\n{}",
            out.stdout
        );
        let stale: Vec<String> = cluster
            .node(via)
            .stderr_lines()
            .into_iter()
            .filter(|l| l.contains("stale incarnation"))
            .collect();
        assert!(stale.is_empty(), "node {via} refused frames: {stale:#?}");
    }
}

#[test]
fn incarnations_grow_across_restarts_even_behind_the_clock() {
    let _timing = timing_shared();
    let mut cluster = Cluster::new();
    // Relative to the configuration file's directory (the cluster's directory).
    let extra = "data_dir = \"data/node1\"\n";
    let data_dir = cluster.dir.path().join("data/node1");
    std::fs::create_dir_all(&data_dir).expect("data dir");
    let future = far_future();
    std::fs::write(data_dir.join("incarnation"), format!("{future}\n")).expect("write");

    let first = cluster.launch(1, &[], extra).incarnation;
    assert!(
        first > future,
        "the node starts above the recorded incarnation {future}: it printed {first}"
    );
    assert_eq!(recorded(&data_dir), first, "the data dir records it");
    let addr1 = cluster.addr(1);
    cluster.launch(2, &[addr1], "");
    let addr2 = cluster.addr(2);
    cluster.launch(3, &[addr1, addr2], "");
    cluster.wait_converged(&[1, 2, 3], CONVERGE_TIMEOUT);
    let peers = [addr2, cluster.addr(3)];

    // A crash and an immediate restart: the clock is still ten years behind the last run.
    cluster.node(1).sigkill();
    cluster.node(1).wait_exit(Duration::from_secs(5));
    let _crashed = cluster.remove(1);
    let second = cluster.launch(1, &peers, extra).incarnation;
    assert!(
        second > first,
        "a restart gets a larger incarnation: first {first}, then {second}"
    );
    assert_eq!(recorded(&data_dir), second);
    assert_node1_is(&mut cluster, second);

    // Once more, after a graceful stop.
    cluster.node(1).sigterm();
    cluster.node(1).wait_exit(Duration::from_secs(10));
    let _stopped = cluster.remove(1);
    let third = cluster.launch(1, &peers, extra).incarnation;
    assert!(
        third > second,
        "another restart grows it again: {second}, then {third}"
    );
    assert_eq!(recorded(&data_dir), third);
    assert_node1_is(&mut cluster, third);
    println!("incarnations: recorded {future}, then {first}, {second}, {third}");
}
