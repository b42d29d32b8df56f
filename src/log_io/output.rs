//! usher's own stdout and stderr, shared by the log relays and the events writer: one lock for
//! both (they are often the same pipe: `2>&1`, journald), writes that wait rather than fail on a
//! non-blocking descriptor, and a newline after a record that a failed write cut short, so that
//! one bad write never glues two records together.

use std::io;
use std::os::fd::AsFd;
use std::sync::Mutex;

use crate::sys;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Stdout,
    Stderr,
}

struct State {
    /// A write on this target stopped inside a record.
    cut: [bool; 2],
}

static OUTPUT: Mutex<State> = Mutex::new(State {
    cut: [false, false],
});

/// Writes whole records to usher's stdout or stderr, under the one output lock.
pub fn write_records(target: Target, records: &[u8]) -> io::Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    let mut state = OUTPUT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
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
