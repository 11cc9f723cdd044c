//! Whether a process is blocked in its group, and on what: safety by blocking is only
//! useful if operators can see it (docs/ARCHITECTURE.md, decision 18).

use super::config::MembershipConfig;
use super::output::Status;
use crate::id::ProcessId;
use crate::proto::Time;
use crate::view::View;
use crate::wire::{Blocked, BlockedReason};
use std::collections::BTreeSet;

/// What the membership core knows that bears on being blocked.
pub(super) struct Standing<'a> {
    pub(super) me: ProcessId,
    pub(super) config: &'a MembershipConfig,
    pub(super) status: &'a Status,
    /// A seed answered as a member, or refused us.
    pub(super) group_seen: bool,
    pub(super) last_epoch: u64,
    /// The last view installed.
    pub(super) view: Option<&'a View>,
    pub(super) suspected: &'a BTreeSet<ProcessId>,
    /// When this process first promised in its current view.
    pub(super) promised_since: Option<Time>,
    /// The last proposal found no promiser holding the state.
    pub(super) waits_for_holder: bool,
    /// Where total-failure recovery stands, for a restarted former member with a claim.
    pub(super) recovery: Option<super::join::RecoveryStanding>,
}

/// Blocked since when and on what: a view change has been under way (the multicast frozen)
/// for twice the view change timeout, or the process has been joining that long with no seed
/// answering as a member and no `bootstrap`.
pub(super) fn blocked(now: Time, s: &Standing<'_>) -> Option<Blocked> {
    let patience = s.config.view_change_timeout * 2;
    match *s.status {
        Status::Joining { since, .. } => {
            let waited = now.saturating_sub(since);
            // A process that may found the group is not waiting for anyone.
            let may_found = s.config.bootstrap && s.last_epoch == 0;
            let waiting =
                !(s.group_seen || may_found) && waited >= s.config.bootstrap_timeout.max(patience);
            let reason = match &s.recovery {
                Some(recovery) => {
                    let waiting = recovery.waiting_for();
                    BlockedReason::AwaitingLastView {
                        view: waiting.view,
                        voters: waiting.voters.clone(),
                        back: waiting.back.clone(),
                        needed: waiting.needed,
                    }
                }
                None => BlockedReason::NoSeedAnswered,
            };
            waiting.then_some(Blocked {
                view: None,
                blocked_ms: waited.as_millis() as u64,
                reason,
            })
        }
        Status::Member | Status::Leaving { .. } => {
            let view = s.view?;
            let since = s.promised_since?;
            let waited = now.saturating_sub(since);
            if waited < patience {
                return None;
            }
            let reason = if s.waits_for_holder {
                BlockedReason::NoStateHolder
            } else {
                let voters: Vec<ProcessId> = view.voters().iter().map(|m| m.id).collect();
                let reachable = voters
                    .iter()
                    .copied()
                    .filter(|p| *p == s.me || !s.suspected.contains(p))
                    .collect();
                BlockedReason::NoMajority {
                    voters,
                    reachable,
                    needed: view.majority(),
                }
            };
            Some(Blocked {
                view: Some(view.id),
                blocked_ms: waited.as_millis() as u64,
                reason,
            })
        }
        Status::Left => None,
    }
}
