//! The line format a node prints on standard output, one event per line, `key=value` pairs,
//! so people can watch a group and tests and scripts can parse it.
//!
//! Each kind of line is a type here that prints itself (`Display`) and parses itself
//! (`parse`), so the format is written down once: the CLI and the log service print through
//! these types, and the test fixture (`viewsync-tests`) and `viewsync-bench` parse with them.
//! [`Fields`] splits any such line into its kind and `key=value` tokens.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use viewsync::runtime::GroupEvent;
use viewsync::{Member, View};

/// The `key=value` tokens of a line, and its first token when that has no `=` (its kind).
/// Values hold no spaces (a free-text field, such as a payload, is last and is read by the
/// line's own parser).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fields {
    /// The first token when it is a bare word (`view`, `deliver`, `gview`, ...).
    pub kind: Option<String>,
    /// The `key=value` tokens.
    pub map: BTreeMap<String, String>,
}

impl Fields {
    /// Splits `line` into its kind and fields. Bare words after the first are ignored, and
    /// so is a leading timestamp ([`stamped`]).
    pub fn parse(line: &str) -> Self {
        let line = strip_stamp(line);
        let mut fields = Fields::default();
        for (i, token) in line.split_whitespace().enumerate() {
            match token.split_once('=') {
                Some((key, value)) => {
                    fields.map.insert(key.to_string(), value.to_string());
                }
                None if i == 0 => fields.kind = Some(token.to_string()),
                None => {}
            }
        }
        fields
    }

    /// Whether the line's kind is `kind`.
    pub fn is(&self, kind: &str) -> bool {
        self.kind.as_deref() == Some(kind)
    }

    /// A field parsed as `T`.
    pub fn get<T: std::str::FromStr>(&self, key: &str) -> Option<T> {
        self.map.get(key).and_then(|v| v.parse().ok())
    }

    /// A field as text.
    pub fn text(&self, key: &str) -> Option<&str> {
        self.map.get(key).map(String::as_str)
    }

    /// A field holding node ids separated by commas (empty for none).
    pub fn node_ids(&self, key: &str) -> Option<Vec<u64>> {
        parse_node_ids(self.text(key)?)
    }

    /// Like [`Fields::parse`], for a line that must be of kind `kind`.
    fn of_kind(line: &str, kind: &str) -> Option<Self> {
        let fields = Fields::parse(line);
        fields.is(kind).then_some(fields)
    }
}

/// `line` as a node prints it on standard output: after the time now, RFC 3339 in UTC with
/// milliseconds (`2026-12-02T10:03:19.123Z view group=demo ...`).
pub fn stamped(line: &str) -> String {
    format!(
        "{} {line}",
        humantime::format_rfc3339_millis(std::time::SystemTime::now())
    )
}

/// `line` without the timestamp [`stamped`] puts first, if it has one.
pub fn strip_stamp(line: &str) -> &str {
    split_stamp(line).1
}

/// `line`'s leading timestamp (as [`stamped`] writes it), if any, and the rest.
pub fn split_stamp(line: &str) -> (Option<std::time::SystemTime>, &str) {
    let Some((first, rest)) = line.split_once(' ') else {
        return (None, line);
    };
    // Cheap test first: a flood prints 10^5 lines a second.
    let looks_like = first.len() >= 20
        && first.as_bytes()[4] == b'-'
        && first.as_bytes()[10] == b'T'
        && first.ends_with('Z');
    match looks_like
        .then(|| humantime::parse_rfc3339(first).ok())
        .flatten()
    {
        Some(at) => (Some(at), rest),
        None => (None, line),
    }
}

fn parse_node_ids(text: &str) -> Option<Vec<u64>> {
    if text.is_empty() {
        return Some(Vec::new());
    }
    text.split(',').map(|m| m.parse().ok()).collect()
}

/// Node ids joined by commas.
struct NodeIds<'a>(&'a [u64]);

impl fmt::Display for NodeIds<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, id) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{id}")?;
        }
        Ok(())
    }
}

fn ids(members: &[Member]) -> Vec<u64> {
    members.iter().map(|m| m.id.node.0).collect()
}

/// `listening node=1 incarnation=… addr=127.0.0.1:7701`: the node is up, at that address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListeningLine {
    /// The node id.
    pub node: u64,
    /// Its incarnation.
    pub incarnation: u64,
    /// The address it listens on.
    pub addr: SocketAddr,
}

