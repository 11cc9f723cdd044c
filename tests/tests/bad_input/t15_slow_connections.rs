//! Slow connections: one that sends nothing, one that trickles a valid frame a byte at a time
//! (slowloris), and one that sends a valid query and then trickles the next frame. Each is
//! closed with a `Refused` notice naming the timeout (`transport.auth_timeout` for the first
//! two, `transport.frame_read_timeout` for the third) and a log line; the node keeps serving.

use crate::{codec, envelope, Answer, Target};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use viewsync::wire::codec::FRAME_BYTES_MAX_DEFAULT;
use viewsync::wire::{Body, Envelope, FrameCodec};
use viewsync_tests::process::GROUP;

/// Node 1's limits in these tests.
const NODE1: &str = "[transport]\nauth_timeout = \"2s\"\nframe_read_timeout = \"2s\"\n";
const TIMEOUT: Duration = Duration::from_secs(2);
/// How late a close may come on a loaded machine (the checks run every quarter timeout).
const SLACK: Duration = Duration::from_secs(8);

/// Writes `bytes` one at a time, `gap` apart, until the node closes the connection (or all
/// are written); then reads what the node sent. Returns the answer and when it closed.
fn trickle(stream: &mut TcpStream, bytes: &[u8], gap: Duration) -> (Answer, Duration) {
    let started = Instant::now();
    stream
        .set_read_timeout(Some(Duration::from_millis(10)))
        .expect("read timeout");
    let mut received = Vec::new();
    let mut closed = false;
    let mut written = 0;
    let mut chunk = [0u8; 4096];
    let deadline = started + TIMEOUT + SLACK;
    let mut next_write = started;
    while Instant::now() < deadline && !closed {
        if written < bytes.len() && Instant::now() >= next_write {
            if stream.write_all(&bytes[written..written + 1]).is_err() {
                closed = true;
            }
            written += 1;
            next_write += gap;
        }
        match stream.read(&mut chunk) {
            Ok(0) => closed = true,
            Ok(n) => received.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => closed = true,
        }
    }
    let took = started.elapsed();
    assert!(
        bytes.is_empty() || written < bytes.len(),
        "the whole frame went out before the node closed the connection"
    );
    (frames_of(&received, closed), took)
}

fn frames_of(received: &[u8], closed: bool) -> Answer {
    let codec = FrameCodec::new(None, FRAME_BYTES_MAX_DEFAULT);
    let mut frames = Vec::new();
    let mut rest = received;
    while rest.len() >= 4 {
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if rest.len() < 4 + len {
            break;
        }
        frames.push(codec.open(&rest[4..4 + len]).map_err(|e| e.to_string()));
        rest = &rest[4 + len..];
    }
    Answer {
        frames,
        partial: rest.len(),
        closed,
        write_error: None,
    }
}

fn refusal(answer: &Answer) -> String {
    assert!(
        answer.closed,
        "the node did not close the connection: {answer:?}"
    );
    let refusals: Vec<&str> = answer
        .frames
        .iter()
        .filter_map(|f| match f {
            Ok(Envelope {
                body: Body::Refused { reason },
                ..
            }) => Some(reason.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(refusals.len(), 1, "{answer:?}");
    refusals[0].to_string()
}

#[test]
fn idle_and_trickling_connections_are_closed_after_their_timeouts() {
    let mut target = Target::start_with(NODE1);
    let slow_log = ["WARN", "closing slow connection"];

    // 1. Connect and say nothing.
    let mut idle = TcpStream::connect(target.addr()).expect("connect");
    let (answer, took) = trickle(&mut idle, &[], TIMEOUT);
    let reason = refusal(&answer);
    assert!(
        reason.contains("no valid frame within 2s") && reason.contains("transport.auth_timeout"),
        "{reason}"
    );
    assert!(
        took >= TIMEOUT - Duration::from_millis(100),
        "closed after {took:?}"
    );
    target
        .cluster
        .node(1)
        .wait_stderr(&[slow_log[0], slow_log[1], "auth_timeout"], SLACK);

    // 2. Slowloris: a valid, authenticated frame, one byte a second.
    let frame = codec(Some(target.key.clone()))
        .seal(envelope(Some(GROUP), Body::MembersRequest))
        .expect("seal");
    let mut slow = TcpStream::connect(target.addr()).expect("connect");
    let (answer, took) = trickle(&mut slow, &frame, Duration::from_secs(1));
    let reason = refusal(&answer);
    assert!(reason.contains("transport.auth_timeout"), "{reason}");
    assert!(took < TIMEOUT + SLACK, "closed after {took:?}");

    // 3. A valid query first (answered), then the next frame a byte every half second.
    let query = codec(None)
        .seal(envelope(Some(GROUP), Body::MembersRequest))
        .expect("seal");
    let mut client = TcpStream::connect(target.addr()).expect("connect");
    client.write_all(&query).expect("query");
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    let mut len = [0u8; 4];
    client.read_exact(&mut len).expect("the members answer");
    let mut answer = vec![0u8; u32::from_be_bytes(len) as usize];
    client.read_exact(&mut answer).expect("the members answer");
    match codec(None).open(&answer) {
        Ok(Envelope {
            body: Body::MembersResponse { .. },
            ..
        }) => {}
        other => panic!("expected the members answer: {other:?}"),
    }
    let next = codec(None)
        .seal(envelope(Some(GROUP), Body::MembersRequest))
        .expect("seal");
    let (answer, took) = trickle(&mut client, &next, Duration::from_millis(500));
    let reason = refusal(&answer);
    assert!(
        reason.contains("frame not complete within 2s")
            && reason.contains("transport.frame_read_timeout"),
        "{reason}"
    );
    assert!(
        took >= TIMEOUT - Duration::from_millis(100),
        "closed after {took:?}"
    );
    target
        .cluster
        .node(1)
        .wait_stderr(&[slow_log[0], slow_log[1], "frame_read_timeout"], SLACK);

    target.assert_unchanged();
    target.assert_no_suspicion();
}
