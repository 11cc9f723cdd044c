//! The file `viewsync node --config` reads: the node's configuration (see
//! [`viewsync::config`]) plus a `[service]` section that this crate owns.
//!
//! The middleware refuses keys it does not know, and it cannot know the services' keys. So the
//! file is parsed once into a table, `[service]` is taken out and read here (itself refusing
//! unknown keys), and the rest goes to [`NodeConfig::from_table`], which refuses anything else
//! it does not know. (`#[serde(flatten)]` of the node's section would have been shorter, but
//! serde's `deny_unknown_fields` does not work with `flatten`: unknown keys would pass.) A new
//! section is one more field of [`ServiceFileConfig`] and one more `remove` below, with no
//! change to the middleware.
//!
//! ```toml
//! node_id = 1
//! listen = "127.0.0.1:7701"
//! # ... the node's keys and tables (docs/CONFIGURATION.md)
//!
//! [service]
//! strategy = "passive"      # log | passive | passive-backup-reads | active | active-local-reads | active-byzantine | naive | gossip
//! state_machine = "kv"      # kv | bank
//! durability = "grouped"    # fsync | grouped | memory
//! data_dir = "data/kv"      # default: the node's data_dir, under service/<group>
//! ```
//!
//! A replicated strategy (`passive`, `passive-backup-reads`, `active`, `active-local-reads`,
//! `active-byzantine`, `naive`, `gossip`) needs its group's multicasts delivered safely (only once every member holds
//! them): the node's setting for those groups is made `delivery = "safe"` (and an explicit
//! `agreed` is refused). The active strategies also need total order: their groups are made
//! `ordering = "total"` (and an explicit `fifo` or `causal` is refused). So the one line that
//! picks the strategy is the only line to change.

use serde::Deserialize;
use std::path::Path;
use viewsync::config::{parse_table, read_text, section, ConfigError, NodeConfig};

/// The replication strategy a node runs for its groups.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// The log service: prints every delivery and view change
    /// ([`crate::log_service::LogService`]).
    #[default]
    Log,
    /// Primary-backup replication, linearizable, reads included
    /// ([`crate::replication::passive`]).
    Passive,
    /// Primary-backup with reads served by any member: sequentially consistent, not
    /// linearizable.
    PassiveBackupReads,
    /// Active replication (state machine replication, crash mode): every member executes
    /// every request in the group's total order, reads included: linearizable
    /// ([`crate::replication::active`]).
    Active,
    /// Active replication with reads answered by the member they reach, from its state:
    /// sequentially consistent, not linearizable.
    ActiveLocalReads,
    /// Active replication tolerating `f` lying replica managers among `2f + 1`: every member
    /// signs its replies with its own key and front ends take the reply `f + 1` of them
    /// signed ([`crate::replication::signed`]); reads ordered like writes.
    ActiveByzantine,
    /// Each replica applies locally and propagates lazily: neither linearizable nor
    /// sequentially consistent; a labelled contrast for tests and benchmarks
    /// ([`crate::replication::naive`]).
    Naive,
    /// The gossip architecture: any member answers at once, queries wait for what the
    /// front end has seen, updates spread by gossip; causally consistent, available while
    /// partitioned, convergent ([`crate::replication::gossip`]). Tuned by `[service.gossip]`.
    Gossip,
}

impl Strategy {
    /// Whether the strategy replicates a state machine (and serves clients).
    pub fn is_replicated(self) -> bool {
        !matches!(self, Strategy::Log)
    }

    /// Whether the strategy needs its groups' multicasts in total order (every member
    /// executes every request in one order).
    pub fn needs_total_order(self) -> bool {
        matches!(
            self,
            Strategy::Active | Strategy::ActiveLocalReads | Strategy::ActiveByzantine
        )
    }

    /// The name used in configuration files.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Log => "log",
            Strategy::Passive => "passive",
            Strategy::PassiveBackupReads => "passive-backup-reads",
            Strategy::Active => "active",
            Strategy::ActiveLocalReads => "active-local-reads",
            Strategy::ActiveByzantine => "active-byzantine",
            Strategy::Naive => "naive",
            Strategy::Gossip => "gossip",
        }
    }
}

