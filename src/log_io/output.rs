//! usher's own stdout and stderr, shared by the log relays and the events writer: one lock per
//! file, the same lock for both when they are the same file (`2>&1`, journald, a terminal), so
//! that records stay whole and a collector that stops reading one stream does not hold up the
//! other; writes that wait rather than fail on a non-blocking descriptor; and a newline after a
//! record that a failed write cut short, so that one bad write never glues two records together.

use std::io;
use std::os::fd::AsFd;
use std::sync::{Mutex, MutexGuard, OnceLock};

use crate::sys;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Stdout,
    Stderr,
}

/// One file's lock and what it knows.
struct State {
    /// A write on this target stopped inside a record (by target: one lock may serve both).
    cut: [bool; 2],
}

static STDOUT: Mutex<State> = Mutex::new(State {
    cut: [false, false],
});
static STDERR: Mutex<State> = Mutex::new(State {
    cut: [false, false],
});

/// Whether usher's stdout and stderr are one file, decided once: their writes then take one
/// lock, since two writers of one pipe could interleave the bytes of records longer than
/// PIPE_BUF. When that cannot be told, they are taken to be one.
static SHARED: OnceLock<bool> = OnceLock::new();

fn lock(target: Target) -> MutexGuard<'static, State> {
    let shared = *SHARED.get_or_init(|| sys::same_file(io::stdout().as_fd(), io::stderr().as_fd()));
    let lock = match target {
        Target::Stderr if !shared => &STDERR,
        _ => &STDOUT,
    };
    lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Writes whole records to usher's stdout or stderr, under that file's lock.
pub fn write_records(target: Target, records: &[u8]) -> io::Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    let mut state = lock(target);
    let index = target as usize;
    if state.cut[index] {
        write_fully(target, b"\n")?;
        state.cut[index] = false;
    }
    let result = write_fully(target, records);
    if result.is_err() {
        state.cut[index] = true;
    }
    result
}

fn write_fully(target: Target, mut bytes: &[u8]) -> io::Result<()> {
    // The raw descriptors: std's stdout buffer would hold records back, and the lock above
    // already keeps writers apart.
    let (stdout, stderr) = (io::stdout(), io::stderr());
    let fd = match target {
        Target::Stdout => stdout.as_fd(),
        Target::Stderr => stderr.as_fd(),
    };
    while !bytes.is_empty() {
        match sys::write(fd, bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            // write(2) never reports more than it was given; should it, the rest of the record
            // is unknown, so this is an error (the record is marked cut) rather than a silent
            // end of the loop that would drop the rest.
            Ok(written) => match bytes.get(written..) {
                Some(rest) => bytes = rest,
                None => {
                    return Err(io::Error::other(format!(
                        "write reported {written} bytes written of {}",
                        bytes.len()
                    )));
                }
            },
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // Inherited non-blocking (the file description is shared with whoever started
            // usher): wait until the reader makes room, which keeps the back-pressure.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => sys::wait_writable(fd)?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
