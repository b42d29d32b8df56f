//! `--live-when`: what keeps `/health` at 200 besides the child running, and the watchers.
//!
//! - `tcp:` and `http:` are polled by a thread of their own (`pacing`): fast until the check
//!   first passes, then every 2 s; once it has passed, `--live-threshold` failures in a row
//!   (3 by default, Kubernetes' `failureThreshold`), 1 s apart, make the app unhealthy, and one
//!   success makes it healthy again. Failures before the first pass do not count: an app that
//!   takes a minute to start listening is starting, not hung.
//! - `watchdog` is systemd's watchdog protocol (systemd.service(5) `WatchdogSec=`,
//!   sd_watchdog_enabled(3)): the child finds `WATCHDOG_USEC` and `NOTIFY_SOCKET` in its
//!   environment and must send `WATCHDOG=1` at least once per interval, counted from its start;
//!   a missed interval, or `WATCHDOG=trigger`, makes it unhealthy at once, and the next
//!   `WATCHDOG=1` healthy again. The `notify` listener reads the datagrams; [`Watchdog`] keeps
//!   the time.
//!
//! A failure turns /health 503 (the body says which check failed and why) and, with
//! `--on-unhealthy stop`, rings the [`Alarm`] so that the event loop begins a graceful stop.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixDatagram;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::LiveCheck;
use crate::health::pacing::{Pacing, Rules};
use crate::health::readiness::CHECK_TIMEOUT;
use crate::health::{CheckRecord, CheckState, Health};
use crate::http_check::{self, Target};
use crate::log_io::events::{info, warn};

/// Liveness' pace once the check passes: every 2 s, and 1 s after a failure, so that a stall
/// of a second or two is not counted three times.
const STEADY: Duration = Duration::from_secs(2);
const RECHECK: Duration = Duration::from_secs(1);

/// Wakes the event loop when liveness fails (`--on-unhealthy stop`): one end of a datagram
/// socket pair whose other end the loop polls beside its signalfd.
#[derive(Debug)]
pub struct Alarm {
    socket: UnixDatagram,
}

/// The event loop's end of the [`Alarm`].
#[derive(Debug)]
pub struct AlarmReceiver {
    socket: UnixDatagram,
}

/// A connected pair, both ends non-blocking.
pub fn alarm() -> io::Result<(Alarm, AlarmReceiver)> {
    let (ring, receive) = UnixDatagram::pair()?;
    ring.set_nonblocking(true)?;
    receive.set_nonblocking(true)?;
    Ok((Alarm { socket: ring }, AlarmReceiver { socket: receive }))
}

impl Alarm {
    fn ring(&self) {
        // A full buffer already holds a wake-up: nothing is lost.
        let _ = self.socket.send(&[1]);
    }
}

impl AlarmReceiver {
    /// Takes every wake-up waiting (what happened is in [`Health::take_unhealthy`]).
    pub fn drain(&self) {
        let mut byte = [0u8; 1];
        while self.socket.recv(&mut byte).is_ok() {}
    }
}

impl AsFd for AlarmReceiver {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

/// Starts polling a `tcp:` or `http:` check in a thread of its own; `running` needs none and
/// `watchdog` is the notify listener's.
pub fn start(
    check: LiveCheck,
    threshold: u32,
    health: Arc<Health>,
    alarm: Option<Alarm>,
) -> io::Result<()> {
    let target = match check {
        LiveCheck::Tcp(addr) => Target::Tcp { addr },
        LiveCheck::Http(target) => target,
        LiveCheck::Running | LiveCheck::Watchdog(_) => return Ok(()),
    };
    let rules = Rules {
        threshold: threshold.max(1),
        steady: STEADY,
        recheck: RECHECK,
    };
    let kind = check_kind(&target);
    std::thread::Builder::new()
        .name("usher-live".into())
        .spawn(move || poll(&target, kind, rules, &health, alarm.as_ref()))?;
    Ok(())
}

fn check_kind(target: &Target) -> &'static str {
    match target {
        Target::Tcp { .. } => "tcp",
        Target::Http { .. } => "http",
    }
}

fn poll(target: &Target, kind: &'static str, rules: Rules, health: &Health, alarm: Option<&Alarm>) {
    let mut pacing = Pacing::new(rules);
    loop {
        let result = http_check::check(target, CHECK_TIMEOUT).map_err(|e| e.to_string());
        let (change, pause) = pacing.record(result.is_ok());
        let why = result.err().unwrap_or_else(|| "ok".to_string());
        health.set_live_check(CheckRecord::new(pacing.state(), &why, pacing.failures()));
        if let Some(live) = change {
            let why = format!("{why} ({} failed checks in a row)", pacing.failures());
            changed(kind, live, &why, health, alarm);
        }
        std::thread::sleep(pause);
    }
}

