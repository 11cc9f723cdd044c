//! The member processes of one run: starting them (this same executable run as
//! `viewsync-bench member`), the line protocol on their stdin/stdout, the start/stop/drain
//! barriers, killing them, and collecting their result lines.

use crate::cli::{Mode, Order};
use crate::lines::{Fields, ResultLine};
use crate::sys::now_ns;
use crate::BoxError;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A line a member printed, with the parent's clock when it was read.
#[derive(Clone, Debug)]
pub struct Line {
    /// The member's node id.
    pub node: u64,
    /// `CLOCK_MONOTONIC` nanoseconds when the parent read the line.
    pub read_ns: u64,
    /// The line.
    pub text: String,
    /// Its fields.
    pub fields: Fields,
}

impl Line {
    /// The member's own time of the event (`t_ns`), else the time the parent read it.
    pub fn t_ns(&self) -> u64 {
        self.fields.get("t_ns").unwrap_or(self.read_ns)
    }
}

enum Message {
    Line(Line),
    Closed(u64),
}

struct MemberProcess {
    child: Child,
    stdin: Option<ChildStdin>,
}

/// A set of running member processes and everything they printed.
pub struct Cluster {
    exe: PathBuf,
    log_dir: PathBuf,
    members: BTreeMap<u64, MemberProcess>,
    tx: mpsc::Sender<Message>,
    rx: mpsc::Receiver<Message>,
    /// Every line read, in order.
    pub history: Vec<Line>,
    closed: BTreeSet<u64>,
    may_end: BTreeSet<u64>,
}

/// The arguments of one member process.
#[derive(Clone, Debug)]
pub struct MemberSpec {
    /// Node id.
    pub node: u64,
    /// Seeds to join through.
    pub seeds: Vec<SocketAddr>,
    /// Group size to wait for.
    pub members: usize,
    /// Ordering.
    pub order: Order,
    /// Mode.
    pub mode: Mode,
    /// Payload size.
    pub size: usize,
    /// Seconds to send (0: until `stop`).
    pub secs: f64,
    /// Flood pipeline depth.
    pub pipeline: usize,
    /// Flow-control window override.
    pub window_messages: Option<u64>,
    /// Multicasts per second offered in `Mode::Rate`.
    pub rate: Option<f64>,
    /// Extra `[multicast]` settings, TOML `key=value`.
    pub multicast_settings: Vec<String>,
    /// `[failure_detector] monitors`, when not the default.
    pub monitors: Option<usize>,
}

impl MemberSpec {
    fn args(&self) -> Vec<String> {
        let mut args = vec![
            "member".to_string(),
            "--node".into(),
            self.node.to_string(),
            "--members".into(),
            self.members.to_string(),
            "--order".into(),
            self.order.name().into(),
            "--mode".into(),
            self.mode.name().into(),
            "--size".into(),
            self.size.to_string(),
            "--secs".into(),
            self.secs.to_string(),
            "--pipeline".into(),
            self.pipeline.to_string(),
        ];
        for seed in &self.seeds {
            args.push("--seed".into());
            args.push(seed.to_string());
        }
        if let Some(window) = self.window_messages {
            args.push("--window-messages".into());
            args.push(window.to_string());
        }
        if let Some(rate) = self.rate {
            args.push("--rate".into());
            args.push(rate.to_string());
        }
        for setting in &self.multicast_settings {
            args.push("--multicast-setting".into());
            args.push(setting.clone());
        }
        if let Some(monitors) = self.monitors {
            args.push("--monitors".into());
            args.push(monitors.to_string());
        }
        args
    }
}

impl Cluster {
    /// A cluster of members run from `exe`, with their stderr in `log_dir/member-N.log`.
    pub fn new(exe: &Path, log_dir: &Path) -> Self {
        let (tx, rx) = mpsc::channel();
        Cluster {
            exe: exe.to_path_buf(),
            log_dir: log_dir.to_path_buf(),
            members: BTreeMap::new(),
            tx,
            rx,
            history: Vec::new(),
            closed: BTreeSet::new(),
            may_end: BTreeSet::new(),
        }
    }

    fn log_path(&self, node: u64) -> PathBuf {
        self.log_dir.join(format!("member-{node}.log"))
    }

    /// Starts a member.
    pub fn spawn(&mut self, spec: &MemberSpec) -> Result<(), BoxError> {
        std::fs::create_dir_all(&self.log_dir)?;
        let log = File::create(self.log_path(spec.node))?;
        let mut child = Command::new(&self.exe)
            .args(spec.args())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let stdin = child.stdin.take();
        let tx = self.tx.clone();
        let node = spec.node;
        std::thread::spawn(move || {
            for text in BufReader::new(stdout).lines() {
                let Ok(text) = text else { break };
                let line = Line {
                    node,
                    read_ns: now_ns(),
                    fields: Fields::parse(&text),
                    text,
                };
                if tx.send(Message::Line(line)).is_err() {
                    return;
                }
            }
            let _ = tx.send(Message::Closed(node));
        });
        self.members.insert(node, MemberProcess { child, stdin });
        Ok(())
    }

