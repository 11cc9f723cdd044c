//! # viewsync-services
//!
//! Services built on the viewsync middleware, and the `viewsync` command-line tool
//! (`src/bin/viewsync.rs`): `node`, `members`, `send`, `client`, `demo`, `keygen`.
//!
//! - [`state_machine`]: the deterministic state machines replicated services run (the
//!   key-value store and the bank), with checksummed snapshots;
//! - [`history`]: recorded client histories (JSON lines) and the linearizability and
//!   sequential-consistency checkers that judge them;
//! - [`storage`]: durable storage for replica managers (a checksummed, segmented write-ahead
//!   log and an atomically replaced snapshot file, with three durability modes);
//! - [`frontend`]: the front end that makes replication transparent (request ids,
//!   resolution of the group through any node, retransmission to the next candidate, one
//!   result per call), with its decision logic sans IO ([`frontend::policy`]);
//! - [`admin_cli`]: the operator's commands `viewsync status`, `monitor`, `leave` and
//!   `evict`;
//! - [`client_cli`]: `viewsync client`, calls to a replicated key-value store or bank
//!   through a front end;
//! - [`replication`]: the strategies' sans-IO cores (passive, naive) and what they share;
//!   [`replica`] runs one on a node, [`strategy`] builds it from the `[service]` section.

pub mod admin_cli;
pub mod client_cli;
pub mod config;
pub mod demo;
pub mod frontend;
pub mod history;
pub mod log_service;
pub mod replica;
pub mod replication;
pub mod report;
pub mod state_machine;
pub mod storage;
pub mod strategy;
