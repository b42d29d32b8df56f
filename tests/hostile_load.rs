//! Fault injection under load (issue 14): usher as PID 1 under a storm of signals, a child that
//! forks thousands of processes a second, hostile HTTP clients, and a memory limit near its own
//! size. Each test asserts the bounds of README's "Under load and attack" and prints what it
//! measured (the worst `/health` latency, the stop time, zombies, descriptors, resident memory)
//! on the terminal, for RELIABILITY.md.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use support::*;

/// `/health` must answer within this while usher runs (issue 14's figure).
const HEALTH_BOUND: Duration = Duration::from_secs(1);

/// One test of this file at a time: each measures what its own fault costs, not the others'.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOAD: Mutex<()> = Mutex::new(());
    LOAD.lock().unwrap_or_else(|e| e.into_inner())
}

/// Says a measured figure on the terminal, past libtest's capture.
fn figure(test: &str, text: &str) {
    let line = format!("{test}: {text}\n");
    // SAFETY: writes a valid buffer to the test's stderr descriptor.
    unsafe { libc::write(2, line.as_ptr().cast(), line.len()) };
}

/// usher as PID 1 with JSON logs, serving on a free loopback port: the usher and its port
/// (from its `health_listening` event).
fn serving(args: &[&str]) -> (Usher, u16) {
    let env = [
        ("USHER_HEALTH_ADDR", "127.0.0.1:0"),
        ("USHER_LOG_FORMAT", "json"),
    ];
    let mut usher = Usher::pid1_with_env(&env, args);
    let listening = usher.event("health_listening");
    let addr: SocketAddr = listening["addr"].as_str().unwrap().parse().unwrap();
    (usher, addr.port())
}

/// The `msg` of a record of the child's output (JSON logs).
fn message(line: &str) -> String {
    let record: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
    record["msg"].as_str().unwrap_or_default().to_string()
}

/// Skips the child's records until one whose message starts with `prefix`; returns it.
fn message_starting(usher: &mut Usher, prefix: &str) -> String {
    loop {
        let text = message(&usher.next_line());
        if text.starts_with(prefix) {
            return text;
        }
    }
}

/// One `GET path` on a new connection: the status line and the body, or why it failed.
fn get(port: u16, path: &str) -> Result<(String, String), String> {
    let answer = try_http_answer(SocketAddr::from(([127, 0, 0, 1], port)), path)
        .map_err(|e| e.to_string())?;
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head.lines().next().unwrap_or_default().to_string();
    Ok((status, body.to_string()))
}

/// A series' value in a `/metrics` body (0 when absent).
fn metric(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |value| value.trim().parse().unwrap())
}

/// usher's resident memory, KiB.
fn rss_kib(pid: i32) -> u64 {
    let rss = status_field(pid, "VmRSS").unwrap();
    rss.trim_end_matches(" kB").trim().parse().unwrap()
}

