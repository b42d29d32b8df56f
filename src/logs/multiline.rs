//! Multi-line records (`--log-multiline auto`): the lines of a stack trace joined with '\n'
//! into one record, with the level of its first line, between line framing and the records.
//!
//! The rules follow the state machines of Fluent Bit's built-in multiline parsers (java,
//! python, go, ruby) and the start/continuation patterns of Vector's `multiline` option,
//! written as byte tests rather than regular expressions, since every line passes here:
//!
//! - Java (and Kotlin, Scala, .NET, Node.js): a first line `Exception in thread "main" X: msg`,
//!   `x.y.SomeException: msg`, `TypeError: msg` (a name ending in `Exception`, `Error` or
//!   `Throwable`, then `:` or the end of the line), `Unhandled exception. X: msg` (.NET);
//!   then indented `at ...` frames, `Caused by: ...`, `Suppressed: ...`, `... N more`,
//!   `... N common frames omitted`, `--- End of ... ---` (.NET). A Node.js frame ending in
//!   ` {` opens the error's properties, indented up to a `}` line; a blank line and
//!   `Node.js vN` end a Node.js crash.
//! - Python: `Traceback (most recent call last):`, indented lines (`  File ...`, the code,
//!   `~~~^^^` markers), then one line that is not indented, the exception (`ValueError: msg`,
//!   or a bare `KeyboardInterrupt`); then, after a blank line, `During handling of the above
//!   exception, another exception occurred:` or `The above exception was the direct cause of
//!   the following exception:`, a blank line and the next `Traceback`. An exception group
//!   (`  + Exception Group Traceback ...`) takes indented lines only.
//! - Go: `panic: ...` or `fatal error: ...`, `[signal ...]` and indented lines, a blank line,
//!   `goroutine N [state]:`, function lines (`main.main()`), tab-indented file lines,
//!   `created by ...`, further goroutines after blank lines, and `exit status N` (go run).
//! - Ruby: `app.rb:3:in 'x': msg (RuntimeError)`, then indented `from app.rb:7:in ...`.
//! - A logger's line that names warn, error or fatal (logback's `... ERROR ... - failed`,
//!   Python logging's `ERROR:root:failed`): the trace that may follow it joins its record.
//!
//! A line that could start a trace (or a record a next line could continue) is held: the
//! relay waits for more input at most [`HOLD`] after the last read that added to the record
//! (the pipe has been idle that long), and at most [`MAX_HOLD`] after the record's first line;
//! then it writes the record. Every other line goes out in the same pass as without joining.
//! A trace cut by a bound (the hold ran out, [`MAX_HOLD`], [`MAX_LINES`], a line longer than
//! the record limit) goes on: its next lines join each other in a record of their own with
//! the level of the record they continue, until a line that does not continue it. Lines that
//! only continue a trace, with no trace before them, begin a record of their own too, so a
//! trace is never scattered into a record per line. A line longer than the record limit is
//! never joined (framing writes it in pieces as it arrives); a joined record longer than the
//! limit goes out in `"partial":true` pieces as its lines arrive, so what is held stays under
//! about twice the limit; a record takes at most [`MAX_LINES`] lines.

use std::time::{Duration, Instant};

use super::json;
use super::level::{self, Level};
use super::writer::Writer;

/// How long the relay waits for more of the child's output while a record is held, counted
/// from the last read that added to it: the pipe has been idle this long, so the trace is
/// taken to be over. A runtime writes its trace in one burst (microseconds between lines),
/// and a logger that writes a line at a time, or a container short of CPU, a few
/// milliseconds apart: a trace joins as long as no gap between its lines reaches this.
pub const HOLD: Duration = Duration::from_millis(50);

/// The longest a record is held, counted from the read of its first line, however steadily
/// its lines keep coming: then it goes out, and the trace's next lines make a record of their
/// own with its level. It bounds how late any line reaches the log (an alert on the error, a
/// reader of `kubectl logs`) at about this, against a trace written slowly for good; 2 s
/// joins a trace of 40 lines at the slowest pace [`HOLD`] lets join (just under 50 ms a line)
/// and 200 lines at 10 ms a line, while a second would cut a 30-line trace paced at 40 ms.
pub const MAX_HOLD: Duration = Duration::from_secs(2);

/// The most lines a joined record takes: endless continuation lines become records of this
/// many lines each, whatever comes. Far more than anyone reads in one record; a longer trace
/// (a StackOverflowError's 1024 frames, a dump of every goroutine) goes on in a next record.
pub const MAX_LINES: usize = 1000;

const TRACEBACK: &[u8] = b"Traceback (most recent call last):";
const GROUP_TRACEBACK: &[u8] = b"+ Exception Group Traceback (most recent call last):";
const DURING_HANDLING: &[u8] =
    b"During handling of the above exception, another exception occurred:";
const DIRECT_CAUSE: &[u8] = b"The above exception was the direct cause of the following exception:";
/// How far into a line its first word is looked for (exception names, Ruby locations).
const MAX_WORD: usize = 512;

/// Where a held record stands: which lines may continue it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// A logger's line naming warn, error or fatal: a trace's first line may follow.
    Logger,
    /// Java, .NET, Node.js: an exception's first line, frames, causes.
    JavaFrames,
    /// Node.js: an error's properties, after a frame ending in ` {`, up to `}`.
    NodeProperties,
    /// Python: the indented lines after `Traceback (most recent call last):`.
    PythonTraceback,
    /// Python: an exception group's traceback, every line indented.
    PythonGroup,
    /// Python: after the exception's line; a blank line and a chaining sentence may follow.
    PythonRaised,
    /// Python: after a chaining sentence; a blank line and the next traceback follow.
    PythonChained,
    /// Ruby: the `from ...` lines after `file:N:in ...`.
    RubyBacktrace,
    /// Go: after `panic: ...` or `fatal error: ...`, up to the goroutine dump.
    GoPanic,
    /// Go: a goroutine dump.
    GoDump,
    /// The trace's last line is in (`exit status N` after a Go dump).
    Done,
}

impl State {
    /// Whether a blank line may be inside a trace here (it is held until the next line shows
    /// whether it is).
    fn takes_blank(self) -> bool {
        use State::*;
        matches!(
            self,
            JavaFrames | NodeProperties | PythonRaised | PythonChained | GoPanic | GoDump
        )
    }

    /// The state after `line` if `line` continues a record in this state, right after a
    /// blank line if `after_blank`.
    fn next(self, line: &[u8], after_blank: bool) -> Option<State> {
        use State::*;
        if after_blank {
            return match self {
                PythonRaised if line == DURING_HANDLING || line == DIRECT_CAUSE => {
                    Some(PythonChained)
                }
                PythonChained if line == TRACEBACK => Some(PythonTraceback),
                PythonChained if split_indent(line).1.starts_with(GROUP_TRACEBACK) => {
                    Some(PythonGroup)
                }
                GoPanic | GoDump if goroutine_header(line) || line == b"runtime stack:" => {
                    Some(GoDump)
                }
                JavaFrames | NodeProperties if line.starts_with(b"Node.js v") => Some(Done),
                _ => None,
            };
        }
        let (indent, rest) = split_indent(line);
        let indented = indent > 0;
        match self {
            Logger => start(line),
            JavaFrames => java_frame(indented, rest),
            NodeProperties if indented => Some(NodeProperties),
            NodeProperties if line == b"}" => Some(JavaFrames),
            PythonTraceback if indented => Some(PythonTraceback),
            PythonTraceback if exception_name(line).is_some() => Some(PythonRaised),
            PythonGroup if indented => Some(PythonGroup),
            RubyBacktrace if indented && (rest.starts_with(b"from ") || ellipsis(rest, b"")) => {
                Some(RubyBacktrace)
            }
            GoPanic if indented || line.starts_with(b"[signal ") => Some(GoPanic),
            GoPanic | GoDump if goroutine_header(line) => Some(GoDump),
            GoDump
                if indented
                    || go_function(line)
                    || line.starts_with(b"created by ")
                    || line == b"...additional frames elided..." =>
            {
                Some(GoDump)
            }
            GoDump if exit_status(line) => Some(Done),
            _ => None,
        }
    }
}

