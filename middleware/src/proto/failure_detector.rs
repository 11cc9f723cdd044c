//! Failure detector core: heartbeats, a silence timeout, and a direct probe to confirm before
//! suspecting.
//!
//! Every frame heard from a peer counts as a sign of life. A peer silent for
//! `suspect_timeout` is probed; if nothing is heard within `confirm_timeout` more it is
//! suspected. A suspected peer that is heard from again is unsuspected and the suspicion is
//! counted as false: the detector measures its mistakes instead of hoping them away.

use super::Time;
use crate::id::ProcessId;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

/// Failure detector settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FailureDetectorConfig {
    /// How often a heartbeat goes to each monitored peer.
    pub heartbeat_interval: Duration,
    /// Silence after which a peer is probed.
    pub suspect_timeout: Duration,
    /// How long a probed peer has to answer before it is suspected.
    pub confirm_timeout: Duration,
}

impl Default for FailureDetectorConfig {
    /// Defaults that notice a `kill -9` within about 700 ms (silence 400 ms, probe 150 ms, plus
    /// up to a heartbeat interval and a tick), leaving a view change well inside one second.
    fn default() -> Self {
        FailureDetectorConfig {
            heartbeat_interval: Duration::from_millis(100),
            suspect_timeout: Duration::from_millis(400),
            confirm_timeout: Duration::from_millis(150),
        }
    }
}

/// What the detector asks its shell to do or tell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FdOutput {
    /// Send a heartbeat to this peer.
    SendHeartbeat(SocketAddr),
    /// Send a probe to this peer.
    SendProbe(SocketAddr),
    /// This peer is suspected to have crashed.
    Suspect(ProcessId),
    /// This peer, suspected before, was heard from again.
    Unsuspect(ProcessId),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PeerState {
    Trusted,
    Probing { since: Time },
    Suspected,
}

#[derive(Clone, Debug)]
struct Peer {
    addr: SocketAddr,
    last_heard: Time,
    last_heartbeat_sent: Option<Time>,
    state: PeerState,
}

/// The failure detector core.
#[derive(Debug)]
pub struct FailureDetector {
    config: FailureDetectorConfig,
    peers: BTreeMap<ProcessId, Peer>,
    suspicions: u64,
    false_suspicions: u64,
}

impl FailureDetector {
    /// A detector monitoring nobody yet.
    pub fn new(config: FailureDetectorConfig) -> Self {
        FailureDetector {
            config,
            peers: BTreeMap::new(),
            suspicions: 0,
            false_suspicions: 0,
        }
    }

    /// Suspicions raised so far.
    pub fn suspicions(&self) -> u64 {
        self.suspicions
    }

    /// Suspicions later contradicted by the peer being heard from.
    pub fn false_suspicions(&self) -> u64 {
        self.false_suspicions
    }

    /// Whether `peer` is currently suspected.
    pub fn is_suspected(&self, peer: ProcessId) -> bool {
        matches!(
            self.peers.get(&peer).map(|p| p.state),
            Some(PeerState::Suspected)
        )
    }

