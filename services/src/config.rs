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
//! strategy = "log"   # the only one so far; "passive", "active", "gossip" will follow
//! ```

use serde::Deserialize;
use std::path::Path;
use viewsync::config::{parse_table, read_text, section, ConfigError, NodeConfig};

/// The replication strategy a node runs for its groups.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// The log service: prints every delivery and view change
    /// ([`crate::log_service::LogService`]).
    #[default]
    Log,
}

/// The `[service]` section. Every key is optional; unknown keys are refused.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// Which service runs (`strategy = "log"`).
    #[serde(default)]
    pub strategy: Strategy,
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
        let service = match table.remove("service") {
            Some(value) => section(value, path, "service")?,
            None => ServiceConfig::default(),
        };
        let node = NodeConfig::from_table(table, path)?;
        Ok(ServiceFileConfig { node, service })
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
    fn an_unknown_strategy_is_named_with_the_choices() {
        let e = parse(&format!("{NODE}[service]\nstrategy = \"paxos\"\n")).unwrap_err();
        assert!(
            e.contains("service.strategy") && e.contains("paxos") && e.contains("log"),
            "{e}"
        );
        let e = parse(&format!("{NODE}service = 3\n")).unwrap_err();
        assert!(e.contains("service"), "{e}");
    }
}
