//! The joiner: a process asking its seeds to be let into the group, and deciding whether it
//! may found the group itself (explicit bootstrap only, see docs/ARCHITECTURE.md), or
//! re-form it after a total failure.
//!
//! **Total-failure recovery.** A former member never founds its group again by `bootstrap`
//! (that could start a second group beside the real one, or continue from nothing). But when
//! every member crashed at once (a power loss), no member is left to join. A restarted former
//! member whose service keeps durable state then carries a [`RecoveryClaim`]: the last view
//! it installed, the latest view it accepted in a view change (recorded before its
//! `Accepted` left), and how far its durable state goes. Joiners exchange claims
//! ([`Body::Recovering`]). Once, for `bootstrap_timeout`, no member has answered and the
//! claimants include a majority of the voters of every view that may have been the group's
//! last (the latest view any of them installed, and each later view one of them accepted
//! unless the claims show it was not decided: [`Joiner::recovery`]), the claimant with the
//! most advanced state (then the latest view, then the lowest node id) re-forms the group
//! from its own state, after every epoch known; the others join it and receive its state. A
//! majority is required because every acknowledged update of a replicated service is durable
//! at a majority of the voters of the view it was acknowledged in, so the most advanced state
//! among a majority holds all of them; and because a live group can only have moved past
//! that view with a majority of its voters, which are here, restarted. The accepted views
//! matter when the members that installed the last view are not back: a view is decided by
//! the acceptances of a majority of its base's voters, which may all crash before installing
//! it, so the latest view installed by a claimant is not always the last one; but a majority
//! of the base's voters is back, and one of them recorded accepting it.
//!
//! **Backing.** Hearing a claim does not make its maker a party to a re-formation: under
//! one-way cuts two claimants could each hear the same majority (who never heard them, or
//! have joined the first one's group since) and re-form twice. So a claimant that finds its
//! own claim the best *bids* (a numbered round), every claimant backs at most one bid at a
//! time (the best claimant it knows of, while it bids, or its own), and a bidder re-forms
//! only with the backing of a majority of the last view's voters, itself included. A claimant
//! keeps backing a bid until that bid ends: its bidder says so (it heard a better claim) or a
//! later incarnation of the bidder's node shows the bidder died. A bidder that re-forms never
//! ends its bid, so its backers never back another: two re-formations would need a voter
//! backing both ([`RecoveryVote`]). A claimant that saw a member (the group exists) neither
//! bids nor backs. The backing is kept in memory: a claimant restarted again during the
//! recovery forgets whom it backed (as a crashed acceptor forgets its votes).

use super::config::MembershipConfig;
use super::output::MembershipOutput;
use crate::id::NodeId;
use crate::id::ProcessId;
use crate::proto::Time;
use crate::view::Member;
use crate::wire::{AcceptedView, Body, RecoveryClaim, RecoveryVote};
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
    /// Claims heard from other recovering former members: their claim, address, when, and
    /// their vote.
    claims: BTreeMap<ProcessId, (RecoveryClaim, SocketAddr, Time, RecoveryVote)>,
    /// This process's own vote, while it recovers: its bid and the bid it backs.
    vote: RecoveryVote,
    /// Where the bidder it backs listens: its claims keep going there (the bidder must be
    /// able to tell it the bid ended), even once the bidder's claim is no longer fresh.
    backed_addr: Option<SocketAddr>,
}

/// Where total-failure recovery stands, for a joiner with a claim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct RecoveryStanding {
    /// The latest view any claimant installed.
    pub(super) last_view: crate::view::View,
    /// The views whose voters must be back by a majority before the group re-forms: the last
    /// view installed, then each later view a claimant accepted that may have been decided.
    pub(super) required: Vec<Requirement>,
    /// The latest epoch of any view a claimant installed or accepted, which the re-formed
    /// view follows.
    pub(super) latest_epoch: u64,
    /// Whether this process is the claimant that re-forms the group.
    pub(super) mine_is_best: bool,
    /// The claimant with the most advanced state.
    pub(super) best: ProcessId,
}

