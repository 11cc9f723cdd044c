//! A node restarted with the same node id is a new process (a new incarnation): the group ends
//! up with exactly one member for that node, the new incarnation, at its new address.

use std::time::Duration;
use viewsync_tests::process::{
    members_cli, parse_members, timing_shared, Cluster, CONVERGE_TIMEOUT, GROUP,
};

fn restart_node_3(wait_for_exclusion: bool) {
    let _timing = timing_shared();
    let (mut cluster, _) = Cluster::start(3);
    let marks = [cluster.node(1).mark(), cluster.node(2).mark()];
    let old_incarnation = cluster.node(3).incarnation;

    cluster.node(3).sigkill();
    cluster.node(3).wait_exit(Duration::from_secs(5));
    // Keep the dead process's record: a failing test prints what it wrote.
    let _old = cluster.remove(3);
    if wait_for_exclusion {
        for (id, mark) in [1, 2].into_iter().zip(marks) {
            cluster.node(id).wait_view_from(
                mark,
                "view without node 3 (killed)",
                Duration::from_secs(5),
                |v| !v.contains(3),
            );
        }
    }

    let seeds = vec![cluster.addr(1), cluster.addr(2)];
    let restarted = cluster.launch(3, &seeds, "");
    let (new_incarnation, new_addr) = (restarted.incarnation, restarted.addr);
    assert!(
        new_incarnation > old_incarnation,
        "a restart is a new incarnation: old {old_incarnation}, new {new_incarnation}"
    );

    let view = cluster.wait_converged(&[1, 2, 3], CONVERGE_TIMEOUT);
    // One view change replaces the old incarnation by the new one (a learner until it holds
    // the state), and one promotes it: never two views alike in a row, and no more views
    // than those (plus, after an exclusion, the view without node 3).
    for (id, mark) in [1, 2].into_iter().zip(marks) {
        let views: Vec<_> = cluster
            .node(id)
            .views_since(mark)
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        let expected = if wait_for_exclusion { 3 } else { 2 };
        assert_eq!(views.len(), expected, "node {id}: {views:?}");
        assert!(
            views
                .windows(2)
                .all(|w| (&w[0].members, &w[0].learners) != (&w[1].members, &w[1].learners)),
            "node {id}: two views alike in a row: {views:?}"
        );
        assert_eq!(views.last(), Some(&view), "node {id}: {views:?}");
    }
    for via in [1, 2, 3] {
        let out = members_cli(GROUP, cluster.addr(via), Some(&cluster.key_file));
        assert!(
            out.status.success(),
            "viewsync members via node {via}: {}\n{}",
            out.status,
            out.stderr
        );
        let answer = parse_members(&out.stdout);
        assert_eq!(answer.epoch, view.epoch, "via node {via}:\n{}", out.stdout);
        assert_eq!(
            answer.sorted_nodes(),
            vec![1, 2, 3],
            "via node {via}:\n{}",
            out.stdout
        );
        assert_eq!(
            answer.member(3),
            Some((3, new_incarnation, new_addr)),
            "via node {via}: node 3 must be the restarted process:\n{}",
            out.stdout
        );
        for id in [1, 2] {
            let node = cluster.node(id);
            assert_eq!(answer.member(id), Some((id, node.incarnation, node.addr)));
        }
    }
}

#[test]
fn restart_after_exclusion_rejoins_with_the_new_incarnation() {
    restart_node_3(true);
}

#[test]
fn immediate_restart_replaces_the_old_incarnation() {
    restart_node_3(false);
}
