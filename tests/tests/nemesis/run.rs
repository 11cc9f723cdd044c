//! One nemesis run: a group of real processes, five concurrent clients recording a history,
//! a seeded schedule of faults, then the final reads and the verdict. A failing run keeps
//! its history, the nemesis's record and every process's output in a directory it names.

use crate::group::{panic_text, NemesisGroup, CALL_DEADLINE};
use crate::record::{
    runtime, Clients, KvHistory, NemesisEvent, Recorder, Tally, FRESH_PREFIX, SHARED_KEYS,
};
use crate::strategy::Strategy;
use crate::verdict::judge;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use viewsync_services::state_machine::kv::{KvOp, KvOutput};

/// Runs of this binary take turns: each loads the machine as much as it may.
pub static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// How long one run's nemesis goes on: `NEMESIS_DURATION` seconds, 10 by default. The
/// schedule always applies each kind of fault at least once, so a run takes longer when
/// recoveries are slow.
pub fn nemesis_duration() -> Duration {
    env_secs("NEMESIS_DURATION").unwrap_or(Duration::from_secs(10))
}

/// `VAR` as a number of seconds, if set.
pub fn env_secs(var: &str) -> Option<Duration> {
    let text = std::env::var(var).ok()?;
    let secs: f64 = text
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{var}={text:?}: expected a number of seconds"));
    Some(Duration::from_secs_f64(secs))
}

/// The schedule's seed: `NEMESIS_SEED`, or a new one (printed by every run).
pub fn nemesis_seed() -> u64 {
    match std::env::var("NEMESIS_SEED") {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("NEMESIS_SEED={text:?}: expected a number")),
        Err(_) => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64 % 1_000_000_000)
            .unwrap_or(1),
    }
}

/// What a run is.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// The strategy.
    pub strategy: Strategy,
    /// Group size.
    pub members: u64,
    /// Concurrent clients (front ends).
    pub clients: u64,
    /// How long the nemesis goes on at least.
    pub duration: Duration,
    /// The schedule's seed.
    pub seed: u64,
    /// Each client's pause between calls.
    pub pause: Duration,
    /// Whether the nemesis acts (off: the clients run for `duration` on a quiet group).
    pub faults: bool,
    /// A change made to the recorded history before it is judged (to show the verdict
    /// fires): returns what it planted, or `None` if the history offers no place for it.
    pub plant: Option<fn(&mut KvHistory, u64) -> Option<String>>,
}

impl RunConfig {
    /// A run of `strategy` on `members` with five clients and the nemesis on.
    pub fn new(strategy: Strategy, members: u64, seed: u64) -> RunConfig {
        RunConfig {
            strategy,
            members,
            clients: 5,
            duration: nemesis_duration(),
            seed,
            pause: Duration::from_millis(5),
            faults: true,
            plant: None,
        }
    }
}

/// The kinds of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// SIGKILL a member, restart it from its data directory once the others moved on.
    KillMember,
    /// SIGSTOP a member for longer than the failure detector's timeout, then SIGCONT.
    PauseMember,
    /// SIGKILL the coordinator (the primary, or the sequencer), restart it.
    KillCoordinator,
    /// SIGKILL every member at once, restart them all from their data directories.
    KillGroup,
}

impl Fault {
    const ALL: [Fault; 4] = [
        Fault::KillMember,
        Fault::PauseMember,
        Fault::KillCoordinator,
        Fault::KillGroup,
    ];

    /// The name in the report and in `nemesis.jsonl`.
    pub fn name(self) -> &'static str {
        match self {
            Fault::KillMember => "kill-member",
            Fault::PauseMember => "pause-member",
            Fault::KillCoordinator => "kill-coordinator",
            Fault::KillGroup => "kill-group",
        }
    }

    /// A random kind, the whole-group kill rarer than the others.
    fn draw(rng: &mut StdRng) -> Fault {
        match rng.gen_range(0..10) {
            0..=3 => Fault::KillMember,
            4..=6 => Fault::PauseMember,
            7..=8 => Fault::KillCoordinator,
            _ => Fault::KillGroup,
        }
    }
}

