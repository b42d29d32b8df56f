//! `usher probe`, the HEALTHCHECK client, against real sockets on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Instant;
use support::*;

/// A one-connection HTTP server answering `status`; returns its port and the request it saw.
fn server(status: &'static str) -> (u16, std::thread::JoinHandle<String>) {
    raw_server(format!(
        "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    ))
}

/// A one-connection server that reads a request head, sends `answer` as it is and closes.
fn raw_server(answer: String) -> (u16, std::thread::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut request = Vec::new();
        let mut buffer = [0u8; 1024];
        while !request.ends_with(b"\r\n\r\n") {
            let read = stream.read(&mut buffer).unwrap();
            assert!(read > 0, "the probe closed before finishing its request");
            request.extend_from_slice(&buffer[..read]);
        }
        stream.write_all(answer.as_bytes()).unwrap();
        String::from_utf8(request).unwrap()
    });
    (port, handle)
}

fn probe(args: &[&str]) -> (Option<i32>, String) {
    let output = usher_command().arg("probe").args(args).output().unwrap();
    assert!(output.stdout.is_empty());
    (
        output.status.code(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[test]
fn healthy_answers_exit_0() {
    for status in ["200 OK", "204 No Content", "302 Found", "399 Whatever"] {
        let (port, server) = server(status);
        let (code, stderr) = probe(&[&format!("http://127.0.0.1:{port}/health")]);
        assert_eq!(code, Some(0), "{status}: {stderr}");
        assert!(stderr.is_empty(), "{stderr}");
        let request = server.join().unwrap();
        assert!(request.starts_with("GET /health HTTP/1.1\r\n"), "{request}");
        assert!(
            request.contains(&format!("Host: 127.0.0.1:{port}\r\n")),
            "{request}"
        );
    }
}

#[test]
fn unhealthy_answers_exit_1_saying_why() {
    for (status, why) in [
        ("404 Not Found", "status 404"),
        ("503 Service Unavailable", "status 503"),
        ("199 Odd", "status 199"),
    ] {
        let (port, server) = server(status);
        let (code, stderr) = probe(&[&format!("http://localhost:{port}/ready")]);
        assert_eq!(code, Some(1), "{status}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(why), "{status}: {stderr}");
        server.join().unwrap();
    }
}

#[test]
fn an_interim_answer_is_skipped_for_the_final_one() {
    let (port, server) = raw_server(
        "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n\
         HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            .to_string(),
    );
    let (code, stderr) = probe(&[&format!("http://127.0.0.1:{port}/health")]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    server.join().unwrap();
}

#[test]
fn a_four_digit_status_is_not_http() {
    let (port, server) = server("2000 OK");
    let (code, stderr) = probe(&[&format!("http://127.0.0.1:{port}/health")]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("not an HTTP answer"), "{stderr}");
    server.join().unwrap();
}

#[test]
fn closed_port_is_refused() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // The listener is gone: nothing listens there now.
    for target in [
        format!("http://127.0.0.1:{port}/health"),
        format!("tcp://127.0.0.1:{port}"),
    ] {
        let (code, stderr) = probe(&[&target]);
        assert_eq!(code, Some(1), "{target}");
        assert!(stderr.contains("refused"), "{target}: {stderr}");
    }
}

#[test]
fn a_server_that_never_answers_times_out_in_time() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // The connection is accepted (by the kernel's backlog) but never answered.
    let started = Instant::now();
    let (code, stderr) = probe(&[
        "--timeout",
        "300ms",
        &format!("http://127.0.0.1:{port}/health"),
    ]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("no answer within"), "{stderr}");
    // Ended by its 300 ms timeout, not by the server, which never answers: the listener lives
    // on until after the assertion. 20 s (the harness's deadline) is 66 times the timeout, room
    // for a loaded 2-core machine to start the probe, and still tells a timeout that works from
    // one that never fires (the test would then hang, not pass).
    assert!(started.elapsed() < DEADLINE, "{:?}", started.elapsed());
    drop(listener);
}

#[test]
fn tcp_target_needs_only_an_accepted_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (code, stderr) = probe(&[&format!("tcp://127.0.0.1:{port}")]);
    assert_eq!(code, Some(0), "{stderr}");
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["ftp://127.0.0.1:21/"][..],
        &["http://example.com:80/health"],
        &["--timeout", "later", "tcp://127.0.0.1:1"],
        &["--what"],
    ] {
        let (code, stderr) = probe(args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with("usher: probe"), "{stderr}");
    }
}

/// `usher probe` runs with default signal handling (it is answered before usher takes over
/// signals): Docker's HEALTHCHECK timeout or a shell's Ctrl-C ends it at once, even while it
/// waits on a server that never answers.
#[test]
fn a_probe_waiting_on_a_silent_server_ends_at_once_on_sigterm() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (accepted, connection) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        // Hold the connection open and silent; the test ends the probe.
        accepted.send(stream).unwrap();
    });
    let mut child = usher_command()
        .args(["probe", "--timeout", "60s"])
        .arg(format!("http://127.0.0.1:{port}/health"))
        .spawn()
        .unwrap();
    let _silent = connection
        .recv_timeout(DEADLINE)
        .expect("the probe never connected");
    let sent = Instant::now();
    send(child.id() as i32, libc::SIGTERM);
    // A probe ignoring SIGTERM would wait its 60 s timeout: 20 s tells the two apart with room
    // for a loaded machine.
    let deadline = sent + DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "usher probe ignored SIGTERM");
        std::thread::yield_now();
    };
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?}");
}

