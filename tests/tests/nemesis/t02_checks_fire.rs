//! The verdict fires: histories recorded from real groups, with a lost write or a stale
//! read planted, are rejected with the anomaly named; and a whole run whose history is
//! planted fails, naming the directory where it kept the history and the node outputs.

use crate::record::{KvHistory, FRESH_PREFIX};
use crate::run::{run, RunConfig, RunReport};
use crate::strategy::{Model, Strategy};
use crate::verdict::judge;
use std::time::Duration;
use viewsync_services::history::{EventKind, Operation, Outcome};
use viewsync_services::state_machine::kv::{KvOp, KvOutput};

type KvOperation = Operation<KvOp, KvOutput>;

/// A quiet run (no faults, two seconds of five clients) whose history the plants work on.
fn recorded(strategy: Strategy) -> RunReport {
    run(&RunConfig {
        duration: Duration::from_secs(2),
        faults: false,
        pause: crate::t01_strategies::client_pause(strategy),
        ..RunConfig::new(strategy, 3, 7)
    })
}

/// The value a put or a matching compare-and-swap wrote, when acknowledged.
fn acknowledged_value(op: &KvOperation) -> Option<&str> {
    match (&op.op, &op.outcome) {
        (KvOp::Put { value, .. }, Outcome::Ok(KvOutput::Written)) => Some(value),
        (KvOp::Cas { new, .. }, Outcome::Ok(KvOutput::Swapped)) => Some(new),
        _ => None,
    }
}

/// Sets the result of `(client, id)`'s `ok` event to `Value(value)`.
fn set_result(history: &mut KvHistory, client: u64, id: u64, value: Option<&str>) {
    let event = history
        .events
        .iter_mut()
        .find(|e| e.client == client && e.id == id && e.kind == EventKind::Ok)
        .expect("the answered operation's event");
    event.result = Some(KvOutput::Value(value.map(str::to_owned)));
}

/// An acknowledged update `older` of `key` that completed before the acknowledged update
/// `newer` was invoked, with `newer` satisfying `newer_ok`.
fn ordered_pair<'h>(
    operations: &'h [KvOperation],
    key: &str,
    newer_ok: impl Fn(&KvOperation) -> bool,
) -> Option<(&'h KvOperation, &'h KvOperation)> {
    let writes: Vec<&KvOperation> = operations
        .iter()
        .filter(|o| o.op.key() == key && acknowledged_value(o).is_some())
        .collect();
    writes.iter().find_map(|newer| {
        if !newer_ok(newer) {
            return None;
        }
        writes
            .iter()
            .find(|older| older.complete_ns.is_some_and(|t| t < newer.invoke_ns))
            .map(|older| (*older, *newer))
    })
}

/// The final read of a shared key returns the value of an update that an acknowledged
/// update of the key followed in real time: that later update is lost.
fn lose_a_shared_write(history: &mut KvHistory, final_reader: u64) -> Option<String> {
    let operations = history.operations().ok()?;
    let finals: Vec<&KvOperation> = operations
        .iter()
        .filter(|o| o.client == final_reader && !o.op.key().starts_with(FRESH_PREFIX))
        .collect();
    for read in finals {
        let Some(KvOutput::Value(Some(value))) = read.result() else {
            continue;
        };
        let key = read.op.key();
        let newest_ok = |w: &KvOperation| acknowledged_value(w) == Some(value.as_str());
        if let Some((older, newer)) = ordered_pair(&operations, key, newest_ok) {
            let stale = acknowledged_value(older).map(str::to_owned);
            let planted = format!(
                "the final read of {key} returns {stale:?} (by {older}) instead of {value:?}: \
                 {newer} is lost"
            );
            set_result(history, read.client, read.id, stale.as_deref());
            return Some(planted);
        }
    }
    None
}

/// A client's read, invoked after the update whose value it returned had completed,
/// returns instead the value of an update that completed before that one was invoked.
fn plant_a_stale_read(history: &mut KvHistory, final_reader: u64) -> Option<String> {
    let operations = history.operations().ok()?;
    for read in operations.iter().filter(|o| o.client != final_reader) {
        let (KvOp::Get { key }, Some(KvOutput::Value(Some(value)))) = (&read.op, read.result())
        else {
            continue;
        };
        let seen_before_read = |w: &KvOperation| {
            acknowledged_value(w) == Some(value.as_str())
                && w.complete_ns.is_some_and(|t| t < read.invoke_ns)
        };
        if let Some((older, newer)) = ordered_pair(&operations, key, seen_before_read) {
            let stale = acknowledged_value(older).map(str::to_owned);
            let planted = format!("{read} returns {stale:?} of {older}, overwritten by {newer}");
            set_result(history, read.client, read.id, stale.as_deref());
            return Some(planted);
        }
    }
    None
}

/// The final read of a fresh key finds nothing: its acknowledged put is lost.
fn lose_a_fresh_write(history: &mut KvHistory, final_reader: u64) -> Option<String> {
    let operations = history.operations().ok()?;
    let read = operations.iter().find(|o| {
        o.client == final_reader
            && o.op.key().starts_with(FRESH_PREFIX)
            && matches!(o.result(), Some(KvOutput::Value(Some(_))))
    })?;
    set_result(history, read.client, read.id, None);
    Some(format!("the final read of {} finds nothing", read.op.key()))
}