/// What a run did.
#[derive(Debug, Default)]
pub struct RunReport {
    /// Faults applied, by kind.
    pub faults: BTreeMap<&'static str, u32>,
    /// The clients' calls.
    pub calls: Tally,
    /// The checkers' summary.
    pub verdict: String,
    /// The whole run, start to verdict.
    pub elapsed: Duration,
    /// The longest a fault kept the group from a view of all its members (from the fault
    /// to the recovered view).
    pub longest_recovery: Duration,
    /// The history's events.
    pub history_events: usize,
    /// The history judged (with the final reads).
    pub history: KvHistory,
    /// The final reads' client.
    pub final_reader: u64,
}

/// How long the group may take to recover from one fault (a loaded machine, a whole-group
/// restart).
const RECOVERY_TIMEOUT: Duration = Duration::from_secs(60);

/// How much shorter than a call's deadline the longest recovery must be for a call that
/// ended unknown to fail the run.
const LIVENESS_MARGIN: Duration = Duration::from_secs(10);

/// Everything a run holds, so that a failure can keep it.
struct RunState {
    group: Option<NemesisGroup>,
    recorder: Recorder,
    events: Vec<NemesisEvent>,
    clients: Option<Clients>,
    report: RunReport,
}

/// Where the nemesis writes down what it does.
struct Journal<'a> {
    recorder: &'a Recorder,
    events: &'a mut Vec<NemesisEvent>,
}

impl Journal<'_> {
    fn note(&mut self, event: &'static str, fault: Fault, node: Option<u64>, detail: String) {
        self.events.push(NemesisEvent {
            time_ns: self.recorder.now(),
            event,
            fault: fault.name(),
            node,
            detail,
        });
    }
}

/// Runs `config`; returns its report, or panics naming the directory that keeps the
/// failing run's history, nemesis record and node outputs.
pub fn run(config: &RunConfig) -> RunReport {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let started = Instant::now();
    println!(
        "nemesis: {} with {} members, {} clients, {:?}; seed {} (replay: NEMESIS_SEED={})",
        config.strategy.name(),
        config.members,
        config.clients,
        config.duration,
        config.seed,
        config.seed
    );
    let recorder = if config.strategy == Strategy::Gossip {
        Recorder::with_tentative_cas()
    } else {
        Recorder::new()
    };
    let mut state = RunState {
        group: None,
        recorder,
        events: Vec::new(),
        clients: None,
        report: RunReport::default(),
    };
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| body(config, &mut state)))
        .unwrap_or_else(|panic| Err(format!("panicked: {}", panic_text(&panic))));
    if let Some(clients) = state.clients.take() {
        for tally in clients.stop() {
            state.report.calls += tally;
        }
    }
    state.report.elapsed = started.elapsed();
    state.report.history_events = state.recorder.history().events.len();
    match outcome {
        Ok(verdict) => {
            state.report.verdict = verdict;
            println!("{}", describe(config, &state.report));
            if std::env::var_os("NEMESIS_KEEP").is_some() {
                let kept = keep_failure(
                    config,
                    &mut state,
                    "passed (kept: NEMESIS_KEEP is set)",
                    false,
                );
                println!("kept in {}", kept.display());
            }
            state.report
        }
        Err(why) => {
            let kept = keep_failure(config, &mut state, &why, true);
            panic!(
                "nemesis run failed: {} with {} members, seed {} (replay: NEMESIS_SEED={} cargo \
                 test --release -p viewsync-tests --test nemesis t01_strategies::{} -- --exact \
                 --nocapture):\n{why}\n\n{}\nhistory, nemesis record and node outputs kept in {}",
                config.strategy.name(),
                config.members,
                config.seed,
                config.seed,
                config.strategy.name().replace('-', "_"),
                describe(config, &state.report),
                kept.display()
            );
        }
    }
}