/// The state a trace begins in, if `line` can be a trace's first line. Also lines that only
/// continue a trace (`\tat ...`, `  File "..."`, `goroutine 7 [running]:`): with nothing
/// before them to continue, they begin a record of their own.
fn start(line: &[u8]) -> Option<State> {
    use State::*;
    if matches!(line.first(), Some(b' ' | b'\t')) {
        let rest = split_indent(line).1;
        return if rest.starts_with(b"at ") {
            Some(JavaFrames)
        } else if rest.starts_with(b"File \"") {
            Some(PythonTraceback)
        } else if rest.starts_with(GROUP_TRACEBACK) {
            Some(PythonGroup)
        } else if rest
            .strip_prefix(b"from ")
            .is_some_and(|location| ruby_location(first_word(location).0))
        {
            Some(RubyBacktrace)
        } else {
            None
        };
    }
    match line.first()? {
        b'T' if line == TRACEBACK => Some(PythonTraceback),
        b'p' if line.starts_with(b"panic: ") => Some(GoPanic),
        b'f' if line.starts_with(b"fatal error: ") => Some(GoPanic),
        b'g' if goroutine_header(line) => Some(GoDump),
        b'E' if line.starts_with(b"Exception in thread \"") => Some(JavaFrames),
        b'C' if line.starts_with(b"Caused by: ") => Some(JavaFrames),
        b'U' if line.starts_with(b"Unhandled exception. ") => Some(JavaFrames),
        // What every other line is checked for, so the usual lines are let go at their first
        // byte: a timestamp or a number (digits), a bracket, a quote start no trace.
        b'A'..=b'Z' | b'a'..=b'z' | b'_' | b'/' | b'.' | b'<' | b'~' | b'-' => {
            let (word, after) = first_word(line);
            match word.last() {
                Some(b'n') if !after.is_empty() && ruby_location(word) => Some(RubyBacktrace),
                Some(b':') => exception_class(name_of(word, after)),
                _ if after.is_empty() || after.starts_with(b" [") => {
                    exception_class(name_of(word, after))
                }
                _ => None,
            }
        }
        _ => None,
    }
}

/// A Java, .NET or JavaScript exception's name: a first line.
fn exception_class(name: Option<&[u8]>) -> Option<State> {
    let name = name?;
    let class =
        name.ends_with(b"Exception") || name.ends_with(b"Error") || name.ends_with(b"Throwable");
    class.then_some(State::JavaFrames)
}

/// A Java/.NET/Node.js continuation line (its indentation already split off).
fn java_frame(indented: bool, rest: &[u8]) -> Option<State> {
    if indented && rest.starts_with(b"at ") {
        // Node.js prints an error's own properties after its last frame, in braces.
        return Some(match rest.ends_with(b" {") {
            true => State::NodeProperties,
            false => State::JavaFrames,
        });
    }
    let continues = rest.starts_with(b"Caused by: ")
        || rest.starts_with(b"Suppressed: ")
        || rest.starts_with(b"--- End of ")
        || ellipsis(rest, b" more")
        || ellipsis(rest, b" common frames omitted");
    continues.then_some(State::JavaFrames)
}

/// `... N` followed by `tail` (Java's `... 3 more`; Ruby's `... 5 levels...` with an empty
/// tail, where only the number is checked).
fn ellipsis(rest: &[u8], tail: &[u8]) -> bool {
    let Some(count) = rest.strip_prefix(b"... ") else {
        return false;
    };
    let digits = count.iter().take_while(|b| b.is_ascii_digit()).count();
    digits > 0
        && count
            .get(digits..)
            .is_some_and(|after| after.starts_with(tail))
}

/// The name of an exception a line begins with: `Name: ...`, `Name:`, `Name` alone, or
/// Node.js's `Name [CODE]: ...`; a name is letters, digits, `_`, `.` and `$` (nested classes),
/// not starting with a digit or a dot, its last part capitalised (a class).
fn exception_name(line: &[u8]) -> Option<&[u8]> {
    let (word, after) = first_word(line);
    name_of(word, after)
}

/// [`exception_name`] of a line split by [`first_word`].
fn name_of<'a>(word: &'a [u8], after: &[u8]) -> Option<&'a [u8]> {
    let name = match word.strip_suffix(b":") {
        Some(name) => name,
        None if after.is_empty() || after.starts_with(b" [") => word,
        None => return None,
    };
    let starts_well = name
        .first()
        .is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_');
    let valid = name
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'$'));
    // Exception classes are capitalised (Java, Python, JavaScript, Ruby alike): this keeps
    // `next` or `done` from passing for a bare exception name.
    let class = name.rsplit(|b| *b == b'.').next().unwrap_or(name);
    let capitalised = class.first().is_some_and(u8::is_ascii_uppercase);
    (starts_well && valid && capitalised).then_some(name)
}

/// Ruby's `path:LINE:in`: the word before a method name in a backtrace.
fn ruby_location(word: &[u8]) -> bool {
    let Some(location) = word.strip_suffix(b":in") else {
        return false;
    };
    let digits = location
        .iter()
        .rev()
        .take_while(|b| b.is_ascii_digit())
        .count();
    let path_end = location.len() - digits;
    digits > 0 && path_end > 1 && location.get(path_end - 1) == Some(&b':')
}

/// `goroutine N [state]:` (Go 1.21+ may put more between the number and the state).
fn goroutine_header(line: &[u8]) -> bool {
    line.strip_prefix(b"goroutine ")
        .is_some_and(|rest| rest.first().is_some_and(u8::is_ascii_digit) && rest.ends_with(b"]:"))
}

/// A Go function line of a goroutine dump: `main.main()`, `net/http.(*conn).serve(0xc0...)`:
/// a call, with no space before its first parenthesis.
fn go_function(line: &[u8]) -> bool {
    let Some(open) = memchr::memchr(b'(', line) else {
        return false;
    };
    open > 0
        && line.ends_with(b")")
        && line
            .get(..open)
            .is_some_and(|name| !name.iter().any(u8::is_ascii_whitespace))
}

/// `exit status N`, which `go run` prints after the program's own dump.
fn exit_status(line: &[u8]) -> bool {
    line.strip_prefix(b"exit status ")
        .is_some_and(|code| !code.is_empty() && code.iter().all(u8::is_ascii_digit))
}

/// The number of spaces and tabs a line begins with, and the rest.
fn split_indent(line: &[u8]) -> (usize, &[u8]) {
    let indent = line
        .iter()
        .take_while(|b| matches!(b, b' ' | b'\t'))
        .count();
    (indent, line.get(indent..).unwrap_or_default())
}

/// The line's first word (up to a space or tab) and what follows it, looked for in the first
/// [`MAX_WORD`] bytes: a longer first word is no exception name or location (an empty word).
fn first_word(line: &[u8]) -> (&[u8], &[u8]) {
    let window = line.get(..MAX_WORD).unwrap_or(line);
    match window.iter().position(|b| matches!(b, b' ' | b'\t')) {
        Some(end) => line.split_at(end),
        None if line.len() <= MAX_WORD => (line, &[]),
        None => (&[], line),
    }
}