/// Liveness changed: said while the child runs (not the noise of a stop), and then a failure
/// is handed to the event loop (`alarm`).
///
/// Said first: once the event loop has the failure it may begin the stop at once
/// (`unhealthy_stop`), and from then on the child no longer counts as running, so a failure
/// said after the handover could go unsaid, or come after the stop it caused.
pub fn changed(kind: &str, live: bool, why: &str, health: &Health, alarm: Option<&Alarm>) {
    if health.running() {
        if live {
            info!(child_live, check = kind, "child is live ({kind})");
        } else {
            warn!(
                child_unhealthy,
                check = kind,
                reason = why,
                "child is unhealthy ({kind}): {why}"
            );
        }
    }
    if !live {
        health.unhealthy();
        if let Some(alarm) = alarm {
            alarm.ring();
        }
    }
}

/// The watchdog's clock (sd_watchdog_enabled(3)): the child must say `WATCHDOG=1` within
/// `interval` of its start and of each `WATCHDOG=1` since.
#[derive(Debug)]
pub struct Watchdog {
    interval: Duration,
    deadline: Instant,
    pinged: bool,
    /// Why it failed: a missed interval, or `WATCHDOG=trigger`.
    failed: Option<String>,
}

impl Watchdog {
    /// Armed at the child's start (`now`), as systemd arms `WatchdogSec=`.
    pub fn new(interval: Duration, now: Instant) -> Watchdog {
        Watchdog {
            interval,
            deadline: now + interval,
            pinged: false,
            failed: None,
        }
    }

    /// `WATCHDOG=1`: Some(true) when the child is live again, or for the first time.
    pub fn ping(&mut self, now: Instant) -> Option<bool> {
        self.deadline = now + self.interval;
        let change = (self.failed.is_some() || !self.pinged).then_some(true);
        self.pinged = true;
        self.failed = None;
        change
    }

    /// `WATCHDOG=trigger`: the app says it is hung (systemd acts at once). Some(false) unless
    /// it had failed already.
    pub fn trigger(&mut self) -> Option<bool> {
        self.fail("the app sent WATCHDOG=trigger".to_string())
    }

    /// Called at or after [`Watchdog::deadline`]: Some(false) when the interval went by
    /// without a `WATCHDOG=1`.
    pub fn expire(&mut self, now: Instant) -> Option<bool> {
        if now < self.deadline {
            return None;
        }
        let interval = self.interval;
        self.fail(format!("no WATCHDOG=1 within {interval:?}"))
    }

    fn fail(&mut self, why: String) -> Option<bool> {
        if self.failed.is_some() {
            return None;
        }
        self.failed = Some(why);
        Some(false)
    }

    /// When the interval runs out; None once failed (only a `WATCHDOG=1` changes that).
    pub fn deadline(&self) -> Option<Instant> {
        self.failed.is_none().then_some(self.deadline)
    }

