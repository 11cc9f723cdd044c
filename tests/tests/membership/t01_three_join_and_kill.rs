//! Three nodes join one group; a crashed member (SIGKILL) is out of the view at every survivor
//! within one second (the product requirement, with the default failure detector settings).

use std::time::Duration;
use viewsync_tests::process::{
    timing_exclusive, timing_shared, Cluster, NodeProcess, ViewLine, CONVERGE_TIMEOUT, GROUP,
};

/// The requirement: from the kill to the last survivor's view without the crashed node.
const CRASH_TO_VIEW_MAX: Duration = Duration::from_millis(1000);

#[test]
fn a_lone_node_prints_the_view_it_creates() {
    let _timing = timing_shared();
    let mut cluster = Cluster::new();
    let key = cluster.key_file.clone();
    let config = cluster.write_config(1, &[], Some(&key), "");
    let mut node = NodeProcess::start(&config, 1);
    let (_, view) = node.wait_view_from(
        0,
        "`view` line for the group it created (no seeds: it creates the group at once)",
        Duration::from_secs(3),
        |_| true,
    );
    assert_eq!(
        view,
        ViewLine {
            group: GROUP.into(),
            epoch: 1,
            coordinator: 1,
            members: vec![1],
            learners: vec![],
        }
    );
}

#[test]
fn three_nodes_agree_on_one_view() {
    let _timing = timing_shared();
    let (mut cluster, view) = Cluster::start(3);
    assert_eq!(view.group, GROUP);
    assert_eq!(view.sorted_members(), vec![1, 2, 3]);
    assert_eq!(
        view.coordinator, view.members[0],
        "the coordinator is the oldest member: {view:?}"
    );
    assert_eq!(view.members[0], 1, "node 1 created the group: {view:?}");
    for id in 1..=3 {
        let views = cluster.node(id).views_since(0);
        // The first view of three voters each node printed is the agreed one: no node saw
        // another such view first (views with learners come before it as joiners get their
        // state and are promoted).
        let first_full = views
            .iter()
            .map(|(_, v)| v)
            .find(|v| v.members.len() == 3 && v.learners.is_empty())
            .expect("converged on three");
        assert_eq!(first_full, &view, "node {id}: {views:?}");
        let epochs: Vec<u64> = views.iter().map(|(_, v)| v.epoch).collect();
        assert!(
            epochs.windows(2).all(|w| w[0] < w[1]),
            "node {id}: epochs must strictly increase: {epochs:?}"
        );
        assert!(
            views
                .iter()
                .all(|(_, v)| v.contains(id) && v.group == GROUP),
            "node {id} printed a view without itself: {views:?}"
        );
    }
}

/// Starts three nodes, SIGKILLs the one `pick` chooses, and checks every survivor installs
/// a view without it within [`CRASH_TO_VIEW_MAX`].
fn kill_and_measure(pick: impl Fn(&ViewLine) -> u64) {
    let _timing = timing_exclusive();
    let (mut cluster, view) = Cluster::start(3);
    let victim = pick(&view);
    let survivors: Vec<u64> = view
        .members
        .iter()
        .copied()
        .filter(|id| *id != victim)
        .collect();
    let marks: Vec<usize> = survivors
        .iter()
        .map(|id| cluster.node(*id).mark())
        .collect();

    let killed_at = cluster.node(victim).sigkill();

    let mut latencies = Vec::new();
    let mut new_views = Vec::new();
    for (id, mark) in survivors.iter().zip(marks) {
        let (line, new_view) = cluster.node(*id).wait_view_from(
            mark,
            &format!("view without node {victim} (killed)"),
            Duration::from_secs(5),
            |v| !v.contains(victim),
        );
        latencies.push((*id, line.at.saturating_duration_since(killed_at)));
        new_views.push(new_view);
    }
    println!("SIGKILL of node {victim}: new view at survivors after {latencies:?}");
    assert!(
        new_views.iter().all(|v| v == &new_views[0]),
        "the survivors installed different views: {new_views:?}"
    );
    let mut expected = survivors.clone();
    expected.sort_unstable();
    assert_eq!(new_views[0].sorted_members(), expected);
    assert!(new_views[0].epoch > view.epoch);
    let slowest = latencies
        .iter()
        .map(|(_, d)| *d)
        .max()
        .expect("two survivors");
    assert!(
        slowest < CRASH_TO_VIEW_MAX,
        "node {victim} killed: the last survivor installed the view without it after \
         {slowest:?} (requirement: < {CRASH_TO_VIEW_MAX:?}); per survivor: {latencies:?}"
    );
    // And they stay there.
    cluster.wait_converged(&survivors, CONVERGE_TIMEOUT);
}

#[test]
fn sigkill_of_a_member_is_out_of_the_view_within_a_second() {
    kill_and_measure(|view| *view.members.last().expect("members"));
}

#[test]
fn sigkill_of_the_coordinator_is_out_of_the_view_within_a_second() {
    kill_and_measure(|view| view.coordinator);
}
