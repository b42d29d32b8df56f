//! `--help` and `usher probe --help`, made from the option table so they list exactly what the
//! parser accepts.

use std::fmt::Write;

use super::options::{self, Opt, Section};

/// The text's width in columns.
const WIDTH: usize = 100;
/// Where the variable's column starts, and where the help text starts.
const ENV_COLUMN: usize = 26;
const HELP_COLUMN: usize = 48;

/// `-r, --rewrite FROM:TO`
fn flags(opt: &Opt) -> String {
    let mut text = String::new();
    if let Some(short) = opt.short {
        let _ = write!(text, "-{short}");
        if opt.long.is_some() {
            text.push_str(", ");
        }
    }
    if let Some(long) = opt.long {
        let _ = write!(text, "--{long}");
    }
    if let Some(value) = opt.value {
        let _ = write!(text, " {value}");
    }
    text
}

/// Appends one option: flags, variable, then the help (with its default) wrapped to `WIDTH`.
fn entry(out: &mut String, opt: &Opt) {
    let mut prefix = format!("  {}", flags(opt));
    if let Some(env) = opt.env {
        pad(&mut prefix, ENV_COLUMN);
        prefix.push_str(env);
    }
    let mut help = opt.help.to_string();
    if let Some(default) = opt.default {
        let _ = write!(help, " [{default}]");
    }
    let mut lines = wrap(&help, WIDTH - HELP_COLUMN).into_iter();
    if prefix.chars().count() + 2 > HELP_COLUMN {
        let _ = writeln!(out, "{prefix}");
    } else if let Some(first) = lines.next() {
        pad(&mut prefix, HELP_COLUMN);
        let _ = writeln!(out, "{prefix}{first}");
    }
    for line in lines {
        let _ = writeln!(out, "{}{line}", " ".repeat(HELP_COLUMN));
    }
}

/// Splits `text` at spaces into lines of at most `width` characters (a longer word stands alone).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    lines.push(line);
    lines
}

/// Pads `line` with spaces to `column`, or adds two spaces when it is already past it.
fn pad(line: &mut String, column: usize) {
    let len = line.chars().count();
    line.push_str(&" ".repeat(column.saturating_sub(len).max(2)));
}

fn section(out: &mut String, title: &str, table: &[&Opt], which: Section) {
    let _ = writeln!(out, "\n{title}");
    for opt in table.iter().filter(|opt| opt.section == which) {
        entry(out, opt);
    }
}

/// `usher --help`.
pub fn usher() -> String {
    let mut out = String::from(
        "usher: a tiny PID 1 for containers\n\n\
         Usage:\n  \
           usher [OPTIONS] [--] COMMAND [ARG...]\n  \
           usher probe [--timeout DURATION] [http://HOST:PORT/PATH | tcp://HOST:PORT]\n  \
           usher --version | --help | probe --help\n",
    );
    section(
        &mut out,
        "Options (each also read from the variable shown; a flag wins over its variable):",
        options::ALL,
        Section::Main,
    );
    section(
        &mut out,
        "Privileges and environment:",
        options::ALL,
        Section::Privileges,
    );
    section(
        &mut out,
        "Accepted for migration from tini (dumb-init's -c and -r are above):",
        options::ALL,
        Section::Migration,
    );
    out.push_str(concat!(
        "\nDurations: whole numbers, 250ms, 10s, 2m, 1h; a bare number means seconds; at most 24h.\n",
        "Signals: TERM, SIGTERM or 15. Switches given as variables: 1/0, true/false, yes/no, on/off.\n",
        "Options end at the first word that is not one, or at --.\n",
        "Also read: TINI_VERBOSITY, TINI_SUBREAPER, TINI_KILL_PROCESS_GROUP, DUMB_INIT_SETSID\n",
        "(below USHER_* and flags); an unknown USHER_* variable is a warning.\n",
        "Exit status: the child's; 128+N if it was killed by signal N; 2 usage error;\n",
        "126 command not executable; 127 command not found.\n",
    ));
    out
}

/// `usher probe --help`.
pub fn probe() -> String {
    let mut out = String::from(
        "usher probe: the HEALTHCHECK client for images without curl\n\n\
         Usage:\n  \
           usher probe [--timeout DURATION] [TARGET]\n\n\
         TARGET is http://HOST:PORT/PATH or tcp://HOST:PORT, HOST an IP address or localhost\n\
         (no DNS). Without TARGET: usher's own /health, at the port USHER_HEALTH_ADDR names\n\
         (http://127.0.0.1:8558/health by default; with USHER_HEALTH_ADDR=off, a usage error).\n",
    );
    section(&mut out, "Options:", options::PROBE, Section::Main);
    out.push_str(
        "\nExit status: 0 on a 200-399 answer (1xx interim answers are skipped) or an accepted\n\
         connection; 1 otherwise, with one line on stderr saying why; 2 on a usage error.\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_option_is_in_the_help_once() {
        let help = usher();
        for opt in options::ALL {
            let shown = flags(opt);
            assert_eq!(
                help.matches(&format!("  {shown} ")).count()
                    + help.matches(&format!("  {shown}\n")).count(),
                1,
                "{shown}\n{help}"
            );
            if let Some(env) = opt.env {
                assert_eq!(help.matches(env).count(), 1, "{env}");
            }
            if let Some(default) = opt.default {
                assert!(help.contains(&format!("[{default}]")), "{default}");
            }
        }
        for line in help.lines() {
            assert!(line.chars().count() <= WIDTH, "too wide: {line:?}");
        }
        let probe = probe();
        assert!(
            probe.contains("--timeout DURATION") && probe.contains("[2s]"),
            "{probe}"
        );
    }

    #[test]
    fn switches_have_no_value_in_the_help() {
        let help = usher();
        for opt in options::ALL
            .iter()
            .filter(|o| o.kind == options::Kind::Switch)
        {
            assert!(opt.value.is_none());
            assert!(help.contains(&flags(opt)));
        }
    }
}
