//! The only module with `unsafe`: thin wrappers over the system calls usher needs, each turning
//! a return code into a `Result` in one place.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// The set of every signal usher takes over: all but KILL, STOP and libc's own.
fn taken_signals() -> io::Result<libc::sigset_t> {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initialises the set it is given; we only read it after it succeeded.
    check(unsafe { libc::sigemptyset(set.as_mut_ptr()) })?;
    // SAFETY: initialised by sigemptyset just above.
    let mut set = unsafe { set.assume_init() };
    for signo in 1..=libc::SIGRTMAX() {
        if signo == libc::SIGKILL
            || signo == libc::SIGSTOP
            || crate::supervise::signals::is_reserved_by_libc(signo)
        {
            continue;
        }
        // SAFETY: `set` is an initialised sigset_t and `signo` a valid signal number.
        check(unsafe { libc::sigaddset(&mut set, signo) })?;
    }
    Ok(set)
}

/// usher's signals, read synchronously from a signalfd instead of by handlers.
pub struct SignalInbox {
    fd: OwnedFd,
}

/// One signal as the kernel delivered it.
#[derive(Clone, Copy, Debug)]
pub struct ReceivedSignal {
    pub signo: i32,
    /// The sending process (0 when the kernel sent it).
    pub sender_pid: u32,
}

/// Takes over every signal: un-ignores the ones inherited as ignored (a PID 1 never receives an
/// ignored signal), blocks them all in this thread, which every later thread inherits, and
/// opens a signalfd to read them. Must run before any thread exists, or a thread with an
/// unblocked mask could take a signal with its default action.
///
/// SIGSEGV, SIGBUS and the other fault signals are blocked too: one sent with kill(2) is read
/// and forwarded, while a real fault inside usher is forced through the block by the kernel and
/// still kills it.
pub fn take_over_signals() -> io::Result<SignalInbox> {
    let set = taken_signals()?;
    // Block first: a signal inherited as ignored (SIGINT for a background job, SIGHUP under
    // nohup) that arrives between its reset and the block would otherwise kill usher.
    // SAFETY: `set` is initialised; a null old-set pointer is allowed.
    let ret = unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut()) };
    if ret != 0 {
        return Err(io::Error::from_raw_os_error(ret));
    }
    for signo in 1..=libc::SIGRTMAX() {
        // SAFETY: sigismember reads an initialised set.
        if unsafe { libc::sigismember(&set, signo) } != 1 {
            continue;
        }
        let mut old = MaybeUninit::<libc::sigaction>::uninit();
        // SAFETY: a null new action only queries the current one into `old`.
        check(unsafe { libc::sigaction(signo, std::ptr::null(), old.as_mut_ptr()) })?;
        // SAFETY: sigaction succeeded, so it wrote `old`.
        let old = unsafe { old.assume_init() };
        if old.sa_sigaction == libc::SIG_IGN {
            // SAFETY: restoring the default disposition installs no handler code. An ignored
            // signal is discarded, even while blocked: Rust's runtime ignores SIGPIPE, and an
            // inherited ignored SIGCHLD would even make the kernel reap children behind our back.
            unsafe { libc::signal(signo, libc::SIG_DFL) };
        }
    }
    // SAFETY: signalfd(-1, ...) creates a new descriptor from an initialised mask.
    let fd = check(unsafe { libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) })?;
    // SAFETY: the descriptor was just created and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    Ok(SignalInbox { fd })
}

impl SignalInbox {
    /// Waits until a signal is pending or `timeout` passes (`None`: forever).
    /// Returns whether a signal is waiting.
    pub fn wait(&self, timeout: Option<Duration>) -> io::Result<bool> {
        let timeout_ms = match timeout {
            // Round up: waking a little early would only spin until the deadline.
            Some(t) => i32::try_from(t.as_nanos().div_ceil(1_000_000)).unwrap_or(i32::MAX),
            None => -1,
        };
        let mut pollfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        match check(unsafe { libc::poll(&mut pollfd, 1, timeout_ms) }) {
            Ok(ready) => Ok(ready > 0),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Reads the next pending signal, if any, without blocking.
    pub fn read(&self) -> io::Result<Option<ReceivedSignal>> {
        let mut info = MaybeUninit::<libc::signalfd_siginfo>::uninit();
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        // SAFETY: reads at most `size` bytes into memory of that size that we own.
        let read = unsafe { libc::read(self.fd.as_raw_fd(), info.as_mut_ptr().cast(), size) };
        if read < 0 {
            let error = io::Error::last_os_error();
            return match error.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
                _ => Err(error),
            };
        }
        if usize::try_from(read).ok() != Some(size) {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "short signalfd read",
            ));
        }
        // SAFETY: the kernel filled the whole structure (checked just above).
        let info = unsafe { info.assume_init() };
        Ok(Some(ReceivedSignal {
            signo: i32::try_from(info.ssi_signo).unwrap_or(0),
            sender_pid: info.ssi_pid,
        }))
    }
}

