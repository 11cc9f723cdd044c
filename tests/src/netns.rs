//! Hosts in network namespaces, for partitions between real processes.
//!
//! A [`Network`] is a bridge in a namespace of its own and one namespace per host, each
//! joined to the bridge by a veth pair (`eth0` in the host, `pN` on the bridge) with an
//! address on a private /24 chosen per network. Nothing is added to the namespace the tests
//! run in: no interface, address or route, so the hosts reach each other and nothing else,
//! and the tests reach them only from inside ([`Network::command`] runs a program in a host
//! with `ip netns exec`; [`Network::spawn_in`] runs a closure on a thread that joined a
//! host's namespace, so the sockets it opens live there).
//!
//! Faults, each undone by [`Network::heal`]:
//!
//! - [`Network::cut`]: the host's bridge port goes down (a failed switch port): every frame
//!   to or from the host is lost silently; the host's own address stays up, so clients
//!   inside the host still reach the node there;
//! - [`Network::split_off`]: the host's bridge port moves to a second bridge: the hosts
//!   split off together reach each other and nothing else (a partition with two sides);
//! - [`Network::unplug`]: the host's own `eth0` goes down inside it: its sends to the others
//!   fail at once (no route) instead of vanishing; its own address stays reachable inside it;
//! - [`Network::drop_outgoing`] / [`Network::drop_incoming`]: one-way loss, a queueing
//!   discipline that drops every frame leaving the host's `eth0` (or leaving the bridge for
//!   the host): `netem loss 100%` where the kernel has netem, else a FIFO of length 0.
//!
//! Names are `vs-p<pid>k<n>-<host>`: on creation, namespaces of that form whose process is
//! gone (a run killed before it could clean up) are deleted, with whatever still ran in
//! them. Dropping a `Network` (also while panicking) deletes its namespaces.
//!
//! Namespaces need root (`CAP_SYS_ADMIN`) and the `ip` utility; [`unavailable`] says why
//! they cannot be made here, once per test binary, so that tests can skip with a message.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::Ipv4Addr;
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::thread::{self, JoinHandle};

/// The prefix of every namespace this harness makes.
const PREFIX: &str = "vs-p";

/// Why network namespaces cannot be made on this machine (`None`: they can). Probed once:
/// `ip` runs, a namespace, a bridge and a veth pair can be made in it, and a thread can join
/// it.
pub fn unavailable() -> Option<String> {
    static PROBE: OnceLock<Option<String>> = OnceLock::new();
    PROBE.get_or_init(|| probe().err()).clone()
}

/// Prints why the calling test skips and returns true if network namespaces are
/// unavailable; panics instead if `VIEWSYNC_REQUIRE_NETNS` is set (a machine where they must
/// run).
pub fn skip_if_unavailable(test: &str) -> bool {
    let Some(reason) = unavailable() else {
        return false;
    };
    if std::env::var_os("VIEWSYNC_REQUIRE_NETNS").is_some() {
        panic!(
            "{test}: network namespaces unavailable ({reason}) and VIEWSYNC_REQUIRE_NETNS is set"
        );
    }
    say(&format!(
        "SKIPPED: network namespaces unavailable: {reason} ({test})"
    ));
    true
}

/// Writes `line` to the test's standard error past the test harness's capture, so that it
/// shows in the output of a passing test too.
pub fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn probe() -> Result<(), String> {
    match Command::new("ip").arg("-V").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => return Err(format!("`ip -V` failed: {}", text(&out))),
        Err(e) => return Err(format!("cannot run `ip` (iproute2): {e}")),
    }
    let network = Network::new(&["probe"])?;
    let ns = network.namespace("probe").to_string();
    let joined = network
        .spawn_in("probe", move || {
            current_namespace_inode() == namespace_inode(&ns)
        })
        .join()
        .map_err(|_| "a thread could not join a network namespace".to_string())?;
    if !joined {
        return Err("a thread that joined a namespace is not in it".into());
    }
    Ok(())
}

/// One host: its namespace, its address on the network, its port on the bridge.
#[derive(Clone, Debug)]
pub struct Host {
    /// The namespace's name (`ip netns exec NAME ...`).
    pub namespace: String,
    /// Its address on the network (on its `eth0`).
    pub ip: Ipv4Addr,
    port: String,
}

/// A bridge and hosts, each in a network namespace of its own (see the [module
/// documentation](self)).
pub struct Network {
    bridge: String,
    hosts: BTreeMap<String, Host>,
    /// Hosts with a fault in place, to undo in [`Network::heal`].
    faults: BTreeMap<String, Vec<Fault>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    Cut,
    SplitOff,
    Unplugged,
    DropOutgoing,
    DropIncoming,
}

