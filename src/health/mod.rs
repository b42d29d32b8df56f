//! The health server's shared state: what the event loop knows (the child, readiness, a stop
//! in progress, counters), kept in atomics so that the HTTP side reads it without locks and
//! never waits on the supervisor.
//!
//! Routes (see `routes`): `GET`/`HEAD` `/health` `/healthz` `/livez` (200 while the child is
//! alive and `--live-when` has not failed), `/ready` `/readyz` (200 while the child runs, is
//! ready and no stop has begun), `GET`/`HEAD` `/metrics` (Prometheus text; the container's and
//! the app's figures from `resources`, read on demand off the async thread).
//!
//! Each check (`live`, `ready`) keeps a [`CheckRecord`] for the bodies' `checks` object; the
//! watchers (`readiness`, `liveness`, `notify`) write them.

pub mod liveness;
pub mod notify;
pub mod pacing;
pub mod readiness;
pub mod resources;
pub mod routes;
pub mod server;

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Instant, SystemTime};

use crate::config::{LiveCheck, ReadySource};
use crate::logs::Stream;
use resources::Resources;

/// Where a check stands, as the bodies name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckState {
    /// It has not passed yet: not ready; for liveness, still healthy (the app is starting).
    Starting,
    Ok,
    /// It passed, and failed since, fewer times in a row than the threshold.
    Failing,
    /// It failed (past the threshold): not ready, or unhealthy.
    Failed,
}

impl CheckState {
    pub fn name(self) -> &'static str {
        match self {
            CheckState::Starting => "starting",
            CheckState::Ok => "ok",
            CheckState::Failing => "failing",
            CheckState::Failed => "failed",
        }
    }
}

/// One check's last outcome, for the bodies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckRecord {
    pub state: CheckState,
    /// What the last check found: `ok`, or why it failed (`127.0.0.1:8080: status 503`, `no
    /// WATCHDOG=1 within 10s`); for notify, the key the app sent (`READY=1`).
    pub result: String,
    /// When that was; None before the first check.
    pub time: Option<SystemTime>,
    /// Failed checks in a row.
    pub failures: u32,
}

impl CheckRecord {
    pub fn new(state: CheckState, result: impl Into<String>, failures: u32) -> CheckRecord {
        CheckRecord {
            state,
            result: result.into(),
            time: Some(SystemTime::now()),
            failures,
        }
    }
}

impl Default for CheckRecord {
    fn default() -> Self {
        CheckRecord {
            state: CheckState::Starting,
            result: String::new(),
            time: None,
            failures: 0,
        }
    }
}

pub struct Health {
    started: Instant,
    child_pid: AtomicI32,
    child_alive: AtomicBool,
    /// `--wait-all` took effect: the main child exited, the processes it left are the app.
    outlived: AtomicBool,
    ready: AtomicBool,
    stopping: AtomicBool,
    /// The main child's last exit status, -1 before it exited.
    last_exit: AtomicI32,
    starts: AtomicU64,
    /// Signals forwarded, by signal number.
    forwarded: [AtomicU64; 65],
    reaped: AtomicU64,
    /// `--ready-when started`: ready as soon as the child runs.
    ready_at_start: bool,
    /// What the readiness source last said: a notify STATUS=, or why a check failed.
    detail: Mutex<String>,
    /// The child's log output, by stream (stdout, stderr): records written, bytes read from the
    /// child, records that are pieces of an over-long line.
    log_records: [AtomicU64; 2],
    log_bytes: [AtomicU64; 2],
    log_partial_records: [AtomicU64; 2],
    /// The checks, for the bodies: their names (`http`, `notify`...), their last outcomes, and
    /// the liveness threshold when failures are counted (`tcp:`/`http:`).
    ready_kind: &'static str,
    ready_check: Mutex<CheckRecord>,
    live_kind: &'static str,
    live_threshold: Option<u32>,
    live_check: Mutex<CheckRecord>,
    /// `--live-when` failed: /health answers 503 while the child runs.
    live_failed: AtomicBool,
    /// Liveness failed and the event loop has not taken it yet (`--on-unhealthy stop`).
    unhealthy_pending: AtomicBool,
    /// The OOM kill counter can be read: `oom_kills` and `last_exit_oom_killed` mean something.
    oom_watched: AtomicBool,
    /// OOM kills in the container since usher started.
    oom_kills: AtomicU64,
    /// The main child's end was the OOM killer's doing.
    last_exit_oom_killed: AtomicBool,
    /// The container's and the app's figures for `/metrics`, once set up.
    resources: OnceLock<Arc<Resources>>,
}

