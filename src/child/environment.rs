//! The child's environment: usher's own, plus `--env-file` dotenv files, plus `--secret-env`
//! secrets read from `NAME_FILE` files.
//!
//! All of it runs before anything is started and before privileges are dropped, so a root-only
//! secret file is still readable. No error message ever contains a file's content (a value in an
//! env file or a secret): errors name the variable, the path and the line number only.

use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// Why the child's environment cannot be built. One line each, without the option's name (the
/// caller adds it). No variant holds anything read from a file: only paths, line numbers,
/// variable names (from `--secret-env` or the environment's keys) and fixed reasons, so
/// neither `Display` nor `Debug` can show a value or a secret.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error("cannot read {}", shown(path))]
    ReadEnvFile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// `PATH:LINE: what is wrong`, never the line itself.
    #[error("{}:{line}: {problem}", shown(path))]
    Syntax {
        path: PathBuf,
        /// From 1.
        line: usize,
        problem: SyntaxError,
    },
    #[error("{name}_FILE is not set")]
    SecretNotSet { name: String },
    #[error("both {name} and {name}_FILE are set (use one)")]
    SecretSetTwice { name: String },
    #[error("{name}_FILE is empty (expected the path of a file)")]
    SecretPathEmpty { name: String },
    #[error("cannot read {name}_FILE={}", shown(path))]
    ReadSecret {
        name: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{name}_FILE={}: {problem}", shown(path))]
    BadSecret {
        name: String,
        path: PathBuf,
        problem: SecretProblem,
    },
}

/// What is wrong with a line of an env file: fixed texts, so that a value cannot leak.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SyntaxError {
    #[error("expected KEY=VALUE (no '=')")]
    NoEquals,
    #[error("invalid variable name (expected [A-Za-z_][A-Za-z0-9_]*)")]
    InvalidName,
    #[error("unterminated single quote")]
    UnterminatedSingleQuote,
    #[error("unterminated double quote")]
    UnterminatedDoubleQuote,
    #[error("unexpected text after the closing quote")]
    TextAfterQuote,
    #[error("value contains a NUL byte")]
    Nul,
}

/// What is wrong with a secret file that could be read: fixed texts, never its content.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SecretProblem {
    #[error("not a regular file")]
    NotRegularFile,
    #[error("larger than {MAX_SECRET_BYTES} bytes")]
    TooLarge,
    #[error("contains a NUL byte")]
    Nul,
}

/// Which variables `--secret-env` turns from NAME_FILE into NAME.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretNames {
    All,
    Names(Vec<String>),
}

impl SecretNames {
    /// Parses the option's value: `*` or a comma list of variable names (each
    /// [A-Za-z_][A-Za-z0-9_]*); errors are one line without a flag prefix.
    pub fn parse(text: &str) -> Result<SecretNames, String> {
        match text.trim() {
            "*" => return Ok(SecretNames::All),
            "" => return Err("no names (expected * or NAME,NAME...)".to_string()),
            _ => {}
        }
        let mut names: Vec<String> = Vec::new();
        for item in text.split(',') {
            let name = item.trim();
            if name.is_empty() {
                return Err(format!(
                    "\"{text}\" has an empty name (expected * or NAME,NAME...)"
                ));
            }
            if name == "*" {
                return Err("* cannot be combined with names".to_string());
            }
            if !is_valid_name(name.as_bytes()) {
                return Err(format!(
                    "invalid variable name \"{name}\" (expected [A-Za-z_][A-Za-z0-9_]*)"
                ));
            }
            // A repeat would otherwise fail as "NAME_FILE is not set", since the first turn
            // already removed it.
            if !names.iter().any(|seen| seen == name) {
                names.push(name.to_string());
            }
        }
        Ok(SecretNames::Names(names))
    }
}

/// The child's environment: `base` (usher's own, in order), then variables from the env files
/// that `base` does not already set, then secrets applied. Errors as usher prints them (with
/// their sources), without a flag prefix.
#[cfg(test)]
pub fn child_environment(
    base: Vec<(OsString, OsString)>,
    env_files: &[PathBuf],
    secrets: Option<&SecretNames>,
) -> Result<Vec<(OsString, OsString)>, String> {
    let chain = |e: EnvError| crate::startup::chain(&e);
    let mut environment = with_env_files(base, env_files).map_err(chain)?;
    if let Some(secrets) = secrets {
        apply_secrets(&mut environment, secrets).map_err(chain)?;
    }
    Ok(environment)
}

