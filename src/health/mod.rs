//! The health server's shared state: what the event loop knows (the child, readiness, a stop
//! in progress, counters), kept in atomics so that the HTTP side reads it without locks and
//! never waits on the supervisor.
//!
//! Routes (see `routes`): `GET`/`HEAD` `/health` `/healthz` `/livez` (200 while the child is
//! alive), `/ready` `/readyz` (200 while the child runs, is ready and no stop has begun),
//! `GET /metrics` (Prometheus text).

pub mod routes;
pub mod server;

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::time::Instant;

pub struct Health {
    started: Instant,
    child_pid: AtomicI32,
    child_alive: AtomicBool,
    ready: AtomicBool,
    stopping: AtomicBool,
    /// The main child's last exit status, -1 before it exited.
    last_exit: AtomicI32,
    starts: AtomicU64,
    /// Signals forwarded, by signal number.
    forwarded: [AtomicU64; 65],
    reaped: AtomicU64,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            started: Instant::now(),
            child_pid: AtomicI32::new(0),
            child_alive: AtomicBool::new(false),
            ready: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            last_exit: AtomicI32::new(-1),
            starts: AtomicU64::new(0),
            forwarded: std::array::from_fn(|_| AtomicU64::new(0)),
            reaped: AtomicU64::new(0),
        }
    }
}

impl Health {
    /// The child started; with `--ready-when started` it is ready at once.
    pub fn child_started(&self, pid: i32) {
        self.child_pid.store(pid, Ordering::Relaxed);
        self.starts.fetch_add(1, Ordering::Relaxed);
        self.child_alive.store(true, Ordering::Relaxed);
        self.ready.store(true, Ordering::Relaxed);
    }

    pub fn child_exited(&self, status: u8) {
        self.child_alive.store(false, Ordering::Relaxed);
        self.ready.store(false, Ordering::Relaxed);
        self.last_exit.store(i32::from(status), Ordering::Relaxed);
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

    fn alive(&self) -> bool {
        self.child_alive.load(Ordering::Relaxed)
    }

    fn is_ready(&self) -> bool {
        self.alive() && self.ready.load(Ordering::Relaxed) && !self.stopping.load(Ordering::Relaxed)
    }
}
