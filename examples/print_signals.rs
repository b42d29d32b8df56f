//! Fixture: prints `ready pid=N pgid=N sid=N`, then one line `signal N` per signal received.
//!
//! `--exit-on SIG` (repeatable): exit 0 after printing that signal.
//! `--grandchild`: also fork a process in the same group that prints `grandchild signal N`.
//! `--grandchild-setsid`: the same, but the grandchild leaves the group (a daemon's setsid).
//! `--signal-parent SIG` (repeatable): after `ready`, send SIG to our parent (usher), as
//!   `docker exec ... kill 1` would from inside the container.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;
use support::*;

fn main() {
    let set = block_all_signals();
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
                signal_parent.push(signal_number(&args.next().expect("--signal-parent SIG")))
            }
            other => panic!("unknown argument {other}"),
        }
    }
    let mut prefix = "";
    if grandchild {
        let mut fds = [0; 2];
        // SAFETY: a valid array for the two descriptors.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        if fork() == 0 {
            prefix = "grandchild ";
            if grandchild_setsid {
                // SAFETY: setsid has no memory preconditions.
                unsafe { libc::setsid() };
            }
            say(&format!("grandchild ready pid={}", std::process::id()));
            // SAFETY: closing our write end tells the parent we are ready.
            unsafe { libc::close(fds[1]) };
        } else {
            // SAFETY: close our copy of the write end, then read until the grandchild's closes.
            unsafe {
                libc::close(fds[1]);
                let mut byte = 0u8;
                libc::read(fds[0], (&mut byte as *mut u8).cast(), 1);
            }
        }
    }
    if prefix.is_empty() {
        // SAFETY: plain queries of our own ids.
        let (pgid, sid) = unsafe { (libc::getpgrp(), libc::getsid(0)) };
        say(&format!(
            "ready pid={} pgid={pgid} sid={sid}",
            std::process::id()
        ));
        for signo in &signal_parent {
            // SAFETY: kill has no memory preconditions.
            unsafe { libc::kill(libc::getppid(), *signo) };
        }
    }
    loop {
        let signo = wait_signal(&set);
        say(&format!("{prefix}signal {signo}"));
        if exit_on.contains(&signo) {
            std::process::exit(0);
        }
    }
}