/// What one `waitpid(-1, WNOHANG)` found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reaped {
    /// A child ended; `status` is the raw wait status.
    Child { pid: i32, status: i32 },
    /// Children exist but none has ended.
    NoneReady,
    /// No children at all.
    NoChildren,
}

/// Reaps one ended child. Only the reaper calls this: nobody else waits on any child.
///
/// nix's `waitpid` is not used: it fails with EINVAL for a child killed by a real-time signal,
/// after the kernel has already reaped it, which would lose the main child's exit status.
pub fn reap_one() -> io::Result<Reaped> {
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: `status` is a valid out-pointer for the duration of the call.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        return match pid {
            0 => Ok(Reaped::NoneReady),
            -1 => {
                let error = io::Error::last_os_error();
                match error.raw_os_error() {
                    Some(libc::EINTR) => continue,
                    Some(libc::ECHILD) => Ok(Reaped::NoChildren),
                    _ => Err(error),
                }
            }
            pid => Ok(Reaped::Child { pid, status }),
        };
    }
}

/// kill(2): `pid` > 0 one process, < 0 a process group, -1 every process we may signal.
pub fn send_signal(pid: i32, signo: i32) -> io::Result<()> {
    // SAFETY: kill has no memory-safety preconditions.
    check(unsafe { libc::kill(pid, signo) }).map(drop)
}

/// Makes usher a child subreaper: orphans of its descendants come to it, not to init.
pub fn become_subreaper() -> io::Result<()> {
    // SAFETY: PR_SET_CHILD_SUBREAPER takes a flag and touches no memory of ours.
    check(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) }).map(drop)
}

/// The pid of usher's parent.
pub fn parent_pid() -> i32 {
    // SAFETY: getppid has no preconditions and cannot fail.
    unsafe { libc::getppid() }
}

/// The soft limit on open files (RLIMIT_NOFILE), if it is finite.
pub fn open_files_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given, which lives through the call.
    let done = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    (done && limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur)
}

/// tini's `-p`: have the kernel send `signo` to usher when its parent dies.
pub fn set_parent_death_signal(signo: i32) -> io::Result<()> {
    let signo =
        libc::c_ulong::try_from(signo).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: PR_SET_PDEATHSIG takes a signal number and touches no memory of ours.
    check(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, signo, 0, 0, 0) }).map(drop)
}

/// What the child's credentials and capabilities become, prepared before fork so that the hook
/// between fork and exec needs no allocation.
#[derive(Clone, Debug, Default)]
pub struct ChildPrivileges {
    /// (uid, gid, supplementary groups) to switch to.
    pub switch_to: Option<(u32, u32, Vec<libc::gid_t>)>,
    /// The only capabilities the child keeps (bit N: capability N), held as ambient so that a
    /// non-root program really has them; None leaves them alone.
    pub keep_caps: Option<u64>,
    pub no_new_privs: bool,
}

