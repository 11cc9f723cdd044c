//! The metrics endpoint: scraped over HTTP from running nodes, its figures move with what
//! the cluster does (views, deliveries, requests and their latency).

use crate::metrics_addr;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use viewsync_tests::process::{run_viewsync, timing_shared, Cluster, CONVERGE_TIMEOUT};

/// `method path` over HTTP/1.1: the status code and the body.
fn http(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect to the metrics endpoint");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(stream, "{method} {path} HTTP/1.1\r\nHost: test\r\n\r\n").expect("request");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("answer");
    let (head, body) = answer.split_once("\r\n\r\n").expect("HTTP answer");
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status code in {head}"));
    (code, body.to_string())
}

/// One scrape.
fn scrape(addr: SocketAddr) -> String {
    let (code, body) = http(addr, "GET", "/metrics");
    assert_eq!(code, 200, "{body}");
    body
}

/// The value of the sample named exactly `sample` (labels included), if present.
fn value(text: &str, sample: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
}

fn must(text: &str, sample: &str) -> f64 {
    value(text, sample).unwrap_or_else(|| panic!("no sample {sample} in:\n{text}"))
}

/// Scrapes until `done` holds for the value of `sample`; panics after `timeout`.
fn until(addr: SocketAddr, sample: &str, what: &str, done: impl Fn(f64) -> bool) -> String {
    let deadline = Instant::now() + CONVERGE_TIMEOUT * 2;
    loop {
        let text = scrape(addr);
        if value(&text, sample).is_some_and(&done) {
            return text;
        }
        if Instant::now() >= deadline {
            panic!("{sample} never {what}:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Three nodes with the log service: views, members and deliveries show, and move.
#[test]
fn metrics_are_scraped_over_http_and_move_with_the_cluster() {
    let _shared = timing_shared();
    let mut cluster = Cluster::new();
    let extra = "metrics_listen = \"127.0.0.1:0\"\n";
    for id in 1..=3 {
        let seeds = cluster.addrs();
        cluster.launch(id, &seeds, extra);
    }
    cluster.wait_converged(&[1, 2, 3], CONVERGE_TIMEOUT);
    let addr = metrics_addr(cluster.node(1));
    let text = until(addr, "viewsync_group_members{group=\"demo\"}", "3", |v| {
        v == 3.0
    });
    let views = must(&text, "viewsync_views_installed_total");
    assert!(views >= 1.0, "{text}");
    assert_eq!(must(&text, "viewsync_group_blocked{group=\"demo\"}"), 0.0);
    assert_eq!(must(&text, "viewsync_group_member{group=\"demo\"}"), 1.0);
    assert!(
        text.contains("# TYPE viewsync_frames_refused counter"),
        "{text}"
    );
    assert!(text.ends_with("# EOF\n"), "{text}");
    let delivered = must(&text, "viewsync_delivered_total");

    // Deliveries after sends.
    let key = cluster.key_file.display().to_string();
    let via = cluster.addr(2).to_string();
    for i in 0..5 {
        let out = run_viewsync(
            &[
                "send",
                "demo",
                &format!("m{i}"),
                "--via",
                &via,
                "--key-file",
                &key,
            ],
            Duration::from_secs(30),
        );
        assert!(out.status.success(), "{out:?}");
    }
    until(addr, "viewsync_delivered_total", "grew by 5", |v| {
        v >= delivered + 5.0
    });

    // A view change after a kill.
    cluster.node(3).sigkill();
    let text = until(addr, "viewsync_group_members{group=\"demo\"}", "2", |v| {
        v == 2.0
    });
    assert!(
        must(&text, "viewsync_views_installed_total") > views,
        "{text}"
    );

    // The endpoint answers only GET of /metrics (or /).
    assert_eq!(http(addr, "GET", "/nothing").0, 404);
    assert_eq!(http(addr, "POST", "/metrics").0, 405);
    assert_eq!(http(addr, "GET", "/").0, 200);
}

/// A replicated service: request latency histograms per strategy, and its position.
#[test]
fn request_latency_and_the_service_position_are_measured() {
    let _shared = timing_shared();
    let mut cluster = Cluster::new();
    let extra = "metrics_listen = \"127.0.0.1:0\"\n[service]\nstrategy = \"active\"\ndurability = \"memory\"\n";
    cluster.launch(1, &[], extra);
    cluster.wait_converged(&[1], CONVERGE_TIMEOUT);
    let addr = metrics_addr(cluster.node(1));
    let key = cluster.key_file.display().to_string();
    let via = cluster.addr(1).to_string();
    for i in 0..3 {
        let out = run_viewsync(
            &[
                "client",
                "--group",
                "demo",
                "--via",
                &via,
                "--key-file",
                &key,
                "put",
                &format!("k{i}"),
                "v",
            ],
            Duration::from_secs(60),
        );
        assert!(out.status.success(), "{out:?}");
    }
    let labels = "{group=\"demo\",strategy=\"active\"}";
    let text = until(
        addr,
        &format!("viewsync_request_latency_seconds_count{labels}"),
        "counted 3",
        |v| v >= 3.0,
    );
    let sum = must(
        &text,
        &format!("viewsync_request_latency_seconds_sum{labels}"),
    );
    assert!(sum > 0.0, "{text}");
    assert!(
        must(&text, &format!("viewsync_service_applied_position{labels}")) >= 3.0,
        "{text}"
    );
    assert!(
        must(&text, "viewsync_requests_answered_total") >= 3.0,
        "{text}"
    );
}
