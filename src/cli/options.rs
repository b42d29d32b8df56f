//! The option table: one definition per option (flags, variable, value name, default, help),
//! from which both the parser (`cli::parse`) and `--help` (`cli::help`) are made, so that they
//! cannot drift apart.

/// How an option takes its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `--grace 10s`: the last one given wins.
    One,
    /// `--rewrite A:B` given again adds to the list; each flag value and the variable are comma
    /// lists.
    List,
    /// `--log-field K=V` given again adds to the list; a flag's value is taken whole (it may hold
    /// commas), the variable is a comma list.
    Repeated,
    /// `--single-child`: no value on the command line; the variable is a boolean.
    Switch,
    /// `-v`: each use counts; the variable is a number.
    Count,
    /// `-s`, `-g`: accepted for tini compatibility, no effect.
    Ignored,
    /// `--help`, `--version`, `--license`: answered at once.
    Action(Action),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Help,
    Version,
    License,
}

/// Where `--help` lists an option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    Main,
    Privileges,
    Migration,
}

/// One option of the contract's table (design section 1).
#[derive(Debug)]
pub struct Opt {
    pub long: Option<&'static str>,
    pub short: Option<char>,
    pub env: Option<&'static str>,
    /// The value's name in `--help` (`DURATION`); None for options without a value.
    pub value: Option<&'static str>,
    /// The default as `--help` shows it.
    pub default: Option<&'static str>,
    pub help: &'static str,
    pub kind: Kind,
    pub section: Section,
}

impl Opt {
    const fn new(kind: Kind, section: Section) -> Opt {
        Opt {
            long: None,
            short: None,
            env: None,
            value: None,
            default: None,
            help: "",
            kind,
            section,
        }
    }

    const fn long(mut self, name: &'static str) -> Opt {
        self.long = Some(name);
        self
    }

    const fn short(mut self, letter: char) -> Opt {
        self.short = Some(letter);
        self
    }

    const fn env(mut self, variable: &'static str) -> Opt {
        self.env = Some(variable);
        self
    }

    const fn value(mut self, name: &'static str) -> Opt {
        self.value = Some(name);
        self
    }

    const fn default(mut self, shown: &'static str) -> Opt {
        self.default = Some(shown);
        self
    }

    const fn help(mut self, text: &'static str) -> Opt {
        self.help = text;
        self
    }
}

use Kind::*;
use Section::*;

pub const GRACE: Opt = Opt::new(One, Main)
    .long("grace")
    .env("USHER_GRACE")
    .value("DURATION")
    .default("8s")
    .help("after the stop signal is forwarded, how long before everything left gets SIGKILL");

pub const DRAIN: Opt = Opt::new(One, Main)
    .long("drain")
    .env("USHER_DRAIN")
    .value("DURATION")
    .default("0s")
    .help("on a stop signal, /ready turns 503 at once and the signal is forwarded after this long");

pub const STOP_SIGNAL: Opt = Opt::new(One, Main)
    .long("stop-signal")
    .env("USHER_STOP_SIGNAL")
    .value("SIGS")
    .default("TERM,INT")
    .help("signals that begin a graceful stop (comma list; QUIT for nginx); others are forwarded");

pub const REWRITE: Opt = Opt::new(List, Main)
    .long("rewrite")
    .short('r')
    .env("USHER_REWRITE")
    .value("FROM:TO")
    .help("forward FROM as TO; TO 0 drops FROM (repeatable, comma lists)");

pub const SINGLE_CHILD: Opt = Opt::new(Switch, Main)
    .long("single-child")
    .short('c')
    .env("USHER_SINGLE_CHILD")
    .help("signal only the child, not its process group");

pub const REMAP_EXIT: Opt = Opt::new(List, Main)
    .long("remap-exit")
    .short('e')
    .env("USHER_REMAP_EXIT")
    .value("CODE")
    .help("report child exit CODE as 0 (repeatable, comma lists)");

pub const WAIT_ALL: Opt = Opt::new(Switch, Main)
    .long("wait-all")
    .env("USHER_WAIT_ALL")
    .help("when the main child exits, stay while processes it left live (self-restarting daemons)");

