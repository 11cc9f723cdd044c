//! What the `multicast` tests add to the membership harness (`cluster.rs`):
//!
//! - [`ServiceNode`]: a `viewsync node` started with the log service's send plan
//!   (`--send-count/--send-rate/--send-size`, which [`crate::cluster::NodeProcess`] cannot
//!   pass). A reader thread parses its stdout as it arrives into a [`StdoutLog`]: a flood
//!   prints some 10^5 `deliver` lines a second per node, so deliveries are kept compactly
//!   ([`Delivery`], 40 bytes) and only the last few as text; every other line is kept whole.
//!   Dropping it kills the process (SIGKILL); on a panic it prints what the node wrote.
//! - [`Group`]: the cluster directory and key of [`Cluster`], plus [`ServiceNode`]s by id.
//! - [`check_view_synchrony`]: the view-synchrony properties over several members' logs.
//! - [`stop`]/[`resume`] (SIGSTOP/SIGCONT with the `kill` utility: the workspace forbids
//!   `unsafe`, so not `libc::kill`) and [`rss_kib`] (VmRSS from `/proc`).

use crate::cluster::{fields, strip_ansi, viewsync_bin, Cluster, GROUP, STARTUP_TIMEOUT};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

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

/// The payload of a delivery: the send plan's `<node>-<k>` or any other text.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Payload {
    /// `<node>-<k>`: the `k`-th multicast of the send plan of `node`.
    Numbered {
        /// The node whose send plan multicast it.
        node: u32,
        /// Its number, from 1.
        k: u64,
    },
    /// Anything else (`viewsync send`).
    Text(Box<str>),
}

impl Payload {
    fn parse(text: &str) -> Payload {
        if let Some((node, k)) = text.split_once('-') {
            if let (Ok(node), Ok(k)) = (node.parse(), k.parse()) {
                return Payload::Numbered { node, k };
            }
        }
        Payload::Text(text.into())
    }
}

impl std::fmt::Display for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Payload::Numbered { node, k } => write!(f, "{node}-{k}"),
            Payload::Text(text) => f.write_str(text),
        }
    }
}

/// One `deliver` line, compactly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The epoch of its `view=` field.
    pub epoch: u32,
    /// Its `sender=` node.
    pub sender: u32,
    /// Its `seq=` in the sender's stream of that view.
    pub seq: u64,
    /// Its payload.
    pub payload: Payload,
}

impl std::fmt::Display for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "[view {} sender={} seq={} payload={}]",
            self.epoch, self.sender, self.seq, self.payload
        )
    }
}

/// A stdout line other than `deliver`.
#[derive(Clone, Debug)]
pub struct EventLine {
    /// When the reader thread got it.
    pub at: Instant,
    /// How many deliveries the node had printed before it.
    pub pos: usize,
    /// The line.
    pub text: String,
}

/// A parsed `service-view group=demo epoch=E coordinator=C members=1,2 delivered=D chain=H`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceView {
    /// The view's epoch.
    pub epoch: u64,
    /// Its coordinator's node id.
    pub coordinator: u64,
    /// Its members, as printed (oldest first).
    pub members: Vec<u64>,
    /// Members still waiting for their state (not voting yet).
    pub learners: Vec<u64>,
    /// The service state on entering the view: multicasts delivered so far…
    pub delivered: u64,
    /// …and the hash chain over them.
    pub chain: String,
}

/// Parses a comma-separated list of node ids (empty for none).
fn node_ids(text: &str) -> Option<Vec<u64>> {
    if text.is_empty() {
        return Some(Vec::new());
    }
    text.split(',').map(|m| m.parse().ok()).collect()
}

impl ServiceView {
    /// Parses a `service-view` line; `None` for any other line.
    pub fn parse(text: &str) -> Option<ServiceView> {
        let f = fields(text.strip_prefix("service-view ")?);
        if f.get("group")? != GROUP {
            return None;
        }
        Some(ServiceView {
            epoch: f.get("epoch")?.parse().ok()?,
            coordinator: f.get("coordinator")?.parse().ok()?,
            members: node_ids(f.get("members")?)?,
            learners: node_ids(f.get("learners").map_or("", |l| l.as_str()))?,
            delivered: f.get("delivered")?.parse().ok()?,
            chain: f.get("chain")?.clone(),
        })
    }

    /// The members, sorted.
    pub fn sorted_members(&self) -> Vec<u64> {
        let mut m = self.members.clone();
        m.sort_unstable();
        m
    }
}

