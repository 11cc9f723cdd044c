//! Sans-IO protocol cores. No actix, no tokio, no sockets, no clock, no randomness: each core
//! takes `(now, input)` and returns outputs, so tests can assert exactly what a handler does.

pub mod failure_detector;
pub mod membership;
pub mod multicast;
pub mod node;
#[cfg(feature = "planted-bugs")]
pub mod planted;
pub mod service_edge;

/// Time as the cores see it: the duration since an origin chosen by whoever drives them (the
/// actor's start, or the simulator's zero).
pub type Time = std::time::Duration;

/// How often a shell ticks its node core (failure detector checks, retries, timeouts). The
/// node actor and the simulator tick at this period; the cores' timeouts are multiples of it.
pub const TICK_INTERVAL: std::time::Duration = std::time::Duration::from_millis(20);