fn body(config: &RunConfig, state: &mut RunState) -> Result<String, String> {
    state.group = Some(NemesisGroup::start(config.strategy, config.members)?);
    let group = state.group.as_mut().expect("just started");
    state.clients = Some(Clients::start(
        group,
        config.clients,
        config.seed,
        config.pause,
        &state.recorder,
        true,
    ));
    // The schedule: each kind once in a seeded order, then drawn until the duration is up.
    let mut rng = StdRng::seed_from_u64(
        config.seed ^ (config.members << 32) ^ (config.strategy as u64) << 40,
    );
    let mut first = Fault::ALL.to_vec();
    first.shuffle(&mut rng);
    let start = Instant::now();
    let mut applied = 0;
    if !config.faults {
        std::thread::sleep(config.duration);
        applied = usize::MAX;
    }
    while applied < first.len() || (config.faults && start.elapsed() < config.duration) {
        let fault = first
            .get(applied)
            .copied()
            .unwrap_or_else(|| Fault::draw(&mut rng));
        applied += 1;
        std::thread::sleep(Duration::from_millis(rng.gen_range(300..1200)));
        let fault_started = Instant::now();
        apply(config, state, fault, &mut rng)?;
        let report = &mut state.report;
        report.longest_recovery = report.longest_recovery.max(fault_started.elapsed());
        *state.report.faults.entry(fault.name()).or_default() += 1;
    }
    // The clients go on a moment on the recovered group, then stop.
    std::thread::sleep(Duration::from_millis(1000));
    if let Some(clients) = state.clients.take() {
        for tally in clients.stop() {
            state.report.calls += tally;
        }
    }
    // Liveness: a call ends unknown only after CALL_DEADLINE without an answer, which no
    // recovery this short excuses.
    let (unknown, longest) = (
        state.report.calls.indeterminate,
        state.report.longest_recovery,
    );
    if unknown > 0 && longest + LIVENESS_MARGIN < CALL_DEADLINE {
        return Err(format!(
            "{unknown} calls ended with an unknown outcome (unanswered for {CALL_DEADLINE:?}) \
             although no fault kept the group from a view of all its members for more than \
             {longest:?}"
        ));
    }
    let group = state.group.as_mut().expect("started");
    group.wait_converged(RECOVERY_TIMEOUT)?;
    let history = state.recorder.history();
    let keys = keys_of(&history);
    if config.strategy.reads_per_member() {
        members_agree(group, &keys)?;
    }
    let final_reader = final_reads(group, &state.recorder, &keys)?;
    group.check_running()?;
    let mut history = state.recorder.history();
    state.report.final_reader = final_reader;
    if let Some(plant) = config.plant {
        let planted = plant(&mut history, final_reader)
            .ok_or("the history offers no place for the planted anomaly")?;
        println!("planted: {planted}");
    }
    state.report.history = history;
    judge(config.strategy.model(), &state.report.history, final_reader)
}

/// Applies one fault and waits until the whole group is back in one view.
fn apply(
    config: &RunConfig,
    state: &mut RunState,
    fault: Fault,
    rng: &mut StdRng,
) -> Result<(), String> {
    let RunState {
        group,
        recorder,
        events,
        ..
    } = state;
    let group = group.as_mut().expect("a group");
    let mut journal = Journal { recorder, events };
    apply_to(config, group, &mut journal, fault, rng)
}

