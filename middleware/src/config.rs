//! Node configuration, read from TOML. Unknown keys and bad values are refused with a message
//! naming the key.

use crate::id::{GroupName, NodeId};
use crate::proto::failure_detector::FailureDetectorConfig;
use crate::proto::membership::MembershipConfig;
use crate::proto::multicast::{Delivery, MulticastConfig};
use crate::proto::node::NodeSettings;
use crate::wire::codec::{ClusterKey, FRAME_BYTES_LIMIT, FRAME_BYTES_MAX_DEFAULT};
use crate::wire::Ordering;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// (De)serializes a `Duration` as whole milliseconds.
pub mod millis {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    /// Reads milliseconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// Transport settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransportConfig {
    /// Largest frame sent or accepted, in bytes.
    pub frame_bytes_max: usize,
    /// Frames queued per peer before new frames to that peer are dropped (and counted).
    pub send_queue_frames: usize,
    /// Largest batch of queued frames written with one system call, in bytes.
    pub batch_bytes_max: usize,
    /// First reconnect delay; doubles per failed attempt.
    #[serde(rename = "reconnect_backoff_min_ms", with = "millis")]
    pub reconnect_backoff_min: Duration,
    /// Longest reconnect delay.
    #[serde(rename = "reconnect_backoff_max_ms", with = "millis")]
    pub reconnect_backoff_max: Duration,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            frame_bytes_max: FRAME_BYTES_MAX_DEFAULT,
            send_queue_frames: 16384,
            batch_bytes_max: 64 * 1024,
            reconnect_backoff_min: Duration::from_millis(20),
            reconnect_backoff_max: Duration::from_millis(500),
        }
    }
}

/// The TOML file as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    node_id: u64,
    listen: SocketAddr,
    #[serde(default)]
    seeds: Vec<SocketAddr>,
    #[serde(default)]
    bootstrap: bool,
    #[serde(default)]
    groups: Vec<GroupName>,
    key_file: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    #[serde(default)]
    failure_detector: FailureDetectorConfig,
    #[serde(default)]
    membership: MembershipConfig,
    #[serde(default)]
    transport: TransportConfig,
    #[serde(default)]
    multicast: MulticastConfig,
    #[serde(default)]
    group: BTreeMap<GroupName, GroupOptions>,
}

/// Per-group overrides of the `[multicast]` defaults (`[group.<name>]` tables).
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupOptions {
    ordering: Option<Ordering>,
    delivery: Option<Delivery>,
}

/// A node's configuration, validated.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// This node's identity.
    pub node_id: NodeId,
    /// Address to listen on (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Addresses of nodes to join groups through.
    pub seeds: Vec<SocketAddr>,
    /// Groups to join at start.
    pub groups: Vec<GroupName>,
    /// The cluster key; without one the node listens on loopback only.
    pub key: Option<ClusterKey>,
    /// Protocol settings.
    pub settings: NodeSettings,
    /// Transport settings.
    pub transport: TransportConfig,
    /// Multicast settings of groups that override the `[multicast]` defaults.
    pub group_multicast: BTreeMap<GroupName, MulticastConfig>,
    /// Where the node keeps its last incarnation across restarts, so that a restart gets a
    /// larger one whatever the clock says (see [`crate::runtime::data_dir`]). Without one the
    /// incarnation comes from the clock alone.
    pub data_dir: Option<PathBuf>,
}

/// A configuration that cannot be used. Nothing has started when this is returned.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The TOML does not parse or names an unknown key (the message names it).
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's message, naming the key and line.
        message: String,
    },
    /// A key has a value outside its range.
    #[error("{path}: `{key}` {problem}")]
    Invalid {
        /// The file.
        path: String,
        /// The key.
        key: &'static str,
        /// What is wrong with its value.
        problem: String,
    },
    /// The key file is unusable.
    #[error("{path}: `key_file`: {source}")]
    Key {
        /// The configuration file.
        path: String,
        /// Why the key is unusable.
        source: crate::wire::codec::KeyError,
    },
}

