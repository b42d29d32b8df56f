//! The health server, asked over real HTTP on loopback, with usher as PID 1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use support::*;

/// One request over a fresh connection: (status, body).
fn request(port: u16, raw: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    stream.write_all(raw.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn get(port: u16, method: &str, path: &str) -> (u16, String) {
    request(
        port,
        &format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    )
}

/// usher as PID 1 serving on a free loopback port; returns it and the port it announced.
fn serving(extra: &[&str]) -> (Usher, u16) {
    let env = [("USHER_HEALTH_ADDR", "127.0.0.1:0")];
    let print_signals = fixture("print_signals");
    let mut args = vec!["-v"];
    args.extend(extra);
    args.extend(["--", print_signals.as_str(), "--exit-on", "TERM"]);
    let mut usher = Usher::pid1_with_env(&env, &args);
    let line = usher.stderr_containing("health server listening on");
    let port = line.rsplit(':').next().unwrap().trim().parse().unwrap();
    usher.line_starting("ready");
    (usher, port)
}

#[test]
fn routes_answer_as_documented() {
    if !require_root("routes_answer_as_documented") {
        return;
    }
    let (mut usher, port) = serving(&[]);
    for path in ["/health", "/healthz", "/livez", "/ready", "/readyz"] {
        let (status, body) = get(port, "GET", path);
        assert_eq!(status, 200, "{path}: {body}");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["status"], "ok");
        assert!(body["child_pid"].as_i64().unwrap() > 0);
    }
    let (status, body) = get(port, "HEAD", "/health");
    assert_eq!((status, body.as_str()), (200, ""));
    let (status, metrics) = get(port, "GET", "/metrics");
    assert_eq!(status, 200);
    assert!(metrics.contains("\nusher_child_up 1\n"), "{metrics}");
    assert_eq!(get(port, "GET", "/nope").0, 404);
    assert_eq!(get(port, "POST", "/health").0, 405);
    assert_eq!(request(port, "NOT HTTP AT ALL\r\n\r\n").0, 400);
    usher.signal(libc::SIGTERM);
    assert_eq!(usher.wait(), 0);
}

/// `--drain`: /ready turns 503 at once while the child keeps running; the signal follows.
#[test]
fn drain_turns_ready_off_before_the_child_is_signalled() {
    if !require_root("drain_turns_ready_off_before_the_child_is_signalled") {
        return;
    }
    let (mut usher, port) = serving(&["--drain", "2s"]);
    let sent = Instant::now();
    usher.signal(libc::SIGTERM);
    usher.stderr_containing("draining");
    assert_eq!(get(port, "GET", "/ready").0, 503);
    assert_eq!(
        get(port, "GET", "/health").0,
        200,
        "the child still runs during the drain"
    );
    assert_eq!(usher.next_line(), format!("signal {}", libc::SIGTERM));
    assert!(
        sent.elapsed() >= Duration::from_secs(2),
        "{:?}",
        sent.elapsed()
    );
    assert_eq!(usher.wait(), 0);
}

/// 300 idle and half-sent connections cannot keep a probe from being answered.
#[test]
fn idle_connections_do_not_starve_a_probe() {
    if !require_root("idle_connections_do_not_starve_a_probe") {
        return;
    }
    let (mut usher, port) = serving(&[]);
    let mut idle = Vec::new();
    for i in 0..300 {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        if i % 2 == 0 {
            stream
                .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
                .unwrap(); // never finished
        }
        idle.push(stream);
    }
    let started = Instant::now();
    assert_eq!(get(port, "GET", "/health").0, 200);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "answered after {:?}",
        started.elapsed()
    );
    drop(idle);
    usher.signal(libc::SIGTERM);
    assert_eq!(usher.wait(), 0);
}

#[test]
fn a_port_in_use_is_a_configuration_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let output = usher_command()
        .args(["--health-addr", &addr, "--", "true"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with(&format!("usher: --health-addr {addr}")),
        "{stderr}"
    );
}

/// A flood of logs into a stdout nobody reads stalls the relay, never the health server.
#[test]
fn a_stalled_stdout_does_not_stall_health() {
    let mut child = usher_command()
        .env("USHER_HEALTH_ADDR", "127.0.0.1:0")
        .args([
            "-v",
            "--log-format",
            "json",
            "--",
            &fixture("flood"),
            "2000000",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // stdout is never read: the pipe fills and the child blocks behind usher.
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut lines = std::io::BufRead::lines(stderr);
    let port: u16 = loop {
        let line = lines.next().unwrap().unwrap();
        if let Some(at) = line.find("health server listening on ") {
            let addr = &line[at + "health server listening on ".len()..];
            break addr
                .trim_end_matches(['"', '}'])
                .rsplit(':')
                .next()
                .unwrap()
                .parse()
                .unwrap();
        }
    };
    for _ in 0..20 {
        assert_eq!(get(port, "GET", "/health").0, 200);
    }
    child.kill().unwrap();
    child.wait().unwrap();
}
