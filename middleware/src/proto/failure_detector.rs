//! Failure detector core: heartbeats, a silence timeout, and a direct probe to confirm before
//! suspecting.
//!
//! Every frame heard from a watched peer counts as a sign of life. A peer silent for
//! `suspect_timeout` is probed; if nothing is heard within `confirm_timeout` more it is
//! suspected. A suspected peer that is heard from again is unsuspected and the suspicion is
//! counted as false: the detector measures its mistakes instead of hoping them away.
//!
//! Who watches whom is the caller's choice ([`FailureDetector::set_peers`]): in a view of at
//! most `monitors + 1` members everyone watches everyone; in a larger one each member watches
//! the `monitors` members before it on the ring of the view and heartbeats the `monitors`
//! after it, which watch it ([`ring_peers`]), so heartbeats grow linearly with the group.

use super::Time;
use crate::id::ProcessId;
use std::collections::{BTreeMap, BTreeSet};
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
    /// How many members watch each member of a view (at least 1). Views of at most
    /// `monitors + 1` members are watched all-to-all.
    pub monitors: usize,
}

/// Default [`FailureDetectorConfig::monitors`]: views of up to 7 members, the sizes most
/// groups have, keep all-to-all watching; larger views are a ring where six members must
/// crash together with a seventh before its crash waits for a view change to be noticed.
pub const MONITORS_DEFAULT: usize = 6;

impl Default for FailureDetectorConfig {
    /// Defaults that notice a `kill -9` within about 700 ms (silence 400 ms, probe 150 ms, plus
    /// up to a heartbeat interval and a tick), leaving a view change well inside one second.
    fn default() -> Self {
        FailureDetectorConfig {
            heartbeat_interval: Duration::from_millis(100),
            suspect_timeout: Duration::from_millis(400),
            confirm_timeout: Duration::from_millis(150),
            monitors: MONITORS_DEFAULT,
        }
    }
}

/// The peers of the member at index `at` of a view's `members` (in the view's order) on the
/// ring with `monitors` watchers per member: `(watched, watchers)`, the members it watches
/// (the `monitors` before it, wrapping around) and those that watch it (the `monitors` after
/// it), nearest first. With at most `monitors + 1` members both are every other member.
/// Watchers come after: the coordinator (first) is watched by the members next in line to
/// take over from it.
pub fn ring_peers<T: Copy>(members: &[T], at: usize, monitors: usize) -> (Vec<T>, Vec<T>) {
    let n = members.len();
    if at >= n {
        return (Vec::new(), Vec::new());
    }
    let reach = monitors.max(1).min(n - 1);
    let watched = (1..=reach).map(|d| members[(at + n - d) % n]).collect();
    let watchers = (1..=reach).map(|d| members[(at + d) % n]).collect();
    (watched, watchers)
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
    Probing {
        since: Time,
    },
    /// Suspected; `probed` is when the last probe went out. A suspected peer is probed again
    /// every `suspect_timeout`: on a ring it may not heartbeat this process at all (it is
    /// watched only because it is suspected), so without probes a healed peer would stay
    /// suspected for ever.
    Suspected {
        probed: Time,
    },
}

/// A peer this process watches.
#[derive(Clone, Debug)]
struct Watched {
    addr: SocketAddr,
    last_heard: Time,
    state: PeerState,
}

/// A peer this process heartbeats (one that watches it).
#[derive(Clone, Debug)]
struct Watcher {
    addr: SocketAddr,
    last_heartbeat_sent: Option<Time>,
}

/// The failure detector core.
#[derive(Debug)]
pub struct FailureDetector {
    config: FailureDetectorConfig,
    watched: BTreeMap<ProcessId, Watched>,
    watchers: BTreeMap<ProcessId, Watcher>,
    suspicions: u64,
    false_suspicions: u64,
}

