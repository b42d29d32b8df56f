//! The command line and `USHER_*` environment -> an [`Invocation`] (a validated [`Config`]).
//!
//! Every error is found here, before anything is started, and is one line naming the flag or
//! variable the user wrote. A flag always wins over its variable, and a `USHER_*` variable over
//! tini's and dumb-init's (`migration`). Only `main` imports this module.

mod help;
mod migration;
mod options;
mod values;

pub use migration::unknown_variables;

use std::ffi::{OsStr, OsString};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use lexopt::prelude::*;

use crate::child::environment::SecretNames;
use crate::child::privileges::CapSet;
use crate::config::{
    Config, DEFAULT_GRACE, DEFAULT_HEALTH_ADDR, DEFAULT_LIVE_THRESHOLD, DEFAULT_STDERR_LEVEL,
    ExitRemap, GivenAs, LogMode, Multiline, OnUnhealthy, Policy, ReadySource, StopSignals,
};
use crate::http_check;
use crate::probe::Probe;
use crate::supervise::signals::{Rewrites, Signo};
use options::{Kind, Opt};

/// What usher was asked to do.
#[derive(Debug)]
pub enum Invocation {
    Run(Box<Config>),
    /// `usher probe`: the HEALTHCHECK client.
    Probe(Probe),
    /// `--help` (or `usher probe --help`): the text to print.
    Help(String),
    Version,
    License,
}

/// A usage or configuration error: one line, exit status 2.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(String);

impl UsageError {
    /// The error of `text`, with its control characters shown escaped (`\n`, `\u{1b}`): they
    /// can only come from what the user wrote (a value holding a newline, an option spelled
    /// with an escape sequence), and printed raw they would break the error's one line or
    /// drive the terminal. Found by the `cli` fuzz target.
    fn new(text: String) -> UsageError {
        if !text.chars().any(char::is_control) {
            return UsageError(text);
        }
        let mut shown = String::with_capacity(text.len() + 8);
        for c in text.chars() {
            if c.is_control() {
                shown.extend(c.escape_default());
            } else {
                shown.push(c);
            }
        }
        UsageError(shown)
    }
}

impl From<lexopt::Error> for UsageError {
    fn from(error: lexopt::Error) -> Self {
        UsageError::new(error.to_string())
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
    fn parse<T>(&self, mut parse: impl FnMut(&str) -> Result<T, String>) -> Result<T, UsageError> {
        parse(&self.value).map_err(|why| self.invalid(&why))
    }

    /// The error for a value `parse` refused (`why`): not generic, so one copy of it.
    fn invalid(&self, why: &str) -> UsageError {
        UsageError::new(format!("{}: {why}", self.source))
    }
}

fn comma_list(text: &str) -> impl Iterator<Item = &str> {
    text.split(',').map(str::trim).filter(|v| !v.is_empty())
}

/// Collects settings: flag values replace the environment's for the same option.
struct Settings<'e> {
    env: &'e dyn Fn(&str) -> Option<OsString>,
    given: Vec<(&'static Opt, Vec<Raw>)>,
}

impl Settings<'_> {
    fn set_flag(&mut self, opt: &'static Opt, typed: String, value: String) {
        let raw = Raw {
            value,
            source: typed,
            from_env: false,
        };
        let repeatable = matches!(opt.kind, Kind::List | Kind::Repeated | Kind::Count);
        match self.given.iter_mut().find(|(o, _)| std::ptr::eq(*o, opt)) {
            Some((_, values)) if repeatable => values.push(raw),
            Some((_, values)) => *values = vec![raw],
            None => self.given.push((opt, vec![raw])),
        }
    }

    /// The flag's values, or else the variable's. `List` values, and the variable of a
    /// `Repeated` option, are split on commas.
    fn take(&mut self, opt: &'static Opt) -> Result<Vec<Raw>, UsageError> {
        if let Some(index) = self.given.iter().position(|(o, _)| std::ptr::eq(*o, opt)) {
            let given = self.given.swap_remove(index).1;
            if opt.kind != Kind::List {
                return Ok(given);
            }
            let split = |raw: Raw| -> Vec<Raw> {
                comma_list(&raw.value)
                    .map(|value| Raw {
                        value: value.to_string(),
                        source: raw.source.clone(),
                        from_env: false,
                    })
                    .collect()
            };
            return Ok(given.into_iter().flat_map(split).collect());
        }
        let Some(name) = opt.env else {
            return Ok(Vec::new());
        };
        let Some(value) = (self.env)(name) else {
            return Ok(Vec::new());
        };
        let value = value
            .into_string()
            .map_err(|_| UsageError::new(format!("{name}: not valid UTF-8")))?;
        let raw = |value: &str| Raw {
            value: value.to_string(),
            source: name.to_string(),
            from_env: true,
        };
        Ok(match opt.kind {
            Kind::List | Kind::Repeated => comma_list(&value).map(raw).collect(),
            _ => vec![raw(&value)],
        })
    }

    fn take_one(&mut self, opt: &'static Opt) -> Result<Option<Raw>, UsageError> {
        Ok(self.take(opt)?.pop())
    }

