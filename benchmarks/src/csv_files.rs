//! The results files, `multicast.csv` (one row per member and cell) and `view-change.csv`
//! (one row per view-change run), appended by every run and read back to rewrite the tables
//! and plots. Read and written with the `csv` crate through one record struct per file, so
//! quoting and column order are the crate's business; the columns are those of the files
//! already committed under docs/bench (a test reads them).

use crate::cli::{Event, Load, Mode, Order, Senders};
use crate::lines::{Latency, ResultLine};
use crate::results::{
    MulticastCell, MulticastRow, RatePoint, RunInfo, ViewChangeCell, ViewChangeResult,
    ViewChangeRow, ViewChangeSettings,
};
use crate::BoxError;
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::fs::OpenOptions;
use std::path::Path;
use std::str::FromStr;

/// The header of `multicast.csv`.
pub const MULTICAST_HEADER: &str = "run,commit,order,members,size,senders,mode,secs,node,node_mode,sent,own_deliv,delivered,deliv_msgs_s,deliv_mb_s,lat_p50_us,lat_p90_us,lat_p99_us,lat_max_us,hash_k,order_hash,wire_frames_per_deliv,wire_bytes_per_deliv,writes_per_deliv,cpu_s_per_1000,suspicions,false_suspicions,retransmitted,dropped_frames,duplicates,drain_ms,recv_lat_p50_us,recv_lat_p99_us";

/// The header of `view-change.csv`.
pub const VIEW_CHANGE_HEADER: &str = "run,commit,event,members,load,order,size,rep,view_ms_min,view_ms_max,service_view_ms_max,detect_ms,unstable,suspicions,false_suspicions,per_member_ms";

/// A float written with `D` decimals: the files stay short and their diffs readable.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Fixed<const D: usize>(f64);

impl<const D: usize> fmt::Display for Fixed<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.*}", D, self.0)
    }
}

impl<const D: usize> FromStr for Fixed<D> {
    type Err = std::num::ParseFloatError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(Fixed)
    }
}

/// A value written as its `Display` text and read back with `FromStr` (the benchmark's
/// enums, fixed-precision floats).
mod text {
    use super::*;

    pub fn serialize<T: fmt::Display, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(value)
    }

    pub fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
    where
        T: FromStr,
        T::Err: fmt::Display,
        D: Deserializer<'de>,
    {
        let text = String::deserialize(d)?;
        text.parse()
            .map_err(|e| D::Error::custom(format!("{text:?}: {e}")))
    }
}

/// An optional value, `-` when absent (as the member lines write it).
mod dash {
    use super::*;

    pub fn serialize<T: fmt::Display, S: Serializer>(
        value: &Option<T>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(value) => s.collect_str(value),
            None => s.serialize_str("-"),
        }
    }

    pub fn deserialize<'de, T, D>(d: D) -> Result<Option<T>, D::Error>
    where
        T: FromStr,
        T::Err: fmt::Display,
        D: Deserializer<'de>,
    {
        let text = String::deserialize(d)?;
        if text == "-" {
            return Ok(None);
        }
        text.parse()
            .map(Some)
            .map_err(|e| D::Error::custom(format!("{text:?}: {e}")))
    }
}

/// One row of `multicast.csv`; the field names are the columns.
#[derive(Debug, Serialize, Deserialize)]
struct MulticastRecord {
    run: u64,
    commit: String,
    #[serde(with = "text")]
    order: Order,
    members: usize,
    size: usize,
    #[serde(with = "text")]
    senders: Senders,
    #[serde(with = "text")]
    mode: Mode,
    #[serde(with = "text")]
    secs: f64,
    node: u64,
    #[serde(with = "dash")]
    node_mode: Option<Mode>,
    sent: u64,
    own_deliv: u64,
    delivered: u64,
    #[serde(with = "text")]
    deliv_msgs_s: Fixed<0>,
    #[serde(with = "text")]
    deliv_mb_s: Fixed<3>,
    #[serde(with = "dash")]
    lat_p50_us: Option<u64>,
    #[serde(with = "dash")]
    lat_p90_us: Option<u64>,
    #[serde(with = "dash")]
    lat_p99_us: Option<u64>,
    #[serde(with = "dash")]
    lat_max_us: Option<u64>,
    hash_k: u64,
    order_hash: String,
    #[serde(with = "text")]
    wire_frames_per_deliv: Fixed<4>,
    #[serde(with = "dash")]
    wire_bytes_per_deliv: Option<Fixed<1>>,
    #[serde(with = "text")]
    writes_per_deliv: Fixed<4>,
    #[serde(with = "text")]
    cpu_s_per_1000: Fixed<4>,
    suspicions: u64,
    false_suspicions: u64,
    retransmitted: u64,
    dropped_frames: u64,
    duplicates: u64,
    drain_ms: u64,
    #[serde(with = "dash")]
    recv_lat_p50_us: Option<u64>,
    #[serde(with = "dash")]
    recv_lat_p99_us: Option<u64>,
}

