//! Starting the command: usher runs it itself (no shell, no helper process in between), in a
//! session and process group of its own, with a clean signal mask and default dispositions.

pub mod environment;
pub mod privileges;
pub mod user;

use std::ffi::OsString;
use std::io;
use std::process::{Command, Stdio};

use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::Path;

use crate::config::{Config, GivenAs, LogMode};
use crate::log_io::events;
use crate::sys;
use environment::EnvError;
use privileges::{CapSet, Identity, NEEDED_TO_SWITCH, PrivilegeError, Privileges};
use user::UserError;

/// Why the command could not be started.
#[derive(Debug, thiserror::Error)]
#[error("{}: {program:?}", describe(source))]
pub struct SpawnError {
    program: OsString,
    #[source]
    source: io::Error,
}

/// The shell's words for an exec failure (execve(2) errors).
fn describe(source: &io::Error) -> &'static str {
    match source.raw_os_error() {
        Some(libc::ENOENT | libc::ENOTDIR) => "command not found",
        Some(libc::EACCES | libc::EPERM | libc::ENOEXEC | libc::EISDIR) => "command not executable",
        _ => "failed to start command",
    }
}

impl SpawnError {
    /// The shell's convention: 127 when the command is not found, 126 when it cannot run.
    pub fn exit_code(&self) -> u8 {
        match self.source.raw_os_error() {
            Some(libc::ENOENT | libc::ENOTDIR) => 127,
            _ => 126,
        }
    }
}

/// Why the child cannot be prepared: a configuration error (exit status 2). `option` is the
/// flag or variable at fault as the user wrote it (`--user`, `USHER_USER`). Where the cause is
/// another module's error, it is the source and the message is the option alone, so that the
/// printed chain (`startup::chain`) reads `OPTION: what is wrong: cause` on one line. Never
/// carries a secret's content: [`EnvError`] names variables, paths and lines only.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error("{option}")]
    User {
        option: String,
        #[source]
        source: UserError,
    },
    #[error("{option}: cannot read usher's own groups")]
    OwnGroups {
        option: String,
        #[source]
        source: io::Error,
    },
    #[error("{option}")]
    Privileges {
        option: String,
        #[source]
        source: PrivilegeError,
    },
    #[error("{option}: cannot read usher's own capabilities")]
    OwnCapabilities {
        option: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "{option}: usher itself lacks {missing} (the container was started without it; add it, \
         or run the container as the user instead)"
    )]
    MissingCapabilities { option: String, missing: CapSet },
    #[error("{option}: {outside} is not in usher's bounding set, so no child can have it")]
    OutsideBoundingSet { option: String, outside: CapSet },
    /// An env file (`--env-file`) or a secret (`--secret-env`).
    #[error("{option}")]
    Environment {
        option: String,
        #[source]
        source: EnvError,
    },
}

/// Everything the child is started with, read and checked before anything starts: its
/// environment (env files and secrets are read now, while usher may still be root, so a
/// root-only 0400 secret works) and its privileges. Deliberately not `Debug`: the environment
/// holds secrets, which must never reach any output.
pub struct ChildSpec {
    pub argv: Vec<OsString>,
    /// Pipe the child's stdout and stderr to usher (JSON logs) instead of sharing usher's.
    pub capture_output: bool,
    pub environment: Vec<(OsString, OsString)>,
    pub privileges: Privileges,
}

impl ChildSpec {
    /// Resolves `--user` against the image's /etc files, builds the environment and plans the
    /// privileges. Errors name the option or variable at fault and never quote a secret.
    pub fn prepare(config: &Config) -> Result<ChildSpec, PrepareError> {
        let given_as = &config.given_as;
        let user = match &config.user {
            Some(spec) => Some(user::resolve_in(spec, Path::new("/")).map_err(|source| {
                PrepareError::User {
                    option: given_as.user.clone(),
                    source,
                }
            })?),
            None => None,
        };
        let (uid, gid) = sys::effective_ids();
        let groups = sys::supplementary_groups().map_err(|source| PrepareError::OwnGroups {
            option: given_as.user.clone(),
            source,
        })?;
        let me = Identity { uid, gid, groups };
        let privileges = privileges::plan(me, user, config.cap_keep, config.allow_new_privs)
            .map_err(|source| PrepareError::Privileges {
                option: if source.is_about_user() {
                    given_as.user.clone()
                } else {
                    given_as.cap_keep.clone()
                },
                source,
            })?;
        check_capabilities(&privileges, given_as)?;
        let base = std::env::vars_os().collect();
        let mut environment =
            environment::with_env_files(base, &config.env_files).map_err(|source| {
                PrepareError::Environment {
                    option: given_as.env_file.clone(),
                    source,
                }
            })?;
        if let Some(names) = &config.secret_env {
            environment::apply_secrets(&mut environment, names).map_err(|source| {
                PrepareError::Environment {
                    option: given_as.secret_env.clone(),
                    source,
                }
            })?;
        }
        // gosu's rule: the child's HOME is its user's, whatever usher's own was (root's).
        if let Some(user) = &privileges.user {
            environment.retain(|(name, _)| name != "HOME");
            environment.push(("HOME".into(), user.home.clone().into()));
        }
        Ok(ChildSpec {
            argv: config.command.clone(),
            capture_output: config.log_format == LogMode::Json,
            environment,
            privileges,
        })
    }
}

