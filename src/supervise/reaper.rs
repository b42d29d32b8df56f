//! The single owner of `waitpid(-1)`: nothing else in usher waits on a child; and the summary
//! of what it reaps besides the main child ([`ReapSummary`]).

use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};

use crate::container::process_tree;
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
    /// The processes SIGKILL ended in this round, main child included, in reaping order: the
    /// OOM killer's victims are among them.
    pub killed: Vec<Killed>,
}

/// A process reaped after SIGKILL ended it.
#[derive(Debug, PartialEq, Eq)]
pub struct Killed {
    pub pid: i32,
    /// Its command name (/proc/PID/comm), read while it was a zombie; `None` when not asked
    /// for or not readable.
    pub name: Option<String>,
}

/// The pid and command name of the next ended child if SIGKILL ended it, without reaping it
/// (waitid(2) with WNOWAIT): a zombie's /proc/PID/comm is readable only until it is reaped.
/// `None` for any other child, or none (nix's decoding fails for a death by a real-time
/// signal, which is no SIGKILL either).
fn peek_sigkilled() -> Option<(i32, Option<String>)> {
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    match waitid(Id::All, flags) {
        Ok(WaitStatus::Signaled(pid, Signal::SIGKILL, _)) => {
            let pid = pid.as_raw();
            Some((pid, process_tree::name(Path::new("/proc"), pid)))
        }
        _ => None,
    }
}

/// Reaps every ended child until none is left to reap, so no zombie outlives one SIGCHLD.
/// With `name_killed`, the command name of each process SIGKILL ended is read before it is
/// reaped (one more waitid per process reaped), to name an OOM victim.
pub fn reap_all(main_pid: i32, warn_on_orphan: bool, name_killed: bool) -> io::Result<ReapRound> {
    let mut round = ReapRound::default();
    loop {
        let peeked = if name_killed { peek_sigkilled() } else { None };
        match sys::reap_one()? {
            Reaped::Child { pid, status } => {
                let exit = exit_from_wait_status(status);
                round.last = Some(exit);
                if exit == ChildExit::Signaled(libc::SIGKILL) {
                    // The peeked child is the one reaped unless another ended in between.
                    let name = peeked.filter(|(peeked, _)| *peeked == pid);
                    round.killed.push(Killed {
                        pid,
                        name: name.and_then(|(_, name)| name),
                    });
                }
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
    Ok(round)
}

/// At most one `orphans_reaped` line per this long: a leaky HEALTHCHECK or a fork-heavy app
/// reaps orphans all day, and /metrics has the exact count anyway.
pub const SUMMARY_INTERVAL: Duration = Duration::from_secs(60);

/// Orphans reaped, summarised for the log: the first ones are said at once, later ones are
/// held until [`SUMMARY_INTERVAL`] has passed since the last line, then said as one count; what
/// is still held at exit is said then. Pure: time is passed in, the loop waits for
/// [`ReapSummary::deadline`] beside the supervisor's own deadline.
#[derive(Debug, Default)]
pub struct ReapSummary {
    /// Reaped since the last line.
    held: u64,
    /// When the last line was said.
    last_said: Option<Instant>,
}

impl ReapSummary {
    /// Counts `count` orphans reaped at `now`; returns the count to say now, if it is time.
    pub fn reaped(&mut self, count: u32, now: Instant) -> Option<u64> {
        self.held += u64::from(count);
        self.due(now)
    }

    /// When a held count is to be said; None when nothing is held.
    pub fn deadline(&self) -> Option<Instant> {
        match self.last_said {
            Some(last) if self.held > 0 => Some(last + SUMMARY_INTERVAL),
            _ => None,
        }
    }

    /// The held count, if the interval since the last line is over at `now`.
    pub fn due(&mut self, now: Instant) -> Option<u64> {
        if self.held == 0
            || self
                .last_said
                .is_some_and(|last| now < last + SUMMARY_INTERVAL)
        {
            return None;
        }
        self.last_said = Some(now);
        Some(std::mem::take(&mut self.held))
    }

    /// At exit: whatever is still held.
    pub fn rest(&mut self) -> Option<u64> {
        (self.held > 0).then(|| std::mem::take(&mut self.held))
    }
}

/// The `orphans_reaped` event, for a count from [`ReapSummary`].
pub fn say_reaped(count: u64) {
    info!(orphans_reaped, count, "reaped {count} orphaned process(es)");
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

    #[test]
    fn the_first_orphans_are_said_at_once_and_later_ones_once_a_minute() {
        let start = Instant::now();
        let at = |secs: u64| start + Duration::from_secs(secs);
        let mut summary = ReapSummary::default();
        assert_eq!(summary.deadline(), None);
        assert_eq!(summary.rest(), None);
        assert_eq!(summary.reaped(1, at(0)), Some(1));
        assert_eq!(summary.deadline(), None, "nothing held");
        // A burst, in many rounds: held, one deadline for all of it.
        for second in 1..=30 {
            assert_eq!(summary.reaped(100, at(second)), None);
        }
        assert_eq!(summary.deadline(), Some(at(60)));
        assert_eq!(summary.due(at(59)), None);
        assert_eq!(summary.due(at(60)), Some(3000));
        assert_eq!(summary.due(at(61)), None);
        assert_eq!(summary.deadline(), None);
        // A probe every 30 s that leaves one orphan: one line a minute, not one per probe.
        assert_eq!(summary.reaped(1, at(90)), None);
        assert_eq!(summary.deadline(), Some(at(120)));
        assert_eq!(summary.reaped(1, at(120)), Some(2));
        assert_eq!(summary.reaped(1, at(150)), None);
        // Reaped long after the last line: said at once.
        assert_eq!(summary.rest(), Some(1));
        assert_eq!(summary.reaped(4, at(1000)), Some(4));
        assert_eq!(summary.reaped(2, at(1001)), None);
        // At exit, what is held.
        assert_eq!(summary.rest(), Some(2));
        assert_eq!(summary.rest(), None);
        assert_eq!(summary.deadline(), None);
    }
}
