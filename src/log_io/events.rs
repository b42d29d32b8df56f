//! usher's own events (child started, signal forwarded, child exited, orphans reaped...), emitted
//! through `tracing` and written by [`EventLayer`], a `tracing-subscriber` layer of usher's own
//! (the crate's `fmt` layer and `env-filter` would cost far more binary than they give here).
//!
//! Every call site names its event: `info!(child_started, pid = main_pid, "started ...")` is
//! `tracing::info!(event = "child_started", pid = main_pid, "started ...")`. The name and the
//! fields travel as tracing fields; the layer visits them (strings and `%` values as JSON
//! strings, integers as numbers, `message` as `msg`). The README lists every event.
//! [`use_raw`] or [`use_json`] sets the process's subscriber once, at start: a level filter by
//! verbosity over the layer.
//!
//! - `json` log format: records on stderr in the schema of the child's lines (`--log-schema`),
//!   with `"logger":"usher"` and the event's fields between `logger` and `msg` (under the
//!   schema's names: see `logs::schema`): info and above by default, debug with `-v`. The layer only formats and enqueues; a thread of its own writes,
//!   so a stalled stderr never stalls the signal loop (past the queue's bound, events are
//!   counted and dropped, and a later `events_dropped` record says how many).
//! - `raw` format: plain `usher: ...` lines, warnings and errors only; `-v` adds the info events,
//!   `-vv` the debug ones.
//!
//! Keys: the schema's own (in usher's: `time`, `level`, `stream`, `msg`, `logger`, `partial`)
//! never come from an event's fields (such a field is left out). An event's field wins over a static
//! `--log-field` of the same key, which is then left out of that record: the same rule as for a
//! child's JSON line, whose own keys win over the static fields.
//!
//! Writing never panics: a closed stderr must not take PID 1 down.

use std::collections::VecDeque;
use std::fmt::{self, Write as _};
use std::io::{self, Write as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Instant, SystemTime};

use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::{Event, Level, Metadata, Subscriber, span};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

use crate::log_io::output::{self, Target};
use crate::logs::{self, EventFields, LogFormat};

/// Set once JSON logs are on: the queue that [`start_writer`] and [`flush`] work on.
static JSON: OnceLock<Arc<JsonEvents>> = OnceLock::new();

/// Events waiting for the writer thread; bounded so that a stalled stderr costs memory only up
/// to a point.
const QUEUE_LIMIT: usize = 4096;

/// Plain text events: warnings and errors, more with each `-v`.
pub fn use_raw(verbosity: u8) {
    let level = match verbosity {
        0 => LevelFilter::WARN,
        1 => LevelFilter::INFO,
        _ => LevelFilter::DEBUG,
    };
    install(level, Output::Raw);
}

/// JSON records: info and above, debug too with `-v`. Records are queued until
/// [`start_writer`] runs.
pub fn use_json(verbosity: u8, format: Arc<LogFormat>) {
    let level = match verbosity {
        0 => LevelFilter::INFO,
        _ => LevelFilter::DEBUG,
    };
    let json = Arc::new(JsonEvents::new(format, Box::new(write_to_stderr)));
    if JSON.set(Arc::clone(&json)).is_ok() {
        install(level, Output::Json(json));
    }
}

fn write_to_stderr(record: &[u8]) {
    let _ = output::write_records(Target::Stderr, record);
}

/// Makes the level filter and the layer the process's subscriber, once: a global default cannot
/// be replaced, so a second call changes nothing.
fn install(level: LevelFilter, output: Output) {
    let subscriber = Spanless.with(level).with(EventLayer { output });
    let _ = tracing::subscriber::set_global_default(subscriber);
}

/// Starts the thread that writes queued JSON events to stderr. Called once usher has dropped
/// its privileges: capabilities are per thread, so no thread may exist before that. Should the
/// thread not start, the queued events are written at once, and later ones as they come.
pub fn start_writer() -> io::Result<()> {
    let Some(json) = JSON.get() else {
        return Ok(());
    };
    json.start(|body| {
        std::thread::Builder::new()
            .name("usher-events".into())
            .spawn(body)
            .map(drop)
    })
}

