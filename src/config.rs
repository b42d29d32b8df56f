//! The validated configuration of a supervised run, and its value types.
//!
//! A leaf of usher's module graph: `cli` builds a [`Config`], everything else reads one. It
//! imports only value types (signal numbers and rewrites, log levels, capability sets, secret
//! names, readiness sources), never the command line or any I/O.

use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::child::environment::SecretNames;
use crate::child::privileges::CapSet;
use crate::http_check::{self, Target};
use crate::logs::{Level, LogSchema};
use crate::supervise::signals::{Rewrites, Signo};

/// The validated configuration of a supervised run.
#[derive(Debug)]
pub struct Config {
    /// The command and its arguments, exactly as given (never joined and re-split).
    pub command: Vec<OsString>,
    /// What the supervisor acts on: grace, drain, stop signals, rewrites, exit remaps...
    pub policy: Policy,
    /// tini's `-p`: the signal usher receives (and so forwards) when its parent dies.
    pub parent_death_signal: Option<Signo>,
    pub verbosity: u8,
    /// tini's `-w`: warn when a process other than the main child is reaped.
    pub warn_on_reap: bool,
    /// `--health-addr`: None when `off`.
    pub health_addr: Option<SocketAddr>,
    /// The flag or variable that set `health_addr`, None for the default address: only the
    /// default one may be found taken and left (another usher in the network namespace).
    pub health_addr_given_as: Option<String>,
    pub ready_when: ReadySource,
    /// `--live-when`: what `/health` checks besides the child running.
    pub live_when: LiveCheck,
    /// `--live-threshold`: failed `tcp:`/`http:` liveness checks in a row that make the app
    /// unhealthy.
    pub live_threshold: u32,
    pub log_format: LogMode,
    /// `--log-schema`: the names of the records' own fields.
    pub log_schema: LogSchema,
    /// `--log-field K=V`: static fields added to every record.
    pub log_fields: Vec<(String, String)>,
    /// `--log-max-record`, in bytes.
    pub log_max_record: usize,
    /// `--log-multiline`: whether stack traces are joined into one record each.
    pub log_multiline: Multiline,
    pub stderr_level: Level,
    /// `--user`, resolved against the image's /etc files when the child is prepared.
    pub user: Option<String>,
    pub cap_keep: Option<CapSet>,
    pub allow_new_privs: bool,
    pub env_files: Vec<PathBuf>,
    pub secret_env: Option<SecretNames>,
    /// How the user wrote the options checked when the child is prepared, for its errors.
    pub given_as: GivenAs,
    /// `USHER_*` variables in usher's environment that it does not know (main fills this from
    /// the process environment): each is a warning once usher's event output is set up.
    pub unknown_variables: Vec<String>,
}

/// The flag or variable that set each option read when the child is prepared (`--user` or
/// `USHER_USER`), so that an error found then names what the user actually wrote. The flag's
/// name when the option is not set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GivenAs {
    pub user: String,
    pub cap_keep: String,
    pub env_file: String,
    pub secret_env: String,
}

impl Default for GivenAs {
    fn default() -> Self {
        GivenAs {
            user: "--user".to_string(),
            cap_keep: "--cap-keep".to_string(),
            env_file: "--env-file".to_string(),
            secret_env: "--secret-env".to_string(),
        }
    }
}

/// What the supervisor (`supervise::state`) needs from the configuration.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    pub grace: Duration,
    pub drain: Duration,
    /// The received signals that begin a stop (`--stop-signal`).
    pub stop_signals: StopSignals,
    pub rewrites: Rewrites,
    pub single_child: bool,
    pub remap_exit: ExitRemap,
    /// `--wait-all`: a main child that exits leaving other processes does not end the run.
    pub wait_all: bool,
    /// `--on-unhealthy`: whether a failed liveness check stops the app.
    pub on_unhealthy: OnUnhealthy,
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

/// `--log-multiline`: what becomes a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Multiline {
    /// Each stack trace is one record (its lines joined with '\n'); other lines one each.
    Auto,
    /// Each line is one record.
    Off,
}

/// `--remap-exit`: child exit codes reported as 0 (tini's `-e`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExitRemap(Vec<u8>);

impl ExitRemap {
    pub fn new(codes: Vec<u8>) -> ExitRemap {
        ExitRemap(codes)
    }

    pub fn apply(&self, code: u8) -> u8 {
        if self.0.contains(&code) { 0 } else { code }
    }
}

