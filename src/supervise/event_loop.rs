//! The event loop: waits for signals and deadlines, turns them (and what the reaper finds) into
//! events for the supervisor, and carries out the actions it returns.

use std::io;
use std::time::Instant;

use std::sync::Arc;

use crate::health::Health;
use crate::log_io::events::{debug, error, info, warn};
use crate::supervise::process_table;
use crate::supervise::reaper;
use crate::supervise::signals::Signo;
use crate::supervise::state::{Action, Event, Left, Policy, Scope, Supervisor};
use crate::sys::{self, SignalInbox};

/// At most this many signals are taken per wake-up, so that a flood of signals (or a child
/// bouncing them back) cannot hold off reaping and the grace deadline.
const SIGNALS_PER_WAKE: usize = 64;

/// The running supervision: the state machine and what the loop needs to carry out its actions.
pub struct Run {
    supervisor: Supervisor,
    main_pid: i32,
    is_pid1: bool,
    warn_on_reap: bool,
    health: Arc<Health>,
    /// usher's terminal while the main child is its foreground group.
    terminal: Option<sys::Terminal>,
}

impl Run {
    pub fn new(policy: Policy, main_pid: i32, warn_on_reap: bool, health: Arc<Health>) -> Run {
        Run {
            supervisor: Supervisor::new(policy),
            main_pid,
            is_pid1: std::process::id() == 1,
            warn_on_reap,
            health,
            terminal: None,
        }
    }

    /// The terminal handed to the main child, to take back when it exits.
    pub fn with_terminal(mut self, terminal: Option<sys::Terminal>) -> Run {
        self.terminal = terminal;
        self
    }

    /// Supervises until it is time to exit, and returns usher's exit status.
    pub fn until_exit(mut self, inbox: &SignalInbox) -> u8 {
        match self.event_loop(inbox) {
            Ok(code) => code,
            Err(e) => {
                // Without its signal inbox usher can neither forward nor reap: end everything
                // rather than hang the container.
                error!(
                    signal_handling_failed,
                    "signal handling failed ({e}): killing every process left"
                );
                self.signal_left(Signo::KILL, Left::Everyone);
                2
            }
        }
    }

    fn event_loop(&mut self, inbox: &SignalInbox) -> io::Result<u8> {
        let my_pid = std::process::id();
        loop {
            let timeout = self
                .supervisor
                .deadline()
                .map(|d| d.saturating_duration_since(Instant::now()));
            inbox.wait(timeout)?;
            // Signals are carried out before reaping: a forward to the main child's pid must
            // happen while that pid is still its own (a zombie at worst), never after.
            for _ in 0..SIGNALS_PER_WAKE {
                let Some(received) = inbox.read()? else { break };
                let Some(signal) = Signo::new(received.signo) else {
                    continue;
                };
                if signal == Signo::CHLD {
                    continue; // the reap below runs on every wake-up
                }
                // A write of ours to a closed pipe: the kernel's doing, not a signal to pass on.
                if signal == Signo::PIPE && received.sender_pid == my_pid {
                    continue;
                }
                debug!(
                    signal_received,
                    signal = %signal,
                    sender_pid = received.sender_pid,
                    "received {signal} from pid {}",
                    received.sender_pid
                );
                if let Some(code) = self.feed(Event::Signal(signal)) {
                    return Ok(code);
                }
            }
            let round = reaper::reap_all(self.main_pid, self.warn_on_reap)?;
            if round.others > 0 {
                self.health.reaped(round.others);
            }
            if let Some(exit) = round.main_exit {
                self.health.child_exited(exit.code());
                info!(
                    child_exited,
                    pid = self.main_pid,
                    status = exit.code(),
                    "main child {} exited with status {}",
                    self.main_pid,
                    exit.code()
                );
                if let Some(terminal) = self.terminal.take() {
                    take_back(&terminal);
                }
            }
            if round.main_exit.is_some() || round.others > 0 || !round.children_left {
                let event = Event::Reaped {
                    main: round.main_exit,
                    children_left: round.children_left,
                };
                if let Some(code) = self.feed(event) {
                    return Ok(code);
                }
            }
            let deadline_passed = self
                .supervisor
                .deadline()
                .is_some_and(|d| d <= Instant::now());
            if deadline_passed && let Some(code) = self.feed(Event::Deadline) {
                return Ok(code);
            }
        }
    }

    /// Hands one event to the supervisor and carries out its actions at once; returns usher's
    /// exit status when it is time to exit.
    fn feed(&mut self, event: Event) -> Option<u8> {
        let actions = self.supervisor.handle(event, Instant::now());
        actions.into_iter().find_map(|action| self.execute(action))
    }