/// usher's open descriptors.
fn fd_count(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// usher's CPU time so far (every thread's user and system time).
fn cpu_time(pid: i32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    // utime and stime are fields 14 and 15, the 12th and 13th after the name.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Duration::from_millis(ticks * 1000 / per_second)
}

/// A well-behaved client asking `/health` every 10 ms on a new connection, as probes do,
/// while a fault runs; it also samples usher's descriptors and resident memory.
struct Watch {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Watched>,
}

#[derive(Debug, Default)]
struct Watched {
    probes: u32,
    worst: Duration,
    latencies: Vec<Duration>,
    /// Probes not answered 200 within [`HEALTH_BOUND`], and why.
    failures: Vec<String>,
    peak_fds: usize,
    peak_rss_kib: u64,
}

impl Watch {
    fn start(port: u16, usher_pid: i32) -> Watch {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut watched = Watched::default();
            let begun = Instant::now();
            while !stopped.load(Ordering::Relaxed) {
                let asked = Instant::now();
                let answer = get(port, "/health");
                let took = asked.elapsed();
                watched.probes += 1;
                watched.worst = watched.worst.max(took);
                watched.latencies.push(took);
                match answer {
                    Ok((status, _)) if status.contains(" 200 ") && took <= HEALTH_BOUND => {}
                    Ok((status, _)) => watched.failures.push(format!(
                        "{status} in {took:?}, {:?} into the fault",
                        asked - begun
                    )),
                    Err(e) => watched.failures.push(format!(
                        "{e} after {took:?}, {:?} into the fault",
                        asked - begun
                    )),
                }
                watched.peak_fds = watched.peak_fds.max(fd_count(usher_pid));
                watched.peak_rss_kib = watched.peak_rss_kib.max(rss_kib(usher_pid));
                // Pacing, not synchronisation: a probe every 10 ms.
                std::thread::sleep(Duration::from_millis(10));
            }
            watched
        });
        Watch { stop, thread }
    }

    fn finish(self) -> Watched {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

impl Watched {
    /// The median and the 99th percentile latency.
    fn percentiles(&self) -> (Duration, Duration) {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        let at = |q: usize| sorted[(sorted.len() * q / 100).min(sorted.len() - 1)];
        (at(50), at(99))
    }

    /// Every probe was answered 200 within [`HEALTH_BOUND`].
    fn assert_answered(&self) {
        let watched = self;
        assert!(watched.probes > 0);
        assert!(
            watched.failures.is_empty(),
            "{} of {} probes failed: {:?}",
            watched.failures.len(),
            watched.probes,
            &watched.failures[..watched.failures.len().min(10)]
        );
    }
}

/// Calls `act(n)` `rate` times a second for `length`, paced every millisecond (behind, it
/// catches up); returns how many calls were made: `rate` x `length`.
fn paced(rate: u64, length: Duration, mut act: impl FnMut(u64)) -> u64 {
    let start = Instant::now();
    let total = u64::try_from(length.as_micros()).unwrap() * rate / 1_000_000;
    let mut done = 0;
    while done < total {
        let due = u64::try_from(start.elapsed().as_micros()).unwrap() * rate / 1_000_000;
        while done < due.min(total) {
            act(done);
            done += 1;
        }
        // Pacing, not synchronisation: the next millisecond's share.
        std::thread::sleep(Duration::from_millis(1));
    }
    done
}

/// 10,000 signals a second for 10 s, a mix of USR1, USR2 and HUP sent to usher from outside:
/// usher keeps forwarding them (standard signals coalesce while pending, so the child gets
/// fewer, but each kind), answers `/health` within 1 s throughout, loses none of the child's
/// lines, and stops gracefully within `--grace` + 2 s once the storm is over.
#[test]
fn a_signal_storm_is_forwarded_while_health_answers() {
    const TEST: &str = "a_signal_storm_is_forwarded_while_health_answers";
    if !require_root(TEST) {
        return;
    }
    let _one = one_at_a_time();
    let grace = Duration::from_secs(2);
    let (mut usher, port) = serving(&["--grace", "2s", "--", &fixture("signal_counter")]);
    message_starting(&mut usher, "ready");
    let pid = usher.pid();
    let (rss_before, cpu_before) = (rss_kib(pid), cpu_time(pid));
    let watch = Watch::start(port, pid);
    let storm = [libc::SIGUSR1, libc::SIGUSR2, libc::SIGHUP];
    let length = Duration::from_secs(10);
    let sent = paced(10_000, length, |n| send(pid, storm[(n % 3) as usize]));
    // Still forwarding once the storm is over: a signal of another kind comes through.
    send(pid, libc::SIGWINCH);
    let mut last = String::new();
    while !last.ends_with(&format!("signal {}", libc::SIGWINCH)) {
        last = message(&usher.next_line());
    }
    let watched = watch.finish();
    watched.assert_answered();
    let cpu = cpu_time(pid) - cpu_before;
    let rss_after = rss_kib(pid);
    let metrics = get(port, "/metrics").unwrap().1;
    let forwarded: Vec<f64> = ["SIGUSR1", "SIGUSR2", "SIGHUP"]
        .iter()
        .map(|s| {
            metric(
                &metrics,
                &format!("usher_signals_forwarded_total{{signal=\"{s}\"}}"),
            )
        })
        .collect();
    let asked = Instant::now();
    usher.signal(libc::SIGTERM);
    assert_eq!(usher.wait(), 0);
    let stop = asked.elapsed();
    assert!(stop <= grace + Duration::from_secs(2), "stop took {stop:?}");
    // Every line the child wrote, in order: `n=K` with no gap, ending with its total.
    let lines: Vec<String> = usher.stdout_seen.iter().map(|l| message(l)).collect();
    let numbered: Vec<&String> = lines.iter().filter(|l| l.starts_with("n=")).collect();
    for (i, line) in numbered.iter().enumerate() {
        assert!(
            line.starts_with(&format!("n={} ", i + 1)),
            "line {} is {line:?}: a line was lost",
            i + 1
        );
    }
    let total = numbered.last().unwrap();
    assert!(total.contains(" total "), "{total}");
    for kind in ["usr1", "usr2", "hup"] {
        let count: u64 = total
            .split(' ')
            .find_map(|field| field.strip_prefix(&format!("{kind}=")))
            .unwrap()
            .parse()
            .unwrap();
        assert!(count >= 1, "no {kind} reached the child: {total}");
    }
    assert!(forwarded.iter().all(|&count| count >= 1.0), "{forwarded:?}");
    figure(
        TEST,
        &format!(
            "sent {sent} signals in {length:?}; usher forwarded USR1/USR2/HUP {forwarded:?}; \
             the child received {} ({total}); records lost: 0; /health worst {:?} over {} \
             probes; stop {stop:?}; usher CPU {cpu:?}; VmRSS {rss_before} -> {rss_after} KiB",
            numbered.len(),
            watched.worst,
            watched.probes
        ),
    );
}

/// The number of zombies among the processes of usher's PID namespace (seen from outside).
fn zombies_in_namespace_of(usher_pid: i32) -> usize {
    let namespace = std::fs::read_link(format!("/proc/{usher_pid}/ns/pid")).unwrap();
    let mut zombies = 0;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let same =
            std::fs::read_link(format!("/proc/{pid}/ns/pid")).is_ok_and(|ns| ns == namespace);
        if same && status_field(pid, "State").is_some_and(|s| s.starts_with('Z')) {
            zombies += 1;
        }
    }
    zombies
}

