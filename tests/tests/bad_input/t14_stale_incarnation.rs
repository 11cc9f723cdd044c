//! Frames from an evicted incarnation: in a three-node group, node 2 is killed and restarted
//! (a new incarnation) and rejoins, the old one being removed; frames sealed with the right key
//! but claiming node 2's old incarnation are then refused by every node as stale, each with a
//! `Refused` notice and a log line, and the group's view stays as it is.

use crate::{codec, exchange, query, ANSWER_TIMEOUT};
use std::time::Duration;
use viewsync::wire::{Body, ClusterKey, Envelope, PROTOCOL_VERSION};
use viewsync::{GroupName, Incarnation, Member, NodeId, ProcessId};
use viewsync_tests::process::{timing_shared, Cluster, NodeProcess, CONVERGE_TIMEOUT, GROUP};

/// Node 2 may take a failure-detector timeout and two view changes to be back.
const REJOIN_TIMEOUT: Duration = Duration::from_secs(30);

#[test]
fn frames_of_an_evicted_incarnation_are_refused() {
    let _timing = timing_shared();
    let (mut cluster, first_view) = Cluster::start(3);
    let key = ClusterKey::load(&cluster.key_file).expect("the cluster key");
    let group = GroupName::new(GROUP).expect("group name");
    let old = ProcessId {
        node: NodeId(2),
        incarnation: Incarnation(cluster.node(2).incarnation),
    };
    let old_addr = cluster.addr(2);
    let old_view = query(cluster.addr(1), GROUP, Some(key.clone()))
        .expect("node 1 answers")
        .expect("node 1 is a member")
        .id;

    // Kill -9 node 2 and restart it from its configuration: a new incarnation.
    let config = cluster.node(2).config.clone();
    cluster.node(2).sigkill();
    let restarted = NodeProcess::start(&config, 2);
    assert!(
        restarted.incarnation > old.incarnation.0,
        "a new incarnation"
    );
    let new_incarnation = restarted.incarnation;
    cluster.add(restarted);
    let view = cluster.wait_converged(&[1, 2, 3], REJOIN_TIMEOUT);
    assert!(
        view.epoch > first_view.epoch,
        "node 2 rejoined in a new view"
    );
    let members = query(cluster.addr(1), GROUP, Some(key.clone()))
        .expect("node 1 answers")
        .expect("node 1 is a member")
        .members;
    assert!(
        members
            .iter()
            .any(|m| m.id.node == NodeId(2) && m.id.incarnation.0 == new_incarnation)
            && !members.iter().any(|m| m.id == old),
        "the view holds node 2's new incarnation only: {members:?}"
    );
    let marks: Vec<(u64, usize)> = [1, 2, 3].map(|id| (id, cluster.node(id).mark())).into();

    // The old incarnation speaks again, with the cluster key: a heartbeat naming the view it
    // was in, a join request and a probe, each on a connection of its own, to every node.
    let stale = |body: Body| Envelope {
        version: PROTOCOL_VERSION,
        sender: old,
        sender_addr: old_addr,
        seq: 0,
        group: Some(group.clone()),
        body,
    };
    let bodies = [
        Body::Heartbeat {
            views: vec![(group.clone(), old_view)],
        },
        Body::JoinRequest {
            member: Member {
                id: old,
                addr: old_addr,
            },
            last_epoch: old_view.epoch,
        },
        Body::Probe,
    ];
    let sealer = codec(Some(key.clone()));
    let expected = format!("frame from stale incarnation {old}");
    for body in bodies {
        let frame = sealer.seal(stale(body)).expect("seal");
        for id in [1, 2, 3] {
            let answer = exchange(cluster.addr(id), &frame, false, ANSWER_TIMEOUT);
            let reason = answer.assert_refused_by(NodeId(id), &expected);
            assert!(reason.contains(&expected), "{reason}");
        }
    }
    for id in [1, 2, 3] {
        cluster.node(id).wait_stderr(
            &["WARN", "closing connection over a bad frame", &expected],
            Duration::from_secs(5),
        );
    }

    // Nothing changed: same view everywhere, no view printed since, nobody suspected.
    std::thread::sleep(Duration::from_millis(300));
    for (id, mark) in marks {
        let node = cluster.node(id);
        assert!(
            node.is_running(),
            "node {id} stopped: {:?}",
            node.try_exit()
        );
        let views = node.views_since(mark);
        assert!(views.is_empty(), "node {id} changed its view: {views:?}");
        let answer = query(cluster.addr(id), GROUP, Some(key.clone()))
            .unwrap_or_else(|e| panic!("node {id} does not answer: {e}"))
            .unwrap_or_else(|| panic!("node {id} is no longer a member"));
        assert_eq!(answer.id.epoch, view.epoch, "node {id}'s view");
    }
    cluster.wait_converged(&[1, 2, 3], CONVERGE_TIMEOUT);
}
