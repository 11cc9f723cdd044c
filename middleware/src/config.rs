//! Node configuration, read from TOML. Unknown keys and bad values are refused with a message
//! naming the key.
//!
//! The file's schema lives here and only here: the protocol cores' settings
//! ([`FailureDetectorConfig`], [`MembershipConfig`], [`MulticastConfig`]) are plain structs that
//! know nothing of files, and the `*Section` structs below say how each is written (key names,
//! durations as `_ms` integers or `"400ms"` text). A program that reads a file with sections of
//! its own (the services crate's `[service]`) parses it with [`parse_table`], takes its sections
//! out with [`section`], and hands the rest to [`NodeConfig::from_table`]: every table still
//! refuses keys it does not know.

use crate::id::{GroupName, NodeId};
use crate::proto::failure_detector::FailureDetectorConfig;
use crate::proto::membership::MembershipConfig;
use crate::proto::multicast::{Delivery, MulticastConfig};
use crate::proto::node::NodeSettings;
use crate::wire::codec::{ClusterKey, FRAME_BYTES_LIMIT, FRAME_BYTES_MAX_DEFAULT};
use crate::wire::Ordering;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Transport settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransportConfig {
    /// Largest frame sent or accepted, in bytes.
    pub frame_bytes_max: usize,
    /// Frames queued per peer before new frames to that peer are dropped (and counted).
    pub send_queue_frames: usize,
    /// Largest batch of queued frames written with one system call, in bytes.
    pub batch_bytes_max: usize,
    /// First reconnect delay; doubles per failed attempt.
    pub reconnect_backoff_min: Duration,
    /// Longest reconnect delay.
    pub reconnect_backoff_max: Duration,
    /// Inbound connections held open at once; a connection arriving at the limit is accepted
    /// and closed at once (counted, logged at most once a second).
    pub max_inbound_connections: usize,
    /// How long an inbound connection has to deliver its first frame that opens; one that has
    /// not is closed with a `Refused` notice.
    pub auth_timeout: Duration,
    /// How long a frame may take to arrive once its first bytes have (time spent waiting for
    /// the node to take earlier frames does not count); a slower frame closes the connection.
    pub frame_read_timeout: Duration,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            frame_bytes_max: FRAME_BYTES_MAX_DEFAULT,
            send_queue_frames: 16384,
            batch_bytes_max: 64 * 1024,
            reconnect_backoff_min: Duration::from_millis(20),
            reconnect_backoff_max: Duration::from_millis(500),
            max_inbound_connections: 1024,
            auth_timeout: Duration::from_secs(5),
            frame_read_timeout: Duration::from_secs(10),
        }
    }
}

/// Parses configuration text into a table, refusing bad TOML with the line and column. The
/// first step of [`NodeConfig::parse`], public for programs whose files add sections of their
/// own; `path` names the file in errors.
pub fn parse_table(text: &str, path: &Path) -> Result<toml::Table, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: path.display().to_string(),
        message: e.to_string().trim_end().to_string(),
    })
}

/// Reads one section of a configuration file (a value taken out of [`parse_table`]'s table)
/// as `T`; errors name the key path under `name` (`service.strategy`). Give `T`
/// `#[serde(deny_unknown_fields)]` to refuse keys it does not know, as every node section does.
pub fn section<T: DeserializeOwned>(
    value: toml::Value,
    path: &Path,
    name: &str,
) -> Result<T, ConfigError> {
    // Wrapped under its name so the error's key path starts with it.
    let mut wrapped = toml::Table::new();
    wrapped.insert(name.to_string(), value);
    let mut map: BTreeMap<String, T> = from_table_named(wrapped, path)?;
    Ok(map.remove(name).expect("the one key inserted above"))
}

/// Deserializes a table, naming the path of the key at fault in the error: values from a
/// table carry no line numbers, so the key path is what points the reader to the mistake.
fn from_table_named<T: DeserializeOwned>(
    table: toml::Table,
    path: &Path,
) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(table).map_err(|e| {
        let at = e.path().to_string();
        // The message alone: toml's own context (`in failure_detector`) names only the
        // table, the path above names the key.
        let inner = e.into_inner();
        let inner = inner.message().trim_end();
        ConfigError::Parse {
            path: path.display().to_string(),
            message: if at == "." {
                inner.to_string()
            } else {
                format!("in `{at}`: {inner}")
            },
        }
    })
}

/// A duration written either as whole milliseconds under `<name>_ms` (the original form, kept
/// so existing files parse) or as text with a unit under `<name>` (`"400ms"`, `"2s"`,
/// `"1m 30s"`). Both at once is refused: which would win is not obvious to a reader.
fn duration(
    file: &Path,
    key: &'static str,
    ms: Option<u64>,
    text: Option<Duration>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match (ms, text) {
        (Some(_), Some(_)) => Err(ConfigError::Invalid {
            path: file.display().to_string(),
            key,
            problem: "is given twice, with and without `_ms`: keep one".into(),
        }),
        (Some(ms), None) => Ok(Duration::from_millis(ms)),
        (None, Some(text)) => Ok(text),
        (None, None) => Ok(default),
    }
}

