//! The joiner: a process asking its seeds to be let into the group, and deciding whether it
//! may found the group itself (explicit bootstrap only, see docs/ARCHITECTURE.md), or
//! re-form it after a total failure.
//!
//! **Total-failure recovery.** A former member never founds its group again by `bootstrap`
//! (that could start a second group beside the real one, or continue from nothing). But when
//! every member crashed at once (a power loss), no member is left to join. A restarted former
//! member whose service keeps durable state then carries a [`RecoveryClaim`]: the last view
//! it installed and how far its durable state goes. Joiners exchange claims
//! ([`Body::Recovering`]). Once, for `bootstrap_timeout`, no member has answered and the
//! claimants include a majority of the voters of the latest view any of them installed, the
//! claimant with the most advanced state (then the latest view, then the lowest node id)
//! re-forms the group from its own state, at the next epoch; the others join it and receive
//! its state. A majority is required because every acknowledged update of a replicated
//! service is durable at a majority of the voters of the view it was acknowledged in, so the
//! most advanced state among a majority holds all of them; and because a live group can only
//! have moved past that view with a majority of its voters, which are here, restarted.

use super::config::MembershipConfig;
use super::output::MembershipOutput;
use crate::id::NodeId;
use crate::id::ProcessId;
use crate::proto::Time;
use crate::view::Member;
use crate::wire::{Body, RecoveryClaim};
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
    /// Claims heard from other recovering former members: their claim, address and when.
    claims: BTreeMap<ProcessId, (RecoveryClaim, SocketAddr, Time)>,
}

/// Where total-failure recovery stands, for a joiner with a claim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct RecoveryStanding {
    /// The latest view any claimant installed.
    pub(super) last_view: crate::view::View,
    /// Its voters (by node: restarted processes have new incarnations).
    pub(super) voters: Vec<NodeId>,
    /// Those of them heard from recently, this process included.
    pub(super) back: Vec<NodeId>,
    /// How many must be back.
    pub(super) needed: usize,
    /// Whether this process is the claimant that re-forms the group.
    pub(super) mine_is_best: bool,
}

impl Joiner {
    /// A joiner of process `me` asking `seeds`.
    pub(super) fn new(me: Member, seeds: Vec<SocketAddr>) -> Self {
        Joiner {
            seeds: seeds.into_iter().filter(|s| *s != me.addr).collect(),
            joining_peers: BTreeMap::new(),
            group_seen: false,
            claims: BTreeMap::new(),
        }
    }

    /// A recovering former member `peer` made `claim` at `now`.
    pub(super) fn heard_claim(&mut self, peer: Member, claim: RecoveryClaim, now: Time) {
        self.claims.insert(peer.id, (claim, peer.addr, now));
    }

    /// Where recovery stands for this process, recovering with `mine`: claims older than the
    /// bootstrap timeout are forgotten (their makers may have joined or stopped).
    pub(super) fn recovery(
        &self,
        now: Time,
        config: &MembershipConfig,
        me: ProcessId,
        mine: &RecoveryClaim,
    ) -> RecoveryStanding {
        let fresh = self
            .claims
            .iter()
            .filter(|(_, (_, _, heard))| now.saturating_sub(*heard) < config.bootstrap_timeout)
            .map(|(p, (c, _, _))| (*p, c));
        let claims: Vec<(ProcessId, &RecoveryClaim)> =
            std::iter::once((me, mine)).chain(fresh).collect();
        let last_view = claims
            .iter()
            .map(|(_, c)| &c.last_view)
            .max_by_key(|v| v.id.epoch)
            .expect("at least this process's claim")
            .clone();
        let voters: Vec<NodeId> = last_view.voters().iter().map(|m| m.id.node).collect();
        let back: BTreeSet<NodeId> = claims
            .iter()
            .map(|(p, _)| p.node)
            .filter(|n| voters.contains(n))
            .collect();
        // The most advanced state, then the latest view, then the lowest node.
        let best = claims
            .iter()
            .max_by_key(|(p, c)| (c.position, c.last_view.id.epoch, std::cmp::Reverse(p.node)))
            .map(|(p, _)| *p)
            .expect("at least this process's claim");
        RecoveryStanding {
            needed: voters.len() / 2 + 1,
            last_view,
            voters,
            back: back.into_iter().collect(),
            mine_is_best: best == me,
        }
    }

    /// Whether this process re-forms the group now, recovering with `mine` since `since`:
    /// no member answered for the bootstrap timeout, a majority of the last view's voters is
    /// back, and this process holds the most advanced state among them. Returns the epoch of
    /// the latest view known, which the new view follows.
    pub(super) fn may_recover(
        &mut self,
        now: Time,
        since: Time,
        config: &MembershipConfig,
        me: ProcessId,
        mine: &RecoveryClaim,
    ) -> Option<u64> {
        self.claims
            .retain(|_, (_, _, heard)| now.saturating_sub(*heard) < config.bootstrap_timeout);
        if self.group_seen || now.saturating_sub(since) < config.bootstrap_timeout {
            return None;
        }
        let standing = self.recovery(now, config, me, mine);
        (standing.back.len() >= standing.needed && standing.mine_is_best)
            .then_some(standing.last_view.id.epoch)
    }

    /// The addresses of recovering peers heard from, which join requests also go to (after a
    /// total failure they may listen on new addresses that no seed list names).
    pub(super) fn claimant_addresses(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.claims.values().map(|(_, addr, _)| *addr)
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

    /// One `JoinRequest` to `via`, then to each seed (each address once). Recovering with
    /// `claim`, also to the members of the last view and the claimants heard from, each with
    /// the claim.
    pub(super) fn requests(
        &self,
        me: Member,
        via: Option<SocketAddr>,
        last_epoch: u64,
        claim: Option<&RecoveryClaim>,
        out: &mut Vec<MembershipOutput>,
    ) {
        let body = Body::JoinRequest {
            member: me,
            last_epoch,
        };
        let recovery_targets: Vec<SocketAddr> = match claim {
            Some(claim) => claim
                .last_view
                .members
                .iter()
                .map(|m| m.addr)
                .chain(self.claimant_addresses())
                .collect(),
            None => Vec::new(),
        };
        let targets = via
            .into_iter()
            .chain(self.seeds.iter().copied())
            .chain(recovery_targets);
        let mut sent = BTreeSet::new();
        for to in targets {
            if to != me.addr && sent.insert(to) {
                out.push(MembershipOutput::Send {
                    to,
                    body: body.clone(),
                });
                if let Some(claim) = claim {
                    out.push(MembershipOutput::Send {
                        to,
                        body: Body::Recovering {
                            claim: claim.clone(),
                            answer: true,
                        },
                    });
                }
            }
        }
    }
}