    /// A switch: given as a flag, on; as a variable, a boolean.
    fn take_switch(&mut self, opt: &'static Opt) -> Result<bool, UsageError> {
        Ok(self.take_switch_given(opt)?.unwrap_or(false))
    }

    /// `take_switch`, None when neither the flag nor the variable is given.
    fn take_switch_given(&mut self, opt: &'static Opt) -> Result<Option<bool>, UsageError> {
        match self.take_one(opt)? {
            Some(raw) if raw.from_env => raw.parse(values::boolean).map(Some),
            Some(_) => Ok(Some(true)),
            None => Ok(None),
        }
    }

    /// A count: the flag's uses, else the variable as a number; None when neither is given.
    fn take_count_given(&mut self, opt: &'static Opt) -> Result<Option<u8>, UsageError> {
        let given = self.take(opt)?;
        match given.first() {
            Some(raw) if raw.from_env => raw.parse(values::verbosity).map(Some),
            Some(_) => Ok(Some(u8::try_from(given.len()).unwrap_or(u8::MAX))),
            None => Ok(None),
        }
    }

    fn take_parsed<T>(
        &mut self,
        opt: &'static Opt,
        parse: impl FnMut(&str) -> Result<T, String>,
    ) -> Result<Option<T>, UsageError> {
        self.take_parsed_into(opt, parse, None)
    }

    /// `take_parsed`, also setting `given_as` to the flag or variable the value came from.
    fn take_parsed_as<T>(
        &mut self,
        opt: &'static Opt,
        parse: impl FnMut(&str) -> Result<T, String>,
        given_as: &mut String,
    ) -> Result<Option<T>, UsageError> {
        self.take_parsed_into(opt, parse, Some(given_as))
    }

    /// What `take_parsed` and `take_parsed_as` do; the work is in [`Self::take_with`], which is
    /// not generic: one copy of it, rather than one for each type parsed (about 3 KB of binary).
    fn take_parsed_into<T>(
        &mut self,
        opt: &'static Opt,
        mut parse: impl FnMut(&str) -> Result<T, String>,
        given_as: Option<&mut String>,
    ) -> Result<Option<T>, UsageError> {
        let mut parsed = None;
        self.take_with(
            opt,
            &mut |value| {
                parsed = Some(parse(value)?);
                Ok(())
            },
            given_as,
        )?;
        Ok(parsed)
    }

    /// Takes the option's value, if given, and hands it to `parse`; sets `given_as` to the flag
    /// or variable it came from.
    fn take_with(
        &mut self,
        opt: &'static Opt,
        parse: &mut dyn FnMut(&str) -> Result<(), String>,
        given_as: Option<&mut String>,
    ) -> Result<(), UsageError> {
        let Some(raw) = self.take_one(opt)? else {
            return Ok(());
        };
        raw.parse(parse)?;
        if let Some(given_as) = given_as {
            *given_as = raw.source;
        }
        Ok(())
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
        .map_err(|_| UsageError::new(format!("{flag}: value is not valid UTF-8")))
}

/// Parses usher's arguments (without the program name) and environment.
pub fn parse(
    args: Vec<OsString>,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<Invocation, UsageError> {
    if args.first().map(OsString::as_os_str) == Some(OsStr::new("probe")) {
        return parse_probe(args.into_iter().skip(1).collect(), env);
    }
    let mut settings = Settings {
        env,
        given: Vec::new(),
    };
    let mut command = Vec::new();
    let mut parser = lexopt::Parser::from_args(args);
    while let Some(arg) = parser.next()? {
        if let Value(first) = arg {
            command.push(first);
            command.extend(parser.raw_args()?);
            break;
        }
        let Some(opt) = options::find(options::ALL, &arg) else {
            return Err(arg.unexpected().into());
        };
        let typed = typed_name(&arg);
        match opt.kind {
            Kind::Action(options::Action::Help) => return Ok(Invocation::Help(help::usher())),
            Kind::Action(options::Action::Version) => return Ok(Invocation::Version),
            Kind::Action(options::Action::License) => return Ok(Invocation::License),
            Kind::Ignored => {}
            Kind::Switch | Kind::Count => settings.set_flag(opt, typed, String::new()),
            Kind::One | Kind::List | Kind::Repeated => {
                let value = string_value(&mut parser, &typed)?;
                settings.set_flag(opt, typed, value);
            }
        }
    }
    validate(settings, command)
}

/// `usher probe [--timeout DURATION] [TARGET]`. Without a TARGET it asks usher's own /health,
/// at the port `USHER_HEALTH_ADDR` names when the image sets it (on loopback when it names all
/// addresses).
fn parse_probe(
    args: Vec<OsString>,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<Invocation, UsageError> {
    let mut parser = lexopt::Parser::from_args(args);
    let mut timeout = Duration::from_secs(2);
    let mut target = None;
    while let Some(arg) = parser.next()? {
        match (options::find(options::PROBE, &arg), arg) {
            (Some(opt), _) if opt.kind == Kind::Action(options::Action::Help) => {
                return Ok(Invocation::Help(help::probe()));
            }
            (Some(_), arg) => {
                let typed = typed_name(&arg);
                let value = string_value(&mut parser, &typed)?;
                timeout = values::duration(&value)
                    .map_err(|why| UsageError::new(format!("probe {typed}: {why}")))?;
                if timeout.is_zero() {
                    return Err(UsageError::new(format!(
                        "probe {typed}: must be more than 0"
                    )));
                }
            }
            (None, Value(value)) if target.is_none() => {
                target = Some(value.to_string_lossy().into_owned());
            }
            (None, arg) => return Err(UsageError::new(format!("probe: {}", arg.unexpected()))),
        }
    }
    let text = match target {
        Some(target) => target,
        None => own_health_url(env)?,
    };
    let target = http_check::parse_target(&text)
        .map_err(|why| UsageError::new(format!("probe {text}: {why}")))?;
    Ok(Invocation::Probe(Probe { target, timeout }))
}

/// usher's own /health, where `USHER_HEALTH_ADDR` puts the server (on loopback when it names
/// all addresses); the default address when the variable is unset. Errors: the variable is not
/// an address, or it is `off`: then there is no server of this container's usher to ask, and
/// the default port may be another container's usher (a sidecar in the same network
/// namespace), whose answer would be about the wrong app.
fn own_health_url(env: &dyn Fn(&str) -> Option<OsString>) -> Result<String, UsageError> {
    let value = env("USHER_HEALTH_ADDR").map(|v| v.to_string_lossy().into_owned());
    let mut addr = match value {
        Some(value) => values::health_addr(&value)
            .map_err(|why| UsageError::new(format!("probe: USHER_HEALTH_ADDR: {why}")))?
            .ok_or_else(|| {
                UsageError::new(
                    "probe: USHER_HEALTH_ADDR is off, so usher serves no /health here: name a \
                     TARGET (usher probe http://127.0.0.1:PORT/PATH)"
                        .to_string(),
                )
            })?,
        None => DEFAULT_HEALTH_ADDR,
    };
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        });
    }
    Ok(format!("http://{addr}/health"))
}

