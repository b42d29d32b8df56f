//! usher's JSON logs: the child's stdout and stderr lines as records, one JSON object a line.
//! Pure code (no threads, no I/O): the relay feeds what it reads to a `LineEncoder` and writes
//! out what comes back.
//!
//! One way down: `framing` (a stream's bytes into lines, an over-long line into pieces as it
//! arrives) hands complete lines to `multiline` (stack traces joined into one record, when
//! on); both write through `writer` (one stream's records, pieces of a text still growing,
//! counts), which uses `record` (the record format; for each line, a text record or JSON
//! pass-through; usher's own events with their fields), which uses `schema` (the names of the
//! record's own fields for --log-schema, rendered once), `json` (pass-through of lines that are
//! JSON objects) and `escape` (JSON string escaping, a leaf); `level` and `time` are leaves.
//!
//! This is usher's hottest path, so it works on bytes: newlines are found with memchr, runs of
//! bytes needing no escape are copied whole (found eight at a time), the timestamp arrives
//! formatted, record heads are built once per read, and nothing is allocated per line (a JSON
//! line's keys are found by a walk over its text, not collected).

mod escape;
mod framing;
mod json;
pub mod level;
#[cfg(test)]
#[path = "../../examples/support/level_corpus.rs"]
mod level_corpus;
mod multiline;
mod record;
mod schema;
#[cfg(test)]
mod test_support;
pub mod time;
mod writer;

pub use framing::LineEncoder;
pub use level::Level;
pub use record::{EventFields, LogFormat, Stream, encode_event, valid_field_key};
pub use schema::LogSchema;
