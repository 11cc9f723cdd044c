//! Membership-test nodes and clusters of real `viewsync node` processes on loopback, each on
//! a port it picks itself.
//!
//! - [`NodeProcess`] owns one process ([`NodeChild`]): its stdout lines are timestamped
//!   (`Instant`) the moment they are read and sent over a channel, so a test that waits on
//!   several nodes one after the other still measures when each line appeared; stderr (the
//!   logs) is kept for checks and for the failure report. Dropping it kills the process; on
//!   a panic it also prints what the node wrote.
//! - [`Cluster`] holds a temporary directory with the cluster key and the configuration files,
//!   and the nodes by node id.
//! - [`run_viewsync`] runs a short-lived command (`members`, `keygen`, a node expected to
//!   refuse its configuration) with a deadline.
//!
//! The binary is `target/<profile>/viewsync`, found next to the test executable (see
//! [`viewsync_bin`]); it must have been built first.

use crate::child::{node_log_filter, strip_ansi, viewsync_bin, NodeChild};
use rand::RngCore;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
pub use viewsync_services::report::{ListeningLine, MembersAnswer, RefusedLine, ViewLine};

/// How long a node may take to print its `listening` line.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long nodes may take to agree on a view after they start or after a change.
pub const CONVERGE_TIMEOUT: Duration = Duration::from_secs(10);
/// The group every test cluster joins.
pub const GROUP: &str = "demo";

static TIMING: RwLock<()> = RwLock::new(());

/// Held by tests that measure latencies: no other test of the binary runs meanwhile.
pub fn timing_exclusive() -> RwLockWriteGuard<'static, ()> {
    TIMING.write().unwrap_or_else(|e| e.into_inner())
}

/// Held by every other test that starts processes, so they stay out of a measurement.
pub fn timing_shared() -> RwLockReadGuard<'static, ()> {
    TIMING.read().unwrap_or_else(|e| e.into_inner())
}

/// A directory under the system temporary directory, removed on drop (kept, and named, if
/// the test panicked).
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates a fresh directory whose name includes `tag`.
    pub fn new(tag: &str) -> TempDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "viewsync-{tag}-{}-{}-{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        TempDir { path }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `contents` to `name` in the directory.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.path.join(name);
        std::fs::write(&path, contents)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("test files kept in {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// A new random cluster key, as the hex text of a key file.
pub fn new_key_hex() -> String {
    let mut key = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut key);
    key.iter().map(|b| format!("{b:02x}")).collect()
}

/// One line a node printed on stdout, and when the harness read it.
#[derive(Clone, Debug)]
pub struct Line {
    /// When the reader thread got the line.
    pub at: Instant,
    /// The line, without its newline.
    pub text: String,
}

/// Parses the stdout of `viewsync members`; panics with the text if it is not an answer.
pub fn parse_members(stdout: &str) -> MembersAnswer {
    MembersAnswer::parse(stdout)
        .unwrap_or_else(|| panic!("unexpected `viewsync members` output:\n{stdout}"))
}