/// The final read of a shared key returns a value its writer's own later acknowledged
/// update overwrote (a causally later write lost).
fn lose_a_causally_later_write(history: &mut KvHistory, final_reader: u64) -> Option<String> {
    let operations = history.operations().ok()?;
    for read in operations
        .iter()
        .filter(|o| o.client == final_reader && !o.op.key().starts_with(FRESH_PREFIX))
    {
        let key = read.op.key();
        let own_pair = operations.iter().find_map(|newer| {
            if newer.op.key() != key || acknowledged_value(newer).is_none() {
                return None;
            }
            operations
                .iter()
                .find(|older| {
                    older.client == newer.client
                        && older.id < newer.id
                        && older.op.key() == key
                        && acknowledged_value(older).is_some()
                })
                .map(|older| (older, newer))
        });
        if let Some((older, newer)) = own_pair {
            let stale = acknowledged_value(older).map(str::to_owned);
            let planted = format!(
                "the final read of {key} returns {stale:?} of {older}, which the same client \
                 overwrote with {newer}"
            );
            set_result(history, read.client, read.id, stale.as_deref());
            return Some(planted);
        }
    }
    None
}

/// Plants with `plant` into a copy of `report`'s history and asserts that the verdict for
/// `model` rejects it, with `expected` in its reason.
fn assert_rejected(
    report: &RunReport,
    model: Model,
    plant: fn(&mut KvHistory, u64) -> Option<String>,
    expected: &str,
) {
    let mut history = report.history.clone();
    let planted = plant(&mut history, report.final_reader)
        .expect("the recorded history offers a place for the plant");
    match judge(model, &history, report.final_reader) {
        Ok(verdict) => panic!("planted ({planted}) but judged fine: {verdict}"),
        Err(why) => {
            eprintln!("planted: {planted}\nrejected: {}", first_lines(&why, 6));
            assert!(why.contains(expected), "{expected:?} not in:\n{why}");
        }
    }
}

fn first_lines(text: &str, n: usize) -> String {
    text.lines().take(n).collect::<Vec<_>>().join("\n")
}

#[test]
fn planted_anomalies_in_recorded_histories_are_rejected() {
    let passive = recorded(Strategy::Passive);
    assert!(judge(Model::Linearizable, &passive.history, passive.final_reader).is_ok());
    assert_rejected(
        &passive,
        Model::Linearizable,
        lose_a_shared_write,
        "acknowledged write lost",
    );
    assert_rejected(
        &passive,
        Model::Linearizable,
        lose_a_shared_write,
        "not shown linearizable",
    );
    assert_rejected(
        &passive,
        Model::Linearizable,
        plant_a_stale_read,
        "not shown linearizable",
    );
    assert_rejected(
        &passive,
        Model::Linearizable,
        lose_a_fresh_write,
        "acknowledged write of a fresh key read back as None",
    );

    let backup_reads = recorded(Strategy::PassiveBackupReads);
    assert_rejected(
        &backup_reads,
        Model::Sequential,
        lose_a_shared_write,
        "the updates with the final reads is not shown linearizable",
    );
    assert_rejected(
        &backup_reads,
        Model::Sequential,
        lose_a_fresh_write,
        "acknowledged write of a fresh key",
    );

    let gossip = recorded(Strategy::Gossip);
    assert_rejected(
        &gossip,
        Model::Causal,
        lose_a_causally_later_write,
        "read returns an overwritten value",
    );
    assert_rejected(
        &gossip,
        Model::Causal,
        lose_a_fresh_write,
        "acknowledged write of a fresh key",
    );
}

#[test]
fn a_run_with_a_planted_lost_write_fails_and_keeps_its_outputs() {
    let config = RunConfig {
        duration: Duration::from_secs(2),
        faults: false,
        plant: Some(lose_a_shared_write),
        ..RunConfig::new(Strategy::Passive, 3, 11)
    };
    let failure = std::panic::catch_unwind(|| run(&config)).expect_err("the planted run fails");
    let message = crate::group::panic_text(&failure);
    assert!(message.contains("acknowledged write lost"), "{message}");
    assert!(message.contains("NEMESIS_SEED=11"), "{message}");
    let kept = message
        .rsplit("kept in ")
        .next()
        .map(|d| std::path::PathBuf::from(d.trim()))
        .expect("the message names the directory");
    for file in [
        "history.jsonl",
        "nemesis.jsonl",
        "verdict.txt",
        "node1-run1.log",
        "node3-run1.stdout",
    ] {
        assert!(
            kept.join(file).is_file(),
            "{} in {message}",
            kept.join(file).display()
        );
    }
    let history = std::fs::read_to_string(kept.join("history.jsonl")).unwrap();
    let parsed = KvHistory::from_json_lines(&history).expect("the kept history parses");
    assert!(judge(Model::Linearizable, &parsed, config_final_reader(&parsed)).is_err());
    // The failure was the point: do not leave it among real ones.
    let verdict = std::fs::read_to_string(kept.join("verdict.txt")).unwrap();
    let data = verdict
        .lines()
        .find_map(|l| l.strip_prefix("configurations and data directories: "))
        .and_then(|l| l.strip_suffix(" (kept)"))
        .expect("the verdict names the data directories");
    assert!(std::path::Path::new(data).is_dir(), "{data}");
    std::fs::remove_dir_all(data).unwrap();
    std::fs::remove_dir_all(&kept).unwrap();
}

/// The final reader of a kept history: the client of its last event.
fn config_final_reader(history: &KvHistory) -> u64 {
    history.events.last().expect("events").client
}
