//! Command line and `USHER_*` environment -> a validated [`Config`].
//!
//! Every error is found here, before anything is started, and is one line naming the flag or
//! variable at fault. A flag always wins over its variable.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::time::Duration;

use lexopt::prelude::*;

use crate::child::environment::SecretNames;
use crate::child::privileges::CapSet;
use crate::health::readiness;
use crate::logs::{self, Level};
use crate::supervise::signals::{Rewrites, Signo};
use std::net::SocketAddr;
use std::path::PathBuf;

/// What usher was asked to do.
#[derive(Debug)]
pub enum Invocation {
    Run(Box<Config>),
    /// `usher probe`: the HEALTHCHECK client.
    Probe(crate::probe::Probe),
    Help,
    Version,
    License,
}

/// The validated configuration of a supervised run.
#[derive(Debug)]
pub struct Config {
    /// The command and its arguments, exactly as given (never joined and re-split).
    pub command: Vec<OsString>,
    pub grace: Duration,
    pub drain: Duration,
    pub rewrites: Rewrites,
    pub single_child: bool,
    pub remap_exit: ExitRemap,
    /// tini's `-p`: the signal usher receives (and so forwards) when its parent dies.
    pub parent_death_signal: Option<Signo>,
    pub verbosity: u8,
    /// tini's `-w`: warn when a process other than the main child is reaped.
    pub warn_on_reap: bool,
    /// `--health-addr`: None when `off`.
    pub health_addr: Option<SocketAddr>,
    pub ready_when: readiness::Source,
    pub log_format: LogMode,
    /// `--log-field K=V`: static fields added to every record.
    pub log_fields: Vec<(String, String)>,
    pub log_max_record: usize,
    pub stderr_level: Level,
    /// `--user`, resolved against the image's /etc files when the child is prepared.
    pub user: Option<String>,
    pub cap_keep: Option<CapSet>,
    pub allow_new_privs: bool,
    pub env_files: Vec<PathBuf>,
    pub secret_env: Option<SecretNames>,
}

/// `--log-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogMode {
    /// One JSON record per line of the child's output.
    Json,
    /// The child inherits usher's stdio; nothing is wrapped.
    Raw,
    /// JSON unless usher's stdout is a terminal (a person is reading).
    Auto,
}

/// Docker and containerd split lines at 16 KiB; no record may be shorter than this much.
const MIN_LOG_RECORD: usize = 1024;
/// An unfinished line is held up to this size: the bound on the relay's memory.
const MAX_LOG_RECORD: usize = 1 << 20;

/// The length of `text` as a JSON string, quotes included.
fn json_len(text: &str) -> usize {
    serde_json::to_string(text).map_or(text.len() * 6 + 2, |quoted| quoted.len())
}

/// `K=V` for `--log-field`.
fn parse_log_field(text: &str) -> Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("\"{text}\" is not KEY=VALUE (e.g. service=api)"))?;
    if !logs::encode::valid_field_key(key) {
        return Err(format!(
            "\"{key}\" is not a valid field name ([A-Za-z_][A-Za-z0-9_.-]*, and not one of \
             time, level, stream, msg, partial, logger)"
        ));
    }
    Ok((key.to_string(), value.to_string()))
}

/// `--remap-exit`: child exit codes reported as 0.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExitRemap(Vec<u8>);

impl ExitRemap {
    pub fn apply(&self, code: u8) -> u8 {
        if self.0.contains(&code) { 0 } else { code }
    }
}

/// A usage or configuration error: one line, exit status 2.
#[derive(Debug, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<lexopt::Error> for UsageError {
    fn from(error: lexopt::Error) -> Self {
        UsageError(error.to_string())
    }
}

const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

/// Parses `250ms`, `10s`, `2m`, `1h`; a bare number means seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    let invalid = || format!("invalid duration \"{text}\" (expected e.g. 250ms, 10s, 2m)");
    let number: u64 = number.parse().map_err(|_| invalid())?;
    let millis_per_unit = match unit {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(invalid()),
    };
    let duration = number
        .checked_mul(millis_per_unit)
        .map(Duration::from_millis)
        .filter(|d| *d <= MAX_DURATION)
        .ok_or_else(|| format!("duration \"{text}\" out of range (at most 24h)"))?;
    Ok(duration)
}

fn parse_exit_code(text: &str) -> Result<u8, String> {
    text.parse::<u8>()
        .map_err(|_| format!("exit code \"{text}\" is not a number from 0 to 255"))
}