/// A child that forks 10,000 processes a second for 10 s (or as many as the machine allows):
/// one in three its own, the rest pairs leaving an orphan to usher. usher reaps every orphan
/// (no zombie left; `usher_zombies_reaped_total` counts them all), answers `/health` within
/// 1 s throughout, and its own CPU time and memory stay bounded.
#[test]
fn a_fork_storm_is_reaped_while_health_answers() {
    const TEST: &str = "a_fork_storm_is_reaped_while_health_answers";
    if !require_root(TEST) {
        return;
    }
    let _one = one_at_a_time();
    let args = ["--grace", "2s", "--", &fixture("fork_storm"), "10000", "10"];
    let (mut usher, port) = serving(&args);
    message_starting(&mut usher, "ready");
    let pid = usher.pid();
    let (rss_before, cpu_before) = (rss_kib(pid), cpu_time(pid));
    let watch = Watch::start(port, pid);
    let started = Instant::now();
    let done = message_starting(&mut usher, "forked ");
    let storm = started.elapsed();
    let watched = watch.finish();
    watched.assert_answered();
    let cpu = cpu_time(pid) - cpu_before;
    let rss_after = rss_kib(pid);
    // "forked N processes (M orphans) in S s, F failed"
    let words: Vec<&str> = done.split(' ').collect();
    let forked: u64 = words[1].parse().unwrap();
    let orphans: f64 = words[3].trim_start_matches('(').parse().unwrap();
    let mut reaped = 0.0;
    wait_until("usher to reap every orphan", || {
        reaped = metric(
            &get(port, "/metrics").unwrap().1,
            "usher_zombies_reaped_total",
        );
        reaped >= orphans
    });
    let zombies = zombies_in_namespace_of(pid);
    assert_eq!(zombies, 0, "zombies left");
    assert_eq!(reaped, orphans, "usher reaped more than the orphans");
    // Bounded: the reaping costs usher a fraction of one core, and no memory per process.
    assert!(cpu < storm, "usher used {cpu:?} of CPU in {storm:?}");
    assert!(
        rss_after < rss_before + 2048,
        "VmRSS {rss_before} -> {rss_after} KiB"
    );
    usher.signal(libc::SIGTERM);
    assert_eq!(usher.wait(), 0);
    figure(
        TEST,
        &format!(
            "{done} ({:.0} a second); usher reaped {reaped} orphans, zombies left: 0; /health \
             worst {:?} over {} probes; usher CPU {cpu:?} in {storm:?}; VmRSS {rss_before} -> \
             {rss_after} KiB (peak {})",
            forked as f64 / storm.as_secs_f64(),
            watched.worst,
            watched.probes,
            watched.peak_rss_kib
        ),
    );
}