fn apply_to(
    config: &RunConfig,
    group: &mut NemesisGroup,
    state: &mut Journal<'_>,
    fault: Fault,
    rng: &mut StdRng,
) -> Result<(), String> {
    let members = group.members().to_vec();
    match fault {
        Fault::KillMember | Fault::KillCoordinator => {
            let (victim, role) = if fault == Fault::KillCoordinator {
                let coordinator = group
                    .coordinator()
                    .ok_or("no view printed: no coordinator to kill")?;
                // The replica layer names the same member its primary (or sequencer).
                let replica = group.replica_primary();
                if replica.is_some_and(|r| r != coordinator) {
                    return Err(format!(
                        "the latest view's coordinator is node {coordinator} but the replica's \
                         latest replica-view names node {replica:?}"
                    ));
                }
                (coordinator, config.strategy.coordinator_role())
            } else {
                (*members.choose(rng).expect("members"), "member")
            };
            state.note("kill", fault, Some(victim), role.to_string());
            group.kill(victim);
            let survivors = group.live();
            let view = group.wait_view_of(&survivors, RECOVERY_TIMEOUT)?;
            state.note(
                "excluded",
                fault,
                Some(victim),
                format!(
                    "survivors' view {} coordinator {}",
                    view.epoch, view.coordinator
                ),
            );
            std::thread::sleep(Duration::from_millis(rng.gen_range(200..800)));
            group.launch(victim)?;
            state.note("restart", fault, Some(victim), String::new());
        }
        Fault::PauseMember => {
            let victim = *members.choose(rng).expect("members");
            // The failure detector suspects after 400 + 150 ms of silence by default.
            let pause = Duration::from_millis(rng.gen_range(1500..3000));
            state.note("stop", fault, Some(victim), format!("for {pause:?}"));
            group.signal(victim, "STOP");
            std::thread::sleep(pause);
            let others: Vec<u64> = members.iter().copied().filter(|m| *m != victim).collect();
            let excluded = others.iter().any(|id| {
                group
                    .cluster
                    .node(*id)
                    .latest_view()
                    .is_some_and(|v| !v.contains(victim))
            });
            group.signal(victim, "CONT");
            state.note(
                "continue",
                fault,
                Some(victim),
                format!("excluded meanwhile: {excluded}"),
            );
        }
        Fault::KillGroup => {
            state.note("kill-all", fault, None, String::new());
            group.kill_all();
            std::thread::sleep(Duration::from_millis(rng.gen_range(200..1000)));
            let mut order = members.clone();
            order.shuffle(rng);
            for id in &order {
                group.launch(*id)?;
            }
            state.note(
                "restart-all",
                fault,
                None,
                format!("in the order {order:?}"),
            );
        }
    }
    let view = group.wait_converged(RECOVERY_TIMEOUT)?;
    state.note(
        "recovered",
        fault,
        None,
        format!("view {} coordinator {}", view.epoch, view.coordinator),
    );
    Ok(())
}

/// Every key the history touched: the shared ones and every fresh one written.
fn keys_of(history: &KvHistory) -> Vec<String> {
    let mut keys: BTreeSet<String> = SHARED_KEYS.iter().map(|k| k.to_string()).collect();
    for event in &history.events {
        if let Some(op) = &event.op {
            if op.key().starts_with(FRESH_PREFIX) {
                keys.insert(op.key().to_string());
            }
        }
    }
    keys.into_iter().collect()
}

/// Reads every key at every member, each through a front end that talks to that member
/// only, until all members answer alike (they converge once the last updates reached all).
fn members_agree(group: &mut NemesisGroup, keys: &[String]) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut states: BTreeMap<u64, Vec<Option<String>>> = BTreeMap::new();
        for id in group.live() {
            let mut fe = group.front_end(vec![group.addr(id)], group.strategy.routing());
            let values = runtime().block_on(async {
                let mut values = Vec::with_capacity(keys.len());
                for key in keys {
                    match fe.call(KvOp::get(key.as_str())).await {
                        Ok(KvOutput::Value(v)) => values.push(v),
                        other => return Err(format!("read of {key} at node {id}: {other:?}")),
                    }
                }
                Ok(values)
            })?;
            states.insert(id, values);
        }
        let first = states.values().next().cloned().unwrap_or_default();
        let differing: Vec<String> = keys
            .iter()
            .enumerate()
            .filter(|(i, _)| states.values().any(|s| s[*i] != first[*i]))
            .map(|(i, key)| {
                let at: Vec<String> = states
                    .iter()
                    .map(|(id, s)| format!("node {id}: {:?}", s[i]))
                    .collect();
                format!("{key} ({})", at.join(", "))
            })
            .collect();
        if differing.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "the members did not converge within 30 s; keys that differ:\n  {}",
                differing.join("\n  ")
            ));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Reads every key through a fresh front end, into the history; returns its client id.
