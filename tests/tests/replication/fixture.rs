//! What the replication process tests share: clusters of `viewsync node` processes running a
//! replicated strategy, front ends driving them from a tokio runtime, and recorded histories
//! judged by the checkers.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use viewsync::wire::ClusterKey;
use viewsync::GroupName;
use viewsync_services::frontend::{FrontEnd, FrontEndConfig, FrontEndError, Routing};
use viewsync_services::history::linearizability::{self, Linearizability};
use viewsync_services::history::model::StateMachineModel;
use viewsync_services::history::{sequential, History, SearchLimits};
use viewsync_services::state_machine::kv::{KvOp, KvOutput, KvStore};
use viewsync_services::state_machine::StateMachine;
use viewsync_tests::process::{
    run_viewsync, CliOutput, Cluster, NodeProcess, CONVERGE_TIMEOUT, GROUP,
};

/// The `[service]` section (and the node's data directory) of a replica.
pub fn service_config(
    cluster: &Cluster,
    id: u64,
    strategy: &str,
    machine: &str,
    durability: &str,
) -> String {
    let data = cluster.dir.path().join(format!("data{id}"));
    format!(
        "data_dir = {:?}\n[service]\nstrategy = \"{strategy}\"\nstate_machine = \"{machine}\"\ndurability = \"{durability}\"\n",
        data.display().to_string()
    )
}

/// Starts nodes `1..=n` running `strategy` on `machine` and waits until they agree on a view
/// of all of them.
pub fn start_cluster(n: u64, strategy: &str, machine: &str, durability: &str) -> Cluster {
    let mut cluster = Cluster::new();
    for id in 1..=n {
        let seeds = cluster.addrs();
        let extra = service_config(&cluster, id, strategy, machine, durability);
        cluster.launch(id, &seeds, &extra);
    }
    let ids: Vec<u64> = (1..=n).collect();
    cluster.wait_converged(&ids, CONVERGE_TIMEOUT);
    cluster
}

/// Restarts node `id` (killed before) from its data directory, with the live nodes as seeds.
pub fn restart(cluster: &mut Cluster, id: u64, strategy: &str, machine: &str, durability: &str) {
    let seeds: Vec<SocketAddr> = cluster
        .ids()
        .into_iter()
        .filter(|n| *n != id)
        .map(|n| cluster.addr(n))
        .collect();
    let extra = service_config(cluster, id, strategy, machine, durability);
    let key = cluster.key_file.clone();
    let config = cluster.write_config(id, &seeds, Some(&key), &extra);
    cluster.add(NodeProcess::start(&config, id));
}

/// The cluster's key.
pub fn key(cluster: &Cluster) -> ClusterKey {
    ClusterKey::load(&cluster.key_file).expect("the cluster key loads")
}

/// A front end for `machine` through `seeds`.
pub fn front_end<S: StateMachine>(
    seeds: Vec<SocketAddr>,
    key: ClusterKey,
    machine: &str,
    routing: Routing,
) -> FrontEnd<S> {
    let mut config = FrontEndConfig::new(GroupName::new(GROUP).unwrap(), seeds, machine);
    config.key = Some(key);
    config.routing = routing;
    config.attempt_timeout = Duration::from_millis(1_000);
    config.deadline = Duration::from_secs(20);
    FrontEnd::new(config)
}

/// A history shared by concurrent clients, stamped from one origin.
#[derive(Clone)]
pub struct Recorder<O, R> {
    origin: Instant,
    history: Arc<Mutex<History<O, R>>>,
}

impl<O: Clone, R: Clone> Recorder<O, R> {
    /// An empty history starting now.
    pub fn new() -> Self {
        Recorder {
            origin: Instant::now(),
            history: Arc::new(Mutex::new(History::new())),
        }
    }

    fn now(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }

