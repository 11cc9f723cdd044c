//! An in-process network for deterministic simulation. It carries the same sealed frames as
//! TCP (so every message goes through the codec) and injects faults from a seeded generator:
//! loss, random delay (which reorders frames, within and across links), duplication, frames
//! held back seconds late, partitions into any number of parts, one-way links, stalled links
//! that deliver what they held once they heal (as a TCP connection does after a stall),
//! paused endpoints (a stopped process: frames wait and arrive in a burst when it resumes)
//! and crashes. Time is the simulator's: frames become due at a virtual instant.

use super::{SendError, Transport};
use crate::id::ConnectionId;
use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

/// The network's virtual time: the driver's clock (the simulator's, or a runtime's elapsed
/// time), the same type the cores take. Named here so the transport needs nothing of `proto`.
type Time = Duration;

/// The fault model of every frame: one documented struct, every knob seeded. Partitions,
/// one-way links, stalls and pauses are set by the driver ([`MemoryNetwork::partition`],
/// [`MemoryNetwork::cut_link`], [`MemoryNetwork::pause`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Faults {
    /// Probability that a frame is lost.
    pub drop_probability: f64,
    /// Probability that a delivered frame is delivered twice.
    pub duplicate_probability: f64,
    /// Shortest delivery delay.
    pub delay_min: Duration,
    /// Longest delivery delay; frames with different delays overtake each other.
    pub delay_max: Duration,
    /// Probability that a frame is held back up to `late_delay_max` more (a connection that
    /// stalled): it arrives long after frames sent later.
    pub late_probability: f64,
    /// The longest extra delay of a late frame.
    pub late_delay_max: Duration,
}

impl Faults {
    /// A reliable, fast network.
    pub fn none() -> Self {
        Faults {
            drop_probability: 0.0,
            duplicate_probability: 0.0,
            delay_min: Duration::from_micros(100),
            delay_max: Duration::from_micros(100),
            late_probability: 0.0,
            late_delay_max: Duration::ZERO,
        }
    }
}

/// A frame in flight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Datagram {
    /// Sender's address.
    pub from: SocketAddr,
    /// Receiver's address.
    pub to: SocketAddr,
    /// The sealed frame, length prefix included.
    pub frame: Bytes,
}

/// Counters of what the network did to frames.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetworkStats {
    /// Frames handed to the network.
    pub sent: u64,
    /// Frames delivered (duplicates included).
    pub delivered: u64,
    /// Frames lost at random.
    pub dropped: u64,
    /// Frames lost to a partition, a cut link or a crashed endpoint.
    pub cut: u64,
    /// Extra copies delivered.
    pub duplicated: u64,
    /// Frames held back by a late delay, or held by a stalled link and released when it
    /// healed.
    pub late: u64,
    /// Frames that waited for a paused endpoint and arrived in the burst when it resumed.
    pub held_for_pause: u64,
}

/// What happens to a frame on a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Link {
    Open,
    /// Frames are lost.
    Cut,
    /// Frames are held until the link opens again (or lost if an endpoint crashes).
    Stalled,
}

/// The simulated network.
#[derive(Debug)]
pub struct MemoryNetwork {
    rng: StdRng,
    faults: Faults,
    now: Time,
    next_id: u64,
    in_flight: BinaryHeap<Reverse<(Time, u64)>>,
    frames: BTreeMap<u64, Datagram>,
    /// Partition parts by address; addresses in different parts cannot talk. Empty: no
    /// partition.
    side_of: BTreeMap<SocketAddr, usize>,
    /// Whether the partition holds frames (released when it heals) instead of losing them.
    partition_stalls: bool,
    /// Links cut in one direction, with whether they stall.
    one_way: BTreeMap<(SocketAddr, SocketAddr), bool>,
    /// Frames held by stalled links, in the order they were sent.
    stalled: Vec<u64>,
    /// Paused endpoints and the frames waiting for them, in arrival order.
    paused: BTreeMap<SocketAddr, Vec<u64>>,
    crashed: BTreeSet<SocketAddr>,
    stats: NetworkStats,
}

impl MemoryNetwork {
    /// A network whose faults are drawn from `seed`.
    pub fn new(seed: u64, faults: Faults) -> Self {
        MemoryNetwork {
            rng: StdRng::seed_from_u64(seed),
            faults,
            now: Time::ZERO,
            next_id: 0,
            in_flight: BinaryHeap::new(),
            frames: BTreeMap::new(),
            side_of: BTreeMap::new(),
            partition_stalls: false,
            one_way: BTreeMap::new(),
            stalled: Vec::new(),
            paused: BTreeMap::new(),
            crashed: BTreeSet::new(),
            stats: NetworkStats::default(),
        }
    }

