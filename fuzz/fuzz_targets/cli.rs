//! The command line and the environment (cli::parse): any argv, any `USHER_*`, `TINI_*` and
//! `DUMB_INIT_*` variables. Properties: it never panics; a run keeps the command's argv exactly
//! (the words after the options, never re-split); an error is one line without control
//! characters that names a flag the user typed or a variable that is set; and neither an error
//! nor anything else echoes the app's own variables or the command's arguments (which may hold
//! secrets).
//! Input: a flags byte (low 4 bits: how many NUL-separated fields are argv; 0x10: add a command
//! with a secret argument), then argv fields, then `NAME=VALUE` environment fields.
#![no_main]

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use libfuzzer_sys::fuzz_target;
use usher::cli::{Invocation, parse};
use usher_fuzz::Input;

/// A value of the app's own (not usher's) and an argument of the command: never shown.
const SECRET_ENV: &str = "Zq7-env-secret-Zq7";
const SECRET_ARG: &str = "Zq7-arg-secret-Zq7";

/// Messages that name no flag or variable, as there is none to name.
const NAMELESS: [&str; 1] = ["no command given (usage: usher [OPTIONS] [--] COMMAND [ARG...])"];

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let flags = input.byte();
    let mut args: Vec<OsString> = Vec::new();
    for _ in 0..flags & 15 {
        if input.is_empty() {
            break;
        }
        args.push(OsString::from_vec(input.field(0).to_vec()));
    }
    let mut env: Vec<(OsString, OsString)> = Vec::new();
    while !input.is_empty() {
        let field = input.field(0);
        let (name, value) = match field.iter().position(|b| *b == b'=') {
            Some(at) => (&field[..at], &field[at + 1..]),
            None => (field, &b""[..]),
        };
        env.push((
            OsString::from_vec(name.to_vec()),
            OsString::from_vec(value.to_vec()),
        ));
    }
    env.push(("DB_PASSWORD".into(), SECRET_ENV.into()));
    let with_command = flags & 0x10 != 0;
    let command_start = args.len() + 1;
    if with_command {
        args.extend(["--", "app", SECRET_ARG, "--grace", "x\ny"].map(OsString::from));
    }
    let secrets_given = contains(data, SECRET_ENV) || contains(data, SECRET_ARG);
    let lookup = |name: &str| {
        env.iter()
            .rev()
            .find(|(key, _)| key.as_bytes() == name.as_bytes())
            .map(|(_, value)| value.clone())
    };
    match parse(args.clone(), &lookup) {
        Ok(Invocation::Run(config)) => {
            if with_command && config.command.len() >= 5 {
                let tail = &config.command[config.command.len() - 4..];
                assert_eq!(tail, &args[command_start..], "the command's argv changed");
            }
            assert!(!config.command.is_empty());
            // The command is the argv's tail, word for word.
            assert!(
                args.ends_with(&config.command),
                "command {:?} of {args:?}",
                config.command
            );
        }
        Ok(Invocation::Help(text)) => {
            assert!(!text.contains(SECRET_ENV) && !text.contains(SECRET_ARG));
        }
        Ok(Invocation::Probe(_) | Invocation::Version | Invocation::License) => {}
        Err(error) => {
            let message = error.to_string();
            assert!(
                !message.chars().any(char::is_control),
                "error with control characters: {message:?}"
            );
            // After `probe` the words are the probe's own, not a command's.
            let probe = args.first().is_some_and(|first| first == "probe");
            if !secrets_given {
                assert!(
                    !message.contains(SECRET_ENV) && (probe || !message.contains(SECRET_ARG)),
                    "error shows a secret: {message:?}"
                );
            }
            // What the user wrote: each flag (up to a '='), each short flag of a cluster, each
            // variable that is set.
            let mut names: Vec<String> = Vec::new();
            for arg in &args {
                let arg = arg.to_string_lossy();
                if let Some(long) = arg.strip_prefix("--") {
                    names.push(format!("--{}", long.split('=').next().unwrap_or_default()));
                } else if let Some(shorts) = arg.strip_prefix('-') {
                    names.extend(shorts.chars().map(|c| format!("-{c}")));
                } else if args.first().is_some_and(|first| first == "probe") {
                    names.push(arg.into_owned());
                }
            }
            names.extend(
                env.iter()
                    .map(|(name, _)| name.to_string_lossy().into_owned()),
            );
            // As an error shows them: control characters escaped.
            let shown = |name: &String| -> String {
                name.chars()
                    .map(|c| match c.is_control() {
                        true => c.escape_default().to_string(),
                        false => c.to_string(),
                    })
                    .collect()
            };
            let named = names
                .iter()
                .any(|name| !name.is_empty() && message.contains(&shown(name)))
                || NAMELESS.contains(&message.as_str());
            assert!(
                named,
                "error names no flag or variable given: {message:?} (args {args:?})"
            );
        }
    }
});
