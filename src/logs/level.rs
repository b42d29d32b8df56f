//! Log levels: the names usher accepts, and the level a plain-text line names itself.

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
    Fatal,
}

/// The longest level name (`critical`).
const LONGEST_NAME: usize = 8;

/// How much leading whitespace `sniff` looks through. Bounded so that the level depends only
/// on a line's first few hundred bytes: an over-long line gets its level before it has ended,
/// and it must be the same level however the line was cut into reads.
pub const MAX_INDENT: usize = 256;

/// The most bytes `sniff` ever looks at (indent, `level="`, name, closing character).
pub const SNIFF_WINDOW: usize = MAX_INDENT + 7 + LONGEST_NAME + 2;

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

    /// A level name as an option value or a JSON line's level/severity: trace, debug, info,
    /// warn, warning, error, fatal, critical (any case).
    pub fn parse(text: &str) -> Option<Level> {
        parse_bytes(text.as_bytes())
    }
}

fn parse_bytes(name: &[u8]) -> Option<Level> {
    match token(name) {
        Some((level, [])) => Some(level),
        _ => None,
    }
}

/// The level a plain-text line names itself: a leading token ERROR, WARN, WARNING, INFO, DEBUG,
/// TRACE, FATAL, CRITICAL in any case, bare, in square brackets, or as `level=error` (also
/// `level="error"`, and `LEVEL=` in any case), followed by a space (or tab), a colon, a closing bracket or the end of the
/// line. Leading whitespace (up to [`MAX_INDENT`] bytes) is skipped. WARNING -> Warn,
/// CRITICAL -> Fatal. `INFORMATION ...` or `ERRORS` do not match: the token must end there.
/// After `[error]` or `level="error"` anything may follow: the bracket or quote ends the token.
pub fn sniff(line: &[u8]) -> Option<Level> {
    let mut rest = line;
    for _ in 0..MAX_INDENT {
        match rest {
            [byte, after @ ..] if byte.is_ascii_whitespace() => rest = after,
            _ => break,
        }
    }
    if rest.first().is_none_or(u8::is_ascii_whitespace) {
        return None; // blank, or indented by more than MAX_INDENT
    }
    if let Some(inner) = rest.strip_prefix(b"[") {
        let (level, after) = token(inner)?;
        return (after.first() == Some(&b']')).then_some(level);
    }
    if let Some(value) = strip_prefix_ignore_case(rest, b"level=") {
        if let Some(quoted) = value.strip_prefix(b"\"") {
            let (level, after) = token(quoted)?;
            return (after.first() == Some(&b'"')).then_some(level);
        }
        let (level, after) = token(value)?;
        return ends_token(after).then_some(level);
    }
    let (level, after) = token(rest)?;
    ends_token(after).then_some(level)
}

/// A level name made of all the letters at the start of `bytes`, and what follows it. Every
/// line is sniffed, so this is one pass and one compare of a lowercased, zero-padded word,
/// not a search through the names.
fn token(bytes: &[u8]) -> Option<(Level, &[u8])> {
    let mut word = [0u8; LONGEST_NAME];
    let mut after = bytes;
    for slot in &mut word {
        match after {
            [byte, rest @ ..] if byte.is_ascii_alphabetic() => {
                *slot = byte | 0x20; // lowercase
                after = rest;
            }
            _ => break,
        }
    }
    if after.first().is_some_and(u8::is_ascii_alphabetic) {
        return None; // longer than any name
    }
    let level = match &word {
        b"trace\0\0\0" => Level::Trace,
        b"debug\0\0\0" => Level::Debug,
        b"info\0\0\0\0" => Level::Info,
        b"warn\0\0\0\0" | b"warning\0" => Level::Warn,
        b"error\0\0\0" => Level::Error,
        b"fatal\0\0\0" | b"critical" => Level::Fatal,
        _ => return None,
    };
    Some((level, after))
}

fn ends_token(after: &[u8]) -> bool {
    matches!(after.first(), None | Some(b' ' | b'\t' | b':' | b']'))
}