/// `--grace` unless told otherwise. Docker's default stop timeout is 10 s (`docker stop -t`):
/// a TERM-ignoring app gets SIGKILL from usher at 8 s, and usher's exit after it (reaping, the
/// app's last output, usher's own events) is bounded by
/// [`EXIT_AFTER_KILL`](crate::supervise::state::EXIT_AFTER_KILL) (1 s), so usher, not Docker's
/// SIGKILL, ends the app, and its `grace_over` and `usher_exiting` events are written.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(8);

/// `--stderr-level` unless told otherwise: the level of a stderr line that names none. Info,
/// measured on the level corpus (tests/data/log_levels.txt, README "Levels"): of the stderr
/// lines that name no level, more are information (Go's `log`, request logs, shell
/// entrypoints, java.util.logging's header lines) than errors or warnings, as runtimes write
/// their ordinary logs to stderr; the lines that do say error or warn mostly say so themselves.
pub const DEFAULT_STDERR_LEVEL: Level = Level::Info;

/// `--stop-signal`: the signals whose receipt begins a graceful stop (drain, forward, grace,
/// SIGKILL); any other signal is only forwarded. Default TERM (Docker, Kubernetes) and INT
/// (Ctrl-C); an image whose `STOPSIGNAL` is QUIT (nginx) names QUIT here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StopSignals(Vec<Signo>);

impl Default for StopSignals {
    fn default() -> Self {
        StopSignals(vec![Signo::TERM, Signo::INT])
    }
}

impl StopSignals {
    /// A comma list of signals (`TERM,QUIT`, `SIGQUIT`, `3`): at least one, each catchable and
    /// not SIGCHLD (usher never sees KILL or STOP, and SIGCHLD is the reaper's).
    pub fn parse(text: &str) -> Result<StopSignals, String> {
        let mut signals = Vec::new();
        for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let signal = Signo::parse(name)?;
            if !signal.is_catchable() {
                return Err(format!(
                    "{signal} cannot be caught, so it can never begin a stop"
                ));
            }
            if signal == Signo::CHLD {
                return Err("SIGCHLD is never forwarded, so it cannot begin a stop".to_string());
            }
            if !signals.contains(&signal) {
                signals.push(signal);
            }
        }
        if signals.is_empty() {
            return Err("no signal given (e.g. TERM,INT, or QUIT for nginx)".to_string());
        }
        Ok(StopSignals(signals))
    }

    /// Whether receiving `signal` begins a stop.
    pub fn contains(&self, signal: Signo) -> bool {
        self.0.contains(&signal)
    }

    /// The first of them: what usher sends when it stops the app itself, as `docker stop`
    /// sends the image's STOPSIGNAL (`--on-unhealthy stop`).
    pub fn first(&self) -> Signo {
        self.0.first().copied().unwrap_or(Signo::TERM)
    }
}

/// Where the health server listens unless told otherwise.
pub const DEFAULT_HEALTH_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 8558);

/// `--ready-when`: what makes the child ready.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ReadySource {
    #[default]
    Started,
    /// A TCP connection to the address is accepted.
    Tcp(SocketAddr),
    /// An HTTP GET answers 200-399 (Kubernetes' rule).
    Http(Target),
    /// The file exists.
    File(PathBuf),
    /// The child says `READY=1` on `NOTIFY_SOCKET`.
    Notify,
}

impl ReadySource {
    /// `started`, `tcp:[HOST:]PORT`, `http:URL` (or the URL itself), `file:PATH`, `notify`.
    pub fn parse(spec: &str) -> Result<ReadySource, String> {
        if spec == "started" {
            return Ok(ReadySource::Started);
        }
        if spec == "notify" {
            return Ok(ReadySource::Notify);
        }
        if let Some(rest) = spec.strip_prefix("tcp:") {
            return parse_tcp(rest).map(ReadySource::Tcp);
        }
        if let Some(rest) = spec.strip_prefix("http:") {
            return parse_http(spec, rest).map(ReadySource::Http);
        }
        if let Some(path) = spec.strip_prefix("file:") {
            if path.is_empty() {
                return Err("file: needs a path".to_string());
            }
            return Ok(ReadySource::File(PathBuf::from(path)));
        }
        Err(format!(
            "unknown readiness source \"{spec}\" (started, tcp:[HOST:]PORT, http:URL, \
             file:PATH or notify)"
        ))
    }

