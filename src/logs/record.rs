//! The record format: the head (time, level, and the stream or usher's `logger`, named by the
//! schema: see `schema`), the message, the static fields (--log-field), the limit on a record's
//! size (--log-max-record) and how a text too long for one record is cut into `"partial":true`
//! pieces; for each complete line, the choice between JSON pass-through and a text record;
//! usher's own events, with their fields.

use std::borrow::Cow;
use std::fmt;

use super::escape::{LONGEST_UNIT, escape, escape_limited, escape_valid};
use super::json;
use super::level::{self, Level};
use super::schema::{Layout, LogSchema};

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
}

const TIMESTAMP_LEN: usize = 27;
/// The least room for msg bytes a record keeps, whatever the static fields take.
const MIN_MSG_ROOM: usize = 16;

/// How records look: from --log-schema, --log-max-record, --log-field K=V (static fields),
/// --stderr-level.
#[derive(Debug)]
pub struct LogFormat {
    /// The most bytes a record takes, its '\n' included.
    max_record: usize,
    /// The schema's names and fixed parts.
    layout: Layout,
    /// The end of every text record from each stream (stdout, stderr): the message's closing
    /// quote, for a message-first schema its tag, `,"k":"v"` per static field, `}` and '\n'. An
    /// event setting a static field's key gets a closing without it (see [`encode_event`]).
    closings: [Vec<u8>; 2],
    /// Each static field as (key, `"k":"v"`), for JSON lines that may have some already.
    fields: Vec<(String, Vec<u8>)>,
    stderr_level: Level,
    /// `--log-multiline auto`: stack traces are joined into one record each.
    multiline: bool,
}

impl LogFormat {
    /// `max_record`: the most bytes any record may take, its '\n' included (>= 1024, checked
    /// by the caller). `static_fields`: (key, value) pairs, keys already validated by
    /// [`valid_field_key`] and not reserved by the schema ([`LogSchema::reserved_keys`]).
    /// Should the static fields leave no room for a msg within `max_record`, the limit is
    /// raised just enough to hold a few msg bytes per record: splitting must always make
    /// progress.
    pub fn new(
        schema: LogSchema,
        max_record: usize,
        static_fields: Vec<(String, String)>,
        stderr_level: Level,
    ) -> LogFormat {
        let layout = Layout::new(schema);
        let mut fields = Vec::with_capacity(static_fields.len());
        for (key, value) in static_fields {
            let mut field = Vec::with_capacity(key.len() + value.len() + 6);
            json_string(&key, &mut field);
            field.push(b':');
            json_string(&value, &mut field);
            fields.push((key, field));
        }
        let closings = [Stream::Stdout, Stream::Stderr]
            .map(|stream| layout.closing(layout.stream_tag(stream), &[], &fields, &[]));
        // The largest text record but for its msg: the longest level's head, the stream's
        // closing, and partial. Measured, since key names differ by schema.
        let mut largest = 0;
        let mut head = Vec::new();
        for (stream, closing) in [Stream::Stdout, Stream::Stderr].iter().zip(&closings) {
            for level in [
                Level::Trace,
                Level::Debug,
                Level::Info,
                Level::Warn,
                Level::Error,
                Level::Fatal,
            ] {
                head.clear();
                let time = &[b'0'; TIMESTAMP_LEN];
                layout.head(time, level, layout.stream_tag(*stream), &[], &mut head);
                largest = largest.max(head.len() + closing.len() + layout.partial_len());
            }
        }
        // An unfinished line gets its level once `longest_whole_line` bytes have arrived: they
        // must hold all that `sniff` looks at.
        let max_record = max_record
            .max(largest + MIN_MSG_ROOM)
            .max(level::SNIFF_WINDOW + 1);
        LogFormat {
            max_record,
            layout,
            closings,
            fields,
            stderr_level,
            multiline: false,
        }
    }

    /// The format with multi-line joining on or off (off unless set: each line its record).
    pub fn with_multiline(self, multiline: bool) -> LogFormat {
        LogFormat { multiline, ..self }
    }

    pub(super) fn multiline(&self) -> bool {
        self.multiline
    }

    pub(super) fn default_level(&self, stream: Stream) -> Level {
        match stream {
            Stream::Stdout => Level::Info,
            Stream::Stderr => self.stderr_level,
        }
    }

    /// The longest line that may still become one record: anything longer is text, and is cut
    /// into pieces as soon as this much of it has arrived.
    pub(super) fn longest_whole_line(&self) -> usize {
        self.max_record - 1
    }

