//! The single owner of `waitpid(-1)`: nothing else in usher waits on a child.

use std::io;

use crate::log_io::events::{info, warn};
use crate::supervise::state::ChildExit;
use crate::sys::{self, Reaped};

/// Decodes a `waitpid` status (wait(2): WIFSIGNALED, WTERMSIG, WEXITSTATUS).
fn exit_from_wait_status(status: i32) -> ChildExit {
    if libc::WIFSIGNALED(status) {
        ChildExit::Signaled(libc::WTERMSIG(status))
    } else {
        ChildExit::Exited(u8::try_from(libc::WEXITSTATUS(status) & 0xff).unwrap_or(u8::MAX))
    }
}

/// What one round of reaping found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReapRound {
    /// The main child's end, if it was reaped in this round.
    pub main_exit: Option<ChildExit>,
    /// Other processes (orphans, grandchildren) reaped in this round.
    pub others: u32,
    /// The last process reaped in this round, the main child or another (`--wait-all` exits
    /// with the status of the last process reaped).
    pub last: Option<ChildExit>,
    /// Whether any child is still alive (or not yet reaped) after the round.
    pub children_left: bool,
}

/// Reaps every ended child until none is left to reap, so no zombie outlives one SIGCHLD.
pub fn reap_all(main_pid: i32, warn_on_orphan: bool) -> io::Result<ReapRound> {
    let mut round = ReapRound::default();
    loop {
        match sys::reap_one()? {
            Reaped::Child { pid, status } => {
                let exit = exit_from_wait_status(status);
                round.last = Some(exit);
                if pid == main_pid {
                    round.main_exit = Some(exit);
                } else {
                    round.others += 1;
                    if warn_on_orphan {
                        warn!(
                            process_reaped,
                            pid,
                            status = exit.code(),
                            "reaped process {pid} (exit status {})",
                            exit.code()
                        );
                    }
                }
            }
            Reaped::NoneReady => {
                round.children_left = true;
                break;
            }
            Reaped::NoChildren => break,
        }
    }
    if round.others > 0 {
        info!(
            orphans_reaped,
            count = round.others,
            "reaped {} orphaned process(es)",
            round.others
        );
    }
    Ok(round)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_wait_statuses() {
        // Raw statuses as the kernel encodes them: exit code in bits 8-15, signal in bits 0-6.
        assert_eq!(exit_from_wait_status(3 << 8), ChildExit::Exited(3));
        assert_eq!(exit_from_wait_status(0), ChildExit::Exited(0));
        assert_eq!(exit_from_wait_status(9), ChildExit::Signaled(9));
        assert_eq!(exit_from_wait_status(11 | 0x80), ChildExit::Signaled(11));
        assert_eq!(exit_from_wait_status(libc::SIGRTMIN()).code(), 128 + 34);
        assert_eq!(ChildExit::Signaled(15).code(), 143);
        assert_eq!(ChildExit::Exited(255).code(), 255);
    }
}
