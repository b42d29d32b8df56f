//! Schemas (`--log-schema`): the names a record's own fields take, for the collector that reads
//! them. `usher` (usher's own names), `gcp` (Google Cloud Logging's structured payload), `ecs`
//! (the Elastic Common Schema, as ecs-logging writes it) or `otel` (the OpenTelemetry log data
//! model, one flat JSON object a record). The README's "Log schemas" table gives each mapping and
//! its source.
//!
//! A schema changes names, the level's spelling and where usher's own members go; never how the
//! msg is encoded, split or limited. [`Layout`] renders a schema's fixed parts once (the record
//! head's pieces, each level's member, each stream's tag), so that writing a record stays a few
//! copies whatever the schema.

use std::borrow::Cow;

use super::level::{self, Level};
use super::record::Stream;

/// `--log-schema`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogSchema {
    #[default]
    Usher,
    Gcp,
    Ecs,
    Otel,
}

impl LogSchema {
    pub const ALL: [LogSchema; 4] = [
        LogSchema::Usher,
        LogSchema::Gcp,
        LogSchema::Ecs,
        LogSchema::Otel,
    ];

    /// The name `--log-schema` takes.
    pub fn name(self) -> &'static str {
        match self {
            LogSchema::Usher => "usher",
            LogSchema::Gcp => "gcp",
            LogSchema::Ecs => "ecs",
            LogSchema::Otel => "otel",
        }
    }

    /// `usher`, `gcp`, `ecs` or `otel`, as written (lower case).
    pub fn parse(text: &str) -> Option<LogSchema> {
        LogSchema::ALL.into_iter().find(|s| s.name() == text)
    }

    /// The keys usher writes itself in this schema, and the other names the schema gives them
    /// (GCP's other time keys, ECS's `ecs` object): a static `--log-field` may take none of
    /// them.
    pub fn reserved_keys(self) -> Vec<&'static str> {
        let keys = self.keys();
        let own = [
            Some(keys.time),
            Some(keys.level),
            keys.level_number.map(|(key, _)| key),
            Some(keys.message),
            keys.version.map(|(key, _)| key),
            Some(keys.stream),
            Some(keys.logger),
            Some(keys.partial),
        ];
        let mut reserved: Vec<&'static str> = own.into_iter().flatten().collect();
        for aliases in [keys.time_aliases, keys.level_aliases, keys.version_aliases] {
            for alias in aliases {
                if !reserved.contains(alias) {
                    reserved.push(alias);
                }
            }
        }
        reserved
    }

    fn keys(self) -> &'static Keys {
        match self {
            LogSchema::Usher => &USHER,
            LogSchema::Gcp => &GCP,
            LogSchema::Ecs => &ECS,
            LogSchema::Otel => &OTEL,
        }
    }
}

/// The names of one schema. Each is a JSON key written as is (none needs escaping).
#[derive(Debug)]
struct Keys {
    time: &'static str,
    /// Other keys a JSON line may hold its time in, in this schema: usher then adds none.
    time_aliases: &'static [&'static str],
    level: &'static str,
    /// The level's value, by [`Level`] (trace, debug, info, warn, error, fatal); None for
    /// usher's own names ([`Level::as_str`]).
    level_names: Option<[&'static str; 6]>,
    /// A number written beside the level, by [`Level`] (OpenTelemetry's SeverityNumber).
    level_number: Option<(&'static str, [&'static str; 6])>,
    /// Other keys a JSON line may hold its level in, in this schema: usher then adds none.
    level_aliases: &'static [&'static str],
    message: &'static str,
    stream: &'static str,
    logger: &'static str,
    partial: &'static str,
    /// A member every record carries (ECS's required `ecs.version`), and other keys a JSON line
    /// may hold it in.
    version: Option<(&'static str, &'static str)>,
    version_aliases: &'static [&'static str],
    /// The message comes right after the time and level (ecs-logging's order), usher's own
    /// members after it; otherwise they come before it.
    message_first: bool,
    /// The key of an event's name (`event`'s field).
    event: &'static str,
    /// What the key of an event's other fields gets in front (ECS: a custom namespace).
    field_prefix: &'static str,
}

const USHER: Keys = Keys {
    time: "time",
    time_aliases: &[],
    level: "level",
    level_names: None,
    level_number: None,
    level_aliases: &[],
    message: "msg",
    stream: "stream",
    logger: "logger",
    partial: "partial",
    version: None,
    version_aliases: &[],
    message_first: false,
    event: "event",
    field_prefix: "",
};