/// A path for an error line: as displayed, with control characters (a newline in a file
/// name) escaped so that the error stays one line.
fn shown(path: &Path) -> String {
    path.display().to_string().escape_debug().to_string()
}

/// `base` (usher's own environment, in order), then the variables from the env files that
/// `base` does not already set. Errors: [`EnvError::ReadEnvFile`], [`EnvError::Syntax`].
pub fn with_env_files(
    base: Vec<(OsString, OsString)>,
    env_files: &[PathBuf],
) -> Result<Vec<(OsString, OsString)>, EnvError> {
    let mut from_files: Vec<(OsString, OsString)> = Vec::new();
    for path in env_files {
        let content = std::fs::read(path).map_err(|source| EnvError::ReadEnvFile {
            path: path.clone(),
            source,
        })?;
        for (key, value) in parse_env_file(&content, path)? {
            // A later definition (later line or later file) wins, as with docker and compose;
            // the variable keeps the place of its first definition.
            match from_files.iter_mut().find(|(existing, _)| *existing == key) {
                Some(entry) => entry.1 = value,
                None => from_files.push((key, value)),
            }
        }
    }
    let mut environment = base;
    for (key, value) in from_files {
        if !environment.iter().any(|(existing, _)| *existing == key) {
            environment.push((key, value));
        }
    }
    Ok(environment)
}

/// `[A-Za-z_][A-Za-z0-9_]*`, the names a shell can export.
fn is_valid_name(name: &[u8]) -> bool {
    match name.split_first() {
        Some((first, rest)) => {
            (first.is_ascii_alphabetic() || *first == b'_')
                && rest.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
        }
        None => false,
    }
}

fn is_blank(byte: u8) -> bool {
    byte == b' ' || byte == b'\t'
}

fn trim_start(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !is_blank(*b))
        .unwrap_or(bytes.len());
    &bytes[start..]
}

fn trim_end(bytes: &[u8]) -> &[u8] {
    let end = bytes
        .iter()
        .rposition(|b| !is_blank(*b))
        .map_or(0, |i| i + 1);
    &bytes[..end]
}

fn trim(bytes: &[u8]) -> &[u8] {
    trim_end(trim_start(bytes))
}

/// The variables of one dotenv file, in file order (repeats included; the caller keeps the
/// last). Errors are `PATH:LINE: why` and never quote the line, which may hold a secret.
pub fn parse_env_file(content: &[u8], path: &Path) -> Result<Vec<(OsString, OsString)>, EnvError> {
    // Editors on Windows may start the file with a UTF-8 byte order mark; it is not part of the
    // first key.
    let content = content.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(content);
    let mut variables = Vec::new();
    for (index, raw_line) in content.split(|b| *b == b'\n').enumerate() {
        let line = raw_line.strip_suffix(b"\r").unwrap_or(raw_line);
        let parsed = parse_env_line(line).map_err(|problem| EnvError::Syntax {
            path: path.to_path_buf(),
            line: index + 1,
            problem,
        })?;
        if let Some((key, value)) = parsed {
            variables.push((OsString::from_vec(key), OsString::from_vec(value)));
        }
    }
    Ok(variables)
}

/// A variable's name and value, as the bytes read from a file.
type RawVariable = (Vec<u8>, Vec<u8>);

/// One line of a dotenv file: `None` for a blank or comment line.
fn parse_env_line(line: &[u8]) -> Result<Option<RawVariable>, SyntaxError> {
    let line = trim_start(line);
    if line.is_empty() || line.starts_with(b"#") {
        return Ok(None);
    }
    let line = strip_export(line);
    let Some(equals) = line.iter().position(|b| *b == b'=') else {
        return Err(SyntaxError::NoEquals);
    };
    let key = trim(&line[..equals]);
    if !is_valid_name(key) {
        return Err(SyntaxError::InvalidName);
    }
    let value = parse_value(&line[equals + 1..])?;
    // The environment is a list of NUL-terminated strings: such a value cannot be passed on.
    if value.contains(&0) {
        return Err(SyntaxError::Nul);
    }
    Ok(Some((key.to_vec(), value)))
}

/// Drops a leading `export ` (as in a file also sourced by a shell), but not from a variable
/// named `export` (`export = 1`).
fn strip_export(line: &[u8]) -> &[u8] {
    if let Some(rest) = line.strip_prefix(b"export")
        && rest.first().is_some_and(|b| is_blank(*b))
    {
        let rest = trim_start(rest);
        if !rest.starts_with(b"=") {
            return rest;
        }
    }
    line
}