    /// Advances the network's clock (frames sent from now on are due later than this).
    pub fn set_now(&mut self, now: Time) {
        self.now = now;
    }

    /// Changes the fault model.
    pub fn set_faults(&mut self, faults: Faults) {
        self.faults = faults;
    }

    /// The current fault model.
    pub fn faults(&self) -> Faults {
        self.faults
    }

    /// What happened to frames so far.
    pub fn stats(&self) -> NetworkStats {
        self.stats
    }

    /// Splits the network into `sides` (any number of parts): each address can reach only
    /// addresses in its own part. Frames between parts are lost.
    pub fn partition(&mut self, sides: &[Vec<SocketAddr>]) {
        self.partition_stalling(sides, false);
    }

    /// Like [`MemoryNetwork::partition`], but with `stall` frames between parts are held and
    /// delivered, late, once the partition heals (a TCP connection that outlived the stall).
    pub fn partition_stalling(&mut self, sides: &[Vec<SocketAddr>], stall: bool) {
        self.side_of = sides
            .iter()
            .enumerate()
            .flat_map(|(i, side)| side.iter().map(move |a| (*a, i)))
            .collect();
        self.partition_stalls = stall;
    }

    /// Removes any partition; frames a stalled partition held are released.
    pub fn heal(&mut self) {
        self.side_of.clear();
        self.partition_stalls = false;
        self.release_stalled();
    }

    /// Removes the partition and every cut link.
    pub fn heal_all(&mut self) {
        self.one_way.clear();
        self.heal();
    }

    /// Whether a partition is in place.
    pub fn is_partitioned(&self) -> bool {
        !self.side_of.is_empty()
    }

    /// Whether a partition or a cut link is in place.
    pub fn has_cuts(&self) -> bool {
        self.is_partitioned() || !self.one_way.is_empty()
    }

    /// Cuts the link from `from` to `to` (one way: frames from `to` to `from` still pass).
    /// With `stall` the frames are held and delivered once the link heals.
    pub fn cut_link(&mut self, from: SocketAddr, to: SocketAddr, stall: bool) {
        self.one_way.insert((from, to), stall);
    }

    /// Restores the link from `from` to `to`; frames it held are released.
    pub fn heal_link(&mut self, from: SocketAddr, to: SocketAddr) {
        if self.one_way.remove(&(from, to)).is_some() {
            self.release_stalled();
        }
    }

    /// The endpoint at `addr` crashed: frames to and from it are lost, also those waiting
    /// for it while it was paused.
    pub fn crash(&mut self, addr: SocketAddr) {
        self.crashed.insert(addr);
        if let Some(held) = self.paused.remove(&addr) {
            self.stats.cut += held.len() as u64;
            for id in held {
                self.frames.remove(&id);
            }
        }
    }

    /// The endpoint at `addr` is back.
    pub fn restart(&mut self, addr: SocketAddr) {
        self.crashed.remove(&addr);
    }

    /// The process at `addr` stopped (`SIGSTOP`): frames for it wait, as in its socket
    /// buffers, until [`MemoryNetwork::resume`].
    pub fn pause(&mut self, addr: SocketAddr) {
        self.paused.entry(addr).or_default();
    }

    /// The process at `addr` runs again: the frames that waited for it are due at once, in the
    /// order they arrived, `after` from now.
    pub fn resume(&mut self, addr: SocketAddr, after: Duration) {
        let Some(held) = self.paused.remove(&addr) else {
            return;
        };
        self.stats.held_for_pause += held.len() as u64;
        for (k, id) in held.into_iter().enumerate() {
            let due = self.now + after + Duration::from_nanos(k as u64);
            self.in_flight.push(Reverse((due, id)));
        }
    }

    /// Whether the process at `addr` is paused.
    pub fn is_paused(&self, addr: SocketAddr) -> bool {
        self.paused.contains_key(&addr)
    }

    fn link(&self, a: SocketAddr, b: SocketAddr) -> Link {
        if self.crashed.contains(&a) || self.crashed.contains(&b) {
            return Link::Cut;
        }
        if let Some(&stall) = self.one_way.get(&(a, b)) {
            return if stall { Link::Stalled } else { Link::Cut };
        }
        if self.side_of.get(&a) != self.side_of.get(&b) {
            return if self.partition_stalls {
                Link::Stalled
            } else {
                Link::Cut
            };
        }
        Link::Open
    }