impl Default for Health {
    fn default() -> Self {
        Health::new(&ReadySource::Started, &LiveCheck::Running, 1)
    }
}

/// A readiness source's name in events and bodies.
pub fn ready_kind(source: &ReadySource) -> &'static str {
    match source {
        ReadySource::Started => "started",
        ReadySource::Tcp(_) => "tcp",
        ReadySource::Http(_) => "http",
        ReadySource::File(_) => "file",
        ReadySource::Notify => "notify",
    }
}

impl Health {
    /// `live_threshold` (`--live-threshold`) counts only for `tcp:` and `http:` checks.
    pub fn new(ready: &ReadySource, live: &LiveCheck, live_threshold: u32) -> Self {
        let ready_at_start = ready.is_started();
        let polled = matches!(live, LiveCheck::Tcp(_) | LiveCheck::Http(_));
        Health {
            started: Instant::now(),
            child_pid: AtomicI32::new(0),
            child_alive: AtomicBool::new(false),
            outlived: AtomicBool::new(false),
            ready: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            last_exit: AtomicI32::new(-1),
            starts: AtomicU64::new(0),
            forwarded: std::array::from_fn(|_| AtomicU64::new(0)),
            reaped: AtomicU64::new(0),
            ready_at_start,
            detail: Mutex::new(String::new()),
            log_records: Default::default(),
            log_bytes: Default::default(),
            log_partial_records: Default::default(),
            ready_kind: ready_kind(ready),
            ready_check: Mutex::new(CheckRecord::default()),
            live_kind: live.kind(),
            live_threshold: polled.then_some(live_threshold),
            live_check: Mutex::new(CheckRecord::default()),
            live_failed: AtomicBool::new(false),
            unhealthy_pending: AtomicBool::new(false),
            oom_watched: AtomicBool::new(false),
            oom_kills: AtomicU64::new(0),
            last_exit_oom_killed: AtomicBool::new(false),
            resources: OnceLock::new(),
        }
    }

    /// The child started; with `--ready-when started` it is ready at once.
    pub fn child_started(&self, pid: i32) {
        self.child_pid.store(pid, Ordering::Relaxed);
        self.starts.fetch_add(1, Ordering::Relaxed);
        self.child_alive.store(true, Ordering::Relaxed);
        if self.ready_at_start {
            self.ready.store(true, Ordering::Relaxed);
            self.set_ready_check(CheckRecord::new(CheckState::Ok, "started", 0));
        }
        if self.live_kind == "running" {
            self.set_live_check(CheckRecord::new(CheckState::Ok, "running", 0));
        }
    }

    /// The readiness check's last outcome.
    pub fn set_ready_check(&self, record: CheckRecord) {
        if let Ok(mut current) = self.ready_check.lock() {
            *current = record;
        }
    }

    /// The liveness check's last outcome: a `failed` one turns /health 503.
    pub fn set_live_check(&self, record: CheckRecord) {
        self.live_failed
            .store(record.state == CheckState::Failed, Ordering::Relaxed);
        if let Ok(mut current) = self.live_check.lock() {
            *current = record;
        }
    }

    /// Liveness has just failed: the event loop takes it with [`Health::take_unhealthy`].
    pub fn unhealthy(&self) {
        // SeqCst: the alarm rung after this must find it set on the event loop's side.
        self.unhealthy_pending.store(true, Ordering::SeqCst);
    }

    /// Whether liveness failed since the last call (once per failure).
    pub fn take_unhealthy(&self) -> bool {
        self.unhealthy_pending.swap(false, Ordering::SeqCst)
    }

