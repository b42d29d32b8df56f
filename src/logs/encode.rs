//! Lines in, JSON records out: framing, escaping, splitting of over-long lines, JSON pass-through.
//!
//! This is usher's hottest path, so it works on bytes: newlines are found with memchr, runs of
//! bytes needing no escape are copied whole (found eight at a time), the timestamp arrives
//! formatted, record heads are built once per read, and nothing is allocated per line (a JSON
//! line's keys are found by a walk over its text, not collected).
//!
//! Splitting is a function of the line alone, not of how it arrived: an over-long line is cut
//! into the same records whether it came in one read or a byte at a time.

use std::borrow::Cow;
use std::sync::Arc;

use memchr::memchr;
use serde_json::value::RawValue;

use super::level::{self, Level};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }

    /// What follows the level in a text record from this stream, up to `"msg"`.
    fn tag(self) -> &'static [u8] {
        match self {
            Stream::Stdout => br#"","stream":"stdout","#,
            Stream::Stderr => br#"","stream":"stderr","#,
        }
    }
}

const TIME_KEY: &[u8] = br#"{"time":""#;
const LEVEL_KEY: &[u8] = br#"","level":""#;
const USHER_TAG: &[u8] = br#"","logger":"usher","#;
const PARTIAL: &[u8] = br#""partial":true,"#;
const MSG_KEY: &[u8] = br#""msg":""#;
const END: &[u8] = b"}\n";
const REPLACEMENT: &[u8] = "\u{FFFD}".as_bytes();
const TIMESTAMP_LEN: usize = 27;
/// The most output one unit of a msg can take (`\u001f`): every record has room for one.
const LONGEST_UNIT: usize = 6;
/// The least room for msg bytes a record keeps, whatever the static fields take.
const MIN_MSG_ROOM: usize = 16;
/// Keys usher writes itself, so static fields may not use them.
const RESERVED_KEYS: [&str; 6] = ["time", "level", "stream", "msg", "partial", "logger"];

/// How records look: from --log-max-record, --log-field K=V (static fields), --stderr-level.
#[derive(Debug)]
pub struct LogFormat {
    /// The most bytes a record takes, its '\n' included.
    max_record: usize,
    /// The end of every text record: `","k":"v",...}` and '\n' (static fields as `,"k":"v"`).
    closing: Vec<u8>,
    /// Each static field as (key, `"k":"v"`), for JSON lines that may have some already.
    fields: Vec<(String, Vec<u8>)>,
    stderr_level: Level,
}

impl LogFormat {
    /// `max_record`: the most bytes any record may take, its '\n' included (>= 1024, checked
    /// by the caller). `static_fields`: (key, value) pairs, keys already validated by
    /// [`valid_field_key`]. Should the static fields leave no room for a msg within
    /// `max_record`, the limit is raised just enough to hold a few msg bytes per record:
    /// splitting must always make progress.
    pub fn new(
        max_record: usize,
        static_fields: Vec<(String, String)>,
        stderr_level: Level,
    ) -> LogFormat {
        let mut closing = b"\"".to_vec();
        let mut fields = Vec::with_capacity(static_fields.len());
        for (key, value) in static_fields {
            let mut field = Vec::with_capacity(key.len() + value.len() + 6);
            field.push(b'"');
            escape_valid(key.as_bytes(), &mut field);
            field.extend_from_slice(b"\":\"");
            escape_valid(value.as_bytes(), &mut field);
            field.push(b'"');
            closing.push(b',');
            closing.extend_from_slice(&field);
            fields.push((key, field));
        }
        closing.extend_from_slice(END);
        let mut format = LogFormat {
            max_record,
            closing,
            fields,
            stderr_level,
        };
        // The largest head: a five-letter level, a 20-byte tag (both tags are), partial.
        let head = TIME_KEY.len() + TIMESTAMP_LEN + LEVEL_KEY.len() + 5 + 20 + MSG_KEY.len();
        let largest = format.overhead(head, true);
        // An unfinished line gets its level once `longest_whole_line` bytes have arrived: they
        // must hold all that `sniff` looks at.
        format.max_record = max_record
            .max(largest + MIN_MSG_ROOM)
            .max(level::SNIFF_WINDOW + 1);
        format
    }

    fn default_level(&self, stream: Stream) -> Level {
        match stream {
            Stream::Stdout => Level::Info,
            Stream::Stderr => self.stderr_level,
        }
    }

    /// The longest line that may still become one record: anything longer is text, and is cut
    /// into pieces as soon as this much of it has arrived.
    fn longest_whole_line(&self) -> usize {
        self.max_record - 1
    }

    /// Bytes of a text record besides its escaped msg, for a head (see [`render_head`]) of
    /// `head` bytes.
    fn overhead(&self, head: usize, partial: bool) -> usize {
        head + if partial { PARTIAL.len() } else { 0 } + self.closing.len()
    }

    fn open(&self, head: &[u8], partial: bool, out: &mut Vec<u8>) {
        if partial {
            out.extend_from_slice(head.strip_suffix(MSG_KEY).unwrap_or(head));
            out.extend_from_slice(PARTIAL);
            out.extend_from_slice(MSG_KEY);
        } else {
            out.extend_from_slice(head);
        }
    }

