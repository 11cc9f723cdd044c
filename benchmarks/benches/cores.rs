//! Criterion micro-benchmarks of the sans-IO parts of viewsync: the frame codec, the failure
//! detector, the multicast core's receive-and-deliver path per ordering, a full view change
//! through five in-memory node cores, and one whole seeded simulation run. Nothing here touches a socket or a clock.
//!
//! Run with `cargo bench -p viewsync-benchmarks --bench cores` (add `-- --quick` for a short
//! run).

use criterion::{
    black_box, criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, SamplingMode,
    Throughput,
};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;
use viewsync::proto::failure_detector::{FailureDetector, FailureDetectorConfig};
use viewsync::proto::node::{ConnectionId, NodeCore, NodeOutput, NodeSettings};
use viewsync::proto::Time;
use viewsync::sim::{SimConfig, Simulation};
use viewsync::wire::codec::FRAME_BYTES_MAX_DEFAULT;
use viewsync::wire::{Ballot, Body, ClusterKey, Decision, Envelope, FrameCodec, PROTOCOL_VERSION};
use viewsync::{GroupName, Incarnation, Member, NodeId, ProcessId, View, ViewId};

/// Bytes of the length prefix in front of every frame.
const PREFIX_BYTES: usize = 4;
/// The seed of the simulation benchmark (also the seed of the replay test).
const SIM_SEED: u64 = 42;
/// The tick interval the cores are driven at in the membership benchmark (the runtime's).
const TICK: Duration = Duration::from_millis(20);

fn process(n: u64) -> ProcessId {
    ProcessId {
        node: NodeId(n),
        incarnation: Incarnation(1),
    }
}

fn member(n: u64) -> Member {
    Member {
        id: process(n),
        addr: SocketAddr::from(([10, 0, 0, n as u8], 7000)),
    }
}

fn group() -> GroupName {
    GroupName::new("bench").expect("valid group name")
}

fn key() -> ClusterKey {
    ClusterKey::from_hex(&"5a".repeat(32)).expect("32-byte key")
}

fn codec(key: Option<ClusterKey>) -> FrameCodec {
    FrameCodec::new(key, FRAME_BYTES_MAX_DEFAULT)
}

fn envelope(group: Option<GroupName>, body: Body) -> Envelope {
    let me = member(1);
    Envelope {
        version: PROTOCOL_VERSION,
        sender: me.id,
        sender_addr: me.addr,
        seq: 0,
        group,
        body,
    }
}

/// A heartbeat of a node in one group.
fn heartbeat() -> Envelope {
    let view = ViewId {
        epoch: 7,
        coordinator: process(1),
    };
    envelope(
        None,
        Body::Heartbeat {
            views: vec![(group(), view)],
        },
    )
}

/// The install of a 5-member view.
fn install() -> Envelope {
    let view = View {
        group: group(),
        id: ViewId {
            epoch: 7,
            coordinator: process(1),
        },
        members: (1..=5).map(member).collect(),
        voters: 5,
    };
    envelope(
        Some(group()),
        Body::Install {
            base: Some(ViewId {
                epoch: 6,
                coordinator: process(1),
            }),
            ballot: Ballot {
                round: viewsync::wire::Round(3),
                proposer: process(1),
            },
            decision: Decision {
                view,
                cut: Vec::new(),
                joiners: Vec::new(),
            },
        },
    )
}

fn bench_codec(c: &mut Criterion) {
    let mut g = c.benchmark_group("codec");
    let messages = [("heartbeat", heartbeat()), ("install_5", install())];
    for (name, message) in &messages {
        for (auth, key) in [("plain", None), ("hmac", Some(key()))] {
            let id = format!("{name}/{auth}");
            let sender = codec(key.clone());
            let frame_len = sender.seal(message.clone()).expect("seals").len();

            g.throughput(Throughput::Bytes(frame_len as u64));
            g.bench_function(BenchmarkId::new("seal", &id), |b| {
                b.iter_batched(
                    || message.clone(),
                    |envelope| sender.seal(black_box(envelope)).expect("seals"),
                    BatchSize::SmallInput,
                )
            });

            // Every frame is sealed (with a fresh counter) in setup and opened once, so
            // authenticated frames pass the receiver's replay window as in steady traffic.
            let receiver = codec(key.clone());
            g.throughput(Throughput::Bytes((frame_len - PREFIX_BYTES) as u64));
            g.bench_function(BenchmarkId::new("open", &id), |b| {
                b.iter_batched(
                    || sender.seal(message.clone()).expect("seals"),
                    |frame| {
                        receiver
                            .open(black_box(&frame[PREFIX_BYTES..]))
                            .expect("opens")
                    },
                    BatchSize::SmallInput,
                )
            });
        }
    }
    g.finish();
}

