//! The fuzz targets' bodies ([`viewsync_tests::fuzz_bodies`]) on stable, for CI: each target
//! runs over the saved regression inputs (`fuzz/regressions/<target>/`) and then over seeded
//! random inputs, and must not panic. `cargo fuzz` (nightly, `fuzz/`) runs the same bodies
//! guided by coverage; see docs/TESTING.md, "Fuzzing".
//!
//! `FUZZ_CASES` (default 500) sets the random inputs per target, `FUZZ_SEED` (default 0) the
//! seed; a failure prints the seed, the case and the input in hex, and how to replay it.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use viewsync_tests::fuzz_bodies::{self, TARGETS};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} must be a number: {v}"))
        })
        .unwrap_or(default)
}

fn regressions(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/regressions")
        .join(target);
    let mut inputs: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .map(|p| {
                    let bytes = std::fs::read(&p).expect("a regression input");
                    (p, bytes)
                })
                .collect()
        })
        .unwrap_or_default();
    inputs.sort();
    inputs
}

fn run_target(name: &str) {
    let body = TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no fuzz target {name}"))
        .1;
    for (path, input) in regressions(name) {
        if catch_unwind(AssertUnwindSafe(|| body(&input))).is_err() {
            panic!(
                "fuzz target {name} panicked on the regression input {}",
                path.display()
            );
        }
    }
    let seed = env_u64("FUZZ_SEED", 0);
    let cases = env_u64("FUZZ_CASES", 500);
    // Each target its own stream, so adding one changes no other's inputs.
    let name_hash = name
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    let mut rng = StdRng::seed_from_u64(seed ^ name_hash);
    for case in 0..cases {
        let len = match rng.gen_range(0..4) {
            0 => rng.gen_range(0..16),
            1 | 2 => rng.gen_range(0..256),
            _ => rng.gen_range(0..4096),
        };
        let input: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        if catch_unwind(AssertUnwindSafe(|| body(&input))).is_err() {
            let hex: String = input.iter().map(|b| format!("{b:02x}")).collect();
            panic!(
                "fuzz target {name} panicked on case {case} of seed {seed}.\n\
                 Replay: FUZZ_SEED={seed} FUZZ_CASES={} cargo test --release -p viewsync-tests \
                 --test fuzz {name}\n\
                 Input ({len} bytes, hex; save it with `xxd -r -p` under \
                 fuzz/regressions/{name}/ to keep it as a regression case):\n{hex}",
                case + 1
            );
        }
    }
}

/// The valid messages the node-core targets damage come from a group that formed, multicast,
/// lost a member and changed its view: they hold the kinds each core handles, so the targets
/// reach past the decoder into the cores.
#[test]
fn the_templates_hold_every_core_s_messages() {
    let kinds: std::collections::BTreeSet<&str> = fuzz_bodies::templates()
        .iter()
        .map(|e| e.body.kind())
        .collect();
    println!("template kinds: {kinds:?}");
    for kind in [
        "heartbeat",
        "join_request",
        "prepare",
        "promise",
        "accept",
        "accepted",
        "install",
        "data",
        "ack",
        "members_request",
        "group_send",
        "request",
    ] {
        assert!(kinds.contains(kind), "no {kind} among {kinds:?}");
    }
}

macro_rules! targets {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                run_target(stringify!($name));
            }
        )*

        #[test]
        fn every_target_is_run_here() {
            let here = [$(stringify!($name)),*];
            let all: Vec<&str> = fuzz_bodies::TARGETS.iter().map(|(n, _)| *n).collect();
            assert_eq!(here.to_vec(), all);
        }
    };
}

targets!(
    frame_decoder,
    node_envelopes,
    membership_messages,
    multicast_messages,
    failure_detector,
    passive_replica,
    active_replica,
    gossip_replica,
    signed_replica,
    wal_reader,
    snapshot_reader,
    node_config,
    service_config,
);