    fn close(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.closing);
    }

    /// One or more text records for `msg`: as many `"partial":true` records as it takes, each
    /// filled as far as the limit allows, then the last one. Returns how many were partial.
    fn write_text(&self, head: &[u8], msg: &[u8], out: &mut Vec<u8>) -> usize {
        let whole = self
            .max_record
            .saturating_sub(self.overhead(head.len(), false));
        let piece = self
            .max_record
            .saturating_sub(self.overhead(head.len(), true));
        let mut rest = msg;
        let mut partial = 0;
        loop {
            let mark = out.len();
            if rest.len() <= whole {
                out.reserve(whole.min(rest.len() * LONGEST_UNIT) + (self.max_record - whole));
                self.open(head, false, out);
                if rest.len() <= whole / LONGEST_UNIT {
                    // Fits even if every byte needs escaping: no counting needed.
                    escape(rest, out);
                    self.close(out);
                    return partial;
                }
                if escape_limited(rest, whole, out) == rest.len() {
                    self.close(out);
                    return partial;
                }
                // Escaping made it too long after all: it becomes pieces.
                out.truncate(mark);
            }
            out.reserve(self.max_record);
            self.open(head, true, out);
            let taken = escape_limited(rest, piece, out);
            let Some(after) = rest.get(taken..).filter(|_| taken > 0) else {
                // Cannot happen (every record has room for the longest unit), but should it,
                // the line is written whole rather than lost or looped on.
                out.truncate(mark);
                self.open(head, false, out);
                escape(rest, out);
                self.close(out);
                return partial;
            };
            self.close(out);
            partial += 1;
            rest = after;
        }
    }

    /// The record of a line that is a JSON object, if it is one and its record fits: the
    /// object's own bytes, with only the missing keys added before its final `}`.
    fn write_json(
        &self,
        line: &[u8],
        stream: Stream,
        time: &[u8; 27],
        found: &mut Vec<bool>,
        out: &mut Vec<u8>,
    ) -> bool {
        let object = trim_json_whitespace(line);
        if object.first() != Some(&b'{') || object.last() != Some(&b'}') {
            return false;
        }
        let Ok(text) = std::str::from_utf8(object) else {
            return false;
        };
        if !is_json(text) {
            return false;
        }
        let (mut empty, mut has_time, mut has_level, mut has_stream) = (true, false, false, false);
        let mut severity = None;
        found.clear();
        found.resize(self.fields.len(), false);
        for (key, value) in Members::new(text) {
            empty = false;
            let Some(key) = decode_key(key) else {
                return false; // cannot happen: serde_json accepted it
            };
            match &*key {
                "time" => has_time = true,
                "level" => has_level = true,
                "stream" => has_stream = true,
                "severity" => severity = string_level(value),
                _ => {}
            }
            for (slot, (field, _)) in found.iter_mut().zip(&self.fields) {
                *slot |= *field == *key;
            }
        }

        let Some(open) = object.strip_suffix(b"}") else {
            return false;
        };
        let mark = out.len();
        out.reserve(object.len() + self.max_record.min(256));
        out.extend_from_slice(open);
        let mut first = empty;
        let mut add = |out: &mut Vec<u8>, parts: &[&[u8]]| {
            if !first {
                out.push(b',');
            }
            first = false;
            for part in parts {
                out.extend_from_slice(part);
            }
        };
        if !has_time {
            add(out, &[br#""time":""#, time, b"\""]);
        }
        if !has_level {
            let level = severity.unwrap_or(self.default_level(stream));
            add(out, &[br#""level":""#, level.as_str().as_bytes(), b"\""]);
        }
        if !has_stream {
            add(out, &[br#""stream":""#, stream.as_str().as_bytes(), b"\""]);
        }
        for ((_, field), found) in self.fields.iter().zip(found.iter()) {
            if !found {
                add(out, &[field]);
            }
        }
        out.extend_from_slice(END);
        if out.len() - mark > self.max_record {
            out.truncate(mark);
            return false;
        }
        true
    }

    /// The record(s) of one complete line. `level` is set when pieces of the line were already
    /// written with it: the rest keeps it, and the line is text. Returns how many records were
    /// partial.
    fn write_line(
        &self,
        line: &[u8],
        stream: Stream,
        level: Option<Level>,
        time: &[u8; 27],
        buffers: &mut Buffers,
        out: &mut Vec<u8>,
    ) -> usize {
        let level = match level {
            Some(level) => level,
            None => {
                if line.len() <= self.longest_whole_line()
                    && trim_json_whitespace(line).first() == Some(&b'{')
                    && self.write_json(line, stream, time, &mut buffers.found, out)
                {
                    return 0;
                }
                level::sniff(line).unwrap_or(self.default_level(stream))
            }
        };
        self.write_text(buffers.head(time, level), line, out)
    }
}

/// The start of a text record, up to and with `"msg":"`.
fn render_head(time: &[u8; 27], level: Level, tag: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(TIME_KEY);
    out.extend_from_slice(time);
    out.extend_from_slice(LEVEL_KEY);
    out.extend_from_slice(level.as_str().as_bytes());
    out.extend_from_slice(tag);
    out.extend_from_slice(MSG_KEY);
}

/// What one stream's encoder keeps from line to line so as not to build it again.
#[derive(Debug)]
struct Buffers {
    tag: &'static [u8],
    time: [u8; 27],
    /// Record heads by level, each built once per time: the lines of one push share a time,
    /// and most lines of a stream share a level, so a record starts with one copy.
    heads: [Vec<u8>; 6],
    /// Which static fields a JSON line has already.
    found: Vec<bool>,
}

impl Buffers {
    fn new(stream: Stream) -> Buffers {
        Buffers {
            tag: stream.tag(),
            time: [0; 27],
            heads: Default::default(),
            found: Vec::new(),
        }
    }

    fn head(&mut self, time: &[u8; 27], level: Level) -> &[u8] {
        if self.time != *time {
            self.time = *time;
            self.heads.iter_mut().for_each(Vec::clear);
        }
        let [trace, debug, info, warn, error, fatal] = &mut self.heads;
        let head = match level {
            Level::Trace => trace,
            Level::Debug => debug,
            Level::Info => info,
            Level::Warn => warn,
            Level::Error => error,
            Level::Fatal => fatal,
        };
        if head.is_empty() {
            render_head(time, level, self.tag, head);
        }
        head
    }
}

/// Whether serde_json takes `text` for JSON. Checked without building anything, as raw text;
/// but that lets a lone surrogate escape (`"\ud800"`) through, which serde_json refuses to
/// decode, so a text that may hold one is decoded in full to be sure.
fn is_json(text: &str) -> bool {
    if serde_json::from_str::<&RawValue>(text).is_err() {
        return false;
    }
    let bytes = text.as_bytes();
    let maybe_surrogate = memchr::memchr_iter(b'\\', bytes).any(|at| {
        bytes.get(at + 1) == Some(&b'u') && matches!(bytes.get(at + 2), Some(b'd' | b'D'))
    });
    !maybe_surrogate || serde_json::from_str::<serde_json::Value>(text).is_ok()
}

/// The top-level members of a JSON object serde_json has accepted, as raw text: the key with
/// its quotes, the value. Only a walk over strings and brackets: the syntax is known good.
struct Members<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Members<'a> {
    fn new(object: &'a str) -> Members<'a> {
        Members {
            text: object,
            at: 1,
        }
    }
}

impl<'a> Iterator for Members<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        let bytes = self.text.as_bytes();
        let next = bytes
            .get(self.at..)?
            .iter()
            .position(|&b| b == b'"' || b == b'}')?;
        let key_start = self.at + next;
        if bytes.get(key_start) != Some(&b'"') {
            return None; // the closing brace
        }
        let key_end = string_end(bytes, key_start + 1)?;
        let colon = key_end + bytes.get(key_end..)?.iter().position(|&b| b == b':')?;
        let value_end = value_end(bytes, colon + 1)?;
        self.at = value_end + 1;
        let key = self.text.get(key_start..key_end)?;
        Some((key, self.text.get(colon + 1..value_end)?.trim_ascii()))
    }
}

/// Where the JSON string whose contents start at `from` ends (just past its closing quote).
fn string_end(bytes: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    loop {
        let next = at + memchr::memchr2(b'"', b'\\', bytes.get(at..)?)?;
        match bytes.get(next)? {
            b'"' => return Some(next + 1),
            _ => at = next + 2, // an escape: the byte after the backslash is not the end
        }
    }
}

/// Where the JSON value starting at `from` ends: at the `,` or `}` after it.
fn value_end(bytes: &[u8], from: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut at = from;
    loop {
        let next = at
            + bytes
                .get(at..)?
                .iter()
                .position(|b| matches!(b, b'"' | b'{' | b'[' | b'}' | b']' | b','))?;
        match bytes.get(next)? {
            b'"' => at = string_end(bytes, next + 1)?,
            b'{' | b'[' => {
                depth += 1;
                at = next + 1;
            }
            b'}' | b']' if depth > 0 => {
                depth -= 1;
                at = next + 1;
            }
            b',' if depth > 0 => at = next + 1,
            _ => return Some(next),
        }
    }
}

/// A key's text without its quotes, decoded if it holds escapes.
fn decode_key(quoted: &str) -> Option<Cow<'_, str>> {
    let inner = quoted.strip_prefix('"')?.strip_suffix('"')?;
    if inner.contains('\\') {
        serde_json::from_str::<String>(quoted).ok().map(Cow::Owned)
    } else {
        Some(Cow::Borrowed(inner))
    }
}

/// The level a JSON string value names (`"WARNING"` -> Warn), if it is a string naming one.
fn string_level(raw: &str) -> Option<Level> {
    let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
    if inner.contains('\\') {
        serde_json::from_str::<String>(raw)
            .ok()
            .and_then(|text| Level::parse(&text))
    } else {
        Level::parse(inner)
    }
}

/// Keys for --log-field: `[A-Za-z_][A-Za-z0-9_.-]*` and not one usher writes itself (time,
/// level, stream, msg, partial, logger).
pub fn valid_field_key(key: &str) -> bool {
    let mut bytes = key.bytes();
    let starts_well = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
    starts_well
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        && !RESERVED_KEYS.contains(&key)
}

/// Turns one stream's bytes, as they are read, into records. Holds at most about max_record
/// bytes of an unfinished line: a longer line is emitted in pieces as it arrives, each record
/// but the last marked "partial":true, so memory stays bounded whatever the child writes.
#[derive(Debug)]
pub struct LineEncoder {
    format: Arc<LogFormat>,
    stream: Stream,
    /// The unfinished line's bytes not yet written.
    pending: Vec<u8>,
    /// Set once pieces of the unfinished line have been written: the level they carry.
    continued: Option<Level>,
    buffers: Buffers,
    /// Records written so far that are pieces of an over-long line.
    pub partial_records: usize,
    /// Lines written so far (each one record, after its partial pieces if any).
    pub lines: usize,
}

impl LineEncoder {
    pub fn new(format: Arc<LogFormat>, stream: Stream) -> LineEncoder {
        LineEncoder {
            format,
            stream,
            pending: Vec::new(),
            continued: None,
            buffers: Buffers::new(stream),
            partial_records: 0,
            lines: 0,
        }
    }

    /// Appends to `out` the records for every line completed by `data` (and pieces of an
    /// over-long line). `time` is when usher read `data` (all its lines get this time).
    /// A line ending in CR LF loses the CR, as for an app written for a terminal or Windows.
    pub fn push(&mut self, data: &[u8], time: &[u8; 27], out: &mut Vec<u8>) {
        let mut rest = data;
        while let Some(newline) = memchr(b'\n', rest) {
            let (line, after) = rest.split_at(newline);
            rest = after.get(1..).unwrap_or_default();
            self.lines += 1;
            if self.pending.is_empty() && self.continued.is_none() {
                // The common case: the whole line is in `data`, written without a copy.
                let (stream, buffers) = (self.stream, &mut self.buffers);
                self.partial_records +=
                    self.format
                        .write_line(strip_cr(line), stream, None, time, buffers, out);
            } else {
                self.append(line, time, out);
                let level = self.continued.take();
                let line = strip_cr(&self.pending);
                self.partial_records += (self.format).write_line(
                    line,
                    self.stream,
                    level,
                    time,
                    &mut self.buffers,
                    out,
                );
                self.pending.clear();
            }
        }
        if !rest.is_empty() {
            self.append(rest, time, out);
        }
    }

    /// End of stream: a last line without a trailing newline is emitted (not partial). Its
    /// trailing CR, if any, is kept: with no LF after it, it is not a line ending.
    pub fn finish(&mut self, time: &[u8; 27], out: &mut Vec<u8>) {
        if !self.pending.is_empty() || self.continued.is_some() {
            let level = self.continued.take();
            let line = &self.pending;
            self.lines += 1;
            self.partial_records +=
                (self.format).write_line(line, self.stream, level, time, &mut self.buffers, out);
        }
        self.pending = Vec::new();
    }

    /// Adds bytes of an unfinished line, writing pieces of it whenever it has grown too long to
    /// become one record, so `pending` never holds much more than max_record bytes.
    fn append(&mut self, bytes: &[u8], time: &[u8; 27], out: &mut Vec<u8>) {
        let longest = self.format.longest_whole_line();
        // Room for one byte past the longest line even with a CR held back (see `write_pieces`).
        let capacity = longest + 2;
        let mut rest = bytes;
        while !rest.is_empty() {
            let room = capacity.saturating_sub(self.pending.len()).max(1);
            let (now, later) = rest.split_at(room.min(rest.len()));
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
        let format = &*self.format;
        let longest = format.longest_whole_line();
        // A CR at the end may be the CR of CR LF, which is not part of the line.
        let known = strip_cr(&self.pending).len();
        if known <= longest {
            return;
        }
        // The line's first SNIFF_WINDOW bytes decide its level, and they are all here.
        let level = *self.continued.get_or_insert_with(|| {
            level::sniff(&self.pending).unwrap_or(format.default_level(self.stream))
        });
        let head = self.buffers.head(time, level);
        let piece = format
            .max_record
            .saturating_sub(format.overhead(head.len(), true));
        let mut done = 0;
        while known - done > longest {
            let rest = self.pending.get(done..known).unwrap_or_default();
            format.open(head, true, out);
            let taken = escape_limited(rest, piece, out);
            format.close(out);
            self.partial_records += 1;
            if taken == 0 {
                break; // cannot happen: every record has room for the longest unit
            }
            done += taken;
        }
        self.pending.drain(..done);
    }
}

/// usher's own event as a record for stderr:
/// `{"time":..,"level":..,"logger":"usher","msg":..,<static fields>}`, split like a line
/// should it be longer than max_record.
pub fn encode_event(
    format: &LogFormat,
    level: Level,
    msg: &str,
    time: &[u8; 27],
    out: &mut Vec<u8>,
) {
    let mut head = Vec::with_capacity(96);
    render_head(time, level, USHER_TAG, &mut head);
    let _partial = format.write_text(&head, msg.as_bytes(), out);
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Writes `input` as the inside of a JSON string: invalid UTF-8 as U+FFFD (one per maximal
/// invalid subsequence, as `String::from_utf8_lossy` does), the rest escaped as needed.
fn escape(input: &[u8], out: &mut Vec<u8>) {
    match std::str::from_utf8(input) {
        Ok(_) => escape_valid(input, out),
        Err(e) => {
            let (valid, rest) = input.split_at(e.valid_up_to());
            escape_valid(valid, out);
            for chunk in rest.utf8_chunks() {
                escape_valid(chunk.valid().as_bytes(), out);
                if !chunk.invalid().is_empty() {
                    out.extend_from_slice(REPLACEMENT);
                }
            }
        }
    }
}

/// Like `escape`, but writes at most `limit` bytes, stopping before the first character or
/// escape sequence that would not fit. Returns how many bytes of `input` it wrote out.
fn escape_limited(input: &[u8], limit: usize, out: &mut Vec<u8>) -> usize {
    // Each input byte takes at least one output byte, so nothing past `limit` bytes can be
    // written; the next few bytes are looked at so a character there is decoded whole.
    let window = input.get(..limit.saturating_add(4)).unwrap_or(input);
    let mut room = limit;
    let mut taken = 0;
    for chunk in window.utf8_chunks() {
        let valid = chunk.valid().as_bytes();
        let written = escape_valid_limited(valid, &mut room, out);
        taken += written;
        if written < valid.len() {
            return taken;
        }
        let invalid = chunk.invalid();
        if !invalid.is_empty() {
            if room < REPLACEMENT.len() {
                return taken;
            }
            out.extend_from_slice(REPLACEMENT);
            room -= REPLACEMENT.len();
            taken += invalid.len();
        }
    }
    taken
}

/// Escapes valid UTF-8, copying the runs between bytes that need escaping whole.
fn escape_valid(mut input: &[u8], out: &mut Vec<u8>) {
    while let Some(at) = find_escape(input) {
        let (run, rest) = input.split_at(at);
        out.extend_from_slice(run);
        let Some((&byte, after)) = rest.split_first() else {
            return;
        };
        write_escape(byte, out);
        input = after;
    }
    out.extend_from_slice(input);
}

/// `escape_valid` within `room` bytes (reduced by what it writes), never cutting a character
/// or an escape. Returns how many bytes of `input` it wrote out.
fn escape_valid_limited(input: &[u8], room: &mut usize, out: &mut Vec<u8>) -> usize {
    let mut done = 0;
    loop {
        let rest = input.get(done..).unwrap_or_default();
        let run = find_escape(rest).unwrap_or(rest.len());
        if run > *room {
            // Back off to the start of the character that does not fit whole.
            let mut cut = *room;
            while cut > 0 && rest.get(cut).is_some_and(|&b| b & 0xC0 == 0x80) {
                cut -= 1;
            }
            out.extend_from_slice(rest.get(..cut).unwrap_or_default());
            *room -= cut;
            return done + cut;
        }
        out.extend_from_slice(rest.get(..run).unwrap_or_default());
        *room -= run;
        done += run;
        let Some(&byte) = rest.get(run) else {
            return done;
        };
        if escaped_len(byte) > *room {
            return done;
        }
        write_escape(byte, out);
        *room -= escaped_len(byte);
        done += 1;
    }
}

fn needs_escape(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\' || byte == 0x7f
}

/// Where the first byte needing an escape is, eight bytes at a time (SWAR). In each u64, a
/// lane's high bit is set by `(lane - n) & !lane` exactly when lane < n, for the first such
/// lane and maybe lanes above it (a borrow), never below: so the lowest set bit is the first
/// lane below 0x20 or equal to `"`, `\` or DEL (those three by testing `lane ^ c` < 1). As
/// `c` < 0x80, `!(lane ^ c)` has the high bit of `!lane`, so one `& !w` serves all four.
fn find_escape(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let (words, tail) = bytes.as_chunks::<8>();
    for (index, word) in words.iter().enumerate() {
        let w = u64::from_le_bytes(*word);
        let below = w.wrapping_sub(ONES * 0x20)
            | (w ^ (ONES * u64::from(b'"'))).wrapping_sub(ONES)
            | (w ^ (ONES * u64::from(b'\\'))).wrapping_sub(ONES)
            | (w ^ (ONES * 0x7f)).wrapping_sub(ONES);
        let found = below & !w & HIGHS;
        if found != 0 {
            return Some(index * 8 + (found.trailing_zeros() / 8) as usize);
        }
    }
    tail.iter()
        .position(|&b| needs_escape(b))
        .map(|lane| words.len() * 8 + lane)
}

fn escaped_len(byte: u8) -> usize {
    match byte {
        b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
        _ => LONGEST_UNIT,
    }
}

fn write_escape(byte: u8, out: &mut Vec<u8>) {
    let short = match byte {
        b'"' => b'"',
        b'\\' => b'\\',
        b'\n' => b'n',
        b'\r' => b'r',
        b'\t' => b't',
        0x08 => b'b',
        0x0c => b'f',
        _ => {
            let hex = |nibble: u8| match nibble {
                0..=9 => b'0' + nibble,
                _ => b'a' + nibble - 10,
            };
            out.extend_from_slice(&[b'\\', b'u', b'0', b'0', hex(byte >> 4), hex(byte & 0xf)]);
            return;
        }
    };
    out.extend_from_slice(&[b'\\', short]);
}

/// Trims JSON's own whitespace (space, tab, CR, LF) only: `trim_ascii` would also drop a form
/// feed, a byte the record must keep.
fn trim_json_whitespace(line: &[u8]) -> &[u8] {
    let json_space = |b: &u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    let start = line
        .iter()
        .position(|b| !json_space(b))
        .unwrap_or(line.len());
    let end = line
        .iter()
        .rposition(|b| !json_space(b))
        .map_or(start, |i| i + 1);
    line.get(start..end).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Map, Value};

    const TIME: &[u8; 27] = b"2026-11-26T14:34:17.123456Z";
    const LATER: &[u8; 27] = b"2026-11-26T14:34:18.000001Z";

    fn format(max: usize, fields: &[(&str, &str)], stderr_level: Level) -> Arc<LogFormat> {
        let fields = fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Arc::new(LogFormat::new(max, fields, stderr_level))
    }

    fn plain() -> Arc<LogFormat> {
        format(16384, &[], Level::Error)
    }

    /// All of `input` in one push, then finish.
    fn encode(format: &Arc<LogFormat>, stream: Stream, input: &[u8]) -> String {
        let mut encoder = LineEncoder::new(format.clone(), stream);
        let mut out = Vec::new();
        encoder.push(input, TIME, &mut out);
        encoder.finish(TIME, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn stdout(input: &[u8]) -> String {
        encode(&plain(), Stream::Stdout, input)
    }

    /// The one record `stdout` makes of `line` + '\n', with a default head.
    fn text_record(level: &str, msg_json: &str) -> String {
        format!(
            "{{\"time\":\"2026-11-26T14:34:17.123456Z\",\"level\":\"{level}\",\
             \"stream\":\"stdout\",\"msg\":\"{msg_json}\"}}\n"
        )
    }

    fn objects(out: &str) -> Vec<Map<String, Value>> {
        out.lines()
            .map(|line| match serde_json::from_str::<Value>(line) {
                Ok(Value::Object(map)) => map,
                other => panic!("not an object: {line:?}: {other:?}"),
            })
            .collect()
    }

    fn msg(record: &Map<String, Value>) -> &str {
        record["msg"].as_str().unwrap()
    }

    #[test]
    fn plain_line() {
        assert_eq!(stdout(b"GET / 200\n"), text_record("info", "GET / 200"));
    }

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
    fn quotes_and_backslashes() {
        assert_eq!(
            stdout(br#"say "hi" to "them""#),
            text_record("info", r#"say \"hi\" to \"them\""#)
        );
        assert_eq!(
            stdout(b"C:\\dir\\file \\\\server\n"),
            text_record("info", r"C:\\dir\\file \\\\server")
        );
        assert_eq!(stdout(b"\"\\\"\n"), text_record("info", r#"\"\\\""#));
    }

    #[test]
    fn every_control_character() {
        let mut line: Vec<u8> = (0u8..0x20).filter(|&b| b != b'\n').collect();
        line.push(0x7f);
        line.push(b'\n');
        assert_eq!(
            stdout(&line),
            text_record(
                "info",
                concat!(
                    r"\u0000\u0001\u0002\u0003\u0004\u0005\u0006\u0007\b\t\u000b\f\r",
                    r"\u000e\u000f\u0010\u0011\u0012\u0013\u0014\u0015\u0016\u0017\u0018",
                    r"\u0019\u001a\u001b\u001c\u001d\u001e\u001f\u007f",
                )
            )
        );
        // Each one alone, between text, also within an 8-byte word and across two.
        for byte in (0u8..0x20).chain([0x7f, b'"', b'\\']) {
            if byte == b'\n' {
                continue;
            }
            let line = [b"abcdefg".as_slice(), &[byte], b"hijklmnopq\n"].concat();
            let record = objects(&stdout(&line)).remove(0);
            let expected = format!("abcdefg{}hijklmnopq", char::from(byte));
            assert_eq!(msg(&record), expected, "byte {byte:#x}");
        }
    }

    #[test]
    fn tab() {
        assert_eq!(stdout(b"a\tb\t\n"), text_record("info", r"a\tb\t"));
    }

    #[test]
    fn bytes_needing_no_escape_are_written_as_they_are() {
        let line: String = (0x20u8..0x7f).map(char::from).collect::<String>() + "é€🦀";
        let out = stdout(format!("{line}\n").as_bytes());
        let escaped = line.replace('\\', r"\\").replace('"', r#"\""#);
        assert_eq!(out, text_record("info", &escaped));
    }

    #[test]
    fn non_bmp_characters_are_written_as_utf8() {
        assert_eq!(
            stdout("crab 🦀 and 𝄞 done\n".as_bytes()),
            text_record("info", "crab 🦀 and 𝄞 done")
        );
    }

    #[test]
    fn invalid_utf8_becomes_one_replacement_per_maximal_subsequence() {
        let line = b"a\xffb\xe2\x82c\xf0\x9f\x98d\xed\xa0\x80e\xc0\xafz\xf0\x9f\x98";
        let out = stdout(&[line.as_slice(), b"\n"].concat());
        assert_eq!(
            out,
            text_record(
                "info",
                "a\u{FFFD}b\u{FFFD}c\u{FFFD}d\u{FFFD}\u{FFFD}\u{FFFD}e\u{FFFD}\u{FFFD}z\u{FFFD}"
            )
        );
        assert_eq!(msg(&objects(&out)[0]), String::from_utf8_lossy(line));
        // Invalid bytes first, and alone.
        assert_eq!(stdout(b"\x80\n"), text_record("info", "\u{FFFD}"));
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
        encoder.push(b"split\r", TIME, &mut out);
        assert!(out.is_empty());
        encoder.push(b"\n", TIME, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            text_record("info", "split")
        );
    }

    #[test]
    fn levels_named_by_text_lines() {
        let cases: [(&[u8], &str); 14] = [
            (b"ERROR disk full", "error"),
            (b"error: disk full", "error"),
            (b"[Warn] slow", "warn"),
            (b"WARNING: slow", "warn"),
            (b"level=debug x=1", "debug"),
            (b"level=\"TRACE\" x=1", "trace"),
            (b"  INFO: indented", "info"),
            (b"FATAL", "fatal"),
            (b"critical] x", "fatal"),
            (b"INFORMATION follows", "info"),
            (b"ERRORS: 0", "info"),
            (b"<error> x", "info"),
            (b"x ERROR", "info"),
            (b"ERROR\tx", "error"),
        ];
        for (line, level) in cases {
            let out = stdout(&[line, b"\n"].concat());
            let record = objects(&out).remove(0);
            assert_eq!(
                record["level"],
                level,
                "{:?}",
                String::from_utf8_lossy(line)
            );
            assert_eq!(msg(&record), String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn stderr_lines_default_to_the_stderr_level() {
        let expected = "{\"time\":\"2026-11-26T14:34:17.123456Z\",\"level\":\"error\",\
                        \"stream\":\"stderr\",\"msg\":\"oops\"}\n";
        assert_eq!(encode(&plain(), Stream::Stderr, b"oops\n"), expected);
        let warn = format(16384, &[], Level::Warn);
        let out = encode(&warn, Stream::Stderr, b"oops\nINFO fine\nDEBUG: x\n");
        let levels: Vec<_> = objects(&out).iter().map(|r| r["level"].clone()).collect();
        assert_eq!(levels, ["warn", "info", "debug"]);
        // Stdout ignores the stderr level.
        assert_eq!(
            objects(&encode(&warn, Stream::Stdout, b"x\n"))[0]["level"],
            "info"
        );
    }

    #[test]
    fn json_object_lines_keep_their_bytes_and_gain_only_missing_keys() {
        let head = r#""time":"2026-11-26T14:34:17.123456Z""#;
        let cases: [(&str, String); 13] = [
            (
                r#"{"msg":"hi","n":1}"#,
                format!(r#"{{"msg":"hi","n":1,{head},"level":"info","stream":"stdout"}}"#),
            ),
            (
                "{}",
                format!(r#"{{{head},"level":"info","stream":"stdout"}}"#),
            ),
            (
                "{ }",
                format!(r#"{{ {head},"level":"info","stream":"stdout"}}"#),
            ),
            (
                "  \t{ \"a\" : 1 }  \t",
                format!(r#"{{ "a" : 1 ,{head},"level":"info","stream":"stdout"}}"#),
            ),
            (
                r#"{"level":"WARNING","msg":"x"}"#,
                format!(r#"{{"level":"WARNING","msg":"x",{head},"stream":"stdout"}}"#),
            ),
            (
                r#"{"level":30}"#,
                format!(r#"{{"level":30,{head},"stream":"stdout"}}"#),
            ),
            (
                r#"{"severity":"WARNING"}"#,
                format!(r#"{{"severity":"WARNING",{head},"level":"warn","stream":"stdout"}}"#),
            ),
            (
                r#"{"severity":"Critical"}"#,
                format!(r#"{{"severity":"Critical",{head},"level":"fatal","stream":"stdout"}}"#),
            ),
            (
                r#"{"severity":"\u0045RROR"}"#,
                format!(r#"{{"severity":"\u0045RROR",{head},"level":"error","stream":"stdout"}}"#),
            ),
            (
                r#"{"severity":"notice"}"#,
                format!(r#"{{"severity":"notice",{head},"level":"info","stream":"stdout"}}"#),
            ),
            (
                r#"{"severity":40}"#,
                format!(r#"{{"severity":40,{head},"level":"info","stream":"stdout"}}"#),
            ),
            (
                r#"{"time":1,"level":"x","stream":"y","extra":null}"#,
                r#"{"time":1,"level":"x","stream":"y","extra":null}"#.to_string(),
            ),
            (
                r#"{"a":{"b":[1,{"c":"}\"{"}],"time":2},"s":"é🦀\n"}"#,
                format!(
                    r#"{{"a":{{"b":[1,{{"c":"}}\"{{"}}],"time":2}},"s":"é🦀\n",{head},{}}}"#,
                    r#""level":"info","stream":"stdout""#
                ),
            ),
        ];
        for (line, record) in cases {
            assert_eq!(
                stdout(format!("{line}\n").as_bytes()),
                record + "\n",
                "{line}"
            );
        }
        // An escaped key is still the key.
        let out = stdout(b"{\"le\\u0076el\":\"debug\",\"\\u0074ime\":0}\r\n");
        assert_eq!(
            out,
            "{\"le\\u0076el\":\"debug\",\"\\u0074ime\":0,\"stream\":\"stdout\"}\n"
        );
        // No sniffing inside, and stderr's default for a JSON line without a level.
        let out = encode(&plain(), Stream::Stderr, b"{\"msg\":\"INFO x\"}");
        assert_eq!(
            out,
            format!(r#"{{"msg":"INFO x",{head},"level":"error","stream":"stderr"}}"#) + "\n"
        );
    }

    #[test]
    fn only_top_level_keys_count() {
        let head = r#""time":"2026-11-26T14:34:17.123456Z""#;
        for (line, added) in [
            (r#"{"a":{"level":"x","time":1},"b":["stream"]}"#, "all"),
            (r#"{"msg":"\"time\":1,\"level\":2"}"#, "all"),
            (r#"{"msg":"a,b}c{d[e\\","x":[{"y":"]"}]}"#, "all"),
            (
                r#"{"x":[1,{"time":2}],"level":"info","stream":"s","time":0}"#,
                "none",
            ),
            (r#"{ "time" : 0 , "level" : 1 , "stream" : 2 }"#, "none"),
            (
                r#"{"severity":{"a":"WARN"},"n":-1.5e3,"t":true,"f":false,"z":null}"#,
                "all",
            ),
        ] {
            let out = stdout(format!("{line}\n").as_bytes());
            let expected = match added {
                "all" => format!(
                    "{},{head},\"level\":\"info\",\"stream\":\"stdout\"}}\n",
                    &line[..line.len() - 1]
                ),
                _ => format!("{line}\n"),
            };
            assert_eq!(out, expected);
        }
    }

    #[test]
    fn members_walks_the_top_level() {
        let object = r#"{"a":1,"b\"c":{"d":[1,2,{"e":"}"}]}, "f" : "x,y" ,"g":[],"h":{}}"#;
        let members: Vec<_> = Members::new(object).collect();
        assert_eq!(
            members,
            [
                (r#""a""#, "1"),
                (r#""b\"c""#, r#"{"d":[1,2,{"e":"}"}]}"#),
                (r#""f""#, r#""x,y""#),
                (r#""g""#, "[]"),
                (r#""h""#, "{}"),
            ]
        );
        assert_eq!(Members::new("{}").count(), 0);
        assert_eq!(Members::new("{ }").count(), 0);
        assert_eq!(decode_key(r#""b\"c""#).unwrap(), "b\"c");
        assert_eq!(decode_key(r#""\u0074ime""#).unwrap(), "time");
    }

    #[test]
    fn lone_surrogates_are_not_passed_through() {
        // serde_json refuses to decode them: such a line is text.
        for line in [r#"{"a":"\ud800"}"#, r#"{"a":"\uDC00x"}"#, r#"{"\ud800":1}"#] {
            let out = stdout(format!("{line}\n").as_bytes());
            assert_eq!(msg(&objects(&out)[0]), line);
        }
        // A pair, and escapes that only look like one, are fine.
        for line in [
            r#"{"a":"\ud83e\udd80"}"#,
            r#"{"a":"\\ud800"}"#,
            r#"{"a":"\u00e9"}"#,
        ] {
            let out = stdout(format!("{line}\n").as_bytes());
            assert!(out.starts_with(&line[..line.len() - 1]), "{out}");
            assert!(objects(&out)[0].get("msg").is_none());
        }
    }

    #[test]
    fn json_lines_get_only_the_static_fields_they_lack() {
        let format = format(16384, &[("service", "api"), ("zone", "eu-1")], Level::Error);
        let out = encode(
            &format,
            Stream::Stdout,
            br#"{"zone":"us","time":"t","level":"debug","stream":"s"}"#,
        );
        assert_eq!(
            out,
            "{\"zone\":\"us\",\"time\":\"t\",\"level\":\"debug\",\"stream\":\"s\",\
             \"service\":\"api\"}\n"
        );
        let out = encode(&format, Stream::Stdout, b"{}\n");
        assert_eq!(
            out,
            "{\"time\":\"2026-11-26T14:34:17.123456Z\",\"level\":\"info\",\
             \"stream\":\"stdout\",\"service\":\"api\",\"zone\":\"eu-1\"}\n"
        );
    }

    #[test]
    fn lines_that_are_not_json_objects_are_text() {
        for line in [
            "[1,2]",
            "\"a string\"",
            "42",
            "null",
            "{",
            "{\"a\":}",
            "{\"a\":1} trailing",
            "{\"a\":1}}",
            "{\"a\":1",
            "{'a':1}",
            "{\"a\":\"raw\tcontrol\"}",
            "x {\"a\":1}",
        ] {
            let out = stdout(format!("{line}\n").as_bytes());
            let records = objects(&out);
            assert_eq!(records.len(), 1, "{line}");
            assert_eq!(msg(&records[0]), line);
            assert_eq!(records[0]["stream"], "stdout");
        }
        let out = stdout(b"{\"a\":\"\xff\"}\n");
        assert_eq!(msg(&objects(&out)[0]), "{\"a\":\"\u{FFFD}\"}");
        // Nested deeper than serde_json's recursion limit.
        let deep = format!("{}{}", "{\"a\":".repeat(200), "}".repeat(200));
        assert_eq!(msg(&objects(&stdout(deep.as_bytes()))[0]), deep);
    }

    #[test]
    fn a_json_line_whose_record_would_not_fit_is_text() {
        let max = 1024;
        let format = format(max, &[], Level::Error);
        // With all its keys present, an object of max - 1 bytes is its own record.
        let keys = r#"{"time":1,"level":2,"stream":3,"pad":""#;
        let full = format!("{keys}{}\"}}", "p".repeat(max - 1 - keys.len() - 2));
        assert_eq!(full.len(), max - 1);
        let out = encode(&format, Stream::Stdout, full.as_bytes());
        assert_eq!(out, format!("{full}\n"));
        // Also when its CR LF arrives cut in two: the CR is not taken for part of the line.
        let mut encoder = LineEncoder::new(format.clone(), Stream::Stdout);
        let mut out = Vec::new();
        encoder.push(format!("{full}\r").as_bytes(), TIME, &mut out);
        encoder.push(b"\n", TIME, &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), format!("{full}\n"));
        // Without them, the keys to add do not fit: text, in pieces.
        let short = format!("{{\"pad\":\"{}\"}}", "p".repeat(max - 60));
        let out = encode(&format, Stream::Stdout, short.as_bytes());
        let records = objects(&out);
        assert_eq!(records.len(), 2);
        assert_eq!(records[0]["partial"], true);
        assert_eq!(records.iter().map(msg).collect::<String>(), short);
        // Surrounding whitespace counts: a line longer than max - 1 is text whatever it holds.
        let padded = format!("{{}}{}", " ".repeat(max));
        let records = objects(&encode(&format, Stream::Stdout, padded.as_bytes()));
        assert_eq!(records.iter().map(msg).collect::<String>(), padded);
    }

    #[test]
    fn static_fields_close_text_records() {
        let format = format(
            16384,
            &[("service", "api"), ("build.id", "a\"b\\c\u{1}")],
            Level::Error,
        );
        assert_eq!(
            encode(&format, Stream::Stdout, b"hello\n"),
            "{\"time\":\"2026-11-26T14:34:17.123456Z\",\"level\":\"info\",\"stream\":\"stdout\",\
             \"msg\":\"hello\",\"service\":\"api\",\"build.id\":\"a\\\"b\\\\c\\u0001\"}\n"
        );
    }

    #[test]
    fn event_records() {
        let format = format(16384, &[("service", "api")], Level::Error);
        let mut out = Vec::new();
        encode_event(
            &format,
            Level::Warn,
            "child \"app\" exited\n",
            TIME,
            &mut out,
        );
        encode_event(&format, Level::Info, "", LATER, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"time\":\"2026-11-26T14:34:17.123456Z\",\"level\":\"warn\",\"logger\":\"usher\",\
             \"msg\":\"child \\\"app\\\" exited\\n\",\"service\":\"api\"}\n\
             {\"time\":\"2026-11-26T14:34:18.000001Z\",\"level\":\"info\",\"logger\":\"usher\",\
             \"msg\":\"\",\"service\":\"api\"}\n"
        );
    }

    #[test]
    fn long_events_are_split_too() {
        let format = format(1024, &[], Level::Error);
        let text = "ab\"c🦀".repeat(1000);
        let mut out = Vec::new();
        encode_event(&format, Level::Error, &text, TIME, &mut out);
        let out = String::from_utf8(out).unwrap();
        let records = objects(&out);
        assert!(records.len() > 5);
        for (n, line) in out.lines().enumerate() {
            assert!(line.len() < 1024);
            assert_eq!(records[n].get("partial").is_some(), n + 1 < records.len());
            assert_eq!(records[n]["logger"], "usher");
        }
        assert_eq!(records.iter().map(msg).collect::<String>(), text);
    }

    #[test]
    fn the_last_line_without_newline_is_written_by_finish() {
        let mut encoder = LineEncoder::new(plain(), Stream::Stdout);
        let mut out = Vec::new();
        encoder.push(b"first\nsecond, unfinished", TIME, &mut out);
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            text_record("info", "first")
        );
        encoder.push(b" still", TIME, &mut out);
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
        encoder.push(b"a\nb", TIME, &mut out);
        encoder.push(b"c\nd\n", LATER, &mut out);
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

    /// Checks the records of one over-long line and gives its text back.
    fn rebuild(out: &str, max: usize) -> (String, Vec<Map<String, Value>>) {
        let records = objects(out);
        for (n, (line, record)) in out.lines().zip(&records).enumerate() {
            assert!(line.len() < max, "record {n} is {} bytes", line.len() + 1);
            let last = n + 1 == records.len();
            assert_eq!(record.get("partial"), (!last).then_some(&Value::Bool(true)));
            assert_eq!(record["level"], records[0]["level"]);
        }
        (records.iter().map(msg).collect(), records)
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
                encoder.push(piece, TIME, &mut out);
            }
            encoder.finish(TIME, &mut out);
            let out = String::from_utf8(out).unwrap();
            let marked = out.matches(r#""partial":true"#).count();
            assert!(marked >= 4, "{marked}");
            assert_eq!(encoder.partial_records, marked, "chunks of {chunk}");
            assert_eq!(encoder.lines, 2, "chunks of {chunk}");
            assert_eq!(out.lines().count(), encoder.lines + encoder.partial_records);
        }
    }

    #[test]
    fn a_megabyte_line_in_one_push() {
        let format = format(16384, &[("service", "api")], Level::Error);
        let line = "WARN: ".to_string() + &"0123456789abcdef".repeat(65536);
        let out = encode(&format, Stream::Stdout, format!("{line}\n").as_bytes());
        let (text, records) = rebuild(&out, 16384);
        assert_eq!(text, line);
        assert_eq!(records[0]["level"], "warn");
        // Filled to the limit: every piece but the last is exactly max_record bytes.
        let lengths: Vec<usize> = out.lines().map(|l| l.len() + 1).collect();
        assert!(lengths[..lengths.len() - 1].iter().all(|&len| len == 16384));
        assert_eq!(lengths.len(), line.len().div_ceil(16384 - 140));
        assert!(records.iter().all(|r| r["service"] == "api"));
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
            encoder.push(now, TIME, &mut out);
            assert!(
                encoder.pending.len() <= 4096 + 1,
                "{}",
                encoder.pending.len()
            );
            rest = later;
        }
        encoder.push(b"\n", TIME, &mut out);
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
            encoder.push(&[*byte], TIME, &mut out);
        }
        assert!(!out.is_empty(), "pieces are written before the line ends");
        encoder.finish(TIME, &mut out);
        let out = String::from_utf8(out).unwrap();
        assert_eq!(rebuild(&out, 1024).0, line);
        assert_eq!(out, encode(&format, Stream::Stdout, line.as_bytes()));
    }

    #[test]
    fn pieces_never_cut_a_character() {
        // Wherever a piece's limit falls in a character of each width, the character goes
        // whole into the next piece.
        for max in [1024, 1025, 1026, 1027] {
            let format = format(max, &[], Level::Error);
            for character in ["é", "€", "🦀"] {
                for offset in 0..4 {
                    let line = "a".repeat(offset) + &character.repeat(3 * max);
                    let out = encode(&format, Stream::Stdout, line.as_bytes());
                    assert_eq!(rebuild(&out, max).0, line, "{max} {character} {offset}");
                }
            }
        }
    }

    #[test]
    fn a_long_line_keeps_the_level_of_its_start() {
        let format = format(1024, &[], Level::Warn);
        let line = format!("[debug] {}", "x ERROR ".repeat(1000));
        let mut encoder = LineEncoder::new(format.clone(), Stream::Stderr);
        let mut out = Vec::new();
        for chunk in line.as_bytes().chunks(100) {
            encoder.push(chunk, TIME, &mut out);
        }
        encoder.push(b"\r\n", TIME, &mut out);
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
                    encoder.push(a, TIME, &mut out);
                    encoder.push(b, TIME, &mut out);
                    encoder.finish(TIME, &mut out);
                    assert_eq!(String::from_utf8(out).unwrap(), whole, "split at {split}");
                }
            }
        }
    }

    #[test]
    fn field_keys() {
        for key in ["service", "_x", "a.b-c_d9", "Z", "Time", "levels"] {
            assert!(valid_field_key(key), "{key}");
        }
        for key in [
            "", "9a", ".a", "-a", "a b", "a=b", "é", "a\"", "time", "level", "stream", "msg",
            "partial", "logger",
        ] {
            assert!(!valid_field_key(key), "{key}");
        }
    }

    #[test]
    fn static_fields_too_large_for_the_limit_raise_it() {
        let value = "v".repeat(2000);
        let format = format(1024, &[("big", value.as_str())], Level::Error);
        let out = encode(&format, Stream::Stdout, "z".repeat(100).as_bytes());
        let records = objects(&out);
        assert!(records.len() > 1);
        assert_eq!(records.iter().map(msg).collect::<String>(), "z".repeat(100));
        assert!(out.lines().all(|line| line.len() < format.max_record));
        assert!(format.max_record < 2200);
    }

    #[test]
    fn stream_names() {
        assert_eq!(Stream::Stdout.as_str(), "stdout");
        assert_eq!(Stream::Stderr.as_str(), "stderr");
    }

    #[test]
    fn find_escape_agrees_with_a_byte_scan() {
        let mut random = XorShift(7);
        for _ in 0..20_000 {
            let len = random.below(40);
            let bytes: Vec<u8> = (0..len)
                .map(|_| match random.below(4) {
                    0 => random.below(256) as u8,
                    _ => b'a' + random.below(26) as u8,
                })
                .collect();
            let expected = bytes.iter().position(|&b| needs_escape(b));
            assert_eq!(find_escape(&bytes), expected, "{bytes:?}");
        }
    }

    /// A small PRNG (xorshift64*), so the property tests need no crate and are repeatable.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
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
                encoder.push(now, TIME, &mut out);
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

    /// `cargo test --release --bin usher logs::encode::tests::throughput -- --ignored
    /// --nocapture`: 1,000,000 lines of 100 bytes through `push` in 64 KiB chunks.
    #[test]
    #[ignore]
    fn throughput() {
        let format = format(16384, &[("service", "api")], Level::Error);
        let mut input = Vec::new();
        for n in 0..1_000_000u32 {
            let start = input.len();
            let line = format!(
                "INFO request {n:07} handled: GET /api/v1/users?page=2 status=200 bytes=5120 \
                 ua=\"curl/8.5\""
            );
            input.extend_from_slice(line.as_bytes());
            input.resize(start + 99, b'.');
            input.push(b'\n');
        }
        let run = |count: bool| {
            let mut encoder = LineEncoder::new(format.clone(), Stream::Stdout);
            let mut out = Vec::with_capacity(1 << 20);
            let mut records = 0;
            let started = std::time::Instant::now();
            for chunk in input.chunks(64 * 1024) {
                encoder.push(chunk, TIME, &mut out);
                if count {
                    records += memchr::memchr_iter(b'\n', &out).count();
                }
                out.clear();
            }
            (started.elapsed(), records)
        };
        assert_eq!(run(true).1, 1_000_000);
        // The best of five, as the machine may be busy with something else.
        let best = (0..5).map(|_| run(false).0).min().unwrap();
        println!(
            "{:.2} M lines/s ({:.0} MB/s of input)",
            1.0 / best.as_secs_f64(),
            100.0 / best.as_secs_f64()
        );
    }
}