    /// The end of a text record from `stream` with every static field: `closing` for
    /// [`Self::write_piece`].
    pub(super) fn closing(&self, stream: Stream) -> &[u8] {
        &self.closings[match stream {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        }]
    }

    /// Room for the escaped msg in a text record with a head (see [`Layout::head`]) of `head`
    /// bytes, a closing of `closing` bytes, and `"partial":true` if `partial`.
    fn room(&self, head: usize, closing: usize, partial: bool) -> usize {
        let partial = if partial {
            self.layout.partial_len()
        } else {
            0
        };
        self.max_record.saturating_sub(head + partial + closing)
    }

    /// One or more text records for `msg`, each `head`, the escaped msg and `closing`: as many
    /// `"partial":true` records as it takes, each filled as far as the limit allows, then the
    /// last one. Returns how many were partial.
    fn write_text(&self, head: &[u8], closing: &[u8], msg: &[u8], out: &mut Vec<u8>) -> usize {
        let whole = self.room(head.len(), closing.len(), false);
        let mut rest = msg;
        let mut partial = 0;
        loop {
            let mark = out.len();
            if rest.len() <= whole {
                out.reserve(whole.min(rest.len() * LONGEST_UNIT) + (self.max_record - whole));
                out.extend_from_slice(head);
                if rest.len() <= whole / LONGEST_UNIT {
                    // Fits even if every byte needs escaping: no counting needed.
                    escape(rest, out);
                    out.extend_from_slice(closing);
                    return partial;
                }
                if escape_limited(rest, whole, out) == rest.len() {
                    out.extend_from_slice(closing);
                    return partial;
                }
                // Escaping made it too long after all: it becomes pieces.
                out.truncate(mark);
            }
            out.reserve(self.max_record);
            let taken = self.write_piece(head, closing, rest, out);
            let Some((_, after)) = rest.split_at_checked(taken).filter(|_| taken > 0) else {
                // Cannot happen with a line's head (every record has room for the longest unit),
                // nor with an event's and the fields usher sets; but should it, the text is
                // written whole rather than lost or looped on.
                out.truncate(mark);
                out.extend_from_slice(head);
                escape(rest, out);
                out.extend_from_slice(closing);
                return partial;
            };
            partial += 1;
            rest = after;
        }
    }

    /// One `"partial":true` record with as much of the start of `msg` as fits, never cutting a
    /// character or an escape. `partial` goes before the message key, or for a message-first
    /// schema right after the message. Returns how many bytes of `msg` it holds: more than 0,
    /// as every record has room for the longest unit, every head ends with the message key and
    /// every closing starts with the message's closing quote. Should any of that ever fail, it
    /// writes nothing and returns 0: the caller keeps the bytes.
    pub(super) fn write_piece(
        &self,
        head: &[u8],
        closing: &[u8],
        msg: &[u8],
        out: &mut Vec<u8>,
    ) -> usize {
        let layout = &self.layout;
        let room = self.room(head.len(), closing.len(), true);
        let mark = out.len();
        if layout.message_first() {
            let Some(after_quote) = closing.strip_prefix(b"\"") else {
                return 0;
            };
            out.extend_from_slice(head);
            let taken = escape_limited(msg, room, out);
            if taken == 0 {
                out.truncate(mark);
                return 0;
            }
            out.extend_from_slice(b"\",");
            out.extend_from_slice(layout.partial());
            out.extend_from_slice(after_quote);
            return taken;
        }
        let Some(start) = head.strip_suffix(layout.message_open()) else {
            return 0;
        };
        out.extend_from_slice(start);
        out.extend_from_slice(layout.partial());
        out.push(b',');
        out.extend_from_slice(layout.message_open());
        let taken = escape_limited(msg, room, out);
        if taken == 0 {
            out.truncate(mark);
            return 0;
        }
        out.extend_from_slice(closing);
        taken
    }

    /// The record(s) of one complete line. `level` is set when pieces of the line were already
    /// written with it: the rest keeps it, and the line is text. Returns how many records were
    /// partial.
    pub(super) fn write_line(
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
                if line.len() <= self.longest_whole_line() && json::may_be_object(line) {
                    let defaults = json::Defaults {
                        time,
                        level: self.default_level(stream),
                        stream,
                        layout: &self.layout,
                        fields: &self.fields,
                    };
                    if json::write_object(line, &defaults, self.max_record, &mut buffers.found, out)
                    {
                        return 0;
                    }
                }
                level::sniff(line).unwrap_or(self.default_level(stream))
            }
        };
        let head = buffers.head(self, time, level);
        self.write_text(head, self.closing(stream), line, out)
    }
}

