//! # viewsync
//!
//! Group communication for replicated services: a failure detector, a group membership
//! service with views and group address expansion, and view-synchronous reliable multicast
//! (FIFO, causal and total order, safe delivery, state transfer), over authenticated TCP.
//! Replicated services are actors that receive deliveries and views in agreed order
//! ([`runtime::service`]).
//!
//! The crate is layered (see `docs/ARCHITECTURE.md`):
//!
//! - [`wire`]: message types and the one codec (length-delimited, bincode, HMAC-SHA256);
//! - [`proto`]: sans-IO protocol cores: failure detector, membership, multicast, and the node
//!   core that composes them;
//! - [`transport`]: TCP and an in-memory network with seeded faults, behind one trait;
//! - [`shell`]: what the actor and the simulator both do with a node's outputs (with the
//!   service edge in [`proto::service_edge`]);
//! - [`runtime`]: the actix actors that run the cores over a transport;
//! - [`sim`]: the deterministic simulator and the property checkers;
//! - [`client`]: what a process outside a group uses to resolve a group name and multicast
//!   to it: a long-lived [`client::Client`] with an identity of its own, and one-shot helpers.
//!
//! Starting a node and watching its views:
//!
//! ```no_run
//! use viewsync::config::NodeConfig;
//! use viewsync::runtime::{GroupEvent, Node};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let system = actix::System::new();
//! system.block_on(async {
//!     let config = NodeConfig::parse(
//!         "node_id = 1\nlisten = \"127.0.0.1:0\"\ngroups = [\"demo\"]\n",
//!         std::path::Path::new("inline.toml"),
//!     )?;
//!     let node = Node::spawn(config).await?;
//!     let mut events = node.subscribe().await?;
//!     while let Some(event) = events.recv().await {
//!         if let GroupEvent::ViewInstalled { change, .. } = event {
//!             println!("{}", change.view);
//!         }
//!     }
//!     Ok::<_, Box<dyn std::error::Error>>(())
//! })
//! # }
//! ```
//!
//! A node's configuration comes from a TOML file ([`config::NodeConfig::load`]) or is built in
//! code ([`config::NodeConfig::builder`]), validated the same way. The service actor API,
//! with a runnable example, is in [`runtime::service`]; `services/examples/counter.rs` is the
//! smallest replicated service to copy.
//!
//! # Depending on it
//!
//! Not published to a registry: depend by path (`viewsync = { path = ".../middleware" }`)
//! or by git; `middleware/README.md` says more. Services are actix actors, so an
//! application also depends on `actix` (0.13) and runs its nodes inside an actix system.

pub mod client;
pub mod config;
pub mod error;
pub mod id;
pub mod proto;
pub mod runtime;
pub mod shell;
pub mod sim;
pub mod transport;
pub mod view;
pub mod wire;

pub use id::{GroupName, Incarnation, NodeId, ProcessId, ViewId};
pub use view::{Member, View, ViewChange};
