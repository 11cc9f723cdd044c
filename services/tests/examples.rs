//! Runs every example (`services/examples/`) as a user would, and checks it succeeded and
//! printed what it demonstrates. `cargo test` builds the examples before running tests (in
//! `target/<profile>/examples/`); run alone (`cargo test -p viewsync-services --test
//! examples`) it builds any that are missing first, but runs those already there as they
//! are: after changing an example, run `cargo build --release --examples` (or the whole
//! `cargo test`) first. All of them together run in about 7 to 15 s.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Longest an example may run on a loaded machine (they take 0.5 to 5 s).
const EXAMPLE_TIMEOUT: Duration = Duration::from_secs(180);

/// The built example `name`, built now if missing.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test's path");
    // target/<profile>/deps/examples-<hash> -> target/<profile>/examples/<name>
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test runs from target/<profile>/deps");
    let path = profile_dir.join("examples").join(name);
    if !path.exists() {
        let release = profile_dir.file_name().is_some_and(|p| p == "release");
        let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        build.args([
            "build",
            "--locked",
            "-p",
            "viewsync-services",
            "--example",
            name,
        ]);
        if release {
            build.arg("--release");
        }
        let status = build.status().expect("cargo runs");
        assert!(status.success(), "building example {name} failed");
    }
    path
}

/// Runs example `name` with `args`; returns its standard output after checking it exited 0.
fn run(name: &str, args: &[&str]) -> String {
    let path = example(name);
    let started = Instant::now();
    let mut child = Command::new(&path)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
    // Read both pipes in threads so a chatty example never blocks on a full pipe.
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut text).ok();
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut text).ok();
        text
    });
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > EXAMPLE_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("example {name} {args:?} ran longer than {EXAMPLE_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (stdout, stderr) = (out.join().expect("reader"), err.join().expect("reader"));
    assert!(
        status.success(),
        "example {name} {args:?} failed ({status}):\n{stdout}\n{stderr}"
    );
    eprintln!(
        "example {name} {args:?}: ok in {} ms",
        started.elapsed().as_millis()
    );
    stdout
}

fn assert_printed(stdout: &str, needles: &[&str]) {
    for needle in needles {
        assert!(stdout.contains(needle), "expected {needle:?} in:\n{stdout}");
    }
}

#[test]
fn counter_members_agree_after_a_state_transfer() {
    let out = run("counter", &[]);
    assert_printed(
        &out,
        &[
            "[member 3] state transfer: count 165",
            "all three members count 465",
        ],
    );
}

#[test]
fn chat_members_see_the_same_messages_and_views() {
    let out = run("chat", &[]);
    assert_printed(
        &out,
        &[
            "[dave] * view",
            "bob leaves",
            "[dave] <carol> bye bob",
            "every two members saw the same members and the same messages",
        ],
    );
}

#[test]
fn kv_runs_the_same_code_under_every_strategy() {
    for strategy in [
        "passive",
        "passive-backup-reads",
        "active",
        "active-local-reads",
        "active-byzantine",
        "gossip",
        "naive",
    ] {
        let out = run("kv", &["--strategy", strategy]);
        assert_printed(
            &out,
            &[
                "get key19 -> Value(Some(\"value19\"))",
                "still answered all 20 reads as written",
                &format!("strategy {strategy}: every answer was the expected one"),
            ],
        );
    }
}

#[test]
fn bank_shows_the_anomaly_under_naive_and_not_under_passive() {
    let out = run("bank", &[]);
    assert_printed(
        &out,
        &[
            "[naive]   ANOMALY",
            "[naive] the linearizability checker, over the",
            "NOT linearizable",
            "passive: no anomaly in 5 rounds, and the checker accepts the history",
        ],
    );
    assert!(!out.contains("[passive]   ANOMALY"), "{out}");
}

#[test]
fn diary_reconciles_the_laptop_after_offline_work() {
    let out = run("diary", &[]);
    assert_printed(
        &out,
        &[
            "[laptop] wrote fri-15=train to Leeds",
            "[laptop, offline] diary:",
            "both sides hold all 6 entries",
        ],
    );
}
