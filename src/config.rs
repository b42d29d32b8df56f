//! The validated configuration of a supervised run, and its value types.
//!
//! A leaf of usher's module graph: `cli` builds a [`Config`], everything else reads one. It
//! imports only value types (signal numbers and rewrites, log levels, capability sets, secret
//! names, readiness sources), never the command line or any I/O.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::child::environment::SecretNames;
use crate::child::privileges::CapSet;
use crate::health::readiness::Source;
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
    pub ready_when: Source,
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
