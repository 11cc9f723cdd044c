//! A multicast larger than `multicast.payload_bytes_max` is refused with a clear error, not
//! fragmented and not truncated: nothing is delivered, the node keeps serving, and the next
//! multicast goes through.

use crate::Target;
use std::time::Duration;
use viewsync::client::{send_to_group, SendError};
use viewsync::wire::ClusterKey;
use viewsync::GroupName;
use viewsync_tests::process::{run_viewsync, GROUP};

fn send(target: &Target, message: &str) -> viewsync_tests::process::CliOutput {
    let key = target.cluster.key_file.display().to_string();
    let via = target.addr().to_string();
    run_viewsync(
        &["send", GROUP, message, "--via", &via, "--key-file", &key],
        Duration::from_secs(15),
    )
}

#[test]
fn an_oversized_multicast_is_refused_and_the_group_goes_on() {
    let mut target = Target::start();
    // The default limit is 256 KiB; the client's frame limit (1 MiB) lets this one reach the
    // node, which must refuse it itself. (Too long for a command-line argument: the library.)
    let oversized = bytes::Bytes::from(vec![b'x'; 300 * 1024]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let key = ClusterKey::load(&target.cluster.key_file).expect("key");
    let result = runtime.block_on(send_to_group(
        &[target.addr()],
        &GroupName::new(GROUP).expect("name"),
        oversized,
        Some(key),
        Duration::from_secs(10),
    ));
    match result {
        Err(SendError::Refused { reason, .. }) => assert_eq!(
            reason,
            "payload of 307200 bytes exceeds the limit of 262144 bytes"
        ),
        other => panic!("the oversized multicast should be refused: {other:?}"),
    }
    let out = send(&target, "after-the-oversized-one");
    assert!(out.status.success(), "{}", out.stderr);
    for id in [1, 2] {
        let node = target.cluster.node(id);
        node.wait_line_from(
            0,
            "the multicast after the refused one",
            Duration::from_secs(10),
            |l| l.starts_with("deliver ") && l.ends_with("payload=after-the-oversized-one"),
        );
        let delivered: Vec<String> = node
            .lines()
            .iter()
            .filter(|l| l.text.starts_with("deliver "))
            .map(|l| l.text.clone())
            .collect();
        assert_eq!(delivered.len(), 1, "node {id} delivered: {delivered:?}");
    }
    target.assert_unchanged();
}