fn strip_prefix_ignore_case<'a>(bytes: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let (head, tail) = bytes.split_at_checked(prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then_some(tail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_parse_any_case() {
        for level in [
            Level::Trace,
            Level::Debug,
            Level::Info,
            Level::Warn,
            Level::Error,
            Level::Fatal,
        ] {
            assert_eq!(Level::parse(level.as_str()), Some(level));
            assert_eq!(
                Level::parse(&level.as_str().to_ascii_uppercase()),
                Some(level)
            );
        }
        assert_eq!(Level::parse("WARNING"), Some(Level::Warn));
        assert_eq!(Level::parse("Warning"), Some(Level::Warn));
        assert_eq!(Level::parse("CRITICAL"), Some(Level::Fatal));
        assert_eq!(Level::parse("critical"), Some(Level::Fatal));
        assert_eq!(Level::parse("eRrOr"), Some(Level::Error));
        for other in [
            "",
            "err",
            "crit",
            "information",
            "warn ",
            " warn",
            "notice",
            "errors",
            "fatality",
        ] {
            assert_eq!(Level::parse(other), None, "{other:?}");
        }
        assert!(Level::Trace < Level::Debug && Level::Error < Level::Fatal);
    }

    #[test]
    fn sniffs_every_token_in_every_form() {
        let tokens = [
            ("ERROR", Level::Error),
            ("WARN", Level::Warn),
            ("WARNING", Level::Warn),
            ("INFO", Level::Info),
            ("DEBUG", Level::Debug),
            ("TRACE", Level::Trace),
            ("FATAL", Level::Fatal),
            ("CRITICAL", Level::Fatal),
        ];
        for (token, level) in tokens {
            for name in [
                token.to_string(),
                token.to_ascii_lowercase(),
                capitalise(token),
            ] {
                let forms = [
                    format!("{name} disk full"),
                    format!("{name}: disk full"),
                    format!("{name}:disk full"),
                    format!("{name}] disk full"),
                    format!("{name}\tdisk full"),
                    name.clone(),
                    format!("[{name}] disk full"),
                    format!("[{name}]disk full"),
                    format!("[{name}]"),
                    format!("level={name} msg=x"),
                    format!("LEVEL={name}: x"),
                    format!("level={name}"),
                    format!("level=\"{name}\" msg=x"),
                    format!("level=\"{name}\""),
                    format!("   {name} indented"),
                    format!("\t[{name}] indented"),
                ];
                for line in forms {
                    assert_eq!(sniff(line.as_bytes()), Some(level), "{line:?}");
                }
            }
        }
    }

    #[test]
    fn sniff_rejects_what_is_not_a_level_token() {
        for line in [
            "",
            "   ",
            "INFORMATION about the disk",
            "ERRORS: 3",
            "ERROR1 x",
            "ERROR- x",
            "ERROR, x",
            "ERROR.",
            "WARNINGS",
            "err: disk full",
            "crit: disk full",
            "disk full ERROR",
            "<warn> disk full",
            "(error) x",
            "[error x",
            "[error",
            "[ error ] x",
            "[errors] x",
            "level=errors x",
            "level=\"error x",
            "level=\"error",
            "level= error",
            "level:error",
            "lvl=error",
            "\"error\" x",
            "{\"level\":\"error\"}",
            "GET / 200",
            "INF x",
        ] {
            assert_eq!(sniff(line.as_bytes()), None, "{line:?}");
        }
    }

    #[test]
    fn sniff_skips_a_bounded_indent() {
        let near = format!("{}WARN x", " ".repeat(MAX_INDENT));
        assert_eq!(sniff(near.as_bytes()), Some(Level::Warn));
        let far = format!("{}WARN x", " ".repeat(MAX_INDENT + 1));
        assert_eq!(sniff(far.as_bytes()), None);
        assert_eq!(sniff(b"\r\n\x0c\tERROR"), Some(Level::Error));
    }

    #[test]
    fn sniff_handles_invalid_utf8_around_the_token() {
        assert_eq!(sniff(b"ERROR \xff\xfe"), Some(Level::Error));
        assert_eq!(sniff(b"ERROR\xff"), None);
        assert_eq!(sniff(b"\xffERROR"), None);
    }

    #[test]
    fn sniff_looks_no_further_than_its_window() {
        // What `LineEncoder` relies on: the level of a prefix this long is the line's level.
        let line = format!("{}level=\"critical\"", " ".repeat(MAX_INDENT));
        assert_eq!(line.len(), SNIFF_WINDOW - 1);
        assert_eq!(sniff(line.as_bytes()), Some(Level::Fatal));
        let bare = format!("{}CRITICAL", " ".repeat(MAX_INDENT));
        assert_eq!(sniff(bare.as_bytes()), Some(Level::Fatal));
        assert_eq!(sniff(format!("{bare}S").as_bytes()), None);
    }

    fn capitalise(token: &str) -> String {
        let lower = token.to_ascii_lowercase();
        let mut chars = lower.chars();
        chars
            .next()
            .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
            .unwrap_or_default()
    }
}
