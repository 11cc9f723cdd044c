//! Bytes that are not frames: each connection gets a refusal naming what is wrong, then is
//! closed; the node carries on.

use crate::{exchange, send_expecting_refusal, Target, ANSWER_TIMEOUT};
use rand::{RngCore, SeedableRng};

#[test]
fn garbage_is_refused_and_the_node_carries_on() {
    let mut target = Target::start();

    // An HTTP request: "GET " read as a length prefix is about 1.2 GB.
    send_expecting_refusal(
        &mut target,
        b"GET / HTTP/1.1\r\nHost: viewsync\r\n\r\n",
        "exceeds the limit",
    );
    // A zero-length frame.
    send_expecting_refusal(&mut target, &[0, 0, 0, 0], "truncated frame of 0 bytes");
    // An unknown flag byte.
    send_expecting_refusal(
        &mut target,
        &[0, 0, 0, 8, 0xff, 1, 2, 3, 4, 5, 6, 7],
        "unknown frame flag 255",
    );
    // Flag "authenticated", but too short to hold a tag.
    send_expecting_refusal(
        &mut target,
        &[0, 0, 0, 5, 1, 1, 2, 3, 4],
        "truncated frame of 5 bytes",
    );
    // Flag "plain", then bytes that are no envelope.
    send_expecting_refusal(
        &mut target,
        &[0, 0, 0, 6, 0, 0xff, 0xff, 0xff, 0xff, 0xff],
        "malformed envelope",
    );
    // Random bytes behind a plausible length prefix.
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for len in [16usize, 200, 3000] {
        let mut bytes = (len as u32).to_be_bytes().to_vec();
        let mut body = vec![0u8; len];
        rng.fill_bytes(&mut body);
        bytes.extend_from_slice(&body);
        exchange(target.addr(), &bytes, false, ANSWER_TIMEOUT).assert_refused_or_closed();
    }
    // Random bytes, prefix included.
    for _ in 0..3 {
        let mut bytes = vec![0u8; 512];
        rng.fill_bytes(&mut bytes);
        exchange(target.addr(), &bytes, false, ANSWER_TIMEOUT).assert_refused_or_closed();
    }

    target.assert_unchanged();
}
