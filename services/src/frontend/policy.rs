//! The front end's decision logic, sans IO: given what the last exchange with the group gave
//! and what the front end knows of the group's view, what to do next.
//!
//! A [`Policy`] drives one call at a time. The driver (the async [`FrontEnd`], or a
//! simulator) starts a call with [`Policy::begin`], carries out the [`Step`] it gets (send the
//! request to a member, ask a node for the group's view, wait), reports what came of it with
//! [`Policy::handle`], and goes on until [`Step::Done`] or [`Step::GiveUp`]. Time is the
//! driver's: a [`Duration`] since any fixed origin, so the simulator's clock works as well as
//! the real one. Randomness (the backoff's jitter, the choice of a member for reads) comes
//! from a seeded generator, so a simulation replays exactly.
//!
//! The rules:
//!
//! - **Resolution.** With no view known, ask the seeds (and later the known members) for the
//!   group's view, one at a time; a node that does not answer is *suspected* for the rest of
//!   the round and the next is asked. The newest view heard (by [`ViewId`]) wins; its first
//!   member is the primary.
//!   Under [`Routing::Anywhere`], a node with no view that is blocked on its join, when no
//!   member is known, is sent the request all the same (a gossip member cut off from its
//!   group serves its clients); a service that does not answer there refuses `Blocked`.
//! - **Target.** [`Routing::Primary`] sends every request to the primary;
//!   [`Routing::ReadsAnywhere`] sends reads to one chosen member (sticky: the first seed that
//!   is a member, else a random member) and updates to the primary; [`Routing::Anywhere`]
//!   sends everything to the chosen member. A suspected target is replaced by the next
//!   member in view order that is not suspected (the primary may have crashed before the
//!   group installed a view without it: the others will answer `NotPrimary` or `Busy`).
//! - **Answers.** A reply ends the call. `NotPrimary { primary: Some(addr) }` sends again to
//!   `addr` at once (a bounded number of times in a row, against members disagreeing).
//!   `NotPrimary { primary: None }`, `Busy`, `Blocked`, `NotMember` and `NoService` wait a
//!   backoff, then resolve the view again through another member and send again.
//!   `TooLarge` and `Malformed` give up at once: nothing was executed and nothing will be.
//! - **No answer** (timeout, connection refused or closed): the member is suspected; the view
//!   is resolved again through the other known members, then the request goes to the new
//!   target.
//! - **Frame refused** (the node refused the request's frame: wrong or missing cluster key):
//!   give up at once; nothing was executed, and every node of the cluster would say the same.
//! - **Backoff.** Starts at [`BACKOFF_MIN`], doubles at each wait, at most [`BACKOFF_MAX`];
//!   each wait is drawn uniformly from `[base / 2, base]` (jitter, so front ends refused
//!   together do not come back together). A wait ends a *round*: suspicions are forgotten
//!   (a member that was unreachable for a moment is tried again).
//! - **Deadline.** No exchange starts and no wait extends past the call's deadline; each
//!   exchange waits at most the attempt timeout or what is left of the deadline. Past it:
//!   [`GiveUp::Unavailable`], whose outcome is unknown (the request may have executed).
//!
//! [`FrontEnd`]: super::FrontEnd

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use viewsync::client::GroupStatus;
use viewsync::wire::{Refusal, Retry};
use viewsync::ViewId;

/// The first backoff: the base of the wait after the first retryable refusal of a call.
pub const BACKOFF_MIN: Duration = Duration::from_millis(20);
/// The largest backoff base (and so the longest single wait).
pub const BACKOFF_MAX: Duration = Duration::from_millis(500);
/// How long one exchange with a node waits for its answer, by default.
pub const ATTEMPT_TIMEOUT_DEFAULT: Duration = Duration::from_secs(2);
/// How long a call tries, by default, before it gives up.
pub const DEADLINE_DEFAULT: Duration = Duration::from_secs(30);

/// Where a front end sends its requests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Routing {
    /// Every request to the primary (the view's first member): passive replication,
    /// linearizable.
    #[default]
    Primary,
    /// `passive-backup-reads`: reads (operations the state machine says are read-only) to one
    /// chosen member, the same one every time while it answers; updates to the primary.
    /// Sequentially consistent: the request's `after` makes a backup wait until it applied
    /// this front end's own updates.
    ReadsAnywhere,
    /// Every request to one chosen member: the active strategies (every member takes
    /// requests; linearizable with ordered reads, sequentially consistent with local ones,
    /// the request's `after` making a member wait for this front end's own updates) and the
    /// naive one (no consistency guarantee).
    Anywhere,
}

/// The policy's knobs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PolicyConfig {
    /// Where requests go.
    pub routing: Routing,
    /// How long one exchange (a request, a view query) waits for its answer.
    pub attempt_timeout: Duration,
    /// How long a call tries before it gives up.
    pub deadline: Duration,
    /// The first backoff base.
    pub backoff_min: Duration,
    /// The largest backoff base.
    pub backoff_max: Duration,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            routing: Routing::Primary,
            attempt_timeout: ATTEMPT_TIMEOUT_DEFAULT,
            deadline: DEADLINE_DEFAULT,
            backoff_min: BACKOFF_MIN,
            backoff_max: BACKOFF_MAX,
        }
    }
}

