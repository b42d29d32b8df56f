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
use crate::logs::Level;
use crate::supervise::signals::{Rewrites, Signo};

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
    pub ready_when: ReadySource,
    pub log_format: LogMode,
    /// `--log-field K=V`: static fields added to every record.
    pub log_fields: Vec<(String, String)>,
    /// `--log-max-record`, in bytes.
    pub log_max_record: usize,
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
            let addr = match rest.parse::<u16>() {
                Ok(port) => SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
                Err(_) => http_check::parse_authority(rest.strip_prefix("//").unwrap_or(rest))?,
            };
            if addr.port() == 0 {
                return Err("port 0 cannot be connected to".to_string());
            }
            return Ok(ReadySource::Tcp(addr));
        }
        if let Some(rest) = spec.strip_prefix("http:") {
            // Both `http:http://127.0.0.1:8080/ready` and `http://127.0.0.1:8080/ready`.
            let url = if rest.starts_with("//") { spec } else { rest };
            return match http_check::parse_target(url)? {
                target @ Target::Http { .. } => Ok(ReadySource::Http(target)),
                Target::Tcp { .. } => Err(format!("\"{url}\" is not an http:// URL")),
            };
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
        *self == ReadySource::Started
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
