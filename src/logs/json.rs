//! JSON pass-through: a line that is a JSON object (as serde_json decides) is its own record,
//! its bytes kept as they are and only the keys usher would write that it lacks added before
//! its final `}`, in the schema's names. Its top-level keys are found by a walk over its text,
//! not collected.

use std::borrow::Cow;

use serde_json::value::RawValue;

use super::level::{self, Level};
use super::record::Stream;
use super::schema::{Layout, Role};

/// The key under which a JSON line whose level key (the schema's: `level` in usher's) holds no
/// string (pino's and bunyan's `30`, GELF's `6`) gets the level's name, its own value kept as it
/// is: so every record has a string level a collector can map.
pub(super) const LEVEL_NAME_KEY: &str = "level_name";

/// What a JSON line's record gets for each key it lacks.
pub(super) struct Defaults<'a> {
    pub(super) time: &'a [u8; 27],
    /// The level, unless the line names one under a key the schema takes as a hint (`severity`
    /// in usher's schema, `level` in the others).
    pub(super) level: Level,
    pub(super) stream: Stream,
    /// The schema's names and their rendered members.
    pub(super) layout: &'a Layout,
    /// Each static field as (key, `"k":"v"`).
    pub(super) fields: &'a [(String, Vec<u8>)],
}

/// Writes the record of a line that is a JSON object, if it is one and its record fits in
/// `max_record` bytes: the object's own bytes (without the JSON whitespace around it), with
/// only the missing keys added before its final `}` (time, level, the schema's version, stream,
/// static fields, in that order), and '\n'. Returns false, having written nothing, otherwise:
/// the line is then text. `found` is scratch space, kept by the caller so as not to allocate
/// per line.
pub(super) fn write_object(
    line: &[u8],
    defaults: &Defaults<'_>,
    max_record: usize,
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
    let layout = defaults.layout;
    let mut empty = true;
    let (mut has_time, mut has_level_alias, mut has_version, mut has_stream) =
        (false, false, false, false);
    let mut has_level_name = false;
    // The value of the schema's level key, if the line has it.
    let mut level_value = None;
    // The level a hint key names, with the hint's rank: the lowest rank wins.
    let mut hinted: Option<(u8, Level)> = None;
    found.clear();
    found.resize(defaults.fields.len(), false);
    let mut members = Members::new(text);
    for (key, value) in members.by_ref() {
        empty = false;
        let Some(key) = decode_key(key) else {
            return false; // cannot happen: serde_json accepted it
        };
        match layout.role(&key) {
            Some(Role::Time) => has_time = true,
            Some(Role::Level) => level_value = Some(value),
            Some(Role::LevelAlias) => has_level_alias = true,
            Some(Role::Version) => has_version = true,
            Some(Role::Stream) => has_stream = true,
            Some(Role::LevelHint(rank)) => {
                if hinted.is_none_or(|(best, _)| rank < best)
                    && let Some(level) = hint_level(&key, value)
                {
                    hinted = Some((rank, level));
                }
            }
            None => {}
        }
        has_level_name |= key == LEVEL_NAME_KEY;
        for (slot, (field, _)) in found.iter_mut().zip(defaults.fields) {
            *slot |= *field == *key;
        }
    }
    if !members.ended {
        // Cannot happen (serde_json accepted the text), but should the walk stop short, keys
        // it did not see could be written twice: the line is text instead.
        return false;
    }
    let hinted = hinted.map(|(_, level)| level);
    // The level key holding a string is the line's own say; anything else gets a name beside it.
    let level_name = match level_value {
        Some(value) if !value.starts_with('"') && !has_level_name => Some(
            level::json_value_level(value, true)
                .or(hinted)
                .unwrap_or(defaults.level),
        ),
        _ => None,
    };
    if level_name.is_some() {
        for (slot, (field, _)) in found.iter_mut().zip(defaults.fields) {
            *slot |= field == LEVEL_NAME_KEY;
        }
    }

    let Some(open) = object.strip_suffix(b"}") else {
        return false;
    };
    let mark = out.len();
    out.reserve(object.len() + max_record.min(256));
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
        add(out, &[layout.time_member_open(), defaults.time, b"\""]);
    }
    if level_value.is_none() && !has_level_alias {
        add(
            out,
            &[layout.level_member(hinted.unwrap_or(defaults.level))],
        );
    }
    if let Some(level) = level_name {
        let key = LEVEL_NAME_KEY.as_bytes();
        add(
            out,
            &[b"\"", key, b"\":\"", level.as_str().as_bytes(), b"\""],
        );
    }
    if !has_version && let Some(version) = layout.version_member() {
        add(out, &[version]);
    }
    if !has_stream {
        add(out, &[layout.stream_member(defaults.stream)]);
    }
    for ((_, field), found) in defaults.fields.iter().zip(found.iter()) {
        if !found {
            add(out, &[field]);
        }
    }
    out.extend_from_slice(b"}\n");
    if out.len() - mark > max_record {
        out.truncate(mark);
        return false;
    }
    true
}

/// Whether `line` starts like a JSON object (`{` after JSON whitespace): a test cheap enough
/// for every line, before [`write_object`] looks closer.
pub(super) fn may_be_object(line: &[u8]) -> bool {
    trim_json_whitespace(line).first() == Some(&b'{')
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
    /// Where the next key is looked for: after the `{`, then at the `,` or `}` ending a value.
    at: usize,
    /// Whether the walk has reached the object's closing brace (it stops short only on text
    /// that is not JSON).
    ended: bool,
}

