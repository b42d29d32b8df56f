//! Log levels: the names usher accepts, and the level a line names itself, as the popular
//! frameworks write it. The forms, and where each mapping comes from, are listed in the README
//! ("Levels"); the corpus in tests/data/log_levels.txt is what they are measured on.
//!
//! `sniff` runs on every text line, so it reads a line once, from the start, a field at a time,
//! and gives up early: at most [`MAX_FIELDS`] fields, at most [`MAX_WORDS`] plain words before
//! the level, never past [`SNIFF_WINDOW`] bytes. Searches inside a field use memchr.

use memchr::{memchr, memchr_iter, memchr3, memrchr};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
    Fatal,
}

/// The most bytes of a line `sniff` looks at. A line's level depends on these alone, so an
/// over-long line gets its level as soon as its first piece is written, and the same level
/// however it was cut into reads (the record format keeps `--log-max-record` above this).
pub const SNIFF_WINDOW: usize = 512;

/// How many leading fields (a timestamp, a `[thread]`, a `key=value` pair, a logger name...)
/// `sniff` reads looking for the level.
const MAX_FIELDS: usize = 24;

/// How many plain words may come before a level token (a logger or program name:
/// `app.db - INFO`, `npm WARN`, `initdb: warning:`); a second one means the message has begun.
const MAX_WORDS: usize = 1;

/// The longest level word (`informational`).
const LONGEST_WORD: usize = 13;

/// The longest key of a leading `key=value` field `sniff` takes as one.
const LONGEST_KEY: usize = 32;

/// The longest field `sniff` steps over (a timestamp, a logger name, an exception class): a
/// longer one is the message.
const LONGEST_FIELD: usize = 80;

/// The longest field right after a leading timestamp (a level, a pid, a logger or thread
/// name): a longer one is the message. A multiple of 8 (see [`field_end`]).
const LONGEST_FIELD_AFTER_TIME: usize = 32;

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
            Level::Fatal => "fatal",
        }
    }

    /// A level name as an option value: trace, debug, info, warn, warning, error, fatal,
    /// critical (any case).
    pub fn parse(text: &str) -> Option<Level> {
        let level = match text.to_ascii_lowercase().as_str() {
            "trace" => Level::Trace,
            "debug" => Level::Debug,
            "info" => Level::Info,
            "warn" | "warning" => Level::Warn,
            "error" => Level::Error,
            "fatal" | "critical" => Level::Fatal,
            _ => return None,
        };
        Some(level)
    }

    /// A level named by a structured field's value (a JSON `level`/`severity`..., a logfmt
    /// `level=`): any of the words `sniff` knows, in any case (`WARNING`, `Information`, `eror`,
    /// `dpanic`, `crit`, `INF`...), `debug`/`trace` with a digit after (`DEBUG1`, `trace3`).
    pub fn from_name(name: &[u8]) -> Option<Level> {
        let (level, _, after) = level_word(name)?;
        after.is_empty().then_some(level)
    }

    /// A numeric level: 0-7 are syslog severities (RFC 5424, as GELF writes them), 10-60 pino's
    /// and bunyan's levels (10 trace, 20 debug, 30 info, 40 warn, 50 error, 60 fatal), a number
    /// in between taking the level below it (8 and 9 are trace). None if negative.
    pub fn from_number(number: i64) -> Option<Level> {
        let level = match number {
            ..0 => return None,
            0..=7 => Level::from_syslog(number as u8),
            8..20 => Level::Trace,
            20..30 => Level::Debug,
            30..40 => Level::Info,
            40..50 => Level::Warn,
            50..60 => Level::Error,
            _ => Level::Fatal,
        };
        Some(level)
    }

    /// A syslog severity (its low three bits are taken): 0 emerg, 1 alert, 2 crit -> fatal,
    /// 3 err -> error, 4 warning -> warn, 5 notice, 6 info -> info, 7 debug -> debug.
    pub fn from_syslog(priority: u8) -> Level {
        match priority & 7 {
            0..=2 => Level::Fatal,
            3 => Level::Error,
            4 => Level::Warn,
            5 | 6 => Level::Info,
            _ => Level::Debug,
        }
    }
}

/// Where a level word counts as one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Form {
    /// `ERROR`, `WARNING`, `notice`, `panic`...: in upper case before a space; in any case
    /// before a colon, a tab or a `]` (`error: x`, `Warning: x`, zap's `\tinfo\t`). Not
    /// `Error handling improved` or `no error`: words of a message.
    Name,
    /// Abbreviations (`INF`, `WRN`, `ERR`, logrus's `ERRO`, .NET's `fail`, log15's `eror`): as a
    /// name in upper case; in lower case only before a colon (`fail: ...`).
    Short,
    /// Words that are levels only in a few formats' fields (`LOG:` PostgreSQL, `NOTE:`,
    /// `CONFIG:` java.util.logging, `[System]` MySQL): in brackets, or in upper case before a
    /// colon.
    Strict,
}

/// A word of up to eight ASCII letters as one number, lower case: what [`lookup`] matches.
const fn pack(word: &[u8]) -> u64 {
    let mut packed = 0;
    let mut at = 0;
    while at < word.len() {
        packed |= ((word[at] | 0x20) as u64) << (8 * at);
        at += 1;
    }
    packed
}

/// The level words, each a constant (its packed form) matched in [`lookup`]: one compare of
/// numbers instead of one of strings per known word, as this runs for every line.
macro_rules! level_words {
    ($($name:ident = $word:literal => $level:ident, $form:ident;)*) => {
        $(const $name: u64 = pack($word);)*

        /// The level a word of up to eight letters names, and where it may.
                fn lookup_packed(packed: u64) -> Option<(Level, Form)> {
            match packed {
                $($name => Some((Level::$level, Form::$form)),)*
                _ => None,
            }
        }
    };
}

level_words! {
    TRACE = b"trace" => Trace, Name;
    DEBUG = b"debug" => Debug, Name;
    INFO = b"info" => Info, Name;
    NOTICE = b"notice" => Info, Name;
    WARN = b"warn" => Warn, Name;
    WARNING = b"warning" => Warn, Name;
    ERROR = b"error" => Error, Name;
    SEVERE = b"severe" => Error, Name;
    DPANIC = b"dpanic" => Error, Name;
    FATAL = b"fatal" => Fatal, Name;
    CRITICAL = b"critical" => Fatal, Name;
    ALERT = b"alert" => Fatal, Name;
    EMERG = b"emerg" => Fatal, Name;
    PANIC = b"panic" => Fatal, Name;
    TRC = b"trc" => Trace, Short;
    TRCE = b"trce" => Trace, Short;
    TRAC = b"trac" => Trace, Short;
    VRB = b"vrb" => Trace, Short;
    DBG = b"dbg" => Debug, Short;
    DBUG = b"dbug" => Debug, Short;
    DEBU = b"debu" => Debug, Short;
    INF = b"inf" => Info, Short;
    SUCCESS = b"success" => Info, Short;
    WRN = b"wrn" => Warn, Short;
    ERR = b"err" => Error, Short;
    ERRO = b"erro" => Error, Short;
    EROR = b"eror" => Error, Short;
    FAIL = b"fail" => Error, Short;
    FTL = b"ftl" => Fatal, Short;
    FATA = b"fata" => Fatal, Short;
    CRIT = b"crit" => Fatal, Short;
    CRT = b"crt" => Fatal, Short;
    PNC = b"pnc" => Fatal, Short;
    PANI = b"pani" => Fatal, Short;
    LOG = b"log" => Info, Strict;
    NOTE = b"note" => Info, Strict;
    SYSTEM = b"system" => Info, Strict;
    CONFIG = b"config" => Debug, Strict;
    FINE = b"fine" => Debug, Strict;
    FINER = b"finer" => Debug, Strict;
    FINEST = b"finest" => Trace, Strict;
    VERBOSE = b"verbose" => Trace, Strict;
}