    /// Calls `op` through `fe`, recording its invocation and outcome (an unknown outcome as
    /// `info`: it may have taken effect).
    pub async fn call<S>(&self, fe: &mut FrontEnd<S>, op: O) -> Result<R, FrontEndError>
    where
        S: StateMachine<Operation = O, Output = R>,
    {
        let id = fe.next_request_id();
        self.history
            .lock()
            .unwrap()
            .invoke(id.client, id.seq, op.clone(), self.now());
        let result = fe.call(op).await;
        let mut history = self.history.lock().unwrap();
        match &result {
            Ok(output) => history.ok(id.client, id.seq, output.clone(), self.now()),
            Err(e) if e.outcome_unknown() => {
                history.info(id.client, id.seq, e.to_string(), self.now())
            }
            Err(e) => history.fail(id.client, id.seq, e.to_string(), self.now()),
        }
        result
    }

    /// Like [`Recorder::call`], recorded as request `seq` of the logical client `client`
    /// (one client of the history that talks to several members through several front ends,
    /// as the reference notes' bank example does).
    pub async fn call_as<S>(
        &self,
        client: u64,
        seq: u64,
        fe: &mut FrontEnd<S>,
        op: O,
    ) -> Result<R, FrontEndError>
    where
        S: StateMachine<Operation = O, Output = R>,
    {
        self.history
            .lock()
            .unwrap()
            .invoke(client, seq, op.clone(), self.now());
        let result = fe.call(op).await;
        let mut history = self.history.lock().unwrap();
        match &result {
            Ok(output) => history.ok(client, seq, output.clone(), self.now()),
            Err(e) if e.outcome_unknown() => history.info(client, seq, e.to_string(), self.now()),
            Err(e) => history.fail(client, seq, e.to_string(), self.now()),
        }
        result
    }

    /// The history so far.
    pub fn history(&self) -> History<O, R> {
        self.history.lock().unwrap().clone()
    }
}

/// Where a failing test leaves its history: the cluster's directory, kept on panic.
pub fn save_history<O, R>(cluster: &Cluster, name: &str, history: &History<O, R>) -> PathBuf
where
    O: serde::Serialize,
    R: serde::Serialize,
{
    let path = cluster.dir.path().join(name);
    std::fs::write(&path, history.to_json_lines()).expect("history written");
    path
}

/// Asserts that a key-value history is linearizable (an "unknown" answer fails too).
pub fn assert_linearizable(cluster: &Cluster, history: &History<KvOp, KvOutput>) {
    let path = save_history(cluster, "history.jsonl", history);
    let operations = history.operations().expect("a well-formed history");
    let model = StateMachineModel::new(KvStore::new());
    match linearizability::check(&model, &operations, SearchLimits::default()) {
        Linearizability::Linearizable { partitions, steps } => {
            eprintln!(
                "history of {} operations linearizable ({partitions} keys, {steps} steps); kept at {}",
                operations.len(),
                path.display()
            );
        }
        other => panic!(
            "the history kept at {} is not shown linearizable: {other:?}",
            path.display()
        ),
    }
}

/// A runtime for the front ends.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// A mix of key-value operations on four keys (puts, gets, deletes, compare-and-swaps) for
/// client `c`'s `n`-th operation, values unique per client and operation.
pub fn mixed_op(c: u64, n: u64, rng: &mut rand::rngs::StdRng) -> KvOp {
    use rand::Rng;
    let k = MIXED_KEYS[rng.gen_range(0..MIXED_KEYS.len())];
    match rng.gen_range(0..10) {
        0..=3 => KvOp::put(k, format!("c{c}-{n}")),
        4..=7 => KvOp::get(k),
        8 => KvOp::delete(k),
        _ => KvOp::cas(k, None, format!("c{c}-{n}")),
    }
}

/// The keys of [`mixed_op`].
pub const MIXED_KEYS: [&str; 4] = ["a", "b", "c", "d"];

