//! A frame of another protocol version is refused.
//!
//! `FrameCodec::seal` stamps the current version, so the frame is built by editing a sealed
//! one: the envelope starts with the version, a bincode varint (`2` is the byte `0x02`;
//! `999` is `0xfb` then 999 as two little-endian bytes). That only works for an
//! unauthenticated frame (an authenticated one would need its HMAC recomputed, which needs
//! crates this package does not depend on), so the frame is a members query, the one body a
//! node accepts without the key; the version is checked when the envelope is decoded, before
//! the body matters, for plain and authenticated frames alike.

use crate::{codec, envelope, send_expecting_refusal, Target};
use viewsync::wire::{Body, FrameError, PROTOCOL_VERSION};
use viewsync_tests::process::GROUP;

#[test]
fn a_frame_of_another_protocol_version_is_refused() {
    let mut target = Target::start();
    let plain = codec(None);
    let frame = plain
        .seal(envelope(Some(GROUP), Body::MembersRequest))
        .expect("seal");
    let payload = &frame[4..];
    assert_eq!(payload[0], 0, "a plain frame");
    assert_eq!(
        u16::from(payload[1]),
        PROTOCOL_VERSION,
        "the one-byte version varint"
    );
    let mut edited = vec![0u8, 0xfb, 0xe7, 0x03];
    edited.extend_from_slice(&payload[2..]);
    // The edit is what we mean it to be: the same codec reads version 999.
    match plain.open(&edited) {
        Err(FrameError::Version { got: 999 }) => {}
        other => panic!("the edited frame should carry version 999: {other:?}"),
    }
    let mut bad = (edited.len() as u32).to_be_bytes().to_vec();
    bad.extend_from_slice(&edited);

    send_expecting_refusal(&mut target, &bad, "protocol version 999 not supported");
    target.assert_unchanged();
}