/// The level a word names, and where it may: `word` is ASCII letters, any case.
fn lookup(word: &[u8]) -> Option<(Level, Form)> {
    match word.len() {
        3..=8 => lookup_packed(pack(word)),
        9 if word.eq_ignore_ascii_case(b"emergency") => Some((Level::Fatal, Form::Name)),
        // .NET's and Serilog's name; in text, a level only in brackets or before a colon.
        11 if word.eq_ignore_ascii_case(b"information") => Some((Level::Info, Form::Strict)),
        13 if word.eq_ignore_ascii_case(b"informational") => Some((Level::Info, Form::Strict)),
        _ => None,
    }
}

/// A level word at the start of `bytes`: its level, its form and whether it is in upper case,
/// and what follows it (`debug` and `trace` may carry one or two digits: `DEBUG1`, `trace3`).
fn level_word(bytes: &[u8]) -> Option<(Level, (Form, bool), &[u8])> {
    let mut run = 0;
    while run <= LONGEST_WORD && bytes.get(run).is_some_and(u8::is_ascii_alphabetic) {
        run += 1;
    }
    let (word, mut after) = bytes.split_at_checked(run)?;
    let (level, form) = lookup(word)?;
    if matches!(level, Level::Debug | Level::Trace) {
        for _ in 0..2 {
            match after {
                [digit, rest @ ..] if digit.is_ascii_digit() => after = rest,
                _ => break,
            }
        }
    }
    let upper = word.iter().all(u8::is_ascii_uppercase);
    Some((level, (form, upper), after))
}

/// Where a field is among a line's leading fields, which decides how a name in lower case
/// counts (see [`field_level`]).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Position {
    /// The line's (or a `[...]` group's) first field.
    First,
    /// Right after the line's leading timestamp, no word between.
    AfterTime,
    Other,
}

/// The level of a field that starts with a level word, if what follows the word makes it one
/// (see [`Form`]). A name in lower case or capitalised also counts alone on the line (`error`),
/// and, right after the leading timestamp, before a space or the end (Go's `log`:
/// `2026/11/30 14:00:00 error fetching rates: ...`, where a message's first word is its
/// severity).
fn field_level(bytes: &[u8], position: Position) -> Option<Level> {
    let (level, (form, upper), after) = level_word(bytes)?;
    let after = skip_escapes(after);
    let name_or_short = |name: bool| match form {
        Form::Name => upper || name,
        Form::Short => upper,
        Form::Strict => false,
    };
    let counts = match after.first() {
        Some(b':') => form != Form::Strict || upper,
        Some(b'\t' | b']') => name_or_short(true),
        None => name_or_short(position != Position::Other),
        Some(b'[' | b'/' | b'!') => upper && form != Form::Strict,
        Some(byte) if byte.is_ascii_whitespace() => name_or_short(position == Position::AfterTime),
        Some(_) => false,
    };
    counts.then_some(level)
}

/// The level a text line names itself, as the popular frameworks write it (only its first
/// [`SNIFF_WINDOW`] bytes are read; leading blanks and ANSI colour sequences are skipped):
/// - a level word after a leading timestamp, `[thread]`, `(pid)`, `key=value` pairs and at
///   most one other word (a logger or program name), in the forms [`Form`] allows: `ERROR`,
///   `[warn]`, `[core:error]`, `app.INFO:`, `INFO[0000]`, `[14:00:00 INF]`, `level=warn`;
/// - `level=`, `lvl=` or `severity=` further on in a logfmt line (one whose leading fields
///   include a `key=value` pair), quoted or not;
/// - a syslog priority `<N>` (sd-daemon), klog's `I1130 `, Ruby's `I, [`, Redis's
///   `1:M 30 Nov 2026 14:00:00.123 * `, npm's `npm error`, the first lines of stack traces
///   (`Traceback`, `Exception in thread`, `TypeError:`, `panic:`, `fatal error:`,
///   `thread 'main' panicked`);
/// - in a line that starts with `{` (a JSON object too long, or too broken, to pass through)
///   its `"level"` (or `"severity"`...) member.
///
/// Normalised as [`Level::from_name`], [`Level::from_number`] and [`Level::from_syslog`] say.
/// None if the line names no level (the stream's default applies).
pub fn sniff(line: &[u8]) -> Option<Level> {
    let window = line.get(..SNIFF_WINDOW).unwrap_or(line);
    let text = skip_blanks(window);
    let first = *text.first()?;
    match first {
        b'<' => return syslog_priority(text),
        b'{' => return json_text_level(text),
        b'0'..=b'9' => {
            if let Some(level) = redis_level(text) {
                return Some(level);
            }
        }
        // Go's runtime; the walk would take it for `error:`.
        b'f' if text.starts_with(b"fatal error: ") => return Some(Level::Fatal),
        // The commonest form, `INFO ...`, `ERROR: ...`, without the walk's set-up.
        _ if is_level_initial(first) => {
            if let Some(level) = field_level(text, Position::First) {
                return Some(level);
            }
        }
        _ => {}
    }
    // Most lines name their level in a leading field: the forms known by how the line starts
    // are looked for only when they do not.
    match walk(text, true) {
        Walk::Level(level) => Some(level),
        Walk::Ended { at, logfmt } => {
            let start = if first.is_ascii_digit() {
                None
            } else {
                line_start_level(text)
            };
            // In a logfmt line, `level=` may come after the fields read.
            start.or_else(|| logfmt.then(|| logfmt_level(text.get(at..)?)).flatten())
        }
        Walk::Unknown => None,
    }
}

/// What a field at the start of a line is, for [`walk`].
enum Field {
    Level(Level),
    /// A timestamp, pid, date word or separator: this many bytes.
    Prefix(usize),
    /// A `key=value` pair (a value in quotes may hold blanks): this many bytes.
    Pair(usize),
    /// Any other word: this many bytes.
    Word(usize),
    /// A field longer than [`LONGEST_FIELD`]: the message.
    Message,
    /// A `level=` that names no level.
    Stop,
}

/// Where [`walk`] ended.
enum Walk {
    Level(Level),
    /// No level among the leading fields: the message (or what ended the search) begins this
    /// many bytes in; `logfmt`: whether a leading field was a `key=value` pair.
    Ended {
        at: usize,
        logfmt: bool,
    },
    /// A `level=` that names no level: the line's level is its own, and unknown.
    Unknown,
}

