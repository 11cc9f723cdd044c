//! Bad input against a real node: raw TCP connections send garbage, oversized and truncated
//! frames, frames with a wrong key or none, replays and another protocol version. Each must be
//! refused (a `Refused` notice, then the connection closes) or the connection closed, without
//! the node crashing or changing state: afterwards it still answers queries with the same
//! view, and the two-node group it is in has not changed its view. Also: configurations and
//! data directories the node must refuse at start.
//!
//! Like the `membership` tests, these run the `viewsync` binary next to the test executable;
//! build it first with `cargo build --bin viewsync` (cargo does not build another package's
//! binaries for these tests, not even under `cargo test --workspace`).

mod t01_garbage_bytes;
mod t02_oversized_length_prefix;
mod t03_truncated_frame;
mod t04_wrong_key;
mod t05_unauthenticated_bodies;
mod t06_replayed_frame;
mod t07_wrong_protocol_version;
mod t08_members_request_for_another_group;
mod t09_config_refusals;
mod t10_oversized_multicast;
mod t11_unauthenticated_multicast;
mod t12_bad_data_dir;
mod t13_counter_overflow;
mod t14_stale_incarnation;
mod t15_slow_connections;
mod t16_connection_flood;
mod t17_errors_name_the_fix;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::RwLockReadGuard;
use std::thread;
use std::time::{Duration, Instant};
use viewsync::client::{query_members, ClientError};
use viewsync::wire::codec::FRAME_BYTES_MAX_DEFAULT;
use viewsync::wire::{Body, ClusterKey, Envelope, FrameCodec, PROTOCOL_VERSION};
use viewsync::{GroupName, Incarnation, NodeId, ProcessId, View};
use viewsync_tests::process::{timing_shared, Cluster, ViewLine, CONVERGE_TIMEOUT, GROUP};

/// How long to wait for a node to answer a bad frame and close the connection.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(3);

/// A two-node group; the bad input goes to node 1.
pub struct Target {
    /// Nodes 1 and 2.
    pub cluster: Cluster,
    /// Their view before the bad input.
    pub view: ViewLine,
    /// The cluster key.
    pub key: ClusterKey,
    marks: [usize; 2],
    /// Held while the target runs: the connection flood waits for every other target.
    _timing: Option<RwLockReadGuard<'static, ()>>,
}

impl Target {
    /// Starts nodes 1 and 2 and waits for their common view.
    pub fn start() -> Target {
        let timing = timing_shared();
        let mut target = Target::start_with("");
        target._timing = Some(timing);
        target
    }

    /// Like [`Target::start`] with `node1_config` appended to node 1's configuration, and
    /// without taking the shared timing guard (for a test that holds the exclusive one).
    pub fn start_with(node1_config: &str) -> Target {
        let mut cluster = Cluster::new();
        cluster.launch(1, &[], node1_config);
        let seeds = cluster.addrs();
        cluster.launch(2, &seeds, "");
        let view = cluster.wait_converged(&[1, 2], CONVERGE_TIMEOUT);
        let key = ClusterKey::load(&cluster.key_file).expect("the cluster key");
        let marks = [cluster.node(1).mark(), cluster.node(2).mark()];
        Target {
            cluster,
            view,
            key,
            marks,
            _timing: None,
        }
    }

    /// Takes the nodes' current view as the one that must not change from now on.
    pub fn rebase(&mut self, view: ViewLine) {
        self.view = view;
        self.marks = [self.cluster.node(1).mark(), self.cluster.node(2).mark()];
    }

    /// Node 1's address, where the bad input goes.
    pub fn addr(&self) -> SocketAddr {
        self.cluster.addr(1)
    }

    /// The id of the view nodes 1 and 2 are in (asked from node 1).
    pub fn view_id(&self) -> viewsync::ViewId {
        query(self.addr(), GROUP, Some(self.key.clone()))
            .expect("node 1 answers")
            .expect("node 1 is a member")
            .id
    }

    /// Node 2's process id.
    pub fn node2(&mut self) -> ProcessId {
        let node = self.cluster.node(2);
        ProcessId {
            node: NodeId(2),
            incarnation: Incarnation(node.incarnation),
        }
    }

    /// Node 1 logged closing a connection over a bad frame for a reason containing `reason`.
    pub fn expect_logged(&mut self, reason: &str) {
        self.cluster.node(1).wait_stderr(
            &["WARN", "closing connection over a bad frame", reason],
            Duration::from_secs(5),
        );
    }

    /// Both nodes run, answer queries (node 1 without the key, node 2 with it) with the view
    /// they had before, and printed no view since.
    pub fn assert_unchanged(&mut self) {
        // Long enough for a view change a bad frame might have started to show.
        thread::sleep(Duration::from_millis(300));
        for id in [1, 2] {
            let node = self.cluster.node(id);
            assert!(
                node.is_running(),
                "node {id} is no longer running: {:?}",
                node.try_exit()
            );
        }
        for (id, key) in [(1, None), (2, Some(self.key.clone()))] {
            let view = query(self.cluster.addr(id), GROUP, key)
                .unwrap_or_else(|e| panic!("node {id} does not answer a members query: {e}"))
                .unwrap_or_else(|| panic!("node {id} is no longer a member"));
            let nodes: Vec<u64> = view.members.iter().map(|m| m.id.node.0).collect();
            assert_eq!(
                (view.id.epoch, nodes),
                (self.view.epoch, self.view.members.clone()),
                "node {id}'s view changed"
            );
        }
        for (id, mark) in [1, 2].into_iter().zip(self.marks) {
            let views = self.cluster.node(id).views_since(mark);
            assert!(views.is_empty(), "node {id} changed its view: {views:?}");
        }
        self.cluster.wait_converged(&[1, 2], CONVERGE_TIMEOUT);
    }
}

