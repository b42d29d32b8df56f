//! Fixture and benchmark generator: `flood COUNT [WIDTH]` writes COUNT numbered lines of WIDTH
//! bytes (newline included, default 100) to stdout as fast as it can: `0000001 xxxx...`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;

fn main() {
    let mut args = std::env::args().skip(1);
    let count: u64 = args
        .next()
        .expect("usage: flood COUNT [WIDTH]")
        .parse()
        .unwrap();
    let width: usize = args.next().map_or(100, |w| w.parse().unwrap());
    let padding = "x".repeat(width.saturating_sub(9));
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
    for i in 1..=count {
        writeln!(out, "{i:07} {padding}").unwrap();
    }
    out.flush().unwrap();
}
