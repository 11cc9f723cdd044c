//! `viewsync demo`: a local group of three members in one process over loopback TCP. Each view
//! is printed as members join; then one member is killed (stopped without leaving) and the view
//! without it is printed, with the time it took.

use crate::report;
use std::time::{Duration, Instant};
use viewsync::config::{NodeConfig, TransportConfig};
use viewsync::proto::node::NodeSettings;
use viewsync::runtime::{GroupEvent, Node, NodeHandle};
use viewsync::{GroupName, NodeId};

/// How long the demo waits for each step before it gives up.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// A demo step that did not complete.
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
}

fn config(node: u64, seeds: Vec<std::net::SocketAddr>, group: &GroupName) -> NodeConfig {
    NodeConfig {
        node_id: NodeId(node),
        listen: "127.0.0.1:0".parse().expect("address"),
        seeds,
        groups: vec![group.clone()],
        key: None,
        settings: NodeSettings::default(),
        transport: TransportConfig::default(),
        group_multicast: Default::default(),
    }
}

/// Runs the demo, printing to standard output. Must run inside an actix system.
pub async fn run() -> Result<(), DemoError> {
    let group = GroupName::new("demo").expect("valid");
    let (tx, mut views) = tokio::sync::mpsc::unbounded_channel();
    let mut nodes: Vec<NodeHandle> = Vec::new();
    for n in 1..=3u64 {
        let seeds = nodes.iter().map(|h| h.me().addr).collect();
        let node = Node::spawn(config(n, seeds, &group))
            .await
            .map_err(|e| DemoError::Start(n, e))?;
        println!("[node {n}] {}", report::listening(&node.me()));
        let mut events = node.subscribe().await?;
        let tx = tx.clone();
        actix::spawn(async move {
            while let Some(event) = events.recv().await {
                if let Some(line) = report::event_line(&event) {
                    println!("[node {n}] {line}");
                }
                if let GroupEvent::ViewInstalled { change, .. } = event {
                    let _ = tx.send((n, change.view));
                }
            }
        });
        nodes.push(node);
    }
    let full = wait_for(&mut views, "all three members in one view", |seen| {
        (1..=3).all(|n| seen.get(&n).is_some_and(|v| v.members.len() == 3))
    })
    .await?;
    let _ = full;
    let victim = nodes.pop().expect("three nodes");
    println!("[demo] all three members agree; killing node 3 (no leave, like kill -9)");
    let killed_at = Instant::now();
    victim.crash();
    wait_for(&mut views, "a view without node 3", |seen| {
        (1..=2).all(|n| {
            seen.get(&n).is_some_and(|v| {
                v.members.len() == 2 && v.members.iter().all(|m| m.id.node != NodeId(3))
            })
        })
    })
    .await?;
    println!(
        "[demo] nodes 1 and 2 installed the view without node 3 {} ms after the kill",
        killed_at.elapsed().as_millis()
    );
    for node in &nodes {
        let view = node.view(group.clone()).await?.expect("member");
        print!(
            "[demo] members via node {}:\n{}",
            node.me().id.node,
            report::members(&view)
        );
    }
    Ok(())
}

async fn wait_for(
    views: &mut tokio::sync::mpsc::UnboundedReceiver<(u64, viewsync::View)>,
    what: &'static str,
    mut done: impl FnMut(&std::collections::BTreeMap<u64, viewsync::View>) -> bool,
) -> Result<std::collections::BTreeMap<u64, viewsync::View>, DemoError> {
    let mut seen = std::collections::BTreeMap::new();
    let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
    loop {
        if done(&seen) {
            return Ok(seen);
        }
        match tokio::time::timeout_at(deadline, views.recv()).await {
            Ok(Some((n, view))) => {
                seen.insert(n, view);
            }
            Ok(None) | Err(_) => return Err(DemoError::Timeout(what)),
        }
    }
}