fn parse_bool(text: &str) -> Result<bool, String> {
    match text.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "" | "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(format!("\"{text}\" is not a boolean (use 1/0, true/false)")),
    }
}

/// A setting as given (flag or environment), before validation.
struct Raw {
    value: String,
    /// The flag as typed (`-r` or `--rewrite`) or the variable, to name it in an error.
    source: String,
    from_env: bool,
}

impl Raw {
    fn source(&self) -> &str {
        &self.source
    }

    fn parse<T>(&self, mut parse: impl FnMut(&str) -> Result<T, String>) -> Result<T, UsageError> {
        parse(&self.value).map_err(|why| UsageError(format!("{}: {why}", self.source())))
    }
}

/// One option of the table in the design contract: its flag and its variable.
struct Spec {
    flag: &'static str,
    env: &'static str,
}

const USER: Spec = Spec {
    flag: "--user",
    env: "USHER_USER",
};
const CAP_KEEP: Spec = Spec {
    flag: "--cap-keep",
    env: "USHER_CAP_KEEP",
};
const ALLOW_NEW_PRIVS: Spec = Spec {
    flag: "--allow-new-privs",
    env: "USHER_ALLOW_NEW_PRIVS",
};
const GRACE: Spec = Spec {
    flag: "--grace",
    env: "USHER_GRACE",
};
const DRAIN: Spec = Spec {
    flag: "--drain",
    env: "USHER_DRAIN",
};
const REWRITE: Spec = Spec {
    flag: "--rewrite",
    env: "USHER_REWRITE",
};
const SINGLE_CHILD: Spec = Spec {
    flag: "--single-child",
    env: "USHER_SINGLE_CHILD",
};
const REMAP_EXIT: Spec = Spec {
    flag: "--remap-exit",
    env: "USHER_REMAP_EXIT",
};
const HEALTH_ADDR: Spec = Spec {
    flag: "--health-addr",
    env: "USHER_HEALTH_ADDR",
};
const READY_WHEN: Spec = Spec {
    flag: "--ready-when",
    env: "USHER_READY_WHEN",
};
const LOG_FORMAT: Spec = Spec {
    flag: "--log-format",
    env: "USHER_LOG_FORMAT",
};
const LOG_FIELD: Spec = Spec {
    flag: "--log-field",
    env: "USHER_LOG_FIELDS",
};
const LOG_MAX_RECORD: Spec = Spec {
    flag: "--log-max-record",
    env: "USHER_LOG_MAX_RECORD",
};
const STDERR_LEVEL: Spec = Spec {
    flag: "--stderr-level",
    env: "USHER_STDERR_LEVEL",
};
const ENV_FILE: Spec = Spec {
    flag: "--env-file",
    env: "USHER_ENV_FILE",
};
const SECRET_ENV: Spec = Spec {
    flag: "--secret-env",
    env: "USHER_SECRET_ENV",
};
const VERBOSE: Spec = Spec {
    flag: "--verbose",
    env: "USHER_VERBOSE",
};

/// Collects settings: flag values replace the environment's for the same option.
struct Settings<'e> {
    env: &'e dyn Fn(&str) -> Option<OsString>,
    given: Vec<(&'static str, Vec<Raw>)>,
}

impl<'e> Settings<'e> {
    fn set_flag(&mut self, spec: &Spec, typed: String, value: String, repeatable: bool) {
        let raw = Raw {
            value,
            source: typed,
            from_env: false,
        };
        match self.given.iter_mut().find(|(flag, _)| *flag == spec.flag) {
            Some((_, values)) if repeatable => values.push(raw),
            Some((_, values)) => *values = vec![raw],
            None => self.given.push((spec.flag, vec![raw])),
        }
    }