    /// The child is ready as soon as it runs.
    pub fn is_started(&self) -> bool {
        matches!(self, ReadySource::Started)
    }
}

/// The rest of `tcp:[HOST:]PORT` (`tcp://HOST:PORT` too): a bare port is on 127.0.0.1.
fn parse_tcp(rest: &str) -> Result<SocketAddr, String> {
    let addr = if !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()) {
        let port = rest.parse().map_err(|_| http_check::not_a_port(rest))?;
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
    } else {
        let authority = rest.strip_prefix("//").unwrap_or(rest);
        if authority.contains('/') {
            return Err(format!(
                "\"{rest}\" has a path: a tcp: check is tcp:[HOST:]PORT"
            ));
        }
        http_check::parse_authority(authority)?
    };
    connectable(addr)
}

/// `spec` is `http:URL` or the URL itself (`rest` follows `http:`): both
/// `http:http://127.0.0.1:8080/ready` and `http://127.0.0.1:8080/ready`.
fn parse_http(spec: &str, rest: &str) -> Result<Target, String> {
    let url = if rest.starts_with("//") { spec } else { rest };
    // Said here, not by the target parser: its `tcp://` form is `usher probe`'s, not a spec's.
    let not_http = || format!("\"{url}\" is not an http:// URL (http://HOST:PORT/PATH)");
    if !url.starts_with("http://") {
        return Err(not_http());
    }
    match http_check::parse_target(url)? {
        target @ Target::Http { addr, .. } => connectable(addr).map(|_| target),
        Target::Tcp { .. } => Err(not_http()),
    }
}

/// A check's address: any port but 0.
fn connectable(addr: SocketAddr) -> Result<SocketAddr, String> {
    if addr.port() == 0 {
        return Err("port 0 cannot be connected to".to_string());
    }
    Ok(addr)
}

/// `--live-when watchdog` without an interval: the child must say `WATCHDOG=1` at least this
/// often (sd_watchdog_enabled(3): libraries ping at half of it).
pub const DEFAULT_WATCHDOG: Duration = Duration::from_secs(10);

/// `--live-when watchdog:DURATION`: no shorter interval (a ping every 50 ms is a busy loop).
pub const MIN_WATCHDOG: Duration = Duration::from_millis(100);

/// `--live-threshold` unless told otherwise: Kubernetes' `failureThreshold` default.
pub const DEFAULT_LIVE_THRESHOLD: u32 = 3;

/// `--live-when`: what `/health` checks, besides the child running.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LiveCheck {
    /// The child runs (usher's meaning of `/health` before `--live-when`).
    #[default]
    Running,
    /// A TCP connection to the address is accepted.
    Tcp(SocketAddr),
    /// An HTTP GET answers 200-399.
    Http(Target),
    /// The child says `WATCHDOG=1` on `NOTIFY_SOCKET` at least once per interval (systemd's
    /// `WatchdogSec=`, sd_notify(3)).
    Watchdog(Duration),
}

impl LiveCheck {
    /// `running`, `tcp:[HOST:]PORT`, `http:URL` (or the URL itself), `watchdog` or
    /// `watchdog:DURATION`; `duration` parses the interval (`cli`'s duration syntax).
    pub fn parse(
        spec: &str,
        duration: impl Fn(&str) -> Result<Duration, String>,
    ) -> Result<LiveCheck, String> {
        if spec == "running" {
            return Ok(LiveCheck::Running);
        }
        if spec == "watchdog" {
            return Ok(LiveCheck::Watchdog(DEFAULT_WATCHDOG));
        }
        if let Some(interval) = spec.strip_prefix("watchdog:") {
            let interval = duration(interval)?;
            if interval < MIN_WATCHDOG {
                return Err(format!(
                    "the watchdog interval must be at least {}ms",
                    MIN_WATCHDOG.as_millis()
                ));
            }
            return Ok(LiveCheck::Watchdog(interval));
        }
        if let Some(rest) = spec.strip_prefix("tcp:") {
            return parse_tcp(rest).map(LiveCheck::Tcp);
        }
        if let Some(rest) = spec.strip_prefix("http:") {
            return parse_http(spec, rest).map(LiveCheck::Http);
        }
        Err(format!(
            "unknown liveness check \"{spec}\" (running, tcp:[HOST:]PORT, http:URL, watchdog \
             or watchdog:DURATION)"
        ))
    }

