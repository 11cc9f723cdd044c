//! Mistakes a new user makes get an error naming the cause and the fix: `viewsync send`
//! without the cluster key (the member refused the unauthenticated frame: not "no member
//! reachable"), an address count that matches the addresses given, a missing key file
//! (`viewsync keygen` makes one), a host name in `--via` (resolved) or a malformed address
//! (IP:PORT or HOST:PORT expected), and a key file others can read (a warning at start
//! with the `chmod 600` to run, as ssh warns).

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;
use viewsync_tests::process::{run_viewsync, Cluster, CONVERGE_TIMEOUT, GROUP};

const WIDE_OPEN: &str = "readable by others than its owner";

fn chmod(path: &std::path::Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

#[test]
fn mistakes_get_errors_that_name_the_cause_and_the_fix() {
    let mut cluster = Cluster::new();
    let key = cluster.key_file.clone();
    // A key file readable by everyone (as git checks one out): the node starts, and warns.
    chmod(&key, 0o644);
    cluster.launch(1, &[], "");
    let warning = cluster
        .node(1)
        .wait_stderr(&[WIDE_OPEN], Duration::from_secs(5));
    assert!(warning.contains("chmod 600"), "{warning}");
    // Owner-only: no warning.
    chmod(&key, 0o600);
    let seeds = cluster.addrs();
    cluster.launch(2, &seeds, "");
    cluster.wait_converged(&[1, 2], CONVERGE_TIMEOUT);
    let log = cluster.node(2).stderr_lines().join("\n");
    assert!(
        !log.contains(WIDE_OPEN),
        "node 2 warned of a 0600 key: {log}"
    );

    let via = cluster.addr(1).to_string();
    let send = |args: &[&str]| {
        let mut all = vec!["send", GROUP, "hello"];
        all.extend_from_slice(args);
        run_viewsync(&all, Duration::from_secs(20))
    };

    // Without a key: the member was reached, and refused the frame for lack of a key.
    let out = send(&["--via", &via]);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        out.stderr.contains("without a key") && out.stderr.contains("--key-file"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("reachable"), "{}", out.stderr);

    // With the key and a host name: resolved, and sent.
    let port = cluster.addr(1).port();
    let by_name = format!("localhost:{port}");
    let key_arg = key.display().to_string();
    let out = send(&["--via", &by_name, "--key-file", &key_arg]);
    assert!(out.status.success(), "{out:?}");
    assert!(out.stdout.starts_with("sent group=demo"), "{out:?}");
    let out = run_viewsync(
        &["members", GROUP, "--via", &by_name],
        Duration::from_secs(10),
    );
    assert!(
        out.status.success(),
        "members --via localhost:PORT: {out:?}"
    );

    // One address given, one counted.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_addr = dead.local_addr().expect("addr").to_string();
    drop(dead);
    let out = send(&["--via", &dead_addr, "--key-file", &key_arg]);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        out.stderr.contains("(1 address(es) tried)"),
        "{}",
        out.stderr
    );

    // A malformed address: the expected forms are named.
    let out = send(&["--via", "127.0.0.1", "--key-file", &key_arg]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        out.stderr.contains("IP:PORT or HOST:PORT"),
        "{}",
        out.stderr
    );

    // A missing key file: `viewsync keygen` is suggested, for the CLI and for a node.
    let missing = cluster.dir.path().join("no-such.key");
    let missing_arg = missing.display().to_string();
    let out = send(&["--via", &via, "--key-file", &missing_arg]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stderr.contains("viewsync keygen"), "{}", out.stderr);
    let config = cluster.write_config(3, &[cluster.addr(1)], Some(&missing), "");
    let out = run_viewsync(
        &["node", "--config", &config.display().to_string()],
        Duration::from_secs(10),
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        out.stderr.contains("`key_file`") && out.stderr.contains("viewsync keygen"),
        "{}",
        out.stderr
    );
}