/// The value after `=`: single-quoted (literal), double-quoted (with escapes) or unquoted
/// (trimmed, up to an inline ` #` comment).
fn parse_value(raw: &[u8]) -> Result<Vec<u8>, SyntaxError> {
    let text = trim_start(raw);
    let (value, after_quote) = match text.first() {
        Some(b'\'') => {
            let body = &text[1..];
            let Some(close) = body.iter().position(|b| *b == b'\'') else {
                return Err(SyntaxError::UnterminatedSingleQuote);
            };
            (body[..close].to_vec(), &body[close + 1..])
        }
        Some(b'"') => parse_double_quoted(&text[1..])?,
        _ => return Ok(trim(strip_inline_comment(raw)).to_vec()),
    };
    if !trim(strip_inline_comment(after_quote)).is_empty() {
        return Err(SyntaxError::TextAfterQuote);
    }
    Ok(value)
}

/// Cuts a text at its first `#` that follows a space or tab: `a#b` is a value, `a #b` is `a`
/// and a comment.
fn strip_inline_comment(text: &[u8]) -> &[u8] {
    let comment = (0..text.len()).find(|&i| text[i] == b'#' && i > 0 && is_blank(text[i - 1]));
    match comment {
        Some(start) => &text[..start],
        None => text,
    }
}

/// The body of a double-quoted value (after the opening quote): the unescaped value and what
/// follows the closing quote.
fn parse_double_quoted(body: &[u8]) -> Result<(Vec<u8>, &[u8]), SyntaxError> {
    let mut value = Vec::with_capacity(body.len());
    let mut index = 0;
    while let Some(&byte) = body.get(index) {
        match byte {
            b'"' => return Ok((value, &body[index + 1..])),
            b'\\' => {
                let escaped = match body.get(index + 1) {
                    Some(b'n') => Some(b'\n'),
                    Some(b't') => Some(b'\t'),
                    Some(b'r') => Some(b'\r'),
                    Some(&other @ (b'"' | b'\\' | b'$')) => Some(other),
                    _ => None,
                };
                match escaped {
                    Some(unescaped) => {
                        value.push(unescaped);
                        index += 2;
                    }
                    // Any other sequence is kept as written; the next byte is read on its own
                    // (so a `\` before the closing quote does not hide it).
                    None => {
                        value.push(b'\\');
                        index += 1;
                    }
                }
            }
            _ => {
                value.push(byte);
                index += 1;
            }
        }
    }
    Err(SyntaxError::UnterminatedDoubleQuote)
}

/// Replaces each selected `NAME_FILE` by `NAME` holding the file's content, in NAME_FILE's place
/// in the order (so the environment keeps its order and has no duplicate). Errors name the
/// variable and the file, never the content.
pub fn apply_secrets(
    environment: &mut Vec<(OsString, OsString)>,
    secrets: &SecretNames,
) -> Result<(), EnvError> {
    let names: Vec<String> = match secrets {
        SecretNames::Names(names) => names.clone(),
        SecretNames::All => {
            let mut names: Vec<String> = Vec::new();
            for (key, _) in environment.iter() {
                let Some(prefix) = key.as_bytes().strip_suffix(b"_FILE") else {
                    continue;
                };
                // A valid name is ASCII, so the conversion is exact; a repeated NAME_FILE
                // (possible in a raw environment) is handled once.
                let name = String::from_utf8_lossy(prefix).into_owned();
                if is_valid_name(prefix) && !names.contains(&name) {
                    names.push(name);
                }
            }
            names
        }
    };
    for name in names {
        let file_variable = format!("{name}_FILE");
        let Some(position) = environment
            .iter()
            .position(|(key, _)| *key == *file_variable)
        else {
            return Err(EnvError::SecretNotSet { name });
        };
        if environment.iter().any(|(key, _)| *key == *name) {
            return Err(EnvError::SecretSetTwice { name });
        }
        let path = PathBuf::from(&environment[position].1);
        if path.as_os_str().is_empty() {
            return Err(EnvError::SecretPathEmpty { name });
        }
        let secret = match read_secret(&path) {
            Ok(secret) => secret,
            Err(ReadSecretError::Io(source)) => {
                return Err(EnvError::ReadSecret { name, path, source });
            }
            Err(ReadSecretError::Bad(problem)) => {
                return Err(EnvError::BadSecret {
                    name,
                    path,
                    problem,
                });
            }
        };
        environment[position] = (OsString::from(name), OsString::from_vec(secret));
        // getenv sees only the first of repeated names; none of them may reach the child.
        environment.retain(|(key, _)| *key != *file_variable);
    }
    Ok(())
}

