//! A `viewsync node`'s stdout with the log service, parsed as it arrives: a flood prints some
//! 10^5 `deliver` lines a second per node, so deliveries are kept compactly ([`Delivery`], 40
//! bytes) and only the last few as text; every other line is kept whole. Lines are parsed
//! with `viewsync_services::report`, whose types print them.

use crate::process::GROUP;
use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::time::Instant;
use viewsync_services::report::{DeliverLine, RestoreLine, ServiceViewLine};

/// A `service-view` line.
pub type ServiceView = ServiceViewLine;
/// A `restore` line.
pub type Restore = RestoreLine;

/// Parses a `service-view` line of the test group ([`GROUP`]); `None` for any other line.
pub fn service_view(text: &str) -> Option<ServiceView> {
    ServiceViewLine::parse(text).filter(|v| v.group == GROUP)
}

/// Parses a `restore` line of the test group ([`GROUP`]); `None` for any other line.
pub fn restore(text: &str) -> Option<Restore> {
    RestoreLine::parse(text).filter(|r| r.group == GROUP)
}

/// The payload of a delivery: the send plan's `<node>-<k>` or any other text.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Payload {
    /// `<node>-<k>`: the `k`-th multicast of the send plan of `node`.
    Numbered {
        /// The node whose send plan multicast it.
        node: u32,
        /// Its number, from 1.
        k: u64,
    },
    /// Anything else (`viewsync send`).
    Text(Box<str>),
}

impl Payload {
    /// Reads a payload as printed.
    pub fn parse(text: &str) -> Payload {
        if let Some((node, k)) = text.split_once('-') {
            if let (Ok(node), Ok(k)) = (node.parse(), k.parse()) {
                return Payload::Numbered { node, k };
            }
        }
        Payload::Text(text.into())
    }
}

impl std::fmt::Display for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Payload::Numbered { node, k } => write!(f, "{node}-{k}"),
            Payload::Text(text) => f.write_str(text),
        }
    }
}

/// One `deliver` line, compactly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The epoch of its `view=` field.
    pub epoch: u32,
    /// Its `sender=` node.
    pub sender: u32,
    /// Its `seq=` in the sender's stream of that view.
    pub seq: u64,
    /// Its payload.
    pub payload: Payload,
}

impl std::fmt::Display for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "[view {} sender={} seq={} payload={}]",
            self.epoch, self.sender, self.seq, self.payload
        )
    }
}

/// A stdout line other than `deliver`.
#[derive(Clone, Debug)]
pub struct EventLine {
    /// When the reader thread got it.
    pub at: Instant,
    /// How many deliveries the node had printed before it.
    pub pos: usize,
    /// The line.
    pub text: String,
}

const RECENT_DELIVERIES: usize = 40;
const MAX_PROBLEMS: usize = 40;

/// What a node printed on stdout, parsed as it arrived.
#[derive(Debug, Default)]
pub struct StdoutLog {
    /// Every `deliver` line, in order.
    pub deliveries: Vec<Delivery>,
    /// Every other line, in order.
    pub events: Vec<EventLine>,
    /// The last `deliver` lines as printed.
    pub recent: VecDeque<String>,
    /// Deliveries per `ordering=` value.
    pub orderings: BTreeMap<String, u64>,
    /// Per node, the highest `k` of its numbered payloads delivered.
    pub max_k: BTreeMap<u32, u64>,
    /// What was wrong with single lines as they arrived (at most `MAX_PROBLEMS`).
    pub problems: Vec<String>,
    /// The service view the node is in (epoch, coordinator), per its `service-view` lines.
    current: Option<(u64, u64)>,
    /// The service state's count: the last `n=`, or the last `restore`/`service-view`.
    count: u64,
    /// Deliveries before the latest `service-view` line.
    view_start: usize,
}

