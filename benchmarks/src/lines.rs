//! The lines members print: `kind key=value ...` event lines (split by the services crate's
//! [`Fields`], the parser of every `viewsync` line), and the one result line per member in the
//! format of DESIGN.md section 6 (plus overhead fields), printed and parsed here.

use crate::cli::Mode;
use std::fmt;
/// The one `key=value` line parser, next to the printer of the node's lines.
pub use viewsync_services::report::Fields;

/// Own-delivery latency percentiles, in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Latency {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Largest.
    pub max: u64,
}

/// One member's result.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ResultLine {
    /// The member's node id.
    pub node: u64,
    /// What it did.
    pub mode: Option<Mode>,
    /// Payload bytes.
    pub size: usize,
    /// Seconds of sending.
    pub secs: f64,
    /// Group size.
    pub members: usize,
    /// Multicasts accepted from this member.
    pub sent: u64,
    /// Its own multicasts it delivered.
    pub own_deliv: u64,
    /// Multicasts it delivered (all senders, including the drain after the clock stopped).
    pub delivered: u64,
    /// Deliveries per second while the clock ran.
    pub deliv_msgs_s: f64,
    /// Payload megabytes (10^6) delivered per second while the clock ran.
    pub deliv_mb_s: f64,
    /// Own-delivery latency, if it sent anything.
    pub latency: Option<Latency>,
    /// Latency from another member's multicast to its delivery here, if any was delivered.
    pub recv_latency: Option<Latency>,
    /// Deliveries hashed (at most the `K` asked for; fewer if fewer were delivered).
    pub hash_k: u64,
    /// Hash of the ids of the first `hash_k` deliveries, hex.
    pub order_hash: String,
    /// Frames this member sealed per multicast it delivered.
    pub wire_frames_per_deliv: f64,
    /// Bytes this member wrote to its peer connections (`NodeStats::bytes_sent`) per
    /// multicast it delivered; `None` if unknown.
    pub wire_bytes_per_deliv: Option<f64>,
    /// Write calls of the transport (`NodeStats::write_batches`) per multicast delivered.
    pub writes_per_deliv: f64,
    /// CPU seconds of this process per 1000 multicasts delivered.
    pub cpu_s_per_1000: f64,
    /// Suspicions raised by its failure detector during the run.
    pub suspicions: u64,
    /// Of those, contradicted later (the peer was alive).
    pub false_suspicions: u64,
    /// Entries it retransmitted.
    pub retransmitted: u64,
    /// Frames its transport dropped because a peer's send queue was full.
    pub dropped_frames: u64,
    /// Entries it received more than once.
    pub duplicates: u64,
    /// Milliseconds from `drain` to its last delivery.
    pub drain_ms: u64,
    /// Deliveries by sender node id (since the process started).
    pub per_sender: Vec<(u64, u64)>,
    /// Open loop: multicasts its schedule offered while the clock ran (0 in the closed-loop
    /// modes); `offered - sent` is load the member could not take.
    pub offered: u64,
}

impl ResultLine {
    /// Parses a result line; `None` if it is not one.
    pub fn parse(line: &str) -> Option<Self> {
        if !line.starts_with("node=") {
            return None;
        }
        let f = Fields::parse(line);
        let latency = match f.text("p50") {
            Some("-") | None => None,
            Some(_) => Some(Latency {
                p50: f.get("p50")?,
                p90: f.get("p90")?,
                p99: f.get("p99")?,
                max: f.get("max")?,
            }),
        };
        let recv_latency = match f.text("recv_lat_us_p50") {
            Some("-") | None => None,
            Some(_) => Some(Latency {
                p50: f.get("recv_lat_us_p50")?,
                p90: f.get("recv_lat_us_p90")?,
                p99: f.get("recv_lat_us_p99")?,
                max: f.get("recv_lat_us_max")?,
            }),
        };
        let (hash_key, order_hash) = f.map.iter().find(|(k, _)| k.starts_with("order_hash@"))?;
        Some(ResultLine {
            node: f.get("node")?,
            mode: f.get("mode"),
            size: f.get("size")?,
            secs: f.get("secs")?,
            members: f.get("members")?,
            sent: f.get("sent")?,
            own_deliv: f.get("own_deliv")?,
            delivered: f.get("delivered")?,
            deliv_msgs_s: f.get("deliv_msgs/s")?,
            deliv_mb_s: f.get("deliv_MB/s")?,
            latency,
            recv_latency,
            hash_k: hash_key.trim_start_matches("order_hash@").parse().ok()?,
            order_hash: order_hash.clone(),
            wire_frames_per_deliv: f.get("wire_frames_per_deliv").unwrap_or(0.0),
            wire_bytes_per_deliv: f.get("wire_bytes_per_deliv"),
            writes_per_deliv: f.get("writes_per_deliv").unwrap_or(0.0),
            cpu_s_per_1000: f.get("cpu_s_per_1000").unwrap_or(0.0),
            suspicions: f.get("suspicions").unwrap_or(0),
            false_suspicions: f.get("false_suspicions").unwrap_or(0),
            retransmitted: f.get("retransmitted").unwrap_or(0),
            dropped_frames: f.get("dropped_frames").unwrap_or(0),
            duplicates: f.get("duplicates").unwrap_or(0),
            drain_ms: f.get("drain_ms").unwrap_or(0),
            per_sender: f
                .text("per_sender")
                .unwrap_or("")
                .split(',')
                .filter_map(|p| {
                    let (node, n) = p.split_once(':')?;
                    Some((node.parse().ok()?, n.parse().ok()?))
                })
                .collect(),
            offered: f.get("offered").unwrap_or(0),
        })
    }
}

