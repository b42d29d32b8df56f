//! What the fuzz targets share: reading a fuzz input as a small structured case, and the log
//! encoder's property (records read back against the lines they came from).
//!
//! A property failure is a panic (assert!), which libFuzzer reports as a crash with the input
//! that caused it (fuzz/artifacts/<target>/).

use std::sync::Arc;
use std::time::Instant;

use serde_json::value::RawValue;
use serde_json::{Map, Value};
use usher::fuzzing::{Level, LineEncoder, LogFormat, LogSchema, Stream, sniff};

/// The time every push is stamped with (the encoder takes it formatted).
pub const TIME: &[u8; 27] = b"2026-11-26T14:34:17.123456Z";

/// A fuzz input taken from the front: configuration bytes first, the rest as data. Reading past
/// the end gives zeros, so every input is a case.
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Input<'a> {
        Input { data }
    }

    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((first, rest)) => {
                self.data = rest;
                *first
            }
            None => 0,
        }
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }

    /// Up to `n` bytes.
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (taken, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        taken
    }

    /// Bytes up to the next `separator` (not included) or the end.
    pub fn field(&mut self, separator: u8) -> &'a [u8] {
        match self.data.iter().position(|b| *b == separator) {
            Some(end) => {
                let field = &self.data[..end];
                self.data = &self.data[end + 1..];
                field
            }
            None => self.rest(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }
}

/// Cuts `data` into pieces of the sizes in `sizes`, taken in turn (one piece if there are none).
pub fn cut<'a>(data: &'a [u8], sizes: &[usize]) -> Vec<&'a [u8]> {
    if sizes.is_empty() {
        return vec![data];
    }
    let mut pieces = Vec::new();
    let mut rest = data;
    for size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (piece, after) = rest.split_at((*size).clamp(1, rest.len()));
        pieces.push(piece);
        rest = after;
    }
    pieces
}

/// One log encoder case: the format, and how the stream arrives.
#[derive(Debug)]
pub struct EncoderCase {
    pub schema: LogSchema,
    pub stream: Stream,
    pub multiline: bool,
    /// --log-max-record, from 1024.
    pub max_record: usize,
    /// A static field (--log-field service=api) or none.
    pub field: bool,
    pub stderr_level: Level,
    /// The sizes of the reads, in turn; empty: all in one read.
    pub reads: Vec<usize>,
    /// The relay's hold running out (`flush_held`) after every this many reads; 0: never.
    pub flush_every: usize,
}

impl EncoderCase {
    /// A case from the input's first bytes: flags, the record limit, the read sizes.
    pub fn read(input: &mut Input<'_>, multiline: Option<bool>) -> EncoderCase {
        let flags = input.byte();
        let schema = LogSchema::ALL[usize::from(flags & 3)];
        let stream = match flags & 4 {
            0 => Stream::Stdout,
            _ => Stream::Stderr,
        };
        let multiline = multiline.unwrap_or(flags & 8 != 0);
        let field = flags & 16 != 0;
        let stderr_level = if flags & 32 != 0 {
            Level::Warn
        } else {
            Level::Error
        };
        let max_record = 1024 + usize::from(input.byte()) * 8;
        let flush_every = usize::from(input.byte() % 8);
        let reads = (0..input.byte() % 16)
            .map(|_| 1 + usize::from(input.u16() % 4096))
            .collect();
        EncoderCase {
            schema,
            stream,
            multiline,
            max_record,
            field,
            stderr_level,
            reads,
            flush_every,
        }
    }

    fn format(&self) -> Arc<LogFormat> {
        let fields = match self.field {
            true => vec![("service".to_string(), "api".to_string())],
            false => Vec::new(),
        };
        let format = LogFormat::new(self.schema, self.max_record, fields, self.stderr_level);
        Arc::new(format.with_multiline(self.multiline))
    }
}

