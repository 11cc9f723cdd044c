//! viewsync benchmarks.
//!
//! Two parts:
//!
//! - `benches/cores.rs`: criterion micro-benchmarks of the sans-IO cores (no sockets, no
//!   clocks);
//! - the `viewsync-bench` binary (this library): real member processes on loopback, one OS
//!   process per member, measured with the workload of DESIGN.md section 6.
//!
//! The binary's modules:
//!
//! - [`cli`]: the command line (`multicast`, `view-change`, and the hidden `member`);
//! - [`member`]: one member process: a node, a bench service, a sender, and the line
//!   protocol it speaks with its parent on stdin/stdout;
//! - [`lines`]: the `key=value` lines members print, and their parsing;
//! - [`cluster`]: the parent's side of the member processes: spawning them, their line
//!   protocol, the start/stop/drain barriers, kills, result lines;
//! - [`replication`]: `viewsync-bench replication`, the replicated key-value store under
//!   each strategy (and etcd) from front ends in this process, closed and open loop;
//! - [`orchestration`]: the cells of each benchmark, the matrices, and the drivers of the two
//!   subcommands;
//! - [`results`]: the types the parent, the files, the tables and the plots share (cells,
//!   measurements, rows, summaries), so those modules import one way;
//! - [`csv_files`]: the results files, read and written with the `csv` crate;
//! - [`report`]: summaries and markdown tables;
//! - [`plots`]: SVG plots;
//! - [`scale`]: `viewsync-bench scale`, forming groups of 3 to 64 members and replacing a
//!   SIGKILLed one, against the group's size;
//! - [`sys`]: the monotonic clock shared by processes, CPU time and TCP bytes sent.

pub mod cli;
pub mod cluster;
pub mod csv_files;
pub mod lines;
pub mod member;
pub mod orchestration;
pub mod plots;
pub mod replication;
pub mod report;
pub mod results;
pub mod scale;
pub mod sys;

/// The error type of the harness: anything that can be shown to a person.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The group every benchmark member joins.
pub const GROUP: &str = "bench";
