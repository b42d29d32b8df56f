//! `--ready-when`: what makes the child ready, and the thread that watches it.
//!
//! `started` is ready as soon as the child runs. `tcp:`, `http:` and `file:` are polled: often
//! until the app is ready (from 20 ms, doubling up to 1 s), then every 2 s, so that /ready
//! follows the app; once ready, two failed checks in a row (not one slow answer) make it unready. `notify` is the sd_notify protocol: usher listens on an abstract
//! datagram socket named in the child's `NOTIFY_SOCKET`; `READY=1` makes the child ready,
//! `STOPPING=1` and `RELOADING=1` unready, `STATUS=` is shown in /ready's body.

use std::ffi::OsString;
use std::io;

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::UnixDatagram;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::ReadySource as Source;
use crate::health::Health;
use crate::http_check::{self, Target};
use crate::log_io::events::info;

/// The first pause between two checks of a polled source that is not ready; it doubles up to
/// `NOT_READY_MAX`.
const FIRST_INTERVAL: Duration = Duration::from_millis(20);
const NOT_READY_MAX: Duration = Duration::from_secs(1);
/// The pause between two checks once the app is ready.
const READY_INTERVAL: Duration = Duration::from_secs(2);
/// After a failed check of a ready app, the next one comes this soon.
const RECHECK: Duration = Duration::from_millis(100);
/// Failed checks in a row that make a ready app unready.
const UNREADY_AFTER: u32 = 2;
/// One check may take this long at most (a connect, an HTTP answer).
const CHECK_TIMEOUT: Duration = Duration::from_secs(1);
/// STATUS= texts longer than this are cut: the body of /ready stays small.
const MAX_STATUS: usize = 256;

/// The source's name in events and /ready's body.
fn name(source: &Source) -> &'static str {
    match source {
        Source::Started => "started",
        Source::Tcp(_) => "tcp",
        Source::Http(_) => "http",
        Source::File(_) => "file",
        Source::Notify => "notify",
    }
}

/// One check of a polled source: Ok when ready, else why not.
fn check(source: &Source) -> Result<(), String> {
    match source {
        Source::Started | Source::Notify => Ok(()),
        Source::Tcp(addr) => http_check::check(&Target::Tcp { addr: *addr }, CHECK_TIMEOUT)
            .map_err(|e| e.to_string()),
        Source::Http(target) => http_check::check(target, CHECK_TIMEOUT).map_err(|e| e.to_string()),
        Source::File(path) => match std::fs::metadata(path) {
            Ok(_) => Ok(()),
            Err(e) => Err(format!("{}: {e}", path.display())),
        },
    }
}

/// For `notify`: the socket, created before the child starts so that its name can be put in the
/// child's environment. Abstract (no file): it works on a read-only root file system.
pub struct NotifySocket {
    socket: UnixDatagram,
}

impl NotifySocket {
    /// Creates the socket and adds `NOTIFY_SOCKET` to `environment` (replacing one inherited).
    pub fn create(environment: &mut Vec<(OsString, OsString)>) -> io::Result<NotifySocket> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let name = format!("usher-notify-{}-{nanos:08x}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
        let socket = UnixDatagram::bind_addr(&addr)?;
        environment.retain(|(key, _)| key != "NOTIFY_SOCKET");
        environment.push(("NOTIFY_SOCKET".into(), format!("@{name}").into()));
        Ok(NotifySocket { socket })
    }
}

/// Starts watching the source in a thread of its own (its checks block); `started` needs none.
pub fn start(source: Source, notify: Option<NotifySocket>, health: Arc<Health>) -> io::Result<()> {
    if source.is_started() {
        return Ok(());
    }
    std::thread::Builder::new()
        .name("usher-ready".into())
        .spawn(move || match notify {
            Some(notify) => listen(&notify.socket, &health),
            None => poll(&source, &health),
        })?;
    Ok(())
}

fn poll(source: &Source, health: &Health) {
    let mut pacing = Pacing::new();
    loop {
        let result = check(source);
        let (change, pause) = pacing.record(result.is_ok());
        health.set_detail(result.err().unwrap_or_default());
        if let Some(ready) = change
            && health.set_ready(ready)
        {
            announce(source, ready, health);
        }
        std::thread::sleep(pause);
    }
}

/// How the outcomes of a polled source's checks become readiness, and when to check next.
struct Pacing {
    ready: bool,
    /// Failed checks in a row while ready.
    failures: u32,
    /// The pause after the next failed check while not ready.
    interval: Duration,
}

impl Pacing {
    fn new() -> Pacing {
        Pacing {
            ready: false,
            failures: 0,
            interval: FIRST_INTERVAL,
        }
    }

    /// Takes one check's outcome; returns the readiness when it changes, and the pause before
    /// the next check.
    fn record(&mut self, ok: bool) -> (Option<bool>, Duration) {
        let change = match (self.ready, ok) {
            (false, true) => {
                self.ready = true;
                Some(true)
            }
            (true, false) if self.failures + 1 >= UNREADY_AFTER => {
                self.ready = false;
                self.interval = FIRST_INTERVAL;
                Some(false)
            }
            _ => None,
        };
        self.failures = if self.ready && !ok {
            self.failures + 1
        } else {
            0
        };
        let pause = match (self.ready, self.failures) {
            (true, 0) => READY_INTERVAL,
            (true, _) => RECHECK,
            (false, _) => {
                let pause = self.interval;
                self.interval = (self.interval * 2).min(NOT_READY_MAX);
                pause
            }
        };
        (change, pause)
    }
}

