//! The sd_notify socket (sd_notify(3)), for `--ready-when notify` and `--live-when watchdog`:
//! one abstract datagram socket named in the child's `NOTIFY_SOCKET`, read by one thread.
//!
//! Only the app may speak on it. An abstract socket can be written by any process in the
//! network namespace (a sidecar of the pod, `docker exec`), so every datagram carries its
//! sender's credentials (`SO_PASSCRED`, `SCM_CREDENTIALS`, unix(7)) and is acted on only when
//! the sender is the main child or one of its descendants, found by following parent pids in
//! /proc (systemd's `NotifyAccess=` checks the same thing by cgroup). Under `--wait-all`, once
//! the main child has exited, the processes it left are the app: any descendant of usher. A
//! sender usher cannot place is refused: one in another PID namespace (its pid reads 0), or one
//! that has exited and been reaped before usher looked (a `systemd-notify` run from a shell
//! script can be; send from the app, or keep the sender alive until the message is read).

use std::ffi::OsString;
use std::io::{self, IoSliceMut};
use std::os::fd::AsRawFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::UnixDatagram;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, UnixCredentials, recvmsg, setsockopt, sockopt,
};

use crate::config::ReadySource;
use crate::health::liveness::{self, Alarm, Watchdog};
use crate::health::readiness;
use crate::health::{CheckRecord, CheckState, Health};
use crate::log_io::events::{debug, warn};

/// STATUS= texts longer than this are cut: the body of /ready stays small.
pub const MAX_STATUS: usize = 256;
/// After an unexpected receive error, wait this long: never spin.
const ERROR_BACKOFF: Duration = Duration::from_millis(100);
/// Ancestors followed at most from a sender up to the main child (a loop in /proc cannot be,
/// but a bound costs nothing).
const MAX_DEPTH: usize = 4096;
/// Senders refused each get a warning, up to this many; beyond, and for their repeats, a debug
/// summary at most every `SUMMARY_EVERY`: a flood of datagrams is not a flood of events.
const MAX_WARNED: usize = 8;
const SUMMARY_EVERY: Duration = Duration::from_secs(10);

/// The socket, created before the child starts so that its name can be put in the child's
/// environment. Abstract (no file): it works on a read-only root file system.
pub struct NotifySocket {
    socket: UnixDatagram,
}

impl NotifySocket {
    /// Creates the socket, with the senders' credentials on, and adds `NOTIFY_SOCKET` to
    /// `environment` (replacing one inherited). With a `watchdog` interval, also
    /// `WATCHDOG_USEC` (microseconds), and removes an inherited `WATCHDOG_PID`: usher cannot
    /// know the child's pid before it exists (std's spawn builds the environment before the
    /// fork), and sd_watchdog_enabled(3) enables the watchdog for any process when it is
    /// unset; one left from usher's own supervisor would name another process and disable it.
    pub fn create(
        environment: &mut Vec<(OsString, OsString)>,
        watchdog: Option<Duration>,
    ) -> io::Result<NotifySocket> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let name = format!("usher-notify-{}-{nanos:08x}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
        let socket = UnixDatagram::bind_addr(&addr)?;
        setsockopt(&socket, sockopt::PassCred, &true)?;
        environment.retain(|(key, _)| key != "NOTIFY_SOCKET");
        environment.push(("NOTIFY_SOCKET".into(), format!("@{name}").into()));
        if let Some(interval) = watchdog {
            environment.retain(|(key, _)| key != "WATCHDOG_USEC" && key != "WATCHDOG_PID");
            let micros = interval.as_micros().to_string();
            environment.push(("WATCHDOG_USEC".into(), micros.into()));
        }
        Ok(NotifySocket { socket })
    }
}

/// What the listener acts on.
#[derive(Debug)]
pub struct Roles {
    /// `--ready-when notify`: READY=1, STOPPING=1, RELOADING=1 and STATUS=.
    pub ready: bool,
    /// `--live-when watchdog`: WATCHDOG=1 and WATCHDOG=trigger, within this interval.
    pub watchdog: Option<Duration>,
}

/// Starts reading the socket in a thread of its own.
pub fn start(
    notify: NotifySocket,
    roles: Roles,
    health: Arc<Health>,
    alarm: Option<Alarm>,
) -> io::Result<()> {
    std::thread::Builder::new()
        .name("usher-notify".into())
        .spawn(move || listen(&notify.socket, &roles, &health, alarm.as_ref()))?;
    Ok(())
}

