//! The lifecycle as a state machine: events in, actions out, time passed in. It does no I/O,
//! so every transition is unit-tested without processes.
//!
//! ```text
//! Running --TERM/INT--> Draining --drain over--> Stopping --grace over--> Killing --> exit
//!    |                     |                      ^   (forwarding goes on)     |
//!    +---main child exits--+----------------------+                            |
//!                     (everyone left gets SIGTERM)          all reaped (any phase) -> exit
//! ```

use std::time::{Duration, Instant};

use crate::config::ExitRemap;
use crate::supervise::signals::{Rewrites, Signo};

/// After SIGKILL, how long to wait for the last processes to be reaped before exiting anyway.
/// A process in uninterruptible sleep (a hung NFS read) must not hang the container forever;
/// as PID 1 the kernel kills whatever is left when usher exits.
pub const REAP_AFTER_KILL_LIMIT: Duration = Duration::from_secs(2);

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

/// What the supervisor needs from the configuration.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    pub grace: Duration,
    pub drain: Duration,
    pub rewrites: Rewrites,
    pub single_child: bool,
    pub remap_exit: ExitRemap,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// usher received a signal (never SIGCHLD: that is the reaper's business).
    Signal(Signo),
    /// A round of reaping: `main` when the main child was among the reaped, `children_left`
    /// whether any child remains after it.
    Reaped {
        main: Option<ChildExit>,
        children_left: bool,
    },
    /// The deadline from [`Supervisor::deadline`] has passed.
    Deadline,
}

/// Whom a forwarded signal goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The main child's process group (the default).
    Group,
    /// The main child alone (`--single-child`).
    Child,
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
    /// A graceful stop has begun because usher received `signal` (the health server will answer
    /// /ready with 503 from here on).
    StopBegun {
        signal: Signo,
        drain: Duration,
    },
    Forward {
        signal: Signo,
        scope: Scope,
    },
    /// Signal the processes still alive, each once.
    SignalLeft {
        signal: Signo,
        who: Left,
    },
    /// The grace period ran out with processes still alive (a SIGKILL follows).
    GraceOver,
    /// Processes were still unreaped when the limit after SIGKILL ran out.
    AbandonUnreaped,
    Exit(u8),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Running,
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
}

impl Supervisor {
    pub fn new(policy: Policy) -> Supervisor {
        Supervisor {
            policy,
            phase: Phase::Running,
            main_exit: None,
        }
    }

