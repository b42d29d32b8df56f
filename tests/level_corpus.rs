//! The level corpus (tests/data/log_levels.txt) through the real usher as PID 1: the
//! `level_corpus` fixture writes every line to the stream its framework writes it to, and each
//! record's level is checked against the corpus. Per-format results are printed (see them with
//! `--nocapture`); at least 95 % of the lines must be right. The second test measures which
//! `--stderr-level` labels the stderr lines that name no level right, and checks that usher's
//! default is that one.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../examples/support/level_corpus.rs"]
mod level_corpus;
mod support;

use std::collections::BTreeMap;

use level_corpus::Entry;
use serde_json::{Map, Value};
use support::*;

/// The share of the corpus that must be right (the figure).
const REQUIRED_PERCENT: usize = 95;

/// usher as PID 1 over the fixture run with `fixture_args`, with `usher_args` before `--`:
/// each corpus entry with its record (the child's records of each stream, in order, matched to
/// the entries of that stream).
fn run(usher_args: &[&str], fixture_args: &[&str]) -> Vec<(Entry, Map<String, Value>)> {
    let fixture = fixture("level_corpus");
    // One record per line: this measures level detection, not the joining of stack traces
    // (tests/multiline.rs), which would make a trace's lines one record.
    let mut args = vec!["--log-format", "json", "--log-multiline", "off"];
    args.extend_from_slice(usher_args);
    args.push("--");
    args.push(&fixture);
    args.extend_from_slice(fixture_args);
    let mut usher = Usher::pid1(&args);
    assert_eq!(usher.wait(), 0, "{:?}", usher.stderr_seen);
    let parse = |line: &String| match serde_json::from_str::<Value>(line) {
        Ok(Value::Object(map)) => map,
        other => panic!("not a JSON object: {line:?} ({other:?})"),
    };
    let stdout: Vec<_> = usher.stdout_seen.iter().map(parse).collect();
    let stderr: Vec<_> = usher
        .stderr_seen
        .iter()
        .map(parse)
        .filter(|record| record.get("logger") != Some(&Value::from("usher")))
        .collect();
    let entries = level_corpus::entries();
    let mut results = Vec::new();
    for (stream, records) in [("stdout", stdout), ("stderr", stderr)] {
        let of_stream: Vec<&Entry> = entries.iter().filter(|e| e.stream == stream).collect();
        assert_eq!(
            records.len(),
            of_stream.len(),
            "{stream} records: {records:?}"
        );
        for (entry, record) in of_stream.into_iter().zip(records) {
            assert_eq!(record.get("partial"), None, "{record:?}");
            assert_eq!(record["stream"], stream, "{record:?}");
            check_content(entry, &record);
            results.push((entry.clone(), record));
        }
    }
    results.sort_by_key(|(entry, _)| entry.number);
    results
}

/// The record holds its line: as `msg`, or, for a JSON object, as the record itself.
fn check_content(entry: &Entry, record: &Map<String, Value>) {
    let line = String::from_utf8_lossy(&entry.line);
    match serde_json::from_str::<Map<String, Value>>(&line) {
        Ok(object) => {
            for (key, value) in &object {
                assert_eq!(record.get(key), Some(value), "line {}", entry.number);
            }
        }
        Err(_) => assert_eq!(record["msg"], *line, "line {}", entry.number),
    }
}

/// Prints each format's score and the lines usher got wrong; returns how many were right.
fn report(results: &[(Entry, Map<String, Value>)]) -> usize {
    let mut formats: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut wrong = Vec::new();
    for (entry, record) in results {
        let got = level_corpus::record_level(record);
        let score = formats.entry(&entry.format).or_default();
        score.1 += 1;
        if got == Some(entry.level) {
            score.0 += 1;
        } else {
            wrong.push(format!(
                "  line {:>3} {:<24} {} want {:<5} got {:<5} {}",
                entry.number,
                entry.format,
                entry.stream,
                entry.level,
                got.unwrap_or("-"),
                String::from_utf8_lossy(&entry.line)
            ));
        }
    }
    println!("{:<26} {:>5} {:>5}", "format", "right", "lines");
    for (format, (right, lines)) in &formats {
        let mark = if right == lines { "pass" } else { "FAIL" };
        println!("{format:<26} {right:>5} {lines:>5}  {mark}");
    }
    let right = formats.values().map(|(right, _)| right).sum::<usize>();
    let passed = formats
        .values()
        .filter(|(right, lines)| right == lines)
        .count();
    println!(
        "{right} of {} lines right ({:.1} %), {passed} of {} formats all right",
        results.len(),
        right as f64 * 100.0 / results.len() as f64,
        formats.len()
    );
    println!("lines usher got wrong:\n{}", wrong.join("\n"));
    right
}

#[test]
fn corpus_levels_through_usher() {
    if !require_root("corpus_levels_through_usher") {
        return;
    }
    let results = run(&[], &[]);
    let right = report(&results);
    assert!(
        right * 100 >= results.len() * REQUIRED_PERCENT,
        "{right} of {} lines right, under {REQUIRED_PERCENT} %",
        results.len()
    );
    // The same lines cut across reads (7 bytes a write) get the same levels.
    let cut = run(&[], &["--cut", "7"]);
    for ((entry, whole), (_, pieces)) in results.iter().zip(&cut) {
        assert_eq!(
            whole["level"], pieces["level"],
            "line {} cut across reads",
            entry.number
        );
        assert_eq!(whole.get("level_name"), pieces.get("level_name"));
    }
}

/// The stderr lines that name no level take `--stderr-level`: run with each candidate, those
/// lines are the ones whose level follows it. The default must be the candidate that labels
/// most of them right.
#[test]
fn stderr_default_is_the_measured_best() {
    if !require_root("stderr_default_is_the_measured_best") {
        return;
    }
    let candidates = ["info", "warn", "error"];
    let runs: Vec<_> = candidates
        .iter()
        .map(|level| run(&["--stderr-level", level], &[]))
        .collect();
    let default = run(&[], &[]);
    let mut unlabelled = Vec::new();
    for (n, (entry, _)) in runs[0].iter().enumerate() {
        let follows = runs
            .iter()
            .zip(candidates)
            .all(|(results, level)| level_corpus::record_level(&results[n].1) == Some(level));
        if entry.stream == "stderr" && follows {
            unlabelled.push((n, entry));
        }
    }
    let mut by_format: BTreeMap<&str, BTreeMap<&str, usize>> = BTreeMap::new();
    for (_, entry) in &unlabelled {
        *by_format
            .entry(&entry.format)
            .or_default()
            .entry(entry.level)
            .or_default() += 1;
    }
    println!("stderr lines that name no level: {}", unlabelled.len());
    for (format, levels) in &by_format {
        println!("  {format:<26} {levels:?}");
    }
    let scores: Vec<(&str, usize)> = candidates
        .iter()
        .map(|level| {
            let right = unlabelled.iter().filter(|(_, e)| e.level == *level).count();
            (*level, right)
        })
        .collect();
    for (level, right) in &scores {
        println!(
            "  --stderr-level {level}: {right} of {} right",
            unlabelled.len()
        );
    }
    let best = scores.iter().max_by_key(|(_, right)| *right).unwrap().0;
    assert_eq!(
        best, "info",
        "the measured best default is {best}: change DEFAULT_STDERR_LEVEL, the help and the README"
    );
    // And it is the default.
    for (n, entry) in &unlabelled {
        assert_eq!(
            level_corpus::record_level(&default[*n].1),
            Some(best),
            "line {}",
            entry.number
        );
    }
}