    /// Sends a command line to a member.
    pub fn send(&mut self, node: u64, command: &str) -> Result<(), BoxError> {
        let member = self
            .members
            .get_mut(&node)
            .ok_or_else(|| format!("no member {node}"))?;
        let stdin = member.stdin.as_mut().ok_or("stdin closed")?;
        writeln!(stdin, "{command}")?;
        stdin.flush()?;
        Ok(())
    }

    /// Sends a command line to several members, in one quick pass.
    pub fn send_each(&mut self, nodes: &[u64], command: &str) -> Result<(), BoxError> {
        for node in nodes {
            self.send(*node, command)?;
        }
        Ok(())
    }

    /// SIGKILLs a member; returns the clock just before the signal.
    pub fn kill(&mut self, node: u64) -> Result<u64, BoxError> {
        self.may_end.insert(node);
        let member = self
            .members
            .get_mut(&node)
            .ok_or_else(|| format!("no member {node}"))?;
        let at = now_ns();
        member.child.kill()?;
        let _ = member.child.wait();
        Ok(at)
    }

    /// Allows `node` to exit without failing the run (it is leaving).
    pub fn allow_exit(&mut self, node: u64) {
        self.may_end.insert(node);
    }

    fn take(&mut self, message: Message) -> Result<(), BoxError> {
        match message {
            Message::Line(line) => {
                if line.fields.is("error") {
                    return Err(format!("member {} failed: {}", line.node, line.text).into());
                }
                self.history.push(line);
            }
            Message::Closed(node) => {
                self.closed.insert(node);
                if !self.may_end.contains(&node) {
                    let status = self
                        .members
                        .get_mut(&node)
                        .and_then(|m| m.child.wait().ok())
                        .map(|s| s.to_string())
                        .unwrap_or_default();
                    return Err(format!(
                        "member {node} exited ({status}); see {}",
                        self.log_path(node).display()
                    )
                    .into());
                }
            }
        }
        Ok(())
    }

    /// Reads lines until `done(history)` holds, or fails after `timeout` saying `what` was
    /// awaited.
    pub fn wait_for(
        &mut self,
        timeout: Duration,
        what: &str,
        mut done: impl FnMut(&[Line]) -> bool,
    ) -> Result<(), BoxError> {
        let deadline = Instant::now() + timeout;
        loop {
            if done(&self.history) {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(message) => self.take(message)?,
                Err(_) => {
                    return Err(format!(
                        "timed out after {:.1} s waiting for {what}; member logs in {}",
                        timeout.as_secs_f64(),
                        self.log_dir.display()
                    )
                    .into())
                }
            }
        }
    }