/// `[failure_detector]` as written; unset keys keep [`FailureDetectorConfig::default`].
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FailureDetectorSection {
    heartbeat_interval_ms: Option<u64>,
    #[serde(default, with = "humantime_serde")]
    heartbeat_interval: Option<Duration>,
    suspect_timeout_ms: Option<u64>,
    #[serde(default, with = "humantime_serde")]
    suspect_timeout: Option<Duration>,
    confirm_timeout_ms: Option<u64>,
    #[serde(default, with = "humantime_serde")]
    confirm_timeout: Option<Duration>,
    monitors: Option<usize>,
}

impl FailureDetectorSection {
    fn resolve(self, file: &Path) -> Result<FailureDetectorConfig, ConfigError> {
        let d = FailureDetectorConfig::default();
        Ok(FailureDetectorConfig {
            heartbeat_interval: duration(
                file,
                "failure_detector.heartbeat_interval",
                self.heartbeat_interval_ms,
                self.heartbeat_interval,
                d.heartbeat_interval,
            )?,
            suspect_timeout: duration(
                file,
                "failure_detector.suspect_timeout",
                self.suspect_timeout_ms,
                self.suspect_timeout,
                d.suspect_timeout,
            )?,
            confirm_timeout: duration(
                file,
                "failure_detector.confirm_timeout",
                self.confirm_timeout_ms,
                self.confirm_timeout,
                d.confirm_timeout,
            )?,
            monitors: self.monitors.unwrap_or(d.monitors),
        })
    }
}

/// `[membership]` as written (`bootstrap` is a top-level key); unset keys keep
/// [`MembershipConfig::default`].
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MembershipSection {
    join_retry_interval_ms: Option<u64>,
    #[serde(default, with = "humantime_serde")]
    join_retry_interval: Option<Duration>,
    bootstrap_timeout_ms: Option<u64>,
    #[serde(default, with = "humantime_serde")]
    bootstrap_timeout: Option<Duration>,
    view_change_timeout_ms: Option<u64>,
    #[serde(default, with = "humantime_serde")]
    view_change_timeout: Option<Duration>,
    discovery_interval_ms: Option<u64>,
    #[serde(default, with = "humantime_serde")]
    discovery_interval: Option<Duration>,
    leave_timeout_ms: Option<u64>,
    #[serde(default, with = "humantime_serde")]
    leave_timeout: Option<Duration>,
}

impl MembershipSection {
    fn resolve(self, file: &Path, bootstrap: bool) -> Result<MembershipConfig, ConfigError> {
        let d = MembershipConfig::default();
        Ok(MembershipConfig {
            join_retry_interval: duration(
                file,
                "membership.join_retry_interval",
                self.join_retry_interval_ms,
                self.join_retry_interval,
                d.join_retry_interval,
            )?,
            bootstrap,
            bootstrap_timeout: duration(
                file,
                "membership.bootstrap_timeout",
                self.bootstrap_timeout_ms,
                self.bootstrap_timeout,
                d.bootstrap_timeout,
            )?,
            view_change_timeout: duration(
                file,
                "membership.view_change_timeout",
                self.view_change_timeout_ms,
                self.view_change_timeout,
                d.view_change_timeout,
            )?,
            discovery_interval: duration(
                file,
                "membership.discovery_interval",
                self.discovery_interval_ms,
                self.discovery_interval,
                d.discovery_interval,
            )?,
            leave_timeout: duration(
                file,
                "membership.leave_timeout",
                self.leave_timeout_ms,
                self.leave_timeout,
                d.leave_timeout,
            )?,
        })
    }
}

/// `[transport]` as written; unset keys keep [`TransportConfig::default`].
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TransportSection {
    frame_bytes_max: Option<usize>,
    send_queue_frames: Option<usize>,
    batch_bytes_max: Option<usize>,
    reconnect_backoff_min_ms: Option<u64>,
    #[serde(default, with = "humantime_serde")]
    reconnect_backoff_min: Option<Duration>,
    reconnect_backoff_max_ms: Option<u64>,
    #[serde(default, with = "humantime_serde")]
    reconnect_backoff_max: Option<Duration>,
    max_inbound_connections: Option<usize>,
    auth_timeout_ms: Option<u64>,
    #[serde(default, with = "humantime_serde")]
    auth_timeout: Option<Duration>,
    frame_read_timeout_ms: Option<u64>,
    #[serde(default, with = "humantime_serde")]
    frame_read_timeout: Option<Duration>,
}