/// One running `viewsync node` process.
pub struct NodeProcess {
    /// Its configured node id.
    pub node_id: u64,
    /// The address it listens on (from its `listening` line).
    pub addr: SocketAddr,
    /// Its incarnation (from its `listening` line).
    pub incarnation: u64,
    /// Its configuration file.
    pub config: PathBuf,
    child: NodeChild,
    rx: Receiver<Line>,
    lines: Vec<Line>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl NodeProcess {
    /// Starts `viewsync node --config <config>` and waits for its `listening` line.
    pub fn start(config: &Path, node_id: u64) -> NodeProcess {
        let mut node = NodeProcess::launch(config, node_id);
        node.wait_listening();
        node
    }

    /// Starts the process without waiting for it.
    pub fn launch(config: &Path, node_id: u64) -> NodeProcess {
        NodeProcess::launch_in(None, config, node_id)
    }

    /// Starts the process inside the network namespace `netns` (see
    /// [`crate::netns::Network`]) and waits for its `listening` line.
    pub fn start_in(netns: &str, config: &Path, node_id: u64) -> NodeProcess {
        let mut node = NodeProcess::launch_in(Some(netns), config, node_id);
        node.wait_listening();
        node
    }

    /// Starts the process, inside the network namespace `netns` when given, without waiting
    /// for it.
    pub fn launch_in(netns: Option<&str>, config: &Path, node_id: u64) -> NodeProcess {
        let (tx, rx) = mpsc::channel();
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let sink = stderr.clone();
        let child = NodeChild::spawn_in(
            netns,
            config,
            &[],
            move |at, text| {
                // The receiver is gone only when the node is being dropped.
                let _ = tx.send(Line { at, text });
            },
            move |line| sink.lock().unwrap_or_else(|e| e.into_inner()).push(line),
        );
        NodeProcess {
            node_id,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            incarnation: 0,
            config: config.to_path_buf(),
            child,
            rx,
            lines: Vec::new(),
            stderr,
        }
    }

    /// Waits for the `listening` line and records the address and incarnation.
    pub fn wait_listening(&mut self) {
        let line = self.wait_line_from(0, "a `listening` line", STARTUP_TIMEOUT, |l| {
            l.starts_with("listening ")
        });
        let listening = ListeningLine::parse(&line.text)
            .unwrap_or_else(|| panic!("not a listening line: {}", line.text));
        assert_eq!(
            listening.node, self.node_id,
            "listening line of node {}: {}",
            self.node_id, line.text
        );
        self.addr = listening.addr;
        self.incarnation = listening.incarnation;
        // On loopback, or on a namespace's own network (`netns`).
        assert!(
            !self.addr.ip().is_unspecified() && self.addr.port() != 0,
            "{}",
            line.text
        );
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// Moves every line already read into the history, without waiting.
    pub fn drain(&mut self) {
        while let Ok(line) = self.rx.try_recv() {
            self.lines.push(line);
        }
    }

    /// Waits until `deadline` for one more line; false if none came (or stdout closed).
    fn pull(&mut self, deadline: Instant) -> bool {
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        match self.rx.recv_timeout(deadline - now) {
            Ok(line) => {
                self.lines.push(line);
                true
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => {
                // stdout closed: the process ended. Do not spin until the deadline.
                thread::sleep((deadline - Instant::now()).min(Duration::from_millis(5)));
                false
            }
        }
    }

    /// The number of lines read so far: a position to search from.
    pub fn mark(&mut self) -> usize {
        self.drain();
        self.lines.len()
    }

    /// Every stdout line read so far.
    pub fn lines(&mut self) -> &[Line] {
        self.drain();
        &self.lines
    }

    /// Stdout lines from position `from` on.
    pub fn lines_since(&mut self, from: usize) -> Vec<Line> {
        self.drain();
        self.lines[from.min(self.lines.len())..].to_vec()
    }

    /// The `view` lines from position `from` on.
    pub fn views_since(&mut self, from: usize) -> Vec<(Line, ViewLine)> {
        self.lines_since(from)
            .into_iter()
            .filter_map(|l| ViewLine::parse(&l.text).map(|v| (l, v)))
            .collect()
    }

    /// The last view this node printed.
    pub fn latest_view(&mut self) -> Option<ViewLine> {
        self.views_since(0).pop().map(|(_, v)| v)
    }

    /// Waits for the first stdout line at position `from` or later that satisfies `pred`.
    /// Panics, naming `what`, if none comes within `timeout`.
    pub fn wait_line_from(
        &mut self,
        from: usize,
        what: &str,
        timeout: Duration,
        mut pred: impl FnMut(&str) -> bool,
    ) -> Line {
        let deadline = Instant::now() + timeout;
        let mut next = from;
        loop {
            self.drain();
            while next < self.lines.len() {
                if pred(&self.lines[next].text) {
                    return self.lines[next].clone();
                }
                next += 1;
            }
            if Instant::now() >= deadline {
                let status = match self.try_exit() {
                    Some(s) => format!("exited: {s}"),
                    None => "running".to_string(),
                };
                let stdout = self.stdout_text();
                panic!(
                    "node {}: no {what} within {timeout:?} (process {status}); its stdout:\n{stdout}",
                    self.node_id,
                );
            }
            self.pull(deadline);
        }
    }

    /// Waits for the first `view` line at position `from` or later that satisfies `pred`.
    pub fn wait_view_from(
        &mut self,
        from: usize,
        what: &str,
        timeout: Duration,
        mut pred: impl FnMut(&ViewLine) -> bool,
    ) -> (Line, ViewLine) {
        let line = self.wait_line_from(from, what, timeout, |text| {
            ViewLine::parse(text).is_some_and(|v| pred(&v))
        });
        let view = ViewLine::parse(&line.text).expect("matched a view line");
        (line, view)
    }

    /// Everything printed on stdout so far, one line each.
    pub fn stdout_text(&mut self) -> String {
        self.drain();
        self.lines
            .iter()
            .map(|l| format!("  {}\n", l.text))
            .collect()
    }

    /// The log lines (stderr) written so far, colours removed.
    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Waits for a log line containing every one of `needles`; panics after `timeout`.
    pub fn wait_stderr(&self, needles: &[&str], timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self
                .stderr_lines()
                .into_iter()
                .find(|l| needles.iter().all(|n| l.contains(n)))
            {
                return line;
            }
            if Instant::now() >= deadline {
                panic!(
                    "node {}: no log line containing {needles:?} within {timeout:?}; its log:\n{}",
                    self.node_id,
                    self.stderr_lines().join("\n")
                );
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends SIGKILL. Returns the instant just before the signal was sent.
    pub fn sigkill(&mut self) -> Instant {
        self.child.sigkill()
    }

    /// Sends `signal` (`STOP`, `CONT`, ...; see [`NodeChild::signal`]).
    pub fn signal(&mut self, signal: &str) -> Instant {
        self.child.signal(signal)
    }

    /// Stdout lines read so far that did not start with a timestamp (the node stamps every
    /// line; the harness strips the stamp before the tests see the line).
    pub fn unstamped_lines(&self) -> u64 {
        self.child.unstamped_lines()
    }

    /// Sends SIGTERM (see [`NodeChild::signal`]); the returned instant is an upper bound's
    /// start.
    pub fn sigterm(&mut self) -> Instant {
        self.child.signal("TERM")
    }

    /// The exit status if the process has ended.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        self.child.try_exit()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.try_exit().is_none()
    }

    /// Waits for the process to end; panics after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        match self.child.wait_exit(timeout) {
            Some(status) => status,
            None => {
                let stdout = self.stdout_text();
                panic!(
                    "node {} did not exit within {timeout:?}; its stdout:\n{stdout}",
                    self.node_id,
                );
            }
        }
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.child.end();
        if thread::panicking() {
            let status = self.try_exit();
            // Give the reader threads a moment to collect what the process wrote last.
            thread::sleep(Duration::from_millis(20));
            let stderr = self.stderr_lines();
            let tail = &stderr[stderr.len().saturating_sub(60)..];
            let stdout = self.stdout_text();
            eprintln!(
                "---- node {} (pid {}, {}, {:?}) stdout:\n{}---- node {} log (last {} lines):\n{}\n",
                self.node_id,
                self.pid(),
                self.addr,
                status,
                stdout,
                self.node_id,
                tail.len(),
                tail.join("\n")
            );
        }
    }
}

/// The text of a node configuration file.
pub fn config_text(
    node_id: u64,
    seeds: &[SocketAddr],
    key_file: Option<&Path>,
    extra: &str,
) -> String {
    config_text_listening("127.0.0.1:0", node_id, seeds, key_file, extra)
}

/// The text of a node configuration file listening on `listen` (port 0: picked at start).
pub fn config_text_listening(
    listen: &str,
    node_id: u64,
    seeds: &[SocketAddr],
    key_file: Option<&Path>,
    extra: &str,
) -> String {
    let seeds: Vec<String> = seeds.iter().map(|s| format!("\"{s}\"")).collect();
    let mut text = format!(
        "node_id = {node_id}\nlisten = \"{listen}\"\nseeds = [{}]\ngroups = [\"{GROUP}\"]\n",
        seeds.join(", ")
    );
    if seeds.is_empty() {
        // The first node founds the group; founding is never implicit.
        text.push_str("bootstrap = true\n");
    }
    if let Some(key) = key_file {
        text.push_str(&format!("key_file = {:?}\n", key.display().to_string()));
    }
    text.push_str(extra);
    text
}

/// A set of nodes sharing a key, in a temporary directory.
pub struct Cluster {
    /// Holds the key and the configuration files.
    pub dir: TempDir,
    /// The cluster key file.
    pub key_file: PathBuf,
    nodes: BTreeMap<u64, NodeProcess>,
    configs_written: u64,
}

impl Default for Cluster {
    /// Same as [`Cluster::new`].
    fn default() -> Self {
        Cluster::new()
    }
}

impl Cluster {
    /// An empty cluster with a fresh key.
    pub fn new() -> Cluster {
        let dir = TempDir::new("cluster");
        let key_file = dir.write("cluster.key", &format!("{}\n", new_key_hex()));
        // Owner-only, as a key file should be (a wider one makes every node warn).
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600))
                .expect("chmod 600 the cluster key");
        }
        Cluster {
            dir,
            key_file,
            nodes: BTreeMap::new(),
            configs_written: 0,
        }
    }

    /// Starts nodes `1..=n` (node 1 creates the group, each next one joins through all
    /// started before it) and waits until all agree on one view of the `n` of them.
    pub fn start(n: u64) -> (Cluster, ViewLine) {
        let mut cluster = Cluster::new();
        for id in 1..=n {
            let seeds = cluster.addrs();
            cluster.launch(id, &seeds, "");
        }
        let ids: Vec<u64> = (1..=n).collect();
        let view = cluster.wait_converged(&ids, CONVERGE_TIMEOUT);
        (cluster, view)
    }

    /// Writes a configuration file for `node_id` (a new file per call).
    pub fn write_config(
        &mut self,
        node_id: u64,
        seeds: &[SocketAddr],
        key_file: Option<&Path>,
        extra: &str,
    ) -> PathBuf {
        self.configs_written += 1;
        let name = format!("node{node_id}-{}.toml", self.configs_written);
        let text = config_text(node_id, seeds, key_file, extra);
        self.dir.write(&name, &text)
    }

    /// Starts node `node_id` with the cluster key and waits for its `listening` line.
    pub fn launch(&mut self, node_id: u64, seeds: &[SocketAddr], extra: &str) -> &mut NodeProcess {
        let key = self.key_file.clone();
        let config = self.write_config(node_id, seeds, Some(&key), extra);
        self.add(NodeProcess::start(&config, node_id))
    }

    /// Adds a started node (replacing and killing one with the same id).
    pub fn add(&mut self, node: NodeProcess) -> &mut NodeProcess {
        let id = node.node_id;
        self.nodes.insert(id, node);
        self.nodes.get_mut(&id).expect("just inserted")
    }

    /// Node `id`.
    pub fn node(&mut self, id: u64) -> &mut NodeProcess {
        self.nodes
            .get_mut(&id)
            .unwrap_or_else(|| panic!("no node {id} in the cluster"))
    }

    /// Removes node `id` from the cluster (its process lives as long as the returned value).
    pub fn remove(&mut self, id: u64) -> NodeProcess {
        self.nodes
            .remove(&id)
            .unwrap_or_else(|| panic!("no node {id} in the cluster"))
    }

    /// The listen address of node `id`.
    pub fn addr(&self, id: u64) -> SocketAddr {
        self.nodes
            .get(&id)
            .unwrap_or_else(|| panic!("no node {id} in the cluster"))
            .addr
    }

    /// Every node's address, by node id.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.nodes.values().map(|n| n.addr).collect()
    }

    /// The node ids.
    pub fn ids(&self) -> Vec<u64> {
        self.nodes.keys().copied().collect()
    }

    /// Waits until the last view printed by every node in `ids` is one and the same view whose
    /// members are exactly `ids`; returns it. Panics after `timeout` with every node's views.
    pub fn wait_converged(&mut self, ids: &[u64], timeout: Duration) -> ViewLine {
        let mut want = ids.to_vec();
        want.sort_unstable();
        let deadline = Instant::now() + timeout;
        loop {
            let latest: Vec<Option<ViewLine>> =
                ids.iter().map(|id| self.node(*id).latest_view()).collect();
            if let Some(Some(first)) = latest.first() {
                // Every member votes: joiners have their state and were promoted.
                if first.sorted_members() == want
                    && first.learners.is_empty()
                    && latest.iter().all(|v| v.as_ref() == Some(first))
                {
                    return first.clone();
                }
            }
            if Instant::now() >= deadline {
                let mut report = String::new();
                for id in ids {
                    let node = self.node(*id);
                    report.push_str(&format!("node {id}:\n{}", node.stdout_text()));
                }
                panic!("nodes {ids:?} did not agree on a view of {want:?} within {timeout:?}:\n{report}");
            }
            thread::sleep(Duration::from_millis(5));
        }
    }
}

