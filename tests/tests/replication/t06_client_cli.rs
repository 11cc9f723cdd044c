//! `viewsync client` against a passive group: puts and gets print their results and exit 0;
//! an unreachable group exits 2 with a message; a request for the wrong state machine is
//! refused (exit 3) and changes nothing.

use super::fixture::*;
use std::time::Duration;
use viewsync_tests::process::{run_viewsync, timing_shared, GROUP};

#[test]
fn the_client_command_talks_to_the_group_and_exits_with_clear_codes() {
    let _shared = timing_shared();
    let cluster = start_cluster(3, "passive", "kv", "grouped");
    let key_file = cluster.key_file.display().to_string();
    // Through a backup: the front end finds the primary itself.
    let client = |args: &[&str]| viewsync_client(&cluster, cluster.addr(3), args);
    let out = client(&["put", "colour", "blue"]);
    assert_eq!(
        (out.status.code(), out.stdout.trim()),
        (Some(0), "ok"),
        "{out:?}"
    );
    let out = client(&["get", "colour"]);
    assert_eq!(
        (out.status.code(), out.stdout.trim()),
        (Some(0), "value=blue"),
        "{out:?}"
    );
    let out = client(&["cas", "colour", "red", "green"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(out.stdout.contains("cas failed"), "{out:?}");
    // A bank request to the key-value group: refused, nothing changed.
    let out = client(&["bank", "set", "colour", "5"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let out = client(&["get", "colour"]);
    assert_eq!(out.stdout.trim(), "value=blue", "{out:?}");
    // Nobody listening: exit 2, with the address in the message.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap().to_string();
    drop(dead);
    let out = run_viewsync(
        &[
            "client",
            "--group",
            GROUP,
            "--via",
            &dead_addr,
            "--key-file",
            &key_file,
            "--timeout",
            "1s",
            "get",
            "colour",
        ],
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stderr.contains(&dead_addr), "{out:?}");
}
