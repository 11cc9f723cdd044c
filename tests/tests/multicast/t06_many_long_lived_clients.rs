//! Many long-lived clients send through one node at once: [`viewsync::client::Client`]s,
//! started at different times, each keeping one connection and sending many `GroupSend`s over
//! time (the body `viewsync send` uses), while one-shot `viewsync send` commands run too.
//! Every send is accepted and every member delivers each message exactly once, in one total
//! order, each client's messages in the order it sent them. A client's frame replayed on
//! another connection is still refused.
//!
//! Before clients had identities of their own, every client spoke as node 0 and shared one
//! replay window at the node: the first frame of a client that started later moved the window
//! to its incarnation, and the next frame of any client started earlier was refused as a stale
//! incarnation (its connection closed), so all but the newest client failed here.

use bytes::Bytes;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};
use viewsync::client::Client;
use viewsync::wire::codec::FRAME_BYTES_MAX_DEFAULT;
use viewsync::wire::{Body, ClusterKey, Envelope, FrameCodec, PROTOCOL_VERSION};
use viewsync::{GroupName, ProcessId};
use viewsync_tests::process::{run_viewsync, timing_shared, GROUP};
use viewsync_tests::service::{Group, Ordering, SendPlan, SERVICE_CONVERGE_TIMEOUT};

/// Long-lived clients.
const CLIENTS: usize = 30;
/// Group sends per client.
const SENDS: usize = 40;
/// Clients start this far apart.
const START_STAGGER: Duration = Duration::from_millis(30);
/// One-shot `viewsync send` commands run meanwhile.
const ONE_SHOTS: usize = 4;

fn payload(client: usize, k: usize) -> String {
    format!("lc{client:02}-{k:03}")
}

/// What one long-lived client saw.
#[derive(Debug)]
struct ClientRun {
    index: usize,
    id: ProcessId,
    accepted: usize,
    /// The first errors, with the send they came at.
    errors: Vec<(usize, String)>,
    /// Sends after which the client had no connection open any more (it reconnects).
    disconnected_after: Vec<usize>,
}

async fn run_client(index: usize, via: SocketAddr, key: ClusterKey) -> ClientRun {
    let group = GroupName::new(GROUP).expect("group name");
    tokio::time::sleep(START_STAGGER * index as u32).await;
    let mut client = Client::connect(via, Some(key), Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("client {index} cannot connect: {e}"));
    let mut run = ClientRun {
        index,
        id: client.id(),
        accepted: 0,
        errors: Vec::new(),
        disconnected_after: Vec::new(),
    };
    for k in 1..=SENDS {
        let result = client
            .group_send(&group, Bytes::from(payload(index, k)))
            .await;
        match result {
            Ok(()) => run.accepted += 1,
            Err(error) => {
                if run.errors.len() < 3 {
                    run.errors.push((k, error.to_string()));
                }
            }
        }
        if !client.is_connected() {
            run.disconnected_after.push(k);
        }
        // Spread over time, interleaved with the other clients differently each round.
        let pause = 10 + (index * 7 + k * 13) % 40;
        tokio::time::sleep(Duration::from_millis(pause as u64)).await;
    }
    run
}

/// Writes `frame` on a new connection to `to` and returns the envelope answered, or the
/// refusal reason.
fn exchange(to: SocketAddr, frame: &[u8], codec: &FrameCodec) -> Result<Body, String> {
    let mut stream = TcpStream::connect(to).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    stream.write_all(frame).expect("write");
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).map_err(|e| e.to_string())?;
    let mut payload = vec![0u8; u32::from_be_bytes(len) as usize];
    stream.read_exact(&mut payload).map_err(|e| e.to_string())?;
    let answer: Envelope = codec.open(&payload).map_err(|e| e.to_string())?;
    match answer.body {
        Body::Refused { reason } => Err(reason),
        body => Ok(body),
    }
}

