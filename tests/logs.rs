//! JSON logs: every line of the child a valid record, in order, nothing lost; usher as PID 1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../examples/support/awkward_lines.rs"]
mod awkward_lines;
mod support;

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use support::*;

fn parse(line: &str) -> serde_json::Map<String, Value> {
    match serde_json::from_str::<Value>(line) {
        Ok(Value::Object(map)) => map,
        other => {
            let start = line.len().saturating_sub(300);
            let around = line
                .get(start..(start + 300).min(line.len()))
                .unwrap_or_default();
            panic!(
                "not a JSON object ({} bytes): ...{around:?}... ({other:?})",
                line.len()
            )
        }
    }
}

/// Joins partial records back into whole lines: (record of the line's first piece, full msg).
fn whole_lines(
    records: &[serde_json::Map<String, Value>],
) -> Vec<(serde_json::Map<String, Value>, String)> {
    let mut lines = Vec::new();
    let mut pending: Option<(serde_json::Map<String, Value>, String)> = None;
    for record in records {
        let msg = record
            .get("msg")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let partial = record.get("partial") == Some(&Value::Bool(true));
        let (first, mut text) = pending
            .take()
            .unwrap_or_else(|| (record.clone(), String::new()));
        text.push_str(&msg);
        if partial {
            pending = Some((first, text));
        } else {
            lines.push((first, text));
        }
    }
    assert!(
        pending.is_none(),
        "the last record of a line is never partial"
    );
    lines
}

fn str_of<'a>(record: &'a serde_json::Map<String, Value>, key: &str) -> &'a str {
    record
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no {key} in {record:?}"))
}

#[test]
fn awkward_lines_become_valid_records_and_round_trip() {
    if !require_root("awkward_lines_become_valid_records_and_round_trip") {
        return;
    }
    let args = [
        "--log-format",
        "json",
        "--log-field",
        "service=api",
        "--",
        &fixture("awkward_logs"),
    ];
    let mut usher = Usher::pid1(&args);
    assert_eq!(usher.wait(), 0, "{:?}", usher.stderr_seen);
    for line in usher.stdout_seen.iter().chain(&usher.stderr_seen) {
        assert!(line.len() < 16384, "a record of {} bytes", line.len());
    }
    let stdout: Vec<_> = usher.stdout_seen.iter().map(|l| parse(l)).collect();
    let stderr: Vec<_> = usher.stderr_seen.iter().map(|l| parse(l)).collect();
    let (events, child_stderr): (Vec<_>, Vec<_>) = stderr
        .into_iter()
        .partition(|r| r.get("logger") == Some(&Value::from("usher")));
    let mut expected: Vec<(&str, Vec<u8>)> = awkward_lines::lines();
    expected.push(("stdout", awkward_lines::LAST_WITHOUT_NEWLINE.to_vec()));
    let expected_out: Vec<_> = expected.iter().filter(|(s, _)| *s == "stdout").collect();
    let expected_err: Vec<_> = expected.iter().filter(|(s, _)| *s == "stderr").collect();
    let got_out = whole_lines(&stdout);
    let got_err = whole_lines(&child_stderr);
    assert_eq!(got_out.len(), expected_out.len(), "{got_out:?}");
    assert_eq!(got_err.len(), expected_err.len(), "{got_err:?}");
    for ((record, msg), (stream, raw)) in got_out
        .iter()
        .chain(&got_err)
        .zip(expected_out.iter().chain(&expected_err))
    {
        assert_eq!(str_of(record, "stream"), *stream);
        assert_eq!(
            str_of(record, "service"),
            "api",
            "static field in {record:?}"
        );
        assert_eq!(str_of(record, "time").len(), 27, "{record:?}");
        let text = String::from_utf8_lossy(raw);
        let trimmed = text.trim();
        if trimmed.starts_with('{')
            && serde_json::from_str::<serde_json::Map<String, Value>>(trimmed).is_ok()
        {
            // A JSON object line keeps its keys and values; usher only adds what is missing.
            let original: serde_json::Map<String, Value> = serde_json::from_str(trimmed).unwrap();
            for (key, value) in &original {
                assert_eq!(record.get(key), Some(value), "{key} in {record:?}");
            }
            continue;
        }
        let expected_msg = text.strip_suffix('\r').unwrap_or(&text);
        assert_eq!(msg, expected_msg, "{record:?}");
    }
    // Levels: named by the line, or the stream's default.
    let level_of = |needle: &str| -> String {
        let (record, _) = got_out
            .iter()
            .chain(&got_err)
            .find(|(_, msg)| msg.contains(needle))
            .unwrap();
        str_of(record, "level").to_string()
    };
    for (needle, level) in [
        ("plain words", "info"),
        ("something broke", "error"),
        ("careful", "warn"),
        ("detail", "debug"),
        ("mind the gap", "warn"),
        ("down", "fatal"),
        ("INFORMATION", "info"),
        // stderr's default level (--stderr-level, info unless told otherwise).
        ("without a level", "info"),
        ("stderr line with a level", "info"),
    ] {
        assert_eq!(level_of(needle), level, "{needle}");
    }
    let json_line = got_out.iter().find(|(r, _)| r.get("n").is_some()).unwrap();
    assert_eq!(str_of(&json_line.0, "level"), "warn");
    let severity = got_out
        .iter()
        .find(|(r, _)| r.get("severity").is_some())
        .unwrap();
    assert_eq!(str_of(&severity.0, "level"), "fatal");
    // The 1 MB line came in several records, all partial but the last.
    let pieces = stdout
        .iter()
        .filter(|r| r.get("partial") == Some(&Value::Bool(true)))
        .count();
    assert!(pieces >= 1_000_000 / 16384, "{pieces} partial records");
    // usher's own events are there, in the same schema.
    let said: Vec<&str> = events.iter().map(|e| str_of(e, "msg")).collect();
    assert!(said.iter().any(|m| m.starts_with("started")), "{said:?}");
    assert!(
        said.iter().any(|m| m.contains("exited with status 0")),
        "{said:?}"
    );
    for event in &events {
        assert_eq!(str_of(event, "service"), "api");
        assert!(event.get("level").is_some() && event.get("time").is_some());
        assert!(!str_of(event, "event").is_empty(), "{event:?}");
    }
}