fn final_reads(
    group: &mut NemesisGroup,
    recorder: &Recorder,
    keys: &[String],
) -> Result<u64, String> {
    let mut fe = group.front_end(group.addrs(), group.strategy.routing());
    let reader = fe.client_id();
    runtime().block_on(async {
        for key in keys {
            recorder
                .call(&mut fe, KvOp::get(key.as_str()))
                .await
                .map_err(|e| format!("the final read of {key} failed: {e}"))?;
        }
        Ok::<(), String>(())
    })?;
    Ok(reader)
}

/// The report as text.
pub fn describe(config: &RunConfig, report: &RunReport) -> String {
    let mut out = String::new();
    let faults: Vec<String> = report
        .faults
        .iter()
        .map(|(kind, n)| {
            if *kind == "kill-coordinator" {
                format!("{kind} ({}) {n}", config.strategy.coordinator_role())
            } else {
                format!("{kind} {n}")
            }
        })
        .collect();
    let _ = write!(
        out,
        "nemesis report: {} with {} members, seed {}, {:.1} s\n  faults: {} (longest recovery \
         {:.1} s)\n  calls: {} ok, {} failed, {} indeterminate ({} history events)\n  verdict: {}",
        config.strategy.name(),
        config.members,
        config.seed,
        report.elapsed.as_secs_f64(),
        if faults.is_empty() {
            "none".to_string()
        } else {
            faults.join(", ")
        },
        report.longest_recovery.as_secs_f64(),
        report.calls.ok,
        report.calls.failed,
        report.calls.indeterminate,
        report.history_events,
        if report.verdict.is_empty() {
            "(none)"
        } else {
            &report.verdict
        }
    );
    out
}

/// Where failing runs (and with `NEMESIS_KEEP` set, every run) are kept:
/// `NEMESIS_FAILURES_DIR`, or `target/nemesis-failures/`
/// (next to the profile directory the test executable runs from).
pub fn failures_root() -> PathBuf {
    if let Ok(dir) = std::env::var("NEMESIS_FAILURES_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("the test executable's path");
    exe.parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .map(|target| target.join("nemesis-failures"))
        .unwrap_or_else(|| std::env::temp_dir().join("viewsync-nemesis-failures"))
}

/// Writes the failing run's history, nemesis record, verdict and node outputs into a new
/// directory under [`failures_root`]; returns it.
fn keep_failure(config: &RunConfig, state: &mut RunState, why: &str, failed: bool) -> PathBuf {
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let dir = failures_root().join(format!(
        "{}-{}m-seed{}-{stamp}",
        config.strategy.name(),
        config.members,
        config.seed
    ));
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    // The history judged (planted, if the run plants), or as recorded so far.
    let history = if state.report.history.events.is_empty() {
        state.recorder.history()
    } else {
        state.report.history.clone()
    };
    let _ = std::fs::write(dir.join("history.jsonl"), history.to_json_lines());
    let events: String = state
        .events
        .iter()
        .map(|e| serde_json::to_string(e).expect("an event serializes") + "\n")
        .collect();
    let _ = std::fs::write(dir.join("nemesis.jsonl"), events);
    let mut verdict = format!("{why}\n\n{}\n", describe(config, &state.report));
    if let Some(group) = state.group.as_mut() {
        group.save_outputs(&dir);
    }
    if let (Some(group), true) = (state.group.as_ref(), failed) {
        let _ = writeln!(
            verdict,
            "configurations and data directories: {} (kept)",
            group.cluster.dir.path().display()
        );
    }
    let _ = std::fs::write(dir.join("verdict.txt"), verdict);
    dir
}
