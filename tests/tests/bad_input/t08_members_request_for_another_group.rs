//! A members query for a group the node is not in is answered "not a member"
//! (`MembersResponse { view: None }`), not refused; the connection stays usable.

use crate::{codec, envelope, exchange, query, Target};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;
use viewsync::wire::{Body, Envelope, FrameCodec};
use viewsync_tests::process::GROUP;

/// Reads one frame from `stream` and opens it with `codec`.
fn read_frame(stream: &mut TcpStream, codec: &FrameCodec) -> Envelope {
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .expect("read timeout");
    let mut head = [0u8; 4];
    stream.read_exact(&mut head).expect("a frame's length");
    let mut payload = vec![0u8; u32::from_be_bytes(head) as usize];
    stream.read_exact(&mut payload).expect("a frame");
    codec.open(&payload).expect("the answer opens")
}

#[test]
fn a_members_query_for_another_group_gets_no_view() {
    let mut target = Target::start();

    // Through the client library, without and with the key.
    for key in [None, Some(target.key.clone())] {
        let answer = query(target.addr(), "other", key.clone());
        assert!(
            matches!(answer, Ok(None)),
            "key {}: {answer:?}",
            key.is_some()
        );
    }

    // On one raw connection: "other", no group at all, then the node's group.
    let plain = codec(None);
    let mut stream = TcpStream::connect(target.addr()).expect("connect");
    for group in [Some("other"), None] {
        let request = plain
            .seal(envelope(group, Body::MembersRequest))
            .expect("seal");
        stream.write_all(&request).expect("write");
        let answer = read_frame(&mut stream, &plain);
        assert_eq!(
            answer.body,
            Body::MembersResponse {
                view: None,
                blocked: None
            },
            "group {group:?}"
        );
    }
    let request = plain
        .seal(envelope(Some(GROUP), Body::MembersRequest))
        .expect("seal");
    stream.write_all(&request).expect("write");
    match read_frame(&mut stream, &plain).body {
        Body::MembersResponse {
            view: Some(view),
            blocked: None,
        } => {
            let nodes: Vec<u64> = view.members.iter().map(|m| m.id.node.0).collect();
            assert_eq!(
                (view.id.epoch, nodes),
                (target.view.epoch, target.view.members.clone())
            );
        }
        other => panic!("expected the view of {GROUP}: {other:?}"),
    }
    drop(stream);

    // A query answered is not a bad frame: nothing was refused.
    let answer = exchange(
        target.addr(),
        &plain
            .seal(envelope(Some("other"), Body::MembersRequest))
            .expect("seal"),
        false,
        Duration::from_millis(300),
    );
    assert!(!answer.closed, "{answer:?}");
    assert!(
        matches!(
            &answer.frames[..],
            [Ok(Envelope {
                body: Body::MembersResponse {
                    view: None,
                    blocked: None
                },
                ..
            })]
        ),
        "{answer:?}"
    );
    assert!(
        !target
            .cluster
            .node(1)
            .stderr_lines()
            .iter()
            .any(|l| l.contains("closing connection over a bad frame")),
        "a members query is not a bad frame"
    );
    target.assert_unchanged();
}
