//! Multi-line records (`--log-multiline`): each stack trace of a real fixture one record, on
//! both streams, however it reaches usher; bad input; the hold's bounds; a trace written
//! slowly; usher as PID 1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;
#[path = "../examples/support/traces.rs"]
mod traces;

use serde_json::{Map, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use support::*;

/// How long usher waits for a held record's next line (src/logs/multiline.rs `HOLD`).
const HOLD: Duration = Duration::from_millis(50);
/// The longest usher holds a record (src/logs/multiline.rs `MAX_HOLD`).
const MAX_HOLD: Duration = Duration::from_secs(2);

type Record = Map<String, Value>;

fn parse(line: &str) -> Record {
    match serde_json::from_str::<Value>(line) {
        Ok(Value::Object(map)) => map,
        other => panic!("not a JSON object: {line:?} ({other:?})"),
    }
}

fn msg(record: &Record) -> &str {
    record["msg"].as_str().unwrap()
}

/// The child's records of one stream (usher's own events left out), partial pieces joined
/// back: (first piece, whole msg). No record is longer than `max`.
fn records(lines: &[String], max: usize) -> Vec<(Record, String)> {
    let mut records: Vec<(Record, String)> = Vec::new();
    let mut open = false;
    for line in lines {
        assert!(line.len() < max, "a record of {} bytes", line.len() + 1);
        let record = parse(line);
        if record.get("logger") == Some(&Value::from("usher")) {
            continue;
        }
        let partial = record.get("partial") == Some(&Value::Bool(true));
        if open {
            let (first, text) = records.last_mut().unwrap();
            assert_eq!(first["level"], record["level"]);
            text.push_str(msg(&record));
        } else {
            let text = msg(&record).to_string();
            records.push((record, text));
        }
        open = partial;
    }
    assert!(!open, "the last record of a text is never partial");
    records
}

fn msgs(records: &[(Record, String)]) -> Vec<&str> {
    records.iter().map(|(_, m)| m.as_str()).collect()
}

/// usher as PID 1 in JSON mode with `options` over `traces MODE...`; its child's records by
/// stream (stdout, stderr).
fn run_traces(options: &[&str], mode: &[&str], env: &[(&str, &str)]) -> [Vec<(Record, String)>; 2] {
    let fixture = fixture("traces");
    let mut argv = vec!["--log-format", "json"];
    argv.extend_from_slice(options);
    argv.extend_from_slice(&["--", &fixture]);
    argv.extend_from_slice(mode);
    let mut usher = Usher::pid1_with_env(env, &argv);
    assert_eq!(usher.wait(), 0, "{:?}", usher.stderr_seen);
    [
        records(&usher.stdout_seen, 16384),
        records(&usher.stderr_seen, 16384),
    ]
}

fn traces_in(mode: &str) -> [Vec<(Record, String)>; 2] {
    run_traces(&["--log-multiline", "auto"], &[mode], &[])
}

/// Each trace's record: its lines joined, the level its first line has alone, its stream.
fn check_blocks(got: &[(Record, String)], stream: &str, mode: &str) {
    let mut at = 0;
    for (name, lines) in traces::TRACES {
        let expected = traces::joined_block(name, lines);
        let block = &got[at..at + expected.len()];
        assert_eq!(msgs(block), expected, "{mode}: {name} on {stream}");
        let (alone, trace) = (&block[0].0, &block[2].0);
        assert_eq!(trace["level"], alone["level"], "{mode}: {name} on {stream}");
        assert_eq!(trace["stream"], stream);
        at += expected.len();
    }
    assert_eq!(got.len(), at, "{mode} on {stream}: {:?}", msgs(&got[at..]));
}

/// Every kind of trace, written in one go, and in several reads cut inside lines: one record
/// each, on both streams, between the plain lines around it.
#[test]
fn each_trace_is_one_record_on_both_streams() {
    if !require_root("each_trace_is_one_record_on_both_streams") {
        return;
    }
    for mode in ["burst", "split"] {
        let [stdout, stderr] = traces_in(mode);
        check_blocks(&stdout, "stdout", mode);
        check_blocks(&stderr, "stderr", mode);
    }
}

/// A trace written a line at a time (as an autoflushed stream writes it), with a line on the
/// other stream after each of its lines: the other stream's lines are not part of it.
#[test]
fn traces_interleaved_with_the_other_stream() {
    if !require_root("traces_interleaved_with_the_other_stream") {
        return;
    }
    let [stdout, stderr] = traces_in("lines");
    let (mut out_at, mut err_at) = (0, 0);
    for (n, (name, lines)) in traces::TRACES.iter().enumerate() {
        let joined = traces::joined_block(name, lines);
        let others: Vec<String> = (0..traces::block(name, lines).len())
            .map(|i| traces::other_stream(name, i).trim_end().to_string())
            .collect();
        let (trace_side, trace_at, other_side, other_at) = match n % 2 {
            0 => (&stdout, &mut out_at, &stderr, &mut err_at),
            _ => (&stderr, &mut err_at, &stdout, &mut out_at),
        };
        let got = msgs(&trace_side[*trace_at..*trace_at + joined.len()]);
        assert_eq!(got, joined, "{name}");
        *trace_at += joined.len();
        let got = msgs(&other_side[*other_at..*other_at + others.len()]);
        assert_eq!(got, others, "{name}");
        *other_at += others.len();
    }
    assert_eq!((out_at, err_at), (stdout.len(), stderr.len()));
}

/// With `off` (flag or variable), each line is its own record, as before multi-line joining.
#[test]
fn off_gives_each_line_its_record() {
    if !require_root("off_gives_each_line_its_record") {
        return;
    }
    let expected: Vec<String> = traces::TRACES
        .iter()
        .flat_map(|(name, lines)| traces::block(name, lines))
        .map(|line| line.trim_end_matches('\n').to_string())
        .collect();
    for (args, env) in [
        (&["--log-multiline", "off"][..], &[][..]),
        (&[], &[("USHER_LOG_MULTILINE", "off")]),
    ] {
        for stream in run_traces(args, &["burst"], env) {
            assert_eq!(msgs(&stream), expected);
        }
    }
}

/// A line that looks like a trace start and never continues, endless continuation lines, a
/// trace longer than the record limit, invalid UTF-8 inside a trace, a trace that ends the
/// output without a last newline: valid records within the limit, nothing lost, the endless
/// lines in records of at most 1000 lines.
#[test]
fn bad_input_becomes_valid_records_and_nothing_is_lost() {
    if !require_root("bad_input_becomes_valid_records_and_nothing_is_lost") {
        return;
    }
    let [stdout, stderr] = run_traces(&[], &["bad"], &[]);
    assert!(stdout.is_empty());
    let expected: Vec<String> = traces::bad().into_iter().flat_map(|(r, _)| r).collect();
    assert_eq!(msgs(&stderr), expected);
    assert!(stderr.iter().all(|(_, m)| m.lines().count() <= 1000));
}

/// 100,000 plain lines on each stream as fast as the fixture can write them, a trace after
/// every 1000th: every line there, in order, each trace one record.
#[test]
fn traces_in_a_flood() {
    if !require_root("traces_in_a_flood") {
        return;
    }
    let count = 100_000;
    for stream in run_traces(&[], &["flood", &count.to_string()], &[]) {
        let mut expected = Vec::new();
        for n in 0..count {
            expected.push(traces::plain("flood", n));
            if n % 1000 == 999 {
                let (name, lines) = traces::TRACES[n / 1000 % traces::TRACES.len()];
                expected.extend(traces::joined_block(name, lines));
            }
        }
        let got = msgs(&stream);
        assert_eq!(got.len(), expected.len());
        for (n, (got, expected)) in got.iter().zip(&expected).enumerate() {
            assert_eq!(got, expected, "record {n}");
        }
    }
}

/// A line that could start a trace, and nothing after it: written once the hold is over, at
/// least HOLD after it was written (it was held) and well within a deadline.
#[test]
fn a_held_line_is_written_within_its_bound() {
    if !require_root("a_held_line_is_written_within_its_bound") {
        return;
    }
    let mut usher = Usher::pid1(&[
        "--log-format",
        "json",
        "--",
        &fixture("stamped_lines"),
        "held",
        "3",
        "200",
    ]);
    for n in 0..3 {
        let record = parse(&usher.next_line());
        let arrived = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let text = msg(&record);
        assert!(
            text.starts_with(&format!("Error: held line {n} ")),
            "{text}"
        );
        let written: u64 = text.rsplit(' ').next().unwrap().parse().unwrap();
        let latency = arrived.saturating_sub(Duration::from_micros(written));
        assert!(latency >= HOLD, "{text}: out after {latency:?}");
        // The bound plus room for a busy machine; a line held for good would never come.
        assert!(
            latency < HOLD + Duration::from_secs(2),
            "{text}: {latency:?}"
        );
    }
    usher.close_stdin();
    assert_eq!(usher.wait(), 0);
}

/// `--log-format raw`: the child writes to usher's own output, untouched.
#[test]
fn raw_format_passes_traces_through() {
    if !require_root("raw_format_passes_traces_through") {
        return;
    }
    let mut usher = Usher::pid1(&[
        "--log-format",
        "raw",
        "--log-multiline",
        "auto",
        "--",
        &fixture("traces"),
        "burst",
    ]);
    assert_eq!(usher.wait(), 0);
    let expected: Vec<String> = traces::TRACES
        .iter()
        .flat_map(|(name, lines)| traces::block(name, lines))
        .map(|line| line.trim_end_matches('\n').to_string())
        .collect();
    assert_eq!(usher.stdout_seen, expected);
    assert_eq!(usher.stderr_seen, expected);
}

/// A paced trace's records on one stream: the trace's records (each with its level and its
/// lines), the fixture's `paced_done` line after them, and the lines the trace was written as.
struct Paced {
    pieces: Vec<(String, Vec<String>)>,
    longest_gap: Duration,
    written: Vec<String>,
}

fn paced(stream: &[(Record, String)], lines: usize) -> Paced {
    let (done, trace) = stream.split_last().expect("records");
    let gap = msg(&done.0).strip_prefix("paced done, longest gap ");
    let gap: u64 = gap
        .and_then(|g| g.strip_suffix(" us"))
        .unwrap()
        .parse()
        .unwrap();
    let first = trace[0].1.lines().next().unwrap();
    let micros: u128 = first.rsplit(' ').next().unwrap().parse().unwrap();
    Paced {
        pieces: trace
            .iter()
            .map(|(record, text)| {
                let level = record["level"].as_str().unwrap().to_string();
                (level, text.split('\n').map(str::to_string).collect())
            })
            .collect(),
        longest_gap: Duration::from_micros(gap),
        written: traces::paced_java(lines, micros),
    }
}

impl Paced {
    /// Every line of the trace there, in order, and every record labelled `error`, the level
    /// of the trace's first line (the stream's default is `info`, and stdout's too).
    fn check_lines_and_levels(&self, what: &str) {
        let lines: Vec<&String> = self.pieces.iter().flat_map(|(_, l)| l).collect();
        let written: Vec<&String> = self.written.iter().collect();
        assert_eq!(lines, written, "{what}");
        for (level, lines) in &self.pieces {
            assert_eq!(level, "error", "{what}: {:?}", lines[0]);
        }
    }
}

/// A 30-line Java trace written a line at a time, 2, 10 or 30 ms between lines (a logger
/// that writes each line, a container short of CPU): the pipe is never idle for the hold, so
/// the trace is one record, with the level of its first line, on both streams.
#[test]
fn a_trace_written_slowly_is_one_record() {
    if !require_root("a_trace_written_slowly_is_one_record") {
        return;
    }
    for gap in ["2", "10", "30"] {
        let streams = run_traces(&[], &["paced", gap, "30"], &[]);
        for (stream, name) in streams.iter().zip(["stdout", "stderr"]) {
            let what = format!("{gap} ms on {name}");
            let paced = paced(stream, 30);
            paced.check_lines_and_levels(&what);
            if paced.longest_gap >= HOLD - Duration::from_millis(5) {
                // The fixture itself was held up longer than the hold (a busy machine): the
                // trace may be cut there, which the next test covers.
                eprintln!(
                    "{what}: a gap of {:?}, one record not checked",
                    paced.longest_gap
                );
                continue;
            }
            assert_eq!(paced.pieces.len(), 1, "{what}: {:?}", paced.pieces);
        }
    }
}

/// The same trace with gaps longer than the hold: cut where the pipe was idle, and every
/// piece (`Caused by: ...` and the frames after a cut) keeps the trace's level.
#[test]
fn a_trace_cut_by_idle_gaps_keeps_its_level() {
    if !require_root("a_trace_cut_by_idle_gaps_keeps_its_level") {
        return;
    }
    let streams = run_traces(&[], &["paced", "70", "30"], &[]);
    for (stream, name) in streams.iter().zip(["stdout", "stderr"]) {
        let paced = paced(stream, 30);
        paced.check_lines_and_levels(name);
        // Each read is one line unless usher was slower than the fixture.
        assert!(paced.pieces.len() > 1, "{name}: {:?}", paced.pieces);
    }
}

/// A trace that keeps coming, a line every 10 ms for 4 s: its first record goes out once it
/// has been held MAX_HOLD (while the trace is still being written), the rest in records of
/// their own, all with the trace's level.
#[test]
fn a_trace_that_keeps_coming_goes_out_by_the_total_bound() {
    if !require_root("a_trace_that_keeps_coming_goes_out_by_the_total_bound") {
        return;
    }
    let lines = 400;
    let mut usher = Usher::pid1(&[
        "--log-format",
        "json",
        "--",
        &fixture("traces"),
        "paced",
        "10",
        &lines.to_string(),
    ]);
    let first = parse(&usher.next_line());
    let arrived = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let head = msg(&first).lines().next().unwrap().to_string();
    let written: u64 = head.rsplit(' ').next().unwrap().parse().unwrap();
    let latency = arrived.saturating_sub(Duration::from_micros(written));
    assert_eq!(usher.wait(), 0);
    let [stdout, stderr] = [&usher.stdout_seen, &usher.stderr_seen].map(|l| records(l, 16384));
    for (stream, name) in [(&stdout, "stdout"), (&stderr, "stderr")] {
        paced(stream, lines).check_lines_and_levels(name);
    }
    let paced = paced(&stdout, lines);
    let first_lines = paced.pieces[0].1.len();
    // Out before the trace was over, so within the deadline below whatever the pace.
    assert!(first_lines < lines, "one record of {first_lines} lines");
    assert!(
        latency < MAX_HOLD + Duration::from_secs(1),
        "the first record came {latency:?} after its first line"
    );
    if paced.longest_gap < HOLD - Duration::from_millis(5) {
        // No idle gap cut it: it was held for the whole bound.
        assert!(
            latency >= MAX_HOLD,
            "out after {latency:?}, {first_lines} lines"
        );
    }
}
