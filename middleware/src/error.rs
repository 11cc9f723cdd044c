//! Errors of the runtime API. Each says whether anything changed.

use crate::config::ConfigError;
use crate::proto::node::GroupRequestError;

/// Starting a node failed; nothing is left running.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The data directory is unusable (not writable, not a directory, a corrupt incarnation
    /// file).
    #[error(transparent)]
    DataDir(#[from] crate::runtime::data_dir::DataDirError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// A request to a running node failed; the node's state did not change.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Join or leave refused by the protocol core.
    #[error(transparent)]
    Group(#[from] GroupRequestError),
    /// A multicast or point-to-point send was refused; nothing was sent.
    #[error(transparent)]
    Multicast(#[from] crate::proto::multicast::MulticastError),
    /// The node has stopped.
    #[error("the node has stopped")]
    Stopped,
    /// `NodeHandle::multicast_until` cannot wait: this many multicasts are waited for already
    /// ([`PARKED_MULTICASTS`](crate::runtime::PARKED_MULTICASTS)); nothing was sent.
    #[error("{0} multicasts are waited for already; retry later")]
    TooManyWaiters(usize),
    /// The multicast `NodeHandle::multicast_until` waits for will never be delivered here, or
    /// its stability can no longer be learnt (this node was excluded from or left the group,
    /// or the group has no registered service to deliver to).
    #[error("multicast abandoned: {0}")]
    Abandoned(&'static str),
}