/// The names the schema gives the message, the partial mark and the level.
fn keys(schema: LogSchema) -> (&'static str, &'static str, &'static str) {
    match schema {
        LogSchema::Usher => ("msg", "partial", "level"),
        LogSchema::Gcp => ("message", "partial", "severity"),
        LogSchema::Ecs => ("message", "usher.partial", "log.level"),
        LogSchema::Otel => ("Body", "partial", "SeverityText"),
    }
}

/// Runs `data` through a LineEncoder as `case` says and checks the records:
/// - every record is one JSON object on one line, no longer than the record limit;
/// - the bytes held between reads stay within the record limit;
/// - the lines are rebuilt from the records, in order, none lost or repeated: a text record's
///   message (its `partial` pieces joined) is its line with invalid UTF-8 as U+FFFD, or with
///   multi-line joining several lines joined with '\n'; a JSON line passed through keeps its
///   bytes and its members;
/// - without the hold running out, the records are those of the same bytes in one read.
pub fn check_encoder(case: &EncoderCase, data: &[u8]) {
    let format = case.format();
    let max = case.max_record;
    let mut encoder = LineEncoder::new(Arc::clone(&format), case.stream);
    let mut out = Vec::new();
    let now = Instant::now();
    for (n, read) in cut(data, &case.reads).into_iter().enumerate() {
        // One instant for every read: the hold runs out only where `flush_held` says.
        encoder.push(read, TIME, now, &mut out);
        let (pending, held) = encoder.buffered();
        assert!(pending <= max + 1, "unfinished line holds {pending} bytes");
        assert!(held < max, "held record holds {held} bytes");
        if case.flush_every > 0 && (n + 1) % case.flush_every == 0 {
            encoder.flush_held(&mut out);
            assert_eq!(encoder.held_until(), None);
        }
    }
    encoder.finish(TIME, &mut out);
    assert_eq!(encoder.buffered(), (0, 0), "nothing is left after finish");
    let (records, _partial) = encoder.take_counts();
    let text = std::str::from_utf8(&out).expect("records are UTF-8");
    assert!(text.is_empty() || text.ends_with('\n'));
    assert_eq!(
        text.lines().count(),
        records,
        "records counted for /metrics"
    );

    if case.flush_every == 0 {
        let mut whole = LineEncoder::new(format, case.stream);
        let mut again = Vec::new();
        whole.push(data, TIME, now, &mut again);
        whole.finish(TIME, &mut again);
        assert!(
            out == again,
            "records depend on read boundaries:\n{text}\nvs one read:\n{}",
            String::from_utf8_lossy(&again)
        );
    }
    check_records(case, text, &lines_of(data));
}

/// The lines of a stream as the encoder must see them: cut at '\n', a complete line without
/// the CR of a CR LF; a last line without '\n' as it is (an empty one is no line).
pub fn lines_of(data: &[u8]) -> Vec<&[u8]> {
    let mut lines: Vec<&[u8]> = data.split(|b| *b == b'\n').collect();
    let unfinished = lines.pop().filter(|last| !last.is_empty());
    let mut lines: Vec<&[u8]> = lines
        .into_iter()
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .collect();
    lines.extend(unfinished);
    lines
}