impl ListeningLine {
    /// Parses a `listening` line; `None` for any other line.
    pub fn parse(line: &str) -> Option<Self> {
        let f = Fields::of_kind(line, "listening")?;
        Some(ListeningLine {
            node: f.get("node")?,
            incarnation: f.get("incarnation")?,
            addr: f.get("addr")?,
        })
    }
}

impl fmt::Display for ListeningLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "listening node={} incarnation={} addr={}",
            self.node, self.incarnation, self.addr
        )
    }
}

/// `listening node=1 incarnation=… addr=127.0.0.1:7701`
pub fn listening(me: &Member) -> String {
    ListeningLine {
        node: me.id.node.0,
        incarnation: me.id.incarnation.0,
        addr: me.addr,
    }
    .to_string()
}

/// `view group=demo epoch=3 coordinator=1 members=1,3,2 learners=2`: the node installed a view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ViewLine {
    /// The group.
    pub group: String,
    /// The view's epoch.
    pub epoch: u64,
    /// The coordinator's node id.
    pub coordinator: u64,
    /// Member node ids, oldest first.
    pub members: Vec<u64>,
    /// Members still waiting for their state (not voting yet).
    pub learners: Vec<u64>,
}

impl ViewLine {
    /// Parses a `view` line; `None` for any other line.
    pub fn parse(line: &str) -> Option<Self> {
        let f = Fields::of_kind(line, "view")?;
        Some(ViewLine {
            group: f.text("group")?.to_string(),
            epoch: f.get("epoch")?,
            coordinator: f.get("coordinator")?,
            members: f.node_ids("members")?,
            learners: parse_node_ids(f.text("learners").unwrap_or(""))?,
        })
    }

    /// Whether node `id` is a member.
    pub fn contains(&self, id: u64) -> bool {
        self.members.contains(&id)
    }

    /// The member ids, sorted.
    pub fn sorted_members(&self) -> Vec<u64> {
        let mut m = self.members.clone();
        m.sort_unstable();
        m
    }
}

impl fmt::Display for ViewLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "view group={} epoch={} coordinator={} members={} learners={}",
            self.group,
            self.epoch,
            self.coordinator,
            NodeIds(&self.members),
            NodeIds(&self.learners)
        )
    }
}

/// `refused group=demo seed=127.0.0.1:7702 reason=…`: a seed refused this node's join. The
/// reason is free text and comes last.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefusedLine {
    /// The group being joined.
    pub group: String,
    /// The seed that refused.
    pub seed: SocketAddr,
    /// Its reason, as printed.
    pub reason: String,
}

impl RefusedLine {
    /// Parses a `refused` line; `None` for any other line.
    pub fn parse(line: &str) -> Option<Self> {
        let rest = strip_stamp(line).strip_prefix("refused ")?;
        let (head, reason) = rest.split_once(" reason=")?;
        let f = Fields::parse(head);
        Some(RefusedLine {
            group: f.text("group")?.to_string(),
            seed: f.get("seed")?,
            reason: reason.to_string(),
        })
    }
}

impl fmt::Display for RefusedLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "refused group={} seed={} reason={}",
            self.group, self.seed, self.reason
        )
    }
}

/// The member list of a view as node ids, comma separated.
pub fn member_list(view: &View) -> String {
    node_list(&view.members)
}

/// The learners of a view (members still waiting for their state, not yet voting) as node
/// ids, comma separated; empty when every member votes.
pub fn learner_list(view: &View) -> String {
    node_list(view.learners())
}

