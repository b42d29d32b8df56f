//! Fixture for the signal storm: numbers every signal it receives, so that a test can tell that
//! no line was lost and which signals came through.
//!
//! Prints `ready pid=N`, then for each signal received `n=K signal S` (K counts from 1, with no
//! gap). On SIGTERM it prints `n=K total usr1=A usr2=B hup=C other=D` and exits 0. Signals are
//! blocked and taken with sigwaitinfo, one at a time: a standard signal sent again while it is
//! still pending is received once (the kernel keeps one of each).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;
use support::*;

fn main() {
    let set = block_all_signals();
    say(&format!("ready pid={}", std::process::id()));
    let (mut n, mut usr1, mut usr2, mut hup, mut other) = (0u64, 0u64, 0u64, 0u64, 0u64);
    loop {
        let signo = wait_signal(&set);
        n += 1;
        match signo {
            libc::SIGUSR1 => usr1 += 1,
            libc::SIGUSR2 => usr2 += 1,
            libc::SIGHUP => hup += 1,
            _ => other += 1,
        }
        say(&format!("n={n} signal {signo}"));
        if signo == libc::SIGTERM {
            n += 1;
            say(&format!(
                "n={n} total usr1={usr1} usr2={usr2} hup={hup} other={other}"
            ));
            std::process::exit(0);
        }
    }
}