    /// Reads lines for `duration`.
    pub fn pump(&mut self, duration: Duration) -> Result<(), BoxError> {
        let deadline = Instant::now() + duration;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            match self.rx.recv_timeout(left) {
                Ok(message) => self.take(message)?,
                Err(mpsc::RecvTimeoutError::Timeout) => return Ok(()),
                Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
            }
        }
    }

    /// Waits until each of `nodes` printed a line of `kind` (after history index `from`).
    pub fn wait_all(
        &mut self,
        nodes: &[u64],
        kind: &str,
        from: usize,
        timeout: Duration,
    ) -> Result<(), BoxError> {
        let want: BTreeSet<u64> = nodes.iter().copied().collect();
        self.wait_for(timeout, &format!("`{kind}` from members {nodes:?}"), |h| {
            let seen: BTreeSet<u64> = h
                .iter()
                .skip(from)
                .filter(|l| l.fields.is(kind))
                .map(|l| l.node)
                .collect();
            want.is_subset(&seen)
        })
    }

    /// The address a member listens on (after its `listening` line).
    pub fn addr(&mut self, node: u64, timeout: Duration) -> Result<SocketAddr, BoxError> {
        self.wait_for(timeout, &format!("member {node} to listen"), |h| {
            h.iter().any(|l| l.node == node && l.fields.is("listening"))
        })?;
        self.history
            .iter()
            .find(|l| l.node == node && l.fields.is("listening"))
            .and_then(|l| l.fields.get("addr"))
            .ok_or_else(|| format!("member {node} printed no address").into())
    }

    /// The result lines of `nodes`, once each printed one (after history index `from`).
    pub fn results(
        &mut self,
        nodes: &[u64],
        from: usize,
        timeout: Duration,
    ) -> Result<Vec<ResultLine>, BoxError> {
        let want: BTreeSet<u64> = nodes.iter().copied().collect();
        self.wait_for(timeout, &format!("results of members {nodes:?}"), |h| {
            let seen: BTreeSet<u64> = h
                .iter()
                .skip(from)
                .filter(|l| l.text.starts_with("node="))
                .map(|l| l.node)
                .collect();
            want.is_subset(&seen)
        })?;
        let mut results = Vec::new();
        for node in nodes {
            let line = self
                .history
                .iter()
                .skip(from)
                .find(|l| l.node == *node && l.text.starts_with("node="))
                .ok_or("result line lost")?;
            results.push(
                ResultLine::parse(&line.text)
                    .ok_or_else(|| format!("unparsable result line: {}", line.text))?,
            );
        }
        Ok(results)
    }

    /// Asks `nodes` to drain and waits until their deliveries settle: every one delivered
    /// all it sent and the same number of multicasts, unchanged for [`SETTLED`]; or nothing
    /// changed for [`STUCK`] (some multicasts are not delivered: the result lines show it);
    /// at most [`DRAIN_LIMIT`]. Then asks for their result lines.
    pub fn drain_and_report(&mut self, nodes: &[u64]) -> Result<Vec<ResultLine>, BoxError> {
        let from = self.history.len();
        self.send_each(nodes, "drain")?;
        let mut latest: BTreeMap<u64, (u64, u64, u64)> = BTreeMap::new();
        let mut seen = from;
        let mut changed = Instant::now();
        let mut settled = false;
        let result = self.wait_for(DRAIN_LIMIT, "deliveries to settle", |h| {
            for line in &h[seen..] {
                if line.fields.is("progress") && nodes.contains(&line.node) {
                    let now = (
                        line.fields.get("delivered").unwrap_or(0),
                        line.fields.get("own").unwrap_or(0),
                        line.fields.get("sent").unwrap_or(0),
                    );
                    if latest.insert(line.node, now) != Some(now) {
                        changed = Instant::now();
                    }
                }
            }
            seen = h.len();
            if latest.len() < nodes.len() {
                return false;
            }
            let counts: BTreeSet<u64> = latest.values().map(|v| v.0).collect();
            let complete = counts.len() == 1 && latest.values().all(|v| v.1 >= v.2);
            settled = complete && changed.elapsed() >= SETTLED;
            settled || changed.elapsed() >= STUCK
        });
        if let Err(error) = result {
            if latest.len() < nodes.len() {
                return Err(error);
            }
        }
        let from = self.history.len();
        self.send_each(nodes, "report")?;
        self.results(nodes, from, Duration::from_secs(30))
    }

    /// Asks every member to quit, waits briefly, and kills those still running.
    pub fn shutdown(&mut self) {
        let nodes: Vec<u64> = self.members.keys().copied().collect();
        for node in &nodes {
            self.may_end.insert(*node);
            let _ = self.send(*node, "quit");
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        for member in self.members.values_mut() {
            member.stdin = None;
            loop {
                match member.child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(10))
                    }
                    Ok(None) => {
                        let _ = member.child.kill();
                        let _ = member.child.wait();
                        break;
                    }
                }
            }
        }
        self.members.clear();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for member in self.members.values_mut() {
            let _ = member.child.kill();
            let _ = member.child.wait();
        }
    }
}

/// How long deliveries must stay complete and unchanged for a drain to end.
pub const SETTLED: Duration = Duration::from_millis(300);
/// How long deliveries may stay unchanged, incomplete, before a drain gives up on them.
pub const STUCK: Duration = Duration::from_secs(5);
/// The longest drain.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(60);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Mode, Order};

    #[test]
    fn member_args_parse_back() {
        use clap::Parser;
        let spec = MemberSpec {
            node: 3,
            seeds: vec!["127.0.0.1:4000".parse().unwrap()],
            members: 5,
            order: Order::Causal,
            mode: Mode::Ping,
            size: 100,
            secs: 0.5,
            pipeline: 4,
            window_messages: Some(64),
            rate: Some(2500.0),
            multicast_settings: vec!["ack_bytes = 1024".into()],
            monitors: Some(2),
        };
        let mut argv = vec!["viewsync-bench".to_string()];
        argv.extend(spec.args());
        let cli = crate::cli::Cli::try_parse_from(argv).unwrap();
        let crate::cli::Command::Member(m) = cli.command else {
            panic!("member")
        };
        assert_eq!(
            (m.node, m.members, m.order, m.mode),
            (3, 5, Order::Causal, Mode::Ping)
        );
        assert_eq!((m.secs, m.window_messages), (0.5, Some(64)));
        assert_eq!(m.rate, 2500.0);
        assert_eq!(m.multicast_settings, vec!["ack_bytes = 1024".to_string()]);
        assert_eq!(m.monitors, Some(2));
    }
}