/// Waits (until `deadline` at most) for the queued events to be written, before usher exits.
pub fn flush(deadline: Instant) {
    if let Some(json) = JSON.get() {
        json.flush(deadline);
    }
}

/// The subscriber under the layers. usher emits events only, never spans, so nothing needs
/// keeping: tracing-subscriber's `Registry` would store spans that never exist, for about 16 KB
/// of code and 36 KB of memory at start (its slab's shard table).
struct Spanless;

impl Subscriber for Spanless {
    /// The level filter above decides.
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }

    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}

    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}

    /// The layers above do the work.
    fn event(&self, _: &Event<'_>) {}

    fn enter(&self, _: &span::Id) {}

    fn exit(&self, _: &span::Id) {}
}

/// Writes each event that the level filter before it lets through: a JSON record into the
/// queue, or a raw line to stderr.
struct EventLayer {
    output: Output,
}

enum Output {
    Raw,
    Json(Arc<JsonEvents>),
}

impl<S: Subscriber> Layer<S> for EventLayer {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let level = *event.metadata().level();
        match &self.output {
            Output::Raw => {
                let _ = writeln!(io::stderr().lock(), "{}{}", raw_prefix(level), fields.msg);
            }
            Output::Json(json) => {
                let time = logs::time::rfc3339_micros(SystemTime::now());
                let mut record = Vec::with_capacity(192);
                json.encode(log_level(level), &fields, &time, &mut record);
                json.submit(record);
            }
        }
    }
}

fn raw_prefix(level: Level) -> &'static str {
    match level {
        Level::ERROR => "usher: error: ",
        Level::WARN => "usher: warning: ",
        _ => "usher: ",
    }
}

fn log_level(level: Level) -> logs::Level {
    match level {
        Level::ERROR => logs::Level::Error,
        Level::WARN => logs::Level::Warn,
        Level::INFO => logs::Level::Info,
        Level::DEBUG => logs::Level::Debug,
        Level::TRACE => logs::Level::Trace,
    }
}