/// A parsed `restore group=demo epoch=E bytes=B delivered=D chain=H`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Restore {
    /// The view the state is the start of.
    pub epoch: u64,
    /// The state's size.
    pub bytes: u64,
    /// The restored count…
    pub delivered: u64,
    /// …and chain.
    pub chain: String,
}

impl Restore {
    /// Parses a `restore` line; `None` for any other line.
    pub fn parse(text: &str) -> Option<Restore> {
        let f = fields(text.strip_prefix("restore ")?);
        if f.get("group")? != GROUP {
            return None;
        }
        Some(Restore {
            epoch: f.get("epoch")?.parse().ok()?,
            bytes: f.get("bytes")?.parse().ok()?,
            delivered: f.get("delivered")?.parse().ok()?,
            chain: f.get("chain")?.clone(),
        })
    }
}

const RECENT_DELIVERIES: usize = 40;
const MAX_PROBLEMS: usize = 40;

/// What a node printed on stdout, parsed as it arrived.
#[derive(Debug, Default)]
pub struct StdoutLog {
    /// Every `deliver` line, in order.
    pub deliveries: Vec<Delivery>,
    /// Every other line, in order.
    pub events: Vec<EventLine>,
    /// The last `deliver` lines as printed.
    pub recent: VecDeque<String>,
    /// Deliveries per `ordering=` value.
    pub orderings: BTreeMap<String, u64>,
    /// Per node, the highest `k` of its numbered payloads delivered.
    pub max_k: BTreeMap<u32, u64>,
    /// What was wrong with single lines as they arrived (at most [`MAX_PROBLEMS`]).
    pub problems: Vec<String>,
    /// The service view the node is in (epoch, coordinator), per its `service-view` lines.
    current: Option<(u64, u64)>,
    /// The service state's count: the last `n=`, or the last `restore`/`service-view`.
    count: u64,
    /// Deliveries before the latest `service-view` line.
    view_start: usize,
}

impl StdoutLog {
    fn problem(&mut self, text: String) {
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(text);
        }
    }

    fn add(&mut self, at: Instant, text: String) {
        if let Some(rest) = text.strip_prefix("deliver ") {
            self.add_delivery(rest, &text);
            if self.recent.len() == RECENT_DELIVERIES {
                self.recent.pop_front();
            }
            self.recent.push_back(text);
            return;
        }
        if let Some(view) = ServiceView::parse(&text) {
            if let Some((epoch, _)) = self.current {
                if view.epoch <= epoch {
                    self.problem(format!(
                        "service view epochs must increase: {text} after epoch {epoch}"
                    ));
                }
            }
            if view.delivered != self.count {
                self.problem(format!(
                    "{text}: the state counts {} deliveries but the log has {}",
                    view.delivered, self.count
                ));
            }
            self.current = Some((view.epoch, view.coordinator));
            self.view_start = self.deliveries.len();
        } else if let Some(restore) = Restore::parse(&text) {
            self.count = restore.delivered;
        } else if text.starts_with("service-view ") || text.starts_with("restore ") {
            self.problem(format!("unparsable line: {text}"));
        }
        self.events.push(EventLine {
            at,
            pos: self.deliveries.len(),
            text,
        });
    }

    fn add_delivery(&mut self, rest: &str, text: &str) {
        let Some((head, payload)) = rest.split_once(" payload=") else {
            return self.problem(format!("unparsable line: {text}"));
        };
        let f = fields(head);
        let parsed = (|| {
            let (epoch, coordinator) = f.get("view")?.split_once('@')?;
            Some((
                f.get("group")?.clone(),
                epoch.parse::<u32>().ok()?,
                coordinator.parse::<u64>().ok()?,
                f.get("sender")?.parse::<u32>().ok()?,
                f.get("seq")?.parse::<u64>().ok()?,
                f.get("ordering")?.clone(),
                f.get("n")?.parse::<u64>().ok()?,
            ))
        })();
        let Some((group, epoch, coordinator, sender, seq, ordering, n)) = parsed else {
            return self.problem(format!("unparsable line: {text}"));
        };
        if group != GROUP {
            self.problem(format!("delivery in another group: {text}"));
        }
        match self.current {
            None => self.problem(format!("delivery before any service view: {text}")),
            Some(current) if current != (u64::from(epoch), coordinator) => self.problem(format!(
                "delivery outside the service view {}@{}: {text}",
                current.0, current.1
            )),
            Some(_) => {}
        }
        if n != self.count + 1 {
            self.problem(format!(
                "n={n} but {} deliveries came before (state count): {text}",
                self.count
            ));
        }
        self.count = n;
        *self.orderings.entry(ordering).or_default() += 1;
        let payload = Payload::parse(payload);
        if let Payload::Numbered { node, k } = payload {
            let max = self.max_k.entry(node).or_default();
            *max = (*max).max(k);
        }
        self.deliveries.push(Delivery {
            epoch,
            sender,
            seq,
            payload,
        });
    }

    /// The `service-view` lines, in order.
    pub fn service_views(&self) -> Vec<ServiceView> {
        self.events
            .iter()
            .filter_map(|e| ServiceView::parse(&e.text))
            .collect()
    }

    /// The last `service-view` line.
    pub fn latest_service_view(&self) -> Option<ServiceView> {
        self.events
            .iter()
            .rev()
            .find_map(|e| ServiceView::parse(&e.text))
    }

    /// Deliveries since the last `service-view` line.
    pub fn delivered_in_current_view(&self) -> usize {
        self.deliveries.len() - self.view_start
    }

    /// How many deliveries carry exactly `text` as payload.
    pub fn count_text(&self, text: &str) -> usize {
        self.deliveries
            .iter()
            .filter(|d| matches!(&d.payload, Payload::Text(t) if &**t == text))
            .count()
    }

    /// The non-`deliver` lines, one per line, each with the number of deliveries before it,
    /// then the last deliveries as printed.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for e in &self.events {
            let _ = writeln!(out, "  [{:>7} deliveries] {}", e.pos, e.text);
        }
        let _ = writeln!(
            out,
            "  ({} deliveries in all; the last {}:)",
            self.deliveries.len(),
            self.recent.len()
        );
        for line in &self.recent {
            let _ = writeln!(out, "    {line}");
        }
        if !self.problems.is_empty() {
            let _ = writeln!(out, "  line problems: {:#?}", self.problems);
        }
        out
    }
}