/// A blank line after the held record, which the next line may show to be part of the trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Blank {
    /// None since the last line.
    No,
    /// Held with the record, read at this time.
    Held([u8; 27]),
    /// Written when the hold ran out: the trace's next line, if any, comes after a blank line.
    Out,
}

/// Joins one stream's complete lines into records: see the module's documentation.
#[derive(Debug)]
pub(super) struct Joiner {
    /// What is not yet written of the held record: its lines joined with '\n' (pieces of it
    /// are out already if it grew past the record limit).
    text: Vec<u8>,
    /// Lines in the held record; 0 when nothing is held.
    lines: usize,
    /// Which lines may continue the trace: None when no trace is under way. Kept when a
    /// record goes out before its trace is over (a bound cut it), so that the trace goes on
    /// in the next record.
    state: Option<State>,
    /// The trace's level, from its first line: every record of the trace gets it.
    level: Level,
    /// When the held record's first line was read: the record's time.
    time: [u8; 27],
    /// A blank line after the held record.
    blank: Blank,
    /// When the held record's first line (or a blank line held alone) was read: the record
    /// goes out at most [`MAX_HOLD`] later.
    first_read: Instant,
    /// When the last read that added to the held record was: the relay waits for more at
    /// most [`HOLD`] after it.
    last_read: Instant,
}

impl Joiner {
    pub(super) fn new() -> Joiner {
        let now = Instant::now();
        Joiner {
            text: Vec::new(),
            lines: 0,
            state: None,
            level: Level::Info,
            time: [0; 27],
            blank: Blank::No,
            first_read: now,
            last_read: now,
        }
    }

    /// The bytes of the held record not written yet (see `LineEncoder::buffered`).
    #[cfg(fuzzing)]
    pub(super) fn buffered(&self) -> usize {
        self.text.len()
    }

    /// Until when the relay may wait for more input while a record is held: [`HOLD`] after
    /// the last read that added to it, [`MAX_HOLD`] after its first line at the latest. None
    /// when nothing is held. Then the relay calls [`Self::expire`].
    pub(super) fn held_until(&self) -> Option<Instant> {
        self.held()
            .then(|| after(self.last_read, HOLD).min(after(self.first_read, MAX_HOLD)))
    }

    /// A read at `now` took bytes of this stream while a record is held: the pipe was not
    /// idle, so the wait for more starts again (the record's total bound stays).
    pub(super) fn touch(&mut self, now: Instant) {
        if self.held() {
            self.last_read = now;
        }
    }

    /// Whether a record (or a blank line that may be part of one) is held.
    fn held(&self) -> bool {
        self.lines > 0 || matches!(self.blank, Blank::Held(_))
    }

    /// One complete line (its CR LF or LF already taken off), read at `time` (`now` on the
    /// monotonic clock): joined to the held record, held as a record's first line, or
    /// written to `out` at once.
    pub(super) fn line(
        &mut self,
        line: &[u8],
        time: &[u8; 27],
        now: Instant,
        writer: &mut Writer,
        out: &mut Vec<u8>,
    ) {
        let longest = writer.longest();
        if line.len() > longest {
            // Too long for one record: never joined (framing writes such a line in pieces as
            // it arrives, before it is complete; the same line whole goes out the same way).
            let start = line.get(..longest).unwrap_or(line);
            let level = self.long_line(start, writer, out);
            writer.text(line, Some(level), time, out);
            return;
        }
        if let Some(state) = self.state {
            if line.is_empty() && self.blank == Blank::No && state.takes_blank() {
                if self.lines == 0 {
                    self.first_read = now;
                }
                self.last_read = now;
                self.blank = Blank::Held(*time);
                return;
            }
            if let Some(next) = state.next(line, self.blank != Blank::No) {
                self.join(line, next, time, now, writer, out);
                return;
            }
            self.flush(writer, out);
        }
        self.begin(line, time, now, writer, out);
    }

    /// A line too long for one record, by its first `writer.longest()` bytes (`start`: what
    /// framing has of it when it must write its first piece): what is held goes out before
    /// it. Returns the level its records get: the trace's if it continues the trace under way
    /// (which then goes on after it), else its own. It may begin a trace too (a first line
    /// with a long message): the trace's next lines then get its level.
    pub(super) fn long_line(
        &mut self,
        start: &[u8],
        writer: &mut Writer,
        out: &mut Vec<u8>,
    ) -> Level {
        let next = self
            .state
            .and_then(|state| state.next(start, self.blank != Blank::No));
        if next.is_some() {
            // The blank line before it is inside the trace.
            self.write_record(writer, out);
            if let Blank::Held(time) = self.blank {
                writer.text(b"", Some(self.level), &time, out);
            }
            self.blank = Blank::No;
            self.state = next.filter(|state| *state != State::Done);
            return self.level;
        }
        self.flush(writer, out);
        let named = level::sniff(start);
        let level = named.unwrap_or(writer.default_level());
        let begins = match json::may_be_object(start) {
            true => None,
            false => start_or_logger(start, named),
        };
        self.state = match begins {
            Some(state) => {
                self.level = level;
                Some(state)
            }
            None => None,
        };
        level
    }

    /// Writes the held record (and a blank line held after it): the trace is over.
    pub(super) fn flush(&mut self, writer: &mut Writer, out: &mut Vec<u8>) {
        self.write(writer, out);
        self.state = None;
        self.blank = Blank::No;
    }

    /// The relay's wait ran out ([`Self::held_until`]): writes the held record (and a blank
    /// line held after it). The trace may go on: its next lines join each other in a record
    /// of their own, with its level.
    pub(super) fn expire(&mut self, writer: &mut Writer, out: &mut Vec<u8>) {
        self.write(writer, out);
    }

    /// A line with no trace under way: the first line of a held record, if it can begin a
    /// trace or be followed by one; else its record, at once, as without joining.
    fn begin(
        &mut self,
        line: &[u8],
        time: &[u8; 27],
        now: Instant,
        writer: &mut Writer,
        out: &mut Vec<u8>,
    ) {
        if json::may_be_object(line) {
            // A JSON line is its own record (passed through); no trace continues it.
            writer.text(line, None, time, out);
            return;
        }
        let named = level::sniff(line);
        let Some(state) = start_or_logger(line, named) else {
            // Sniffed once: the record gets the level found here.
            writer.text(
                line,
                Some(named.unwrap_or(writer.default_level())),
                time,
                out,
            );
            return;
        };
        self.level = named.unwrap_or(writer.default_level());
        self.join(line, state, time, now, writer, out);
    }

    /// Adds `line`, read at `now`, to the held record (beginning one if none is held), which
    /// is now in `state`. Writes pieces of the record once it is too long for one, the record
    /// so far first if it has been held [`MAX_HOLD`], and the record itself once nothing can
    /// follow or it has [`MAX_LINES`] lines.
    fn join(
        &mut self,
        line: &[u8],
        state: State,
        time: &[u8; 27],
        now: Instant,
        writer: &mut Writer,
        out: &mut Vec<u8>,
    ) {
        if self.lines > 0 && now >= after(self.first_read, MAX_HOLD) {
            // Held long enough: the trace goes on in a record of its own (with a blank line
            // held before this line, if there is one).
            self.write_record(writer, out);
            self.first_read = now;
        } else if self.lines == 0 && !matches!(self.blank, Blank::Held(_)) {
            self.first_read = now;
        }
        self.last_read = now;
        if self.lines == 0 {
            self.time = match self.blank {
                Blank::Held(blank_time) => blank_time,
                _ => *time,
            };
        } else {
            self.text.push(b'\n');
        }
        if let Blank::Held(_) = self.blank {
            self.text.push(b'\n');
            self.lines += 1;
        }
        self.blank = Blank::No;
        self.text.extend_from_slice(line);
        self.lines += 1;
        self.state = Some(state);
        if self.text.len() > writer.longest() {
            let done = writer.pieces(&self.text, self.level, &self.time, out);
            self.text.drain(..done);
        }
        if state == State::Done {
            self.flush(writer, out);
        } else if self.lines >= MAX_LINES {
            self.write(writer, out);
        }
    }