    /// The flag's values, or else the variable's (each split on commas when `list`).
    fn take(&mut self, spec: &Spec, list: bool) -> Result<Vec<Raw>, UsageError> {
        if let Some(index) = self.given.iter().position(|(flag, _)| *flag == spec.flag) {
            let given = self.given.swap_remove(index).1;
            if !list {
                return Ok(given);
            }
            let split = |raw: Raw| -> Vec<Raw> {
                let items = raw
                    .value
                    .split(',')
                    .map(str::trim)
                    .filter(|v| !v.is_empty());
                items
                    .map(|value| Raw {
                        value: value.to_string(),
                        source: raw.source.clone(),
                        from_env: false,
                    })
                    .collect()
            };
            return Ok(given.into_iter().flat_map(split).collect());
        }
        let Some(value) = (self.env)(spec.env) else {
            return Ok(Vec::new());
        };
        let value = value
            .into_string()
            .map_err(|_| UsageError(format!("{}: not valid UTF-8", spec.env)))?;
        let raw = |value: &str| Raw {
            value: value.to_string(),
            source: spec.env.to_string(),
            from_env: true,
        };
        Ok(if list {
            value
                .split(',')
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(raw)
                .collect()
        } else {
            vec![raw(&value)]
        })
    }

    /// Like `take` for a list option whose flag values may themselves contain commas
    /// (`--log-field note=a,b`): only the variable is a comma list.
    fn take_env_list(&mut self, spec: &Spec) -> Result<Vec<Raw>, UsageError> {
        let given = self.given.iter().any(|(flag, _)| *flag == spec.flag);
        self.take(spec, !given)
    }

    fn take_one(&mut self, spec: &Spec) -> Result<Option<Raw>, UsageError> {
        Ok(self.take(spec, false)?.pop())
    }

    fn take_bool(&mut self, spec: &Spec) -> Result<bool, UsageError> {
        match self.take_one(spec)? {
            Some(raw) if raw.from_env => raw.parse(parse_bool),
            Some(_) => Ok(true),
            None => Ok(false),
        }
    }
}

/// The option as the user typed it, to name it in an error.
fn typed_name(arg: &lexopt::Arg) -> String {
    match arg {
        Short(c) => format!("-{c}"),
        Long(name) => format!("--{name}"),
        Value(_) => String::new(),
    }
}

fn string_value(parser: &mut lexopt::Parser, flag: &str) -> Result<String, UsageError> {
    parser
        .value()?
        .into_string()
        .map_err(|_| UsageError(format!("{flag}: value is not valid UTF-8")))
}

/// Parses usher's arguments (without the program name) and environment.
pub fn parse(
    args: Vec<OsString>,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<Invocation, UsageError> {
    if args.first().map(OsString::as_os_str) == Some(OsStr::new("probe")) {
        let probe = crate::probe::parse(args.into_iter().skip(1).collect(), env)?;
        return Ok(Invocation::Probe(probe));
    }
    let mut settings = Settings {
        env,
        given: Vec::new(),
    };
    let mut command = Vec::new();
    let mut verbosity: Option<u8> = None;
    let mut parent_death_signal = None;
    let mut warn_on_reap = false;
    let mut parser = lexopt::Parser::from_args(args);
    while let Some(arg) = parser.next()? {
        let (spec, repeatable) = match arg {
            Short('h') | Long("help") => return Ok(Invocation::Help),
            Short('V') | Long("version") => return Ok(Invocation::Version),
            Short('l') | Long("license") => return Ok(Invocation::License),
            // tini: -s (subreaper) and -g (signal the group) are what usher always does.
            Short('s') | Short('g') => continue,
            Short('v') | Long("verbose") => {
                verbosity = Some(verbosity.unwrap_or(0).saturating_add(1));
                continue;
            }
            Short('w') => {
                warn_on_reap = true;
                continue;
            }
            Short('p') => {
                let value = string_value(&mut parser, "-p")?;
                let signal =
                    Signo::parse(&value).map_err(|why| UsageError(format!("-p: {why}")))?;
                parent_death_signal = Some(signal);
                continue;
            }
            Short('c') | Long("single-child") => {
                settings.set_flag(&SINGLE_CHILD, typed_name(&arg), String::new(), false);
                continue;
            }
            Long("allow-new-privs") => {
                settings.set_flag(&ALLOW_NEW_PRIVS, typed_name(&arg), String::new(), false);
                continue;
            }
            Value(first) => {
                command.push(first);
                command.extend(parser.raw_args()?);
                break;
            }
            Long("user") => (&USER, false),
            Long("cap-keep") => (&CAP_KEEP, false),
            Long("grace") => (&GRACE, false),
            Long("drain") => (&DRAIN, false),
            Short('r') | Long("rewrite") => (&REWRITE, true),
            Short('e') | Long("remap-exit") => (&REMAP_EXIT, true),
            Long("health-addr") => (&HEALTH_ADDR, false),
            Long("ready-when") => (&READY_WHEN, false),
            Long("log-format") => (&LOG_FORMAT, false),
            Long("log-field") => (&LOG_FIELD, true),
            Long("log-max-record") => (&LOG_MAX_RECORD, false),
            Long("stderr-level") => (&STDERR_LEVEL, false),
            Long("env-file") => (&ENV_FILE, true),
            Long("secret-env") => (&SECRET_ENV, false),
            _ => return Err(arg.unexpected().into()),
        };
        let typed = typed_name(&arg);
        let value = string_value(&mut parser, &typed)?;
        settings.set_flag(spec, typed, value, repeatable);
    }
    validate(
        settings,
        command,
        verbosity,
        parent_death_signal,
        warn_on_reap,
    )
}

/// Where the health server listens unless told otherwise.
pub const DEFAULT_HEALTH_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 8558);

