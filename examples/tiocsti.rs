//! Fixture: tries to push a character into its stdin terminal's input queue with TIOCSTI (the
//! classic escape from a dropped child into its parent's shell); prints `TIOCSTI injected` and
//! exits 0, or `TIOCSTI refused: ERROR` and exits 1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

fn main() {
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