    /// Schedules the stalled frames whose links are open again, in the order they were sent
    /// (a connection delivers its backlog in order), just after now; drops those whose
    /// endpoint crashed.
    fn release_stalled(&mut self) {
        let mut still = Vec::new();
        let mut k = 0;
        for id in std::mem::take(&mut self.stalled) {
            let datagram = &self.frames[&id];
            match self.link(datagram.from, datagram.to) {
                Link::Open => {
                    k += 1;
                    self.stats.late += 1;
                    let due = self.now + self.faults.delay_min + Duration::from_nanos(k);
                    self.in_flight.push(Reverse((due, id)));
                }
                Link::Stalled => still.push(id),
                Link::Cut => {
                    self.stats.cut += 1;
                    self.frames.remove(&id);
                }
            }
        }
        self.stalled = still;
    }

    /// Hands a frame to the network.
    pub fn send(&mut self, from: SocketAddr, to: SocketAddr, frame: Bytes) {
        self.stats.sent += 1;
        match self.link(from, to) {
            Link::Open => {}
            Link::Cut => {
                self.stats.cut += 1;
                return;
            }
            Link::Stalled => {
                let id = self.next_id;
                self.next_id += 1;
                self.frames.insert(id, Datagram { from, to, frame });
                self.stalled.push(id);
                return;
            }
        }
        if self.rng.gen_bool(self.faults.drop_probability) {
            self.stats.dropped += 1;
            return;
        }
        let copies = if self.rng.gen_bool(self.faults.duplicate_probability) {
            self.stats.duplicated += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            let mut delay = if self.faults.delay_max > self.faults.delay_min {
                self.rng
                    .gen_range(self.faults.delay_min..=self.faults.delay_max)
            } else {
                self.faults.delay_min
            };
            // Drawn only when late frames are on, so a model without them replays as before.
            if self.faults.late_probability > 0.0 && self.rng.gen_bool(self.faults.late_probability)
            {
                self.stats.late += 1;
                delay += self
                    .rng
                    .gen_range(Duration::ZERO..=self.faults.late_delay_max);
            }
            let id = self.next_id;
            self.next_id += 1;
            self.in_flight.push(Reverse((self.now + delay, id)));
            self.frames.insert(
                id,
                Datagram {
                    from,
                    to,
                    frame: frame.clone(),
                },
            );
        }
    }

    /// When the next frame is due, if any is in flight.
    pub fn next_due(&self) -> Option<Time> {
        self.in_flight.peek().map(|Reverse((t, _))| *t)
    }

    /// Takes the next frame due at or before `now`. Frames whose link was cut while they were
    /// in flight are lost (or held, if the link stalls); frames for a paused endpoint wait.
    pub fn pop_due(&mut self, now: Time) -> Option<Datagram> {
        while let Some(Reverse((due, id))) = self.in_flight.peek().copied() {
            if due > now {
                return None;
            }
            self.in_flight.pop();
            let datagram = &self.frames[&id];
            let (from, to) = (datagram.from, datagram.to);
            match self.link(from, to) {
                Link::Open => {
                    if let Some(held) = self.paused.get_mut(&to) {
                        held.push(id);
                        continue;
                    }
                    self.stats.delivered += 1;
                    return Some(self.frames.remove(&id).expect("frame of a scheduled id"));
                }
                Link::Stalled => self.stalled.push(id),
                Link::Cut => {
                    self.stats.cut += 1;
                    self.frames.remove(&id);
                }
            }
        }
        None
    }
}

/// One node's attachment to a [`MemoryNetwork`].
#[derive(Clone, Debug)]
pub struct MemoryEndpoint {
    addr: SocketAddr,
    network: Rc<RefCell<MemoryNetwork>>,
}

impl MemoryEndpoint {
    /// Attaches the node listening at `addr`.
    pub fn new(addr: SocketAddr, network: Rc<RefCell<MemoryNetwork>>) -> Self {
        MemoryEndpoint { addr, network }
    }

    /// The connection id under which frames from `addr` are delivered; answers on it go back
    /// to `addr`.
    pub fn connection_of(addr: SocketAddr) -> ConnectionId {
        let port = u64::from(addr.port());
        let ip = match addr.ip() {
            std::net::IpAddr::V4(v4) => u64::from(u32::from(v4)),
            std::net::IpAddr::V6(_) => 0,
        };
        ConnectionId((ip << 16) | port)
    }

    fn addr_of(connection: ConnectionId) -> SocketAddr {
        let ip = std::net::Ipv4Addr::from((connection.0 >> 16) as u32);
        SocketAddr::from((ip, (connection.0 & 0xffff) as u16))
    }
}

impl Transport for MemoryEndpoint {
    fn send(&mut self, to: SocketAddr, frame: Bytes) -> Result<(), SendError> {
        self.network.borrow_mut().send(self.addr, to, frame);
        Ok(())
    }