impl MulticastRecord {
    fn new(info: &RunInfo, cell: MulticastCell, secs: f64, l: &ResultLine) -> Self {
        let lat = l.latency;
        MulticastRecord {
            run: info.run,
            commit: info.commit.clone(),
            order: cell.order,
            members: cell.members,
            size: cell.size,
            senders: cell.senders,
            mode: cell.mode,
            secs,
            node: l.node,
            node_mode: l.mode,
            sent: l.sent,
            own_deliv: l.own_deliv,
            delivered: l.delivered,
            deliv_msgs_s: Fixed(l.deliv_msgs_s),
            deliv_mb_s: Fixed(l.deliv_mb_s),
            lat_p50_us: lat.map(|l| l.p50),
            lat_p90_us: lat.map(|l| l.p90),
            lat_p99_us: lat.map(|l| l.p99),
            lat_max_us: lat.map(|l| l.max),
            hash_k: l.hash_k,
            order_hash: l.order_hash.clone(),
            wire_frames_per_deliv: Fixed(l.wire_frames_per_deliv),
            wire_bytes_per_deliv: l.wire_bytes_per_deliv.map(Fixed),
            writes_per_deliv: Fixed(l.writes_per_deliv),
            cpu_s_per_1000: Fixed(l.cpu_s_per_1000),
            suspicions: l.suspicions,
            false_suspicions: l.false_suspicions,
            retransmitted: l.retransmitted,
            dropped_frames: l.dropped_frames,
            duplicates: l.duplicates,
            drain_ms: l.drain_ms,
            recv_lat_p50_us: l.recv_latency.map(|l| l.p50),
            recv_lat_p99_us: l.recv_latency.map(|l| l.p99),
        }
    }

    fn into_row(self) -> MulticastRow {
        let cell = MulticastCell {
            order: self.order,
            members: self.members,
            size: self.size,
            senders: self.senders,
            mode: self.mode,
        };
        let latency = match (
            self.lat_p50_us,
            self.lat_p90_us,
            self.lat_p99_us,
            self.lat_max_us,
        ) {
            (Some(p50), Some(p90), Some(p99), Some(max)) => Some(Latency { p50, p90, p99, max }),
            _ => None,
        };
        // The file keeps only p50 and p99 of the receive latency.
        let recv_latency = match (self.recv_lat_p50_us, self.recv_lat_p99_us) {
            (Some(p50), Some(p99)) => Some(Latency {
                p50,
                p90: 0,
                p99,
                max: 0,
            }),
            _ => None,
        };
        MulticastRow {
            run: self.run,
            commit: self.commit,
            cell,
            secs: self.secs,
            line: ResultLine {
                node: self.node,
                mode: self.node_mode,
                size: cell.size,
                secs: self.secs,
                members: cell.members,
                sent: self.sent,
                own_deliv: self.own_deliv,
                delivered: self.delivered,
                deliv_msgs_s: self.deliv_msgs_s.0,
                deliv_mb_s: self.deliv_mb_s.0,
                latency,
                recv_latency,
                hash_k: self.hash_k,
                order_hash: self.order_hash,
                wire_frames_per_deliv: self.wire_frames_per_deliv.0,
                wire_bytes_per_deliv: self.wire_bytes_per_deliv.map(|b| b.0),
                writes_per_deliv: self.writes_per_deliv.0,
                cpu_s_per_1000: self.cpu_s_per_1000.0,
                suspicions: self.suspicions,
                false_suspicions: self.false_suspicions,
                retransmitted: self.retransmitted,
                dropped_frames: self.dropped_frames,
                duplicates: self.duplicates,
                drain_ms: self.drain_ms,
                per_sender: Vec::new(),
                offered: 0,
            },
        }
    }
}