impl FailureDetector {
    /// A detector monitoring nobody yet.
    pub fn new(config: FailureDetectorConfig) -> Self {
        FailureDetector {
            config,
            watched: BTreeMap::new(),
            watchers: BTreeMap::new(),
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

    /// The settings.
    pub fn config(&self) -> &FailureDetectorConfig {
        &self.config
    }

    /// Whether `peer` is currently suspected.
    pub fn is_suspected(&self, peer: ProcessId) -> bool {
        matches!(
            self.watched.get(&peer).map(|p| p.state),
            Some(PeerState::Suspected { .. })
        )
    }

    /// The peers watched now.
    pub fn monitored(&self) -> impl Iterator<Item = ProcessId> + '_ {
        self.watched.keys().copied()
    }

    /// The peers heartbeated now (those that watch this process).
    pub fn watchers(&self) -> impl Iterator<Item = ProcessId> + '_ {
        self.watchers.keys().copied()
    }

    /// The addresses heartbeated now.
    pub fn watchers_addrs(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.watchers.values().map(|w| w.addr)
    }

    /// Watches and heartbeats the same `peers` (all-to-all): [`FailureDetector::set_peers`]
    /// with both sets equal.
    pub fn set_monitored(
        &mut self,
        now: Time,
        peers: impl IntoIterator<Item = (ProcessId, SocketAddr)>,
    ) {
        let peers: BTreeMap<ProcessId, SocketAddr> = peers.into_iter().collect();
        self.set_peers(now, peers.clone(), peers);
    }

    /// Replaces the peers watched and those heartbeated. A newly watched peer starts trusted,
    /// as if just heard from, and a new watcher gets a heartbeat at the next tick; peers no
    /// longer listed are forgotten.
    pub fn set_peers(
        &mut self,
        now: Time,
        watched: impl IntoIterator<Item = (ProcessId, SocketAddr)>,
        watchers: impl IntoIterator<Item = (ProcessId, SocketAddr)>,
    ) {
        let watched: BTreeMap<ProcessId, SocketAddr> = watched.into_iter().collect();
        self.watched.retain(|id, _| watched.contains_key(id));
        for (id, addr) in watched {
            self.watched.entry(id).or_insert(Watched {
                addr,
                last_heard: now,
                state: PeerState::Trusted,
            });
        }
        let watchers: BTreeMap<ProcessId, SocketAddr> = watchers.into_iter().collect();
        self.watchers.retain(|id, _| watchers.contains_key(id));
        for (id, addr) in watchers {
            self.watchers.entry(id).or_insert(Watcher {
                addr,
                last_heartbeat_sent: None,
            });
        }
    }