fn listen(socket: &UnixDatagram, roles: &Roles, health: &Health, alarm: Option<&Alarm>) {
    let mut watchdog = roles
        .watchdog
        .map(|interval| Watchdog::new(interval, Instant::now()));
    if let Some(watchdog) = &watchdog {
        health.set_live_check(watchdog.record());
    }
    let mut refused = Refused::default();
    let mut datagram = vec![0u8; 4096];
    loop {
        let timeout = watchdog
            .as_ref()
            .and_then(Watchdog::deadline)
            .map(|deadline| {
                deadline
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(1))
            });
        // A zero timeout would mean none: the 1 ms floor above keeps the deadline's meaning.
        let _ = socket.set_read_timeout(timeout);
        match receive(socket, &mut datagram) {
            Ok((read, sender)) => {
                let now = Instant::now();
                match sender_verdict(sender, health) {
                    Ok(()) => {
                        let message = Notification::parse(datagram.get(..read).unwrap_or_default());
                        act(&message, roles, watchdog.as_mut(), health, alarm);
                    }
                    Err(why) => refused.note(sender.unwrap_or(0), &why, now),
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // Cannot happen on a bound datagram socket; should it, do not spin.
            Err(_) => std::thread::sleep(ERROR_BACKOFF),
        }
        if let Some(watchdog) = &mut watchdog
            && let Some(change) = watchdog.expire(Instant::now())
        {
            let record = watchdog.record();
            health.set_live_check(record.clone());
            liveness::changed("watchdog", change, &record.result, health, alarm);
        }
    }
}

/// One datagram and its sender's pid (None when no credentials came with it).
fn receive(socket: &UnixDatagram, buffer: &mut [u8]) -> io::Result<(usize, Option<i32>)> {
    let mut iov = [IoSliceMut::new(buffer)];
    let mut space = nix::cmsg_space!(UnixCredentials);
    // MSG_CMSG_CLOEXEC: file descriptors a sender passes along do not fit the space above and
    // are discarded by the kernel; should any ever be installed, they close on exec.
    let message = recvmsg::<()>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let pid = message.cmsgs().ok().and_then(|mut cmsgs| {
        cmsgs.find_map(|cmsg| match cmsg {
            ControlMessageOwned::ScmCredentials(credentials) => Some(credentials.pid()),
            _ => None,
        })
    });
    Ok((message.bytes, pid))
}

/// Whether a datagram from `sender` is the app's; else why not, for the event.
fn sender_verdict(sender: Option<i32>, health: &Health) -> Result<(), String> {
    let pid = match sender {
        None => return Err("it came without credentials".to_string()),
        Some(0) => {
            return Err(
                "its sender is outside usher's PID namespace (another container or the host)"
                    .to_string(),
            );
        }
        Some(pid) => pid,
    };
    // Under --wait-all, once the main child is gone, the processes it left are the app.
    let root = if health.outlived() {
        i32::try_from(std::process::id()).unwrap_or(1)
    } else {
        health.child_pid()
    };
    match descends_from(pid, root, parent_of) {
        Lineage::Descendant => Ok(()),
        Lineage::Other => Err(format!(
            "pid {pid} is not the main child ({root}) or one of its descendants"
        )),
        Lineage::Unknown => Err(format!(
            "pid {pid} has exited, or its ancestry cannot be read, so whose it was is unknown"
        )),
    }
}

/// The parent of `pid`, from /proc/PID/stat (0 for a process whose parent is outside the PID
/// namespace); None when the process is gone (a zombie still has its stat).
fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    crate::container::process_tree::parse_stat(&stat).map(|stat| stat.ppid)
}

#[derive(Debug, PartialEq, Eq)]
enum Lineage {
    Descendant,
    Other,
    /// A process on the way is gone: nobody can tell.
    Unknown,
}

/// Whether `pid` is `root` or one of its descendants, following `parent_of` up.
fn descends_from(pid: i32, root: i32, parent_of: impl Fn(i32) -> Option<i32>) -> Lineage {
    let mut current = pid;
    for _ in 0..MAX_DEPTH {
        if current == root && root > 0 {
            return Lineage::Descendant;
        }
        if current <= 1 {
            return Lineage::Other;
        }
        match parent_of(current) {
            Some(parent) => current = parent,
            None => return Lineage::Unknown,
        }
    }
    Lineage::Other
}

/// The refused senders said so far.
#[derive(Debug, Default)]
struct Refused {
    warned: Vec<i32>,
    unreported: u64,
    last_summary: Option<Instant>,
}