/// Parses a strategy by its configuration-file name (`viewsync demo --strategy NAME`); the
/// error names the valid ones. Goes through serde so the names are `strategy = "..."`'s.
impl std::str::FromStr for Strategy {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        from_name(name, "strategy")
    }
}

/// The state machine a replicated strategy runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MachineKind {
    /// The key-value store ([`crate::state_machine::kv`]).
    #[default]
    Kv,
    /// The bank accounts ([`crate::state_machine::bank`]).
    Bank,
}

impl MachineKind {
    /// The name used in configuration files and in requests.
    pub fn name(self) -> &'static str {
        match self {
            MachineKind::Kv => "kv",
            MachineKind::Bank => "bank",
        }
    }
}

/// Parses a state machine by its configuration-file name (`kv`, `bank`).
impl std::str::FromStr for MachineKind {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        from_name(name, "state machine")
    }
}

/// `name` deserialized as a `T` from its configuration-file spelling, or an error naming
/// `what` and the valid names (serde's "unknown variant `x`, expected one of ...").
fn from_name<T: serde::de::DeserializeOwned>(name: &str, what: &str) -> Result<T, String> {
    use serde::de::IntoDeserializer;
    let deserializer: serde::de::value::StrDeserializer<'_, serde::de::value::Error> =
        name.into_deserializer();
    T::deserialize(deserializer).map_err(|e| {
        let message = e.to_string();
        let choices = message
            .split_once("expected ")
            .map_or(message.as_str(), |(_, rest)| rest);
        format!("unknown {what} `{name}`: expected {choices}")
    })
}

/// How a replica's log reaches the disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DurabilityMode {
    /// fsync after every record: nothing acknowledged is lost even if every member loses
    /// power at once.
    Fsync,
    /// Group commit: records are synced together every couple of milliseconds, and a write is
    /// acknowledged only once it is synced at a majority: the same guarantee as `fsync`, at a
    /// fraction of the syncs.
    #[default]
    Grouped,
    /// Never synced: state survives a process crash but not a power loss of every member
    /// (acknowledged writes may then be lost).
    Memory,
}

impl DurabilityMode {
    /// The name used in configuration files.
    pub fn name(self) -> &'static str {
        match self {
            DurabilityMode::Fsync => "fsync",
            DurabilityMode::Grouped => "grouped",
            DurabilityMode::Memory => "memory",
        }
    }
}

/// The `[service]` section. Every key is optional; unknown keys are refused.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// Which service runs (`strategy = "log"`).
    #[serde(default)]
    pub strategy: Strategy,
    /// The state machine replicated strategies run (`kv` by default).
    #[serde(default)]
    pub state_machine: MachineKind,
    /// How the replica's log reaches the disk (`grouped` by default).
    #[serde(default)]
    pub durability: DurabilityMode,
    /// Where the replica keeps its state and log; by default `service/<group>` under the
    /// node's `data_dir`. Relative paths are resolved against the file's directory.
    #[serde(default)]
    pub data_dir: Option<std::path::PathBuf>,
    /// `active-byzantine` only: how many replica managers may lie (at least 1; the group
    /// lists at least `2f + 1` in `replica_keys`).
    #[serde(default)]
    pub f: Option<usize>,
    /// `active-byzantine` only: this replica manager's signing key (`viewsync keygen
    /// --replica-key PATH` makes one). Relative paths are resolved against the file's
    /// directory.
    #[serde(default)]
    pub signing_key_file: Option<std::path::PathBuf>,
    /// `active-byzantine` only: every replica manager's public key (64 hex digits), by node
    /// id (`[service.replica_keys]`, `1 = "..."`); front ends trust replies signed by these.
    #[serde(default)]
    pub replica_keys: std::collections::BTreeMap<String, String>,
    /// `[service.gossip]`: the gossip strategy's settings (only with `strategy = "gossip"`).
    #[serde(default)]
    pub gossip: Option<GossipSettings>,
}