/// The keys of one `--log-schema`, as a collector reads them.
struct Schema {
    name: &'static str,
    time: &'static str,
    level: &'static str,
    message: &'static str,
    stream: &'static str,
    logger: &'static str,
    partial: &'static str,
    event: &'static str,
    /// What the keys of an event's other fields get in front.
    prefix: &'static str,
    /// The level's value for trace, debug, info, warn, error, fatal.
    levels: [&'static str; 6],
}

const SCHEMAS: [Schema; 4] = [
    Schema {
        name: "usher",
        time: "time",
        level: "level",
        message: "msg",
        stream: "stream",
        logger: "logger",
        partial: "partial",
        event: "event",
        prefix: "",
        levels: ["trace", "debug", "info", "warn", "error", "fatal"],
    },
    Schema {
        name: "gcp",
        time: "time",
        level: "severity",
        message: "message",
        stream: "stream",
        logger: "logger",
        partial: "partial",
        event: "event",
        prefix: "",
        levels: ["DEBUG", "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
    },
    Schema {
        name: "ecs",
        time: "@timestamp",
        level: "log.level",
        message: "message",
        stream: "stream",
        logger: "log.logger",
        partial: "usher.partial",
        event: "event.action",
        prefix: "usher.",
        levels: ["trace", "debug", "info", "warn", "error", "fatal"],
    },
    Schema {
        name: "otel",
        time: "Timestamp",
        level: "SeverityText",
        message: "Body",
        stream: "log.iostream",
        logger: "otel.scope.name",
        partial: "partial",
        event: "EventName",
        prefix: "",
        levels: ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"],
    },
];

impl Schema {
    fn level(&self, usher_level: &str) -> &'static str {
        let index = ["trace", "debug", "info", "warn", "error", "fatal"]
            .iter()
            .position(|l| *l == usher_level)
            .unwrap();
        self.levels[index]
    }
}

/// `whole_lines` for any schema: partial records joined back by the schema's keys.
fn whole_lines_in(
    schema: &Schema,
    records: &[serde_json::Map<String, Value>],
) -> Vec<(serde_json::Map<String, Value>, String)> {
    let mut lines = Vec::new();
    let mut pending: Option<(serde_json::Map<String, Value>, String)> = None;
    for record in records {
        let msg = record
            .get(schema.message)
            .and_then(Value::as_str)
            .unwrap_or_default();
        let partial = record.get(schema.partial) == Some(&Value::Bool(true));
        let (first, mut text) = pending
            .take()
            .unwrap_or_else(|| (record.clone(), String::new()));
        text.push_str(msg);
        if partial {
            pending = Some((first, text));
        } else {
            lines.push((first, text));
        }
    }
    assert!(
        pending.is_none(),
        "the last record of a line is never partial"
    );
    lines
}

/// Each schema over a real child as PID 1: text lines on both streams, JSON lines, a line far
/// over the limit (partial records), and usher's own events, every record parsed and checked
/// field by field under the schema's keys.
#[test]
fn each_schema_s_records_field_by_field() {
    if !require_root("each_schema_s_records_field_by_field") {
        return;
    }
    for schema in &SCHEMAS {
        let args = [
            "--log-format",
            "json",
            "--log-schema",
            schema.name,
            "--log-field",
            "service=api",
            "--log-max-record",
            "4096",
            "--",
            &fixture("awkward_logs"),
        ];
        let mut usher = Usher::pid1(&args);
        assert_eq!(usher.wait(), 0, "{}: {:?}", schema.name, usher.stderr_seen);
        for line in usher.stdout_seen.iter().chain(&usher.stderr_seen) {
            assert!(
                line.len() < 4096,
                "{}: a record of {} bytes",
                schema.name,
                line.len()
            );
        }
        let stdout: Vec<_> = usher.stdout_seen.iter().map(|l| parse(l)).collect();
        let stderr: Vec<_> = usher.stderr_seen.iter().map(|l| parse(l)).collect();
        let (events, child_stderr): (Vec<_>, Vec<_>) = stderr
            .into_iter()
            .partition(|r| r.get(schema.logger) == Some(&Value::from("usher")));
        // Every record, the child's and usher's: the time, a level in the schema's names, the
        // static field.
        for record in stdout.iter().chain(&child_stderr).chain(&events) {
            assert_eq!(str_of(record, schema.time).len(), 27, "{record:?}");
            assert!(
                schema.levels.contains(&str_of(record, schema.level)),
                "{}: {record:?}",
                schema.name
            );
            assert_eq!(str_of(record, "service"), "api");
            if schema.name == "otel" {
                assert!(record["SeverityNumber"].is_u64(), "{record:?}");
            }
            if schema.name == "ecs" {
                assert_eq!(str_of(record, "ecs.version"), "8.11.0");
            }
        }
        // The child's lines, whole again, on their streams, with their text.
        let mut expected: Vec<(&str, Vec<u8>)> = awkward_lines::lines();
        expected.push(("stdout", awkward_lines::LAST_WITHOUT_NEWLINE.to_vec()));
        let got: Vec<_> = whole_lines_in(schema, &stdout)
            .into_iter()
            .chain(whole_lines_in(schema, &child_stderr))
            .collect();
        let expected_in_order: Vec<_> = expected
            .iter()
            .filter(|(s, _)| *s == "stdout")
            .chain(expected.iter().filter(|(s, _)| *s == "stderr"))
            .collect();
        assert_eq!(got.len(), expected_in_order.len(), "{}", schema.name);
        let mut json_lines = 0;
        for ((record, msg), (stream, raw)) in got.iter().zip(expected_in_order) {
            assert_eq!(str_of(record, schema.stream), *stream, "{record:?}");
            let text = String::from_utf8_lossy(raw);
            let trimmed = text.trim();
            if let Ok(original) = serde_json::from_str::<serde_json::Map<String, Value>>(trimmed) {
                // Kept verbatim; only the schema's missing keys added.
                for (key, value) in &original {
                    assert_eq!(record.get(key), Some(value), "{key} in {record:?}");
                }
                json_lines += 1;
                continue;
            }
            assert_eq!(msg, text.strip_suffix('\r').unwrap_or(&text), "{record:?}");
        }
        assert_eq!(json_lines, 2);
        // The JSON lines' levels, from their `level` or `severity` where the schema names it
        // otherwise.
        let with = |key: &str| got.iter().find(|(r, _)| r.get(key).is_some()).unwrap();
        let (warn_line, _) = with("n");
        assert_eq!(
            str_of(warn_line, schema.level),
            schema.level("warn"),
            "{warn_line:?}"
        );
        let (severity_line, _) = got
            .iter()
            .find(|(r, _)| r.get("msg") == Some(&Value::from("sev")))
            .unwrap();
        let expected_level = match schema.name {
            "gcp" => "CRITICAL", // its own key, kept as written
            other => SCHEMAS
                .iter()
                .find(|s| s.name == other)
                .unwrap()
                .level("fatal"),
        };
        assert_eq!(str_of(severity_line, schema.level), expected_level);
        // Text levels: named by the line, or the stream's default.
        let level_of = |needle: &str| {
            let (record, _) = got.iter().find(|(_, msg)| msg.contains(needle)).unwrap();
            str_of(record, schema.level).to_string()
        };
        assert_eq!(level_of("something broke"), schema.level("error"));
        // A stderr line naming no level gets --stderr-level's default, info (measured: README).
        assert_eq!(level_of("without a level"), schema.level("info"));
        assert_eq!(level_of("plain words"), schema.level("info"));
        assert_eq!(level_of("detail"), schema.level("debug"));
        // The 1 MB line came in partial records, each marked with the schema's key.
        let pieces = stdout
            .iter()
            .filter(|r| r.get(schema.partial) == Some(&Value::Bool(true)))
            .count();
        assert!(
            pieces >= 1_000_000 / 4096,
            "{}: {pieces} partial records",
            schema.name
        );
        // ecs-logging's order: @timestamp, log.level, message first.
        if schema.name == "ecs" {
            let text_record = usher
                .stdout_seen
                .iter()
                .find(|l| l.contains("plain words"))
                .unwrap();
            assert!(
                text_record.starts_with(r#"{"@timestamp":""#)
                    && text_record.find(r#""log.level""#) < text_record.find(r#""message""#),
                "{text_record}"
            );
        }
        // usher's own events: the logger, the event's name and fields under the schema's keys.
        let find = |name: &str| {
            events
                .iter()
                .find(|r| r.get(schema.event) == Some(&Value::from(name)))
                .unwrap_or_else(|| panic!("{}: no {name} in {events:?}", schema.name))
        };
        let started = find("child_started");
        assert!(
            started[&format!("{}pid", schema.prefix)].is_i64(),
            "{started:?}"
        );
        assert!(str_of(started, schema.message).starts_with("started"));
        assert_eq!(str_of(started, schema.level), schema.level("info"));
        let exited = find("child_exited");
        assert_eq!(exited[&format!("{}status", schema.prefix)], 0, "{exited:?}");
        assert_eq!(
            find("usher_exiting")[&format!("{}status", schema.prefix)],
            0
        );
        for event in &events {
            assert!(event.get(schema.stream).is_none() || schema.stream == schema.logger);
            assert!(!str_of(event, schema.event).is_empty(), "{event:?}");
        }
    }
}

#[test]
fn no_record_is_longer_than_the_limit() {
    if !require_root("no_record_is_longer_than_the_limit") {
        return;
    }
    let args = [
        "--log-format",
        "json",
        "--log-max-record",
        "1024",
        "--",
        &fixture("flood"),
        "50",
        "5000",
    ];
    let mut usher = Usher::pid1(&args);
    assert_eq!(usher.wait(), 0);
    let records: Vec<_> = usher
        .stdout_seen
        .iter()
        .map(|l| {
            assert!(l.len() < 1024, "{} bytes", l.len());
            parse(l)
        })
        .collect();
    let lines = whole_lines(&records);
    assert_eq!(lines.len(), 50);
    for (i, (_, msg)) in lines.iter().enumerate() {
        assert_eq!(msg.len(), 4999);
        assert!(msg.starts_with(&format!("{:07} ", i + 1)));
    }
}

/// A million lines through a reader much slower than the child: none missing, none reordered,
/// and the child is slowed (back-pressure) instead of usher's memory growing.
#[test]
fn a_million_lines_through_a_slow_reader() {
    if !require_root("a_million_lines_through_a_slow_reader") {
        return;
    }
    let mut child = Command::new("unshare")
        .env("USHER_HEALTH_ADDR", "off")
        .args(["--pid", "--fork", "--mount-proc", "--kill-child"])
        .arg(usher())
        .args([
            "--log-format",
            "json",
            "--",
            &fixture("flood"),
            "1000000",
            "40",
        ])
        .env_remove("USHER_LOG_FORMAT")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let reader = BufReader::with_capacity(4096, child.stdout.take().unwrap());
    let unshare = child.id() as i32;
    let mut expected = 1u64;
    let mut peak_kb = 0u64;
    for line in reader.lines() {
        if expected.is_multiple_of(100_000) {
            // usher's memory high-water mark while the reader lags: bounded, not growing.
            if let Some(usher) = children_of(unshare).first() {
                let hwm = status_field(*usher, "VmHWM").unwrap_or_default();
                let kb = hwm.split_whitespace().next().and_then(|v| v.parse().ok());
                peak_kb = peak_kb.max(kb.unwrap_or(0));
            }
        }
        let line = line.unwrap();
        // Parsing every record is the slow part of this reader.
        let record = parse(&line);
        let msg = str_of(&record, "msg");
        let number: u64 = msg[..7].parse().unwrap();
        assert_eq!(number, expected, "after line {}", expected - 1);
        expected += 1;
    }
    assert_eq!(expected - 1, 1_000_000);
    assert_eq!(child.wait().unwrap().code(), Some(0));
    // 40 MB went through; usher held a few MB at most (debug build).
    assert!(
        peak_kb > 0 && peak_kb < 16 * 1024,
        "usher peaked at {peak_kb} kB"
    );
}

#[test]
fn raw_format_leaves_the_output_alone() {
    if !require_root("raw_format_leaves_the_output_alone") {
        return;
    }
    let mut usher = Usher::pid1(&["--log-format", "raw", "--", &fixture("flood"), "3", "12"]);
    assert_eq!(usher.wait(), 0);
    assert_eq!(
        usher.stdout_seen,
        ["0000001 xxx", "0000002 xxx", "0000003 xxx"]
    );
    assert!(usher.stderr_seen.is_empty(), "{:?}", usher.stderr_seen);
    // auto, with a pipe for stdout (no terminal), means json.
    let auto = [("USHER_LOG_FORMAT", "auto")];
    let mut usher = Usher::pid1_with_env(&auto, &["--", &fixture("flood"), "1", "12"]);
    assert_eq!(usher.wait(), 0);
    assert_eq!(str_of(&parse(&usher.stdout_seen[0]), "msg"), "0000001 xxx");
}

/// Everything the child wrote is relayed before usher exits, even with no grace period at all:
/// the drain waits while lines keep coming.
#[test]
fn every_line_is_drained_at_exit_even_with_no_grace() {
    if !require_root("every_line_is_drained_at_exit_even_with_no_grace") {
        return;
    }
    let args = [
        "--grace",
        "0",
        "--log-format",
        "json",
        "--",
        &fixture("flood"),
        "300000",
        "40",
    ];
    let mut usher = Usher::pid1(&args);
    assert_eq!(usher.wait(), 0);
    assert_eq!(usher.stdout_seen.len(), 300_000);
    let last = parse(usher.stdout_seen.last().unwrap());
    assert!(str_of(&last, "msg").starts_with("0300000 "));
}

/// stdout and stderr into one pipe (`2>&1`, journald): records from both relays and usher's
/// own events never mix, even when each chunk is far above the pipe's atomic write size.
#[test]
fn both_streams_into_one_pipe_stay_whole_records() {
    let (reader, writer) = std::io::pipe().unwrap();
    let flood = fixture("flood");
    let script = format!("{flood} 2000 8000 & {flood} 2000 8000 >&2; wait");
    let mut child = usher_command()
        .args(["-v", "--log-format", "json", "--", "sh", "-c", &script])
        .stdout(writer.try_clone().unwrap())
        .stderr(writer)
        .spawn()
        .unwrap();
    let mut count = 0;
    for line in BufReader::new(reader).lines() {
        let line = line.unwrap();
        parse(&line);
        count += 1;
    }
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert!(count >= 4000, "{count} records");
}

/// A command that cannot start is reported as a JSON record too.
#[test]
fn spawn_failure_is_a_json_record() {
    let output = usher_command()
        .args(["--log-format", "json", "--", "/no/such/program"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(127));
    let stderr = String::from_utf8(output.stderr).unwrap();
    let records: Vec<_> = stderr.lines().map(parse).collect();
    let failure = records
        .iter()
        .find(|r| str_of(r, "level") == "error")
        .unwrap();
    assert_eq!(str_of(failure, "logger"), "usher");
    assert_eq!(str_of(failure, "event"), "spawn_failed");
    assert!(
        str_of(failure, "msg").contains("/no/such/program"),
        "{failure:?}"
    );
}

/// usher's own records carry structured fields beside `msg`: every one an `event` name, and the
/// pid, signal and status where they apply, as JSON numbers and strings. A run as PID 1: start,
/// a SIGTERM from outside forwarded to the child, the child's exit, usher's.
#[test]
fn own_events_carry_their_name_and_fields() {
    if !require_root("own_events_carry_their_name_and_fields") {
        return;
    }
    let args = [
        "-v",
        "--log-format",
        "json",
        "--log-field",
        "service=api",
        "--",
        &fixture("print_signals"),
        "--exit-on",
        "TERM",
    ];
    let mut usher = Usher::pid1(&args);
    let child_pid: i64 = loop {
        let record = parse(&usher.next_line());
        let msg = str_of(&record, "msg");
        if let Some(rest) = msg.strip_prefix("ready pid=") {
            break rest.split(' ').next().unwrap().parse().unwrap();
        }
    };
    usher.signal(libc::SIGTERM);
    assert_eq!(usher.wait(), 0, "{:?}", usher.stderr_seen);
    let events: Vec<_> = usher
        .stderr_seen
        .iter()
        .map(|l| parse(l))
        .filter(|r| r.get("logger") == Some(&Value::from("usher")))
        .collect();
    for record in &events {
        let name = str_of(record, "event");
        assert!(
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{record:?}"
        );
        assert_eq!(str_of(record, "service"), "api", "{record:?}");
    }
    let find = |name: &str| {
        events
            .iter()
            .find(|r| r.get("event") == Some(&Value::from(name)))
            .unwrap_or_else(|| panic!("no {name} event in {events:?}"))
    };
    let started = find("child_started");
    assert_eq!(started["pid"], child_pid, "{started:?}");
    let received = find("signal_received");
    assert_eq!(str_of(received, "signal"), "SIGTERM");
    assert!(received["sender_pid"].is_i64(), "{received:?}");
    assert_eq!(str_of(find("stop_requested"), "signal"), "SIGTERM");
    let forwarded = find("signal_forwarded");
    assert_eq!(str_of(forwarded, "signal"), "SIGTERM");
    assert_eq!(forwarded["pid"], child_pid, "{forwarded:?}");
    let exited = find("child_exited");
    assert_eq!(exited["pid"], child_pid, "{exited:?}");
    assert_eq!(exited["status"], 0, "{exited:?}");
    assert_eq!(find("usher_exiting")["status"], 0);
    assert_eq!(str_of(find("usher_exiting"), "level"), "info");
}

/// `usher_exiting` is usher's last record: the child's output is drained before it is said, so
/// a collector may take it as the end of the container's logs. (A child's last stderr line used
/// to follow it about half the time.)
#[test]
fn usher_exiting_is_the_last_record() {
    for _ in 0..20 {
        let output = usher_command()
            .args(["--log-format", "json", "--health-addr", "off", "--"])
            .args(["sh", "-c", "echo hi; echo oops >&2"])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(0));
        let stderr = String::from_utf8(output.stderr).unwrap();
        let records: Vec<_> = stderr.lines().map(parse).collect();
        let last = records.last().expect("no stderr records");
        assert_eq!(str_of(last, "event"), "usher_exiting", "{stderr}");
        assert!(
            records.iter().any(|r| str_of(r, "msg") == "oops"),
            "{stderr}"
        );
    }
}
