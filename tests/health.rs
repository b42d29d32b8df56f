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
    let value = |series: &str| sample_value(&metrics, series);
    assert_eq!(app.len(), 2, "{app:?}");
    assert_eq!(value("usher_app_processes"), 2.0, "{metrics}");
    assert_eq!(value("usher_app_threads"), threads as f64, "{metrics}");
    assert_eq!(value("usher_app_open_fds"), fds as f64, "{metrics}");
    assert!(value("usher_app_resident_memory_bytes") > 0.0, "{metrics}");
    assert!(value("usher_app_cpu_seconds_total") >= 0.0, "{metrics}");
    usher.signal(libc::SIGTERM);
    assert_eq!(usher.wait(), 0);
}

/// The value of the unlabelled `series` in a /metrics body.
fn sample_value(metrics: &str, series: &str) -> f64 {
    let line = metrics
        .lines()
        .find(|l| {
            l.strip_prefix(series)
                .is_some_and(|rest| rest.starts_with(' '))
        })
        .unwrap_or_else(|| panic!("no {series} in:\n{metrics}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

/// The app's resident memory is its VmRSS: an app holding 16 MiB, idle, shows what its
/// /proc/PID/status says (the `rss` of /proc/PID/stat lags by what each CPU has not folded in
/// yet, often by a hundred kB or more).
#[test]
fn metrics_resident_memory_is_the_app_s_vm_rss() {
    if !require_root("metrics_resident_memory_is_the_app_s_vm_rss") {
        return;
    }
    let hog = fixture("hog");
    let (mut usher, port) = serving_app(&[], &[&hog, "hold", "16"], "holding 16 MiB");
    let app = children_of(usher.pid());
    assert_eq!(app.len(), 1, "{app:?}");
    let vm_rss = status_field(app[0], "VmRSS").unwrap();
    let kib: f64 = vm_rss.strip_suffix(" kB").unwrap().parse().unwrap();
    let (status, metrics) = get(port, "GET", "/metrics");
    assert_eq!(status, 200);
    let resident = sample_value(&metrics, "usher_app_resident_memory_bytes");
    assert!(resident >= 16.0 * 1024.0 * 1024.0, "{resident} < 16 MiB");
    // The app is idle: only a page or two the kernel might reclaim meanwhile.
    let tolerance = 8.0 * 1024.0;
    assert!(
        (resident - kib * 1024.0).abs() <= tolerance,
        "usher_app_resident_memory_bytes {resident}, VmRSS {vm_rss}"
    );
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

/// 300 idle and half-sent connections cannot keep a probe from being answered: it is answered
/// while the server still holds every one of them. The server drops a half-sent request after
/// its header timeout (5 s), so a server that served the probe only once a connection slot or
/// its turn came free would answer after closing them. No clock in the test: the bound is the
/// server's own, and the latency is bench/health.py's.
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
    assert_eq!(get(port, "GET", "/health").0, 200);
    for (i, stream) in idle.iter().enumerate() {
        stream.set_nonblocking(true).unwrap();
        let held = stream.peek(&mut [0; 1]).err().map(|e| e.kind());
        assert_eq!(
            held,
            Some(std::io::ErrorKind::WouldBlock),
            "connection {i} was closed or answered before the probe was"
        );
    }
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

fn health_body(port: u16) -> (u16, serde_json::Value) {
    let (status, body) = get(port, "GET", "/health");
    (status, serde_json::from_str(&body).unwrap())
}

/// The main child's pid as the test sees it (outside usher's PID namespace).
fn main_child(usher: &Usher) -> i32 {
    let mut child = 0;
    wait_until("usher's child", || {
        child = children_of(usher.pid()).first().copied().unwrap_or(0);
        child != 0
    });
    child
}

/// A variable of a process's environment, from /proc/PID/environ.
fn environment_of(pid: i32) -> Vec<(String, String)> {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    environ
        .split(|b| *b == 0)
        .filter_map(|entry| {
            let (k, v) = std::str::from_utf8(entry).ok()?.split_once('=')?;
            Some((k.to_string(), v.to_string()))
        })
        .collect()
}

fn variable_of(pid: i32, name: &str) -> Option<String> {
    environment_of(pid)
        .into_iter()
        .find_map(|(k, v)| (k == name).then_some(v))
}

/// `usher probe` against usher's own /health: its exit status and what it said.
fn probe_health(port: u16) -> (Option<i32>, String) {
    let output = usher_command()
        .args(["probe", &format!("http://127.0.0.1:{port}/health")])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.code(), stderr)
}

/// `/health` is 503 and names the failed liveness check and why; `usher probe` exits 1.
fn assert_unhealthy(port: u16, kind: &str, why: &str) -> serde_json::Value {
    let (status, body) = health_body(port);
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "unavailable", "{body}");
    let live = &body["checks"]["live"];
    assert_eq!(live["kind"], kind, "{body}");
    assert_eq!(live["state"], "failed", "{body}");
    let result = live["result"].as_str().unwrap();
    assert!(result.contains(why), "{why:?} not in {body}");
    assert!(live["time"].as_str().unwrap().ends_with('Z'), "{body}");
    let (code, said) = probe_health(port);
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("status 503"), "{said}");
    body
}

fn assert_healthy(port: u16, kind: &str) -> serde_json::Value {
    let (status, body) = health_body(port);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["checks"]["live"]["kind"], kind, "{body}");
    assert_eq!(body["checks"]["live"]["state"], "ok", "{body}");
    assert_eq!(probe_health(port).0, Some(0));
    body
}

