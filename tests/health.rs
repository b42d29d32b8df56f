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
    let print_signals = fixture("print_signals");
    serving_app(extra, &[&print_signals, "--exit-on", "TERM"], "ready")
}

/// usher as PID 1 running `command` with `extra` options, once the command said `ready_line`.
fn serving_app(extra: &[&str], command: &[&str], ready_line: &str) -> (Usher, u16) {
    let env = [("USHER_HEALTH_ADDR", "127.0.0.1:0")];
    let mut args = vec!["-v"];
    args.extend(extra);
    args.push("--");
    args.extend(command);
    let mut usher = Usher::pid1_with_env(&env, &args);
    let line = usher.stderr_containing("health server listening on");
    let port = announced_port(&line);
    usher.line_starting(ready_line);
    (usher, port)
}

/// The port in usher's `health server listening on ADDR` event, raw or JSON.
fn announced_port(line: &str) -> u16 {
    let (_, addr) = line.split_once("health server listening on ").unwrap();
    let addr = addr.trim_end().trim_end_matches(['"', '}']);
    addr.rsplit(':').next().unwrap().parse().unwrap()
}

/// A free port below the kernel's ephemeral range (32768 and up by default), so that no
/// outgoing connection of a test running alongside can take it between this check and the
/// app's bind.
fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let start = (std::process::id() % 1000) as u16 * 10;
    loop {
        let port = 20_000 + (start + NEXT.fetch_add(1, Ordering::Relaxed)) % 12_000;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn ready_body(port: u16) -> (u16, serde_json::Value) {
    let (status, body) = get(port, "GET", "/ready");
    (status, serde_json::from_str(&body).unwrap())
}

/// Starts not ready; `make_ready` and `make_unready` switch the app, twice over, and /ready
/// follows each time (usher announces each change; the body says why it is not ready).
fn readiness_follows_the_app(
    source: &str,
    command: &[&str],
    make_ready: &dyn Fn(&mut Usher),
    make_unready: &dyn Fn(&mut Usher),
) -> Usher {
    let (mut usher, port) = serving_app(&["--ready-when", source], command, "waiting");
    let (status, body) = ready_body(port);
    assert_eq!(status, 503, "{source}: {body}");
    assert_eq!(body["ready"], false, "{body}");
    assert_eq!(get(port, "GET", "/health").0, 200, "alive though not ready");
    for round in 0..2 {
        make_ready(&mut usher);
        usher.stderr_containing("child is ready");
        let (status, body) = ready_body(port);
        assert_eq!(status, 200, "{source}, round {round}: {body}");
        if source == "notify" {
            assert_eq!(body["detail"], "serving requests", "{body}");
        }
        make_unready(&mut usher);
        usher.stderr_containing("child is not ready any more");
        let (status, body) = ready_body(port);
        assert_eq!(status, 503, "{source}, round {round}: {body}");
        let expected = match source {
            "notify" => "shutting down",
            s if s.starts_with("http") => "status 503",
            s if s.starts_with("tcp") => "refused",
            _ => "No such file",
        };
        let detail = body["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(expected), "{source}: {body}");
    }
    usher.signal(libc::SIGTERM);
    assert_eq!(usher.wait(), 0);
    usher
}

fn signal_and_wait(signo: i32, line: &'static str) -> impl Fn(&mut Usher) {
    move |usher: &mut Usher| {
        usher.signal(signo);
        usher.line_starting(line);
    }
}

#[test]
fn ready_when_tcp_follows_the_port() {
    if !require_root("ready_when_tcp_follows_the_port") {
        return;
    }
    let port = free_port().to_string();
    readiness_follows_the_app(
        &format!("tcp:{port}"),
        &[&fixture("ready_app"), "tcp", &port],
        &signal_and_wait(libc::SIGUSR1, "now ready"),
        &signal_and_wait(libc::SIGUSR2, "now unready"),
    );
}

#[test]
fn ready_when_http_follows_the_status() {
    if !require_root("ready_when_http_follows_the_status") {
        return;
    }
    let port = free_port().to_string();
    readiness_follows_the_app(
        &format!("http://127.0.0.1:{port}/ready"),
        &[&fixture("ready_app"), "http", &port],
        &signal_and_wait(libc::SIGUSR1, "now ready"),
        &signal_and_wait(libc::SIGUSR2, "now unready"),
    );
}

#[test]
fn ready_when_file_follows_the_file() {
    if !require_root("ready_when_file_follows_the_file") {
        return;
    }
    let dir = TempDir::new("ready-file");
    let path = dir.dir.join("ready");
    let print_signals = fixture("print_signals");
    let (mut usher, port) = serving_app(
        &["--ready-when", &format!("file:{}", path.display())],
        &[&print_signals, "--exit-on", "TERM"],
        "ready",
    );
    assert_eq!(ready_body(port).0, 503);
    for _ in 0..2 {
        std::fs::write(&path, b"").unwrap();
        usher.stderr_containing("child is ready (file)");
        assert_eq!(ready_body(port).0, 200);
        std::fs::remove_file(&path).unwrap();
        usher.stderr_containing("child is not ready any more (file)");
        let (status, body) = ready_body(port);
        assert_eq!(status, 503);
        assert!(
            body["detail"].as_str().unwrap().contains("No such file"),
            "{body}"
        );
    }
    usher.signal(libc::SIGTERM);
    assert_eq!(usher.wait(), 0);
}

#[test]
fn ready_when_notify_follows_sd_notify() {
    if !require_root("ready_when_notify_follows_sd_notify") {
        return;
    }
    readiness_follows_the_app(
        "notify",
        &[&fixture("ready_app"), "notify"],
        &signal_and_wait(libc::SIGUSR1, "now ready"),
        &signal_and_wait(libc::SIGUSR2, "now unready"),
    );
}

/// The counters in /metrics count what really happened: records, bytes and partial records of
/// the child's output, and the signals forwarded.
#[test]
fn metrics_count_logs_and_signals() {
    if !require_root("metrics_count_logs_and_signals") {
        return;
    }
    let script = format!(
        "head -c 3000 /dev/zero | tr '\\0' x; echo; echo oops >&2; exec {} --exit-on TERM",
        fixture("print_signals")
    );
    let (mut usher, port) = serving_app(
        &["--log-format", "json", "--log-max-record", "1024"],
        &["sh", "-c", &script],
        "{",
    );
    // print_signals says `ready` last: its record on stdout means the rest were counted.
    while !usher.next_line().contains(r#""msg":"ready "#) {}
    usher.stderr_containing("oops");
    usher.signal(libc::SIGHUP);
    usher.line_starting("{");
    let (_, metrics) = get(port, "GET", "/metrics");
    let value = |series: &str| -> u64 {
        let line = metrics
            .lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
            .unwrap_or_else(|| panic!("no {series} in:\n{metrics}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let partial = value(r#"usher_log_partial_records_total{stream="stdout"}"#);
    assert!(partial >= 2, "3000 bytes in 1024-byte records: {partial}");
    assert_eq!(
        value(r#"usher_log_records_total{stream="stdout"}"#),
        partial + 1 + 2, // the last piece, `ready`, the line about SIGHUP
    );
    assert_eq!(value(r#"usher_log_records_total{stream="stderr"}"#), 1);
    assert_eq!(value(r#"usher_log_bytes_total{stream="stderr"}"#), 5);
    assert_eq!(
        value(r#"usher_signals_forwarded_total{signal="SIGHUP"}"#),
        1
    );
    assert_eq!(value("usher_child_up"), 1);
    assert_eq!(value("usher_child_starts_total"), 1);
    usher.signal(libc::SIGTERM);
    assert_eq!(usher.wait(), 0);
}

/// `/metrics` is what Prometheus accepts: `promtool check metrics` (Debian's prometheus
/// package; `.ci/run` fetches it and sets PROMTOOL).
#[test]
fn metrics_pass_promtool() {
    let promtool = std::env::var("PROMTOOL").unwrap_or_else(|_| "promtool".to_string());
    let found = std::process::Command::new(&promtool)
        .arg("--version")
        .output()
        .is_ok();
    let needs = format!("promtool ({promtool:?} not found; .ci/run installs it, sets PROMTOOL)");
    if !require("metrics_pass_promtool", &needs, found) || !require_root("metrics_pass_promtool") {
        return;
    }
    let (mut usher, port) = serving(&[]);
    usher.signal(libc::SIGHUP);
    usher.line_starting("signal");
    let (status, metrics) = get(port, "GET", "/metrics");
    assert_eq!(status, 200);
    // The container's figures are there as far as this machine's cgroups give them; the
    // app's always (/proc): promtool checks them with the rest.
    for family in [
        "usher_app_processes",
        "usher_app_cpu_seconds_total",
        "usher_app_resident_memory_bytes",
        "usher_app_threads",
        "usher_app_open_fds",
    ] {
        assert!(
            metrics.contains(&format!("\n# TYPE {family} ")),
            "{family}: {metrics}"
        );
    }
    let mut check = std::process::Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    check
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let output = check.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool: {}{}\n{metrics}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    usher.signal(libc::SIGTERM);
    assert_eq!(usher.wait(), 0);
}

/// The app's figures in /metrics are those of its processes, as /proc shows them from outside
/// usher's namespace: a main child and the grandchild it forked, each with a thread of its own.
#[test]
fn metrics_count_the_app_s_processes() {
    if !require_root("metrics_count_the_app_s_processes") {
        return;
    }
    // Static fixtures that say when they are ready: no loader still opening files.
    let print_signals = fixture("print_signals");
    let command = [&print_signals, "--grandchild", "--exit-on", "TERM"];
    let (mut usher, port) = serving_app(&[], &command, "ready");
    let main = children_of(usher.pid());
    let app: Vec<i32> = main.iter().copied().chain(children_of(main[0])).collect();
    let threads: u64 = app
        .iter()
        .map(|pid| {
            status_field(*pid, "Threads")
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    let fds: usize = app
        .iter()
        .map(|pid| {
            std::fs::read_dir(format!("/proc/{pid}/fd"))
                .unwrap()
                .count()
        })
        .sum();
    let (status, metrics) = get(port, "GET", "/metrics");
    assert_eq!(status, 200);
    let value = |series: &str| -> f64 {
        let line = metrics
            .lines()
            .find(|l| {
                l.strip_prefix(series)
                    .is_some_and(|rest| rest.starts_with(' '))
            })
            .unwrap_or_else(|| panic!("no {series} in:\n{metrics}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert_eq!(app.len(), 2, "{app:?}");
    assert_eq!(value("usher_app_processes"), 2.0, "{metrics}");
    assert_eq!(value("usher_app_threads"), threads as f64, "{metrics}");
    assert_eq!(value("usher_app_open_fds"), fds as f64, "{metrics}");
    assert!(value("usher_app_resident_memory_bytes") > 0.0, "{metrics}");
    assert!(value("usher_app_cpu_seconds_total") >= 0.0, "{metrics}");
    usher.signal(libc::SIGTERM);
    assert_eq!(usher.wait(), 0);
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
    // HEAD: GET's status and headers (Content-Length included), and no body.
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .write_all(b"HEAD /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{answer}");
    let length = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(str::to_string)
        })
        .unwrap();
    assert!(length.parse::<usize>().unwrap() > 20, "{head}");
    assert_eq!(body, "");
    let (status, metrics) = get(port, "GET", "/metrics");
    assert_eq!(status, 200);
    assert!(metrics.contains("\nusher_child_up 1\n"), "{metrics}");
    assert_eq!(get(port, "GET", "/nope").0, 404);
    assert_eq!(get(port, "POST", "/health").0, 405);
    assert_eq!(get(port, "HEAD", "/metrics").0, 200);
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
    let port = loop {
        let line = lines.next().unwrap().unwrap();
        if line.contains("health server listening on ") {
            break announced_port(&line);
        }
    };
    for _ in 0..20 {
        assert_eq!(get(port, "GET", "/health").0, 200);
    }
    child.kill().unwrap();
    child.wait().unwrap();
}