/// `[service.gossip]`: how gossip replica managers exchange updates.
///
/// ```toml
/// [service.gossip]
/// interval_ms = 100     # how often each RM gossips to each member of its view
/// batch_max = 256       # update log entries per gossip message at most
/// read_only = [3]       # node ids of read-only replicas (updated only by gossip)
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GossipSettings {
    /// Milliseconds between two gossip rounds (1 to 60,000; default 100).
    #[serde(default = "GossipSettings::default_interval_ms")]
    pub interval_ms: u64,
    /// Log entries per gossip message at most (1 to 65,536; default 256).
    #[serde(default = "GossipSettings::default_batch_max")]
    pub batch_max: usize,
    /// The node ids of read-only replicas: they refuse updates and learn them by gossip.
    #[serde(default)]
    pub read_only: Vec<u64>,
}

impl GossipSettings {
    fn default_interval_ms() -> u64 {
        100
    }

    fn default_batch_max() -> usize {
        256
    }

    fn check(&self) -> Result<(), (&'static str, String)> {
        if !(1..=60_000).contains(&self.interval_ms) {
            return Err((
                "service.gossip.interval_ms",
                format!("{} is outside 1 to 60000 (milliseconds)", self.interval_ms),
            ));
        }
        if !(1..=65_536).contains(&self.batch_max) {
            return Err((
                "service.gossip.batch_max",
                format!("{} is outside 1 to 65536 (entries)", self.batch_max),
            ));
        }
        Ok(())
    }
}

impl Default for GossipSettings {
    fn default() -> Self {
        GossipSettings {
            interval_ms: Self::default_interval_ms(),
            batch_max: Self::default_batch_max(),
            read_only: Vec::new(),
        }
    }
}

impl ServiceConfig {
    /// What a front end of an `active-byzantine` group trusts: `f` and the listed public
    /// keys (`None` for the other strategies). The error names the key at fault.
    pub fn signed_replies(
        &self,
    ) -> Result<Option<crate::frontend::SignedReplies>, (&'static str, String)> {
        if self.strategy != Strategy::ActiveByzantine {
            return Ok(None);
        }
        let f = match self.f {
            Some(f) if f >= 1 => f,
            Some(_) => return Err(("service.f", "must be at least 1".into())),
            None => {
                return Err((
                    "service.f",
                    "active-byzantine needs f, the number of replica managers that may lie".into(),
                ))
            }
        };
        let mut keys = std::collections::BTreeMap::new();
        for (node, key) in &self.replica_keys {
            let id = node
                .parse::<u64>()
                .ok()
                .filter(|id| *id > 0)
                .ok_or_else(|| {
                    (
                        "service.replica_keys",
                        format!("{node:?} is not a node id (a positive integer)"),
                    )
                })?;
            let key = crate::replication::signed::parse_public_key(key, &format!("node {id}"))
                .map_err(|e| ("service.replica_keys", e.to_string()))?;
            keys.insert(viewsync::NodeId(id), key);
        }
        if keys.len() < 2 * f + 1 {
            return Err((
                "service.replica_keys",
                format!(
                    "f = {f} needs at least {} replica managers, {} listed",
                    2 * f + 1,
                    keys.len()
                ),
            ));
        }
        Ok(Some(crate::frontend::SignedReplies {
            f,
            keys: crate::replication::signed::ReplicaKeys::new(keys),
        }))
    }

    /// This replica manager's signer under `active-byzantine`: its key file loaded and
    /// checked against the public key listed for `node` (`None` for the other strategies).
    pub fn signer(
        &self,
        node: viewsync::NodeId,
        group: viewsync::GroupName,
    ) -> Result<Option<crate::replication::signed::ReplicaSigner>, (&'static str, String)> {
        use crate::replication::signed;
        let Some(trusted) = self.signed_replies()? else {
            return Ok(None);
        };
        let Some(path) = &self.signing_key_file else {
            return Err((
                "service.signing_key_file",
                "active-byzantine needs this replica manager's signing key (`viewsync keygen \
                 --replica-key PATH` makes one)"
                    .into(),
            ));
        };
        let key = signed::load_signing_key(path)
            .map_err(|e| ("service.signing_key_file", e.to_string()))?;
        let listed = trusted.keys.replicas().any(|n| n == node);
        let signer = signed::ReplicaSigner::new(node, group, key);
        let verifies = trusted.keys.verify_key(node) == Some(signer.public_key());
        if !listed || !verifies {
            return Err((
                "service.replica_keys",
                format!(
                    "node {node}'s signing key has public key {}, which replica_keys does not \
                     list for node {node}",
                    signed::public_key_hex(&signer.public_key())
                ),
            ));
        }
        Ok(Some(signer))
    }