/// What one stream's encoder keeps from line to line so as not to build it again.
#[derive(Debug)]
pub(super) struct Buffers {
    stream: Stream,
    time: [u8; 27],
    /// Record heads by level, each built once per time: the lines of one push share a time,
    /// and most lines of a stream share a level, so a record starts with one copy.
    heads: [Vec<u8>; 6],
    /// Which static fields a JSON line has already.
    found: Vec<bool>,
}

impl Buffers {
    pub(super) fn new(stream: Stream) -> Buffers {
        Buffers {
            stream,
            time: [0; 27],
            heads: Default::default(),
            found: Vec::new(),
        }
    }

    /// The head of a text record from this stream (see [`Layout::head`]) in `format`, which
    /// must be the same for every call.
    pub(super) fn head(&mut self, format: &LogFormat, time: &[u8; 27], level: Level) -> &[u8] {
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
            let layout = &format.layout;
            layout.head(time, level, layout.stream_tag(self.stream), &[], head);
        }
        head
    }
}

/// An event's structured fields, as [`encode_event`] writes them: JSON members in the order
/// they were added, each under the key the schema gives it (see `schema`: ECS puts them under
/// `usher.`, the event's name under `event.action`). A field landing on one of the record's
/// own keys (time, level, stream, msg, partial, logger in the usher schema) is left out.
#[derive(Debug, Default)]
pub struct EventFields {
    /// Each field's value as JSON, one after another.
    values: Vec<u8>,
    /// Each field's name, and where its value ends in `values`.
    names: Vec<(&'static str, usize)>,
}

impl EventFields {
    /// A field whose value is a JSON string: `value` escaped as a line's text is.
    pub fn string(&mut self, key: &'static str, value: &str) {
        json_string(value, &mut self.values);
        self.names.push((key, self.values.len()));
    }

    /// A field whose value is written as its Display form, which must be JSON: a number,
    /// `true`, `false` or `null`.
    pub fn literal(&mut self, key: &'static str, value: &dyn fmt::Display) {
        self.values.extend_from_slice(value.to_string().as_bytes());
        self.names.push((key, self.values.len()));
    }

