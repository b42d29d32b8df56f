//! Fixture for the fault-injection tests (tests/resource_faults.rs): an app that keeps working,
//! and says what it did in a file of its own, whatever becomes of usher's stdout and stderr.
//!
//! - `fault_app serve ACKS`: appends `ready pid=N` to the file ACKS, then takes commands from
//!   stdin, one a line, and appends a line to ACKS for each once it is done:
//!   - `out N TAG` / `err N TAG`: N lines `TAG 000001 xxx...` (100 bytes with the newline), one
//!     write each, to stdout / stderr, from a writer thread of that stream (so that a write a
//!     stalled reader blocks does not hold up the other commands; each stream's lines keep
//!     their order; started at the stream's first command, and when the system refuses it,
//!     the lines are written at once instead); then `wrote N TAG`.
//!   - `orphan`: forks a process that forks another and exits; the other waits until it has
//!     been adopted (by usher, PID 1 or subreaper), appends `orphan pid=N` and exits: a zombie
//!     for usher to reap. Only getppid is used, so it works without /proc. `orphan failed:
//!     ERROR` when a fork is refused.
//!   - `fill`: forks children that wait, until fork fails; then `fork failed after N: ERROR`.
//!   - `release`: ends the children of `fill` and waits for them; then `released N`.
//!
//!   At the end of stdin it waits for a signal; SIGTERM ends it with status 143.
//! - `fault_app env PREFIX`: prints `env PREFIX count=N bytes=B fnv=HEX` and exits 0: the
//!   variables named PREFIX..., sorted, each `NAME=VALUE\n`, counted, their bytes summed and
//!   hashed with 64-bit FNV-1a (the test computes the same over what it set).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;
use std::io::{BufRead, Write};
use std::os::unix::ffi::OsStrExt;
use std::sync::mpsc::{Sender, channel};
use support::*;

/// Width of each numbered line, newline included.
const WIDTH: usize = 100;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["serve", acks] => serve(acks),
        ["env", prefix] => env_digest(prefix),
        _ => panic!("usage: fault_app serve ACKS | env PREFIX"),
    }
}

fn env_digest(prefix: &str) {
    let mut vars: Vec<Vec<u8>> = std::env::vars_os()
        .filter(|(name, _)| name.as_bytes().starts_with(prefix.as_bytes()))
        .map(|(name, value)| {
            let mut line = name.as_bytes().to_vec();
            line.push(b'=');
            line.extend_from_slice(value.as_bytes());
            line.push(b'\n');
            line
        })
        .collect();
    vars.sort();
    let bytes: usize = vars.iter().map(Vec::len).sum();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in vars.iter().flatten() {
        hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
    }
    say(&format!(
        "env {prefix} count={} bytes={bytes} fnv={hash:016x}",
        vars.len()
    ));
}

/// Opens the acknowledgements file for appending: every line is one write(2), also from
/// forked children, which may not allocate.
fn open_acks(path: &str) -> i32 {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    std::os::fd::IntoRawFd::into_raw_fd(file)
}

/// Writes `text`, then `number` if given, then a newline, in one write(2), without allocating
/// (safe in a forked child of a process with threads). `text` is cut at 100 bytes.
fn write_line(fd: i32, text: &[u8], number: Option<u32>) {
    let mut buffer = [0u8; 128];
    let mut len = 0;
    for &byte in text.iter().take(100) {
        buffer[len] = byte;
        len += 1;
    }
    if let Some(mut number) = number {
        let mut digits = [0u8; 10];
        let mut count = 0;
        loop {
            digits[count] = b'0' + (number % 10) as u8;
            count += 1;
            number /= 10;
            if number == 0 {
                break;
            }
        }
        for &digit in digits[..count].iter().rev() {
            buffer[len] = digit;
            len += 1;
        }
    }
    buffer[len] = b'\n';
    len += 1;
    // SAFETY: a valid buffer of `len` bytes; write(2) is async-signal-safe.
    unsafe { libc::write(fd, buffer.as_ptr().cast(), len) };
}

/// Writes `count` numbered lines `TAG 000001 xxx...` to stdout or stderr, then acknowledges.
fn write_lines(stdout: bool, count: usize, tag: &str, acks: i32) {
    for n in 1..=count {
        let mut line = format!("{tag} {n:06} ");
        line.extend(std::iter::repeat_n(
            'x',
            WIDTH.saturating_sub(line.len() + 1),
        ));
        line.push('\n');
        // A closed output (usher's pipe gone) is not this app's problem: go on.
        let _ = if stdout {
            std::io::stdout().lock().write_all(line.as_bytes())
        } else {
            std::io::stderr().lock().write_all(line.as_bytes())
        };
    }
    write_line(acks, format!("wrote {count} {tag}").as_bytes(), None);
}