    /// Writes the held record, if any, and a blank line held after it; the state stays.
    fn write(&mut self, writer: &mut Writer, out: &mut Vec<u8>) {
        self.write_record(writer, out);
        if let Blank::Held(time) = self.blank {
            writer.text(b"", None, &time, out);
            self.blank = Blank::Out;
        }
    }

    /// Writes the held record, if any; the state and a blank line held after it stay.
    fn write_record(&mut self, writer: &mut Writer, out: &mut Vec<u8>) {
        if self.lines > 0 {
            writer.text(&self.text, Some(self.level), &self.time, out);
        }
        self.text.clear();
        self.lines = 0;
    }
}

/// The state a trace begins in with `line` (whose level, if it names one, is `named`), if
/// it can begin one or be followed by one (a logger's line naming warn or worse).
fn start_or_logger(line: &[u8], named: Option<Level>) -> Option<State> {
    match start(line) {
        Some(state) => Some(state),
        None if named >= Some(Level::Warn) => Some(State::Logger),
        None => None,
    }
}

/// `at` + `wait`, or `at` should that not be representable (it always is, for a clock that
/// started at boot).
fn after(at: Instant, wait: Duration) -> Instant {
    at.checked_add(wait).unwrap_or(at)
}

#[cfg(test)]
#[path = "../../examples/support/traces.rs"]
mod traces;

#[cfg(test)]
mod tests {
    use super::traces::{TRACES, plain};
    use super::*;
    use crate::logs::record::Stream;
    use crate::logs::test_support::*;
    use crate::logs::{LineEncoder, LogFormat};
    use serde_json::{Map, Value};
    use std::sync::Arc;

    const STREAMS: [Stream; 2] = [Stream::Stdout, Stream::Stderr];