/// A connection to usher's health server, made within 1 s, or None.
fn connect(port: u16) -> Option<TcpStream> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()
}

/// Slowloris: `count` connections, opened (and opened again when the server closes one) at
/// up to 1,000 a second, each sending its first byte at once and one more byte of an endless
/// header every second, for `length`. Says how many the server closed.
fn slowloris(port: u16, count: usize, length: Duration) -> String {
    let head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    let mut held: Vec<(TcpStream, usize)> = Vec::new();
    let mut closed = 0;
    let start = Instant::now();
    for tick in 0.. {
        if start.elapsed() >= length {
            break;
        }
        // As slowloris tools do: the first byte at once, the next ones slowly.
        for _ in 0..100 {
            if held.len() >= count {
                break;
            }
            let Some(mut stream) = connect(port) else {
                break;
            };
            stream.set_nonblocking(true).unwrap();
            let sent = usize::from(stream.write(&head[..1]).is_ok_and(|n| n == 1));
            held.push((stream, sent));
        }
        if tick % 10 == 9 {
            for (stream, sent) in &mut held {
                let byte = head.get(*sent).copied().unwrap_or(b'a');
                if stream.write(&[byte]).is_ok_and(|n| n == 1) {
                    *sent += 1;
                } else {
                    *sent = usize::MAX; // closed by the server: replaced
                }
            }
            let before = held.len();
            held.retain(|(_, sent)| *sent != usize::MAX);
            closed += before - held.len();
        }
        // Pacing, not synchronisation: 100 ms a tick.
        std::thread::sleep(Duration::from_millis(100));
    }
    format!("slowloris: {count} connections held, {closed} closed by usher and reopened")
}

/// `count` connections opened and dropped at once, paced over `length`, every other one with
/// a reset (SO_LINGER 0) rather than a close. Says how long that took.
fn open_and_drop(port: u16, count: u64, length: Duration) -> String {
    let start = Instant::now();
    let mut failed = 0;
    let rate = count * 1000 / u64::try_from(length.as_millis()).unwrap();
    paced(rate, length, |n| {
        let Some(stream) = connect(port) else {
            failed += 1;
            return;
        };
        if n % 2 == 1 {
            let reset = libc::linger {
                l_onoff: 1,
                l_linger: 0,
            };
            nix::sys::socket::setsockopt(&stream, nix::sys::socket::sockopt::Linger, &reset)
                .unwrap();
        }
    });
    format!(
        "{count} connections opened and dropped in {:?} ({failed} not accepted within 1 s)",
        start.elapsed()
    )
}