impl NodeConfig {
    /// Reads and validates a TOML configuration file. A relative `key_file` or `data_dir` is
    /// resolved against the configuration file's directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates configuration text; `path` names it in errors and anchors a
    /// relative `key_file` or `data_dir`. The data directory itself is checked when the node
    /// starts ([`StartError::DataDir`](crate::error::StartError::DataDir)).
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: shown.clone(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let invalid = |key: &'static str, problem: String| ConfigError::Invalid {
            path: shown.clone(),
            key,
            problem,
        };
        if raw.node_id == 0 {
            return Err(invalid(
                "node_id",
                "must be at least 1 (0 is reserved for clients)".into(),
            ));
        }
        let anchored = |file: &Path| {
            if file.is_relative() {
                path.parent().unwrap_or(Path::new(".")).join(file)
            } else {
                file.to_path_buf()
            }
        };
        let key = match &raw.key_file {
            Some(file) => {
                let file = anchored(file);
                Some(ClusterKey::load(&file).map_err(|source| ConfigError::Key {
                    path: shown.clone(),
                    source,
                })?)
            }
            None => None,
        };
        let data_dir = match &raw.data_dir {
            Some(dir) if dir.as_os_str().is_empty() => {
                return Err(invalid(
                    "data_dir",
                    "is empty; name a directory, or leave the key out".into(),
                ))
            }
            Some(dir) => Some(anchored(dir)),
            None => None,
        };
        if key.is_none() && !raw.listen.ip().is_loopback() {
            return Err(invalid(
                "listen",
                format!(
                    "is {}, not a loopback address, and no `key_file` is set: a node without a cluster key listens on loopback only",
                    raw.listen
                ),
            ));
        }
        let fd = &raw.failure_detector;
        if fd.heartbeat_interval.is_zero() {
            return Err(invalid(
                "failure_detector.heartbeat_interval_ms",
                "must be positive".into(),
            ));
        }
        if fd.suspect_timeout < fd.heartbeat_interval * 2 {
            return Err(invalid(
                "failure_detector.suspect_timeout_ms",
                "must be at least twice heartbeat_interval_ms".into(),
            ));
        }
        let m = &raw.membership;
        for (key, value) in [
            ("membership.join_retry_interval_ms", m.join_retry_interval),
            ("membership.view_change_timeout_ms", m.view_change_timeout),
            ("membership.discovery_interval_ms", m.discovery_interval),
        ] {
            if value.is_zero() {
                return Err(invalid(key, "must be positive".into()));
            }
        }
        let t = &raw.transport;
        if !(64..=FRAME_BYTES_LIMIT).contains(&t.frame_bytes_max) {
            return Err(invalid(
                "transport.frame_bytes_max",
                format!("must be between 64 and {FRAME_BYTES_LIMIT}"),
            ));
        }
        if t.send_queue_frames == 0 {
            return Err(invalid(
                "transport.send_queue_frames",
                "must be positive".into(),
            ));
        }
        if t.batch_bytes_max == 0 {
            return Err(invalid(
                "transport.batch_bytes_max",
                "must be positive".into(),
            ));
        }
        if t.reconnect_backoff_min.is_zero() || t.reconnect_backoff_max < t.reconnect_backoff_min {
            return Err(invalid(
                "transport.reconnect_backoff_max_ms",
                "must be positive and at least reconnect_backoff_min_ms".into(),
            ));
        }
        let mc = &raw.multicast;
        if mc.window_messages == 0 || mc.window_bytes == 0 || mc.outbox_messages == 0 {
            return Err(invalid(
                "multicast.window_messages",
                "window_messages, window_bytes and outbox_messages must be positive".into(),
            ));
        }
        // Room for the envelope, the entry headers and the tag around the largest payload.
        let frame_room = t.frame_bytes_max.saturating_sub(1024);
        if mc.payload_bytes_max == 0 || mc.payload_bytes_max > frame_room {
            return Err(invalid(
                "multicast.payload_bytes_max",
                format!("must be between 1 and {frame_room} (transport.frame_bytes_max - 1024)"),
            ));
        }
        if mc.batch_bytes > frame_room
            || mc.state_chunk_bytes == 0
            || mc.state_chunk_bytes > frame_room
        {
            return Err(invalid(
                "multicast.batch_bytes",
                format!("batch_bytes and state_chunk_bytes must be at most {frame_room}"),
            ));
        }
        if mc.nak_interval.is_zero() || mc.state_retry.is_zero() {
            return Err(invalid(
                "multicast.nak_interval_ms",
                "nak_interval_ms and state_retry_ms must be positive".into(),
            ));
        }
        if raw.seeds.is_empty() && !raw.bootstrap {
            return Err(invalid(
                "seeds",
                "is empty and `bootstrap` is not set: this node could never join a group \
                 (list the other nodes as seeds, or set `bootstrap = true` on the one node \
                 that founds the cluster)"
                    .into(),
            ));
        }
        let group_multicast = raw
            .group
            .iter()
            .map(|(name, options)| {
                let mut config = raw.multicast;
                if let Some(ordering) = options.ordering {
                    config.ordering = ordering;
                }
                if let Some(delivery) = options.delivery {
                    config.delivery = delivery;
                }
                (name.clone(), config)
            })
            .collect();
        Ok(NodeConfig {
            node_id: NodeId(raw.node_id),
            listen: raw.listen,
            seeds: raw.seeds,
            groups: raw.groups,
            key,
            settings: NodeSettings {
                failure_detector: raw.failure_detector,
                membership: MembershipConfig {
                    bootstrap: raw.bootstrap,
                    ..raw.membership
                },
                multicast: raw.multicast,
            },
            transport: raw.transport,
            group_multicast,
            data_dir,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<NodeConfig, String> {
        NodeConfig::parse(text, Path::new("test.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn a_minimal_config_gets_defaults() {
        let c =
            parse("node_id = 1\nlisten = \"127.0.0.1:0\"\nbootstrap = true\ngroups = [\"demo\"]\n")
                .unwrap();
        assert_eq!(c.node_id, NodeId(1));
        assert_eq!(c.groups[0].as_str(), "demo");
        let mut expected = NodeSettings::default();
        expected.membership.bootstrap = true;
        assert_eq!(c.settings, expected);
    }

    #[test]
    fn a_node_without_seeds_must_found_the_group_explicitly() {
        let e = parse("node_id = 1\nlisten = \"127.0.0.1:0\"\n").unwrap_err();
        assert!(e.contains("`seeds`") && e.contains("bootstrap"), "{e}");
        let c =
            parse("node_id = 2\nlisten = \"127.0.0.1:0\"\nseeds = [\"127.0.0.1:9\"]\n").unwrap();
        assert!(
            !c.settings.membership.bootstrap,
            "founding is never the default"
        );
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = parse("node_id = 1\nlisten = \"127.0.0.1:0\"\nseedz = []\n").unwrap_err();
        assert!(e.contains("seedz"), "{e}");
        let e =
            parse("node_id = 1\nlisten = \"127.0.0.1:0\"\n[failure_detector]\nheartbeat_ms = 5\n")
                .unwrap_err();
        assert!(e.contains("heartbeat_ms"), "{e}");
    }

    #[test]
    fn bad_values_are_named() {
        let e =
            parse("node_id = 1\nlisten = \"127.0.0.1:0\"\ngroups = [\"no spaces\"]\n").unwrap_err();
        assert!(e.contains("invalid group name"), "{e}");
        let e = parse(
            "node_id = 1\nlisten = \"127.0.0.1:0\"\n[failure_detector]\nsuspect_timeout_ms = 10\n",
        )
        .unwrap_err();
        assert!(e.contains("failure_detector.suspect_timeout_ms"), "{e}");
        let e = parse("node_id = 1\nlisten = \"not an address\"\n").unwrap_err();
        assert!(e.contains("listen"), "{e}");
    }

    #[test]
    fn groups_override_the_multicast_defaults() {
        let c = parse(
            "node_id = 1\nlisten = \"127.0.0.1:0\"\nbootstrap = true\ngroups = [\"a\", \"b\"]\n[multicast]\nordering = \"fifo\"\n[group.b]\nordering = \"causal\"\ndelivery = \"safe\"\n",
        )
        .unwrap();
        assert_eq!(c.settings.multicast.ordering, Ordering::Fifo);
        let b = c.group_multicast[&GroupName::new("b").unwrap()];
        assert_eq!((b.ordering, b.delivery), (Ordering::Causal, Delivery::Safe));
        let e = parse("node_id = 1\nlisten = \"127.0.0.1:0\"\n[group.b]\nordering = \"random\"\n")
            .unwrap_err();
        assert!(e.contains("random"), "{e}");
        let e = parse(
            "node_id = 1\nlisten = \"127.0.0.1:0\"\n[multicast]\npayload_bytes_max = 99999999\n",
        )
        .unwrap_err();
        assert!(e.contains("multicast.payload_bytes_max"), "{e}");
    }

    #[test]
    fn a_relative_data_dir_is_anchored_at_the_config_file() {
        let text =
            "node_id = 1\nlisten = \"127.0.0.1:0\"\nbootstrap = true\ndata_dir = \"data/node1\"\n";
        let c = NodeConfig::parse(text, Path::new("/etc/viewsync/node1.toml")).unwrap();
        assert_eq!(
            c.data_dir.as_deref(),
            Some(Path::new("/etc/viewsync/data/node1"))
        );
        let text = "node_id = 1\nlisten = \"127.0.0.1:0\"\nbootstrap = true\ndata_dir = \"/var/lib/viewsync\"\n";
        let c = NodeConfig::parse(text, Path::new("/etc/viewsync/node1.toml")).unwrap();
        assert_eq!(c.data_dir.as_deref(), Some(Path::new("/var/lib/viewsync")));
        let c = parse("node_id = 1\nlisten = \"127.0.0.1:0\"\nbootstrap = true\n").unwrap();
        assert_eq!(c.data_dir, None);
        let e = parse("node_id = 1\nlisten = \"127.0.0.1:0\"\ndata_dir = \"\"\n").unwrap_err();
        assert!(e.contains("`data_dir`"), "{e}");
        let e =
            parse("node_id = 1\nlisten = \"127.0.0.1:0\"\ndata_directory = \"d\"\n").unwrap_err();
        assert!(e.contains("data_directory"), "{e}");
    }

    #[test]
    fn without_a_key_only_loopback_is_allowed() {
        let e = parse("node_id = 1\nlisten = \"0.0.0.0:7000\"\n").unwrap_err();
        assert!(e.contains("`listen`") && e.contains("loopback"), "{e}");
    }
}
