//! Fixture and benchmark generator: `stamped_lines KIND COUNT PERIOD_MS` writes COUNT lines to
//! stdout, one every PERIOD_MS, each stamped with the wall-clock time it was written
//! (microseconds since the Unix epoch, the last word of the line), then waits until its stdin
//! closes. `plain` lines can neither start nor continue a stack trace (`plain line written at
//! 1764513257123456`); `held` lines can start one (`Error: held line written at ...`), so
//! `--log-multiline auto` holds each until it knows no trace follows.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn main() {
    let mut args = std::env::args().skip(1);
    let usage = "usage: stamped_lines plain|held COUNT PERIOD_MS";
    let kind = args.next().expect(usage);
    let prefix = match kind.as_str() {
        "plain" => "plain line",
        "held" => "Error: held line",
        _ => panic!("{usage}"),
    };
    let count: u64 = args.next().expect(usage).parse().unwrap();
    let period = Duration::from_millis(args.next().expect(usage).parse().unwrap());
    let mut out = std::io::stdout().lock();
    for n in 0..count {
        if n > 0 {
            // Pacing, not synchronisation: lines at a steady rate, each read on its own.
            std::thread::sleep(period);
        }
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_micros();
        writeln!(out, "{prefix} {n} written at {micros}").unwrap();
        out.flush().unwrap();
    }
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}