    /// When the supervisor next needs a [`Event::Deadline`], if ever.
    pub fn deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::Draining { forward_at, .. } => Some(forward_at),
            Phase::Stopping { kill_at } => Some(kill_at),
            Phase::Killing { give_up_at } => Some(give_up_at),
            Phase::Running | Phase::Done => None,
        }
    }

    pub fn handle(&mut self, event: Event, now: Instant) -> Vec<Action> {
        match event {
            Event::Signal(signal) => self.on_signal(signal, now),
            Event::Reaped {
                main,
                children_left,
            } => self.on_reaped(main, children_left, now),
            Event::Deadline => self.on_deadline(now),
        }
    }

    fn scope(&self) -> Scope {
        if self.policy.single_child {
            Scope::Child
        } else {
            Scope::Group
        }
    }

    /// Forwards `received` as rewritten; nothing when it is dropped, or when it would go to a
    /// main child that is already gone (its pid may belong to someone else by now).
    fn forward(&self, received: Signo) -> Option<Action> {
        let signal = self.policy.rewrites.apply(received)?;
        if self.main_exit.is_some() && self.policy.single_child {
            return None;
        }
        Some(Action::Forward {
            signal,
            scope: self.scope(),
        })
    }

    fn start_grace(&mut self, now: Instant) {
        self.phase = Phase::Stopping {
            kill_at: now + self.policy.grace,
        };
    }

    fn on_signal(&mut self, signal: Signo, now: Instant) -> Vec<Action> {
        match self.phase {
            // A stop signal that a rewrite drops does not stop anything: that is what the
            // operator asked for by dropping it.
            Phase::Running
                if signal.starts_stop() && self.policy.rewrites.apply(signal).is_some() =>
            {
                let begun = Action::StopBegun {
                    signal,
                    drain: self.policy.drain,
                };
                if self.policy.drain.is_zero() {
                    self.start_grace(now);
                    [Some(begun), self.forward(signal)]
                        .into_iter()
                        .flatten()
                        .collect()
                } else {
                    self.phase = Phase::Draining {
                        signal,
                        forward_at: now + self.policy.drain,
                    };
                    vec![begun]
                }
            }
            // A second stop signal during the drain (Ctrl-C twice) cuts the drain short: the
            // pending one is forwarded, then this one.
            Phase::Draining {
                signal: pending, ..
            } if signal.starts_stop() => {
                self.start_grace(now);
                [self.forward(pending), self.forward(signal)]
                    .into_iter()
                    .flatten()
                    .collect()
            }
            Phase::Running | Phase::Draining { .. } | Phase::Stopping { .. } => {
                self.forward(signal).into_iter().collect()
            }
            Phase::Killing { .. } | Phase::Done => Vec::new(),
        }
    }

    fn on_reaped(
        &mut self,
        main: Option<ChildExit>,
        children_left: bool,
        now: Instant,
    ) -> Vec<Action> {
        let main_just_exited = main.is_some() && self.main_exit.is_none();
        if let Some(exit) = main {
            self.main_exit = Some(exit);
        }
        if !children_left {
            return match self.main_exit {
                Some(exit) if self.phase != Phase::Done => {
                    self.phase = Phase::Done;
                    vec![Action::Exit(self.policy.remap_exit.apply(exit.code()))]
                }
                _ => Vec::new(),
            };
        }
        match self.phase {
            Phase::Running | Phase::Draining { .. } if main_just_exited => {
                self.start_grace(now);
                vec![Action::SignalLeft {
                    signal: Signo::TERM,
                    who: Left::Everyone,
                }]
            }
            // The main child exited during the grace period: the rest have not all had the stop
            // signal (with --single-child none of them has).
            Phase::Stopping { .. } if main_just_exited => {
                let who = if self.policy.single_child {
                    Left::Everyone
                } else {
                    Left::OutsideGroup
                };
                vec![Action::SignalLeft {
                    signal: Signo::TERM,
                    who,
                }]
            }
            // A SIGKILLed parent leaves its children to usher (a subreaper adopts them only
            // then): kill again whoever is still there after each round.
            Phase::Killing { .. } => {
                vec![Action::SignalLeft {
                    signal: Signo::KILL,
                    who: Left::Everyone,
                }]
            }
            Phase::Running | Phase::Draining { .. } | Phase::Stopping { .. } | Phase::Done => {
                Vec::new()
            }
        }
    }

    fn on_deadline(&mut self, now: Instant) -> Vec<Action> {
        if self.deadline().is_none_or(|deadline| now < deadline) {
            return Vec::new();
        }
        match self.phase {
            Phase::Draining { signal, .. } => {
                self.start_grace(now);
                self.forward(signal).into_iter().collect()
            }
            Phase::Stopping { .. } => {
                self.phase = Phase::Killing {
                    give_up_at: now + REAP_AFTER_KILL_LIMIT,
                };
                vec![
                    Action::GraceOver,
                    Action::SignalLeft {
                        signal: Signo::KILL,
                        who: Left::Everyone,
                    },
                ]
            }
            Phase::Killing { .. } => {
                self.phase = Phase::Done;
                // A main child we could not even reap was SIGKILLed: report it so.
                let code = self
                    .main_exit
                    .unwrap_or(ChildExit::Signaled(libc::SIGKILL))
                    .code();
                vec![
                    Action::AbandonUnreaped,
                    Action::Exit(self.policy.remap_exit.apply(code)),
                ]
            }
            Phase::Running | Phase::Done => Vec::new(),
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
        children_left: false,
    };
    const OTHERS_REAPED: Event = Event::Reaped {
        main: None,
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

    fn signal_left(signal: Signo, who: Left) -> Action {
        Action::SignalLeft { signal, who }
    }

    fn exited(code: u8, children_left: bool) -> Event {
        Event::Reaped {
            main: Some(ChildExit::Exited(code)),
            children_left,
        }
    }

    fn killed(signo: i32, children_left: bool) -> Event {
        Event::Reaped {
            main: Some(ChildExit::Signaled(signo)),
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
        let begun = Action::StopBegun {
            signal: Signo::TERM,
            drain: Duration::ZERO,
        };
        assert_eq!(actions, [begun, forward(Signo::TERM)]);
        assert_eq!(sup.deadline(), Some(t0 + GRACE));
        // Forwarding goes on during the grace period, TERM included.
        assert_eq!(sup.handle(Event::Signal(usr1()), t0), [forward(usr1())]);
        assert_eq!(
            sup.handle(Event::Signal(Signo::TERM), t0),
            [forward(Signo::TERM)]
        );
        // An early wake-up is not the deadline.
        assert_eq!(sup.handle(Event::Deadline, t0 + GRACE / 2), []);
        let t1 = t0 + GRACE;
        let kill_all = signal_left(Signo::KILL, Left::Everyone);
        assert_eq!(
            sup.handle(Event::Deadline, t1),
            [Action::GraceOver, kill_all]
        );
        assert_eq!(sup.deadline(), Some(t1 + REAP_AFTER_KILL_LIMIT));
        // Nothing is forwarded any more once everything was killed.
        assert_eq!(sup.handle(Event::Signal(usr1()), t1), []);
        // Whoever is left after a round (children adopted when their parent died) is killed too.
        assert_eq!(sup.handle(killed(9, true), t1), [kill_all]);
        assert_eq!(sup.handle(OTHERS_REAPED, t1), [kill_all]);
        assert_eq!(sup.handle(ALL_REAPED, t1), [Action::Exit(137)]);
        assert_eq!(sup.deadline(), None);
    }

    #[test]
    fn child_exiting_during_grace_ends_the_stop() {
        let mut sup = supervisor(|_| {});
        let t0 = Instant::now();
        sup.handle(Event::Signal(Signo::INT), t0);
        assert_eq!(sup.handle(exited(0, false), t0), [Action::Exit(0)]);
    }

    #[test]
    fn stragglers_after_a_stop_keep_the_original_deadline() {
        let mut sup = supervisor(|_| {});
        let t0 = Instant::now();
        sup.handle(Event::Signal(Signo::TERM), t0);
        // The group already has TERM; only those outside it get one. The deadline stays.
        let t1 = t0 + GRACE / 2;
        let term_outside = signal_left(Signo::TERM, Left::OutsideGroup);
        assert_eq!(sup.handle(exited(0, true), t1), [term_outside]);
        assert_eq!(sup.deadline(), Some(t0 + GRACE));
        assert_eq!(sup.handle(OTHERS_REAPED, t1), []);
        assert_eq!(sup.handle(ALL_REAPED, t1), [Action::Exit(0)]);
    }

    #[test]
    fn single_child_stragglers_get_term_when_the_child_exits() {
        let mut sup = supervisor(|p| p.single_child = true);
        let t0 = Instant::now();
        sup.handle(Event::Signal(Signo::TERM), t0);
        let term_all = signal_left(Signo::TERM, Left::Everyone);
        assert_eq!(sup.handle(exited(0, true), t0), [term_all]);
        // The child's pid may be reused now: nothing more is sent to it.
        assert_eq!(sup.handle(Event::Signal(usr1()), t0), []);
    }

    #[test]
    fn main_exit_first_terms_the_rest_then_kills_after_grace() {
        let mut sup = supervisor(|_| {});
        let t0 = Instant::now();
        let term_all = signal_left(Signo::TERM, Left::Everyone);
        assert_eq!(sup.handle(exited(3, true), t0), [term_all]);
        assert_eq!(sup.deadline(), Some(t0 + GRACE));
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
        let kill_all = signal_left(Signo::KILL, Left::Everyone);
        let actions = sup.handle(Event::Deadline, t0 + GRACE);
        assert_eq!(actions, [Action::GraceOver, kill_all]);
        assert_eq!(sup.handle(ALL_REAPED, t0 + GRACE), [Action::Exit(3)]);
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
        assert_eq!(actions[1], forward(quit()));
        assert_eq!(sup.deadline(), Some(t0 + GRACE));
    }

    #[test]
    fn a_dropped_stop_signal_starts_no_stop() {
        let mut sup = supervisor(|p| p.rewrites.add_rule("TERM:0").unwrap());
        assert_eq!(sup.handle(Event::Signal(Signo::TERM), Instant::now()), []);
        assert_eq!(sup.deadline(), None);
    }

    #[test]
    fn drain_delays_the_forward_then_grace_starts() {
        let mut sup = supervisor(|p| p.drain = DRAIN);
        let t0 = Instant::now();
        let begun = Action::StopBegun {
            signal: Signo::TERM,
            drain: DRAIN,
        };
        assert_eq!(sup.handle(Event::Signal(Signo::TERM), t0), [begun]);
        assert_eq!(sup.deadline(), Some(t0 + DRAIN));
        // Other signals still pass during the drain.
        assert_eq!(sup.handle(Event::Signal(usr1()), t0), [forward(usr1())]);
        let t1 = t0 + DRAIN;
        assert_eq!(sup.handle(Event::Deadline, t1), [forward(Signo::TERM)]);
        assert_eq!(sup.deadline(), Some(t1 + GRACE));
    }

    #[test]
    fn second_stop_signal_cuts_the_drain_short() {
        let mut sup = supervisor(|p| p.drain = DRAIN);
        let t0 = Instant::now();
        sup.handle(Event::Signal(Signo::TERM), t0);
        let t1 = t0 + Duration::from_secs(1);
        // Both are forwarded, each once: the pending TERM first.
        let actions = sup.handle(Event::Signal(Signo::INT), t1);
        assert_eq!(actions, [forward(Signo::TERM), forward(Signo::INT)]);
        assert_eq!(sup.deadline(), Some(t1 + GRACE));
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

    fn remap(codes: &[u8]) -> ExitRemap {
        ExitRemap::new(codes.to_vec())
    }
}
