//! `viewsync monitor` streams a node's events with timestamps; a node's own event lines are
//! timestamped, and its logs to a pipe carry no colour codes.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use viewsync_services::report::split_stamp;
use viewsync_tests::child::viewsync_bin;
use viewsync_tests::process::{config_text, timing_shared, Cluster, TempDir};

/// A running `viewsync monitor`, its stdout lines as they come.
struct MonitorProcess {
    child: std::process::Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl MonitorProcess {
    fn start(via: std::net::SocketAddr) -> MonitorProcess {
        let mut child = Command::new(viewsync_bin())
            .args(["monitor", "--via", &via.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start viewsync monitor");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        MonitorProcess {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a line whose event (after its timestamp) satisfies `pred`.
    fn wait(&mut self, what: &str, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let (stamp, event) = split_stamp(&line);
                    assert!(stamp.is_some(), "monitor line without a timestamp: {line}");
                    let event = event.to_string();
                    self.seen.push(line);
                    if pred(&event) {
                        return event;
                    }
                }
                Err(_) => panic!(
                    "monitor: no {what} within {timeout:?}; it printed:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }
}

impl Drop for MonitorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The monitor first shows the view, then the suspicion and the view without a killed member.
#[test]
fn monitor_sees_a_view_change_after_a_kill() {
    let _shared = timing_shared();
    let (mut cluster, _) = Cluster::start(3);
    let mut monitor = MonitorProcess::start(cluster.addr(1));
    let timeout = Duration::from_secs(20);
    monitor.wait("the current view", timeout, |e| {
        e.starts_with("view group=demo ") && e.contains(" members=") && e.matches(',').count() == 2
    });
    cluster.node(3).sigkill();
    monitor.wait("the suspicion of node 3", timeout, |e| {
        e.starts_with("suspected node=3 ")
    });
    let view = monitor.wait("a view without node 3", timeout, |e| {
        e.starts_with("view group=demo ") && e.contains(" left=3")
    });
    assert!(
        view.contains(" members=1,2 ") || view.contains(" members=2,1 "),
        "{view}"
    );
    // The nodes' own stdout lines carry timestamps too (the harness strips them).
    for id in [1, 2] {
        assert!(cluster.node(id).lines().len() > 2);
        assert_eq!(cluster.node(id).unstamped_lines(), 0, "node {id}");
    }
}

/// Logs written to a pipe carry no ANSI colour codes, even without `NO_COLOR`.
#[test]
fn logs_to_a_pipe_have_no_colour_codes() {
    let dir = TempDir::new("plain-logs");
    let config = dir.write("node.toml", &config_text(1, &[], None, ""));
    let mut child = Command::new(viewsync_bin())
        .args(["node", "--config", &config.display().to_string()])
        .env_remove("NO_COLOR")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start a node");
    let mut stderr = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    std::thread::sleep(Duration::from_secs(2));
    let _ = child.kill();
    let _ = child.wait();
    let logs = reader.join().expect("reader");
    assert!(logs.contains("INFO"), "no log lines: {logs}");
    assert!(
        !logs.contains('\u{1b}'),
        "colour codes in piped logs: {logs:?}"
    );
}
