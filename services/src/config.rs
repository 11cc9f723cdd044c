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
//! strategy = "passive"      # log | passive | passive-backup-reads | active | active-local-reads | naive
//! state_machine = "kv"      # kv | bank
//! durability = "grouped"    # fsync | grouped | memory
//! data_dir = "data/kv"      # default: the node's data_dir, under service/<group>
//! ```
//!
//! A replicated strategy (`passive`, `passive-backup-reads`, `active`, `active-local-reads`,
//! `naive`) needs its group's multicasts delivered safely (only once every member holds
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
    /// Each replica applies locally and propagates lazily: neither linearizable nor
    /// sequentially consistent; a labelled contrast for tests and benchmarks
    /// ([`crate::replication::naive`]).
    Naive,
}

impl Strategy {
    /// Whether the strategy replicates a state machine (and serves clients).
    pub fn is_replicated(self) -> bool {
        !matches!(self, Strategy::Log)
    }

    /// Whether the strategy needs its groups' multicasts in total order (every member
    /// executes every request in one order).
    pub fn needs_total_order(self) -> bool {
        matches!(self, Strategy::Active | Strategy::ActiveLocalReads)
    }

    /// The name used in configuration files.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Log => "log",
            Strategy::Passive => "passive",
            Strategy::PassiveBackupReads => "passive-backup-reads",
            Strategy::Active => "active",
            Strategy::ActiveLocalReads => "active-local-reads",
            Strategy::Naive => "naive",
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
}

impl ServiceConfig {
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
        let mut node = NodeConfig::from_table(table, path)?;
        if let Some(dir) = &service.data_dir {
            if dir.is_relative() {
                let base = path.parent().unwrap_or(Path::new("."));
                service.data_dir = Some(base.join(dir));
            }
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
    use viewsync::proto::multicast::Delivery;
    use viewsync::wire::Ordering;
    for group in node.groups.clone() {
        let multicast = node
            .group_multicast
            .entry(group)
            .or_insert(node.settings.multicast);
        multicast.delivery = Delivery::Safe;
        if total_order {
            multicast.ordering = Ordering::Total;
        }
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
             `passive-backup-reads`, `active`, `active-local-reads`, `naive`"
        );
        let e = "sql".parse::<MachineKind>().unwrap_err();
        assert!(
            e.contains("`sql`") && e.contains("`kv`") && e.contains("`bank`"),
            "{e}"
        );
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
