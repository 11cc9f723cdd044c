//! What crosses the wire: message types and the one codec module that frames, authenticates and
//! encodes them. Every byte a node sends or accepts goes through [`codec`].

pub mod codec;
mod messages;
pub mod status;

pub use codec::{ClusterKey, FrameCodec, FrameError, WireStats};
pub use messages::{
    AcceptedView, Ballot, Blocked, BlockedReason, Body, BusyReason, CutEntry, Decision, Entry,
    Envelope, FlushReport, Item, Ordering, Outcome, Rank, RecoveryClaim, RecoveryVote, Refusal,
    Retry, Round, Seq, PROTOCOL_COUNTER_MAX, PROTOCOL_VERSION,
};