/// One row of `view-change.csv`; the field names are the columns.
#[derive(Debug, Serialize, Deserialize)]
struct ViewChangeRecord {
    run: u64,
    commit: String,
    #[serde(with = "text")]
    event: Event,
    members: usize,
    #[serde(with = "text")]
    load: Load,
    #[serde(with = "text")]
    order: Order,
    size: usize,
    rep: usize,
    #[serde(with = "text")]
    view_ms_min: Fixed<2>,
    #[serde(with = "text")]
    view_ms_max: Fixed<2>,
    #[serde(with = "dash")]
    service_view_ms_max: Option<Fixed<2>>,
    #[serde(with = "dash")]
    detect_ms: Option<Fixed<2>>,
    unstable: u64,
    suspicions: u64,
    false_suspicions: u64,
    /// `node:ms` pairs joined by `;`.
    per_member_ms: String,
}

/// The header of `multicast-rate.csv`.
pub const RATE_HEADER: &str = "run,commit,order,members,size,senders,rate,peak,secs,offered,sent,deliv_msgs_s,own_p50_us,own_p99_us,recv_p99_us,complete";

/// One row of `multicast-rate.csv`: one open-loop cell.
#[derive(Debug, Serialize, Deserialize)]
struct RateRecord {
    run: u64,
    commit: String,
    #[serde(with = "text")]
    order: Order,
    members: usize,
    size: usize,
    #[serde(with = "text")]
    senders: Senders,
    #[serde(with = "text")]
    rate: Fixed<0>,
    #[serde(with = "dash")]
    peak: Option<Fixed<0>>,
    #[serde(with = "text")]
    secs: f64,
    offered: u64,
    sent: u64,
    #[serde(with = "text")]
    deliv_msgs_s: Fixed<0>,
    #[serde(with = "dash")]
    own_p50_us: Option<u64>,
    #[serde(with = "dash")]
    own_p99_us: Option<u64>,
    #[serde(with = "dash")]
    recv_p99_us: Option<u64>,
    complete: bool,
}

/// Appends one open-loop cell.
pub fn append_rate(path: &Path, point: &RatePoint) -> Result<(), BoxError> {
    append(
        path,
        [RateRecord {
            run: point.run,
            commit: point.commit.clone(),
            order: point.cell.order,
            members: point.cell.members,
            size: point.cell.size,
            senders: point.cell.senders,
            rate: Fixed(point.rate),
            peak: point.peak.map(Fixed),
            secs: point.secs,
            offered: point.offered,
            sent: point.sent,
            deliv_msgs_s: Fixed(point.deliv_msgs_s),
            own_p50_us: point.own_p50_us,
            own_p99_us: point.own_p99_us,
            recv_p99_us: point.recv_p99_us,
            complete: point.complete,
        }],
    )
}

/// Reads `multicast-rate.csv`.
pub fn read_rate(path: &Path) -> Result<Vec<RatePoint>, BoxError> {
    Ok(read::<RateRecord>(path)?
        .into_iter()
        .map(|r| RatePoint {
            run: r.run,
            commit: r.commit,
            cell: MulticastCell {
                order: r.order,
                members: r.members,
                size: r.size,
                senders: r.senders,
                mode: Mode::Rate,
            },
            rate: r.rate.0,
            peak: r.peak.map(|p| p.0),
            secs: r.secs,
            offered: r.offered,
            sent: r.sent,
            deliv_msgs_s: r.deliv_msgs_s.0,
            own_p50_us: r.own_p50_us,
            own_p99_us: r.own_p99_us,
            recv_p99_us: r.recv_p99_us,
            complete: r.complete,
        })
        .collect())
}

/// `node:ms` pairs joined by `;` (one CSV field).
pub fn per_member(times: &[(u64, f64)]) -> String {
    times
        .iter()
        .map(|(n, t)| format!("{n}:{t:.1}"))
        .collect::<Vec<_>>()
        .join(";")
}

/// Appends `records` to the file at `path`, with the header first if the file is new.
fn append<R: Serialize>(path: &Path, records: impl IntoIterator<Item = R>) -> Result<(), BoxError> {
    let new = !path.exists() || std::fs::metadata(path)?.len() == 0;
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    let mut writer = csv::WriterBuilder::new().has_headers(new).from_writer(file);
    for record in records {
        writer.serialize(record)?;
    }
    writer.flush()?;
    Ok(())
}

