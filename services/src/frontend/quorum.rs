//! Calls under the Byzantine strategy: the request goes to every replica manager of the
//! view at once, and the call's result is the reply that `f + 1` distinct replica managers
//! signed (see [`crate::replication::signed`]). Replies that do not verify (an unlisted
//! signer, a forged or altered signature) and replies that disagree are ignored: up to `f`
//! replica managers may lie, answer late or not at all.
//!
//! A round sends the request to every member that has not yet given a verified reply and
//! waits for their answers (each at most the attempt timeout); the call returns as soon as
//! a quorum agrees, abandoning the exchanges still open. After a round without a quorum, it
//! waits a jittered backoff, asks for the view again and starts another round with the same
//! request id (replica managers answer an update they executed from their stored response),
//! until the deadline. A read is executed again at each round (it is not in the executed
//! table), so its votes are counted per round: every member is asked again. `f + 1` replica managers refusing the request as one no member would
//! take (too large, malformed) end the call: at least one of them is correct.

use super::{FrontEnd, FrontEndError};
use crate::replication::signed::{ReplicaKeys, ReplyQuorum};
use crate::replication::RequestId;
use crate::state_machine::StateMachine;
use bytes::Bytes;
use rand::Rng;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::task::JoinSet;
use viewsync::client::Client;
use viewsync::wire::Retry;
use viewsync::{Member, NodeId};

/// What a front end needs to trust replies when up to `f` replica managers may lie.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedReplies {
    /// How many replica managers may lie (the group runs at least `2f + 1`).
    pub f: usize,
    /// Every replica manager's public key, by node id.
    pub keys: ReplicaKeys,
}

/// The shortest and longest pause between two rounds.
const ROUND_BACKOFF: (Duration, Duration) = (Duration::from_millis(20), Duration::from_millis(500));

impl<S: StateMachine> FrontEnd<S> {
    /// One call under `signed` (see the [module documentation](self)).
    pub(super) async fn call_signed(
        &mut self,
        signed: &SignedReplies,
        id: RequestId,
        payload: Bytes,
        read_only: bool,
    ) -> Result<S::Output, FrontEndError> {
        let group = self.config.group.clone();
        let started = self.now();
        let mut quorum = ReplyQuorum::new(signed.f);
        let mut final_refusals: BTreeSet<NodeId> = BTreeSet::new();
        let mut tried: Vec<SocketAddr> = Vec::new();
        let mut attempts = 0u32;
        let mut last = String::from("no view of the group yet");
        let mut backoff = ROUND_BACKOFF.0;
        loop {
            if self.now().saturating_sub(started) >= self.config.deadline {
                return Err(FrontEndError::Unavailable {
                    group,
                    tried,
                    attempts,
                    last,
                });
            }
            let members = match self.resolve_members(&mut attempts, &mut tried).await {
                Ok(members) => members,
                Err(problem) => {
                    last = problem;
                    Vec::new()
                }
            };
            if read_only {
                // A read is executed again by each member asked again (only updates are
                // answered from the executed table), at a later place in the total order:
                // replies of different rounds need not agree, and a member that voted in an
                // earlier round must be asked again, or the votes may never agree.
                quorum = ReplyQuorum::new(signed.f);
            }
            let voted: BTreeSet<NodeId> = quorum.voters().collect();
            let mut round = JoinSet::new();
            for member in members.iter().filter(|m| !voted.contains(&m.id.node)) {
                attempts += 1;
                if !tried.contains(&member.addr) {
                    tried.push(member.addr);
                }
                let mut client = self.take_client(member.addr);
                let (group, payload) = (group.clone(), payload.clone());
                let (node, from) = (member.id.node, member.addr);
                round.spawn(async move {
                    let outcome = client.call(&group, payload).await;
                    (node, from, client, outcome)
                });
            }
            while let Some(joined) = round.join_next().await {
                let Ok((node, from, client, outcome)) = joined else {
                    continue;
                };
                self.clients.insert(from, client);
                match outcome {
                    Ok(Ok(bytes)) => match signed.keys.verify(&group, &bytes) {
                        Ok(reply) => {
                            if let Some(agreed) = quorum.offer(reply) {
                                // The exchanges still open are abandoned with their clients.
                                round.abort_all();
                                return self.reply(from, id, &agreed);
                            }
                        }
                        Err(rejected) => {
                            self.rejected_replies += 1;
                            tracing::warn!(%from, %node, %rejected, request = %id, "a reply that does not count");
                            last = format!("{from}: {rejected}");
                        }
                    },
                    Ok(Err(refusal)) => {
                        if refusal.retry() == Retry::Never {
                            final_refusals.insert(node);
                            if final_refusals.len() > signed.f {
                                return Err(FrontEndError::Refused(refusal));
                            }
                        }
                        last = format!("{from} refused: {refusal}");
                    }
                    Err(error) => last = format!("{from}: {error}"),
                }
            }
            if quorum.distinct_replies() > 1 {
                tracing::warn!(request = %id, replies = quorum.distinct_replies(), "replica managers signed different replies: some lie");
            }
            let jitter = rand::thread_rng().gen_range(Duration::ZERO..=backoff / 2);
            tokio::time::sleep(backoff + jitter).await;
            backoff = (backoff * 2).min(ROUND_BACKOFF.1);
        }
    }

    /// The members of the group's current view, asked of the seeds and the members known, in
    /// turn, until one answers with a view.
    async fn resolve_members(
        &mut self,
        attempts: &mut u32,
        tried: &mut Vec<SocketAddr>,
    ) -> Result<Vec<Member>, String> {
        let group = self.config.group.clone();
        let timeout = self.config.attempt_timeout;
        let mut last = String::from("no seed");
        let candidates: Vec<SocketAddr> = self
            .members
            .iter()
            .map(|m| m.addr)
            .chain(self.config.seeds.iter().copied())
            .collect();
        for via in candidates {
            *attempts += 1;
            if !tried.contains(&via) {
                tried.push(via);
            }
            match self.client(via, timeout).group_status(&group).await {
                Ok(status) => match status.view {
                    Some(view) => {
                        self.members = view.members.clone();
                        return Ok(view.members);
                    }
                    None => last = format!("{via} is not a member of group {group}"),
                },
                Err(error) => last = format!("{via}: {error}"),
            }
        }
        Err(last)
    }

    /// The client of `addr`, taken out of the front end for an exchange run in parallel with
    /// others (put back when it ends).
    fn take_client(&mut self, addr: SocketAddr) -> Client {
        let timeout = self.config.attempt_timeout;
        let mut client = self
            .clients
            .remove(&addr)
            .unwrap_or_else(|| Client::new(addr, self.config.key.clone(), timeout));
        client.set_timeout(timeout);
        client
    }
}
