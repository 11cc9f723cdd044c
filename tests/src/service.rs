//! Nodes with the log service, for the `multicast` tests:
//!
//! - [`ServiceNode`]: a `viewsync node` started with the log service's send plan
//!   (`--send-count/--send-rate/--send-size`), its stdout parsed as it arrives into a
//!   [`StdoutLog`]. Dropping it kills the process (SIGKILL); on a panic it prints what the
//!   node wrote.
//! - [`Group`]: the cluster directory and key of [`Cluster`], plus [`ServiceNode`]s by id.
//! - [`stop`]/[`resume`] (SIGSTOP/SIGCONT) and [`rss_kib`] (VmRSS from `/proc`).

use crate::child::NodeChild;
use crate::process::{Cluster, STARTUP_TIMEOUT};
pub use crate::stdout_log::{
    restore, service_view, Delivery, EventLine, Payload, Restore, ServiceView, StdoutLog,
};
pub use crate::view_synchrony::{check_view_synchrony, Ordering, Snapshot, Summary};
use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};
pub use viewsync_services::report::ListeningLine;

/// How long nodes may take to agree on a service view under traffic, on a loaded machine.
pub const SERVICE_CONVERGE_TIMEOUT: Duration = Duration::from_secs(30);

/// The `--send-*` arguments of `viewsync node`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SendPlan {
    /// `--send-count`: messages to multicast (0: none).
    pub count: u64,
    /// `--send-rate`: messages per second (0: as fast as flow control allows).
    pub rate: u64,
    /// `--send-size`: payload bytes (0: just the text `<node>-<k>`).
    pub size: usize,
}

impl SendPlan {
    /// `count` messages at `rate` per second, unpadded.
    pub fn new(count: u64, rate: u64) -> SendPlan {
        SendPlan {
            count,
            rate,
            size: 0,
        }
    }

    fn args(&self) -> Vec<String> {
        if self.count == 0 {
            return Vec::new();
        }
        vec![
            "--send-count".into(),
            self.count.to_string(),
            "--send-rate".into(),
            self.rate.to_string(),
            "--send-size".into(),
            self.size.to_string(),
        ]
    }
}

/// One running `viewsync node` with the log service.
pub struct ServiceNode {
    /// Its node id.
    pub node_id: u64,
    /// Its listen address (from its `listening` line).
    pub addr: SocketAddr,
    child: NodeChild,
    log: Arc<Mutex<StdoutLog>>,
    stderr: Arc<Mutex<VecDeque<String>>>,
    refused: Arc<Mutex<Vec<u64>>>,
}

/// Log (stderr) lines kept per node: the last ones, for the failure report.
const STDERR_LINES: usize = 400;

