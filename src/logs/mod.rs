//! usher's JSON logs: the child's stdout and stderr lines as records, one JSON object a line.
//! Pure code (no threads, no I/O): the relay feeds what it reads to a `LineEncoder` and writes
//! out what comes back.

pub mod encode;
pub mod level;
pub mod time;

pub use encode::{LineEncoder, LogFormat, Stream, encode_event};
pub use level::Level;