/// One running `viewsync node` with the log service.
pub struct ServiceNode {
    /// Its node id.
    pub node_id: u64,
    /// Its listen address (from its `listening` line).
    pub addr: SocketAddr,
    child: Child,
    exit: Option<ExitStatus>,
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
        let mut child = Command::new(viewsync_bin())
            .arg("node")
            .arg("--config")
            .arg(config)
            .args(plan.args())
            .env(
                "RUST_LOG",
                std::env::var("VIEWSYNC_TEST_RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start viewsync node: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr_pipe = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(StdoutLog::default()));
        let sink = log.clone();
        thread::spawn(move || {
            let mut reader = BufReader::with_capacity(1 << 16, stdout);
            let mut buf = String::new();
            loop {
                buf.clear();
                match reader.read_line(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let at = Instant::now();
                        let text = buf.trim_end().to_string();
                        sink.lock().unwrap_or_else(|e| e.into_inner()).add(at, text);
                    }
                }
            }
        });
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        let sink = stderr.clone();
        let refused = Arc::new(Mutex::new(Vec::new()));
        let refused_sink = refused.clone();
        thread::spawn(move || {
            for line in BufReader::new(stderr_pipe).lines() {
                let Ok(line) = line else { break };
                let line = strip_ansi(&line);
                if let Some(k) = refused_k(&line) {
                    refused_sink
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(k);
                }
                let mut lines = sink.lock().unwrap_or_else(|e| e.into_inner());
                if lines.len() == STDERR_LINES {
                    lines.pop_front();
                }
                lines.push_back(line);
            }
        });
        let mut node = ServiceNode {
            node_id,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            child,
            exit: None,
            log,
            stderr,
            refused,
        };
        let line = node.wait_event(0, "a `listening` line", STARTUP_TIMEOUT, |l| {
            l.starts_with("listening ")
        });
        let f = fields(&line.text);
        assert_eq!(
            f.get("node").map(String::as_str),
            Some(node_id.to_string().as_str()),
            "{}",
            line.text
        );
        node.addr = f["addr"].parse().expect("listening addr");
        node
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
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
            ServiceView::parse(text).is_some_and(|v| pred(&v))
        });
        let view = ServiceView::parse(&line.text).expect("matched");
        (line, view)
    }

    /// Sends SIGKILL. Returns the instant just before.
    pub fn sigkill(&mut self) -> Instant {
        let at = Instant::now();
        // `Child::kill` is `kill(pid, SIGKILL)` (the workspace forbids `unsafe`).
        self.child.kill().expect("SIGKILL");
        at
    }

    /// The exit status if the process has ended.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().ok().flatten();
        }
        self.exit
    }

    /// Waits for the process to end (after [`ServiceNode::sigkill`]); panics after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_exit() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "node {} did not exit within {timeout:?}",
                self.node_id
            );
            thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for ServiceNode {
    fn drop(&mut self) {
        if self.try_exit().is_none() {
            // SIGKILL ends a stopped process too.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
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

/// Sends `signal` (`STOP`, `CONT`) to `pid` with the `kill` utility.
fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .unwrap_or_else(|e| panic!("cannot run `kill -{signal}`: {e}"));
    assert!(status.success(), "kill -{signal} {pid}: {status}");
}

/// SIGSTOP: the process stops reading its sockets (and everything else) until [`resume`].
pub fn stop(node: &ServiceNode) -> Instant {
    let at = Instant::now();
    signal(node.pid(), "STOP");
    at
}

/// SIGCONT.
pub fn resume(node: &ServiceNode) {
    signal(node.pid(), "CONT");
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

/// The ordering of a group, for [`check_view_synchrony`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ordering {
    /// Per-sender order.
    Fifo,
    /// Causal order (checked as FIFO: the log does not show causality).
    Causal,
    /// One order for all.
    Total,
}

impl Ordering {
    /// As printed in `ordering=` and configured.
    pub fn name(self) -> &'static str {
        match self {
            Ordering::Fifo => "fifo",
            Ordering::Causal => "causal",
            Ordering::Total => "total",
        }
    }
}

/// A copy of one member's parsed stdout.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// The node.
    pub node: u64,
    /// Its deliveries.
    pub deliveries: Vec<Delivery>,
    /// Its other lines.
    pub events: Vec<EventLine>,
    /// Problems found line by line.
    pub problems: Vec<String>,
}

