//! The joiner: a process asking its seeds to be let into the group, and deciding whether it
//! may found the group itself (explicit bootstrap only, see docs/ARCHITECTURE.md).

use super::config::MembershipConfig;
use super::output::MembershipOutput;
use crate::id::ProcessId;
use crate::proto::Time;
use crate::view::Member;
use crate::wire::Body;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

/// What a process knows while it asks to join a group.
#[derive(Clone, Debug)]
pub(super) struct Joiner {
    /// Where to ask (never this process's own address).
    seeds: Vec<SocketAddr>,
    /// Joiners that answered our join request (also not members), with when they answered.
    joining_peers: BTreeMap<ProcessId, Time>,
    /// A seed answered as a member, or refused us: do not create the group.
    group_seen: bool,
}

impl Joiner {
    /// A joiner of process `me` asking `seeds`.
    pub(super) fn new(me: Member, seeds: Vec<SocketAddr>) -> Self {
        Joiner {
            seeds: seeds.into_iter().filter(|s| *s != me.addr).collect(),
            joining_peers: BTreeMap::new(),
            group_seen: false,
        }
    }

    /// The seeds.
    pub(super) fn seeds(&self) -> &[SocketAddr] {
        &self.seeds
    }

    /// Starts (or restarts) asking; `via` is a member address learned to be in the group.
    pub(super) fn restart(&mut self, via: Option<SocketAddr>) {
        self.joining_peers.clear();
        self.group_seen = via.is_some();
    }

    /// The group exists (a member answered, a seed refused us, or a view was installed).
    pub(super) fn saw_group(&mut self) {
        self.group_seen = true;
    }

    /// Whether the group is known to exist.
    pub(super) fn group_seen(&self) -> bool {
        self.group_seen
    }

    /// Another joiner answered our request at `now`.
    pub(super) fn heard_joiner(&mut self, peer: ProcessId, now: Time) {
        self.joining_peers.insert(peer, now);
    }

    /// Whether this process may found the group now, joining since `since`. Only a process
    /// that was never a member may create the group: one that was excluded or left waits for
    /// the group instead of starting a second one. Of the joiners that answered within the
    /// bootstrap timeout, the lowest process id founds it.
    pub(super) fn may_found(
        &mut self,
        now: Time,
        since: Time,
        config: &MembershipConfig,
        last_epoch: u64,
        me: ProcessId,
    ) -> bool {
        self.joining_peers
            .retain(|_, heard| now.saturating_sub(*heard) < config.bootstrap_timeout);
        config.bootstrap
            && !self.group_seen
            && last_epoch == 0
            && now.saturating_sub(since) >= config.bootstrap_timeout
            && self.joining_peers.keys().all(|p| *p > me)
    }

    /// One `JoinRequest` to `via`, then to each seed (each address once).
    pub(super) fn requests(
        &self,
        me: Member,
        via: Option<SocketAddr>,
        last_epoch: u64,
        out: &mut Vec<MembershipOutput>,
    ) {
        let body = Body::JoinRequest {
            member: me,
            last_epoch,
        };
        let targets = via.into_iter().chain(self.seeds.iter().copied());
        let mut sent = BTreeSet::new();
        for to in targets {
            if to != me.addr && sent.insert(to) {
                out.push(MembershipOutput::Send {
                    to,
                    body: body.clone(),
                });
            }
        }
    }
}
