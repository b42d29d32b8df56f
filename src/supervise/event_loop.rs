//! The event loop: waits for signals and deadlines, turns them (and what the reaper finds) into
//! events for the supervisor, and carries out the actions it returns.

use std::io;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use std::sync::Arc;

use crate::container::oom;
use crate::health::Health;
use crate::health::liveness::AlarmReceiver;
use crate::log_io::events::{debug, error, info, warn};
use crate::supervise::process_table;
use crate::supervise::reaper::{self, Killed, ReapSummary};
use crate::supervise::signals::Signo;
use crate::supervise::state::{
    Action, ChildExit, Event, Left, Policy, Scope, StopCause, Supervisor, UNHEALTHY_EXIT,
};
use crate::sys::{self, SignalInbox};

/// At most this many signals are taken per wake-up, so that a flood of signals (or a child
/// bouncing them back) cannot hold off reaping and the grace deadline.
const SIGNALS_PER_WAKE: usize = 64;

/// How the supervision ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ending {
    /// usher's exit status.
    pub status: u8,
    /// Once a stop was under way: when usher must be gone (see
    /// [`Supervisor::exit_deadline`]).
    pub exit_by: Option<Instant>,
    /// A failed liveness check began the stop (`--on-unhealthy stop`).
    pub unhealthy: bool,
    /// How the main child ended; `None` when it was never reaped.
    pub main_exit: Option<ChildExit>,
    /// The OOM killer killed the main child.
    pub oom_killed: bool,
    /// usher sent SIGKILL to every process left when this grace period ran out.
    pub grace_killed: Option<Duration>,
}

/// The running supervision: the state machine and what the loop needs to carry out its actions.
pub struct Run {
    supervisor: Supervisor,
    main_pid: i32,
    is_pid1: bool,
    warn_on_reap: bool,
    health: Arc<Health>,
    reaped: ReapSummary,
    /// usher's terminal while the main child is its foreground group.
    terminal: Option<sys::Terminal>,
    /// Rung by the liveness watchers when the check fails (`--on-unhealthy stop`).
    alarm: Option<AlarmReceiver>,
    /// The OOM kill counter, when it can be read.
    oom: Option<oom::Watcher>,
    oom_killed: bool,
    grace_killed: Option<Duration>,
}

impl Run {
    pub fn new(policy: Policy, main_pid: i32, warn_on_reap: bool, health: Arc<Health>) -> Run {
        Run {
            supervisor: Supervisor::new(policy),
            main_pid,
            is_pid1: std::process::id() == 1,
            warn_on_reap,
            health,
            reaped: ReapSummary::default(),
            terminal: None,
            alarm: None,
            oom: None,
            oom_killed: false,
            grace_killed: None,
        }
    }

    /// The liveness alarm to wait on beside the signals (`--on-unhealthy stop`).
    pub fn with_alarm(mut self, alarm: Option<AlarmReceiver>) -> Run {
        self.alarm = alarm;
        self
    }

    /// Watches the OOM kill counter (its baseline taken before the child started).
    pub fn watching_oom(mut self, watcher: Option<oom::Watcher>) -> Run {
        self.oom = watcher;
        self
    }

    /// The terminal handed to the main child, to take back when it exits.
    pub fn with_terminal(mut self, terminal: Option<sys::Terminal>) -> Run {
        self.terminal = terminal;
        self
    }

    /// Supervises until it is time to exit: usher's exit status, and by when the rest (the
    /// child's last output, usher's own events) must be done.
    pub fn until_exit(mut self, inbox: &SignalInbox) -> Ending {
        let result = self.event_loop(inbox);
        if let Some(count) = self.reaped.rest() {
            reaper::say_reaped(count);
        }
        let status = match result {
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
        };
        Ending {
            status,
            exit_by: self.supervisor.exit_deadline(),
            unhealthy: self.supervisor.stopped_unhealthy(),
            main_exit: self.supervisor.main_exit(),
            oom_killed: self.oom_killed,
            grace_killed: self.grace_killed,
        }
    }

