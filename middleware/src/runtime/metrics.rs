//! The metrics endpoint (`metrics_listen`): the node's status in the Prometheus/OpenMetrics
//! text format over HTTP, with `prometheus-client`.
//!
//! Each scrape asks the node actor for its [`NodeStatus`] (the figures `viewsync status`
//! shows) and encodes it as constant metrics ([`StatusCollector`]), together with the one
//! metric the node keeps only here: [`RequestLatency`], client request latency per group and
//! strategy, from the request's arrival at the node to the service's answer leaving it.
//! Metric names are listed in docs/OPERATIONS.md ("Metrics").
//!
//! The HTTP server is deliberately small: `GET /metrics` (and `/`), HTTP/1.0 or 1.1, one
//! request per connection, requests parsed with `httparse`. Bounded: at most
//! [`METRICS_CONNECTIONS_MAX`] connections at once (further ones wait in the listen backlog),
//! requests of at most [`METRICS_REQUEST_BYTES_MAX`] bytes, and [`METRICS_IO_TIMEOUT`] to
//! read the request and write the answer.

use crate::wire::status::NodeStatus;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Connections the metrics endpoint serves at once.
pub const METRICS_CONNECTIONS_MAX: usize = 8;
/// The largest request the metrics endpoint reads; a larger one is answered 431.
pub const METRICS_REQUEST_BYTES_MAX: usize = 8 * 1024;
/// How long the endpoint waits for a request, and for its answer to be written.
pub const METRICS_IO_TIMEOUT: Duration = Duration::from_secs(5);
/// The prefix of every metric name.
pub const METRICS_PREFIX: &str = "viewsync";