/// A detector monitoring `peers` peers, all heard from at `start` and sent a heartbeat then.
fn detector(peers: u64, start: Time) -> FailureDetector {
    let mut fd = FailureDetector::new(FailureDetectorConfig::default());
    fd.set_monitored(start, (2..2 + peers).map(|n| (process(n), member(n).addr)));
    fd.handle_tick(start);
    fd
}

fn bench_failure_detector(c: &mut Criterion) {
    let mut g = c.benchmark_group("failure_detector");
    let config = FailureDetectorConfig::default();
    let start = Duration::from_secs(1);
    for peers in [4u64, 16] {
        // A heartbeat is due to every peer (one tick in five at the runtime's tick rate).
        let due = start + config.heartbeat_interval;
        g.bench_function(BenchmarkId::new("tick_heartbeats_due", peers), |b| {
            b.iter_batched(
                || detector(peers, start),
                |mut fd| {
                    let out = fd.handle_tick(black_box(due));
                    assert_eq!(out.len(), peers as usize);
                    (fd, out)
                },
                BatchSize::SmallInput,
            )
        });
        // Nothing is due: the common tick. It leaves the detector as it found it.
        let idle = start + TICK;
        let mut fd = detector(peers, start);
        g.bench_function(BenchmarkId::new("tick_idle", peers), |b| {
            b.iter(|| {
                let out = fd.handle_tick(black_box(idle));
                debug_assert!(out.is_empty());
                out
            })
        });
        // A frame from a trusted peer, round robin over the peers.
        let mut fd = detector(peers, start);
        let mut next = 0;
        g.bench_function(BenchmarkId::new("heard_from", peers), |b| {
            b.iter(|| {
                next = (next + 1) % peers;
                fd.handle_heard_from(black_box(idle), process(2 + next))
            })
        });
    }
    g.finish();
}

/// Node cores wired by hand: every `Send` goes, in FIFO order, to the core listening at its
/// destination.
struct Cluster {
    cores: Vec<NodeCore>,
    queue: VecDeque<(SocketAddr, Envelope)>,
    now: Time,
}

impl Cluster {
    fn push(&mut self, outputs: Vec<NodeOutput>) {
        for output in outputs {
            match output {
                NodeOutput::Send { to, envelope } => self.queue.push_back((to, envelope)),
                NodeOutput::Reply { .. } => unreachable!("no client connections here"),
                _ => {}
            }
        }
    }

    /// Delivers queued envelopes until no output remains.
    fn drain(&mut self) {
        while let Some((to, envelope)) = self.queue.pop_front() {
            let Some(core) = self.cores.iter_mut().find(|c| c.me().addr == to) else {
                continue;
            };
            let outputs = core.handle_envelope(self.now, envelope, ConnectionId(0));
            self.push(outputs);
        }
    }

    fn join(&mut self, i: usize) {
        let outputs = self.cores[i]
            .handle_join(self.now, group())
            .expect("not joined yet");
        self.push(outputs);
    }

    /// Whether every core has installed one and the same view of `members` members.
    fn agreed(&self, members: usize) -> bool {
        let group = group();
        let first = self.cores[0].view(&group).map(|v| v.id);
        self.cores.iter().all(|c| {
            c.view(&group)
                .is_some_and(|v| v.members.len() == members && Some(v.id) == first)
        })
    }

    /// Delivers everything; while the cores do not agree on a view of `members`, advances
    /// time by a tick, ticks every core and delivers again. Returns the ticks needed.
    fn settle(&mut self, members: usize) -> u32 {
        let mut ticks = 0;
        self.drain();
        while !self.agreed(members) {
            assert!(ticks < 1000, "no agreement after {ticks} ticks");
            ticks += 1;
            self.now += TICK;
            for i in 0..self.cores.len() {
                let outputs = self.cores[i].handle_tick(self.now);
                self.push(outputs);
            }
            self.drain();
        }
        ticks
    }
}