/// What the driver does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Send the call's request (the same bytes, the same request id, every time) to `to`, and
    /// report the answer: [`Event::Answered`], [`Event::Refused`], [`Event::Failed`] or
    /// [`Event::Rejected`].
    Send {
        /// The member.
        to: SocketAddr,
        /// How long to wait for its answer.
        timeout: Duration,
    },
    /// Ask `via` for the group's view, and report [`Event::Status`], [`Event::Failed`] or
    /// [`Event::Rejected`].
    Resolve {
        /// The node asked (any node; a member knows the view).
        via: SocketAddr,
        /// How long to wait for its answer.
        timeout: Duration,
    },
    /// Wait this long, then report [`Event::Waited`].
    Wait(Duration),
    /// The call is over: the reply just reported is its result.
    Done,
    /// The call is over without a result.
    GiveUp(GiveUp),
}

/// Why a call ended without a result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GiveUp {
    /// A member refused the request itself (too large, malformed): nothing was executed,
    /// and no member would execute it.
    Refused {
        /// The member.
        from: SocketAddr,
        /// Its refusal.
        refusal: Refusal,
    },
    /// A node refused the request's frame (wrong or missing cluster key): nothing was
    /// executed.
    Rejected {
        /// The node.
        node: SocketAddr,
        /// Its reason.
        reason: String,
    },
    /// The deadline passed without a reply. The outcome is unknown: the request may have
    /// been executed (its reply lost), and may still be.
    Unavailable {
        /// How many exchanges (requests and view queries) were started.
        attempts: u32,
        /// The nodes tried, in the order first tried.
        tried: Vec<SocketAddr>,
        /// The last problem met, for the user.
        last: String,
    },
}

/// What came of the last [`Step`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The member sent to answered with the service's reply (the driver checked it is the
    /// reply to this call's request).
    Answered,
    /// The member sent to refused the request (nothing was executed there).
    Refused(Refusal),
    /// The node sent to or asked did not answer: timeout, connection refused or closed, an
    /// answer that did not open. For a request, it may have been executed.
    Failed(String),
    /// The node refused the frame itself (authentication): nothing was executed.
    Rejected(String),
    /// The node asked answered with its view of the group (`view: None`: not a member).
    Status(GroupStatus),
    /// The wait asked for is over.
    Waited,
}

/// What the policy waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pending {
    Send(SocketAddr),
    Resolve(SocketAddr),
    Wait,
}

/// One call's progress.
#[derive(Clone, Debug)]
struct Call {
    read_only: bool,
    started: Duration,
    attempts: u32,
    /// The base of the next wait.
    backoff: Duration,
    /// Nodes that did not answer this round.
    suspects: BTreeSet<SocketAddr>,
    /// Nodes asked for the view this round.
    asked: BTreeSet<SocketAddr>,
    /// `NotPrimary` hints followed in a row.
    hops: u32,
    /// The primary a member named for this call.
    hint: Option<SocketAddr>,
    /// The node that last refused or failed: asked for the view last.
    avoid: Option<SocketAddr>,
    /// After a wait, the next view heard is taken even if older than the one known (a group
    /// restarted from scratch numbers its views from 1 again).
    any_view: bool,
    pending: Pending,
    last: String,
    /// The last word of a blocked member in this call (its refusal, or its status), kept
    /// for the user when a silent node is the last problem: on the minority side of a
    /// partition the member that *answers* says why nothing can be done.
    blocked: Option<String>,
    tried: Vec<SocketAddr>,
}

/// The front end's decision logic for one group (see the [module documentation](self)).
///
/// It remembers, across calls, the group's view (the members' addresses and the view's id),
/// the primary, and the member chosen for reads; within a call, the suspicions, the backoff,
/// the attempts and the deadline.
#[derive(Clone, Debug)]
pub struct Policy {
    config: PolicyConfig,
    seeds: Vec<SocketAddr>,
    view: Option<ViewId>,
    members: Vec<SocketAddr>,
    primary: Option<SocketAddr>,
    sticky: Option<SocketAddr>,
    rng: SmallRng,
    call: Option<Call>,
}

impl Policy {
    /// A policy that knows the group only through `seeds` (any nodes; members or nodes that
    /// know the group). `rng_seed` seeds the jitter and the choice of a member for reads.
    pub fn new(config: PolicyConfig, seeds: Vec<SocketAddr>, rng_seed: u64) -> Self {
        Policy {
            config,
            seeds,
            view: None,
            members: Vec::new(),
            primary: None,
            sticky: None,
            rng: SmallRng::seed_from_u64(rng_seed),
            call: None,
        }
    }

    /// The policy's knobs.
    pub fn config(&self) -> &PolicyConfig {
        &self.config
    }

    /// The members of the newest view known, in view order (empty before the first
    /// resolution).
    pub fn members(&self) -> &[SocketAddr] {
        &self.members
    }

    /// The id of the newest view known.
    pub fn view_id(&self) -> Option<ViewId> {
        self.view
    }

    /// Where requests for the primary go: the primary a member named last, or the known
    /// view's first member.
    pub fn primary(&self) -> Option<SocketAddr> {
        self.primary
    }

    /// The member chosen for reads ([`Routing::ReadsAnywhere`]) or for everything
    /// ([`Routing::Anywhere`]), once chosen.
    pub fn sticky(&self) -> Option<SocketAddr> {
        self.sticky
    }

    /// Whether a call is in progress (begun, not yet done or given up).
    pub fn in_call(&self) -> bool {
        self.call.is_some()
    }