/// usher must hold what it hands on, and what it needs to take the rest away: otherwise the
/// child would fail between fork and exec, too late for a clear error.
fn check_capabilities(privileges: &Privileges, given_as: &GivenAs) -> Result<(), PrepareError> {
    let needed = match (&privileges.switch_to, privileges.keep_caps) {
        (Some(_), keep) => CapSet(NEEDED_TO_SWITCH.0 | keep.unwrap_or_default().0),
        (None, Some(keep)) => CapSet(keep.0 | 1 << 8), // SETPCAP empties the bounding set
        (None, None) => return Ok(()),
    };
    let option = if privileges.switch_to.is_some() {
        &given_as.user
    } else {
        &given_as.cap_keep
    };
    let permitted =
        sys::own_permitted_capabilities().map_err(|source| PrepareError::OwnCapabilities {
            option: option.clone(),
            source,
        })?;
    let missing = CapSet(needed.0 & !permitted);
    if missing.0 != 0 {
        return Err(PrepareError::MissingCapabilities {
            option: option.clone(),
            missing,
        });
    }
    let keep = privileges.keep_caps.unwrap_or_default();
    let outside = (0..64).filter(|cap| keep.0 & (1 << cap) != 0 && !sys::in_bounding_set(*cap));
    let outside = CapSet(outside.fold(0, |set, cap| set | 1 << cap));
    if outside.0 != 0 {
        return Err(PrepareError::OutsideBoundingSet {
            option: given_as.cap_keep.clone(),
            outside,
        });
    }
    Ok(())
}

/// A started child: its pid and, when its output is captured, the read ends of its pipes.
pub struct Started {
    pub pid: i32,
    pub stdout: Option<File>,
    pub stderr: Option<File>,
}

/// Spawns the command and returns its pid (and its output pipes when captured). std's spawn reports an exec
/// failure (or a failed credential change) back through a close-on-exec pipe and reaps that
/// child itself, so no half-started child is left behind.
pub fn spawn(spec: &ChildSpec) -> Result<Started, SpawnError> {
    let Some((program, args)) = spec.argv.split_first() else {
        let source = io::Error::new(io::ErrorKind::InvalidInput, "empty command");
        return Err(SpawnError {
            program: OsString::new(),
            source,
        });
    };
    let mut command = Command::new(program);
    command
        .args(args)
        .env_clear()
        .envs(spec.environment.iter().map(|(k, v)| (k, v)));
    let privileges = &spec.privileges;
    if privileges.switch_to.is_some() {
        // A terminal no session owns could become the dropped child's controlling terminal,
        // and with it a way to type into whatever reads that terminal (TIOCSTI).
        for fd in sys::claim_terminals() {
            events::warn!(
                terminal_not_claimed,
                fd,
                "fd {fd} is a terminal usher cannot claim: the child gets /dev/null"
            );
            match fd {
                0 => command.stdin(Stdio::null()),
                1 => command.stdout(Stdio::null()),
                _ => command.stderr(Stdio::null()),
            };
        }
    }
    if spec.capture_output {
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
    }
    sys::prepare_child(
        &mut command,
        sys::ChildPrivileges {
            switch_to: privileges
                .switch_to
                .as_ref()
                .map(|c| (c.uid, c.gid, c.groups.clone())),
            keep_caps: privileges.keep_caps.map(|set| set.0),
            no_new_privs: privileges.no_new_privs,
        },
    );
    let mut child = command.spawn().map_err(|source| SpawnError {
        program: program.clone(),
        source,
    })?;
    // std's Child never waits on drop: the reaper alone owns waitpid.
    let pid = i32::try_from(child.id()).map_err(|_| SpawnError {
        program: program.clone(),
        source: io::Error::new(io::ErrorKind::InvalidData, "pid out of range"),
    })?;
    let stdout = child
        .stdout
        .take()
        .map(|pipe| File::from(OwnedFd::from(pipe)));
    let stderr = child
        .stderr
        .take()
        .map(|pipe| File::from(OwnedFd::from(pipe)));
    Ok(Started {
        pid,
        stdout,
        stderr,
    })
}
