//! The lifecycle as a state machine: events in, actions out, time passed in. It does no I/O,
//! so every transition is unit-tested without processes.
//!
//! ```text
//! Running --stop signal--> Draining --drain over--> Stopping --grace over--> Killing --> exit
//!  |    |                     |                      ^   (forwarding goes on)     |
//!  |    +--main child exits---+----------------------+                            |
//!  |                     (everyone left gets SIGTERM)         all reaped (any phase) -> exit
//!  +--main child exits, others left, --wait-all--> Outliving --stop signal--> Draining ...
//!                                                  (no deadline; all reaped -> exit)
//! ```
//!
//! Every stop signal usher sends (the forwarded one, or SIGTERM to the processes left) is
//! followed by SIGCONT to the same processes, as systemd does: a stopped app (`kill -STOP`,
//! Ctrl-Z) can then act on it rather than sit out the grace period.
//!
//! With `--on-unhealthy stop`, a failed liveness check ([`Event::Unhealthy`]) begins the same
//! stop as the first `--stop-signal` received (drain, that signal, grace), and usher then exits
//! with [`UNHEALTHY_EXIT`] however the app ended.

use std::time::{Duration, Instant};

#[cfg(test)]
use crate::config::ExitRemap;
use crate::config::OnUnhealthy;
pub use crate::config::Policy;
#[cfg(test)]
use crate::config::StopSignals;
use crate::supervise::signals::Signo;

/// After SIGKILL, how long to wait for the last processes to be reaped before exiting anyway.
/// A process in uninterruptible sleep (a hung NFS read) must not hang the container forever;
/// as PID 1 the kernel kills whatever is left when usher exits.
pub const REAP_AFTER_KILL_LIMIT: Duration = Duration::from_millis(750);

/// From the grace period's end to usher's exit, at most about this long: the reaping above,
/// the child's last output and usher's own events share it (see [`Supervisor::exit_deadline`]).
/// `--drain` + `--grace` + this must fit the orchestrator's stop timeout.
pub const EXIT_AFTER_KILL: Duration = Duration::from_secs(1);

/// usher's exit status after a stop that a failed liveness check began (`--on-unhealthy
/// stop`), whatever the app's own (an app that exits 0 on SIGTERM included), and not
/// remapped: a restart policy must see a failure. 70 is sysexits.h's EX_SOFTWARE; it is none
/// of usher's other statuses (2, 126, 127, 128+N).
pub const UNHEALTHY_EXIT: u8 = 70;

/// How a child ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildExit {
    Exited(u8),
    /// Killed by this signal number.
    Signaled(i32),
}

impl ChildExit {
    /// The shell's convention: the exit code, or 128+N for signal N.
    pub fn code(self) -> u8 {
        match self {
            ChildExit::Exited(code) => code,
            ChildExit::Signaled(signo) => u8::try_from(128 + signo).unwrap_or(u8::MAX),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// usher received a signal (never SIGCHLD: that is the reaper's business).
    Signal(Signo),
    /// A round of reaping: `main` when the main child was among the reaped, `last` the last
    /// process reaped in the round (the main child or another), `children_left` whether any
    /// child remains after it.
    Reaped {
        main: Option<ChildExit>,
        last: Option<ChildExit>,
        children_left: bool,
    },
    /// The deadline from [`Supervisor::deadline`] has passed.
    Deadline,
    /// The liveness check (`--live-when`) has just failed.
    Unhealthy,
}

/// Why a graceful stop began.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopCause {
    /// usher received a `--stop-signal`.
    Received,
    /// The liveness check failed, and `--on-unhealthy stop` asks for a stop.
    Unhealthy,
}

/// Whom a signal goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The main child's process group (the default).
    Group,
    /// The main child alone (`--single-child`).
    Child,
    /// The processes still alive, each once: after the main child exited under `--wait-all`,
    /// the processes it left are the app.
    Left(Left),
}

/// Which of the processes still alive a [`Action::SignalLeft`] reaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Left {
    /// All of them: the main child's group, and every other process usher is responsible for.
    Everyone,
    /// Those outside the main child's process group (daemons that called setsid, adopted
    /// orphans): the group itself already had the stop signal.
    OutsideGroup,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// A graceful stop has begun, because usher received `signal` or because liveness failed
    /// (then `signal` is the stop signal to come, the first `--stop-signal`); the health server
    /// will answer /ready with 503 from here on.
    StopBegun {
        signal: Signo,
        drain: Duration,
        cause: StopCause,
    },
    /// Pass on a signal usher received.
    Forward {
        signal: Signo,
        scope: Scope,
    },
    /// SIGCONT right after the stop signal `after` went to `scope`: a stopped app must be able
    /// to act on it.
    Continue {
        after: Signo,
        scope: Scope,
    },
    /// Signal the processes still alive, each once (usher's own doing: SIGTERM when the main
    /// child is gone, SIGKILL again after a round of reaping once the grace is over).
    SignalLeft {
        signal: Signo,
        who: Left,
    },
    /// The main child exited, and `--wait-all` keeps usher running while the processes it left
    /// live.
    Outlived,
    /// The grace period (`grace`) ran out with processes still alive: SIGKILL to every process
    /// left.
    GraceOver {
        grace: Duration,
    },
    /// Processes were still unreaped when the limit after SIGKILL ran out.
    AbandonUnreaped,
    Exit(u8),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Running,
    /// The main child exited under `--wait-all`, leaving processes: wait for them, no deadline.
    Outliving,
    /// A stop signal arrived; it is forwarded at `forward_at`.
    Draining {
        signal: Signo,
        forward_at: Instant,
    },
    /// The stop signal was forwarded, or the main child exited: SIGKILL at `kill_at`.
    Stopping {
        kill_at: Instant,
    },
    /// SIGKILL was sent; waiting for the reaper until `give_up_at`.
    Killing {
        give_up_at: Instant,
    },
    Done,
}

