//! Fixture for the OOM tests (run under `docker run -m 48m --memory-swap 48m`):
//!
//! - `hog`: says `hog pid=N allocating`, then allocates and touches memory, a MiB at a time,
//!   until the OOM killer ends it: the main child OOM-killed.
//! - `hog worker orphan`: starts a hog as an orphan for usher to reap (a middle process starts
//!   it, says `worker pid=N` and exits at once), says `ready`, then waits for SIGTERM and exits
//!   0: the app survives its worker's OOM kill.
//! - `hog worker child`: the same, but the hog is its own child, which it reaps itself (saying
//!   `worker ended: ...`), as a pre-forking server does: usher never sees the worker end.
//! - `hog spawn`: the middle process.
//! - `hog hold MIB`: allocates and touches MIB MiB, says `holding MIB MiB pid=N`, then holds
//!   them until SIGTERM and exits 0 (a known resident size for `/metrics`).
//! - `hog memfd`: says `hog pid=N filling a memfd`, then writes a MiB at a time into a memfd
//!   until the OOM killer ends it: the memory is charged to its cgroup but is not in its
//!   resident set (as with files in `/dev/shm` or a tmpfs), so its own badness stays tiny, and
//!   only its `oom_score_adj` makes the OOM killer prefer it to a larger process (usher).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::process::Command;

use signal_hook::consts::SIGTERM;
use signal_hook::iterator::Signals;

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").unwrap();
    out.flush().unwrap();
}

fn hog() -> ! {
    say(&format!("hog pid={} allocating", std::process::id()));
    let mut kept: Vec<Vec<u8>> = Vec::new();
    loop {
        kept.push(touched_mib());
    }
}

/// A MiB, resident.
fn touched_mib() -> Vec<u8> {
    let mut chunk = vec![0u8; 1 << 20];
    // Touch every page: untouched pages of a zeroed allocation cost no memory.
    for page in chunk.chunks_mut(4096) {
        page[0] = 1;
    }
    std::hint::black_box(chunk)
}

fn memfd() -> ! {
    say(&format!("hog pid={} filling a memfd", std::process::id()));
    // SAFETY: a valid, NUL-terminated name and no flags.
    let fd = unsafe { libc::memfd_create(c"hog".as_ptr(), 0) };
    assert!(fd >= 0, "memfd_create: {}", std::io::Error::last_os_error());
    // SAFETY: the descriptor was just created and is owned here alone.
    let mut file = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let chunk = vec![1u8; 1 << 20];
    loop {
        file.write_all(&chunk).unwrap();
    }
}

fn main() {
    let me = std::env::current_exe().unwrap();
    match std::env::args().nth(1).as_deref() {
        None => hog(),
        Some("memfd") => memfd(),
        // Left to usher on purpose: this process exits at once, orphaning the hog.
        #[allow(clippy::zombie_processes)]
        Some("spawn") => {
            let hog = Command::new(&me).spawn().unwrap();
            say(&format!("worker pid={}", hog.id()));
        }
        Some("worker") => {
            let mut signals = Signals::new([SIGTERM]).unwrap();
            match std::env::args().nth(2).as_deref() {
                Some("orphan") => {
                    let status = Command::new(&me).arg("spawn").status().unwrap();
                    assert!(status.success(), "{status}");
                    say("ready");
                }
                Some("child") => {
                    let mut hog = Command::new(&me).spawn().unwrap();
                    say(&format!("worker pid={}", hog.id()));
                    say("ready");
                    say(&format!("worker ended: {}", hog.wait().unwrap()));
                }
                other => panic!("usage: hog worker orphan|child; not {other:?}"),
            }
            if signals.forever().next().is_some() {
                say("bye");
            }
        }
        Some("hold") => {
            let mib: usize = std::env::args().nth(2).unwrap().parse().unwrap();
            let mut signals = Signals::new([SIGTERM]).unwrap();
            let kept: Vec<Vec<u8>> = (0..mib).map(|_| touched_mib()).collect();
            say(&format!("holding {mib} MiB pid={}", std::process::id()));
            signals.forever().next();
            drop(std::hint::black_box(kept));
        }
        Some(other) => panic!("usage: hog [worker orphan|child | hold MIB | memfd]; not {other:?}"),
    }
}
