//! Real node actors over the in-memory network: the same [`NodeActor`](super::NodeActor) as
//! in production, with [`MemoryEndpoint`]s instead of TCP, so multi-node tests of groups and
//! services run in one process, fast, with the network's seeded faults (loss, delay,
//! duplication, partitions, crashes).
//!
//! All actors and the network live on the current thread (the network is an
//! `Rc<RefCell<_>>`); run it inside one actix system (`#[actix_rt::test]`). A pump moves due
//! frames every [`PUMP_INTERVAL`]: it opens each with the receiver's codec (as TCP's reader
//! task does) and hands the envelope to the receiver's actor. The network's clock is the
//! runtime's elapsed time.

use super::handle::{Node, NodeHandle};
use crate::config::NodeConfig;
use crate::error::StartError;
use crate::proto::Time;
use crate::transport::memory::{MemoryEndpoint, MemoryNetwork};
use crate::transport::Inbound;
use crate::wire::FrameCodec;
use actix::Recipient;
use bytes::BytesMut;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};
use tokio_util::codec::Decoder;

/// How often the pump moves due frames to their receivers.
pub const PUMP_INTERVAL: Duration = Duration::from_millis(1);

/// A node's side of the network: its codec (to open frames as its reader would) and its
/// actor's mailbox.
struct Route {
    codec: FrameCodec,
    inbound: Recipient<Inbound>,
}

/// The in-memory network with real node actors on it.
pub struct MemoryRuntime {
    network: Rc<RefCell<MemoryNetwork>>,
    routes: Rc<RefCell<BTreeMap<SocketAddr, Route>>>,
    origin: Instant,
    /// Set when the runtime is dropped: the pump ends.
    stopped: Rc<RefCell<bool>>,
}

impl MemoryRuntime {
    /// Starts the pump for `network` on the current arbiter.
    pub fn start(network: MemoryNetwork) -> Self {
        let network = Rc::new(RefCell::new(network));
        let routes: Rc<RefCell<BTreeMap<SocketAddr, Route>>> = Rc::default();
        let origin = Instant::now();
        let stopped = Rc::new(RefCell::new(false));
        let (net, table, done) = (network.clone(), routes.clone(), stopped.clone());
        actix::spawn(async move {
            let mut interval = tokio::time::interval(PUMP_INTERVAL);
            while !*done.borrow() {
                interval.tick().await;
                pump(&net, &table, origin.elapsed());
            }
        });
        MemoryRuntime {
            network,
            routes,
            origin,
            stopped,
        }
    }

    /// The network, to cut, heal, partition, crash and pause its endpoints.
    pub fn network(&self) -> &Rc<RefCell<MemoryNetwork>> {
        &self.network
    }

    /// Time since the runtime started, as the network counts it.
    pub fn now(&self) -> Time {
        self.origin.elapsed()
    }

    /// Starts a node actor listening at `config.listen` on this network (the address is only
    /// a name here; nothing is bound) and joins its configured groups.
    pub fn spawn_node(&self, config: NodeConfig) -> Result<NodeHandle<MemoryEndpoint>, StartError> {
        let incarnation = Node::incarnation(&config)?;
        let addr = config.listen;
        // A restart at the same address is a new endpoint: frames still in flight to the old
        // one are lost, as a killed process's socket loses them.
        self.network.borrow_mut().restart(addr);
        let (network, routes) = (self.network.clone(), self.routes.clone());
        Node::start(config, incarnation, addr, move |me, codec, inbound| {
            routes
                .borrow_mut()
                .insert(me.addr, Route { codec, inbound });
            MemoryEndpoint::new(me.addr, network)
        })
    }

    /// Crashes the node at `addr` as the network sees it: frames to and from it are lost.
    /// Stop its actor too ([`NodeHandle::crash`]) for a process crash.
    pub fn crash(&self, addr: SocketAddr) {
        self.network.borrow_mut().crash(addr);
        self.routes.borrow_mut().remove(&addr);
    }
}

impl Drop for MemoryRuntime {
    fn drop(&mut self) {
        *self.stopped.borrow_mut() = true;
    }
}

/// Moves every frame due at `now` to its receiver's actor. A frame that fails to open is
/// dropped (as a reader closes a connection over it); one to an address without a node is
/// lost.
fn pump(
    network: &RefCell<MemoryNetwork>,
    routes: &RefCell<BTreeMap<SocketAddr, Route>>,
    now: Time,
) {
    let mut due = Vec::new();
    {
        let mut network = network.borrow_mut();
        network.set_now(now);
        while let Some(datagram) = network.pop_due(now) {
            due.push(datagram);
        }
    }
    let routes = routes.borrow();
    for datagram in due {
        let Some(route) = routes.get(&datagram.to) else {
            continue;
        };
        let mut bytes = BytesMut::from(&datagram.frame[..]);
        match route.codec.decoder().decode(&mut bytes) {
            Ok(Some(envelope)) => route.inbound.do_send(Inbound {
                envelope,
                connection: MemoryEndpoint::connection_of(datagram.from),
            }),
            Ok(None) => tracing::debug!(from = %datagram.from, "truncated frame dropped"),
            Err(error) => tracing::debug!(from = %datagram.from, %error, "frame refused"),
        }
    }
}