impl Refused {
    fn note(&mut self, pid: i32, why: &str, now: Instant) {
        if !self.warned.contains(&pid) && self.warned.len() < MAX_WARNED {
            self.warned.push(pid);
            warn!(
                notify_sender_refused,
                pid,
                reason = why,
                "ignored a message on NOTIFY_SOCKET: {why}; only the app's processes may send"
            );
            return;
        }
        self.unreported += 1;
        if self
            .last_summary
            .is_none_or(|last| now.duration_since(last) >= SUMMARY_EVERY)
        {
            let count = self.unreported;
            debug!(
                notify_senders_refused,
                count,
                "ignored {count} more messages on NOTIFY_SOCKET from processes not the app's"
            );
            self.unreported = 0;
            self.last_summary = Some(now);
        }
    }
}

/// Acts on one message of the app's.
fn act(
    message: &Notification,
    roles: &Roles,
    watchdog: Option<&mut Watchdog>,
    health: &Health,
    alarm: Option<&Alarm>,
) {
    if roles.ready {
        // The whole message at once, status first: /ready never shows the new readiness with
        // the old STATUS= text (`STOPPING=1\nSTATUS=shutting down` is one change).
        if let Some(status) = &message.status {
            health.set_detail(status.clone());
        }
        if let Some((ready, key)) = message.ready {
            let state = if ready {
                CheckState::Ok
            } else {
                CheckState::Failed
            };
            health.set_ready_check(CheckRecord::new(state, key, 0));
            if health.set_ready(ready) {
                readiness::announce(&ReadySource::Notify, ready, health);
            }
        }
    }
    if let Some(watchdog) = watchdog {
        let change = match message.watchdog {
            Some(Ping::Alive) => watchdog.ping(Instant::now()),
            Some(Ping::Trigger) => watchdog.trigger(),
            None => return,
        };
        let record = watchdog.record();
        health.set_live_check(record.clone());
        if let Some(live) = change {
            liveness::changed("watchdog", live, &record.result, health, alarm);
        }
    }
}

/// A watchdog message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ping {
    /// `WATCHDOG=1`
    Alive,
    /// `WATCHDOG=trigger`: the app asks to be treated as hung.
    Trigger,
}

/// What one sd_notify datagram says (sd_notify(3): newline-separated `KEY=VALUE`; the last
/// assignment of a key wins).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Notification {
    /// `READY=1` (true), `STOPPING=1` or `RELOADING=1` (false), with the key as sent.
    pub ready: Option<(bool, &'static str)>,
    /// `STATUS=`, cut to `MAX_STATUS` bytes on a character boundary.
    pub status: Option<String>,
    pub watchdog: Option<Ping>,
}