/// How a member's stay in a service view ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Still in it when the log was taken.
    Open,
    /// It went on to the next service view as a survivor: it delivered what the view's cut
    /// holds.
    Survived(u64),
    /// Its next service view came by state transfer (`restore`): excluded and rejoined, or
    /// resynchronized.
    Restored(u64),
}

/// One member's stay in one service view.
#[derive(Clone, Debug)]
pub struct Segment {
    /// The member.
    pub node: u64,
    /// Its `service-view` line, parsed.
    pub view: ServiceView,
    /// The line as printed.
    pub line: String,
    /// Its deliveries in the view: positions in the member's deliveries.
    pub range: Range<usize>,
    /// How it left.
    pub exit: Exit,
}

/// Per member, its stays in service views in order, and its `restore` lines.
fn segments(snapshot: &Snapshot) -> (Vec<Segment>, Vec<(Restore, String)>) {
    let mut segments: Vec<Segment> = Vec::new();
    let mut restores = Vec::new();
    let mut pending_restore: Option<u64> = None;
    for e in &snapshot.events {
        if let Some(restore) = Restore::parse(&e.text) {
            pending_restore = Some(restore.epoch);
            restores.push((restore, e.text.clone()));
        } else if let Some(view) = ServiceView::parse(&e.text) {
            let restored = pending_restore.take() == Some(view.epoch);
            if let Some(last) = segments.last_mut() {
                last.range.end = e.pos;
                last.exit = if restored {
                    Exit::Restored(view.epoch)
                } else {
                    Exit::Survived(view.epoch)
                };
            }
            segments.push(Segment {
                node: snapshot.node,
                view,
                line: e.text.clone(),
                range: e.pos..snapshot.deliveries.len(),
                exit: Exit::Open,
            });
        }
    }
    (segments, restores)
}

/// What the checked logs held.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Per epoch: the members whose logs have it, and the most deliveries one made in it.
    pub epochs: BTreeMap<u64, (Vec<u64>, usize)>,
    /// Epochs where at least two members went on to the same next view (so their deliveries
    /// were compared in full), with how many deliveries each made there.
    pub compared_in_full: BTreeMap<u64, usize>,
    /// Per node, the send plan's multicasts it refused (filled by [`Group::check`]).
    pub refused: BTreeMap<u64, Vec<u64>>,
}