/// Prepares the child between fork and exec: a clean signal mask (it would otherwise inherit
/// usher's, with everything blocked: std's spawn does not reset it), a session of its own,
/// which also makes it a process-group leader, so that signalling `-pid` reaches the child and
/// everything it starts and nothing of usher's own session (and, with no controlling terminal,
/// a dropped child cannot push input into usher's terminal with TIOCSTI). Then, in this order:
/// supplementary groups, gid, uid, capabilities, no_new_privs. Dispositions need no reset:
/// usher un-ignored every signal it takes over at start-up and exec resets the handlers Rust's
/// runtime installed; only libc's reserved signals, which usher could not touch through libc,
/// are reset here with the raw system call, in case usher itself inherited them ignored.
///
/// std's own `Command::uid`/`gid` are not used: std runs them before this hook and drops the
/// supplementary groups its own way; doing it all here keeps the order in one place.
pub fn prepare_child(command: &mut Command, privileges: ChildPrivileges) {
    // SAFETY: the hook runs between fork and exec in a single-threaded child, where only
    // async-signal-safe calls are allowed: sigemptyset, sigprocmask, setsid, raw system calls
    // and prctl are, and reading errno is; nothing allocates (the groups were collected before
    // the fork) or takes a lock.
    unsafe {
        command.pre_exec(move || {
            let mut empty = MaybeUninit::<libc::sigset_t>::uninit();
            check(libc::sigemptyset(empty.as_mut_ptr()))?;
            check(libc::sigprocmask(
                libc::SIG_SETMASK,
                empty.as_ptr(),
                std::ptr::null_mut(),
            ))?;
            // The kernel's struct sigaction, all zero: SIG_DFL, no flags, empty mask (32 bytes
            // covers its layout on x86_64 and aarch64, the targets usher is built for).
            let default_action = [0u64; 4];
            #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
            for signo in 32..libc::SIGRTMIN() {
                let signo = libc::c_long::from(signo);
                let action = default_action.as_ptr();
                let mask_size: libc::c_long = 8;
                let none = std::ptr::null::<u64>();
                if libc::syscall(libc::SYS_rt_sigaction, signo, action, none, mask_size) == -1 {
                    return Err(io::Error::last_os_error());
                }
            }
            check(libc::setsid())?;
            if let Some((uid, gid, groups)) = &privileges.switch_to {
                if privileges.keep_caps.is_some() {
                    // Keep the permitted set across setuid: the bounding set is dropped below,
                    // which needs CAP_SETPCAP.
                    check(libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0))?;
                }
                // Raw system calls: glibc's wrappers would try to signal other threads, and
                // there are none here.
                let count = groups.len();
                syscall(libc::syscall(libc::SYS_setgroups, count, groups.as_ptr()))?;
                syscall(libc::syscall(libc::SYS_setresgid, *gid, *gid, *gid))?;
                syscall(libc::syscall(libc::SYS_setresuid, *uid, *uid, *uid))?;
            }
            if let Some(keep) = privileges.keep_caps {
                keep_only_capabilities(keep)?;
            }
            if privileges.no_new_privs {
                check(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))?;
            }
            Ok(())
        });
    }
}

fn syscall(ret: libc::c_long) -> io::Result<()> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The kernel's capability structures (linux/capability.h), version 3: two 32-bit words each.
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// This thread's (permitted, effective) capability sets.
fn capabilities() -> io::Result<(u64, u64)> {
    let mut header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget writes two CapData for version 3, which `data` has room for.
    syscall(unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) })?;
    let join = |low: u32, high: u32| u64::from(low) | u64::from(high) << 32;
    let permitted = join(data[0].permitted, data[1].permitted);
    let effective = join(data[0].effective, data[1].effective);
    Ok((permitted, effective))
}

fn set_capabilities(effective: u64, permitted: u64, inheritable: u64) -> io::Result<()> {
    let mut header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let split = |set: u64| (set as u32, (set >> 32) as u32);
    let (e, p, i) = (split(effective), split(permitted), split(inheritable));
    let data = [
        CapData {
            effective: e.0,
            permitted: p.0,
            inheritable: i.0,
        },
        CapData {
            effective: e.1,
            permitted: p.1,
            inheritable: i.1,
        },
    ];
    // SAFETY: capset reads a header and two CapData, all valid for the call.
    syscall(unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) })
}

/// The capabilities usher itself may hand on (its permitted set).
pub fn own_permitted_capabilities() -> io::Result<u64> {
    capabilities().map(|(permitted, _)| permitted)
}

/// Leaves exactly `keep` in every capability set, the bounding set included, and raises it as
/// ambient so that it survives exec into a program without file capabilities.
fn keep_only_capabilities(keep: u64) -> io::Result<()> {
    let (permitted, _) = capabilities()?;
    // setuid cleared the effective set: bring back what is permitted, CAP_SETPCAP with it,
    // to be allowed to shrink the bounding set.
    set_capabilities(permitted, permitted, keep)?;
    for cap in 0..64u32 {
        if keep & (1 << cap) != 0 {
            continue;
        }
        // SAFETY: PR_CAPBSET_DROP takes a capability number and touches no memory of ours.
        let ret = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0) };
        match check(ret) {
            Ok(_) => {}
            // Past the kernel's last capability.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
            Err(e) => return Err(e),
        }
    }
    set_capabilities(keep, keep, keep)?;
    // SAFETY: PR_CAP_AMBIENT operations take numbers only.
    check(unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        )
    })?;
    for cap in (0..64u32).filter(|cap| keep & (1 << cap) != 0) {
        let (raise, cap) = (
            libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
            libc::c_ulong::from(cap),
        );
        // SAFETY: as above.
        check(unsafe { libc::prctl(libc::PR_CAP_AMBIENT, raise, cap, 0, 0) })?;
    }
    Ok(())
}

/// Asks for a 1 MiB pipe buffer on `fd` if it is a pipe (the unprivileged maximum by default):
/// fewer, larger writes and wake-ups between the child, usher and the log collector. Anything
/// else, or a refusal, leaves it as it is.
pub fn enlarge_pipe(fd: &impl AsRawFd) {
    // SAFETY: F_SETPIPE_SZ takes a size and touches no memory of ours; on a non-pipe it fails.
    unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, 1 << 20) };
}

