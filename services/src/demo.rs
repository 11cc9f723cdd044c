//! `viewsync demo`: a local group of three members in one process over loopback TCP, each
//! running the log service and multicasting numbered messages in total order. Members join
//! one by one (each later one receives the state by transfer); then, while they are still
//! multicasting, one member is killed (stopped without leaving). The demo prints every event
//! and ends by comparing what the members delivered in each view: the same messages, in the
//! same order, at every member that went on to the next view.
//!
//! `viewsync demo --strategy NAME` runs a replicated service instead: see [`replicated`].

pub mod replicated;

use crate::log_service::{LogService, SendPlan};
use crate::report;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedReceiver;
use viewsync::config::{NodeConfig, TransportConfig};
use viewsync::proto::node::NodeSettings;
use viewsync::runtime::{Node, NodeHandle};
use viewsync::{GroupName, NodeId};

/// How long the demo waits for each step before it gives up.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(15);
/// Messages each member multicasts.
const MESSAGES_PER_MEMBER: u64 = 20;
/// Multicasts per second per member.
const RATE: u64 = 10;

/// A demo step that did not complete, or an outcome that contradicts view synchrony.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// A node failed to start.
    #[error("node {0} failed to start: {1}")]
    Start(u64, viewsync::error::StartError),
    /// A node stopped unexpectedly.
    #[error("node stopped: {0}")]
    Node(#[from] viewsync::error::NodeError),
    /// A step timed out.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    /// Two members delivered different sequences in a view they both left for the same view.
    #[error("members disagree on what was delivered in view {0}")]
    Disagreement(u64),
}

fn config(node: u64, seeds: Vec<std::net::SocketAddr>) -> NodeConfig {
    let mut settings = NodeSettings::default();
    // The first member founds the group; the others join it through their seeds.
    settings.membership.bootstrap = seeds.is_empty();
    NodeConfig {
        node_id: NodeId(node),
        listen: "127.0.0.1:0".parse().expect("address"),
        seeds,
        // Joined after the service is registered, so it sees the first view.
        groups: Vec::new(),
        key: None,
        settings,
        transport: TransportConfig::default(),
        group_multicast: Default::default(),
        // In-process members that never restart: the clock is enough.
        data_dir: None,
        metrics_listen: None,
    }
}

/// What one member's service printed, parsed enough to compare members.
#[derive(Debug, Default)]
struct Member {
    /// The service's current view: epoch and member count.
    view: Option<(u64, usize)>,
    /// Payloads delivered, per view epoch, in order.
    delivered: BTreeMap<u64, Vec<String>>,
    /// The views the service went through, in order.
    views: Vec<u64>,
}

impl Member {
    fn observe(&mut self, line: &str) {
        let field = |key: &str| {
            line.split(' ')
                .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
                .map(str::to_owned)
        };
        if line.starts_with("service-view ") {
            let epoch: u64 = field("epoch").and_then(|e| e.parse().ok()).unwrap_or(0);
            let members = field("members").map_or(0, |m| m.split(',').count());
            self.view = Some((epoch, members));
            self.views.push(epoch);
        } else if line.starts_with("deliver ") {
            let epoch = field("view")
                .and_then(|v| v.split('@').next()?.parse().ok())
                .unwrap_or(0);
            let payload = field("payload").unwrap_or_default();
            self.delivered.entry(epoch).or_default().push(payload);
        }
    }

    fn count_in(&self, epoch: u64) -> usize {
        self.delivered.get(&epoch).map_or(0, Vec::len)
    }
}