impl ServiceNode {
    /// Starts `viewsync node --config <config>` with `plan`, and waits for its `listening`
    /// line.
    pub fn start(config: &Path, node_id: u64, plan: SendPlan) -> ServiceNode {
        let log = Arc::new(Mutex::new(StdoutLog::default()));
        let sink = log.clone();
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        let stderr_sink = stderr.clone();
        let refused = Arc::new(Mutex::new(Vec::new()));
        let refused_sink = refused.clone();
        let child = NodeChild::spawn(
            config,
            &plan.args(),
            move |at, text| sink.lock().unwrap_or_else(|e| e.into_inner()).add(at, text),
            move |line| {
                if let Some(k) = refused_k(&line) {
                    refused_sink
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(k);
                }
                let mut lines = stderr_sink.lock().unwrap_or_else(|e| e.into_inner());
                if lines.len() == STDERR_LINES {
                    lines.pop_front();
                }
                lines.push_back(line);
            },
        );
        let mut node = ServiceNode {
            node_id,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            child,
            log,
            stderr,
            refused,
        };
        let line = node.wait_event(0, "a `listening` line", STARTUP_TIMEOUT, |l| {
            l.starts_with("listening ")
        });
        let listening = ListeningLine::parse(&line.text)
            .unwrap_or_else(|| panic!("not a listening line: {}", line.text));
        assert_eq!(listening.node, node_id, "{}", line.text);
        node.addr = listening.addr;
        node
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// The parsed stdout (held locked: keep it short, the node's stdout pipe waits).
    pub fn log(&self) -> MutexGuard<'_, StdoutLog> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The number of event (non-`deliver`) lines so far: a position to wait from.
    pub fn mark(&self) -> usize {
        self.log().events.len()
    }

    /// How many deliveries the node printed so far.
    pub fn delivered(&self) -> usize {
        self.log().deliveries.len()
    }

    /// The deliveries the node made in view `epoch`, in order.
    pub fn deliveries_in(&self, epoch: u64) -> Vec<Delivery> {
        self.log()
            .deliveries
            .iter()
            .filter(|d| u64::from(d.epoch) == epoch)
            .cloned()
            .collect()
    }

    /// Everything printed, summarized (see [`StdoutLog::describe`]).
    pub fn describe(&self) -> String {
        self.log().describe()
    }

    /// The `k`s of the send plan's multicasts that the node refused (its log service logs
    /// `multicast refused; retrying … k=K` and goes on with `K + 1`: `K` is never multicast).
    pub fn refused(&self) -> Vec<u64> {
        self.refused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The last log lines (stderr), colours removed.
    pub fn stderr_tail(&self) -> Vec<String> {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// Waits until `cond` holds for the log; panics naming `what` after `timeout`, with the
    /// node's stdout.
    pub fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        mut cond: impl FnMut(&StdoutLog) -> bool,
    ) {
        let deadline = Instant::now() + timeout;
        loop {
            if cond(&self.log()) {
                return;
            }
            if Instant::now() >= deadline {
                let status = match self.try_exit() {
                    Some(s) => format!("exited: {s}"),
                    None => "running".into(),
                };
                panic!(
                    "node {}: no {what} within {timeout:?} (process {status}); its stdout:\n{}",
                    self.node_id,
                    self.describe()
                );
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for the first event line at position `from` or later that satisfies `pred`.
    pub fn wait_event(
        &mut self,
        from: usize,
        what: &str,
        timeout: Duration,
        mut pred: impl FnMut(&str) -> bool,
    ) -> EventLine {
        let mut found = None;
        let mut next = from;
        self.wait_for(what, timeout, |log| {
            while next < log.events.len() {
                if pred(&log.events[next].text) {
                    found = Some(log.events[next].clone());
                    return true;
                }
                next += 1;
            }
            false
        });
        found.expect("found")
    }

    /// Waits for the first `service-view` line at position `from` or later that satisfies
    /// `pred`.
    pub fn wait_service_view(
        &mut self,
        from: usize,
        what: &str,
        timeout: Duration,
        mut pred: impl FnMut(&ServiceView) -> bool,
    ) -> (EventLine, ServiceView) {
        let line = self.wait_event(from, what, timeout, |text| {
            service_view(text).is_some_and(|v| pred(&v))
        });
        let view = service_view(&line.text).expect("matched");
        (line, view)
    }

    /// Sends SIGKILL. Returns the instant just before.
    pub fn sigkill(&mut self) -> Instant {
        self.child.sigkill()
    }

    /// The exit status if the process has ended.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        self.child.try_exit()
    }

    /// Waits for the process to end (after [`ServiceNode::sigkill`]); panics after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        self.child
            .wait_exit(timeout)
            .unwrap_or_else(|| panic!("node {} did not exit within {timeout:?}", self.node_id))
    }
}

impl Drop for ServiceNode {
    fn drop(&mut self) {
        self.child.end();
        if thread::panicking() {
            let status = self.try_exit();
            thread::sleep(Duration::from_millis(20));
            let stderr = self.stderr_tail();
            let tail = &stderr[stderr.len().saturating_sub(40)..];
            eprintln!(
                "---- node {} (pid {}, {}, {:?}) stdout:\n{}---- node {} log (last {} lines):\n{}\n",
                self.node_id,
                self.pid(),
                self.addr,
                status,
                self.describe(),
                self.node_id,
                tail.len(),
                tail.join("\n")
            );
        }
    }
}

/// The `k` of a log line `… multicast refused; retrying error=… k=K`.
fn refused_k(line: &str) -> Option<u64> {
    if !line.contains("multicast refused") {
        return None;
    }
    line.split_whitespace()
        .rev()
        .find_map(|f| f.strip_prefix("k="))
        .and_then(|k| k.parse().ok())
}

/// SIGSTOP: the process stops reading its sockets (and everything else) until [`resume`].
pub fn stop(node: &ServiceNode) -> Instant {
    node.child.signal("STOP")
}

/// SIGCONT.
pub fn resume(node: &ServiceNode) {
    node.child.signal("CONT");
}

/// The resident set size of `pid`, in KiB (`VmRSS` in `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> u64 {
    let path = format!("/proc/{pid}/status");
    let status =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in {path}:\n{status}"))
}

/// A keyed cluster of [`ServiceNode`]s in a temporary directory.
pub struct Group {
    /// The directory, key and configuration files (its own node table stays empty).
    pub cluster: Cluster,
    nodes: BTreeMap<u64, ServiceNode>,
}

impl Default for Group {
    /// Same as [`Group::new`].
    fn default() -> Self {
        Group::new()
    }
}

impl Group {
    /// An empty group with a fresh cluster key.
    pub fn new() -> Group {
        Group {
            cluster: Cluster::new(),
            nodes: BTreeMap::new(),
        }
    }

    /// Starts nodes `1..=n` one after the other (each joins through those before it) with
    /// the same `extra` configuration and `plan`, and waits until all are in one service view
    /// of the `n`.
    pub fn start(n: u64, extra: &str, plan: SendPlan) -> (Group, ServiceView) {
        let mut group = Group::new();
        for id in 1..=n {
            let seeds = group.addrs();
            group.launch(id, &seeds, extra, plan);
        }
        let ids: Vec<u64> = (1..=n).collect();
        let view = group.wait_converged(&ids, SERVICE_CONVERGE_TIMEOUT);
        (group, view)
    }

    /// Starts node `node_id` with the cluster key, `extra` configuration and `plan`.
    pub fn launch(
        &mut self,
        node_id: u64,
        seeds: &[SocketAddr],
        extra: &str,
        plan: SendPlan,
    ) -> &mut ServiceNode {
        let key = self.cluster.key_file.clone();
        let config = self.cluster.write_config(node_id, seeds, Some(&key), extra);
        let node = ServiceNode::start(&config, node_id, plan);
        self.nodes.insert(node_id, node);
        self.node(node_id)
    }

    /// Node `id`.
    pub fn node(&mut self, id: u64) -> &mut ServiceNode {
        self.nodes
            .get_mut(&id)
            .unwrap_or_else(|| panic!("no node {id}"))
    }

    /// Every node's address.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.nodes.values().map(|n| n.addr).collect()
    }

    /// The cluster key file.
    pub fn key_file(&self) -> PathBuf {
        self.cluster.key_file.clone()
    }

    /// Every node's stdout, summarized.
    pub fn describe(&self, ids: &[u64]) -> String {
        let mut out = String::new();
        for id in ids {
            if let Some(node) = self.nodes.get(id) {
                let _ = write!(out, "node {id}:\n{}", node.describe());
            }
        }
        out
    }

    /// Waits until the latest `service-view` of every node in `ids` is the same view, with
    /// exactly `ids` as members; returns it.
    pub fn wait_converged(&mut self, ids: &[u64], timeout: Duration) -> ServiceView {
        let mut want = ids.to_vec();
        want.sort_unstable();
        let deadline = Instant::now() + timeout;
        loop {
            let latest: Vec<Option<ServiceView>> = ids
                .iter()
                .map(|id| self.node(*id).log().latest_service_view())
                .collect();
            if let Some(Some(first)) = latest.first() {
                // Every member votes: joiners have their state and were promoted.
                if first.sorted_members() == want
                    && first.learners.is_empty()
                    && latest
                        .iter()
                        .all(|v| v.as_ref().is_some_and(|v| v.epoch == first.epoch))
                {
                    return first.clone();
                }
            }
            if Instant::now() >= deadline {
                panic!(
                    "nodes {ids:?} did not reach one service view of {want:?} within \
                     {timeout:?}:\n{}",
                    self.describe(ids)
                );
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until every node in `ids` delivered at least `at_least` messages in its current
    /// service view.
    pub fn wait_delivered_in_view(&mut self, ids: &[u64], at_least: usize, timeout: Duration) {
        for id in ids {
            self.node(*id).wait_for(
                &format!("{at_least} deliveries in its current service view"),
                timeout,
                |log| log.delivered_in_current_view() >= at_least,
            );
        }
    }

    /// Waits until every node in `ids` delivered message `<s>-<count>` of every sender `s` in
    /// `senders` (the last of their send plans).
    pub fn wait_all_sent_delivered(
        &mut self,
        ids: &[u64],
        senders: &[u64],
        count: u64,
        timeout: Duration,
    ) {
        for id in ids {
            self.node(*id).wait_for(
                &format!("delivery of message {count} of each of the nodes {senders:?}"),
                timeout,
                |log| {
                    senders
                        .iter()
                        .all(|s| log.max_k.get(&(*s as u32)).copied().unwrap_or(0) >= count)
                },
            );
        }
    }

    /// Checks the view-synchrony properties over the logs of `ids` (see
    /// [`check_view_synchrony`]); panics with every problem and the nodes' stdout.
    /// The multicasts refused by any node of the group (see [`ServiceNode::refused`]) are
    /// excused from the FIFO and gap checks, and returned in the summary.
    pub fn check(&self, ids: &[u64], ordering: Ordering) -> Summary {
        let snapshots: Vec<Snapshot> = ids
            .iter()
            .map(|id| {
                let node = self.nodes.get(id).unwrap_or_else(|| panic!("no node {id}"));
                let log = node.log();
                Snapshot {
                    node: *id,
                    deliveries: log.deliveries.clone(),
                    events: log.events.clone(),
                    problems: log.problems.clone(),
                }
            })
            .collect();
        let refused: BTreeMap<u64, Vec<u64>> = self
            .nodes
            .iter()
            .map(|(id, node)| (*id, node.refused()))
            .filter(|(_, ks)| !ks.is_empty())
            .collect();
        let (mut summary, problems) = check_view_synchrony(&snapshots, ordering, &refused);
        summary.refused = refused;
        if !problems.is_empty() {
            panic!(
                "view synchrony violated ({} problems):\n- {}\n\nservice lines:\n{}",
                problems.len(),
                problems.join("\n- "),
                self.describe(ids)
            );
        }
        summary
    }
}
