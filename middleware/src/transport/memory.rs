//! An in-process network for deterministic simulation. It carries the same sealed frames as
//! TCP (so every message goes through the codec) and injects faults from a seeded generator:
//! loss, random delay (which reorders frames, within and across links), duplication,
//! partitions and crashes. Time is the simulator's: frames become due at a virtual instant.

use super::{SendError, Transport};
use crate::proto::node::ConnectionId;
use crate::proto::Time;
use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

/// The fault model: one documented struct, every knob seeded.
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
}

impl Faults {
    /// A reliable, fast network.
    pub fn none() -> Self {
        Faults {
            drop_probability: 0.0,
            duplicate_probability: 0.0,
            delay_min: Duration::from_micros(100),
            delay_max: Duration::from_micros(100),
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
    /// Frames lost to a partition or a crashed endpoint.
    pub cut: u64,
    /// Extra copies delivered.
    pub duplicated: u64,
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
    /// Partition sides by address; addresses on different sides cannot talk. Empty: no partition.
    side_of: BTreeMap<SocketAddr, usize>,
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

    /// Splits the network: each address can reach only addresses on its own side.
    pub fn partition(&mut self, sides: &[Vec<SocketAddr>]) {
        self.side_of = sides
            .iter()
            .enumerate()
            .flat_map(|(i, side)| side.iter().map(move |a| (*a, i)))
            .collect();
    }

    /// Removes any partition.
    pub fn heal(&mut self) {
        self.side_of.clear();
    }

    /// Whether a partition is in place.
    pub fn is_partitioned(&self) -> bool {
        !self.side_of.is_empty()
    }

    /// The endpoint at `addr` crashed: frames to and from it are lost.
    pub fn crash(&mut self, addr: SocketAddr) {
        self.crashed.insert(addr);
    }

    /// The endpoint at `addr` is back.
    pub fn restart(&mut self, addr: SocketAddr) {
        self.crashed.remove(&addr);
    }

    fn connected(&self, a: SocketAddr, b: SocketAddr) -> bool {
        !self.crashed.contains(&a)
            && !self.crashed.contains(&b)
            && self.side_of.get(&a) == self.side_of.get(&b)
    }

    /// Hands a frame to the network.
    pub fn send(&mut self, from: SocketAddr, to: SocketAddr, frame: Bytes) {
        self.stats.sent += 1;
        if !self.connected(from, to) {
            self.stats.cut += 1;
            return;
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
            let delay = if self.faults.delay_max > self.faults.delay_min {
                self.rng
                    .gen_range(self.faults.delay_min..=self.faults.delay_max)
            } else {
                self.faults.delay_min
            };
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
    /// in flight are lost.
    pub fn pop_due(&mut self, now: Time) -> Option<Datagram> {
        while let Some(Reverse((due, id))) = self.in_flight.peek().copied() {
            if due > now {
                return None;
            }
            self.in_flight.pop();
            let datagram = self.frames.remove(&id).expect("frame of a scheduled id");
            if self.connected(datagram.from, datagram.to) {
                self.stats.delivered += 1;
                return Some(datagram);
            }
            self.stats.cut += 1;
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
        };
        let run = |seed| {
            let mut net = MemoryNetwork::new(seed, faults);
            for i in 0..100u8 {
                net.send(addr(1), addr(2), Bytes::from(vec![i]));
            }
            let mut order = Vec::new();
            while let Some(d) = net.pop_due(Time::from_secs(1)) {
                order.push(d.frame[0]);
            }
            order
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn connection_ids_map_back_to_addresses() {
        let a = addr(9);
        assert_eq!(MemoryEndpoint::addr_of(MemoryEndpoint::connection_of(a)), a);
    }
}
