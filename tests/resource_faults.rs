//! Fault injection (issue 14): usher as PID 1 when its output is closed or not read, when it
//! runs short of open files or processes, without /proc, with an unreadable /etc/passwd and
//! with a 1 MiB environment. Each case drives the `fault_app` fixture, which writes what it
//! did to a file of its own (so that the test hears from it whatever becomes of usher's
//! output), and checks what the issue asks of every fault: the app keeps running, usher keeps
//! reaping (a zombie made after the fault is reaped) and answering /health within 1 s, no line
//! usher can still write is lost, and a graceful stop ends within --grace + 2 s. README, "When
//! things run out", says what usher does in each case; RELIABILITY.md has the figures.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;
use std::io::Write;
use std::net::TcpStream;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

/// The grace period every run gets, and the bounds the issue sets.
const GRACE: &str = "2s";
const STOP_BOUND: Duration = Duration::from_secs(2 + 2);
const HEALTH_BOUND: Duration = Duration::from_secs(1);

/// How usher is started for a case: always as PID 1 of a PID namespace, `--grace 2s`, running
/// `fault_app serve ACKS`.
struct Setup<'a> {
    /// Shell commands run in usher's mount namespace before its exec (mounts over /proc).
    prepare: Option<&'a str>,
    /// A /proc of the namespace's own (`--mount-proc`); false leaves the host's, to hide.
    mount_proc: bool,
    /// RLIMIT_NOFILE for usher (and so for the app), set by prlimit(1) before exec.
    open_files: Option<u32>,
    /// A pids cgroup the launcher joins before exec: unshare, usher and all below count.
    cgroup: Option<&'a Path>,
    /// Serve /health on a free loopback port.
    health: bool,
    log_format: &'a str,
}

impl Default for Setup<'_> {
    fn default() -> Self {
        Setup {
            prepare: None,
            mount_proc: true,
            open_files: None,
            cgroup: None,
            health: true,
            log_format: "json",
        }
    }
}

/// A running case.
struct Run {
    launcher: Child,
    commands: ChildStdin,
    stdout: Option<Lines>,
    stderr: Option<Lines>,
    acks: PathBuf,
    acks_taken: usize,
    port: Option<u16>,
    exited: Option<i32>,
    _temp: TempDir,
}

