//! The load client of the Swarm tests and benchmark: sends HTTP requests without pause to one
//! address and counts what came back.
//!
//! `load_client HOST:PORT [--path PATH] [--workers N] [--seconds N] [--dns-cache SECONDS]`
//! (defaults `/`, 1, run until SIGTERM, 0). Each request is a new TCP connection (`Connection:
//! close`), so that a Swarm service's virtual IP balances every request anew, as it would a
//! fleet of clients, rather than pinning one kept-alive connection to one replica.
//!
//! HOST is an IP (a service's virtual IP, which the test reads from `docker service inspect`),
//! or a name, looked up before every request with one DNS query of its own (type A, over UDP)
//! to the first `nameserver` of /etc/resolv.conf (Docker's embedded server, 127.0.0.11, on a
//! user-defined network), and the requests spread round-robin over the addresses it answers: a
//! service with `endpoint_mode: dnsrr`, where Docker's DNS, not a virtual IP, balances. No NSS
//! and no libc resolver: a static binary in `FROM scratch` has neither. `--dns-cache SECONDS`
//! keeps a lookup's answer that long instead, as clients with a DNS cache do (the JVM keeps
//! one 30 s by default), so that the benchmark can show what a stopping task meets then.
//!
//! Output, one JSON object per line on stdout:
//! - `{"event":"first_answer","answer":"..."}` after the first 200, so a test knows the load runs;
//! - `{"event":"failure","kind":"reset","error":"...","time_ms":...}` for each of the first 50
//!   failures (times are Unix milliseconds, comparable with usher's log times);
//! - on SIGTERM or SIGINT, or after `--seconds`, the summary, then exit 0:
//!   `{"event":"summary","seconds":12.3,"requests":N,"ok":N,"failed":N,"failures":{KIND:N},
//!   "answers":{BODY:{"count":N,"first_ms":T,"last_ms":T}}}`.
//!
//! A success is a `2xx` answer read to its end within 2 s. Failure kinds: `connect_refused`,
//! `connect_timeout` (no connection within 1 s), `connect_error`, `reset` (the connection was
//! reset or broken while sending or reading), `timeout` (no whole answer within 2 s),
//! `closed_without_answer`, `malformed` (not HTTP), `status_NNN` (any other status), `io_error`,
//! and for a name `dns_failed` (no answer within 1 s, an error code, or no address).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;
use serde_json::{Map, Value, json};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::say;

const USAGE: &str =
    "usage: load_client HOST:PORT [--path PATH] [--workers N] [--seconds N] [--dns-cache SECONDS]";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);
const DNS_TIMEOUT: Duration = Duration::from_secs(1);
/// Failures printed one by one; the summary counts them all.
const FAILURES_SHOWN: u64 = 50;

#[derive(Default)]
struct Answer {
    count: u64,
    first_ms: u128,
    last_ms: u128,
}

#[derive(Default)]
struct Stats {
    ok: u64,
    failed: u64,
    failures: BTreeMap<String, u64>,
    /// By answer body: which release and which replica answered, and when first and last.
    answers: BTreeMap<String, Answer>,
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

fn main() {
    // First, before any other thread: a SIGTERM during start-up still ends in a summary.
    let mut signals = Signals::new([SIGTERM, SIGINT]).expect("install signal handlers");
    let mut args = std::env::args().skip(1);
    let mut target: Option<Target> = None;
    let (mut path, mut workers, mut seconds) = ("/".to_string(), 1, None);
    let mut dns_cache = Duration::ZERO;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--path" => path = args.next().expect("--path PATH"),
            "--workers" => workers = args.next().expect("--workers N").parse().expect("N"),
            "--seconds" => seconds = Some(args.next().expect("--seconds N").parse().expect("N")),
            "--dns-cache" => {
                let text = args.next().expect("--dns-cache SECONDS");
                dns_cache = Duration::from_secs_f64(text.parse().expect("SECONDS"));
            }
            other => match Target::parse(other) {
                Some(parsed) if target.is_none() => target = Some(parsed),
                _ => {
                    eprintln!("{USAGE} (got {other:?})");
                    std::process::exit(2);
                }
            },
        }
    }
    let Some(mut target) = target else {
        eprintln!("{USAGE}");
        std::process::exit(2);
    };
    target.dns_cache = dns_cache;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: load_client\r\nConnection: close\r\n\r\n",
        target.host
    );
    let target = Arc::new(target);
    let stats = Arc::new(Mutex::new(Stats::default()));
    let started = Instant::now();
    for _ in 0..workers.max(1) {
        let (stats, request, target) = (Arc::clone(&stats), request.clone(), Arc::clone(&target));
        std::thread::spawn(move || {
            loop {
                let outcome = target
                    .next_addr()
                    .and_then(|addr| one_request(addr, &request));
                record(&stats, outcome);
            }
        });
    }
    match seconds {
        Some(seconds) => {
            let (sender, received) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                if let Some(signo) = signals.forever().next() {
                    let _ = sender.send(signo);
                }
            });
            let _ = received.recv_timeout(Duration::from_secs(seconds));
        }
        None => {
            let _ = signals.forever().next();
        }
    }
    summary(&stats, started.elapsed());
    std::process::exit(0);
}