/// Asserts that a key-value history is sequentially consistent (an "unknown" answer fails
/// too), keeping it as `name` in the cluster's directory.
pub fn assert_sequentially_consistent(
    cluster: &Cluster,
    name: &str,
    history: &History<KvOp, KvOutput>,
) {
    let path = save_history(cluster, name, history);
    let operations = history.operations().expect("a well-formed history");
    let model = StateMachineModel::new(KvStore::new());
    let limits = SearchLimits {
        max_steps: 50_000_000,
    };
    let sc = sequential::check(&model, &operations, limits);
    assert!(
        sc.is_consistent(),
        "history of {} operations at {} not shown sequentially consistent: {sc:?}",
        operations.len(),
        path.display()
    );
}

/// Runs `viewsync client --group GROUP --via VIA --key-file KEY ARGS...` against the
/// cluster.
pub fn viewsync_client(cluster: &Cluster, via: SocketAddr, args: &[&str]) -> CliOutput {
    let (via, key_file) = (via.to_string(), cluster.key_file.display().to_string());
    let mut all = vec![
        "client",
        "--group",
        GROUP,
        "--via",
        &via,
        "--key-file",
        &key_file,
    ];
    all.extend_from_slice(args);
    run_viewsync(&all, Duration::from_secs(30))
}

/// Key-value clients running until stopped, each on a thread of its own with its own front
/// end, recording into one history.
pub struct Clients {
    stop: Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<u64>>,
}

impl Clients {
    /// Starts `n` clients through `seeds`; client `c`'s `k`-th operation is `op(c, k, rng)`
    /// (its generator seeded with `c`), with `pause` between operations.
    /// Starts `n` clients through `seeds`, their front ends routing as `routing` says;
    /// client `c`'s `k`-th operation is `op(c, k, rng)` (its generator seeded with `c`), with
    /// `pause` between operations. Unless routed to the primary, client `c`'s seeds are
    /// rotated by `c`, so the clients spread over the members.
    pub fn start(
        n: u64,
        seeds: Vec<SocketAddr>,
        key: ClusterKey,
        recorder: &Recorder<KvOp, KvOutput>,
        pause: Duration,
        op: fn(u64, u64, &mut rand::rngs::StdRng) -> KvOp,
        routing: Routing,
    ) -> Clients {
        use rand::SeedableRng;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let threads = (0..n)
            .map(|c| {
                let (mut seeds, key, recorder, stop) =
                    (seeds.clone(), key.clone(), recorder.clone(), stop.clone());
                if routing != Routing::Primary && !seeds.is_empty() {
                    let len = seeds.len();
                    seeds.rotate_left(c as usize % len);
                }
                std::thread::spawn(move || {
                    runtime().block_on(async move {
                        let mut fe = front_end::<KvStore>(seeds, key, "kv", routing);
                        let mut rng = rand::rngs::StdRng::seed_from_u64(c);
                        let (mut k, mut acknowledged) = (0, 0);
                        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                            k += 1;
                            if recorder.call(&mut fe, op(c, k, &mut rng)).await.is_ok() {
                                acknowledged += 1;
                            }
                            tokio::time::sleep(pause).await;
                        }
                        acknowledged
                    })
                })
            })
            .collect();
        Clients { stop, threads }
    }

    /// Stops the clients; returns how many operations each had acknowledged.
    pub fn stop(self) -> Vec<u64> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.threads
            .into_iter()
            .map(|t| t.join().expect("a client thread"))
            .collect()
    }
}

/// Reads every key of `keys` through a new front end, into the history (a lost
/// acknowledged write then makes the history non-linearizable).
pub fn read_back(cluster: &Cluster, recorder: &Recorder<KvOp, KvOutput>, keys: &[String]) {
    runtime().block_on(async {
        let mut fe = front_end::<KvStore>(cluster.addrs(), key(cluster), "kv", Routing::Primary);
        for k in keys {
            recorder
                .call(&mut fe, KvOp::get(k.as_str()))
                .await
                .expect("the final reads are answered");
        }
    });
}