/// `--live-when http://...`: an app stopped with SIGSTOP, then one whose handler never answers,
/// turns /health 503 after three failed checks in a row, and back to 200 once it answers again;
/// /ready is not liveness and stays 200.
#[test]
fn liveness_http_fails_on_a_hung_app_and_recovers() {
    if !require_root("liveness_http_fails_on_a_hung_app_and_recovers") {
        return;
    }
    let port = free_port().to_string();
    let live = format!("http://127.0.0.1:{port}/healthz");
    let (mut usher, health_port) = serving_app(
        &["--live-when", &live],
        &[&fixture("live_app"), "http", &port],
        "serving",
    );
    usher.stderr_containing("child is live (http)");
    let body = assert_healthy(health_port, "http");
    assert_eq!(body["checks"]["live"]["threshold"], 3, "{body}");
    assert_eq!(body["checks"]["live"]["result"], "ok", "{body}");

    let child = main_child(&usher);
    let stopped = Instant::now();
    send(child, libc::SIGSTOP);
    usher.stderr_containing("child is unhealthy (http)");
    // Three checks of 1 s each, 1 s apart: not the first failure.
    assert!(
        stopped.elapsed() >= Duration::from_secs(3),
        "{:?}",
        stopped.elapsed()
    );
    let body = assert_unhealthy(health_port, "http", "no answer within 1s");
    assert!(
        body["checks"]["live"]["failures"].as_u64().unwrap() >= 3,
        "{body}"
    );
    assert_eq!(ready_body(health_port).0, 200, "readiness is not liveness");
    send(child, libc::SIGCONT);
    usher.stderr_containing("child is live (http)");
    assert_healthy(health_port, "http");

    usher.signal(libc::SIGUSR1);
    usher.line_starting("hanging");
    usher.stderr_containing("child is unhealthy (http)");
    assert_unhealthy(health_port, "http", "no answer within 1s");
    usher.signal(libc::SIGUSR2);
    usher.line_starting("answering");
    usher.stderr_containing("child is live (http)");
    assert_healthy(health_port, "http");

    usher.signal(libc::SIGTERM);
    usher.line_starting("stopping on SIGTERM");
    assert_eq!(usher.wait(), 0);
}