    /// The peers monitored now.
    pub fn monitored(&self) -> impl Iterator<Item = ProcessId> + '_ {
        self.peers.keys().copied()
    }

    /// Replaces the set of monitored peers. New peers start trusted, as if just heard from;
    /// peers no longer listed are forgotten.
    pub fn set_monitored(
        &mut self,
        now: Time,
        peers: impl IntoIterator<Item = (ProcessId, SocketAddr)>,
    ) {
        let wanted: BTreeMap<ProcessId, SocketAddr> = peers.into_iter().collect();
        self.peers.retain(|id, _| wanted.contains_key(id));
        for (id, addr) in wanted {
            self.peers.entry(id).or_insert(Peer {
                addr,
                last_heard: now,
                last_heartbeat_sent: None,
                state: PeerState::Trusted,
            });
        }
    }

    /// Any frame from `peer` arrived.
    pub fn handle_heard_from(&mut self, now: Time, peer: ProcessId) -> Vec<FdOutput> {
        let Some(state) = self.peers.get_mut(&peer) else {
            return Vec::new();
        };
        // Evidence recorded at the socket may be older than what the core saw already.
        state.last_heard = state.last_heard.max(now);
        let was = std::mem::replace(&mut state.state, PeerState::Trusted);
        if was == PeerState::Suspected {
            self.false_suspicions += 1;
            vec![FdOutput::Unsuspect(peer)]
        } else {
            Vec::new()
        }
    }

    /// An operator asks to suspect `peer` now (`viewsync evict`), without waiting for its
    /// silence: it is suspected as a timeout would have it (and counted), so it stays
    /// suspected while it is silent and, if it is heard from again, is unsuspected like any
    /// falsely suspected peer. Nothing for a peer not monitored or already suspected.
    pub fn handle_suspect_now(&mut self, peer: ProcessId) -> Vec<FdOutput> {
        match self.peers.get_mut(&peer) {
            Some(state) if state.state != PeerState::Suspected => {
                state.state = PeerState::Suspected;
                self.suspicions += 1;
                vec![FdOutput::Suspect(peer)]
            }
            _ => Vec::new(),
        }
    }

    /// A periodic tick: send due heartbeats, probe silent peers, suspect unanswered ones.
    pub fn handle_tick(&mut self, now: Time) -> Vec<FdOutput> {
        let mut out = Vec::new();
        for (&id, peer) in self.peers.iter_mut() {
            let due = peer
                .last_heartbeat_sent
                .is_none_or(|sent| now.saturating_sub(sent) >= self.config.heartbeat_interval);
            if due {
                peer.last_heartbeat_sent = Some(now);
                out.push(FdOutput::SendHeartbeat(peer.addr));
            }
            let silence = now.saturating_sub(peer.last_heard);
            match peer.state {
                PeerState::Trusted if silence >= self.config.suspect_timeout => {
                    peer.state = PeerState::Probing { since: now };
                    out.push(FdOutput::SendProbe(peer.addr));
                }
                PeerState::Probing { since }
                    if now.saturating_sub(since) >= self.config.confirm_timeout =>
                {
                    peer.state = PeerState::Suspected;
                    self.suspicions += 1;
                    out.push(FdOutput::Suspect(id));
                }
                _ => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::{Incarnation, NodeId};

    fn pid(n: u64) -> ProcessId {
        ProcessId {
            node: NodeId(n),
            incarnation: Incarnation(1),
        }
    }

    fn addr(n: u64) -> SocketAddr {
        format!("10.0.0.{n}:7000").parse().unwrap()
    }

    fn ms(n: u64) -> Time {
        Duration::from_millis(n)
    }

    fn detector() -> FailureDetector {
        let mut fd = FailureDetector::new(FailureDetectorConfig::default());
        fd.set_monitored(ms(0), [(pid(2), addr(2))]);
        fd
    }

    #[test]
    fn heartbeats_go_out_once_per_interval() {
        let mut fd = detector();
        assert_eq!(
            fd.handle_tick(ms(0)),
            vec![FdOutput::SendHeartbeat(addr(2))]
        );
        assert_eq!(fd.handle_tick(ms(50)), vec![]);
        fd.handle_heard_from(ms(90), pid(2));
        assert_eq!(
            fd.handle_tick(ms(100)),
            vec![FdOutput::SendHeartbeat(addr(2))]
        );
    }

    #[test]
    fn silence_leads_to_a_probe_then_a_suspicion() {
        let mut fd = detector();
        fd.handle_tick(ms(0));
        assert_eq!(
            fd.handle_tick(ms(400)),
            vec![
                FdOutput::SendHeartbeat(addr(2)),
                FdOutput::SendProbe(addr(2))
            ]
        );
        assert_eq!(
            fd.handle_tick(ms(500)),
            vec![FdOutput::SendHeartbeat(addr(2))]
        );
        assert_eq!(fd.handle_tick(ms(550)), vec![FdOutput::Suspect(pid(2))]);
        assert!(fd.is_suspected(pid(2)));
        assert_eq!(fd.suspicions(), 1);
    }

    #[test]
    fn an_answer_to_the_probe_prevents_the_suspicion() {
        let mut fd = detector();
        fd.handle_tick(ms(0));
        fd.handle_tick(ms(400));
        assert_eq!(fd.handle_heard_from(ms(450), pid(2)), vec![]);
        assert_eq!(
            fd.handle_tick(ms(550)),
            vec![FdOutput::SendHeartbeat(addr(2))]
        );
        assert_eq!(fd.suspicions(), 0);
    }

    #[test]
    fn hearing_from_a_suspect_counts_a_false_suspicion() {
        let mut fd = detector();
        fd.handle_tick(ms(0));
        fd.handle_tick(ms(400));
        fd.handle_tick(ms(550));
        assert_eq!(
            fd.handle_heard_from(ms(600), pid(2)),
            vec![FdOutput::Unsuspect(pid(2))]
        );
        assert_eq!(fd.false_suspicions(), 1);
        assert!(!fd.is_suspected(pid(2)));
    }

    #[test]
    fn unmonitored_peers_are_ignored_and_forgotten() {
        let mut fd = detector();
        assert_eq!(fd.handle_heard_from(ms(1), pid(9)), vec![]);
        fd.set_monitored(ms(10), []);
        assert_eq!(fd.handle_tick(ms(1000)), vec![]);
    }
}
