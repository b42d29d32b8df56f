//! Benchmark generator that is not the bottleneck: `line_flood COUNT [WIDTH]` writes COUNT
//! lines of WIDTH bytes (newline included, default 100) to stdout, `0000001 xxxx...` as
//! `flood` does, but from a buffer built once and written 1 MiB at a time: tens of millions
//! of lines a second into a pipe, where `flood` formats every line. Line numbers repeat every
//! buffer (a benchmark counts lines, it does not read them).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;

const BUFFER: usize = 1 << 20;

fn main() {
    let mut args = std::env::args().skip(1);
    let count: usize = args
        .next()
        .expect("usage: line_flood COUNT [WIDTH]")
        .parse()
        .unwrap();
    let width: usize = args.next().map_or(100, |w| w.parse().unwrap());
    assert!(
        width >= 9,
        "WIDTH is at least 9 (a 7-digit number, a space, a newline)"
    );
    let per_buffer = (BUFFER / width).max(1);
    let padding = "x".repeat(width - 9);
    let mut buffer = Vec::with_capacity(per_buffer * width);
    for n in 1..=per_buffer {
        writeln!(buffer, "{:07} {padding}", n % 10_000_000).unwrap();
    }
    // Unbuffered: each write_all is one large write(2).
    let mut out = std::io::stdout().lock();
    let mut left = count;
    while left > 0 {
        let lines = left.min(per_buffer);
        out.write_all(&buffer[..lines * width]).unwrap();
        left -= lines;
    }
    out.flush().unwrap();
}
