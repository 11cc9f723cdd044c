//! # viewsync-services
//!
//! Services built on the viewsync middleware, and the `viewsync` command-line tool
//! (`src/bin/viewsync.rs`): `node`, `members`, `demo`, `keygen`.

pub mod demo;
pub mod report;