impl Run {
    fn start(name: &str, setup: &Setup) -> Run {
        let temp = TempDir::new(name);
        let acks = temp.dir.join("acks");
        let mut argv: Vec<String> = Vec::new();
        if let Some(cgroup) = setup.cgroup {
            // `0` moves the writer itself: this shell, which then becomes the launcher.
            argv.extend(["sh", "-c", r#"echo 0 > "$0/cgroup.procs" && exec "$@""#].map(Into::into));
            argv.push(cgroup.to_string_lossy().into_owned());
        }
        if let Some(limit) = setup.open_files {
            argv.extend(["prlimit".into(), format!("--nofile={limit}"), "--".into()]);
        }
        argv.extend(["unshare", "--pid", "--fork", "--kill-child"].map(Into::into));
        argv.push(
            if setup.mount_proc {
                "--mount-proc"
            } else {
                "--mount"
            }
            .into(),
        );
        if let Some(prepare) = setup.prepare {
            argv.extend([
                "sh".into(),
                "-c".into(),
                format!(r#"{prepare} && exec "$@""#),
                "sh".into(),
            ]);
        }
        argv.push(usher().to_string_lossy().into_owned());
        argv.extend(["--grace", GRACE, "--", &fixture("fault_app"), "serve"].map(Into::into));
        argv.push(acks.to_string_lossy().into_owned());
        let port = setup.health.then(free_port);
        let health = port.map_or("off".to_string(), |port| format!("127.0.0.1:{port}"));
        let mut command = Command::new(&argv[0]);
        command
            .args(&argv[1..])
            .env("USHER_HEALTH_ADDR", health)
            .env("USHER_LOG_FORMAT", setup.log_format)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut launcher = command.spawn().expect("start the launcher");
        let commands = launcher.stdin.take().unwrap();
        let stdout = Lines::new(launcher.stdout.take().unwrap().into());
        let stderr = Lines::new(launcher.stderr.take().unwrap().into());
        Run {
            launcher,
            commands,
            stdout: Some(stdout),
            stderr: Some(stderr),
            acks,
            acks_taken: 0,
            port,
            exited: None,
            _temp: temp,
        }
    }

    /// usher's pid, seen from here.
    fn usher_pid(&self) -> i32 {
        let launcher = self.launcher.id() as i32;
        let mut pid = 0;
        wait_until("usher to start", || {
            pid = children_of(launcher).first().copied().unwrap_or(0);
            pid != 0
                && std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|comm| comm.trim() == "usher")
        });
        pid
    }

    fn command(&mut self, line: &str) {
        writeln!(self.commands, "{line}").unwrap();
        self.commands.flush().unwrap();
    }

    /// The app's next acknowledgement that starts with `prefix` (earlier ones are skipped).
    fn ack(&mut self, prefix: &str) -> String {
        let mut found = None;
        wait_until(&format!("the app to say {prefix:?}"), || {
            let text = std::fs::read_to_string(&self.acks).unwrap_or_default();
            let complete: Vec<&str> = text
                .split_inclusive('\n')
                .filter(|l| l.ends_with('\n'))
                .collect();
            while self.acks_taken < complete.len() {
                let line = complete[self.acks_taken].trim_end().to_string();
                self.acks_taken += 1;
                if line.starts_with(prefix) {
                    found = Some(line);
                    return true;
                }
            }
            false
        });
        found.unwrap()
    }

    /// Whether the app has said something starting with `prefix` yet (without waiting).
    fn has_said(&self, prefix: &str) -> bool {
        std::fs::read_to_string(&self.acks)
            .unwrap_or_default()
            .lines()
            .skip(self.acks_taken)
            .any(|line| line.starts_with(prefix))
    }

    /// Has the app make a zombie (an orphan that usher adopts and must reap), and waits until
    /// usher has reaped it: usher's only child is the app again, alive.
    fn zombie_is_reaped(&mut self) {
        self.command("orphan");
        self.ack("orphan pid=");
        let usher = self.usher_pid();
        wait_until("usher to reap the orphan", || {
            let children = children_of(usher);
            children.len() == 1 && children.iter().all(|&pid| is_alive(pid))
        });
    }

    /// Asks /health `times` times; each must answer 200 within the bound. The slowest answer.
    fn health_answers(&self, times: usize) -> Duration {
        let port = self.port.expect("a run with the health server");
        (0..times)
            .map(|_| {
                let (status, took) = timed_get(port, "/health");
                assert_eq!(status, 200, "/health");
                assert!(took < HEALTH_BOUND, "/health took {took:?}");
                took
            })
            .max()
            .unwrap()
    }

    /// Sends SIGTERM to usher, as `docker stop` does; returns its exit status and how long
    /// the stop took, which must be within --grace + 2 s.
    fn stop(&mut self) -> (i32, Duration) {
        let usher = self.usher_pid();
        let asked = Instant::now();
        send(usher, libc::SIGTERM);
        let code = self.wait();
        let took = asked.elapsed();
        assert!(took < STOP_BOUND, "the stop took {took:?}");
        (code, took)
    }

    /// Waits for the launcher (which passes usher's status on) to exit.
    fn wait(&mut self) -> i32 {
        let mut status = None;
        wait_until("usher to exit", || {
            status = self.launcher.try_wait().unwrap();
            status.is_some()
        });
        let code = status.unwrap().code().expect("usher died by a signal");
        self.exited = Some(code);
        code
    }

    fn stdout(&mut self) -> &mut Lines {
        self.stdout.as_mut().expect("stdout still open")
    }

    fn stderr(&mut self) -> &mut Lines {
        self.stderr.as_mut().expect("stderr still open")
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if self.exited.is_none() {
            // unshare --kill-child takes usher, and with it the namespace, along.
            let _ = self.launcher.kill();
            let _ = self.launcher.wait();
        }
    }
}

/// A pipe read line by line with deadlines, from this thread, so that the test decides when
/// it is read (a stalled collector) and when it is closed (dropped: EPIPE for usher).
struct Lines {
    pipe: OwnedFd,
    pending: Vec<u8>,
    /// Every line read so far.
    seen: Vec<String>,
}

impl Lines {
    fn new(pipe: OwnedFd) -> Lines {
        Lines {
            pipe,
            pending: Vec::new(),
            seen: Vec::new(),
        }
    }

    /// The next line, or None at the end of the pipe; fails the test after the deadline.
    fn next(&mut self) -> Option<String> {
        let start = Instant::now();
        loop {
            if let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=end).collect();
                let line = String::from_utf8_lossy(&line[..end]).into_owned();
                self.seen.push(line.clone());
                return Some(line);
            }
            let left = DEADLINE.saturating_sub(start.elapsed());
            assert!(
                !left.is_zero(),
                "no line within {DEADLINE:?}; have {:?}",
                self.pending
            );
            let mut poll = libc::pollfd {
                fd: self.pipe.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            if unsafe { libc::poll(&mut poll, 1, left.as_millis() as i32) } <= 0 {
                continue;
            }
            let mut chunk = [0u8; 65536];
            let read = nix::unistd::read(&self.pipe, &mut chunk).unwrap();
            if read == 0 {
                return None;
            }
            self.pending.extend_from_slice(&chunk[..read]);
        }
    }

    /// Lines until one contains `text`; returns that one and those before it.
    fn until(&mut self, text: &str) -> (String, Vec<String>) {
        let mut before = Vec::new();
        loop {
            match self.next() {
                Some(line) if line.contains(text) => return (line, before),
                Some(line) => before.push(line),
                None => panic!("no line with {text:?} before the end: {before:?}"),
            }
        }
    }

    /// Every line left, to the end of the pipe.
    fn rest(&mut self) -> Vec<String> {
        std::iter::from_fn(|| self.next()).collect()
    }

    /// Reads to the end of the pipe; every line read from the start.
    fn all(&mut self) -> &[String] {
        self.rest();
        &self.seen
    }

    /// Bytes waiting in the pipe (FIONREAD) and its capacity (F_GETPIPE_SZ).
    fn filled(&self) -> (usize, usize) {
        let mut waiting: libc::c_int = 0;
        // SAFETY: FIONREAD writes one int to a valid pointer.
        unsafe { libc::ioctl(self.pipe.as_raw_fd(), libc::FIONREAD, &mut waiting) };
        // SAFETY: F_GETPIPE_SZ takes no argument.
        let capacity = unsafe { libc::fcntl(self.pipe.as_fd().as_raw_fd(), libc::F_GETPIPE_SZ) };
        (waiting as usize, capacity as usize)
    }
}

/// The `msg` of a JSON record, or the line itself.
fn msg(line: &str) -> String {
    serde_json::from_str::<serde_json::Value>(line)
        .ok()
        .and_then(|record| record["msg"].as_str().map(str::to_string))
        .unwrap_or_else(|| line.to_string())
}

/// usher's event names among JSON lines.
fn events(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|record| record["event"].as_str().map(str::to_string))
        .collect()
}

