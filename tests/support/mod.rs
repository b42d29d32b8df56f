//! Test harness: runs usher as a real PID 1 (`unshare --pid --fork --mount-proc`) or as a
//! plain process, reads its output line by line with deadlines, and signals it from outside.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

/// How long any single expectation may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// One `GET path` over a fresh connection to `addr` (`Connection: close`), the whole answer as
/// text; connecting, writing and reading each within [`DEADLINE`].
pub fn try_http_answer(addr: std::net::SocketAddr, path: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&addr, DEADLINE)?;
    stream.set_read_timeout(Some(DEADLINE))?;
    stream.set_write_timeout(Some(DEADLINE))?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes())?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer)
}

/// [`try_http_answer`] on loopback `port`, failing the test when it cannot be had.
pub fn http_answer(port: u16, path: &str) -> String {
    try_http_answer(std::net::SocketAddr::from(([127, 0, 0, 1], port)), path).unwrap()
}

/// An HTTP answer's status code (0 when there is none) and body.
pub fn status_and_body(answer: &str) -> (u16, String) {
    let status = answer.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_string());
    (status, body.unwrap_or_default())
}

/// One `GET` on loopback `port`: (status, body).
pub fn http_get(port: u16, path: &str) -> (u16, String) {
    status_and_body(&http_answer(port, path))
}

pub fn usher() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_usher"))
}

/// A command running usher with the health server off: tests run in parallel and would all
/// want port 8558 (the health tests pick their own port).
pub fn usher_command() -> Command {
    let mut command = Command::new(usher());
    command.env("USHER_HEALTH_ADDR", "off");
    command
}

/// A fixture from `examples/`, built by `cargo test` beside the usher binary.
pub fn fixture(name: &str) -> String {
    let path = usher().parent().unwrap().join("examples").join(name);
    assert!(
        path.exists(),
        "fixture {} missing: run `cargo test` (it builds examples)",
        path.display()
    );
    path.to_string_lossy().into_owned()
}

/// Whether a test can run, given whether the machine has what it `needs` (root, a Docker
/// engine, promtool). If not: with `CI` set, a failure, since CI must run every test; otherwise
/// a skip, said on the terminal at once and counted after libtest's summary, because libtest
/// has no run-time skip and would print a plain `ok`. Call it first and return if it is false.
pub fn require(test: &str, needs: &str, available: bool) -> bool {
    if available {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{test} needs {needs}, and CI is set: CI must run every test");
    }
    announce_skip(test, needs);
    false
}

/// Tests that need a PID namespace need root (see `require`).
pub fn require_root(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    require(test, "root (for a PID namespace)", root)
}

/// The tests skipped in this test binary, for the note printed at exit.
static SKIPPED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Writes to the real stderr: libtest captures `eprintln!` (shown only for a failing test),
/// but not writes to the file descriptor itself.
fn to_terminal(text: &str) {
    use std::io::Write;
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

fn announce_skip(test: &str, needs: &str) {
    let line = format!("{test}: needs {needs}");
    to_terminal(&format!("SKIPPED {line}\n"));
    let mut skipped = SKIPPED.lock().unwrap_or_else(|e| e.into_inner());
    if skipped.is_empty() {
        // SAFETY: atexit(3) only records the function; `note_skips_at_exit` cannot unwind.
        unsafe { libc::atexit(note_skips_at_exit) };
    }
    skipped.push(line);
}

/// Runs when the test binary exits, after libtest's `test result:` line.
extern "C" fn note_skips_at_exit() {
    // try_lock: a test thread libtest gave up on could hold the lock, and exit must not hang.
    let skipped = match SKIPPED.try_lock() {
        Ok(skipped) => skipped,
        Err(std::sync::TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
        Err(std::sync::TryLockError::WouldBlock) => return,
    };
    let mut note = format!(
        "note: {} SKIPPED, which libtest counted as passed (with CI set, a skip fails):\n",
        skipped.len()
    );
    for line in skipped.iter() {
        note.push_str(&format!("  {line}\n"));
    }
    to_terminal(&note);
}

pub fn send(pid: i32, signo: i32) {
    // SAFETY: kill has no memory preconditions.
    let ret = unsafe { libc::kill(pid, signo) };
    assert_eq!(
        ret,
        0,
        "kill({pid}, {signo}) failed: {}",
        std::io::Error::last_os_error()
    );
}

/// Children of `pid`, read from /proc.
pub fn children_of(pid: i32) -> Vec<i32> {
    let mut found = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return found;
    };
    for task in tasks.flatten() {
        let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        found.extend(
            children
                .split_whitespace()
                .map(|p| p.parse::<i32>().unwrap()),
        );
    }
    found
}

/// A field of /proc/PID/status.
pub fn status_field(pid: i32, name: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .map(|value| value.trim().to_string())
}

/// Whether a process is alive (exists and is not a zombie).
pub fn is_alive(pid: i32) -> bool {
    status_field(pid, "State").is_some_and(|state| !state.starts_with('Z'))
}

/// Polls `condition` until it holds or the deadline passes.
pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::yield_now();
    }
}

