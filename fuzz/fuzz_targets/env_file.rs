//! `--env-file` (child::environment::parse_env_file) on any file content. Properties: every
//! name read is a valid variable name and no value holds a NUL; an error is one line that names
//! the file and a line number within it and quotes nothing of the file (it may hold secrets);
//! and what was read, written back as `NAME="escaped value"` lines (or `export NAME='value'`
//! where a value allows it), reads back the same.
#![no_main]

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use usher::fuzzing::{EnvError, parse_env_file};

const PATH: &str = "/run/app.env";

fn valid_name(name: &[u8]) -> bool {
    match name.split_first() {
        Some((first, rest)) => {
            (first.is_ascii_alphabetic() || *first == b'_')
                && rest.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
        }
        None => false,
    }
}

/// The pairs as a file: double-quoted with escapes, or single-quoted (literal) every other
/// line when the value has no quote or newline.
fn write_back(pairs: &[(OsString, OsString)]) -> Vec<u8> {
    let mut file = Vec::new();
    for (n, (name, value)) in pairs.iter().enumerate() {
        let value = value.as_bytes();
        if n % 2 == 1 && !value.contains(&b'\'') && !value.contains(&b'\n') {
            file.extend_from_slice(b"export ");
            file.extend_from_slice(name.as_bytes());
            file.extend_from_slice(b"='");
            file.extend_from_slice(value);
            file.extend_from_slice(b"'\n");
            continue;
        }
        file.extend_from_slice(name.as_bytes());
        file.extend_from_slice(b"=\"");
        for byte in value {
            match byte {
                b'\n' => file.extend_from_slice(b"\\n"),
                b'\r' => file.extend_from_slice(b"\\r"),
                b'"' | b'\\' | b'$' => file.extend_from_slice(&[b'\\', *byte]),
                _ => file.push(*byte),
            }
        }
        file.extend_from_slice(b"\"\n");
    }
    file
}

fuzz_target!(|content: &[u8]| {
    match parse_env_file(content, Path::new(PATH)) {
        Ok(pairs) => {
            for (name, value) in &pairs {
                assert!(valid_name(name.as_bytes()), "invalid name {name:?}");
                assert!(
                    !value.as_bytes().contains(&0),
                    "NUL in the value of {name:?}"
                );
            }
            let file = write_back(&pairs);
            let again = parse_env_file(&file, Path::new(PATH))
                .unwrap_or_else(|e| panic!("written back, it does not parse: {e}: {file:?}"));
            assert_eq!(
                again,
                pairs,
                "written back: {:?}",
                String::from_utf8_lossy(&file)
            );
        }
        Err(EnvError::Syntax { line, .. }) => {
            let message = parse_env_file(content, Path::new(PATH))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            let lines = content.split(|b| *b == b'\n').count();
            assert!((1..=lines).contains(&line), "line {line} of {lines}");
            let prefix = format!("{PATH}:{line}: ");
            let problem = message
                .strip_prefix(&prefix)
                .unwrap_or_else(|| panic!("error does not name the file and line: {message}"));
            // A fixed text, never a piece of the file.
            let fixed = [
                "expected KEY=VALUE (no '=')",
                "invalid variable name (expected [A-Za-z_][A-Za-z0-9_]*)",
                "unterminated single quote",
                "unterminated double quote",
                "unexpected text after the closing quote",
                "value contains a NUL byte",
            ];
            assert!(
                fixed.contains(&problem),
                "error quotes the file: {message:?}"
            );
        }
        Err(other) => panic!("parsing read a file? {other}"),
    }
});