impl Network {
    /// Makes the bridge and one host per name (`n1`, `client`, ...), addresses `10.A.B.1`,
    /// `.2`, ... in the order given, on a /24 of its own. Errors name the command that failed
    /// (everything made so far is deleted).
    pub fn new(names: &[&str]) -> Result<Network, String> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        clean_leftovers();
        let pid = std::process::id();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let stem = format!("{PREFIX}{pid}k{n}");
        // A /24 of its own per network of this run: namespaces never see each other's, but
        // distinct subnets keep captures and logs of parallel runs apart.
        let subnet = [10, 64 + (pid % 128) as u8, (n % 250) as u8];
        let mut network = Network {
            bridge: format!("{stem}-br"),
            hosts: BTreeMap::new(),
            faults: BTreeMap::new(),
        };
        ip(&["netns", "add", &network.bridge])?;
        let br = network.bridge.clone();
        ip(&["-n", &br, "link", "set", "lo", "up"])?;
        ip(&["-n", &br, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &br, "link", "set", "br0", "up"])?;
        for (i, name) in names.iter().enumerate() {
            let namespace = format!("{stem}-{name}");
            let port = format!("p{}", i + 1);
            let ip_addr = Ipv4Addr::new(subnet[0], subnet[1], subnet[2], i as u8 + 1);
            ip(&["netns", "add", &namespace])?;
            network.hosts.insert(
                name.to_string(),
                Host {
                    namespace: namespace.clone(),
                    ip: ip_addr,
                    port: port.clone(),
                },
            );
            ip(&["-n", &namespace, "link", "set", "lo", "up"])?;
            // Made in the bridge's namespace, the peer moved straight into the host's: the
            // pair never appears in the namespace the tests run in.
            ip(&[
                "-n", &br, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns",
                &namespace,
            ])?;
            ip(&["-n", &br, "link", "set", &port, "master", "br0"])?;
            ip(&["-n", &br, "link", "set", &port, "up"])?;
            ip(&[
                "-n",
                &namespace,
                "addr",
                "add",
                &format!("{ip_addr}/24"),
                "dev",
                "eth0",
            ])?;
            ip(&["-n", &namespace, "link", "set", "eth0", "up"])?;
        }
        Ok(network)
    }

    /// Host `name`.
    pub fn host(&self, name: &str) -> &Host {
        self.hosts
            .get(name)
            .unwrap_or_else(|| panic!("no host {name} in the network"))
    }

    /// The namespace of host `name`.
    pub fn namespace(&self, name: &str) -> &str {
        &self.host(name).namespace
    }

    /// The address of host `name`.
    pub fn ip(&self, name: &str) -> Ipv4Addr {
        self.host(name).ip
    }

    /// `program` to be run inside host `name` (`ip netns exec NAMESPACE program`).
    pub fn command(&self, name: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", self.namespace(name)])
            .arg(program);
        command
    }

    /// Runs `f` on a new thread inside host `name`'s namespace: every socket it opens is the
    /// host's. Panics (on that thread) if the thread cannot join the namespace, so nothing
    /// ever connects from the namespace the tests run in.
    pub fn spawn_in<T: Send + 'static>(
        &self,
        name: &str,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> JoinHandle<T> {
        let namespace = self.namespace(name).to_string();
        thread::spawn(move || {
            enter(&namespace);
            f()
        })
    }

    /// Cuts host `name` off: its bridge port goes down, and every frame to or from it is
    /// lost silently (its own address stays up inside it).
    pub fn cut(&mut self, name: &str) {
        let port = self.host(name).port.clone();
        ip(&["-n", &self.bridge, "link", "set", &port, "down"]).unwrap_or_else(|e| panic!("{e}"));
        self.faults.entry(name.into()).or_default().push(Fault::Cut);
    }

    /// Moves host `name`'s bridge port to a second bridge (made on first use): the hosts
    /// split off reach each other, and neither the others nor the others them.
    pub fn split_off(&mut self, name: &str) {
        let (br, port) = (self.bridge.clone(), self.host(name).port.clone());
        if ip(&["-n", &br, "link", "show", "br1"]).is_err() {
            ip(&["-n", &br, "link", "add", "br1", "type", "bridge"])
                .and_then(|_| ip(&["-n", &br, "link", "set", "br1", "up"]))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        ip(&["-n", &br, "link", "set", &port, "master", "br1"]).unwrap_or_else(|e| panic!("{e}"));
        self.faults
            .entry(name.into())
            .or_default()
            .push(Fault::SplitOff);
    }

    /// Takes host `name`'s own link (`eth0`, inside its namespace) down: its sends to the
    /// others fail at once (no route); its own address stays reachable inside it.
    pub fn unplug(&mut self, name: &str) {
        let ns = self.namespace(name).to_string();
        ip(&["-n", &ns, "link", "set", "eth0", "down"]).unwrap_or_else(|e| panic!("{e}"));
        self.faults
            .entry(name.into())
            .or_default()
            .push(Fault::Unplugged);
    }

    /// Drops every frame host `name` sends (it still receives). `Err` with the reason if the
    /// kernel has no queueing discipline for it.
    pub fn drop_outgoing(&mut self, name: &str) -> Result<(), String> {
        let ns = self.namespace(name).to_string();
        drop_all_leaving(&ns, "eth0")?;
        self.faults
            .entry(name.into())
            .or_default()
            .push(Fault::DropOutgoing);
        Ok(())
    }

    /// Drops every frame sent to host `name` (it still sends). `Err` with the reason if the
    /// kernel has no queueing discipline for it.
    pub fn drop_incoming(&mut self, name: &str) -> Result<(), String> {
        let (br, port) = (self.bridge.clone(), self.host(name).port.clone());
        drop_all_leaving(&br, &port)?;
        self.faults
            .entry(name.into())
            .or_default()
            .push(Fault::DropIncoming);
        Ok(())
    }

    /// Undoes every fault of host `name`.
    pub fn heal(&mut self, name: &str) {
        let host = self.host(name).clone();
        for fault in self.faults.remove(name).unwrap_or_default() {
            let result = match fault {
                Fault::Cut => ip(&["-n", &self.bridge, "link", "set", &host.port, "up"]),
                Fault::SplitOff => ip(&[
                    "-n",
                    &self.bridge,
                    "link",
                    "set",
                    &host.port,
                    "master",
                    "br0",
                ]),
                // The link's routes, dropped when it went down, come back with it.
                Fault::Unplugged => ip(&["-n", &host.namespace, "link", "set", "eth0", "up"]),
                Fault::DropOutgoing => {
                    ip_tc(&host.namespace, &["qdisc", "del", "dev", "eth0", "root"])
                }
                Fault::DropIncoming => {
                    ip_tc(&self.bridge, &["qdisc", "del", "dev", &host.port, "root"])
                }
            };
            result.unwrap_or_else(|e| panic!("healing {name}: {e}"));
        }
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        let mut names: Vec<String> = self.hosts.values().map(|h| h.namespace.clone()).collect();
        names.push(self.bridge.clone());
        for ns in names {
            delete_namespace(&ns);
        }
    }
}