/// Labels of the request latency histograms: `group` and `strategy`.
type LatencyLabels = Vec<(&'static str, String)>;

fn latency_histogram() -> Histogram {
    // 100 µs to about 13 s, doubling.
    Histogram::new(exponential_buckets(0.0001, 2.0, 18))
}

/// Client request latency at the node, per group and strategy: from the request's arrival to
/// the service's answer. Shared by the node actor (which observes) and the endpoint (which
/// encodes); cheap to clone.
#[derive(Clone, Debug)]
pub struct RequestLatency {
    family: Family<LatencyLabels, Histogram, fn() -> Histogram>,
}

impl Default for RequestLatency {
    fn default() -> Self {
        RequestLatency {
            family: Family::new_with_constructor(latency_histogram),
        }
    }
}

impl RequestLatency {
    /// Records one answered request of `group`'s service (running `strategy`).
    pub fn observe(&self, group: &str, strategy: &str, latency: Duration) {
        let labels = vec![
            ("group", group.to_string()),
            ("strategy", strategy.to_string()),
        ];
        self.family
            .get_or_create(&labels)
            .observe(latency.as_secs_f64());
    }
}

/// A node's status as constant metrics, for one scrape.
#[derive(Debug)]
pub struct StatusCollector(pub NodeStatus);

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

/// One labelled family of values (gauges or counters).
fn family(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    values: &[(Vec<(&'static str, String)>, u64)],
) -> Result<(), std::fmt::Error> {
    if values.is_empty() {
        return Ok(());
    }
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in values {
        let encoder = metric.encode_family(labels)?;
        match kind {
            MetricType::Counter => ConstCounter::new(*value).encode(encoder)?,
            _ => ConstGauge::new(i64::try_from(*value).unwrap_or(i64::MAX)).encode(encoder)?,
        }
    }
    Ok(())
}

impl Collector for StatusCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let status = &self.0;
        let c = &status.counters;
        let e = &mut encoder;
        family(
            e,
            "node_info",
            "The node: its id, incarnation and listen address (always 1)",
            MetricType::Gauge,
            &[(
                vec![
                    ("node", status.process.node.to_string()),
                    ("incarnation", status.process.incarnation.0.to_string()),
                    ("addr", status.addr.to_string()),
                ],
                1,
            )],
        )?;
        gauge(
            e,
            "uptime_seconds",
            "Seconds since the node started",
            status.uptime_ms / 1000,
        )?;
        counter(
            e,
            "views_installed",
            "Views installed, over all groups",
            c.views_installed,
        )?;
        counter(
            e,
            "suspicions",
            "Suspicions raised by the failure detector",
            c.suspicions,
        )?;
        counter(
            e,
            "false_suspicions",
            "Suspicions contradicted later: the peer was heard again",
            c.false_suspicions,
        )?;
        counter(e, "frames_accepted", "Frames accepted", c.frames_accepted)?;
        let reason = |r: &str| vec![("reason", r.to_string())];
        family(
            e,
            "frames_refused",
            "Frames refused, by reason",
            MetricType::Counter,
            &[
                (reason("too_large"), c.frames_refused_too_large),
                (reason("malformed"), c.frames_refused_malformed),
                (reason("unauthenticated"), c.frames_refused_unauthenticated),
                (reason("replayed"), c.frames_refused_replayed),
            ],
        )?;
        counter(
            e,
            "connections_closed_bad_frame",
            "Connections closed over a bad frame",
            c.connections_closed_bad_frame,
        )?;
        counter(
            e,
            "client_windows_evicted",
            "Client replay windows forgotten to make room for newer clients",
            c.client_windows_evicted,
        )?;
        counter(e, "frames_sent", "Frames sealed for sending", c.frames_sent)?;
        counter(
            e,
            "bytes_sent",
            "Bytes written to peer connections",
            c.bytes_sent,
        )?;
        counter(
            e,
            "write_batches",
            "Write calls to peer connections",
            c.write_batches,
        )?;
        counter(
            e,
            "frames_dropped_queue_full",
            "Frames dropped because a peer's send queue was full",
            c.frames_dropped_queue_full,
        )?;
        counter(
            e,
            "events_dropped",
            "Events lost by slow subscribers and monitors",
            c.events_dropped,
        )?;
        counter(
            e,
            "multicasts",
            "Multicasts accepted, over all groups",
            c.multicasts,
        )?;
        counter(
            e,
            "delivered",
            "Multicasts delivered, over all groups",
            c.delivered,
        )?;
        counter(
            e,
            "retransmitted",
            "Multicast entries retransmitted on request",
            c.retransmitted,
        )?;
        counter(
            e,
            "duplicates",
            "Multicast entries received more than once",
            c.duplicates,
        )?;
        counter(
            e,
            "state_transfers",
            "State transfers completed as a joiner",
            c.state_transfers,
        )?;
        counter(
            e,
            "requests",
            "Client requests handed to services",
            c.requests,
        )?;
        counter(
            e,
            "requests_answered",
            "Client requests answered by services",
            c.requests_answered,
        )?;
        gauge(
            e,
            "buffered_entries",
            "Multicast entries held in buffers now",
            c.buffered_entries,
        )?;
        gauge(
            e,
            "waiting_multicasts",
            "Multicasts waiting for credit now",
            c.waiting_multicasts,
        )?;
        gauge(
            e,
            "suspected_peers",
            "Peers the failure detector suspects now",
            status.suspected.len() as u64,
        )?;
        let group = |g: &crate::wire::status::GroupState| vec![("group", g.group.to_string())];
        let per_group = |f: &dyn Fn(&crate::wire::status::GroupState) -> Option<u64>| {
            status
                .groups
                .iter()
                .filter_map(|g| f(g).map(|v| (group(g), v)))
                .collect::<Vec<_>>()
        };
        family(
            e,
            "group_epoch",
            "Epoch of the installed view",
            MetricType::Gauge,
            &per_group(&|g| g.view.as_ref().map(|v| v.id.epoch)),
        )?;
        family(
            e,
            "group_members",
            "Members of the installed view",
            MetricType::Gauge,
            &per_group(&|g| g.view.as_ref().map(|v| v.members.len() as u64)),
        )?;
        family(
            e,
            "group_blocked",
            "1 while the node is blocked in the group (no majority, no state holder, no seed)",
            MetricType::Gauge,
            &per_group(&|g| Some(u64::from(g.blocked.is_some()))),
        )?;
        family(
            e,
            "group_member",
            "1 while the node is a member of the group's installed view",
            MetricType::Gauge,
            &per_group(&|g| Some(u64::from(g.view.is_some()))),
        )?;
        family(
            e,
            "group_unstable_entries",
            "Multicast entries held in the group's buffers",
            MetricType::Gauge,
            &per_group(&|g| Some(g.unstable_entries)),
        )?;
        family(
            e,
            "group_outbox",
            "Multicasts waiting in the group's outbox",
            MetricType::Gauge,
            &per_group(&|g| Some(g.outbox)),
        )?;
        let service = |g: &crate::wire::status::GroupState| {
            g.service.as_ref().map(|s| {
                vec![
                    ("group", g.group.to_string()),
                    ("strategy", s.strategy.clone()),
                ]
            })
        };
        let per_service =
            |f: &dyn Fn(&crate::wire::status::ServiceState) -> Option<u64>| -> Vec<_> {
                status
                    .groups
                    .iter()
                    .filter_map(|g| Some((service(g)?, f(g.service.as_ref()?)?)))
                    .collect()
            };
        family(
            e,
            "service_applied_position",
            "Position (log index) of the last update the service applied",
            MetricType::Gauge,
            &per_service(&|s| s.applied),
        )?;
        family(
            e,
            "service_log_records",
            "Records in the service's write-ahead log",
            MetricType::Gauge,
            &per_service(&|s| s.log_records),
        )?;
        family(
            e,
            "service_data_dir_bytes",
            "Bytes of the files in the service's data directory",
            MetricType::Gauge,
            &per_service(&|s| s.data_dir_bytes),
        )?;
        let peer = |p: &crate::wire::status::PeerState| vec![("peer", p.addr.to_string())];
        let peers = |f: &dyn Fn(&crate::wire::status::PeerState) -> u64| -> Vec<_> {
            status.peers.iter().map(|p| (peer(p), f(p))).collect()
        };
        family(
            e,
            "peer_connected",
            "1 while the outbound connection to the peer is established",
            MetricType::Gauge,
            &peers(&|p| u64::from(p.connected)),
        )?;
        family(
            e,
            "peer_queued_frames",
            "Frames queued for the peer, not yet written",
            MetricType::Gauge,
            &peers(&|p| p.queued_frames),
        )?;
        Ok(())
    }
}

/// The text of one scrape: `status` and the latency histograms, OpenMetrics text.
pub fn encode(status: NodeStatus, latency: &RequestLatency) -> String {
    let mut registry = Registry::with_prefix(METRICS_PREFIX);
    registry.register_collector(Box::new(StatusCollector(status)));
    registry.register_with_unit(
        "request_latency",
        "Client request latency at the node, from arrival to the service's answer",
        Unit::Seconds,
        latency.family.clone(),
    );
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)
        .expect("writing to a String does not fail");
    text
}

/// What the endpoint asks for each scrape: the node's status now (`None`: the node stopped).
pub type StatusSource =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Option<NodeStatus>>>> + 'static>;

/// Serves `GET /metrics` on `listener` until the node stops (`status` answers `None`, or the
/// task is dropped with its system).
pub async fn serve(listener: TcpListener, status: StatusSource, latency: RequestLatency) {
    let permits = Arc::new(tokio::sync::Semaphore::new(METRICS_CONNECTIONS_MAX));
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "metrics endpoint: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (status, latency) = (status.clone(), latency.clone());
        actix::spawn(async move {
            if let Err(error) = answer(stream, status, latency).await {
                tracing::debug!(%peer, %error, "metrics endpoint: request not answered");
            }
            drop(permit);
        });
    }
}

