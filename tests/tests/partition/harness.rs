//! What the partition tests share: a replicated group whose members each run in a network
//! namespace of their own (plus a client host on the same bridge), clients running inside
//! those hosts, and probes of what a member answers.

use crate::replication::{service_config, Recorder};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use viewsync::client::{Client, ClientError};
use viewsync::wire::{Blocked, BlockedReason, ClusterKey, Outcome, Refusal};
use viewsync::GroupName;
use viewsync_services::frontend::{FrontEnd, FrontEndConfig, Routing};
use viewsync_services::replication::{encode, Request, RequestId};
use viewsync_services::state_machine::kv::{KvOp, KvOutput, KvStore};
use viewsync_tests::netns::{skip_if_unavailable, Network};
use viewsync_tests::process::{
    config_text_listening, run_viewsync_in, CliOutput, Cluster, NodeProcess, GROUP,
};

/// The failure detector of every member: a member silent for about 1.3 s is suspected.
/// Long enough that a loaded 2-core machine running tests in parallel does not suspect
/// live members, short enough that a partition shows within a few seconds.
const DETECTOR: &str = "\n[failure_detector]\nheartbeat_interval_ms = 100\nsuspect_timeout_ms = 1000\nconfirm_timeout_ms = 300\n";

/// How long a cut may take to show as a view without the cut members, or a heal as one
/// view of all of them (generous: a loaded machine, TCP retransmission backoff after a heal).
pub const SETTLE: Duration = Duration::from_secs(40);

/// The name of member `id`'s host.
pub fn host(id: u64) -> String {
    format!("n{id}")
}

/// The host on the bridge that only clients use (never cut).
pub const CLIENT_HOST: &str = "client";

/// A replicated group of `viewsync node` processes, each member in a host of its own.
pub struct Partitioned {
    /// The nodes (declared first: they end before their namespaces are deleted).
    pub cluster: Cluster,
    /// The hosts: `n1` ... `nN` and [`CLIENT_HOST`].
    pub net: Network,
    /// The members' node ids.
    pub ids: Vec<u64>,
}

impl Partitioned {
    /// Starts `n` members running `strategy` on the key-value store, each in its host (node
    /// 1 founds the group, each next one joins through those before it), and waits until
    /// they agree on one view of all of them. `None` (after printing why) where network
    /// namespaces cannot be made.
    pub fn start(test: &str, n: u64, strategy: &str) -> Option<Partitioned> {
        if skip_if_unavailable(test) {
            return None;
        }
        let mut names: Vec<String> = (1..=n).map(host).collect();
        names.push(CLIENT_HOST.into());
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let net = Network::new(&names).unwrap_or_else(|e| panic!("making the hosts: {e}"));
        let mut cluster = Cluster::new();
        for id in 1..=n {
            let seeds = cluster.addrs();
            let extra = service_config(&cluster, id, strategy, "kv", "grouped") + DETECTOR;
            let listen = format!("{}:0", net.ip(&host(id)));
            let text =
                config_text_listening(&listen, id, &seeds, Some(&cluster.key_file.clone()), &extra);
            let config = cluster.dir.write(&format!("node{id}.toml"), &text);
            cluster.add(NodeProcess::start_in(net.namespace(&host(id)), &config, id));
        }
        let ids: Vec<u64> = (1..=n).collect();
        cluster.wait_converged(&ids, SETTLE);
        Some(Partitioned { cluster, net, ids })
    }

    /// The cluster key.
    pub fn key(&self) -> ClusterKey {
        ClusterKey::load(&self.cluster.key_file).expect("the cluster key loads")
    }

    /// Every member's address.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.cluster.addrs()
    }

    /// One request (a read of `a`) sent to member `id` from inside its host, with a client of
    /// its own: the member's answer, as it gave it.
    pub fn raw_call(&self, id: u64, timeout: Duration) -> Result<Outcome, ClientError> {
        let (addr, key) = (self.cluster.addr(id), self.key());
        self.net
            .spawn_in(&host(id), move || {
                runtime().block_on(async move {
                    let request = Request {
                        id: RequestId {
                            client: rand::random(),
                            seq: 1,
                        },
                        machine: "kv".into(),
                        after: 0,
                        op: KvOp::get("a"),
                        causal: None,
                    };
                    let mut client = Client::new(addr, Some(key), timeout);
                    client.call(&group(), encode(&request)).await
                })
            })
            .join()
            .expect("the probe thread")
    }

    /// Waits until member `id` answers a request with `Blocked` for want of a majority;
    /// returns that refusal and how long the answer took (the request's round trip). Panics
    /// after `timeout` with the last answer.
    pub fn wait_refuses_no_majority(&self, id: u64, timeout: Duration) -> (Blocked, Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let sent = Instant::now();
            let answer = self.raw_call(id, Duration::from_secs(3));
            let took = sent.elapsed();
            if let Ok(Err(Refusal::Blocked(blocked))) = &answer {
                if matches!(blocked.reason, BlockedReason::NoMajority { .. }) {
                    return (blocked.clone(), took);
                }
            }
            assert!(
                Instant::now() < deadline,
                "node {id} did not refuse for want of a majority within {timeout:?}; last answer: {answer:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `viewsync COMMAND --key-file KEY ARGS` run inside member `id`'s host, for `args`
    /// `[COMMAND, ARGS...]`.
    pub fn cli_in(&self, id: u64, args: &[&str]) -> CliOutput {
        let key_file = self.cluster.key_file.display().to_string();
        let mut all: Vec<&str> = args.to_vec();
        all.splice(1..1, ["--key-file", key_file.as_str()]);
        run_viewsync_in(
            Some(self.net.namespace(&host(id))),
            &all,
            Duration::from_secs(60),
        )
    }
}

/// The group every test's members are in.
pub fn group() -> GroupName {
    GroupName::new(GROUP).expect("a valid group name")
}

/// A runtime for the front ends.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// Where a client runs: with the majority (the client host) or inside a cut-off member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// On the client host, which stays connected to the majority.
    Majority,
    /// Inside a member that is cut off, talking to that member alone.
    Minority,
}