/// Reads the fields at the start of `text` until one is a level, the message begins, or the
/// limits are reached. `groups`: whether `[...]` groups are looked into (not inside one).
fn walk(text: &[u8], groups: bool) -> Walk {
    let mut rest = text;
    let mut words = 0;
    let mut after_time = false;
    let mut logfmt = false;
    let mut first_field = true;
    let ended = |rest: &[u8], logfmt| Walk::Ended {
        at: text.len() - rest.len(),
        logfmt,
    };
    for _ in 0..MAX_FIELDS {
        if rest
            .first()
            .is_some_and(|b| b.is_ascii_whitespace() || *b == 0x1b)
        {
            rest = skip_blanks(rest);
        }
        let Some(&first) = rest.first() else {
            return ended(rest, logfmt);
        };
        if first == b'[' || first == b'(' {
            let close = if first == b'[' { b']' } else { b')' };
            let Some(end) = memchr(close, rest) else {
                return ended(rest, logfmt);
            };
            if first == b'['
                && groups
                && let Some(level) = rest.get(1..end).and_then(group_level)
            {
                return Walk::Level(level);
            }
            rest = rest.get(end + 1..).unwrap_or_default();
            after_time = false;
            first_field = false;
            continue;
        }
        let position = if first_field {
            Position::First
        } else if after_time && words == 0 {
            Position::AfterTime
        } else {
            Position::Other
        };
        first_field = false;
        let taken = match classify(rest, position) {
            Field::Level(level) => return Walk::Level(level),
            Field::Stop => return Walk::Unknown,
            Field::Message => return ended(rest, logfmt),
            Field::Prefix(taken) => {
                after_time = first.is_ascii_digit();
                taken
            }
            Field::Pair(taken) => {
                after_time = false;
                logfmt = true;
                taken
            }
            Field::Word(taken) => {
                after_time = false;
                words += 1;
                if words > MAX_WORDS {
                    return ended(rest, logfmt);
                }
                taken
            }
        };
        rest = rest.get(taken..).unwrap_or_default();
    }
    ended(rest, logfmt)
}

/// What the field at the start of `rest` is (`rest` starts with neither a blank nor a bracket;
/// `position`: see [`field_level`]).
#[inline(always)]
fn classify(rest: &[u8], position: Position) -> Field {
    let after_time = position == Position::AfterTime;
    let Some(&first) = rest.first() else {
        return Field::Message;
    };
    // A level word (what most lines start with) is known before the field's end is.
    if is_level_initial(first)
        && let Some(level) = field_level(rest, position)
    {
        return Field::Level(level);
    }
    // Where the field ends, looked for in its first LONGEST_FIELD bytes only (a field right
    // after the timestamp, LONGEST_FIELD_AFTER_TIME), and its first `=` if that comes before.
    let longest = if after_time {
        LONGEST_FIELD_AFTER_TIME
    } else {
        LONGEST_FIELD
    };
    let head = rest.get(..longest + 1).unwrap_or(rest);
    let mut end = field_end(head).unwrap_or(head.len());
    if head.get(end) == Some(&b'=') {
        let key_len = end;
        if first.is_ascii_alphabetic()
            && key_len <= LONGEST_KEY
            && let Some(key) = rest.get(..key_len)
            && key.iter().all(is_key_byte)
        {
            let value = rest.get(key_len + 1..).unwrap_or_default();
            if is_level_key(key) {
                return value_level(value).map_or(Field::Stop, Field::Level);
            }
            return Field::Pair(key_len + 1 + value_len(value));
        }
        end += head
            .get(end..)
            .and_then(|after| memchr::memchr2(b' ', b'\t', after))
            .unwrap_or(head.len() - end);
    }
    let long = end > longest;
    let token = head.get(..end).unwrap_or(head);
    if first.is_ascii_alphabetic() {
        if long {
            return Field::Message;
        }
        if let Some(level) = named_like_a_level(token, rest.get(end..).unwrap_or_default()) {
            return Field::Level(level);
        }
        if is_date_word(token) {
            return Field::Prefix(end);
        }
        return Field::Word(end);
    }
    if long {
        return Field::Message;
    }
    if first.is_ascii_digit() || first == b'+' || !token.iter().any(u8::is_ascii_alphanumeric) {
        return Field::Prefix(end);
    }
    // `/app/main.py:10:`, `"GET`, `>`-led words.
    Field::Word(end)
}

/// Where a field ends (a blank), or its first `=`, if either is in `head`. Colour codes inside
/// a field stay in it.
#[inline(always)]
fn field_end(head: &[u8]) -> Option<usize> {
    crate::sys::find_any_of_three(head, [b' ', b'\t', b'='])
}

/// `0x01` in every byte of a word.
const ONES: u64 = u64::from_ne_bytes([0x01; 8]);

/// The high bit of every byte of `word` (read little-endian) that is zero, and maybe of bytes
/// above the lowest zero one (a borrow): the lowest flagged byte is always a zero byte.
fn zero_bytes(word: u64) -> u64 {
    word.wrapping_sub(ONES) & !word & (ONES << 7)
}

/// Whether a word starting with this letter may be a level word (see [`lookup`]): most words
/// of a message are ruled out by their first letter.
fn is_level_initial(letter: u8) -> bool {
    matches!(
        letter | 0x20,
        b'a' | b'c' | b'd' | b'e' | b'f' | b'i' | b'l' | b'n' | b'p' | b's' | b't' | b'v' | b'w'
    )
}

/// A field whose name says what it is: an exception or warning class (`TypeError:`,
/// `java.lang.IllegalStateException: ...`, `ActionController::RoutingError (...)`,
/// `DeprecationWarning:`), or Monolog's `channel.LEVEL:`.
fn named_like_a_level(token: &[u8], after: &[u8]) -> Option<Level> {
    let (name, colon) = match token.strip_suffix(b":") {
        Some(name) => (name, true),
        None => (token, false),
    };
    let class = |suffix: &[u8]| name.len() > suffix.len() && name.ends_with(suffix);
    // An error class before a colon, before " (" (Ruby's `Error (message):`) or alone.
    if (class(b"Error") || class(b"Exception"))
        && (colon || after.is_empty() || after.starts_with(b" ("))
    {
        return Some(Level::Error);
    }
    if !colon {
        return None;
    }
    if class(b"Warning") {
        return Some(Level::Warn);
    }
    let channel_level = name.get(memrchr(b'.', name)? + 1..)?;
    let (level, (form, upper), rest) = level_word(channel_level)?;
    (rest.is_empty() && upper && form != Form::Strict).then_some(level)
}