/// `--health-addr` / `USHER_HEALTH_ADDR`: `IP:PORT`, or `off` (None).
pub fn parse_health_addr(value: &str) -> Result<Option<SocketAddr>, String> {
    if value == "off" {
        return Ok(None);
    }
    value
        .parse()
        .map(Some)
        .map_err(|_| format!("\"{value}\" is not IP:PORT (e.g. 0.0.0.0:8558) or off"))
}

fn validate(
    mut settings: Settings,
    command: Vec<OsString>,
    verbosity: Option<u8>,
    parent_death_signal: Option<Signo>,
    warn_on_reap: bool,
) -> Result<Invocation, UsageError> {
    let grace = match settings.take_one(&GRACE)? {
        Some(raw) => raw.parse(parse_duration)?,
        None => Duration::from_secs(10),
    };
    let drain = match settings.take_one(&DRAIN)? {
        Some(raw) => raw.parse(parse_duration)?,
        None => Duration::ZERO,
    };
    let mut rewrites = Rewrites::default();
    for raw in settings.take(&REWRITE, true)? {
        raw.parse(|rule| rewrites.add_rule(rule))?;
    }
    let single_child = settings.take_bool(&SINGLE_CHILD)?;
    let mut remap = Vec::new();
    for raw in settings.take(&REMAP_EXIT, true)? {
        remap.push(raw.parse(parse_exit_code)?);
    }
    let verbosity = match (verbosity, settings.take_one(&VERBOSE)?) {
        (Some(count), _) => count,
        (None, Some(raw)) => raw.parse(|v| {
            v.parse::<u8>()
                .map_err(|_| format!("\"{v}\" is not a verbosity level (0, 1, 2...)"))
        })?,
        (None, None) => 0,
    };
    let health_addr = match settings.take_one(&HEALTH_ADDR)? {
        Some(raw) => raw.parse(parse_health_addr)?,
        None => Some(DEFAULT_HEALTH_ADDR),
    };
    let ready_when = match settings.take_one(&READY_WHEN)? {
        Some(raw) => raw.parse(readiness::Source::parse)?,
        None => readiness::Source::Started,
    };
    let log_format = match settings.take_one(&LOG_FORMAT)? {
        Some(raw) => raw.parse(|value| match value {
            "json" => Ok(LogMode::Json),
            "raw" => Ok(LogMode::Raw),
            "auto" => Ok(LogMode::Auto),
            other => Err(format!(
                "unknown log format \"{other}\" (json, raw or auto)"
            )),
        })?,
        None => LogMode::Auto,
    };
    let mut log_fields = Vec::new();
    for raw in settings.take_env_list(&LOG_FIELD)? {
        let (key, value) = raw.parse(parse_log_field)?;
        // A key given twice: the last one wins, as with any repeated setting.
        log_fields.retain(|(existing, _): &(String, String)| *existing != key);
        log_fields.push((key, value));
    }
    let log_max_record = match settings.take_one(&LOG_MAX_RECORD)? {
        Some(raw) => raw.parse(|value| match value.parse::<usize>() {
            Ok(bytes) if bytes > MAX_LOG_RECORD => Err(format!(
                "{bytes} bytes is above the maximum of {MAX_LOG_RECORD}"
            )),
            Ok(bytes) if bytes >= MIN_LOG_RECORD => Ok(bytes),
            Ok(bytes) => Err(format!(
                "{bytes} bytes is below the minimum of {MIN_LOG_RECORD}"
            )),
            Err(_) => Err(format!("\"{value}\" is not a number of bytes")),
        })?,
        None => 16384,
    };
    // The static fields are in every record: they must leave room for the line itself.
    // Measured as written: escaped, quoted, with their comma and colon.
    let fields_bytes: usize = log_fields
        .iter()
        .map(|(k, v): &(String, String)| json_len(k) + json_len(v) + 2)
        .sum();
    if fields_bytes + 256 > log_max_record {
        return Err(UsageError(format!(
            "--log-field: the static fields take {fields_bytes} bytes of every record, too many \
             for --log-max-record {log_max_record}"
        )));
    }
    let stderr_level = match settings.take_one(&STDERR_LEVEL)? {
        Some(raw) => raw.parse(|value| {
            Level::parse(value).ok_or_else(|| {
                format!("unknown level \"{value}\" (trace, debug, info, warn, error, fatal)")
            })
        })?,
        None => Level::Error,
    };
    let allow_new_privs = settings.take_bool(&ALLOW_NEW_PRIVS)?;
    let user = settings.take_one(&USER)?.map(|raw| raw.value);
    let cap_keep = match settings.take_one(&CAP_KEEP)? {
        Some(raw) => Some(raw.parse(CapSet::parse)?),
        None => None,
    };
    let env_files = settings
        .take(&ENV_FILE, true)?
        .into_iter()
        .map(|raw| raw.value.into())
        .collect();
    let secret_env = match settings.take_one(&SECRET_ENV)? {
        Some(raw) => Some(raw.parse(SecretNames::parse)?),
        None => None,
    };
    if command.is_empty() {
        return Err(UsageError(
            "no command given (usage: usher [OPTIONS] [--] COMMAND [ARG...])".to_string(),
        ));
    }
    Ok(Invocation::Run(Box::new(Config {
        command,
        grace,
        drain,
        rewrites,
        single_child,
        remap_exit: ExitRemap(remap),
        parent_death_signal,
        verbosity,
        warn_on_reap,
        health_addr,
        ready_when,
        log_format,
        log_fields,
        log_max_record,
        stderr_level,
        user,
        cap_keep,
        allow_new_privs,
        env_files,
        secret_env,
    })))
}

