//! The log relays: one thread per child stream, reading the pipe in large blocking reads and
//! writing each chunk's records with one write to usher's own stdout or stderr. A slow reader
//! of usher's output slows the child (its pipe fills) instead of growing usher's memory, and no
//! relay ever runs on the signal loop's thread.

use std::fs::File;
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Instant, SystemTime};

use crate::logs::{LineEncoder, LogFormat, Stream};
use crate::sys;

/// Bytes read from the child's pipe at once.
const READ_CHUNK: usize = 64 * 1024;

/// The running relays; each reports on `done` when its pipe reached end of file.
pub struct Relays {
    done: Receiver<Stream>,
    running: usize,
}

/// Starts a relay thread for each pipe.
pub fn start(pipes: Vec<(File, Stream)>, format: &Arc<LogFormat>) -> io::Result<Relays> {
    let (sender, done) = channel();
    let running = pipes.len();
    sys::enlarge_pipe(&io::stdout());
    sys::enlarge_pipe(&io::stderr());
    for (pipe, stream) in pipes {
        sys::enlarge_pipe(&pipe);
        let format = Arc::clone(format);
        let sender: Sender<Stream> = sender.clone();
        let name = format!("usher-{}", stream.as_str());
        std::thread::Builder::new().name(name).spawn(move || {
            relay(pipe, stream, format);
            let _ = sender.send(stream);
        })?;
    }
    Ok(Relays { done, running })
}

impl Relays {
    /// Waits until every pipe is drained, or until `deadline` (a grandchild may hold a pipe
    /// open long after the main child is gone). Returns whether all finished.
    pub fn wait(&mut self, deadline: Instant) -> bool {
        while self.running > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.done.recv_timeout(left) {
                Ok(_) => self.running -= 1,
                Err(_) => return false,
            }
        }
        true
    }
}

fn relay(mut pipe: File, stream: Stream, format: Arc<LogFormat>) {
    let mut encoder = LineEncoder::new(format, stream);
    let mut chunk = vec![0u8; READ_CHUNK];
    let mut records = Vec::with_capacity(READ_CHUNK * 2);
    let mut output_open = true;
    loop {
        let read = match pipe.read(&mut chunk) {
            Ok(0) => break,
            Ok(read) => read,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        let time = crate::logs::time::rfc3339_micros(SystemTime::now());
        records.clear();
        encoder.push(chunk.get(..read).unwrap_or_default(), &time, &mut records);
        // Once usher's own output is gone (EPIPE), keep draining the pipe so the child is not
        // blocked or killed by a SIGPIPE for a log line nobody can read any more.
        if output_open {
            output_open = write_records(stream, &records);
        }
    }
    let time = crate::logs::time::rfc3339_micros(SystemTime::now());
    records.clear();
    encoder.finish(&time, &mut records);
    if output_open {
        write_records(stream, &records);
    }
}

/// One write of whole records; the stderr lock keeps them whole beside usher's own events.
fn write_records(stream: Stream, records: &[u8]) -> bool {
    if records.is_empty() {
        return true;
    }
    let written = match stream {
        Stream::Stdout => {
            let mut stdout = io::stdout().lock();
            stdout.write_all(records).and_then(|()| stdout.flush())
        }
        Stream::Stderr => io::stderr().lock().write_all(records),
    };
    written.is_ok()
}
