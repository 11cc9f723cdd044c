//! The harness: real `viewsync node` processes on loopback, each on a port it picks itself.
//!
//! - [`NodeProcess`] owns one child process. A thread per pipe reads it: stdout lines are
//!   timestamped (`Instant`) the moment they are read and sent over a channel, so a test that
//!   waits on several nodes one after the other still measures when each line appeared;
//!   stderr (the logs) is kept for checks and for the failure report.
//! - Dropping a [`NodeProcess`] kills its process (SIGKILL) and reaps it, so no node outlives
//!   its test, even one that panics. On a panic it also prints what the node wrote.
//! - [`Cluster`] holds a temporary directory with the cluster key and the configuration files,
//!   and the nodes by node id.
//! - [`run_viewsync`] runs a short-lived command (`members`, `keygen`, a node expected to
//!   refuse its configuration) with a deadline.
//!
//! The binary is `target/<profile>/viewsync`, found next to the test executable (see
//! [`viewsync_bin`]); it must have been built first.
//!
//! Shared by the `membership` and `bad_input` test binaries (`bad_input` includes this file
//! with `#[path]`), so not every function is used by both.

#![allow(dead_code)]

use rand::RngCore;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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

/// The `viewsync` binary: `target/<profile>/viewsync`, next to `deps/` where the test
/// executable is.
pub fn viewsync_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("the path of the test executable");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test executable lives in target/<profile>/deps/");
    let bin = profile_dir.join(format!("viewsync{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "{} not found: these tests run the real `viewsync` binary; build it first with \
         `cargo build --bin viewsync` (same profile as the tests)",
        bin.display()
    );
    note_if_stale(&bin);
    bin
}

/// Prints a note (shown with a failing test's output) if a source file of the binary is newer
/// than the binary: the test may then be running old code.
fn note_if_stale(bin: &Path) {
    fn newest(dir: &Path, newest_seen: &mut Option<(SystemTime, PathBuf)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                newest(&path, newest_seen);
            } else if let Ok(modified) = entry.metadata().and_then(|m| m.modified()) {
                if newest_seen.as_ref().is_none_or(|(t, _)| modified > *t) {
                    *newest_seen = Some((modified, path));
                }
            }
        }
    }
    let Ok(built) = std::fs::metadata(bin).and_then(|m| m.modified()) else {
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut newest_seen = None;
    for dir in ["middleware/src", "services/src"] {
        newest(&root.join(dir), &mut newest_seen);
    }
    if let Some((modified, path)) = newest_seen {
        if modified > built {
            eprintln!(
                "note: {} is newer than {}; run `cargo build --bin viewsync` to test the current code",
                path.display(),
                bin.display()
            );
        }
    }
}

