//! The log relays: one thread per child stream, reading the pipe in large blocking reads and
//! writing each chunk's records with one write to usher's own stdout or stderr. A slow reader
//! of usher's output slows the child (its pipe fills) instead of growing usher's memory, and no
//! relay ever runs on the signal loop's thread. While the encoder holds a record that a stack
//! trace's next line may continue (`--log-multiline auto`), the relay waits for the pipe until
//! the encoder's `held_until` (50 ms after the last read that added to the record, 2 s
//! after its first line at the latest: `HOLD` and `MAX_HOLD` in logs/multiline.rs), then
//! writes the record.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use crate::health::Health;
use crate::log_io::events::warn;
use crate::log_io::output::{self, Target};
use crate::logs::{LineEncoder, LogFormat, Stream};
use crate::sys;

/// Bytes read from the child's pipe at once.
const READ_CHUNK: usize = 64 * 1024;

/// The running relays; each reports on `done` when its pipe reached end of file.
pub struct Relays {
    done: Arc<Finished>,
    running: usize,
    /// Bytes read so far by all relays: draining that still moves is not cut short.
    progress: Arc<AtomicU64>,
}

/// Threads held for the relays while the child is spawned, so that the system has refused
/// them before the child starts rather than after (a pids limit counts threads). When usher
/// drops no privileges they become the relays ([`start`]); before a privilege drop they are
/// released, and joined, on drop: no thread may live through it (capabilities are per thread),
/// and the relays start anew after it.
pub struct Reservation {
    released: Arc<AtomicBool>,
    held: Vec<(JobSlot, std::thread::JoinHandle<()>)>,
}

/// Where a reserved thread finds its job.
type JobSlot = Arc<Mutex<Option<Job>>>;

/// A reserved thread's work, handed over once the thread exists.
type Job = Box<dyn FnOnce() + Send>;

/// Holds an idle thread for each of `names` (see [`Reservation`]). Errors: a thread could not
/// be created (EAGAIN: a pids limit or RLIMIT_NPROC reached); the ones made are released.
pub fn reserve(names: &[&str]) -> io::Result<Reservation> {
    let mut reservation = Reservation {
        released: Arc::new(AtomicBool::new(false)),
        held: Vec::with_capacity(names.len()),
    };
    for name in names {
        let released = Arc::clone(&reservation.released);
        let job: JobSlot = Arc::default();
        let handed = Arc::clone(&job);
        let thread = std::thread::Builder::new()
            .name((*name).to_string())
            .spawn(move || {
                loop {
                    if let Some(job) = handed.lock().map_or(None, |mut job| job.take()) {
                        return job();
                    }
                    if released.load(Ordering::Acquire) {
                        return;
                    }
                    std::thread::park();
                }
            })?;
        reservation.held.push((job, thread));
    }
    Ok(reservation)
}