/// Runs the demo, printing to standard output. Must run inside an actix system.
pub async fn run() -> Result<(), DemoError> {
    let group = GroupName::new("demo").expect("valid");
    let (tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<(u64, String)>();
    let mut nodes: Vec<NodeHandle> = Vec::new();
    let mut members: BTreeMap<u64, Member> = BTreeMap::new();
    println!(
        "[demo] three members each multicast {MESSAGES_PER_MEMBER} messages in total order, \
         {RATE} per second; every member prints what it delivers"
    );
    for n in 1..=3u64 {
        let seeds = nodes.iter().map(|h| h.me().addr).collect();
        let node = Node::spawn(config(n, seeds))
            .await
            .map_err(|e| DemoError::Start(n, e))?;
        println!("[node {n}] {}", report::listening(&node.me()));
        let tx = tx.clone();
        let plan = SendPlan {
            count: MESSAGES_PER_MEMBER,
            rate: RATE,
            size: 0,
        };
        LogService::start(&node, group.clone(), plan, move |line| {
            let _ = tx.send((n, line));
        })
        .await?;
        node.join(group.clone()).await?;
        nodes.push(node);
        members.insert(n, Member::default());
        // Let each member be in the group before the next starts, so the joins are visible.
        wait_until(&mut lines, &mut members, "member {n} in a view", |m| {
            m[&n].view.is_some()
        })
        .await?;
    }
    wait_until(&mut lines, &mut members, "all three in one view", |m| {
        (1..=3).all(|n| m[&n].view.is_some_and(|(_, size)| size == 3))
    })
    .await?;
    let full_view = members[&1].view.expect("in a view").0;
    wait_until(
        &mut lines,
        &mut members,
        "some deliveries in the full view",
        |m| m[&3].count_in(full_view) >= 3,
    )
    .await?;
    let victim = nodes.pop().expect("three nodes");
    println!("[demo] killing node 3 while everyone is multicasting (no leave, like kill -9)");
    let killed_at = Instant::now();
    victim.crash();
    wait_until(&mut lines, &mut members, "a view without node 3", |m| {
        (1..=2).all(|n| {
            m[&n]
                .view
                .is_some_and(|(e, size)| e > full_view && size == 2)
        })
    })
    .await?;
    println!(
        "[demo] nodes 1 and 2 are in a view without node 3 {} ms after the kill",
        killed_at.elapsed().as_millis()
    );
    // Let the survivors finish multicasting (each delivers both last messages); then nothing
    // more arrives.
    let all_sent = |m: &BTreeMap<u64, Member>| {
        (1..=2).all(|n| {
            (1..=2).all(|sender| {
                let last = format!("{sender}-{MESSAGES_PER_MEMBER}");
                m[&n].delivered.values().flatten().any(|p| *p == last)
            })
        })
    };
    wait_until(
        &mut lines,
        &mut members,
        "the survivors' last messages",
        all_sent,
    )
    .await?;
    drain(&mut lines, &mut members, Duration::from_millis(300)).await;
    compare(&members)
}

/// Prints, per view, what each member delivered there, and checks that members which moved
/// on to the same next view delivered the same sequence.
fn compare(members: &BTreeMap<u64, Member>) -> Result<(), DemoError> {
    let epochs: std::collections::BTreeSet<u64> = members
        .values()
        .flat_map(|m| m.delivered.keys().copied())
        .collect();
    for epoch in epochs {
        let next = |m: &Member| {
            let at = m.views.iter().position(|e| *e == epoch)?;
            m.views.get(at + 1).copied()
        };
        let mut summary = Vec::new();
        let mut by_next: BTreeMap<Option<u64>, Vec<(u64, &Vec<String>)>> = BTreeMap::new();
        for (n, m) in members {
            if let Some(seq) = m.delivered.get(&epoch) {
                summary.push(format!("node {n}: {}", seq.len()));
                by_next.entry(next(m)).or_default().push((*n, seq));
            }
        }
        println!("[demo] view {epoch}: delivered {}", summary.join(", "));
        let survivors = by_next
            .iter()
            .find_map(|(next, group)| next.map(|_| group[0].1.clone()));
        for (next, group) in by_next {
            let Some(next) = next else {
                // A member that crashed in this view delivered a prefix of the survivors'
                // sequence (total order holds up to where it stopped).
                for (n, seq) in &group {
                    if let Some(full) = &survivors {
                        if !full.starts_with(seq) {
                            return Err(DemoError::Disagreement(epoch));
                        }
                        println!(
                            "[demo]   node {n} stopped in this view after the first {} of those messages, in the same order",
                            seq.len()
                        );
                    }
                }
                continue;
            };
            let (first, reference) = group[0];
            for (n, seq) in &group[1..] {
                if *seq != reference {
                    println!("[demo] node {n} and node {first} differ in view {epoch}");
                    return Err(DemoError::Disagreement(epoch));
                }
            }
            if group.len() > 1 {
                let nodes: Vec<String> = group.iter().map(|(n, _)| n.to_string()).collect();
                println!(
                    "[demo]   nodes {} went on to view {next} having delivered the same {} messages in the same order",
                    nodes.join(" and "),
                    reference.len()
                );
            }
        }
    }
    println!("[demo] total order and view synchrony held across the crash");
    Ok(())
}

fn show(n: u64, line: &str, members: &mut BTreeMap<u64, Member>) {
    println!("[node {n}] {line}");
    if let Some(m) = members.get_mut(&n) {
        m.observe(line);
    }
}

async fn wait_until(
    lines: &mut UnboundedReceiver<(u64, String)>,
    members: &mut BTreeMap<u64, Member>,
    what: &'static str,
    mut done: impl FnMut(&BTreeMap<u64, Member>) -> bool,
) -> Result<(), DemoError> {
    let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
    loop {
        if done(members) {
            return Ok(());
        }
        match tokio::time::timeout_at(deadline, lines.recv()).await {
            Ok(Some((n, line))) => show(n, &line, members),
            Ok(None) | Err(_) => return Err(DemoError::Timeout(what)),
        }
    }
}

async fn drain(
    lines: &mut UnboundedReceiver<(u64, String)>,
    members: &mut BTreeMap<u64, Member>,
    quiet: Duration,
) {
    while let Ok(Some((n, line))) = tokio::time::timeout(quiet, lines.recv()).await {
        show(n, &line, members);
    }
}
