//! The event loop: waits for signals and deadlines, turns them (and what the reaper finds) into
//! events for the supervisor, and carries out the actions it returns.

use std::io;
use std::time::{Duration, Instant};

use crate::child::{self, ChildSpec};
use crate::cli::Config;
use crate::health::readiness::{self, NotifySocket};
use crate::health::{self, Health};
use crate::log_io::events;
use crate::log_io::events::{debug, error, info, warn};
use crate::log_io::relay;
use crate::logs::{LogFormat, Stream};
use crate::supervise::process_table;
use crate::supervise::reaper;
use crate::supervise::signals::Signo;
use crate::supervise::state::{Action, Event, Left, Policy, Scope, Supervisor};
use crate::sys::{self, SignalInbox};
use std::sync::Arc;

/// At most this many signals are taken per wake-up, so that a flood of signals (or a child
/// bouncing them back) cannot hold off reaping and the grace deadline.
const SIGNALS_PER_WAKE: usize = 64;

/// Runs the command under supervision and returns usher's exit status.
pub fn run(
    config: Config,
    mut child: ChildSpec,
    log_format: Option<&Arc<LogFormat>>,
    health_listener: Option<std::net::TcpListener>,
    inbox: SignalInbox,
) -> u8 {
    let health = Arc::new(Health::new(config.ready_when.is_started()));
    let is_pid1 = std::process::id() == 1;
    let parent = sys::parent_pid();
    if !is_pid1 {
        // Orphans of the child come to usher, not to the real init, so they are reaped and
        // signalled like the rest.
        match sys::become_subreaper() {
            Ok(()) => info!("not running as PID 1: became a child subreaper"),
            Err(e) => warn!("failed to become a child subreaper ({e}): orphans go to init"),
        }
    }
    // The child must find NOTIFY_SOCKET in its environment: the socket exists before it does.
    let notify = match config.ready_when {
        readiness::Source::Notify => match NotifySocket::create(&mut child.environment) {
            Ok(socket) => Some(socket),
            Err(e) => {
                error!("--ready-when notify: cannot create the notify socket: {e}");
                return 2;
            }
        },
        _ => None,
    };
    let started = match child::spawn(&child) {
        Ok(started) => started,
        Err(e) => {
            error!("{e}");
            return e.exit_code();
        }
    };
    let main_pid = started.pid;
    health.child_started(main_pid);
    info!(
        "started {:?} as pid {main_pid}",
        child.argv.first().cloned().unwrap_or_default()
    );
    // The child's environment holds its secrets: usher keeps no copy.
    let ChildSpec { privileges, .. } = child;
    // Root is needed no longer: neither the HTTP server nor the log relays may have it.
    if let Some(user) = &privileges.switch_to {
        match sys::drop_own_privileges(user.uid, user.gid, &user.groups) {
            Ok(()) => info!(
                "dropped usher's own privileges to uid {} gid {}",
                user.uid, user.gid
            ),
            Err(e) => {
                error!(
                    "failed to drop usher's own privileges to uid {}: {e}",
                    user.uid
                );
                return abandon_child(main_pid);
            }
        }
    }
    // Threads only now, after the drop: capabilities are per thread.
    let pipes: Vec<_> = [
        (started.stdout, Stream::Stdout),
        (started.stderr, Stream::Stderr),
    ]
    .into_iter()
    .filter_map(|(pipe, stream)| Some((pipe?, stream)))
    .collect();
    let mut relays = None;
    if let Some(format) = log_format {
        if let Err(e) = events::start_writer() {
            warn!("failed to start the event writer: {e}");
        }
        match relay::start(pipes, format, &health) {
            Ok(started) => relays = Some(started),
            Err(e) => {
                error!("failed to start the log relays: {e}");
                return abandon_child(main_pid);
            }
        }
    }
    if let Some(listener) = health_listener
        && let Err(e) = health::server::start(listener, Arc::clone(&health))
    {
        error!("failed to start the health server: {e}");
        return abandon_child(main_pid);
    }
    if let Err(e) = readiness::start(config.ready_when.clone(), notify, Arc::clone(&health)) {
        error!("failed to start watching readiness: {e}");
        return abandon_child(main_pid);
    }
    // After the drop: the kernel clears the parent-death signal when credentials change.
    if let Some(signal) = config.parent_death_signal {
        if let Err(e) = sys::set_parent_death_signal(signal.number()) {
            error!("failed to set the parent-death signal {signal}: {e}");
            return abandon_child(main_pid);
        }
        // The parent may have died before the kernel was told: then send it ourselves.
        if sys::parent_pid() != parent {
            let _ = sys::send_signal(std::process::id().cast_signed(), signal.number());
        }
    }

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
        is_pid1,
        warn_on_reap: config.warn_on_reap,
        health,
    };
    let code = match run.event_loop(&inbox) {
        Ok(code) => code,
        Err(e) => {
            // Without its signal inbox usher can neither forward nor reap: end everything
            // rather than hang the container.
            error!("signal handling failed ({e}): killing every process left");
            run.signal_left(Signo::KILL, Left::Everyone);
            2
        }
    };
    // Drain the child's output before leaving: everything written is relayed. Only when nothing
    // has moved for the grace period (a process outside usher's reach holds a pipe open) does
    // usher leave without the rest.
    let idle = config.grace.max(Duration::from_secs(1));
    if let Some(relays) = &mut relays
        && !relays.wait(idle)
    {
        warn!(
            "log pipes still open after {:?}: exiting without their last lines",
            config.grace
        );
    }
    code
}

/// Set-up failed after the child started: kill its group rather than leave it unsupervised, and
/// exit 2.
fn abandon_child(main_pid: i32) -> u8 {
    let _ = sys::send_signal(-main_pid, Signo::KILL.number());
    2
}

struct Run {
    supervisor: Supervisor,
    main_pid: i32,
    is_pid1: bool,
    warn_on_reap: bool,
    health: Arc<Health>,
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
                debug!("received {signal} from pid {}", received.sender_pid);
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
                    "main child {} exited with status {}",
                    self.main_pid,
                    exit.code()
                );
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
                    Ok(()) => {
                        self.health.forwarded(signal.number());
                        info!("forwarded {signal} to {whom} {}", self.main_pid)
                    }
                    // Everyone in the group already exited: harmless.
                    Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {
                        debug!("{signal} not forwarded: {whom} {} is gone", self.main_pid)
                    }
                    Err(e) => warn!("failed to forward {signal} to {}: {e}", self.main_pid),
                }
            }
            Action::SignalLeft { signal, who } => {
                match (signal, who) {
                    (Signo::KILL, _) => debug!("sending SIGKILL to every process left"),
                    (_, Left::Everyone) => {
                        info!("main child gone: sending {signal} to every process left")
                    }
                    (_, Left::OutsideGroup) => info!(
                        "main child gone: sending {signal} to the processes outside its group"
                    ),
                }
                self.signal_left(signal, who);
            }
            Action::GraceOver => {
                warn!("grace period over: sending SIGKILL to every process left")
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
                Err(e) => warn!("failed to send {signal} to {target}: {e}"),
            }
        }
    }
}
