//! The actix shells. A node runs two actors:
//!
//! - [`NodeActor`]: owns the [`NodeCore`](crate::proto::node::NodeCore) (failure detector and
//!   one membership core per group) and the
//!   [`ServiceEdge`](crate::proto::service_edge::ServiceEdge) (the policy between the core and
//!   the services), feeds them ticks, envelopes and requests, and carries out their outputs
//!   in one place ([`crate::shell::dispatch`]). It is generic over the transport;
//! - [`TcpTransport`](crate::transport::tcp::TcpTransport): owns the listener and the
//!   connections, in production. [`MemoryRuntime`] runs node actors over the in-memory
//!   network instead, for multi-node tests.
//!
//! [`data_dir`] keeps what a node needs across restarts (its last incarnation).

pub mod data_dir;
mod events;
mod handle;
mod memory;
mod node;
pub mod service;

pub use crate::proto::service_edge::{ClientRequest, ReplyTo};
pub use events::{GroupEvent, NodeStats};
pub use handle::{Node, NodeHandle};
pub use memory::{MemoryRuntime, PUMP_INTERVAL};
pub use node::{
    ActorTransport, Delivery, NodeActor, Until, EVENT_QUEUE_EVENTS, PARKED_MULTICASTS,
    SERVICE_BACKLOG_EVENTS, TICK_INTERVAL,
};
pub use service::{ServiceEvent, TakeDelta, TakeSnapshot};