/// The level a `[...]` group names (`inner` is what is between the brackets): all of it
/// (`[INFO]`, `[notice]`, `[Note]`, structlog's `[info     ]`), after a module (Apache's
/// `[core:error]`), or as a field inside it (env_logger's `[2026-11-30T14:00:00Z INFO  app]`,
/// Serilog's `[14:00:00 INF]`, Celery's `[...: INFO/MainProcess]`).
fn group_level(inner: &[u8]) -> Option<Level> {
    let content = skip_blanks(inner);
    // A level, or a module and a level, starts with a letter (Apache's `[:error]` with `:`):
    // groups of times and pids go straight to the walk.
    if content
        .first()
        .is_some_and(|b| b.is_ascii_alphabetic() || *b == b':')
        && let Some(level) = named_group_level(content)
    {
        return Some(level);
    }
    match walk(inner, false) {
        Walk::Level(level) => Some(level),
        Walk::Ended { .. } | Walk::Unknown => None,
    }
}

/// The level a group that is nothing but a level, or `module:level`, names (blanks and colour
/// sequences around it aside).
fn named_group_level(content: &[u8]) -> Option<Level> {
    let len = content
        .iter()
        .position(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'_' | b':')))
        .unwrap_or(content.len());
    let (word, rest) = content.split_at_checked(len)?;
    if !skip_blanks(rest).is_empty() {
        return None;
    }
    let name = match memrchr(b':', word) {
        Some(colon) => word.get(colon + 1..)?,
        None => word,
    };
    Level::from_name(name)
}

/// How long a `key=value` pair's value is: to the next blank, or past its closing quote.
fn value_len(value: &[u8]) -> usize {
    match value.strip_prefix(b"\"") {
        Some(quoted) => match closing_quote(quoted) {
            Some(close) => close + 2,
            None => value.len(),
        },
        None => memchr3(b' ', b'\t', 0x1b, value).unwrap_or(value.len()),
    }
}

/// Where the quote closing a string whose contents are `quoted` is (a `\"` does not close it).
fn closing_quote(quoted: &[u8]) -> Option<usize> {
    let mut at = 0;
    loop {
        let next = at + memchr::memchr2(b'"', b'\\', quoted.get(at..)?)?;
        match quoted.get(next)? {
            b'"' => return Some(next),
            _ => at = next + 2,
        }
    }
}

/// The level a `level=` value names: a level word, quoted or not, ending the value (slog's
/// `ERROR+4` counts as `ERROR`).
fn value_level(value: &[u8]) -> Option<Level> {
    let value = value.strip_prefix(b"\"").unwrap_or(value);
    let (level, _, after) = level_word(value)?;
    match after.first() {
        Some(byte) if byte.is_ascii_alphanumeric() || *byte == b'_' => None,
        _ => Some(level),
    }
}

/// A byte of a logfmt key: letters, digits, `_`, `.`, `-`, `@`.
fn is_key_byte(byte: &u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b'-' | b'@')
}

/// The logfmt keys that hold the level: `level` (logrus, slog, go-kit, Grafana), `lvl`
/// (log15), `severity`.
fn is_level_key(key: &[u8]) -> bool {
    [&b"level"[..], b"lvl", b"severity"]
        .iter()
        .any(|name| key.eq_ignore_ascii_case(name))
}

/// `level=`, `lvl=` or `severity=` anywhere in `text` (after a blank or at its start).
fn logfmt_level(text: &[u8]) -> Option<Level> {
    memchr_iter(b'=', text).find_map(|eq| {
        let head = text.get(..eq)?;
        let start = head
            .iter()
            .rposition(|b| !(b.is_ascii_alphanumeric() || *b == b'_'))
            .map_or(0, |at| at + 1);
        let key = head.get(start..)?;
        let after_blank = start == 0 || head.get(start - 1).is_some_and(u8::is_ascii_whitespace);
        if !(after_blank && is_level_key(key)) {
            return None;
        }
        value_level(text.get(eq + 1..)?)
    })
}

/// Month and weekday abbreviations, AM/PM and UTC/GMT: parts of a timestamp, not words.
fn is_date_word(token: &[u8]) -> bool {
    let token = token.strip_suffix(b",").unwrap_or(token);
    let [a, b, rest @ ..] = token else {
        return false;
    };
    let word = [a.to_ascii_lowercase(), b.to_ascii_lowercase()];
    match rest {
        [] => matches!(&word, b"am" | b"pm"),
        [c] => matches!(
            &[word[0], word[1], c.to_ascii_lowercase()],
            b"jan"
                | b"feb"
                | b"mar"
                | b"apr"
                | b"may"
                | b"jun"
                | b"jul"
                | b"aug"
                | b"sep"
                | b"oct"
                | b"nov"
                | b"dec"
                | b"mon"
                | b"tue"
                | b"wed"
                | b"thu"
                | b"fri"
                | b"sat"
                | b"sun"
                | b"utc"
                | b"gmt"
        ),
        _ => false,
    }
}

/// Forms recognised by how the line starts: klog/glog `I1130 `, Ruby Logger `I, [`, npm's
/// `npm error`, and the first lines of stack traces.
fn line_start_level(text: &[u8]) -> Option<Level> {
    let letter = *text.first()?;
    if !letter.is_ascii_alphabetic() {
        return ruby_backtrace(text);
    }
    // klog: the severity letter, then the date as four digits.
    if let [_, m1, m2, d1, d2, b' ', ..] = text
        && [m1, m2, d1, d2].iter().all(|b| b.is_ascii_digit())
        && let Some(level) = match letter {
            b'I' => Some(Level::Info),
            b'W' => Some(Level::Warn),
            b'E' => Some(Level::Error),
            b'F' => Some(Level::Fatal),
            _ => None,
        }
    {
        return Some(level);
    }
    // Ruby's Logger::Formatter: the severity's first letter, then the time in brackets (`A`,
    // Ruby's UNKNOWN, names no level).
    if text.get(1..4) == Some(b", [")
        && let Some(level) = match letter {
            b'D' => Some(Level::Debug),
            b'I' => Some(Level::Info),
            b'W' => Some(Level::Warn),
            b'E' => Some(Level::Error),
            b'F' => Some(Level::Fatal),
            _ => None,
        }
    {
        return Some(level);
    }
    match letter {
        // npm's own lines: `npm ERR! ...` (npm 8 and before), `npm error ...`, `npm warn ...`.
        b'n' => {
            if let Some(rest) = text.strip_prefix(b"npm ")
                && let Some((level, _, after)) = level_word(rest)
                && matches!(after.first(), None | Some(b' ' | b'!'))
            {
                return Some(level);
            }
        }
        // The first lines of stack traces.
        b'T' if text.starts_with(b"Traceback (most recent call last):") => {
            return Some(Level::Error);
        }
        b'E' if text.starts_with(b"Exception in thread \"") => return Some(Level::Error),
        b'U' if text.starts_with(b"Unhandled exception. ") => return Some(Level::Error),
        // Rust: `thread 'main' panicked at src/main.rs:42:10:`.
        b't' => {
            if let Some(name) = text.strip_prefix(b"thread '")
                && let Some(quote) = memchr(b'\'', name)
                && name
                    .get(quote..)
                    .is_some_and(|rest| rest.starts_with(b"' panicked at "))
            {
                return Some(Level::Fatal);
            }
        }
        _ => {}
    }
    ruby_backtrace(text)
}