    /// The fields as `"k":v` members joined by commas, with their keys in `layout`'s schema,
    /// and those keys: a field whose key the schema reserves is left out.
    fn render(&self, layout: &Layout) -> (Vec<u8>, Vec<Cow<'static, str>>) {
        let mut members = Vec::with_capacity(self.values.len() + 16 * self.names.len());
        let mut keys = Vec::with_capacity(self.names.len());
        let mut start = 0;
        for &(name, end) in &self.names {
            let value = self.values.get(start..end).unwrap_or_default();
            start = end;
            let key = layout.field_key(name);
            if layout.reserves(&key) {
                continue;
            }
            if !members.is_empty() {
                members.push(b',');
            }
            json_string(&key, &mut members);
            members.push(b':');
            members.extend_from_slice(value);
            keys.push(key);
        }
        (members, keys)
    }
}

/// usher's own event as a record for stderr, in the format's schema: for the usher schema
/// `{"time":..,"level":..,"logger":"usher",<fields>,"msg":..,<static fields>}` (see
/// [`Layout`]). A field wins over a static field of the same key, which that record then leaves
/// out (as a child's JSON line's own keys do). Split like a line should it be longer than
/// max_record: every piece has the fields, and is filled as far as they leave room.
pub fn encode_event(
    format: &LogFormat,
    level: Level,
    fields: &EventFields,
    msg: &str,
    time: &[u8; 27],
    out: &mut Vec<u8>,
) {
    let layout = &format.layout;
    let (members, keys) = fields.render(layout);
    let mut head = Vec::with_capacity(128 + members.len());
    layout.head(time, level, layout.usher_tag(), &members, &mut head);
    let closing = layout.closing(layout.usher_tag(), &members, &format.fields, &keys);
    let _partial = format.write_text(&head, &closing, msg.as_bytes(), out);
}

/// Writes `text` as a quoted JSON string, escaped as a line's text is (see `escape`).
fn json_string(text: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    escape_valid(text.as_bytes(), out);
    out.push(b'"');
}

/// Keys for --log-field: `[A-Za-z_][A-Za-z0-9_.-]*`. Whether the schema reserves the key is
/// [`LogSchema::reserved_keys`]'s to say.
pub fn valid_field_key(key: &str) -> bool {
    let mut bytes = key.bytes();
    let starts_well = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
    starts_well && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::test_support::*;

    #[test]
    fn plain_line() {
        assert_eq!(stdout(b"GET / 200\n"), text_record("info", "GET / 200"));
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
            (b"two words ERROR", "info"),
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
        let none = EventFields::default();
        let mut out = Vec::new();
        encode_event(
            &format,
            Level::Warn,
            &none,
            "child \"app\" exited\n",
            TIME,
            &mut out,
        );
        encode_event(&format, Level::Info, &none, "", LATER, &mut out);
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
        let none = EventFields::default();
        encode_event(&format, Level::Error, &none, &text, TIME, &mut out);
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
    fn event_fields_go_before_msg_and_win_over_static_fields() {
        let format = format(
            16384,
            &[("service", "api"), ("pid", "a\"b"), ("zone", "x\\y")],
            Level::Error,
        );
        let mut fields = EventFields::default();
        fields.string("event", "child_exited");
        fields.literal("pid", &42);
        fields.literal("clean", &false);
        fields.string("why", "a \"tab\"\there\u{7f}");
        // The record's own keys are never taken.
        for key in LogSchema::Usher.reserved_keys() {
            fields.string(key, "not this");
            fields.literal(key, &1);
        }
        let mut out = Vec::new();
        encode_event(&format, Level::Info, &fields, "done", TIME, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"time\":\"2026-11-26T14:34:17.123456Z\",\"level\":\"info\",\"logger\":\"usher\",\
             \"event\":\"child_exited\",\"pid\":42,\"clean\":false,\
             \"why\":\"a \\\"tab\\\"\\there\\u007f\",\"msg\":\"done\",\
             \"service\":\"api\",\"zone\":\"x\\\\y\"}\n"
        );
    }

    #[test]
    fn long_events_are_split_with_their_fields_on_every_piece() {
        for max in [1024, 1500, 4096] {
            // The event's pid replaces the static one: the room left is the record's own.
            let format = format(max, &[("service", "api"), ("pid", "static")], Level::Error);
            let mut fields = EventFields::default();
            fields.string("event", "spawn_failed");
            fields.literal("pid", &123_456);
            let text = "ab\"c\u{1}é🦀".repeat(1000);
            let mut out = Vec::new();
            encode_event(&format, Level::Error, &fields, &text, TIME, &mut out);
            let out = String::from_utf8(out).unwrap();
            let (rebuilt, records) = rebuild(&out, max);
            assert_eq!(rebuilt, text);
            assert!(records.len() > 1);
            for record in &records {
                assert_eq!(record["logger"], "usher");
                assert_eq!(record["event"], "spawn_failed");
                assert_eq!(record["pid"], 123_456);
                assert_eq!(record["service"], "api");
            }
            assert!(!out.contains("static"));
            // Filled to the limit, but for a character or an escape that would not fit.
            let lengths: Vec<usize> = out.lines().map(|l| l.len() + 1).collect();
            assert!(
                lengths[..lengths.len() - 1]
                    .iter()
                    .all(|&len| len + 6 > max),
                "{lengths:?}"
            );
        }
    }

    #[test]
    fn event_fields_leaving_no_room_get_their_text_whole() {
        // Cannot happen with usher's fields; should it, nothing is lost and nothing loops.
        let format = format(1024, &[], Level::Error);
        let value = "v".repeat(2000);
        let mut fields = EventFields::default();
        fields.string("big", &value);
        let mut out = Vec::new();
        encode_event(&format, Level::Warn, &fields, "msg text", TIME, &mut out);
        let records = objects(std::str::from_utf8(&out).unwrap());
        assert_eq!(records.len(), 1);
        assert_eq!(msg(&records[0]), "msg text");
        assert_eq!(records[0]["big"], value.as_str());
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
    fn field_keys() {
        for key in [
            "service", "_x", "a.b-c_d9", "Z", "Time", "levels", "time", "msg",
        ] {
            assert!(valid_field_key(key), "{key}");
        }
        for key in [
            "",
            "9a",
            ".a",
            "-a",
            "a b",
            "a=b",
            "é",
            "a\"",
            "@timestamp",
            "a/b",
        ] {
            assert!(!valid_field_key(key), "{key}");
        }
        // The usher schema's own keys are reserved (`cli` rejects them).
        assert_eq!(
            LogSchema::Usher.reserved_keys(),
            ["time", "level", "msg", "stream", "logger", "partial"]
        );
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
}
