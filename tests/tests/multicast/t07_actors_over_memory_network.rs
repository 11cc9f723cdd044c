//! Real `NodeActor`s over the in-memory network (no processes, no sockets): three nodes form
//! a group over a lossy, duplicating, reordering network, multicast in total order, one
//! crashes, and the other two install a view without it and keep delivering in one order.

use actix::prelude::*;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::mpsc;
use viewsync::config::{NodeConfig, TransportConfig};
use viewsync::proto::node::NodeSettings;
use viewsync::runtime::{MemoryRuntime, NodeHandle, ServiceEvent, TakeSnapshot};
use viewsync::transport::memory::{Faults, MemoryEndpoint, MemoryNetwork};
use viewsync::wire::{ClusterKey, Ordering};
use viewsync::{GroupName, NodeId};

/// Reports each delivery (node index, payload) and keeps a count as its state.
struct Recorder {
    node: usize,
    delivered: u64,
    report: mpsc::UnboundedSender<(usize, Bytes)>,
}

impl Actor for Recorder {
    type Context = Context<Self>;
}

impl Handler<ServiceEvent> for Recorder {
    type Result = ();
    fn handle(&mut self, event: ServiceEvent, _ctx: &mut Context<Self>) {
        match event {
            ServiceEvent::Deliver { message, .. } => {
                self.delivered += 1;
                let _ = self.report.send((self.node, message.payload));
            }
            ServiceEvent::Restore { state, .. } => {
                self.delivered = u64::from_le_bytes(state[..8].try_into().unwrap());
            }
            _ => {}
        }
    }
}

impl Handler<TakeSnapshot> for Recorder {
    type Result = MessageResult<TakeSnapshot>;
    fn handle(&mut self, _: TakeSnapshot, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(Bytes::copy_from_slice(&self.delivered.to_le_bytes()))
    }
}

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, i as u8 + 1], 7000))
}

fn config(i: usize) -> NodeConfig {
    let mut settings = NodeSettings::default();
    settings.membership.bootstrap = i == 0;
    settings.multicast.ordering = Ordering::Total;
    NodeConfig {
        node_id: NodeId(i as u64 + 1),
        listen: addr(i),
        seeds: if i == 0 { vec![] } else { vec![addr(0)] },
        // Joined by hand, after the service registers, so it sees every view.
        groups: vec![],
        key: Some(ClusterKey::from_hex(&"cd".repeat(32)).unwrap()),
        settings,
        transport: TransportConfig::default(),
        group_multicast: BTreeMap::new(),
        data_dir: None,
        metrics_listen: None,
    }
}

async fn wait_for(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !done().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `nodes` are all in one view of exactly themselves, every one a voter.
async fn settled(group: &GroupName, nodes: &[&NodeHandle<MemoryEndpoint>]) {
    wait_for("one view of the live nodes, all voters", async || {
        let mut ids = Vec::new();
        for node in nodes {
            let Some(view) = node.view(group.clone()).await.unwrap() else {
                return false;
            };
            let exact = view.members.len() == nodes.len()
                && view.voters == nodes.len()
                && nodes.iter().all(|n| view.contains(n.me().id));
            if !exact {
                return false;
            }
            ids.push(view.id);
        }
        ids.windows(2).all(|w| w[0] == w[1])
    })
    .await;
}

/// Multicasts `count` messages from each of `senders`, interleaved (each resolves once
/// accepted).
async fn multicast_from(
    group: &GroupName,
    senders: &[&NodeHandle<MemoryEndpoint>],
    round: &str,
    count: usize,
) {
    let mut sends = Vec::new();
    for (s, node) in senders.iter().enumerate() {
        for k in 0..count {
            let payload = Bytes::from(format!("{round}-{s}-{k}"));
            sends.push(node.multicast(group.clone(), payload));
        }
    }
    for send in sends {
        send.await.unwrap();
    }
}

/// Collects deliveries until each of `nodes` has `count` more, returning them per node.
async fn deliveries(
    rx: &mut mpsc::UnboundedReceiver<(usize, Bytes)>,
    nodes: &[usize],
    count: usize,
) -> BTreeMap<usize, Vec<Bytes>> {
    let mut got: BTreeMap<usize, Vec<Bytes>> = nodes.iter().map(|n| (*n, Vec::new())).collect();
    tokio::time::timeout(Duration::from_secs(30), async {
        while got.values().any(|d| d.len() < count) {
            let (node, payload) = rx.recv().await.expect("services alive");
            if let Some(d) = got.get_mut(&node) {
                d.push(payload);
            }
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "deliveries in time: {:?}",
            got.values().map(Vec::len).collect::<Vec<_>>()
        )
    });
    got
}

#[actix_rt::test]
async fn node_actors_over_the_memory_network_survive_a_crash_in_total_order() {
    let faults = Faults {
        drop_probability: 0.05,
        duplicate_probability: 0.02,
        delay_min: Duration::from_micros(100),
        delay_max: Duration::from_millis(3),
        late_probability: 0.0,
        late_delay_max: Duration::ZERO,
    };
    let runtime = MemoryRuntime::start(MemoryNetwork::new(7, faults));
    let group = GroupName::new("g").unwrap();
    let (report, mut delivered) = mpsc::unbounded_channel();
    let mut nodes = Vec::new();
    for i in 0..3 {
        let node = runtime.spawn_node(config(i)).unwrap();
        let service = Recorder {
            node: i,
            delivered: 0,
            report: report.clone(),
        }
        .start();
        node.register_service(group.clone(), service).await.unwrap();
        node.join(group.clone()).await.unwrap();
        nodes.push(node);
    }
    let all: Vec<&NodeHandle<MemoryEndpoint>> = nodes.iter().collect();
    settled(&group, &all).await;

    multicast_from(&group, &all, "a", 20).await;
    let got = deliveries(&mut delivered, &[0, 1, 2], 60).await;
    assert_eq!(got[&0].len(), 60);
    assert_eq!(got[&0], got[&1], "total order");
    assert_eq!(got[&0], got[&2], "total order");

    // Node 3 crashes: its actor stops and the network loses what goes to or from it.
    nodes[2].crash();
    runtime.crash(addr(2));
    let survivors: Vec<&NodeHandle<MemoryEndpoint>> = nodes[..2].iter().collect();
    settled(&group, &survivors).await;

    multicast_from(&group, &survivors, "b", 10).await;
    let got = deliveries(&mut delivered, &[0, 1], 20).await;
    assert_eq!(got[&0], got[&1], "total order after the view change");
    let stats = nodes[0].stats().await.unwrap();
    assert!(stats.suspicions >= 1, "the crash was detected");
}