/// The largest secret usher reads (1 MiB: certificates and keys fit, a wrong path to a log
/// file does not).
const MAX_SECRET_BYTES: u64 = 1 << 20;

/// Why `read_secret` failed, before the caller adds the variable and the path.
enum ReadSecretError {
    Io(io::Error),
    Bad(SecretProblem),
}

impl From<io::Error> for ReadSecretError {
    fn from(error: io::Error) -> Self {
        ReadSecretError::Io(error)
    }
}

/// A secret file's content without its trailing newlines (`\n` and `\r\n`), which editors and
/// `echo` add but are not part of the secret. The error never contains the content.
fn read_secret(path: &Path) -> Result<Vec<u8>, ReadSecretError> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    // A FIFO would block usher's start and /dev/zero would fill its memory: only regular
    // files of a sensible size are secrets.
    if !file.metadata()?.is_file() {
        return Err(ReadSecretError::Bad(SecretProblem::NotRegularFile));
    }
    let mut content = Vec::new();
    let limit = MAX_SECRET_BYTES + 1;
    file.take(limit).read_to_end(&mut content)?;
    if content.len() as u64 > MAX_SECRET_BYTES {
        return Err(ReadSecretError::Bad(SecretProblem::TooLarge));
    }
    while content.last() == Some(&b'\n') {
        content.pop();
        if content.last() == Some(&b'\r') {
            content.pop();
        }
    }
    if content.contains(&0) {
        return Err(ReadSecretError::Bad(SecretProblem::Nul));
    }
    Ok(content)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A real file in the temp directory, removed when dropped.
    struct TempFile {
        path: PathBuf,
    }

    impl TempFile {
        fn new(content: &[u8]) -> TempFile {
            static COUNTER: AtomicUsize = AtomicUsize::new(0);
            let unique = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = std::env::temp_dir().join(format!(
                "usher-environment-test-{}-{unique}",
                std::process::id()
            ));
            std::fs::write(&path, content).unwrap();
            TempFile { path }
        }

        fn path_text(&self) -> String {
            self.path.display().to_string()
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.path);
        }
    }

    /// A path that does not exist (a removed temp file).
    fn missing_path() -> PathBuf {
        let file = TempFile::new(b"");
        file.path.clone()
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect()
    }

    /// The variables one env file adds to an empty base.
    fn from_file(content: &str) -> Result<Vec<(OsString, OsString)>, String> {
        let file = TempFile::new(content.as_bytes());
        child_environment(Vec::new(), std::slice::from_ref(&file.path), None)
    }

    /// The error for one env file, with its path replaced by `PATH`.
    fn file_error(content: &str) -> String {
        let file = TempFile::new(content.as_bytes());
        let error =
            child_environment(Vec::new(), std::slice::from_ref(&file.path), None).unwrap_err();
        error.replace(&file.path_text(), "PATH")
    }

    fn with_secrets(
        base: Vec<(OsString, OsString)>,
        names: &str,
    ) -> Result<Vec<(OsString, OsString)>, String> {
        let names = SecretNames::parse(names).unwrap();
        child_environment(base, &[], Some(&names))
    }

    #[test]
    fn skips_comments_and_blank_lines_and_strips_export() {
        let content = "# a comment\n\n   \n  # indented comment\nA=1\nexport B=2\nexport\tC=3\n";
        assert_eq!(
            from_file(content),
            Ok(env(&[("A", "1"), ("B", "2"), ("C", "3")]))
        );
    }

    #[test]
    fn export_is_a_prefix_only_before_a_name() {
        let content = "export=1\nexport = 2\nexportD=3\nexport   E = 4\n";
        // `export=1` and `export = 2` both set the variable `export`; the second wins.
        assert_eq!(
            from_file(content),
            Ok(env(&[("export", "2"), ("exportD", "3"), ("E", "4")]))
        );
        assert_eq!(
            file_error("export FOO\n"),
            "PATH:1: expected KEY=VALUE (no '=')"
        );
    }

    #[test]
    fn tolerates_spaces_around_key_and_equals() {
        assert_eq!(
            from_file("  KEY  =  some value  \nK2\t=\tv\t\n"),
            Ok(env(&[("KEY", "some value"), ("K2", "v")]))
        );
    }

    #[test]
    fn single_quotes_are_literal() {
        assert_eq!(
            from_file(r#"A='x \n $HOME # not a comment "q"'"#),
            Ok(env(&[("A", r#"x \n $HOME # not a comment "q""#)]))
        );
        assert_eq!(
            from_file("A= '  padded  '  \n"),
            Ok(env(&[("A", "  padded  ")]))
        );
    }

    #[test]
    fn double_quotes_understand_escapes() {
        let content = r#"A="l1\nl2\tt\rr\"q\\b\$HOME"
B="\q \x kept # not a comment = \""
C="trailing\\"
"#;
        assert_eq!(
            from_file(content),
            Ok(env(&[
                ("A", "l1\nl2\tt\rr\"q\\b$HOME"),
                ("B", r#"\q \x kept # not a comment = ""#),
                ("C", "trailing\\"),
            ]))
        );
    }

    #[test]
    fn other_backslash_sequences_are_kept() {
        assert_eq!(from_file("A=\"a\\q\\ b\"\n"), Ok(env(&[("A", "a\\q\\ b")])));
        // `\"` is always an escaped quote, so this one is never closed.
        assert_eq!(
            file_error("A=\"a\\\"\n"),
            "PATH:1: unterminated double quote"
        );
    }

    #[test]
    fn values_may_contain_equals() {
        assert_eq!(
            from_file("URL=postgres://u@h/db?sslmode=require&x==y\nQ=\"a=b\"\n"),
            Ok(env(&[
                ("URL", "postgres://u@h/db?sslmode=require&x==y"),
                ("Q", "a=b")
            ]))
        );
    }

    #[test]
    fn inline_comments_need_whitespace_before_the_hash() {
        let content =
            "A=value # comment\nB=val#ue\nC=value\t#tab comment\nD=\"q\" # c\nE='q'\t# c\nF=#x\n";
        assert_eq!(
            from_file(content),
            Ok(env(&[
                ("A", "value"),
                ("B", "val#ue"),
                ("C", "value"),
                ("D", "q"),
                ("E", "q"),
                ("F", "#x"),
            ]))
        );
    }

    #[test]
    fn empty_values_are_allowed() {
        assert_eq!(
            from_file("A=\nB=\"\"\nC=''\nD=   \nE= # only a comment\n"),
            Ok(env(&[
                ("A", ""),
                ("B", ""),
                ("C", ""),
                ("D", ""),
                ("E", "")
            ]))
        );
    }

    #[test]
    fn crlf_line_endings_and_a_byte_order_mark() {
        assert_eq!(
            from_file("\u{feff}A=1\r\n# c\r\n\r\nB=\"two\"\r\nC='3' # c\r\n"),
            Ok(env(&[("A", "1"), ("B", "two"), ("C", "3")]))
        );
        // The line number still counts CRLF lines.
        assert_eq!(
            file_error("A=1\r\nB=\"x\r\n"),
            "PATH:2: unterminated double quote"
        );
    }

    #[test]
    fn non_utf8_values_are_kept_as_bytes() {
        let file = TempFile::new(b"A=caf\xe9\nB=\"\xff\xfe\"\n");
        let result = child_environment(Vec::new(), std::slice::from_ref(&file.path), None);
        assert_eq!(
            result,
            Ok(vec![
                (OsString::from("A"), OsString::from_vec(b"caf\xe9".to_vec())),
                (
                    OsString::from("B"),
                    OsString::from_vec(b"\xff\xfe".to_vec())
                ),
            ])
        );
    }

    #[test]
    fn malformed_lines_name_the_path_and_line() {
        let cases = [
            ("# ok\nNOEQUALS\n", "PATH:2: expected KEY=VALUE (no '=')"),
            (
                "=value\n",
                "PATH:1: invalid variable name (expected [A-Za-z_][A-Za-z0-9_]*)",
            ),
            (
                "A=1\n1A=x\n",
                "PATH:2: invalid variable name (expected [A-Za-z_][A-Za-z0-9_]*)",
            ),
            (
                "MY KEY=x\n",
                "PATH:1: invalid variable name (expected [A-Za-z_][A-Za-z0-9_]*)",
            ),
            (
                "A-B=x\n",
                "PATH:1: invalid variable name (expected [A-Za-z_][A-Za-z0-9_]*)",
            ),
            ("\n\nA='open\n", "PATH:3: unterminated single quote"),
            ("A=\"open\n", "PATH:1: unterminated double quote"),
            (
                "A='x' junk\n",
                "PATH:1: unexpected text after the closing quote",
            ),
            (
                "A=\"x\"junk\n",
                "PATH:1: unexpected text after the closing quote",
            ),
            (
                "A=\"x\"#c\n",
                "PATH:1: unexpected text after the closing quote",
            ),
            ("A=\"x\0y\"\n", "PATH:1: value contains a NUL byte"),
        ];
        for (content, expected) in cases {
            assert_eq!(file_error(content), expected, "for {content:?}");
        }
    }

    #[test]
    fn base_environment_wins_over_files() {
        let file = TempFile::new(b"A=from-file\nB=from-file\n");
        let base = env(&[("A", "from-base"), ("PATH", "/bin")]);
        assert_eq!(
            child_environment(base, std::slice::from_ref(&file.path), None),
            Ok(env(&[
                ("A", "from-base"),
                ("PATH", "/bin"),
                ("B", "from-file")
            ]))
        );
    }

    #[test]
    fn later_file_overrides_earlier_and_later_line_overrides_earlier() {
        let first = TempFile::new(b"A=first\nB=first\nA=first-again\n");
        let second = TempFile::new(b"C=second\nB=second\n");
        let paths = [first.path.clone(), second.path.clone()];
        assert_eq!(
            child_environment(env(&[("Z", "base")]), &paths, None),
            Ok(env(&[
                ("Z", "base"),
                ("A", "first-again"),
                ("B", "second"),
                ("C", "second")
            ]))
        );
    }

    #[test]
    fn missing_env_file_is_an_error_naming_the_path() {
        let path = missing_path();
        assert_eq!(
            child_environment(Vec::new(), std::slice::from_ref(&path), None),
            Err(format!(
                "cannot read {}: No such file or directory (os error 2)",
                path.display()
            ))
        );
        // The io::Error is kept as the source, not flattened into the message.
        let error = with_env_files(Vec::new(), std::slice::from_ref(&path)).unwrap_err();
        let source = error.source().and_then(|s| s.downcast_ref::<io::Error>());
        assert_eq!(source.map(io::Error::kind), Some(io::ErrorKind::NotFound));
    }

    #[test]
    fn a_syntax_error_names_file_and_line_but_never_the_content() {
        const SECRET: &str = "sk_live_51HxQ-TotallySecretToken";
        let cases = [
            (
                format!("OK=1\nDB_PASSWORD {SECRET}\n"),
                2,
                SyntaxError::NoEquals,
            ),
            (format!("{SECRET}=x\n"), 1, SyntaxError::InvalidName),
            (
                format!("A=1\n\nK='{SECRET}\n"),
                3,
                SyntaxError::UnterminatedSingleQuote,
            ),
            (
                format!("K=\"{SECRET}\"{SECRET}\n"),
                1,
                SyntaxError::TextAfterQuote,
            ),
        ];
        for (content, line, problem) in cases {
            let file = TempFile::new(content.as_bytes());
            let error = with_env_files(Vec::new(), std::slice::from_ref(&file.path)).unwrap_err();
            let EnvError::Syntax {
                line: found_line,
                problem: found_problem,
                ..
            } = &error
            else {
                panic!("not a syntax error: {error:?}");
            };
            assert_eq!((*found_line, *found_problem), (line, problem));
            let message = crate::startup::chain(&error);
            assert_eq!(message, format!("{}:{line}: {problem}", file.path_text()));
            let debug = format!("{error:?}");
            for shown in [&message, &debug] {
                assert!(!shown.contains("TotallySecret"), "leaks content: {shown}");
                assert!(!shown.contains("sk_live"), "leaks content: {shown}");
            }
        }
    }

    #[test]
    fn parses_secret_names() {
        assert_eq!(SecretNames::parse("*"), Ok(SecretNames::All));
        assert_eq!(
            SecretNames::parse("DB_PASSWORD"),
            Ok(SecretNames::Names(vec!["DB_PASSWORD".to_string()]))
        );
        assert_eq!(
            SecretNames::parse("A, _b ,C9,A"),
            Ok(SecretNames::Names(vec![
                "A".to_string(),
                "_b".to_string(),
                "C9".to_string()
            ]))
        );
        assert_eq!(SecretNames::parse(" * "), Ok(SecretNames::All));
        assert_eq!(
            SecretNames::parse(" "),
            Err("no names (expected * or NAME,NAME...)".to_string())
        );
        assert_eq!(
            SecretNames::parse("A,"),
            Err("\"A,\" has an empty name (expected * or NAME,NAME...)".to_string())
        );
        assert_eq!(
            SecretNames::parse("A,,B"),
            Err("\"A,,B\" has an empty name (expected * or NAME,NAME...)".to_string())
        );
        assert_eq!(
            SecretNames::parse("A,*"),
            Err("* cannot be combined with names".to_string())
        );
        assert_eq!(
            SecretNames::parse("A,9B"),
            Err("invalid variable name \"9B\" (expected [A-Za-z_][A-Za-z0-9_]*)".to_string())
        );
        assert_eq!(
            SecretNames::parse("A-B"),
            Err("invalid variable name \"A-B\" (expected [A-Za-z_][A-Za-z0-9_]*)".to_string())
        );
    }

    #[test]
    fn named_secret_replaces_its_file_variable_in_place() {
        let secret = TempFile::new(b"s3cret\n");
        let other = TempFile::new(b"unused\n");
        let base = env(&[
            ("A", "1"),
            ("DB_PASSWORD_FILE", &secret.path_text()),
            ("B", "2"),
            ("OTHER_FILE", &other.path_text()),
        ]);
        assert_eq!(
            with_secrets(base, "DB_PASSWORD"),
            Ok(env(&[
                ("A", "1"),
                ("DB_PASSWORD", "s3cret"),
                ("B", "2"),
                ("OTHER_FILE", &other.path_text()),
            ]))
        );
    }

    #[test]
    fn star_applies_every_name_file_variable() {
        let one = TempFile::new(b"one");
        let two = TempFile::new(b"two\r\n");
        let base = env(&[
            ("ONE_FILE", &one.path_text()),
            ("_FILE", "/not/a/secret"),
            ("KEEP", "k"),
            ("9X_FILE", "/not/a/secret/either"),
            ("TWO_FILE", &two.path_text()),
            ("PROFILE", "not a _FILE suffix"),
        ]);
        assert_eq!(
            with_secrets(base, "*"),
            Ok(env(&[
                ("ONE", "one"),
                ("_FILE", "/not/a/secret"),
                ("KEEP", "k"),
                ("9X_FILE", "/not/a/secret/either"),
                ("TWO", "two"),
                ("PROFILE", "not a _FILE suffix"),
            ]))
        );
    }

    #[test]
    fn star_sees_variables_from_env_files() {
        let secret = TempFile::new(b"from-secret\n");
        let env_file = TempFile::new(format!("TOKEN_FILE={}\n", secret.path_text()).as_bytes());
        let names = SecretNames::All;
        assert_eq!(
            child_environment(
                env(&[("A", "1")]),
                std::slice::from_ref(&env_file.path),
                Some(&names)
            ),
            Ok(env(&[("A", "1"), ("TOKEN", "from-secret")]))
        );
    }

    #[test]
    fn trailing_newlines_are_removed_and_inner_ones_kept() {
        let cases: [(&[u8], &str); 6] = [
            (b"plain", "plain"),
            (b"a\n\n\n", "a"),
            (b"a\r\n\r\n", "a"),
            (b"a\n\r\n\n", "a"),
            (b"line1\nline2\r\nline3\n", "line1\nline2\r\nline3"),
            (b"ends-with-cr\r", "ends-with-cr\r"),
        ];
        for (content, expected) in cases {
            let secret = TempFile::new(content);
            let base = env(&[("S_FILE", &secret.path_text())]);
            assert_eq!(
                with_secrets(base, "S"),
                Ok(env(&[("S", expected)])),
                "for {content:?}"
            );
        }
        let empty = TempFile::new(b"\n");
        let base = env(&[("S_FILE", &empty.path_text())]);
        assert_eq!(with_secrets(base, "S"), Ok(env(&[("S", "")])));
    }

    #[test]
    fn secret_errors() {
        let secret = TempFile::new(b"value\n");
        let path = secret.path_text();
        assert_eq!(
            with_secrets(env(&[("A", "1")]), "DB_PASSWORD"),
            Err("DB_PASSWORD_FILE is not set".to_string())
        );
        assert_eq!(
            with_secrets(env(&[("S", "x"), ("S_FILE", &path)]), "S"),
            Err("both S and S_FILE are set (use one)".to_string())
        );
        assert_eq!(
            with_secrets(env(&[("S_FILE", &path), ("S", "x")]), "*"),
            Err("both S and S_FILE are set (use one)".to_string())
        );
        assert_eq!(
            with_secrets(env(&[("S_FILE", "")]), "S"),
            Err("S_FILE is empty (expected the path of a file)".to_string())
        );
        let missing = missing_path();
        assert_eq!(
            with_secrets(env(&[("S_FILE", &missing.display().to_string())]), "S"),
            Err(format!(
                "cannot read S_FILE={}: No such file or directory (os error 2)",
                missing.display()
            ))
        );
        let directory = std::env::temp_dir();
        assert_eq!(
            with_secrets(env(&[("S_FILE", &directory.display().to_string())]), "S"),
            Err(format!(
                "S_FILE={}: not a regular file",
                directory.display()
            ))
        );
        // A FIFO would block, /dev/zero would never end: neither is read.
        assert_eq!(
            with_secrets(env(&[("S_FILE", "/dev/zero")]), "S"),
            Err("S_FILE=/dev/zero: not a regular file".to_string())
        );
        let big = TempFile::new(&vec![b'x'; (MAX_SECRET_BYTES + 1) as usize]);
        let path = big.path.display().to_string();
        assert_eq!(
            with_secrets(env(&[("S_FILE", &path)]), "S"),
            Err(format!("S_FILE={path}: larger than 1048576 bytes"))
        );
        // A newline in a path is escaped: the error stays one line.
        let err = with_secrets(env(&[("S_FILE", "/no/such\nfile")]), "S").unwrap_err();
        assert_eq!(err.lines().count(), 1, "{err}");
        let with_nul = TempFile::new(b"ab\0cd\n");
        assert_eq!(
            with_secrets(env(&[("S_FILE", &with_nul.path_text())]), "S"),
            Err(format!(
                "S_FILE={}: contains a NUL byte",
                with_nul.path_text()
            ))
        );
    }

    #[test]
    fn no_error_message_contains_file_content() {
        const CONTENT: &str = "Hunter2-DistinctiveContent";
        let mut errors = Vec::new();

        for line in [
            format!("{CONTENT}\n"),
            format!("{CONTENT} KEY={CONTENT}\n"),
            format!("KEY='{CONTENT}\n"),
            format!("KEY=\"{CONTENT}\n"),
            format!("KEY='{CONTENT}' {CONTENT}\n"),
            format!("KEY=\"{CONTENT}\"{CONTENT}\n"),
            format!("KEY=\"{CONTENT}\0\"\n"),
        ] {
            let file = TempFile::new(line.as_bytes());
            errors.push(child_environment(
                Vec::new(),
                std::slice::from_ref(&file.path),
                None,
            ));
        }

        let with_nul = TempFile::new(format!("{CONTENT}\0{CONTENT}\n").as_bytes());
        errors.push(with_secrets(env(&[("S_FILE", &with_nul.path_text())]), "S"));
        let secret = TempFile::new(CONTENT.as_bytes());
        errors.push(with_secrets(
            env(&[("S", "set"), ("S_FILE", &secret.path_text())]),
            "S",
        ));
        errors.push(with_secrets(
            env(&[("S_FILE", &secret.path_text()), ("S", "x")]),
            "*",
        ));

        assert_eq!(errors.len(), 10);
        for error in errors {
            let message = error.unwrap_err();
            assert!(!message.contains(CONTENT), "leaks content: {message}");
            assert!(!message.contains("Hunter2"), "leaks content: {message}");
            assert!(!message.contains('\n'), "not one line: {message:?}");
        }
    }

    #[test]
    fn secret_errors_hold_no_content_in_debug_either() {
        const CONTENT: &str = "Hunter2-DistinctiveContent";
        let with_nul = TempFile::new(format!("{CONTENT}\0{CONTENT}\n").as_bytes());
        let too_big = TempFile::new(CONTENT.repeat(50_000).as_bytes());
        let secret = TempFile::new(CONTENT.as_bytes());
        for (environment, names) in [
            (env(&[("S_FILE", &with_nul.path_text())]), "S"),
            (env(&[("S_FILE", &too_big.path_text())]), "S"),
            (env(&[("S", "x"), ("S_FILE", &secret.path_text())]), "*"),
        ] {
            let mut environment = environment;
            let names = SecretNames::parse(names).unwrap();
            let error = apply_secrets(&mut environment, &names).unwrap_err();
            let debug = format!("{error:?}");
            assert!(!debug.contains("Hunter2"), "leaks content: {debug}");
        }
    }
}