/// Ruby's first backtrace line: `app.rb:42:in 'Order#total': undefined method ... (NoMethodError)`.
fn ruby_backtrace(text: &[u8]) -> Option<Level> {
    let end = memchr(b' ', text)?;
    let token = text.get(..end)?;
    if let Some(location) = token.strip_suffix(b":in")
        && let Some(colon) = memrchr(b':', location)
        && location.len() > colon + 1
        && location.get(colon + 1..)?.iter().all(u8::is_ascii_digit)
        && matches!(text.get(end + 1), Some(b'\'' | b'`'))
    {
        return Some(Level::Error);
    }
    None
}

/// Redis: `pid:role dd Mon yyyy hh:mm:ss.mmm M message`, the mark M one of `.` (debug), `-`
/// (verbose, here debug), `*` (notice, here info), `#` (warning).
fn redis_level(text: &[u8]) -> Option<Level> {
    // Most lines that start with a digit start with a time or an address: a `:` among the first
    // eight bytes, then a role letter, rules out nearly all of them in one load.
    let head = u64::from_le_bytes(*text.first_chunk::<8>()?);
    let colons = zero_bytes(head ^ (ONES * u64::from(b':')));
    if colons == 0 {
        return None;
    }
    let colon = (colons.trailing_zeros() / 8) as usize;
    if !matches!(text.get(colon + 1), Some(b'X' | b'C' | b'S' | b'M')) {
        return None;
    }
    let rest = digits(text, 1, 7)?;
    let rest = match rest {
        [b':', b'X' | b'C' | b'S' | b'M', b' ', rest @ ..] => rest,
        _ => return None,
    };
    let rest = digits(rest, 1, 2)?;
    let rest = match rest {
        [b' ', m1, m2, m3, b' ', rest @ ..]
            if [m1, m2, m3].iter().all(|b| b.is_ascii_alphabetic()) =>
        {
            rest
        }
        _ => return None,
    };
    let rest = digits(rest, 4, 4)?.strip_prefix(b" ")?;
    let rest = digits(rest, 2, 2)?.strip_prefix(b":")?;
    let rest = digits(rest, 2, 2)?.strip_prefix(b":")?;
    let rest = digits(rest, 2, 2)?.strip_prefix(b".")?;
    let rest = digits(rest, 3, 3)?;
    let level = match rest {
        [b' ', b'.', b' ', ..] => Level::Debug,
        [b' ', b'-', b' ', ..] => Level::Debug,
        [b' ', b'*', b' ', ..] => Level::Info,
        [b' ', b'#', b' ', ..] => Level::Warn,
        _ => return None,
    };
    Some(level)
}

/// `text` after `min..=max` ASCII digits, if it starts with that many.
fn digits(text: &[u8], min: usize, max: usize) -> Option<&[u8]> {
    let mut count = 0;
    while count <= max && text.get(count).is_some_and(u8::is_ascii_digit) {
        count += 1;
    }
    if count < min || count > max {
        return None;
    }
    text.get(count..)
}

/// A syslog priority `<N>` (sd-daemon(3) prefixes `<0>`..`<7>`; with a facility, up to 191).
fn syslog_priority(text: &[u8]) -> Option<Level> {
    let inner = text.strip_prefix(b"<")?;
    let close = memchr(b'>', inner.get(..4).unwrap_or(inner))?;
    let number = inner.get(..close)?;
    if number.is_empty() || !number.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let priority: u16 = std::str::from_utf8(number).ok()?.parse().ok()?;
    (priority <= 191).then(|| Level::from_syslog((priority & 7) as u8))
}

/// The keys of a JSON line that may hold its level, in the order they are preferred when a
/// line has several: `severity` (Google Cloud), `log.level` (ECS), `levelname` (Python's
/// python-json-logger), `lvl`, `LogLevel` (.NET's JSON console), `@l` (Serilog's CLEF).
/// `level` itself comes first; MongoDB's `s` is read by [`mongodb_severity`].
pub const JSON_LEVEL_KEYS: [&str; 7] = [
    "level",
    "severity",
    "log.level",
    "levelname",
    "lvl",
    "LogLevel",
    "@l",
];

/// The level a JSON value names: a string naming one ([`Level::from_name`]), or, when
/// `numbers`, a number ([`Level::from_number`], a fraction rounded down). `raw` is the value's
/// JSON text.
pub fn json_value_level(raw: &str, numbers: bool) -> Option<Level> {
    if let Some(inner) = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        if inner.contains('\\') {
            let text = serde_json::from_str::<String>(raw).ok()?;
            return Level::from_name(text.as_bytes());
        }
        return Level::from_name(inner.as_bytes());
    }
    if !numbers {
        return None;
    }
    // An integer, or a fraction rounded down (`45.5`); no float parser for this.
    let (whole, fraction) = raw.split_once('.').unwrap_or((raw, "0"));
    if fraction.is_empty() || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Level::from_number(whole.parse::<i64>().ok()?)
}

/// MongoDB's severity (`"s"`): `F`, `E`, `W`, `I`, `D` and `D1`..`D5`.
pub fn mongodb_severity(raw: &str) -> Option<Level> {
    let level = match raw {
        r#""F""# => Level::Fatal,
        r#""E""# => Level::Error,
        r#""W""# => Level::Warn,
        r#""I""# => Level::Info,
        r#""D""# | r#""D1""# | r#""D2""# | r#""D3""# | r#""D4""# | r#""D5""# => Level::Debug,
        _ => return None,
    };
    Some(level)
}

/// The level member of a line that looks like a JSON object but is handled as text: the first
/// of [`JSON_LEVEL_KEYS`] found with a string value naming a level (or, for `level`, a number).
fn json_text_level(text: &[u8]) -> Option<Level> {
    memchr_iter(b'"', text).find_map(|quote| {
        let rest = text.get(quote + 1..)?;
        JSON_LEVEL_KEYS.iter().find_map(|key| {
            let after = rest.strip_prefix(key.as_bytes())?.strip_prefix(b"\"")?;
            let value = after
                .trim_ascii_start()
                .strip_prefix(b":")?
                .trim_ascii_start();
            match value.strip_prefix(b"\"") {
                Some(name) => {
                    let end = memchr(b'"', name)?;
                    Level::from_name(name.get(..end)?)
                }
                None if *key == "level" => {
                    let len = value
                        .iter()
                        .take_while(|b| b.is_ascii_digit() || matches!(b, b'-' | b'.'))
                        .count();
                    let number = std::str::from_utf8(value.get(..len)?).ok()?;
                    json_value_level(number, true)
                }
                None => None,
            }
        })
    })
}

/// `bytes` after any leading whitespace and ANSI escape sequences.
#[inline(always)]
fn skip_blanks(bytes: &[u8]) -> &[u8] {
    // Most fields and lines start with neither: no call.
    match bytes.first() {
        Some(byte) if *byte != 0x1b && !byte.is_ascii_whitespace() => bytes,
        _ => skip_blanks_and_escapes(bytes),
    }
}

