//! An authenticated frame is accepted once; the same bytes again are a replay and refused.

use crate::{codec, envelope, exchange, send_expecting_refusal, Target};
use std::time::Duration;
use viewsync::wire::Body;

#[test]
fn a_replayed_frame_is_refused() {
    let mut target = Target::start();
    let envelope = envelope(None, Body::Heartbeat { views: vec![] });
    let sender = envelope.sender;
    let frame = codec(Some(target.key.clone()))
        .seal(envelope)
        .expect("seal");

    // The first copy is accepted: no refusal, the connection stays open.
    let first = exchange(target.addr(), &frame, false, Duration::from_millis(500));
    assert!(
        first.frames.is_empty() && !first.closed,
        "the first copy must be accepted: {first:?}"
    );

    // The same bytes on another connection.
    send_expecting_refusal(
        &mut target,
        &frame,
        &format!("replayed frame 1 from {sender}"),
    );
    target.assert_unchanged();
}
