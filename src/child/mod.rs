//! Starting the command: usher runs it itself (no shell, no helper process in between), in a
//! process group of its own (in a session of its own, or as the foreground of usher's
//! terminal: [`placement`]), with a clean signal mask and default dispositions.

pub mod environment;
pub mod privileges;
pub mod user;

use std::ffi::OsString;
use std::io;
use std::process::{Command, Stdio};

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use crate::config::{Config, GivenAs, LogMode};
use crate::log_io::events;
use crate::sys::{self, StdioObject};
use environment::EnvError;
use privileges::{CapSet, Identity, NEEDED_TO_SWITCH, PrivilegeError, Privileges};
use user::UserError;

/// Why the command could not be started.
#[derive(Debug, thiserror::Error)]
#[error("{}: {program:?}{}", describe(source), hint(source))]
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

/// What to look at when the command could not be started for want of a resource, rather than
/// for what it is (fork(2), pipe(2) and execve(2) errors); empty for the others.
fn hint(source: &io::Error) -> String {
    match source.raw_os_error() {
        Some(libc::E2BIG) => " (its arguments and environment are over the kernel's limit for \
                             exec: 128 KiB for one string, a quarter of the stack limit in all)"
            .into(),
        Some(libc::EAGAIN) => " (no process could be created: a pids limit, such as a cgroup's \
                              pids.max or docker run --pids-limit, or RLIMIT_NPROC, is reached)"
            .into(),
        Some(libc::EMFILE) => match sys::open_files_limit() {
            Some(limit) => format!(" (usher's open-files limit, RLIMIT_NOFILE, is {limit})"),
            None => " (usher's open-files limit, RLIMIT_NOFILE, is reached)".into(),
        },
        Some(libc::ENFILE) => " (the system's open-files limit is reached)".into(),
        Some(libc::ENOMEM) => " (out of memory)".into(),
        _ => String::new(),
    }
}

impl SpawnError {
    /// No process could be created (EAGAIN from fork: a pids limit or RLIMIT_NPROC).
    pub fn out_of_processes(&self) -> bool {
        self.source.raw_os_error() == Some(libc::EAGAIN)
    }

    /// usher, or the system, ran out of file descriptors (EMFILE, ENFILE).
    pub fn out_of_descriptors(&self) -> bool {
        matches!(
            self.source.raw_os_error(),
            Some(libc::EMFILE | libc::ENFILE)
        )
    }

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
    /// Warnings for once usher's events are set up: the image's files that a numeric `--user`
    /// did without because they could not be read (see [`user::resolve_in_noting`]).
    pub unreadable: Vec<String>,
    /// The `oom_score_adj` the child sets itself before its exec (see
    /// `container::oom_score`); None to keep usher's.
    pub oom_score_adj: Option<i32>,
}

