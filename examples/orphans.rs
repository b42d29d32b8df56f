//! Fixture, checking the process table itself (like tini's reaping test):
//! `orphans zombies N`: as a child of PID 1, double-forks N orphans that exit at once, then
//!   waits (10 s at most) until no zombie is left in /proc; exits 0 if none, 1 otherwise.
//! `orphans reparent`: makes one orphan, checks it was reparented to our parent (usher as a
//!   subreaper), lets it exit and checks it is reaped; exits 0 on success, 1 otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;
use std::time::{Duration, Instant};
use support::*;

fn zombies() -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if status_field(&name, "State").starts_with('Z') {
            found.push(name);
        }
    }
    found
}

fn wait_until(deadline: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < deadline {
        if done() {
            return true;
        }
        std::thread::yield_now();
    }
    done()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["zombies", count] => {
            let count: u32 = count.parse().unwrap();
            for _ in 0..count {
                let middle = fork();
                if middle == 0 {
                    if fork() == 0 {
                        exit_now(0); // the orphan: exits at once, a zombie until reaped
                    }
                    exit_now(0);
                }
                wait_for(middle);
            }
            say(&format!("made {count} orphans"));
            if wait_until(Duration::from_secs(10), || zombies().is_empty()) {
                say("no zombies left");
                std::process::exit(0);
            }
            say(&format!("zombies left: {:?}", zombies()));
            std::process::exit(1);
        }
        ["reparent"] => {
            let usher = std::os::unix::process::parent_id().to_string();
            let mut fds = [0; 2];
            // SAFETY: a valid array for the two descriptors.
            assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
            let middle = fork();
            if middle == 0 {
                if fork() == 0 {
                    // The orphan: waits until told to exit (the write end closes).
                    // SAFETY: plain descriptor calls on our own pipe.
                    unsafe {
                        libc::close(fds[1]);
                        let mut byte = 0u8;
                        libc::read(fds[0], (&mut byte as *mut u8).cast(), 1);
                    }
                    exit_now(0);
                }
                exit_now(0);
            }
            wait_for(middle);
            // Find the orphan: the process whose parent is usher and that is not us.
            let me = std::process::id().to_string();
            let mut orphan = None;
            let found = wait_until(Duration::from_secs(10), || {
                let children =
                    std::fs::read_to_string(format!("/proc/{usher}/task/{usher}/children"))
                        .unwrap_or_default();
                orphan = children
                    .split_whitespace()
                    .find(|p| *p != me)
                    .map(str::to_string);
                orphan.is_some()
            });
            let Some(orphan) = orphan.filter(|_| found) else {
                say("orphan was not reparented to usher");
                std::process::exit(1);
            };
            say(&format!("orphan {orphan} reparented to usher {usher}"));
            // SAFETY: closing our write end releases the orphan.
            unsafe { libc::close(fds[1]) };
            let path = format!("/proc/{orphan}");
            if wait_until(Duration::from_secs(10), || {
                !std::path::Path::new(&path).exists()
            }) {
                say("orphan reaped");
                std::process::exit(0);
            }
            say(&format!(
                "orphan not reaped: {}",
                status_field(&orphan, "State")
            ));
            std::process::exit(1);
        }
        _ => panic!("usage: orphans zombies N | orphans reparent"),
    }
}