impl TransportSection {
    fn resolve(self, file: &Path) -> Result<TransportConfig, ConfigError> {
        let d = TransportConfig::default();
        Ok(TransportConfig {
            frame_bytes_max: self.frame_bytes_max.unwrap_or(d.frame_bytes_max),
            send_queue_frames: self.send_queue_frames.unwrap_or(d.send_queue_frames),
            batch_bytes_max: self.batch_bytes_max.unwrap_or(d.batch_bytes_max),
            reconnect_backoff_min: duration(
                file,
                "transport.reconnect_backoff_min",
                self.reconnect_backoff_min_ms,
                self.reconnect_backoff_min,
                d.reconnect_backoff_min,
            )?,
            reconnect_backoff_max: duration(
                file,
                "transport.reconnect_backoff_max",
                self.reconnect_backoff_max_ms,
                self.reconnect_backoff_max,
                d.reconnect_backoff_max,
            )?,
            max_inbound_connections: self
                .max_inbound_connections
                .unwrap_or(d.max_inbound_connections),
            auth_timeout: duration(
                file,
                "transport.auth_timeout",
                self.auth_timeout_ms,
                self.auth_timeout,
                d.auth_timeout,
            )?,
            frame_read_timeout: duration(
                file,
                "transport.frame_read_timeout",
                self.frame_read_timeout_ms,
                self.frame_read_timeout,
                d.frame_read_timeout,
            )?,
        })
    }
}

/// How `delivery` is written ([`Delivery`] itself is a core type and knows no file format).
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
enum DeliveryKey {
    Agreed,
    Safe,
}

impl From<DeliveryKey> for Delivery {
    fn from(key: DeliveryKey) -> Self {
        match key {
            DeliveryKey::Agreed => Delivery::Agreed,
            DeliveryKey::Safe => Delivery::Safe,
        }
    }
}

/// `[multicast]` as written; unset keys keep [`MulticastConfig::default`].
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MulticastSection {
    ordering: Option<Ordering>,
    delivery: Option<DeliveryKey>,
    window_messages: Option<u64>,
    window_bytes: Option<usize>,
    outbox_messages: Option<usize>,
    window_min_bytes: Option<usize>,
    window_target_latency_ms: Option<u64>,
    #[serde(default, with = "humantime_serde")]
    window_target_latency: Option<Duration>,
    ack_bytes: Option<usize>,
    payload_bytes_max: Option<usize>,
    batch_bytes: Option<usize>,
    ack_interval_ms: Option<u64>,
    #[serde(default, with = "humantime_serde")]
    ack_interval: Option<Duration>,
    nak_interval_ms: Option<u64>,
    #[serde(default, with = "humantime_serde")]
    nak_interval: Option<Duration>,
    state_chunk_bytes: Option<usize>,
    state_window_chunks: Option<u64>,
    state_bytes_max: Option<u64>,
    state_retry_ms: Option<u64>,
    #[serde(default, with = "humantime_serde")]
    state_retry: Option<Duration>,
    flush_fetch_timeout_ms: Option<u64>,
    #[serde(default, with = "humantime_serde")]
    flush_fetch_timeout: Option<Duration>,
}

impl MulticastSection {
    fn resolve(self, file: &Path) -> Result<MulticastConfig, ConfigError> {
        let d = MulticastConfig::default();
        Ok(MulticastConfig {
            ordering: self.ordering.unwrap_or(d.ordering),
            delivery: self.delivery.map_or(d.delivery, Delivery::from),
            window_messages: self.window_messages.unwrap_or(d.window_messages),
            window_bytes: self.window_bytes.unwrap_or(d.window_bytes),
            outbox_messages: self.outbox_messages.unwrap_or(d.outbox_messages),
            window_min_bytes: self.window_min_bytes.unwrap_or(d.window_min_bytes),
            window_target_latency: duration(
                file,
                "multicast.window_target_latency",
                self.window_target_latency_ms,
                self.window_target_latency,
                d.window_target_latency,
            )?,
            ack_bytes: self.ack_bytes.unwrap_or(d.ack_bytes),
            payload_bytes_max: self.payload_bytes_max.unwrap_or(d.payload_bytes_max),
            batch_bytes: self.batch_bytes.unwrap_or(d.batch_bytes),
            ack_interval: duration(
                file,
                "multicast.ack_interval",
                self.ack_interval_ms,
                self.ack_interval,
                d.ack_interval,
            )?,
            nak_interval: duration(
                file,
                "multicast.nak_interval",
                self.nak_interval_ms,
                self.nak_interval,
                d.nak_interval,
            )?,
            state_chunk_bytes: self.state_chunk_bytes.unwrap_or(d.state_chunk_bytes),
            state_window_chunks: self.state_window_chunks.unwrap_or(d.state_window_chunks),
            state_bytes_max: self.state_bytes_max.unwrap_or(d.state_bytes_max),
            state_retry: duration(
                file,
                "multicast.state_retry",
                self.state_retry_ms,
                self.state_retry,
                d.state_retry,
            )?,
            flush_fetch_timeout: duration(
                file,
                "multicast.flush_fetch_timeout",
                self.flush_fetch_timeout_ms,
                self.flush_fetch_timeout,
                d.flush_fetch_timeout,
            )?,
        })
    }
}

