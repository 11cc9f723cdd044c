//! Multicast traffic without the key is refused: a forged `Data` entry claiming to come from a
//! member, a `GroupSend` from an outsider, an `Ack` and a state request. Nothing is delivered
//! and the group is unchanged.

use crate::{codec, envelope, send_expecting_refusal, Target};
use bytes::Bytes;
use viewsync::wire::{Body, Entry, Item, Ordering};
use viewsync_tests::process::GROUP;

#[test]
fn unauthenticated_multicast_frames_are_refused() {
    let mut target = Target::start();
    let plain = codec(None);
    let view = target.view_id();

    // A data entry forged as node 2's first multicast in the current view.
    let node2 = target.node2();
    let mut data = envelope(
        Some(GROUP),
        Body::Data {
            view,
            origin: viewsync::wire::Rank(1),
            entries: vec![Entry {
                seq: viewsync::wire::Seq(1),
                ordering: Ordering::Total,
                clock: vec![],
                item: Item::Payload(Bytes::from_static(b"forged")),
            }],
        },
    );
    data.sender = node2;
    data.sender_addr = target.cluster.addr(2);
    let data = plain.seal(data).expect("seal");
    send_expecting_refusal(&mut target, &data, "unauthenticated data frame refused");

    let group_send = plain
        .seal(envelope(
            Some(GROUP),
            Body::GroupSend {
                ordering: None,
                payload: Bytes::from_static(b"outsider"),
            },
        ))
        .expect("seal");
    send_expecting_refusal(
        &mut target,
        &group_send,
        "unauthenticated group_send frame refused",
    );

    let ack = plain
        .seal(envelope(
            Some(GROUP),
            Body::Ack {
                view,
                received: vec![viewsync::wire::Seq::MAX, viewsync::wire::Seq::MAX],
            },
        ))
        .expect("seal");
    send_expecting_refusal(&mut target, &ack, "unauthenticated ack frame refused");

    let state = plain
        .seal(envelope(
            Some(GROUP),
            Body::StateRequest {
                view,
                offset: 0,
                since: None,
            },
        ))
        .expect("seal");
    send_expecting_refusal(
        &mut target,
        &state,
        "unauthenticated state_request frame refused",
    );

    target.assert_unchanged();
    for id in [1, 2] {
        let node = target.cluster.node(id);
        assert!(
            node.lines().iter().all(|l| !l.text.starts_with("deliver ")),
            "node {id} delivered something"
        );
    }
}