pub const HEALTH_ADDR: Opt = Opt::new(One, Main)
    .long("health-addr")
    .env("USHER_HEALTH_ADDR")
    .value("ADDR")
    .default("0.0.0.0:8558")
    .help("where /health, /ready, /metrics are served, or off");

pub const READY_WHEN: Opt = Opt::new(One, Main)
    .long("ready-when")
    .env("USHER_READY_WHEN")
    .value("SPEC")
    .default("started")
    .help("when /ready turns 200: started, tcp:[HOST:]PORT, http:URL, file:PATH or notify");

pub const LIVE_WHEN: Opt = Opt::new(One, Main)
    .long("live-when")
    .env("USHER_LIVE_WHEN")
    .value("SPEC")
    .default("running")
    .help("what /health checks: running, tcp:[HOST:]PORT, http:URL, watchdog or watchdog:DURATION");

pub const LIVE_THRESHOLD: Opt = Opt::new(One, Main)
    .long("live-threshold")
    .env("USHER_LIVE_THRESHOLD")
    .value("N")
    .default("3")
    .help("failed tcp:/http: liveness checks in a row that make /health 503");

pub const ON_UNHEALTHY: Opt = Opt::new(One, Main)
    .long("on-unhealthy")
    .env("USHER_ON_UNHEALTHY")
    .value("ACTION")
    .default("report")
    .help("when liveness fails: report (/health 503) or stop (graceful stop, exit 70)");

pub const LOG_FORMAT: Opt = Opt::new(One, Main)
    .long("log-format")
    .env("USHER_LOG_FORMAT")
    .value("F")
    .default("auto")
    .help("json, raw (the child inherits stdio) or auto (json unless stdout is a terminal)");

pub const LOG_SCHEMA: Opt = Opt::new(One, Main)
    .long("log-schema")
    .env("USHER_LOG_SCHEMA")
    .value("S")
    .default("usher")
    .help("field names of the JSON records: usher, gcp (Cloud Logging), ecs (Elastic) or otel (OpenTelemetry)");

pub const LOG_FIELD: Opt = Opt::new(Repeated, Main)
    .long("log-field")
    .env("USHER_LOG_FIELDS")
    .value("K=V")
    .help("a static field in every record (repeatable; the variable is a comma list)");

pub const LOG_MAX_RECORD: Opt = Opt::new(One, Main)
    .long("log-max-record")
    .env("USHER_LOG_MAX_RECORD")
    .value("BYTES")
    .default("16384")
    .help("no record is longer; longer lines are split into partial records");

pub const LOG_MULTILINE: Opt = Opt::new(One, Main)
    .long("log-multiline")
    .env("USHER_LOG_MULTILINE")
    .value("M")
    .default("auto")
    .help("auto: each stack trace (Java, Python, Go, Node.js, Ruby) is one record; off: each line");

pub const STDERR_LEVEL: Opt = Opt::new(One, Main)
    .long("stderr-level")
    .env("USHER_STDERR_LEVEL")
    .value("LEVEL")
    .default("info")
    .help("level of a stderr line that names none");

pub const VERBOSE: Opt = Opt::new(Count, Main)
    .long("verbose")
    .short('v')
    .env("USHER_VERBOSE")
    .help("more of usher's own events (repeatable): JSON logs show info without it, -v adds debug; raw logs show warnings, -v adds info, -vv debug");

pub const HELP: Opt = Opt::new(Action(Action::Help), Main)
    .long("help")
    .short('h')
    .help("this text");

pub const VERSION: Opt = Opt::new(Action(Action::Version), Main)
    .long("version")
    .short('V')
    .help("usher's version, commit and target");

pub const USER: Opt = Opt::new(One, Privileges).long("user").env("USHER_USER").value("SPEC").help("run the child as name, uid, name:group, uid:gid, name:gid or uid:group (from the image's /etc files)");

pub const CAP_KEEP: Opt = Opt::new(One, Privileges)
    .long("cap-keep")
    .env("USHER_CAP_KEEP")
    .value("CAPS")
    .help("the child keeps only these capabilities (e.g. NET_BIND_SERVICE), as ambient");

