//! The actix shells. A node runs two actors:
//!
//! - [`NodeActor`]: owns the [`NodeCore`](crate::proto::node::NodeCore) (failure detector and
//!   one membership core per group), feeds it ticks, envelopes and requests, and carries out
//!   its outputs in one place ([`crate::transport::dispatch`]);
//! - [`TcpTransport`](crate::transport::tcp::TcpTransport): owns the listener and the
//!   connections.
//!
//! [`data_dir`] keeps what a node needs across restarts (its last incarnation).

pub mod data_dir;
mod node;
pub mod service;

pub use node::{
    GroupEvent, Node, NodeActor, NodeHandle, NodeStats, EVENT_QUEUE_EVENTS, PARKED_MULTICASTS,
    SERVICE_BACKLOG_EVENTS, TICK_INTERVAL,
};
pub use service::{ServiceEvent, TakeSnapshot};
