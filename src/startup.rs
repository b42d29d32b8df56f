//! The order of set-up, from a validated [`Config`] to a supervised child: every step that can
//! fail on the configuration runs before the child starts (exit status 2, nothing started);
//! after it starts, a failure kills its process group rather than leave it unsupervised.
//!
//! 1. take over signals: blocked since load time (`sys`), so every signal sent since then is
//!    pending and is forwarded once the child exists; here the signalfd that reads them;
//! 2. read the image's /etc files, env files and secrets, plan privileges (`child::prepare`);
//! 3. bind the health server's address (the default one, when taken, is left: a warning);
//! 4. become a subreaper when not PID 1, create the notify socket (`--ready-when notify`,
//!    `--live-when watchdog`), find the container's cgroups and take the OOM kill counter's
//!    baseline, plan the child's `oom_score_adj` (`container::oom_score`), hold the log relays'
//!    threads (a pids limit refuses them now or never), spawn the child (the foreground of
//!    usher's terminal when it has one: design.md, "Terminals");
//! 5. drop usher's own root (the held threads end before it);
//! 6. start threads (log relays, event writer, health server, readiness and liveness
//!    watchers, notify listener): only after the drop, since capabilities are per thread; a
//!    thread the system refuses leaves its part off, with a warning (README, "When things
//!    run out");
//! 7. set the parent-death signal (after the drop: a credential change clears it);
//! 8. the event loop (which takes the terminal back when the main child exits), Kubernetes'
//!    termination message, then drain the child's output.

use std::error::Error;
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::child::{self, ChildSpec};
use crate::config::{Config, LiveCheck, LogMode, Multiline, OnUnhealthy, ReadySource};
use crate::container::{Container, oom, oom_score, termination};
use crate::health::liveness::{self, Alarm, AlarmReceiver};
use crate::health::notify::{self, NotifySocket, Roles};
use crate::health::resources::Resources;
use crate::health::{self, CheckRecord, CheckState, Health, readiness};
use crate::log_io::events::{self, debug, error, info, warn};
use crate::log_io::relay;
use crate::logs::{LogFormat, Stream};
use crate::supervise::event_loop::{self, Run};
use crate::supervise::signals::Signo;
use crate::sys::{self, SignalInbox};

/// Runs the command under supervision and returns usher's exit status.
pub fn run(mut config: Config) -> u8 {
    sys::use_one_malloc_arena();
    let inbox = match sys::take_over_signals() {
        Ok(inbox) => inbox,
        Err(e) => return configuration_error(&format!("failed to take over signals: {e}")),
    };
    if config.log_format == LogMode::Auto {
        config.log_format = if sys::stdout_is_terminal() {
            LogMode::Raw
        } else {
            LogMode::Json
        };
    }
    let child = match ChildSpec::prepare(&config) {
        Ok(child) => child,
        Err(e) => return configuration_error(&chain(&e)),
    };
    // Bound before anything starts: an address that cannot be bound is a configuration error,
    // but for the default one taken by another usher in the network namespace (sidecars): then
    // usher runs without its server, and says so once its events are set up.
    let mut server_off = None;
    let listener = match config.health_addr {
        None => None,
        Some(addr) => match health::server::bind(addr) {
            Ok(listener) => Some(listener),
            Err(e) if config.health_addr_given_as.is_none() && health::server::taken(&e) => {
                server_off = Some((addr, e));
                None
            }
            Err(e) => {
                return configuration_error(&match &config.health_addr_given_as {
                    Some(given_as) => format!("{given_as} {addr}: cannot listen there: {e}"),
                    None => format!(
                        "the default health address {addr}: cannot listen there: {e} (set \
                         USHER_HEALTH_ADDR to another address, or to off)"
                    ),
                });
            }
        },
    };
    let log_format = (config.log_format == LogMode::Json).then(|| {
        let fields = std::mem::take(&mut config.log_fields);
        Arc::new(
            LogFormat::new(
                config.log_schema,
                config.log_max_record,
                fields,
                config.stderr_level,
            )
            .with_multiline(config.log_multiline == Multiline::Auto),
        )
    });
    match &log_format {
        Some(format) => events::use_json(config.verbosity, Arc::clone(format)),
        None => events::use_raw(config.verbosity),
    }
    for warning in &child.unreadable {
        warn!(user_file_unreadable, "{warning}");
    }
    for name in &config.unknown_variables {
        warn!(
            unknown_variable,
            name = name.as_str(),
            "unknown variable {name} (ignored)"
        );
    }
    if let Some(addr) = listener.as_ref().and_then(|l| l.local_addr().ok()) {
        info!(health_listening, addr = %addr, "health server listening on {addr}");
    }
    if let Some((addr, e)) = server_off {
        warn!(
            health_server_off,
            addr = %addr,
            reason = %e,
            "health server off: the default address {addr} is taken ({e}), likely by another \
             usher in this network namespace; running without /health, /ready and /metrics (set \
             USHER_HEALTH_ADDR, e.g. 0.0.0.0:8559, to give this container a port of its own)"
        );
    }
    let supervised = supervise(config, child, log_format.as_ref(), listener, &inbox);
    events::flush(Instant::now() + within(supervised.exit_by, FLUSH_LIMIT));
    supervised.code
}

