//! 10,000 idle connection attempts against node 1, in waves of 1,000 (each held open until
//! the node closes it): node 1 holds at most `transport.max_inbound_connections` of them and
//! closes the rest at once, closes the held ones after `transport.auth_timeout`, and keeps
//! serving all along: a multicast sent during each wave is delivered at both nodes, a members
//! query after each wave is answered, the view does not change and neither node suspects the
//! other. Its file descriptors return to where they were and its memory stays bounded.
//!
//! Runs alone (it takes the exclusive timing guard), about 30 s.

use crate::{query, Target};
use std::io::{ErrorKind, Read};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};
use viewsync::client::send_to_group;
use viewsync::GroupName;
use viewsync_tests::process::{timing_exclusive, GROUP};

const WAVES: usize = 10;
const PER_WAVE: usize = 1000;
const LIMIT: usize = 500;
const NODE1: &str = "[transport]\nmax_inbound_connections = 500\nauth_timeout = \"1s\"\n";
/// How long the node may take to close every held connection of a wave.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(20);
/// Memory the flood may leave behind in node 1 (allocator caches, the tracked counters).
const RSS_GROWTH_MAX_KB: u64 = 32 * 1024;

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("the node's /proc fd directory")
        .count()
}

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmRSS line")
}

/// Whether the node has closed `stream` (end of stream or reset); reads what it sent.
fn closed_by_node(stream: &mut TcpStream) -> bool {
    let mut chunk = [0u8; 512];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return true,
        }
    }
}

#[test]
fn ten_thousand_idle_connections_leave_the_group_serving_with_bounded_memory() {
    let _timing = timing_exclusive();
    let mut target = Target::start_with(NODE1);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let group = GroupName::new(GROUP).expect("group name");
    let (node2, key) = (target.cluster.addr(2), target.key.clone());
    let multicast = |payload: String| {
        runtime
            .block_on(send_to_group(
                &[node2],
                &group,
                bytes::Bytes::from(payload.into_bytes()),
                Some(key.clone()),
                Duration::from_secs(10),
            ))
            .expect("a multicast through node 2")
    };
    multicast("before-the-flood".into());
    query(target.addr(), GROUP, Some(target.key.clone())).expect("node 1 answers");
    thread::sleep(Duration::from_millis(500));
    let pid = target.cluster.node(1).pid();
    let (fds_before, rss_before) = (open_fds(pid), rss_kb(pid));

    let mut attempts = 0;
    let mut connect_failures = 0;
    let mut fds_peak = fds_before;
    let mut rss_peak = rss_before;
    for wave in 0..WAVES {
        let mut held = Vec::with_capacity(PER_WAVE);
        for _ in 0..PER_WAVE {
            attempts += 1;
            match TcpStream::connect_timeout(&target.addr(), Duration::from_secs(5)) {
                Ok(stream) => {
                    stream.set_nonblocking(true).expect("nonblocking");
                    held.push(stream);
                }
                Err(_) => connect_failures += 1,
            }
        }
        let opened = Instant::now();
        fds_peak = fds_peak.max(open_fds(pid));
        rss_peak = rss_peak.max(rss_kb(pid));
        // The group goes on while the node is at its limit.
        multicast(format!("during-wave-{wave}"));
        while !held.is_empty() {
            held.retain_mut(|stream| !closed_by_node(stream));
            fds_peak = fds_peak.max(open_fds(pid));
            assert!(
                opened.elapsed() < CLOSE_TIMEOUT,
                "wave {wave}: {} connections still open after {CLOSE_TIMEOUT:?}",
                held.len()
            );
            thread::sleep(Duration::from_millis(100));
        }
        let view = query(target.addr(), GROUP, Some(target.key.clone()))
            .unwrap_or_else(|e| panic!("node 1 does not answer after wave {wave}: {e}"))
            .expect("node 1 is a member");
        assert_eq!(view.id.epoch, target.view.epoch, "after wave {wave}");
    }
    assert_eq!(attempts, WAVES * PER_WAVE);

    // The node's descriptors come back to where they were once the last wave is closed.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut fds_after = open_fds(pid);
    while fds_after > fds_before + 2 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(100));
        fds_after = open_fds(pid);
    }
    let rss_after = rss_kb(pid);
    println!(
        "connection flood: {attempts} attempts ({connect_failures} failed to connect); node 1 \
         fds {fds_before} before, {fds_peak} at the peak, {fds_after} after; RSS {rss_before} kB \
         before, {rss_peak} kB at the peak, {rss_after} kB after"
    );
    assert!(
        fds_peak <= fds_before + LIMIT + 16,
        "node 1 held more connections than its limit: {fds_peak} fds (from {fds_before})"
    );
    assert!(
        fds_after <= fds_before + 2,
        "node 1's descriptors did not return: {fds_after} (from {fds_before})"
    );
    assert!(
        rss_after <= rss_before + RSS_GROWTH_MAX_KB,
        "node 1's memory grew from {rss_before} kB to {rss_after} kB"
    );

    // Each multicast reached both nodes, and node 1 said what it did.
    for id in [1, 2] {
        for wave in 0..WAVES {
            let payload = format!("payload=during-wave-{wave}");
            target.cluster.node(id).wait_line_from(
                0,
                "the multicast sent during a wave",
                Duration::from_secs(10),
                |l| l.starts_with("deliver ") && l.ends_with(&payload),
            );
        }
    }
    let node1 = target.cluster.node(1);
    node1.wait_stderr(
        &["WARN", "at the inbound connection limit", "limit=500"],
        Duration::from_secs(5),
    );
    node1.wait_stderr(
        &["WARN", "closing slow connection", "auth_timeout"],
        Duration::from_secs(5),
    );
    let log_lines = node1
        .stderr_lines()
        .iter()
        .filter(|l| l.contains("closing slow connection") || l.contains("connection limit"))
        .count();
    assert!(
        log_lines < 200,
        "{log_lines} log lines for the flood: not rate-limited"
    );
    target.assert_unchanged();
    target.assert_no_suspicion();
}
