//! A frame cut short by the end of the connection: the node drops it and the connection, and
//! carries on.

use crate::{codec, envelope, exchange, Target, ANSWER_TIMEOUT};
use viewsync::wire::Body;

#[test]
fn a_truncated_frame_then_close_is_dropped() {
    let mut target = Target::start();

    // A length prefix promising 100 bytes, 10 of them, then the end of the stream.
    let mut bytes = 100u32.to_be_bytes().to_vec();
    bytes.extend_from_slice(&[1; 10]);
    exchange(target.addr(), &bytes, true, ANSWER_TIMEOUT).assert_refused_or_closed();

    // Half a length prefix.
    exchange(target.addr(), &[0, 0], true, ANSWER_TIMEOUT).assert_refused_or_closed();

    // A real frame (a valid heartbeat sealed with the cluster key) missing its last byte.
    let frame = codec(Some(target.key.clone()))
        .seal(envelope(None, Body::Heartbeat { views: vec![] }))
        .expect("seal");
    exchange(
        target.addr(),
        &frame[..frame.len() - 1],
        true,
        ANSWER_TIMEOUT,
    )
    .assert_refused_or_closed();

    target.assert_unchanged();
}
