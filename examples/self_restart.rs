//! Fixture: a self-restarting daemon (Jenkins-style restarts, nginx's binary upgrade). It forks
//! its replacement, waits until the replacement is ready, prints `main exiting with 0` and
//! exits 0. The replacement prints `replacement ready pid=N`, then `replacement got signal N`
//! for each signal, and exits on SIGTERM with the status `--term-exit CODE` gives (default 0).
//! `--setsid`: the replacement leaves the main child's session and process group, as a daemon
//! does; without it, it stays in the group, as nginx's new master does.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;
use support::*;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let setsid = args.iter().any(|a| a == "--setsid");
    let term_exit: i32 = args
        .iter()
        .position(|a| a == "--term-exit")
        .map_or(0, |i| args[i + 1].parse().expect("--term-exit CODE"));
    let set = block_all_signals();
    let (mut ready_read, ready_write) = std::io::pipe().expect("pipe");
    if fork() == 0 {
        drop(ready_read);
        if setsid {
            // SAFETY: leave the main child's session and group.
            unsafe { libc::setsid() };
        }
        say(&format!("replacement ready pid={}", std::process::id()));
        drop(ready_write); // tells the main process we are ready
        loop {
            let signo = wait_signal(&set);
            say(&format!("replacement got signal {signo}"));
            if signo == libc::SIGTERM {
                std::process::exit(term_exit);
            }
        }
    }
    drop(ready_write);
    // End of file once the replacement closed its end.
    let _ = std::io::Read::read_to_end(&mut ready_read, &mut Vec::new());
    say("main exiting with 0");
    std::process::exit(0);
}
