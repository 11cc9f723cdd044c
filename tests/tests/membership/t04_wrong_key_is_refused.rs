//! A node with another cluster key cannot join: the members refuse its frames (and log it),
//! it reports the refusal, and the group's view does not change.

use std::thread;
use std::time::Duration;
use viewsync_tests::process::{
    members_cli, new_key_hex, parse_members, timing_shared, Cluster, NodeProcess, RefusedLine,
    GROUP,
};

#[test]
fn a_node_with_another_key_is_refused_and_the_view_stays() {
    let _timing = timing_shared();
    let (mut cluster, view) = Cluster::start(3);
    let marks: Vec<usize> = (1..=3).map(|id| cluster.node(id).mark()).collect();

    let other_key = cluster
        .dir
        .write("other.key", &format!("{}\n", new_key_hex()));
    let seeds = cluster.addrs();
    let config = cluster.write_config(4, &seeds, Some(&other_key), "");
    let mut intruder = NodeProcess::start(&config, 4);

    let line = intruder.wait_line_from(
        0,
        "`refused` line (its seeds have another key)",
        Duration::from_secs(5),
        |l| l.starts_with("refused "),
    );
    let refused = RefusedLine::parse(&line.text)
        .unwrap_or_else(|| panic!("unparsable refused line: {}", line.text));
    assert_eq!(refused.group, GROUP, "{}", line.text);
    assert!(seeds.contains(&refused.seed), "{}", line.text);
    assert!(
        refused.reason.contains("authentication failed"),
        "{}",
        line.text
    );

    // Every seed got its join request, refused it and logged why.
    for id in 1..=3 {
        cluster.node(id).wait_stderr(
            &[
                "closing connection over a bad frame",
                "authentication failed",
            ],
            Duration::from_secs(5),
        );
    }

    // The group goes on as it was: no view change for 2 s.
    thread::sleep(Duration::from_secs(2));
    for (id, mark) in (1..=3).zip(marks) {
        let views = cluster.node(id).views_since(mark);
        assert!(
            views.is_empty(),
            "node {id} changed its view while node 4 was refused: {views:?}"
        );
        assert_eq!(cluster.node(id).latest_view().as_ref(), Some(&view));
    }
    let out = members_cli(GROUP, cluster.addr(1), Some(&cluster.key_file));
    assert!(out.status.success(), "{}\n{}", out.status, out.stderr);
    let answer = parse_members(&out.stdout);
    assert_eq!(answer.epoch, view.epoch, "{}", out.stdout);
    assert_eq!(answer.sorted_nodes(), vec![1, 2, 3], "{}", out.stdout);

    // Refused by the group, the intruder does not start a second group of the same name.
    let intruder_views = intruder.views_since(0);
    assert!(
        intruder_views.is_empty(),
        "node 4 (refused) installed views: {intruder_views:?}"
    );
    assert!(
        intruder.is_running(),
        "node 4 keeps trying; it does not crash"
    );
}