impl ChildSpec {
    /// Resolves `--user` against the image's /etc files, builds the environment and plans the
    /// privileges. Errors name the option or variable at fault and never quote a secret.
    pub fn prepare(config: &Config) -> Result<ChildSpec, PrepareError> {
        let given_as = &config.given_as;
        let mut unreadable = Vec::new();
        let user = match &config.user {
            Some(spec) => {
                let (user, unread) =
                    user::resolve_in_noting(spec, Path::new("/")).map_err(|source| {
                        PrepareError::User {
                            option: given_as.user.clone(),
                            source,
                        }
                    })?;
                unreadable.extend(unread.iter().map(|e| {
                    format!(
                        "{} {spec}: {}: the child runs as a uid the image does not know (group 0 \
                         unless given, HOME=/, no USER or LOGNAME)",
                        given_as.user,
                        crate::startup::chain(e)
                    )
                }));
                Some(user)
            }
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
        if let Some(user) = &privileges.user {
            set_user_variables(&mut environment, user);
        }
        Ok(ChildSpec {
            argv: config.command.clone(),
            capture_output: config.log_format == LogMode::Json,
            environment,
            privileges,
            unreadable,
            oom_score_adj: None,
        })
    }
}

/// The variables that name the user, set from its passwd entry whatever usher's own were
/// (root's): gosu's rule for HOME, login(1)'s for USER and LOGNAME. A uid with no entry has no
/// name: USER and LOGNAME are then left unset, as `docker run --user UID` does, rather than
/// pass root's on; its HOME is `/` (see [`user::Credentials::home`]).
fn set_user_variables(environment: &mut Vec<(OsString, OsString)>, user: &user::Credentials) {
    const FROM_PASSWD: [&str; 3] = ["HOME", "USER", "LOGNAME"];
    environment.retain(|(name, _)| !FROM_PASSWD.iter().any(|from| name == *from));
    environment.push(("HOME".into(), user.home.clone().into()));
    if let Some(name) = &user.name {
        environment.push(("USER".into(), name.clone().into()));
        environment.push(("LOGNAME".into(), name.clone().into()));
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
    /// usher's terminal, when the child was made its foreground group: usher takes it back
    /// when the child exits.
    pub terminal: Option<sys::Terminal>,
}

/// Where the child runs with respect to usher's terminal (design.md, "Terminals").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Placement {
    /// In its own process group in usher's session, as the terminal's foreground group.
    Foreground,
    /// In a session of its own: usher has no terminal (`docker run -d`, Kubernetes without
    /// `tty`), or it runs in the background of a shell.
    OwnSession,
    /// In a session of its own although usher has a terminal: the child runs as another user,
    /// and the terminal's other readers may be more privileged and outlive usher (usher was
    /// started from someone's shell, not as a container's PID 1). With the terminal as its
    /// controlling terminal the child could push input into it (TIOCSTI, tty_ioctl(4)) that
    /// such a reader would take as typed once usher is gone.
    Withheld,
}

/// Decides [`Placement`]: `terminal` when usher has a controlling terminal in the foreground
/// ([`sys::Terminal::find`]), `other_user` with `--user`, `container_console` when usher is
/// PID 1 and leads its own session: then the terminal is the container's console, and every
/// process that has it as controlling terminal dies with the container, as under
/// `docker run -it --user` without an init.
fn placement(terminal: bool, other_user: bool, container_console: bool) -> Placement {
    match (terminal, other_user, container_console) {
        (false, _, _) => Placement::OwnSession,
        (true, false, _) | (true, true, true) => Placement::Foreground,
        (true, true, false) => Placement::Withheld,
    }
}

/// Finds usher's terminal and decides whether the child gets it: the terminal to hand over, if
/// any; says so when it is withheld.
fn terminal_for_child(other_user: bool) -> Option<sys::Terminal> {
    let terminal = sys::Terminal::find();
    let container_console = std::process::id() == 1 && sys::leads_own_session();
    match placement(terminal.is_some(), other_user, container_console) {
        Placement::Foreground => terminal,
        Placement::OwnSession => None,
        Placement::Withheld => {
            let fd = terminal.map_or(0, |t| t.found_on);
            events::warn!(
                terminal_withheld,
                fd,
                "fd {fd} is a terminal that may have more privileged readers than the child \
                 after usher is gone (usher is not a container's PID 1): the child, as another \
                 user, gets no controlling terminal (no job control), so that it cannot type \
                 into it"
            );
            None
        }
    }
}

/// Says that the child's output is not relayed although JSON logs were asked for: `why`, a
/// resource usher ran out of (descriptors for the pipes, threads for the relays).
pub fn say_relay_off(why: &str) {
    events::warn!(
        log_relay_off,
        reason = why,
        "{why}: the child writes to usher's stdout and stderr itself, as plain lines, not JSON \
         records"
    );
}

/// Spawns the command and returns its pid (and its output pipes when `capture`, the JSON log
/// format, and usher has the descriptors for them: else the child shares usher's stdout and
/// stderr, and a warning says so). std's spawn reports an exec failure (or a failed credential
/// change) back through a close-on-exec pipe and reaps that child itself, so no half-started
/// child is left behind.
pub fn spawn(spec: &ChildSpec, capture: bool) -> Result<Started, SpawnError> {
    let mut piped = false;
    match spawn_once(spec, capture, &mut piped) {
        // The pipes took the last descriptors that starting the child needs: better without.
        Err(e) if piped && e.out_of_descriptors() => {
            say_relay_off(&format!(
                "cannot start the child with pipes for its output: {}",
                crate::startup::chain(&e)
            ));
            spawn_once(spec, false, &mut piped)
        }
        result => result,
    }
}

/// [`spawn`], once; `piped` tells whether the child was given pipes for its output.
fn spawn_once(spec: &ChildSpec, capture: bool, piped: &mut bool) -> Result<Started, SpawnError> {
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
    // Which of usher's own fds 0-2 the child gets as they are.
    let mut inherited = [true; 3];
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
            if let Some(slot) = usize::try_from(fd)
                .ok()
                .and_then(|fd| inherited.get_mut(fd))
            {
                *slot = false;
            }
        }
    }
    // After claiming: a terminal usher has just claimed is usher's controlling terminal now.
    let terminal = terminal_for_child(privileges.switch_to.is_some());
    // The child's stdio must be its user's too when it runs as another uid than usher's.
    let new_owner = privileges
        .switch_to
        .as_ref()
        .filter(|user| user.uid != sys::effective_ids().0);
    let spawn_error = |source| SpawnError {
        program: program.clone(),
        source,
    };
    let (mut stdout, mut stderr) = (None, None);
    if capture {
        match output_pipe(1, new_owner).and_then(|out| Ok((out, output_pipe(2, new_owner)?))) {
            Ok(((out_read, out_write), (err_read, err_write))) => {
                command.stdout(out_write).stderr(err_write);
                (stdout, stderr) = (Some(out_read), Some(err_read));
                *piped = true;
                inherited[1] = false;
                inherited[2] = false;
            }
            // Out of descriptors: better the app's lines as they are than no app.
            Err(e) => say_relay_off(&format!(
                "cannot make the pipes for the child's output: {e}"
            )),
        }
    }
    if let Some(user) = new_owner {
        hand_inherited_stdio(inherited, user.uid);
    }
    let session = terminal.as_ref().map_or(sys::ChildSession::Own, |t| {
        sys::ChildSession::Foreground(t.raw_fd())
    });
    sys::prepare_child(
        &mut command,
        session,
        sys::ChildPrivileges {
            switch_to: privileges
                .switch_to
                .as_ref()
                .map(|c| (c.uid, c.gid, c.groups.clone())),
            keep_caps: privileges.keep_caps.map(|set| set.0),
            no_new_privs: privileges.no_new_privs,
        },
        spec.oom_score_adj,
    );
    let child = command.spawn().map_err(spawn_error)?;
    // The command holds the pipes' write ends: usher must not keep them open, or the relays
    // would never see the end of the child's output.
    drop(command);
    // std's Child never waits on drop: the reaper alone owns waitpid.
    let pid = i32::try_from(child.id()).map_err(|_| SpawnError {
        program: program.clone(),
        source: io::Error::new(io::ErrorKind::InvalidData, "pid out of range"),
    })?;
    Ok(Started {
        pid,
        stdout,
        stderr,
        terminal,
    })
}

