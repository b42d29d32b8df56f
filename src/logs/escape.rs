//! JSON string escaping of a line's bytes: quotes, backslashes, control characters and DEL
//! escaped, invalid UTF-8 as U+FFFD; and, for the pieces of an over-long line, as much as fits
//! in a given room without cutting a character or an escape.
//!
//! Every byte of every line passes here, so runs of bytes needing no escape are found sixteen
//! at a time (SSE2 on x86-64, eight at a time elsewhere) and copied whole, and a line that is
//! all ASCII skips UTF-8 validation.

/// Written for each maximal invalid UTF-8 subsequence.
const REPLACEMENT: &[u8] = "\u{FFFD}".as_bytes();
/// The most output one unit of a msg can take (`\u001f`): every record has room for one.
pub(super) const LONGEST_UNIT: usize = 6;

/// Writes `input` as the inside of a JSON string: invalid UTF-8 as U+FFFD (one per maximal
/// invalid subsequence, as `String::from_utf8_lossy` does), the rest escaped as needed.
pub(super) fn escape(input: &[u8], out: &mut Vec<u8>) {
    // ASCII needs no UTF-8 validation: runs are copied up to the next byte needing an escape
    // or the first non-ASCII byte, from which the rest is validated.
    let mut rest = input;
    while let Some((run, byte, after)) = split_at(rest, Stop::EscapeOrNonAscii) {
        out.extend_from_slice(run);
        if !byte.is_ascii() {
            let at = rest.len() - after.len() - 1;
            escape_unicode(rest.get(at..).unwrap_or_default(), out);
            return;
        }
        write_escape(byte, out);
        rest = after;
    }
    out.extend_from_slice(rest);
}