impl StdoutLog {
    fn problem(&mut self, text: String) {
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(text);
        }
    }

    /// Adds one line read at `at`.
    pub fn add(&mut self, at: Instant, text: String) {
        if text.starts_with("deliver ") {
            self.add_delivery(&text);
            if self.recent.len() == RECENT_DELIVERIES {
                self.recent.pop_front();
            }
            self.recent.push_back(text);
            return;
        }
        if let Some(view) = service_view(&text) {
            if let Some((epoch, _)) = self.current {
                if view.epoch <= epoch {
                    self.problem(format!(
                        "service view epochs must increase: {text} after epoch {epoch}"
                    ));
                }
            }
            if view.delivered != self.count {
                self.problem(format!(
                    "{text}: the state counts {} deliveries but the log has {}",
                    view.delivered, self.count
                ));
            }
            self.current = Some((view.epoch, view.coordinator));
            self.view_start = self.deliveries.len();
        } else if let Some(restore) = restore(&text) {
            self.count = restore.delivered;
        } else if text.starts_with("service-view ") || text.starts_with("restore ") {
            self.problem(format!("unparsable line: {text}"));
        }
        self.events.push(EventLine {
            at,
            pos: self.deliveries.len(),
            text,
        });
    }

    fn add_delivery(&mut self, text: &str) {
        let Some(DeliverLine {
            group,
            epoch,
            coordinator,
            sender,
            seq,
            ordering,
            n,
            payload,
        }) = DeliverLine::parse(text)
        else {
            return self.problem(format!("unparsable line: {text}"));
        };
        // Kept compactly: a flood delivers millions.
        let (Ok(epoch), Ok(sender)) = (u32::try_from(epoch), u32::try_from(sender)) else {
            return self.problem(format!("unparsable line: {text}"));
        };
        if group != GROUP {
            self.problem(format!("delivery in another group: {text}"));
        }
        match self.current {
            None => self.problem(format!("delivery before any service view: {text}")),
            Some(current) if current != (u64::from(epoch), coordinator) => self.problem(format!(
                "delivery outside the service view {}@{}: {text}",
                current.0, current.1
            )),
            Some(_) => {}
        }
        if n != self.count + 1 {
            self.problem(format!(
                "n={n} but {} deliveries came before (state count): {text}",
                self.count
            ));
        }
        self.count = n;
        *self.orderings.entry(ordering).or_default() += 1;
        let payload = Payload::parse(&payload);
        if let Payload::Numbered { node, k } = payload {
            let max = self.max_k.entry(node).or_default();
            *max = (*max).max(k);
        }
        self.deliveries.push(Delivery {
            epoch,
            sender,
            seq,
            payload,
        });
    }

    /// The `service-view` lines, in order.
    pub fn service_views(&self) -> Vec<ServiceView> {
        self.events
            .iter()
            .filter_map(|e| service_view(&e.text))
            .collect()
    }

    /// The last `service-view` line.
    pub fn latest_service_view(&self) -> Option<ServiceView> {
        self.events.iter().rev().find_map(|e| service_view(&e.text))
    }

    /// Deliveries since the last `service-view` line.
    pub fn delivered_in_current_view(&self) -> usize {
        self.deliveries.len() - self.view_start
    }

    /// How many deliveries carry exactly `text` as payload.
    pub fn count_text(&self, text: &str) -> usize {
        self.deliveries
            .iter()
            .filter(|d| matches!(&d.payload, Payload::Text(t) if &**t == text))
            .count()
    }

    /// The non-`deliver` lines, one per line, each with the number of deliveries before it,
    /// then the last deliveries as printed.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for e in &self.events {
            let _ = writeln!(out, "  [{:>7} deliveries] {}", e.pos, e.text);
        }
        let _ = writeln!(
            out,
            "  ({} deliveries in all; the last {}:)",
            self.deliveries.len(),
            self.recent.len()
        );
        for line in &self.recent {
            let _ = writeln!(out, "    {line}");
        }
        if !self.problems.is_empty() {
            let _ = writeln!(out, "  line problems: {:#?}", self.problems);
        }
        out
    }
}