    /// The check's name in events and bodies.
    pub fn kind(&self) -> &'static str {
        match self {
            LiveCheck::Running => "running",
            LiveCheck::Tcp(_) => "tcp",
            LiveCheck::Http(_) => "http",
            LiveCheck::Watchdog(_) => "watchdog",
        }
    }

    /// The watchdog interval, for `--live-when watchdog`.
    pub fn watchdog(&self) -> Option<Duration> {
        match self {
            LiveCheck::Watchdog(interval) => Some(*interval),
            _ => None,
        }
    }
}

/// `--on-unhealthy`: what usher does when the liveness check fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OnUnhealthy {
    /// `/health` answers 503; the orchestrator decides (Kubernetes restarts the container).
    #[default]
    Report,
    /// A graceful stop, then exit status
    /// [`UNHEALTHY_EXIT`](crate::supervise::state::UNHEALTHY_EXIT), so that a restart policy
    /// (Docker's `on-failure`, `unless-stopped`) starts the app again.
    Stop,
}

impl OnUnhealthy {
    pub fn parse(text: &str) -> Result<OnUnhealthy, String> {
        match text {
            "report" => Ok(OnUnhealthy::Report),
            "stop" => Ok(OnUnhealthy::Stop),
            other => Err(format!("unknown action \"{other}\" (report or stop)")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_signals() {
        let parsed = |text| StopSignals::parse(text).map(|s| s.0);
        assert_eq!(StopSignals::default().0, [Signo::TERM, Signo::INT]);
        let quit = Signo::parse("QUIT").unwrap();
        assert_eq!(parsed("QUIT"), Ok(vec![quit]));
        assert_eq!(parsed("sigquit, TERM,3"), Ok(vec![quit, Signo::TERM]));
        assert_eq!(parsed("RTMIN+1").unwrap().len(), 1);
        for (bad, why) in [
            ("", "no signal"),
            (" , ", "no signal"),
            ("KILL", "cannot be caught"),
            ("TERM,SIGSTOP", "cannot be caught"),
            ("9", "cannot be caught"),
            ("CHLD", "SIGCHLD"),
            ("TERMINATE", "unknown signal"),
            ("32", "reserved"),
        ] {
            let err = parsed(bad).unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
        let set = StopSignals::parse("QUIT").unwrap();
        assert!(set.contains(quit) && !set.contains(Signo::TERM));
    }

    #[test]
    fn liveness_specs() {
        // cli's duration syntax, for the values below.
        let duration = |text: &str| match text {
            "30s" => Ok(Duration::from_secs(30)),
            "100ms" => Ok(Duration::from_millis(100)),
            "99ms" => Ok(Duration::from_millis(99)),
            "0" => Ok(Duration::ZERO),
            _ => Err(format!("invalid duration \"{text}\"")),
        };
        let parse = |spec| LiveCheck::parse(spec, duration);
        let local = |port| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
        assert_eq!(parse("running"), Ok(LiveCheck::Running));
        assert_eq!(parse("tcp:8080"), Ok(LiveCheck::Tcp(local(8080))));
        assert_eq!(
            parse("tcp:10.0.0.1:53"),
            Ok(LiveCheck::Tcp("10.0.0.1:53".parse().unwrap()))
        );
        let Ok(LiveCheck::Http(Target::Http { addr, path, .. })) =
            parse("http://127.0.0.1:8080/healthz")
        else {
            panic!()
        };
        assert_eq!((addr, path.as_str()), (local(8080), "/healthz"));
        assert!(matches!(
            parse("http:http://[::1]:80/"),
            Ok(LiveCheck::Http(_))
        ));
        assert_eq!(parse("watchdog"), Ok(LiveCheck::Watchdog(DEFAULT_WATCHDOG)));
        assert_eq!(
            parse("watchdog:30s"),
            Ok(LiveCheck::Watchdog(Duration::from_secs(30)))
        );
        assert_eq!(
            parse("watchdog:100ms").map(|c| c.watchdog()),
            Ok(Some(MIN_WATCHDOG))
        );
        for (bad, why) in [
            ("bogus", "unknown liveness check"),
            ("started", "unknown liveness check"),
            ("notify", "unknown liveness check"),
            ("file:/tmp/x", "unknown liveness check"),
            ("", "unknown liveness check"),
            ("tcp:", "not HOST:PORT"),
            ("tcp:0", "port 0 cannot be connected to"),
            ("tcp:db:5432", "no DNS"),
            ("tcp:127.0.0.1:5/x", "has a path"),
            ("http://example.com:80/x", "no DNS"),
            ("http://127.0.0.1/x", "not HOST:PORT"),
            ("http://127.0.0.1:0/x", "port 0 cannot be connected to"),
            ("watchdog:", "invalid duration"),
            ("watchdog:soon", "invalid duration"),
            ("watchdog:0", "at least 100ms"),
            ("watchdog:99ms", "at least 100ms"),
        ] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
        assert_eq!(OnUnhealthy::parse("report"), Ok(OnUnhealthy::Report));
        assert_eq!(OnUnhealthy::parse("stop"), Ok(OnUnhealthy::Stop));
        for bad in ["", "restart", "STOP", "kill"] {
            assert!(
                OnUnhealthy::parse(bad)
                    .unwrap_err()
                    .contains("report or stop")
            );
        }
    }

    /// Errors speak the spec's own syntax, and say a bad port in the same words however it is
    /// written, for `--live-when` and `--ready-when` alike.
    #[test]
    fn spec_errors_say_the_same_thing_the_same_way() {
        let live = |spec| LiveCheck::parse(spec, |_| Ok(Duration::from_secs(1))).unwrap_err();
        let ready = |spec| ReadySource::parse(spec).unwrap_err();
        for spec in [
            "http:127.0.0.1:8080/healthz",
            "http:tcp://127.0.0.1:5",
            "http:ftp://127.0.0.1:21/",
            "http:",
        ] {
            let url = spec.strip_prefix("http:").unwrap_or_default();
            let expected = format!("\"{url}\" is not an http:// URL (http://HOST:PORT/PATH)");
            assert_eq!(live(spec), expected);
            assert_eq!(ready(spec), expected);
        }
        for (spec, port) in [
            ("tcp:70000", "70000"),
            ("tcp:127.0.0.1:70000", "70000"),
            ("tcp://127.0.0.1:70000", "70000"),
            ("http://127.0.0.1:99999/healthz", "99999"),
            ("http:http://127.0.0.1:65536/", "65536"),
        ] {
            let expected = format!("\"{port}\" is not a port (1-65535)");
            assert_eq!(live(spec), expected, "{spec}");
            assert_eq!(ready(spec), expected, "{spec}");
        }
        for spec in ["tcp:0", "tcp:127.0.0.1:0", "http://127.0.0.1:0/"] {
            assert_eq!(live(spec), "port 0 cannot be connected to", "{spec}");
            assert_eq!(ready(spec), "port 0 cannot be connected to", "{spec}");
        }
        // Neither speaks of `tcp://`, the probe's syntax.
        for spec in ["http:127.0.0.1:8080/healthz", "tcp:x", "bogus"] {
            assert!(!live(spec).contains("tcp://"), "{spec}: {}", live(spec));
            assert!(!ready(spec).contains("tcp://"), "{spec}: {}", ready(spec));
        }
    }

    #[test]
    fn specs() {
        let local = |port| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
        assert_eq!(ReadySource::parse("started"), Ok(ReadySource::Started));
        assert_eq!(ReadySource::parse("notify"), Ok(ReadySource::Notify));
        assert_eq!(
            ReadySource::parse("tcp:8080"),
            Ok(ReadySource::Tcp(local(8080)))
        );
        assert_eq!(
            ReadySource::parse("tcp:10.0.0.1:53"),
            Ok(ReadySource::Tcp("10.0.0.1:53".parse().unwrap()))
        );
        assert_eq!(
            ReadySource::parse("tcp:localhost:9"),
            Ok(ReadySource::Tcp(local(9)))
        );
        for spec in [
            "http:http://127.0.0.1:8080/ready",
            "http://127.0.0.1:8080/ready",
        ] {
            let Ok(ReadySource::Http(Target::Http { addr, path, .. })) = ReadySource::parse(spec)
            else {
                panic!("{spec}")
            };
            assert_eq!((addr, path.as_str()), (local(8080), "/ready"), "{spec}");
        }
        assert_eq!(
            ReadySource::parse("file:/tmp/ready"),
            Ok(ReadySource::File("/tmp/ready".into()))
        );
        for bad in [
            "tcp:",
            "tcp:0",
            "tcp:70000",
            "tcp:db:5432",
            "http:",
            "http:tcp://1.2.3.4:5",
            "http://example.com/x",
            "file:",
            "bogus",
            "",
        ] {
            assert!(ReadySource::parse(bad).is_err(), "{bad} accepted");
        }
    }
}