/// `--live-when watchdog:1s`: the child gets WATCHDOG_USEC (no WATCHDOG_PID) and
/// NOTIFY_SOCKET; pings keep /health at 200 past the interval, silence turns it 503 and the
/// next ping back; WATCHDOG=trigger turns it 503 at once.
#[test]
fn watchdog_pings_keep_health_and_silence_fails_it() {
    if !require_root("watchdog_pings_keep_health_and_silence_fails_it") {
        return;
    }
    let (mut usher, port) = serving_app(
        &["--live-when", "watchdog:1s"],
        &[&fixture("live_app"), "watchdog"],
        "watchdog",
    );
    assert_eq!(
        usher.stdout_seen.last().unwrap(),
        "watchdog 1000000 pid=unset"
    );
    usher.stderr_containing("child is live (watchdog)");
    // Eight pings a quarter second apart: twice the interval.
    for _ in 0..8 {
        usher.line_starting("ping");
    }
    let body = assert_healthy(port, "watchdog");
    assert_eq!(body["checks"]["live"]["result"], "WATCHDOG=1", "{body}");

    usher.signal(libc::SIGUSR1);
    usher.line_starting("paused");
    usher.stderr_containing("child is unhealthy (watchdog)");
    assert_unhealthy(port, "watchdog", "no WATCHDOG=1 within 1s");
    usher.signal(libc::SIGUSR2);
    usher.line_starting("pinging");
    usher.stderr_containing("child is live (watchdog)");
    assert_healthy(port, "watchdog");

    usher.signal(libc::SIGHUP);
    usher.line_starting("triggered");
    let line = usher.stderr_containing("child is unhealthy (watchdog)");
    assert!(line.contains("WATCHDOG=trigger"), "{line}");
    usher.stderr_containing("child is live (watchdog)");

    usher.signal(libc::SIGTERM);
    usher.line_starting("stopping on SIGTERM");
    assert_eq!(usher.wait(), 0);
}

/// `--ready-when notify` and `--live-when watchdog` together: one socket, both heard.
#[test]
fn watchdog_and_notify_readiness_share_one_socket() {
    if !require_root("watchdog_and_notify_readiness_share_one_socket") {
        return;
    }
    let (mut usher, port) = serving_app(
        &["--ready-when", "notify", "--live-when", "watchdog:1s"],
        &[&fixture("live_app"), "watchdog", "ready"],
        "watchdog",
    );
    usher.stderr_containing("child is ready (notify)");
    usher.stderr_containing("child is live (watchdog)");
    for _ in 0..8 {
        usher.line_starting("ping");
    }
    let (status, body) = ready_body(port);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["detail"], "ready and pinging", "{body}");
    assert_eq!(body["checks"]["ready"]["kind"], "notify", "{body}");
    assert_eq!(body["checks"]["ready"]["state"], "ok", "{body}");
    assert_eq!(body["checks"]["ready"]["result"], "READY=1", "{body}");
    assert_eq!(body["checks"]["live"]["state"], "ok", "{body}");
    assert_healthy(port, "watchdog");
    let environment = environment_of(main_child(&usher));
    let named = |name: &str| environment.iter().filter(|(k, _)| k == name).count();
    assert_eq!(named("NOTIFY_SOCKET"), 1, "{environment:?}");
    assert_eq!(named("WATCHDOG_USEC"), 1, "{environment:?}");
    assert_eq!(named("WATCHDOG_PID"), 0, "{environment:?}");
    usher.signal(libc::SIGTERM);
    assert_eq!(usher.wait(), 0);
}

/// One datagram to the abstract socket `@name` (NOTIFY_SOCKET's form).
fn send_notification(socket: &str, message: &str) {
    use std::os::linux::net::SocketAddrExt;
    let name = socket.strip_prefix('@').unwrap();
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let sender = std::os::unix::net::UnixDatagram::unbound().unwrap();
    sender.send_to_addr(message.as_bytes(), &addr).unwrap();
}

