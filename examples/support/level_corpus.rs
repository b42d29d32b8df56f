//! The level corpus (tests/data/log_levels.txt, its format described at its top), read for
//! the `level_corpus` fixture (which writes its lines), the corpus test (which checks the level
//! usher gave each) and the encoder's unit tests.
#![allow(dead_code)]

/// The corpus file, built in.
pub const CORPUS: &str = include_str!("../../tests/data/log_levels.txt");

/// The six levels an entry may expect, as usher names them.
pub const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "fatal"];

/// One line of the corpus.
#[derive(Clone, Debug)]
pub struct Entry {
    pub format: String,
    /// "stdout" or "stderr".
    pub stream: &'static str,
    /// One of [`LEVELS`].
    pub level: &'static str,
    /// The line's bytes, unescaped, without a newline.
    pub line: Vec<u8>,
    /// Where it is in the file (1-based), for messages.
    pub number: usize,
}

/// Every entry of the corpus, in order.
pub fn entries() -> Vec<Entry> {
    match parse(CORPUS) {
        Ok(entries) => entries,
        Err(error) => panic!("tests/data/log_levels.txt: {error}"),
    }
}

/// The entries of a corpus text: `FORMAT STREAM LEVEL | LINE`, `#` comments, blank lines.
pub fn parse(text: &str) -> Result<Vec<Entry>, String> {
    let mut entries = Vec::new();
    for (index, row) in text.lines().enumerate() {
        let number = index + 1;
        if row.trim().is_empty() || row.starts_with('#') {
            continue;
        }
        let (head, line) = row
            .split_once(" | ")
            .ok_or_else(|| format!("line {number}: no \" | \""))?;
        let fields: Vec<&str> = head.split_whitespace().collect();
        let [format, stream, level] = fields[..] else {
            return Err(format!(
                "line {number}: want FORMAT STREAM LEVEL before \" | \""
            ));
        };
        let stream = match stream {
            "stdout" => "stdout",
            "stderr" => "stderr",
            other => return Err(format!("line {number}: unknown stream {other:?}")),
        };
        let level = LEVELS
            .iter()
            .find(|name| **name == level)
            .ok_or_else(|| format!("line {number}: unknown level {level:?}"))?;
        entries.push(Entry {
            format: format.to_string(),
            stream,
            level,
            line: unescape(line).map_err(|e| format!("line {number}: {e}"))?,
            number,
        });
    }
    Ok(entries)
}

/// `\t` a tab, `\e` an ESC, `\\` a backslash; any other backslash is a mistake.
fn unescape(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.bytes();
    while let Some(byte) = bytes.next() {
        if byte != b'\\' {
            out.push(byte);
            continue;
        }
        out.push(match bytes.next() {
            Some(b't') => b'\t',
            Some(b'e') => 0x1b,
            Some(b'\\') => b'\\',
            other => return Err(format!("unknown escape \\{:?}", other.map(char::from))),
        });
    }
    Ok(out)
}

/// The level a record gives its line, as a collector reads it: `level_name` (usher's name for
/// a level that is not a string), else `level`, in lower case, with the synonyms frameworks use
/// for usher's six (`warning`, `critical`, `panic`, `dpanic`). None if it is none of them.
pub fn record_level(record: &serde_json::Map<String, serde_json::Value>) -> Option<&'static str> {
    let value = record
        .get("level_name")
        .or_else(|| record.get("level"))?
        .as_str()?
        .to_ascii_lowercase();
    let name = match value.as_str() {
        "warning" => "warn",
        "critical" | "panic" => "fatal",
        "dpanic" => "error",
        other => other,
    };
    LEVELS.iter().find(|level| **level == name).copied()
}
