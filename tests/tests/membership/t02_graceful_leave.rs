//! SIGTERM makes a node leave its group gracefully: it prints `left`, exits 0, and the others
//! install the view without it at once, without the failure detector (no suspicion).

use std::thread;
use std::time::Duration;
use viewsync_tests::process::{timing_exclusive, Cluster, ViewLine, CONVERGE_TIMEOUT, GROUP};

/// Well below what failure detection takes (400 ms of silence plus a 150 ms probe).
const LEAVE_TO_VIEW_MAX: Duration = Duration::from_millis(400);

fn leave_and_measure(pick: impl Fn(&ViewLine) -> u64) {
    let _timing = timing_exclusive();
    let (mut cluster, view) = Cluster::start(3);
    let leaver = pick(&view);
    let survivors: Vec<u64> = view
        .members
        .iter()
        .copied()
        .filter(|id| *id != leaver)
        .collect();
    let marks: Vec<usize> = survivors
        .iter()
        .map(|id| cluster.node(*id).mark())
        .collect();
    let leaver_mark = cluster.node(leaver).mark();

    let sent_at = cluster.node(leaver).sigterm();

    let expected_left = format!("left group={GROUP}");
    cluster.node(leaver).wait_line_from(
        leaver_mark,
        &format!("`{expected_left}` after SIGTERM"),
        Duration::from_secs(5),
        |l| l == expected_left,
    );
    let status = cluster.node(leaver).wait_exit(Duration::from_secs(5));
    assert_eq!(
        status.code(),
        Some(0),
        "node {leaver} after SIGTERM: {status}"
    );

    let mut latencies = Vec::new();
    let mut new_views = Vec::new();
    for (id, mark) in survivors.iter().zip(&marks) {
        let (line, new_view) = cluster.node(*id).wait_view_from(
            *mark,
            &format!("view without node {leaver} (left)"),
            Duration::from_secs(5),
            |v| !v.contains(leaver),
        );
        latencies.push((*id, line.at.saturating_duration_since(sent_at)));
        new_views.push(new_view);
    }
    println!("SIGTERM of node {leaver}: new view at survivors after {latencies:?}");
    assert!(
        new_views.iter().all(|v| v == &new_views[0]),
        "the survivors installed different views: {new_views:?}"
    );
    let mut expected = survivors.clone();
    expected.sort_unstable();
    assert_eq!(new_views[0].sorted_members(), expected);
    let slowest = latencies
        .iter()
        .map(|(_, d)| *d)
        .max()
        .expect("two survivors");
    assert!(
        slowest < LEAVE_TO_VIEW_MAX,
        "node {leaver} left: the last survivor installed the view without it after {slowest:?} \
         (expected < {LEAVE_TO_VIEW_MAX:?}, before failure detection could act); per survivor: \
         {latencies:?}"
    );

    // Past the time failure detection would have taken, no survivor suspected the leaver.
    let fd_would_have_acted = sent_at + Duration::from_millis(1200);
    if let Some(rest) = fd_would_have_acted.checked_duration_since(std::time::Instant::now()) {
        thread::sleep(rest);
    }
    let suspicion = format!("suspected node={leaver} ");
    for (id, mark) in survivors.iter().zip(&marks) {
        let lines = cluster.node(*id).lines_since(*mark);
        assert!(
            !lines.iter().any(|l| l.text.starts_with(&suspicion)),
            "node {id} suspected node {leaver}, which left gracefully: {:?}",
            lines.iter().map(|l| &l.text).collect::<Vec<_>>()
        );
    }
    cluster.wait_converged(&survivors, CONVERGE_TIMEOUT);
}

#[test]
fn sigterm_of_a_member_leaves_without_failure_detection() {
    leave_and_measure(|view| *view.members.last().expect("members"));
}

#[test]
fn sigterm_of_the_coordinator_leaves_without_failure_detection() {
    leave_and_measure(|view| view.coordinator);
}