/// The node's part of the file as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    node_id: u64,
    /// `IP:PORT` or `HOST:PORT`, resolved by [`resolve_address`].
    listen: String,
    #[serde(default)]
    seeds: Vec<String>,
    #[serde(default)]
    bootstrap: bool,
    #[serde(default)]
    groups: Vec<GroupName>,
    key_file: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    metrics_listen: Option<SocketAddr>,
    #[serde(default)]
    failure_detector: FailureDetectorSection,
    #[serde(default)]
    membership: MembershipSection,
    #[serde(default)]
    transport: TransportSection,
    #[serde(default)]
    multicast: MulticastSection,
    #[serde(default)]
    group: BTreeMap<GroupName, GroupOptions>,
}

/// Per-group overrides of the `[multicast]` defaults (`[group.<name>]` tables).
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupOptions {
    ordering: Option<Ordering>,
    delivery: Option<DeliveryKey>,
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
    /// Where the metrics endpoint listens (HTTP, `GET /metrics`), if anywhere (see
    /// [`crate::runtime::metrics`]; port 0 picks a free port).
    pub metrics_listen: Option<SocketAddr>,
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

/// The text of the configuration file at `path`, or [`ConfigError::Read`] naming it.
pub fn read_text(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })
}

impl NodeConfig {
    /// Reads and validates a TOML configuration file. A relative `key_file` or `data_dir` is
    /// resolved against the configuration file's directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::parse(&read_text(path)?, path)
    }

    /// Parses and validates configuration text; `path` names it in errors and anchors a
    /// relative `key_file` or `data_dir`. The data directory itself is checked when the node
    /// starts ([`StartError::DataDir`](crate::error::StartError::DataDir)).
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        Self::from_table(parse_table(text, path)?, path)
    }

    /// Validates a parsed file ([`parse_table`]) whose own sections the caller has taken out:
    /// any key left that the node does not know is refused, at the top level as in every
    /// table. `path` names the file in errors and anchors relative paths, as in [`Self::parse`].
    pub fn from_table(table: toml::Table, path: &Path) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let raw: RawConfig = from_table_named(table, path)?;
        let invalid = |key: &'static str, problem: String| ConfigError::Invalid {
            path: shown.clone(),
            key,
            problem,
        };
        let listen = resolve_address(&raw.listen).map_err(|problem| invalid("listen", problem))?;
        let seeds = raw
            .seeds
            .iter()
            .map(|seed| resolve_address(seed))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|problem| invalid("seeds", problem))?;
        let anchored = |file: &Path| {
            if file.is_relative() && !file.as_os_str().is_empty() {
                path.parent().unwrap_or(Path::new(".")).join(file)
            } else {
                file.to_path_buf()
            }
        };
        let key = match &raw.key_file {
            Some(file) => Some(load_key(&anchored(file), &shown)?),
            None => None,
        };
        let membership = raw.membership.resolve(path, raw.bootstrap)?;
        let multicast = raw.multicast.resolve(path)?;
        let group_multicast = raw
            .group
            .iter()
            .map(|(name, options)| {
                let mut config = multicast;
                if let Some(ordering) = options.ordering {
                    config.ordering = ordering;
                }
                if let Some(delivery) = options.delivery {
                    config.delivery = delivery.into();
                }
                (name.clone(), config)
            })
            .collect();
        let config = NodeConfig {
            node_id: NodeId(raw.node_id),
            listen,
            seeds,
            groups: raw.groups,
            key,
            settings: NodeSettings {
                failure_detector: raw.failure_detector.resolve(path)?,
                membership,
                multicast,
            },
            transport: raw.transport.resolve(path)?,
            group_multicast,
            data_dir: raw.data_dir.as_deref().map(anchored),
            metrics_listen: raw.metrics_listen,
        };
        config.validate(&shown)?;
        Ok(config)
    }

    /// A configuration built in code instead of read from a file: the same settings, the
    /// same defaults and the same validation as the file's (see [`NodeConfigBuilder`]).
    ///
    /// ```
    /// use viewsync::config::NodeConfig;
    ///
    /// // The node that founds the cluster, on a free loopback port.
    /// let first = NodeConfig::builder(1).bootstrap(true).build()?;
    /// // Another that joins through it.
    /// let second = NodeConfig::builder(2)
    ///     .listen("127.0.0.1:0".parse()?)
    ///     .seed("127.0.0.1:7701".parse()?)
    ///     .build()?;
    /// assert!(first.settings.membership.bootstrap && !second.settings.membership.bootstrap);
    ///
    /// // Refused as the file would be: no seeds and not founding.
    /// let error = NodeConfig::builder(3).build().unwrap_err();
    /// assert!(error.to_string().contains("`seeds`"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder(node_id: u64) -> NodeConfigBuilder {
        NodeConfigBuilder::new(node_id)
    }

    /// Checks every rule a configuration must meet; `shown` names its source in errors. The
    /// file loader and the builder both end here, so they accept and refuse the same.
    fn validate(&self, shown: &str) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, problem: String| ConfigError::Invalid {
            path: shown.to_string(),
            key,
            problem,
        };
        if self.node_id.0 == 0 {
            return Err(invalid(
                "node_id",
                "must be at least 1 (0 is reserved for clients)".into(),
            ));
        }
        if self
            .data_dir
            .as_ref()
            .is_some_and(|dir| dir.as_os_str().is_empty())
        {
            return Err(invalid(
                "data_dir",
                "is empty; name a directory, or leave the key out".into(),
            ));
        }
        if self.key.is_none() && !self.listen.ip().is_loopback() {
            return Err(invalid(
                "listen",
                format!(
                    "is {}, not a loopback address, and no `key_file` is set: a node without a cluster key listens on loopback only",
                    self.listen
                ),
            ));
        }
        let fd = &self.settings.failure_detector;
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
        if fd.monitors == 0 {
            return Err(invalid(
                "failure_detector.monitors",
                "must be at least 1 (each member watched by that many others)".into(),
            ));
        }
        let m = &self.settings.membership;
        for (key, value) in [
            ("membership.join_retry_interval_ms", m.join_retry_interval),
            ("membership.view_change_timeout_ms", m.view_change_timeout),
            ("membership.discovery_interval_ms", m.discovery_interval),
        ] {
            if value.is_zero() {
                return Err(invalid(key, "must be positive".into()));
            }
        }
        let t = &self.transport;
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
        if t.max_inbound_connections == 0 {
            return Err(invalid(
                "transport.max_inbound_connections",
                "must be positive".into(),
            ));
        }
        // A client reopens a connection it left unused for `FRESH_CONNECTION_MAX` before its
        // first request; a timeout near that would close connections under such clients.
        let auth_min = crate::client::FRESH_CONNECTION_MAX * 2;
        for (key, value) in [
            ("transport.auth_timeout", t.auth_timeout),
            ("transport.frame_read_timeout", t.frame_read_timeout),
        ] {
            if value < auth_min {
                return Err(invalid(key, format!("must be at least {auth_min:?}")));
            }
        }
        // The defaults and every group's own settings obey the same bounds.
        for mc in std::iter::once(&self.settings.multicast).chain(self.group_multicast.values()) {
            if mc.window_messages == 0 || mc.window_bytes == 0 || mc.outbox_messages == 0 {
                return Err(invalid(
                    "multicast.window_messages",
                    "window_messages, window_bytes and outbox_messages must be positive".into(),
                ));
            }
            if mc.window_min_bytes == 0 || mc.ack_bytes == 0 || mc.window_target_latency.is_zero() {
                return Err(invalid(
                    "multicast.window_min_bytes",
                    "window_min_bytes, ack_bytes and window_target_latency must be positive".into(),
                ));
            }
            // Room for the envelope, the entry headers and the tag around the largest payload.
            let frame_room = t.frame_bytes_max.saturating_sub(1024);
            if mc.payload_bytes_max == 0 || mc.payload_bytes_max > frame_room {
                return Err(invalid(
                    "multicast.payload_bytes_max",
                    format!(
                        "must be between 1 and {frame_room} (transport.frame_bytes_max - 1024)"
                    ),
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
        }
        if self.seeds.is_empty() && !self.settings.membership.bootstrap {
            return Err(invalid(
                "seeds",
                "is empty and `bootstrap` is not set: this node could never join a group \
                 (list the other nodes as seeds, or set `bootstrap = true` on the one node \
                 that founds the cluster)"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// Loads the cluster key at `file` for the configuration `shown`.
fn load_key(file: &Path, shown: &str) -> Result<ClusterKey, ConfigError> {
    ClusterKey::load(file).map_err(|source| ConfigError::Key {
        path: shown.to_string(),
        source,
    })
}

/// A socket address written as `IP:PORT` (`127.0.0.1:7701`, `[::1]:7701`) or `HOST:PORT`
/// (`localhost:7701`, `node2.example.net:7701`), the host name resolved now (the first
/// address it resolves to). The error says which form is expected, or why the name did not
/// resolve. Used for the file's `listen` and `seeds` and the command line's `--via`.
pub fn resolve_address(text: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err(format!(
            "{text:?} is not an address: expected IP:PORT or HOST:PORT (for example \
             127.0.0.1:7701 or localhost:7701)"
        ));
    };
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(format!(
            "{text:?} is not an address: expected IP:PORT or HOST:PORT with a port from 0 to \
             65535 (for example 127.0.0.1:7701 or localhost:7701)"
        ));
    }
    match text.to_socket_addrs() {
        Ok(mut addrs) => addrs.next().ok_or_else(|| {
            format!("host name {host:?} resolves to no address (expected IP:PORT or HOST:PORT)")
        }),
        Err(error) => Err(format!(
            "cannot resolve host name {host:?} ({error}); expected IP:PORT or HOST:PORT"
        )),
    }
}

/// Builds a [`NodeConfig`] in code (from [`NodeConfig::builder`]): every setting the file
/// has, with the file's defaults, checked by [`NodeConfigBuilder::build`] exactly as the file
/// loader checks a file. Unset: listens on `127.0.0.1:0` (a free loopback port), no seeds,
/// does not found the group, no groups, no key, no data directory, default protocol and
/// transport settings.
#[derive(Clone, Debug)]
pub struct NodeConfigBuilder {
    config: NodeConfig,
    key_file: Option<PathBuf>,
}

/// What [`NodeConfigBuilder::build`]'s errors name as the configuration's source.
pub const BUILDER_SOURCE: &str = "NodeConfig::builder";

impl NodeConfigBuilder {
    fn new(node_id: u64) -> Self {
        NodeConfigBuilder {
            config: NodeConfig {
                node_id: NodeId(node_id),
                listen: SocketAddr::from(([127, 0, 0, 1], 0)),
                seeds: Vec::new(),
                groups: Vec::new(),
                key: None,
                settings: NodeSettings::default(),
                transport: TransportConfig::default(),
                group_multicast: BTreeMap::new(),
                data_dir: None,
                metrics_listen: None,
            },
            key_file: None,
        }
    }

    /// The address to listen on (`listen`; port 0 picks a free port).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.config.listen = addr;
        self
    }

    /// Adds a node to join groups through (`seeds`).
    pub fn seed(mut self, addr: SocketAddr) -> Self {
        self.config.seeds.push(addr);
        self
    }

    /// Adds nodes to join groups through (`seeds`).
    pub fn seeds(mut self, addrs: impl IntoIterator<Item = SocketAddr>) -> Self {
        self.config.seeds.extend(addrs);
        self
    }

    /// Whether this node founds its groups when no seed answers (`bootstrap`; one node of a
    /// cluster, once).
    pub fn bootstrap(mut self, bootstrap: bool) -> Self {
        self.config.settings.membership.bootstrap = bootstrap;
        self
    }

    /// Adds a group to join at start (`groups`). A program that registers a service first
    /// leaves this out and calls [`NodeHandle::join`](crate::runtime::NodeHandle::join)
    /// after registering.
    pub fn group(mut self, group: GroupName) -> Self {
        self.config.groups.push(group);
        self
    }

    /// The cluster key (`key_file`'s contents).
    pub fn key(mut self, key: ClusterKey) -> Self {
        self.config.key = Some(key);
        self.key_file = None;
        self
    }

    /// The cluster key file (`key_file`), read by [`Self::build`].
    pub fn key_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.key_file = Some(path.into());
        self
    }

    /// Where the node keeps its incarnation across restarts (`data_dir`).
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.config.data_dir = Some(dir.into());
        self
    }

    /// Where the metrics endpoint listens (`metrics_listen`; port 0 picks a free port).
    pub fn metrics_listen(mut self, addr: SocketAddr) -> Self {
        self.config.metrics_listen = Some(addr);
        self
    }

    /// `[failure_detector]`.
    pub fn failure_detector(mut self, config: FailureDetectorConfig) -> Self {
        self.config.settings.failure_detector = config;
        self
    }

    /// `[membership]`; its `bootstrap` is replaced by [`Self::bootstrap`]'s when set after.
    pub fn membership(mut self, config: MembershipConfig) -> Self {
        self.config.settings.membership = config;
        self
    }

    /// `[multicast]`: the settings of groups without their own.
    pub fn multicast(mut self, config: MulticastConfig) -> Self {
        self.config.settings.multicast = config;
        self
    }

    /// `[group.NAME]`: `group`'s own multicast settings.
    pub fn group_multicast(mut self, group: GroupName, config: MulticastConfig) -> Self {
        self.config.group_multicast.insert(group, config);
        self
    }

    /// `[transport]`.
    pub fn transport(mut self, config: TransportConfig) -> Self {
        self.config.transport = config;
        self
    }

    /// The configuration, validated as a file is ([`NodeConfig::parse`]); errors name the
    /// file key at fault and [`BUILDER_SOURCE`] as the source.
    pub fn build(self) -> Result<NodeConfig, ConfigError> {
        let mut config = self.config;
        if let Some(file) = &self.key_file {
            config.key = Some(load_key(file, BUILDER_SOURCE)?);
        }
        config.validate(BUILDER_SOURCE)?;
        Ok(config)
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
        let e = parse("node_id = 1\nlisten = \"127.0.0.1:0\"\n[failure_detector]\nmonitors = 0\n")
            .unwrap_err();
        assert!(e.contains("failure_detector.monitors"), "{e}");
        let c = parse(
            "node_id = 1\nlisten = \"127.0.0.1:0\"\nbootstrap = true\n[failure_detector]\nmonitors = 3\n",
        )
        .unwrap();
        assert_eq!(c.settings.failure_detector.monitors, 3);
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
    fn durations_are_milliseconds_or_text_with_a_unit() {
        let c = parse(
            "node_id = 1\nlisten = \"127.0.0.1:0\"\nbootstrap = true\n\
             [failure_detector]\nheartbeat_interval_ms = 50\nsuspect_timeout = \"2s\"\n\
             [membership]\nview_change_timeout = \"400ms\"\nleave_timeout = \"1m 30s\"\n\
             [transport]\nreconnect_backoff_max = \"1s\"\n\
             [multicast]\nflush_fetch_timeout_ms = 700\nack_interval = \"5ms\"\n",
        )
        .unwrap();
        let fd = c.settings.failure_detector;
        assert_eq!(fd.heartbeat_interval, Duration::from_millis(50));
        assert_eq!(fd.suspect_timeout, Duration::from_secs(2));
        assert_eq!(
            fd.confirm_timeout,
            Duration::from_millis(150),
            "default kept"
        );
        assert_eq!(fd.monitors, 6, "default kept");
        let m = c.settings.membership;
        assert_eq!(m.view_change_timeout, Duration::from_millis(400));
        assert_eq!(m.leave_timeout, Duration::from_secs(90));
        assert_eq!(c.transport.reconnect_backoff_max, Duration::from_secs(1));
        let mc = c.settings.multicast;
        assert_eq!(mc.flush_fetch_timeout, Duration::from_millis(700));
        assert_eq!(mc.ack_interval, Duration::from_millis(5));
    }

    #[test]
    fn a_duration_given_twice_or_badly_is_refused_by_name() {
        let e = parse(
            "node_id = 1\nlisten = \"127.0.0.1:0\"\nbootstrap = true\n\
             [membership]\nleave_timeout = \"2s\"\nleave_timeout_ms = 2000\n",
        )
        .unwrap_err();
        assert!(
            e.contains("`membership.leave_timeout`") && e.contains("twice"),
            "{e}"
        );
        let e = parse(
            "node_id = 1\nlisten = \"127.0.0.1:0\"\n[failure_detector]\nsuspect_timeout = \"2 parsecs\"\n",
        )
        .unwrap_err();
        assert!(e.contains("failure_detector.suspect_timeout"), "{e}");
        // A bare number without its unit in the name is refused, not read as milliseconds.
        let e = parse(
            "node_id = 1\nlisten = \"127.0.0.1:0\"\n[failure_detector]\nsuspect_timeout = 400\n",
        )
        .unwrap_err();
        assert!(e.contains("failure_detector.suspect_timeout"), "{e}");
        // The validation still applies to text durations.
        let e = parse(
            "node_id = 1\nlisten = \"127.0.0.1:0\"\n[failure_detector]\nsuspect_timeout = \"10ms\"\n",
        )
        .unwrap_err();
        assert!(e.contains("failure_detector.suspect_timeout"), "{e}");
    }

    #[test]
    fn inbound_connection_limits_have_defaults_and_are_validated() {
        let base = "node_id = 1\nlisten = \"127.0.0.1:0\"\nbootstrap = true\n";
        let c = parse(base).unwrap();
        assert_eq!(c.transport.max_inbound_connections, 1024);
        assert_eq!(c.transport.auth_timeout, Duration::from_secs(5));
        assert_eq!(c.transport.frame_read_timeout, Duration::from_secs(10));
        let c = parse(&format!(
            "{base}[transport]\nmax_inbound_connections = 10\nauth_timeout = \"2s\"\n\
             frame_read_timeout_ms = 3000\n"
        ))
        .unwrap();
        assert_eq!(c.transport.max_inbound_connections, 10);
        assert_eq!(c.transport.auth_timeout, Duration::from_secs(2));
        assert_eq!(c.transport.frame_read_timeout, Duration::from_secs(3));
        for (text, key) in [
            (
                "max_inbound_connections = 0",
                "transport.max_inbound_connections",
            ),
            ("auth_timeout = \"100ms\"", "transport.auth_timeout"),
            ("frame_read_timeout_ms = 10", "transport.frame_read_timeout"),
        ] {
            let e = parse(&format!("{base}[transport]\n{text}\n")).unwrap_err();
            assert!(e.contains(key), "{text}: {e}");
        }
    }

    #[test]
    fn a_syntax_error_names_the_line() {
        let e = parse("node_id = 1\nlisten = \"127.0.0.1:0\"\nseeds = [\n").unwrap_err();
        assert!(e.starts_with("test.toml: ") && e.contains("line 3"), "{e}");
    }

    #[test]
    fn a_section_of_the_caller_is_read_with_its_key_path() {
        #[derive(Debug, Deserialize, PartialEq)]
        #[serde(deny_unknown_fields)]
        struct Extra {
            strategy: String,
        }
        let text =
            "node_id = 1\nlisten = \"127.0.0.1:0\"\nbootstrap = true\n[extra]\nstrategy = \"x\"\n";
        let path = Path::new("test.toml");
        let mut table = parse_table(text, path).unwrap();
        let e = NodeConfig::from_table(table.clone(), path)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown field `extra`"),
            "the node refuses it: {e}"
        );
        let extra: Extra = section(table.remove("extra").unwrap(), path, "extra").unwrap();
        assert_eq!(extra.strategy, "x");
        NodeConfig::from_table(table, path).unwrap();
        let bad = parse_table("[extra]\nstrategy = \"x\"\nfanout = 3\n", path)
            .unwrap()
            .remove("extra")
            .unwrap();
        let e = section::<Extra>(bad, path, "extra")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`extra.fanout`") && e.contains("unknown field `fanout`"),
            "{e}"
        );
    }

    /// The builder and the file refuse the same settings, naming the same key.
    #[test]
    fn the_builder_validates_as_the_file_does() {
        let key_of = |e: ConfigError| match e {
            ConfigError::Invalid { key, .. } => key.to_string(),
            other => panic!("not an invalid value: {other}"),
        };
        let file = |extra: &str| {
            key_of(
                NodeConfig::parse(
                    &format!("node_id = 1\nlisten = \"127.0.0.1:0\"\nbootstrap = true\n{extra}"),
                    Path::new("t.toml"),
                )
                .unwrap_err(),
            )
        };
        let built = |b: NodeConfigBuilder| key_of(b.bootstrap(true).build().unwrap_err());
        let fd = FailureDetectorConfig {
            suspect_timeout: Duration::from_millis(10),
            ..FailureDetectorConfig::default()
        };
        assert_eq!(
            file("[failure_detector]\nsuspect_timeout_ms = 10\n"),
            built(NodeConfig::builder(1).failure_detector(fd))
        );
        let transport = TransportConfig {
            send_queue_frames: 0,
            ..TransportConfig::default()
        };
        assert_eq!(
            file("[transport]\nsend_queue_frames = 0\n"),
            built(NodeConfig::builder(1).transport(transport))
        );
        let multicast = MulticastConfig {
            payload_bytes_max: 99_999_999,
            ..MulticastConfig::default()
        };
        assert_eq!(
            file("[multicast]\npayload_bytes_max = 99999999\n"),
            built(NodeConfig::builder(1).multicast(multicast))
        );
        assert_eq!(
            file("data_dir = \"\"\n"),
            built(NodeConfig::builder(1).data_dir(""))
        );
        assert_eq!(
            built(NodeConfig::builder(0)),
            "node_id",
            "node 0 is refused by both"
        );
        let e = NodeConfig::builder(1)
            .listen("0.0.0.0:7000".parse().unwrap())
            .bootstrap(true)
            .build()
            .unwrap_err()
            .to_string();
        assert!(e.contains(BUILDER_SOURCE) && e.contains("loopback"), "{e}");
        let e = NodeConfig::builder(2).build().unwrap_err().to_string();
        assert!(e.contains("`seeds`"), "{e}");
        // A valid one equals the file's.
        let built = NodeConfig::builder(2)
            .seed("127.0.0.1:7701".parse().unwrap())
            .group(GroupName::new("demo").unwrap())
            .build()
            .unwrap();
        let parsed = parse("node_id = 2\nlisten = \"127.0.0.1:0\"\nseeds = [\"127.0.0.1:7701\"]\ngroups = [\"demo\"]\n").unwrap();
        assert_eq!(format!("{built:?}"), format!("{parsed:?}"));
        let e = NodeConfig::builder(1)
            .key_file("/nonexistent/cluster.key")
            .bootstrap(true)
            .build()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("keygen"),
            "a missing key file suggests keygen: {e}"
        );
    }

    #[test]
    fn addresses_may_name_a_host() {
        let c =
            parse("node_id = 2\nlisten = \"localhost:0\"\nseeds = [\"localhost:7701\"]\n").unwrap();
        assert!(c.listen.ip().is_loopback(), "{:?}", c.listen);
        assert_eq!(c.seeds[0].port(), 7701);
        let e = parse("node_id = 2\nlisten = \"127.0.0.1\"\nseeds = [\"x:1\"]\n").unwrap_err();
        assert!(e.contains("`listen`") && e.contains("IP:PORT"), "{e}");
        let e = parse("node_id = 2\nlisten = \"127.0.0.1:0\"\nseeds = [\"localhost:99999\"]\n")
            .unwrap_err();
        assert!(e.contains("`seeds`") && e.contains("IP:PORT"), "{e}");
        let e = resolve_address("no-such-host.invalid:7701").unwrap_err();
        assert!(e.contains("no-such-host.invalid"), "{e}");
    }

    #[test]
    fn without_a_key_only_loopback_is_allowed() {
        let e = parse("node_id = 1\nlisten = \"0.0.0.0:7000\"\n").unwrap_err();
        assert!(e.contains("`listen`") && e.contains("loopback"), "{e}");
    }
}
