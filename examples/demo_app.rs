//! The example app of the README and of the example images: a small HTTP service that logs,
//! reads a secret, and shuts down gracefully.
//!
//! `demo_app [--listen ADDR]` (default `0.0.0.0:8080`, or `DEMO_LISTEN`) answers `GET /` with a
//! greeting naming its version and host (`hello from demo_app v2 on 3f2a9c1b7d04`: `DEMO_VERSION`,
//! default `dev`, and `HOSTNAME`, which Docker sets to the container's id, so a load client can
//! tell which release and which replica answered), `GET /healthz` with `ok` (or 503 when
//! `DEMO_HEALTHZ=fail`: a broken release, for the Swarm rollback test), and `GET /admin` with 200
//! only to `Authorization: Bearer $DEMO_TOKEN` (the secret; usher's `--secret-env DEMO_TOKEN`
//! reads it from the file named by `DEMO_TOKEN_FILE`). Each request is logged as a JSON line, everything else as text with a
//! level word, to show both kinds of line under usher. SIGTERM or SIGINT: it stops taking new
//! connections, lets the request in progress finish, says goodbye and exits 0. SIGHUP: it says
//! it would reload.
//!
//! SIGUSR2 (`docker kill -s USR2 CONTAINER`: usher forwards it) makes the app hang, as a
//! deadlocked HTTP handler does, and the next SIGUSR2 ends the hang. It says `WARN received
//! SIGUSR2: hanging` and `INFO received SIGUSR2: answering again`. While hanging, a request is
//! read but never answered, and its handler blocks the accept loop: the port still accepts
//! connections (the kernel's backlog), so a `tcp:` check passes, while `/healthz` gets no
//! answer, so an `http://...` check (usher's `--live-when`, `--ready-when`, `usher probe`)
//! fails. A SIGTERM while a request hangs waits for it, as for any request in progress: the
//! app does not end until the hang does, or usher's grace period runs out.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;
use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2};
use signal_hook::iterator::Signals;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{RecvTimeoutError, channel};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;
use support::*;

fn main() {
    // First, before any other thread: signal-hook's advice, and a TERM that comes during
    // start-up is then a graceful stop too. QUIT and USR1 are caught to be logged and ignored
    // rather than to end the app; USR2 toggles the hang.
    let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2])
        .expect("install signal handlers");
    let (signal_sender, received) = channel();
    std::thread::spawn(move || {
        for signo in signals.forever() {
            if signal_sender.send(signo).is_err() {
                break;
            }
        }
    });
    let mut args = std::env::args().skip(1);
    let mut listen = std::env::var("DEMO_LISTEN").unwrap_or_else(|_| "0.0.0.0:8080".into());
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => listen = args.next().expect("--listen ADDR"),
            other => {
                say(&format!("ERROR unknown argument {other:?}"));
                std::process::exit(2);
            }
        }
    }
    let token = std::env::var("DEMO_TOKEN").ok().filter(|t| !t.is_empty());
    match &token {
        Some(token) => say(&format!(
            "INFO secret DEMO_TOKEN loaded ({} bytes); /admin is enabled",
            token.len()
        )),
        None => say("WARN no DEMO_TOKEN: /admin is disabled"),
    }
    let listener = match TcpListener::bind(&listen) {
        Ok(listener) => listener,
        Err(e) => {
            say(&format!("ERROR cannot listen on {listen}: {e}"));
            std::process::exit(1);
        }
    };
    // The address bound, not the one asked for: `--listen 127.0.0.1:0` says its port.
    let bound = listener
        .local_addr()
        .map_or_else(|_| listen.clone(), |addr| addr.to_string());
    let site = Site::from_env(token);
    say(&format!(
        "INFO demo app listening on {bound} as pid {} (uid {}), version {}",
        std::process::id(),
        nix::unistd::getuid(),
        site.version
    ));
    if site.healthz_fails {
        say("WARN DEMO_HEALTHZ=fail: /healthz answers 503");
    }
    // Held while a request is served: shutting down takes it, so a request is never cut off.
    let in_flight = Arc::new(Mutex::new(()));
    let served = Arc::new(AtomicU64::new(0));
    let hang = Arc::new(Hang::default());
    {
        let (in_flight, served) = (Arc::clone(&in_flight), Arc::clone(&served));
        let hang = Arc::clone(&hang);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let _serving = in_flight.lock().unwrap();
                serve(stream, &site, &hang);
                served.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    loop {
        match received.recv_timeout(Duration::from_secs(30)) {
            Ok(signo @ (SIGTERM | SIGINT)) => {
                let name = if signo == SIGTERM {
                    "SIGTERM"
                } else {
                    "SIGINT"
                };
                say(&format!("INFO received {name}: shutting down gracefully"));
                let _no_more = in_flight.lock().unwrap();
                let served = served.load(Ordering::Relaxed);
                say(&format!("INFO served {served} requests; bye"));
                std::process::exit(0);
            }
            Ok(SIGHUP) => say("INFO received SIGHUP: would reload the configuration"),
            Ok(SIGUSR2) => {
                if hang.toggle() {
                    say(
                        "WARN received SIGUSR2: hanging: requests get no answer until the next SIGUSR2",
                    );
                } else {
                    say("INFO received SIGUSR2: answering again");
                }
            }
            Ok(signo) => say(&format!("WARN received signal {signo}, ignoring it")),
            Err(RecvTimeoutError::Timeout) => say(&format!(
                "DEBUG still serving ({} requests so far)",
                served.load(Ordering::Relaxed)
            )),
            Err(RecvTimeoutError::Disconnected) => panic!("the signal thread ended"),
        }
    }
}