    /// The directory of `group`'s replica: `data_dir/<group>` when `[service] data_dir` is
    /// set, else `<node data_dir>/service/<group>`; `None` when neither is set.
    pub fn replica_dir(
        &self,
        node_data_dir: Option<&Path>,
        group: &viewsync::GroupName,
    ) -> Option<std::path::PathBuf> {
        match (&self.data_dir, node_data_dir) {
            (Some(dir), _) => Some(dir.join(group.as_str())),
            (None, Some(node)) => Some(node.join("service").join(group.as_str())),
            (None, None) => None,
        }
    }
}

/// A whole configuration file: the node's part and the service's.
#[derive(Clone, Debug)]
pub struct ServiceFileConfig {
    /// Everything but `[service]`, validated by the middleware.
    pub node: NodeConfig,
    /// The `[service]` section (defaults when the file has none).
    pub service: ServiceConfig,
}

impl ServiceFileConfig {
    /// Reads and validates a configuration file; relative paths in it are resolved against
    /// its directory, as [`NodeConfig::load`] does.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::parse(&read_text(path)?, path)
    }

    /// Parses and validates configuration text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let mut table = parse_table(text, path)?;
        let mut service: ServiceConfig = match table.remove("service") {
            Some(value) => section(value, path, "service")?,
            None => ServiceConfig::default(),
        };
        // Naming a conflict beats overriding it silently.
        if service.strategy.is_replicated() {
            let agreed = &["agreed"];
            refuse_setting(&table, &service, path, "delivery", agreed, "safe delivery")?;
        }
        if service.strategy.needs_total_order() {
            let partial = &["fifo", "causal"];
            refuse_setting(&table, &service, path, "ordering", partial, "total order")?;
        }
        if let Some(gossip) = &service.gossip {
            let invalid = |key, problem| ConfigError::Invalid {
                path: path.display().to_string(),
                key,
                problem,
            };
            if service.strategy != Strategy::Gossip {
                return Err(invalid(
                    "service.gossip",
                    format!(
                        "[service.gossip] tunes the gossip strategy, but strategy is {:?}",
                        service.strategy.name()
                    ),
                ));
            }
            gossip
                .check()
                .map_err(|(key, problem)| invalid(key, problem))?;
        }
        let mut node = NodeConfig::from_table(table, path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        for file in [&mut service.data_dir, &mut service.signing_key_file]
            .into_iter()
            .flatten()
        {
            if file.is_relative() {
                *file = base.join(&*file);
            }
        }
        let invalid = |(key, problem): (&'static str, String)| ConfigError::Invalid {
            path: path.display().to_string(),
            key,
            problem,
        };
        if service.strategy == Strategy::ActiveByzantine {
            // Checked at load, so a wrong key or list stops the node before it starts.
            let group = viewsync::GroupName::new("check").expect("a valid name");
            service.signer(node.node_id, group).map_err(invalid)?;
        } else if service.f.is_some()
            || service.signing_key_file.is_some()
            || !service.replica_keys.is_empty()
        {
            return Err(invalid((
                "service.f",
                format!(
                    "f, signing_key_file and replica_keys are for strategy \"active-byzantine\", \
                     not {:?}",
                    service.strategy.name()
                ),
            )));
        }
        if service.strategy.is_replicated() {
            require_safe_delivery(&mut node, service.strategy.needs_total_order());
            if service.durability != DurabilityMode::Memory
                && service.data_dir.is_none()
                && node.data_dir.is_none()
            {
                return Err(ConfigError::Invalid {
                    path: path.display().to_string(),
                    key: "service.data_dir",
                    problem: format!(
                        "durability {:?} keeps the replica's log on disk, but neither \
                         `service.data_dir` nor `data_dir` is set (set one, or choose \
                         durability = \"memory\")",
                        service.durability.name()
                    ),
                });
            }
        }
        Ok(ServiceFileConfig { node, service })
    }
}