fn node_list(members: &[viewsync::Member]) -> String {
    members
        .iter()
        .map(|m| m.id.node.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// One line per event; `None` for events not printed.
pub fn event_line(event: &GroupEvent) -> Option<String> {
    Some(match event {
        GroupEvent::ViewInstalled { group, change } => ViewLine {
            group: group.to_string(),
            epoch: change.view.id.epoch,
            coordinator: change.view.id.coordinator.node.0,
            members: ids(&change.view.members),
            learners: ids(change.view.learners()),
        }
        .to_string(),
        GroupEvent::Excluded { group, .. } => format!("excluded group={group}"),
        GroupEvent::Left { group } => format!("left group={group}"),
        GroupEvent::Suspected(p) => {
            format!("suspected node={} incarnation={}", p.node, p.incarnation.0)
        }
        GroupEvent::Unsuspected(p) => {
            format!(
                "unsuspected node={} incarnation={}",
                p.node, p.incarnation.0
            )
        }
        GroupEvent::RefusedBy {
            group,
            seed,
            reason,
        } => RefusedLine {
            group: group.to_string(),
            seed: *seed,
            reason: format!("{reason:?}"),
        }
        .to_string(),
    })
}

/// The answer to `viewsync members`: the view id, then one member per line.
pub fn members(view: &View) -> String {
    MembersAnswer {
        group: view.group.to_string(),
        epoch: view.id.epoch,
        coordinator: view.id.coordinator.to_string(),
        members: view
            .members
            .iter()
            .map(|m| (m.id.node.0, m.id.incarnation.0, m.addr))
            .collect(),
    }
    .to_string()
}

/// What `viewsync members` prints: `view group=… epoch=… coordinator=NODE.INCARNATION`, then
/// `node=… incarnation=… addr=…` per member (a blocked node adds a `blocked: …` line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MembersAnswer {
    /// The group.
    pub group: String,
    /// The view's epoch.
    pub epoch: u64,
    /// The coordinator as `node.incarnation`.
    pub coordinator: String,
    /// `(node, incarnation, addr)` per member, oldest first.
    pub members: Vec<(u64, u64, SocketAddr)>,
}

impl MembersAnswer {
    /// Parses the whole output; `None` if it is not an answer.
    pub fn parse(text: &str) -> Option<Self> {
        let mut lines = text.lines();
        let head = Fields::of_kind(lines.next()?, "view")?;
        let mut members = Vec::new();
        for line in lines.take_while(|l| !l.starts_with("blocked:")) {
            let f = Fields::parse(line);
            members.push((f.get("node")?, f.get("incarnation")?, f.get("addr")?));
        }
        Some(MembersAnswer {
            group: head.text("group")?.to_string(),
            epoch: head.get("epoch")?,
            coordinator: head.text("coordinator")?.to_string(),
            members,
        })
    }

    /// The member node ids, sorted.
    pub fn sorted_nodes(&self) -> Vec<u64> {
        let mut m: Vec<u64> = self.members.iter().map(|m| m.0).collect();
        m.sort_unstable();
        m
    }

    /// The member with node id `node`, if any.
    pub fn member(&self, node: u64) -> Option<(u64, u64, SocketAddr)> {
        self.members.iter().copied().find(|m| m.0 == node)
    }
}

impl fmt::Display for MembersAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "view group={} epoch={} coordinator={}",
            self.group, self.epoch, self.coordinator
        )?;
        for (node, incarnation, addr) in &self.members {
            writeln!(f, "node={node} incarnation={incarnation} addr={addr}")?;
        }
        Ok(())
    }
}

/// `deliver group=demo view=3@1 sender=2 seq=17 ordering=total n=40 payload=2-17`: the log
/// service delivered a multicast (`n` counts its deliveries since the group began; the
/// payload is free text, cut to 64 characters, and comes last).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliverLine {
    /// The group.
    pub group: String,
    /// The epoch of the view it was delivered in…
    pub epoch: u64,
    /// …and that view's coordinator.
    pub coordinator: u64,
    /// The sender's node id.
    pub sender: u64,
    /// Its sequence number in the sender's stream of that view.
    pub seq: u64,
    /// The ordering it was delivered with.
    pub ordering: String,
    /// The service's delivery count including this one.
    pub n: u64,
    /// The payload as text.
    pub payload: String,
}

impl DeliverLine {
    /// Parses a `deliver` line; `None` for any other line.
    pub fn parse(line: &str) -> Option<Self> {
        let rest = strip_stamp(line).strip_prefix("deliver ")?;
        let (head, payload) = rest.split_once(" payload=")?;
        let f = Fields::parse(head);
        let (epoch, coordinator) = f.text("view")?.split_once('@')?;
        Some(DeliverLine {
            group: f.text("group")?.to_string(),
            epoch: epoch.parse().ok()?,
            coordinator: coordinator.parse().ok()?,
            sender: f.get("sender")?,
            seq: f.get("seq")?,
            ordering: f.text("ordering")?.to_string(),
            n: f.get("n")?,
            payload: payload.to_string(),
        })
    }
}