pub const ALLOW_NEW_PRIVS: Opt = Opt::new(Switch, Privileges)
    .long("allow-new-privs")
    .env("USHER_ALLOW_NEW_PRIVS")
    .help("do not set no_new_privs on the child");

pub const ENV_FILE: Opt = Opt::new(List, Privileges)
    .long("env-file")
    .env("USHER_ENV_FILE")
    .value("PATH")
    .help("load a dotenv file (repeatable; variables already set win)");

pub const SECRET_ENV: Opt = Opt::new(One, Privileges)
    .long("secret-env")
    .env("USHER_SECRET_ENV")
    .value("NAMES")
    .help("read the file named by NAME_FILE into NAME (comma list, or * for every *_FILE)");

pub const SUBREAPER: Opt = Opt::new(Ignored, Migration)
    .short('s')
    .help("tini: become a subreaper (usher always does)");

pub const KILL_GROUP: Opt = Opt::new(Ignored, Migration)
    .short('g')
    .help("tini: signal the process group (usher always does)");

pub const PARENT_DEATH_SIGNAL: Opt = Opt::new(One, Migration)
    .short('p')
    .value("SIG")
    .help("tini: the signal usher gets (and forwards) when its parent dies");

pub const WARN_ON_REAP: Opt = Opt::new(Switch, Migration)
    .short('w')
    .help("tini: warn when a process other than the child is reaped");

pub const LICENSE: Opt = Opt::new(Action(Action::License), Migration)
    .long("license")
    .short('l')
    .help("tini: print the license");

pub const PROBE_TIMEOUT: Opt = Opt::new(One, Main)
    .long("timeout")
    .short('t')
    .value("DURATION")
    .default("2s")
    .help("give up after this long, connecting included");
/// Every option of `usher [OPTIONS] COMMAND`, in `--help` order.
pub const ALL: &[&Opt] = &[
    &GRACE,
    &DRAIN,
    &STOP_SIGNAL,
    &REWRITE,
    &SINGLE_CHILD,
    &REMAP_EXIT,
    &WAIT_ALL,
    &HEALTH_ADDR,
    &READY_WHEN,
    &LIVE_WHEN,
    &LIVE_THRESHOLD,
    &ON_UNHEALTHY,
    &LOG_FORMAT,
    &LOG_SCHEMA,
    &LOG_FIELD,
    &LOG_MAX_RECORD,
    &LOG_MULTILINE,
    &STDERR_LEVEL,
    &VERBOSE,
    &HELP,
    &VERSION,
    &USER,
    &CAP_KEEP,
    &ALLOW_NEW_PRIVS,
    &ENV_FILE,
    &SECRET_ENV,
    &SUBREAPER,
    &KILL_GROUP,
    &PARENT_DEATH_SIGNAL,
    &WARN_ON_REAP,
    &LICENSE,
];

/// Every option of `usher probe`.
pub const PROBE: &[&Opt] = &[&PROBE_TIMEOUT, &HELP];

/// The option a flag names, as lexopt hands it over.
pub fn find(table: &[&'static Opt], arg: &lexopt::Arg) -> Option<&'static Opt> {
    table.iter().copied().find(|opt| match arg {
        lexopt::Arg::Long(name) => opt.long == Some(*name),
        lexopt::Arg::Short(c) => opt.short == Some(*c),
        lexopt::Arg::Value(_) => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_variables_are_unique() {
        for (i, a) in ALL.iter().enumerate() {
            for b in ALL.iter().skip(i + 1) {
                assert!(a.long.is_none() || a.long != b.long, "{:?}", a.long);
                assert!(a.short.is_none() || a.short != b.short, "{:?}", a.short);
                assert!(a.env.is_none() || a.env != b.env, "{:?}", a.env);
            }
            assert!(a.long.is_some() || a.short.is_some(), "{a:?}");
            if let Some(env) = a.env {
                assert!(env.starts_with("USHER_"), "{env}");
            }
            let takes_value = matches!(a.kind, Kind::One | Kind::List | Kind::Repeated);
            assert_eq!(takes_value, a.value.is_some(), "{a:?}");
        }
    }
}