fn trim_json_whitespace(bytes: &[u8]) -> &[u8] {
    let blank = |b: &u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    let start = bytes.iter().position(|b| !blank(b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !blank(b))
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

/// The line as a JSON object, if serde_json reads it as one (JSON whitespace around it).
fn json_object(line: &[u8]) -> Option<Map<String, Value>> {
    let trimmed = trim_json_whitespace(line);
    match serde_json::from_slice::<Value>(trimmed) {
        Ok(Value::Object(map)) if trimmed.first() == Some(&b'{') => Some(map),
        _ => None,
    }
}

fn check_records(case: &EncoderCase, text: &str, lines: &[&[u8]]) {
    let (message_key, partial_key, level_key) = keys(case.schema);
    let max = case.max_record;
    let records: Vec<&str> = text.lines().collect();
    // Every record is JSON by the grammar (a number out of f64's range included, as it may be
    // in a line passed through); most also read as a serde_json map, all text records do.
    let objects: Vec<Option<Map<String, Value>>> = records
        .iter()
        .map(|record| {
            assert!(
                record.len() < max,
                "record of {} bytes over the limit {max}: {record}",
                record.len() + 1
            );
            assert!(
                record.starts_with('{') && serde_json::from_str::<&RawValue>(record).is_ok(),
                "record is not a JSON object: {record:?}"
            );
            match serde_json::from_str::<Value>(record) {
                Ok(Value::Object(object)) => Some(object),
                _ => None,
            }
        })
        .collect();
    let partial = |object: &Option<Map<String, Value>>| {
        object.as_ref().and_then(|o| o.get(partial_key)) == Some(&Value::Bool(true))
    };
    let mut next_line = 0;
    let mut r = 0;
    while r < records.len() {
        let Some(line) = lines.get(next_line) else {
            panic!("record {r} has no line left: {}", records[r]);
        };
        let object = &objects[r];
        // A JSON line passed through: its own bytes, members added before its closing brace.
        let trimmed = trim_json_whitespace(line);
        if !partial(object)
            && let Some(open) = trimmed.strip_suffix(b"}")
            && open.starts_with(b"{")
            && records[r].as_bytes().starts_with(open)
            && std::str::from_utf8(trimmed)
                .is_ok_and(|t| serde_json::from_str::<&RawValue>(t).is_ok())
        {
            if let (Some(own), Some(object)) = (json_object(line), object) {
                for (key, value) in &own {
                    assert_eq!(
                        object.get(key),
                        Some(value),
                        "member {key} of {:?}",
                        records[r]
                    );
                }
            }
            next_line += 1;
            r += 1;
            continue;
        }
        // A JSON object that fits with room to spare for the members usher adds must pass
        // through, unless a trace took it in.
        if !case.multiline && json_object(line).is_some() && line.len() + 320 < max {
            panic!("JSON line written as text: {:?}", records[r]);
        }
        // A text record: its pieces, then the lines it holds.
        let Some(first) = object else {
            panic!("text record not read by serde_json: {}", records[r]);
        };
        let mut message = String::new();
        loop {
            let Some(object) = &objects[r] else {
                panic!("text record not read by serde_json: {}", records[r]);
            };
            assert_eq!(
                object.get(level_key),
                first.get(level_key),
                "pieces' levels"
            );
            let Some(Value::String(piece)) = object.get(message_key) else {
                panic!("text record without a message: {}", records[r]);
            };
            message.push_str(piece);
            r += 1;
            if object.get(partial_key) != Some(&Value::Bool(true)) {
                break;
            }
            assert!(r < records.len(), "the last record is partial");
        }
        // Joined records may go on a trace begun in an earlier one (past MAX_LINES lines),
        // with that one's level: checked without joining only.
        if case.schema == LogSchema::Usher && !case.multiline {
            let default = match case.stream {
                Stream::Stdout => Level::Info,
                Stream::Stderr => case.stderr_level,
            };
            let level = sniff(line).unwrap_or(default);
            assert_eq!(first.get("level"), Some(&Value::from(level.as_str())));
        }
        if case.field {
            assert_eq!(first.get("service"), Some(&Value::from("api")));
        }
        let held: Vec<&str> = message.split('\n').collect();
        if !case.multiline {
            assert_eq!(held.len(), 1, "a record of several lines without joining");
        }
        for piece in held {
            let Some(line) = lines.get(next_line) else {
                panic!("message holds more lines than were written: {message:?}");
            };
            assert_eq!(
                piece,
                String::from_utf8_lossy(line),
                "line {next_line} rebuilt from the records"
            );
            next_line += 1;
        }
    }
    assert_eq!(
        next_line,
        lines.len(),
        "lines without a record: {:?}",
        &lines[next_line..]
    );
}
