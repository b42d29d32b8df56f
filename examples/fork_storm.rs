//! Fixture for the fork storm: `fork_storm RATE SECONDS` prints `ready pid=N`, then for
//! SECONDS forks RATE processes a second, paced every millisecond, each of which exits at once:
//! one in three is its own child, which it reaps itself; the others come in pairs, a middle
//! child that forks a grandchild and exits at once, so that the grandchild is an orphan for
//! PID 1 (usher) to reap. Then it prints `forked N processes (M orphans) in S s, F failed` (N
//! counts every process started, M the orphans, F the forks that failed: `EAGAIN` when the
//! pids run out), and exits 0 on SIGTERM. When forking is slower than RATE (a busy machine),
//! it forks as fast as it can, and N says what it managed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;
use std::time::{Duration, Instant};
use support::*;

/// Reaps whichever of our own children have ended, without waiting.
fn reap_own() {
    loop {
        // SAFETY: a null status pointer is allowed.
        let pid = unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) };
        if pid <= 0 {
            return;
        }
    }
}

/// fork(2): the child's pid, 0 in the child, None when it failed.
fn try_fork() -> Option<i32> {
    // SAFETY: single-threaded; every child only calls fork and _exit.
    let pid = unsafe { libc::fork() };
    (pid >= 0).then_some(pid)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [rate, seconds] = &args[..] else {
        panic!("usage: fork_storm RATE SECONDS");
    };
    let rate: u64 = rate.parse().unwrap();
    let seconds: u64 = seconds.parse().unwrap();
    // Blocked here and in every process forked: SIGTERM is taken with sigwaitinfo at the end.
    let set = block_all_signals();
    say(&format!("ready pid={}", std::process::id()));
    let start = Instant::now();
    let length = Duration::from_secs(seconds);
    let (mut forked, mut orphans, mut failed) = (0u64, 0u64, 0u64);
    while start.elapsed() < length {
        let due = u64::try_from(start.elapsed().as_micros()).unwrap() * rate / 1_000_000;
        while forked < due && start.elapsed() < length {
            match try_fork() {
                Some(0) => {
                    if forked % 3 != 0 && try_fork() == Some(0) {
                        exit_now(0); // the orphan
                    }
                    exit_now(0);
                }
                Some(_) if forked % 3 == 0 => forked += 1,
                Some(_) => (forked, orphans) = (forked + 2, orphans + 1),
                None => failed += 1,
            }
            // Our own children are reaped as we go, so that their zombies are not counted
            // against usher.
            reap_own();
        }
        // Pacing, not synchronisation: the next millisecond's share.
        std::thread::sleep(Duration::from_millis(1));
    }
    let took = start.elapsed();
    // SAFETY: waits for any child; ECHILD ends it.
    while unsafe { libc::waitpid(-1, std::ptr::null_mut(), 0) } > 0 {}
    say(&format!(
        "forked {forked} processes ({orphans} orphans) in {:.1} s, {failed} failed",
        took.as_secs_f64()
    ));
    while wait_signal(&set) != libc::SIGTERM {}
}
