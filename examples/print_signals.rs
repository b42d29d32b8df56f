//! Fixture: prints `ready pid=N pgid=N sid=N`, then one line `signal N` per signal received.
//!
//! `--exit-on SIG` (repeatable): exit 0 after printing that signal.
//! `--grandchild`: also fork a process in the same group that prints `grandchild signal N`.
//! `--grandchild-setsid`: the same, but the grandchild leaves the group (a daemon's setsid).
//! `--signal-parent SIG` (repeatable): after `ready`, send SIG to our parent (usher), as
//!   `docker exec ... kill 1` would from inside the container. A standard signal (not real-time).
//!
//! Signals are caught as an application would catch them, with `signal-hook`: every signal but
//! KILL and STOP (which cannot be caught) and glibc's own 32 and 33 is reported. As with any
//! handler, one signal delivered twice before the fixture reads it may show once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;
use nix::sys::signal::{SigSet, Signal};
use nix::unistd::Pid;
use signal_hook::iterator::Signals;
use std::io::Read;
use support::*;

/// Caught with sigwait instead: signal-hook refuses ILL, FPE and SEGV (its `FORBIDDEN`: a
/// handler that returns from a real fault faults again), and a SIGBUS hook chains to Rust's own
/// stack-overflow handler, which resets SIGBUS to its default, so a second SIGBUS would kill us.
/// Blocked and waited for, a fault signal sent with kill(2) is reported like any other, and a
/// real fault still kills (the kernel does not let a blocked fault signal stay pending).
const FAULTS: [Signal; 4] = [
    Signal::SIGILL,
    Signal::SIGFPE,
    Signal::SIGSEGV,
    Signal::SIGBUS,
];

fn main() {
    // Held pending until our handlers are in place: a signal usher forwards this early is
    // reported, not taken with its default action. Only the fault signals stay blocked later.
    SigSet::all().thread_set_mask().expect("block signals");
    let mut exit_on = Vec::new();
    let mut grandchild = false;
    let mut grandchild_setsid = false;
    let mut signal_parent = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--exit-on" => exit_on.push(signal_number(&args.next().expect("--exit-on SIG"))),
            "--grandchild" => grandchild = true,
            "--grandchild-setsid" => (grandchild, grandchild_setsid) = (true, true),
            "--signal-parent" => {
                let signo = signal_number(&args.next().expect("--signal-parent SIG"));
                signal_parent.push(Signal::try_from(signo).expect("a standard signal"))
            }
            other => panic!("unknown argument {other}"),
        }
    }
    if grandchild {
        // Forked before any thread exists (fork copies only the calling thread) and before
        // signal-hook's set-up: each process gets its own handlers and self-pipe.
        let (mut ready_read, ready_write) = std::io::pipe().expect("pipe");
        if fork() == 0 {
            drop(ready_read);
            if grandchild_setsid {
                nix::unistd::setsid().expect("setsid");
            }
            let report = Report::new("grandchild ", exit_on);
            let signals = catch_signals(&report);
            say(&format!("grandchild ready pid={}", std::process::id()));
            drop(ready_write); // tells the parent we are ready
            report_forever(signals, report);
        }
        drop(ready_write);
        // End of file once the grandchild closed its end. Signals sent meanwhile wait, blocked.
        let _ = ready_read.read_to_end(&mut Vec::new());
    }
    let report = Report::new("", exit_on);
    let signals = catch_signals(&report);
    say_ready(&signal_parent);
    report_forever(signals, report);
}

/// How a process reports what it receives.
#[derive(Clone)]
struct Report {
    prefix: &'static str,
    exit_on: Vec<i32>,
}

impl Report {
    fn new(prefix: &'static str, exit_on: Vec<i32>) -> Report {
        Report { prefix, exit_on }
    }

    fn signal(&self, signo: i32) {
        say(&format!("{}signal {signo}", self.prefix));
        if self.exit_on.contains(&signo) {
            std::process::exit(0);
        }
    }
}

/// Installs the handlers, then lets signals in (those held since `main` began arrive now).
fn catch_signals(report: &Report) -> Signals {
    let catchable = (1..=libc::SIGRTMAX())
        .filter(|&s| ![libc::SIGKILL, libc::SIGSTOP].contains(&s))
        .filter(|&s| !(32..libc::SIGRTMIN()).contains(&s)) // glibc's own, not the app's
        .filter(|&s| !FAULTS.iter().any(|&fault| fault as i32 == s));
    let signals = Signals::new(catchable).expect("signal-hook handlers");
    let faults: SigSet = FAULTS.into_iter().collect();
    let report = report.clone();
    // Spawned with every signal blocked (threads inherit the mask): it alone takes the faults.
    std::thread::spawn(move || {
        loop {
            report.signal(faults.wait().expect("sigwait") as i32);
        }
    });
    faults.thread_set_mask().expect("let signals in");
    signals
}

/// Announces the (non-grandchild) fixture, then sends what `--signal-parent` asked for.
fn say_ready(signal_parent: &[Signal]) {
    let pgid = nix::unistd::getpgrp();
    let sid = nix::unistd::getsid(None).expect("getsid");
    say(&format!(
        "ready pid={} pgid={pgid} sid={sid}",
        std::process::id()
    ));
    for &signal in signal_parent {
        nix::sys::signal::kill(Pid::parent(), signal).expect("signal our parent");
    }
}

fn report_forever(mut signals: Signals, report: Report) -> ! {
    for signo in signals.forever() {
        report.signal(signo);
    }
    panic!("signal-hook's iterator ended, but nothing closes it");
}
