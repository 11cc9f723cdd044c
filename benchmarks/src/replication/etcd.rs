//! The etcd side of a replication cell: an etcd cluster of the same size on loopback, from
//! the `etcd` binary on the machine (Debian: `apt install etcd-server`), called through its
//! gRPC API by the `etcd-client` crate, one connection per client, with the same workload
//! as the viewsync cells. etcd answers a put once its write-ahead log is synced at a
//! majority (batched across concurrent requests) and serves linearizable gets: the
//! guarantees of `passive` with `durability = "grouped"`.
//!
//! The client is behind the crate's `etcd` feature (its build needs `protoc`: `apt install
//! protobuf-compiler`), so the default build and CI do not compile gRPC; without it, etcd
//! cells are skipped with a message that says how to build it.

use super::load::Measurement;
use super::{Cell, Workload};
use crate::BoxError;
use std::path::Path;

/// Why etcd cells cannot run here, or `None` when they can.
pub fn unavailable(etcd: &Path) -> Option<String> {
    if !cfg!(feature = "etcd") {
        return Some(
            "viewsync-bench was built without the `etcd` feature \
             (cargo build --release -p viewsync-benchmarks --features etcd; it needs protoc: \
             apt install protobuf-compiler)"
                .into(),
        );
    }
    match std::process::Command::new(etcd).arg("--version").output() {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(format!(
            "{} --version failed: {}",
            etcd.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(error) => Some(format!(
            "{} not found ({error}): install etcd (Debian: apt install etcd-server) or pass --etcd PATH",
            etcd.display()
        )),
    }
}

/// Measures `cell` against an etcd cluster under `dir`.
#[cfg(not(feature = "etcd"))]
pub fn measure(
    etcd: &Path,
    _dir: &Path,
    _cell: &Cell,
    _workload: &Workload,
) -> Result<Measurement, BoxError> {
    Err(unavailable(etcd).unwrap_or_default().into())
}

/// Measures `cell` against an etcd cluster under `dir`.
#[cfg(feature = "etcd")]
pub fn measure(
    etcd: &Path,
    dir: &Path,
    cell: &Cell,
    workload: &Workload,
) -> Result<Measurement, BoxError> {
    with_client::measure(etcd, dir, cell, workload)
}

#[cfg(feature = "etcd")]
mod with_client {
    use super::super::load::{self, KvCaller, KvRequest, Measurement};
    use super::super::{Cell, Workload};
    use crate::BoxError;
    use std::net::TcpListener;
    use std::path::Path;
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    /// etcd processes, killed on drop.
    struct Cluster {
        children: Vec<Child>,
        endpoints: Vec<String>,
    }

    impl Drop for Cluster {
        fn drop(&mut self) {
            for child in &mut self.children {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    /// A free loopback port (bound and released: etcd takes ports only as numbers).
    fn free_port() -> Result<u16, BoxError> {
        Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
    }

    impl Cluster {
        fn start(etcd: &Path, dir: &Path, members: usize) -> Result<Cluster, BoxError> {
            let mut ports = Vec::new();
            for _ in 0..members {
                ports.push((free_port()?, free_port()?));
            }
            let initial: Vec<String> = ports
                .iter()
                .enumerate()
                .map(|(i, (_, peer))| format!("e{}=http://127.0.0.1:{peer}", i + 1))
                .collect();
            let token = format!("bench-{}", std::process::id());
            let mut cluster = Cluster {
                children: Vec::new(),
                endpoints: Vec::new(),
            };
            for (i, (client, peer)) in ports.iter().enumerate() {
                let name = format!("e{}", i + 1);
                let log = std::fs::File::create(dir.join(format!("{name}.log")))?;
                let child = Command::new(etcd)
                    .arg("--name")
                    .arg(&name)
                    .arg("--data-dir")
                    .arg(dir.join(&name))
                    .arg(format!("--listen-client-urls=http://127.0.0.1:{client}"))
                    .arg(format!("--advertise-client-urls=http://127.0.0.1:{client}"))
                    .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer}"))
                    .arg(format!(
                        "--initial-advertise-peer-urls=http://127.0.0.1:{peer}"
                    ))
                    .arg(format!("--initial-cluster={}", initial.join(",")))
                    .arg(format!("--initial-cluster-token={token}"))
                    .arg("--initial-cluster-state=new")
                    .arg("--logger=zap")
                    .arg("--log-level=error")
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(log)
                    .spawn()?;
                cluster.children.push(child);
                cluster.endpoints.push(format!("http://127.0.0.1:{client}"));
            }
            Ok(cluster)
        }

        fn pids(&self) -> Vec<u32> {
            self.children.iter().map(Child::id).collect()
        }
    }

    /// One etcd client: its own gRPC connection.
    struct EtcdCaller {
        client: etcd_client::Client,
    }

    impl KvCaller for EtcdCaller {
        async fn call(&mut self, request: KvRequest<'_>) -> Result<(), String> {
            match request {
                KvRequest::Put { key, value } => self.client.put(key, value, None).await.map(drop),
                KvRequest::Get { key } => self.client.get(key, None).await.map(drop),
            }
            .map_err(|e| e.to_string())
        }
    }

    pub(super) fn measure(
        etcd: &Path,
        dir: &Path,
        cell: &Cell,
        workload: &Workload,
    ) -> Result<Measurement, BoxError> {
        let cluster = Cluster::start(etcd, dir, cell.members)?;
        let runtime = load::runtime()?;
        let endpoints = cluster.endpoints.clone();
        let callers = runtime.block_on(async {
            // Ready once a put goes through (a leader is elected).
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let attempt = async {
                    let mut client = etcd_client::Client::connect(&endpoints, None).await?;
                    client.put("ready", "1", None).await?;
                    Ok::<_, etcd_client::Error>(())
                };
                match tokio::time::timeout(Duration::from_secs(2), attempt).await {
                    Ok(Ok(())) => break,
                    _ if Instant::now() > deadline => {
                        return Err::<Vec<EtcdCaller>, BoxError>(
                            "etcd did not elect a leader within 60 s; see its logs".into(),
                        )
                    }
                    _ => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
            let mut callers = Vec::new();
            for _ in 0..cell.clients {
                callers.push(EtcdCaller {
                    client: etcd_client::Client::connect(&endpoints, None).await?,
                });
            }
            Ok(callers)
        })?;
        // The connections' background tasks live on `runtime`: the load runs there too.
        load::run(&runtime, callers, cell, workload, &cluster.pids())
    }
}
