//! Frames sealed with another key, or tampered with after sealing, fail authentication.

use crate::{codec, envelope, join_request, send_expecting_refusal, Target};
use viewsync::wire::{Body, ClusterKey};
use viewsync_tests::process::{new_key_hex, GROUP};

#[test]
fn frames_with_a_wrong_key_are_refused() {
    let mut target = Target::start();
    let wrong = codec(Some(ClusterKey::from_hex(&new_key_hex()).expect("key")));

    let heartbeat = wrong
        .seal(envelope(None, Body::Heartbeat { views: vec![] }))
        .expect("seal");
    send_expecting_refusal(&mut target, &heartbeat, "authentication failed");

    let join = wrong
        .seal(envelope(Some(GROUP), join_request()))
        .expect("seal");
    send_expecting_refusal(&mut target, &join, "authentication failed");

    target.assert_unchanged();
}

#[test]
fn a_tampered_frame_is_refused() {
    let mut target = Target::start();
    let right = codec(Some(target.key.clone()));
    let mut frame = right
        .seal(envelope(Some(GROUP), join_request()))
        .expect("seal")
        .to_vec();
    // Flip a bit in the envelope (after the 4-byte prefix and the flag, before the tag).
    frame[8] ^= 0x01;
    send_expecting_refusal(&mut target, &frame, "authentication failed");
    target.assert_unchanged();
}
