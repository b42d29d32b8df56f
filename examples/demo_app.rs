//! The example app of the README's first command: logs a line a second and shuts down
//! gracefully on SIGTERM or SIGINT, saying so.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;
use support::*;

fn main() {
    let set = block_all_signals();
    say(&format!(
        "INFO demo app started as pid {}",
        std::process::id()
    ));
    let mut tick = 0u64;
    loop {
        let timeout = libc::timespec {
            tv_sec: 1,
            tv_nsec: 0,
        };
        // SAFETY: a valid set and timeout; a null info pointer is allowed.
        let signo = unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &timeout) };
        match signo {
            libc::SIGTERM | libc::SIGINT => {
                say(&format!(
                    "INFO received signal {signo}: shutting down gracefully"
                ));
                return;
            }
            n if n > 0 => say(&format!("WARN received signal {n}, ignoring it")),
            _ => {
                tick += 1;
                say(&format!("INFO tick {tick}"));
            }
        }
    }
}