impl<'a> Members<'a> {
    fn new(object: &'a str) -> Members<'a> {
        Members {
            text: object,
            at: 1,
            ended: false,
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
            self.ended = true;
            return None; // the closing brace
        }
        let key_end = string_end(bytes, key_start + 1)?;
        let colon = key_end + bytes.get(key_end..)?.iter().position(|&b| b == b':')?;
        let value_end = value_end(bytes, colon + 1)?;
        self.at = value_end;
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

/// The level a hint key's value names: MongoDB's `s` letters, a number under `level` (pino,
/// bunyan, GELF), else a string naming one (`"WARNING"` -> Warn; see [`Level::from_name`]).
fn hint_level(key: &str, raw: &str) -> Option<Level> {
    match key {
        "s" => level::mongodb_severity(raw),
        // pino's and bunyan's numbers, where `level` is not the schema's own level key.
        "level" => level::json_value_level(raw, true),
        _ => level::json_value_level(raw, false),
    }
}

/// Trims JSON's own whitespace (space, tab, CR, LF) only: `trim_ascii` would also drop a form
/// feed, a byte the record must keep.
fn trim_json_whitespace(mut line: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = line
        && is_json_space(first)
    {
        line = rest;
    }
    while let [rest @ .., last] = line
        && is_json_space(last)
    {
        line = rest;
    }
    line
}

/// JSON's own whitespace: space, tab, CR, LF.
fn is_json_space(byte: &u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\r' | b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::test_support::*;
    use crate::logs::{LineEncoder, Stream};

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
                format!(r#"{{"level":30,{head},"level_name":"info","stream":"stdout"}}"#),
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
            (r#"{ "time" : 0 , "level" : "1" , "stream" : 2 }"#, "none"),
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

    /// Numeric levels keep their number and gain `level_name`; lines without `level` take it
    /// from the keys other frameworks use.
    #[test]
    fn levels_from_numbers_and_other_keys() {
        let head = r#""time":"2026-11-26T14:34:17.123456Z""#;
        for (line, added) in [
            // pino and bunyan; GELF's syslog severities; fractions and odd numbers.
            (r#"{"level":30,"msg":"x"}"#, r#""level_name":"info""#),
            (r#"{"level":50}"#, r#""level_name":"error""#),
            (r#"{"level":60}"#, r#""level_name":"fatal""#),
            (r#"{"level":10}"#, r#""level_name":"trace""#),
            (r#"{"level":3}"#, r#""level_name":"error""#),
            (r#"{"level":6}"#, r#""level_name":"info""#),
            (r#"{"level":45.5}"#, r#""level_name":"warn""#),
            // Not a number that names a level: another key's level, else the default.
            (r#"{"level":-1}"#, r#""level_name":"info""#),
            (
                r#"{"level":null,"severity":"ERROR"}"#,
                r#""level_name":"error""#,
            ),
            (r#"{"level":{"name":"warn"}}"#, r#""level_name":"info""#),
            // Other keys, when `level` is missing.
            (r#"{"severity":"WARNING"}"#, r#""level":"warn""#),
            (r#"{"log.level":"ERROR"}"#, r#""level":"error""#),
            (r#"{"levelname":"CRITICAL"}"#, r#""level":"fatal""#),
            (r#"{"lvl":"dbug"}"#, r#""level":"debug""#),
            (r#"{"LogLevel":"Information"}"#, r#""level":"info""#),
            (r#"{"@l":"Warning"}"#, r#""level":"warn""#),
            (r#"{"s":"E","c":"STORAGE"}"#, r#""level":"error""#),
            (r#"{"s":"D2"}"#, r#""level":"debug""#),
            (r#"{"s":"x"}"#, r#""level":"info""#),
            (r#"{"s":"W","lvl":"error"}"#, r#""level":"error""#),
            (r#"{"@l":"Error","severity":"debug"}"#, r#""level":"debug""#),
            (r#"{"severity":40}"#, r#""level":"info""#),
        ] {
            let out = stdout(format!("{line}\n").as_bytes());
            let expected = format!(
                "{},{head},{added},\"stream\":\"stdout\"}}\n",
                &line[..line.len() - 1]
            );
            assert_eq!(out, expected, "{line}");
        }
        // A string `level` is the line's own, even one no framework of ours uses; a line that
        // has `level_name` already gets none.
        for line in [
            r#"{"level":"http","time":1,"stream":1}"#,
            r#"{"level":30,"level_name":"x","time":1,"stream":1}"#,
        ] {
            assert_eq!(stdout(format!("{line}\n").as_bytes()), format!("{line}\n"));
        }
        // A static field named level_name yields to usher's.
        let format = format(
            16384,
            &[("level_name", "static"), ("zone", "z")],
            Level::Error,
        );
        let out = encode(
            &format,
            Stream::Stdout,
            br#"{"level":50,"time":1,"stream":1}"#,
        );
        assert_eq!(
            out,
            "{\"level\":50,\"time\":1,\"stream\":1,\"level_name\":\"error\",\"zone\":\"z\"}\n"
        );
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
        let keys = r#"{"time":1,"level":"x","stream":3,"pad":""#;
        let full = format!("{keys}{}\"}}", "p".repeat(max - 1 - keys.len() - 2));
        assert_eq!(full.len(), max - 1);
        let out = encode(&format, Stream::Stdout, full.as_bytes());
        assert_eq!(out, format!("{full}\n"));
        // Also when its CR LF arrives cut in two: the CR is not taken for part of the line.
        let mut encoder = LineEncoder::new(format.clone(), Stream::Stdout);
        let mut out = Vec::new();
        encoder.push(format!("{full}\r").as_bytes(), TIME, at(0), &mut out);
        encoder.push(b"\n", TIME, at(0), &mut out);
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
}
