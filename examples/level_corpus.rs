//! Fixture and benchmark generator: writes the level corpus (tests/data/log_levels.txt).
//!
//! - `level_corpus`: each line to the stream its framework writes it to, a write per line.
//! - `level_corpus --cut N`: the same bytes, but each stream's output written N bytes at a
//!   time, so lines arrive cut across reads.
//! - `level_corpus --bench COUNT`: COUNT lines of the corpus, over and over, all to stdout
//!   through a 64 KiB buffer (a generator for bench/levels.py).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/level_corpus.rs"]
mod level_corpus;

use std::io::Write;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let entries = level_corpus::entries();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        [] => {
            let mut stdout = std::io::stdout().lock();
            let mut stderr = std::io::stderr().lock();
            for entry in &entries {
                let out: &mut dyn Write = if entry.stream == "stdout" {
                    &mut stdout
                } else {
                    &mut stderr
                };
                out.write_all(&[&entry.line[..], b"\n"].concat()).unwrap();
                out.flush().unwrap();
            }
        }
        ["--cut", size] => {
            let size: usize = size.parse().expect("--cut N: N bytes");
            for (stream, mut out) in [
                ("stdout", Box::new(std::io::stdout()) as Box<dyn Write>),
                ("stderr", Box::new(std::io::stderr())),
            ] {
                let bytes: Vec<u8> = entries
                    .iter()
                    .filter(|entry| entry.stream == stream)
                    .flat_map(|entry| [&entry.line[..], b"\n"].concat())
                    .collect();
                for chunk in bytes.chunks(size.max(1)) {
                    out.write_all(chunk).unwrap();
                    out.flush().unwrap();
                }
            }
        }
        ["--bench", count] => {
            let count: usize = count.parse().expect("--bench COUNT: a number of lines");
            let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
            for entry in entries.iter().cycle().take(count) {
                out.write_all(&entry.line).unwrap();
                out.write_all(b"\n").unwrap();
            }
            out.flush().unwrap();
        }
        _ => panic!("usage: level_corpus [--cut N | --bench COUNT]"),
    }
}
