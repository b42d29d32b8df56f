//! What the logs' unit tests share: formats, whole-input encoding, records read back, a PRNG.

use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::{Level, LineEncoder, LogFormat, LogSchema, Stream};

pub(super) const TIME: &[u8; 27] = b"2026-11-26T14:34:17.123456Z";
pub(super) const LATER: &[u8; 27] = b"2026-11-26T14:34:18.000001Z";

/// The moment `ms` milliseconds after a fixed start on the monotonic clock: the tests give
/// reads these times, so that how long a record is held is exact whatever the machine does.
pub(super) fn at(ms: u64) -> Instant {
    static START: LazyLock<Instant> = LazyLock::new(Instant::now);
    *START + Duration::from_millis(ms)
}

pub(super) fn format(max: usize, fields: &[(&str, &str)], stderr_level: Level) -> Arc<LogFormat> {
    schema_format(LogSchema::Usher, max, fields, stderr_level)
}

pub(super) fn schema_format(
    schema: LogSchema,
    max: usize,
    fields: &[(&str, &str)],
    stderr_level: Level,
) -> Arc<LogFormat> {
    let fields = fields
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Arc::new(LogFormat::new(schema, max, fields, stderr_level))
}

/// A format with multi-line joining on.
pub(super) fn joining(max: usize) -> Arc<LogFormat> {
    Arc::new(LogFormat::new(LogSchema::Usher, max, Vec::new(), Level::Error).with_multiline(true))
}

pub(super) fn plain() -> Arc<LogFormat> {
    format(16384, &[], Level::Error)
}

/// All of `input` in one push, then finish.
pub(super) fn encode(format: &Arc<LogFormat>, stream: Stream, input: &[u8]) -> String {
    let mut encoder = LineEncoder::new(format.clone(), stream);
    let mut out = Vec::new();
    encoder.push(input, TIME, at(0), &mut out);
    encoder.finish(TIME, &mut out);
    String::from_utf8(out).unwrap()
}

pub(super) fn stdout(input: &[u8]) -> String {
    encode(&plain(), Stream::Stdout, input)
}

/// The one record `stdout` makes of `line` + '\n', with a default head.
pub(super) fn text_record(level: &str, msg_json: &str) -> String {
    format!(
        "{{\"time\":\"2026-11-26T14:34:17.123456Z\",\"level\":\"{level}\",\
         \"stream\":\"stdout\",\"msg\":\"{msg_json}\"}}\n"
    )
}

pub(super) fn objects(out: &str) -> Vec<Map<String, Value>> {
    out.lines()
        .map(|line| match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(map)) => map,
            other => panic!("not an object: {line:?}: {other:?}"),
        })
        .collect()
}

pub(super) fn msg(record: &Map<String, Value>) -> &str {
    record["msg"].as_str().unwrap()
}

/// Checks the records of one over-long line and gives its text back.
pub(super) fn rebuild(out: &str, max: usize) -> (String, Vec<Map<String, Value>>) {
    let records = objects(out);
    for (n, (line, record)) in out.lines().zip(&records).enumerate() {
        assert!(line.len() < max, "record {n} is {} bytes", line.len() + 1);
        let last = n + 1 == records.len();
        assert_eq!(record.get("partial"), (!last).then_some(&Value::Bool(true)));
        assert_eq!(record["level"], records[0]["level"]);
    }
    (records.iter().map(msg).collect(), records)
}

/// A small PRNG (xorshift64*), so the property tests need no crate and are repeatable.
pub(super) struct XorShift(pub(super) u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub(super) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}