pub const HELP: &str = "\
usher: a tiny PID 1 for containers

Usage:
  usher [OPTIONS] [--] COMMAND [ARG...]
  usher probe [--timeout DURATION] [http://HOST:PORT/PATH | tcp://HOST:PORT]
  usher --version | --help

Options (each also read from the variable shown; a flag wins over its variable):
  --grace DURATION       USHER_GRACE         after the stop signal is forwarded, how long
                                             before everything left gets SIGKILL [10s]
  --drain DURATION       USHER_DRAIN         on SIGTERM/SIGINT, wait this long before
                                             forwarding the signal [0s]
  -r, --rewrite FROM:TO  USHER_REWRITE       forward FROM as TO; TO 0 drops FROM (repeatable;
                                             the variable is a comma list)
  -c, --single-child     USHER_SINGLE_CHILD  signal only the child, not its process group
  -e, --remap-exit CODE  USHER_REMAP_EXIT    report child exit CODE as 0 (repeatable)
  --health-addr ADDR     USHER_HEALTH_ADDR   where /health, /ready, /metrics are served,
                                             or off [0.0.0.0:8558]
  --ready-when SPEC      USHER_READY_WHEN    when /ready turns 200: started, tcp:[HOST:]PORT,
                                             http:URL, file:PATH or notify [started]
  --log-format F         USHER_LOG_FORMAT    json, raw (the child inherits stdio) or auto
                                             (json unless stdout is a terminal) [auto]
  --log-field K=V        USHER_LOG_FIELDS    a static field in every record (repeatable)
  --log-max-record BYTES USHER_LOG_MAX_RECORD  no record is longer; longer lines are
                                             split into partial records [16384]
  --stderr-level LEVEL   USHER_STDERR_LEVEL  level of a stderr line naming none [error]
  -v, --verbose          USHER_VERBOSE       more of usher's own events (repeatable)
  -h, --help                                 this text
  -V, --version                              usher's version

Privileges and environment:
  --user SPEC            USHER_USER          run the child as name, uid, name:group,
                                             uid:gid, name:gid or uid:group (read from the
                                             image's /etc files)
  --cap-keep CAPS        USHER_CAP_KEEP      the child keeps only these capabilities
                                             (e.g. NET_BIND_SERVICE), as ambient
  --allow-new-privs      USHER_ALLOW_NEW_PRIVS  do not set no_new_privs on the child
  --env-file PATH        USHER_ENV_FILE      load a dotenv file (repeatable; variables
                                             already set win)
  --secret-env NAMES     USHER_SECRET_ENV    read the file named by NAME_FILE into NAME
                                             (comma list, or * for every *_FILE)

usher probe: the HEALTHCHECK client (no curl needed). Exit 0 on a 200-399 answer or an
accepted connection, 1 otherwise (one line on stderr says why), 2 on a usage error. HOST is an
IP address or localhost. Defaults: --timeout 2s, http://127.0.0.1:8558/health.

Accepted for migration: tini -s -g (no effect: usher always does this), -e CODE,
-p SIG (signal usher gets when its parent dies), -w (warn when orphans are reaped),
-l (license); dumb-init -c and -r.

Durations: 250ms, 10s, 2m (a bare number means seconds). Signals: TERM, SIGTERM or 15.
Exit status: the child's; 128+N if it was killed by signal N; 2 usage error;
126 command not executable; 127 command not found.
";

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Config, UsageError> {
        run_env(args, &[])
    }

    fn run_env(args: &[&str], env: &[(&str, &str)]) -> Result<Config, UsageError> {
        let env: Vec<(String, OsString)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        let lookup = move |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        match parse(args.iter().map(OsString::from).collect(), &lookup)? {
            Invocation::Run(config) => Ok(*config),
            other => panic!("expected a run, got {other:?}"),
        }
    }

    fn error(args: &[&str]) -> String {
        run(args).expect_err("should be rejected").0
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        for bad in [
            "",
            "s",
            "-1s",
            "1.5s",
            "10 s",
            "10sec",
            "1d",
            "99999999999999999999",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        assert!(parse_duration("25h").unwrap_err().contains("out of range"));
    }

    #[test]
    fn command_is_passed_on_exactly() {
        let config = run(&["--grace", "1s", "sh", "-c", "echo  a   b", "--grace", ""]).unwrap();
        assert_eq!(config.command, ["sh", "-c", "echo  a   b", "--grace", ""]);
        let config = run(&["--", "-weird", "--help"]).unwrap();
        assert_eq!(config.command, ["-weird", "--help"]);
        // `probe` is a subcommand only as the first word.
        let config = run(&["-v", "probe"]).unwrap();
        assert_eq!(config.command, ["probe"]);
    }

    #[test]
    fn defaults() {
        let config = run(&["true"]).unwrap();
        assert_eq!(config.grace, Duration::from_secs(10));
        assert_eq!(config.drain, Duration::ZERO);
        assert!(!config.single_child);
        assert_eq!(config.rewrites, Rewrites::default());
        assert_eq!(config.verbosity, 0);
    }

    #[test]
    fn env_is_read_and_flags_win() {
        let env = [
            ("USHER_GRACE", "3s"),
            ("USHER_SINGLE_CHILD", "true"),
            ("USHER_REWRITE", "TERM:QUIT, USR1:0"),
            ("USHER_REMAP_EXIT", "143,3"),
        ];
        let config = run_env(&["x"], &env).unwrap();
        assert_eq!(config.grace, Duration::from_secs(3));
        assert!(config.single_child);
        assert_eq!(
            config.rewrites.apply(Signo::TERM).map(Signo::number),
            Some(libc::SIGQUIT)
        );
        assert_eq!(config.remap_exit.apply(143), 0);
        assert_eq!(config.remap_exit.apply(3), 0);
        assert_eq!(config.remap_exit.apply(4), 4);
        let config = run_env(&["--grace=5s", "-r", "HUP:INT", "x"], &env).unwrap();
        assert_eq!(config.grace, Duration::from_secs(5));
        assert_eq!(config.rewrites.apply(Signo::TERM), Some(Signo::TERM));
        assert_eq!(config.rewrites.apply(Signo::HUP), Some(Signo::INT));
        let err = run_env(&["x"], &[("USHER_GRACE", "soon")]).unwrap_err().0;
        assert!(err.starts_with("USHER_GRACE:"), "{err}");
        let err = run_env(&["x"], &[("USHER_SINGLE_CHILD", "maybe")])
            .unwrap_err()
            .0;
        assert!(err.starts_with("USHER_SINGLE_CHILD:"), "{err}");
    }

    #[test]
    fn tini_and_dumb_init_flags() {
        let config = run(&[
            "-s", "-g", "-e", "143", "-e143", "-p", "SIGKILL", "-vv", "-w", "x",
        ]);
        let config = config.unwrap();
        assert_eq!(config.remap_exit.apply(143), 0);
        assert_eq!(config.parent_death_signal, Some(Signo::KILL));
        assert_eq!(config.verbosity, 2);
        assert!(config.warn_on_reap);
        // Flags take comma lists too, like their variables.
        let config = run(&["--rewrite", "USR1:0,USR2:HUP", "-e", "1,2", "x"]).unwrap();
        assert_eq!(
            config.rewrites.apply(Signo::new(libc::SIGUSR1).unwrap()),
            None
        );
        assert_eq!(
            config.rewrites.apply(Signo::new(libc::SIGUSR2).unwrap()),
            Some(Signo::HUP)
        );
        assert_eq!(
            (config.remap_exit.apply(1), config.remap_exit.apply(2)),
            (0, 0)
        );
        let config = run(&["-c", "-r", "15:3", "--rewrite", "1:0", "x"]).unwrap();
        assert!(config.single_child);
        assert_eq!(
            config.rewrites.apply(Signo::TERM).map(Signo::number),
            Some(3)
        );
        assert_eq!(config.rewrites.apply(Signo::HUP), None);
    }

    #[test]
    fn bad_input_names_the_culprit() {
        assert!(error(&["--bogus", "x"]).contains("--bogus"));
        assert!(error(&[]).contains("no command"));
        assert!(error(&["--grace"]).contains("--grace"));
        assert!(error(&["--grace", "abc", "x"]).starts_with("--grace:"));
        assert!(error(&["--drain", "1y", "x"]).starts_with("--drain:"));
        assert!(error(&["--rewrite", "TERM", "x"]).starts_with("--rewrite:"));
        assert!(error(&["-r", "TERM:BOGUS", "x"]).starts_with("-r:"));
        assert!(error(&["-e", "300", "x"]).starts_with("-e:"));
        assert!(error(&["--ready-when", "bogus", "x"]).contains("unknown readiness source"));
        assert!(error(&["--rewrite", "NOPE:TERM", "x"]).contains("NOPE"));
        assert!(error(&["--remap-exit", "256", "x"]).starts_with("--remap-exit:"));
        assert!(error(&["-p", "99", "x"]).starts_with("-p:"));
        assert!(error(&["--log-format", "xml", "x"]).starts_with("--log-format:"));
        assert!(error(&["--health-addr", "nope", "x"]).starts_with("--health-addr:"));
    }

    #[test]
    fn health_and_readiness_settings() {
        let err = error(&["--ready-when", "tcp:0", "x"]);
        assert!(err.starts_with("--ready-when:"), "{err}");
        let err = error(&["--ready-when", "http://example.com:80/", "x"]);
        assert!(err.contains("no DNS"), "{err}");
        let env = |name: &str| (name == "USHER_READY_WHEN").then(|| "notify".into());
        let Ok(Invocation::Run(config)) = parse(vec!["x".into()], &env) else {
            panic!()
        };
        assert_eq!(config.ready_when, readiness::Source::Notify);
        let config = run(&["--log-format", "raw", "--health-addr", "off", "x"]).unwrap();
        assert_eq!(config.health_addr, None);
        let config = run(&["--health-addr", "127.0.0.1:0", "x"]).unwrap();
        assert_eq!(config.health_addr, Some("127.0.0.1:0".parse().unwrap()));
        assert_eq!(
            run(&["x"]).unwrap().health_addr,
            Some("0.0.0.0:8558".parse().unwrap())
        );
        assert!(run(&["--ready-when", "started", "--log-format", "auto", "x"]).is_ok());
        let probe = parse(vec!["probe".into()], &|_| None);
        assert!(matches!(probe, Ok(Invocation::Probe(_))), "{probe:?}");
    }

    #[test]
    fn log_options() {
        let config = run(&["x"]).unwrap();
        assert_eq!(config.log_format, LogMode::Auto);
        assert_eq!(config.log_max_record, 16384);
        assert_eq!(config.stderr_level, Level::Error);
        let args = [
            "--log-format",
            "json",
            "--log-field",
            "service=api",
            "--log-field",
            "env=prod,zone=a",
            "--log-max-record",
            "2048",
            "--stderr-level",
            "WARNING",
            "x",
        ];
        let config = run(&args).unwrap();
        assert_eq!(config.log_format, LogMode::Json);
        let fields = [("service", "api"), ("env", "prod,zone=a")];
        let fields: Vec<(String, String)> = fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(config.log_fields, fields);
        assert_eq!(config.log_max_record, 2048);
        assert_eq!(config.stderr_level, Level::Warn);
        // A flag's value may hold commas; a repeated key keeps its last value.
        let config = run(&["--log-field", "note=a,b", "--log-field", "note=c,d", "x"]).unwrap();
        assert_eq!(config.log_fields, [("note".to_string(), "c,d".to_string())]);
        assert!(error(&["--log-max-record", "2000000", "x"]).starts_with("--log-max-record:"));
        let quotes = format!("k={}", "\"".repeat(700));
        assert!(
            error(&["--log-max-record", "1024", "--log-field", &quotes, "x"])
                .starts_with("--log-field:")
        );
        let config = run_env(&["x"], &[("USHER_LOG_FIELDS", "a=1, b=x=y")]).unwrap();
        assert_eq!(config.log_fields[1], ("b".to_string(), "x=y".to_string()));
        for (args, flag) in [
            (&["--log-field", "service", "x"][..], "--log-field:"),
            (&["--log-field", "a b=c", "x"], "--log-field:"),
            (&["--log-field", "level=x", "x"], "--log-field:"),
            (&["--log-max-record", "1023", "x"], "--log-max-record:"),
            (&["--log-max-record", "lots", "x"], "--log-max-record:"),
            (&["--stderr-level", "loud", "x"], "--stderr-level:"),
            (
                &[
                    "--log-max-record",
                    "1024",
                    "--log-field",
                    &format!("k={}", "v".repeat(900)),
                    "x",
                ],
                "--log-field:",
            ),
            (&["--log-format", "xml", "x"], "--log-format:"),
        ] {
            assert!(error(args).starts_with(flag), "{args:?}: {}", error(args));
        }
    }

    #[test]
    fn privilege_and_environment_options() {
        let config = run(&[
            "--user",
            "app:staff",
            "--cap-keep",
            "NET_BIND_SERVICE",
            "--allow-new-privs",
            "--env-file",
            "/a.env",
            "--env-file",
            "/b.env",
            "--secret-env",
            "DB,API",
            "x",
        ])
        .unwrap();
        assert_eq!(config.user.as_deref(), Some("app:staff"));
        assert_eq!(config.cap_keep, Some(CapSet(1 << 10)));
        assert!(config.allow_new_privs);
        assert_eq!(
            config.env_files,
            [PathBuf::from("/a.env"), PathBuf::from("/b.env")]
        );
        let names = SecretNames::Names(vec!["DB".into(), "API".into()]);
        assert_eq!(config.secret_env, Some(names));
        let env = [
            ("USHER_USER", "1000"),
            ("USHER_ALLOW_NEW_PRIVS", "0"),
            ("USHER_SECRET_ENV", "*"),
            ("USHER_ENV_FILE", "/c.env"),
        ];
        let config = run_env(&["x"], &env).unwrap();
        assert_eq!(config.user.as_deref(), Some("1000"));
        assert!(!config.allow_new_privs);
        assert_eq!(config.secret_env, Some(SecretNames::All));
        assert_eq!(config.env_files, [PathBuf::from("/c.env")]);
        assert!(error(&["--cap-keep", "NET_BIND", "x"]).starts_with("--cap-keep:"));
        assert!(error(&["--secret-env", "A-B", "x"]).starts_with("--secret-env:"));
        let err = run_env(&["x"], &[("USHER_ALLOW_NEW_PRIVS", "maybe")])
            .unwrap_err()
            .0;
        assert!(err.starts_with("USHER_ALLOW_NEW_PRIVS:"), "{err}");
    }

    #[test]
    fn help_version_license() {
        let parse_args = |a: &[&str]| parse(a.iter().map(OsString::from).collect(), &|_| None);
        assert!(matches!(parse_args(&["--help"]), Ok(Invocation::Help)));
        assert!(matches!(parse_args(&["-h"]), Ok(Invocation::Help)));
        assert!(matches!(
            parse_args(&["--version"]),
            Ok(Invocation::Version)
        ));
        assert!(matches!(parse_args(&["-l"]), Ok(Invocation::License)));
    }
}