    /// Carries out one action; returns usher's exit status when it is time to exit.
    fn execute(&mut self, action: Action) -> Option<u8> {
        match action {
            Action::StopBegun { signal, drain } => {
                self.health.stop_begun();
                if drain.is_zero() {
                    info!(stop_requested, signal = %signal, "stop requested by {signal}");
                } else {
                    info!(
                        stop_requested,
                        signal = %signal,
                        drain_ms = u64::try_from(drain.as_millis()).unwrap_or(u64::MAX),
                        "stop requested by {signal}: draining for {drain:?} before forwarding"
                    );
                }
            }
            Action::Forward { signal, scope } => {
                let (target, whom) = match scope {
                    Scope::Group => (-self.main_pid, "process group"),
                    Scope::Child => (self.main_pid, "pid"),
                };
                match sys::send_signal(target, signal.number()) {
                    Ok(()) => {
                        self.health.forwarded(signal.number());
                        info!(
                            signal_forwarded,
                            signal = %signal,
                            pid = self.main_pid,
                            group = matches!(scope, Scope::Group),
                            "forwarded {signal} to {whom} {}",
                            self.main_pid
                        )
                    }
                    // Everyone in the group already exited: harmless.
                    Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {
                        debug!(
                            signal_not_forwarded,
                            signal = %signal,
                            pid = self.main_pid,
                            group = matches!(scope, Scope::Group),
                            "{signal} not forwarded: {whom} {} is gone",
                            self.main_pid
                        )
                    }
                    Err(e) => warn!(
                        signal_forward_failed,
                        signal = %signal,
                        pid = self.main_pid,
                        "failed to forward {signal} to {}: {e}",
                        self.main_pid
                    ),
                }
            }
            Action::SignalLeft { signal, who } => {
                match (signal, who) {
                    (Signo::KILL, _) => debug!(
                        remaining_signalled,
                        signal = %signal,
                        "sending SIGKILL to every process left"
                    ),
                    (_, Left::Everyone) => {
                        info!(
                            remaining_signalled,
                            signal = %signal,
                            "main child gone: sending {signal} to every process left"
                        )
                    }
                    (_, Left::OutsideGroup) => info!(
                        remaining_signalled,
                        signal = %signal,
                        "main child gone: sending {signal} to the processes outside its group"
                    ),
                }
                self.signal_left(signal, who);
            }
            Action::GraceOver => {
                warn!(
                    grace_over,
                    signal = "SIGKILL",
                    "grace period over: sending SIGKILL to every process left"
                )
            }
            Action::AbandonUnreaped => {
                warn!(
                    unreaped_abandoned,
                    "processes still unreaped after SIGKILL: exiting anyway"
                )
            }
            // `usher_exiting` is said by startup once the child's output is drained: it is
            // the last record.
            Action::Exit(code) => return Some(code),
        }
        None
    }

    /// Signals the processes left, each once. As PID 1 every process in the namespace is
    /// usher's to end; otherwise only its own tree is: the main child's group and usher's
    /// direct children (orphans it adopted as subreaper), never `kill(-1)`.
    fn signal_left(&self, signal: Signo, who: Left) {
        let candidates = match (who, self.is_pid1) {
            (Left::Everyone, true) => Vec::new(), // kill(-1) needs no list
            (Left::OutsideGroup, true) => process_table::namespace_processes(),
            (_, false) => process_table::direct_children(),
        };
        for target in process_table::targets(who, self.is_pid1, self.main_pid, &candidates) {
            match sys::send_signal(target, signal.number()) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                Err(e) => warn!(
                    signal_send_failed,
                    signal = %signal,
                    pid = target,
                    "failed to send {signal} to {target}: {e}"
                ),
            }
        }
    }
}

/// Makes usher's group the terminal's foreground again, the main child being gone: the
/// terminal goes back to whoever handed it to usher as it was (a shell above takes it back
/// from there), and Ctrl-C no longer goes to what is left of the child's group.
pub fn take_back(terminal: &sys::Terminal) {
    let fd = terminal.found_on;
    match terminal.take_back() {
        Ok(()) => debug!(
            terminal_taken_back,
            fd, "usher's process group is the foreground of the terminal on fd {fd} again"
        ),
        // A terminal hung up (its other side closed) answers ENOTTY or EIO: nothing to take.
        Err(e) => debug!(
            terminal_not_taken_back,
            fd, "cannot take back the terminal on fd {fd}: {e}"
        ),
    }
}