/// Anyone in the network namespace can write to the abstract socket: usher acts only on the
/// app's messages. Refused: this test process (outside usher's PID namespace), and a process
/// inside it that is not the app's (what `docker exec` starts; here `nsenter`), each said once.
#[test]
fn foreign_senders_on_the_notify_socket_are_ignored() {
    if !require_root("foreign_senders_on_the_notify_socket_are_ignored") {
        return;
    }
    let (mut usher, port) = serving_app(
        &["--ready-when", "notify", "--live-when", "watchdog:1h"],
        &[&fixture("ready_app"), "notify"],
        "waiting",
    );
    let socket = variable_of(main_child(&usher), "NOTIFY_SOCKET").unwrap();

    send_notification(&socket, "READY=1\nSTATUS=forged\nWATCHDOG=trigger");
    let line = usher.stderr_containing("ignored a message on NOTIFY_SOCKET");
    assert!(line.contains("outside usher's PID namespace"), "{line}");

    let mut nsenter = std::process::Command::new("nsenter")
        .args(["--target", &usher.pid().to_string(), "--pid", "--"])
        .args([&fixture("live_app"), "send", "READY=1\\nSTATUS=forged"])
        .env("NOTIFY_SOCKET", &socket)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let said = lines_of(nsenter.stdout.take().unwrap());
    assert_eq!(said.recv_timeout(DEADLINE).unwrap(), "sent");
    let line = usher.stderr_containing("ignored a message on NOTIFY_SOCKET");
    assert!(line.contains("is not the main child"), "{line}");

    let (status, body) = ready_body(port);
    assert_eq!(status, 503, "{body}");
    assert_ne!(body["detail"], "forged", "{body}");
    assert_eq!(body["checks"]["ready"]["state"], "starting", "{body}");
    assert_eq!(
        health_body(port).0,
        200,
        "WATCHDOG=trigger was not the app's"
    );
    for sender in children_of(nsenter.id() as i32) {
        send(sender, libc::SIGTERM);
    }
    nsenter.wait().unwrap();

    // The app itself is still heard.
    usher.signal(libc::SIGUSR1);
    usher.stderr_containing("child is ready (notify)");
    assert_eq!(ready_body(port).0, 200);
    usher.signal(libc::SIGTERM);
    assert_eq!(usher.wait(), 0);
}

/// A descendant of the main child (not the main child itself) is the app's: heard.
#[test]
fn a_descendant_of_the_main_child_is_heard_on_the_notify_socket() {
    if !require_root("a_descendant_of_the_main_child_is_heard_on_the_notify_socket") {
        return;
    }
    let script = r#""$0" send 'READY=1\nSTATUS=from a descendant' & exec "$1" notify"#;
    let (mut usher, port) = serving_app(
        &["--ready-when", "notify"],
        &[
            "sh",
            "-c",
            script,
            &fixture("live_app"),
            &fixture("ready_app"),
        ],
        "waiting",
    );
    usher.stderr_containing("child is ready (notify)");
    let (status, body) = ready_body(port);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["detail"], "from a descendant", "{body}");
    usher.signal(libc::SIGTERM);
    assert_eq!(usher.wait(), 0);
}

/// Bad `--live-when`, `--live-threshold` and `--on-unhealthy` values: exit 2, one line naming
/// the flag or variable, nothing started.
#[test]
fn bad_liveness_settings_are_usage_errors() {
    for (args, env, culprit) in [
        (&["--live-when", "grpc:80"][..], None, "--live-when:"),
        (
            &["--live-when", "http://db:8080/healthz"],
            None,
            "--live-when:",
        ),
        (
            &["--live-when", "http://127.0.0.1/healthz"],
            None,
            "--live-when:",
        ),
        (&["--live-when", "tcp:99999"], None, "--live-when:"),
        (&["--live-when", "watchdog:0"], None, "--live-when:"),
        (
            &[],
            Some(("USHER_LIVE_WHEN", "watchdog:soon")),
            "USHER_LIVE_WHEN:",
        ),
        (&["--live-threshold", "0"], None, "--live-threshold:"),
        (&["--on-unhealthy", "restart"], None, "--on-unhealthy:"),
        (
            &[],
            Some(("USHER_ON_UNHEALTHY", "kill")),
            "USHER_ON_UNHEALTHY:",
        ),
    ] {
        let mut command = usher_command();
        command.args(args).args(["--", "sh", "-c", "echo started"]);
        if let Some((name, value)) = env {
            command.env(name, value);
        }
        let output = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?} {env:?}: {stderr}");
        assert!(
            stderr.starts_with(&format!("usher: {culprit}")),
            "{args:?} {env:?}: {stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(output.stdout.is_empty(), "nothing started");
    }
}
