//! A node with a key accepts nothing unauthenticated but the read-only members query: a plain
//! heartbeat, join or leave (even one naming a real member) is refused.

use crate::{codec, envelope, join_request, send_expecting_refusal, Target};
use viewsync::wire::Body;
use viewsync_tests::process::GROUP;

#[test]
fn unauthenticated_state_changing_bodies_are_refused() {
    let mut target = Target::start();
    let plain = codec(None);

    let heartbeat = plain
        .seal(envelope(None, Body::Heartbeat { views: vec![] }))
        .expect("seal");
    send_expecting_refusal(
        &mut target,
        &heartbeat,
        "unauthenticated heartbeat frame refused",
    );

    let join = plain
        .seal(envelope(Some(GROUP), join_request()))
        .expect("seal");
    send_expecting_refusal(
        &mut target,
        &join,
        "unauthenticated join_request frame refused",
    );

    // A forged leave of node 2, claiming to come from node 2 itself.
    let node2 = target.node2();
    let mut leave = envelope(Some(GROUP), Body::LeaveRequest { member: node2 });
    leave.sender = node2;
    leave.sender_addr = target.cluster.addr(2);
    let leave = plain.seal(leave).expect("seal");
    send_expecting_refusal(
        &mut target,
        &leave,
        "unauthenticated leave_request frame refused",
    );

    target.assert_unchanged();
}
