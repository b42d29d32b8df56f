//! Fixture: starts a background process in a session of its own (a daemon that left the
//! child's process group), waits until it is ready, then exits 3. The background process prints
//! `background got signal N` for each signal and exits on SIGTERM, unless `--ignore-term`.
//! `--same-group`: the background process stays in the main child's process group.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;
use support::*;

fn main() {
    let ignore_term = std::env::args().any(|a| a == "--ignore-term");
    let same_group = std::env::args().any(|a| a == "--same-group");
    let set = block_all_signals();
    let mut fds = [0; 2];
    // SAFETY: a valid array for the two descriptors.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    if fork() == 0 {
        if !same_group {
            // SAFETY: leave the main child's session and group.
            unsafe { libc::setsid() };
        }
        say(&format!("background ready pid={}", std::process::id()));
        // SAFETY: closing our write end tells the main process we are ready.
        unsafe { libc::close(fds[1]) };
        loop {
            let signo = wait_signal(&set);
            say(&format!("background got signal {signo}"));
            if signo == libc::SIGTERM && !ignore_term {
                std::process::exit(0);
            }
        }
    }
    // SAFETY: wait until the background process closed its end of the pipe.
    unsafe {
        libc::close(fds[1]);
        let mut byte = 0u8;
        libc::read(fds[0], (&mut byte as *mut u8).cast(), 1);
    }
    say("main exiting with 3");
    std::process::exit(3);
}
