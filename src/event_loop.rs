//! The event loop: waits for signals and deadlines, turns them (and what the reaper finds) into
//! events for the supervisor, and carries out the actions it returns.

use std::io;
use std::time::Instant;

use crate::child;
use crate::cli::Config;
use crate::events::{debug, error, info, warn};
use crate::reaper;
use crate::signals::Signo;
use crate::supervisor::{Action, Event, Policy, Scope, Supervisor};
use crate::sys::{self, SignalInbox};

/// Runs the command under supervision and returns usher's exit status.
pub fn run(config: Config, inbox: SignalInbox) -> u8 {
    let is_pid1 = std::process::id() == 1;
    if !is_pid1 {
        // Orphans of the child come to usher, not to the real init, so they are reaped and
        // signalled like the rest.
        match nix::sys::prctl::set_child_subreaper(true) {
            Ok(()) => info!("not running as PID 1: became a child subreaper"),
            Err(e) => warn!("failed to become a child subreaper ({e}): orphans go to init"),
        }
    }
    if let Some(signal) = config.parent_death_signal
        && let Err(e) = sys::set_parent_death_signal(signal.number())
    {
        error!("failed to set the parent-death signal {signal}: {e}");
        return 2;
    }
    let main_pid = match child::spawn(&config.command) {
        Ok(pid) => pid,
        Err(e) => {
            error!("{e}");
            return e.exit_code();
        }
    };
    info!(
        "started {:?} as pid {main_pid}",
        config.command.first().cloned().unwrap_or_default()
    );
    let policy = Policy {
        grace: config.grace,
        drain: config.drain,
        rewrites: config.rewrites,
        single_child: config.single_child,
        remap_exit: config.remap_exit,
    };
    let mut run = Run {
        supervisor: Supervisor::new(policy),
        main_pid,
        main_alive: true,
        is_pid1,
        warn_on_reap: config.warn_on_reap,
    };
    match run.event_loop(&inbox) {
        Ok(code) => code,
        Err(e) => {
            // Without its signal inbox usher can neither forward nor reap: end everything
            // rather than hang the container.
            error!("signal handling failed ({e}): killing every process left");
            run.signal_everyone_left(Signo::KILL);
            2
        }
    }
}

struct Run {
    supervisor: Supervisor,
    main_pid: i32,
    main_alive: bool,
    is_pid1: bool,
    warn_on_reap: bool,
}

impl Run {
    fn event_loop(&mut self, inbox: &SignalInbox) -> io::Result<u8> {
        let my_pid = std::process::id();
        loop {
            let timeout = self
                .supervisor
                .deadline()
                .map(|d| d.saturating_duration_since(Instant::now()));
            inbox.wait(timeout)?;
            let mut actions = Vec::new();
            while let Some(received) = inbox.read()? {
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
                debug!("received {signal} from pid {}", received.sender_pid);
                actions.extend(
                    self.supervisor
                        .handle(Event::Signal(signal), Instant::now()),
                );
            }
            let round = reaper::reap_all(self.main_pid, self.warn_on_reap)?;
            if let Some(exit) = round.main_exit {
                self.main_alive = false;
                info!(
                    "main child {} exited with status {}",
                    self.main_pid,
                    exit.code()
                );
                let event = Event::MainExited {
                    exit,
                    others_left: round.children_left,
                };
                actions.extend(self.supervisor.handle(event, Instant::now()));
            } else if !round.children_left {
                actions.extend(self.supervisor.handle(Event::AllReaped, Instant::now()));
            }
            if self
                .supervisor
                .deadline()
                .is_some_and(|d| d <= Instant::now())
            {
                actions.extend(self.supervisor.handle(Event::Deadline, Instant::now()));
            }
            for action in actions {
                if let Some(code) = self.execute(action) {
                    return Ok(code);
                }
            }
        }
    }

    /// Carries out one action; returns usher's exit status when it is time to exit.
    fn execute(&mut self, action: Action) -> Option<u8> {
        match action {
            Action::StopBegun { signal, drain } => {
                if drain.is_zero() {
                    info!("stop requested by {signal}");
                } else {
                    info!("stop requested by {signal}: draining for {drain:?} before forwarding");
                }
            }
            Action::Forward { signal, scope } => {
                let (target, whom) = match scope {
                    Scope::Group => (-self.main_pid, "process group"),
                    Scope::Child => (self.main_pid, "pid"),
                };
                match sys::send_signal(target, signal.number()) {
                    Ok(()) => info!("forwarded {signal} to {whom} {}", self.main_pid),
                    // Everyone in the group already exited: harmless.
                    Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {
                        debug!("{signal} not forwarded: {whom} {} is gone", self.main_pid)
                    }
                    Err(e) => warn!("failed to forward {signal} to {}: {e}", self.main_pid),
                }
            }
            Action::SignalEveryoneLeft(signal) => {
                if signal == Signo::KILL {
                    warn!("grace period over: sending SIGKILL to every process left");
                } else {
                    info!("main child gone: sending {signal} to every process left");
                }
                self.signal_everyone_left(signal);
            }
            Action::AbandonUnreaped => {
                warn!("processes still unreaped after SIGKILL: exiting anyway")
            }
            Action::Exit(code) => {
                info!("exiting with status {code}");
                return Some(code);
            }
        }
        None
    }

    /// As PID 1, every process in the namespace (kill(-1) spares usher itself). Otherwise usher
    /// must not touch processes outside its own tree: the main child's group and every direct
    /// child (orphans that came to usher as subreaper) are signalled.
    fn signal_everyone_left(&self, signal: Signo) {
        let mut targets = vec![-self.main_pid];
        if self.is_pid1 {
            targets.push(-1);
        } else {
            targets.extend(direct_children());
        }
        if self.main_alive && !self.is_pid1 {
            targets.push(self.main_pid);
        }
        for target in targets {
            match sys::send_signal(target, signal.number()) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                Err(e) => warn!("failed to send {signal} to {target}: {e}"),
            }
        }
    }
}

/// usher's children, from /proc (absent /proc: none found, the group is still signalled).
fn direct_children() -> Vec<i32> {
    let mut pids = Vec::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return pids;
    };
    for task in tasks.flatten() {
        if let Ok(children) = std::fs::read_to_string(task.path().join("children")) {
            pids.extend(
                children
                    .split_whitespace()
                    .filter_map(|pid| pid.parse::<i32>().ok()),
            );
        }
    }
    pids
}
