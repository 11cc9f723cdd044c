//! viewsync benchmark harness (see benches/).
