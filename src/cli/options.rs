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

macro_rules! opt {
    ($name:ident, $long:expr, $short:expr, $env:expr, $value:expr, $default:expr, $kind:expr,
     $section:expr, $help:expr) => {
        pub const $name: Opt = Opt {
            long: $long,
            short: $short,
            env: $env,
            value: $value,
            default: $default,
            help: $help,
            kind: $kind,
            section: $section,
        };
    };
}

use Kind::*;
use Section::*;

opt!(
    GRACE,
    Some("grace"),
    None,
    Some("USHER_GRACE"),
    Some("DURATION"),
    Some("10s"),
    One,
    Main,
    "after the stop signal is forwarded, how long before everything left gets SIGKILL"
);
opt!(
    DRAIN,
    Some("drain"),
    None,
    Some("USHER_DRAIN"),
    Some("DURATION"),
    Some("0s"),
    One,
    Main,
    "on SIGTERM/SIGINT, /ready turns 503 at once and the signal is forwarded after this long"
);
opt!(
    REWRITE,
    Some("rewrite"),
    Some('r'),
    Some("USHER_REWRITE"),
    Some("FROM:TO"),
    None,
    List,
    Main,
    "forward FROM as TO; TO 0 drops FROM (repeatable, comma lists)"
);
opt!(
    SINGLE_CHILD,
    Some("single-child"),
    Some('c'),
    Some("USHER_SINGLE_CHILD"),
    None,
    None,
    Switch,
    Main,
    "signal only the child, not its process group"
);
opt!(
    REMAP_EXIT,
    Some("remap-exit"),
    Some('e'),
    Some("USHER_REMAP_EXIT"),
    Some("CODE"),
    None,
    List,
    Main,
    "report child exit CODE as 0 (repeatable, comma lists)"
);
opt!(
    HEALTH_ADDR,
    Some("health-addr"),
    None,
    Some("USHER_HEALTH_ADDR"),
    Some("ADDR"),
    Some("0.0.0.0:8558"),
    One,
    Main,
    "where /health, /ready, /metrics are served, or off"
);
opt!(
    READY_WHEN,
    Some("ready-when"),
    None,
    Some("USHER_READY_WHEN"),
    Some("SPEC"),
    Some("started"),
    One,
    Main,
    "when /ready turns 200: started, tcp:[HOST:]PORT, http:URL, file:PATH or notify"
);
opt!(
    LOG_FORMAT,
    Some("log-format"),
    None,
    Some("USHER_LOG_FORMAT"),
    Some("F"),
    Some("auto"),
    One,
    Main,
    "json, raw (the child inherits stdio) or auto (json unless stdout is a terminal)"
);
opt!(
    LOG_FIELD,
    Some("log-field"),
    None,
    Some("USHER_LOG_FIELDS"),
    Some("K=V"),
    None,
    Repeated,
    Main,
    "a static field in every record (repeatable; the variable is a comma list)"
);
opt!(
    LOG_MAX_RECORD,
    Some("log-max-record"),
    None,
    Some("USHER_LOG_MAX_RECORD"),
    Some("BYTES"),
    Some("16384"),
    One,
    Main,
    "no record is longer; longer lines are split into partial records"
);
opt!(
    STDERR_LEVEL,
    Some("stderr-level"),
    None,
    Some("USHER_STDERR_LEVEL"),
    Some("LEVEL"),
    Some("error"),
    One,
    Main,
    "level of a stderr line that names none"
);
opt!(
    VERBOSE,
    Some("verbose"),
    Some('v'),
    Some("USHER_VERBOSE"),
    None,
    None,
    Count,
    Main,
    "more of usher's own events (repeatable)"
);
opt!(
    HELP,
    Some("help"),
    Some('h'),
    None,
    None,
    None,
    Action(Action::Help),
    Main,
    "this text"
);
opt!(
    VERSION,
    Some("version"),
    Some('V'),
    None,
    None,
    None,
    Action(Action::Version),
    Main,
    "usher's version"
);
opt!(
    USER,
    Some("user"),
    None,
    Some("USHER_USER"),
    Some("SPEC"),
    None,
    One,
    Privileges,
    "run the child as name, uid, name:group, uid:gid, name:gid or uid:group (from the image's \
     /etc files)"
);
opt!(
    CAP_KEEP,
    Some("cap-keep"),
    None,
    Some("USHER_CAP_KEEP"),
    Some("CAPS"),
    None,
    One,
    Privileges,
    "the child keeps only these capabilities (e.g. NET_BIND_SERVICE), as ambient"
);
opt!(
    ALLOW_NEW_PRIVS,
    Some("allow-new-privs"),
    None,
    Some("USHER_ALLOW_NEW_PRIVS"),
    None,
    None,
    Switch,
    Privileges,
    "do not set no_new_privs on the child"
);
opt!(
    ENV_FILE,
    Some("env-file"),
    None,
    Some("USHER_ENV_FILE"),
    Some("PATH"),
    None,
    List,
    Privileges,
    "load a dotenv file (repeatable; variables already set win)"
);
opt!(
    SECRET_ENV,
    Some("secret-env"),
    None,
    Some("USHER_SECRET_ENV"),
    Some("NAMES"),
    None,
    One,
    Privileges,
    "read the file named by NAME_FILE into NAME (comma list, or * for every *_FILE)"
);
opt!(
    SUBREAPER,
    None,
    Some('s'),
    None,
    None,
    None,
    Ignored,
    Migration,
    "tini: become a subreaper (usher always does)"
);
opt!(
    KILL_GROUP,
    None,
    Some('g'),
    None,
    None,
    None,
    Ignored,
    Migration,
    "tini: signal the process group (usher always does)"
);
opt!(
    PARENT_DEATH_SIGNAL,
    None,
    Some('p'),
    None,
    Some("SIG"),
    None,
    One,
    Migration,
    "tini: the signal usher gets (and forwards) when its parent dies"
);
opt!(
    WARN_ON_REAP,
    None,
    Some('w'),
    None,
    None,
    None,
    Switch,
    Migration,
    "tini: warn when a process other than the child is reaped"
);
opt!(
    LICENSE,
    Some("license"),
    Some('l'),
    None,
    None,
    None,
    Action(Action::License),
    Migration,
    "tini: print the license"
);

/// Every option of `usher [OPTIONS] COMMAND`, in `--help` order.
pub const ALL: &[&Opt] = &[
    &GRACE,
    &DRAIN,
    &REWRITE,
    &SINGLE_CHILD,
    &REMAP_EXIT,
    &HEALTH_ADDR,
    &READY_WHEN,
    &LOG_FORMAT,
    &LOG_FIELD,
    &LOG_MAX_RECORD,
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

opt!(
    PROBE_TIMEOUT,
    Some("timeout"),
    Some('t'),
    None,
    Some("DURATION"),
    Some("2s"),
    One,
    Main,
    "give up after this long, connecting included"
);
opt!(
    PROBE_HELP,
    Some("help"),
    Some('h'),
    None,
    None,
    None,
    Action(Action::Help),
    Main,
    "this text"
);

/// Every option of `usher probe`.
pub const PROBE: &[&Opt] = &[&PROBE_TIMEOUT, &PROBE_HELP];

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