/// A view that may have been the group's last before the total failure, and how many of its
/// voters are back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Requirement {
    /// The view.
    pub(super) view: crate::id::ViewId,
    /// Its voters (by node: restarted processes have new incarnations).
    pub(super) voters: Vec<NodeId>,
    /// Those of them heard from recently, this process included.
    pub(super) back: Vec<NodeId>,
    /// How many must be back.
    pub(super) needed: usize,
}

impl Requirement {
    fn met(&self) -> bool {
        self.back.len() >= self.needed
    }
}

impl RecoveryStanding {
    /// The first view whose majority is not back yet (the last view once all are), for the
    /// blocked report.
    pub(super) fn waiting_for(&self) -> &Requirement {
        self.required
            .iter()
            .find(|r| !r.met())
            .unwrap_or(&self.required[0])
    }
}

impl Joiner {
    /// A joiner of process `me` asking `seeds`.
    pub(super) fn new(me: Member, seeds: Vec<SocketAddr>) -> Self {
        Joiner {
            seeds: seeds.into_iter().filter(|s| *s != me.addr).collect(),
            joining_peers: BTreeMap::new(),
            group_seen: false,
            claims: BTreeMap::new(),
            vote: RecoveryVote::default(),
            backed_addr: None,
        }
    }

    /// A recovering former member `peer` made `claim` with `vote` at `now`. A later
    /// incarnation of the node whose bid this process backs, or that bidder ending the bid,
    /// ends the backing.
    pub(super) fn heard_claim(
        &mut self,
        peer: Member,
        claim: RecoveryClaim,
        vote: RecoveryVote,
        now: Time,
    ) {
        let node = peer.id.node;
        if self
            .claims
            .keys()
            .any(|p| p.node == node && p.incarnation > peer.id.incarnation)
        {
            // A message of a process its node has restarted since.
            return;
        }
        self.claims
            .retain(|p, _| p.node != node || p.incarnation == peer.id.incarnation);
        if let Some((bidder, round)) = self.vote.backs {
            let died = bidder.node == node && bidder.incarnation < peer.id.incarnation;
            let ended =
                bidder == peer.id && (vote.round > round || (vote.round == round && !vote.bidding));
            if died || ended {
                self.vote.backs = None;
            }
        }
        self.claims.insert(peer.id, (claim, peer.addr, now, vote));
    }

    /// This process's vote, for its claims.
    pub(super) fn vote(&self) -> RecoveryVote {
        self.vote
    }

    /// Updates this process's vote, recovering with `mine`: its bid ends when it hears a
    /// better claim or a member; unless it backs a bid, it bids when its claim is the best it
    /// knows of, or else backs the best claimant if that one bids.
    pub(super) fn update_vote(
        &mut self,
        now: Time,
        config: &MembershipConfig,
        me: ProcessId,
        mine: &RecoveryClaim,
    ) {
        let best = self.recovery(now, config, me, mine).best;
        if self.vote.bidding && (best != me || self.group_seen) {
            self.vote.bidding = false;
            self.vote.backs = None;
        }
        if self.vote.backs.is_some() || self.group_seen {
            return;
        }
        if best == me {
            self.vote.round += 1;
            self.vote.bidding = true;
            self.vote.backs = Some((me, self.vote.round));
        } else if let Some((_, addr, _, vote)) = self.claims.get(&best) {
            if vote.bidding {
                self.vote.backs = Some((best, vote.round));
                self.backed_addr = Some(*addr);
            }
        }
    }