/// A `File` for one of usher's standard descriptors that never closes it.
pub fn borrowed_file(fd: std::os::fd::RawFd) -> std::mem::ManuallyDrop<std::fs::File> {
    // SAFETY: fds 1 and 2 stay open for usher's whole life; ManuallyDrop never closes them.
    std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(fd) })
}

/// Waits until `fd` can be written to (for a descriptor that is non-blocking).
pub fn wait_writable(fd: std::os::fd::RawFd) -> io::Result<()> {
    let mut pollfd = libc::pollfd {
        fd,
        events: libc::POLLOUT,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd for the duration of the call.
        match check(unsafe { libc::poll(&mut pollfd, 1, -1) }) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other.map(drop),
        }
    }
}

/// Whether usher's stdout is a terminal (a person is reading: `--log-format auto` means raw).
pub fn stdout_is_terminal() -> bool {
    // SAFETY: isatty only queries a descriptor.
    unsafe { libc::isatty(1) == 1 }
}

/// usher's effective (uid, gid).
pub fn effective_ids() -> (u32, u32) {
    // SAFETY: geteuid and getegid cannot fail and have no preconditions.
    unsafe { (libc::geteuid(), libc::getegid()) }
}

/// usher's supplementary groups.
pub fn supplementary_groups() -> io::Result<Vec<u32>> {
    // SAFETY: with a size of 0, getgroups only returns the count.
    let count = check(unsafe { libc::getgroups(0, std::ptr::null_mut()) })?;
    let mut groups = vec![0; usize::try_from(count).unwrap_or(0)];
    // SAFETY: `groups` has room for `count` entries.
    let count = check(unsafe { libc::getgroups(count, groups.as_mut_ptr()) })?;
    groups.truncate(usize::try_from(count).unwrap_or(0));
    Ok(groups)
}

/// Whether capability `cap` is in usher's bounding set (a child can never get one outside it).
pub fn in_bounding_set(cap: u32) -> bool {
    // SAFETY: PR_CAPBSET_READ takes a capability number and touches no memory of ours.
    unsafe { libc::prctl(libc::PR_CAPBSET_READ, libc::c_ulong::from(cap), 0, 0, 0) == 1 }
}

/// Makes sure no terminal among fds 0-2 can become a dropped child's controlling terminal:
/// a terminal that belongs to no session is claimed as usher's own (usher is usually a session
/// leader: PID 1 of a container is). Returns the fds that stay unclaimed (usher is not a
/// session leader): the child must not get those.
pub fn claim_terminals() -> Vec<i32> {
    let mut unclaimed = Vec::new();
    for fd in 0..3 {
        // SAFETY: isatty and the ioctls below only query or set terminal state of an fd.
        if unsafe { libc::isatty(fd) } != 1 {
            continue;
        }
        let mut session: libc::pid_t = 0;
        // SAFETY: TIOCGSID writes one pid_t.
        if unsafe { libc::ioctl(fd, libc::TIOCGSID, &mut session) } == 0 {
            continue; // a session owns it: a child in a new session cannot take it
        }
        // SAFETY: TIOCSCTTY with 0 never steals a terminal another session owns.
        if unsafe { libc::ioctl(fd, libc::TIOCSCTTY, 0) } == 0 {
            continue;
        }
        unclaimed.push(fd);
    }
    unclaimed
}

/// Drops usher's own root once the child runs: groups, gid, then uid, for every thread (glibc's
/// wrappers do that), then every capability, checked: nothing usher runs afterwards (the HTTP
/// server, the log relays) may have root's powers, even with `--user 0` or a securebits
/// setting that keeps capabilities across setuid. Must run before usher starts any thread:
/// capabilities are per thread. usher is also made non-dumpable, so a child of the same uid
/// cannot read its memory or environment.
pub fn drop_own_privileges(uid: u32, gid: u32, groups: &[libc::gid_t]) -> io::Result<()> {
    // SAFETY: `groups` is a valid slice for the duration of the call.
    check(unsafe { libc::setgroups(groups.len(), groups.as_ptr()) })?;
    // SAFETY: plain id changes, no memory involved.
    check(unsafe { libc::setresgid(gid, gid, gid) })?;
    // SAFETY: as above.
    check(unsafe { libc::setresuid(uid, uid, uid) })?;
    set_capabilities(0, 0, 0)?;
    // SAFETY: PR_CAP_AMBIENT_CLEAR_ALL and PR_SET_DUMPABLE take numbers only.
    check(unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        )
    })?;
    // SAFETY: as above.
    check(unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) })?;
    if capabilities()? != (0, 0) {
        return Err(io::Error::other("capabilities remain after dropping them"));
    }
    Ok(())
}