#[derive(Debug)]
pub struct Supervisor {
    policy: Policy,
    phase: Phase,
    main_exit: Option<ChildExit>,
    /// The last process reaped so far.
    last_exit: Option<ChildExit>,
    /// `--wait-all` took effect: the main child's end did not end the run.
    outlived: bool,
    /// Once a stop or the grace period is under way: when usher must be gone.
    exit_by: Option<Instant>,
    /// A failed liveness check began the stop: usher exits with [`UNHEALTHY_EXIT`].
    stopped_unhealthy: bool,
}

impl Supervisor {
    pub fn new(policy: Policy) -> Supervisor {
        Supervisor {
            policy,
            phase: Phase::Running,
            main_exit: None,
            last_exit: None,
            outlived: false,
            exit_by: None,
            stopped_unhealthy: false,
        }
    }

    /// Whether a failed liveness check began the stop (`--on-unhealthy stop`).
    pub fn stopped_unhealthy(&self) -> bool {
        self.stopped_unhealthy
    }

    /// When the supervisor next needs a [`Event::Deadline`], if ever.
    pub fn deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::Draining { forward_at, .. } => Some(forward_at),
            Phase::Stopping { kill_at } => Some(kill_at),
            Phase::Killing { give_up_at } => Some(give_up_at),
            Phase::Running | Phase::Outliving | Phase::Done => None,
        }
    }

    /// When usher must have exited, once a stop (or the grace period after the main child's
    /// exit) has begun: the grace period's end plus [`EXIT_AFTER_KILL`], whether or not the
    /// SIGKILL was needed. What follows the event loop (the child's last output, usher's own
    /// events) is bounded by it. None when no stop has begun.
    pub fn exit_deadline(&self) -> Option<Instant> {
        self.exit_by
    }

    /// Whether `--wait-all` took effect: the main child exited and usher stayed for the
    /// processes it left.
    pub fn outlived(&self) -> bool {
        self.outlived
    }

    /// The main child's end, once it was reaped.
    pub fn main_exit(&self) -> Option<ChildExit> {
        self.main_exit
    }

    pub fn handle(&mut self, event: Event, now: Instant) -> Vec<Action> {
        match event {
            Event::Signal(signal) => self.on_signal(signal, now),
            Event::Reaped {
                main,
                last,
                children_left,
            } => self.on_reaped(main, last, children_left, now),
            Event::Deadline => self.on_deadline(now),
            Event::Unhealthy => self.on_unhealthy(now),
        }
    }

    /// Whom a received signal goes to now; None when nobody should get it: the main child alone
    /// is gone (its pid may belong to someone else by now).
    fn scope(&self) -> Option<Scope> {
        if self.outlived {
            Some(Scope::Left(Left::Everyone))
        } else if !self.policy.single_child {
            Some(Scope::Group)
        } else if self.main_exit.is_none() {
            Some(Scope::Child)
        } else {
            None
        }
    }

    /// Forwards `received` as rewritten; nothing when it is dropped, or when there is nobody
    /// to forward it to.
    fn forward(&self, received: Signo) -> Option<Action> {
        let signal = self.policy.rewrites.apply(received)?;
        Some(Action::Forward {
            signal,
            scope: self.scope()?,
        })
    }

    /// Forwards the stop signals `received`, in order, then SIGCONT to the same processes once.
    fn forward_stop(&self, received: &[Signo]) -> Vec<Action> {
        let mut actions: Vec<Action> = received.iter().filter_map(|&s| self.forward(s)).collect();
        if let Some(&Action::Forward { signal, scope }) = actions.last()
            && signal != Signo::CONT
        {
            actions.push(Action::Continue {
                after: signal,
                scope,
            });
        }
        actions
    }

    /// SIGTERM to the processes left (`who`), then SIGCONT to them.
    fn term_left(who: Left) -> Vec<Action> {
        vec![
            Action::SignalLeft {
                signal: Signo::TERM,
                who,
            },
            Action::Continue {
                after: Signo::TERM,
                scope: Scope::Left(who),
            },
        ]
    }

    fn start_grace(&mut self, now: Instant) {
        let kill_at = now + self.policy.grace;
        self.phase = Phase::Stopping { kill_at };
        self.exit_by = Some(kill_at + EXIT_AFTER_KILL);
    }

    fn is_stop_signal(&self, signal: Signo) -> bool {
        self.policy.stop_signals.contains(signal)
    }

    /// The status usher exits with: the main child's, or under `--wait-all` once it took
    /// effect, the last process reaped; remapped by `--remap-exit`. A process that could not
    /// even be reaped was SIGKILLed: reported so.
    fn exit_status(&self) -> u8 {
        if self.stopped_unhealthy {
            return UNHEALTHY_EXIT;
        }
        let exit = if self.outlived {
            self.last_exit
        } else {
            self.main_exit
        };
        let code = exit.unwrap_or(ChildExit::Signaled(libc::SIGKILL)).code();
        self.policy.remap_exit.apply(code)
    }

    fn on_signal(&mut self, signal: Signo, now: Instant) -> Vec<Action> {
        match self.phase {
            // A stop signal that a rewrite drops does not stop anything: that is what the
            // operator asked for by dropping it.
            Phase::Running | Phase::Outliving
                if self.is_stop_signal(signal) && self.policy.rewrites.apply(signal).is_some() =>
            {
                self.begin_stop(signal, StopCause::Received, now)
            }
            // A second stop signal during the drain (Ctrl-C twice) cuts the drain short: the
            // pending one is forwarded, then this one.
            Phase::Draining {
                signal: pending, ..
            } if self.is_stop_signal(signal) => {
                self.start_grace(now);
                self.forward_stop(&[pending, signal])
            }
            Phase::Running | Phase::Outliving | Phase::Draining { .. } | Phase::Stopping { .. } => {
                self.forward(signal).into_iter().collect()
            }
            Phase::Killing { .. } | Phase::Done => Vec::new(),
        }
    }

    /// Drain, then `signal` (as rewritten) and SIGCONT, then the grace period.
    fn begin_stop(&mut self, signal: Signo, cause: StopCause, now: Instant) -> Vec<Action> {
        let begun = Action::StopBegun {
            signal,
            drain: self.policy.drain,
            cause,
        };
        if self.policy.drain.is_zero() {
            self.start_grace(now);
            std::iter::once(begun)
                .chain(self.forward_stop(&[signal]))
                .collect()
        } else {
            let forward_at = now + self.policy.drain;
            self.phase = Phase::Draining { signal, forward_at };
            self.exit_by = Some(forward_at + self.policy.grace + EXIT_AFTER_KILL);
            vec![begun]
        }
    }

    /// A failed liveness check stops the app as `docker stop` would (the first stop signal,
    /// rewritten as any received one; a rewrite that drops it leaves the grace period's
    /// SIGKILL), unless a stop is already under way or `--on-unhealthy report` says only to
    /// report it.
    fn on_unhealthy(&mut self, now: Instant) -> Vec<Action> {
        if self.policy.on_unhealthy != OnUnhealthy::Stop {
            return Vec::new();
        }
        match self.phase {
            Phase::Running | Phase::Outliving => {
                self.stopped_unhealthy = true;
                let signal = self.policy.stop_signals.first();
                self.begin_stop(signal, StopCause::Unhealthy, now)
            }
            Phase::Draining { .. }
            | Phase::Stopping { .. }
            | Phase::Killing { .. }
            | Phase::Done => Vec::new(),
        }
    }

    fn on_reaped(
        &mut self,
        main: Option<ChildExit>,
        last: Option<ChildExit>,
        children_left: bool,
        now: Instant,
    ) -> Vec<Action> {
        let main_just_exited = main.is_some() && self.main_exit.is_none();
        if let Some(exit) = main {
            self.main_exit = Some(exit);
        }
        if let Some(exit) = last.or(main) {
            self.last_exit = Some(exit);
        }
        if !children_left {
            return match self.main_exit {
                Some(_) if self.phase != Phase::Done => {
                    self.phase = Phase::Done;
                    vec![Action::Exit(self.exit_status())]
                }
                _ => Vec::new(),
            };
        }
        match self.phase {
            // Only while no stop is under way: a stop ends everything, --wait-all or not.
            Phase::Running if main_just_exited && self.policy.wait_all => {
                self.phase = Phase::Outliving;
                self.outlived = true;
                vec![Action::Outlived]
            }
            Phase::Running | Phase::Draining { .. } if main_just_exited => {
                self.start_grace(now);
                Self::term_left(Left::Everyone)
            }
            // The main child exited during the grace period: the rest have not all had the stop
            // signal (with --single-child none of them has).
            Phase::Stopping { .. } if main_just_exited => {
                let who = if self.policy.single_child {
                    Left::Everyone
                } else {
                    Left::OutsideGroup
                };
                Self::term_left(who)
            }
            // A SIGKILLed parent leaves its children to usher (a subreaper adopts them only
            // then): kill again whoever is still there after each round.
            Phase::Killing { .. } => {
                vec![Action::SignalLeft {
                    signal: Signo::KILL,
                    who: Left::Everyone,
                }]
            }
            Phase::Running
            | Phase::Outliving
            | Phase::Draining { .. }
            | Phase::Stopping { .. }
            | Phase::Done => Vec::new(),
        }
    }

    fn on_deadline(&mut self, now: Instant) -> Vec<Action> {
        if self.deadline().is_none_or(|deadline| now < deadline) {
            return Vec::new();
        }
        match self.phase {
            Phase::Draining { signal, .. } => {
                self.start_grace(now);
                self.forward_stop(&[signal])
            }
            Phase::Stopping { .. } => {
                self.phase = Phase::Killing {
                    give_up_at: now + REAP_AFTER_KILL_LIMIT,
                };
                vec![Action::GraceOver {
                    grace: self.policy.grace,
                }]
            }
            Phase::Killing { .. } => {
                self.phase = Phase::Done;
                // The processes not reaped were SIGKILLed: with --wait-all the last of them is
                // among them.
                if self.outlived {
                    self.last_exit = None;
                }
                vec![Action::AbandonUnreaped, Action::Exit(self.exit_status())]
            }
            Phase::Running | Phase::Outliving | Phase::Done => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_secs(10);
    const DRAIN: Duration = Duration::from_secs(5);
    const ALL_REAPED: Event = Event::Reaped {
        main: None,
        last: None,
        children_left: false,
    };
    const OTHERS_REAPED: Event = Event::Reaped {
        main: None,
        last: None,
        children_left: true,
    };

    fn usr1() -> Signo {
        Signo::new(libc::SIGUSR1).unwrap()
    }

    fn quit() -> Signo {
        Signo::new(libc::SIGQUIT).unwrap()
    }

    fn supervisor(configure: impl FnOnce(&mut Policy)) -> Supervisor {
        let mut policy = Policy {
            grace: GRACE,
            ..Policy::default()
        };
        configure(&mut policy);
        Supervisor::new(policy)
    }

    fn forward(signal: Signo) -> Action {
        Action::Forward {
            signal,
            scope: Scope::Group,
        }
    }

    /// SIGCONT to the group after `after`.
    fn resume(after: Signo) -> Action {
        Action::Continue {
            after,
            scope: Scope::Group,
        }
    }

    fn signal_left(signal: Signo, who: Left) -> Action {
        Action::SignalLeft { signal, who }
    }

    /// SIGTERM to the processes left, then SIGCONT to them.
    fn term_left(who: Left) -> [Action; 2] {
        [
            signal_left(Signo::TERM, who),
            Action::Continue {
                after: Signo::TERM,
                scope: Scope::Left(who),
            },
        ]
    }

    fn begun(signal: Signo, drain: Duration) -> Action {
        Action::StopBegun {
            signal,
            drain,
            cause: StopCause::Received,
        }
    }

    fn begun_unhealthy(signal: Signo, drain: Duration) -> Action {
        Action::StopBegun {
            signal,
            drain,
            cause: StopCause::Unhealthy,
        }
    }

    fn stopping_when_unhealthy(configure: impl FnOnce(&mut Policy)) -> Supervisor {
        supervisor(|p| {
            p.on_unhealthy = OnUnhealthy::Stop;
            configure(p);
        })
    }

    #[test]
    fn unhealthy_only_reports_by_default() {
        let mut sup = supervisor(|_| {});
        let t0 = Instant::now();
        assert_eq!(sup.handle(Event::Unhealthy, t0), []);
        assert_eq!(sup.deadline(), None);
        assert!(!sup.stopped_unhealthy());
        assert_eq!(sup.handle(exited(0, false), t0), [Action::Exit(0)]);
    }

    /// `--on-unhealthy stop`: the stop `docker stop` would make (TERM, SIGCONT, grace), and a
    /// failure status even when the app exits 0 on TERM, --remap-exit notwithstanding.
    #[test]
    fn unhealthy_stops_gracefully_and_exits_with_the_unhealthy_status() {
        let mut sup = stopping_when_unhealthy(|p| p.remap_exit = remap(&[143, 70]));
        let t0 = Instant::now();
        let actions = sup.handle(Event::Unhealthy, t0);
        let begun = begun_unhealthy(Signo::TERM, Duration::ZERO);
        assert_eq!(actions, [begun, forward(Signo::TERM), resume(Signo::TERM)]);
        assert!(sup.stopped_unhealthy());
        assert_eq!(sup.deadline(), Some(t0 + GRACE));
        assert_eq!(sup.exit_deadline(), Some(t0 + GRACE + EXIT_AFTER_KILL));
        // A second failure, or a stop signal, changes nothing of the stop under way.
        assert_eq!(sup.handle(Event::Unhealthy, t0), []);
        assert_eq!(
            sup.handle(Event::Signal(Signo::TERM), t0),
            [forward(Signo::TERM)]
        );
        assert_eq!(
            sup.handle(exited(0, false), t0),
            [Action::Exit(UNHEALTHY_EXIT)]
        );

        // An app that ignores TERM: killed after the grace period, the same status.
        let mut sup = stopping_when_unhealthy(|_| {});
        sup.handle(Event::Unhealthy, t0);
        assert_eq!(sup.handle(Event::Deadline, t0 + GRACE), [GRACE_OVER]);
        assert_eq!(
            sup.handle(killed(9, false), t0 + GRACE),
            [Action::Exit(UNHEALTHY_EXIT)]
        );
    }

    #[test]
    fn an_unhealthy_stop_drains_and_uses_the_first_stop_signal_rewritten() {
        let mut sup = stopping_when_unhealthy(|p| {
            p.drain = DRAIN;
            p.stop_signals = StopSignals::parse("QUIT,TERM").unwrap();
            p.rewrites.add_rule("QUIT:USR1").unwrap();
        });
        let t0 = Instant::now();
        assert_eq!(
            sup.handle(Event::Unhealthy, t0),
            [begun_unhealthy(quit(), DRAIN)]
        );
        assert_eq!(sup.deadline(), Some(t0 + DRAIN));
        // A stop signal during the drain cuts it short, as for a received one.
        let actions = sup.handle(Event::Signal(Signo::TERM), t0);
        assert_eq!(
            actions,
            [forward(usr1()), forward(Signo::TERM), resume(Signo::TERM)]
        );
        assert_eq!(
            sup.handle(exited(0, false), t0),
            [Action::Exit(UNHEALTHY_EXIT)]
        );

        // A rewrite that drops the stop signal: nothing is forwarded, the grace runs.
        let mut sup = stopping_when_unhealthy(|p| p.rewrites.add_rule("TERM:0").unwrap());
        assert_eq!(
            sup.handle(Event::Unhealthy, t0),
            [begun_unhealthy(Signo::TERM, Duration::ZERO)]
        );
        assert_eq!(sup.deadline(), Some(t0 + GRACE));
    }

    #[test]
    fn unhealthy_during_a_stop_or_after_the_main_child_changes_nothing() {
        let t0 = Instant::now();
        let mut sup = stopping_when_unhealthy(|_| {});
        sup.handle(Event::Signal(Signo::TERM), t0);
        assert_eq!(sup.handle(Event::Unhealthy, t0), []);
        assert!(!sup.stopped_unhealthy());
        assert_eq!(sup.handle(exited(0, false), t0), [Action::Exit(0)]);

        let mut sup = stopping_when_unhealthy(|_| {});
        sup.handle(exited(3, true), t0);
        assert_eq!(sup.handle(Event::Unhealthy, t0), []);
        assert_eq!(sup.handle(ALL_REAPED, t0), [Action::Exit(3)]);
    }

    /// Under --wait-all the processes left are the app: a failed check stops them.
    #[test]
    fn unhealthy_while_outliving_stops_the_processes_left() {
        let mut sup = stopping_when_unhealthy(|p| p.wait_all = true);
        let t0 = Instant::now();
        sup.handle(exited(0, true), t0);
        let actions = sup.handle(Event::Unhealthy, t0);
        assert_eq!(
            actions,
            [
                begun_unhealthy(Signo::TERM, Duration::ZERO),
                to_everyone_left(Signo::TERM),
                resume_everyone_left(Signo::TERM)
            ]
        );
        let last = others_reaped(ChildExit::Exited(0), false);
        assert_eq!(sup.handle(last, t0), [Action::Exit(UNHEALTHY_EXIT)]);
    }

    const GRACE_OVER: Action = Action::GraceOver { grace: GRACE };

    fn exited(code: u8, children_left: bool) -> Event {
        Event::Reaped {
            main: Some(ChildExit::Exited(code)),
            last: Some(ChildExit::Exited(code)),
            children_left,
        }
    }

    fn killed(signo: i32, children_left: bool) -> Event {
        Event::Reaped {
            main: Some(ChildExit::Signaled(signo)),
            last: Some(ChildExit::Signaled(signo)),
            children_left,
        }
    }

    /// A round that reaped processes other than the main child, `last` the last of them.
    fn others_reaped(last: ChildExit, children_left: bool) -> Event {
        Event::Reaped {
            main: None,
            last: Some(last),
            children_left,
        }
    }

    #[test]
    fn forwards_ordinary_signals_to_the_group_while_running() {
        let mut sup = supervisor(|_| {});
        let t0 = Instant::now();
        assert_eq!(sup.handle(Event::Signal(usr1()), t0), [forward(usr1())]);
        assert_eq!(
            sup.handle(Event::Signal(Signo::HUP), t0),
            [forward(Signo::HUP)]
        );
        assert_eq!(sup.deadline(), None);
        // Orphans reaped while the main child runs change nothing.
        assert_eq!(sup.handle(OTHERS_REAPED, t0), []);
        assert_eq!(sup.deadline(), None);
        assert_eq!(sup.exit_deadline(), None);
    }

    #[test]
    fn single_child_scope() {
        let mut sup = supervisor(|p| p.single_child = true);
        let actions = sup.handle(Event::Signal(usr1()), Instant::now());
        assert_eq!(
            actions,
            [Action::Forward {
                signal: usr1(),
                scope: Scope::Child
            }]
        );
    }

    #[test]
    fn main_child_exit_alone_exits_with_its_code() {
        let mut sup = supervisor(|_| {});
        assert_eq!(
            sup.handle(exited(3, false), Instant::now()),
            [Action::Exit(3)]
        );
        let mut sup = supervisor(|_| {});
        assert_eq!(
            sup.handle(killed(11, false), Instant::now()),
            [Action::Exit(139)]
        );
    }

    #[test]
    fn remap_exit_applies_to_the_final_code() {
        let mut sup = supervisor(|p| p.remap_exit = remap(&[143]));
        assert_eq!(
            sup.handle(killed(15, false), Instant::now()),
            [Action::Exit(0)]
        );
    }

    #[test]
    fn term_is_forwarded_then_sigkill_after_grace() {
        let mut sup = supervisor(|_| {});
        let t0 = Instant::now();
        let actions = sup.handle(Event::Signal(Signo::TERM), t0);
        let begun = begun(Signo::TERM, Duration::ZERO);
        // SIGCONT follows the stop signal: a stopped app can act on it.
        assert_eq!(actions, [begun, forward(Signo::TERM), resume(Signo::TERM)]);
        assert_eq!(sup.deadline(), Some(t0 + GRACE));
        assert_eq!(sup.exit_deadline(), Some(t0 + GRACE + EXIT_AFTER_KILL));
        // Forwarding goes on during the grace period, TERM included (no second SIGCONT).
        assert_eq!(sup.handle(Event::Signal(usr1()), t0), [forward(usr1())]);
        assert_eq!(
            sup.handle(Event::Signal(Signo::TERM), t0),
            [forward(Signo::TERM)]
        );
        // An early wake-up is not the deadline.
        assert_eq!(sup.handle(Event::Deadline, t0 + GRACE / 2), []);
        let t1 = t0 + GRACE;
        // One action, one line: the grace is over, and that is the SIGKILL.
        assert_eq!(sup.handle(Event::Deadline, t1), [GRACE_OVER]);
        assert_eq!(sup.deadline(), Some(t1 + REAP_AFTER_KILL_LIMIT));
        assert_eq!(sup.exit_deadline(), Some(t0 + GRACE + EXIT_AFTER_KILL));
        // Nothing is forwarded any more once everything was killed.
        assert_eq!(sup.handle(Event::Signal(usr1()), t1), []);
        // Whoever is left after a round (children adopted when their parent died) is killed too.
        let kill_all = signal_left(Signo::KILL, Left::Everyone);
        assert_eq!(sup.handle(killed(9, true), t1), [kill_all]);
        assert_eq!(sup.handle(OTHERS_REAPED, t1), [kill_all]);
        assert_eq!(sup.handle(ALL_REAPED, t1), [Action::Exit(137)]);
        assert_eq!(sup.deadline(), None);
    }

    /// The whole stop, reaping and flushing included, fits between the stop signal and usher's
    /// exit deadline; the reaping after SIGKILL leaves part of that second for the output.
    #[test]
    fn the_exit_after_sigkill_is_bounded() {
        assert!(REAP_AFTER_KILL_LIMIT < EXIT_AFTER_KILL);
        let mut sup = supervisor(|_| {});
        let t0 = Instant::now();
        sup.handle(Event::Signal(Signo::TERM), t0);
        sup.handle(Event::Deadline, t0 + GRACE);
        let actions = sup.handle(Event::Deadline, t0 + GRACE + REAP_AFTER_KILL_LIMIT);
        assert_eq!(actions, [Action::AbandonUnreaped, Action::Exit(137)]);
        assert!(sup.exit_deadline() > Some(t0 + GRACE + REAP_AFTER_KILL_LIMIT));
    }

    #[test]
    fn child_exiting_during_grace_ends_the_stop() {
        let mut sup = supervisor(|_| {});
        let t0 = Instant::now();
        sup.handle(Event::Signal(Signo::INT), t0);
        assert_eq!(sup.handle(exited(0, false), t0), [Action::Exit(0)]);
        // The exit deadline stays: the child's last output is drained within it.
        assert_eq!(sup.exit_deadline(), Some(t0 + GRACE + EXIT_AFTER_KILL));
    }

    #[test]
    fn stragglers_after_a_stop_keep_the_original_deadline() {
        let mut sup = supervisor(|_| {});
        let t0 = Instant::now();
        sup.handle(Event::Signal(Signo::TERM), t0);
        // The group already has TERM; only those outside it get one. The deadline stays.
        let t1 = t0 + GRACE / 2;
        assert_eq!(
            sup.handle(exited(0, true), t1),
            term_left(Left::OutsideGroup)
        );
        assert_eq!(sup.deadline(), Some(t0 + GRACE));
        assert_eq!(sup.handle(OTHERS_REAPED, t1), []);
        assert_eq!(sup.handle(ALL_REAPED, t1), [Action::Exit(0)]);
    }

    #[test]
    fn single_child_stragglers_get_term_when_the_child_exits() {
        let mut sup = supervisor(|p| p.single_child = true);
        let t0 = Instant::now();
        let actions = sup.handle(Event::Signal(Signo::TERM), t0);
        // The stop signal and SIGCONT go to the child alone.
        let child = |signal| Action::Forward {
            signal,
            scope: Scope::Child,
        };
        let resume_child = Action::Continue {
            after: Signo::TERM,
            scope: Scope::Child,
        };
        let begun = begun(Signo::TERM, Duration::ZERO);
        assert_eq!(actions, [begun, child(Signo::TERM), resume_child]);
        assert_eq!(sup.handle(exited(0, true), t0), term_left(Left::Everyone));
        // The child's pid may be reused now: nothing more is sent to it.
        assert_eq!(sup.handle(Event::Signal(usr1()), t0), []);
    }

    #[test]
    fn main_exit_first_terms_the_rest_then_kills_after_grace() {
        let mut sup = supervisor(|_| {});
        let t0 = Instant::now();
        assert_eq!(sup.handle(exited(3, true), t0), term_left(Left::Everyone));
        assert_eq!(sup.deadline(), Some(t0 + GRACE));
        assert_eq!(sup.exit_deadline(), Some(t0 + GRACE + EXIT_AFTER_KILL));
        // Signals still reach whoever is left in the group.
        assert_eq!(
            sup.handle(Event::Signal(Signo::HUP), t0),
            [forward(Signo::HUP)]
        );
        // Orphans reaped meanwhile change nothing; a TERM received now is just forwarded.
        assert_eq!(sup.handle(OTHERS_REAPED, t0), []);
        assert_eq!(
            sup.handle(Event::Signal(Signo::TERM), t0),
            [forward(Signo::TERM)]
        );
        let actions = sup.handle(Event::Deadline, t0 + GRACE);
        assert_eq!(actions, [GRACE_OVER]);
        // The main child's status, whoever was reaped last.
        let last = others_reaped(ChildExit::Signaled(9), false);
        assert_eq!(sup.handle(last, t0 + GRACE), [Action::Exit(3)]);
    }

    #[test]
    fn main_exit_then_rest_leaves_quickly() {
        let mut sup = supervisor(|_| {});
        let t0 = Instant::now();
        sup.handle(exited(3, true), t0);
        assert_eq!(sup.handle(ALL_REAPED, t0), [Action::Exit(3)]);
        assert_eq!(sup.handle(ALL_REAPED, t0), []);
    }

    #[test]
    fn unreapable_processes_do_not_hang_usher() {
        let mut sup = supervisor(|_| {});
        let t0 = Instant::now();
        sup.handle(Event::Signal(Signo::TERM), t0);
        sup.handle(Event::Deadline, t0 + GRACE);
        let give_up = t0 + GRACE + REAP_AFTER_KILL_LIMIT;
        let actions = sup.handle(Event::Deadline, give_up);
        assert_eq!(actions, [Action::AbandonUnreaped, Action::Exit(137)]);
    }

    #[test]
    fn rewrite_changes_what_is_forwarded_and_drop_means_nothing() {
        let mut sup = supervisor(|p| {
            p.rewrites.add_rule("TERM:QUIT").unwrap();
            p.rewrites.add_rule("USR1:0").unwrap();
        });
        let t0 = Instant::now();
        assert_eq!(sup.handle(Event::Signal(usr1()), t0), []);
        let actions = sup.handle(Event::Signal(Signo::TERM), t0);
        assert_eq!(actions[1..], [forward(quit()), resume(quit())]);
        assert_eq!(sup.deadline(), Some(t0 + GRACE));
    }

    #[test]
    fn a_dropped_stop_signal_starts_no_stop() {
        let mut sup = supervisor(|p| p.rewrites.add_rule("TERM:0").unwrap());
        assert_eq!(sup.handle(Event::Signal(Signo::TERM), Instant::now()), []);
        assert_eq!(sup.deadline(), None);
    }

    /// A stop signal rewritten to SIGCONT needs no second one.
    #[test]
    fn no_second_sigcont() {
        let mut sup = supervisor(|p| p.rewrites.add_rule("TERM:CONT").unwrap());
        let actions = sup.handle(Event::Signal(Signo::TERM), Instant::now());
        assert_eq!(actions[1..], [forward(Signo::CONT)]);
    }

    /// `--stop-signal QUIT` (nginx's STOPSIGNAL): QUIT begins the stop, TERM and INT are only
    /// forwarded.
    #[test]
    fn the_stop_signals_are_the_policy_s() {
        let mut sup = supervisor(|p| p.stop_signals = StopSignals::parse("QUIT").unwrap());
        let t0 = Instant::now();
        for signal in [Signo::TERM, Signo::INT] {
            assert_eq!(sup.handle(Event::Signal(signal), t0), [forward(signal)]);
            assert_eq!(sup.deadline(), None);
        }
        let actions = sup.handle(Event::Signal(quit()), t0);
        let begun = begun(quit(), Duration::ZERO);
        assert_eq!(actions, [begun, forward(quit()), resume(quit())]);
        assert_eq!(sup.deadline(), Some(t0 + GRACE));
        assert_eq!(sup.handle(Event::Deadline, t0 + GRACE), [GRACE_OVER]);

        // With a drain: QUIT waits, a second QUIT cuts it short, TERM does not.
        let mut sup = supervisor(|p| {
            p.stop_signals = StopSignals::parse("QUIT").unwrap();
            p.drain = DRAIN;
        });
        assert_eq!(sup.handle(Event::Signal(quit()), t0), [begun_drain(quit())]);
        assert_eq!(
            sup.handle(Event::Signal(Signo::TERM), t0),
            [forward(Signo::TERM)]
        );
        assert_eq!(sup.deadline(), Some(t0 + DRAIN));
        let actions = sup.handle(Event::Signal(quit()), t0);
        assert_eq!(actions, [forward(quit()), forward(quit()), resume(quit())]);
    }

    fn begun_drain(signal: Signo) -> Action {
        begun(signal, DRAIN)
    }

    #[test]
    fn drain_delays_the_forward_then_grace_starts() {
        let mut sup = supervisor(|p| p.drain = DRAIN);
        let t0 = Instant::now();
        assert_eq!(
            sup.handle(Event::Signal(Signo::TERM), t0),
            [begun_drain(Signo::TERM)]
        );
        assert_eq!(sup.deadline(), Some(t0 + DRAIN));
        assert_eq!(
            sup.exit_deadline(),
            Some(t0 + DRAIN + GRACE + EXIT_AFTER_KILL)
        );
        // Other signals still pass during the drain.
        assert_eq!(sup.handle(Event::Signal(usr1()), t0), [forward(usr1())]);
        let t1 = t0 + DRAIN;
        assert_eq!(
            sup.handle(Event::Deadline, t1),
            [forward(Signo::TERM), resume(Signo::TERM)]
        );
        assert_eq!(sup.deadline(), Some(t1 + GRACE));
    }

    #[test]
    fn second_stop_signal_cuts_the_drain_short() {
        let mut sup = supervisor(|p| p.drain = DRAIN);
        let t0 = Instant::now();
        sup.handle(Event::Signal(Signo::TERM), t0);
        let t1 = t0 + Duration::from_secs(1);
        // Both are forwarded, each once: the pending TERM first; then one SIGCONT.
        let actions = sup.handle(Event::Signal(Signo::INT), t1);
        assert_eq!(
            actions,
            [
                forward(Signo::TERM),
                forward(Signo::INT),
                resume(Signo::INT)
            ]
        );
        assert_eq!(sup.deadline(), Some(t1 + GRACE));
        assert_eq!(sup.exit_deadline(), Some(t1 + GRACE + EXIT_AFTER_KILL));
        // The drain deadline is gone: TERM is not forwarded a second time.
        assert_eq!(sup.handle(Event::Deadline, t0 + DRAIN), []);
    }

    #[test]
    fn main_exit_during_drain() {
        let mut sup = supervisor(|p| p.drain = DRAIN);
        let t0 = Instant::now();
        sup.handle(Event::Signal(Signo::TERM), t0);
        assert_eq!(sup.handle(exited(0, false), t0), [Action::Exit(0)]);
    }

    // --wait-all

    fn waiting_all(configure: impl FnOnce(&mut Policy)) -> Supervisor {
        supervisor(|p| {
            p.wait_all = true;
            configure(p);
        })
    }

    fn to_everyone_left(signal: Signo) -> Action {
        Action::Forward {
            signal,
            scope: Scope::Left(Left::Everyone),
        }
    }

    fn resume_everyone_left(after: Signo) -> Action {
        Action::Continue {
            after,
            scope: Scope::Left(Left::Everyone),
        }
    }

    #[test]
    fn wait_all_outlives_the_main_child_until_the_last_process_exits() {
        let mut sup = waiting_all(|_| {});
        let t0 = Instant::now();
        assert!(!sup.outlived());
        assert_eq!(sup.handle(exited(1, true), t0), [Action::Outlived]);
        assert!(sup.outlived());
        assert_eq!(sup.main_exit(), Some(ChildExit::Exited(1)));
        // No grace runs: the processes left are the app now.
        assert_eq!(sup.deadline(), None);
        assert_eq!(sup.exit_deadline(), None);
        // Signals reach every process left, each once (the main child's group may be gone).
        assert_eq!(
            sup.handle(Event::Signal(Signo::HUP), t0),
            [to_everyone_left(Signo::HUP)]
        );
        assert_eq!(
            sup.handle(others_reaped(ChildExit::Exited(4), true), t0),
            []
        );
        // The last process reaped gives the status, not the main child's 1.
        let last = others_reaped(ChildExit::Exited(0), false);
        assert_eq!(sup.handle(last, t0), [Action::Exit(0)]);
        assert_eq!(sup.handle(ALL_REAPED, t0), []);
    }

    #[test]
    fn wait_all_with_nothing_left_exits_with_the_main_child_s_status() {
        let mut sup = waiting_all(|_| {});
        assert_eq!(
            sup.handle(exited(3, false), Instant::now()),
            [Action::Exit(3)]
        );
        assert!(!sup.outlived());
    }

    #[test]
    fn a_stop_while_outliving_reaches_every_process_left() {
        let mut sup = waiting_all(|_| {});
        let t0 = Instant::now();
        sup.handle(exited(0, true), t0);
        let t1 = t0 + Duration::from_secs(60);
        let actions = sup.handle(Event::Signal(Signo::TERM), t1);
        let begun = begun(Signo::TERM, Duration::ZERO);
        assert_eq!(
            actions,
            [
                begun,
                to_everyone_left(Signo::TERM),
                resume_everyone_left(Signo::TERM)
            ]
        );
        assert_eq!(sup.deadline(), Some(t1 + GRACE));
        assert_eq!(sup.exit_deadline(), Some(t1 + GRACE + EXIT_AFTER_KILL));
        // The replacement exits on TERM: its status is usher's.
        let last = others_reaped(ChildExit::Signaled(libc::SIGTERM), false);
        assert_eq!(sup.handle(last, t1), [Action::Exit(143)]);
    }

    #[test]
    fn a_term_ignoring_process_left_is_killed_after_grace() {
        let mut sup = waiting_all(|p| p.remap_exit = remap(&[137]));
        let t0 = Instant::now();
        sup.handle(exited(0, true), t0);
        sup.handle(Event::Signal(Signo::INT), t0);
        assert_eq!(sup.handle(Event::Deadline, t0 + GRACE), [GRACE_OVER]);
        let kill_all = signal_left(Signo::KILL, Left::Everyone);
        let t1 = t0 + GRACE;
        assert_eq!(sup.handle(OTHERS_REAPED, t1), [kill_all]);
        // Remapped like any final status.
        let last = others_reaped(ChildExit::Signaled(libc::SIGKILL), false);
        assert_eq!(sup.handle(last, t1), [Action::Exit(0)]);
    }

    #[test]
    fn a_drained_stop_while_outliving() {
        let mut sup = waiting_all(|p| p.drain = DRAIN);
        let t0 = Instant::now();
        sup.handle(exited(0, true), t0);
        assert_eq!(
            sup.handle(Event::Signal(Signo::TERM), t0),
            [begun_drain(Signo::TERM)]
        );
        assert_eq!(
            sup.handle(Event::Deadline, t0 + DRAIN),
            [
                to_everyone_left(Signo::TERM),
                resume_everyone_left(Signo::TERM)
            ]
        );
        assert_eq!(sup.deadline(), Some(t0 + DRAIN + GRACE));
    }

    #[test]
    fn processes_left_unreaped_while_outliving_report_sigkill() {
        let mut sup = waiting_all(|_| {});
        let t0 = Instant::now();
        sup.handle(exited(0, true), t0);
        sup.handle(others_reaped(ChildExit::Exited(0), true), t0);
        sup.handle(Event::Signal(Signo::TERM), t0);
        sup.handle(Event::Deadline, t0 + GRACE);
        let actions = sup.handle(Event::Deadline, t0 + GRACE + REAP_AFTER_KILL_LIMIT);
        assert_eq!(actions, [Action::AbandonUnreaped, Action::Exit(137)]);
    }

    /// With --single-child the main child's pid is never signalled once it is gone, but the
    /// processes it left under --wait-all still get what usher receives.
    #[test]
    fn single_child_while_outliving() {
        let mut sup = waiting_all(|p| p.single_child = true);
        let t0 = Instant::now();
        sup.handle(exited(0, true), t0);
        assert_eq!(
            sup.handle(Event::Signal(usr1()), t0),
            [to_everyone_left(usr1())]
        );
    }

    /// A stop under way ends everything: --wait-all does not keep usher then.
    #[test]
    fn wait_all_changes_nothing_once_a_stop_has_begun() {
        let mut sup = waiting_all(|_| {});
        let t0 = Instant::now();
        sup.handle(Event::Signal(Signo::TERM), t0);
        assert_eq!(
            sup.handle(exited(0, true), t0),
            term_left(Left::OutsideGroup)
        );
        assert!(!sup.outlived());
        assert_eq!(sup.deadline(), Some(t0 + GRACE));
        let last = others_reaped(ChildExit::Exited(5), false);
        assert_eq!(sup.handle(last, t0), [Action::Exit(0)]);

        let mut sup = waiting_all(|p| p.drain = DRAIN);
        sup.handle(Event::Signal(Signo::TERM), t0);
        assert_eq!(sup.handle(exited(0, true), t0), term_left(Left::Everyone));
        assert!(!sup.outlived());
    }

    fn remap(codes: &[u8]) -> ExitRemap {
        ExitRemap::new(codes.to_vec())
    }
}