impl fmt::Display for DeliverLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "deliver group={} view={}@{} sender={} seq={} ordering={} n={} payload={}",
            self.group,
            self.epoch,
            self.coordinator,
            self.sender,
            self.seq,
            self.ordering,
            self.n,
            self.payload
        )
    }
}

/// `service-view group=demo epoch=4 coordinator=1 members=1,2 learners= delivered=40
/// chain=…`: the log service entered a view, with its state on entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceViewLine {
    /// The group.
    pub group: String,
    /// The view's epoch.
    pub epoch: u64,
    /// Its coordinator's node id.
    pub coordinator: u64,
    /// Its members, oldest first.
    pub members: Vec<u64>,
    /// Members still waiting for their state (not voting yet).
    pub learners: Vec<u64>,
    /// The service state on entering the view: multicasts delivered so far…
    pub delivered: u64,
    /// …and the hash chain over them (16 hex digits).
    pub chain: String,
}

impl ServiceViewLine {
    /// Parses a `service-view` line; `None` for any other line.
    pub fn parse(line: &str) -> Option<Self> {
        let f = Fields::of_kind(line, "service-view")?;
        Some(ServiceViewLine {
            group: f.text("group")?.to_string(),
            epoch: f.get("epoch")?,
            coordinator: f.get("coordinator")?,
            members: f.node_ids("members")?,
            learners: parse_node_ids(f.text("learners").unwrap_or(""))?,
            delivered: f.get("delivered")?,
            chain: f.text("chain")?.to_string(),
        })
    }

    /// The members, sorted.
    pub fn sorted_members(&self) -> Vec<u64> {
        let mut m = self.members.clone();
        m.sort_unstable();
        m
    }
}

impl fmt::Display for ServiceViewLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "service-view group={} epoch={} coordinator={} members={} learners={} delivered={} chain={}",
            self.group,
            self.epoch,
            self.coordinator,
            NodeIds(&self.members),
            NodeIds(&self.learners),
            self.delivered,
            self.chain
        )
    }
}

/// `restore group=demo epoch=4 bytes=16 delivered=40 chain=…`: the log service took the
/// group's state by transfer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreLine {
    /// The group.
    pub group: String,
    /// The view the state is the start of.
    pub epoch: u64,
    /// The state's size in bytes.
    pub bytes: u64,
    /// The restored delivery count…
    pub delivered: u64,
    /// …and chain.
    pub chain: String,
}

impl RestoreLine {
    /// Parses a `restore` line; `None` for any other line.
    pub fn parse(line: &str) -> Option<Self> {
        let f = Fields::of_kind(line, "restore")?;
        Some(RestoreLine {
            group: f.text("group")?.to_string(),
            epoch: f.get("epoch")?,
            bytes: f.get("bytes")?,
            delivered: f.get("delivered")?,
            chain: f.text("chain")?.to_string(),
        })
    }
}

impl fmt::Display for RestoreLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "restore group={} epoch={} bytes={} delivered={} chain={}",
            self.group, self.epoch, self.bytes, self.delivered, self.chain
        )
    }
}