fn skip_blanks_and_escapes(mut bytes: &[u8]) -> &[u8] {
    loop {
        match bytes {
            [byte, rest @ ..] if byte.is_ascii_whitespace() => bytes = rest,
            [0x1b, ..] => {
                let after = skip_escapes(bytes);
                if after.len() == bytes.len() {
                    return bytes;
                }
                bytes = after;
            }
            _ => return bytes,
        }
    }
}

/// `bytes` after any ANSI CSI sequences (`ESC [ params final`, as colour codes are) at its
/// start. A lone or malformed ESC is left in place.
fn skip_escapes(mut bytes: &[u8]) -> &[u8] {
    while let [0x1b, b'[', rest @ ..] = bytes {
        let Some(end) = rest.iter().take(16).position(|b| (0x40..=0x7e).contains(b)) else {
            return bytes;
        };
        if !rest.iter().take(end).all(|b| (0x20..=0x3f).contains(b)) {
            return bytes;
        }
        bytes = rest.get(end + 1..).unwrap_or_default();
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::level_corpus;
    use crate::logs::test_support::{XorShift, at, encode, format, objects};
    use crate::logs::{LineEncoder, Stream};

    const ALL: [Level; 6] = [
        Level::Trace,
        Level::Debug,
        Level::Info,
        Level::Warn,
        Level::Error,
        Level::Fatal,
    ];

    fn sniffs(line: &str) -> Option<Level> {
        sniff(line.as_bytes())
    }

    #[test]
    fn option_names_round_trip_and_parse_any_case() {
        for level in ALL {
            assert_eq!(Level::parse(level.as_str()), Some(level));
            assert_eq!(
                Level::parse(&level.as_str().to_ascii_uppercase()),
                Some(level)
            );
        }
        assert_eq!(Level::parse("Warning"), Some(Level::Warn));
        assert_eq!(Level::parse("CRITICAL"), Some(Level::Fatal));
        // Options take the plain names only.
        for other in [
            "",
            "err",
            "crit",
            "notice",
            "information",
            "warn ",
            " warn",
            "errors",
        ] {
            assert_eq!(Level::parse(other), None, "{other:?}");
        }
        assert!(Level::Trace < Level::Debug && Level::Error < Level::Fatal);
    }

    #[test]
    fn names_in_fields_map_to_six_levels() {
        use Level::*;
        for (names, level) in [
            ("trace TRC trce TRAC vrb verbose finest trace3", Trace),
            ("debug DBG dbug DEBU fine finer config DEBUG1", Debug),
            (
                "info INF information Information notice note log system success",
                Info,
            ),
            ("warn WARNING Warning WRN", Warn),
            ("error ERR ERRO eror fail severe SEVERE dpanic", Error),
            (
                "fatal FTL FATA critical crit alert emerg emergency panic PNC PANI",
                Fatal,
            ),
        ] {
            for name in names.split(' ') {
                assert_eq!(Level::from_name(name.as_bytes()), Some(level), "{name}");
            }
        }
        for other in [
            "",
            "errors",
            "informations",
            "warn ",
            "http",
            "silly",
            "x",
            "debug123",
            "info1",
        ] {
            assert_eq!(Level::from_name(other.as_bytes()), None, "{other:?}");
        }
    }

    #[test]
    fn numbers_are_syslog_severities_then_pino_levels() {
        use Level::*;
        let syslog = [Fatal, Fatal, Fatal, Error, Warn, Info, Info, Debug];
        for (number, level) in syslog.iter().enumerate() {
            assert_eq!(Level::from_number(number as i64), Some(*level));
            assert_eq!(Level::from_syslog(number as u8 + 8 * 16), *level); // local0
        }
        for (number, level) in [
            (8, Trace),
            (10, Trace),
            (20, Debug),
            (30, Info),
            (35, Info),
            (40, Warn),
            (50, Error),
            (59, Error),
            (60, Fatal),
            (100, Fatal),
        ] {
            assert_eq!(Level::from_number(number), Some(level), "{number}");
        }
        assert_eq!(Level::from_number(-1), None);
        assert_eq!(json_value_level("30", true), Some(Info));
        assert_eq!(json_value_level("49.9", true), Some(Warn));
        assert_eq!(json_value_level("30", false), None);
        assert_eq!(json_value_level(r#""WARN""#, false), Some(Warn));
        assert_eq!(json_value_level(r#""\u0045RROR""#, false), Some(Error));
        assert_eq!(json_value_level("true", true), None);
        assert_eq!(mongodb_severity(r#""D3""#), Some(Debug));
        assert_eq!(mongodb_severity(r#""X""#), None);
    }

    /// One or more lines per form `sniff` knows, and what it must make of them.
    #[test]
    fn sniffs_each_form() {
        use Level::*;
        for (line, level) in [
            // A level word first: bare, bracketed, as logfmt.
            ("ERROR disk full", Some(Error)),
            ("WARNING: slow", Some(Warn)),
            ("warning: slow", Some(Warn)),
            ("Error: boom", Some(Error)),
            ("info: Microsoft.Hosting.Lifetime[14]", Some(Info)),
            ("fail: Microsoft.AspNetCore.Server.Kestrel[13]", Some(Error)),
            ("[warn] x", Some(Warn)),
            ("[Note] x", Some(Info)),
            ("[ error ] x", Some(Error)),
            ("INFO[0000] started", Some(Info)),
            ("ERRO[0003] failed", Some(Error)),
            ("level=debug x=1", Some(Debug)),
            ("level=\"TRACE\" x=1", Some(Trace)),
            ("lvl=eror msg=x", Some(Error)),
            ("level=ERROR+4 msg=x", Some(Error)),
            ("FATAL", Some(Fatal)),
            ("error", Some(Error)),
            ("Warning", Some(Warn)),
            ("build ERROR", Some(Error)),
            ("2026/11/30 14:00:00 error", Some(Error)),
            ("critical] x", Some(Fatal)),
            // After a timestamp, a thread, a pid, key=value pairs, a logger name.
            ("2026-11-30 14:00:00,123 - app.db - INFO - x", Some(Info)),
            ("14:00:00.123 [main] WARN  com.example.App -- x", Some(Warn)),
            (
                "2026-11-30T14:00:00.123Z  INFO 1 --- [shop] [  main] c.e.App : x",
                Some(Info),
            ),
            ("2026-11-30 14:00:00.123 UTC [1] LOG:  ready", Some(Info)),
            ("2026-11-30 14:00:00.123 UTC [1] STATEMENT:  SELECT 1", None),
            ("2026/11/30 14:00:00 [notice] 1#1: start", Some(Info)),
            (
                "[Mon Nov 30 14:00:00.1 2026] [core:error] [pid 8:tid 2] x",
                Some(Error),
            ),
            (
                "[Mon Nov 30 14:00:00.1 2026] [mpm_event:notice] [pid 1] x",
                Some(Info),
            ),
            ("[2026-11-30 14:00:00.1][1][critical][main] x", Some(Fatal)),
            ("[2026-11-30T14:00:00Z INFO  app] x", Some(Info)),
            ("[14:00:00 WRN] x", Some(Warn)),
            ("[2026-11-30 14:00:00,1: ERROR/MainProcess] x", Some(Error)),
            (
                "[2026-11-30T14:00:00+00:00] app.CRITICAL: x {} []",
                Some(Fatal),
            ),
            (
                "time=\"2026-11-30 14:00:00\" level=warning msg=x",
                Some(Warn),
            ),
            (
                "ts=1 caller=main.go:1 component=\"scrape manager\" level=warn",
                Some(Warn),
            ),
            ("2026-11-30T14:00:00.1Z\tinfo\tmain.go:1\tx", Some(Info)),
            ("2026-11-30T14:00:00Z pid=1 tid=2ab INFO: x", Some(Info)),
            ("14:00:01.000 request_id=F1 [info] GET /", Some(Info)),
            ("Nov 30, 2026 2:00:00 PM com.example.App main", None),
            ("npm WARN deprecated x", Some(Warn)),
            ("initdb: warning: enabling trust", Some(Warn)),
            ("Server error: timed out", Some(Error)),
            (
                "2026/11/30 14:00:07 error fetching rates: timeout",
                Some(Error),
            ),
            // Forms of their own.
            ("I1130 14:00:00.123456       1 main.go:42] x", Some(Info)),
            ("F1130 14:00:00.123456       1 main.go:42] x", Some(Fatal)),
            ("E, [2026-11-30T14:00:00.1 #1] ERROR -- : x", Some(Error)),
            ("W, [2026-11-30T14:00:00.1 #1]  WARN -- : x", Some(Warn)),
            ("1:M 30 Nov 2026 14:00:00.123 * Ready", Some(Info)),
            ("1:M 30 Nov 2026 14:00:00.123 # Warning", Some(Warn)),
            ("1:M 30 Nov 2026 14:00:00.123 - Accepted", Some(Debug)),
            ("1:M 30 Nov 2026 14:00:00.123 . Closed", Some(Debug)),
            ("<3>failed", Some(Error)),
            ("<6>ready", Some(Info)),
            ("<0>down", Some(Fatal)),
            ("<134>x", Some(Info)),
            ("<192>x", None),
            ("<x>y", None),
            ("npm error code 1", Some(Error)),
            ("npm ERR! code ELIFECYCLE", Some(Error)),
            // First lines of stack traces.
            ("Traceback (most recent call last):", Some(Error)),
            ("ValueError: invalid literal", Some(Error)),
            (
                "Exception in thread \"main\" java.lang.IllegalStateException: x",
                Some(Error),
            ),
            ("java.lang.NullPointerException: x", Some(Error)),
            ("java.lang.NullPointerException", Some(Error)),
            (
                "[id] ActionController::RoutingError (No route matches):",
                Some(Error),
            ),
            ("panic: runtime error: index out of range", Some(Fatal)),
            (
                "fatal error: all goroutines are asleep - deadlock!",
                Some(Fatal),
            ),
            (
                "TypeError: Cannot read properties of undefined",
                Some(Error),
            ),
            ("(node:1) [DEP0040] DeprecationWarning: x", Some(Warn)),
            ("/app/x.py:10: DeprecationWarning: x", Some(Warn)),
            (
                "app.rb:42:in 'Order#total': undefined method (NoMethodError)",
                Some(Error),
            ),
            (
                "Unhandled exception. System.InvalidOperationException: x",
                Some(Error),
            ),
            ("thread 'main' panicked at src/main.rs:42:10:", Some(Fatal)),
            // JSON handled as text (too long or broken): its level member.
            ("{\"level\":\"warn\",\"msg\":", Some(Warn)),
            ("{\"time\":1, \"level\" : 50, \"msg\":", Some(Error)),
            ("{\"severity\":\"ERROR\",", Some(Error)),
            ("{\"msg\":\"x\"", None),
        ] {
            assert_eq!(sniffs(line), level, "{line:?}");
        }
    }

    /// Plain messages that name a level in their own words are left alone unless the word is
    /// set off as a level is (upper case, a colon, brackets).
    #[test]
    fn sniff_leaves_plain_messages_alone() {
        for line in [
            "",
            "   ",
            "error handling improved in v2.3",
            "Error rate: 0.02%",
            "Warnings: 0, errors: 0",
            "info about the cache",
            "Critical section entered",
            "Trace ID 4bf92f assigned",
            "Debug mode: off",
            "INFORMATION_SCHEMA tables: 79",
            "No errors found.",
            "Connection error count: 0",
            "no error",
            "Build Error",
            "disk full ERROR",
            "ERRORS: 3",
            "ERROR1 x",
            "ERROR- x",
            "ERROR, x",
            "ERROR.",
            "WARNINGS",
            "(error) x",
            "[error x",
            "[errors] x",
            "level=errors x",
            "level= error",
            "level:error",
            "\"error\" x",
            "GET / 200",
            "LOG something",
            "log: x",
            "note: x",
            "Note: x",
            "err x",
            "- error handling improved",
            "AH00558: httpd: Could not reliably determine the server's name",
            "Caused by: java.io.IOException: x",
            "\u{1b}[31m",
            "\u{1b}",
        ] {
            assert_eq!(sniffs(line), None, "{line:?}");
        }
    }

    #[test]
    fn sniff_skips_colour_sequences() {
        for (line, level) in [
            (
                "\u{1b}[2m2026-11-30T14:00:00Z\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m app: x",
                Level::Info,
            ),
            (
                "\u{1b}[90m2026-11-30T14:00:00Z\u{1b}[0m \u{1b}[31mERR\u{1b}[0m x",
                Level::Error,
            ),
            ("\u{1b}[32minfo\u{1b}[39m: x", Level::Info),
            (
                "2026-11-30 [\u{1b}[31m\u{1b}[1merror    \u{1b}[0m] x",
                Level::Error,
            ),
        ] {
            assert_eq!(sniffs(line), Some(level), "{line:?}");
        }
    }

    #[test]
    fn sniff_handles_invalid_utf8_around_the_token() {
        assert_eq!(sniff(b"ERROR \xff\xfe"), Some(Level::Error));
        assert_eq!(sniff(b"2026 [\xff] WARN \xc3"), Some(Level::Warn));
        assert_eq!(sniff(b"ERROR\xff"), None);
        assert_eq!(sniff(b"\xffERROR"), None);
    }

    /// The lookahead is bounded: a level further in than the window, than MAX_FIELDS fields or
    /// than MAX_WORDS words is not found, and nothing past the window changes a line's level.
    #[test]
    fn sniff_lookahead_is_bounded() {
        let indent = " ".repeat(SNIFF_WINDOW - 6);
        assert_eq!(
            sniff(format!("{indent}WARN x").as_bytes()),
            Some(Level::Warn)
        );
        let indent = " ".repeat(SNIFF_WINDOW - 3);
        assert_eq!(sniff(format!("{indent}WARN x").as_bytes()), None);
        let fields = "14:00:00 ".repeat(MAX_FIELDS - 1);
        assert_eq!(
            sniff(format!("{fields}ERROR x").as_bytes()),
            Some(Level::Error)
        );
        let fields = "14:00:00 ".repeat(MAX_FIELDS);
        assert_eq!(sniff(format!("{fields}ERROR x").as_bytes()), None);
        assert_eq!(sniff(b"one ERROR"), Some(Level::Error));
        assert_eq!(sniff(b"one two ERROR"), None);
        // logfmt anywhere, but within the window.
        let filler = "x".repeat(SNIFF_WINDOW - 40);
        let near = format!("msg=\"{filler}\" level=error");
        assert!(near.len() < SNIFF_WINDOW);
        assert_eq!(sniff(near.as_bytes()), Some(Level::Error));
        let far = format!("msg=\"{filler}{filler}\" level=error");
        assert_eq!(sniff(far.as_bytes()), None);
        // A token cut by the window's end is judged on what is inside it, whole line or not.
        let cut = format!("{}ERRORS", " ".repeat(SNIFF_WINDOW - 5));
        assert_eq!(
            sniff(cut.as_bytes()),
            sniff(&cut.as_bytes()[..SNIFF_WINDOW])
        );
    }

    /// What `LineEncoder` relies on: a line's level is that of its first SNIFF_WINDOW bytes.
    #[test]
    fn sniff_reads_only_its_window() {
        let mut random = XorShift(0x9e37_79b9_7f4a_7c15);
        let pieces: [&[u8]; 12] = [
            b"2026-11-30 14:00:00 ",
            b"[main] ",
            b"ERROR ",
            b"level=warn ",
            b"x=\"a b\" ",
            b"word ",
            b"\x1b[31m",
            b"{\"level\":30,",
            b"<3>",
            b"info: ",
            b"  ",
            b"\xff",
        ];
        for entry in level_corpus::entries() {
            let mut line = entry.line.clone();
            while line.len() < 2 * SNIFF_WINDOW {
                line.extend_from_slice(pieces[random.below(pieces.len())]);
            }
            assert_eq!(sniff(&line), sniff(&line[..SNIFF_WINDOW]), "{line:?}");
        }
        for _ in 0..2000 {
            let mut line = Vec::new();
            while line.len() < SNIFF_WINDOW + 100 {
                line.extend_from_slice(pieces[random.below(pieces.len())]);
            }
            for cut in [SNIFF_WINDOW, SNIFF_WINDOW + 1, line.len()] {
                assert_eq!(
                    sniff(&line[..cut]),
                    sniff(&line[..SNIFF_WINDOW]),
                    "{line:?}"
                );
            }
        }
    }

    /// Lines cut across reads (one byte a push, or random pushes), short or longer than a
    /// record: every record carries the level the whole line would get.
    #[test]
    fn levels_do_not_depend_on_how_lines_are_read() {
        let format = format(1024, &[], Level::Info);
        let mut random = XorShift(0x2545_f491_4f6c_dd1d);
        let mut input = Vec::new();
        let mut expected = Vec::new();
        for (n, entry) in level_corpus::entries().iter().enumerate() {
            let mut line = entry.line.clone();
            if n % 3 == 0 {
                // Longer than a record: written in pieces, the first before the line ends.
                line.extend(std::iter::repeat_n(b'z', 1500));
            }
            let whole = encode(&format, Stream::Stdout, &[&line[..], b"\n"].concat());
            expected.extend(objects(&whole).iter().map(|r| r["level"].clone()));
            input.extend_from_slice(&line);
            input.push(b'\n');
        }
        for round in 0..4 {
            let mut encoder = LineEncoder::new(format.clone(), Stream::Stdout);
            let mut out = Vec::new();
            let mut rest = &input[..];
            while !rest.is_empty() {
                let take = match round {
                    0 => 1,
                    _ => 1 + random.below(700),
                }
                .min(rest.len());
                encoder.push(
                    &rest[..take],
                    crate::logs::test_support::TIME,
                    at(0),
                    &mut out,
                );
                rest = &rest[take..];
            }
            encoder.finish(crate::logs::test_support::TIME, &mut out);
            let records = objects(std::str::from_utf8(&out).unwrap());
            let levels: Vec<_> = records.iter().map(|r| r["level"].clone()).collect();
            assert_eq!(levels, expected, "round {round}");
        }
    }

    /// The corpus through the encoder (text and JSON lines alike): each entry and the level
    /// its record got.
    fn corpus_levels(stderr_level: Level) -> Vec<(level_corpus::Entry, Option<&'static str>)> {
        let format = format(16384, &[], stderr_level);
        level_corpus::entries()
            .into_iter()
            .map(|entry| {
                let stream = match entry.stream {
                    "stdout" => Stream::Stdout,
                    _ => Stream::Stderr,
                };
                let out = encode(&format, stream, &[&entry.line[..], b"\n"].concat());
                let records = objects(&out);
                assert_eq!(records.len(), 1, "{out}");
                let level = level_corpus::record_level(&records[0]);
                (entry, level)
            })
            .collect()
    }

    /// The integration test (tests/level_corpus.rs) runs the real binary over the corpus; this
    /// is the same check in process, quick to rerun while working on the rules.
    #[test]
    fn corpus_in_process() {
        let results = corpus_levels(Level::Info);
        let mut right = 0;
        for (entry, level) in &results {
            if *level == Some(entry.level) {
                right += 1;
            } else {
                println!(
                    "{:>4} {:<24} {} want {:<5} got {:<5} {}",
                    entry.number,
                    entry.format,
                    entry.stream,
                    entry.level,
                    level.unwrap_or("-"),
                    String::from_utf8_lossy(&entry.line)
                );
            }
        }
        println!("{right} of {} right", results.len());
        assert!(
            right * 100 >= results.len() * 95,
            "{right} of {}",
            results.len()
        );
    }

    /// A rough figure for sniff alone, per line: the corpus's lines and flood-like plain lines
    /// (`cargo test --release --lib logs::level::tests::sniff_speed -- --ignored
    /// --nocapture`; `SNIFF_ONLY=flood` or `corpus` runs one, e.g. under callgrind).
    #[test]
    #[ignore]
    fn sniff_speed() {
        let corpus: Vec<Vec<u8>> = level_corpus::entries()
            .into_iter()
            .map(|e| e.line)
            .collect();
        let flood: Vec<Vec<u8>> = (0..1000)
            .map(|n| format!("{n:07} {}", "x".repeat(91)).into_bytes())
            .collect();
        for (name, lines) in [("corpus", &corpus), ("flood", &flood)] {
            if std::env::var("SNIFF_ONLY").is_ok_and(|only| only != name) {
                continue;
            }
            let rounds = 2_000_000 / lines.len();
            let best = (0..5)
                .map(|_| {
                    let started = std::time::Instant::now();
                    let mut found = 0usize;
                    for _ in 0..rounds {
                        for line in lines.iter() {
                            found += usize::from(sniff(std::hint::black_box(line)).is_some());
                        }
                    }
                    std::hint::black_box(found);
                    started.elapsed()
                })
                .min()
                .unwrap();
            let per_line = best.as_nanos() as f64 / (rounds * lines.len()) as f64;
            println!("{name}: {per_line:.1} ns a line");
        }
    }
}