/// What the app answers with, read from its environment once.
struct Site {
    token: Option<String>,
    /// `hello from demo_app VERSION on HOST\n`.
    greeting: String,
    version: String,
    healthz_fails: bool,
}

impl Site {
    fn from_env(token: Option<String>) -> Site {
        let var = |name: &str, default: &str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| default.to_string())
        };
        let version = var("DEMO_VERSION", "dev");
        let host = var("HOSTNAME", "unknown");
        Site {
            token,
            greeting: format!("hello from demo_app {version} on {host}\n"),
            version,
            healthz_fails: var("DEMO_HEALTHZ", "ok") == "fail",
        }
    }
}

/// The hang SIGUSR2 toggles: a handler waits here, request read and unanswered, while it is on.
#[derive(Default)]
struct Hang {
    on: Mutex<bool>,
    ended: Condvar,
}

impl Hang {
    /// Turns the hang on or off; returns whether it is now on.
    fn toggle(&self) -> bool {
        let mut on = self.on.lock().unwrap();
        *on = !*on;
        self.ended.notify_all();
        *on
    }

    fn wait_while_on(&self) {
        let on = self.on.lock().unwrap();
        drop(self.ended.wait_while(on, |on| *on).unwrap());
    }
}

fn serve(stream: TcpStream, site: &Site, hang: &Hang) {
    let token = site.token.as_deref();
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(&stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() || request_line.trim().is_empty() {
        return; // a bare connect, such as usher's `--ready-when tcp:` check: nothing to log
    }
    let mut authorized = false;
    loop {
        let mut header = String::new();
        match reader.read_line(&mut header) {
            Ok(0) | Err(_) => break,
            Ok(_) if header.trim().is_empty() => break,
            Ok(_) => {
                if let (Some(token), Some((name, value))) = (token, header.split_once(':'))
                    && name.eq_ignore_ascii_case("authorization")
                {
                    authorized = value.trim() == format!("Bearer {token}");
                }
            }
        }
    }
    // Only printable ASCII from the client goes into the log line, so it stays valid JSON.
    let printable = |word: &str| -> String {
        word.chars()
            .take(200)
            .map(|c| {
                if c.is_ascii_graphic() && c != '"' && c != '\\' {
                    c
                } else {
                    '?'
                }
            })
            .collect()
    };
    // A deadlocked handler: the request is read, and the answer never comes while hanging.
    hang.wait_while_on();
    let mut words = request_line.split_whitespace();
    let method = printable(words.next().unwrap_or(""));
    let path = printable(words.next().unwrap_or(""));
    let (method, path) = (method.as_str(), path.as_str());
    let (status, body) = match (method, path) {
        ("GET", "/") => ("200 OK", site.greeting.as_str()),
        ("GET", "/healthz") if site.healthz_fails => ("503 Service Unavailable", "failing\n"),
        ("GET", "/healthz") => ("200 OK", "ok\n"),
        ("GET", "/admin") if authorized => ("200 OK", "welcome, admin\n"),
        ("GET", "/admin") => ("401 Unauthorized", "no\n"),
        ("GET", _) => ("404 Not Found", "not found\n"),
        _ => ("405 Method Not Allowed", "GET only\n"),
    };
    // One write: a client reading the status line must not get it in pieces.
    let answer = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = (&stream).write_all(answer.as_bytes());
    if path == "/healthz" {
        return; // probes every few seconds would drown the access log
    }
    let code = &status[..3];
    let level = if code.starts_with('5') {
        "error"
    } else {
        "info"
    };
    // A JSON line: usher keeps its fields and adds time and stream.
    say(&format!(
        r#"{{"level":"{level}","msg":"request","method":"{method}","path":"{path}","status":{code}}}"#
    ));
}
