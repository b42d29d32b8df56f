//! Framing: one stream's bytes, as they are read, cut into lines (LF, or CR LF), and a line
//! too long for one record (--log-max-record) cut into pieces as it arrives, so that memory
//! stays bounded whatever the child writes. Complete lines go on to multi-line joining when
//! it is on (`--log-multiline auto`), else straight to their records.
//!
//! Splitting is a function of the line alone, not of how it arrived: an over-long line is cut
//! into the same records whether it came in one read or a byte at a time.

use std::sync::Arc;
use std::time::Instant;

use memchr::memchr;

use super::level::{self, Level};
use super::multiline::Joiner;
use super::record::{LogFormat, Stream};
use super::writer::Writer;

/// Turns one stream's bytes, as they are read, into records. Holds at most about max_record
/// bytes of an unfinished line: a longer line is emitted in pieces as it arrives, each record
/// but the last marked "partial":true, so memory stays bounded whatever the child writes.
/// With multi-line joining on, it may also hold a record that a stack trace's next line could
/// still continue: see [`LineEncoder::held_until`].
#[derive(Debug)]
pub struct LineEncoder {
    writer: Writer,
    /// Joins stack traces into one record; None with `--log-multiline off`.
    joiner: Option<Joiner>,
    /// The unfinished line's bytes not yet written.
    pending: Vec<u8>,
    /// Set once pieces of the unfinished line have been written: the level they carry.
    continued: Option<Level>,
    /// When the last push was read (monotonic): the time of a last line without a newline.
    read_at: Instant,
}

impl LineEncoder {
    pub fn new(format: Arc<LogFormat>, stream: Stream) -> LineEncoder {
        let joiner = format.multiline().then(Joiner::new);
        LineEncoder {
            writer: Writer::new(format, stream),
            joiner,
            pending: Vec::new(),
            continued: None,
            read_at: Instant::now(),
        }
    }

    /// Appends to `out` the records for every line completed by `data` (and pieces of an
    /// over-long line). `time` is when usher read `data` (all its lines get this time), and
    /// `now` the same moment on the monotonic clock (for how long a record is held).
    /// A line ending in CR LF loses the CR, as for an app written for a terminal or Windows.
    pub fn push(&mut self, data: &[u8], time: &[u8; 27], now: Instant, out: &mut Vec<u8>) {
        self.read_at = now;
        let mut rest = data;
        while let Some((line, after)) = split_line(rest) {
            rest = after;
            if self.pending.is_empty() && self.continued.is_none() {
                // The common case: the whole line is in `data`, written without a copy.
                complete(
                    &mut self.joiner,
                    &mut self.writer,
                    strip_cr(line),
                    time,
                    now,
                    out,
                );
            } else {
                self.append(line, time, out);
                let line = strip_cr(&self.pending);
                match self.continued.take() {
                    // Pieces are out: the rest of the line ends its record, never joined.
                    Some(level) => self.writer.text(line, Some(level), time, out),
                    None => complete(&mut self.joiner, &mut self.writer, line, time, now, out),
                }
                self.pending.clear();
            }
        }
        if !rest.is_empty() {
            self.append(rest, time, out);
        }
        if let Some(joiner) = &mut self.joiner {
            joiner.touch(now);
        }
    }

    /// End of stream: a last line without a trailing newline is emitted (not partial), and any
    /// held record. The last line's trailing CR, if any, is kept: with no LF after it, it is
    /// not a line ending.
    pub fn finish(&mut self, time: &[u8; 27], out: &mut Vec<u8>) {
        match self.continued.take() {
            Some(level) => self.writer.text(&self.pending, Some(level), time, out),
            None if !self.pending.is_empty() => {
                let read_at = self.read_at;
                complete(
                    &mut self.joiner,
                    &mut self.writer,
                    &self.pending,
                    time,
                    read_at,
                    out,
                );
            }
            None => {}
        }
        self.pending = Vec::new();
        if let Some(joiner) = &mut self.joiner {
            joiner.flush(&mut self.writer, out);
        }
    }