/// One call a client made, as it saw it.
#[derive(Clone, Debug)]
pub struct Call {
    /// The client's side.
    pub side: Side,
    /// The nodes its front end was given (a minority client: its member alone).
    pub seeds: Vec<SocketAddr>,
    /// The operation.
    pub op: KvOp,
    /// When it was invoked and when it returned.
    pub invoked: Instant,
    /// When it returned.
    pub returned: Instant,
    /// Its result, or the front end's error as text.
    pub result: Result<KvOutput, String>,
}

/// Key-value clients running until stopped, each on a thread inside a host, each with its
/// own front end, recording into one history (and their calls, with their side).
pub struct Workers {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    calls: Arc<Mutex<Vec<Call>>>,
}

/// How a worker's front end behaves.
#[derive(Clone, Copy, Debug)]
pub struct WorkerConfig {
    /// Where it sends requests.
    pub routing: Routing,
    /// One exchange's wait.
    pub attempt_timeout: Duration,
    /// A call's deadline (then `Unavailable`, the outcome unknown).
    pub deadline: Duration,
    /// The pause between calls.
    pub pause: Duration,
}

impl Default for Workers {
    fn default() -> Self {
        Workers {
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
            calls: Arc::new(Mutex::new(Vec::new())),
        }
    }
}

impl Workers {
    /// Starts client `client` inside host `host_name`, talking to `seeds`; its `k`-th
    /// operation is `op(client, k, rng)` (its generator seeded with `client`).
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        &mut self,
        net: &Network,
        host_name: &str,
        side: Side,
        client: u64,
        seeds: Vec<SocketAddr>,
        key: ClusterKey,
        recorder: &Recorder<KvOp, KvOutput>,
        config: WorkerConfig,
        op: fn(u64, u64, &mut rand::rngs::StdRng) -> KvOp,
    ) {
        use rand::SeedableRng;
        let (stop, calls, recorder) = (self.stop.clone(), self.calls.clone(), recorder.clone());
        let given = seeds.clone();
        self.threads.push(net.spawn_in(host_name, move || {
            runtime().block_on(async move {
                let mut front_end_config =
                    FrontEndConfig::new(group(), seeds, viewsync_services::client_cli::KV_MACHINE);
                front_end_config.key = Some(key);
                front_end_config.routing = config.routing;
                front_end_config.attempt_timeout = config.attempt_timeout;
                front_end_config.deadline = config.deadline;
                let mut fe = FrontEnd::<KvStore>::new(front_end_config);
                let mut rng = rand::rngs::StdRng::seed_from_u64(client);
                let mut k = 0;
                while !stop.load(Ordering::Relaxed) {
                    k += 1;
                    let op = op(client, k, &mut rng);
                    let invoked = Instant::now();
                    let result = recorder.call(&mut fe, op.clone()).await;
                    calls.lock().unwrap().push(Call {
                        side,
                        seeds: given.clone(),
                        op,
                        invoked,
                        returned: Instant::now(),
                        result: result.map_err(|e| e.to_string()),
                    });
                    tokio::time::sleep(config.pause).await;
                }
            })
        }));
    }

    /// The calls so far.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// Stops the clients (each finishes its call in hand) and returns every call.
    pub fn stop(self) -> Vec<Call> {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads {
            thread.join().expect("a client thread");
        }
        let calls = self.calls.lock().unwrap().clone();
        calls
    }
}

/// Reads `keys` at member `id` alone, from the client host (for gossip: that member's own
/// values).
pub fn values_at(p: &Partitioned, id: u64, keys: &[String]) -> Vec<Option<String>> {
    let (addr, key, keys) = (p.cluster.addr(id), p.key(), keys.to_vec());
    p.net
        .spawn_in(CLIENT_HOST, move || {
            runtime().block_on(async move {
                let mut config = FrontEndConfig::new(group(), vec![addr], "kv");
                config.key = Some(key);
                config.routing = Routing::Anywhere;
                config.attempt_timeout = Duration::from_secs(2);
                config.deadline = Duration::from_secs(20);
                let mut fe = FrontEnd::<KvStore>::new(config);
                let mut values = Vec::new();
                for k in &keys {
                    match fe.call(KvOp::get(k.as_str())).await {
                        Ok(KvOutput::Value(v)) => values.push(v),
                        other => panic!("read of {k} at node {id}: {other:?}"),
                    }
                }
                values
            })
        })
        .join()
        .expect("the reading thread")
}