#[test]
fn probe_help_exits_0_and_lists_its_options() {
    for args in [&["probe", "--help"][..], &["probe", "-h"], &["--help"]] {
        let output = usher_command().args(args).output().unwrap();
        assert_eq!(output.status.code(), Some(0), "{args:?}");
        let text = String::from_utf8(output.stdout).unwrap();
        assert!(text.contains("--timeout DURATION"), "{args:?}: {text}");
    }
}

/// The demo app, killed when dropped, with its stdout as lines.
struct DemoApp {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl DemoApp {
    fn start() -> DemoApp {
        let mut child = std::process::Command::new(fixture("demo_app"))
            .args(["--listen", "127.0.0.1:0"])
            .env_remove("DEMO_TOKEN")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let lines = lines_of(child.stdout.take().unwrap());
        DemoApp { child, lines }
    }

    /// Skips lines until one contains `text`, and returns it.
    fn line_with(&self, text: &str) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(text) => return line,
                Ok(_) => {}
                Err(e) => panic!("the demo app never said {text:?} ({e:?})"),
            }
        }
    }
}

impl Drop for DemoApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The demo app's hang (SIGUSR2), which the examples' liveness checks are for, is a deadlocked
/// HTTP handler: its port still accepts connections (a `tcp://` probe passes) but `/healthz`
/// gets no answer, so `usher probe` fails with exit 1; the next SIGUSR2 ends the hang, the
/// request left waiting is answered, and the probe passes again.
#[test]
fn the_demo_app_hangs_on_sigusr2_and_its_http_probe_fails() {
    let app = DemoApp::start();
    let line = app.line_with("demo app listening on 127.0.0.1:");
    let port = line
        .split("127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|port| port.parse::<u16>().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    let healthz = format!("http://127.0.0.1:{port}/healthz");
    let (code, stderr) = probe(&["--timeout", "1s", &healthz]);
    assert_eq!(code, Some(0), "before the hang: {stderr}");

    let pid = app.child.id() as i32;
    send(pid, libc::SIGUSR2);
    app.line_with("received SIGUSR2: hanging");
    let (code, stderr) = probe(&["--timeout", "1s", &healthz]);
    assert_eq!(code, Some(1), "while hanging: {stderr}");
    assert!(stderr.contains("no answer within 1s"), "{stderr}");
    let (code, stderr) = probe(&["--timeout", "1s", &format!("tcp://127.0.0.1:{port}")]);
    assert_eq!(code, Some(0), "the port still accepts: {stderr}");

    send(pid, libc::SIGUSR2);
    app.line_with("received SIGUSR2: answering again");
    let (code, stderr) = probe(&["--timeout", "5s", &healthz]);
    assert_eq!(code, Some(0), "after the hang: {stderr}");
}

/// With `USHER_HEALTH_ADDR=off` there is no server of this container's usher: a bare `usher
/// probe` says so and exits 2 rather than ask port 8558, where another container's usher may
/// answer (a sidecar in the same network namespace). With a TARGET it probes the target.
#[test]
fn a_bare_probe_with_the_server_off_is_a_usage_error() {
    let (code, stderr) = probe(&[]); // usher_command() sets USHER_HEALTH_ADDR=off
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("usher: probe: USHER_HEALTH_ADDR is off"),
        "{stderr}"
    );
    assert!(stderr.contains("TARGET"), "{stderr}");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (code, stderr) = probe(&[&format!("tcp://127.0.0.1:{port}")]);
    assert_eq!(code, Some(0), "{stderr}");
}
