//! usher's own events (child started, signal forwarded, zombies reaped...).
//!
//! In the `raw` log format, which is the only one so far, usher prints only its warnings and
//! errors as plain `usher: ...` lines on stderr; `-v` adds the info events, `-vv` the debug ones.
//! Writing never panics: a closed stderr must not take PID 1 down.

use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error = 0,
    Warn = 1,
    Info = 2,
    Debug = 3,
}

/// The most detailed level printed: warn by default, raised by `-v`.
static MAX_LEVEL: AtomicU8 = AtomicU8::new(Level::Warn as u8);

pub fn set_verbosity(verbosity: u8) {
    let level = (Level::Warn as u8)
        .saturating_add(verbosity)
        .min(Level::Debug as u8);
    MAX_LEVEL.store(level, Ordering::Relaxed);
}

pub fn emit(level: Level, message: fmt::Arguments) {
    if level as u8 > MAX_LEVEL.load(Ordering::Relaxed) {
        return;
    }
    let prefix = match level {
        Level::Error => "usher: error: ",
        Level::Warn => "usher: warning: ",
        Level::Info | Level::Debug => "usher: ",
    };
    let _ = writeln!(std::io::stderr().lock(), "{prefix}{message}");
}

macro_rules! error { ($($arg:tt)*) => { $crate::events::emit($crate::events::Level::Error, format_args!($($arg)*)) } }
macro_rules! warning { ($($arg:tt)*) => { $crate::events::emit($crate::events::Level::Warn, format_args!($($arg)*)) } }
macro_rules! info { ($($arg:tt)*) => { $crate::events::emit($crate::events::Level::Info, format_args!($($arg)*)) } }
macro_rules! debug { ($($arg:tt)*) => { $crate::events::emit($crate::events::Level::Debug, format_args!($($arg)*)) } }
pub(crate) use {debug, error, info, warning as warn};