    /// Starts a call at time `now` (a call still in progress is abandoned). `read_only`: the
    /// operation is a read ([`StateMachine::is_read_only`]), which decides its routing.
    ///
    /// [`StateMachine::is_read_only`]: crate::state_machine::StateMachine::is_read_only
    pub fn begin(&mut self, now: Duration, read_only: bool) -> Step {
        self.call = Some(Call {
            read_only,
            started: now,
            attempts: 0,
            backoff: self.config.backoff_min,
            suspects: BTreeSet::new(),
            asked: BTreeSet::new(),
            hops: 0,
            hint: None,
            avoid: None,
            any_view: false,
            pending: Pending::Wait,
            last: String::from("no answer yet"),
            blocked: None,
            tried: Vec::new(),
        });
        self.next(now)
    }

    /// Reports what came of the last step at time `now`, and returns the next. Returns
    /// [`Step::Done`] when no call is in progress.
    ///
    /// # Panics
    ///
    /// When `event` does not answer the last step (a [`Event::Status`] after a
    /// [`Step::Send`], an [`Event::Answered`] after a [`Step::Resolve`]...): a bug of the
    /// driver.
    pub fn handle(&mut self, now: Duration, event: Event) -> Step {
        let Some(call) = self.call.as_mut() else {
            return Step::Done;
        };
        match (event, call.pending) {
            (Event::Answered, Pending::Send(from)) => {
                if !sticky_routed(self.config.routing, call.read_only) {
                    // It served a request for the primary: it is the primary.
                    self.primary = Some(from);
                }
                self.call = None;
                Step::Done
            }
            (Event::Refused(refusal), Pending::Send(from)) => self.refused(now, from, refusal),
            (Event::Failed(error), Pending::Send(at) | Pending::Resolve(at)) => {
                call.suspects.insert(at);
                call.avoid = Some(at);
                call.last = error;
                if call.hint == Some(at) {
                    call.hint = None;
                }
                if self.sticky == Some(at) {
                    self.sticky = None;
                }
                // Through the other known members first, then to the new target.
                self.resolve(now)
            }
            (Event::Rejected(reason), Pending::Send(node) | Pending::Resolve(node)) => {
                self.call = None;
                Step::GiveUp(GiveUp::Rejected { node, reason })
            }
            (Event::Status(status), Pending::Resolve(via)) => match status.view {
                Some(view) => {
                    let newer = self.view.is_none_or(|known| view.id > known);
                    if (newer || call.any_view) && self.view != Some(view.id) {
                        // A view change: what was suspected may be back, or gone.
                        call.suspects.clear();
                        call.hint = None;
                        self.view = Some(view.id);
                        self.members = view.members.iter().map(|m| m.addr).collect();
                        self.primary = self.members.first().copied();
                        if self.sticky.is_some_and(|s| !self.members.contains(&s)) {
                            self.sticky = None;
                        }
                    }
                    call.any_view = false;
                    let call = self.call.as_mut().expect("in a call");
                    match status.blocked {
                        Some(blocked) => {
                            call.last = format!("{via} is blocked: {}", blocked.reason);
                            call.blocked = Some(call.last.clone());
                            self.resolve(now)
                        }
                        None => self.next(now),
                    }
                }
                None => match status.blocked {
                    // A node blocked on its join (no seed answers) that is the only way
                    // known to the group: under `Anywhere` its service may answer all the
                    // same (the gossip strategy serves while cut off); one that does not
                    // refuses `Blocked`, and the call backs off as after any refusal.
                    Some(blocked)
                        if self.config.routing == Routing::Anywhere && self.members.is_empty() =>
                    {
                        call.last = format!("{via} is blocked: {}", blocked.reason);
                        self.send(now, via)
                    }
                    _ => {
                        call.last = format!("{via} is not a member of the group");
                        self.resolve(now)
                    }
                },
            },
            (Event::Waited, Pending::Wait) => self.resolve(now),
            (event, pending) => {
                panic!("front-end policy: {event:?} does not answer the pending {pending:?}")
            }
        }
    }

    fn refused(&mut self, now: Duration, from: SocketAddr, refusal: Refusal) -> Step {
        let max_hops = self.members.len().max(1) as u32 + 2;
        let call = self.call.as_mut().expect("in a call");
        match refusal.retry() {
            Retry::Never => {
                self.call = None;
                Step::GiveUp(GiveUp::Refused { from, refusal })
            }
            Retry::At(primary) if primary != from && call.hops < max_hops => {
                call.hops += 1;
                call.last = format!("{from}: {refusal}");
                call.hint = Some(primary);
                self.primary = Some(primary);
                if call.suspects.contains(&primary) {
                    // The member still names a primary that did not answer: the group has
                    // not installed the view without it yet. Give it time.
                    self.back_off(now)
                } else {
                    self.send(now, primary)
                }
            }
            _ => {
                call.last = format!("{from}: {refusal}");
                if matches!(refusal, Refusal::Blocked(_)) {
                    call.blocked = Some(call.last.clone());
                }
                call.avoid = Some(from);
                if call.hint == Some(from) {
                    call.hint = None;
                }
                if self.sticky == Some(from) {
                    self.sticky = None;
                }
                self.back_off(now)
            }
        }
    }