/// `count` connections, each sending a request whose header line is 1 MiB long, as much of it
/// as the server takes, and holding on without reading; then each reads what came back. Says
/// how much was sent and what the answers were.
fn oversized(port: u16, count: usize, length: Duration) -> String {
    let mut request = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    request.resize(request.len() + (1 << 20), b'a');
    request.extend_from_slice(b"\r\n\r\n");
    let start = Instant::now();
    let mut held = Vec::new();
    let mut sent = 0;
    for _ in 0..count {
        let Some(mut stream) = connect(port) else {
            continue;
        };
        stream.set_nonblocking(true).unwrap();
        // Whatever the socket buffers take without blocking.
        let mut written = 0;
        while let Ok(n @ 1..) = stream.write(&request[written..]) {
            written += n;
        }
        sent += written;
        held.push(stream);
    }
    // Held for the rest of the attack.
    std::thread::sleep(length.saturating_sub(start.elapsed()));
    let mut answers = std::collections::BTreeMap::<String, usize>::new();
    for mut stream in held {
        // Answered long ago, if at all (the socket is still non-blocking): what is there now.
        let mut answer = [0; 12];
        let got = match stream.read(&mut answer) {
            Ok(n) if n >= 12 => String::from_utf8_lossy(&answer[9..12]).into_owned(),
            Ok(0) => "closed".into(),
            Ok(_) => "short".into(),
            Err(e) => format!("{:?}", e.kind()),
        };
        *answers.entry(got).or_default() += 1;
    }
    format!(
        "{count} requests with a 1 MiB header line: {} KiB taken by the socket buffers; \
         answers {answers:?}",
        sent >> 10
    )
}

/// Pipelined requests followed by garbage, 50 times a second for `length`: the requests are
/// answered, the garbage gets a 400 and the end of the connection. Beside them, `idle`
/// connections pipeline 10,000 requests each and never read an answer. Says what came back.
fn pipelined_garbage(port: u16, idle: usize, length: Duration) -> String {
    let mut greedy = Vec::new();
    let pipeline = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".repeat(10_000);
    for _ in 0..idle {
        let Some(mut stream) = connect(port) else {
            continue;
        };
        stream.set_nonblocking(true).unwrap();
        let _ = stream.write(pipeline.as_bytes());
        greedy.push(stream);
    }
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let (mut ok, mut bad, mut other) = (0, 0, 0);
    let rounds = paced(50, length, |_| {
        let Some(mut stream) = connect(port) else {
            return;
        };
        stream.set_read_timeout(Some(DEADLINE)).unwrap();
        let mut bytes = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
            .repeat(3)
            .into_bytes();
        for _ in 0..512 {
            // xorshift: bytes of every value, CR, LF and NUL among them.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            bytes.push(state as u8);
        }
        let _ = stream.write_all(&bytes);
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        let answer = String::from_utf8_lossy(&answer);
        ok += answer.matches("HTTP/1.1 200 ").count();
        bad += answer.matches("HTTP/1.1 400 ").count();
        other += answer.matches("HTTP/1.1 ").count();
    });
    drop(greedy);
    format!(
        "{rounds} pipelines of 3 requests and 512 random bytes: {ok} answered 200, {bad} 400, \
         {} other; {idle} connections pipelined 10,000 requests without reading",
        other - ok - bad
    )
}

/// Hostile HTTP clients, all at once for 10 s: slowloris (600 connections, more than usher
/// serves at once, sending a header byte by byte), 10,000 connections opened and dropped, 50
/// requests with a 1 MiB header line, pipelined garbage and pipelines never read. Meanwhile a
/// well-behaved client's `GET /health` is answered within 1 s every time; afterwards usher's
/// descriptors go back to what they were, and its memory stays bounded throughout.
#[test]
fn hostile_http_clients_do_not_keep_health_from_answering() {
    const TEST: &str = "hostile_http_clients_do_not_keep_health_from_answering";
    if !require_root(TEST) {
        return;
    }
    let _one = one_at_a_time();
    let (mut usher, port) = serving(&["--grace", "2s", "--", &fixture("signal_counter")]);
    message_starting(&mut usher, "ready");
    let pid = usher.pid();
    get(port, "/metrics").unwrap();
    let (fds_before, rss_before, cpu_before) = (fd_count(pid), rss_kib(pid), cpu_time(pid));
    let watch = Watch::start(port, pid);
    let length = Duration::from_secs(10);
    let started = Instant::now();
    let attacks = [
        std::thread::spawn(move || slowloris(port, 600, length)),
        std::thread::spawn(move || open_and_drop(port, 10_000, length)),
        std::thread::spawn(move || oversized(port, 50, length)),
        std::thread::spawn(move || pipelined_garbage(port, 20, length)),
    ];
    let said: Vec<String> = attacks.into_iter().map(|a| a.join().unwrap()).collect();
    let watched = watch.finish();
    let (attack, cpu) = (started.elapsed(), cpu_time(pid) - cpu_before);
    let rss_after_attack = rss_kib(pid);
    let mut fds_after = 0;
    wait_until("usher's descriptors back to what they were", || {
        fds_after = fd_count(pid);
        fds_after <= fds_before
    });
    let rss_after = rss_kib(pid);
    figure(
        TEST,
        &format!(
            "{}; /health median, p99, worst {:?} over {} probes; usher CPU {cpu:?} in {attack:?}; usher fds \
             {fds_before} -> peak {} -> {fds_after}; VmRSS {rss_before} -> peak {} -> \
             {rss_after_attack} -> {rss_after} KiB",
            said.join("; "),
            (watched.percentiles(), watched.worst),
            watched.probes,
            watched.peak_fds,
            watched.peak_rss_kib
        ),
    );
    watched.assert_answered();
    // Bounded: at most 512 connections served and 64 being closed, each with at most an 8 KiB
    // read and write buffer.
    assert!(
        watched.peak_fds <= fds_before + 512 + 64,
        "{} fds",
        watched.peak_fds
    );
    assert!(
        watched.peak_rss_kib <= rss_before + 16 * 1024,
        "VmRSS {rss_before} -> {} KiB",
        watched.peak_rss_kib
    );
    usher.signal(libc::SIGTERM);
    assert_eq!(usher.wait(), 0);
}