/// The line `viewsync members` prints for a blocked node, for example
/// `blocked: no majority of view 5@1.1 (reachable: 1 of voters 1,2,3; 2 needed) for 12 s`.
pub fn blocked(blocked: &viewsync::wire::Blocked) -> String {
    use viewsync::wire::BlockedReason;
    let view = match blocked.view {
        Some(view) => format!("view {view}"),
        None => "no view".to_string(),
    };
    let nodes = |ids: &[viewsync::ProcessId]| {
        ids.iter()
            .map(|p| p.node.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let what = match &blocked.reason {
        BlockedReason::NoMajority {
            voters,
            reachable,
            needed,
        } => format!(
            "no majority of {view} (reachable: {} of voters {}; {needed} needed)",
            nodes(reachable),
            nodes(voters)
        ),
        BlockedReason::NoStateHolder => {
            format!("no holder of the state in {view} (no reachable member holds it)")
        }
        BlockedReason::NoSeedAnswered => {
            "waiting for the group (no seed answered as a member; bootstrap is not set)".into()
        }
        BlockedReason::AwaitingLastView { .. } => {
            // The reason's own wording names the view, who is back and how many are needed.
            format!("waiting to re-form the group ({})", blocked.reason)
        }
    };
    format!("blocked: {what} for {} s", blocked.blocked_ms / 1000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use viewsync::{GroupName, Incarnation, NodeId, ProcessId, ViewId};

    fn member(node: u64) -> Member {
        Member {
            id: ProcessId {
                node: NodeId(node),
                incarnation: Incarnation(1_000 + node),
            },
            addr: SocketAddr::from(([127, 0, 0, 1], 7700 + node as u16)),
        }
    }

    #[test]
    fn fields_split_into_kind_and_tokens() {
        let f = Fields::parse("gview t_ns=12 epoch=3 size=2 members=1,2");
        assert!(f.is("gview"));
        assert_eq!(f.get::<u64>("t_ns"), Some(12));
        assert_eq!(f.text("members"), Some("1,2"));
        assert_eq!(f.node_ids("members"), Some(vec![1, 2]));
        assert_eq!(Fields::parse("node=1 x=2").kind, None);
    }

    #[test]
    fn the_node_lines_round_trip() {
        let me = member(3);
        let text = listening(&me);
        assert_eq!(
            text,
            "listening node=3 incarnation=1003 addr=127.0.0.1:7703"
        );
        assert_eq!(
            ListeningLine::parse(&text),
            Some(ListeningLine {
                node: 3,
                incarnation: 1003,
                addr: me.addr
            })
        );
        let view = ViewLine {
            group: "demo".into(),
            epoch: 4,
            coordinator: 1,
            members: vec![1, 3, 2],
            learners: vec![2],
        };
        let text = view.to_string();
        assert_eq!(
            text,
            "view group=demo epoch=4 coordinator=1 members=1,3,2 learners=2"
        );
        assert_eq!(ViewLine::parse(&text), Some(view.clone()));
        let voters = ViewLine {
            learners: Vec::new(),
            ..view
        };
        assert_eq!(ViewLine::parse(&voters.to_string()), Some(voters));
        let refused = RefusedLine {
            group: "demo".into(),
            seed: me.addr,
            reason: "WrongGroup { expected: \"a b\" }".into(),
        };
        assert_eq!(RefusedLine::parse(&refused.to_string()), Some(refused));
        assert_eq!(ViewLine::parse("service-view group=demo epoch=1"), None);
        assert_eq!(ListeningLine::parse("view group=demo"), None);
    }

    #[test]
    fn a_members_answer_round_trips() {
        let view = View {
            group: GroupName::new("demo").unwrap(),
            id: ViewId {
                epoch: 7,
                coordinator: member(1).id,
            },
            members: vec![member(1), member(2)],
            voters: 2,
        };
        let text = members(&view);
        let answer = MembersAnswer::parse(&text).unwrap();
        assert_eq!(answer.group, "demo");
        assert_eq!(answer.epoch, 7);
        assert_eq!(answer.coordinator, "1.1001");
        assert_eq!(answer.sorted_nodes(), vec![1, 2]);
        assert_eq!(answer.member(2), Some((2, 1002, member(2).addr)));
        assert_eq!(answer.to_string(), text);
        let blocked = format!("{text}blocked: no majority of view 7@1.1001 for 3 s\n");
        assert_eq!(MembersAnswer::parse(&blocked), Some(answer));
    }

    #[test]
    fn the_log_service_lines_round_trip() {
        let deliver = DeliverLine {
            group: "demo".into(),
            epoch: 3,
            coordinator: 1,
            sender: 2,
            seq: 17,
            ordering: "total".into(),
            n: 40,
            payload: "hello world = 1".into(),
        };
        let text = deliver.to_string();
        assert_eq!(
            text,
            "deliver group=demo view=3@1 sender=2 seq=17 ordering=total n=40 payload=hello world = 1"
        );
        assert_eq!(DeliverLine::parse(&text), Some(deliver));
        let view = ServiceViewLine {
            group: "demo".into(),
            epoch: 4,
            coordinator: 1,
            members: vec![1, 2],
            learners: vec![],
            delivered: 40,
            chain: format!("{:016x}", 0xabcu64),
        };
        assert_eq!(ServiceViewLine::parse(&view.to_string()), Some(view));
        let restore = RestoreLine {
            group: "demo".into(),
            epoch: 4,
            bytes: 16,
            delivered: 40,
            chain: "00000000000000ff".into(),
        };
        assert_eq!(RestoreLine::parse(&restore.to_string()), Some(restore));
    }
}
