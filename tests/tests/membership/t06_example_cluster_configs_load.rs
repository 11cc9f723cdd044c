//! The example cluster in `examples/cluster` loads (it listens on fixed ports, so it is parsed
//! here rather than run), each node with a data directory of its own under
//! `examples/cluster/data`, and the binary refuses a configuration with an unknown key (at the top, in a
//! node table, or in the services crate's `[service]`).

use std::ffi::OsStr;
use std::path::PathBuf;
use std::time::Duration;
use viewsync_services::config::{ServiceFileConfig, Strategy};
use viewsync_tests::process::{run_viewsync, TempDir};

fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/cluster")
}

#[test]
fn the_example_cluster_configs_load() {
    let dir = examples_dir();
    let ports = [7701u16, 7702, 7703];
    for (i, port) in ports.iter().enumerate() {
        let id = i as u64 + 1;
        let path = dir.join(format!("node{id}.toml"));
        let file = ServiceFileConfig::load(&path)
            .unwrap_or_else(|e| panic!("{} does not load: {e}", path.display()));
        assert_eq!(
            file.service.strategy,
            Strategy::Passive,
            "{}",
            path.display()
        );
        let config = file.node;
        assert_eq!(config.node_id.0, id, "{}", path.display());
        assert!(config.listen.ip().is_loopback(), "{}", path.display());
        assert_eq!(config.listen.port(), *port, "{}", path.display());
        let groups: Vec<&str> = config.groups.iter().map(|g| g.as_str()).collect();
        assert_eq!(groups, ["demo"], "{}", path.display());
        assert!(
            config.key.is_some(),
            "{}: the key file loads",
            path.display()
        );
        assert_eq!(
            config.settings.membership.bootstrap,
            id == 1,
            "{}: exactly node 1 founds the group",
            path.display()
        );
        assert_eq!(
            config.data_dir,
            Some(dir.join(format!("data/node{id}"))),
            "{}: a data dir of its own, next to the file",
            path.display()
        );
        let mut seed_ports: Vec<u16> = config.seeds.iter().map(|s| s.port()).collect();
        seed_ports.sort_unstable();
        let others: Vec<u16> = ports.iter().copied().filter(|p| p != port).collect();
        assert_eq!(
            seed_ports,
            others,
            "{}: seeds are the other two",
            path.display()
        );
    }
}

/// Copies `node1.toml` and its key into a temporary directory with `edit` applied, runs
/// `viewsync node --config` on it, and returns (exit code, stderr).
fn run_edited_example(edit: impl Fn(&str) -> String) -> (Option<i32>, String) {
    let dir = TempDir::new("example-config");
    let original = std::fs::read_to_string(examples_dir().join("node1.toml")).expect("node1.toml");
    let key = std::fs::read_to_string(examples_dir().join("cluster.key")).expect("cluster.key");
    dir.write("cluster.key", &key);
    let config = dir.write("node1.toml", &edit(&original));
    // The configuration is refused before anything binds the example's fixed port.
    let args = [
        OsStr::new("node"),
        OsStr::new("--config"),
        config.as_os_str(),
    ];
    let out = run_viewsync(&args, Duration::from_secs(10));
    (out.status.code(), out.stderr)
}

#[test]
fn an_unknown_top_level_key_is_refused_by_name() {
    let (code, stderr) = run_edited_example(|text| format!("gossip_fanout = 3\n{text}"));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("gossip_fanout"), "{stderr}");
}

#[test]
fn an_unknown_key_in_a_table_is_refused_by_name() {
    let (code, stderr) = run_edited_example(|text| {
        text.replace(
            "[failure_detector]\n",
            "[failure_detector]\nheartbeat_ms = 5\n",
        )
    });
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("failure_detector.heartbeat_ms"), "{stderr}");
}

#[test]
fn an_unknown_key_in_the_service_section_is_refused_by_name() {
    // The examples end with `[service]`, so an appended key lands in it.
    let (code, stderr) = run_edited_example(|text| format!("{text}\nreplicas = 3\n"));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("service.replicas"), "{stderr}");
}