/// Says whether the child `pid` became the foreground of `terminal`. It took the foreground
/// before its exec, which std's spawn waited for: if usher still has it, the hand-off failed
/// (the child cannot say so itself).
pub fn say_terminal_handed(terminal: &sys::Terminal, pid: i32) {
    let fd = terminal.found_on;
    if terminal.is_foreground() {
        events::warn!(
            terminal_not_handed_over,
            fd,
            pid,
            "could not make pid {pid} the foreground of the terminal on fd {fd}: Ctrl-C and \
             Ctrl-Z reach usher, not the child"
        );
    } else {
        events::info!(
            terminal_handed_over,
            fd,
            pid,
            "pid {pid} runs as the foreground process group of the terminal on fd {fd}"
        );
    }
}

/// How the child opens its fds 0, 1 and 2 by name.
const STDIO_PATHS: [&str; 3] = ["/dev/stdin", "/dev/stdout", "/dev/stderr"];

/// A pipe for the child's fd `number` (1 or 2) in JSON mode: (usher's read end, the child's
/// write end). A pipe is mode 0600 and belongs to whoever made it: with `new_owner` it is given
/// to the child's user and group, as if the child had made it, so that it can open
/// `/dev/stdout` or `/proc/self/fd/1` by name.
fn output_pipe(
    number: usize,
    new_owner: Option<&user::Credentials>,
) -> io::Result<(File, OwnedFd)> {
    let (read, write) = sys::pipe()?;
    if let Some(user) = new_owner
        && let Err(e) = sys::change_owner(write.as_fd(), user.uid, Some(user.gid))
    {
        let path = STDIO_PATHS.get(number).unwrap_or(&"its stdio");
        events::warn!(
            stdio_not_handed_over,
            fd = number,
            uid = user.uid,
            "cannot give the pipe of fd {number} to uid {} ({e}): the child cannot open {path} \
             by name",
            user.uid
        );
    }
    Ok((File::from(read), write))
}