/// A memory cgroup made for a test under /sys/fs/cgroup (removed on drop), limited to `limit`
/// bytes with no swap: on the unified hierarchy (v2) where it has the memory controller, else
/// on v1's memory hierarchy.
struct MemoryCgroup {
    dir: PathBuf,
    v2: bool,
}

impl MemoryCgroup {
    fn new(name: &str, limit: u64) -> Option<MemoryCgroup> {
        let unified = Path::new("/sys/fs/cgroup");
        let v2 = std::fs::read_to_string(unified.join("cgroup.controllers"))
            .is_ok_and(|controllers| controllers.split_whitespace().any(|c| c == "memory"));
        let parent = if v2 {
            unified.to_path_buf()
        } else {
            unified.join("memory")
        };
        let dir = parent.join(format!("usher-test-{name}-{}", std::process::id()));
        std::fs::create_dir(&dir).ok()?;
        let cgroup = MemoryCgroup { dir, v2 };
        let limits: &[(&str, u64)] = if v2 {
            &[("memory.max", limit), ("memory.swap.max", 0)]
        } else {
            &[
                ("memory.limit_in_bytes", limit),
                ("memory.memsw.limit_in_bytes", limit),
            ]
        };
        for &(file, value) in limits {
            let path = cgroup.dir.join(file);
            // Swap accounting may be off (no memsw file): then there is no swap to limit.
            if path.exists() || file == limits[0].0 {
                std::fs::write(path, value.to_string()).ok()?;
            }
        }
        Some(cgroup)
    }

