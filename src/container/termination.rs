//! Kubernetes' termination message: why the container ended, in a few lines written to
//! `terminationMessagePath` (/dev/termination-log, a file the kubelet mounts), which
//! `kubectl describe pod` shows as the container's last state message. The kubelet reads at
//! most 4096 bytes of it (Kubernetes, "Determine the Reason for Pod Failure").

use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::supervise::signals::Signo;
use crate::supervise::state::ChildExit;

/// Where Kubernetes mounts the file by default.
pub const PATH: &str = "/dev/termination-log";

/// The most of the message the kubelet reads.
pub const LIMIT: usize = 4096;

/// Why the container ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ending<'a> {
    /// How the main child ended; `None` when it could not be reaped (stuck after SIGKILL).
    pub exit: Option<ChildExit>,
    /// usher's exit status (after `--remap-exit`).
    pub status: u8,
    /// The main child was killed by the OOM killer.
    pub oom_killed: bool,
    /// usher sent SIGKILL when this grace period ran out.
    pub grace_killed: Option<Duration>,
    /// usher stopped the app because its liveness check failed (`--on-unhealthy stop`): the
    /// check and why.
    pub unhealthy: Option<&'a str>,
}

/// The message: one line per fact, the main child's end first, usher's status last.
pub fn render(ending: &Ending) -> String {
    let mut text = String::new();
    let _ = match ending.exit {
        Some(ChildExit::Exited(code)) => writeln!(text, "the app exited with status {code}"),
        Some(ChildExit::Signaled(signo)) => match Signo::new(signo) {
            Some(signal) => writeln!(text, "the app was killed by {signal}"),
            None => writeln!(text, "the app was killed by signal {signo}"),
        },
        None => writeln!(text, "the app did not end: usher could not reap it"),
    };
    if ending.oom_killed {
        text.push_str("it was killed by the OOM killer: out of memory\n");
    }
    if let Some(reason) = ending.unhealthy {
        let _ = writeln!(text, "usher stopped it because it was unhealthy: {reason}");
    }
    if let Some(grace) = ending.grace_killed {
        let _ = writeln!(text, "usher sent SIGKILL after the {grace:?} grace period");
    }
    let _ = writeln!(text, "usher exit status {}", ending.status);
    text
}

/// The message when the app could not even start (`reason`: the error, as usher's
/// `spawn_failed` event says it), usher exiting with `status` (126 or 127).
pub fn render_not_started(reason: &str, status: u8) -> String {
    format!("usher could not start the app: {reason}\nusher exit status {status}\n")
}

/// Why the message could not be written.
#[derive(Debug, thiserror::Error)]
#[error("failed to write the termination message to {}", path.display())]
pub struct TerminationError {
    path: PathBuf,
    #[source]
    source: io::Error,
}

/// Writes `message` (its first [`LIMIT`] bytes, cut at a character boundary) over the file at
/// `path` if it exists: `Ok(false)` when it does not (not on Kubernetes), without creating it.
/// A file usher may not write (read-only, another owner) is an error the caller may log at
/// debug level.
pub fn write(path: &Path, message: &str) -> Result<bool, TerminationError> {
    let fail = |source| TerminationError {
        path: path.to_path_buf(),
        source,
    };
    let mut file = match std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(fail(e)),
    };
    file.write_all(bounded(message).as_bytes()).map_err(fail)?;
    Ok(true)
}

/// The longest prefix of `message` within [`LIMIT`] bytes that ends on a character boundary.
fn bounded(message: &str) -> &str {
    let mut end = message.len().min(LIMIT);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    &message[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ending(exit: ChildExit, status: u8) -> Ending<'static> {
        Ending {
            exit: Some(exit),
            status,
            oom_killed: false,
            grace_killed: None,
            unhealthy: None,
        }
    }

    #[test]
    fn renders_each_kind_of_end() {
        assert_eq!(
            render(&ending(ChildExit::Exited(3), 3)),
            "the app exited with status 3\nusher exit status 3\n"
        );
        let oom = Ending {
            oom_killed: true,
            ..ending(ChildExit::Signaled(libc::SIGKILL), 137)
        };
        assert_eq!(
            render(&oom),
            "the app was killed by SIGKILL\nit was killed by the OOM killer: out of memory\n\
             usher exit status 137\n"
        );
        let hung = Ending {
            unhealthy: Some("live: http://127.0.0.1:8080/live timed out 3 times"),
            grace_killed: Some(Duration::from_secs(8)),
            ..ending(ChildExit::Signaled(libc::SIGKILL), 137)
        };
        assert_eq!(
            render(&hung),
            "the app was killed by SIGKILL\nusher stopped it because it was unhealthy: live: \
             http://127.0.0.1:8080/live timed out 3 times\nusher sent SIGKILL after the 8s \
             grace period\nusher exit status 137\n"
        );
        assert_eq!(
            render(&ending(ChildExit::Signaled(99), 227)),
            "the app was killed by signal 99\nusher exit status 227\n"
        );
        let stuck = Ending {
            exit: None,
            grace_killed: Some(Duration::from_secs(8)),
            ..ending(ChildExit::Exited(0), 137)
        };
        assert_eq!(
            render(&stuck),
            "the app did not end: usher could not reap it\nusher sent SIGKILL after the 8s \
             grace period\nusher exit status 137\n"
        );
    }

    #[test]
    fn renders_an_app_that_never_started() {
        assert_eq!(
            render_not_started("failed to run \"/app\": No such file or directory", 127),
            "usher could not start the app: failed to run \"/app\": No such file or \
             directory\nusher exit status 127\n"
        );
    }

    #[test]
    fn bounds_at_a_character_boundary() {
        let long = "é".repeat(LIMIT);
        assert_eq!(bounded(&long).len(), LIMIT);
        let odd = format!("x{long}");
        assert_eq!(bounded(&odd).len(), LIMIT - 1);
        assert_eq!(bounded("short"), "short");
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("usher-termination-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        dir.join(name)
    }

    #[test]
    fn writes_only_an_existing_file_truncating_it() {
        let absent = scratch("absent");
        assert!(matches!(write(&absent, "x"), Ok(false)));
        assert!(!absent.exists());

        let log = scratch("termination-log");
        let _ = std::fs::write(&log, "an older and longer message\n");
        assert!(matches!(write(&log, "new\n"), Ok(true)));
        assert_eq!(std::fs::read_to_string(&log).ok().as_deref(), Some("new\n"));
        assert!(matches!(write(&log, &"y".repeat(2 * LIMIT)), Ok(true)));
        assert_eq!(
            std::fs::metadata(&log).map(|m| m.len()).ok(),
            Some(LIMIT as u64)
        );
        let _ = std::fs::remove_file(&log);
        if let Some(dir) = log.parent() {
            let _ = std::fs::remove_dir(dir);
        }

        let Err(error) = write(&std::env::temp_dir(), "x") else {
            unreachable!("wrote to a directory");
        };
        assert!(
            error
                .to_string()
                .starts_with("failed to write the termination message to ")
        );
    }
}
