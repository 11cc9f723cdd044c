//! A replicated group of real `viewsync node` processes the nemesis works on: started,
//! killed, stopped and restarted from their data directories, with every process's output
//! kept (also of the processes killed) for the failure report.

use crate::strategy::Strategy;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use viewsync::wire::ClusterKey;
use viewsync::GroupName;
use viewsync_services::frontend::{FrontEnd, FrontEndConfig, Routing, SignedReplies};
use viewsync_services::replication::signed;
use viewsync_services::state_machine::kv::KvStore;
use viewsync_tests::process::{config_text, Cluster, NodeProcess, ViewLine, GROUP};

/// How long one attempt of a front end waits for an answer.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(1_000);
/// How long a front end's call tries before it ends with an unknown outcome: longer than
/// any recovery the nemesis waits for, so calls rarely end unknown.
pub const CALL_DEADLINE: Duration = Duration::from_secs(25);

/// Each member's Ed25519 signing key (the Byzantine strategy, f = 1).
pub struct ReplicaKeys {
    files: BTreeMap<u64, PathBuf>,
    public: BTreeMap<u64, String>,
}

impl ReplicaKeys {
    fn new(dir: &Path, ids: &[u64]) -> ReplicaKeys {
        let mut keys = ReplicaKeys {
            files: BTreeMap::new(),
            public: BTreeMap::new(),
        };
        for id in ids {
            let path = dir.join(format!("replica-node{id}.key"));
            let key = signed::generate_signing_key();
            signed::write_signing_key(&path, &key).expect("a new key file");
            keys.files.insert(*id, path);
            keys.public
                .insert(*id, signed::public_key_hex(&key.verifying_key()));
        }
        keys
    }

    /// Node `id`'s lines of the `[service]` section.
    fn config(&self, id: u64) -> String {
        let listed: String = self
            .public
            .iter()
            .map(|(id, key)| format!("{id} = \"{key}\"\n"))
            .collect();
        format!(
            "signing_key_file = {:?}\nf = 1\n[service.replica_keys]\n{listed}",
            self.files[&id].display().to_string()
        )
    }

    fn trusted(&self) -> SignedReplies {
        let keys = self
            .public
            .iter()
            .map(|(id, key)| {
                let key = signed::parse_public_key(key, "replica key").expect("a key");
                (viewsync::NodeId(*id), key)
            })
            .collect();
        SignedReplies {
            f: 1,
            keys: signed::ReplicaKeys::new(keys),
        }
    }
}

/// A group of `n` members running a strategy on the key-value store, `grouped` durability.
pub struct NemesisGroup {
    /// The strategy.
    pub strategy: Strategy,
    /// The temporary directory (configurations, key, data directories), kept on failure.
    pub cluster: Cluster,
    members: Vec<u64>,
    replica_keys: Option<ReplicaKeys>,
    /// Each member's latest listen address.
    addresses: BTreeMap<u64, SocketAddr>,
    /// Processes started per node id (names the output files of each).
    started: BTreeMap<u64, u32>,
    /// The output of processes that ended: (file name, text).
    retired: Vec<(String, String)>,
}

impl NemesisGroup {
    /// Starts members `1..=n` one after the other and waits for one view of all of them.
    pub fn start(strategy: Strategy, n: u64) -> Result<NemesisGroup, String> {
        let cluster = Cluster::new();
        let members: Vec<u64> = (1..=n).collect();
        let replica_keys = (strategy == Strategy::ActiveByzantine)
            .then(|| ReplicaKeys::new(cluster.dir.path(), &members));
        let mut group = NemesisGroup {
            strategy,
            cluster,
            members: members.clone(),
            replica_keys,
            addresses: BTreeMap::new(),
            started: BTreeMap::new(),
            retired: Vec::new(),
        };
        for id in members {
            group.launch(id)?;
        }
        group.wait_converged(Duration::from_secs(30))?;
        Ok(group)
    }

    /// The member ids.
    pub fn members(&self) -> &[u64] {
        &self.members
    }

    /// The members with a running process (as far as the group knows: not killed).
    pub fn live(&self) -> Vec<u64> {
        self.cluster.ids()
    }