    fn event_loop(&mut self, inbox: &SignalInbox) -> io::Result<u8> {
        let my_pid = std::process::id();
        loop {
            // The reaping summary's and the OOM counter's deadlines are the loop's own, beside
            // the state machine's.
            let deadline = [
                self.supervisor.deadline(),
                self.reaped.deadline(),
                self.oom.as_ref().map(oom::Watcher::deadline),
            ]
            .into_iter()
            .flatten()
            .min();
            let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            inbox.wait(self.alarm.as_ref().map(AsFd::as_fd), timeout)?;
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
            if let Some(alarm) = &self.alarm {
                alarm.drain();
            }
            if self.health.take_unhealthy()
                && let Some(code) = self.feed(Event::Unhealthy)
            {
                return Ok(code);
            }
            let round = reaper::reap_all(self.main_pid, self.warn_on_reap, self.oom.is_some())?;
            if round.others > 0 {
                self.health.reaped(round.others);
            }
            if let Some(count) = self.reaped.reaped(round.others, Instant::now()) {
                reaper::say_reaped(count);
            }
            let main_oom_killed = self.observe_oom(&round.killed);
            if let Some(exit) = round.main_exit {
                if main_oom_killed {
                    info!(
                        child_exited,
                        pid = self.main_pid,
                        status = exit.code(),
                        oom_killed = true,
                        "main child {} was killed by the OOM killer (exit status {})",
                        self.main_pid,
                        exit.code()
                    );
                } else {
                    info!(
                        child_exited,
                        pid = self.main_pid,
                        status = exit.code(),
                        "main child {} exited with status {}",
                        self.main_pid,
                        exit.code()
                    );
                }
                if let Some(terminal) = self.terminal.take() {
                    take_back(&terminal);
                }
            }
            if round.main_exit.is_some() || round.others > 0 || !round.children_left {
                let event = Event::Reaped {
                    main: round.main_exit,
                    last: round.last,
                    children_left: round.children_left,
                };
                let actions = self.supervisor.handle(event, Instant::now());
                if let Some(exit) = round.main_exit {
                    // Under --wait-all the processes it left are the app now: /health stays up.
                    if self.supervisor.outlived() {
                        self.health.child_outlived(exit.code());
                    } else {
                        self.health.child_exited(exit.code());
                    }
                }
                if let Some(code) = self.carry_out(actions) {
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

    /// Reads the OOM kill counter when it is time (see [`oom::Watcher::observe`]): counts the
    /// kills, says each victim (`oom_kill`), and whether the main child is one.
    fn observe_oom(&mut self, killed: &[Killed]) -> bool {
        let Some(watcher) = &mut self.oom else {
            return false;
        };
        let pids: Vec<i32> = killed.iter().map(|k| k.pid).collect();
        let Some(verdict) = watcher.observe(&pids, self.main_pid, Instant::now()) else {
            return false;
        };
        if verdict.kills > 0 {
            self.health.oom_killed(verdict.kills);
        }
        for &pid in &verdict.victims {
            let name = killed
                .iter()
                .find(|k| k.pid == pid)
                .and_then(|k| k.name.as_deref());
            match name {
                Some(name) => warn!(
                    oom_kill,
                    pid, name, "the OOM killer killed process {pid} ({name}): out of memory"
                ),
                None => warn!(
                    oom_kill,
                    pid, "the OOM killer killed process {pid}: out of memory"
                ),
            }
        }
        if verdict.unknown > 0 {
            let count = verdict.unknown;
            warn!(
                oom_kill,
                count,
                "the OOM killer killed {count} process(es) in the container, victim unknown \
                 (not one usher reaped: a worker its own parent reaped, or a process outside \
                 usher's tree)"
            );
        }
        if verdict.main_child {
            self.oom_killed = true;
            self.health.child_oom_killed();
        }
        verdict.main_child
    }

    /// Hands one event to the supervisor and carries out its actions at once; returns usher's
    /// exit status when it is time to exit.
    fn feed(&mut self, event: Event) -> Option<u8> {
        let actions = self.supervisor.handle(event, Instant::now());
        self.carry_out(actions)
    }

    /// Carries out actions in order; returns usher's exit status when it is time to exit.
    fn carry_out(&mut self, actions: Vec<Action>) -> Option<u8> {
        actions.into_iter().find_map(|action| self.execute(action))
    }

    /// Carries out one action; returns usher's exit status when it is time to exit.
    fn execute(&mut self, action: Action) -> Option<u8> {
        match action {
            Action::StopBegun {
                signal,
                drain,
                cause: StopCause::Unhealthy,
            } => {
                self.health.stop_begun();
                let reason = self.health.live_result();
                let when = if drain.is_zero() {
                    "now".to_string()
                } else {
                    format!("after draining for {drain:?}")
                };
                warn!(
                    unhealthy_stop,
                    signal = %signal,
                    drain_ms = u64::try_from(drain.as_millis()).unwrap_or(u64::MAX),
                    reason = reason.as_str(),
                    "liveness failed ({reason}): stopping the app gracefully ({signal} {when}); \
                     usher will exit with status {UNHEALTHY_EXIT}"
                );
            }
            Action::StopBegun { signal, drain, .. } => {
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
            Action::Forward {
                signal,
                scope: Scope::Left(who),
            } => {
                self.health.forwarded(signal.number());
                info!(
                    signal_forwarded,
                    signal = %signal,
                    group = false,
                    "forwarded {signal} to {}",
                    left_text(who)
                );
                self.signal_left(signal, who);
            }
            Action::Forward { signal, scope } => {
                let (target, whom) = self.target(scope);
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
            Action::Continue {
                after,
                scope: Scope::Left(who),
            } => {
                info!(
                    continue_sent,
                    signal = "SIGCONT",
                    after = %after,
                    group = false,
                    "sent SIGCONT to {} after {after}, so that a stopped process acts on it",
                    left_text(who)
                );
                self.signal_left(Signo::CONT, who);
            }
            Action::Continue { after, scope } => {
                let (target, whom) = self.target(scope);
                match sys::send_signal(target, Signo::CONT.number()) {
                    Ok(()) => info!(
                        continue_sent,
                        signal = "SIGCONT",
                        after = %after,
                        pid = self.main_pid,
                        group = matches!(scope, Scope::Group),
                        "sent SIGCONT to {whom} {} after {after}, so that a stopped app acts on it",
                        self.main_pid
                    ),
                    // The app already exited on the stop signal: nothing to resume.
                    Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                    Err(e) => warn!(
                        signal_send_failed,
                        signal = "SIGCONT",
                        pid = self.main_pid,
                        "failed to send SIGCONT to {whom} {}: {e}",
                        self.main_pid
                    ),
                }
            }
            Action::SignalLeft { signal, who } => {
                match (signal, who) {
                    // After the grace period's SIGKILL (said by `grace_over`), after each round
                    // of reaping that still finds processes.
                    (Signo::KILL, _) => debug!(
                        remaining_signalled,
                        signal = %signal,
                        "SIGKILL again: processes still alive after a round of reaping"
                    ),
                    (_, who) => info!(
                        remaining_signalled,
                        signal = %signal,
                        "main child gone: sending {signal} to {}",
                        left_text(who)
                    ),
                }
                self.signal_left(signal, who);
            }
            Action::Outlived => info!(
                waiting_for_others,
                pid = self.main_pid,
                "main child {} gone, processes left: --wait-all keeps usher running until the \
                 last one exits",
                self.main_pid
            ),
            Action::GraceOver { grace } => {
                self.grace_killed = Some(grace);
                warn!(
                    grace_over,
                    signal = "SIGKILL",
                    grace_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX),
                    "grace period over ({grace:?}): sending SIGKILL to every process left"
                );
                self.signal_left(Signo::KILL, Left::Everyone);
            }
            Action::AbandonUnreaped => {
                warn!(
                    unreaped_abandoned,
                    "processes still unreaped after SIGKILL: exiting anyway"
                )
            }
            // `usher_exiting` is said by startup once the child's output is drained: it is
            // the last record.
            Action::Exit(code) => {
                // The processes the main child left are gone too: /health says so from now on.
                if self.supervisor.outlived() {
                    let main = self.supervisor.main_exit().map_or(0, |exit| exit.code());
                    self.health.child_exited(main);
                }
                return Some(code);
            }
        }
        None
    }

    /// The kill(2) target of a scope aimed at the main child, and how to name it.
    fn target(&self, scope: Scope) -> (i32, &'static str) {
        match scope {
            Scope::Child => (self.main_pid, "pid"),
            Scope::Group | Scope::Left(_) => (-self.main_pid, "process group"),
        }
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

/// The processes a [`Left`] reaches, in words.
fn left_text(who: Left) -> &'static str {
    match who {
        Left::Everyone => "every process left",
        Left::OutsideGroup => "the processes outside its group",
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
