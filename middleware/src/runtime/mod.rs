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
//! [`data_dir`] keeps what a node needs across restarts (its last incarnation, its groups,
//! the last view it installed and the latest it accepted in each).

pub mod data_dir;
mod events;
mod handle;
mod memory;
pub mod metrics;
mod node;
pub mod service;

pub use crate::proto::service_edge::{ClientRequest, ReplyTo};
pub use events::{GroupEvent, NodeStats};
pub use handle::{Node, NodeHandle};
pub use memory::{MemoryRuntime, PUMP_INTERVAL};
pub use node::{
    ActorTransport, Delivery, NodeActor, QueryServiceStatus, Until, EVENT_QUEUE_EVENTS,
    MONITORS_MAX, MONITOR_BUFFER_EVENTS, PARKED_MULTICASTS, REQUEST_TIMERS_MAX,
    REQUEST_TIMER_EXPIRY, SERVICE_BACKLOG_EVENTS, TICK_INTERVAL,
};
pub use service::{ServiceEvent, ServiceEvents, TakeDelta, TakeSnapshot};

/// The exit code of a node process that could not write a view it accepted to its data
/// directory (a full or failing disk). It stops rather than answer the view change without
/// the record (fail-stop): see [`data_dir::record_accepted_view`].
pub const EXIT_DATA_DIR_FAILED: i32 = 5;
