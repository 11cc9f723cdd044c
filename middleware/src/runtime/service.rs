//! The service actor API: how a replicated service plugs into a group.
//!
//! A service is an actix actor that handles [`ServiceEvent`] (deliveries, views, blocks,
//! point-to-point messages and state restores, in agreed order) and [`TakeSnapshot`] (its
//! state, for members joining). It registers with [`NodeHandle::register_service`] and sends
//! with [`NodeHandle::multicast`] and [`NodeHandle::send_to`]. A service with durable state
//! registers with [`NodeHandle::register_durable_service`] and also handles [`TakeDelta`]: a
//! restarted member then catches up from its recovered position by a delta of the updates
//! it missed, when the provider's service still holds them, instead of the whole state.
//!
//! ```
//! use actix::prelude::*;
//! use bytes::Bytes;
//! use viewsync::config::NodeConfig;
//! use viewsync::runtime::{Node, ServiceEvent, TakeSnapshot};
//! use viewsync::GroupName;
//!
//! /// Counts the messages delivered (its state) and reports each one.
//! struct Counter {
//!     delivered: u64,
//!     report: tokio::sync::mpsc::UnboundedSender<Bytes>,
//! }
//!
//! impl Actor for Counter {
//!     type Context = Context<Self>;
//! }
//!
//! impl Handler<ServiceEvent> for Counter {
//!     type Result = ();
//!     fn handle(&mut self, event: ServiceEvent, _ctx: &mut Context<Self>) {
//!         match event {
//!             ServiceEvent::Deliver { message, .. } => {
//!                 self.delivered += 1;
//!                 let _ = self.report.send(message.payload);
//!             }
//!             // A joiner gets the state of a member at the start of its first view.
//!             ServiceEvent::Restore { state, .. } => {
//!                 self.delivered = u64::from_le_bytes(state[..8].try_into().unwrap());
//!             }
//!             ServiceEvent::ViewChange { change, .. } => println!("now in {}", change.view),
//!             // A service that serves clients answers each request once, through
//!             // `NodeHandle::reply` (this one takes only multicasts).
//!             ServiceEvent::Request(_) | ServiceEvent::Block { .. } | ServiceEvent::Direct { .. } => {}
//!         }
//!     }
//! }
//!
//! impl Handler<TakeSnapshot> for Counter {
//!     type Result = MessageResult<TakeSnapshot>;
//!     fn handle(&mut self, _: TakeSnapshot, _ctx: &mut Context<Self>) -> Self::Result {
//!         MessageResult(Bytes::copy_from_slice(&self.delivered.to_le_bytes()))
//!     }
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! actix::System::new().block_on(async {
//!     let group = GroupName::new("counters")?;
//!     // No seeds, and `bootstrap`: this node founds the group.
//!     let config = NodeConfig::parse(
//!         "node_id = 1\nlisten = \"127.0.0.1:0\"\nbootstrap = true\n",
//!         std::path::Path::new("inline.toml"),
//!     )?;
//!     let node = Node::spawn(config).await?;
//!     let (report, mut delivered) = tokio::sync::mpsc::unbounded_channel();
//!     let counter = Counter { delivered: 0, report }.start();
//!     node.register_service(group.clone(), counter).await?;
//!     node.join(group.clone()).await?;
//!     // Resolves once the multicast is accepted (flow control may make it wait).
//!     node.multicast(group, Bytes::from_static(b"hello")).await?;
//!     assert_eq!(delivered.recv().await.as_deref(), Some(&b"hello"[..]));
//!     Ok::<_, Box<dyn std::error::Error>>(())
//! })
//! # }
//! ```
//!
//! [`NodeHandle::register_service`]: super::NodeHandle::register_service
//! [`NodeHandle::register_durable_service`]: super::NodeHandle::register_durable_service
//! [`NodeHandle::multicast`]: super::NodeHandle::multicast
//! [`NodeHandle::send_to`]: super::NodeHandle::send_to

use crate::id::{GroupName, ViewId};
use actix::prelude::*;
use bytes::Bytes;

/// What a service receives from its group, in agreed order. Defined with the service edge
/// ([`crate::proto::service_edge`]), which the simulator runs too; here it is an actor message.
pub use crate::proto::service_edge::ServiceEvent;

impl Message for ServiceEvent {
    type Result = ();
}

/// Asks a service for its state, to transfer to members joining `view`. It arrives after the
/// last delivery of the previous view and before any of `view`.
#[derive(Clone, Debug, PartialEq, Eq, Message)]
#[rtype(result = "Bytes")]
pub struct TakeSnapshot {
    /// The group.
    pub group: GroupName,
    /// The view the joiners start in.
    pub view: ViewId,
}

/// Asks a service with durable state for a *delta*: the updates after position `since` up
/// to the snapshot it took for the joiners of `view` ([`TakeSnapshot`] came first), which a
/// joiner whose own state is at `since` applies instead of restoring the whole snapshot
/// ([`ServiceEvent::Restore`] with `since: Some(_)`). `None` when it cannot: it no longer
/// holds those updates, `since` is not behind that snapshot, or it keeps no such record.
/// The joiner then gets the whole snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Message)]
#[rtype(result = "Option<Bytes>")]
pub struct TakeDelta {
    /// The group.
    pub group: GroupName,
    /// The view the joiner starts in (whose snapshot the delta ends at).
    pub view: ViewId,
    /// The joiner's position.
    pub since: u64,
}

/// A burst of [`ServiceEvent`]s, in agreed order, as one actor message: what a service
/// registered with [`NodeHandle::register_service_in_bursts`] receives instead of one
/// message per event. A burst holds the events one step of the node produced (the
/// deliveries of the frames it just read, say); handling it is handling its events in order.
/// Under a flood this saves the mailbox round trip (an allocation, a wake-up, a poll) per
/// delivery.
///
/// [`NodeHandle::register_service_in_bursts`]: super::NodeHandle::register_service_in_bursts
#[derive(Debug)]
pub struct ServiceEvents(pub Vec<ServiceEvent>);

impl Message for ServiceEvents {
    type Result = ();
}

/// Where a service takes its events: one message each, or in bursts.
#[derive(Clone)]
pub(crate) enum EventsRecipient {
    OneByOne(Recipient<ServiceEvent>),
    Bursts(Recipient<ServiceEvents>),
}

/// A registered service's mailboxes.
#[derive(Clone)]
pub(crate) struct ServiceRecipients {
    pub(crate) events: EventsRecipient,
    pub(crate) snapshot: Recipient<TakeSnapshot>,
    /// A service that answers deltas (registered as durable).
    pub(crate) delta: Option<Recipient<TakeDelta>>,
}