fn listen(socket: &UnixDatagram, health: &Health) {
    let mut datagram = vec![0u8; 4096];
    loop {
        let Ok(read) = socket.recv(&mut datagram) else {
            // Cannot happen on a bound datagram socket; should it, do not spin.
            std::thread::sleep(RECHECK);
            continue;
        };
        let message = Notification::parse(&datagram[..read.min(datagram.len())]);
        // The whole message at once, status first: /ready never shows the new readiness with
        // the old STATUS= text (`STOPPING=1\nSTATUS=shutting down` is one change).
        if let Some(status) = message.status {
            health.set_detail(status);
        }
        if let Some(ready) = message.ready {
            change_to(ready, health);
        }
    }
}

/// What one sd_notify datagram says (sd_notify(3): newline-separated `KEY=VALUE`; the last
/// assignment of a key wins).
#[derive(Debug, Default, PartialEq, Eq)]
struct Notification {
    /// `READY=1` (true), `STOPPING=1` or `RELOADING=1` (false).
    ready: Option<bool>,
    /// `STATUS=`, cut to `MAX_STATUS` bytes on a character boundary.
    status: Option<String>,
}

impl Notification {
    fn parse(datagram: &[u8]) -> Notification {
        let mut notification = Notification::default();
        let message = String::from_utf8_lossy(datagram);
        for (key, value) in message.lines().filter_map(|line| line.split_once('=')) {
            match (key, value) {
                ("READY", "1") => notification.ready = Some(true),
                ("STOPPING" | "RELOADING", "1") => notification.ready = Some(false),
                ("STATUS", status) => {
                    let mut cut = status.len().min(MAX_STATUS);
                    while !status.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    notification.status = Some(status[..cut].to_string());
                }
                _ => {} // WATCHDOG=, MAINPID=, ...: nothing usher acts on
            }
        }
        notification
    }
}

fn change_to(ready: bool, health: &Health) {
    if health.set_ready(ready) {
        announce(&Source::Notify, ready, health);
    }
}

/// Says so when readiness changes while the child runs (not the noise of a stop).
fn announce(source: &Source, ready: bool, health: &Health) {
    if !health.running() {
        return;
    }
    if ready {
        info!(
            child_ready,
            source = name(source),
            "child is ready ({})",
            name(source)
        );
    } else {
        info!(
            child_not_ready,
            source = name(source),
            "child is not ready any more ({})",
            name(source)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notification_is_read_whole() {
        let parsed = Notification::parse(b"STOPPING=1\nSTATUS=shutting down\n");
        assert_eq!(parsed.ready, Some(false));
        assert_eq!(parsed.status.as_deref(), Some("shutting down"));
        let parsed = Notification::parse(b"READY=1");
        assert_eq!((parsed.ready, parsed.status), (Some(true), None));
        let parsed = Notification::parse(b"WATCHDOG=1\nMAINPID=7\nREADY=0");
        assert_eq!(parsed, Notification::default());
        let long = format!("STATUS={}", "\u{e9}".repeat(MAX_STATUS));
        let status = Notification::parse(long.as_bytes()).status.unwrap();
        assert!(status.len() <= MAX_STATUS && status.chars().all(|c| c == '\u{e9}'));
    }

    #[test]
    fn polling_is_fast_until_ready_then_steady_and_one_failure_is_forgiven() {
        let mut pacing = Pacing::new();
        let ms = Duration::from_millis;
        // Not ready yet: 20 ms, doubling, up to a second.
        let pauses: Vec<_> = (0..8).map(|_| pacing.record(false)).collect();
        assert_eq!(pauses[0], (None, ms(20)));
        assert_eq!(pauses[1], (None, ms(40)));
        assert_eq!(pauses[7], (None, ms(1000)));
        assert_eq!(pacing.record(true), (Some(true), READY_INTERVAL));
        assert_eq!(pacing.record(true), (None, READY_INTERVAL));
        // One failure: still ready, checked again soon; a success clears it.
        assert_eq!(pacing.record(false), (None, RECHECK));
        assert_eq!(pacing.record(true), (None, READY_INTERVAL));
        // Two in a row: unready, and fast checks again.
        assert_eq!(pacing.record(false), (None, RECHECK));
        assert_eq!(pacing.record(false), (Some(false), ms(20)));
        assert_eq!(pacing.record(false), (None, ms(40)));
        assert_eq!(pacing.record(true), (Some(true), READY_INTERVAL));
    }

    #[test]
    fn notify_socket_is_named_in_the_environment() {
        let mut env = vec![("NOTIFY_SOCKET".into(), "/run/old".into())];
        let notify = NotifySocket::create(&mut env).unwrap();
        assert_eq!(env.len(), 1);
        let name = env[0].1.to_str().unwrap().to_string();
        assert!(name.starts_with("@usher-notify-"), "{name}");
        let sender = UnixDatagram::unbound().unwrap();
        let addr =
            std::os::unix::net::SocketAddr::from_abstract_name(&name.as_bytes()[1..]).unwrap();
        sender.send_to_addr(b"READY=1\n", &addr).unwrap();
        let mut buffer = [0u8; 16];
        let read = notify.socket.recv(&mut buffer).unwrap();
        assert_eq!(&buffer[..read], b"READY=1\n");
    }
}