/// An event as the layer visits it: the message, and the other fields (the record's own keys
/// among them are left out by [`EventFields`]).
#[derive(Debug, Default)]
struct Fields {
    msg: String,
    fields: EventFields,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.msg.push_str(value),
            key => self.fields.string(key, value),
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match field.name() {
            "message" => {
                let _ = write!(self.msg, "{value:?}");
            }
            key => self.fields.string(key, &format!("{value:?}")),
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.fields.literal(field.name(), &value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.fields.literal(field.name(), &value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.fields.literal(field.name(), &value);
    }

    /// To the microsecond, written by hand: the default (Debug) would link in core's float
    /// formatting, about 12 KB, for fields no event has today. JSON has no NaN or infinity.
    fn record_f64(&mut self, field: &Field, value: f64) {
        let key = field.name();
        if !value.is_finite() || value.abs() >= 9e18 {
            return self.fields.literal(key, &"null");
        }
        if value.abs() >= 9e12 {
            // Microseconds would overflow; an f64 this large has no useful fraction anyway.
            return self.fields.literal(key, &(value as i64));
        }
        let micros = (value * 1e6).round() as i64;
        let sign = if micros < 0 { "-" } else { "" };
        let (whole, fraction) = (
            micros.unsigned_abs() / 1_000_000,
            micros.unsigned_abs() % 1_000_000,
        );
        self.fields
            .literal(key, &format_args!("{sign}{whole}.{fraction:06}"));
    }
}

/// Where records go: stderr, under the output lock.
type Sink = Box<dyn Fn(&[u8]) + Send + Sync>;

/// The JSON side: how records look, and the queue the writer thread empties.
struct JsonEvents {
    format: Arc<LogFormat>,
    queue: Mutex<Queue>,
    /// Signalled when the queue gains a record (for the writer) or empties (for `flush`).
    changed: Condvar,
    /// Records dropped since the last `events_dropped` record.
    dropped: AtomicU64,
    sink: Sink,
}

#[derive(Default)]
struct Queue {
    records: VecDeque<Vec<u8>>,
    /// The writer holds a record it has not finished writing.
    writing: bool,
    writer: Writer,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Writer {
    /// Not started yet: records wait in the queue.
    #[default]
    NotStarted,
    Running,
    /// Could not be started: records are written at once, by the thread that emits them.
    Absent,
}

impl JsonEvents {
    fn new(format: Arc<LogFormat>, sink: Sink) -> JsonEvents {
        JsonEvents {
            format,
            queue: Mutex::new(Queue::default()),
            changed: Condvar::new(),
            dropped: AtomicU64::new(0),
            sink,
        }
    }

    /// The record(s) of one event (see [`logs::encode_event`]).
    fn encode(&self, level: logs::Level, fields: &Fields, time: &[u8; 27], out: &mut Vec<u8>) {
        logs::encode_event(&self.format, level, &fields.fields, &fields.msg, time, out);
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A panic aborts usher (panic = "abort"), so no lock is ever poisoned.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands a record to the writer thread, or drops it (counted) when the queue is full. With
    /// no writer thread possible, writes it here and now.
    fn submit(&self, record: Vec<u8>) {
        let mut queue = self.lock();
        match queue.writer {
            // Under the queue lock, so records keep their order.
            Writer::Absent => (self.sink)(&record),
            _ if queue.records.len() >= QUEUE_LIMIT => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            _ => {
                queue.records.push_back(record);
                self.changed.notify_all();
            }
        }
    }

    /// Starts the writer with `spawn`, and marks it running only once it is. If it cannot start,
    /// what waits is written at once, and later records as they come.
    fn start(
        self: &Arc<Self>,
        spawn: impl FnOnce(Box<dyn FnOnce() + Send>) -> io::Result<()>,
    ) -> io::Result<()> {
        let json = Arc::clone(self);
        let started = spawn(Box::new(move || json.write_queued()));
        let mut queue = self.lock();
        match started {
            Ok(()) => queue.writer = Writer::Running,
            Err(_) => {
                queue.writer = Writer::Absent;
                self.write_waiting(&mut queue);
            }
        }
        started
    }

    /// The writer thread: writes records as they come, and says when some were dropped.
    fn write_queued(&self) {
        loop {
            let record = {
                let mut queue = self.lock();
                queue.writing = false;
                loop {
                    if let Some(record) = queue.records.pop_front() {
                        queue.writing = true;
                        break record;
                    }
                    self.changed.notify_all(); // all written: wake a waiting flush
                    queue = self
                        .changed
                        .wait(queue)
                        .unwrap_or_else(PoisonError::into_inner);
                }
            };
            (self.sink)(&record);
            self.note_dropped();
        }
    }

    /// Writes what waits in the queue, on this thread.
    fn write_waiting(&self, queue: &mut Queue) {
        for record in queue.records.drain(..) {
            (self.sink)(&record);
        }
        self.note_dropped();
    }

    fn note_dropped(&self) {
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        if dropped == 0 {
            return;
        }
        let mut fields = Fields {
            msg: format!("{dropped} usher events dropped: stderr was not being read"),
            ..Fields::default()
        };
        fields.fields.string("event", "events_dropped");
        fields.fields.literal("count", &dropped);
        let time = logs::time::rfc3339_micros(SystemTime::now());
        let mut note = Vec::new();
        self.encode(logs::Level::Warn, &fields, &time, &mut note);
        (self.sink)(&note);
    }

    /// Waits (until `deadline` at most) for the writer to empty the queue; with no writer
    /// running (usher leaves before starting it, or it could not start), writes it here.
    fn flush(&self, deadline: Instant) {
        let mut queue = self.lock();
        if queue.writer != Writer::Running {
            self.write_waiting(&mut queue);
            return;
        }
        while !queue.records.is_empty() || queue.writing {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            queue = match self.changed.wait_timeout(queue, left) {
                Ok((queue, _)) => queue,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }
}

/// `info!(child_started, pid = main_pid, "started {name:?}")`: a tracing event at that level
/// with `event = "child_started"`, then fields and the message as `tracing::info!` takes them.
/// The name comes first so that no event can lack one.
macro_rules! error { ($event:ident, $($rest:tt)+) => { ::tracing::error!(event = stringify!($event), $($rest)+) } }
macro_rules! warning { ($event:ident, $($rest:tt)+) => { ::tracing::warn!(event = stringify!($event), $($rest)+) } }
macro_rules! info { ($event:ident, $($rest:tt)+) => { ::tracing::info!(event = stringify!($event), $($rest)+) } }
macro_rules! debug { ($event:ident, $($rest:tt)+) => { ::tracing::debug!(event = stringify!($event), $($rest)+) } }
pub(crate) use {debug, error, info, warning as warn};

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Map, Value};
    use std::time::Duration;

    const TIME: &[u8; 27] = b"2026-01-02T03:04:05.678901Z";

    type Written = Arc<Mutex<Vec<u8>>>;

    fn events(max_record: usize, fields: &[(&str, &str)]) -> (Arc<JsonEvents>, Written) {
        schema_events(logs::LogSchema::Usher, max_record, fields)
    }

    fn schema_events(
        schema: logs::LogSchema,
        max_record: usize,
        fields: &[(&str, &str)],
    ) -> (Arc<JsonEvents>, Written) {
        let fields = fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let format = Arc::new(LogFormat::new(
            schema,
            max_record,
            fields,
            logs::Level::Error,
        ));
        let written = Written::default();
        let sink = Arc::clone(&written);
        let sink: Sink = Box::new(move |record| sink.lock().unwrap().extend_from_slice(record));
        (Arc::new(JsonEvents::new(format, sink)), written)
    }

    fn records(bytes: &[u8]) -> Vec<Map<String, Value>> {
        std::str::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    /// Runs `emit` with the layer (JSON into `json`'s queue) as the thread's subscriber.
    fn with_layer(json: &Arc<JsonEvents>, emit: impl FnOnce()) {
        let layer = EventLayer {
            output: Output::Json(Arc::clone(json)),
        };
        tracing::subscriber::with_default(Spanless.with(layer), emit);
    }

    fn queued(json: &JsonEvents) -> Vec<u8> {
        json.lock().records.iter().flatten().copied().collect()
    }

    #[test]
    fn events_become_records_with_their_fields() {
        let (json, _) = events(16384, &[("service", "api")]);
        let signal = "SIGTERM";
        with_layer(&json, || {
            info!(child_started, pid = 42, "started {:?} as pid {}", "app", 42);
            info!(signal_forwarded, signal = %signal, pid = 42_i32, group = true, "forwarded");
            warn!(process_reaped, pid = 7, status = 143_u8, "reaped \"x\"\n");
            debug!(signal_received, sender_pid = 1, "received");
        });
        let got = records(&queued(&json));
        assert_eq!(got.len(), 4, "{got:?}");
        let started = &got[0];
        assert_eq!(started["event"], "child_started");
        assert_eq!(started["pid"], 42);
        assert_eq!(started["msg"], "started \"app\" as pid 42");
        assert_eq!(started["logger"], "usher");
        assert_eq!(started["level"], "info");
        assert_eq!(started["service"], "api");
        assert_eq!(got[1]["signal"], "SIGTERM");
        assert_eq!(got[1]["group"], true);
        assert_eq!(got[2]["status"], 143);
        assert_eq!(got[2]["level"], "warn");
        assert_eq!(got[2]["msg"], "reaped \"x\"\n");
        assert_eq!(got[3]["level"], "debug");
        assert!(got.iter().all(|r| r.get("stream").is_none()), "{got:?}");
    }

    /// The same tracing events in each schema: the names change, the values do not.
    #[test]
    fn events_follow_the_schema() {
        use logs::LogSchema;
        for (schema, level, logger, event, pid, msg) in [
            (
                LogSchema::Gcp,
                "severity",
                "logger",
                "event",
                "pid",
                "message",
            ),
            (
                LogSchema::Ecs,
                "log.level",
                "log.logger",
                "event.action",
                "usher.pid",
                "message",
            ),
            (
                LogSchema::Otel,
                "SeverityText",
                "otel.scope.name",
                "EventName",
                "pid",
                "Body",
            ),
        ] {
            let (json, _) = schema_events(schema, 16384, &[("service", "api")]);
            with_layout_events(&json);
            let got = records(&queued(&json));
            assert_eq!(got.len(), 2, "{got:?}");
            for record in &got {
                assert_eq!(record[logger], "usher", "{record:?}");
                assert_eq!(record["service"], "api");
            }
            assert_eq!(got[0][event], "child_started");
            assert_eq!(got[0][pid], 42);
            assert_eq!(got[0][msg], "started \"app\"");
            assert_eq!(got[1][event], "process_reaped");
            let warn = match schema {
                LogSchema::Gcp => "WARNING",
                LogSchema::Otel => "WARN",
                _ => "warn",
            };
            assert_eq!(got[1][level], warn);
        }
    }

    fn with_layout_events(json: &Arc<JsonEvents>) {
        with_layer(json, || {
            info!(child_started, pid = 42, "started {:?}", "app");
            warn!(process_reaped, pid = 7, status = 143_u8, "reaped");
        });
    }

    #[test]
    fn records_are_the_encoders_plus_the_fields_before_msg() {
        let (json, _) = events(16384, &[("service", "api")]);
        let mut fields = Fields {
            msg: "exiting with status 0".into(),
            ..Fields::default()
        };
        fields.fields.string("event", "usher_exiting");
        fields.fields.literal("status", &0);
        let mut record = Vec::new();
        json.encode(logs::Level::Info, &fields, TIME, &mut record);
        let mut plain = Vec::new();
        logs::encode_event(
            &json.format,
            logs::Level::Info,
            &EventFields::default(),
            &fields.msg,
            TIME,
            &mut plain,
        );
        let expected = String::from_utf8(plain)
            .unwrap()
            .replace(r#""msg""#, r#""event":"usher_exiting","status":0,"msg""#);
        assert_eq!(String::from_utf8(record).unwrap(), expected);
    }

    #[test]
    fn event_fields_win_over_static_fields_and_never_take_core_keys() {
        let (json, _) = events(
            16384,
            &[("service", "api"), ("pid", "static"), ("event", "x\"y")],
        );
        let mut fields = Fields {
            msg: "m".into(),
            ..Fields::default()
        };
        fields.fields.string("event", "child_started");
        fields.fields.literal("pid", &9);
        for core in ["time", "level", "stream", "msg", "logger", "partial"] {
            fields.fields.string(core, "not this");
        }
        let mut out = Vec::new();
        json.encode(logs::Level::Info, &fields, TIME, &mut out);
        let text = String::from_utf8(out).unwrap();
        let record = &records(text.as_bytes())[0];
        assert_eq!(record["pid"], 9);
        assert_eq!(record["event"], "child_started");
        assert_eq!(record["service"], "api");
        assert_eq!(record["msg"], "m");
        assert_eq!(record["level"], "info");
        assert!(
            !text.contains("static") && !text.contains("not this"),
            "{text}"
        );
        assert_eq!(text.matches(r#""pid""#).count(), 1, "{text}");
    }

    #[test]
    fn long_messages_are_split_within_the_limit_each_record_with_its_fields() {
        for max in [1024, 1500, 4096] {
            let (json, _) = events(max, &[("service", "api")]);
            let msg: String = (0..3000)
                .map(|i| match i % 7 {
                    0 => '"',
                    1 => '\u{1}',
                    2 => 'é',
                    3 => '🦀',
                    _ => 'x',
                })
                .collect();
            let mut fields = Fields {
                msg: msg.clone(),
                ..Fields::default()
            };
            fields.fields.string("event", "spawn_failed");
            fields.fields.literal("pid", &123_456);
            let mut out = Vec::new();
            json.encode(logs::Level::Error, &fields, TIME, &mut out);
            let text = String::from_utf8(out).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            assert!(lines.len() > 1);
            for line in &lines {
                assert!(line.len() < max, "{} bytes of {max}", line.len());
            }
            let got = records(text.as_bytes());
            let mut joined = String::new();
            for (index, record) in got.iter().enumerate() {
                assert_eq!(record["event"], "spawn_failed");
                assert_eq!(record["pid"], 123_456);
                assert_eq!(record["service"], "api");
                let partial = record.get("partial") == Some(&Value::Bool(true));
                assert_eq!(partial, index + 1 < got.len(), "{record:?}");
                joined.push_str(record["msg"].as_str().unwrap());
            }
            assert_eq!(joined, msg);
        }
    }

    #[test]
    fn a_writer_that_cannot_start_leaves_nothing_waiting() {
        let (json, written) = events(16384, &[]);
        json.submit(b"first\n".to_vec());
        json.submit(b"second\n".to_vec());
        let result = json.start(|_| Err(io::Error::other("no threads left")));
        assert!(result.is_err());
        // Marked absent, not started, and what waited is written.
        assert_eq!(json.lock().writer, Writer::Absent);
        assert_eq!(&*written.lock().unwrap(), b"first\nsecond\n");
        // Later records go out at once; flush has nothing to wait for.
        json.submit(b"third\n".to_vec());
        assert_eq!(&*written.lock().unwrap(), b"first\nsecond\nthird\n");
        // Nothing to wait for: flush returns at once, long before its deadline (an hour: any
        // machine, however loaded, tells the two apart).
        let before = Instant::now();
        json.flush(Instant::now() + Duration::from_secs(3600));
        assert!(before.elapsed() < Duration::from_secs(600));
        assert!(json.lock().records.is_empty());
    }

    #[test]
    fn a_running_writer_writes_everything_before_flush_returns() {
        let (json, written) = events(16384, &[]);
        json.submit(b"0\n".to_vec());
        json.start(|body| std::thread::Builder::new().spawn(body).map(drop))
            .unwrap();
        assert_eq!(json.lock().writer, Writer::Running);
        let mut expected = b"0\n".to_vec();
        for i in 1..200 {
            json.submit(format!("{i}\n").into_bytes());
            expected.extend_from_slice(format!("{i}\n").as_bytes());
        }
        json.flush(Instant::now() + Duration::from_secs(10));
        assert_eq!(*written.lock().unwrap(), expected);
    }

    #[test]
    fn past_the_bound_events_are_counted_and_reported() {
        let (json, written) = events(16384, &[]);
        for _ in 0..QUEUE_LIMIT + 3 {
            json.submit(b"r\n".to_vec());
        }
        assert_eq!(json.lock().records.len(), QUEUE_LIMIT);
        // Never started (usher leaves early): flush writes here, then the note.
        json.flush(Instant::now());
        let text = String::from_utf8(written.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), QUEUE_LIMIT + 1);
        let note: Map<String, Value> = serde_json::from_str(lines[QUEUE_LIMIT]).unwrap();
        assert_eq!(note["event"], "events_dropped");
        assert_eq!(note["count"], 3);
        assert_eq!(note["level"], "warn");
    }

    #[test]
    fn raw_lines_and_levels() {
        assert_eq!(raw_prefix(Level::ERROR), "usher: error: ");
        assert_eq!(raw_prefix(Level::WARN), "usher: warning: ");
        assert_eq!(raw_prefix(Level::INFO), "usher: ");
        assert_eq!(raw_prefix(Level::DEBUG), "usher: ");
        assert_eq!(log_level(Level::WARN), logs::Level::Warn);
    }

    #[test]
    fn numbers_and_strings_are_json() {
        let mut fields = Fields::default();
        // Fields of a real callsite, as the layer gets them.
        static CALLSITE: tracing::callsite::DefaultCallsite =
            tracing::callsite::DefaultCallsite::new(&META);
        static META: tracing::Metadata<'static> = tracing::Metadata::new(
            "test",
            "usher",
            Level::INFO,
            None,
            None,
            None,
            tracing::field::FieldSet::new(
                &["a", "b", "c", "d", "e"],
                tracing::callsite::Identifier(&CALLSITE),
            ),
            tracing::metadata::Kind::EVENT,
        );
        let field = |name| META.fields().field(name).unwrap();
        fields.record_f64(&field("a"), 1.5);
        fields.record_f64(&field("b"), -0.25);
        fields.record_f64(&field("c"), f64::NAN);
        fields.record_i64(&field("d"), -3);
        fields.record_str(&field("e"), "tab\there\u{7f}");
        let (json, _) = events(16384, &[]);
        let mut record = Vec::new();
        json.encode(logs::Level::Info, &fields, TIME, &mut record);
        let record = String::from_utf8(record).unwrap();
        let members = r#""a":1.500000,"b":-0.250000,"c":null,"d":-3,"e":"tab\there\u007f","#;
        assert!(
            record.contains(&format!(r#""logger":"usher",{members}"msg":"#)),
            "{record}"
        );
    }
}