    /// Where recovery stands for this process, recovering with `mine`: claims older than the
    /// bootstrap timeout are forgotten (their makers may have joined or stopped).
    ///
    /// The views that may have been the group's last: the latest view any claimant installed
    /// (`L`), and each later view a claimant accepted as the successor of `L` unless the
    /// claims show it was not decided. A view is decided once a majority of its base's voters
    /// accepted it, and an acceptor's record names the latest view it accepted (a later
    /// ballot of a decided instance carries the same view). So a view accepted after `L` may
    /// have been decided unless fewer than a majority of `L`'s voters are either unheard
    /// from or claimants whose record names it. A view accepted after another base is
    /// counted as possibly decided.
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
            .filter(|(_, (_, _, heard, _))| now.saturating_sub(*heard) < config.bootstrap_timeout)
            .map(|(p, (c, _, _, _))| (*p, c));
        let claims: Vec<(ProcessId, &RecoveryClaim)> =
            std::iter::once((me, mine)).chain(fresh).collect();
        let last_view = claims
            .iter()
            .map(|(_, c)| &c.last_view)
            .max_by_key(|v| v.id.epoch)
            .expect("at least this process's claim")
            .clone();
        let claimants: BTreeSet<NodeId> = claims.iter().map(|(p, _)| p.node).collect();
        let requirement = |view: &crate::view::View| {
            let voters: Vec<NodeId> = view.voters().iter().map(|m| m.id.node).collect();
            let back = voters
                .iter()
                .copied()
                .filter(|n| claimants.contains(n))
                .collect();
            Requirement {
                view: view.id,
                needed: voters.len() / 2 + 1,
                voters,
                back,
            }
        };
        let mut required = vec![requirement(&last_view)];
        let mut later: Vec<&AcceptedView> = claims
            .iter()
            .filter_map(|(_, c)| c.accepted.as_ref())
            .filter(|a| a.view.id.epoch > last_view.id.epoch)
            .collect();
        later.sort_by_key(|a| (a.view.id, a.base));
        later.dedup();
        let latest_epoch = later
            .iter()
            .map(|a| a.view.id.epoch)
            .fold(last_view.id.epoch, u64::max);
        for accepted in later {
            let may_be_decided = accepted.base != last_view.id || {
                let acceptors_or_unheard = last_view
                    .voters()
                    .iter()
                    .map(|m| m.id.node)
                    .filter(|node| {
                        !claimants.contains(node)
                            || claims.iter().any(|(p, c)| {
                                p.node == *node && c.accepted.as_ref() == Some(accepted)
                            })
                    })
                    .count();
                acceptors_or_unheard >= last_view.majority()
            };
            if may_be_decided {
                required.push(requirement(&accepted.view));
            }
        }
        // The most advanced state, then the latest view, then the lowest node.
        let best = claims
            .iter()
            .max_by_key(|(p, c)| (c.position, c.last_view.id.epoch, std::cmp::Reverse(p.node)))
            .map(|(p, _)| *p)
            .expect("at least this process's claim");
        RecoveryStanding {
            last_view,
            required,
            latest_epoch,
            mine_is_best: best == me,
            best,
        }
    }

    /// Whether this process re-forms the group now, recovering with `mine` since `since`:
    /// no member answered for the bootstrap timeout, this process bids (it holds the most
    /// advanced state among the claimants it heard), and a majority of the voters of every
    /// view that may have been the last ([`Joiner::recovery`]) are back and back its bid,
    /// itself included. Returns the epoch of the latest view known, which the new view
    /// follows.
    pub(super) fn may_recover(
        &mut self,
        now: Time,
        since: Time,
        config: &MembershipConfig,
        me: ProcessId,
        mine: &RecoveryClaim,
    ) -> Option<u64> {
        self.claims
            .retain(|_, (_, _, heard, _)| now.saturating_sub(*heard) < config.bootstrap_timeout);
        self.update_vote(now, config, me, mine);
        if self.group_seen
            || now.saturating_sub(since) < config.bootstrap_timeout
            || !self.vote.bidding
        {
            return None;
        }
        let standing = self.recovery(now, config, me, mine);
        let bid = Some((me, self.vote.round));
        let backers: BTreeSet<NodeId> = std::iter::once(me.node)
            .chain(
                self.claims
                    .iter()
                    .filter(|(_, (_, _, _, vote))| vote.backs == bid)
                    .map(|(p, _)| p.node),
            )
            .collect();
        let backed =
            |r: &Requirement| r.voters.iter().filter(|n| backers.contains(n)).count() >= r.needed;
        standing
            .required
            .iter()
            .all(|r| r.met() && backed(r))
            .then_some(standing.latest_epoch)
    }

    /// The addresses of recovering peers heard from, which join requests also go to (after a
    /// total failure they may listen on new addresses that no seed list names).
    pub(super) fn claimant_addresses(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.claims.values().map(|(_, addr, _, _)| *addr)
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
                .chain(self.vote.backs.and(self.backed_addr))
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
                            vote: self.vote,
                        },
                    });
                }
            }
        }
    }
}
