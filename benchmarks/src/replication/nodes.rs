//! The viewsync side of a replication cell: a group of `viewsync node` processes running the
//! key-value store under one strategy, and the front ends that call it.

use super::load::{self, KvCaller, KvRequest, Measurement};
use super::{Cell, StrategyName, Workload};
use crate::BoxError;
use rand::RngCore;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use viewsync::wire::ClusterKey;
use viewsync::GroupName;
use viewsync_services::client_cli::load_replica_keys;
use viewsync_services::frontend::{FrontEnd, FrontEndConfig};
use viewsync_services::replication::signed;
use viewsync_services::report::{ListeningLine, ViewLine};
use viewsync_services::state_machine::kv::{KvOp, KvStore};
use viewsync_services::strategy;

/// The group the cells' nodes serve.
const GROUP: &str = "bench";
/// How long a group may take to form.
const FORM_TIMEOUT: Duration = Duration::from_secs(60);

/// Member processes, killed on drop.
pub struct Nodes {
    children: Vec<Child>,
    /// Each member's address, node 1 first.
    pub addrs: Vec<SocketAddr>,
    /// Each member's configuration file.
    pub configs: Vec<PathBuf>,
    /// The cluster key.
    pub key: ClusterKey,
    lines: mpsc::Receiver<(usize, String)>,
    /// Each member's latest `view` line: whether it has all members and no learner.
    full_view: Vec<bool>,
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Nodes {
    /// Starts `cell.members` nodes running `strategy` with data directories under `dir`, node
    /// 1 founding the group and each next one joining through those before it, and waits
    /// until every one installed a view of all of them with no learner left.
    pub fn start(
        exe: &Path,
        dir: &Path,
        strategy: StrategyName,
        cell: &Cell,
    ) -> Result<Nodes, BoxError> {
        let mut key = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut key);
        let key_hex = hex::encode(key);
        let key_file = dir.join("cluster.key");
        std::fs::write(&key_file, format!("{key_hex}\n"))?;
        let replica_keys = match strategy {
            StrategyName::ActiveByzantine => Some(byzantine_keys(dir, cell.members)?),
            _ => None,
        };
        let (tx, lines) = mpsc::channel();
        let mut nodes = Nodes {
            children: Vec::new(),
            addrs: Vec::new(),
            configs: Vec::new(),
            key: ClusterKey::from_hex(&key_hex)?,
            lines,
            full_view: vec![false; cell.members],
        };
        for id in 1..=cell.members {
            let mut text = format!(
                "node_id = {id}\nlisten = \"127.0.0.1:0\"\ngroups = [\"{GROUP}\"]\nkey_file = {:?}\ndata_dir = {:?}\nseeds = [{}]\n",
                key_file.display().to_string(),
                dir.join(format!("node{id}")).display().to_string(),
                nodes
                    .addrs
                    .iter()
                    .map(|a| format!("\"{a}\""))
                    .collect::<Vec<_>>()
                    .join(", "),
            );
            if id == 1 {
                text.push_str("bootstrap = true\n");
            }
            text.push_str(&format!(
                "[service]\nstrategy = \"{}\"\nstate_machine = \"kv\"\ndurability = \"{}\"\n",
                strategy.strategy().name(),
                cell.durability.name()
            ));
            if let Some((public, files)) = &replica_keys {
                text.push_str(&format!(
                    "f = {}\nsigning_key_file = {:?}\n[service.replica_keys]\n{public}",
                    (cell.members - 1) / 2,
                    files[id - 1].display().to_string()
                ));
            }
            let config = dir.join(format!("node{id}.toml"));
            std::fs::write(&config, text)?;
            let log = std::fs::File::create(dir.join(format!("node{id}.log")))?;
            let mut child = Command::new(exe)
                .args(["node", "--config"])
                .arg(&config)
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(log)
                .spawn()?;
            let stdout = child.stdout.take().ok_or("no stdout")?;
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if tx.send((id, line)).is_err() {
                        break;
                    }
                }
            });
            nodes.children.push(child);
            nodes.configs.push(config);
            let addr = nodes.wait_for(|_, node, line| {
                (node == id)
                    .then(|| ListeningLine::parse(line).map(|l| l.addr))
                    .flatten()
            })?;
            nodes.addrs.push(addr);
        }
        // Formed once every member's latest view holds all of them and no learner.
        nodes.wait_for(|nodes, _, _| nodes.full_view.iter().all(|f| *f).then_some(()))?;
        Ok(nodes)
    }

    /// Reads member lines until `found` returns something (or a member exits, or
    /// [`FORM_TIMEOUT`] passes). Every `view` line read on the way counts for
    /// the wait for the group to form, whatever is being waited for.
    fn wait_for<T>(
        &mut self,
        mut found: impl FnMut(&Self, usize, &str) -> Option<T>,
    ) -> Result<T, BoxError> {
        let deadline = Instant::now() + FORM_TIMEOUT;
        loop {
            if let Some(value) = found(self, 0, "") {
                return Ok(value);
            }
            for (i, child) in self.children.iter_mut().enumerate() {
                if let Some(status) = child.try_wait()? {
                    return Err(format!("node {} exited ({status}); see its .log", i + 1).into());
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err("the group did not form within 60 s".into());
            }
            match self
                .lines
                .recv_timeout(left.min(Duration::from_millis(200)))
            {
                Ok((node, line)) => {
                    if let Some(view) = ViewLine::parse(&line) {
                        self.full_view[node - 1] =
                            view.members.len() == self.full_view.len() && view.learners.is_empty();
                    }
                    if let Some(value) = found(self, node, &line) {
                        return Ok(value);
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err("every member's stdout closed".into())
                }
            }
        }
    }

    /// The members' process ids.
    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }

    /// Whether a member exited (died) since the start.
    pub fn exited(&mut self) -> Option<String> {
        for (i, child) in self.children.iter_mut().enumerate() {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(format!("node {} exited ({status})", i + 1));
            }
        }
        None
    }
}