    /// Node `id`'s configuration beyond the fixture's: its data directory and `[service]`.
    fn extra(&self, id: u64) -> String {
        let data = self.cluster.dir.path().join(format!("data{id}"));
        let mut text = format!(
            "data_dir = {:?}\n[service]\nstrategy = \"{}\"\nstate_machine = \"kv\"\ndurability = \"grouped\"\n",
            data.display().to_string(),
            self.strategy.name()
        );
        if let Some(keys) = &self.replica_keys {
            text.push_str(&keys.config(id));
        }
        text
    }

    /// Starts node `id` (new, or restarted from its data directory) with every other
    /// member's last address as a seed, and waits for its `listening` line. A restarted node
    /// listens on its previous address, as a deployment's would (front ends and restarted
    /// peers know it), unless that port was taken meanwhile.
    pub fn launch(&mut self, id: u64) -> Result<(), String> {
        let seeds: Vec<SocketAddr> = self
            .members
            .iter()
            .filter(|n| **n != id)
            .filter_map(|n| self.addresses.get(n).copied())
            .collect();
        let extra = self.extra(id);
        let key = self.cluster.key_file.clone();
        let mut text = config_text(id, &seeds, Some(&key), &extra);
        let previous = self.addresses.get(&id).copied();
        if let Some(addr) = previous {
            text = text.replacen(
                "listen = \"127.0.0.1:0\"",
                &format!("listen = \"{addr}\""),
                1,
            );
        }
        *self.started.entry(id).or_default() += 1;
        let run = self.started[&id];
        let config = self
            .cluster
            .dir
            .write(&format!("node{id}-run{run}.toml"), &text);
        let node = match std::panic::catch_unwind(|| NodeProcess::start(&config, id)) {
            Ok(node) => node,
            Err(e) if previous.is_some() => {
                eprintln!(
                    "node {id} could not listen on its previous address again ({}); a new port",
                    panic_text(&e)
                );
                let text = config_text(id, &seeds, Some(&key), &extra);
                let config = self
                    .cluster
                    .dir
                    .write(&format!("node{id}-run{run}b.toml"), &text);
                std::panic::catch_unwind(|| NodeProcess::start(&config, id))
                    .map_err(|e| format!("node {id} did not start: {}", panic_text(&e)))?
            }
            Err(e) => return Err(format!("node {id} did not start: {}", panic_text(&e))),
        };
        self.addresses.insert(id, node.addr);
        self.cluster.add(node);
        Ok(())
    }

    /// SIGKILLs node `id`, waits for the process to end and keeps its output.
    pub fn kill(&mut self, id: u64) {
        self.cluster.node(id).sigkill();
        let mut node = self.cluster.remove(id);
        let _ = node.wait_exit(Duration::from_secs(10));
        self.retire(id, &mut node);
    }

    /// SIGKILLs every running member at once (as close together as signals go), then
    /// reaps them and keeps their output.
    pub fn kill_all(&mut self) {
        let live = self.live();
        for id in &live {
            self.cluster.node(*id).sigkill();
        }
        for id in live {
            let mut node = self.cluster.remove(id);
            let _ = node.wait_exit(Duration::from_secs(10));
            self.retire(id, &mut node);
        }
    }

    fn retire(&mut self, id: u64, node: &mut NodeProcess) {
        let run = self.started.get(&id).copied().unwrap_or(0);
        // Give the reader threads a moment to collect the last lines.
        std::thread::sleep(Duration::from_millis(20));
        let (stdout, stderr) = (node.stdout_text(), node.stderr_lines().join("\n"));
        self.retired
            .push((format!("node{id}-run{run}.stdout"), stdout));
        self.retired
            .push((format!("node{id}-run{run}.log"), stderr));
    }