    /// The OOM kills counted in it (v2 `memory.events`, v1 `memory.oom_control`).
    fn oom_kills(&self) -> u64 {
        let file = if self.v2 {
            "memory.events"
        } else {
            "memory.oom_control"
        };
        let text = std::fs::read_to_string(self.dir.join(file)).unwrap();
        text.lines()
            .find_map(|line| line.strip_prefix("oom_kill "))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// The most memory it held, bytes (v2 `memory.peak`, v1 `memory.max_usage_in_bytes`).
    fn peak(&self) -> u64 {
        let file = if self.v2 {
            "memory.peak"
        } else {
            "memory.max_usage_in_bytes"
        };
        let text = std::fs::read_to_string(self.dir.join(file)).unwrap_or_default();
        text.trim().parse().unwrap_or(0)
    }
}

impl Drop for MemoryCgroup {
    fn drop(&mut self) {
        // Empty once every process in it has been reaped, which may take a moment.
        let start = Instant::now();
        while std::fs::remove_dir(&self.dir).is_err() && start.elapsed() < DEADLINE {
            std::thread::yield_now();
        }
    }
}

/// A memory limit just above what usher and the app start with (24 MiB; usher as a debug
/// build is about 4 MiB), and an app that fills a memfd past it: memory charged to the cgroup
/// but resident in no process, so that by size alone the OOM killer would take usher, the
/// largest process (it did, before usher raised the app's `oom_score_adj`). usher gives the
/// app its own `oom_score_adj` plus a margin for the limit, the OOM killer takes the app,
/// and usher reports the kill and exits 137, as documented.
#[test]
fn under_a_memory_limit_the_oom_killer_takes_the_app_not_usher() {
    const TEST: &str = "under_a_memory_limit_the_oom_killer_takes_the_app_not_usher";
    if !require_root(TEST) {
        return;
    }
    let _one = one_at_a_time();
    let limit = 24 << 20;
    let cgroup = MemoryCgroup::new("oom", limit);
    let needs = "a memory cgroup of its own under /sys/fs/cgroup";
    let Some(cgroup) = cgroup.filter(|_| require(TEST, needs, true)) else {
        require(TEST, needs, false);
        return;
    };
    let namespace = Namespace {
        env: &[("USHER_LOG_FORMAT", "json")],
        cgroup: Some(&cgroup.dir),
        ..Namespace::default()
    };
    let mut usher = Usher::pid1_in(&namespace, &["--", &fixture("hog"), "memfd"]);
    let arranged = usher.event("oom_score_adj");
    let (app, own) = (
        arranged["app"].as_i64().unwrap(),
        arranged["usher"].as_i64().unwrap(),
    );
    let pid = usher.pid();
    let rss = rss_kib(pid);
    // The margin's share of the limit outweighs usher's whole resident size (the plan took
    // twice its size before its threads started).
    assert!(
        (app - own) as u64 * limit / 1000 >= 1024 * rss,
        "app {app}, usher {own}, usher's VmRSS {rss} KiB"
    );
    let victim = usher.event("oom_kill");
    assert_eq!(victim["name"], "hog", "{victim}");
    let exited = usher.event("child_exited");
    assert_eq!(exited["oom_killed"], true, "{exited}");
    assert_eq!(usher.wait(), 137);
    let kills = cgroup.oom_kills();
    assert_eq!(kills, 1, "the OOM killer killed more than the app");
    figure(
        TEST,
        &format!(
            "limit {} KiB, peak {} KiB; oom_score_adj usher {own}, app {app}; usher's VmRSS {rss} \
             KiB; the OOM killer killed the app (hog) once, usher said oom_kill and \
             child_exited oom_killed:true and exited 137",
            limit >> 10,
            cgroup.peak() >> 10
        ),
    );
}

/// usher started at `oom_score_adj` 1000 (Kubernetes' BestEffort pods), which the app cannot
/// exceed: usher lowers its own below the app's (without CAP_SYS_RESOURCE the kernel may
/// refuse that; usher then says so with `oom_score_adj_failed` and runs on).
#[test]
fn at_oom_score_adj_1000_usher_lowers_its_own() {
    const TEST: &str = "at_oom_score_adj_1000_usher_lowers_its_own";
    if !require_root(TEST) {
        return;
    }
    let mut usher = Usher::shell(
        r#"echo 1000 > /proc/self/oom_score_adj && USHER_LOG_FORMAT=json exec "$0" \
           -- "$1/print_signals" --exit-on TERM"#,
    );
    let ready = message_starting(&mut usher, "ready pid=");
    let child = ready.split(' ').nth(1).unwrap().trim_start_matches("pid=");
    let adjusted = |pid: &str| {
        let text = std::fs::read_to_string(format!("/proc/{pid}/oom_score_adj")).unwrap();
        text.trim().parse::<i64>().unwrap()
    };
    let arranged = usher.event("oom_score_adj");
    assert_eq!(arranged["app"], 1000);
    assert_eq!(adjusted(child), 1000);
    let own = adjusted(&usher.pid().to_string());
    assert_eq!(own, arranged["usher"].as_i64().unwrap());
    assert!(own < 1000);
    usher.signal(libc::SIGTERM);
    assert_eq!(usher.wait(), 0);
}
