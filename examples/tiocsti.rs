//! Fixture: tries to push a character into its stdin terminal's input queue with TIOCSTI (the
//! classic escape from a dropped child into its parent's shell), after trying to make that
//! terminal its controlling terminal (possible when no session owns it); prints
//! `TIOCSTI injected` and exits 0, or `TIOCSTI refused: ERROR` and exits 1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

fn main() {
    // SAFETY: TIOCSCTTY with 0 takes an unowned terminal or fails; no memory involved.
    unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) };
    let byte = b'x';
    // SAFETY: TIOCSTI reads one byte from a valid pointer.
    let ret = unsafe { libc::ioctl(0, libc::TIOCSTI, &byte) };
    if ret == 0 {
        println!("TIOCSTI injected");
    } else {
        println!("TIOCSTI refused: {}", std::io::Error::last_os_error());
        std::process::exit(1);
    }
}