/// The log filter for nodes: `info` (the tests read the WARN about bad frames), or
/// `VIEWSYNC_TEST_RUST_LOG` to debug a test.
fn node_log_filter() -> String {
    std::env::var("VIEWSYNC_TEST_RUST_LOG").unwrap_or_else(|_| "info".to_string())
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

/// Removes ANSI escape sequences (colours) from a log line.
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// One line a node printed on stdout, and when the harness read it.
#[derive(Clone, Debug)]
pub struct Line {
    /// When the reader thread got the line.
    pub at: Instant,
    /// The line, without its newline.
    pub text: String,
}

/// The `key=value` fields of an event line (values without spaces).
pub fn fields(text: &str) -> BTreeMap<String, String> {
    text.split_whitespace()
        .filter_map(|f| f.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A parsed `view group=demo epoch=3 coordinator=1 members=1,3,2` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ViewLine {
    /// The group.
    pub group: String,
    /// The view's epoch.
    pub epoch: u64,
    /// The coordinator's node id.
    pub coordinator: u64,
    /// Member node ids, oldest first.
    pub members: Vec<u64>,
    /// Members still waiting for their state (not voting yet).
    pub learners: Vec<u64>,
}

/// Parses a comma-separated list of node ids (empty for none).
fn node_ids(text: &str) -> Option<Vec<u64>> {
    if text.is_empty() {
        return Some(Vec::new());
    }
    text.split(',').map(|m| m.parse().ok()).collect()
}

impl ViewLine {
    /// Parses a `view` line; `None` for any other line.
    pub fn parse(text: &str) -> Option<ViewLine> {
        let rest = text.strip_prefix("view ")?;
        let f = fields(rest);
        Some(ViewLine {
            group: f.get("group")?.clone(),
            epoch: f.get("epoch")?.parse().ok()?,
            coordinator: f.get("coordinator")?.parse().ok()?,
            members: node_ids(f.get("members")?)?,
            learners: node_ids(f.get("learners").map_or("", |l| l.as_str()))?,
        })
    }

    /// Whether node `id` is a member.
    pub fn contains(&self, id: u64) -> bool {
        self.members.contains(&id)
    }

    /// The member ids, sorted.
    pub fn sorted_members(&self) -> Vec<u64> {
        let mut m = self.members.clone();
        m.sort_unstable();
        m
    }
}

/// A parsed `refused group=demo seed=ADDR reason="…"` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefusedLine {
    /// The group being joined.
    pub group: String,
    /// The seed that refused.
    pub seed: SocketAddr,
    /// Its reason (as printed, quotes included).
    pub reason: String,
}

impl RefusedLine {
    /// Parses a `refused` line; `None` for any other line.
    pub fn parse(text: &str) -> Option<RefusedLine> {
        let rest = text.strip_prefix("refused ")?;
        let (head, reason) = rest.split_once(" reason=")?;
        let f = fields(head);
        Some(RefusedLine {
            group: f.get("group")?.clone(),
            seed: f.get("seed")?.parse().ok()?,
            reason: reason.to_string(),
        })
    }
}

/// The answer of `viewsync members`, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MembersAnswer {
    /// The group.
    pub group: String,
    /// The view's epoch.
    pub epoch: u64,
    /// The coordinator as `node.incarnation`.
    pub coordinator: String,
    /// `(node, incarnation, addr)` per member, oldest first.
    pub members: Vec<(u64, u64, SocketAddr)>,
}

impl MembersAnswer {
    /// Parses the stdout of `viewsync members`; panics with the text if it does not parse.
    pub fn parse(stdout: &str) -> MembersAnswer {
        Self::try_parse(stdout)
            .unwrap_or_else(|| panic!("unexpected `viewsync members` output:\n{stdout}"))
    }

    fn try_parse(stdout: &str) -> Option<MembersAnswer> {
        let mut lines = stdout.lines();
        let head = fields(lines.next()?.strip_prefix("view ")?);
        let mut members = Vec::new();
        // A blocked node adds a `blocked: …` line after its members.
        for line in lines.take_while(|l| !l.starts_with("blocked:")) {
            let f = fields(line);
            members.push((
                f.get("node")?.parse().ok()?,
                f.get("incarnation")?.parse().ok()?,
                f.get("addr")?.parse().ok()?,
            ));
        }
        Some(MembersAnswer {
            group: head.get("group")?.clone(),
            epoch: head.get("epoch")?.parse().ok()?,
            coordinator: head.get("coordinator")?.clone(),
            members,
        })
    }

    /// The member node ids, sorted.
    pub fn sorted_nodes(&self) -> Vec<u64> {
        let mut m: Vec<u64> = self.members.iter().map(|m| m.0).collect();
        m.sort_unstable();
        m
    }

    /// The member with node id `node`, if any.
    pub fn member(&self, node: u64) -> Option<(u64, u64, SocketAddr)> {
        self.members.iter().copied().find(|m| m.0 == node)
    }
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
    child: Child,
    exit: Option<ExitStatus>,
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
        let mut child = Command::new(viewsync_bin())
            .arg("node")
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", node_log_filter())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start viewsync node: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr_pipe = child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut buf = String::new();
            loop {
                buf.clear();
                match reader.read_line(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let line = Line {
                            at: Instant::now(),
                            text: buf.trim_end().to_string(),
                        };
                        if tx.send(line).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let sink = stderr.clone();
        thread::spawn(move || {
            let reader = BufReader::new(stderr_pipe);
            for line in reader.lines() {
                let Ok(line) = line else { break };
                sink.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(strip_ansi(&line));
            }
        });
        NodeProcess {
            node_id,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            incarnation: 0,
            config: config.to_path_buf(),
            child,
            exit: None,
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
        let f = fields(&line.text);
        assert_eq!(
            f.get("node").map(String::as_str),
            Some(self.node_id.to_string().as_str()),
            "listening line of node {}: {}",
            self.node_id,
            line.text
        );
        self.addr = f["addr"].parse().expect("listening addr");
        self.incarnation = f["incarnation"].parse().expect("listening incarnation");
        assert!(
            self.addr.ip().is_loopback() && self.addr.port() != 0,
            "{}",
            line.text
        );
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
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
        let at = Instant::now();
        // `Child::kill` is `kill(pid, SIGKILL)` on Unix (the workspace forbids `unsafe`, so
        // not libc directly).
        self.child.kill().expect("SIGKILL");
        at
    }

    /// Sends SIGTERM (with the `kill` utility: std has no safe API for other signals and the
    /// workspace forbids `unsafe`). Returns the instant just before the utility was started,
    /// so latencies measured from it include its start-up: they are upper bounds.
    pub fn sigterm(&mut self) -> Instant {
        let at = Instant::now();
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status()
            .unwrap_or_else(|e| panic!("cannot run `kill -TERM`: {e}"));
        assert!(
            status.success(),
            "kill -TERM {} failed: {status}",
            self.pid()
        );
        at
    }

    /// The exit status if the process has ended.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().ok().flatten();
        }
        self.exit
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.try_exit().is_none()
    }

    /// Waits for the process to end; panics after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_exit() {
                return status;
            }
            if Instant::now() >= deadline {
                let stdout = self.stdout_text();
                panic!(
                    "node {} did not exit within {timeout:?}; its stdout:\n{stdout}",
                    self.node_id,
                );
            }
            thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        if self.try_exit().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
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
    let seeds: Vec<String> = seeds.iter().map(|s| format!("\"{s}\"")).collect();
    let mut text = format!(
        "node_id = {node_id}\nlisten = \"127.0.0.1:0\"\nseeds = [{}]\ngroups = [\"{GROUP}\"]\n",
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

impl Cluster {
    /// An empty cluster with a fresh key.
    pub fn new() -> Cluster {
        let dir = TempDir::new("cluster");
        let key_file = dir.write("cluster.key", &format!("{}\n", new_key_hex()));
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
    let mut child = Command::new(viewsync_bin())
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
