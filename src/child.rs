//! Starting the command: usher runs it itself (no shell, no helper process in between), in a
//! session and process group of its own, with a clean signal mask and default dispositions.

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::process::Command;

use crate::sys;

/// Why the command could not be started.
#[derive(Debug)]
pub struct SpawnError {
    program: OsString,
    source: io::Error,
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

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.source.raw_os_error() {
            Some(libc::ENOENT | libc::ENOTDIR) => "command not found",
            Some(libc::EACCES | libc::EPERM | libc::ENOEXEC | libc::EISDIR) => {
                "command not executable"
            }
            _ => "failed to start command",
        };
        write!(f, "{what}: {:?} ({})", self.program, self.source)
    }
}

impl std::error::Error for SpawnError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Spawns the command with usher's stdio and environment and returns its pid. std's spawn
/// reports an exec failure back through a close-on-exec pipe (and reaps that child itself),
/// so no half-started child is left behind.
pub fn spawn(argv: &[OsString]) -> Result<i32, SpawnError> {
    let Some((program, args)) = argv.split_first() else {
        let source = io::Error::new(io::ErrorKind::InvalidInput, "empty command");
        return Err(SpawnError {
            program: OsString::new(),
            source,
        });
    };
    let mut command = Command::new(program);
    command.args(args);
    sys::prepare_child(&mut command);
    let child = command.spawn().map_err(|source| SpawnError {
        program: program.clone(),
        source,
    })?;
    // std's Child never waits on drop: the reaper alone owns waitpid.
    i32::try_from(child.id()).map_err(|_| SpawnError {
        program: program.clone(),
        source: io::Error::new(io::ErrorKind::InvalidData, "pid out of range"),
    })
}