/// One stream's writer thread, started at its first command (an app under a pids limit may
/// have none to spare at start); without one, the lines are written here and now.
struct Writer {
    stdout: bool,
    acks: i32,
    thread: Option<Sender<(usize, String)>>,
}

impl Writer {
    fn write(&mut self, count: usize, tag: String) {
        if self.thread.is_none() {
            let (sender, receiver) = channel::<(usize, String)>();
            let (stdout, acks) = (self.stdout, self.acks);
            let spawned = std::thread::Builder::new().spawn(move || {
                for (count, tag) in receiver {
                    write_lines(stdout, count, &tag, acks);
                }
            });
            self.thread = spawned.is_ok().then_some(sender);
        }
        match &self.thread {
            Some(thread) => thread.send((count, tag)).unwrap(),
            None => write_lines(self.stdout, count, &tag, self.acks),
        }
    }
}

fn serve(acks_path: &str) {
    let acks = open_acks(acks_path);
    let say = |line: &str| write_line(acks, line.as_bytes(), None);
    let mut out = Writer {
        stdout: true,
        acks,
        thread: None,
    };
    let mut err = Writer {
        stdout: false,
        acks,
        thread: None,
    };
    let mut waiting: Vec<i32> = Vec::new();
    let mut release: Option<i32> = None;
    write_line(acks, b"ready pid=", Some(std::process::id()));
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let words: Vec<&str> = line.split_whitespace().collect();
        match words[..] {
            ["out", count, tag] => out.write(count.parse().unwrap(), tag.into()),
            ["err", count, tag] => err.write(count.parse().unwrap(), tag.into()),
            ["orphan"] => orphan(acks),
            ["fill"] => {
                let (error, write_end) = fill(&mut waiting);
                release = Some(write_end);
                say(&format!("fork failed after {}: {error}", waiting.len()));
            }
            ["release"] => {
                if let Some(fd) = release.take() {
                    // SAFETY: closing the write end the children wait on ends them.
                    unsafe { libc::close(fd) };
                }
                let count = waiting.len();
                for pid in waiting.drain(..) {
                    wait_for(pid);
                }
                say(&format!("released {count}"));
            }
            _ => say(&format!("unknown command {line:?}")),
        }
    }
    let set = block_all_signals();
    loop {
        if wait_signal(&set) == libc::SIGTERM {
            std::process::exit(128 + libc::SIGTERM);
        }
    }
}

/// Forks children that wait on a pipe until fork fails: the error, and the pipe's write end
/// (closing it ends them).
fn fill(waiting: &mut Vec<i32>) -> (std::io::Error, i32) {
    let mut fds = [0; 2];
    // SAFETY: a valid array for the two descriptors.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let error = loop {
        // SAFETY: the child only calls async-signal-safe functions (close, read, _exit).
        match unsafe { libc::fork() } {
            -1 => break std::io::Error::last_os_error(),
            0 => {
                // SAFETY: plain descriptor calls; read returns once the write end is closed.
                unsafe {
                    libc::close(fds[1]);
                    let mut byte = 0u8;
                    libc::read(fds[0], (&mut byte as *mut u8).cast(), 1);
                }
                exit_now(0);
            }
            pid => waiting.push(pid),
        }
    };
    // SAFETY: our copy of the read end is not needed.
    unsafe { libc::close(fds[0]) };
    (error, fds[1])
}

/// Makes a zombie for usher: a middle process forks the orphan and exits; the orphan waits
/// until its parent is no longer the middle one (it was adopted), says so and exits.
fn orphan(acks: i32) {
    // SAFETY: the children only call async-signal-safe functions (fork, getppid, getpid,
    // write, sched_yield, _exit): this process has threads, so nothing that could take a lock.
    let middle = unsafe { libc::fork() };
    if middle < 0 {
        let error = std::io::Error::last_os_error();
        write_line(acks, format!("orphan failed: {error}").as_bytes(), None);
        return;
    }
    if middle == 0 {
        // Taken before the fork: the orphan's getppid may already name its adopter.
        // SAFETY: as above.
        let middle = unsafe { libc::getpid() };
        // SAFETY: as above.
        let orphan = unsafe { libc::fork() };
        if orphan == 0 {
            // SAFETY: as above.
            while unsafe { libc::getppid() } == middle {
                // SAFETY: as above.
                unsafe { libc::sched_yield() };
            }
            // SAFETY: as above.
            let pid = unsafe { libc::getpid() };
            write_line(acks, b"orphan pid=", Some(pid as u32));
            exit_now(0);
        }
        if orphan < 0 {
            write_line(acks, b"orphan failed: fork refused", None);
        }
        exit_now(0);
    }
    wait_for(middle);
}