/// Where requests go: one address, or a name looked up before each request.
struct Target {
    host: String,
    port: u16,
    fixed: Option<SocketAddr>,
    nameserver: Option<Ipv4Addr>,
    /// Round-robin over the addresses of the last lookup.
    turn: AtomicUsize,
    query_id: AtomicU16,
    dns_cache: Duration,
    /// The last lookup's addresses, and when it was made.
    cached: Mutex<Option<(Instant, Vec<Ipv4Addr>)>>,
}

type Outcome<T> = Result<T, (String, String)>;

impl Target {
    fn parse(text: &str) -> Option<Target> {
        let (host, port) = text.rsplit_once(':')?;
        let port: u16 = port.parse().ok()?;
        let fixed = text.parse::<SocketAddr>().ok();
        let nameserver = match fixed {
            Some(_) => None,
            None => Some(nameserver()?),
        };
        Some(Target {
            host: host.to_string(),
            port,
            fixed,
            nameserver,
            turn: AtomicUsize::new(0),
            query_id: AtomicU16::new(std::process::id() as u16),
            dns_cache: Duration::ZERO,
            cached: Mutex::new(None),
        })
    }

    fn next_addr(&self) -> Outcome<SocketAddr> {
        if let Some(addr) = self.fixed {
            return Ok(addr);
        }
        let Some(nameserver) = self.nameserver else {
            return Err(("dns_failed".into(), "no nameserver".into()));
        };
        let cached = match &*self.cached.lock().unwrap() {
            Some((when, addrs)) if when.elapsed() < self.dns_cache => Some(addrs.clone()),
            _ => None,
        };
        let addrs = match cached {
            Some(addrs) => addrs,
            None => {
                let id = self.query_id.fetch_add(1, Ordering::Relaxed);
                let mut addrs = lookup_a(nameserver, &self.host, id)
                    .map_err(|e| ("dns_failed".to_string(), e))?;
                // The server shuffles its answers; a sorted list makes the round-robin ours.
                addrs.sort();
                if !self.dns_cache.is_zero() {
                    *self.cached.lock().unwrap() = Some((Instant::now(), addrs.clone()));
                }
                addrs
            }
        };
        let turn = self.turn.fetch_add(1, Ordering::Relaxed);
        Ok(SocketAddr::from((addrs[turn % addrs.len()], self.port)))
    }
}

/// The first IPv4 `nameserver` of /etc/resolv.conf.
fn nameserver() -> Option<Ipv4Addr> {
    let conf = std::fs::read_to_string("/etc/resolv.conf").ok()?;
    conf.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next()? == "nameserver").then_some(())?;
        words.next()?.parse().ok()
    })
}

/// One DNS query for `name`'s A records (RFC 1035), over UDP; the addresses answered.
fn lookup_a(server: Ipv4Addr, name: &str, id: u16) -> Result<Vec<Ipv4Addr>, String> {
    let mut query = Vec::with_capacity(64);
    query.extend_from_slice(&id.to_be_bytes());
    // Recursion desired; one question.
    query.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!("bad name {name:?}"));
        }
        query.push(label.len() as u8);
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 1, 0, 1]); // root, type A, class IN
    let socket = UdpSocket::bind(("0.0.0.0", 0)).map_err(|e| e.to_string())?;
    socket.connect((server, 53)).map_err(|e| e.to_string())?;
    socket
        .set_read_timeout(Some(DNS_TIMEOUT))
        .map_err(|e| e.to_string())?;
    socket.send(&query).map_err(|e| e.to_string())?;
    let mut answer = [0u8; 1500];
    let deadline = Instant::now() + DNS_TIMEOUT;
    let len = loop {
        let len = socket
            .recv(&mut answer)
            .map_err(|e| format!("{server}: {e}"))?;
        // A late answer to an earlier query of this socket's port: wait on for ours.
        if len >= 12 && answer[..2] == id.to_be_bytes() {
            break len;
        }
        if Instant::now() >= deadline {
            return Err(format!("{server}: no answer"));
        }
    };
    parse_a_records(&answer[..len])
}