/// Refuses a file whose `[multicast]` or `[group.NAME]` sets `key` to one of `refused`,
/// which `service`'s strategy cannot work with (it needs `needs`).
fn refuse_setting(
    table: &toml::Table,
    service: &ServiceConfig,
    path: &Path,
    key: &str,
    refused: &[&str],
    needs: &str,
) -> Result<(), ConfigError> {
    let value_refused = |section: Option<&toml::Value>| {
        section
            .and_then(|s| s.get(key))
            .and_then(|d| d.as_str())
            .filter(|value| refused.contains(value))
            .map(str::to_string)
    };
    let mut places = Vec::new();
    if let Some(value) = value_refused(table.get("multicast")) {
        places.push((format!("multicast.{key}"), value));
    }
    if let Some(groups) = table.get("group").and_then(|g| g.as_table()) {
        for (name, options) in groups {
            if let Some(value) = value_refused(Some(options)) {
                places.push((format!("group.{name}.{key}"), value));
            }
        }
    }
    match places.first() {
        None => Ok(()),
        Some((place, value)) => Err(ConfigError::Invalid {
            path: path.display().to_string(),
            key: "service.strategy",
            problem: format!(
                "{:?} needs {needs}, but `{place}` is {value:?}: remove it (the strategy \
                 makes its groups' {key} what it needs)",
                service.strategy.name()
            ),
        }),
    }
}

/// Makes the node deliver its groups' multicasts safely (only once every member holds them),
/// as replicated strategies need, and with `total_order` in one order at every member.
fn require_safe_delivery(node: &mut NodeConfig, total_order: bool) {
    for group in node.groups.clone() {
        prepare_group(node, &group, total_order);
    }
}