/// Reads one request and answers it.
async fn answer(
    mut stream: TcpStream,
    status: StatusSource,
    latency: RequestLatency,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; METRICS_REQUEST_BYTES_MAX];
    let mut len = 0;
    let request = tokio::time::timeout(METRICS_IO_TIMEOUT, async {
        loop {
            if len == buf.len() {
                return Ok(Err((431, "request header fields too large")));
            }
            let n = stream.read(&mut buf[len..]).await?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "closed before a whole request",
                ));
            }
            len += n;
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut parsed = httparse::Request::new(&mut headers);
            match parsed.parse(&buf[..len]) {
                Ok(httparse::Status::Complete(_)) => {
                    return Ok(Ok((
                        parsed.method.unwrap_or_default().to_string(),
                        parsed.path.unwrap_or_default().to_string(),
                    )))
                }
                Ok(httparse::Status::Partial) => continue,
                Err(_) => return Ok(Err((400, "bad request"))),
            }
        }
    })
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "request timed out"))??;
    let (code, reason, content_type, body) = match request {
        Err((code, reason)) => (code, reason, "text/plain", format!("{reason}\n")),
        Ok((method, _)) if method != "GET" && method != "HEAD" => (
            405,
            "method not allowed",
            "text/plain",
            "only GET\n".to_string(),
        ),
        Ok((_, path)) if path == "/metrics" || path == "/" => match status().await {
            Some(status) => (
                200,
                "OK",
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                encode(status, &latency),
            ),
            None => (
                503,
                "service unavailable",
                "text/plain",
                "node stopped\n".to_string(),
            ),
        },
        Ok(_) => (404, "not found", "text/plain", "try /metrics\n".to_string()),
    };
    let head = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    tokio::time::timeout(METRICS_IO_TIMEOUT, async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        stream.shutdown().await
    })
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "answer timed out"))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::{Incarnation, NodeId, ProcessId};
    use crate::wire::status::StatusCounters;

    fn status() -> NodeStatus {
        NodeStatus {
            process: ProcessId {
                node: NodeId(3),
                incarnation: Incarnation(77),
            },
            addr: "127.0.0.1:7703".parse().unwrap(),
            uptime_ms: 12_000,
            groups: Vec::new(),
            suspected: Vec::new(),
            peers: Vec::new(),
            counters: StatusCounters {
                views_installed: 4,
                frames_refused_unauthenticated: 2,
                ..StatusCounters::default()
            },
        }
    }

    #[test]
    fn a_scrape_holds_the_counters_and_the_latency_histograms() {
        let latency = RequestLatency::default();
        latency.observe("kv", "passive", Duration::from_millis(3));
        let text = encode(status(), &latency);
        assert!(
            text.contains("viewsync_views_installed_total 4\n"),
            "{text}"
        );
        assert!(
            text.contains("viewsync_frames_refused_total{reason=\"unauthenticated\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("viewsync_uptime_seconds 12\n"), "{text}");
        assert!(
            text.contains(
                "viewsync_request_latency_seconds_count{group=\"kv\",strategy=\"passive\"} 1\n"
            ),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
