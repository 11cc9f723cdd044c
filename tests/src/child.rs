//! One `viewsync node` child process, the part every harness shares: started with its output
//! piped and read by a thread per pipe (each line handed to the owner's callback the moment it
//! is read, with the `Instant` it was read at), signalled, waited for, and killed and reaped
//! on drop so that no node outlives its test, even one that panics.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

/// The log filter for nodes: `info` (tests read the WARN lines), or `VIEWSYNC_TEST_RUST_LOG`
/// to debug a test.
pub fn node_log_filter() -> String {
    std::env::var("VIEWSYNC_TEST_RUST_LOG").unwrap_or_else(|_| "info".to_string())
}

/// The `viewsync` binary: `target/<profile>/viewsync`, next to `deps/` where the test
/// executable is.
pub fn viewsync_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("the path of the test executable");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test executable lives in target/<profile>/deps/");
    let bin = profile_dir.join(format!("viewsync{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "{} not found: these tests run the real `viewsync` binary; build it first with \
         `cargo build --bin viewsync` (same profile as the tests)",
        bin.display()
    );
    note_if_stale(&bin);
    bin
}

/// Prints a note (shown with a failing test's output) if a source file of the binary is newer
/// than the binary: the test may then be running old code.
fn note_if_stale(bin: &Path) {
    fn newest(dir: &Path, newest_seen: &mut Option<(SystemTime, PathBuf)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                newest(&path, newest_seen);
            } else if let Ok(modified) = entry.metadata().and_then(|m| m.modified()) {
                if newest_seen.as_ref().is_none_or(|(t, _)| modified > *t) {
                    *newest_seen = Some((modified, path));
                }
            }
        }
    }
    let Ok(built) = std::fs::metadata(bin).and_then(|m| m.modified()) else {
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut newest_seen = None;
    for dir in ["middleware/src", "services/src"] {
        newest(&root.join(dir), &mut newest_seen);
    }
    if let Some((modified, path)) = newest_seen {
        if modified > built {
            eprintln!(
                "note: {} is newer than {}; run `cargo build --bin viewsync` to test the current code",
                path.display(),
                bin.display()
            );
        }
    }
}

/// Removes ANSI escape sequences (colours) from a log line.
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A running (or ended) `viewsync node` process.
pub struct NodeChild {
    child: Child,
    exit: Option<ExitStatus>,
    /// Stdout lines that came without the timestamp a node puts first.
    unstamped: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl NodeChild {
    /// Starts `viewsync node --config <config> <args>`. `on_stdout` gets each stdout line
    /// (without its newline and without the timestamp the node puts first: the tests parse
    /// the event itself; [`NodeChild::unstamped_lines`] counts lines that had none) and when
    /// it was read; `on_stderr` each log line, colours removed.
    pub fn spawn(
        config: &Path,
        args: &[String],
        on_stdout: impl FnMut(Instant, String) + Send + 'static,
        on_stderr: impl FnMut(String) + Send + 'static,
    ) -> NodeChild {
        NodeChild::spawn_in(None, config, args, on_stdout, on_stderr)
    }

    /// Like [`NodeChild::spawn`], inside the network namespace `netns` when given (`ip netns
    /// exec NETNS viewsync node ...`, which execs the node: the child is the node itself).
    pub fn spawn_in(
        netns: Option<&str>,
        config: &Path,
        args: &[String],
        mut on_stdout: impl FnMut(Instant, String) + Send + 'static,
        mut on_stderr: impl FnMut(String) + Send + 'static,
    ) -> NodeChild {
        let mut command = match netns {
            Some(netns) => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", netns]).arg(viewsync_bin());
                command
            }
            None => Command::new(viewsync_bin()),
        };
        let mut child = command
            .arg("node")
            .arg("--config")
            .arg(config)
            .args(args)
            .env("RUST_LOG", node_log_filter())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start viewsync node: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let unstamped = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let count_unstamped = unstamped.clone();
        thread::spawn(move || {
            // A flood prints some 10^5 lines a second: read in large chunks.
            let mut reader = BufReader::with_capacity(1 << 16, stdout);
            let mut buf = String::new();
            loop {
                buf.clear();
                match reader.read_line(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let (stamp, text) = viewsync_services::report::split_stamp(buf.trim_end());
                        if stamp.is_none() {
                            count_unstamped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        on_stdout(Instant::now(), text.to_string())
                    }
                }
            }
        });
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                on_stderr(strip_ansi(&line));
            }
        });
        NodeChild {
            child,
            exit: None,
            unstamped,
        }
    }

    /// Stdout lines read so far that did not start with a timestamp.
    pub fn unstamped_lines(&self) -> u64 {
        self.unstamped.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGKILL. Returns the instant just before the signal was sent.
    pub fn sigkill(&mut self) -> Instant {
        let at = Instant::now();
        // `Child::kill` is `kill(pid, SIGKILL)` on Unix (the workspace forbids `unsafe`, so
        // not libc directly).
        self.child.kill().expect("SIGKILL");
        at
    }

    /// Sends `signal` (`TERM`, `STOP`, `CONT`) with the `kill` utility: std has no safe API
    /// for other signals and the workspace forbids `unsafe`. Returns the instant just before
    /// the utility was started, so latencies measured from it are upper bounds.
    pub fn signal(&self, signal: &str) -> Instant {
        let at = Instant::now();
        let pid = self.pid();
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .unwrap_or_else(|e| panic!("cannot run `kill -{signal}`: {e}"));
        assert!(status.success(), "kill -{signal} {pid}: {status}");
        at
    }

    /// The exit status if the process has ended.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().ok().flatten();
        }
        self.exit
    }

    /// Waits up to `timeout` for the process to end; `None` if it still runs.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_exit() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Kills (SIGKILL ends a stopped process too) and reaps the process if it still runs.
    pub fn end(&mut self) {
        if self.try_exit().is_none() {
            let _ = self.child.kill();
            self.exit = self.child.wait().ok();
        }
    }
}

impl Drop for NodeChild {
    fn drop(&mut self) {
        self.end();
    }
}