/// How long usher's own events may take to be written at exit (a stalled stderr must not keep
/// it); after a stop, no later than its exit deadline.
const FLUSH_LIMIT: Duration = Duration::from_secs(2);

/// The least time the child's last output and usher's own events get at exit, even when a stop's
/// exit deadline has already passed.
const MIN_FINAL_WAIT: Duration = Duration::from_millis(100);

/// One line on stderr, before usher's own event output is set up; exit status 2.
fn configuration_error(message: &str) -> u8 {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "usher: {message}");
    2
}

/// An error and its sources, `outer: inner: innermost`.
pub fn chain(error: &dyn Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Steps 4 to 8: spawn, drop, threads, loop.
fn supervise(
    config: Config,
    mut child: ChildSpec,
    log_format: Option<&Arc<LogFormat>>,
    listener: Option<TcpListener>,
    inbox: &SignalInbox,
) -> Supervised {
    let health = Arc::new(Health::new(
        &config.ready_when,
        &config.live_when,
        config.live_threshold,
    ));
    let parent = sys::parent_pid();
    if std::process::id() != 1 {
        // Orphans of the child come to usher, not to the real init, so they are reaped and
        // signalled like the rest.
        match sys::become_subreaper() {
            Ok(()) => info!(subreaper, "not running as PID 1: became a child subreaper"),
            Err(e) => warn!(
                subreaper_failed,
                "failed to become a child subreaper ({e}): orphans go to init"
            ),
        }
    }
    // The child must find NOTIFY_SOCKET in its environment: the socket exists before it does.
    let roles = Roles {
        ready: matches!(config.ready_when, ReadySource::Notify),
        watchdog: config.live_when.watchdog(),
    };
    let notify = if roles.ready || roles.watchdog.is_some() {
        match NotifySocket::create(&mut child.environment, roles.watchdog) {
            Ok(socket) => Some(socket),
            Err(e) => {
                let option = if roles.ready {
                    "--ready-when notify"
                } else {
                    "--live-when watchdog"
                };
                error!(
                    notify_socket_failed,
                    "{option}: cannot create the notify socket: {e}"
                );
                return 2.into();
            }
        }
    } else {
        None
    };
    // The liveness watchers wake the event loop through it when the check fails.
    let (alarm, alarm_receiver) = match liveness_alarm(&config) {
        Ok(pair) => pair,
        Err(e) => {
            error!(
                liveness_watch_failed,
                "--on-unhealthy stop: cannot create the liveness alarm: {e}"
            );
            return 2.into();
        }
    };
    // The OOM kill counter's baseline before the child exists: earlier kills are not its.
    let container = Arc::new(Container::discover());
    let oom_watcher = oom::Watcher::start(Arc::clone(&container), Instant::now());
    if oom_watcher.is_some() {
        health.watch_oom();
    }
    // The app goes before usher when memory runs out.
    child.oom_score_adj = oom_score::arrange(container.memory_limit());
    if listener.is_some() {
        health.set_resources(Resources::new(container));
    }
    // Two threads held for the log relays while the child is forked: if the system refuses
    // them (a pids limit), the child runs without them, its output not relayed but not lost,
    // rather than started and then killed for want of its relays.
    let mut reservation = None;
    if child.capture_output {
        match relay::reserve(&["usher-stdout", "usher-stderr"]) {
            Ok(held) => reservation = Some(held),
            Err(e) => child::say_relay_off(&format!("cannot start the log relays' threads: {e}")),
        }
    }
    let capture = reservation.is_some();
    let mut started = child::spawn(&child, capture);
    // Released before a privilege drop, which no thread may live through; else they become
    // the relays, and no thread the app starts meanwhile can take their place.
    if child.privileges.switch_to.is_some() || started.is_err() {
        drop(reservation.take());
    }
    // The child comes first: if it does not fit beside the relays' threads, it runs without.
    if capture
        && started
            .as_ref()
            .is_err_and(child::SpawnError::out_of_processes)
    {
        child::say_relay_off(
            "cannot start both the child and the log relays' threads (a pids limit reached)",
        );
        // The released threads count against the limit a moment longer (see relay::RETRY_FOR).
        let give_up = Instant::now() + relay::RETRY_FOR;
        loop {
            started = child::spawn(&child, false);
            if !started
                .as_ref()
                .is_err_and(child::SpawnError::out_of_processes)
                || Instant::now() >= give_up
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let started = match started {
        Ok(started) => started,
        Err(e) => {
            let reason = chain(&e);
            error!(spawn_failed, "{reason}");
            let code = e.exit_code();
            write_termination_message(&termination::render_not_started(&reason, code));
            return code.into();
        }
    };
    let main_pid = started.pid;
    let terminal = started.terminal;
    if let Some(planned) = child.oom_score_adj {
        oom_score::check(main_pid, planned);
    }
    health.child_started(main_pid);
    info!(
        child_started,
        pid = main_pid,
        "started {:?} as pid {main_pid}",
        child.argv.first().cloned().unwrap_or_default()
    );
    if let Some(terminal) = &terminal {
        child::say_terminal_handed(terminal, main_pid);
    }
    // The child's environment holds its secrets: usher keeps no copy.
    let ChildSpec { privileges, .. } = child;
    // Root is needed no longer: neither the HTTP server nor the log relays may have it.
    if let Some(user) = &privileges.switch_to {
        match sys::drop_own_privileges(user.uid, user.gid, &user.groups) {
            Ok(()) => info!(
                privileges_dropped,
                uid = user.uid,
                gid = user.gid,
                "dropped usher's own privileges to uid {} gid {}",
                user.uid,
                user.gid
            ),
            Err(e) => {
                error!(
                    privileges_drop_failed,
                    uid = user.uid,
                    "failed to drop usher's own privileges to uid {}: {e}",
                    user.uid
                );
                return abandon_child(main_pid, terminal.as_ref()).into();
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
    // The relays first: the threads reserved for them are the ones the system gave; the other
    // threads degrade without them (events written by the thread that emits them, no health
    // server, a check that cannot run reported as failed).
    let mut relays = None;
    if let Some(format) = log_format {
        match relay::start(pipes, format, &health, reservation.take()) {
            Ok(started) => relays = Some(started),
            Err(e) => {
                error!(log_relays_failed, "failed to start the log relays: {e}");
                return abandon_child(main_pid, terminal.as_ref()).into();
            }
        }
        if let Err(e) = events::start_writer() {
            warn!(
                event_writer_failed,
                "failed to start the event writer ({e}): usher's events are written as they \
                 happen, by the thread that has them"
            );
        }
    }
    if let Some(listener) = listener
        && let Err(e) = health::server::start(listener, Arc::clone(&health))
    {
        warn!(
            health_server_failed,
            reason = %e,
            "failed to start the health server ({e}): running without /health, /ready and \
             /metrics"
        );
    }
    if let Err(e) = readiness::start(config.ready_when.clone(), Arc::clone(&health)) {
        unwatched(&health, Watched::Readiness, &e);
    }
    // One of the two watchers takes the alarm: the poller (tcp:, http:) or the notify listener
    // (watchdog).
    let (poller_alarm, notify_alarm) = match config.live_when {
        LiveCheck::Watchdog(_) => (None, alarm),
        _ => (alarm, None),
    };
    if let Err(e) = liveness::start(
        config.live_when.clone(),
        config.live_threshold,
        Arc::clone(&health),
        poller_alarm,
    ) {
        unwatched(&health, Watched::Liveness, &e);
    }
    if let Some(notify) = notify
        && let Err(e) = notify::start(notify, roles, Arc::clone(&health), notify_alarm)
    {
        // The socket went with the thread that could not start: the app's messages are
        // refused (ECONNREFUSED) rather than queued until its sends block.
        if matches!(config.ready_when, ReadySource::Notify) {
            unwatched(&health, Watched::Readiness, &e);
        }
        if config.live_when.watchdog().is_some() {
            unwatched(&health, Watched::Liveness, &e);
        }
    }
    // After the drop: the kernel clears the parent-death signal when credentials change.
    if let Some(signal) = config.parent_death_signal {
        if let Err(e) = sys::set_parent_death_signal(signal.number()) {
            error!(
                parent_death_signal_failed,
                signal = %signal,
                "failed to set the parent-death signal {signal}: {e}"
            );
            return abandon_child(main_pid, terminal.as_ref()).into();
        }
        // The parent may have died before the kernel was told: then send it ourselves.
        if sys::parent_pid() != parent {
            let _ = sys::send_signal(std::process::id().cast_signed(), signal.number());
        }
    }

    let grace = config.policy.grace;
    let ending = Run::new(
        config.policy,
        main_pid,
        config.warn_on_reap,
        Arc::clone(&health),
    )
    .with_terminal(terminal)
    .with_alarm(alarm_receiver)
    .watching_oom(oom_watcher)
    .until_exit(inbox);
    let code = ending.status;
    // The liveness check that failed and why, when `--on-unhealthy stop` ended the app.
    let unhealthy = ending.unhealthy.then(|| health.live_result());
    write_termination_message(&termination::render(&termination::Ending {
        exit: ending.main_exit,
        status: code,
        oom_killed: ending.oom_killed,
        grace_killed: ending.grace_killed,
        unhealthy: unhealthy.as_deref(),
    }));
    // Drain the child's output before leaving: everything written is relayed. Only when nothing
    // has moved for the grace period (a process outside usher's reach holds a pipe open, or a
    // collector stopped reading usher's output) does usher leave without the rest; after a
    // stop, sooner if its exit deadline comes first.
    let idle = within(ending.exit_by, grace.max(Duration::from_secs(1)));
    if let Some(relays) = &mut relays
        && !relays.wait(idle)
    {
        warn!(
            log_pipes_open,
            "the child's output not drained after {idle:?} without progress (a process outside \
             usher's reach holds its pipe open, or usher's own output is not being read): \
             exiting without the rest"
        );
    }
    info!(usher_exiting, status = code, "exiting with status {code}");
    Supervised {
        code,
        exit_by: ending.exit_by,
    }
}

/// What a watcher that could not start was to watch.
#[derive(Clone, Copy)]
enum Watched {
    Readiness,
    Liveness,
}

/// A readiness or liveness watcher (or the notify listener) could not start (no thread): says
/// so, and marks its check failed, so that `/ready` or `/health` answer 503 rather than vouch
/// for what nobody checks.
fn unwatched(health: &Health, watched: Watched, error: &std::io::Error) {
    let why = format!("not checked: usher could not start watching it ({error})");
    match watched {
        Watched::Readiness => {
            warn!(
                readiness_watch_failed,
                reason = %error,
                "failed to start watching readiness ({error}): /ready stays 503"
            );
            health.set_ready_check(CheckRecord::new(CheckState::Failed, why.as_str(), 0));
            health.set_detail(why);
        }
        Watched::Liveness => {
            warn!(
                liveness_watch_failed,
                reason = %error,
                "failed to start watching liveness ({error}): /health answers 503, since it \
                 cannot tell"
            );
            health.set_live_check(CheckRecord::new(CheckState::Failed, why, 0));
        }
    }
}

/// The liveness alarm, when a failed check must reach the event loop: `--on-unhealthy stop`
/// with a check other than `running` (whose failure is the child's exit, which the loop sees).
fn liveness_alarm(config: &Config) -> std::io::Result<(Option<Alarm>, Option<AlarmReceiver>)> {
    if config.policy.on_unhealthy != OnUnhealthy::Stop
        || matches!(config.live_when, LiveCheck::Running)
    {
        return Ok((None, None));
    }
    let (alarm, receiver) = liveness::alarm()?;
    Ok((Some(alarm), Some(receiver)))
}

/// Kubernetes' termination message (design.md, section 4): why the container ended, written
/// over /dev/termination-log when that file exists (the kubelet mounts it), never created.
fn write_termination_message(message: &str) {
    let path = termination::PATH;
    match termination::write(Path::new(path), message) {
        Ok(true) => debug!(
            termination_message_written,
            path, "wrote why the container ended to {path}"
        ),
        Ok(false) => {}
        Err(e) => debug!(termination_message_failed, path, "{}", chain(&e)),
    }
}

/// What the supervision left to do: exit with `code`, usher's own events written by `exit_by`.
struct Supervised {
    code: u8,
    exit_by: Option<Instant>,
}

/// Set-up failed before the event loop: no stop, no deadline.
impl From<u8> for Supervised {
    fn from(code: u8) -> Self {
        Supervised {
            code,
            exit_by: None,
        }
    }
}

/// At most `limit`, and no later than `exit_by`, but never less than [`MIN_FINAL_WAIT`]: what
/// the orchestrator allows is spent, but the last lines still get their chance.
fn within(exit_by: Option<Instant>, limit: Duration) -> Duration {
    let left = exit_by.map_or(limit, |by| by.saturating_duration_since(Instant::now()));
    limit.min(left).max(MIN_FINAL_WAIT)
}

/// Set-up failed after the child started: kill its group rather than leave it unsupervised,
/// take back the terminal it was given, and exit 2.
fn abandon_child(main_pid: i32, terminal: Option<&sys::Terminal>) -> u8 {
    let _ = sys::send_signal(-main_pid, Signo::KILL.number());
    if let Some(terminal) = terminal {
        event_loop::take_back(terminal);
    }
    2
}
