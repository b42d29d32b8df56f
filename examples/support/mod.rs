//! Shared by the test fixtures: signal blocking, waiting and process-table reading.
//! Fixtures are test programs: any failure should be loud, so they may panic.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::mem::MaybeUninit;

/// Blocks every signal in this thread and returns the full set, for `wait_signal`.
pub fn block_all_signals() -> libc::sigset_t {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigfillset initialises the set; pthread_sigmask reads it.
    unsafe {
        libc::sigfillset(set.as_mut_ptr());
        let set = set.assume_init();
        assert_eq!(
            libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut()),
            0
        );
        set
    }
}

/// Waits for the next signal in `set` (blocked beforehand) and returns its number.
pub fn wait_signal(set: &libc::sigset_t) -> i32 {
    loop {
        // SAFETY: a valid set and a null info pointer, which sigwaitinfo allows.
        let signo = unsafe { libc::sigwaitinfo(set, std::ptr::null_mut()) };
        if signo > 0 {
            return signo;
        }
    }
}

/// Prints one line and flushes it at once, so a test reading the pipe sees it now.
pub fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").unwrap();
    out.flush().unwrap();
}

/// The value of a field of /proc/self/status (`SigBlk`, `Uid`...).
pub fn status_field(pid: &str, name: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .map(|value| value.trim().to_string())
        .unwrap_or_default()
}

/// fork(2), panicking on failure.
pub fn fork() -> i32 {
    // SAFETY: the fixtures are single-threaded when they fork.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    pid
}

/// Waits for one specific child.
pub fn wait_for(pid: i32) -> i32 {
    let mut status = 0;
    // SAFETY: a valid out-pointer.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    status
}

/// _exit(2): leaves a forked child without running the parent's exit handlers.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and needs nothing.
    unsafe { libc::_exit(code) }
}

/// Parses a signal given as a number or a short name used by the tests.
pub fn signal_number(text: &str) -> i32 {
    match text.trim_start_matches("SIG") {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "SEGV" => libc::SIGSEGV,
        "USR2" => libc::SIGUSR2,
        "TERM" => libc::SIGTERM,
        other => other.parse().expect("signal name or number"),
    }
}