    fn reply(&mut self, connection: ConnectionId, frame: Bytes) -> Result<(), SendError> {
        let to = Self::addr_of(connection);
        self.network.borrow_mut().send(self.addr, to, frame);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(n: u8) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, n], 7000))
    }

    #[test]
    fn frames_arrive_after_their_delay_and_partitions_cut_them() {
        let mut net = MemoryNetwork::new(1, Faults::none());
        net.send(addr(1), addr(2), Bytes::from_static(b"a"));
        assert_eq!(net.pop_due(Time::ZERO), None);
        let due = net.next_due().unwrap();
        assert_eq!(net.pop_due(due).unwrap().frame, Bytes::from_static(b"a"));
        net.partition(&[vec![addr(1)], vec![addr(2)]]);
        net.send(addr(1), addr(2), Bytes::from_static(b"b"));
        assert_eq!(net.next_due(), None);
        assert_eq!(net.stats().cut, 1);
    }

    #[test]
    fn the_same_seed_gives_the_same_faults() {
        let faults = Faults {
            drop_probability: 0.3,
            duplicate_probability: 0.2,
            delay_min: Duration::from_millis(1),
            delay_max: Duration::from_millis(50),
            late_probability: 0.1,
            late_delay_max: Duration::from_secs(2),
        };
        let run = |seed| {
            let mut net = MemoryNetwork::new(seed, faults);
            for i in 0..100u8 {
                net.send(addr(1), addr(2), Bytes::from(vec![i]));
            }
            let mut order = Vec::new();
            while let Some(d) = net.pop_due(Time::from_secs(3)) {
                order.push(d.frame[0]);
            }
            order
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    fn drain(net: &mut MemoryNetwork, until: Time) -> Vec<u8> {
        let mut got = Vec::new();
        while let Some(due) = net.next_due().filter(|d| *d <= until) {
            net.set_now(due);
            if let Some(d) = net.pop_due(due) {
                got.push(d.frame[0]);
            }
        }
        got
    }

    #[test]
    fn partitions_of_three_parts_and_one_way_links_cut_only_their_links() {
        let mut net = MemoryNetwork::new(1, Faults::none());
        net.partition(&[vec![addr(1)], vec![addr(2)], vec![addr(3), addr(4)]]);
        for (i, (a, b)) in [(1, 2), (2, 3), (3, 4), (4, 1)].into_iter().enumerate() {
            net.send(addr(a), addr(b), Bytes::from(vec![i as u8]));
        }
        assert_eq!(drain(&mut net, Time::from_secs(1)), vec![2]);
        net.heal();
        net.cut_link(addr(1), addr(2), false);
        net.send(addr(1), addr(2), Bytes::from_static(b"x"));
        net.send(addr(2), addr(1), Bytes::from_static(b"y"));
        assert_eq!(drain(&mut net, Time::from_secs(2)), b"y".to_vec());
        assert!(net.has_cuts() && !net.is_partitioned());
        net.heal_link(addr(1), addr(2));
        assert!(!net.has_cuts());
    }

    #[test]
    fn a_stalled_link_delivers_its_frames_in_order_once_it_heals() {
        let mut net = MemoryNetwork::new(1, Faults::none());
        net.partition_stalling(&[vec![addr(1)], vec![addr(2)]], true);
        for i in 0..5u8 {
            net.send(addr(1), addr(2), Bytes::from(vec![i]));
        }
        assert_eq!(drain(&mut net, Time::from_secs(5)), Vec::<u8>::new());
        net.set_now(Time::from_secs(5));
        net.heal();
        assert_eq!(drain(&mut net, Time::from_secs(6)), vec![0, 1, 2, 3, 4]);
        assert_eq!(net.stats().late, 5);
        // A stalled one-way link whose receiver crashed loses what it held.
        net.cut_link(addr(1), addr(2), true);
        net.send(addr(1), addr(2), Bytes::from_static(b"z"));
        net.crash(addr(2));
        net.heal_link(addr(1), addr(2));
        assert_eq!(net.next_due(), None);
    }

    #[test]
    fn a_paused_endpoint_gets_its_frames_in_a_burst_when_it_resumes() {
        let mut net = MemoryNetwork::new(1, Faults::none());
        net.pause(addr(2));
        for i in 0..3u8 {
            net.send(addr(1), addr(2), Bytes::from(vec![i]));
        }
        assert_eq!(drain(&mut net, Time::from_secs(1)), Vec::<u8>::new());
        net.set_now(Time::from_secs(1));
        net.resume(addr(2), Duration::ZERO);
        assert_eq!(net.next_due(), Some(Time::from_secs(1)));
        assert_eq!(drain(&mut net, Time::from_secs(2)), vec![0, 1, 2]);
        assert_eq!(net.stats().held_for_pause, 3);
    }

    #[test]
    fn connection_ids_map_back_to_addresses() {
        let a = addr(9);
        assert_eq!(MemoryEndpoint::addr_of(MemoryEndpoint::connection_of(a)), a);
    }
}