fn show(deliveries: &[Delivery], range: Range<usize>) -> String {
    let start = range.start;
    deliveries[range]
        .iter()
        .enumerate()
        .map(|(i, d)| format!("      #{} {d}", start + i))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Describes where two sequences part.
fn first_difference(a: &[Delivery], b: &[Delivery]) -> String {
    let i = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let lo = i.saturating_sub(3);
    format!(
        "they agree on {i} deliveries, then:\n    one has ({} in all):\n{}\n    the other has ({} in all):\n{}",
        a.len(),
        show(a, lo..(i + 4).min(a.len())),
        b.len(),
        show(b, lo..(i + 4).min(b.len()))
    )
}

type Key = (u32, u64);

fn keys(deliveries: &[Delivery]) -> BTreeSet<Key> {
    deliveries.iter().map(|d| (d.sender, d.seq)).collect()
}

/// Checks, over the logs of several members (processes that did not crash; a SIGKILLed
/// process is not bound by agreement):
///
/// 1. each log on its own: every delivery is made in the member's current service view (its
///    `view=` is the last `service-view`), `n=` counts on by one from the state, service view
///    epochs increase; no message (view, sender, seq) and no payload is delivered twice;
///    FIFO: per view and sender, `seq` increases; no loss: per sender, the send plan's `k`
///    goes up by one from delivery to delivery as long as the member and the sender stay in
///    the group (across views the member went through as a survivor, all with the sender);
/// 2. per view, every member entered it with the same state: the same `delivered=` (and,
///    with total order, the same `chain=`) in its `service-view` and `restore` lines;
/// 3. per view, members that went on to the same next view as survivors delivered the same
///    set of messages there (total order: the same sequence); a member still in the view
///    delivered a subset (total order: a prefix) of what one that left it delivered; two
///    members still in it, with total order: one sequence is a prefix of the other; any
///    other pair, with total order: the messages both delivered come in the same order;
///    no view has two different successors;
/// 4. a message is delivered in the same view by every member that delivers it.
///
/// `refused` lists per node the send plan's multicasts that its node refused (the log
/// service then skips them): they must not be delivered, and a gap in `k` made of them only
/// is not a loss.
///
/// Returns what was compared and the problems found.
pub fn check_view_synchrony(
    snapshots: &[Snapshot],
    ordering: Ordering,
    refused: &BTreeMap<u64, Vec<u64>>,
) -> (Summary, Vec<String>) {
    let refused: HashSet<(u32, u64)> = refused
        .iter()
        .flat_map(|(node, ks)| ks.iter().map(move |k| (*node as u32, *k)))
        .collect();
    // Whether the send plan of `node` multicast nothing between `prev` and `k`.
    let skipped_only =
        |node: u32, prev: u64, k: u64| (prev + 1..k).all(|x| refused.contains(&(node, x)));
    let mut problems: Vec<String> = Vec::new();
    let mut summary = Summary::default();
    let mut by_epoch: BTreeMap<u64, Vec<(Segment, &Snapshot)>> = BTreeMap::new();
    let mut restores_by_epoch: BTreeMap<u64, Vec<(u64, Restore, String)>> = BTreeMap::new();

    for snap in snapshots {
        let node = snap.node;
        problems.extend(snap.problems.iter().map(|p| format!("node {node}: {p}")));
        let (segs, restores) = segments(snap);
        for (restore, line) in restores {
            restores_by_epoch
                .entry(restore.epoch)
                .or_default()
                .push((node, restore, line));
        }
        // No duplicates.
        let mut seen_msgs: HashSet<(u32, u32, u64)> = HashSet::new();
        let mut seen_payloads: HashMap<&Payload, usize> = HashMap::new();
        for (i, d) in snap.deliveries.iter().enumerate() {
            if !seen_msgs.insert((d.epoch, d.sender, d.seq)) {
                problems.push(format!("node {node}: delivered twice: #{i} {d}"));
            }
            if let Some(first) = seen_payloads.insert(&d.payload, i) {
                problems.push(format!(
                    "node {node}: payload {} delivered twice: #{first} {} and #{i} {d}",
                    d.payload, snap.deliveries[first]
                ));
            }
        }
        // FIFO: per view and sender, `seq` increases. No loss: per sender, the send plan's
        // `k` goes up by one while the member and the sender both stay in the group (views
        // linked by survivor transitions, all with the sender as a member). A member that
        // leaves a view otherwise (excluded) loses what it sent past the cut, and a member
        // that rejoins does not deliver what it missed.
        let mut chain_k: HashMap<u32, (u64, usize)> = HashMap::new();
        for (si, seg) in segs.iter().enumerate() {
            if si == 0 || !matches!(segs[si - 1].exit, Exit::Survived(_)) {
                chain_k.clear();
            }
            chain_k.retain(|sender, _| seg.view.members.contains(&u64::from(*sender)));
            let mut last_seq: HashMap<u32, (u64, usize)> = HashMap::new();
            for i in seg.range.clone() {
                let d = &snap.deliveries[i];
                if let Some((seq, j)) = last_seq.get(&d.sender).copied() {
                    if d.seq <= seq {
                        problems.push(format!(
                            "node {node}: FIFO: #{i} {d} after #{j} {}",
                            snap.deliveries[j]
                        ));
                    }
                }
                last_seq.insert(d.sender, (d.seq, i));
                let Payload::Numbered { node: origin, k } = d.payload else {
                    continue;
                };
                if origin != d.sender {
                    problems.push(format!(
                        "node {node}: #{i} {d}: the payload of node {origin} delivered as sent by node {}",
                        d.sender
                    ));
                    continue;
                }
                if let Some((prev, j)) = chain_k.get(&origin).copied() {
                    if k <= prev || !skipped_only(origin, prev, k) {
                        problems.push(format!(
                            "node {node}: message {k} of node {origin} follows its message {prev} (#{j} {}, #{i} {d}){}",
                            snap.deliveries[j],
                            if k > prev { ": messages lost" } else { ": out of order" }
                        ));
                    }
                }
                chain_k.insert(origin, (k, i));
                if refused.contains(&(origin, k)) {
                    problems.push(format!(
                        "node {node}: delivered #{i} {d}, which node {origin} refused to multicast"
                    ));
                }
            }
        }
        for seg in segs {
            let entry = summary
                .epochs
                .entry(seg.view.epoch)
                .or_insert((Vec::new(), 0));
            entry.0.push(node);
            entry.1 = entry.1.max(seg.range.len());
            by_epoch
                .entry(seg.view.epoch)
                .or_default()
                .push((seg, snap));
        }
    }

    for (epoch, segs) in &by_epoch {
        // Same state on entry.
        let (first, _) = &segs[0];
        for (seg, _) in segs {
            let same = seg.view.delivered == first.view.delivered
                && (ordering != Ordering::Total || seg.view.chain == first.view.chain);
            let same_view = seg.view.members == first.view.members
                && seg.view.coordinator == first.view.coordinator;
            if !same || !same_view {
                problems.push(format!(
                    "view {epoch}: members entered it differently:\n    node {}: {}\n    node {}: {}",
                    first.node, first.line, seg.node, seg.line
                ));
            }
        }
        for (node, restore, line) in restores_by_epoch.get(epoch).into_iter().flatten() {
            let same = restore.delivered == first.view.delivered
                && (ordering != Ordering::Total || restore.chain == first.view.chain);
            if !same {
                problems.push(format!(
                    "view {epoch}: node {node} restored another state than members entered it with:\n    node {node}: {line}\n    node {}: {}",
                    first.node, first.line
                ));
            }
        }
        // Deliveries in the view, pairwise.
        for (i, (a, sa)) in segs.iter().enumerate() {
            for (b, sb) in &segs[i + 1..] {
                let da = &sa.deliveries[a.range.clone()];
                let db = &sb.deliveries[b.range.clone()];
                let who = format!("view {epoch}, nodes {} and {}", a.node, b.node);
                match (a.exit, b.exit) {
                    (Exit::Survived(x), Exit::Survived(y)) if x != y => problems.push(format!(
                        "{who}: view {epoch} has two successors: {x} and {y}"
                    )),
                    (Exit::Survived(x), Exit::Survived(_)) => {
                        let n = summary.compared_in_full.entry(*epoch).or_default();
                        *n = (*n).max(da.len()).max(db.len());
                        if ordering == Ordering::Total {
                            if da != db {
                                problems.push(format!(
                                    "{who}: both went on to view {x} but delivered different sequences; {}",
                                    first_difference(da, db)
                                ));
                            }
                        } else {
                            let (ka, kb) = (keys(da), keys(db));
                            if ka != kb {
                                problems.push(format!(
                                    "{who}: both went on to view {x} but delivered different sets: only node {}: {:?}; only node {}: {:?}",
                                    a.node,
                                    ka.difference(&kb).take(10).collect::<Vec<_>>(),
                                    b.node,
                                    kb.difference(&ka).take(10).collect::<Vec<_>>()
                                ));
                            }
                        }
                    }
                    (Exit::Open, Exit::Survived(_)) | (Exit::Survived(_), Exit::Open) => {
                        let (open, done, open_node, done_node) = if a.exit == Exit::Open {
                            (da, db, a.node, b.node)
                        } else {
                            (db, da, b.node, a.node)
                        };
                        if ordering == Ordering::Total {
                            if open.len() > done.len() || open != &done[..open.len()] {
                                problems.push(format!(
                                    "{who}: node {open_node} (still in the view) delivered a sequence that is not a prefix of the one of node {done_node} (which left it); {}",
                                    first_difference(open, done)
                                ));
                            }
                        } else {
                            let (ko, kd) = (keys(open), keys(done));
                            if !ko.is_subset(&kd) {
                                problems.push(format!(
                                    "{who}: node {open_node} (still in the view) delivered messages that node {done_node} did not deliver in it: {:?}",
                                    ko.difference(&kd).take(10).collect::<Vec<_>>()
                                ));
                            }
                        }
                    }
                    (Exit::Open, Exit::Open) => {
                        let n = da.len().min(db.len());
                        if ordering == Ordering::Total && da[..n] != db[..n] {
                            problems.push(format!(
                                "{who}: both still in the view; one sequence is not a prefix of the other; {}",
                                first_difference(da, db)
                            ));
                        }
                    }
                    _ => {
                        if ordering == Ordering::Total {
                            let (ka, kb) = (keys(da), keys(db));
                            let ca: Vec<&Delivery> = da
                                .iter()
                                .filter(|d| kb.contains(&(d.sender, d.seq)))
                                .collect();
                            let cb: Vec<&Delivery> = db
                                .iter()
                                .filter(|d| ka.contains(&(d.sender, d.seq)))
                                .collect();
                            if ca != cb {
                                let i = ca.iter().zip(&cb).take_while(|(x, y)| x == y).count();
                                problems.push(format!(
                                    "{who}: the messages both delivered come in another order: after {i} common ones, {} vs {}",
                                    ca.get(i).map_or("-".into(), |d| d.to_string()),
                                    cb.get(i).map_or("-".into(), |d| d.to_string())
                                ));
                            }
                        }
                    }
                }
            }
        }
    }

    // A message is delivered in one view, the same everywhere.
    let mut view_of: HashMap<&Payload, (u64, u32)> = HashMap::new();
    for snap in snapshots {
        for d in &snap.deliveries {
            match view_of.get(&d.payload) {
                Some((node, epoch)) if *epoch != d.epoch => problems.push(format!(
                    "payload {} delivered in view {epoch} by node {node} but in view {} by node {}",
                    d.payload, d.epoch, snap.node
                )),
                Some(_) => {}
                None => {
                    view_of.insert(&d.payload, (snap.node, d.epoch));
                }
            }
        }
    }
    if problems.len() > 60 {
        let more = problems.len() - 60;
        problems.truncate(60);
        problems.push(format!("… and {more} more"));
    }
    (summary, problems)
}

/// The checker itself, on made-up logs: it must find each kind of violation.
mod checker_finds_violations {
    use super::{check_view_synchrony, Ordering, Snapshot, StdoutLog};
    use std::collections::BTreeMap;
    use std::time::Instant;

    fn snap(node: u64, lines: &[String]) -> Snapshot {
        let mut log = StdoutLog::default();
        for line in lines {
            log.add(Instant::now(), line.clone());
        }
        Snapshot {
            node,
            deliveries: log.deliveries,
            events: log.events,
            problems: log.problems,
        }
    }

    fn view(epoch: u64, members: &str, delivered: u64, chain: &str) -> String {
        format!(
            "service-view group=demo epoch={epoch} coordinator=1 members={members} delivered={delivered} chain={chain}"
        )
    }

    /// `(sender, seq, k)` deliveries in view `epoch`, counting `n` on from `n0`.
    fn deliver(epoch: u64, n0: u64, msgs: &[(u64, u64, u64)]) -> Vec<String> {
        msgs.iter()
            .enumerate()
            .map(|(i, (sender, seq, k))| {
                format!(
                    "deliver group=demo view={epoch}@1 sender={sender} seq={seq} ordering=total n={} payload={sender}-{k}",
                    n0 + i as u64 + 1
                )
            })
            .collect()
    }

    /// A member's log: view 1 with `first`, then view 2 (entered with `state`).
    fn member(first: &[(u64, u64, u64)], state: (u64, &str)) -> Vec<String> {
        let mut lines = vec![view(1, "1,2", 0, "0")];
        lines.extend(deliver(1, 0, first));
        lines.push(view(2, "1,2", state.0, state.1));
        lines
    }

    fn problems(snaps: &[Snapshot], ordering: Ordering) -> Vec<String> {
        check_view_synchrony(snaps, ordering, &BTreeMap::new()).1
    }

    #[test]
    fn agreeing_logs_pass() {
        let msgs = [(1, 1, 1), (2, 1, 1), (1, 2, 2)];
        let a = snap(1, &member(&msgs, (3, "aa")));
        let b = snap(2, &member(&msgs, (3, "aa")));
        assert_eq!(problems(&[a, b], Ordering::Total), Vec::<String>::new());
    }

    #[test]
    fn another_order_fails_total_but_not_fifo() {
        let a = snap(1, &member(&[(1, 1, 1), (2, 1, 1)], (2, "aa")));
        let b = snap(2, &member(&[(2, 1, 1), (1, 1, 1)], (2, "bb")));
        let total = problems(&[a.clone(), b.clone()], Ordering::Total);
        assert!(
            total.iter().any(|p| p.contains("different sequences")),
            "{total:?}"
        );
        assert_eq!(problems(&[a, b], Ordering::Fifo), Vec::<String>::new());
    }

    #[test]
    fn another_set_fails() {
        let a = snap(1, &member(&[(1, 1, 1), (2, 1, 1)], (2, "aa")));
        let b = snap(2, &member(&[(1, 1, 1)], (1, "aa")));
        let found = problems(&[a, b], Ordering::Fifo);
        assert!(
            found.iter().any(|p| p.contains("different sets")),
            "{found:?}"
        );
        assert!(
            found.iter().any(|p| p.contains("entered it differently")),
            "{found:?}"
        );
    }

    #[test]
    fn duplicates_gaps_and_fifo_breaks_fail() {
        let dup = snap(1, &member(&[(1, 1, 1), (1, 1, 1)], (2, "aa")));
        let found = problems(&[dup], Ordering::Total);
        assert!(found.iter().any(|p| p.contains("twice")), "{found:?}");
        let gap = snap(1, &member(&[(1, 1, 1), (1, 2, 3)], (2, "aa")));
        let found = problems(std::slice::from_ref(&gap), Ordering::Total);
        assert!(
            found.iter().any(|p| p.contains("messages lost")),
            "{found:?}"
        );
        let refused = BTreeMap::from([(1, vec![2])]);
        assert_eq!(
            check_view_synchrony(&[gap], Ordering::Total, &refused).1,
            Vec::<String>::new()
        );
        let reordered = snap(1, &member(&[(1, 2, 2), (1, 1, 1)], (2, "aa")));
        let found = problems(&[reordered], Ordering::Fifo);
        assert!(found.iter().any(|p| p.contains("FIFO")), "{found:?}");
        assert!(
            found.iter().any(|p| p.contains("out of order")),
            "{found:?}"
        );
        // Across views: a loss while both stay is found; a gap over a view without the
        // sender (it was excluded, and lost what it sent past the cut) is not a loss.
        let mut lines = member(&[(1, 1, 1), (2, 1, 1)], (2, "aa"));
        lines.extend(deliver(2, 2, &[(2, 1, 3)]));
        let found = problems(&[snap(1, &lines)], Ordering::Total);
        assert!(
            found.iter().any(|p| p.contains("messages lost")),
            "{found:?}"
        );
        let mut lines = member(&[(1, 1, 1), (2, 1, 1)], (2, "aa"));
        lines[3] = view(2, "1", 2, "aa");
        lines.push(view(3, "1,2", 2, "aa"));
        lines.extend(deliver(3, 2, &[(2, 1, 3)]));
        let found = problems(&[snap(1, &lines)], Ordering::Total);
        assert_eq!(found, Vec::<String>::new());
    }

    #[test]
    fn a_delivery_outside_its_view_or_a_wrong_count_fails() {
        let mut lines = member(&[(1, 1, 1)], (1, "aa"));
        lines.extend(deliver(1, 1, &[(1, 2, 2)]));
        let found = problems(&[snap(1, &lines)], Ordering::Total);
        assert!(
            found.iter().any(|p| p.contains("outside the service view")),
            "{found:?}"
        );
        let lines = member(&[(1, 1, 1)], (5, "aa"));
        let found = problems(&[snap(1, &lines)], Ordering::Total);
        assert!(
            found.iter().any(|p| p.contains("state counts")),
            "{found:?}"
        );
    }

    #[test]
    fn a_restore_of_another_state_fails() {
        let a = snap(1, &member(&[(1, 1, 1)], (1, "aa")));
        let joiner = snap(
            3,
            &[
                "restore group=demo epoch=2 bytes=16 delivered=1 chain=ab".to_string(),
                view(2, "1,2", 1, "ab"),
            ],
        );
        let found = problems(&[a, joiner], Ordering::Total);
        assert!(
            found.iter().any(|p| p.contains("entered it differently")),
            "{found:?}"
        );
    }

    #[test]
    fn an_open_view_must_be_a_prefix_of_a_closed_one() {
        let a = snap(1, &member(&[(1, 1, 1), (2, 1, 1)], (2, "aa")));
        let mut lines = vec![view(1, "1,2", 0, "0")];
        lines.extend(deliver(1, 0, &[(2, 1, 1)]));
        let b = snap(2, &lines);
        let found = problems(&[a, b], Ordering::Total);
        assert!(
            found.iter().any(|p| p.contains("not a prefix")),
            "{found:?}"
        );
    }
}