impl fmt::Display for ResultLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "node={} mode={} size={} secs={} members={} sent={} own_deliv={} delivered={} deliv_msgs/s={:.0} deliv_MB/s={:.2} own_lat_us",
            self.node,
            self.mode.map_or("-", Mode::name),
            self.size,
            self.secs,
            self.members,
            self.sent,
            self.own_deliv,
            self.delivered,
            self.deliv_msgs_s,
            self.deliv_mb_s,
        )?;
        match self.latency {
            Some(l) => write!(
                f,
                " p50={} p90={} p99={} max={}",
                l.p50, l.p90, l.p99, l.max
            )?,
            None => f.write_str(" p50=- p90=- p99=- max=-")?,
        }
        write!(
            f,
            " order_hash@{}={} wire_frames_per_deliv={:.3} wire_bytes_per_deliv={} writes_per_deliv={:.4} cpu_s_per_1000={:.4} suspicions={} false_suspicions={} retransmitted={} dropped_frames={} duplicates={} drain_ms={}",
            self.hash_k,
            self.order_hash,
            self.wire_frames_per_deliv,
            self.wire_bytes_per_deliv
                .map_or_else(|| "-".to_string(), |b| format!("{b:.1}")),
            self.writes_per_deliv,
            self.cpu_s_per_1000,
            self.suspicions,
            self.false_suspicions,
            self.retransmitted,
            self.dropped_frames,
            self.duplicates,
            self.drain_ms,
        )?;
        match self.recv_latency {
            Some(l) => write!(
                f,
                " recv_lat_us_p50={} recv_lat_us_p90={} recv_lat_us_p99={} recv_lat_us_max={}",
                l.p50, l.p90, l.p99, l.max
            )?,
            None => f.write_str(
                " recv_lat_us_p50=- recv_lat_us_p90=- recv_lat_us_p99=- recv_lat_us_max=-",
            )?,
        }
        let per_sender: Vec<String> = self
            .per_sender
            .iter()
            .map(|(node, n)| format!("{node}:{n}"))
            .collect();
        write!(
            f,
            " per_sender={} offered={}",
            per_sender.join(","),
            self.offered
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_line_round_trips() {
        let line = ResultLine {
            node: 2,
            mode: Some(Mode::Flood),
            size: 1024,
            secs: 3.0,
            members: 3,
            sent: 10,
            own_deliv: 10,
            delivered: 30,
            deliv_msgs_s: 10.0,
            deliv_mb_s: 0.01,
            latency: Some(Latency {
                p50: 100,
                p90: 200,
                p99: 300,
                max: 400,
            }),
            recv_latency: Some(Latency {
                p50: 1,
                p90: 2,
                p99: 3,
                max: 4,
            }),
            hash_k: 30,
            order_hash: "00ff".into(),
            wire_frames_per_deliv: 0.5,
            wire_bytes_per_deliv: Some(700.0),
            writes_per_deliv: 0.25,
            cpu_s_per_1000: 0.125,
            suspicions: 1,
            false_suspicions: 0,
            retransmitted: 2,
            dropped_frames: 3,
            duplicates: 4,
            drain_ms: 5,
            per_sender: vec![(1, 10), (2, 20)],
            offered: 12,
        };
        let text = line.to_string();
        assert!(text.starts_with("node=2 mode=flood size=1024 secs=3 members=3 sent=10 own_deliv=10 delivered=30 deliv_msgs/s=10 deliv_MB/s=0.01 own_lat_us p50=100 p90=200 p99=300 max=400 order_hash@30=00ff "), "{text}");
        assert_eq!(ResultLine::parse(&text), Some(line.clone()));
        let recv = ResultLine {
            latency: None,
            recv_latency: None,
            wire_bytes_per_deliv: None,
            mode: Some(Mode::Recv),
            ..line
        };
        assert_eq!(ResultLine::parse(&recv.to_string()), Some(recv));
    }

    #[test]
    fn event_lines_split_into_kind_and_fields() {
        let f = Fields::parse("gview t_ns=12 epoch=3 size=2 members=1,2");
        assert!(f.is("gview"));
        assert_eq!(f.get::<u64>("t_ns"), Some(12));
        assert_eq!(f.text("members"), Some("1,2"));
        assert!(ResultLine::parse("gview t_ns=1").is_none());
    }
}