    fn ready_check(&self) -> CheckRecord {
        self.ready_check
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    fn live_check(&self) -> CheckRecord {
        self.live_check
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// The liveness check's kind and last result, for events (`http: 127.0.0.1:8080: status
    /// 500 (3 failed checks in a row)`).
    pub fn live_result(&self) -> String {
        format!("{}: {}", self.live_kind, self.live_check().result)
    }

    /// What the readiness source says; returns whether that changed.
    pub fn set_ready(&self, ready: bool) -> bool {
        self.ready.swap(ready, Ordering::Relaxed) != ready
    }

    pub fn set_detail(&self, detail: String) {
        if let Ok(mut current) = self.detail.lock() {
            *current = detail;
        }
    }

    fn detail(&self) -> String {
        self.detail.lock().map(|d| d.clone()).unwrap_or_default()
    }

    /// The child runs and no stop has begun.
    pub fn running(&self) -> bool {
        self.alive() && !self.stopping.load(Ordering::Relaxed)
    }

    /// Counts a chunk of the child's output: `read` bytes from its pipe became `records`
    /// records, `partial` of them pieces of over-long lines.
    pub fn logged(&self, stream: Stream, read: usize, records: usize, partial: usize) {
        let i = stream as usize;
        let add = |counters: &[AtomicU64; 2], n: usize| {
            if let Some(counter) = counters.get(i) {
                counter.fetch_add(n as u64, Ordering::Relaxed);
            }
        };
        add(&self.log_bytes, read);
        add(&self.log_records, records);
        add(&self.log_partial_records, partial);
    }

    pub fn child_exited(&self, status: u8) {
        self.child_alive.store(false, Ordering::Relaxed);
        self.ready.store(false, Ordering::Relaxed);
        self.last_exit.store(i32::from(status), Ordering::Relaxed);
        let exited = || {
            CheckRecord::new(
                CheckState::Failed,
                format!("exited with status {status}"),
                0,
            )
        };
        if self.ready_at_start {
            self.set_ready_check(exited());
        }
        if self.live_kind == "running" {
            self.set_live_check(exited());
        }
    }

    /// The main child exited, but `--wait-all` keeps usher for the processes it left: they are
    /// the app now, so `/health` stays 200 and `/ready` follows the readiness source until
    /// [`Health::child_exited`] at the end; only its status is recorded.
    pub fn child_outlived(&self, status: u8) {
        self.last_exit.store(i32::from(status), Ordering::Relaxed);
        self.outlived.store(true, Ordering::Relaxed);
    }

    /// Whether the main child exited and `--wait-all` made the processes it left the app.
    pub fn outlived(&self) -> bool {
        self.outlived.load(Ordering::Relaxed)
    }

    /// The main child's pid (0 before it started).
    pub fn child_pid(&self) -> i32 {
        self.child_pid.load(Ordering::Relaxed)
    }

    /// A stop began: /ready answers 503 from now on, even while the child drains.
    pub fn stop_begun(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    pub fn forwarded(&self, signo: i32) {
        if let Some(counter) = usize::try_from(signo)
            .ok()
            .and_then(|i| self.forwarded.get(i))
        {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn reaped(&self, count: u32) {
        self.reaped.fetch_add(u64::from(count), Ordering::Relaxed);
    }

    /// The OOM kill counter is watched: `/health` and `/metrics` report its count.
    pub fn watch_oom(&self) {
        self.oom_watched.store(true, Ordering::Relaxed);
    }

    /// `kills` more OOM kills were counted in the container.
    pub fn oom_killed(&self, kills: u64) {
        self.oom_kills.fetch_add(kills, Ordering::Relaxed);
    }

    /// The main child's end (reported by [`Health::child_exited`]) was an OOM kill.
    pub fn child_oom_killed(&self) {
        self.last_exit_oom_killed.store(true, Ordering::Relaxed);
    }

    /// The OOM kills counted since usher started; `None` when the counter cannot be read.
    fn oom_kills(&self) -> Option<u64> {
        self.oom_watched
            .load(Ordering::Relaxed)
            .then(|| self.oom_kills.load(Ordering::Relaxed))
    }

    /// Where `/metrics` gets the container's and the app's figures (set once).
    pub fn set_resources(&self, resources: Resources) {
        let _ = self.resources.set(Arc::new(resources));
    }

    /// The container's and the app's figures, if set up.
    pub fn resources(&self) -> Option<Arc<Resources>> {
        self.resources.get().cloned()
    }

    fn alive(&self) -> bool {
        self.child_alive.load(Ordering::Relaxed)
    }

    /// `/health`: the child (or under `--wait-all` what it left) is alive and `--live-when`
    /// has not failed.
    fn is_live(&self) -> bool {
        self.alive() && !self.live_failed.load(Ordering::Relaxed)
    }

    fn is_ready(&self) -> bool {
        self.running() && self.ready.load(Ordering::Relaxed)
    }
}