pub fn lines_of(stream: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (sender, receiver) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    receiver
}

/// A running usher with its output.
pub struct Usher {
    /// The process we started: `unshare` for a PID 1 run, usher itself otherwise.
    launcher_pid: i32,
    pid1: bool,
    exit: Receiver<ExitStatus>,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
    pub stdout_seen: Vec<String>,
    pub stderr_seen: Vec<String>,
    pub started: Instant,
    exited: bool,
    stdin: Option<ChildStdin>,
}

/// How the PID namespace for a PID 1 run is set up. usher runs with `USHER_LOG_FORMAT=raw`
/// unless `env` says otherwise: most tests read the child's own lines.
#[derive(Default)]
pub struct Namespace<'a> {
    /// Variables for usher's environment.
    pub env: &'a [(&'a str, &'a str)],
    /// The image's /etc/passwd and /etc/group.
    pub etc: Option<&'a EtcFiles>,
    /// A network namespace of its own (ports below 1024 are privileged there).
    pub own_network: bool,
    /// A cgroup directory (under /sys/fs/cgroup) that usher is started in, with `unshare`.
    pub cgroup: Option<&'a std::path::Path>,
}

/// A temporary directory with files for the tests (deleted on drop).
pub struct TempDir {
    pub dir: PathBuf,
}