#[test]
fn many_long_lived_clients_send_through_one_node() {
    let _timing = timing_shared();
    let (mut group, _) = Group::start(3, "", SendPlan::new(0, 0));
    let all = [1, 2, 3];
    let via = group.node(1).addr;
    let key_file = group.key_file();
    let key = ClusterKey::load(&key_file).expect("cluster key");

    // One-shot commands alongside, started while the clients are busy.
    let one_shots: Vec<_> = (0..ONE_SHOTS)
        .map(|i| {
            let key_file = key_file.clone();
            thread::spawn(move || {
                thread::sleep(START_STAGGER * (CLIENTS * i / ONE_SHOTS) as u32);
                let args = [
                    "send".to_string(),
                    GROUP.to_string(),
                    format!("oneshot-{i}"),
                    "--via".to_string(),
                    via.to_string(),
                    "--key-file".to_string(),
                    key_file.display().to_string(),
                ];
                run_viewsync(&args, Duration::from_secs(30))
            })
        })
        .collect();

    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let runs: Vec<ClientRun> = runtime.block_on(async {
        let tasks: Vec<_> = (0..CLIENTS)
            .map(|i| tokio::spawn(run_client(i, via, key.clone())))
            .collect();
        let mut runs = Vec::new();
        for task in tasks {
            runs.push(task.await.expect("client task"));
        }
        runs
    });
    let took = started.elapsed();

    let failed: Vec<&ClientRun> = runs.iter().filter(|r| r.accepted != SENDS).collect();
    let refused: usize = runs.iter().map(|r| SENDS - r.accepted).sum();
    assert!(
        failed.is_empty(),
        "{refused} of {} group sends failed, at {} of {CLIENTS} clients; the first: {:#?}",
        CLIENTS * SENDS,
        failed.len(),
        failed.iter().take(5).collect::<Vec<_>>()
    );
    for run in &runs {
        assert!(
            run.disconnected_after.is_empty(),
            "client {} ({}) lost its connection after sends {:?}",
            run.index,
            run.id,
            run.disconnected_after
        );
    }
    let mut ids: Vec<ProcessId> = runs.iter().map(|r| r.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(
        ids.len(),
        CLIENTS,
        "every client has an identity of its own"
    );
    for (i, handle) in one_shots.into_iter().enumerate() {
        let out = handle.join().expect("one-shot thread");
        assert!(
            out.status.success(),
            "one-shot send {i}: {}\nstdout: {}\nstderr: {}",
            out.status,
            out.stdout,
            out.stderr
        );
    }
    println!(
        "{CLIENTS} long-lived clients sent {} group sends through node 1 in {took:?}, \
         plus {ONE_SHOTS} one-shot sends",
        CLIENTS * SENDS
    );

    // A client's frame replayed on another connection is still refused, and not delivered
    // again.
    let codec = FrameCodec::new(Some(key.clone()), FRAME_BYTES_MAX_DEFAULT);
    let client = ProcessId::new_client();
    let frame = codec
        .seal(Envelope {
            version: PROTOCOL_VERSION,
            sender: client,
            sender_addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            seq: 0,
            group: Some(GroupName::new(GROUP).expect("group name")),
            body: Body::GroupSend {
                ordering: None,
                payload: Bytes::from_static(b"replay-me"),
            },
        })
        .expect("seal");
    assert_eq!(
        exchange(via, &frame, &codec),
        Ok(Body::GroupSendResult { error: None }),
        "the first copy is accepted"
    );
    let replayed = exchange(via, &frame, &codec);
    assert_eq!(
        replayed,
        Err(format!("replayed frame 1 from {client}")),
        "the same frame again is a replay"
    );

    // Every member delivers every message exactly once.
    let expected = CLIENTS * SENDS + ONE_SHOTS + 1;
    for id in all {
        group.node(id).wait_for(
            &format!("{expected} deliveries"),
            SERVICE_CONVERGE_TIMEOUT,
            |log| log.deliveries.len() >= expected,
        );
    }
    let settle = Instant::now() + Duration::from_millis(500);
    while Instant::now() < settle {
        thread::sleep(Duration::from_millis(50));
    }
    for id in all {
        let node = group.node(id);
        let log = node.log();
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for d in &log.deliveries {
            *counts.entry(d.payload.to_string()).or_default() += 1;
        }
        let mut wrong = Vec::new();
        for i in 0..CLIENTS {
            for k in 1..=SENDS {
                let text = payload(i, k);
                let n = counts.remove(&text).unwrap_or(0);
                if n != 1 {
                    wrong.push(format!("{text} delivered {n} times"));
                }
            }
        }
        for text in (0..ONE_SHOTS)
            .map(|i| format!("oneshot-{i}"))
            .chain(["replay-me".to_string()])
        {
            let n = counts.remove(&text).unwrap_or(0);
            if n != 1 {
                wrong.push(format!("{text} delivered {n} times"));
            }
        }
        assert!(
            wrong.is_empty() && counts.is_empty(),
            "node {id}: {wrong:?}; unexpected deliveries: {counts:?}"
        );
        // Each client's messages in the order it sent them.
        for i in 0..CLIENTS {
            let prefix = format!("lc{i:02}-");
            let ks: Vec<usize> = log
                .deliveries
                .iter()
                .filter_map(|d| d.payload.to_string().strip_prefix(&prefix)?.parse().ok())
                .collect();
            assert!(
                ks.windows(2).all(|w| w[0] < w[1]),
                "node {id}: client {i}'s messages out of order: {ks:?}"
            );
        }
    }
    // One total order at every member, in the same views.
    group.check(&all, Ordering::Total);

    // Node 1 closed no connection but the replay's.
    let closed: Vec<String> = group
        .node(1)
        .stderr_tail()
        .into_iter()
        .filter(|l| l.contains("closing connection over a bad frame"))
        .collect();
    assert!(
        closed.len() == 1 && closed[0].contains("replayed frame"),
        "node 1 closed connections over bad frames: {closed:#?}"
    );
}