impl Notification {
    pub fn parse(datagram: &[u8]) -> Notification {
        let mut notification = Notification::default();
        let message = String::from_utf8_lossy(datagram);
        for (key, value) in message.lines().filter_map(|line| line.split_once('=')) {
            match (key, value) {
                ("READY", "1") => notification.ready = Some((true, "READY=1")),
                ("STOPPING", "1") => notification.ready = Some((false, "STOPPING=1")),
                ("RELOADING", "1") => notification.ready = Some((false, "RELOADING=1")),
                ("STATUS", status) => {
                    let mut cut = status.len().min(MAX_STATUS);
                    while !status.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    notification.status = Some(status[..cut].to_string());
                }
                ("WATCHDOG", "1") => notification.watchdog = Some(Ping::Alive),
                ("WATCHDOG", "trigger") => notification.watchdog = Some(Ping::Trigger),
                // MAINPID=, WATCHDOG_USEC= (a new interval), FDSTORE=...: nothing usher acts on.
                _ => {}
            }
        }
        notification
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notification_is_read_whole() {
        let parsed = Notification::parse(b"STOPPING=1\nSTATUS=shutting down\n");
        assert_eq!(parsed.ready, Some((false, "STOPPING=1")));
        assert_eq!(parsed.status.as_deref(), Some("shutting down"));
        let parsed = Notification::parse(b"READY=1");
        assert_eq!(
            (parsed.ready, parsed.status),
            (Some((true, "READY=1")), None)
        );
        let parsed = Notification::parse(b"MAINPID=7\nREADY=0\nWATCHDOG=0\nWATCHDOG_USEC=5");
        assert_eq!(parsed, Notification::default());
        let parsed = Notification::parse(b"WATCHDOG=1\nREADY=1");
        assert_eq!(parsed.watchdog, Some(Ping::Alive));
        assert_eq!(parsed.ready, Some((true, "READY=1")));
        let parsed = Notification::parse(b"WATCHDOG=1\nWATCHDOG=trigger");
        assert_eq!(parsed.watchdog, Some(Ping::Trigger));
        let long = format!("STATUS={}", "\u{e9}".repeat(MAX_STATUS));
        let status = Notification::parse(long.as_bytes()).status.unwrap();
        assert!(status.len() <= MAX_STATUS && status.chars().all(|c| c == '\u{e9}'));
    }

    /// 10 is the main child, 11 and 12 its child and grandchild, 20 a process beside it
    /// (a `docker exec`), whose parent is outside the namespace (0), 30 gone.
    fn parent(pid: i32) -> Option<i32> {
        match pid {
            10 => Some(1),
            11 => Some(10),
            12 => Some(11),
            20 => Some(0),
            21 => Some(20),
            40 => Some(1),
            _ => None,
        }
    }

    #[test]
    fn only_the_main_child_and_its_descendants_are_the_app() {
        for pid in [10, 11, 12] {
            assert_eq!(descends_from(pid, 10, parent), Lineage::Descendant, "{pid}");
        }
        for pid in [1, 20, 21, 40, 0, -3] {
            assert_eq!(descends_from(pid, 10, parent), Lineage::Other, "{pid}");
        }
        assert_eq!(descends_from(30, 10, parent), Lineage::Unknown);
        // Under --wait-all, once outlived: any descendant of usher (PID 1), but not a process
        // whose parent is outside the namespace.
        for pid in [10, 12, 40] {
            assert_eq!(descends_from(pid, 1, parent), Lineage::Descendant, "{pid}");
        }
        assert_eq!(descends_from(21, 1, parent), Lineage::Other);
        // No main child yet: nobody.
        assert_eq!(descends_from(0, 0, parent), Lineage::Other);
    }

    #[test]
    fn a_sender_outside_the_namespace_or_without_credentials_is_refused() {
        let health = Health::default();
        health.child_started(std::process::id().cast_signed());
        assert!(sender_verdict(None, &health).is_err());
        assert!(
            sender_verdict(Some(0), &health)
                .unwrap_err()
                .contains("outside")
        );
        // This process, as the main child: itself, and not its parent.
        let me = std::process::id().cast_signed();
        assert_eq!(sender_verdict(Some(me), &health), Ok(()));
        let parent = crate::sys::parent_pid();
        let err = sender_verdict(Some(parent), &health).unwrap_err();
        assert!(err.contains("not the main child"), "{err}");
    }

    #[test]
    fn refused_senders_are_warned_once_each_then_summarised() {
        let mut refused = Refused::default();
        let t0 = Instant::now();
        for pid in 1..=MAX_WARNED as i32 {
            refused.note(pid, "no", t0);
            refused.note(pid, "no", t0);
        }
        assert_eq!(refused.warned.len(), MAX_WARNED);
        // The first repeat was summarised at once; the rest wait for the next summary.
        assert_eq!(refused.last_summary, Some(t0));
        assert_eq!(refused.unreported, MAX_WARNED as u64 - 1);
        refused.note(99, "no", t0 + SUMMARY_EVERY / 2);
        assert_eq!(refused.unreported, MAX_WARNED as u64);
        refused.note(99, "no", t0 + SUMMARY_EVERY);
        assert_eq!(refused.unreported, 0);
    }

    #[test]
    fn the_socket_is_named_in_the_environment_and_gives_the_sender() {
        let mut env = vec![
            ("NOTIFY_SOCKET".into(), "/run/old".into()),
            ("WATCHDOG_PID".into(), "1".into()),
            ("WATCHDOG_USEC".into(), "5".into()),
        ];
        let notify = NotifySocket::create(&mut env, Some(Duration::from_millis(1500))).unwrap();
        let value = |key: &str| {
            env.iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.to_str().unwrap().to_string())
        };
        assert_eq!(env.len(), 2, "{env:?}");
        assert_eq!(value("WATCHDOG_USEC").as_deref(), Some("1500000"));
        assert_eq!(value("WATCHDOG_PID"), None);
        let name = value("NOTIFY_SOCKET").unwrap();
        assert!(name.starts_with("@usher-notify-"), "{name}");
        let sender = UnixDatagram::unbound().unwrap();
        let addr =
            std::os::unix::net::SocketAddr::from_abstract_name(&name.as_bytes()[1..]).unwrap();
        sender.send_to_addr(b"READY=1\n", &addr).unwrap();
        let mut buffer = [0u8; 16];
        let (read, pid) = receive(&notify.socket, &mut buffer).unwrap();
        assert_eq!(&buffer[..read], b"READY=1\n");
        assert_eq!(pid, Some(std::process::id().cast_signed()));
        // Without a watchdog, the watchdog's variables are left alone.
        let mut env = vec![("WATCHDOG_PID".into(), "1".into())];
        NotifySocket::create(&mut env, None).unwrap();
        assert_eq!(env.len(), 2);
    }
}