    fn level_of(format: &LogFormat, stream: Stream, first_line: &str) -> &'static str {
        level::sniff(first_line.as_bytes())
            .unwrap_or(format.default_level(stream))
            .as_str()
    }

    /// The records of `out`, partial pieces joined back: (first piece, whole msg).
    fn whole_records(out: &str) -> Vec<(Map<String, Value>, String)> {
        let mut records: Vec<(Map<String, Value>, String)> = Vec::new();
        let mut open = false;
        for record in objects(out) {
            let partial = record.get("partial") == Some(&Value::Bool(true));
            if open {
                let (first, text) = records.last_mut().unwrap();
                assert_eq!(first["level"], record["level"]);
                assert_eq!(first["time"], record["time"]);
                text.push_str(msg(&record));
            } else {
                let text = msg(&record).to_string();
                records.push((record, text));
            }
            open = partial;
        }
        assert!(!open, "the last record is never partial");
        records
    }

    fn msgs(out: &str) -> Vec<String> {
        whole_records(out).into_iter().map(|(_, m)| m).collect()
    }

    /// `input` pushed in pieces cut where `cuts` says, then finished.
    fn encode_cut(
        format: &Arc<LogFormat>,
        stream: Stream,
        input: &[u8],
        mut cut: impl FnMut() -> usize,
    ) -> String {
        let mut encoder = LineEncoder::new(format.clone(), stream);
        let mut out = Vec::new();
        let mut rest = input;
        while !rest.is_empty() {
            let (now, later) = rest.split_at(cut().clamp(1, rest.len()));
            encoder.push(now, TIME, at(0), &mut out);
            rest = later;
        }
        encoder.finish(TIME, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn text(lines: &[&str]) -> String {
        lines.iter().map(|line| format!("{line}\n")).collect()
    }

    #[test]
    fn each_trace_is_one_record_with_its_first_lines_level() {
        let format = joining(16384);
        for stream in STREAMS {
            for (name, lines) in TRACES {
                let input = format!("{}\n{}{}\n", plain(name, 1), text(lines), plain(name, 2));
                let records = whole_records(&encode(&format, stream, input.as_bytes()));
                let got: Vec<&str> = records.iter().map(|(_, m)| m.as_str()).collect();
                let joined = lines.join("\n");
                assert_eq!(
                    got,
                    [plain(name, 1).as_str(), &joined, &plain(name, 2)],
                    "{name}"
                );
                let (record, _) = &records[1];
                assert_eq!(
                    record["level"],
                    level_of(&format, stream, lines[0]),
                    "{name}"
                );
                assert_eq!(record["stream"], stream.as_str());
                assert_eq!(record["time"], std::str::from_utf8(TIME).unwrap());
            }
        }
    }

    #[test]
    fn off_leaves_every_line_its_own_record() {
        for (name, lines) in TRACES {
            let out = encode(&plain_format(), Stream::Stderr, text(lines).as_bytes());
            assert_eq!(msgs(&out), *lines, "{name}");
        }
    }

    fn plain_format() -> Arc<LogFormat> {
        format(16384, &[], Level::Error)
    }

    #[test]
    fn a_logger_line_takes_the_trace_after_it() {
        let format = joining(16384);
        let input = "WARN [main] c.e.Retry - retrying\njava.net.ConnectException: refused\n\tat \
                     c.e.Client.call(Client.java:3)\nINFO [main] c.e.Retry - done\n";
        let records = whole_records(&encode(&format, Stream::Stdout, input.as_bytes()));
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].0["level"], "warn");
        assert!(records[0].1.ends_with("(Client.java:3)"));
        assert_eq!(records[1].0["level"], "info");
        // A logger line followed by a line that starts no trace is its own record.
        let input = "ERROR disk full\nERROR disk still full\nplain\n";
        let got = msgs(&encode(&format, Stream::Stdout, input.as_bytes()));
        assert_eq!(got, ["ERROR disk full", "ERROR disk still full", "plain"]);
    }

    /// Every trace, between plain lines, on one stream, then the same input cut every way:
    /// one byte at a time, and at random.
    #[test]
    fn traces_split_across_reads_give_the_same_records() {
        let format = joining(16384);
        let mut input = String::new();
        let mut expected = Vec::new();
        for (n, (name, lines)) in TRACES.iter().enumerate() {
            input.push_str(&format!("{}\n{}", plain(name, n), text(lines)));
            expected.push(plain(name, n));
            expected.push(lines.join("\n"));
        }
        for stream in STREAMS {
            let whole = encode(&format, stream, input.as_bytes());
            assert_eq!(msgs(&whole), expected);
            assert_eq!(encode_cut(&format, stream, input.as_bytes(), || 1), whole);
            let mut random = XorShift(0x5851_f42d_4c95_7f2d);
            for _ in 0..200 {
                let limit = [3, 40, 700][random.below(3)];
                let out = encode_cut(&format, stream, input.as_bytes(), || {
                    1 + random.below(limit)
                });
                assert_eq!(out, whole);
            }
        }
    }

    #[test]
    fn lines_that_cannot_start_or_continue_a_trace_are_written_in_the_same_push() {
        let format = joining(16384);
        let mut encoder = LineEncoder::new(format, Stream::Stderr);
        for line in [
            "0000001 xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            "INFO request handled",
            "2026/11/26 14:34:17 listening on :8080",
            "{\"level\":\"error\",\"msg\":\"json is its own record\"}",
            "",
            "Errors: 3",
            "ERRORS in the input",
            "an Exception occurred",
            "at home",
            "main.main()",
            "\t/app/main.go:14 +0x1d",
            "    return int(text)",
            "From here on",
            "During handling of the above exception, another exception occurred:",
            "exit status 2",
            "}",
            "Node.js v20.11.1",
            "key: value",
        ] {
            let mut out = Vec::new();
            encoder.push(format!("{line}\n").as_bytes(), TIME, at(0), &mut out);
            assert_eq!(encoder.held_until(), None, "{line:?}");
            assert_eq!(out.iter().filter(|b| **b == b'\n').count(), 1, "{line:?}");
        }
    }

    #[test]
    fn a_possible_start_is_held_until_the_next_line_or_a_flush() {
        let format = joining(16384);
        for line in [
            "Error: lonely",
            "java.lang.IllegalStateException",
            "Exception in thread \"main\" java.lang.Error",
            "Traceback (most recent call last):",
            "panic: boom",
            "fatal error: out of memory",
            "goroutine 7 [running]:",
            "app.rb:3:in 'x': boom (RuntimeError)",
            "AssertionError [ERR_ASSERTION]: false == true",
            "\tat com.example.Orphan.frame(Orphan.java:1)",
            "  File \"/app/x.py\", line 1",
            "\tfrom app.rb:7:in '<main>'",
            "ERROR:root:failed",
            "WARN retrying",
            "[error] upstream timed out",
            "FATAL: out of disk",
        ] {
            let mut encoder = LineEncoder::new(format.clone(), Stream::Stdout);
            let mut out = Vec::new();
            encoder.push(format!("{line}\n").as_bytes(), TIME, at(0), &mut out);
            assert!(out.is_empty(), "{line:?} was not held");
            assert_eq!(encoder.held_until(), Some(at(HOLD_MS)), "{line:?}");
            // A plain line ends it at once: both go out in the same push.
            encoder.push(b"next\n", LATER, at(10), &mut out);
            assert_eq!(encoder.held_until(), None);
            let records = whole_records(std::str::from_utf8(&out).unwrap());
            let got: Vec<&str> = records.iter().map(|(_, m)| m.as_str()).collect();
            assert_eq!(got, [line, "next"]);
            // The held line keeps the time it was read at.
            assert_eq!(records[0].0["time"], std::str::from_utf8(TIME).unwrap());
            // Or the relay's flush, once its wait ran out.
            let mut out = Vec::new();
            encoder.push(format!("{line}\n").as_bytes(), TIME, at(1000), &mut out);
            assert_eq!(encoder.held_until(), Some(at(1000 + HOLD_MS)));
            encoder.flush_held(&mut out);
            assert_eq!(encoder.held_until(), None);
            assert_eq!(msgs(std::str::from_utf8(&out).unwrap()), [line]);
        }
    }

    /// The relay waits HOLD after the last read that added to the record (or brought part of
    /// its next line), and MAX_HOLD after its first line at the most.
    #[test]
    fn the_hold_runs_from_the_last_read_and_is_bounded_from_the_first() {
        let mut encoder = LineEncoder::new(joining(16384), Stream::Stderr);
        let mut out = Vec::new();
        encoder.push(b"TypeError: x\n", TIME, at(0), &mut out);
        assert_eq!(encoder.held_until(), Some(at(HOLD_MS)));
        encoder.push(b"    at f (/a.js:1:1)\n    at g", LATER, at(40), &mut out);
        assert_eq!(encoder.held_until(), Some(at(40 + HOLD_MS)));
        // Part of a line: the pipe is not idle.
        encoder.push(b" (/a.js:2", LATER, at(80), &mut out);
        assert_eq!(encoder.held_until(), Some(at(80 + HOLD_MS)));
        encoder.push(b":2)\n", LATER, at(120), &mut out);
        assert_eq!(encoder.held_until(), Some(at(120 + HOLD_MS)));
        assert!(out.is_empty());
        // Lines keep coming: the wait never ends later than MAX_HOLD after the first line.
        let max = MAX_HOLD.as_millis() as u64;
        for ms in (160..max).step_by(40) {
            encoder.push(b"    at h (/a.js:3:3)\n", LATER, at(ms), &mut out);
            let until = at(ms + HOLD_MS).min(at(max));
            assert_eq!(encoder.held_until(), Some(until), "{ms}");
        }
        assert!(out.is_empty());
        encoder.finish(LATER, &mut out);
        let records = whole_records(std::str::from_utf8(&out).unwrap());
        assert_eq!(records.len(), 1);
        assert!(
            records[0]
                .1
                .starts_with("TypeError: x\n    at f (/a.js:1:1)\n    at g (/a.js:2:2)\n")
        );
        assert_eq!(records[0].0["time"], std::str::from_utf8(TIME).unwrap());
    }

    #[test]
    fn at_the_end_of_input_everything_held_is_written() {
        let format = joining(16384);
        for (name, lines) in TRACES {
            // With and without the last newline.
            for input in [text(lines), lines.join("\n")] {
                let out = encode(&format, Stream::Stderr, input.as_bytes());
                assert_eq!(msgs(&out), [lines.join("\n")], "{name}");
            }
        }
        // A blank line held after a trace is kept too.
        let out = encode(&format, Stream::Stderr, b"panic: x\n\n");
        assert_eq!(msgs(&out), ["panic: x", ""]);
    }

    #[test]
    fn blank_lines_join_only_when_the_trace_goes_on_after_them() {
        let format = joining(16384);
        for (input, expected) in [
            ("panic: x\n\nplain\n", &["panic: x", "", "plain"][..]),
            (
                "panic: x\n\n\ngoroutine 1 [running]:\n",
                &["panic: x", "", "", "goroutine 1 [running]:"],
            ),
            (
                "TypeError: x\n    at f (a.js:1:1)\n\nnext\n",
                &["TypeError: x\n    at f (a.js:1:1)", "", "next"],
            ),
            ("ValueError: x\n\nmore\n", &["ValueError: x", "", "more"]),
            // A Python traceback ends at a blank line that no chaining sentence follows.
            (
                "Traceback (most recent call last):\n  File \"a\", line 1\nKeyError: 1\n\nplain\n",
                &[
                    "Traceback (most recent call last):\n  File \"a\", line 1\nKeyError: 1",
                    "",
                    "plain",
                ],
            ),
            ("\n\nplain\n", &["", "", "plain"]),
        ] {
            let out = encode(&format, Stream::Stdout, input.as_bytes());
            assert_eq!(msgs(&out), expected, "{input:?}");
        }
    }

    #[test]
    fn json_lines_are_never_joined() {
        let format = joining(16384);
        let input = "Error: x\n{\"msg\":\"json\",\"n\":1}\n    at f (a.js:1:1)\n";
        let out = encode(&format, Stream::Stdout, input.as_bytes());
        let records = objects(&out);
        assert_eq!(records.len(), 3);
        assert_eq!(msg(&records[0]), "Error: x");
        assert_eq!(records[1]["n"], 1);
        // An orphan frame: a record of its own.
        assert_eq!(msg(&records[2]), "    at f (a.js:1:1)");
    }

    #[test]
    fn a_line_longer_than_the_limit_is_never_joined() {
        let format = joining(1024);
        let long = format!("\tat {}", "x".repeat(3000));
        let input = format!("Error: x\n{long}\n\tat y\nplain\n");
        let whole = encode(&format, Stream::Stdout, input.as_bytes());
        assert_eq!(msgs(&whole), ["Error: x", long.as_str(), "\tat y", "plain"]);
        assert_eq!(
            encode_cut(&format, Stream::Stdout, input.as_bytes(), || 1),
            whole
        );
    }

    #[test]
    fn a_trace_longer_than_the_limit_goes_out_in_partial_pieces() {
        for max in [1024, 4096] {
            let format = joining(max);
            let mut lines = vec!["java.lang.StackOverflowError".to_string()];
            for n in 0..400 {
                lines.push(format!(
                    "\tat com.example.Deep.recurse(Deep.java:{n}) \"é🦀\\\""
                ));
            }
            let joined = lines.join("\n");
            let input = format!("{joined}\nplain\n");
            let out = encode(&format, Stream::Stderr, input.as_bytes());
            for record in out.lines() {
                assert!(record.len() < max, "{} bytes", record.len() + 1);
            }
            let pieces = out.matches(r#""partial":true"#).count();
            assert!(
                pieces >= joined.len() / max,
                "{pieces} pieces of {}",
                joined.len()
            );
            assert_eq!(msgs(&out), [joined.as_str(), "plain"]);
            // Cut anywhere, the same pieces.
            let mut random = XorShift(0x2545_f491_4f6c_dd1d);
            assert_eq!(
                encode_cut(&format, Stream::Stderr, input.as_bytes(), || 1),
                out
            );
            assert_eq!(
                encode_cut(&format, Stream::Stderr, input.as_bytes(), || random
                    .below(2000)),
                out
            );
        }
    }

    #[test]
    fn endless_continuation_lines_are_cut_and_memory_stays_bounded() {
        let max = 2048;
        let format = joining(max);
        let mut writer = Writer::new(format.clone(), Stream::Stderr);
        let mut joiner = Joiner::new();
        let mut out = Vec::new();
        joiner.line(b"java.lang.Error: deep", TIME, at(0), &mut writer, &mut out);
        let frames = 5 * MAX_LINES;
        for n in 0..frames {
            let frame = format!("\tat com.example.Loop.spin(Loop.java:{n})");
            joiner.line(frame.as_bytes(), TIME, at(0), &mut writer, &mut out);
            assert!(joiner.text.len() <= 2 * max, "{}", joiner.text.len());
            assert!(joiner.lines < MAX_LINES);
        }
        joiner.flush(&mut writer, &mut out);
        let records = msgs(std::str::from_utf8(&out).unwrap());
        assert_eq!(records.len(), (frames + 1).div_ceil(MAX_LINES));
        assert!(records.iter().all(|r| r.lines().count() <= MAX_LINES));
        // Nothing lost, in order.
        let lines: Vec<&str> = records.iter().flat_map(|r| r.lines()).collect();
        assert_eq!(lines.len(), frames + 1);
        assert_eq!(
            lines[frames],
            format!("\tat com.example.Loop.spin(Loop.java:{})", frames - 1)
        );
        assert_eq!(writer.records, records.len());
    }

    #[test]
    fn invalid_utf8_inside_a_trace_becomes_replacement_characters() {
        let format = joining(1024);
        let input: &[u8] = b"Traceback (most recent call last):\n  File \"/app/\xff\xfe.py\", \
                             line 1\n    x = '\xe2\x82\nUnicodeError: \xc3\n";
        let expected = String::from_utf8_lossy(input.strip_suffix(b"\n").unwrap()).into_owned();
        for out in [
            encode(&format, Stream::Stderr, input),
            encode_cut(&format, Stream::Stderr, input, || 1),
        ] {
            assert_eq!(msgs(&out), [expected.as_str()]);
        }
    }

    /// Traces, plain lines and awkward lines at random, on a random stream, cut at random:
    /// the records are the expected groups, and the same however the input was cut.
    #[test]
    fn property_random_traces_and_lines() {
        let mut random = XorShift(0x9e37_79b9_7f4a_7c15);
        for round in 0..300 {
            let max = 1024 + random.below(3072);
            let format = joining(max);
            let stream = STREAMS[round % 2];
            let mut input = String::new();
            let mut expected: Vec<String> = Vec::new();
            for n in 0..1 + random.below(12) {
                if random.below(2) == 0 {
                    let (name, lines) = TRACES[random.below(TRACES.len())];
                    input.push_str(&text(lines));
                    expected.push(lines.join("\n"));
                    // A plain line between traces: a trace's end is not always its last line
                    // (a blank line and a chaining sentence may follow).
                    input.push_str(&format!("{}\n", plain(name, n)));
                    expected.push(plain(name, n));
                } else {
                    for _ in 0..random.below(4) {
                        let line = plain("p", random.below(1000));
                        input.push_str(&format!("{line}\n"));
                        expected.push(line);
                    }
                }
            }
            let whole = encode(&format, stream, input.as_bytes());
            assert_eq!(msgs(&whole), expected, "round {round}");
            for record in whole.lines() {
                assert!(record.len() < max);
            }
            let out = encode_cut(&format, stream, input.as_bytes(), || {
                match random.below(3) {
                    0 => 1 + random.below(5),
                    1 => 1 + random.below(2 * max),
                    _ => 1 + random.below(300),
                }
            });
            assert_eq!(out, whole, "round {round}");
        }
    }

    /// Lines of traces in any order (so traces start, break off and continue anywhere), blank
    /// lines, over-long lines, invalid UTF-8, CRs: every record valid and within the limit,
    /// every line's text back in order, and the same records however the input was cut.
    #[test]
    fn property_shuffled_trace_lines_lose_nothing() {
        let mut random = XorShift(0x1405_7b7e_f767_814f);
        let pool: Vec<&str> = TRACES
            .iter()
            .flat_map(|(_, lines)| lines.iter().copied())
            .collect();
        for round in 0..300 {
            let max = 1024 + random.below(2048);
            let format = joining(max);
            let stream = STREAMS[round % 2];
            let mut lines: Vec<Vec<u8>> = Vec::new();
            for _ in 0..1 + random.below(60) {
                let mut line = match random.below(10) {
                    0 => Vec::new(),
                    1 => format!("\tat x{}", "y".repeat(random.below(2 * max))).into_bytes(),
                    2 => b"ERROR failed \xff\xe2\x82".to_vec(),
                    3 => plain("p", random.below(100)).into_bytes(),
                    _ => pool[random.below(pool.len())].as_bytes().to_vec(),
                };
                if random.below(20) == 0 {
                    line.push(b'\r');
                }
                lines.push(line);
            }
            let mut input = lines.join(&b'\n');
            input.push(b'\n');
            let whole = encode(&format, stream, &input);
            for record in whole.lines() {
                assert!(record.len() < max, "round {round}");
            }
            let text: Vec<String> = msgs(&whole)
                .iter()
                .flat_map(|m| m.split('\n').map(str::to_string).collect::<Vec<_>>())
                .collect();
            let expected: Vec<String> = lines
                .iter()
                .map(|l| String::from_utf8_lossy(l.strip_suffix(b"\r").unwrap_or(l)).into_owned())
                .collect();
            assert_eq!(text, expected, "round {round}");
            let out = encode_cut(&format, stream, &input, || match random.below(3) {
                0 => 1 + random.below(5),
                1 => 1 + random.below(2 * max),
                _ => 1 + random.below(300),
            });
            assert_eq!(out, whole, "round {round}");
        }
    }

    #[test]
    fn rules_for_first_lines() {
        for (line, state) in [
            (
                "Traceback (most recent call last):",
                Some(State::PythonTraceback),
            ),
            ("Traceback (most recent call last): x", None),
            ("panic: x", Some(State::GoPanic)),
            ("panicked", None),
            (
                "goroutine 12 gp=0xc000002380 m=0 mp=0x5a4b20 [running]:",
                Some(State::GoDump),
            ),
            ("goroutine x [running]:", None),
            ("java.lang.Throwable", Some(State::JavaFrames)),
            (
                "kotlin.NotImplementedError: An operation is not implemented.",
                Some(State::JavaFrames),
            ),
            (
                "com.example.Outer$InnerException: x",
                Some(State::JavaFrames),
            ),
            ("Error", Some(State::JavaFrames)),
            ("ValueError: x", Some(State::JavaFrames)),
            ("KeyboardInterrupt", None),
            ("Error! x", None),
            ("1Error: x", None),
            ("my-Error: x", None),
            (
                "/usr/lib/ruby/3.3.0/net/http.rb:1603:in 'Net::HTTP#connect': x",
                Some(State::RubyBacktrace),
            ),
            ("app.rb:3:in", None),
            ("rb:3:in x", Some(State::RubyBacktrace)),
            (":3:in x", None),
            ("app.rb:x:in y", None),
            ("   at X.Y() in /app/P.cs:line 4", Some(State::JavaFrames)),
            (
                "  + Exception Group Traceback (most recent call last):",
                Some(State::PythonGroup),
            ),
            ("  |   File \"x\"", None),
            ("", None),
        ] {
            assert_eq!(start(line.as_bytes()), state, "{line:?}");
        }
    }

    #[test]
    fn rules_for_continuations() {
        use State::*;
        for (state, line, blank, next) in [
            (JavaFrames, "\t... 3 more", false, Some(JavaFrames)),
            (JavaFrames, "... 3 more", false, Some(JavaFrames)),
            (JavaFrames, "\t... more", false, None),
            (JavaFrames, "at x", false, None),
            (
                JavaFrames,
                "--- End of inner exception stack trace ---",
                false,
                Some(JavaFrames),
            ),
            (NodeProperties, "}", false, Some(JavaFrames)),
            (NodeProperties, "x", false, None),
            (PythonTraceback, "NameError", false, Some(PythonRaised)),
            (PythonTraceback, "ERROR:root:x", false, None),
            (PythonRaised, DIRECT_CAUSE_TEXT, true, Some(PythonChained)),
            (PythonRaised, DIRECT_CAUSE_TEXT, false, None),
            (
                PythonChained,
                "Traceback (most recent call last):",
                true,
                Some(PythonTraceback),
            ),
            (
                RubyBacktrace,
                "\t ... 5 levels...",
                false,
                Some(RubyBacktrace),
            ),
            (RubyBacktrace, "from x", false, None),
            (GoPanic, "\tpanic: again", false, Some(GoPanic)),
            (GoPanic, "goroutine 1 [running]:", true, Some(GoDump)),
            (GoDump, "runtime stack:", true, Some(GoDump)),
            (GoDump, "runtime stack:", false, None),
            (
                GoDump,
                "...additional frames elided...",
                false,
                Some(GoDump),
            ),
            (GoDump, "exit status 2", false, Some(Done)),
            (GoDump, "exit status two", false, None),
            (GoDump, "main main()", false, None),
            (Done, "\tanything", false, None),
            (
                Logger,
                "Traceback (most recent call last):",
                false,
                Some(PythonTraceback),
            ),
            (Logger, "plain", false, None),
        ] {
            assert_eq!(
                state.next(line.as_bytes(), blank),
                next,
                "{state:?} {line:?}"
            );
        }
    }

    const HOLD_MS: u64 = HOLD.as_millis() as u64;

    /// A format with joining on and stderr's default level `info` (usher's default), under
    /// which a line with no level of its own is told from a trace's.
    fn joining_info() -> Arc<LogFormat> {
        let format = LogFormat::new(
            crate::logs::LogSchema::Usher,
            16384,
            Vec::new(),
            Level::Info,
        );
        Arc::new(format.with_multiline(true))
    }

    /// The relay over `reads` (each a read at a moment, in ms): before each read, if the
    /// held record's wait ran out first (the pipe was idle until then), the relay's flush;
    /// at the end, the flush of what is still held, then the end of the stream. Returns the
    /// records as (level, msg).
    fn relay(
        format: &Arc<LogFormat>,
        stream: Stream,
        reads: &[(u64, String)],
    ) -> Vec<(String, String)> {
        let mut encoder = LineEncoder::new(format.clone(), stream);
        let mut out = Vec::new();
        for (ms, data) in reads {
            if encoder.held_until().is_some_and(|until| until < at(*ms)) {
                encoder.flush_held(&mut out);
            }
            encoder.push(data.as_bytes(), TIME, at(*ms), &mut out);
        }
        encoder.flush_held(&mut out);
        encoder.finish(TIME, &mut out);
        whole_records(std::str::from_utf8(&out).unwrap())
            .into_iter()
            .map(|(record, msg)| (record["level"].as_str().unwrap().to_string(), msg))
            .collect()
    }

    /// `lines`, one read each, `gap` ms apart, then a plain line one more gap later.
    fn paced(lines: &[String], gap: u64) -> Vec<(u64, String)> {
        let mut reads: Vec<(u64, String)> = lines
            .iter()
            .enumerate()
            .map(|(n, line)| (n as u64 * gap, format!("{line}\n")))
            .collect();
        reads.push((lines.len() as u64 * gap, "done\n".to_string()));
        reads
    }

    fn lines_of(records: &[(String, String)]) -> Vec<String> {
        records
            .iter()
            .flat_map(|(_, msg)| msg.split('\n').map(str::to_string))
            .collect()
    }

    /// The trial's trace: 30 lines of Java, `Caused by:` halfway.
    fn java30() -> Vec<String> {
        super::traces::paced_java(30, 1_764_513_257_123_456)
    }

    /// A trace written a line at a time, with any gap shorter than HOLD: one record, with the
    /// level of its first line, on either stream.
    #[test]
    fn a_trace_written_slowly_is_one_record_while_no_gap_reaches_the_hold() {
        let format = joining_info();
        let trace = java30();
        for stream in STREAMS {
            for gap in [0, 2, 10, 20, 30, 45, HOLD_MS] {
                let records = relay(&format, stream, &paced(&trace, gap));
                let expected = [
                    ("error".to_string(), trace.join("\n")),
                    ("info".to_string(), "done".to_string()),
                ];
                assert_eq!(records, expected, "{gap} ms on {stream:?}");
            }
        }
    }

    /// Gaps longer than HOLD cut the trace; every piece, `Caused by:` too, keeps the level of
    /// the trace's first line, and the lines of a piece stay joined.
    #[test]
    fn the_pieces_of_a_trace_cut_by_idle_gaps_keep_its_level() {
        let format = joining_info();
        let trace = java30();
        for stream in STREAMS {
            // A gap longer than the hold after every line.
            let records = relay(&format, stream, &paced(&trace, HOLD_MS + 1));
            assert_eq!(records.len(), 31, "{stream:?}");
            assert!(records[..30].iter().all(|(level, _)| level == "error"));
            assert_eq!(records[15].1, "Caused by: java.io.IOException: paced cause");
            assert_eq!(lines_of(&records[..30]), trace);
            // Bursts of five lines, 60 ms apart (a logger flushing now and then).
            let mut reads = Vec::new();
            for (n, chunk) in trace.chunks(5).enumerate() {
                reads.push((n as u64 * 60, format!("{}\n", chunk.join("\n"))));
            }
            let records = relay(&format, stream, &reads);
            let expected: Vec<(String, String)> = trace
                .chunks(5)
                .map(|chunk| ("error".to_string(), chunk.join("\n")))
                .collect();
            assert_eq!(records, expected, "{stream:?}");
        }
    }

    /// Lines every 10 ms for 5 s: the record goes out once it has been held MAX_HOLD, and the
    /// trace goes on in records of its own, each held MAX_HOLD at most, with its level.
    #[test]
    fn a_trace_that_keeps_coming_goes_out_every_max_hold() {
        let format = joining_info();
        let trace = super::traces::paced_java(500, 1);
        let records = relay(&format, Stream::Stderr, &paced(&trace, 10));
        let sizes: Vec<usize> = records.iter().map(|(_, m)| m.split('\n').count()).collect();
        // Lines read at 0 to 1990 ms, 2000 to 3990, 4000 to 4990; then `done`.
        assert_eq!(sizes, [200, 200, 100, 1]);
        assert!(records[..3].iter().all(|(level, _)| level == "error"));
        assert_eq!(lines_of(&records[..3]), trace);
        // And when the input is always there (the relay never waits), at the first line read
        // once MAX_HOLD is over.
        let max = MAX_HOLD.as_millis() as u64;
        let mut encoder = LineEncoder::new(format.clone(), Stream::Stderr);
        let mut out = Vec::new();
        encoder.push(b"java.lang.Error: x\n", TIME, at(0), &mut out);
        encoder.push(b"\tat a\n", TIME, at(max - 1), &mut out);
        assert!(out.is_empty());
        encoder.push(b"\tat b\n\tat c\n", LATER, at(max), &mut out);
        assert_eq!(
            msgs(std::str::from_utf8(&out).unwrap()),
            ["java.lang.Error: x\n\tat a"]
        );
        assert_eq!(encoder.held_until(), Some(at(max + HOLD_MS)));
        encoder.finish(LATER, &mut out);
        let records = whole_records(std::str::from_utf8(&out).unwrap());
        assert_eq!(records[1].1, "\tat b\n\tat c");
        assert_eq!(records[1].0["level"], "error");
        // The time a record's first line was read.
        assert_eq!(records[1].0["time"], std::str::from_utf8(LATER).unwrap());
    }

    /// Every way a trace's record goes out before the trace is over (the hold ran out,
    /// MAX_LINES, a line longer than the record limit): the next lines that continue it take
    /// its level, and join each other; a line that does not continue it ends the trace.
    #[test]
    fn lines_after_a_cut_take_the_level_of_the_trace_they_continue() {
        let format = joining_info();
        // After the hold: Java, a logger's line and its trace, Go past its blank line, Python
        // past a blank line and a chaining sentence.
        for (lines, cut_after, expected) in [
            (
                &[
                    "ERROR [main] c.e.App - failed",
                    "java.lang.IllegalStateException: x",
                    "\tat a",
                ][..],
                1,
                &[
                    ("error", "ERROR [main] c.e.App - failed"),
                    ("error", "java.lang.IllegalStateException: x\n\tat a"),
                ][..],
            ),
            (
                &[
                    "WARN retrying",
                    "java.net.ConnectException: refused",
                    "\tat a",
                ],
                1,
                &[
                    ("warn", "WARN retrying"),
                    ("warn", "java.net.ConnectException: refused\n\tat a"),
                ],
            ),
            (
                &["panic: boom", "", "goroutine 1 [running]:", "main.main()"],
                1,
                &[
                    ("fatal", "panic: boom"),
                    ("fatal", "\ngoroutine 1 [running]:\nmain.main()"),
                ],
            ),
            (
                &["panic: boom", "", "goroutine 1 [running]:", "main.main()"],
                2,
                &[
                    ("fatal", "panic: boom"),
                    ("info", ""),
                    ("fatal", "goroutine 1 [running]:\nmain.main()"),
                ],
            ),
            (
                &[
                    "Traceback (most recent call last):",
                    "  File \"a\", line 1",
                    "KeyError: 1",
                    "",
                    DURING_HANDLING_TEXT,
                    "",
                    "Traceback (most recent call last):",
                    "  File \"b\", line 2",
                    "ValueError: x",
                ],
                5,
                &[
                    (
                        "error",
                        "Traceback (most recent call last):\n  File \"a\", line 1\nKeyError: 1\n\nDuring handling of the above exception, another exception occurred:",
                    ),
                    (
                        "error",
                        "\nTraceback (most recent call last):\n  File \"b\", line 2\nValueError: x",
                    ),
                ],
            ),
        ] {
            for stream in STREAMS {
                let first: String = lines[..cut_after]
                    .iter()
                    .map(|l| format!("{l}\n"))
                    .collect();
                let rest: String = lines[cut_after..]
                    .iter()
                    .map(|l| format!("{l}\n"))
                    .collect();
                let reads = [
                    (0, first),
                    (HOLD_MS + 10, rest),
                    (HOLD_MS + 20, "done\n".to_string()),
                ];
                let records = relay(&format, stream, &reads);
                let mut want: Vec<(String, String)> = expected
                    .iter()
                    .map(|(l, m)| (l.to_string(), m.to_string()))
                    .collect();
                want.push(("info".to_string(), "done".to_string()));
                assert_eq!(
                    records, want,
                    "{lines:?} cut after {cut_after} on {stream:?}"
                );
            }
        }
        // After MAX_LINES lines.
        let mut input = String::from("java.lang.Error: deep\n");
        for n in 0..MAX_LINES + 10 {
            input.push_str(&format!("\tat com.example.Loop.spin(Loop.java:{n})\n"));
        }
        let records = relay(&format, Stream::Stderr, &[(0, input)]);
        assert_eq!(records.len(), 2);
        assert!(records.iter().all(|(level, _)| level == "error"));
        // After a frame longer than the record limit, whole or in pieces: the frame's pieces
        // and the frames after it.
        let format = Arc::new(
            LogFormat::new(crate::logs::LogSchema::Usher, 1024, Vec::new(), Level::Info)
                .with_multiline(true),
        );
        let long = format!("\tat {}", "x".repeat(3000));
        let input = format!("java.lang.Error: x\n{long}\n\tat y\n\tat z\ndone\n");
        let whole = encode(&format, Stream::Stderr, input.as_bytes());
        let records = whole_records(&whole);
        let got: Vec<(&str, &str)> = records
            .iter()
            .map(|(r, m)| (r["level"].as_str().unwrap(), m.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("error", "java.lang.Error: x"),
                ("error", long.as_str()),
                ("error", "\tat y\n\tat z"),
                ("info", "done")
            ]
        );
        assert_eq!(
            encode_cut(&format, Stream::Stderr, input.as_bytes(), || 100),
            whole
        );
        // A long first line: the frames after it take its level.
        let input = format!("java.lang.Error: {}\n\tat y\ndone\n", "x".repeat(3000));
        let got: Vec<String> = whole_records(&encode(&format, Stream::Stderr, input.as_bytes()))
            .iter()
            .map(|(r, _)| r["level"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(got, ["error", "error", "info"]);
    }

    /// Once a line that does not continue the trace came, the trace is over: a frame after it
    /// is a record of its own with its own level, as ever.
    #[test]
    fn a_line_that_does_not_continue_the_trace_ends_it() {
        let format = joining_info();
        let reads = [
            (0, "java.lang.Error: x\n".to_string()),
            (HOLD_MS + 10, "plain\n".to_string()),
            (HOLD_MS + 20, "\tat orphan\n".to_string()),
        ];
        let records = relay(&format, Stream::Stderr, &reads);
        let expected = [
            ("error", "java.lang.Error: x"),
            ("info", "plain"),
            ("info", "\tat orphan"),
        ]
        .map(|(l, m)| (l.to_string(), m.to_string()));
        assert_eq!(records, expected);
    }

    const DURING_HANDLING_TEXT: &str =
        "During handling of the above exception, another exception occurred:";

    const DIRECT_CAUSE_TEXT: &str =
        "The above exception was the direct cause of the following exception:";
}