/// What a short-lived `viewsync` command did.
#[derive(Debug)]
pub struct CliOutput {
    /// Its exit status.
    pub status: ExitStatus,
    /// Its stdout.
    pub stdout: String,
    /// Its stderr, colours removed.
    pub stderr: String,
}

/// Runs `viewsync <args>` to completion; kills it and panics if it runs past `timeout`.
pub fn run_viewsync<S: AsRef<OsStr>>(args: &[S], timeout: Duration) -> CliOutput {
    run_viewsync_in(None, args, timeout)
}

/// Like [`run_viewsync`], inside the network namespace `netns` when given (`ip netns exec`).
pub fn run_viewsync_in<S: AsRef<OsStr>>(
    netns: Option<&str>,
    args: &[S],
    timeout: Duration,
) -> CliOutput {
    let mut command = match netns {
        Some(netns) => {
            let mut command = Command::new("ip");
            command.args(["netns", "exec", netns]).arg(viewsync_bin());
            command
        }
        None => Command::new(viewsync_bin()),
    };
    let mut child = command
        .args(args)
        .env("NO_COLOR", "1")
        .env("RUST_LOG", node_log_filter())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start viewsync: {e}"));
    let mut out_pipe = child.stdout.take().expect("piped stdout");
    let mut err_pipe = child.stderr.take().expect("piped stderr");
    let out = thread::spawn(move || {
        let mut s = String::new();
        let _ = out_pipe.read_to_string(&mut s);
        s
    });
    let err = thread::spawn(move || {
        let mut s = String::new();
        let _ = err_pipe.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let shown: Vec<String> = args
                .iter()
                .map(|a| a.as_ref().to_string_lossy().into_owned())
                .collect();
            panic!(
                "`viewsync {}` still running after {timeout:?}; killed. stdout:\n{}\nstderr:\n{}",
                shown.join(" "),
                out.join().unwrap_or_default(),
                err.join().unwrap_or_default()
            );
        }
        thread::sleep(Duration::from_millis(5));
    };
    CliOutput {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: strip_ansi(&err.join().unwrap_or_default()),
    }
}

/// `viewsync members <group> --via <via> [--key-file <key>]`.
pub fn members_cli(group: &str, via: SocketAddr, key_file: Option<&Path>) -> CliOutput {
    let mut args: Vec<String> = vec![
        "members".into(),
        group.into(),
        "--via".into(),
        via.to_string(),
    ];
    if let Some(key) = key_file {
        args.push("--key-file".into());
        args.push(key.display().to_string());
    }
    run_viewsync(&args, Duration::from_secs(10))
}