/// The records of the file at `path` (none if it does not exist). Rows that do not read as
/// a record (a file of another version, a torn last line) are skipped, as a report of the
/// rest is still worth having; I/O errors are not.
fn read<R: DeserializeOwned>(path: &Path) -> Result<Vec<R>, BoxError> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_path(path)?;
    let mut records = Vec::new();
    for record in reader.deserialize() {
        match record {
            Ok(record) => records.push(record),
            Err(e) if e.is_io_error() => return Err(e.into()),
            Err(_) => {}
        }
    }
    Ok(records)
}

/// Appends one row per member line.
pub fn append_multicast(
    path: &Path,
    info: &RunInfo,
    cell: MulticastCell,
    secs: f64,
    lines: &[ResultLine],
) -> Result<(), BoxError> {
    append(
        path,
        lines
            .iter()
            .map(|l| MulticastRecord::new(info, cell, secs, l)),
    )
}

/// Reads `multicast.csv`.
pub fn read_multicast(path: &Path) -> Result<Vec<MulticastRow>, BoxError> {
    Ok(read::<MulticastRecord>(path)?
        .into_iter()
        .map(MulticastRecord::into_row)
        .collect())
}

/// Appends one view-change run.
pub fn append_view_change(
    path: &Path,
    info: &RunInfo,
    cell: ViewChangeCell,
    settings: &ViewChangeSettings,
    rep: usize,
    r: &ViewChangeResult,
) -> Result<(), BoxError> {
    append(
        path,
        [ViewChangeRecord {
            run: info.run,
            commit: info.commit.clone(),
            event: cell.event,
            members: cell.members,
            load: cell.load,
            order: settings.order,
            size: settings.size,
            rep,
            view_ms_min: Fixed(r.view_ms_min),
            view_ms_max: Fixed(r.view_ms_max),
            service_view_ms_max: r.service_view_ms_max.map(Fixed),
            detect_ms: r.detect_ms.map(Fixed),
            unstable: r.unstable,
            suspicions: r.suspicions,
            false_suspicions: r.false_suspicions,
            per_member_ms: per_member(&r.per_member_ms),
        }],
    )
}