/// Replaces the root queueing discipline of `dev` in namespace `ns` by one that drops
/// every frame: `netem loss 100%`, or where the kernel lacks netem a FIFO of length 0.
fn drop_all_leaving(ns: &str, dev: &str) -> Result<(), String> {
    let netem = ip_tc(
        ns,
        &[
            "qdisc", "replace", "dev", dev, "root", "netem", "loss", "100%",
        ],
    );
    let Err(netem) = netem else { return Ok(()) };
    ip_tc(
        ns,
        &[
            "qdisc", "replace", "dev", dev, "root", "pfifo", "limit", "0",
        ],
    )
    .map_err(|fifo| format!("no queueing discipline drops frames here: {netem}; {fifo}"))
}

/// Runs `ip ARGS`; `Err` names the command and what it printed.
fn ip(args: &[&str]) -> Result<(), String> {
    run(Command::new("ip").args(args))
}

/// Runs `tc ARGS` inside namespace `ns`.
fn ip_tc(ns: &str, args: &[&str]) -> Result<(), String> {
    run(Command::new("ip")
        .args(["netns", "exec", ns, "tc"])
        .args(args))
}

fn run(command: &mut Command) -> Result<(), String> {
    let shown = format!("{command:?}");
    match command.stdin(Stdio::null()).output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!("{shown} failed ({}): {}", out.status, text(&out))),
        Err(e) => Err(format!("cannot run {shown}: {e}")),
    }
}

fn text(out: &Output) -> String {
    let mut s = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if s.is_empty() {
        s = String::from_utf8_lossy(&out.stdout).trim().to_string();
    }
    s
}

/// The calling thread joins namespace `ns` (as `ip netns exec` does for a process), and
/// checks that it did.
fn enter(ns: &str) {
    let path = format!("/run/netns/{ns}");
    let file = File::open(&path).unwrap_or_else(|e| panic!("cannot open {path}: {e}"));
    nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
        .unwrap_or_else(|e| panic!("cannot join network namespace {ns}: {e}"));
    assert_eq!(
        current_namespace_inode(),
        namespace_inode(ns),
        "this thread is not in namespace {ns} after joining it"
    );
}

fn current_namespace_inode() -> Option<u64> {
    std::fs::metadata("/proc/thread-self/ns/net")
        .ok()
        .map(|m| m.ino())
}

fn namespace_inode(ns: &str) -> Option<u64> {
    std::fs::metadata(format!("/run/netns/{ns}"))
        .ok()
        .map(|m| m.ino())
}

/// Deletes namespace `ns`, ending whatever still runs in it (processes of this harness:
/// nodes a killed run left behind).
fn delete_namespace(ns: &str) {
    if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let _ = Command::new("kill").args(["-KILL", pid]).status();
        }
    }
    let _ = Command::new("ip")
        .args(["netns", "del", ns])
        .stderr(Stdio::null())
        .status();
}

/// Deletes the namespaces of runs whose process is gone.
fn clean_leftovers() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
            return;
        };
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let Some(ns) = line.split_whitespace().next() else {
                continue;
            };
            let Some(pid) = ns
                .strip_prefix(PREFIX)
                .and_then(|rest| rest.split('k').next())
                .and_then(|pid| pid.parse::<u32>().ok())
            else {
                continue;
            };
            if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists()
            {
                eprintln!("deleting namespace {ns}, left by process {pid} (gone)");
                delete_namespace(ns);
            }
        }
    });
}