    /// Until when the relay may wait for more of the stream while a record is held for lines
    /// that may still continue it (a possible stack trace): [`super::multiline::HOLD`] after
    /// the last read that added to it, [`super::multiline::MAX_HOLD`] after its first line at
    /// the latest. None when nothing is held. If no input comes by then, the relay calls
    /// [`Self::flush_held`].
    pub fn held_until(&self) -> Option<Instant> {
        self.joiner.as_ref().and_then(Joiner::held_until)
    }

    /// The wait for more ran out: writes the held record, if any, to `out`. No more lines
    /// join it; the trace's next lines, if it goes on, make a record of their own with its
    /// level.
    pub fn flush_held(&mut self, out: &mut Vec<u8>) {
        if let Some(joiner) = &mut self.joiner {
            joiner.expire(&mut self.writer, out);
        }
    }

    /// The bytes held between pushes: (the unfinished line's, the held record's). Bounded by
    /// the record limit whatever the child writes (the fuzz targets `log_encoder` and
    /// `multiline` check it).
    #[cfg(fuzzing)]
    pub fn buffered(&self) -> (usize, usize) {
        let held = self.joiner.as_ref().map_or(0, Joiner::buffered);
        (self.pending.len(), held)
    }

    /// Records written since the last call, as (records, of which partial), for /metrics.
    pub fn take_counts(&mut self) -> (usize, usize) {
        let records = std::mem::take(&mut self.writer.records);
        let partial = std::mem::take(&mut self.writer.partial_records);
        (records + partial, partial)
    }

    /// Adds bytes of an unfinished line, writing pieces of it whenever it has grown too long to
    /// become one record, so `pending` never holds much more than max_record bytes.
    fn append(&mut self, bytes: &[u8], time: &[u8; 27], out: &mut Vec<u8>) {
        let longest = self.writer.longest();
        // Room for one byte past the longest line even with a CR held back (see `write_pieces`).
        let capacity = longest + 2;
        let mut rest = bytes;
        while !rest.is_empty() {
            let room = capacity.saturating_sub(self.pending.len()).max(1);
            // At most `room` bytes: all of them if fewer.
            let (now, later) = rest.split_at_checked(room).unwrap_or((rest, &[]));
            self.pending.extend_from_slice(now);
            rest = later;
            if self.pending.len() > longest {
                self.write_pieces(time, out);
            }
        }
    }

    /// Writes pieces of the unfinished line while what is left of it is too long to become one
    /// record. That test, and the pieces, are the same as when the whole line is at hand, so
    /// the split does not depend on how the line arrived. A piece never reaches the end of
    /// `pending` (it stops at least `longest - piece` bytes earlier), so an incomplete UTF-8
    /// sequence there is left for the next push to complete.
    fn write_pieces(&mut self, time: &[u8; 27], out: &mut Vec<u8>) {
        // A CR at the end may be the CR of CR LF, which is not part of the line.
        let rest = strip_cr(&self.pending);
        if rest.len() <= self.writer.longest() {
            return;
        }
        let level = match self.continued {
            Some(level) => level,
            None => {
                // The line's first `longest` bytes decide its level (SNIFF_WINDOW is fewer) and
                // whether it continues a trace, as when the whole line is at hand.
                let start = rest.get(..self.writer.longest()).unwrap_or(rest);
                let level = match &mut self.joiner {
                    // Never joined: what is held goes out first.
                    Some(joiner) => joiner.long_line(start, &mut self.writer, out),
                    None => level::sniff(start).unwrap_or(self.writer.default_level()),
                };
                *self.continued.insert(level)
            }
        };
        let done = self.writer.pieces(rest, level, time, out);
        self.pending.drain(..done);
    }
}