/// A signing key per member, written under `dir`: the `[service.replica_keys]` lines and
/// the key files.
fn byzantine_keys(dir: &Path, members: usize) -> Result<(String, Vec<PathBuf>), BoxError> {
    let mut public = String::new();
    let mut files = Vec::new();
    for id in 1..=members {
        let path = dir.join(format!("replica{id}.key"));
        let key = signed::generate_signing_key();
        signed::write_signing_key(&path, &key)?;
        public.push_str(&format!(
            "{id} = \"{}\"\n",
            signed::public_key_hex(&key.verifying_key())
        ));
        files.push(path);
    }
    Ok((public, files))
}

/// A front end of the key-value store.
pub struct ViewsyncCaller {
    front_end: FrontEnd<KvStore>,
}

impl KvCaller for ViewsyncCaller {
    async fn call(&mut self, request: KvRequest<'_>) -> Result<(), String> {
        let op = match request {
            KvRequest::Put { key, value } => KvOp::put(key, value),
            KvRequest::Get { key } => KvOp::get(key),
        };
        self.front_end
            .call(op)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }
}

/// Measures `cell` under `strategy`: starts the group under `dir`, loads the keys, runs the
/// load, and stops the group.
pub fn measure(
    exe: &Path,
    dir: &Path,
    strategy: StrategyName,
    cell: &Cell,
    workload: &Workload,
) -> Result<Measurement, BoxError> {
    let mut nodes = Nodes::start(exe, dir, strategy, cell)?;
    let mut config = FrontEndConfig::new(GroupName::new(GROUP)?, nodes.addrs.clone(), "kv");
    config.key = Some(nodes.key.clone());
    config.routing = strategy::routing(strategy.strategy()).ok_or("not a replicated strategy")?;
    if strategy == StrategyName::ActiveByzantine {
        config.signed_replies = Some(load_replica_keys(&nodes.configs[0])?);
    }
    let callers: Vec<ViewsyncCaller> = (0..cell.clients)
        .map(|_| ViewsyncCaller {
            front_end: FrontEnd::new(config.clone()),
        })
        .collect();
    let runtime = load::runtime()?;
    let measurement = load::run(&runtime, callers, cell, workload, &nodes.pids())?;
    if let Some(exit) = nodes.exited() {
        return Err(format!(
            "{exit} during the cell; see its log under {}",
            dir.display()
        )
        .into());
    }
    Ok(measurement)
}