impl Target {
    /// Neither node suspected the other since the target started (or was rebased).
    pub fn assert_no_suspicion(&mut self) {
        for (id, mark) in [1, 2].into_iter().zip(self.marks) {
            let suspicions: Vec<String> = self
                .cluster
                .node(id)
                .lines_since(mark)
                .into_iter()
                .filter(|l| l.text.starts_with("suspected ") || l.text.starts_with("unsuspected "))
                .map(|l| l.text)
                .collect();
            assert!(suspicions.is_empty(), "node {id}: {suspicions:?}");
        }
    }
}

/// What came back on a connection.
#[derive(Debug)]
pub struct Answer {
    /// Frames received, opened with a keyless codec (the refusal notice is unauthenticated).
    pub frames: Vec<Result<Envelope, String>>,
    /// Bytes left over that do not make a whole frame.
    pub partial: usize,
    /// The node closed the connection (end of stream or reset).
    pub closed: bool,
    /// The write failed (the node had already closed).
    pub write_error: Option<String>,
}

impl Answer {
    /// Asserts the answer is exactly one `Refused` notice from node 1 whose reason contains
    /// `reason`, and that the connection was then closed. Returns the reason.
    pub fn assert_refused(&self, reason: &str) -> String {
        self.assert_refused_by(NodeId(1), reason)
    }

    /// Like [`Answer::assert_refused`], for a notice from node `by`.
    pub fn assert_refused_by(&self, by: NodeId, reason: &str) -> String {
        assert!(
            self.closed,
            "the node did not close the connection: {self:?}"
        );
        assert_eq!(self.partial, 0, "{self:?}");
        match &self.frames[..] {
            [Ok(Envelope {
                body: Body::Refused { reason: got },
                sender,
                ..
            })] => {
                assert_eq!(sender.node, by, "{self:?}");
                assert!(
                    got.contains(reason),
                    "expected a refusal for {reason:?}: {got:?}"
                );
                got.clone()
            }
            _ => panic!("expected one Refused notice ({reason:?}): {self:?}"),
        }
    }

    /// Asserts the node closed the connection, sending at most a `Refused` notice.
    pub fn assert_refused_or_closed(&self) {
        assert!(
            self.closed,
            "the node did not close the connection: {self:?}"
        );
        assert!(
            self.frames.iter().all(|f| matches!(
                f,
                Ok(Envelope {
                    body: Body::Refused { .. },
                    ..
                })
            )),
            "{self:?}"
        );
    }
}

/// Sends `bytes` on a new connection to `addr` (then half-closes it if `close_write`) and
/// collects what comes back until the node closes the connection or `listen_for` passes.
pub fn exchange(addr: SocketAddr, bytes: &[u8], close_write: bool, listen_for: Duration) -> Answer {
    let mut stream =
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect to the node");
    stream.set_nodelay(true).expect("nodelay");
    let write_error = stream.write_all(bytes).err().map(|e| e.to_string());
    if close_write {
        let _ = stream.shutdown(Shutdown::Write);
    }
    stream
        .set_read_timeout(Some(Duration::from_millis(20)))
        .expect("read timeout");
    let deadline = Instant::now() + listen_for;
    let mut received = Vec::new();
    let mut closed = false;
    let mut chunk = [0u8; 4096];
    while Instant::now() < deadline {
        match stream.read(&mut chunk) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(n) => received.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => {
                closed = true;
                break;
            }
        }
    }
    let codec = FrameCodec::new(None, FRAME_BYTES_MAX_DEFAULT);
    let mut frames = Vec::new();
    let mut rest = &received[..];
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
        write_error,
    }
}

/// Sends `bytes` and expects the node to refuse them for `reason`.
pub fn send_expecting_refusal(target: &mut Target, bytes: &[u8], reason: &str) -> String {
    let answer = exchange(target.addr(), bytes, false, ANSWER_TIMEOUT);
    let got = answer.assert_refused(reason);
    target.expect_logged(reason);
    got
}

/// An envelope from the made-up node 99 (nodes of the test cluster are 1 and 2).
pub fn envelope(group: Option<&str>, body: Body) -> Envelope {
    Envelope {
        version: PROTOCOL_VERSION,
        sender: intruder(),
        sender_addr: intruder_addr(),
        seq: 0,
        group: group.map(|g| GroupName::new(g).expect("group name")),
        body,
    }
}

/// The process id the bad frames claim: node 99, a fresh incarnation.
pub fn intruder() -> ProcessId {
    ProcessId {
        node: NodeId(99),
        incarnation: Incarnation::now(),
    }
}

/// The address the bad frames claim (the discard port: nothing listens there).
pub fn intruder_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9))
}

/// A `JoinRequest` body for node 99.
pub fn join_request() -> Body {
    Body::JoinRequest {
        member: viewsync::Member {
            id: intruder(),
            addr: intruder_addr(),
        },
        last_epoch: 0,
    }
}

/// A frame codec with `key` (or none).
pub fn codec(key: Option<ClusterKey>) -> FrameCodec {
    FrameCodec::new(key, FRAME_BYTES_MAX_DEFAULT)
}

/// `viewsync::client::query_members` on a runtime of its own.
pub fn query(
    addr: SocketAddr,
    group: &str,
    key: Option<ClusterKey>,
) -> Result<Option<View>, ClientError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let group = GroupName::new(group).expect("group name");
    runtime.block_on(query_members(addr, &group, key, Duration::from_secs(3)))
}