    /// The record for the body: `starting` until the first `WATCHDOG=1`.
    pub fn record(&self) -> CheckRecord {
        match (&self.failed, self.pinged) {
            (Some(why), _) => CheckRecord::new(CheckState::Failed, why.as_str(), 1),
            (None, true) => CheckRecord::new(CheckState::Ok, "WATCHDOG=1", 0),
            (None, false) => CheckRecord::new(CheckState::Starting, "no WATCHDOG=1 yet", 0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: Duration = Duration::from_secs(10);

    #[test]
    fn pings_within_the_interval_keep_it_live() {
        let t0 = Instant::now();
        let mut watchdog = Watchdog::new(INTERVAL, t0);
        assert_eq!(watchdog.deadline(), Some(t0 + INTERVAL));
        assert_eq!(watchdog.record().state, CheckState::Starting);
        assert_eq!(watchdog.expire(t0 + INTERVAL / 2), None);
        // The first ping is news (live), the next ones not.
        let t1 = t0 + INTERVAL / 2;
        assert_eq!(watchdog.ping(t1), Some(true));
        assert_eq!(watchdog.ping(t1), None);
        assert_eq!(watchdog.deadline(), Some(t1 + INTERVAL));
        // Past the first deadline, but within the interval of the last ping.
        assert_eq!(watchdog.expire(t0 + INTERVAL), None);
        assert_eq!(watchdog.record().state, CheckState::Ok);
    }

    #[test]
    fn a_missed_interval_fails_until_the_next_ping() {
        let t0 = Instant::now();
        let mut watchdog = Watchdog::new(INTERVAL, t0);
        watchdog.ping(t0);
        assert_eq!(watchdog.expire(t0 + INTERVAL), Some(false));
        assert_eq!(watchdog.expire(t0 + INTERVAL * 3), None, "said once");
        assert_eq!(watchdog.deadline(), None);
        let record = watchdog.record();
        assert_eq!(record.state, CheckState::Failed);
        assert_eq!(record.result, "no WATCHDOG=1 within 10s");
        let t1 = t0 + INTERVAL * 4;
        assert_eq!(watchdog.ping(t1), Some(true));
        assert_eq!(watchdog.deadline(), Some(t1 + INTERVAL));
    }

    /// Never pinging at all fails too: the interval counts from the start.
    #[test]
    fn silence_from_the_start_fails() {
        let t0 = Instant::now();
        let mut watchdog = Watchdog::new(INTERVAL, t0);
        assert_eq!(watchdog.expire(t0 + INTERVAL), Some(false));
    }

    #[test]
    fn trigger_fails_at_once() {
        let t0 = Instant::now();
        let mut watchdog = Watchdog::new(INTERVAL, t0);
        watchdog.ping(t0);
        assert_eq!(watchdog.trigger(), Some(false));
        assert_eq!(watchdog.trigger(), None);
        assert!(watchdog.record().result.contains("WATCHDOG=trigger"));
        assert_eq!(watchdog.ping(t0), Some(true));
    }

    #[test]
    fn the_alarm_wakes_and_drains() {
        let (alarm, receiver) = alarm().unwrap();
        for _ in 0..3 {
            alarm.ring();
        }
        let mut fds = [nix::poll::PollFd::new(
            receiver.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        assert_eq!(
            nix::poll::poll(&mut fds, nix::poll::PollTimeout::ZERO).unwrap(),
            1
        );
        receiver.drain();
        assert_eq!(
            nix::poll::poll(&mut fds, nix::poll::PollTimeout::ZERO).unwrap(),
            0
        );
    }

    /// Records each event's name, and whether the event loop could have heard of a failure
    /// (the alarm readable, or the failure waiting to be taken) when it was emitted.
    struct Recorder {
        health: Arc<Health>,
        alarm: UnixDatagram,
        seen: Arc<std::sync::Mutex<Vec<(String, bool)>>>,
    }

    struct EventName(String);

    impl tracing::field::Visit for EventName {
        fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
            if field.name() == "event" {
                self.0 = value.to_string();
            }
        }

        fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {}
    }

    impl tracing::Subscriber for Recorder {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }

        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }

        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

        fn event(&self, event: &tracing::Event<'_>) {
            let mut name = EventName(String::new());
            event.record(&mut name);
            let mut fds = [nix::poll::PollFd::new(
                self.alarm.as_fd(),
                nix::poll::PollFlags::POLLIN,
            )];
            let rung = nix::poll::poll(&mut fds, nix::poll::PollTimeout::ZERO).unwrap() == 1;
            let pending = self
                .health
                .unhealthy_pending
                .load(std::sync::atomic::Ordering::SeqCst);
            self.seen.lock().unwrap().push((name.0, rung || pending));
        }

        fn enter(&self, _: &tracing::span::Id) {}

        fn exit(&self, _: &tracing::span::Id) {}
    }

    /// The event loop may begin the stop (`unhealthy_stop`) the moment it hears of a failure,
    /// after which the child no longer counts as running: `child_unhealthy` must be out before.
    #[test]
    fn a_failure_is_said_before_the_event_loop_hears_of_it() {
        let health = Arc::new(Health::default());
        health.child_started(3);
        let (alarm, receiver) = alarm().unwrap();
        let seen = Arc::default();
        let recorder = Recorder {
            health: Arc::clone(&health),
            alarm: receiver.socket.try_clone().unwrap(),
            seen: Arc::clone(&seen),
        };
        tracing::subscriber::with_default(recorder, || {
            changed("watchdog", false, "no WATCHDOG=1", &health, Some(&alarm));
        });
        assert_eq!(
            *seen.lock().unwrap(),
            [("child_unhealthy".to_string(), false)],
            "(event, whether the event loop could already know)"
        );
        assert!(health.take_unhealthy(), "and then handed over");
    }

    #[test]
    fn a_failure_is_handed_to_the_event_loop() {
        let health = Health::default();
        health.child_started(3);
        let (alarm, _receiver) = alarm().unwrap();
        changed("http", false, "status 500", &health, Some(&alarm));
        assert!(health.take_unhealthy());
        assert!(!health.take_unhealthy(), "once");
        changed("http", true, "ok", &health, Some(&alarm));
        assert!(!health.take_unhealthy());
    }
}