impl TempDir {
    /// `usher-NAME-PID-N` in the temporary directory: N tells apart the directories that tests
    /// running in parallel in one process make under the same name.
    pub fn new(name: &str) -> TempDir {
        static MADE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("usher-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir { dir }
    }

    /// Writes a file with the given mode and returns its path.
    pub fn file(&self, name: &str, content: &[u8], mode: u32) -> String {
        use std::os::unix::fs::PermissionsExt;
        let path = self.dir.join(name);
        std::fs::write(&path, content).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path.to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An image's /etc/passwd and /etc/group.
pub struct EtcFiles {
    pub dir: PathBuf,
    _temp: TempDir,
}

impl EtcFiles {
    pub fn new(name: &str, passwd: &str, group: &str) -> EtcFiles {
        let temp = TempDir::new(name);
        temp.file("passwd", passwd.as_bytes(), 0o644);
        temp.file("group", group.as_bytes(), 0o644);
        EtcFiles {
            dir: temp.dir.clone(),
            _temp: temp,
        }
    }
}

/// Sets `signals` to ignored in the launched process, as a shell does for a background job.
fn ignore_on_exec(command: &mut Command, signals: &'static [i32]) {
    // SAFETY: signal(2) is async-signal-safe, fine between fork and exec.
    unsafe {
        command.pre_exec(move || {
            for &signo in signals {
                libc::signal(signo, libc::SIG_IGN);
            }
            Ok(())
        });
    }
}

impl Usher {
    /// usher as PID 1 of a new PID namespace (with its own /proc).
    pub fn pid1(args: &[&str]) -> Usher {
        Usher::pid1_with_env(&[], args)
    }

    /// usher as PID 1, with `USHER_*` variables in its environment.
    pub fn pid1_with_env(env: &[(&str, &str)], args: &[&str]) -> Usher {
        Usher::pid1_in(
            &Namespace {
                env,
                ..Namespace::default()
            },
            args,
        )
    }

    /// usher as PID 1 in a namespace set up as `namespace` says.
    pub fn pid1_in(namespace: &Namespace, args: &[&str]) -> Usher {
        let mut command = match namespace.cgroup {
            Some(cgroup) => {
                let mut join = Command::new("sh");
                let script = r#"echo $$ > "$1/cgroup.procs" && shift && exec "$@""#;
                join.args(["-c", script, "sh"]).arg(cgroup).arg("unshare");
                join
            }
            None => Command::new("unshare"),
        };
        command.args(["--pid", "--fork", "--mount-proc", "--kill-child"]);
        if namespace.own_network {
            command.arg("--net");
        }
        // The image's /etc/passwd and /etc/group, bind-mounted in the namespace's own mount
        // table (unshare makes it private), so that the host's files do not matter.
        if let Some(etc) = namespace.etc {
            let script = r#"mount --bind "$1" /etc/passwd && mount --bind "$2" /etc/group && shift 2 && exec "$@""#;
            command.args(["sh", "-c", script, "sh"]);
            command
                .arg(etc.dir.join("passwd"))
                .arg(etc.dir.join("group"));
        }
        command.arg(usher()).args(args);
        command
            .env("USHER_LOG_FORMAT", "raw")
            .env("USHER_HEALTH_ADDR", "off");
        command.envs(namespace.env.iter().copied());
        Usher::start(command, true)
    }

    /// usher as an ordinary process (it becomes a child subreaper).
    pub fn plain(args: &[&str]) -> Usher {
        let mut command = usher_command();
        command.args(args).env("USHER_LOG_FORMAT", "raw");
        // Also inherited ignored here (unshare could not wait for usher with it ignored): an
        // ignored SIGCHLD makes the kernel reap children itself, unless usher undoes it.
        ignore_on_exec(&mut command, &[libc::SIGCHLD]);
        Usher::start(command, false)
    }

    /// A shell script run with usher's path as $0, the fixture directory as $1, and a stdin
    /// the test closes with `close_stdin` (for scripts that must outlive a moment).
    pub fn shell(script: &str) -> Usher {
        let mut command = Command::new("sh");
        command
            .env("USHER_LOG_FORMAT", "raw")
            .env("USHER_HEALTH_ADDR", "off");
        let fixtures = usher().parent().unwrap().join("examples");
        command.arg("-c").arg(script).arg(usher()).arg(fixtures);
        Usher::start(command, false)
    }

    pub fn close_stdin(&mut self) {
        self.stdin.take();
    }

    fn start(mut command: Command, pid1: bool) -> Usher {
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // usher must undo what it inherits: ignored signals would otherwise reach the child
        // ignored, or never reach usher at all (nohup, a shell's background job).
        ignore_on_exec(
            &mut command,
            &[
                libc::SIGHUP,
                libc::SIGINT,
                libc::SIGQUIT,
                libc::SIGUSR1,
                libc::SIGPIPE,
            ],
        );
        let started = Instant::now();
        let mut child = command.spawn().expect("start usher");
        let launcher_pid = child.id() as i32;
        let stdin = child.stdin.take();
        let stdout = lines_of(child.stdout.take().unwrap());
        let stderr = lines_of(child.stderr.take().unwrap());
        let (sender, exit) = channel();
        std::thread::spawn(move || {
            let status = child.wait().unwrap();
            let _ = sender.send(status);
        });
        Usher {
            launcher_pid,
            pid1,
            exit,
            stdout,
            stderr,
            stdout_seen: Vec::new(),
            stderr_seen: Vec::new(),
            started,
            exited: false,
            stdin,
        }
    }

    /// usher's pid as seen from the test (outside its namespace).
    pub fn pid(&self) -> i32 {
        if !self.pid1 {
            return self.launcher_pid;
        }
        let mut pid = 0;
        wait_until("usher to start under unshare", || {
            pid = children_of(self.launcher_pid).first().copied().unwrap_or(0);
            pid != 0
                && std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .unwrap_or_default()
                    .trim()
                    == "usher"
        });
        pid
    }

    /// Sends a signal to usher from outside, as `docker stop` or the kubelet do.
    pub fn signal(&self, signo: i32) {
        send(self.pid(), signo);
    }

    /// The next stdout line, failing the test after the deadline.
    pub fn next_line(&mut self) -> String {
        match self.stdout.recv_timeout(DEADLINE) {
            Ok(line) => {
                self.stdout_seen.push(line.clone());
                line
            }
            Err(e) => {
                let stderr = self.drain_stderr();
                panic!(
                    "no stdout line ({e:?}); stdout so far: {:?}; stderr: {stderr:?}",
                    self.stdout_seen
                )
            }
        }
    }

    /// Skips stdout lines until one starts with `prefix`, and returns it.
    pub fn line_starting(&mut self, prefix: &str) -> String {
        loop {
            let line = self.next_line();
            if line.starts_with(prefix) {
                return line;
            }
        }
    }

    /// Skips stdout lines until `<prefix> pid=N`, and returns N.
    pub fn pid_announced_by(&mut self, prefix: &str) -> i32 {
        let line = self.line_starting(prefix);
        let pid = line.split(' ').find_map(|field| field.strip_prefix("pid="));
        pid.and_then(|pid| pid.parse().ok())
            .unwrap_or_else(|| panic!("no pid in {line:?}"))
    }

    /// Skips stderr lines until one contains `text`, and returns it.
    pub fn stderr_containing(&mut self, text: &str) -> String {
        loop {
            match self.stderr.recv_timeout(DEADLINE) {
                Ok(line) => {
                    self.stderr_seen.push(line.clone());
                    if line.contains(text) {
                        return line;
                    }
                }
                Err(e) => panic!(
                    "no stderr line with {text:?} ({e:?}): {:?}",
                    self.stderr_seen
                ),
            }
        }
    }

    /// Skips stderr lines until usher's JSON record of the event `name` (its `event` field;
    /// needs `USHER_LOG_FORMAT=json`), and returns that record.
    pub fn event(&mut self, name: &str) -> serde_json::Value {
        loop {
            match self.stderr.recv_timeout(DEADLINE) {
                Ok(line) => {
                    self.stderr_seen.push(line.clone());
                    let record: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
                    if record["event"] == name {
                        return record;
                    }
                }
                Err(e) => panic!("no {name} event ({e:?}): {:?}", self.stderr_seen),
            }
        }
    }

    /// The `event` fields of usher's JSON records on stderr so far, in order.
    pub fn events_seen(&self) -> Vec<String> {
        self.stderr_seen
            .iter()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter_map(|record| record["event"].as_str().map(str::to_string))
            .collect()
    }

    fn drain_stderr(&mut self) -> Vec<String> {
        while let Ok(line) = self.stderr.try_recv() {
            self.stderr_seen.push(line);
        }
        self.stderr_seen.clone()
    }

    /// Waits for usher (or unshare, which passes usher's status on) to exit; returns its exit
    /// code and collects the rest of the output.
    pub fn wait(&mut self) -> i32 {
        let status = match self.exit.recv_timeout(DEADLINE) {
            Ok(status) => status,
            Err(RecvTimeoutError::Timeout) => {
                let stderr = self.drain_stderr();
                panic!(
                    "usher did not exit in time; stdout: {:?}; stderr: {stderr:?}",
                    self.stdout_seen
                )
            }
            Err(e) => panic!("{e}"),
        };
        self.exited = true;
        // The pipes close once every process holding them is gone: a process left behind
        // that keeps them open fails the test.
        for (stream, seen) in [
            (&self.stdout, &mut self.stdout_seen),
            (&self.stderr, &mut self.stderr_seen),
        ] {
            loop {
                match stream.recv_timeout(DEADLINE) {
                    Ok(line) => seen.push(line),
                    Err(RecvTimeoutError::Disconnected) => break,
                    Err(RecvTimeoutError::Timeout) => {
                        panic!("usher exited but its output stays open: a process was left behind")
                    }
                }
            }
        }
        use std::os::unix::process::ExitStatusExt;
        status
            .code()
            .unwrap_or_else(|| panic!("usher died by signal {:?}", status.signal()))
    }
}

impl Drop for Usher {
    fn drop(&mut self) {
        // A failed test must not leave usher behind (unshare --kill-child takes usher with it).
        if !self.exited && self.exit.try_recv().is_err() {
            if !self.pid1 {
                // Outside a namespace usher's children would outlive it: end their groups too.
                for child in children_of(self.launcher_pid) {
                    // SAFETY: kill has no memory preconditions.
                    unsafe { libc::kill(-child, libc::SIGKILL) };
                }
            }
            // SAFETY: kill has no memory preconditions.
            unsafe { libc::kill(self.launcher_pid, libc::SIGKILL) };
        }
    }
}

/// Every signal usher can receive and forward: all but KILL, STOP, CHLD and glibc's 32 and 33.
pub fn forwardable_signals() -> Vec<i32> {
    (1..=libc::SIGRTMAX())
        .filter(|&s| ![libc::SIGKILL, libc::SIGSTOP, libc::SIGCHLD].contains(&s))
        .filter(|&s| !(32..libc::SIGRTMIN()).contains(&s))
        .collect()
}

/// A new pseudo-terminal, (master, slave), from openpty(3) through nix.
pub fn open_pty() -> (std::fs::File, std::fs::File) {
    let pty = nix::pty::openpty(None, None).expect("openpty");
    (pty.master.into(), pty.slave.into())
}
