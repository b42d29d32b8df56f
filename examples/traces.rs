//! Fixture: writes the stack traces of `support/traces.rs` between plain lines, on stdout and
//! on stderr, the way `MODE` says, for the multi-line tests.
//!
//! - `burst`: each trace's block (see `traces::block`) in one write, on stdout then on stderr.
//! - `lines`: each line of a block its own write, as an autoflushed stream writes a trace
//!   (Java's System.err, Python's stderr), on stdout for even traces and stderr for odd ones,
//!   with a line on the other stream after every line of the trace.
//! - `split`: each block in three writes cut inside lines, each written once the reader has
//!   taken what came before (the pipe is empty), so that a trace arrives in several reads.
//! - `bad`: the bad inputs of `traces::bad` on stderr, one write each.
//! - `flood N`: N plain lines on each stream, every trace's block after each 1000th line.
//! - `paced MS LINES`: a Java trace of LINES lines (`traces::paced_java`) a line at a time,
//!   each line on stdout then on stderr, MS milliseconds between lines (as a logger that
//!   writes each line, or a container short of CPU, writes a trace), then
//!   `traces::paced_done` on both streams with the longest gap there was.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/traces.rs"]
mod traces;

use std::fs::File;
use std::io::Write;
use std::mem::ManuallyDrop;
use std::os::fd::FromRawFd;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// stdout or stderr, unbuffered: each `write_all` of a block is one write(2).
struct Output {
    fd: i32,
    file: ManuallyDrop<File>,
}

impl Output {
    fn new(fd: i32) -> Output {
        // SAFETY: fd 1 and 2 stay open for the whole run; ManuallyDrop never closes them.
        let file = ManuallyDrop::new(unsafe { File::from_raw_fd(fd) });
        Output { fd, file }
    }

    fn write(&mut self, bytes: &[u8]) {
        self.file.write_all(bytes).unwrap();
    }

    /// Waits until the reader has taken everything written (FIONREAD on a pipe's write end
    /// counts the bytes in the pipe).
    fn drained(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mut unread: libc::c_int = 0;
            // SAFETY: FIONREAD writes one c_int through the valid pointer.
            let ret = unsafe { libc::ioctl(self.fd, libc::FIONREAD, &mut unread) };
            if ret != 0 || unread == 0 || Instant::now() > deadline {
                return;
            }
            std::thread::yield_now();
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args
        .next()
        .expect("usage: traces burst|lines|split|bad|flood N|paced MS LINES");
    let (mut stdout, mut stderr) = (Output::new(1), Output::new(2));
    match mode.as_str() {
        "burst" => {
            for (name, lines) in traces::TRACES {
                let block = traces::block(name, lines).concat();
                stdout.write(block.as_bytes());
                stderr.write(block.as_bytes());
            }
        }
        "lines" => {
            for (n, (name, lines)) in traces::TRACES.iter().enumerate() {
                let (trace, other) = match n % 2 {
                    0 => (&mut stdout, &mut stderr),
                    _ => (&mut stderr, &mut stdout),
                };
                for (i, line) in traces::block(name, lines).iter().enumerate() {
                    trace.write(line.as_bytes());
                    other.write(traces::other_stream(name, i).as_bytes());
                }
            }
        }
        "split" => {
            for (name, lines) in traces::TRACES {
                let block = traces::block(name, lines).concat();
                let (a, b) = (block.len() / 3 + 1, 2 * block.len() / 3 + 2);
                for out in [&mut stdout, &mut stderr] {
                    for piece in [&block[..a], &block[a..b], &block[b..]] {
                        out.write(piece.as_bytes());
                        out.drained();
                    }
                }
            }
        }
        "bad" => {
            for (_, input) in traces::bad() {
                stderr.write(&input);
            }
        }
        "flood" => {
            let count: usize = args.next().expect("flood N").parse().unwrap();
            let mut out = std::io::BufWriter::with_capacity(64 * 1024, &mut *stdout.file);
            let mut err = std::io::BufWriter::with_capacity(64 * 1024, &mut *stderr.file);
            for n in 0..count {
                for stream in [&mut out, &mut err] {
                    writeln!(stream, "{}", traces::plain("flood", n)).unwrap();
                    if n % 1000 == 999 {
                        let (name, lines) = traces::TRACES[n / 1000 % traces::TRACES.len()];
                        let block = traces::block(name, lines).concat();
                        stream.write_all(block.as_bytes()).unwrap();
                    }
                }
            }
            out.flush().unwrap();
            err.flush().unwrap();
        }
        "paced" => {
            let gap: u64 = args.next().expect("paced MS LINES").parse().unwrap();
            let lines: usize = args.next().expect("paced MS LINES").parse().unwrap();
            let written = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
            let mut longest = Duration::ZERO;
            let mut last: Option<Instant> = None;
            for (n, line) in traces::paced_java(lines, written.as_micros())
                .iter()
                .enumerate()
            {
                if n > 0 {
                    // Pacing, not synchronisation: the gaps are what is under test.
                    std::thread::sleep(Duration::from_millis(gap));
                }
                let now = Instant::now();
                if let Some(last) = last {
                    longest = longest.max(now - last);
                }
                last = Some(now);
                for out in [&mut stdout, &mut stderr] {
                    out.write(format!("{line}\n").as_bytes());
                }
            }
            let done = traces::paced_done(longest.as_micros());
            for out in [&mut stdout, &mut stderr] {
                out.write(format!("{done}\n").as_bytes());
            }
        }
        other => panic!("unknown mode {other}"),
    }
}