/// Reads `view-change.csv`.
pub fn read_view_change(path: &Path) -> Result<Vec<ViewChangeRow>, BoxError> {
    Ok(read::<ViewChangeRecord>(path)?
        .into_iter()
        .map(|r| ViewChangeRow {
            run: r.run,
            commit: r.commit,
            cell: ViewChangeCell {
                event: r.event,
                members: r.members,
                load: r.load,
            },
            order: r.order,
            size: r.size,
            rep: r.rep,
            result: ViewChangeResult {
                view_ms_min: r.view_ms_min.0,
                view_ms_max: r.view_ms_max.0,
                service_view_ms_max: r.service_view_ms_max.map(|v| v.0),
                detect_ms: r.detect_ms.map(|v| v.0),
                unstable: r.unstable,
                suspicions: r.suspicions,
                false_suspicions: r.false_suspicions,
                per_member_ms: r
                    .per_member_ms
                    .split(';')
                    .filter_map(|p| {
                        let (n, t) = p.split_once(':')?;
                        Some((n.parse().ok()?, t.parse().ok()?))
                    })
                    .collect(),
            },
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("vsb-csv-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn header(path: &Path) -> String {
        let text = std::fs::read_to_string(path).unwrap();
        text.lines().next().unwrap().to_string()
    }

    fn line() -> ResultLine {
        ResultLine {
            node: 2,
            mode: Some(Mode::Flood),
            size: 1024,
            secs: 3.0,
            members: 3,
            sent: 10,
            own_deliv: 10,
            delivered: 30,
            deliv_msgs_s: 187_738.0,
            deliv_mb_s: 192.24,
            latency: Some(Latency {
                p50: 1,
                p90: 2,
                p99: 3,
                max: 4,
            }),
            recv_latency: None,
            hash_k: 30,
            order_hash: "00ff".into(),
            wire_frames_per_deliv: 0.007,
            wire_bytes_per_deliv: None,
            writes_per_deliv: 0.0071,
            cpu_s_per_1000: 0.0034,
            drain_ms: 104,
            ..Default::default()
        }
    }

    #[test]
    fn the_columns_and_the_text_are_those_of_the_committed_files() {
        let dir = temp("columns");
        let cell = MulticastCell {
            order: Order::Fifo,
            members: 3,
            size: 1024,
            senders: Senders::All,
            mode: Mode::Flood,
        };
        let info = RunInfo {
            run: 1_795_659_247,
            commit: "2e78201".into(),
        };
        let path = dir.join("multicast.csv");
        append_multicast(&path, &info, cell, 3.0, &[line()]).unwrap();
        append_multicast(&path, &info, cell, 3.0, &[line()]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "one header, then rows: {text}");
        assert_eq!(lines[0], MULTICAST_HEADER);
        assert_eq!(
            lines[1],
            "1795659247,2e78201,fifo,3,1024,all,flood,3,2,flood,10,10,30,187738,192.240,1,2,3,4,30,00ff,0.0070,-,0.0071,0.0034,0,0,0,0,0,104,-,-"
        );
        let settings = ViewChangeSettings {
            order: Order::Total,
            size: 1024,
            settle_secs: 1.0,
            pipeline: 8,
        };
        let vc = ViewChangeCell {
            event: Event::Kill,
            members: 3,
            load: Load::None,
        };
        let result = ViewChangeResult {
            view_ms_min: 516.77,
            view_ms_max: 516.81,
            service_view_ms_max: Some(516.82),
            detect_ms: None,
            unstable: 0,
            suspicions: 1,
            false_suspicions: 0,
            per_member_ms: vec![(1, 516.8), (2, 516.8)],
        };
        let path = dir.join("view-change.csv");
        append_view_change(&path, &info, vc, &settings, 1, &result).unwrap();
        assert_eq!(header(&path), VIEW_CHANGE_HEADER);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text.lines().nth(1).unwrap(),
            "1795659247,2e78201,kill,3,none,total,1024,1,516.77,516.81,516.82,-,0,1,0,1:516.8;2:516.8"
        );
        assert_eq!(read_view_change(&path).unwrap()[0].result, result);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_committed_results_files_read() {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/bench");
        for (name, header_text) in [
            ("multicast.csv", MULTICAST_HEADER),
            ("view-change.csv", VIEW_CHANGE_HEADER),
            ("multicast-rate.csv", RATE_HEADER),
        ] {
            let path = docs.join(name);
            assert_eq!(header(&path), header_text, "{name}");
            let text = std::fs::read_to_string(&path).unwrap();
            let rows = text.lines().skip(1).filter(|l| !l.is_empty()).count();
            let read = match name {
                "multicast.csv" => read_multicast(&path).unwrap().len(),
                "view-change.csv" => read_view_change(&path).unwrap().len(),
                _ => read_rate(&path).unwrap().len(),
            };
            assert_eq!(read, rows, "every row of {name} reads");
        }
    }

    #[test]
    fn an_open_loop_point_round_trips() {
        let dir = temp("rate");
        let path = dir.join("multicast-rate.csv");
        let point = RatePoint {
            run: 1_795_659_247,
            commit: "2e78201".into(),
            cell: MulticastCell {
                order: Order::Total,
                members: 3,
                size: 1024,
                senders: Senders::All,
                mode: Mode::Rate,
            },
            rate: 20000.0,
            peak: Some(40000.0),
            secs: 3.0,
            offered: 180_000,
            sent: 171_000,
            deliv_msgs_s: 57000.0,
            own_p50_us: Some(1200),
            own_p99_us: None,
            recv_p99_us: Some(9000),
            complete: true,
        };
        append_rate(&path, &point).unwrap();
        assert_eq!(header(&path), RATE_HEADER);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text.lines().nth(1).unwrap(),
            "1795659247,2e78201,total,3,1024,all,20000,40000,3,180000,171000,57000,1200,-,9000,true"
        );
        assert_eq!(read_rate(&path).unwrap(), vec![point.clone()]);
        assert!((point.lost() - 0.05).abs() < 1e-9);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_row_that_does_not_read_is_skipped() {
        let dir = temp("skip");
        let path = dir.join("view-change.csv");
        std::fs::write(
            &path,
            format!("{VIEW_CHANGE_HEADER}\n1,c,kill,3,none,total,1024,1,1.00,2.00,-,-,0,0,0,\nnot,a,row\n"),
        )
        .unwrap();
        let rows = read_view_change(&path).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].result.view_ms_max, 2.0);
        assert!(read_view_change(&dir.join("none.csv")).unwrap().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
