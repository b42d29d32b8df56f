//! Fixture: writes the awkward lines of `support/awkward_lines.rs` to stdout and stderr, then a
//! last stdout line without a newline.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/awkward_lines.rs"]
mod awkward_lines;

use std::io::Write;

fn main() {
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr().lock();
    for (stream, line) in awkward_lines::lines() {
        let out: &mut dyn Write = if stream == "stdout" {
            &mut stdout
        } else {
            &mut stderr
        };
        out.write_all(&line).unwrap();
        out.write_all(b"\n").unwrap();
        out.flush().unwrap();
    }
    stdout
        .write_all(awkward_lines::LAST_WITHOUT_NEWLINE)
        .unwrap();
    stdout.flush().unwrap();
}