impl Reservation {
    /// Gives the held threads their jobs, in order (threads left over are released).
    fn run(mut self, jobs: Vec<Job>) {
        for (job, (slot, thread)) in jobs.into_iter().zip(self.held.drain(..)) {
            if let Ok(mut slot) = slot.lock() {
                *slot = Some(job);
            }
            thread.thread().unpark();
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.released.store(true, Ordering::Release);
        for (_, thread) in self.held.drain(..) {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

/// How long a relay thread's creation is retried while the system refuses it (EAGAIN): the
/// kernel uncharges a thread from a pids limit a moment after `join` returns, so the threads
/// of a [`Reservation`] just released (before a privilege drop) may still count.
pub const RETRY_FOR: Duration = Duration::from_millis(200);

/// Spawns a thread running `body`, again while the system says EAGAIN, for [`RETRY_FOR`] at
/// most. A refused attempt drops its copy of `body`: what must survive it (a pipe) is shared.
fn spawn_retrying(name: &str, body: impl FnOnce() + Send + Clone + 'static) -> io::Result<()> {
    let give_up = Instant::now() + RETRY_FOR;
    loop {
        let attempt = body.clone();
        match std::thread::Builder::new()
            .name(name.to_string())
            .spawn(attempt)
        {
            Ok(_) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) && Instant::now() < give_up => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Starts a relay thread for each pipe, on the `reserved` threads when given (one for each
/// pipe, in order), else on new ones. Counts what they relay in `health` (for /metrics).
/// Errors: a thread could not be created (the relays started before it keep running).
pub fn start(
    pipes: Vec<(File, Stream)>,
    format: &Arc<LogFormat>,
    health: &Arc<Health>,
    reserved: Option<Reservation>,
) -> io::Result<Relays> {
    let mut jobs: Vec<Job> = Vec::new();
    let done = Arc::new(Finished::default());
    let report = Report::new(&done);
    let running = pipes.len();
    let progress = Arc::new(AtomicU64::new(0));
    sys::enlarge_pipe(&io::stdout());
    sys::enlarge_pipe(&io::stderr());
    for (pipe, stream) in pipes {
        sys::enlarge_pipe(&pipe);
        let format = Arc::clone(format);
        let report = report.clone();
        let progress = Arc::clone(&progress);
        let health = Arc::clone(health);
        let name = format!("usher-{}", stream.as_str());
        // Taken by the attempt that runs; a refused one leaves it here.
        let pipe = Arc::new(Mutex::new(Some(pipe)));
        let body = move || {
            let pipe = pipe.lock().map_or(None, |mut pipe| pipe.take());
            if let Some(pipe) = pipe {
                relay(pipe, stream, format, &progress, &health);
            }
            report.done();
        };
        match reserved {
            Some(_) => jobs.push(Box::new(body)),
            None => spawn_retrying(&name, body)?,
        }
    }
    if let Some(reserved) = reserved {
        reserved.run(jobs);
    }
    drop(report);
    Ok(Relays {
        done,
        running,
        progress,
    })
}

impl Relays {
    /// Waits until every pipe is drained. While lines keep coming (a slow reader of usher's
    /// output, a big backlog) it waits on; once nothing moves for `idle` (a process outside
    /// usher's reach holds a pipe open), it gives up. Returns whether all finished.
    pub fn wait(&mut self, idle: Duration) -> bool {
        let mut seen = self.progress.load(Ordering::Relaxed);
        let mut deadline = Instant::now() + idle;
        let mut taken = 0;
        while self.running > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.done.next(taken, left.min(Duration::from_millis(100))) {
                Next::Finished => {
                    taken += 1;
                    self.running -= 1;
                }
                Next::Gone => return false,
                Next::Timeout => {
                    let now = self.progress.load(Ordering::Relaxed);
                    if now != seen {
                        seen = now;
                        deadline = Instant::now() + idle;
                    } else if Instant::now() >= deadline {
                        return false;
                    }
                }
            }
        }
        true
    }
}

/// The relays' reports that their pipes were drained: a count, not a channel (std's channels
/// cost about 9 KB of binary for this one use). `(finished, reporters)`: how many relays
/// reported, and how many [`Report`]s exist that still may.
#[derive(Default)]
struct Finished {
    state: Mutex<(usize, usize)>,
    changed: Condvar,
}

/// What [`Finished::next`] saw.
enum Next {
    /// A relay reported, past the `taken` reports already seen.
    Finished,
    /// No report left to come: every [`Report`] is gone (a relay's job dropped unrun).
    Gone,
    Timeout,
}

impl Finished {
    /// Waits up to `timeout` for a report beyond the first `taken` ones.
    fn next(&self, taken: usize, timeout: Duration) -> Next {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (state, _) = self
            .changed
            .wait_timeout_while(state, timeout, |&mut (finished, reporters)| {
                finished <= taken && reporters > 0
            })
            .unwrap_or_else(PoisonError::into_inner);
        match *state {
            (finished, _) if finished > taken => Next::Finished,
            (_, 0) => Next::Gone,
            _ => Next::Timeout,
        }
    }

    fn update(&self, change: impl FnOnce(&mut (usize, usize))) {
        change(&mut self.state.lock().unwrap_or_else(PoisonError::into_inner));
        self.changed.notify_all();
    }
}

/// A relay's way to report its pipe drained, once; each copy counts as a reporter until dropped.
struct Report(Arc<Finished>);

impl Report {
    fn new(finished: &Arc<Finished>) -> Report {
        finished.update(|state| state.1 += 1);
        Report(Arc::clone(finished))
    }

    fn done(self) {
        self.0.update(|state| state.0 += 1);
    }
}

impl Clone for Report {
    fn clone(&self) -> Report {
        Report::new(&self.0)
    }
}

impl Drop for Report {
    fn drop(&mut self) {
        self.0.update(|state| state.1 = state.1.saturating_sub(1));
    }
}

fn relay(
    mut pipe: File,
    stream: Stream,
    format: Arc<LogFormat>,
    progress: &AtomicU64,
    health: &Health,
) {
    let mut encoder = LineEncoder::new(format, stream);
    let mut chunk = vec![0u8; READ_CHUNK];
    let mut records = Vec::with_capacity(READ_CHUNK * 2);
    let mut output_open = true;
    loop {
        if let Some(deadline) = encoder.held_until() {
            // Input that is there already continues the record, however late; only waiting
            // for more is bounded. A failed wait ends the hold too.
            if !sys::wait_readable(pipe.as_fd(), deadline).unwrap_or(false) {
                records.clear();
                encoder.flush_held(&mut records);
                count(health, stream, 0, &mut encoder);
                if output_open {
                    output_open = write_records(stream, &records);
                }
                continue;
            }
        }
        let read = match pipe.read(&mut chunk) {
            Ok(0) => break,
            Ok(read) => read,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        let read_at = Instant::now();
        progress.fetch_add(read as u64, Ordering::Relaxed);
        let time = crate::logs::time::rfc3339_micros(SystemTime::now());
        records.clear();
        let data = chunk.get(..read).unwrap_or_default();
        encoder.push(data, &time, read_at, &mut records);
        count(health, stream, read, &mut encoder);
        // Once usher's own output is gone (EPIPE), keep draining the pipe so the child is not
        // blocked or killed by a SIGPIPE for a log line nobody can read any more.
        if output_open {
            output_open = write_records(stream, &records);
        }
    }
    let time = crate::logs::time::rfc3339_micros(SystemTime::now());
    records.clear();
    encoder.finish(&time, &mut records);
    count(health, stream, 0, &mut encoder);
    if output_open {
        write_records(stream, &records);
    }
}

/// Counts a chunk for /metrics, from the encoder's own tally (no second pass over the records).
fn count(health: &Health, stream: Stream, read: usize, encoder: &mut LineEncoder) {
    let (records, partial) = encoder.take_counts();
    health.logged(stream, read, records, partial);
}

/// One write of whole records; after a failure (usher's output closed) the relay keeps
/// draining and says once that output is being discarded.
fn write_records(stream: Stream, records: &[u8]) -> bool {
    let target = match stream {
        Stream::Stdout => Target::Stdout,
        Stream::Stderr => Target::Stderr,
    };
    match output::write_records(target, records) {
        Ok(()) => true,
        Err(e) => {
            warn!(
                log_write_failed,
                output = stream.as_str(),
                "cannot write the child's {} ({e}): discarding its lines",
                stream.as_str()
            );
            false
        }
    }
}