    /// What to do now: resolve the view if none is known, else send to the target.
    fn next(&mut self, now: Duration) -> Step {
        if self.members.is_empty() {
            return self.resolve(now);
        }
        match self.target() {
            Some(to) => self.send(now, to),
            None => self.back_off(now),
        }
    }

    /// Asks the next node not yet asked this round for the view; when none is left, sends
    /// with the view known (or waits, with none).
    fn resolve(&mut self, now: Duration) -> Step {
        if self.expired(now) {
            return self.give_up();
        }
        let call = self.call.as_ref().expect("in a call");
        let mut candidates: Vec<SocketAddr> = Vec::new();
        for &addr in self.members.iter().chain(self.seeds.iter()) {
            if !candidates.contains(&addr)
                && !call.suspects.contains(&addr)
                && !call.asked.contains(&addr)
            {
                candidates.push(addr);
            }
        }
        if let Some(avoid) = call.avoid {
            if let Some(i) = candidates.iter().position(|&a| a == avoid) {
                let last = candidates.remove(i);
                candidates.push(last);
            }
        }
        match candidates.first() {
            Some(&via) => {
                let timeout = self.timeout(now);
                let call = self.call.as_mut().expect("in a call");
                call.asked.insert(via);
                call.attempts += 1;
                if !call.tried.contains(&via) {
                    call.tried.push(via);
                }
                call.pending = Pending::Resolve(via);
                Step::Resolve { via, timeout }
            }
            None if self.members.is_empty() && self.seeds.is_empty() => {
                self.call.as_mut().expect("in a call").last =
                    String::from("no address to reach the group through");
                self.give_up()
            }
            None if self.members.is_empty() => self.back_off(now),
            None => match self.target() {
                Some(to) => self.send(now, to),
                None => self.back_off(now),
            },
        }
    }

    /// The member this call's request goes to now: the primary a member named for this call,
    /// else the routing's choice; a suspected choice is replaced by the next member in view
    /// order that is not suspected. `None`: every member is suspected.
    fn target(&mut self) -> Option<SocketAddr> {
        let call = self.call.as_ref().expect("in a call");
        let suspects = call.suspects.clone();
        let usable = |a: &SocketAddr| !suspects.contains(a);
        if let Some(hint) = call.hint.filter(usable) {
            return Some(hint);
        }
        if sticky_routed(self.config.routing, call.read_only) {
            if let Some(sticky) = self
                .sticky
                .filter(|s| usable(s) && self.members.contains(s))
            {
                return Some(sticky);
            }
            // The "local" member: the first seed that is a member, else a random member;
            // not the one that just refused or failed if there is another.
            let avoid = call.avoid;
            let mut choices: Vec<SocketAddr> =
                self.members.iter().copied().filter(usable).collect();
            if choices.len() > 1 {
                choices.retain(|&m| Some(m) != avoid);
            }
            let local = self.seeds.iter().find(|s| choices.contains(s)).copied();
            let chosen = local.or_else(|| {
                (!choices.is_empty()).then(|| choices[self.rng.gen_range(0..choices.len())])
            });
            self.sticky = chosen;
            return chosen;
        }
        let primary = self.primary.or_else(|| self.members.first().copied())?;
        if usable(&primary) {
            return Some(primary);
        }
        // The next candidate: the primary may be gone before the view says so.
        let n = self.members.len();
        let start = self
            .members
            .iter()
            .position(|&m| m == primary)
            .map_or(0, |i| i + 1);
        (0..n).map(|k| self.members[(start + k) % n]).find(usable)
    }

    fn send(&mut self, now: Duration, to: SocketAddr) -> Step {
        if self.expired(now) {
            return self.give_up();
        }
        let timeout = self.timeout(now);
        let call = self.call.as_mut().expect("in a call");
        call.attempts += 1;
        if !call.tried.contains(&to) {
            call.tried.push(to);
        }
        call.pending = Pending::Send(to);
        Step::Send { to, timeout }
    }

    /// Ends the round: waits a jittered backoff (never past the deadline), forgetting the
    /// round's suspicions.
    fn back_off(&mut self, now: Duration) -> Step {
        let remaining = self.remaining(now);
        if remaining.is_zero() {
            return self.give_up();
        }
        let max = self.config.backoff_max;
        let call = self.call.as_mut().expect("in a call");
        let base = call.backoff.min(max);
        let wait = if base.is_zero() {
            base
        } else {
            self.rng.gen_range(base / 2..=base)
        };
        call.backoff = (base * 2).min(max);
        call.suspects.clear();
        call.asked.clear();
        call.hops = 0;
        call.any_view = true;
        call.pending = Pending::Wait;
        Step::Wait(wait.min(remaining))
    }

    fn give_up(&mut self) -> Step {
        let call = self.call.take().expect("in a call");
        let last = match call.blocked {
            Some(blocked) if blocked != call.last => format!("{}; and {blocked}", call.last),
            _ => call.last,
        };
        Step::GiveUp(GiveUp::Unavailable {
            attempts: call.attempts,
            tried: call.tried,
            last,
        })
    }

    fn remaining(&self, now: Duration) -> Duration {
        let call = self.call.as_ref().expect("in a call");
        self.config
            .deadline
            .saturating_sub(now.saturating_sub(call.started))
    }

    fn expired(&self, now: Duration) -> bool {
        self.remaining(now).is_zero()
    }

