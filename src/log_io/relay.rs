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
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
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
    done: Receiver<Stream>,
    running: usize,
    /// Bytes read so far by all relays: draining that still moves is not cut short.
    progress: Arc<AtomicU64>,
}

/// Starts a relay thread for each pipe.
/// Counts what they relay in `health` (for /metrics).
pub fn start(
    pipes: Vec<(File, Stream)>,
    format: &Arc<LogFormat>,
    health: &Arc<Health>,
) -> io::Result<Relays> {
    let (sender, done) = channel();
    let running = pipes.len();
    let progress = Arc::new(AtomicU64::new(0));
    sys::enlarge_pipe(&io::stdout());
    sys::enlarge_pipe(&io::stderr());
    for (pipe, stream) in pipes {
        sys::enlarge_pipe(&pipe);
        let format = Arc::clone(format);
        let sender: Sender<Stream> = sender.clone();
        let progress = Arc::clone(&progress);
        let health = Arc::clone(health);
        let name = format!("usher-{}", stream.as_str());
        std::thread::Builder::new().name(name).spawn(move || {
            relay(pipe, stream, format, &progress, &health);
            let _ = sender.send(stream);
        })?;
    }
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
        while self.running > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.done.recv_timeout(left.min(Duration::from_millis(100))) {
                Ok(_) => self.running -= 1,
                Err(RecvTimeoutError::Disconnected) => return false,
                Err(RecvTimeoutError::Timeout) => {
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