/// A group of 5 formed through the cores (node 1 creates it, nodes 2 to 5 join through it),
/// plus node 6, started with node 1 as seed but not joined yet.
fn five_members_and_a_joiner() -> Cluster {
    let settings = NodeSettings::default();
    let seeds = vec![member(1).addr];
    let mut cluster = Cluster {
        cores: vec![NodeCore::new(member(1), Vec::new(), settings)],
        queue: VecDeque::new(),
        now: Duration::from_secs(1),
    };
    cluster.join(0);
    cluster.settle(1);
    for n in 2..=5 {
        cluster
            .cores
            .push(NodeCore::new(member(n), seeds.clone(), settings));
        cluster.join(n as usize - 1);
    }
    cluster.settle(5);
    cluster
        .cores
        .push(NodeCore::new(member(6), seeds, settings));
    cluster.now += Duration::from_millis(1);
    cluster
}

fn bench_membership(c: &mut Criterion) {
    let mut g = c.benchmark_group("membership");
    // The join completes through messages alone: no tick (so no timeout) is needed.
    let mut probe = five_members_and_a_joiner();
    probe.join(5);
    assert_eq!(probe.settle(6), 0, "the join needed ticks");
    g.bench_function("join_5_to_6", |b| {
        b.iter_batched(
            five_members_and_a_joiner,
            |mut cluster| {
                cluster.join(5);
                cluster.settle(6);
                cluster
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn bench_sim(c: &mut Criterion) {
    let mut g = c.benchmark_group("sim");
    g.sample_size(10);
    // Runs take long: the same number of runs per sample, instead of 1, 2, ..., 10.
    g.sampling_mode(SamplingMode::Flat);
    g.bench_function(BenchmarkId::new("run", format!("seed_{SIM_SEED}")), |b| {
        b.iter(|| {
            let report = Simulation::new(SimConfig::from_seed(black_box(SIM_SEED))).run();
            assert!(report.violations.is_empty(), "{:?}", report.violations);
            report
        })
    });
    g.finish();
}

/// A 64-entry batch of 1 KiB multicasts from member 2 reaching member 3 of a three-member
/// view (and, for total order, the sequencer's record placing them): the core's cost per
/// delivered message, without I/O or encoding.
fn bench_multicast(c: &mut Criterion) {
    use viewsync::proto::multicast::{Multicast, MulticastConfig};
    use viewsync::wire::{Entry, Item, Ordering, Rank, Seq};
    const BATCH: u64 = 64;
    let view = View {
        group: group(),
        id: ViewId {
            epoch: 1,
            coordinator: process(1),
        },
        members: (1..=3).map(member).collect(),
        voters: 3,
    };
    let payload = bytes::Bytes::from(vec![7u8; 1024]);
    let mut g = c.benchmark_group("multicast");
    g.throughput(Throughput::Elements(BATCH));
    for ordering in [Ordering::Fifo, Ordering::Causal, Ordering::Total] {
        let entries: Vec<Entry> = (1..=BATCH)
            .map(|seq| Entry {
                seq: Seq(seq),
                ordering,
                clock: if ordering == Ordering::Causal {
                    vec![Seq(0), Seq(0), Seq(0)]
                } else {
                    Vec::new()
                },
                item: Item::Payload(payload.clone()),
            })
            .collect();
        let record = Entry {
            seq: Seq(1),
            ordering: Ordering::Fifo,
            clock: Vec::new(),
            item: Item::Order((1..=BATCH).map(|q| (Rank(1), Seq(q))).collect()),
        };
        g.bench_function(BenchmarkId::new("receive_deliver_64", ordering), |b| {
            b.iter_batched(
                || {
                    let config = MulticastConfig {
                        ordering,
                        ..MulticastConfig::default()
                    };
                    let mut core = Multicast::new(process(3), config);
                    core.install_created(&view, &mut Vec::new());
                    core
                },
                |mut core| {
                    let mut out = Vec::with_capacity(BATCH as usize + 4);
                    core.handle_message(
                        Time::ZERO,
                        member(2),
                        Body::Data {
                            view: view.id,
                            origin: Rank(1),
                            entries: entries.clone(),
                        },
                        &mut out,
                    );
                    if ordering == Ordering::Total {
                        core.handle_message(
                            Time::ZERO,
                            member(1),
                            Body::Data {
                                view: view.id,
                                origin: Rank(0),
                                entries: vec![record.clone()],
                            },
                            &mut out,
                        );
                    }
                    assert_eq!(core.stats().delivered, BATCH);
                    black_box(out)
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

/// The benchmark groups (a private module: `criterion_group!` makes an undocumented `pub fn`).
mod groups {
    use super::*;

    criterion_group!(
        benches,
        bench_codec,
        bench_failure_detector,
        bench_multicast,
        bench_membership,
        bench_sim
    );
}

criterion_main!(groups::benches);
