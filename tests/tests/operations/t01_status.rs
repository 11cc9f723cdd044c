//! `viewsync status`: a healthy cluster's node (text and JSON), a blocked node (exit code 3
//! and the reason), an unreachable address (non-zero exit).

use crate::{operator, status_until};
use serde_json::Value;
use std::time::Duration;
use viewsync_tests::process::{timing_shared, Cluster};

/// Every member is in view; the JSON has the documented fields with the cluster's figures.
#[test]
fn status_of_a_healthy_cluster_shows_views_peers_and_counters() {
    let _shared = timing_shared();
    let (mut cluster, view) = Cluster::start(3);
    let via = cluster.addr(2);
    let out = operator("status", via, None, &[]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        out.stdout.starts_with("node 2 incarnation "),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains(&format!("group demo: member, view {}@1.", view.epoch)),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("coordinator 1  sequencer 1"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("not blocked"), "{}", out.stdout);
    assert!(out.stdout.contains("views_installed "), "{}", out.stdout);

    // JSON, authenticated this time (optional for this read-only query).
    let key = cluster.key_file.clone();
    let out = operator("status", via, Some(&key), &["--json"]);
    assert!(out.status.success(), "{out:?}");
    let json: Value = serde_json::from_str(&out.stdout).expect("status --json is JSON");
    assert_eq!(json["node"], 2);
    assert_eq!(json["addr"], via.to_string());
    assert_eq!(json["blocked"], false);
    let group = &json["groups"][0];
    assert_eq!(group["group"], "demo");
    assert_eq!(group["standing"], "member");
    assert_eq!(group["epoch"], view.epoch);
    let mut members: Vec<u64> = group["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| m.as_u64().expect("node id"))
        .collect();
    members.sort_unstable();
    assert_eq!(members, vec![1, 2, 3]);
    assert_eq!(group["coordinator"], 1);
    assert_eq!(group["sequencer"], 1);
    assert!(group["blocked"].is_null());
    assert_eq!(group["suspected"], serde_json::json!([]));
    assert_eq!(group["service"]["strategy"], "log");
    let counters = &json["counters"];
    assert!(
        counters["views_installed"].as_u64().expect("views") >= 1,
        "{counters}"
    );
    assert!(
        counters["frames_accepted"].as_u64().expect("frames") > 0,
        "{counters}"
    );
    assert_eq!(counters["frames_refused_unauthenticated"], 0);
    let peers = json["peers"].as_array().expect("peers");
    assert!(
        peers.iter().any(|p| p["connected"] == true),
        "no connected peer: {peers:?}"
    );
    drop(cluster.remove(3));
}

/// A member left alone by two kills is blocked (no majority): exit code 3 and the reason, in
/// text and in JSON.
#[test]
fn status_of_a_blocked_node_exits_3_and_names_the_reason() {
    let _shared = timing_shared();
    let (mut cluster, _) = Cluster::start(3);
    cluster.node(2).sigkill();
    cluster.node(3).sigkill();
    let via = cluster.addr(1);
    let out = status_until(via, &[], Duration::from_secs(30), "blocked", |out| {
        out.status.code() == Some(3)
    });
    assert!(
        out.stdout.contains("blocked: no majority"),
        "{}",
        out.stdout
    );
    let out = operator("status", via, None, &["--json"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let json: Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(json["blocked"], true);
    let blocked = &json["groups"][0]["blocked"];
    assert_eq!(blocked["kind"], "no_majority", "{blocked}");
    assert!(
        blocked["reason"]
            .as_str()
            .is_some_and(|r| r.contains("no majority")),
        "{blocked}"
    );
}

/// Nothing listens: a non-zero exit (1) that says the node is unreachable.
#[test]
fn status_of_an_unreachable_address_fails() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = free.local_addr().expect("addr");
    drop(free);
    let out = operator("status", addr, None, &["--timeout-ms", "2000"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stderr.contains("unreachable"), "{}", out.stderr);
}