    /// Any frame from `peer` arrived.
    pub fn handle_heard_from(&mut self, now: Time, peer: ProcessId) -> Vec<FdOutput> {
        let Some(state) = self.watched.get_mut(&peer) else {
            return Vec::new();
        };
        // Evidence recorded at the socket may be older than what the core saw already.
        state.last_heard = state.last_heard.max(now);
        let was = std::mem::replace(&mut state.state, PeerState::Trusted);
        if matches!(was, PeerState::Suspected { .. }) {
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
    pub fn handle_suspect_now(&mut self, now: Time, peer: ProcessId) -> Vec<FdOutput> {
        match self.watched.get_mut(&peer) {
            Some(state) if !matches!(state.state, PeerState::Suspected { .. }) => {
                state.state = PeerState::Suspected { probed: now };
                self.suspicions += 1;
                vec![FdOutput::Suspect(peer)]
            }
            _ => Vec::new(),
        }
    }

    /// A periodic tick: send due heartbeats, probe silent peers, suspect unanswered ones
    /// (peer by peer, in id order).
    pub fn handle_tick(&mut self, now: Time) -> Vec<FdOutput> {
        let mut out = Vec::new();
        let ids: BTreeSet<ProcessId> = self
            .watchers
            .keys()
            .chain(self.watched.keys())
            .copied()
            .collect();
        for id in ids {
            if let Some(watcher) = self.watchers.get_mut(&id) {
                let due = watcher
                    .last_heartbeat_sent
                    .is_none_or(|sent| now.saturating_sub(sent) >= self.config.heartbeat_interval);
                if due {
                    watcher.last_heartbeat_sent = Some(now);
                    out.push(FdOutput::SendHeartbeat(watcher.addr));
                }
            }
            let Some(peer) = self.watched.get_mut(&id) else {
                continue;
            };
            let silence = now.saturating_sub(peer.last_heard);
            match peer.state {
                PeerState::Trusted if silence >= self.config.suspect_timeout => {
                    peer.state = PeerState::Probing { since: now };
                    out.push(FdOutput::SendProbe(peer.addr));
                }
                PeerState::Probing { since }
                    if now.saturating_sub(since) >= self.config.confirm_timeout =>
                {
                    peer.state = PeerState::Suspected { probed: now };
                    self.suspicions += 1;
                    out.push(FdOutput::Suspect(id));
                }
                PeerState::Suspected { probed }
                    if now.saturating_sub(probed) >= self.config.suspect_timeout =>
                {
                    peer.state = PeerState::Suspected { probed: now };
                    out.push(FdOutput::SendProbe(peer.addr));
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

    /// On a ring a suspect may be watched only because it is suspected and never heartbeat
    /// this process: it is probed again every `suspect_timeout`, so a healed peer's answer
    /// withdraws the suspicion (sim ring seed 708 stayed blocked for ever without this).
    #[test]
    fn a_suspect_that_sends_no_heartbeats_is_probed_until_it_answers() {
        let mut fd = FailureDetector::new(FailureDetectorConfig::default());
        fd.set_peers(ms(0), [(pid(2), addr(2))], []);
        assert_eq!(fd.handle_tick(ms(400)), vec![FdOutput::SendProbe(addr(2))]);
        assert_eq!(fd.handle_tick(ms(550)), vec![FdOutput::Suspect(pid(2))]);
        assert_eq!(fd.handle_tick(ms(900)), vec![]);
        assert_eq!(fd.handle_tick(ms(950)), vec![FdOutput::SendProbe(addr(2))]);
        assert_eq!(fd.handle_tick(ms(1000)), vec![]);
        assert_eq!(fd.handle_tick(ms(1350)), vec![FdOutput::SendProbe(addr(2))]);
        assert_eq!(
            fd.handle_heard_from(ms(1360), pid(2)),
            vec![FdOutput::Unsuspect(pid(2))]
        );
        assert!(!fd.is_suspected(pid(2)));
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
    fn the_ring_is_everyone_up_to_monitors_plus_one_members() {
        let members = [1, 2, 3, 4];
        assert_eq!(ring_peers(&members, 0, 3), (vec![4, 3, 2], vec![2, 3, 4]));
        assert_eq!(ring_peers(&members, 2, 6), (vec![2, 1, 4], vec![4, 1, 2]));
        assert_eq!(ring_peers(&[7], 0, 3), (vec![], vec![]));
        assert_eq!(ring_peers(&members, 4, 3), (vec![], vec![]), "not listed");
    }

    #[test]
    fn in_a_larger_view_each_member_watches_the_monitors_before_it() {
        let members: Vec<u64> = (1..=9).collect();
        // The coordinator (first) is watched by the next in line; watching wraps around.
        assert_eq!(ring_peers(&members, 0, 2), (vec![9, 8], vec![2, 3]));
        assert_eq!(ring_peers(&members, 8, 2), (vec![8, 7], vec![1, 2]));
        // Every member is watched by exactly `monitors` others, and watches as many.
        for k in 1..=8 {
            let mut watched_by = vec![0; members.len()];
            for at in 0..members.len() {
                let (watched, watchers) = ring_peers(&members, at, k);
                assert_eq!((watched.len(), watchers.len()), (k, k));
                for w in watched {
                    watched_by[w as usize - 1] += 1;
                }
                // Those it heartbeats are exactly those that watch it.
                for w in watchers {
                    let (theirs, _) = ring_peers(&members, w as usize - 1, k);
                    assert!(theirs.contains(&members[at]), "k={k} at={at}");
                }
            }
            assert!(watched_by.iter().all(|n| *n == k), "k={k}: {watched_by:?}");
        }
    }

    /// Nine detectors on a ring with two monitors each, exchanging heartbeats; member 5 is
    /// killed: exactly its two watchers (6 and 7) suspect it, nobody else does, and nobody
    /// ever sent more than two heartbeats per interval.
    #[test]
    fn a_kill_in_a_ring_is_suspected_by_its_watchers_alone() {
        let members: Vec<u64> = (1..=9).collect();
        let mut detectors: Vec<FailureDetector> = (0..members.len())
            .map(|at| {
                let (watched, watchers) = ring_peers(&members, at, 2);
                let mut fd = FailureDetector::new(FailureDetectorConfig::default());
                let peers = |v: Vec<u64>| v.into_iter().map(|n| (pid(n), addr(n)));
                fd.set_peers(ms(0), peers(watched), peers(watchers));
                fd
            })
            .collect();
        let killed_at = 1000;
        let mut suspected_by = Vec::new();
        for t in (0..3000).step_by(10) {
            let mut sent = Vec::new();
            for (i, fd) in detectors.iter_mut().enumerate() {
                let node = i as u64 + 1;
                if node == 5 && t >= killed_at {
                    continue;
                }
                let out = fd.handle_tick(ms(t));
                let heartbeats = out
                    .iter()
                    .filter(|o| matches!(o, FdOutput::SendHeartbeat(_)))
                    .count();
                assert!(heartbeats <= 2, "{node} sent {heartbeats} at {t}");
                for o in out {
                    match o {
                        FdOutput::SendHeartbeat(to) | FdOutput::SendProbe(to) => {
                            sent.push((node, to))
                        }
                        FdOutput::Suspect(p) => suspected_by.push((node, p, t)),
                        FdOutput::Unsuspect(p) => panic!("{node} unsuspected {p:?}"),
                    }
                }
            }
            for (from, to) in sent {
                let to = members.iter().position(|n| addr(*n) == to).unwrap();
                if to == 4 && t >= killed_at {
                    continue;
                }
                detectors[to].handle_heard_from(ms(t), pid(from));
            }
        }
        let who: Vec<(u64, ProcessId)> = suspected_by.iter().map(|(n, p, _)| (*n, *p)).collect();
        assert_eq!(who, vec![(6, pid(5)), (7, pid(5))]);
        for (_, _, t) in suspected_by {
            assert!(
                t - killed_at <= 700,
                "suspected {t} ms, killed at {killed_at}"
            );
        }
        assert_eq!(detectors[0].suspicions() + detectors[2].suspicions(), 0);
    }

    #[test]
    fn a_new_ring_moves_heartbeats_and_watching_to_the_new_neighbours() {
        let mut fd = FailureDetector::new(FailureDetectorConfig::default());
        fd.set_peers(ms(0), [(pid(2), addr(2))], [(pid(3), addr(3))]);
        assert_eq!(
            fd.handle_tick(ms(0)),
            vec![FdOutput::SendHeartbeat(addr(3))]
        );
        assert_eq!(fd.monitored().collect::<Vec<_>>(), vec![pid(2)]);
        // A view change: 2 left the ring, 4 is watched now and 5 watches this process.
        fd.set_peers(ms(300), [(pid(4), addr(4))], [(pid(5), addr(5))]);
        assert_eq!(
            fd.handle_tick(ms(310)),
            vec![FdOutput::SendHeartbeat(addr(5))]
        );
        // Node 2, silent since 0 ms, is forgotten: never probed nor suspected. Node 4 is
        // trusted as if heard at the change, and probed only after its own silence.
        assert_eq!(
            fd.handle_tick(ms(650)),
            vec![FdOutput::SendHeartbeat(addr(5))]
        );
        assert_eq!(fd.handle_tick(ms(700)), vec![FdOutput::SendProbe(addr(4))]);
        assert_eq!(fd.handle_heard_from(ms(710), pid(2)), vec![]);
        assert_eq!(fd.suspicions(), 0);
    }

    #[test]
    fn unmonitored_peers_are_ignored_and_forgotten() {
        let mut fd = detector();
        assert_eq!(fd.handle_heard_from(ms(1), pid(9)), vec![]);
        fd.set_monitored(ms(10), []);
        assert_eq!(fd.handle_tick(ms(1000)), vec![]);
    }
}