    /// Sends `SIG<name>` (`STOP`, `CONT`) to node `id`.
    pub fn signal(&mut self, id: u64, name: &str) {
        let pid = self.cluster.node(id).pid();
        let status = std::process::Command::new("kill")
            .args([format!("-{name}"), pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{name} {pid}");
    }

    /// The latest view among the running members (highest epoch).
    pub fn latest_view(&mut self) -> Option<ViewLine> {
        let live = self.live();
        live.into_iter()
            .filter_map(|id| self.cluster.node(id).latest_view())
            .max_by_key(|v| v.epoch)
    }

    /// The coordinator of the latest view (rank 0: under a total order also the sequencer,
    /// under passive replication the primary).
    pub fn coordinator(&mut self) -> Option<u64> {
        self.latest_view().map(|v| v.coordinator)
    }

    /// The replica layer's idea of the primary (or sequencer): `primary=` of the latest
    /// `replica-view` line of the running members.
    pub fn replica_primary(&mut self) -> Option<u64> {
        let mut best: Option<(u64, u64)> = None;
        for id in self.live() {
            for line in self.cluster.node(id).lines() {
                let fields = viewsync_services::report::Fields::parse(&line.text);
                if !fields.is("replica-view") {
                    continue;
                }
                if let (Some(epoch), Some(primary)) = (fields.get("epoch"), fields.get("primary")) {
                    if best.is_none_or(|(e, _)| epoch > e) {
                        best = Some((epoch, primary));
                    }
                }
            }
        }
        best.map(|(_, p)| p)
    }

    /// Waits until every running member's latest view is the same view of exactly the
    /// running members, all voting.
    pub fn wait_converged(&mut self, timeout: Duration) -> Result<ViewLine, String> {
        let want = self.live();
        self.wait_view_of(&want, timeout)
    }

    /// Waits until the latest view of every member of `ids` is one view of exactly `ids`.
    pub fn wait_view_of(&mut self, ids: &[u64], timeout: Duration) -> Result<ViewLine, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let latest: Vec<Option<ViewLine>> = ids
                .iter()
                .map(|id| self.cluster.node(*id).latest_view())
                .collect();
            if let Some(Some(first)) = latest.first() {
                if first.sorted_members() == ids
                    && first.learners.is_empty()
                    && latest.iter().all(|v| v.as_ref() == Some(first))
                {
                    return Ok(first.clone());
                }
            }
            self.check_running()?;
            if Instant::now() >= deadline {
                let seen: Vec<String> = ids
                    .iter()
                    .zip(&latest)
                    .map(|(id, v)| match v {
                        Some(v) => format!("node {id}: {v}"),
                        None => format!("node {id}: no view"),
                    })
                    .collect();
                return Err(format!(
                    "members {ids:?} did not agree on one view of them within {timeout:?}; latest views:\n  {}",
                    seen.join("\n  ")
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Fails if a running member's process ended (a crash, or an exit it chose) or logged
    /// a panic or a stopped replica.
    pub fn check_running(&mut self) -> Result<(), String> {
        for id in self.live() {
            let node = self.cluster.node(id);
            if let Some(status) = node.try_exit() {
                return Err(format!("node {id} exited by itself: {status}"));
            }
            if let Some(line) = node
                .stderr_lines()
                .into_iter()
                .find(|l| l.contains("panicked") || l.contains("replica stopped"))
            {
                return Err(format!("node {id} logged: {line}"));
            }
        }
        Ok(())
    }

    /// The running members' addresses, by node id.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.cluster.addrs()
    }

    /// The address of member `id`.
    pub fn addr(&self, id: u64) -> SocketAddr {
        self.cluster.addr(id)
    }

    /// The cluster key.
    pub fn key(&self) -> ClusterKey {
        ClusterKey::load(&self.cluster.key_file).expect("the cluster key loads")
    }

    /// A front end through `seeds`, as the strategy's clients use (signed for the
    /// Byzantine strategy), with `routing` otherwise.
    pub fn front_end(&self, seeds: Vec<SocketAddr>, routing: Routing) -> FrontEnd<KvStore> {
        let mut config = FrontEndConfig::new(GroupName::new(GROUP).unwrap(), seeds, "kv");
        config.key = Some(self.key());
        config.routing = routing;
        config.attempt_timeout = ATTEMPT_TIMEOUT;
        config.deadline = CALL_DEADLINE;
        config.signed_replies = self.replica_keys.as_ref().map(ReplicaKeys::trusted);
        FrontEnd::new(config)
    }

    /// Writes every process's stdout and log (the killed ones' too) into `dir`.
    pub fn save_outputs(&mut self, dir: &Path) {
        for id in self.live() {
            let run = self.started.get(&id).copied().unwrap_or(0);
            let node = self.cluster.node(id);
            let (stdout, stderr) = (node.stdout_text(), node.stderr_lines().join("\n"));
            self.retired
                .push((format!("node{id}-run{run}.stdout"), stdout));
            self.retired
                .push((format!("node{id}-run{run}.log"), stderr));
        }
        for (name, text) in &self.retired {
            let _ = std::fs::write(dir.join(name), text);
        }
    }
}

/// The message of a caught panic.
pub fn panic_text(payload: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else {
        "a panic".to_string()
    }
}