fn parse_a_records(msg: &[u8]) -> Result<Vec<Ipv4Addr>, String> {
    let u16_at = |i: usize| -> Result<u16, String> {
        msg.get(i..i + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(|| "truncated answer".to_string())
    };
    let rcode = msg[3] & 0x0f;
    if rcode != 0 {
        return Err(format!("rcode {rcode}"));
    }
    let (questions, answers) = (u16_at(4)?, u16_at(6)?);
    // A name: labels, ending in a zero byte or a two-byte compression pointer.
    let skip_name = |mut i: usize| -> Result<usize, String> {
        loop {
            let len = *msg.get(i).ok_or("truncated name")?;
            match len {
                0 => return Ok(i + 1),
                l if l & 0xc0 == 0xc0 => return Ok(i + 2),
                l => i += 1 + usize::from(l),
            }
        }
    };
    let mut i = 12;
    for _ in 0..questions {
        i = skip_name(i)? + 4;
    }
    let mut addrs = Vec::new();
    for _ in 0..answers {
        i = skip_name(i)?;
        let (rtype, rdlen) = (u16_at(i)?, usize::from(u16_at(i + 8)?));
        let data = msg.get(i + 10..i + 10 + rdlen).ok_or("truncated record")?;
        if rtype == 1 && rdlen == 4 {
            addrs.push(Ipv4Addr::new(data[0], data[1], data[2], data[3]));
        }
        i += 10 + rdlen;
    }
    if addrs.is_empty() {
        return Err("no address".into());
    }
    Ok(addrs)
}

/// The answer's body on success, else the failure's kind and error.
fn one_request(target: SocketAddr, request: &str) -> Outcome<String> {
    let fail = |kind: &str, e: &dyn std::fmt::Display| Err((kind.to_string(), e.to_string()));
    let mut stream = match TcpStream::connect_timeout(&target, CONNECT_TIMEOUT) {
        Ok(stream) => stream,
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => return fail("connect_refused", &e),
        Err(e) if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) => {
            return fail("connect_timeout", &e);
        }
        Err(e) => return fail("connect_error", &e),
    };
    let deadline = Instant::now() + ANSWER_TIMEOUT;
    let _ = stream.set_write_timeout(Some(ANSWER_TIMEOUT));
    if let Err(e) = stream.write_all(request.as_bytes()) {
        return fail(io_kind(&e), &e);
    }
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return fail("timeout", &"no whole answer within 2s");
        }
        let _ = stream.set_read_timeout(Some(left));
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return fail(io_kind(&e), &e),
        }
    }
    if answer.is_empty() {
        return fail(
            "closed_without_answer",
            &"the connection closed with no answer",
        );
    }
    let text = String::from_utf8_lossy(&answer);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return fail("malformed", &"no end of headers");
    };
    let status = head
        .lines()
        .next()
        .and_then(|line| line.strip_prefix("HTTP/1."))
        .and_then(|rest| rest.get(2..5))
        .unwrap_or("");
    if status.len() != 3 || !status.bytes().all(|b| b.is_ascii_digit()) {
        return fail("malformed", &"not an HTTP status line");
    }
    if !status.starts_with('2') {
        return Err((format!("status_{status}"), body.trim().to_string()));
    }
    Ok(body.trim().to_string())
}

fn io_kind(e: &std::io::Error) -> &'static str {
    match e.kind() {
        ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::ConnectionAborted => {
            "reset"
        }
        ErrorKind::TimedOut | ErrorKind::WouldBlock => "timeout",
        _ => "io_error",
    }
}

fn record(stats: &Mutex<Stats>, outcome: Outcome<String>) {
    let time_ms = now_ms();
    let mut stats = stats.lock().unwrap();
    match outcome {
        Ok(body) => {
            stats.ok += 1;
            if stats.ok == 1 {
                say(&json!({"event": "first_answer", "answer": body}).to_string());
            }
            let answer = stats.answers.entry(body).or_default();
            if answer.count == 0 {
                answer.first_ms = time_ms;
            }
            answer.count += 1;
            answer.last_ms = time_ms;
        }
        Err((kind, error)) => {
            stats.failed += 1;
            if stats.failed <= FAILURES_SHOWN {
                say(&json!({"event": "failure", "kind": kind, "error": error,
                            "time_ms": time_ms as u64})
                .to_string());
            }
            *stats.failures.entry(kind).or_default() += 1;
        }
    }
}

fn summary(stats: &Mutex<Stats>, elapsed: Duration) {
    // A worker may hold the lock mid-update no longer than it takes to count one answer.
    let stats = stats.lock().unwrap_or_else(|e| e.into_inner());
    let mut answers = Map::new();
    for (body, answer) in &stats.answers {
        answers.insert(
            body.clone(),
            json!({"count": answer.count, "first_ms": answer.first_ms as u64,
                   "last_ms": answer.last_ms as u64}),
        );
    }
    let failures: Map<String, Value> = stats
        .failures
        .iter()
        .map(|(kind, n)| (kind.clone(), json!(n)))
        .collect();
    say(&json!({
        "event": "summary",
        "seconds": (elapsed.as_secs_f64() * 10.0).round() / 10.0,
        "requests": stats.ok + stats.failed,
        "ok": stats.ok,
        "failed": stats.failed,
        "failures": failures,
        "answers": answers,
    })
    .to_string());
}
