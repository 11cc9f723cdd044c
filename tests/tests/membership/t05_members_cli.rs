//! `viewsync members` resolves a group through any node, with or without the key; a wrong key
//! or a group the node is not in is an error. `viewsync keygen` prints usable keys.

use std::time::Duration;
use viewsync::wire::ClusterKey;
use viewsync_tests::process::{
    members_cli, new_key_hex, parse_members, run_viewsync, timing_shared, Cluster, GROUP,
};

#[test]
fn members_lists_the_view_with_and_without_the_key() {
    let _timing = timing_shared();
    let (mut cluster, view) = Cluster::start(3);
    let key = cluster.key_file.clone();
    for key_file in [None, Some(key.as_path())] {
        let out = members_cli(GROUP, cluster.addr(2), key_file);
        assert!(
            out.status.success(),
            "key {key_file:?}: {}\n{}",
            out.status,
            out.stderr
        );
        let answer = parse_members(&out.stdout);
        assert_eq!(answer.group, GROUP);
        assert_eq!(answer.epoch, view.epoch, "{}", out.stdout);
        let nodes: Vec<u64> = answer.members.iter().map(|m| m.0).collect();
        assert_eq!(nodes, view.members, "oldest first, as in the view line");
        let coordinator = cluster.node(view.coordinator);
        assert_eq!(
            answer.coordinator,
            format!("{}.{}", coordinator.node_id, coordinator.incarnation)
        );
        for id in 1..=3 {
            let node = cluster.node(id);
            assert_eq!(
                answer.member(id),
                Some((id, node.incarnation, node.addr)),
                "{}",
                out.stdout
            );
        }
    }
}

#[test]
fn members_with_a_wrong_key_is_refused() {
    let _timing = timing_shared();
    let (cluster, _) = Cluster::start(3);
    let wrong = cluster.dir.write("wrong.key", &new_key_hex());
    let out = members_cli(GROUP, cluster.addr(2), Some(&wrong));
    assert!(!out.status.success(), "{}\n{}", out.status, out.stdout);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    let error = out.stderr.to_lowercase();
    assert!(
        error.contains("refused") && error.contains("authentication"),
        "{}",
        out.stderr
    );
}

#[test]
fn members_of_a_group_the_node_is_not_in_is_an_error() {
    let _timing = timing_shared();
    let (cluster, _) = Cluster::start(3);
    let via = cluster.addr(2);
    let out = members_cli("other", via, None);
    assert_eq!(out.status.code(), Some(1), "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "error: the node at {via} is not a member of group other"
        )),
        "{}",
        out.stderr
    );
}

#[test]
fn members_via_a_closed_port_is_an_error() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr")
    };
    let out = members_cli(GROUP, closed, None);
    assert_eq!(out.status.code(), Some(1), "{}\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("cannot connect"), "{}", out.stderr);
}

#[test]
fn keygen_prints_a_new_usable_key() {
    let keys: Vec<String> = (0..2)
        .map(|_| {
            let out = run_viewsync(&["keygen"], Duration::from_secs(10));
            assert!(out.status.success(), "{}", out.stderr);
            out.stdout.trim().to_string()
        })
        .collect();
    for key in &keys {
        assert_eq!(key.len(), 64, "{key}");
        assert!(key.bytes().all(|b| b.is_ascii_hexdigit()), "{key}");
        ClusterKey::from_hex(key).expect("keygen output is a valid key");
    }
    assert_ne!(keys[0], keys[1], "each key is new");
}
