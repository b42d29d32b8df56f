//! usher's own events (child started, signal forwarded, child exited, zombies reaped...).
//!
//! In the `json` log format they are records on stderr with `"logger":"usher"`, in the same
//! schema as the child's lines: info and above by default, debug with `-v`. They are queued and
//! written by a thread of their own, so that a stalled stderr never stalls the signal loop
//! (past the queue's bound, events are counted and dropped rather than waited for).
//! In the `raw` format usher prints only its warnings and errors as plain `usher: ...` lines;
//! `-v` adds the info events, `-vv` the debug ones.
//! Writing never panics: a closed stderr must not take PID 1 down.

use std::collections::VecDeque;
use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use crate::log_io::output::{self, Target};
use crate::logs::{self, LogFormat};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error = 0,
    Warn = 1,
    Info = 2,
    Debug = 3,
}

impl Level {
    fn as_log_level(self) -> logs::Level {
        match self {
            Level::Error => logs::Level::Error,
            Level::Warn => logs::Level::Warn,
            Level::Info => logs::Level::Info,
            Level::Debug => logs::Level::Debug,
        }
    }
}

/// The most detailed level printed.
static MAX_LEVEL: AtomicU8 = AtomicU8::new(Level::Warn as u8);

/// Set once JSON logs are on: events become records in this queue.
static JSON: OnceLock<JsonEvents> = OnceLock::new();

/// Events waiting for the writer thread; bounded so that a stalled stderr costs memory only up
/// to a point.
const QUEUE_LIMIT: usize = 4096;

#[derive(Default)]
struct Queue {
    records: VecDeque<Vec<u8>>,
    /// The writer holds a record it has not finished writing.
    writing: bool,
}

struct JsonEvents {
    format: Arc<LogFormat>,
    queue: Mutex<Queue>,
    /// Signalled when the queue gains an event (for the writer) or empties (for `flush`).
    changed: Condvar,
    dropped: AtomicU64,
    writer_started: AtomicBool,
}

/// Plain text events: warnings and errors, more with each `-v`.
pub fn use_raw(verbosity: u8) {
    let level = (Level::Warn as u8)
        .saturating_add(verbosity)
        .min(Level::Debug as u8);
    MAX_LEVEL.store(level, Ordering::Relaxed);
}

/// JSON records: info and above, debug too with `-v`. Events are queued until
/// [`start_writer`] runs.
pub fn use_json(verbosity: u8, format: Arc<LogFormat>) {
    let level = (Level::Info as u8)
        .saturating_add(verbosity)
        .min(Level::Debug as u8);
    MAX_LEVEL.store(level, Ordering::Relaxed);
    let events = JsonEvents {
        format,
        queue: Mutex::new(Queue::default()),
        changed: Condvar::new(),
        dropped: AtomicU64::new(0),
        writer_started: AtomicBool::new(false),
    };
    let _ = JSON.set(events);
}

pub fn enabled(level: Level) -> bool {
    level as u8 <= MAX_LEVEL.load(Ordering::Relaxed)
}

pub fn emit(level: Level, message: fmt::Arguments) {
    if !enabled(level) {
        return;
    }
    let Some(json) = JSON.get() else {
        let prefix = match level {
            Level::Error => "usher: error: ",
            Level::Warn => "usher: warning: ",
            Level::Info | Level::Debug => "usher: ",
        };
        let _ = writeln!(std::io::stderr().lock(), "{prefix}{message}");
        return;
    };
    let mut record = Vec::with_capacity(160);
    let time = logs::time::rfc3339_micros(SystemTime::now());
    logs::encode_event(
        &json.format,
        level.as_log_level(),
        &message.to_string(),
        &time,
        &mut record,
    );
    let Ok(mut queue) = json.queue.lock() else {
        return;
    };
    if queue.records.len() >= QUEUE_LIMIT {
        json.dropped.fetch_add(1, Ordering::Relaxed);
        return;
    }
    queue.records.push_back(record);
    json.changed.notify_all();
}

/// Starts the thread that writes queued JSON events to stderr. Called once usher has dropped
/// its privileges: capabilities are per thread, so no thread may exist before that.
pub fn start_writer() -> std::io::Result<()> {
    let Some(json) = JSON.get() else {
        return Ok(());
    };
    json.writer_started.store(true, Ordering::Relaxed);
    std::thread::Builder::new()
        .name("usher-events".into())
        .spawn(move || {
            loop {
                let record = {
                    let Ok(mut queue) = json.queue.lock() else {
                        return;
                    };
                    queue.writing = false;
                    loop {
                        if let Some(record) = queue.records.pop_front() {
                            queue.writing = true;
                            break record;
                        }
                        json.changed.notify_all(); // all written: wake a waiting flush
                        queue = match json.changed.wait(queue) {
                            Ok(queue) => queue,
                            Err(_) => return,
                        };
                    }
                };
                let _ = output::write_records(Target::Stderr, &record);
                let dropped = json.dropped.swap(0, Ordering::Relaxed);
                if dropped > 0 {
                    let mut note = Vec::new();
                    let time = logs::time::rfc3339_micros(SystemTime::now());
                    let msg = format!("{dropped} usher events dropped: stderr was not being read");
                    logs::encode_event(&json.format, logs::Level::Warn, &msg, &time, &mut note);
                    let _ = output::write_records(Target::Stderr, &note);
                }
            }
        })?;
    json.writer_started.store(true, Ordering::Relaxed);
    Ok(())
}

/// Waits (until `deadline` at most) for the queued events to be written, before usher exits.
pub fn flush(deadline: Instant) {
    let Some(json) = JSON.get() else { return };
    let Ok(mut queue) = json.queue.lock() else {
        return;
    };
    if !json.writer_started.load(Ordering::Relaxed) {
        // usher is leaving before it started the writer (the command could not start).
        for record in queue.records.drain(..) {
            let _ = output::write_records(Target::Stderr, &record);
        }
        return;
    }
    while !queue.records.is_empty() || queue.writing {
        let left = deadline.saturating_duration_since(Instant::now());
        if left == Duration::ZERO {
            return;
        }
        queue = match json.changed.wait_timeout(queue, left) {
            Ok((queue, _)) => queue,
            Err(_) => return,
        };
    }
}

macro_rules! error { ($($arg:tt)*) => { $crate::log_io::events::emit($crate::log_io::events::Level::Error, format_args!($($arg)*)) } }
macro_rules! warning { ($($arg:tt)*) => { $crate::log_io::events::emit($crate::log_io::events::Level::Warn, format_args!($($arg)*)) } }
macro_rules! info { ($($arg:tt)*) => { $crate::log_io::events::emit($crate::log_io::events::Level::Info, format_args!($($arg)*)) } }
macro_rules! debug { ($($arg:tt)*) => { $crate::log_io::events::emit($crate::log_io::events::Level::Debug, format_args!($($arg)*)) } }
pub(crate) use {debug, error, info, warning as warn};