fn validate(mut settings: Settings, command: Vec<OsString>) -> Result<Invocation, UsageError> {
    use options::*;
    let grace = settings
        .take_parsed(&GRACE, values::duration)?
        .unwrap_or(DEFAULT_GRACE);
    let drain = settings
        .take_parsed(&DRAIN, values::duration)?
        .unwrap_or(Duration::ZERO);
    let stop_signals = settings
        .take_parsed(&STOP_SIGNAL, StopSignals::parse)?
        .unwrap_or_default();
    let mut rewrites = Rewrites::default();
    for raw in settings.take(&REWRITE)? {
        raw.parse(|rule| rewrites.add_rule(rule))?;
    }
    let single_child = match settings.take_switch_given(&SINGLE_CHILD)? {
        Some(single_child) => single_child,
        None => migration::dumb_init_single_child(settings.env)?.unwrap_or(false),
    };
    let wait_all = settings.take_switch(&WAIT_ALL)?;
    let mut remap = Vec::new();
    for raw in settings.take(&REMAP_EXIT)? {
        remap.push(raw.parse(values::exit_code)?);
    }
    let verbosity = match settings.take_count_given(&VERBOSE)? {
        Some(verbosity) => verbosity,
        None => migration::tini_verbosity(settings.env)?.unwrap_or(0),
    };
    let parent_death_signal = settings.take_parsed(&PARENT_DEATH_SIGNAL, Signo::parse)?;
    let warn_on_reap = settings.take_switch(&WARN_ON_REAP)?;
    let (health_addr, health_addr_given_as) = match settings.take_one(&HEALTH_ADDR)? {
        Some(raw) => (raw.parse(values::health_addr)?, Some(raw.source)),
        None => (Some(DEFAULT_HEALTH_ADDR), None),
    };
    let ready_when = settings
        .take_parsed(&READY_WHEN, ReadySource::parse)?
        .unwrap_or_default();
    let live_when = settings
        .take_parsed(&LIVE_WHEN, values::live_when)?
        .unwrap_or_default();
    let live_threshold = settings
        .take_parsed(&LIVE_THRESHOLD, values::live_threshold)?
        .unwrap_or(DEFAULT_LIVE_THRESHOLD);
    let on_unhealthy = settings
        .take_parsed(&ON_UNHEALTHY, OnUnhealthy::parse)?
        .unwrap_or_default();
    let log_format = settings
        .take_parsed(&LOG_FORMAT, values::log_format)?
        .unwrap_or(LogMode::Auto);
    let log_schema = settings
        .take_parsed(&LOG_SCHEMA, values::log_schema)?
        .unwrap_or_default();
    let mut log_fields = Vec::new();
    for raw in settings.take(&LOG_FIELD)? {
        let (key, value) = raw.parse(|text| values::log_field(text, log_schema))?;
        // A key given twice: the last one wins, as with any repeated setting.
        log_fields.retain(|(existing, _): &(String, String)| *existing != key);
        log_fields.push((key, value));
    }
    let log_max_record = settings
        .take_parsed(&LOG_MAX_RECORD, values::log_max_record)?
        .unwrap_or(16384);
    // The static fields are in every record: they must leave room for the line itself.
    // Measured as written: escaped, quoted, with their comma and colon.
    let fields_bytes: usize = log_fields
        .iter()
        .map(|(k, v)| values::json_len(k) + values::json_len(v) + 2)
        .sum();
    if fields_bytes + 256 > log_max_record {
        return Err(UsageError::new(format!(
            "--log-field: the static fields take {fields_bytes} bytes of every record, too many \
             for --log-max-record {log_max_record}"
        )));
    }
    let log_multiline = settings
        .take_parsed(&LOG_MULTILINE, values::log_multiline)?
        .unwrap_or(Multiline::Auto);
    let stderr_level = settings
        .take_parsed(&STDERR_LEVEL, values::level)?
        .unwrap_or(DEFAULT_STDERR_LEVEL);
    let allow_new_privs = settings.take_switch(&ALLOW_NEW_PRIVS)?;
    // Errors found when the child is prepared name the flag or variable, as here.
    let mut given_as = GivenAs::default();
    let user = settings.take_one(&USER)?.map(|raw| {
        given_as.user = raw.source;
        raw.value
    });
    let cap_keep = settings.take_parsed_as(&CAP_KEEP, CapSet::parse, &mut given_as.cap_keep)?;
    let env_files = settings.take(&ENV_FILE)?;
    if let Some(raw) = env_files.first() {
        given_as.env_file = raw.source.clone();
    }
    let env_files = env_files.into_iter().map(|raw| raw.value.into()).collect();
    let secret_env =
        settings.take_parsed_as(&SECRET_ENV, SecretNames::parse, &mut given_as.secret_env)?;
    if command.is_empty() {
        return Err(UsageError::new(
            "no command given (usage: usher [OPTIONS] [--] COMMAND [ARG...])".to_string(),
        ));
    }
    Ok(Invocation::Run(Box::new(Config {
        command,
        policy: Policy {
            grace,
            drain,
            stop_signals,
            rewrites,
            single_child,
            remap_exit: ExitRemap::new(remap),
            wait_all,
            on_unhealthy,
        },
        parent_death_signal,
        verbosity,
        warn_on_reap,
        health_addr,
        health_addr_given_as,
        ready_when,
        live_when,
        live_threshold,
        log_format,
        log_schema,
        log_fields,
        log_max_record,
        log_multiline,
        stderr_level,
        user,
        cap_keep,
        allow_new_privs,
        env_files,
        secret_env,
        given_as,
        unknown_variables: Vec::new(),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LiveCheck;
    use crate::http_check::Target;
    use crate::logs::Level;
    use std::path::PathBuf;

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
    fn command_is_passed_on_exactly() {
        let config = run(&["--grace", "1s", "sh", "-c", "echo  a   b", "--grace", ""]).unwrap();
        assert_eq!(config.command, ["sh", "-c", "echo  a   b", "--grace", ""]);
        let config = run(&["--", "-weird", "--help"]).unwrap();
        assert_eq!(config.command, ["-weird", "--help"]);
        // `probe` is a subcommand only as the first word.
        let config = run(&["-v", "probe"]).unwrap();
        assert_eq!(config.command, ["probe"]);
    }

    /// Found by the `cli` fuzz target (fuzz/): an option spelled with a control character was
    /// echoed raw in its error. Every error stays one line and cannot drive a terminal,
    /// whatever the user wrote.
    #[test]
    fn errors_show_control_characters_escaped() {
        assert_eq!(error(&["-\u{7}", "x"]), r"invalid option '-\u{7}'");
        assert_eq!(
            error(&["--grace", "1\n2", "x"]),
            r#"--grace: invalid duration "1\n2" (a whole number with ms, s, m or h, e.g. 250ms, 10s, 2m; a bare number means seconds)"#
        );
        let err = run_env(&["x"], &[("USHER_LOG_FORMAT", "\u{1b}[2Jjson")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"USHER_LOG_FORMAT: unknown log format "\u{1b}[2Jjson" (json, raw or auto)"#
        );
        // Other characters are kept as written.
        assert_eq!(
            error(&["--log-format", "é", "x"]),
            r#"--log-format: unknown log format "é" (json, raw or auto)"#
        );
    }

    #[test]
    fn defaults() {
        let config = run(&["true"]).unwrap();
        assert_eq!(config.policy.grace, Duration::from_secs(8));
        assert_eq!(config.policy.drain, Duration::ZERO);
        assert_eq!(config.policy.stop_signals, StopSignals::default());
        assert!(!config.policy.single_child);
        assert!(!config.policy.wait_all);
        assert_eq!(config.policy.rewrites, Rewrites::default());
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
        assert_eq!(config.policy.grace, Duration::from_secs(3));
        assert!(config.policy.single_child);
        assert_eq!(
            config.policy.rewrites.apply(Signo::TERM).map(Signo::number),
            Some(libc::SIGQUIT)
        );
        assert_eq!(config.policy.remap_exit.apply(143), 0);
        assert_eq!(config.policy.remap_exit.apply(3), 0);
        assert_eq!(config.policy.remap_exit.apply(4), 4);
        let config = run_env(&["--grace=5s", "-r", "HUP:INT", "x"], &env).unwrap();
        assert_eq!(config.policy.grace, Duration::from_secs(5));
        assert_eq!(config.policy.rewrites.apply(Signo::TERM), Some(Signo::TERM));
        assert_eq!(config.policy.rewrites.apply(Signo::HUP), Some(Signo::INT));
        let err = run_env(&["x"], &[("USHER_GRACE", "soon")]).unwrap_err().0;
        assert!(err.starts_with("USHER_GRACE:"), "{err}");
        let err = run_env(&["x"], &[("USHER_SINGLE_CHILD", "maybe")])
            .unwrap_err()
            .0;
        assert!(err.starts_with("USHER_SINGLE_CHILD:"), "{err}");
    }

    /// Docker's default stop timeout is 10 s: the default grace, and the bounded exit after its
    /// SIGKILL, end a TERM-ignoring app before Docker's own SIGKILL, with room to spare.
    #[test]
    fn the_default_grace_fits_docker_s_stop_timeout() {
        let docker_stop_timeout = Duration::from_secs(10);
        let shown = options::GRACE.default.unwrap();
        assert_eq!(
            values::duration(shown),
            Ok(DEFAULT_GRACE),
            "--help shows {shown}"
        );
        let worst = DEFAULT_GRACE + crate::supervise::state::EXIT_AFTER_KILL;
        assert!(
            worst + Duration::from_millis(500) <= docker_stop_timeout,
            "{worst:?}"
        );
        let shown = options::STOP_SIGNAL.default.unwrap();
        assert_eq!(StopSignals::parse(shown), Ok(StopSignals::default()));
    }

    #[test]
    fn stop_signal_and_wait_all() {
        let quit = Signo::parse("QUIT").unwrap();
        let config = run(&["--stop-signal", "QUIT", "--wait-all", "x"]).unwrap();
        assert!(config.policy.stop_signals.contains(quit));
        assert!(!config.policy.stop_signals.contains(Signo::TERM));
        assert!(config.policy.wait_all);
        let env = [
            ("USHER_STOP_SIGNAL", "SIGQUIT, TERM"),
            ("USHER_WAIT_ALL", "yes"),
        ];
        let config = run_env(&["x"], &env).unwrap();
        assert!(
            config.policy.stop_signals.contains(quit)
                && config.policy.stop_signals.contains(Signo::TERM)
        );
        assert!(config.policy.wait_all);
        // The flag wins over the variable.
        let config = run_env(&["--stop-signal", "HUP", "x"], &env).unwrap();
        assert_eq!(
            config.policy.stop_signals,
            StopSignals::parse("HUP").unwrap()
        );
        let config = run_env(&["x"], &[("USHER_WAIT_ALL", "0")]).unwrap();
        assert!(!config.policy.wait_all);
        for (args, env, culprit) in [
            (
                &["--stop-signal", "KILL", "x"][..],
                &[][..],
                "--stop-signal:",
            ),
            (&["--stop-signal", "TERM,STOP", "x"], &[], "--stop-signal:"),
            (&["--stop-signal", "", "x"], &[], "--stop-signal:"),
            (&["--stop-signal", "NOPE", "x"], &[], "--stop-signal:"),
            (&["x"], &[("USHER_STOP_SIGNAL", "")], "USHER_STOP_SIGNAL:"),
            (&["x"], &[("USHER_STOP_SIGNAL", "9")], "USHER_STOP_SIGNAL:"),
            (&["x"], &[("USHER_WAIT_ALL", "maybe")], "USHER_WAIT_ALL:"),
        ] {
            let err = run_env(args, env).unwrap_err().0;
            assert!(err.starts_with(culprit), "{args:?} {env:?}: {err}");
        }
    }

    #[test]
    fn tini_and_dumb_init_flags() {
        let config = run(&[
            "-s", "-g", "-e", "143", "-e143", "-p", "SIGKILL", "-vv", "-w", "x",
        ]);
        let config = config.unwrap();
        assert_eq!(config.policy.remap_exit.apply(143), 0);
        assert_eq!(config.parent_death_signal, Some(Signo::KILL));
        assert_eq!(config.verbosity, 2);
        assert!(config.warn_on_reap);
        // Flags take comma lists too, like their variables.
        let config = run(&["--rewrite", "USR1:0,USR2:HUP", "-e", "1,2", "x"]).unwrap();
        assert_eq!(
            config
                .policy
                .rewrites
                .apply(Signo::new(libc::SIGUSR1).unwrap()),
            None
        );
        assert_eq!(
            config
                .policy
                .rewrites
                .apply(Signo::new(libc::SIGUSR2).unwrap()),
            Some(Signo::HUP)
        );
        assert_eq!(
            (
                config.policy.remap_exit.apply(1),
                config.policy.remap_exit.apply(2)
            ),
            (0, 0)
        );
        let config = run(&["-c", "-r", "15:3", "--rewrite", "1:0", "x"]).unwrap();
        assert!(config.policy.single_child);
        assert_eq!(
            config.policy.rewrites.apply(Signo::TERM).map(Signo::number),
            Some(3)
        );
        assert_eq!(config.policy.rewrites.apply(Signo::HUP), None);
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
        assert_eq!(config.ready_when, ReadySource::Notify);
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
    fn liveness_settings() {
        let config = run(&["x"]).unwrap();
        assert_eq!(config.live_when, LiveCheck::Running);
        assert_eq!(config.live_threshold, 3);
        assert_eq!(config.policy.on_unhealthy, OnUnhealthy::Report);
        let config = run(&[
            "--live-when",
            "watchdog:30s",
            "--live-threshold",
            "5",
            "--on-unhealthy",
            "stop",
            "x",
        ])
        .unwrap();
        assert_eq!(
            config.live_when,
            LiveCheck::Watchdog(Duration::from_secs(30))
        );
        assert_eq!(config.live_threshold, 5);
        assert_eq!(config.policy.on_unhealthy, OnUnhealthy::Stop);
        let env = [
            ("USHER_LIVE_WHEN", "tcp:8080"),
            ("USHER_LIVE_THRESHOLD", "1"),
            ("USHER_ON_UNHEALTHY", "stop"),
        ];
        let config = run_env(&["x"], &env).unwrap();
        assert_eq!(
            config.live_when,
            LiveCheck::Tcp("127.0.0.1:8080".parse().unwrap())
        );
        assert_eq!(config.live_threshold, 1);
        assert_eq!(config.policy.on_unhealthy, OnUnhealthy::Stop);
        // A flag wins over its variable.
        let config = run_env(&["--live-when", "watchdog", "x"], &env).unwrap();
        assert_eq!(config.live_when.kind(), "watchdog");
        for (args, env, culprit) in [
            (
                &["--live-when", "grpc:80", "x"][..],
                &[][..],
                "--live-when:",
            ),
            (
                &["--live-when", "http://db:8080/", "x"],
                &[],
                "--live-when:",
            ),
            (&["--live-when", "tcp:99999", "x"], &[], "--live-when:"),
            (&["--live-when", "tcp:0", "x"], &[], "--live-when:"),
            (&["--live-when", "watchdog:1y", "x"], &[], "--live-when:"),
            (
                &["x"],
                &[("USHER_LIVE_WHEN", "http://127.0.0.1/")],
                "USHER_LIVE_WHEN:",
            ),
            (&["--live-threshold", "0", "x"], &[], "--live-threshold:"),
            (
                &["x"],
                &[("USHER_LIVE_THRESHOLD", "x")],
                "USHER_LIVE_THRESHOLD:",
            ),
            (&["--on-unhealthy", "restart", "x"], &[], "--on-unhealthy:"),
            (&["x"], &[("USHER_ON_UNHEALTHY", "")], "USHER_ON_UNHEALTHY:"),
        ] {
            let err = run_env(args, env).unwrap_err().0;
            assert!(err.starts_with(culprit), "{args:?} {env:?}: {err}");
        }
    }

    #[test]
    fn log_options() {
        let config = run(&["x"]).unwrap();
        assert_eq!(config.log_format, LogMode::Auto);
        assert_eq!(config.log_max_record, 16384);
        assert_eq!(config.stderr_level, Level::Info);
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
        // --log-multiline: auto by default (see the README for the measurement), flag over
        // variable, and errors name what the user wrote.
        assert_eq!(run(&["x"]).unwrap().log_multiline, Multiline::Auto);
        let off = run_env(&["x"], &[("USHER_LOG_MULTILINE", "off")]).unwrap();
        assert_eq!(off.log_multiline, Multiline::Off);
        let flag_wins = run_env(
            &["--log-multiline", "auto", "x"],
            &[("USHER_LOG_MULTILINE", "off")],
        )
        .unwrap();
        assert_eq!(flag_wins.log_multiline, Multiline::Auto);
        let err = error(&["--log-multiline", "java", "x"]);
        assert!(
            err.starts_with("--log-multiline:") && err.contains("java"),
            "{err}"
        );
        let err = run_env(&["x"], &[("USHER_LOG_MULTILINE", "on")])
            .unwrap_err()
            .0;
        assert!(err.starts_with("USHER_LOG_MULTILINE:"), "{err}");
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
    fn log_schemas() {
        use crate::logs::LogSchema;
        assert_eq!(run(&["x"]).unwrap().log_schema, LogSchema::Usher);
        for (name, schema) in [
            ("usher", LogSchema::Usher),
            ("gcp", LogSchema::Gcp),
            ("ecs", LogSchema::Ecs),
            ("otel", LogSchema::Otel),
        ] {
            assert_eq!(
                run(&["--log-schema", name, "x"]).unwrap().log_schema,
                schema
            );
            let env = [("USHER_LOG_SCHEMA", name)];
            assert_eq!(run_env(&["x"], &env).unwrap().log_schema, schema);
        }
        // The flag wins over the variable.
        let env = [("USHER_LOG_SCHEMA", "ecs")];
        let config = run_env(&["--log-schema=otel", "x"], &env).unwrap();
        assert_eq!(config.log_schema, LogSchema::Otel);
        // Unknown values name what the user wrote.
        for value in ["", "GCP", "elastic", "otlp", "json"] {
            let err = error(&["--log-schema", value, "x"]);
            assert!(err.starts_with("--log-schema: unknown log schema"), "{err}");
            let err = run_env(&["x"], &[("USHER_LOG_SCHEMA", value)])
                .unwrap_err()
                .0;
            assert!(
                err.starts_with("USHER_LOG_SCHEMA: unknown log schema"),
                "{err}"
            );
        }
        // A static field may not take a key the chosen schema writes itself, and may take the
        // usher schema's keys when another schema does not write them.
        for (schema, key) in [
            ("usher", "msg"),
            ("gcp", "severity"),
            ("gcp", "message"),
            ("gcp", "timestamp"),
            ("ecs", "log.level"),
            ("ecs", "ecs.version"),
            ("ecs", "ecs"),
            ("ecs", "usher.partial"),
            ("otel", "SeverityNumber"),
            ("otel", "Body"),
            ("otel", "log.iostream"),
        ] {
            let field = format!("{key}=x");
            let err = error(&["--log-schema", schema, "--log-field", &field, "x"]);
            assert!(err.starts_with("--log-field:"), "{err}");
            assert!(err.contains(&format!("the {schema} log schema")), "{err}");
            let env = [
                ("USHER_LOG_SCHEMA", schema),
                ("USHER_LOG_FIELDS", field.as_str()),
            ];
            let err = run_env(&["x"], &env).unwrap_err().0;
            assert!(err.starts_with("USHER_LOG_FIELDS:"), "{err}");
        }
        for (schema, key) in [
            ("gcp", "level"),
            ("ecs", "msg"),
            ("otel", "time"),
            ("ecs", "pid"),
        ] {
            let field = format!("{key}=x");
            let config = run(&["--log-schema", schema, "--log-field", &field, "x"]).unwrap();
            assert_eq!(config.log_fields[0].0, key);
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
        let names = |user: &str, cap_keep: &str, env_file: &str, secret_env: &str| GivenAs {
            user: user.into(),
            cap_keep: cap_keep.into(),
            env_file: env_file.into(),
            secret_env: secret_env.into(),
        };
        assert_eq!(
            config.given_as,
            names(
                "USHER_USER",
                "--cap-keep",
                "USHER_ENV_FILE",
                "USHER_SECRET_ENV"
            )
        );
        let env = [("USHER_USER", "1000"), ("USHER_CAP_KEEP", "CHOWN")];
        let config = run_env(&["--user", "2000", "--env-file", "/d.env", "x"], &env).unwrap();
        assert_eq!(
            config.given_as,
            names("--user", "USHER_CAP_KEEP", "--env-file", "--secret-env")
        );
        assert_eq!(run(&["x"]).unwrap().given_as, GivenAs::default());
        assert!(error(&["--cap-keep", "NET_BIND", "x"]).starts_with("--cap-keep:"));
        assert!(error(&["--secret-env", "A-B", "x"]).starts_with("--secret-env:"));
        let err = run_env(&["x"], &[("USHER_ALLOW_NEW_PRIVS", "maybe")])
            .unwrap_err()
            .0;
        assert!(err.starts_with("USHER_ALLOW_NEW_PRIVS:"), "{err}");
    }

    #[test]
    fn tini_and_dumb_init_variables_yield_to_flags_and_usher_variables() {
        let verbosity = |args: &[&str], env: &[(&str, &str)]| run_env(args, env).unwrap().verbosity;
        assert_eq!(verbosity(&["x"], &[("TINI_VERBOSITY", "3")]), 2);
        assert_eq!(verbosity(&["x"], &[("TINI_VERBOSITY", "1")]), 0);
        assert_eq!(verbosity(&["-v", "x"], &[("TINI_VERBOSITY", "3")]), 1);
        let env = [("TINI_VERBOSITY", "3"), ("USHER_VERBOSE", "0")];
        assert_eq!(verbosity(&["x"], &env), 0);
        // A variable that a flag or USHER_* overrides is not read, as USHER_* under a flag.
        assert_eq!(verbosity(&["-v", "x"], &[("TINI_VERBOSITY", "x")]), 1);
        let single =
            |args: &[&str], env: &[(&str, &str)]| run_env(args, env).unwrap().policy.single_child;
        assert!(single(&["x"], &[("DUMB_INIT_SETSID", "0")]));
        assert!(!single(&["x"], &[("DUMB_INIT_SETSID", "1")]));
        let env = [("DUMB_INIT_SETSID", "0"), ("USHER_SINGLE_CHILD", "false")];
        assert!(!single(&["x"], &env));
        assert!(single(&["-c", "x"], &[("DUMB_INIT_SETSID", "1")]));
        // tini's subreaper and group variables are accepted, whatever their value, and change
        // nothing: usher's default is already the group.
        let env = [("TINI_SUBREAPER", ""), ("TINI_KILL_PROCESS_GROUP", "0")];
        let config = run_env(&["x"], &env).unwrap();
        assert!(!config.policy.single_child);
        assert_eq!(config.verbosity, 0);
        for (name, value) in [("TINI_VERBOSITY", "loud"), ("DUMB_INIT_SETSID", "no way")] {
            let err = run_env(&["x"], &[(name, value)]).unwrap_err().0;
            assert!(err.starts_with(&format!("{name}:")), "{err}");
        }
    }

    #[test]
    fn help_version_license() {
        let parse_args = |a: &[&str]| parse(a.iter().map(OsString::from).collect(), &|_| None);
        assert!(matches!(parse_args(&["--help"]), Ok(Invocation::Help(_))));
        assert!(matches!(parse_args(&["-h"]), Ok(Invocation::Help(_))));
        assert!(matches!(
            parse_args(&["--version"]),
            Ok(Invocation::Version)
        ));
        assert!(matches!(parse_args(&["-l"]), Ok(Invocation::License)));
    }

    fn probe(args: &[&str]) -> Result<Probe, UsageError> {
        probe_env(args, &|_| None)
    }

    fn probe_env(
        args: &[&str],
        env: &dyn Fn(&str) -> Option<OsString>,
    ) -> Result<Probe, UsageError> {
        let args = std::iter::once("probe").chain(args.iter().copied());
        match parse(args.map(OsString::from).collect(), env)? {
            Invocation::Probe(probe) => Ok(probe),
            other => panic!("expected a probe, got {other:?}"),
        }
    }

    #[test]
    fn the_default_target_follows_usher_health_addr() {
        let target = |value: &str| {
            let env = |name: &str| (name == "USHER_HEALTH_ADDR").then(|| value.into());
            probe_env(&[], &env).map(|p| p.target)
        };
        let http = |addr: &str| Target::Http {
            addr: addr.parse().unwrap(),
            host: addr.to_string(),
            path: "/health".to_string(),
        };
        assert_eq!(target("0.0.0.0:9000"), Ok(http("127.0.0.1:9000")));
        assert_eq!(target("[::]:9000"), Ok(http("[::1]:9000")));
        assert_eq!(target("10.1.2.3:8558"), Ok(http("10.1.2.3:8558")));
        // Off: no server of this usher to ask (8558 may be another container's usher).
        let err = target("off").unwrap_err().to_string();
        assert!(err.contains("USHER_HEALTH_ADDR is off"), "{err}");
        let err = target("nine").unwrap_err().to_string();
        assert!(err.contains("USHER_HEALTH_ADDR"), "{err}");
        // An explicit TARGET wins, over an address or `off`.
        for value in ["0.0.0.0:9000", "off"] {
            let env = |_: &str| Some(value.into());
            let explicit = probe_env(&["tcp://127.0.0.1:1"], &env).unwrap();
            assert_eq!(
                explicit.target,
                Target::Tcp {
                    addr: "127.0.0.1:1".parse().unwrap()
                }
            );
        }
    }

    #[test]
    fn targets() {
        let default = probe(&[]).unwrap();
        assert_eq!(default.timeout, Duration::from_secs(2));
        let Target::Http { addr, path, .. } = default.target else {
            panic!()
        };
        assert_eq!(
            (addr.to_string(), path.as_str()),
            ("127.0.0.1:8558".to_string(), "/health")
        );
        let p = probe(&["--timeout", "500ms", "http://[::1]:80/ready?x=1"]).unwrap();
        assert_eq!(p.timeout, Duration::from_millis(500));
        let Target::Http { addr, path, host } = p.target else {
            panic!()
        };
        assert_eq!(
            (addr.to_string(), path.as_str(), host.as_str()),
            ("[::1]:80".into(), "/ready?x=1", "[::1]:80")
        );
        let p = probe(&["tcp://localhost:5432"]).unwrap();
        assert_eq!(
            p.target,
            Target::Tcp {
                addr: "127.0.0.1:5432".parse().unwrap()
            }
        );
        let p = probe(&["http://10.0.0.1:8558"]).unwrap();
        let Target::Http { path, .. } = p.target else {
            panic!()
        };
        assert_eq!(path, "/");
    }

    #[test]
    fn usage_errors() {
        for bad in [
            &["ftp://127.0.0.1:21/"][..],
            &["http://example.com:80/"],
            &["http://127.0.0.1/"],
            &["http://127.0.0.1:99999/"],
            &["127.0.0.1:80"],
            &["tcp://127.0.0.1:80/path"],
            &["--timeout", "soon", "tcp://127.0.0.1:1"],
            &["--timeout", "0", "tcp://127.0.0.1:1"],
            &["--bogus"],
            &["tcp://127.0.0.1:1", "tcp://127.0.0.1:2"],
        ] {
            let err = probe(bad).unwrap_err().0;
            assert!(err.starts_with("probe"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn probe_help() {
        let help = parse(vec!["probe".into(), "--help".into()], &|_| None);
        let Ok(Invocation::Help(text)) = help else {
            panic!("{help:?}")
        };
        assert!(text.starts_with("usher probe"), "{text}");
    }

    /// Only the default address may be left when taken: the config says whether it was given,
    /// and by which name, for the error.
    #[test]
    fn the_health_address_knows_whether_it_was_given() {
        assert_eq!(run(&["x"]).unwrap().health_addr_given_as, None);
        let given =
            |args: &[&str], env: &[(&str, &str)]| run_env(args, env).unwrap().health_addr_given_as;
        let flag = ["--health-addr", "0.0.0.0:8558", "x"];
        assert_eq!(given(&flag, &[]).as_deref(), Some("--health-addr"));
        let env = [("USHER_HEALTH_ADDR", "0.0.0.0:8558")];
        assert_eq!(given(&["x"], &env).as_deref(), Some("USHER_HEALTH_ADDR"));
        assert_eq!(given(&flag, &env).as_deref(), Some("--health-addr"));
        let off = [("USHER_HEALTH_ADDR", "off")];
        assert_eq!(given(&["x"], &off).as_deref(), Some("USHER_HEALTH_ADDR"));
    }
}