/// Checks that `lines` (messages) are exactly `TAG 000001` to `TAG {count}`, in order.
fn assert_numbered(lines: &[String], tag: &str, count: usize) {
    let numbers: Vec<usize> = lines
        .iter()
        .filter_map(|line| {
            line.strip_prefix(&format!("{tag} "))?
                .get(..6)?
                .parse()
                .ok()
        })
        .collect();
    assert_eq!(
        numbers.len(),
        count,
        "{tag}: {} lines of {count}",
        numbers.len()
    );
    for (index, number) in numbers.iter().enumerate() {
        assert_eq!(
            *number,
            index + 1,
            "{tag}: line {} is number {number}",
            index + 1
        );
    }
}

/// A free port below the kernel's ephemeral range, so that no outgoing connection of a test
/// running alongside takes it between this check and usher's bind.
fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let start = (std::process::id() % 1000) as u16 * 10 + 5;
    loop {
        let port = 20_000 + (start + NEXT.fetch_add(1, Ordering::Relaxed)) % 12_000;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// One GET over a fresh connection: its status and how long the answer took.
fn timed_get(port: u16, path: &str) -> (u16, Duration) {
    try_get(port, path).unwrap()
}

fn try_get(port: u16, path: &str) -> std::io::Result<(u16, Duration)> {
    let asked = Instant::now();
    let answer = try_http_answer(std::net::SocketAddr::from(([127, 0, 0, 1], port)), path)?;
    Ok((status_and_body(&answer).0, asked.elapsed()))
}

/// A figure for RELIABILITY.md, shown with `--nocapture`.
fn figure(case: &str, text: &str) {
    eprintln!("FIGURE {case}: {text}");
}

// ---------------------------------------------------------------------------------------------
// a. usher's own output closed or not read

/// usher's stdout closed (EPIPE): the child's stdout lines are discarded, said once on stderr;
/// its stderr lines and usher's events still reach stderr, in order.
#[test]
fn stdout_closed_usher_keeps_working_and_stderr_gets_everything() {
    if !require_root("stdout_closed_usher_keeps_working_and_stderr_gets_everything") {
        return;
    }
    let mut run = Run::start("stdout-closed", &Setup::default());
    run.ack("ready");
    run.command("out 3 before");
    let (_, before) = run.stdout().until("before 000003");
    assert_eq!(before.len(), 2, "{before:?}");
    // The fault: nobody reads usher's stdout any more.
    drop(run.stdout.take());
    run.command("out 5 lost");
    run.ack("wrote 5 lost");
    run.command("err 3 after");
    let (last, mut stderr) = run.stderr().until("after 000003");
    stderr.push(last);
    let after: Vec<String> = stderr
        .iter()
        .map(|l| msg(l))
        .filter(|m| m.starts_with("after "))
        .collect();
    assert_numbered(&after, "after", 3);
    run.zombie_is_reaped();
    let slowest = run.health_answers(5);
    let (code, took) = run.stop();
    assert_eq!(code, 143);
    stderr.extend(run.stderr().rest());
    let failed = stderr
        .iter()
        .find(|l| l.contains(r#""event":"log_write_failed""#));
    assert!(
        failed.is_some_and(|l| l.contains(r#""output":"stdout""#)),
        "{stderr:?}"
    );
    let names = events(&stderr);
    assert!(names.ends_with(&["usher_exiting".to_string()]), "{names:?}");
    assert!(names.contains(&"child_exited".to_string()), "{names:?}");
    figure(
        "a stdout closed",
        &format!("/health slowest {slowest:?}, stop {took:?}, exit {code}"),
    );
}

/// usher's stderr closed: the child's stdout lines still all arrive, in order; usher runs on.
#[test]
fn stderr_closed_usher_keeps_working_and_stdout_gets_everything() {
    if !require_root("stderr_closed_usher_keeps_working_and_stdout_gets_everything") {
        return;
    }
    let mut run = Run::start("stderr-closed", &Setup::default());
    run.ack("ready");
    run.command("err 3 before");
    run.stderr().until("before 000003");
    drop(run.stderr.take());
    run.command("err 5 lost");
    run.ack("wrote 5 lost");
    run.command("out 2000 after");
    let (last, lines) = run.stdout().until("after 002000");
    let after: Vec<String> = lines.iter().chain([&last]).map(|l| msg(l)).collect();
    assert_numbered(&after, "after", 2000);
    run.zombie_is_reaped();
    let slowest = run.health_answers(5);
    let (code, took) = run.stop();
    assert_eq!(code, 143);
    assert_eq!(run.stdout().rest(), Vec::<String>::new());
    figure(
        "a stderr closed",
        &format!("/health slowest {slowest:?}, stop {took:?}, exit {code}"),
    );
}

/// Whether one of usher's threads is blocked in `write` or `writev` on its stdout (fd 1), as
/// `/proc/PID/task/TID/syscall` shows (proc(5)): the collector's pipe is full and usher's
/// relay waits on it. How many bytes the pipe holds then varies with how the writes filled
/// its pages, so the count alone cannot say the pipe is full.
fn usher_blocked_on_stdout(usher: i32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{usher}/task")) else {
        return false;
    };
    tasks.flatten().any(|task| {
        let syscall = std::fs::read_to_string(task.path().join("syscall")).unwrap_or_default();
        let mut fields = syscall.split_whitespace();
        let number = fields.next().and_then(|n| n.parse::<libc::c_long>().ok());
        let fd = fields.next();
        matches!(number, Some(libc::SYS_write | libc::SYS_writev)) && fd == Some("0x1")
    })
}

/// Lines the app writes while it is blocked by the collector, more than the pipes between the
/// app and the collector hold (1 MiB each, JSON records about twice the line).
const STALLED_LINES: usize = 100_000;

/// A collector that stops reading usher's stdout: the pipe fills, usher's stdout relay waits,
/// and the app's writes wait (back-pressure), while usher keeps reaping, answering /health
/// and writing stderr; once the collector reads again, every line is there, in order.
#[test]
fn a_stalled_collector_loses_nothing_and_usher_keeps_working() {
    if !require_root("a_stalled_collector_loses_nothing_and_usher_keeps_working") {
        return;
    }
    let mut run = Run::start("stalled", &Setup::default());
    run.ack("ready");
    run.command("out 3 before");
    run.stdout().until("before 000003");
    // The fault: nothing reads usher's stdout from here on, until the pipe is full.
    run.command(&format!("out {STALLED_LINES} stalled"));
    let usher = run.usher_pid();
    wait_until("usher's relay to block on its full stdout pipe", || {
        usher_blocked_on_stdout(usher)
    });
    let (waiting, capacity) = run.stdout().filled();
    run.command("err 3 during");
    let (_, lines) = run.stderr().until("during 000003");
    let during: Vec<String> = lines
        .iter()
        .map(|l| msg(l))
        .filter(|m| m.starts_with("during "))
        .collect();
    assert_eq!(during.len(), 2, "{lines:?}");
    run.zombie_is_reaped();
    let slowest = run.health_answers(5);
    // Still blocked: the app has not finished writing.
    assert!(!run.has_said(&format!("wrote {STALLED_LINES}")));
    assert!(usher_blocked_on_stdout(usher));
    let rss = status_field(usher, "VmRSS").unwrap_or_default();
    // The collector resumes: every line, in order.
    let (last, lines) = run.stdout().until(&format!("stalled {STALLED_LINES:06}"));
    let stalled: Vec<String> = lines.iter().chain([&last]).map(|l| msg(l)).collect();
    assert_numbered(&stalled, "stalled", STALLED_LINES);
    run.ack(&format!("wrote {STALLED_LINES} stalled"));
    let (code, took) = run.stop();
    assert_eq!(code, 143);
    figure(
        "a stalled collector",
        &format!(
            "pipe {waiting} of {capacity} bytes; /health slowest {slowest:?}; usher VmRSS while \
             stalled {rss}; {STALLED_LINES} lines, 0 lost; stop {took:?}"
        ),
    );
}

/// A stop while the collector is stalled: usher waits for its output no longer than the stop
/// allows, and what it did write is whole and in order.
#[test]
fn a_stalled_collector_does_not_hold_up_a_graceful_stop() {
    if !require_root("a_stalled_collector_does_not_hold_up_a_graceful_stop") {
        return;
    }
    let mut run = Run::start("stalled-stop", &Setup::default());
    run.ack("ready");
    run.command(&format!("out {STALLED_LINES} stalled"));
    let usher = run.usher_pid();
    wait_until("usher's relay to block on its full stdout pipe", || {
        usher_blocked_on_stdout(usher)
    });
    let (code, took) = run.stop();
    assert_eq!(code, 143);
    let lines: Vec<String> = run.stdout().rest().iter().map(|l| msg(l)).collect();
    let written = lines.iter().filter(|l| l.starts_with("stalled ")).count();
    assert!(written > 0 && written < STALLED_LINES, "{written}");
    assert_numbered(&lines[..written], "stalled", written);
    let names = events(run.stderr().all());
    assert!(names.contains(&"log_pipes_open".to_string()), "{names:?}");
    assert!(names.ends_with(&["usher_exiting".to_string()]), "{names:?}");
    figure(
        "a stop while stalled",
        &format!(
            "stop {took:?} (grace {GRACE}), exit {code}, {written} whole lines in order before \
             the stall"
        ),
    );
}

// ---------------------------------------------------------------------------------------------
// b. RLIMIT_NOFILE

/// With 16 open files usher has all it needs: relays, health server, events, the app.
#[test]
fn sixteen_open_files_are_enough_for_everything() {
    if !require_root("sixteen_open_files_are_enough_for_everything") {
        return;
    }
    let mut run = Run::start(
        "nofile-16",
        &Setup {
            open_files: Some(16),
            ..Setup::default()
        },
    );
    run.ack("ready");
    let usher = run.usher_pid();
    let limit = std::fs::read_to_string(format!("/proc/{usher}/limits")).unwrap();
    assert!(
        limit
            .lines()
            .any(|l| l.starts_with("Max open files") && l.contains(" 16 ")),
        "{limit}"
    );
    run.command("out 3 ok");
    let (last, lines) = run.stdout().until("ok 000003");
    assert!(last.starts_with('{'), "a JSON record: {last}");
    assert_eq!(lines.len(), 2);
    run.zombie_is_reaped();
    let slowest = run.health_answers(5);
    let metrics = http_answer(run.port.unwrap(), "/metrics");
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    let open = std::fs::read_dir(format!("/proc/{usher}/fd"))
        .unwrap()
        .count();
    let (code, took) = run.stop();
    assert_eq!(code, 143);
    let names = events(run.stderr().all());
    for degraded in [
        "log_relay_off",
        "health_server_failed",
        "event_writer_failed",
    ] {
        assert!(!names.contains(&degraded.to_string()), "{names:?}");
    }
    figure(
        "b nofile 16",
        &format!("usher holds {open} descriptors; /health slowest {slowest:?}; stop {took:?}"),
    );
}

/// Fewer open files, each limit from 4 to 15: usher either runs the app, with what it could
/// not set up off and a warning saying so, or exits at once with one clear line. Never a hang,
/// a panic or a process left behind.
#[test]
fn fewer_open_files_degrade_or_fail_clearly() {
    if !require_root("fewer_open_files_degrade_or_fail_clearly") {
        return;
    }
    let outcomes: Vec<String> = (4..=15)
        .map(|limit| {
            let setup = Setup {
                open_files: Some(limit),
                ..Setup::default()
            };
            let run = Run::start(&format!("nofile-{limit}"), &setup);
            let outcome = degrade_or_fail(run, &["Too many open files"]);
            format!("{limit}: {outcome}")
        })
        .collect();
    figure("b fewer open files", &outcomes.join("; "));
}

/// What a run short of some resource did: it ran the app (its lines relayed or not, a zombie
/// reaped when the app could make one, /health answered within the bound unless the server
/// is off, the stop within its bound), each thing left off said by a warning; or usher exited
/// at once, exit 2 or 126, with one error line that names `cause`, the app never started.
fn degrade_or_fail(mut run: Run, cause: &[&str]) -> String {
    let mut status = None;
    wait_until("the app to start or usher to exit", || {
        status = run.launcher.try_wait().unwrap();
        status.is_some() || run.has_said("ready")
    });
    if let Some(status) = status {
        run.exited = status.code();
        let code = status.code().expect("usher died by a signal");
        let stderr = run.stderr().all().to_vec();
        // usher's error event, or the one line of a configuration error (not JSON).
        let errors: Vec<&String> = stderr
            .iter()
            .filter(|l| !l.starts_with('{') || l.contains(r#""level":"error""#))
            .collect();
        assert_eq!(errors.len(), 1, "{stderr:?}");
        let error = errors[0];
        assert!(cause.iter().any(|c| error.contains(c)), "{error}");
        assert!(code == 2 || code == 126, "exit {code}: {error}");
        assert!(!run.has_said("ready"), "the app started");
        return format!("exit {code} ({})", msg(error));
    }
    run.command("out 2 x");
    let (last, _) = run.stdout().until("x 000002");
    run.command("orphan");
    let orphan = run.ack("orphan ");
    if orphan.starts_with("orphan pid=") {
        let usher = run.usher_pid();
        wait_until("usher to reap the orphan", || {
            let children = children_of(usher);
            children.len() == 1 && children.iter().all(|&pid| is_alive(pid))
        });
    }
    // Answered, or refused (or reset, when the listener closed after the connection came:
    // usher was still setting up): then the warning must say the server is off.
    let served = match try_get(run.port.unwrap(), "/health") {
        Ok((status, took)) => {
            assert_eq!(status, 200);
            assert!(took < HEALTH_BOUND, "/health took {took:?}");
            true
        }
        Err(e) => {
            let kind = e.kind();
            use std::io::ErrorKind::{ConnectionRefused, ConnectionReset};
            assert!(kind == ConnectionRefused || kind == ConnectionReset, "{e}");
            false
        }
    };
    let (code, _) = run.stop();
    assert_eq!(code, 143);
    let names = events(run.stderr().all());
    let relayed = last.starts_with('{');
    assert_eq!(
        relayed,
        !names.contains(&"log_relay_off".to_string()),
        "{names:?}"
    );
    let failed = names.contains(&"health_server_failed".to_string());
    assert_eq!(served, !failed, "{names:?}");
    let off: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|n| {
            [
                "log_relay_off",
                "health_server_failed",
                "event_writer_failed",
            ]
            .contains(n)
        })
        .collect();
    let reaped = if orphan.starts_with("orphan pid=") {
        "zombie reaped"
    } else {
        "app's fork refused"
    };
    format!(
        "runs, {reaped}, off: {}",
        if off.is_empty() {
            "nothing".to_string()
        } else {
            off.join(" ")
        }
    )
}

// ---------------------------------------------------------------------------------------------
// c. a pids limit

/// A pids cgroup of the test's own (v1 `pids` hierarchy or v2 with the pids controller),
/// removed on drop once its processes are gone.
struct PidsCgroup {
    dir: PathBuf,
}

impl PidsCgroup {
    /// None when no writable pids hierarchy is mounted.
    fn new(name: &str, max: u32) -> Option<PidsCgroup> {
        let v1 = Path::new("/sys/fs/cgroup/pids");
        let v2 = Path::new("/sys/fs/cgroup");
        let root = if v1.join("cgroup.procs").exists() {
            v1
        } else {
            let controllers = std::fs::read_to_string(v2.join("cgroup.subtree_control")).ok()?;
            if !controllers.split_whitespace().any(|c| c == "pids") {
                std::fs::write(v2.join("cgroup.subtree_control"), "+pids").ok()?;
            }
            v2
        };
        let dir = root.join(format!("usher-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir(&dir);
        std::fs::create_dir(&dir).ok()?;
        let cgroup = PidsCgroup { dir };
        std::fs::write(cgroup.dir.join("pids.max"), max.to_string()).ok()?;
        Some(cgroup)
    }

    fn processes(&self) -> usize {
        std::fs::read_to_string(self.dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .count()
    }

    /// Times fork or clone was refused in the cgroup (pids.events `max`).
    fn refusals(&self) -> u64 {
        std::fs::read_to_string(self.dir.join("pids.events"))
            .unwrap_or_default()
            .split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for PidsCgroup {
    fn drop(&mut self) {
        let start = Instant::now();
        while std::fs::remove_dir(&self.dir).is_err() && start.elapsed() < DEADLINE {
            std::thread::yield_now();
        }
    }
}

fn pids_cgroup(test: &str, max: u32) -> Option<PidsCgroup> {
    let cgroup = PidsCgroup::new(test, max);
    require(test, "a writable pids cgroup (v1 or v2)", cgroup.is_some()).then(|| cgroup.unwrap())
}

/// No process left for usher's threads at all (unshare, usher and the app make the limit):
/// usher starts the app without its log relays, its output written by the app itself, plain,
/// and without the health server and the event writer, each said in a warning; the app's own
/// fork fails and usher does not mind; the stop works.
#[test]
fn no_threads_left_usher_runs_the_app_without_relays_or_server() {
    let test = "no_threads_left_usher_runs_the_app_without_relays_or_server";
    if !require_root(test) {
        return;
    }
    let Some(cgroup) = pids_cgroup(test, 3) else {
        return;
    };
    let mut run = Run::start(
        "pids-3",
        &Setup {
            cgroup: Some(&cgroup.dir),
            ..Setup::default()
        },
    );
    run.ack("ready");
    run.command("out 3 plain");
    let (last, _) = run.stdout().until("plain 000003");
    assert_eq!(last, format!("plain 000003 {}", "x".repeat(100 - 14)));
    run.command("fill");
    let refused = run.ack("fork failed after 0");
    assert!(
        refused.contains("Resource temporarily unavailable"),
        "{refused}"
    );
    assert_server_is_off(&mut run);
    let (code, took) = run.stop();
    assert_eq!(code, 143);
    let names = events(run.stderr().all());
    for degraded in [
        "log_relay_off",
        "event_writer_failed",
        "health_server_failed",
        "child_started",
        "usher_exiting",
    ] {
        assert!(
            names.contains(&degraded.to_string()),
            "{degraded}: {names:?}"
        );
    }
    wait_until("the cgroup to empty", || cgroup.processes() == 0);
    figure(
        "c pids.max 3",
        &format!(
            "warnings: log_relay_off, event_writer_failed, health_server_failed; stop {took:?}; \
             {} refusals",
            cgroup.refusals()
        ),
    );
}

/// The health server's warning is on stderr, and its port refuses connections. The warning
/// comes once the listener is closed: a connection made before could still be taken.
fn assert_server_is_off(run: &mut Run) {
    run.stderr().until(r#""event":"health_server_failed""#);
    let connected = TcpStream::connect(("127.0.0.1", run.port.unwrap()));
    assert_eq!(
        connected.map(drop).map_err(|e| e.kind()),
        Err(std::io::ErrorKind::ConnectionRefused)
    );
}

/// Room for the app and usher's relays but not for usher's other threads: the app's lines are
/// relayed as JSON; the event writer and the health server are off, each said in a warning.
#[test]
fn threads_refused_after_the_child_starts_degrade_with_warnings() {
    let test = "threads_refused_after_the_child_starts_degrade_with_warnings";
    if !require_root(test) {
        return;
    }
    // unshare, usher, the app, and usher's two relays.
    let Some(cgroup) = pids_cgroup(test, 5) else {
        return;
    };
    let mut run = Run::start(
        "pids-5",
        &Setup {
            cgroup: Some(&cgroup.dir),
            ..Setup::default()
        },
    );
    run.ack("ready");
    run.command("out 3 json");
    let (last, _) = run.stdout().until("json 000003");
    assert_eq!(msg(&last), format!("json 000003 {}", "x".repeat(100 - 13)));
    assert_server_is_off(&mut run);
    run.command("err 1 json");
    let (last, _) = run.stderr().until("json 000001");
    assert!(last.starts_with('{'), "{last}");
    let (code, took) = run.stop();
    assert_eq!(code, 143);
    let names = events(run.stderr().all());
    for said in [
        "event_writer_failed",
        "health_server_failed",
        "usher_exiting",
    ] {
        assert!(names.contains(&said.to_string()), "{said}: {names:?}");
    }
    assert!(!names.contains(&"log_relay_off".to_string()), "{names:?}");
    wait_until("the cgroup to empty", || cgroup.processes() == 0);
    figure(
        "c pids.max 5",
        &format!("relayed; warnings: event_writer_failed, health_server_failed; stop {took:?}"),
    );
}

/// The app forks until the pids limit refuses it: usher, whose threads are all running, keeps
/// relaying, answering /health and /metrics, reaping and stopping.
#[test]
fn the_app_at_the_pids_limit_leaves_usher_working() {
    let test = "the_app_at_the_pids_limit_leaves_usher_working";
    if !require_root(test) {
        return;
    }
    let Some(cgroup) = pids_cgroup(test, 24) else {
        return;
    };
    let mut run = Run::start(
        "pids-24",
        &Setup {
            cgroup: Some(&cgroup.dir),
            ..Setup::default()
        },
    );
    run.ack("ready");
    run.command("out 1 warm");
    run.command("err 1 warm");
    run.stdout().until("warm 000001");
    run.command("fill");
    let full = run.ack("fork failed after");
    assert!(full.contains("Resource temporarily unavailable"), "{full}");
    // At the limit: usher answers, relays and takes signals.
    let slowest = run.health_answers(5);
    let (status, _) = timed_get(run.port.unwrap(), "/metrics");
    assert_eq!(status, 200);
    run.command("out 3 full");
    let (last, lines) = run.stdout().until("full 000003");
    let full_lines: Vec<String> = lines
        .iter()
        .chain([&last])
        .map(|l| msg(l))
        .filter(|m| m.starts_with("full "))
        .collect();
    assert_numbered(&full_lines, "full", 3);
    run.command("release");
    run.ack("released");
    run.zombie_is_reaped();
    // A stop while the app holds every process it may have again.
    run.command("fill");
    run.ack("fork failed after");
    let (code, took) = run.stop();
    assert_eq!(code, 143);
    wait_until("the cgroup to empty", || cgroup.processes() == 0);
    figure(
        "c app at pids.max 24",
        &format!(
            "{full}; /health slowest {slowest:?}; stop at the limit {took:?}; {} refusals",
            cgroup.refusals()
        ),
    );
}

/// Each pids limit from 2 to 9, which leaves room for some of usher's threads and the app's
/// processes and not others: usher runs the app, with what it could not start off and said, or
/// exits at once with one clear line; never a hang, a panic or a process left behind.
#[test]
fn fewer_processes_degrade_or_fail_clearly() {
    let test = "fewer_processes_degrade_or_fail_clearly";
    if !require_root(test) {
        return;
    }
    let mut outcomes = Vec::new();
    for max in 2..=9 {
        let Some(cgroup) = pids_cgroup(test, max) else {
            return;
        };
        let setup = Setup {
            cgroup: Some(&cgroup.dir),
            ..Setup::default()
        };
        let run = Run::start(&format!("pids-{max}"), &setup);
        let outcome = degrade_or_fail(run, &["pids limit"]);
        wait_until("the cgroup to empty", || cgroup.processes() == 0);
        outcomes.push(format!("{max}: {outcome}"));
    }
    figure("c fewer processes", &outcomes.join("; "));
}

// ---------------------------------------------------------------------------------------------
// d. /proc not mounted

/// Without /proc (a tmpfs over it, or unmounted): usher starts, supervises, reaps and stops;
/// the cgroup and the app's process figures are left out of /metrics, said once at start.
#[test]
fn without_proc_usher_supervises_reaps_and_stops() {
    if !require_root("without_proc_usher_supervises_reaps_and_stops") {
        return;
    }
    for (name, prepare) in [
        ("tmpfs", "mount -t tmpfs tmpfs /proc"),
        ("umount", "umount -l /proc"),
    ] {
        let mut run = Run::start(
            &format!("no-proc-{name}"),
            &Setup {
                prepare: Some(prepare),
                mount_proc: false,
                ..Setup::default()
            },
        );
        run.ack("ready");
        run.command("out 2 seen");
        run.stdout().until("seen 000002");
        run.zombie_is_reaped();
        let slowest = run.health_answers(5);
        let port = run.port.unwrap();
        let metrics = http_answer(port, "/metrics");
        assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
        assert!(metrics.contains("\nusher_child_up 1\n"), "{metrics}");
        assert!(!metrics.contains("usher_app_processes"), "{metrics}");
        let (code, took) = run.stop();
        assert_eq!(code, 143, "{name}");
        let stderr = run.stderr().all().to_vec();
        let unavailable = stderr
            .iter()
            .find(|l| l.contains(r#""event":"container_reading_failed""#));
        assert!(
            unavailable.is_some_and(|l| l.contains("/proc/self/cgroup")),
            "{stderr:?}"
        );
        assert!(
            !stderr.iter().any(|l| l.contains(r#""level":"error""#)),
            "{stderr:?}"
        );
        figure(
            &format!("d /proc {name}"),
            &format!("/health slowest {slowest:?}; stop {took:?}; exit {code}"),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// e. /etc/passwd unreadable

/// usher (root, or uid 1000 with `as_user`) in a mount namespace where `setup` made the
/// image's /etc/passwd unreadable, with `--user SPEC`, running a command that says who it is.
fn with_passwd(setup: &str, as_user: bool, spec: &str) -> (i32, String, String) {
    let drop = if as_user {
        "setpriv --reuid=1000 --regid=1000 --clear-groups "
    } else {
        ""
    };
    let script = format!(r#"{setup} && exec {drop}"$@""#);
    let output = Command::new("unshare")
        .args([
            "--pid",
            "--fork",
            "--mount-proc",
            "--kill-child",
            "sh",
            "-c",
            &script,
            "sh",
        ])
        .arg(usher())
        .args([
            "--user",
            spec,
            "--",
            "sh",
            "-c",
            "echo started uid=$(id -u) gid=$(id -g) home=$HOME",
        ])
        .env("USHER_HEALTH_ADDR", "off")
        .env("USHER_LOG_FORMAT", "raw")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        output.status.code().unwrap(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `--user NAME` needs /etc/passwd: when it is unreadable, exit 2 with one line naming the file
/// and the problem, nothing started. A numeric `--user` needs no file and works, with a warning.
#[test]
fn unreadable_passwd_stops_a_named_user_and_not_a_numeric_one() {
    if !require_root("unreadable_passwd_stops_a_named_user_and_not_a_numeric_one") {
        return;
    }
    let temp = TempDir::new("passwd");
    let passwd = temp.file(
        "passwd",
        b"root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
        0o000,
    );
    let mode_000 = format!("mount --bind {passwd} /etc/passwd");
    let directory = "mount -t tmpfs tmpfs /etc && mkdir /etc/passwd".to_string();
    let missing = "mount -t tmpfs tmpfs /etc".to_string();
    let cases = [
        // (what, setup, usher as uid 1000, spec, expected: Err(line) or Ok(child's line))
        (
            "mode 000",
            &mode_000,
            true,
            "app",
            Err("usher: --user: cannot read /etc/passwd: Permission denied (os error 13)"),
        ),
        (
            "mode 000",
            &mode_000,
            true,
            "1000:1000",
            Ok("started uid=1000 gid=1000 home=/"),
        ),
        (
            "a directory",
            &directory,
            false,
            "app",
            Err("usher: --user: cannot read /etc/passwd: Is a directory (os error 21)"),
        ),
        (
            "a directory",
            &directory,
            false,
            "1000",
            Ok("started uid=1000 gid=0 home=/"),
        ),
        (
            "missing",
            &missing,
            false,
            "app",
            Err(r#"usher: --user: unknown user "app" (no /etc/passwd)"#),
        ),
        (
            "missing",
            &missing,
            false,
            "1000",
            Ok("started uid=1000 gid=0 home=/"),
        ),
    ];
    for (what, setup, as_user, spec, expected) in cases {
        let (code, stdout, stderr) = with_passwd(setup, as_user, spec);
        match expected {
            Err(line) => {
                assert_eq!(code, 2, "{what} {spec}: {stderr}");
                assert_eq!(stderr, format!("{line}\n"), "{what} {spec}");
                assert_eq!(stdout, "", "{what} {spec}: started");
            }
            Ok(line) => {
                assert_eq!(code, 0, "{what} {spec}: {stderr}");
                assert_eq!(stdout, format!("{line}\n"), "{what} {spec}");
                // Said when the file is there but cannot be read; a missing one is normal.
                let warned = stderr.contains("usher: warning: --user")
                    && stderr.contains("cannot read /etc/passwd");
                assert_eq!(warned, what != "missing", "{what} {spec}: {stderr}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// f. a 1 MiB environment

/// The kernel's limit on one argument or variable string, its NUL included (MAX_ARG_STRLEN).
const MAX_ARG_STRLEN: usize = 32 * 4096;

/// `NAME=VALUE\n` of the variables named PREFIX..., sorted: count, bytes, FNV-1a, as the
/// fixture prints them.
fn digest(prefix: &str, vars: &[(String, String)]) -> String {
    let mut lines: Vec<String> = vars.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    lines.sort();
    let bytes: usize = lines.iter().map(String::len).sum();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in lines.iter().flat_map(|l| l.bytes()) {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    format!(
        "env {prefix} count={} bytes={bytes} fnv={hash:016x}",
        lines.len()
    )
}

/// A 1 MiB environment, 920 variables and one at the kernel's limit for a single string,
/// reaches the child intact.
#[test]
fn a_one_mib_environment_reaches_the_child_intact() {
    if !require_root("a_one_mib_environment_reaches_the_child_intact") {
        return;
    }
    let mut vars: Vec<(String, String)> = (0..920)
        .map(|i| (format!("BIG_{i:04}"), format!("{i:04}").repeat(250)))
        .collect();
    // NAME=VALUE and its NUL: exactly the longest string exec takes.
    let huge = "BIG_HUGE".to_string();
    vars.push((huge.clone(), "h".repeat(MAX_ARG_STRLEN - huge.len() - 2)));
    let total: usize = vars.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
    assert!(total >= 1 << 20, "{total}");
    let output = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "--kill-child"])
        .arg(usher())
        .args(["--", &fixture("fault_app"), "env", "BIG_"])
        .envs(vars.iter().map(|(k, v)| (k, v)))
        .env("USHER_HEALTH_ADDR", "off")
        .env("USHER_LOG_FORMAT", "raw")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("{}\n", digest("BIG_", &vars))
    );
    figure(
        "f 1 MiB environment",
        &format!("{} variables, {total} bytes, digest equal", vars.len()),
    );
}

/// Past the kernel's limits (a variable over 128 KiB, or more than a quarter of the stack
/// limit in all), added by `--env-file` since usher itself could not have been started with
/// it: exec fails with E2BIG, said in one error naming the cause, exit 126, nothing left.
#[test]
fn an_environment_over_the_exec_limit_is_a_clear_error() {
    if !require_root("an_environment_over_the_exec_limit_is_a_clear_error") {
        return;
    }
    let temp = TempDir::new("e2big");
    let one = format!("BIG_OVER={}\n", "o".repeat(MAX_ARG_STRLEN));
    let many: String = (0..24)
        .map(|i| format!("BIG_{i:02}={}\n", "m".repeat(MAX_ARG_STRLEN - 64)))
        .collect();
    for (what, content) in [("one variable over 128 KiB", one), ("3 MiB in all", many)] {
        let file = temp.file("env", content.as_bytes(), 0o600);
        let output = Command::new("unshare")
            .args(["--pid", "--fork", "--mount-proc", "--kill-child"])
            .arg(usher())
            .args([
                "--env-file",
                &file,
                "--",
                &fixture("fault_app"),
                "env",
                "BIG_",
            ])
            .env("USHER_HEALTH_ADDR", "off")
            .env("USHER_LOG_FORMAT", "raw")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(126), "{what}: {stderr}");
        assert_eq!(output.stdout, b"", "{what}");
        assert_eq!(stderr.lines().count(), 1, "{what}: {stderr}");
        assert!(
            stderr.starts_with("usher: error: failed to start command: "),
            "{what}: {stderr}"
        );
        assert!(
            stderr.contains("over the kernel's limit for exec"),
            "{what}: {stderr}"
        );
        assert!(
            stderr.contains("Argument list too long (os error 7)"),
            "{what}: {stderr}"
        );
        figure(&format!("f {what}"), stderr.trim());
    }
}
