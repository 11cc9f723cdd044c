//! A `data_dir` the node cannot use is a clear start error, not a panic: a path that is a
//! file, a directory it cannot write in, a corrupt incarnation file. The node exits with code
//! 1 and the reason, before it listens; a corrupt file is left as it was.

use std::ffi::OsStr;
use std::time::Duration;
use viewsync_tests::process::{config_text, new_key_hex, run_viewsync, TempDir};

/// Runs `viewsync node` with `data_dir = <data_dir>`; returns (exit code, stderr).
fn start_with(dir: &TempDir, name: &str, data_dir: &str) -> (Option<i32>, String) {
    let key = dir.write("cluster.key", &new_key_hex());
    let extra = format!("data_dir = {data_dir:?}\n");
    let config = dir.write(name, &config_text(1, &[], Some(&key), &extra));
    let args = [
        OsStr::new("node"),
        OsStr::new("--config"),
        config.as_os_str(),
    ];
    let out = run_viewsync(&args, Duration::from_secs(10));
    assert!(
        !out.stdout.contains("listening"),
        "{name}: the node must not start: {}",
        out.stdout
    );
    assert!(
        !out.stderr.contains("panicked"),
        "{name}: a start error, not a panic: {}",
        out.stderr
    );
    (out.status.code(), out.stderr)
}

#[test]
fn an_unusable_data_dir_is_a_start_error() {
    let dir = TempDir::new("data-dir");

    dir.write("a-file", "not a directory\n");
    let (code, stderr) = start_with(&dir, "file.toml", "a-file");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("data_dir") && stderr.contains("a-file"),
        "{stderr}"
    );

    let (code, stderr) = start_with(&dir, "below-file.toml", "a-file/data");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("a-file/data"), "{stderr}");

    // A directory no one can create files in, whatever the user (root included).
    let (code, stderr) = start_with(&dir, "read-only.toml", "/proc/self");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot write") && stderr.contains("incarnation"),
        "{stderr}"
    );

    std::fs::create_dir_all(dir.path().join("corrupt")).expect("mkdir");
    let corrupt = dir.write("corrupt/incarnation", "yesterday\n");
    let (code, stderr) = start_with(&dir, "corrupt.toml", "corrupt");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("corrupt") && stderr.contains(&corrupt.display().to_string()),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(&corrupt).expect("still there"),
        "yesterday\n"
    );
}