/// Cloud Logging's structured payload: `severity` in LogSeverity's names, translated as Google's
/// logging agent translates log4j's (TRACE: DEBUG, WARN: WARNING, FATAL: CRITICAL), `message`,
/// and `time`, the RFC 3339 string form (`timestamp` is for a `{seconds, nanos}` object). Stream
/// and logger stay plain jsonPayload fields.
const GCP: Keys = Keys {
    time: "time",
    time_aliases: &["timestamp", "timestampSeconds", "timestampNanos"],
    level: "severity",
    level_names: Some(["DEBUG", "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]),
    level_number: None,
    level_aliases: &["logging.googleapis.com/severity"],
    message: "message",
    stream: "stream",
    logger: "logger",
    partial: "partial",
    version: None,
    version_aliases: &[],
    message_first: false,
    event: "event",
    field_prefix: "",
};

/// ECS as the ecs-logging spec writes it: `@timestamp`, `log.level` (a dotted top-level key, the
/// spec allows no nesting), `message` in that order, then `ecs.version`; `log.logger`; `stream`
/// as Filebeat's container input names it. usher's event name is ECS's `event.action`; its
/// other fields, and `partial`, go under `usher.` (ECS's advice for custom fields: under a
/// proper name), since some of them (`source`, `group`, `file`) are ECS objects.
const ECS: Keys = Keys {
    time: "@timestamp",
    time_aliases: &[],
    level: "log.level",
    level_names: None,
    level_number: None,
    level_aliases: &[],
    message: "message",
    stream: "stream",
    logger: "log.logger",
    partial: "usher.partial",
    version: Some(("ecs.version", "8.11.0")),
    version_aliases: &["ecs"],
    message_first: true,
    event: "event.action",
    field_prefix: "usher.",
};

/// The log data model's field names as top-level keys (`Timestamp`, `SeverityText` with the
/// data model's short names, `SeverityNumber`, `Body`, `EventName`), everything else an
/// attribute by its semantic-convention name: `log.iostream`, and the instrumentation scope as
/// `otel.scope.name`, as the spec maps it into formats without scopes.
const OTEL: Keys = Keys {
    time: "Timestamp",
    time_aliases: &[],
    level: "SeverityText",
    level_names: Some(["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"]),
    level_number: Some(("SeverityNumber", ["1", "5", "9", "13", "17", "21"])),
    level_aliases: &["SeverityNumber"],
    message: "Body",
    stream: "log.iostream",
    logger: "otel.scope.name",
    partial: "partial",
    version: None,
    version_aliases: &[],
    message_first: false,
    event: "EventName",
    field_prefix: "",
};

/// What a top-level key of a child's JSON line is to the schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Role {
    Time,
    /// The schema's own level key.
    Level,
    /// Another key that holds the level in this schema (OpenTelemetry's `SeverityNumber`): the
    /// line's level is there, and usher adds none.
    LevelAlias,
    Version,
    Stream,
    /// A key whose string value may name the level; the lower the rank, the stronger.
    LevelHint(u8),
}

/// A schema's records, rendered in parts once. Every record is
/// `head` + escaped message + `closing`:
///
/// - head: `{"<time>":"<T>",` + level member + `,` + (unless message-first: tag `,` members `,`)
///   + `"<message>":"`
/// - closing: `"` + (message-first: `,` tag `,` members) + `,"k":"v"` per static field + `}\n`
///
/// where the tag is `[version member,] "<stream>":"stdout"` (or `"<logger>":"usher"` for
/// usher's events) and members are an event's fields, each `"k":v`, joined by commas.
#[derive(Debug)]
pub(super) struct Layout {
    keys: &'static Keys,
    /// `{"time":"`
    time_open: Vec<u8>,
    /// `"level":"info"` (OTel: with `,"SeverityNumber":9`), by level.
    levels: [Vec<u8>; 6],
    /// `"msg":"`
    message_open: Vec<u8>,
    /// `"partial":true`
    partial: Vec<u8>,
    version: Option<Vec<u8>>,
    /// `"stream":"stdout"`, `"stream":"stderr"`
    streams: [Vec<u8>; 2],
    /// Each stream's tag, and the tag of usher's events.
    stream_tags: [Vec<u8>; 2],
    usher_tag: Vec<u8>,
    roles: Vec<(&'static str, Role)>,
    reserved: Vec<&'static str>,
}

impl Layout {
    pub(super) fn new(schema: LogSchema) -> Layout {
        let keys = schema.keys();
        let member = |key: &str, value: &str| format!("\"{key}\":\"{value}\"").into_bytes();
        let levels = [
            Level::Trace,
            Level::Debug,
            Level::Info,
            Level::Warn,
            Level::Error,
            Level::Fatal,
        ]
        .map(|level| {
            let index = level_index(level);
            let name = keys
                .level_names
                .map_or(level.as_str(), |names| names[index]);
            let mut text = member(keys.level, name);
            if let Some((key, numbers)) = keys.level_number {
                text.extend_from_slice(format!(",\"{key}\":{}", numbers[index]).as_bytes());
            }
            text
        });
        let version = keys.version.map(|(key, value)| member(key, value));
        let tag = |last: Vec<u8>| match &version {
            Some(version) => [version.as_slice(), b",", &last].concat(),
            None => last,
        };
        let streams = [Stream::Stdout, Stream::Stderr].map(|s| member(keys.stream, s.as_str()));
        let stream_tags = streams.clone().map(tag);
        let usher_tag = tag(member(keys.logger, "usher"));
        let mut roles = Vec::new();
        let mut add = |names: &[&'static str], role: Role| {
            for name in names {
                if !roles.iter().any(|(known, _)| known == name) {
                    roles.push((*name, role));
                }
            }
        };
        add(&[keys.time], Role::Time);
        add(keys.time_aliases, Role::Time);
        add(&[keys.level], Role::Level);
        add(keys.level_aliases, Role::LevelAlias);
        if let Some((key, _)) = keys.version {
            add(&[key], Role::Version);
        }
        add(keys.version_aliases, Role::Version);
        add(&[keys.stream], Role::Stream);
        // Where a JSON line may name its level when the schema's own key is missing: the keys
        // frameworks use (level::JSON_LEVEL_KEYS, strongest first), then MongoDB's `s`. The
        // schema's own level key among them is its level (added first), not a hint.
        for (rank, hint) in level::JSON_LEVEL_KEYS.iter().chain(&["s"]).enumerate() {
            add(&[hint], Role::LevelHint(rank as u8));
        }
        Layout {
            keys,
            time_open: format!("{{\"{}\":\"", keys.time).into_bytes(),
            levels,
            message_open: format!("\"{}\":\"", keys.message).into_bytes(),
            partial: format!("\"{}\":true", keys.partial).into_bytes(),
            version,
            streams,
            stream_tags,
            usher_tag,
            roles,
            reserved: schema.reserved_keys(),
        }
    }

    /// The level's member, `"level":"info"` (OTel: and `,"SeverityNumber":9`).
    pub(super) fn level_member(&self, level: Level) -> &[u8] {
        &self.levels[level_index(level)]
    }

    /// `"time":"`: the time member up to its value.
    pub(super) fn time_member_open(&self) -> &[u8] {
        self.time_open.get(1..).unwrap_or_default()
    }

    pub(super) fn version_member(&self) -> Option<&[u8]> {
        self.version.as_deref()
    }

    pub(super) fn stream_member(&self, stream: Stream) -> &[u8] {
        &self.streams[stream_index(stream)]
    }

    pub(super) fn stream_tag(&self, stream: Stream) -> &[u8] {
        &self.stream_tags[stream_index(stream)]
    }

    pub(super) fn usher_tag(&self) -> &[u8] {
        &self.usher_tag
    }

    pub(super) fn message_open(&self) -> &[u8] {
        &self.message_open
    }

    pub(super) fn message_first(&self) -> bool {
        self.keys.message_first
    }

    /// `"partial":true`, and the bytes it adds to a record with its comma.
    pub(super) fn partial(&self) -> &[u8] {
        &self.partial
    }

    pub(super) fn partial_len(&self) -> usize {
        self.partial.len() + 1
    }

    /// What `key`, a top-level key of a child's JSON line, is to this schema.
    pub(super) fn role(&self, key: &str) -> Option<Role> {
        self.roles
            .iter()
            .find(|(name, _)| *name == key)
            .map(|(_, role)| *role)
    }

    /// Whether usher writes `key` itself (or the schema gives it to one of usher's own).
    pub(super) fn reserves(&self, key: &str) -> bool {
        self.reserved.contains(&key)
    }

    /// The key an event's field named `name` takes in this schema.
    pub(super) fn field_key(&self, name: &'static str) -> Cow<'static, str> {
        if name == "event" {
            Cow::Borrowed(self.keys.event)
        } else if self.keys.field_prefix.is_empty() {
            Cow::Borrowed(name)
        } else {
            Cow::Owned(format!("{}{name}", self.keys.field_prefix))
        }
    }

    /// Appends a record's start, up to and with the message key's opening quote (see
    /// [`Layout`]): `tag` and `members` are comma-joined `"k":v` members, `members` possibly
    /// empty.
    pub(super) fn head(
        &self,
        time: &[u8; 27],
        level: Level,
        tag: &[u8],
        members: &[u8],
        out: &mut Vec<u8>,
    ) {
        out.extend_from_slice(&self.time_open);
        out.extend_from_slice(time);
        out.extend_from_slice(b"\",");
        out.extend_from_slice(self.level_member(level));
        out.push(b',');
        if !self.keys.message_first {
            out.extend_from_slice(tag);
            out.push(b',');
            if !members.is_empty() {
                out.extend_from_slice(members);
                out.push(b',');
            }
        }
        out.extend_from_slice(&self.message_open);
    }

    /// A record's end (see [`Layout`]): the message's closing quote, for a message-first schema
    /// `tag` and `members`, then each static field (`"k":"v"`) not keyed in `skip`, `}` and '\n'.
    pub(super) fn closing(
        &self,
        tag: &[u8],
        members: &[u8],
        fields: &[(String, Vec<u8>)],
        skip: &[Cow<'_, str>],
    ) -> Vec<u8> {
        let mut closing = b"\"".to_vec();
        if self.keys.message_first {
            closing.push(b',');
            closing.extend_from_slice(tag);
            if !members.is_empty() {
                closing.push(b',');
                closing.extend_from_slice(members);
            }
        }
        for (key, field) in fields {
            if !skip.iter().any(|skipped| skipped == key) {
                closing.push(b',');
                closing.extend_from_slice(field);
            }
        }
        closing.extend_from_slice(b"}\n");
        closing
    }
}

/// The index of `level` in a schema's tables, from trace (0) to fatal (5).
fn level_index(level: Level) -> usize {
    match level {
        Level::Trace => 0,
        Level::Debug => 1,
        Level::Info => 2,
        Level::Warn => 3,
        Level::Error => 4,
        Level::Fatal => 5,
    }
}

fn stream_index(stream: Stream) -> usize {
    match stream {
        Stream::Stdout => 0,
        Stream::Stderr => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::test_support::*;
    use crate::logs::{EventFields, LineEncoder, encode_event};
    use serde_json::{Map, Value};

    /// A schema's keys as the tests read records: time, level, message, stream, logger,
    /// partial.
    struct Names {
        schema: LogSchema,
        time: &'static str,
        level: &'static str,
        message: &'static str,
        stream: &'static str,
        logger: &'static str,
        partial: &'static str,
    }

    const NAMES: [Names; 4] = [
        Names {
            schema: LogSchema::Usher,
            time: "time",
            level: "level",
            message: "msg",
            stream: "stream",
            logger: "logger",
            partial: "partial",
        },
        Names {
            schema: LogSchema::Gcp,
            time: "time",
            level: "severity",
            message: "message",
            stream: "stream",
            logger: "logger",
            partial: "partial",
        },
        Names {
            schema: LogSchema::Ecs,
            time: "@timestamp",
            level: "log.level",
            message: "message",
            stream: "stream",
            logger: "log.logger",
            partial: "usher.partial",
        },
        Names {
            schema: LogSchema::Otel,
            time: "Timestamp",
            level: "SeverityText",
            message: "Body",
            stream: "log.iostream",
            logger: "otel.scope.name",
            partial: "partial",
        },
    ];

    /// How each schema spells usher's levels, trace to fatal.
    fn level_name(schema: LogSchema, level: &str) -> &'static str {
        let index = ["trace", "debug", "info", "warn", "error", "fatal"]
            .iter()
            .position(|l| *l == level)
            .unwrap();
        let names = match schema {
            LogSchema::Usher | LogSchema::Ecs => {
                ["trace", "debug", "info", "warn", "error", "fatal"]
            }
            LogSchema::Gcp => ["DEBUG", "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
            LogSchema::Otel => ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"],
        };
        names[index]
    }

    fn keys_of(record: &Map<String, Value>) -> Vec<&str> {
        let mut keys: Vec<&str> = record.keys().map(String::as_str).collect();
        keys.sort_unstable();
        keys
    }

    fn sorted<'a>(keys: &[&'a str]) -> Vec<&'a str> {
        let mut keys = keys.to_vec();
        keys.sort_unstable();
        keys
    }

    /// Where `key` starts in a record's text (serde_json's map does not keep the order).
    fn at(line: &str, key: &str) -> usize {
        line.find(&format!("\"{key}\":"))
            .unwrap_or_else(|| panic!("no {key} in {line}"))
    }

    const T: &str = "2026-11-26T14:34:17.123456Z";

    /// One line of each kind per schema, the whole record as bytes: what a collector gets.
    #[test]
    fn each_schema_s_text_record() {
        for (schema, expected) in [
            (
                LogSchema::Usher,
                r#"{"time":"T","level":"info","stream":"stdout","msg":"GET / 200","service":"api"}"#,
            ),
            (
                LogSchema::Gcp,
                r#"{"time":"T","severity":"INFO","stream":"stdout","message":"GET / 200","service":"api"}"#,
            ),
            (
                LogSchema::Ecs,
                r#"{"@timestamp":"T","log.level":"info","message":"GET / 200","ecs.version":"8.11.0","stream":"stdout","service":"api"}"#,
            ),
            (
                LogSchema::Otel,
                r#"{"Timestamp":"T","SeverityText":"INFO","SeverityNumber":9,"log.iostream":"stdout","Body":"GET / 200","service":"api"}"#,
            ),
        ] {
            let format = schema_format(schema, 16384, &[("service", "api")], Level::Error);
            let out = encode(&format, Stream::Stdout, b"GET / 200\n");
            assert_eq!(out, expected.replace("\"T\"", &format!("\"{T}\"")) + "\n");
        }
    }

    /// Text lines on both streams, their levels named by the line or the stream's default,
    /// checked field by field.
    #[test]
    fn text_lines_on_both_streams_field_by_field() {
        for names in &NAMES {
            let format = schema_format(names.schema, 16384, &[("service", "api")], Level::Error);
            for (stream, line, level) in [
                (Stream::Stdout, "plain \"quoted\"\ttext", "info"),
                (Stream::Stdout, "WARN: slow", "warn"),
                (Stream::Stdout, "level=trace x", "trace"),
                (Stream::Stderr, "oops", "error"),
                (Stream::Stderr, "DEBUG detail", "debug"),
                (Stream::Stderr, "FATAL down", "fatal"),
            ] {
                let out = encode(&format, stream, format!("{line}\n").as_bytes());
                let record = objects(&out).remove(0);
                let mut expected = vec![
                    names.time,
                    names.level,
                    names.message,
                    names.stream,
                    "service",
                ];
                match names.schema {
                    LogSchema::Ecs => expected.push("ecs.version"),
                    LogSchema::Otel => expected.push("SeverityNumber"),
                    _ => {}
                }
                assert_eq!(keys_of(&record), sorted(&expected), "{out}");
                assert_eq!(record[names.time], T);
                assert_eq!(
                    record[names.level],
                    level_name(names.schema, level),
                    "{line}"
                );
                assert_eq!(record[names.message], line);
                assert_eq!(record[names.stream], stream.as_str());
                assert_eq!(record["service"], "api");
                if names.schema == LogSchema::Otel {
                    let number =
                        [1, 5, 9, 13, 17, 21][["trace", "debug", "info", "warn", "error", "fatal"]
                            .iter()
                            .position(|l| *l == level)
                            .unwrap()];
                    assert_eq!(record["SeverityNumber"], number);
                }
                if names.schema == LogSchema::Ecs {
                    assert_eq!(record["ecs.version"], "8.11.0");
                    // ecs-logging's order: @timestamp, log.level, message, then the rest.
                    let order: Vec<usize> = ["@timestamp", "log.level", "message", "ecs.version"]
                        .iter()
                        .map(|key| at(&out, key))
                        .collect();
                    assert!(order.is_sorted(), "{out}");
                    assert!(at(&out, "ecs.version") < at(&out, "stream"), "{out}");
                } else {
                    assert!(at(&out, names.stream) < at(&out, names.message), "{out}");
                }
            }
        }
    }

    /// A child's JSON line keeps its keys verbatim; usher adds only the schema's keys it lacks,
    /// deriving the level from the child's `level` or `severity` where the schema names it
    /// otherwise.
    #[test]
    fn json_lines_gain_only_the_schema_s_missing_keys() {
        let line = r#"{"level":"warn","msg":"from json","n":1}"#;
        for (schema, added) in [
            (LogSchema::Usher, r#""time":"T","stream":"stdout""#),
            (
                LogSchema::Gcp,
                r#""time":"T","severity":"WARNING","stream":"stdout""#,
            ),
            (
                LogSchema::Ecs,
                r#""@timestamp":"T","log.level":"warn","ecs.version":"8.11.0","stream":"stdout""#,
            ),
            (
                LogSchema::Otel,
                r#""Timestamp":"T","SeverityText":"WARN","SeverityNumber":13,"log.iostream":"stdout""#,
            ),
        ] {
            let format = schema_format(schema, 16384, &[], Level::Error);
            let out = encode(&format, Stream::Stdout, format!("{line}\n").as_bytes());
            let added = added.replace("\"T\"", &format!("\"{T}\""));
            assert_eq!(
                out,
                format!("{},{added}}}\n", &line[..line.len() - 1]),
                "{schema:?}"
            );
        }
        // Lines already in a schema's names, in any of the forms it takes: nothing to add but
        // what is missing.
        for (schema, stream, line, added) in [
            (
                LogSchema::Gcp,
                Stream::Stderr,
                r#"{"severity":"NOTICE","message":"m","time":"2020-10-12T07:20:50.52Z"}"#,
                r#","stream":"stderr""#,
            ),
            (
                LogSchema::Gcp,
                Stream::Stdout,
                r#"{"timestamp":{"seconds":1,"nanos":2},"severity":"INFO","stream":"x"}"#,
                "",
            ),
            (
                LogSchema::Gcp,
                Stream::Stderr,
                r#"{"msg":"no level"}"#,
                r#","time":"T","severity":"ERROR","stream":"stderr""#,
            ),
            (
                LogSchema::Ecs,
                Stream::Stdout,
                r#"{"@timestamp":"t","log.level":"INFO","ecs":{"version":"1.6.0"},"stream":"s"}"#,
                "",
            ),
            (
                LogSchema::Ecs,
                Stream::Stdout,
                r#"{"severity":"error","level":"debug"}"#,
                r#","@timestamp":"T","log.level":"debug","ecs.version":"8.11.0","stream":"stdout""#,
            ),
            (
                LogSchema::Otel,
                Stream::Stdout,
                r#"{"SeverityNumber":17,"Body":"b","Timestamp":"t"}"#,
                r#","log.iostream":"stdout""#,
            ),
            (
                LogSchema::Otel,
                Stream::Stdout,
                r#"{"severity":"Critical"}"#,
                r#","Timestamp":"T","SeverityText":"FATAL","SeverityNumber":21,"log.iostream":"stdout""#,
            ),
            (
                LogSchema::Usher,
                Stream::Stdout,
                r#"{"level":"x","severity":"WARN"}"#,
                r#","time":"T","stream":"stdout""#,
            ),
        ] {
            let format = schema_format(schema, 16384, &[], Level::Error);
            let out = encode(&format, stream, format!("{line}\n").as_bytes());
            let added = added.replace("\"T\"", &format!("\"{T}\""));
            assert_eq!(
                out,
                format!("{}{added}}}\n", &line[..line.len() - 1]),
                "{schema:?}"
            );
        }
    }

    /// An over-long line's pieces: each within the limit and filled to it, the schema's partial
    /// key on all but the last, every piece with its time, level and stream; the messages
    /// concatenated give the line back.
    #[test]
    fn partial_records_in_each_schema() {
        for names in &NAMES {
            for max in [1024, 4096] {
                let format = schema_format(names.schema, max, &[("service", "api")], Level::Warn);
                let line = "ERROR ".to_string() + &"0123456789abcdef".repeat(1000);
                let out = encode(&format, Stream::Stderr, format!("{line}\n").as_bytes());
                let records = objects(&out);
                assert!(records.len() > 3, "{}", records.len());
                let mut text = String::new();
                for (n, (raw, record)) in out.lines().zip(&records).enumerate() {
                    let last = n + 1 == records.len();
                    if last {
                        assert!(raw.len() < max);
                    } else {
                        // Filled to the limit: the line is plain ASCII.
                        assert_eq!(raw.len() + 1, max, "{raw}");
                    }
                    assert_eq!(
                        record.get(names.partial),
                        (!last).then_some(&Value::Bool(true)),
                        "{raw}"
                    );
                    assert!(record.get("partial").is_none() || names.partial == "partial");
                    assert_eq!(record[names.level], level_name(names.schema, "error"));
                    assert_eq!(record[names.stream], "stderr");
                    assert_eq!(record[names.time], T);
                    assert_eq!(record["service"], "api");
                    if names.schema == LogSchema::Ecs && !last {
                        // After the message, so that the first three keys stay ecs-logging's.
                        assert!(at(raw, "message") < at(raw, "usher.partial"), "{raw}");
                    }
                    text.push_str(record[names.message].as_str().unwrap());
                }
                assert_eq!(text, line);
            }
        }
    }

    /// usher's own events: the logger, the event's name and fields under the schema's keys,
    /// an event field winning over a static field of its key.
    #[test]
    fn events_in_each_schema() {
        for names in &NAMES {
            let format = schema_format(
                names.schema,
                16384,
                &[
                    ("service", "api"),
                    ("pid", "static"),
                    ("usher.pid", "static"),
                ],
                Level::Error,
            );
            let mut fields = EventFields::default();
            fields.string("event", "child_exited");
            fields.literal("pid", &42);
            fields.literal("group", &true);
            fields.string("source", "tcp:8080");
            // Never taken: the record's own keys in this schema (ECS's event fields go under
            // `usher.`, so none of them can land there).
            fields.string(names.message, "not this");
            fields.string(names.time, "not this");
            let mut out = Vec::new();
            encode_event(
                &format,
                Level::Warn,
                &fields,
                "child \"app\" exited",
                TIME,
                &mut out,
            );
            let out = String::from_utf8(out).unwrap();
            let record = objects(&out).remove(0);
            assert_eq!(record[names.time], T);
            assert_eq!(record[names.level], level_name(names.schema, "warn"));
            assert_eq!(record[names.logger], "usher");
            assert_eq!(record[names.message], "child \"app\" exited");
            assert_eq!(record["service"], "api");
            assert!(record.get(names.stream).is_none() || names.stream == names.logger);
            // The static field keyed like the event's pid is left out, the other kept.
            assert_eq!(out.matches("static").count(), 1, "{out}");
            assert_eq!(
                out.contains("not this"),
                names.schema == LogSchema::Ecs,
                "{out}"
            );
            let (event, prefix) = match names.schema {
                LogSchema::Ecs => ("event.action", "usher."),
                LogSchema::Otel => ("EventName", ""),
                _ => ("event", ""),
            };
            assert_eq!(record[event], "child_exited", "{out}");
            assert_eq!(record[&format!("{prefix}pid")], 42);
            assert_eq!(record[&format!("{prefix}group")], true);
            assert_eq!(record[&format!("{prefix}source")], "tcp:8080");
            let mut expected = vec![
                names.time,
                names.level,
                names.logger,
                names.message,
                event,
                "service",
            ];
            let prefixed: Vec<String> = ["pid", "group", "source", names.message, names.time]
                .iter()
                .map(|f| format!("{prefix}{f}"))
                .filter(|key| !Layout::new(names.schema).reserves(key))
                .collect();
            expected.extend(prefixed.iter().map(String::as_str));
            match names.schema {
                LogSchema::Ecs => expected.push("ecs.version"),
                LogSchema::Otel => expected.push("SeverityNumber"),
                _ => {}
            }
            expected.push(if prefix.is_empty() {
                "usher.pid"
            } else {
                "pid"
            });
            assert_eq!(keys_of(&record), sorted(&expected), "{out}");
        }
    }

    /// The limit with each schema's longer keys: static fields that leave too little room raise
    /// it just enough, JSON lines whose record would not fit are text, events split like lines;
    /// no record is ever longer than the limit.
    #[test]
    fn the_record_limit_holds_in_every_schema() {
        for names in &NAMES {
            let schema = names.schema;
            // Without static fields every schema leaves the cli's 256-byte margin untouched.
            let plain = schema_format(schema, 1024, &[], Level::Error);
            assert_eq!(plain.longest_whole_line(), 1023);
            // Static fields filling all but a few bytes: the limit rises, records fit in it.
            let value = "v".repeat(1000);
            let tight = schema_format(schema, 1024, &[("big", value.as_str())], Level::Error);
            let limit = tight.longest_whole_line() + 1;
            assert!(limit > 1024 && limit < 1400, "{schema:?}: {limit}");
            let line = "é\u{1}\"x".repeat(300);
            let out = encode(&tight, Stream::Stderr, line.as_bytes());
            let records = objects(&out);
            assert!(records.len() > 10);
            for raw in out.lines() {
                assert!(raw.len() < limit, "{} of {limit}", raw.len());
            }
            let text: String = records
                .iter()
                .map(|r| r[names.message].as_str().unwrap())
                .collect();
            assert_eq!(text, line);
            // A JSON line with every key the schema would add is its own record up to max - 1
            // bytes; one that lacks them is text once the added keys would not fit.
            let max = 1024;
            let format = schema_format(schema, max, &[], Level::Error);
            let own_keys = match schema {
                LogSchema::Usher => r#"{"time":1,"level":"2","stream":3,"pad":""#,
                LogSchema::Gcp => r#"{"time":1,"severity":"2","stream":3,"pad":""#,
                LogSchema::Ecs => {
                    r#"{"@timestamp":1,"log.level":"2","ecs.version":"","stream":3,"pad":""#
                }
                LogSchema::Otel => r#"{"Timestamp":1,"SeverityText":"2","log.iostream":3,"pad":""#,
            };
            let full = format!("{own_keys}{}\"}}", "p".repeat(max - 1 - own_keys.len() - 2));
            assert_eq!(full.len(), max - 1);
            assert_eq!(
                encode(&format, Stream::Stdout, full.as_bytes()),
                format!("{full}\n")
            );
            let bare = format!("{{\"pad\":\"{}\"}}", "p".repeat(max - 40));
            let out = encode(&format, Stream::Stdout, bare.as_bytes());
            let records = objects(&out);
            assert!(out.lines().all(|raw| raw.len() < max), "{schema:?}");
            assert_eq!(records.len(), 2, "{schema:?}");
            assert_eq!(records[0][names.partial], true);
            let text: String = records
                .iter()
                .map(|r| r[names.message].as_str().unwrap())
                .collect();
            assert_eq!(text, bare);
            // An event longer than the limit: pieces within it, each with the event's fields.
            let mut fields = EventFields::default();
            fields.string("event", "spawn_failed");
            fields.literal("pid", &123_456);
            let msg = "ab\"c\u{1}é🦀".repeat(500);
            let mut out = Vec::new();
            encode_event(&format, Level::Error, &fields, &msg, TIME, &mut out);
            let out = String::from_utf8(out).unwrap();
            let records = objects(&out);
            assert!(records.len() > 3);
            let mut text = String::new();
            for (n, (raw, record)) in out.lines().zip(&records).enumerate() {
                assert!(raw.len() < max, "{schema:?}: {} bytes", raw.len());
                // Filled but for a character or an escape that would not fit.
                if n + 1 < records.len() {
                    assert!(raw.len() + 1 + 6 > max, "{schema:?}: {} bytes", raw.len());
                    assert_eq!(record[names.partial], true);
                }
                assert_eq!(record[names.logger], "usher");
                text.push_str(record[names.message].as_str().unwrap());
            }
            assert_eq!(text, msg);
        }
    }

    /// Lines split across reads make the same records in every schema.
    #[test]
    fn the_split_does_not_depend_on_the_reads() {
        for names in &NAMES {
            let format = schema_format(names.schema, 1024, &[("k", "v")], Level::Error);
            let input = format!("{}\nshort\n{{\"a\":1}}\n", "WARN ".repeat(700));
            let whole = encode(&format, Stream::Stdout, input.as_bytes());
            let mut encoder = LineEncoder::new(format.clone(), Stream::Stdout);
            let mut out = Vec::new();
            for byte in input.as_bytes().chunks(7) {
                encoder.push(byte, TIME, crate::logs::test_support::at(0), &mut out);
            }
            encoder.finish(TIME, &mut out);
            assert_eq!(String::from_utf8(out).unwrap(), whole, "{:?}", names.schema);
        }
    }

    #[test]
    fn names_parse_back() {
        for schema in LogSchema::ALL {
            assert_eq!(LogSchema::parse(schema.name()), Some(schema));
        }
        for bad in ["", "GCP", "elastic", "otlp", "usher ", "json"] {
            assert_eq!(LogSchema::parse(bad), None, "{bad:?}");
        }
        assert_eq!(LogSchema::default(), LogSchema::Usher);
    }

    /// Every key a schema writes is reserved, and needs no JSON escaping.
    #[test]
    fn every_written_key_is_reserved() {
        for schema in LogSchema::ALL {
            let keys = schema.keys();
            let mut written = vec![
                keys.time,
                keys.level,
                keys.message,
                keys.stream,
                keys.logger,
                keys.partial,
            ];
            written.extend(keys.level_number.map(|(key, _)| key));
            written.extend(keys.version.map(|(key, _)| key));
            written.extend(keys.time_aliases);
            written.extend(keys.version_aliases);
            for key in written {
                assert!(schema.reserved_keys().contains(&key), "{schema:?}: {key}");
                assert!(
                    key.bytes()
                        .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\'),
                    "{key}"
                );
            }
            // An event's fields never land on a reserved key.
            let layout = Layout::new(schema);
            for field in [
                "event", "pid", "signal", "status", "count", "source", "group",
            ] {
                assert!(
                    !layout.reserves(&layout.field_key(field)),
                    "{schema:?} {field}"
                );
            }
        }
    }

    #[test]
    fn parts_are_rendered_once() {
        let layout = Layout::new(LogSchema::Otel);
        assert_eq!(
            layout.level_member(Level::Warn),
            br#""SeverityText":"WARN","SeverityNumber":13"#
        );
        assert_eq!(layout.time_member_open(), br#""Timestamp":""#);
        assert_eq!(
            layout.stream_tag(Stream::Stderr),
            br#""log.iostream":"stderr""#
        );
        assert_eq!(layout.usher_tag(), br#""otel.scope.name":"usher""#);
        let ecs = Layout::new(LogSchema::Ecs);
        assert_eq!(
            ecs.stream_tag(Stream::Stdout),
            br#""ecs.version":"8.11.0","stream":"stdout""#
        );
        assert_eq!(ecs.partial(), br#""usher.partial":true"#);
        assert_eq!(ecs.field_key("event"), "event.action");
        assert_eq!(ecs.field_key("pid"), "usher.pid");
        let gcp = Layout::new(LogSchema::Gcp);
        assert_eq!(gcp.level_member(Level::Fatal), br#""severity":"CRITICAL""#);
        assert_eq!(gcp.level_member(Level::Trace), br#""severity":"DEBUG""#);
        assert_eq!(gcp.role("timestampSeconds"), Some(Role::Time));
        assert_eq!(gcp.role("level"), Some(Role::LevelHint(0)));
        assert_eq!(gcp.role("severity"), Some(Role::Level));
        assert_eq!(
            Layout::new(LogSchema::Usher).role("severity"),
            Some(Role::LevelHint(1))
        );
        assert_eq!(ecs.role("ecs"), Some(Role::Version));
        assert_eq!(ecs.role("msg"), None);
    }
}