/// Gives the stdio descriptors the child inherits from usher (`inherited[fd]`) to `uid`, as
/// runc's fixStdioPermissions does for a container's user: opening `/dev/stdout` and the like
/// goes through the object's own permission check, and a pipe is mode 0600, owned by whoever
/// made it (the runtime's shim: root). Only what belongs to this container alone changes
/// hands: an anonymous pipe, and a pseudo-terminal that is the controlling terminal of the
/// session usher leads as PID 1 (the container's console, `docker run -t`; the same test as
/// the terminal hand-off's). A regular file, a named FIFO, a device such as `/dev/null` and a
/// terminal of a session outside keep their owner: the change would outlast usher, on the
/// file system or in someone's login session. As with runc, only the owner changes, not the
/// group (a terminal's is `tty`). Failures are warnings: the child still has its descriptors.
fn hand_inherited_stdio(inherited: [bool; 3], uid: u32) {
    let (stdin, stdout, stderr) = (io::stdin(), io::stdout(), io::stderr());
    let fds = [stdin.as_fd(), stdout.as_fd(), stderr.as_fd()];
    let pid1 = std::process::id() == 1;
    // PID 1 alone is not enough: `unshare --pid` from a root shell makes usher PID 1 of a
    // namespace while the terminal stays that shell's session's, and outlives usher.
    let container_console = |fd| pid1 && sys::is_own_session_terminal(fd);
    for (number, ((fd, inherited), path)) in
        fds.into_iter().zip(inherited).zip(STDIO_PATHS).enumerate()
    {
        if !inherited {
            continue;
        }
        let what = match sys::stdio_object(fd) {
            Ok((owner, _)) if owner == uid => continue,
            Ok((_, StdioObject::Pipe)) => "a pipe",
            Ok((_, StdioObject::PtySlave)) if container_console(fd) => "the container's terminal",
            Ok((owner, _)) => {
                events::debug!(
                    stdio_kept,
                    fd = number,
                    uid = owner,
                    "fd {number} is not a pipe or the container's terminal: it stays uid \
                     {owner}'s, and the child opens {path} only if its mode allows"
                );
                continue;
            }
            Err(e) => {
                events::debug!(
                    stdio_kept,
                    fd = number,
                    "fd {number}: cannot tell what it is ({e}): left as it is"
                );
                continue;
            }
        };
        match sys::change_owner(fd, uid, None) {
            Ok(()) => events::debug!(
                stdio_handed_over,
                fd = number,
                uid,
                "fd {number} ({what}) now belongs to uid {uid}"
            ),
            Err(e) => events::warn!(
                stdio_not_handed_over,
                fd = number,
                uid,
                "cannot give fd {number} ({what}) to uid {uid} ({e}): the child cannot open \
                 {path} by name"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn environment(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs.iter().map(|(k, v)| (k.into(), v.into())).collect()
    }

    fn user(name: Option<&str>, home: &str) -> user::Credentials {
        user::Credentials {
            uid: 1000,
            gid: 1000,
            groups: vec![1000],
            home: home.into(),
            name: name.map(Into::into),
        }
    }

    #[test]
    fn the_child_gets_the_terminal_unless_a_privileged_reader_could_outlive_usher() {
        use Placement::*;
        // (usher has a terminal, --user, usher is PID 1 leading its session) -> placement
        let cases = [
            ((false, false, false), OwnSession),
            ((false, true, true), OwnSession),
            ((true, false, false), Foreground),
            ((true, false, true), Foreground),
            ((true, true, true), Foreground),
            ((true, true, false), Withheld),
        ];
        for ((terminal, other_user, console), expected) in cases {
            let got = placement(terminal, other_user, console);
            assert_eq!(got, expected, "{terminal} {other_user} {console}");
        }
    }

    #[test]
    fn the_users_variables_replace_usher_s_own() {
        let mut env = environment(&[
            ("USER", "root"),
            ("PATH", "/bin"),
            ("LOGNAME", "root"),
            ("HOME", "/root"),
        ]);
        set_user_variables(&mut env, &user(Some("app"), "/home/app"));
        let expected = [
            ("PATH", "/bin"),
            ("HOME", "/home/app"),
            ("USER", "app"),
            ("LOGNAME", "app"),
        ];
        assert_eq!(env, environment(&expected));
        // No passwd entry, no name: root's are not passed on.
        let mut env = environment(&[("USER", "root"), ("LOGNAME", "root")]);
        set_user_variables(&mut env, &user(None, "/"));
        assert_eq!(env, environment(&[("HOME", "/")]));
    }
}