/// [`escape`] for text that may hold multi-byte characters and invalid sequences.
fn escape_unicode(input: &[u8], out: &mut Vec<u8>) {
    match std::str::from_utf8(input) {
        Ok(_) => escape_valid(input, out),
        Err(e) => {
            // The valid start in one go. Should the index not split `input` (it always does),
            // `utf8_chunks` takes all of it, which writes the same.
            let (valid, rest) = input
                .split_at_checked(e.valid_up_to())
                .unwrap_or((&[], input));
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
pub(super) fn escape_limited(input: &[u8], limit: usize, out: &mut Vec<u8>) -> usize {
    // Each input byte takes at least one output byte, so nothing past `limit` bytes can be
    // written; the next few bytes are looked at so a character there is decoded whole. A
    // shorter input is looked at whole.
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
pub(super) fn escape_valid(mut input: &[u8], out: &mut Vec<u8>) {
    while let Some((run, byte, after)) = split_at(input, Stop::Escape) {
        out.extend_from_slice(run);
        write_escape(byte, out);
        input = after;
    }
    out.extend_from_slice(input);
}

/// Which bytes [`find`] stops at.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// Bytes needing an escape.
    Escape,
    /// Those and bytes of multi-byte characters (0x80 and above).
    EscapeOrNonAscii,
}

/// `bytes` cut at its first byte `stop` names: the run before it, the byte, the rest. None if
/// there is no such byte (or, which cannot happen, `find` points outside `bytes`: then they
/// are written as they are rather than dropped).
fn split_at(bytes: &[u8], stop: Stop) -> Option<(&[u8], u8, &[u8])> {
    let (run, rest) = bytes.split_at_checked(find(bytes, stop)?)?;
    let (&byte, after) = rest.split_first()?;
    Some((run, byte, after))
}

/// `escape_valid` within `room` bytes (reduced by what it writes), never cutting a character
/// or an escape. Returns how many bytes of `input` it wrote out: whatever it stops short of is
/// left for the caller's next record.
fn escape_valid_limited(input: &[u8], room: &mut usize, out: &mut Vec<u8>) -> usize {
    let mut rest = input;
    loop {
        let run = find_escape(rest).unwrap_or(rest.len());
        // All of the run if it fits (the byte after it is then an ASCII escape, or the end: no
        // back-off), else back off to the start of the character that does not fit whole.
        let mut cut = run.min(*room);
        while cut > 0 && rest.get(cut).is_some_and(|&b| b & 0xC0 == 0x80) {
            cut -= 1;
        }
        let Some((fits, after)) = rest.split_at_checked(cut) else {
            break; // cannot happen: cut <= rest.len()
        };
        out.extend_from_slice(fits);
        *room -= cut;
        rest = after;
        if cut < run {
            break;
        }
        let Some((&byte, after)) = rest.split_first() else {
            break;
        };
        if escaped_len(byte) > *room {
            break;
        }
        write_escape(byte, out);
        *room -= escaped_len(byte);
        rest = after;
    }
    // `rest` is always a tail of `input`.
    input.len() - rest.len()
}

fn needs_escape(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\' || byte == 0x7f
}

fn stops(byte: u8, stop: Stop) -> bool {
    needs_escape(byte) || (stop == Stop::EscapeOrNonAscii && !byte.is_ascii())
}

/// Where the first byte needing an escape is.
fn find_escape(bytes: &[u8]) -> Option<usize> {
    find(bytes, Stop::Escape)
}

/// Where the first byte `stop` names is, eight bytes at a time (SWAR). In each u64, a lane's
/// high bit is set by `(lane - n) & !lane` exactly when lane < n, for the first such lane and
/// maybe lanes above it (a borrow), never below: so the lowest set bit is the first lane below
/// 0x20 or equal to `"`, `\` or DEL (those three by testing `lane ^ c` < 1). As `c` < 0x80,
/// `!(lane ^ c)` has the high bit of `!lane`, so one `& !w` serves all four. A non-ASCII lane
/// is its own high bit.
#[cfg(not(target_arch = "x86_64"))]
fn find(bytes: &[u8], stop: Stop) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let (words, tail) = bytes.as_chunks::<8>();
    for (index, word) in words.iter().enumerate() {
        let w = u64::from_le_bytes(*word);
        let below = w.wrapping_sub(ONES * 0x20)
            | (w ^ (ONES * u64::from(b'"'))).wrapping_sub(ONES)
            | (w ^ (ONES * u64::from(b'\\'))).wrapping_sub(ONES)
            | (w ^ (ONES * 0x7f)).wrapping_sub(ONES);
        let mut found = below & !w & HIGHS;
        if stop == Stop::EscapeOrNonAscii {
            found |= w & HIGHS;
        }
        if found != 0 {
            return Some(index * 8 + (found.trailing_zeros() / 8) as usize);
        }
    }
    tail.iter()
        .position(|&b| stops(b, stop))
        .map(|lane| words.len() * 8 + lane)
}

/// Where the first byte `stop` names is, sixteen bytes at a time with SSE2
/// ([`crate::sys::json_escape_mask`]); log lines are mostly runs without escapes, so this is
/// most of the encoder's work per byte.
#[cfg(target_arch = "x86_64")]
fn find(bytes: &[u8], stop: Stop) -> Option<usize> {
    let (blocks, tail) = bytes.as_chunks::<16>();
    for (index, block) in blocks.iter().enumerate() {
        let (escapes, non_ascii) = crate::sys::json_escape_mask(block);
        let mask = match stop {
            Stop::Escape => escapes,
            Stop::EscapeOrNonAscii => escapes | non_ascii,
        };
        if mask != 0 {
            return Some(index * 16 + mask.trailing_zeros() as usize);
        }
    }
    tail.iter()
        .position(|&b| stops(b, stop))
        .map(|lane| blocks.len() * 16 + lane)
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

#[cfg(test)]
mod tests {
    //! Mostly through whole records, as a reader of the logs sees the escaping.
    use super::*;
    use crate::logs::test_support::*;
    use crate::logs::{Level, Stream};

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
    fn find_agrees_with_a_byte_scan() {
        let mut random = XorShift(7);
        for _ in 0..40_000 {
            // Up to five 16-byte blocks and a tail, the odd byte anywhere.
            let len = random.below(90);
            let bytes: Vec<u8> = (0..len)
                .map(|_| match random.below(16) {
                    0 => random.below(256) as u8,
                    _ => b'a' + random.below(26) as u8,
                })
                .collect();
            for stop in [Stop::Escape, Stop::EscapeOrNonAscii] {
                let expected = bytes.iter().position(|&b| stops(b, stop));
                assert_eq!(find(&bytes, stop), expected, "{bytes:?}");
            }
            assert_eq!(
                find_escape(&bytes),
                bytes.iter().position(|&b| needs_escape(b))
            );
        }
    }

    #[test]
    fn escape_writes_what_serde_json_writes_for_the_lossy_text() {
        let mut random = XorShift(11);
        for _ in 0..20_000 {
            let len = random.below(90);
            let bytes: Vec<u8> = (0..len)
                .map(|_| match random.below(8) {
                    0 => random.below(256) as u8,
                    1 => b"\xc3\xa9\xe2\x82\xac\"\\\x7f"[random.below(8)],
                    _ => b'a' + random.below(26) as u8,
                })
                .collect();
            let mut out = b"\"".to_vec();
            escape(&bytes, &mut out);
            out.push(b'"');
            let parsed: String = serde_json::from_slice(&out).unwrap();
            assert_eq!(parsed, String::from_utf8_lossy(&bytes), "{bytes:?}");
        }
    }
}