/// A complete line (not over-long, no pieces written): to the joiner if there is one, else to
/// its record.
fn complete(
    joiner: &mut Option<Joiner>,
    writer: &mut Writer,
    line: &[u8],
    time: &[u8; 27],
    now: Instant,
    out: &mut Vec<u8>,
) {
    match joiner {
        Some(joiner) => joiner.line(line, time, now, writer, out),
        None => writer.text(line, None, time, out),
    }
}

/// The first line of `bytes` (without its '\n') and what follows its '\n', if `bytes` holds a
/// '\n'. Should the '\n' found ever not split `bytes`, there is no line: the caller keeps the
/// bytes as an unfinished line rather than drop them.
fn split_line(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let (line, rest) = bytes.split_at_checked(memchr(b'\n', bytes)?)?;
    Some((line, rest.strip_prefix(b"\n")?))
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::test_support::*;
    use serde_json::{Map, Value};

    #[test]
    fn several_lines_in_one_push_and_none() {
        let out = stdout(b"one\ntwo\n\nthree\n");
        let expected = [
            ("info", "one"),
            ("info", "two"),
            ("info", ""),
            ("info", "three"),
        ]
        .map(|(level, msg)| text_record(level, msg))
        .concat();
        assert_eq!(out, expected);
        assert_eq!(stdout(b""), "");
    }

    #[test]
    fn empty_line() {
        assert_eq!(stdout(b"\n"), text_record("info", ""));
        assert_eq!(stdout(b"\r\n"), text_record("info", ""));
    }

    #[test]
    fn crlf_loses_its_cr_and_nothing_else_does() {
        assert_eq!(stdout(b"windows\r\n"), text_record("info", "windows"));
        assert_eq!(stdout(b"two\r\r\n"), text_record("info", r"two\r"));
        assert_eq!(stdout(b"a\rb\n"), text_record("info", r"a\rb"));
        assert_eq!(stdout(b"\rstart\n"), text_record("info", r"\rstart"));
        // At the end of the stream there is no LF: the CR stays.
        assert_eq!(stdout(b"last\r"), text_record("info", r"last\r"));
        // A CR LF cut between two pushes.
        let mut encoder = LineEncoder::new(plain(), Stream::Stdout);
        let mut out = Vec::new();
        encoder.push(b"split\r", TIME, at(0), &mut out);
        assert!(out.is_empty());
        encoder.push(b"\n", TIME, at(0), &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            text_record("info", "split")
        );
    }

    #[test]
    fn the_last_line_without_newline_is_written_by_finish() {
        let mut encoder = LineEncoder::new(plain(), Stream::Stdout);
        let mut out = Vec::new();
        encoder.push(b"first\nsecond, unfinished", TIME, at(0), &mut out);
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            text_record("info", "first")
        );
        encoder.push(b" still", TIME, at(0), &mut out);
        encoder.finish(TIME, &mut out);
        let expected =
            text_record("info", "first") + &text_record("info", "second, unfinished still");
        assert_eq!(String::from_utf8(out.clone()).unwrap(), expected);
        // Nothing more, however often finish is called.
        encoder.finish(TIME, &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }

    #[test]
    fn each_push_stamps_its_own_time() {
        let mut encoder = LineEncoder::new(plain(), Stream::Stdout);
        let mut out = Vec::new();
        encoder.push(b"a\nb", TIME, at(0), &mut out);
        encoder.push(b"c\nd\n", LATER, at(0), &mut out);
        let times: Vec<_> = objects(&String::from_utf8(out).unwrap())
            .iter()
            .map(|r| (r["time"].clone(), r["msg"].clone()))
            .collect();
        assert_eq!(
            times,
            [
                ("2026-11-26T14:34:17.123456Z", "a"),
                ("2026-11-26T14:34:18.000001Z", "bc"),
                ("2026-11-26T14:34:18.000001Z", "d"),
            ]
            .map(|(t, m)| (Value::from(t), Value::from(m)))
        );
    }

    /// The count behind /metrics' usher_log_partial_records_total: every piece but the last,
    /// however the line arrived.
    #[test]
    fn partial_records_are_counted() {
        let format = format(1024, &[], Level::Error);
        let line = format!("{}\nshort\n", "x".repeat(5000));
        for chunk in [line.len(), 700, 1] {
            let mut encoder = LineEncoder::new(Arc::clone(&format), Stream::Stdout);
            let mut out = Vec::new();
            for piece in line.as_bytes().chunks(chunk) {
                encoder.push(piece, TIME, at(0), &mut out);
            }
            encoder.finish(TIME, &mut out);
            let out = String::from_utf8(out).unwrap();
            let marked = out.matches(r#""partial":true"#).count();
            assert!(marked >= 4, "{marked}");
            assert_eq!(encoder.writer.partial_records, marked, "chunks of {chunk}");
            assert_eq!(encoder.writer.records, 2, "chunks of {chunk}");
            assert_eq!(
                out.lines().count(),
                encoder.writer.records + encoder.writer.partial_records
            );
        }
    }

    #[test]
    fn a_megabyte_line_in_random_pushes_holds_little_and_splits_the_same() {
        let format = format(4096, &[], Level::Error);
        let mut random = XorShift(0x9e37_79b9_7f4a_7c15);
        // Every kind of unit, so pushes cut inside characters and before escapes.
        let units = ["a", "é", "€", "🦀", "\"", "\\", "\t", "\u{1}", "\u{7f}"];
        let mut line = Vec::new();
        while line.len() < 1 << 20 {
            line.extend_from_slice(units[random.below(units.len())].as_bytes());
            if random.below(50) == 0 {
                line.extend_from_slice(b"\xf0\x9f\xff"); // invalid: a cut 4-byte sequence
            }
        }
        let whole = encode(&format, Stream::Stderr, &[line.as_slice(), b"\n"].concat());
        let mut encoder = LineEncoder::new(format.clone(), Stream::Stderr);
        let mut out = Vec::new();
        let mut rest = line.as_slice();
        while !rest.is_empty() {
            let (now, later) = rest.split_at(random.below(3000).min(rest.len()));
            encoder.push(now, TIME, at(0), &mut out);
            assert!(
                encoder.pending.len() <= 4096 + 1,
                "{}",
                encoder.pending.len()
            );
            rest = later;
        }
        encoder.push(b"\n", TIME, at(0), &mut out);
        let out = String::from_utf8(out).unwrap();
        let (text, records) = rebuild(&out, 4096);
        assert_eq!(text, String::from_utf8_lossy(&line));
        assert_eq!(records[0]["level"], "error");
        assert_eq!(out, whole);
    }

    #[test]
    fn a_long_line_pushed_byte_by_byte_completes_its_characters() {
        let format = format(1024, &[], Level::Error);
        let line = "é🦀€x".repeat(1000);
        let mut encoder = LineEncoder::new(format.clone(), Stream::Stdout);
        let mut out = Vec::new();
        for byte in line.as_bytes() {
            encoder.push(&[*byte], TIME, at(0), &mut out);
        }
        assert!(!out.is_empty(), "pieces are written before the line ends");
        encoder.finish(TIME, &mut out);
        let out = String::from_utf8(out).unwrap();
        assert_eq!(rebuild(&out, 1024).0, line);
        assert_eq!(out, encode(&format, Stream::Stdout, line.as_bytes()));
    }

    /// With joining off nothing is held, so the relay never waits; with it on, a read that
    /// brings only part of a line while a record is held starts the wait for more again.
    #[test]
    fn holds_run_from_the_last_read() {
        let mut encoder = LineEncoder::new(plain(), Stream::Stderr);
        let mut out = Vec::new();
        encoder.push(b"java.lang.Error: x\n\tat a", TIME, at(0), &mut out);
        assert_eq!(encoder.held_until(), None);
        let mut encoder = LineEncoder::new(joining(16384), Stream::Stderr);
        encoder.push(b"java.lang.Error: x\n\tat a", TIME, at(0), &mut out);
        assert_eq!(encoder.held_until(), Some(at(50)));
        encoder.push(b"(A.java:1)", TIME, at(30), &mut out);
        assert_eq!(encoder.held_until(), Some(at(80)));
        encoder.push(b"\nplain\n", TIME, at(60), &mut out);
        assert_eq!(encoder.held_until(), None);
    }

    #[test]
    fn a_long_line_keeps_the_level_of_its_start() {
        let format = format(1024, &[], Level::Warn);
        let line = format!("[debug] {}", "x ERROR ".repeat(1000));
        let mut encoder = LineEncoder::new(format.clone(), Stream::Stderr);
        let mut out = Vec::new();
        for chunk in line.as_bytes().chunks(100) {
            encoder.push(chunk, TIME, at(0), &mut out);
        }
        encoder.push(b"\r\n", TIME, at(0), &mut out);
        let out = String::from_utf8(out).unwrap();
        let (text, records) = rebuild(&out, 1024);
        assert_eq!(text, line);
        assert!(records.iter().all(|r| r["level"] == "debug"));
    }

    #[test]
    fn a_line_that_just_fits_is_one_record_however_it_arrives() {
        let max = 1024;
        let format = format(max, &[], Level::Error);
        let room = max - text_record("info", "").len();
        for (line, records) in [
            ("y".repeat(room), 1),
            ("y".repeat(room + 1), 2),
            ("\"".repeat(room / 2), 1),
            ("\"".repeat(room / 2 + 1), 2),
        ] {
            for ending in ["\n", "\r\n"] {
                let input = line.clone() + ending;
                let whole = encode(&format, Stream::Stdout, input.as_bytes());
                assert_eq!(objects(&whole).len(), records, "{} {ending:?}", line.len());
                for split in [1, 7, room - 1, room, room + 1, input.len() - 1] {
                    let mut encoder = LineEncoder::new(format.clone(), Stream::Stdout);
                    let mut out = Vec::new();
                    let (a, b) = input.as_bytes().split_at(split.min(input.len()));
                    encoder.push(a, TIME, at(0), &mut out);
                    encoder.push(b, TIME, at(0), &mut out);
                    encoder.finish(TIME, &mut out);
                    assert_eq!(String::from_utf8(out).unwrap(), whole, "split at {split}");
                }
            }
        }
    }

    /// Random bytes biased towards what is hard to encode.
    fn awkward_line(random: &mut XorShift, max: usize) -> Vec<u8> {
        let mut line = Vec::new();
        if random.below(5) == 0 {
            // A JSON object, sometimes spoilt.
            let text: String = (0..random.below(40))
                .map(|_| ['a', '"', '\\', '\n', '\u{1}', 'é', '🦀', '}'][random.below(8)])
                .collect();
            let object = serde_json::json!({ "k": text, "level": "x" });
            let mut object = serde_json::to_string(&object).unwrap();
            match random.below(6) {
                0 => object.insert(0, ' '),
                1 => object.push_str(" x"),
                2 => object = "{}".into(),
                3 => object = format!("{{\"severity\":\"warning\",\"a\":{object}}}"),
                _ => {}
            }
            line.extend_from_slice(object.as_bytes());
            return line;
        }
        let len = match random.below(10) {
            0 => max + random.below(3 * max),
            1 => max - 200 + random.below(400),
            _ => random.below(200),
        };
        if random.below(4) == 0 {
            line.extend_from_slice(
                [&b"ERROR "[..], b"[warn] ", b"level=debug ", b"{"][random.below(4)],
            );
        }
        while line.len() < len {
            match random.below(12) {
                0 => line.push(b'"'),
                1 => line.push(b'\\'),
                // Any control byte but LF, which would end the line.
                2 => line.push(match random.below(0x20) as u8 {
                    b'\n' => 0x0b,
                    byte => byte,
                }),
                3 => line.push(0x7f),
                4 => line.extend_from_slice("é€🦀".as_bytes()),
                5 => line.push(0x80 + random.below(0x80) as u8),
                6 => line.extend_from_slice(&[0xe2, 0x82]),
                7 => line.extend_from_slice(&[0xf0, 0x9f, 0x98]),
                8 => line.push(b'\r'),
                9 => line.push(b'{'),
                _ => line.extend_from_slice(b"plain text "),
            }
        }
        line
    }

    #[test]
    fn property_random_input_random_pushes() {
        let mut random = XorShift(0x2545_f491_4f6c_dd1d);
        let (mut lines_checked, mut passed_through, mut split) = (0, 0, 0);
        for round in 0..300 {
            let max = 1024 + random.below(3072);
            let format = format(max, &[], Level::Error);
            let stream = if round % 2 == 0 {
                Stream::Stdout
            } else {
                Stream::Stderr
            };
            let lines: Vec<Vec<u8>> = (0..1 + random.below(30))
                .map(|_| awkward_line(&mut random, max))
                .collect();
            let unfinished = random.below(3) == 0;
            let mut input = lines.join(&b'\n');
            if !unfinished {
                input.push(b'\n');
            }

            let mut encoder = LineEncoder::new(format.clone(), stream);
            let mut out = Vec::new();
            let mut rest = input.as_slice();
            while !rest.is_empty() {
                let size = match random.below(4) {
                    0 => 1 + random.below(8),
                    1 => 1 + random.below(2 * max),
                    _ => 1 + random.below(300),
                };
                let (now, later) = rest.split_at(size.min(rest.len()));
                encoder.push(now, TIME, at(0), &mut out);
                assert!(encoder.pending.len() <= max + 1);
                rest = later;
            }
            encoder.finish(TIME, &mut out);
            let out = String::from_utf8(out).unwrap();
            assert_eq!(out, encode(&format, stream, &input), "round {round}");

            let mut records = out.lines();
            for (n, raw) in lines.iter().enumerate() {
                if unfinished && n + 1 == lines.len() && raw.is_empty() {
                    break; // an empty unfinished line is no line
                }
                let line = match unfinished && n + 1 == lines.len() {
                    true => raw.as_slice(),
                    false => strip_cr(raw),
                };
                let record = records.next().unwrap();
                assert!(record.len() < max, "round {round} line {n}");
                let object: Map<String, Value> = serde_json::from_str(record).unwrap();
                if !object.contains_key("partial") && json_object(line).is_some() {
                    // Passed through: the line's own bytes, keys added before its '}'.
                    let trimmed = line.trim_ascii();
                    assert!(
                        record.starts_with(
                            std::str::from_utf8(&trimmed[..trimmed.len() - 1]).unwrap()
                        )
                    );
                    assert!(
                        json_object(line)
                            .unwrap()
                            .iter()
                            .all(|(k, v)| &object[k] == v)
                    );
                    lines_checked += 1;
                    passed_through += 1;
                    continue;
                }
                // Text: if it looks like JSON, its record could not have fitted.
                if json_object(line).is_some() {
                    assert!(line.len() > max - 1 || line.trim_ascii().len() + 71 + 1 > max);
                }
                let level = level::sniff(line).unwrap_or(format.default_level(stream));
                let mut text = String::new();
                let mut object = object;
                loop {
                    assert_eq!(object["level"], level.as_str());
                    assert_eq!(object["stream"], stream.as_str());
                    assert_eq!(object["time"], std::str::from_utf8(TIME).unwrap());
                    text.push_str(msg(&object));
                    if object.remove("partial").is_none() {
                        break;
                    }
                    assert_eq!(object.len(), 4);
                    let record = records.next().unwrap();
                    assert!(record.len() < max);
                    object = serde_json::from_str(record).unwrap();
                }
                assert_eq!(object.len(), 4);
                assert_eq!(
                    text,
                    String::from_utf8_lossy(line),
                    "round {round} line {n}"
                );
                lines_checked += 1;
                split += usize::from(text.len() > msg(&object).len());
            }
            assert_eq!(records.next(), None);
        }
        // Every path was taken often.
        assert!(lines_checked > 3000, "{lines_checked}");
        assert!(
            passed_through > 300 && split > 300,
            "{passed_through} {split}"
        );
    }

    fn json_object(line: &[u8]) -> Option<Map<String, Value>> {
        let trimmed = line.trim_ascii();
        match serde_json::from_slice::<Value>(trimmed) {
            Ok(Value::Object(map)) if trimmed.first() == Some(&b'{') => Some(map),
            _ => None,
        }
    }

    /// `cargo test --release --lib logs::framing::tests::throughput -- --ignored
    /// --nocapture`: 1,000,000 lines through `push` in 64 KiB chunks, with multi-line joining
    /// off and on, for three kinds of lines: 100-byte lines that start with a level (`INFO
    /// request ...`), `examples/flood`'s 100-byte lines that name none (`0000001 xxx...`), and
    /// the level corpus's lines over and over. `THROUGHPUT_ONLY=flood` (a kind's first word) and
    /// `THROUGHPUT_MULTILINE=auto` or `off` run one case, e.g. under callgrind.
    #[test]
    #[ignore]
    fn throughput() {
        let corpus: Vec<Vec<u8>> = crate::logs::level_corpus::entries()
            .into_iter()
            .map(|entry| entry.line)
            .collect();
        type Line<'a> = &'a dyn Fn(usize) -> Vec<u8>;
        let kinds: [(&str, Line); 3] = [
            ("INFO lines", &|n| {
                let mut line = format!(
                    "INFO request {n:07} handled: GET /api/v1/users?page=2 status=200 bytes=5120 \
                     ua=\"curl/8.5\""
                )
                .into_bytes();
                line.resize(99, b'.');
                line
            }),
            ("flood lines", &|n| {
                format!("{n:07} {}", "x".repeat(91)).into_bytes()
            }),
            ("corpus lines", &|n| corpus[n % corpus.len()].clone()),
        ];
        for (kind, line) in kinds {
            if std::env::var("THROUGHPUT_ONLY").is_ok_and(|only| !kind.starts_with(&only)) {
                continue;
            }
            let mut input = Vec::new();
            for n in 0..1_000_000 {
                input.extend_from_slice(&line(n));
                input.push(b'\n');
            }
            for multiline in [false, true] {
                if std::env::var("THROUGHPUT_MULTILINE").is_ok_and(|m| (m == "auto") != multiline) {
                    continue;
                }
                let fields = vec![("service".to_string(), "api".to_string())];
                let format =
                    LogFormat::new(crate::logs::LogSchema::Usher, 16384, fields, Level::Error)
                        .with_multiline(multiline);
                let format = Arc::new(format);
                let run = |count: bool| {
                    let mut encoder = LineEncoder::new(format.clone(), Stream::Stdout);
                    let mut out = Vec::with_capacity(1 << 20);
                    let mut records = 0;
                    let started = std::time::Instant::now();
                    for chunk in input.chunks(64 * 1024) {
                        encoder.push(chunk, TIME, at(0), &mut out);
                        if count {
                            records += memchr::memchr_iter(b'\n', &out).count();
                        }
                        out.clear();
                    }
                    (started.elapsed(), records)
                };
                let records = run(true).1;
                // Corpus lines include traces, which joining makes fewer records.
                assert!(records <= 1_000_000 && records > 0, "{kind}: {records}");
                // The best of five, as the machine may be busy with something else.
                let best = (0..5).map(|_| run(false).0).min().unwrap();
                println!(
                    "{kind}, multiline {}: {:.2} M lines/s ({:.0} MB/s of input)",
                    if multiline { "auto" } else { "off" },
                    1.0 / best.as_secs_f64(),
                    input.len() as f64 / 1e6 / best.as_secs_f64()
                );
            }
        }
    }
}