/// Gives `group` on `node` the delivery a replicated strategy needs: safe, and in total order
/// when `total_order` ([`Strategy::needs_total_order`]). What the file loader does for the
/// groups a file lists; [`crate::strategy::start_member`] does it for the group it joins.
pub fn prepare_group(node: &mut NodeConfig, group: &viewsync::GroupName, total_order: bool) {
    use viewsync::proto::multicast::Delivery;
    use viewsync::wire::Ordering;
    let multicast = node
        .group_multicast
        .entry(group.clone())
        .or_insert(node.settings.multicast);
    multicast.delivery = Delivery::Safe;
    if total_order {
        multicast.ordering = Ordering::Total;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODE: &str = "node_id = 1\nlisten = \"127.0.0.1:0\"\nbootstrap = true\n";

    fn parse(text: &str) -> Result<ServiceFileConfig, String> {
        ServiceFileConfig::parse(text, Path::new("node.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn the_service_section_is_optional_and_typed() {
        let c = parse(NODE).unwrap();
        assert_eq!(c.service.strategy, Strategy::Log);
        let c = parse(&format!("{NODE}[service]\nstrategy = \"log\"\n")).unwrap();
        assert_eq!(c.service.strategy, Strategy::Log);
        assert_eq!(c.node.node_id.0, 1);
    }

    #[test]
    fn unknown_keys_are_refused_inside_service_and_at_the_top() {
        let e = parse(&format!(
            "{NODE}[service]\nstrategy = \"log\"\nfanout = 3\n"
        ))
        .unwrap_err();
        assert!(
            e.starts_with("node.toml: ") && e.contains("`service.fanout`"),
            "{e}"
        );
        let e = parse(&format!("gossip_fanout = 3\n{NODE}[service]\n")).unwrap_err();
        assert!(e.contains("gossip_fanout"), "{e}");
        let e = parse(&format!("{NODE}[services]\nstrategy = \"log\"\n")).unwrap_err();
        assert!(
            e.contains("services"),
            "a misspelt section is not ignored: {e}"
        );
        let e = parse(&format!("{NODE}[failure_detector]\nheartbeat_ms = 5\n")).unwrap_err();
        assert!(
            e.contains("failure_detector") && e.contains("heartbeat_ms"),
            "{e}"
        );
    }

    #[test]
    fn a_replicated_strategy_makes_its_groups_deliver_safely_and_refuses_agreed() {
        use viewsync::proto::multicast::Delivery;
        let text = format!(
            "{NODE}groups = [\"kv\"]\ndata_dir = \"/tmp/x\"\n[service]\nstrategy = \"passive\"\nstate_machine = \"bank\"\ndurability = \"fsync\"\n"
        );
        let c = parse(&text).unwrap();
        assert_eq!(c.service.strategy, Strategy::Passive);
        assert_eq!(c.service.state_machine, MachineKind::Bank);
        assert_eq!(c.service.durability, DurabilityMode::Fsync);
        let kv = viewsync::GroupName::new("kv").unwrap();
        assert_eq!(c.node.group_multicast[&kv].delivery, Delivery::Safe);
        assert_eq!(
            c.service.replica_dir(c.node.data_dir.as_deref(), &kv),
            Some(std::path::PathBuf::from("/tmp/x/service/kv"))
        );
        let e = parse(&format!(
            "{NODE}groups = [\"kv\"]\n[service]\nstrategy = \"passive\"\n"
        ))
        .unwrap_err();
        assert!(
            e.contains("service.data_dir") && e.contains("memory"),
            "{e}"
        );
        let e = parse(&format!(
            "{NODE}groups = [\"kv\"]\n[group.kv]\ndelivery = \"agreed\"\n[service]\nstrategy = \"passive-backup-reads\"\ndurability = \"memory\"\n"
        ))
        .unwrap_err();
        assert!(
            e.contains("group.kv.delivery") && e.contains("passive-backup-reads"),
            "{e}"
        );
        // The log service keeps whatever delivery the file asks for.
        let c = parse(&format!("{NODE}groups = [\"kv\"]\n")).unwrap();
        assert!(!c.node.group_multicast.contains_key(&kv));
    }

    #[test]
    fn an_active_strategy_makes_its_groups_totally_ordered_and_refuses_fifo_and_causal() {
        use viewsync::proto::multicast::Delivery;
        use viewsync::wire::Ordering;
        let kv = viewsync::GroupName::new("kv").unwrap();
        for strategy in ["active", "active-local-reads"] {
            let c = parse(&format!(
                "{NODE}groups = [\"kv\"]\ndata_dir = \"/tmp/x\"\n[service]\nstrategy = \"{strategy}\"\n"
            ))
            .unwrap();
            let multicast = c.node.group_multicast[&kv];
            assert_eq!(
                (multicast.ordering, multicast.delivery),
                (Ordering::Total, Delivery::Safe)
            );
            for (section, value) in [
                ("[multicast]", "fifo"),
                ("[group.kv]", "causal"),
                ("[group.kv]", "fifo"),
            ] {
                let e = parse(&format!(
                    "{NODE}groups = [\"kv\"]\ndata_dir = \"/tmp/x\"\n{section}\nordering = \"{value}\"\n[service]\nstrategy = \"{strategy}\"\n"
                ))
                .unwrap_err();
                assert!(
                    e.contains("total order") && e.contains(strategy) && e.contains(value),
                    "{e}"
                );
            }
            // Total order said explicitly is what the strategy needs.
            parse(&format!(
                "{NODE}groups = [\"kv\"]\ndata_dir = \"/tmp/x\"\n[group.kv]\nordering = \"total\"\n[service]\nstrategy = \"{strategy}\"\n"
            ))
            .unwrap();
        }
        // Passive keeps the ordering the file asks for.
        let c = parse(&format!(
            "{NODE}groups = [\"kv\"]\ndata_dir = \"/tmp/x\"\n[group.kv]\nordering = \"fifo\"\n[service]\nstrategy = \"passive\"\n"
        ))
        .unwrap();
        assert_eq!(c.node.group_multicast[&kv].ordering, Ordering::Fifo);
    }

    #[test]
    fn unknown_machines_and_durability_modes_are_named_with_the_choices() {
        let e = parse(&format!("{NODE}[service]\nstate_machine = \"sql\"\n")).unwrap_err();
        assert!(
            e.contains("sql") && e.contains("kv") && e.contains("bank"),
            "{e}"
        );
        let e = parse(&format!("{NODE}[service]\ndurability = \"sometimes\"\n")).unwrap_err();
        assert!(
            e.contains("fsync") && e.contains("grouped") && e.contains("memory"),
            "{e}"
        );
    }

    #[test]
    fn strategies_and_machines_parse_by_their_file_names() {
        assert_eq!("passive".parse::<Strategy>(), Ok(Strategy::Passive));
        assert_eq!(
            "passive-backup-reads".parse::<Strategy>(),
            Ok(Strategy::PassiveBackupReads)
        );
        assert_eq!("active".parse::<Strategy>(), Ok(Strategy::Active));
        assert_eq!(
            "active-local-reads".parse::<Strategy>(),
            Ok(Strategy::ActiveLocalReads)
        );
        assert_eq!("naive".parse::<Strategy>(), Ok(Strategy::Naive));
        assert_eq!("log".parse::<Strategy>(), Ok(Strategy::Log));
        assert_eq!("bank".parse::<MachineKind>(), Ok(MachineKind::Bank));
        let e = "paxos".parse::<Strategy>().unwrap_err();
        assert_eq!(
            e,
            "unknown strategy `paxos`: expected one of `log`, `passive`, \
             `passive-backup-reads`, `active`, `active-local-reads`, `active-byzantine`, `naive`, \
             `gossip`"
        );
        let e = "sql".parse::<MachineKind>().unwrap_err();
        assert!(
            e.contains("`sql`") && e.contains("`kv`") && e.contains("`bank`"),
            "{e}"
        );
    }

    #[test]
    fn gossip_is_one_line_and_its_section_is_checked() {
        let base = format!(
            "{NODE}groups = [\"kv\"]\n[service]\nstrategy = \"gossip\"\ndurability = \"memory\"\n"
        );
        let c = parse(&base).unwrap();
        assert_eq!(c.service.strategy, Strategy::Gossip);
        assert_eq!(c.service.gossip, None);
        let c = parse(&format!(
            "{base}[service.gossip]\ninterval_ms = 20\nbatch_max = 8\nread_only = [3]\n"
        ))
        .unwrap();
        assert_eq!(
            c.service.gossip,
            Some(GossipSettings {
                interval_ms: 20,
                batch_max: 8,
                read_only: vec![3],
            })
        );
        let e = parse(&format!("{base}[service.gossip]\ninterval_ms = 0\n")).unwrap_err();
        assert!(e.contains("service.gossip.interval_ms"), "{e}");
        let e = parse(&format!("{base}[service.gossip]\nbatch_max = 0\n")).unwrap_err();
        assert!(e.contains("service.gossip.batch_max"), "{e}");
        let e = parse(&format!("{base}[service.gossip]\nfanout = 3\n")).unwrap_err();
        assert!(e.contains("fanout"), "{e}");
        let e = parse(&format!(
            "{NODE}[service]\nstrategy = \"passive\"\ndurability = \"memory\"\n[service.gossip]\ninterval_ms = 5\n"
        ))
        .unwrap_err();
        assert!(e.contains("service.gossip") && e.contains("passive"), "{e}");
    }

    #[test]
    fn an_unknown_strategy_is_named_with_the_choices() {
        let e = parse(&format!("{NODE}[service]\nstrategy = \"paxos\"\n")).unwrap_err();
        assert!(
            e.contains("service.strategy")
                && e.contains("paxos")
                && e.contains("passive-backup-reads")
                && e.contains("naive"),
            "{e}"
        );
        let e = parse(&format!("{NODE}service = 3\n")).unwrap_err();
        assert!(e.contains("service"), "{e}");
    }
}
