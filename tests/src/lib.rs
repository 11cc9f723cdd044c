//! The fixture for viewsync's tests on real processes: `viewsync node` processes on loopback,
//! each on a port it picks itself (tests never bind fixed ports).
//!
//! - [`child`]: one node process: spawning, the reader threads, signals, kill on drop;
//! - [`process`]: [`process::NodeProcess`] (every stdout line kept, for membership tests),
//!   [`process::Cluster`], temporary directories, configuration text, short-lived commands
//!   ([`process::run_viewsync`]);
//! - [`service`]: [`service::ServiceNode`] (a node with the log service's send plan, its
//!   stdout parsed compactly as it arrives, for floods), [`service::Group`];
//! - [`stdout_log`]: such a node's stdout, parsed compactly as it arrives;
//! - [`view_synchrony`]: the view-synchrony checker over several members' logs;
//! - [`netns`]: hosts in network namespaces joined by a bridge, cut and healed (partitions).
//! - [`fuzz_bodies`]: the fuzz targets' bodies, shared by `fuzz/` and `--test fuzz`.
//!
//! The lines are parsed with the types of `viewsync_services::report`, next to the code that
//! prints them (a node's stdout lines start with a timestamp, which [`child`] strips). Used by
//! the `membership`, `multicast`, `replication`, `operations`, `bad_input`, `partition` and
//! `nemesis` test binaries.

pub mod child;
pub mod fuzz_bodies;
pub mod netns;
pub mod process;
pub mod service;
pub mod stdout_log;
pub mod view_synchrony;