    /// How long the next exchange may wait: the attempt timeout, or what is left.
    fn timeout(&self, now: Duration) -> Duration {
        self.config.attempt_timeout.min(self.remaining(now))
    }
}

/// Whether a request goes to the chosen member rather than the primary.
fn sticky_routed(routing: Routing, read_only: bool) -> bool {
    match routing {
        Routing::Primary => false,
        Routing::ReadsAnywhere => read_only,
        Routing::Anywhere => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use viewsync::wire::{Blocked, BlockedReason, BusyReason};
    use viewsync::{GroupName, Incarnation, Member, NodeId, ProcessId, View};

    const MS: Duration = Duration::from_millis(1);

    fn addr(n: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 7700 + n))
    }

    fn view(epoch: u64, nodes: &[u16]) -> View {
        let members: Vec<Member> = nodes
            .iter()
            .map(|&n| Member {
                id: ProcessId {
                    node: NodeId(u64::from(n)),
                    incarnation: Incarnation(1),
                },
                addr: addr(n),
            })
            .collect();
        View::of_voters(
            GroupName::new("kv").unwrap(),
            ViewId {
                epoch,
                coordinator: members[0].id,
            },
            members,
        )
    }

    fn status(epoch: u64, nodes: &[u16]) -> Event {
        Event::Status(GroupStatus {
            view: Some(view(epoch, nodes)),
            blocked: None,
        })
    }

    fn not_member() -> Event {
        Event::Status(GroupStatus {
            view: None,
            blocked: None,
        })
    }

    fn policy(routing: Routing, seeds: &[u16]) -> Policy {
        Policy::new(
            PolicyConfig {
                routing,
                ..PolicyConfig::default()
            },
            seeds.iter().map(|&n| addr(n)).collect(),
            7,
        )
    }

    fn send(n: u16) -> Step {
        Step::Send {
            to: addr(n),
            timeout: ATTEMPT_TIMEOUT_DEFAULT,
        }
    }

    fn resolve(n: u16) -> Step {
        Step::Resolve {
            via: addr(n),
            timeout: ATTEMPT_TIMEOUT_DEFAULT,
        }
    }

    fn failed() -> Event {
        Event::Failed("cannot connect: connection refused".into())
    }

    /// A policy that knows view `epoch` of `nodes` (primary first), between calls.
    fn knowing(routing: Routing, seeds: &[u16], epoch: u64, nodes: &[u16]) -> Policy {
        let mut p = policy(routing, seeds);
        assert_eq!(p.begin(Duration::ZERO, false), resolve(seeds[0]));
        let first = p.handle(Duration::ZERO, status(epoch, nodes));
        let Step::Send { to, .. } = first else {
            panic!("{first:?}")
        };
        assert_eq!(p.handle(Duration::ZERO, Event::Answered), Step::Done);
        assert_eq!(to, addr(nodes[0]));
        p
    }

    fn wait_of(step: &Step) -> Duration {
        match step {
            Step::Wait(d) => *d,
            other => panic!("expected a wait, got {other:?}"),
        }
    }

    #[test]
    fn first_call_resolves_through_a_seed_then_sends_to_the_primary() {
        let mut p = policy(Routing::Primary, &[2, 1]);
        assert_eq!(p.begin(Duration::ZERO, false), resolve(2));
        // Node 2 is a backup: the view names node 1 first.
        assert_eq!(p.handle(MS, status(3, &[1, 2, 3])), send(1));
        assert_eq!(p.handle(2 * MS, Event::Answered), Step::Done);
        assert!(!p.in_call());
        assert_eq!(p.members(), &[addr(1), addr(2), addr(3)]);
        assert_eq!(p.primary(), Some(addr(1)));
        // The next call goes straight to the primary: no resolution.
        assert_eq!(p.begin(3 * MS, true), send(1));
    }

    #[test]
    fn a_dead_seed_is_passed_over_and_a_non_member_too() {
        let mut p = policy(Routing::Primary, &[9, 8, 1]);
        assert_eq!(p.begin(Duration::ZERO, false), resolve(9));
        assert_eq!(p.handle(MS, failed()), resolve(8));
        assert_eq!(p.handle(MS, not_member()), resolve(1));
        assert_eq!(p.handle(MS, status(1, &[1, 2])), send(1));
    }

    #[test]
    fn a_hint_is_followed_at_once_and_remembered() {
        let mut p = knowing(Routing::Primary, &[1], 1, &[1, 2, 3]);
        assert_eq!(p.begin(Duration::ZERO, false), send(1));
        let hint = Event::Refused(Refusal::NotPrimary {
            primary: Some(addr(2)),
        });
        assert_eq!(p.handle(MS, hint), send(2));
        assert_eq!(p.handle(MS, Event::Answered), Step::Done);
        assert_eq!(p.primary(), Some(addr(2)));
        assert_eq!(p.begin(MS, false), send(2));
    }

    #[test]
    fn hints_bouncing_between_members_end_in_a_wait() {
        let mut p = knowing(Routing::Primary, &[1], 1, &[1, 2]);
        let mut step = p.begin(Duration::ZERO, false);
        let mut sends = 0;
        while let Step::Send { to, .. } = step {
            sends += 1;
            assert!(sends < 10, "hints followed forever");
            let other = if to == addr(1) { addr(2) } else { addr(1) };
            step = p.handle(
                MS,
                Event::Refused(Refusal::NotPrimary {
                    primary: Some(other),
                }),
            );
        }
        wait_of(&step);
        // Members (2) + 2 hops, plus the first send.
        assert_eq!(sends, 5);
    }

    #[test]
    fn every_retry_elsewhere_refusal_waits_then_resolves_through_another_member() {
        let refusals = [
            Refusal::NotPrimary { primary: None },
            Refusal::Busy(BusyReason::ViewChange),
            Refusal::Busy(BusyReason::Overloaded),
            Refusal::Busy(BusyReason::Joining),
            Refusal::Blocked(Blocked {
                view: None,
                blocked_ms: 10,
                reason: BlockedReason::NoStateHolder,
            }),
            Refusal::NotMember,
            Refusal::NoService,
        ];
        for refusal in refusals {
            let mut p = knowing(Routing::Primary, &[1], 1, &[1, 2, 3]);
            assert_eq!(p.begin(Duration::ZERO, false), send(1));
            let wait = wait_of(&p.handle(MS, Event::Refused(refusal.clone())));
            assert!(
                wait >= BACKOFF_MIN / 2 && wait <= BACKOFF_MIN,
                "{refusal:?}: {wait:?}"
            );
            // Re-resolved through a member other than the one that refused.
            assert_eq!(p.handle(30 * MS, Event::Waited), resolve(2), "{refusal:?}");
            // The view has changed: node 2 is now the primary.
            assert_eq!(
                p.handle(31 * MS, status(2, &[2, 3])),
                send(2),
                "{refusal:?}"
            );
            assert_eq!(p.handle(32 * MS, Event::Answered), Step::Done);
        }
    }

    #[test]
    fn too_large_and_malformed_give_up_at_once() {
        for refusal in [
            Refusal::TooLarge { size: 10, limit: 5 },
            Refusal::Malformed("another machine".into()),
        ] {
            let mut p = knowing(Routing::Primary, &[1], 1, &[1, 2]);
            assert_eq!(p.begin(Duration::ZERO, false), send(1));
            assert_eq!(
                p.handle(MS, Event::Refused(refusal.clone())),
                Step::GiveUp(GiveUp::Refused {
                    from: addr(1),
                    refusal
                })
            );
            assert!(!p.in_call());
        }
    }

    #[test]
    fn a_refused_frame_gives_up_at_once() {
        let mut p = policy(Routing::Primary, &[1, 2]);
        assert_eq!(p.begin(Duration::ZERO, false), resolve(1));
        assert_eq!(
            p.handle(MS, Event::Rejected("authentication failed".into())),
            Step::GiveUp(GiveUp::Rejected {
                node: addr(1),
                reason: "authentication failed".into()
            })
        );
    }

    #[test]
    fn a_silent_primary_is_suspected_and_the_next_candidate_tried() {
        let mut p = knowing(Routing::Primary, &[1], 1, &[1, 2, 3]);
        assert_eq!(p.begin(Duration::ZERO, false), send(1));
        // The primary times out: the view is resolved through another member first.
        assert_eq!(p.handle(2000 * MS, failed()), resolve(2));
        // Its view still names node 1: the next candidate in view order gets the request.
        assert_eq!(p.handle(2001 * MS, status(1, &[1, 2, 3])), send(2));
        // Node 2 still takes node 1 for the primary: wait for the view change.
        let hint = Event::Refused(Refusal::NotPrimary {
            primary: Some(addr(1)),
        });
        wait_of(&p.handle(2002 * MS, hint));
        assert_eq!(p.handle(2030 * MS, Event::Waited), resolve(2));
        // The group has excluded node 1.
        assert_eq!(p.handle(2031 * MS, status(2, &[2, 3])), send(2));
        assert_eq!(p.handle(2032 * MS, Event::Answered), Step::Done);
        assert_eq!(p.primary(), Some(addr(2)));
    }

    #[test]
    fn the_next_candidate_is_taken_in_view_order_after_the_suspected_ones() {
        let mut p = knowing(Routing::Primary, &[1], 1, &[1, 2, 3]);
        assert_eq!(p.begin(Duration::ZERO, false), send(1));
        assert_eq!(p.handle(MS, failed()), resolve(2));
        // Node 2 does not answer the view query either.
        assert_eq!(p.handle(MS, failed()), resolve(3));
        assert_eq!(p.handle(MS, status(1, &[1, 2, 3])), send(3));
        // Node 3 is gone too: everything is suspected, so the round ends with a wait.
        wait_of(&p.handle(MS, failed()));
    }

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_maximum() {
        let mut p = knowing(Routing::Primary, &[1], 1, &[1]);
        let mut step = p.begin(Duration::ZERO, false);
        let mut now = Duration::ZERO;
        let mut base = BACKOFF_MIN;
        for _ in 0..12 {
            assert_eq!(step, send(1));
            let wait =
                wait_of(&p.handle(now, Event::Refused(Refusal::Busy(BusyReason::ViewChange))));
            assert!(
                wait >= base / 2 && wait <= base,
                "wait {wait:?} outside [{:?}, {base:?}]",
                base / 2
            );
            assert!(wait <= BACKOFF_MAX);
            now += wait;
            assert_eq!(p.handle(now, Event::Waited), resolve(1));
            step = p.handle(now, status(1, &[1]));
            base = (base * 2).min(BACKOFF_MAX);
        }
        assert_eq!(base, BACKOFF_MAX);
        // A new call starts from the first backoff again.
        p.begin(now, false);
        let wait = wait_of(&p.handle(now, Event::Refused(Refusal::NoService)));
        assert!(wait <= BACKOFF_MIN);
    }

    #[test]
    fn the_jitter_is_reproducible_from_the_seed() {
        let waits = || {
            let mut p = knowing(Routing::Primary, &[1], 1, &[1]);
            p.begin(Duration::ZERO, false);
            (0..5)
                .map(|_| {
                    let w = wait_of(&p.handle(MS, Event::Refused(Refusal::NotMember)));
                    p.handle(MS, Event::Waited);
                    p.handle(MS, status(1, &[1]));
                    w
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(waits(), waits());
    }

    #[test]
    fn past_the_deadline_the_call_is_unavailable() {
        let mut p = Policy::new(
            PolicyConfig {
                deadline: 300 * MS,
                ..PolicyConfig::default()
            },
            vec![addr(9)],
            1,
        );
        let mut now = Duration::ZERO;
        let mut step = p.begin(now, false);
        let mut waited = Duration::ZERO;
        loop {
            match step {
                Step::Resolve { via, timeout } => {
                    assert_eq!(via, addr(9));
                    // Never waits past the deadline.
                    assert!(now + timeout <= 300 * MS);
                    now += MS;
                    step = p.handle(now, failed());
                }
                Step::Wait(d) => {
                    assert!(now + d <= 300 * MS);
                    now += d;
                    waited += d;
                    step = p.handle(now, Event::Waited);
                }
                Step::GiveUp(GiveUp::Unavailable {
                    attempts,
                    tried,
                    last,
                }) => {
                    assert_eq!(tried, vec![addr(9)]);
                    assert!(attempts >= 3, "{attempts}");
                    assert!(last.contains("connection refused"), "{last}");
                    break;
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(now, 300 * MS);
        assert!(waited > 200 * MS);
        assert!(!p.in_call());
    }

    #[test]
    fn an_attempt_never_waits_past_the_deadline() {
        let mut p = Policy::new(
            PolicyConfig {
                deadline: 3000 * MS,
                ..PolicyConfig::default()
            },
            vec![addr(1)],
            1,
        );
        assert_eq!(p.begin(Duration::ZERO, false), resolve(1));
        assert_eq!(
            p.handle(2500 * MS, status(1, &[1])),
            Step::Send {
                to: addr(1),
                timeout: 500 * MS
            }
        );
        let Step::GiveUp(GiveUp::Unavailable { attempts, last, .. }) =
            p.handle(3000 * MS, Event::Failed("no answer in time".into()))
        else {
            panic!("expected to give up")
        };
        assert_eq!(attempts, 2);
        assert_eq!(last, "no answer in time");
    }

    #[test]
    fn no_seed_gives_up_at_once() {
        let mut p = policy(Routing::Primary, &[]);
        assert!(matches!(
            p.begin(Duration::ZERO, false),
            Step::GiveUp(GiveUp::Unavailable { attempts: 0, .. })
        ));
    }

    #[test]
    fn reads_anywhere_reads_at_the_local_member_and_writes_at_the_primary() {
        // Seed 2 is a backup: the "local" member for reads.
        let mut p = policy(Routing::ReadsAnywhere, &[2]);
        assert_eq!(p.begin(Duration::ZERO, true), resolve(2));
        assert_eq!(p.handle(MS, status(1, &[1, 2, 3])), send(2));
        assert_eq!(p.handle(MS, Event::Answered), Step::Done);
        assert_eq!(p.sticky(), Some(addr(2)));
        // The backup served a read: it is not taken for the primary.
        assert_eq!(p.primary(), Some(addr(1)));
        assert_eq!(p.begin(MS, false), send(1));
        assert_eq!(p.handle(MS, Event::Answered), Step::Done);
        assert_eq!(p.begin(MS, true), send(2));
        // The chosen member crashes: another one is chosen among the others.
        assert_eq!(p.handle(MS, failed()), resolve(1));
        let step = p.handle(MS, status(1, &[1, 2, 3]));
        let Step::Send { to, .. } = step else {
            panic!("{step:?}")
        };
        assert_ne!(to, addr(2));
        assert_eq!(p.sticky(), Some(to));
    }

    #[test]
    fn anywhere_sends_everything_to_the_chosen_member() {
        let mut p = policy(Routing::Anywhere, &[3]);
        assert_eq!(p.begin(Duration::ZERO, false), resolve(3));
        assert_eq!(p.handle(MS, status(1, &[1, 2, 3])), send(3));
        assert_eq!(p.handle(MS, Event::Answered), Step::Done);
        assert_eq!(p.begin(MS, false), send(3));
        assert_eq!(p.handle(MS, Event::Answered), Step::Done);
        assert_eq!(p.begin(MS, true), send(3));
    }

    #[test]
    fn a_chosen_member_refusing_is_replaced() {
        let mut p = policy(Routing::Anywhere, &[3]);
        p.begin(Duration::ZERO, false);
        assert_eq!(p.handle(MS, status(1, &[1, 2, 3])), send(3));
        wait_of(&p.handle(MS, Event::Refused(Refusal::Busy(BusyReason::Joining))));
        assert_eq!(p.sticky(), None);
        assert_eq!(p.handle(30 * MS, Event::Waited), resolve(1));
        // Another member is chosen, and kept for the next calls.
        let step = p.handle(31 * MS, status(1, &[1, 2, 3]));
        let Step::Send { to, .. } = step else {
            panic!("{step:?}")
        };
        assert_ne!(to, addr(3));
        assert_eq!(p.handle(32 * MS, Event::Answered), Step::Done);
        assert_eq!(
            p.begin(33 * MS, false),
            Step::Send {
                to,
                timeout: ATTEMPT_TIMEOUT_DEFAULT
            }
        );
    }

    #[test]
    fn an_older_view_does_not_replace_a_newer_one_until_a_round_fails() {
        let mut p = knowing(Routing::Primary, &[1, 2], 5, &[1, 2]);
        assert_eq!(p.begin(Duration::ZERO, false), send(1));
        assert_eq!(p.handle(MS, failed()), resolve(2));
        // Node 2 lags behind with view 4 naming node 3: ignored.
        assert_eq!(p.handle(MS, status(4, &[3, 2])), send(2));
        assert_eq!(p.view_id().map(|v| v.epoch), Some(5));
        wait_of(&p.handle(MS, Event::Refused(Refusal::NotPrimary { primary: None })));
        // After a failed round, whatever view is heard next is taken (a group restarted from
        // scratch numbers its views from 1 again).
        assert_eq!(p.handle(30 * MS, Event::Waited), resolve(1));
        assert_eq!(p.handle(31 * MS, status(1, &[4])), send(4));
        assert_eq!(p.view_id().map(|v| v.epoch), Some(1));
    }

    #[test]
    fn a_blocked_node_is_passed_over_for_resolution() {
        let mut p = policy(Routing::Primary, &[1, 2]);
        assert_eq!(p.begin(Duration::ZERO, false), resolve(1));
        let blocked = Event::Status(GroupStatus {
            view: Some(view(1, &[1, 2, 3])),
            blocked: Some(Blocked {
                view: None,
                blocked_ms: 5,
                reason: BlockedReason::NoSeedAnswered,
            }),
        });
        assert_eq!(p.handle(MS, blocked), resolve(2));
        assert_eq!(p.handle(MS, status(2, &[2, 3])), send(2));
    }

    /// A node cut off from its group (blocked on its join, no view) that is the only way
    /// known: `Anywhere` sends to it (a gossip member serves while cut off); `Primary` does
    /// not (it waits for a view).
    #[test]
    fn a_cut_off_node_is_tried_under_anywhere_routing() {
        let cut_off = || {
            Event::Status(GroupStatus {
                view: None,
                blocked: Some(Blocked {
                    view: None,
                    blocked_ms: 5,
                    reason: BlockedReason::NoSeedAnswered,
                }),
            })
        };
        let mut p = policy(Routing::Anywhere, &[1]);
        assert_eq!(p.begin(Duration::ZERO, false), resolve(1));
        assert_eq!(p.handle(MS, cut_off()), send(1));
        assert_eq!(p.handle(MS, Event::Answered), Step::Done);
        let mut p = policy(Routing::Primary, &[1]);
        assert_eq!(p.begin(Duration::ZERO, false), resolve(1));
        wait_of(&p.handle(MS, cut_off()));
    }

    #[test]
    fn giving_up_names_a_blocked_member_even_when_a_silent_one_came_last() {
        // The minority side of a partition: the seed answers, blocked; the other members it
        // names are silent.
        let mut p = Policy::new(
            PolicyConfig {
                deadline: 300 * MS,
                ..PolicyConfig::default()
            },
            vec![addr(3)],
            1,
        );
        let no_majority = Blocked {
            view: None,
            blocked_ms: 900,
            reason: BlockedReason::NoMajority {
                voters: view(1, &[1, 2, 3]).members.iter().map(|m| m.id).collect(),
                reachable: vec![view(1, &[3]).members[0].id],
                needed: 2,
            },
        };
        let mut now = Duration::ZERO;
        let mut step = p.begin(now, false);
        let last = loop {
            now += MS;
            step = match step {
                Step::Resolve { via, .. } if via == addr(3) => p.handle(
                    now,
                    Event::Status(GroupStatus {
                        view: Some(view(1, &[1, 2, 3])),
                        blocked: Some(no_majority.clone()),
                    }),
                ),
                Step::Send { to, .. } if to == addr(3) => {
                    p.handle(now, Event::Refused(Refusal::Blocked(no_majority.clone())))
                }
                // A silent node: its attempt takes all the time it is given.
                Step::Resolve { timeout, .. } | Step::Send { timeout, .. } => {
                    now += timeout;
                    p.handle(now, Event::Failed("no answer in time".into()))
                }
                Step::Wait(d) => {
                    now += d;
                    p.handle(now, Event::Waited)
                }
                Step::GiveUp(GiveUp::Unavailable { last, .. }) => break last,
                other => panic!("{other:?}"),
            };
        };
        assert!(last.starts_with("no answer in time"), "{last}");
        assert!(last.contains("no majority"), "{last}");
        assert!(last.contains(&addr(3).to_string()), "{last}");
    }

    #[test]
    #[should_panic(expected = "does not answer")]
    fn an_event_out_of_turn_is_a_driver_bug() {
        let mut p = policy(Routing::Primary, &[1]);
        p.begin(Duration::ZERO, false);
        p.handle(MS, Event::Answered);
    }
}
