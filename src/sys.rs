//! The only module with `unsafe`: thin wrappers over the system calls usher needs, each turning
//! a return code into a `Result` in one place. Calls go through `nix` wherever it can express
//! them; raw `libc` remains for real-time signals (nix's `Signal` has no SIGRTMIN+n),
//! capabilities and a few prctl and ioctl requests nix has no call for.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::prctl;
use nix::sys::resource::{Resource, getrlimit};
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::{Gid, Uid};

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Whether usher takes signal `signo` over: all but KILL, STOP and libc's own.
fn is_taken(signo: i32) -> bool {
    signo != libc::SIGKILL
        && signo != libc::SIGSTOP
        && !crate::supervise::signals::is_reserved_by_libc(signo)
}

/// The set of every signal usher takes over (see `is_taken`), real-time ones included. Built
/// without allocating: the load-time constructor below uses it before Rust's runtime exists.
fn taken_signals() -> io::Result<SigSet> {
    let mut set: libc::sigset_t = *SigSet::empty().as_ref();
    for signo in (1..=libc::SIGRTMAX()).filter(|signo| is_taken(*signo)) {
        // SAFETY: `set` is an initialised sigset_t (a copy of nix's empty set) and `signo` a
        // valid signal number.
        // nix: `SigSet::add` takes a `Signal`, which cannot be real-time.
        check(unsafe { libc::sigaddset(&mut set, signo) })?;
    }
    // SAFETY: `set` was initialised by sigemptyset and only changed by sigaddset.
    // nix: the only way to hand a set with real-time signals to nix's sigmask and signalfd.
    Ok(unsafe { SigSet::from_sigset_t_unchecked(set) })
}

/// The signal mask usher inherited, saved by `block_taken_signals_at_load` just before it
/// replaced it. Unset if that did not run (unit tests) or could not block.
static INHERITED_MASK: OnceLock<SigSet> = OnceLock::new();

/// Blocks every signal usher takes over as the first thing the process does: glibc runs the
/// functions of `.init_array` once the C library is set up, before Rust's runtime and `main`, in
/// the only thread there is. As PID 1 of a namespace, a signal at its default disposition is
/// dropped by the kernel when it is sent, unless blocked (then it stays pending): without this,
/// a SIGTERM sent while Rust's runtime starts and `main` parses the command line was lost (issue
/// 10). The window left is the exec itself and the C library's start-up (BENCHMARKS.md, "Signals
/// right after exec").
///
/// What Rust's runtime does next meets the mask: it sets SIGPIPE to ignored, which discards a
/// pending SIGPIPE (POSIX); its SIGSEGV and SIGBUS handlers leave those pending, to be read from
/// the signalfd, and a real fault still kills (the kernel forces a fault signal through a block).
///
/// Only non-allocating, async-signal-safe code may run here: a sigset built on the stack, one
/// sigprocmask, and a `OnceLock` set once without contention (an atomic state word, no lock
/// taken, nothing allocated). Should any of it fail (none can with these arguments), usher
/// blocks its signals in `take_over_signals`, as it did before.
// Not placed in `.init_array` in the fuzz targets (below), where nothing else calls it.
#[cfg_attr(fuzzing, allow(dead_code))]
extern "C" fn block_taken_signals_at_load() {
    let Ok(taken) = taken_signals() else {
        return;
    };
    let mut inherited = SigSet::empty();
    if sigprocmask(SigmaskHow::SIG_SETMASK, Some(&taken), Some(&mut inherited)).is_ok() {
        let _ = INHERITED_MASK.set(inherited);
    }
}

/// The constructor's place in `.init_array`, in the usher binary only: not in unit tests,
/// whose harness (the same crate) must keep its signals, nor in the fuzz targets (`fuzz/`,
/// built with `--cfg fuzzing`), where libFuzzer catches SIGSEGV, SIGALRM and the rest with
/// handlers. `#[used]` keeps it through the link although nothing refers to it: rustc hands
/// the linker a library's used statics too, and the linker keeps `.init_array` whole.
#[cfg(not(any(test, fuzzing)))]
#[used]
// SAFETY: `.init_array` holds pointers to `extern "C"` functions that glibc calls once, in order,
// before `main` (with argc, argv and envp, which a function without parameters may ignore under
// the C calling convention); the function above is sound to run there (its comment says why).
#[unsafe(link_section = ".init_array")]
static BLOCK_TAKEN_SIGNALS_AT_LOAD: extern "C" fn() = block_taken_signals_at_load;

/// Gives back the signal mask usher inherited, for what is not supervision (`usher probe`,
/// `--help`, `--version`, a usage error): those run like any command, so SIGTERM ends a probe at
/// once and a mask the caller set stays in force. Does nothing if the mask was never saved.
pub fn restore_inherited_signal_mask() -> io::Result<()> {
    match INHERITED_MASK.get() {
        Some(inherited) => Ok(sigprocmask(SigmaskHow::SIG_SETMASK, Some(inherited), None)?),
        None => Ok(()),
    }
}

/// usher's signals, read synchronously from a signalfd instead of by handlers.
///
/// Why not signal-hook (which the example apps use): it installs handlers, and a PID 1 needs
/// more than handlers give. It refuses SIGSEGV, SIGILL and SIGFPE, which another process may
/// send with kill(2) and usher must forward; a handler runs on whatever thread the kernel picks,
/// in async-signal context, where usher could neither allocate nor log; and a signal must stay
/// queued from usher's first instruction until the child exists to receive it. Blocking every
/// signal and reading a signalfd in the one loop that also reaps does all three.
pub struct SignalInbox {
    fd: SignalFd,
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
/// unblocked mask could take a signal with its default action. The block is normally in place
/// since load time (`block_taken_signals_at_load`), and every signal sent since then is pending;
/// it is set again here for when it is not (unit tests, a failed constructor).
///
/// SIGSEGV, SIGBUS and the other fault signals are blocked too: one sent with kill(2) is read
/// and forwarded, while a real fault inside usher is forced through the block by the kernel and
/// still kills it.
pub fn take_over_signals() -> io::Result<SignalInbox> {
    let set = taken_signals()?;
    // Block first: a signal inherited as ignored (SIGINT for a background job, SIGHUP under
    // nohup) that arrives between its reset and the block would otherwise kill usher.
    nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&set), None)?;
    for signo in (1..=libc::SIGRTMAX()).filter(|signo| is_taken(*signo)) {
        // Only a place for the answer: the query below overwrites it.
        let mut old: libc::sigaction =
            SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty()).into();
        // SAFETY: a null new action only queries the current one into `old`, which lives
        // through the call.
        // nix: its `sigaction` always installs an action and takes a `Signal` (no real-time).
        check(unsafe { libc::sigaction(signo, std::ptr::null(), &mut old) })?;
        if old.sa_sigaction == libc::SIG_IGN {
            // SAFETY: restoring the default disposition installs no handler code. An ignored
            // signal is discarded, even while blocked: Rust's runtime ignores SIGPIPE, and an
            // inherited ignored SIGCHLD would even make the kernel reap children behind our back.
            // nix: its `signal` takes a `Signal`, which cannot be real-time.
            unsafe { libc::signal(signo, libc::SIG_DFL) };
        }
    }
    let fd = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)?;
    Ok(SignalInbox { fd })
}

impl SignalInbox {
    /// Waits until a signal is pending, `also` is readable, or `timeout` passes (`None`:
    /// forever). Returns whether something is waiting.
    pub fn wait(
        &self,
        also: Option<BorrowedFd<'_>>,
        timeout: Option<Duration>,
    ) -> io::Result<bool> {
        let timeout = match timeout {
            // Round up: waking a little early would only spin until the deadline.
            Some(t) => {
                PollTimeout::try_from(t.as_nanos().div_ceil(1_000_000)).unwrap_or(PollTimeout::MAX)
            }
            None => PollTimeout::NONE,
        };
        let mut fds = vec![PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
        fds.extend(also.map(|fd| PollFd::new(fd, PollFlags::POLLIN)));
        match nix::poll::poll(&mut fds, timeout) {
            Ok(ready) => Ok(ready > 0),
            Err(nix::errno::Errno::EINTR) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Reads the next pending signal, if any, without blocking.
    ///
    /// Read as bytes and decoded by hand rather than with nix's `read_signal`, which panics
    /// (`unreachable!`) on a short read: PID 1 turns even an impossible case into an error.
    /// Layout: signalfd(2), `struct signalfd_siginfo`, 128 bytes, `ssi_signo` (u32) at offset 0
    /// and `ssi_pid` (u32) at offset 12.
    pub fn read(&self) -> io::Result<Option<ReceivedSignal>> {
        let mut record = [0u8; 128];
        match nix::unistd::read(&self.fd, &mut record) {
            Ok(128) => {
                let field = |at: usize| {
                    record
                        .get(at..at + 4)
                        .and_then(|bytes| <[u8; 4]>::try_from(bytes).ok())
                        .map_or(0, u32::from_ne_bytes)
                };
                Ok(Some(ReceivedSignal {
                    signo: i32::try_from(field(0)).unwrap_or(0),
                    sender_pid: field(12),
                }))
            }
            Ok(read) => Err(io::Error::other(format!(
                "short read of {read} bytes from the signalfd"
            ))),
            // Nothing pending.
            Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => Ok(None),
            Err(e) => Err(e.into()),
        }
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
        // nix: its `waitpid` loses the status of a child killed by a real-time signal (above).
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
    // nix: its `kill` takes a `Signal`, which cannot be real-time.
    check(unsafe { libc::kill(pid, signo) }).map(drop)
}

/// Makes usher a child subreaper: orphans of its descendants come to it, not to init.
pub fn become_subreaper() -> io::Result<()> {
    Ok(prctl::set_child_subreaper(true)?)
}

/// The pid of usher's parent.
pub fn parent_pid() -> i32 {
    nix::unistd::getppid().as_raw()
}

/// The soft limit on open files (RLIMIT_NOFILE), if it is finite.
pub fn open_files_limit() -> Option<u64> {
    let (soft, _hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    (soft != libc::RLIM_INFINITY).then_some(soft)
}

/// tini's `-p`: have the kernel send `signo` to usher when its parent dies.
pub fn set_parent_death_signal(signo: i32) -> io::Result<()> {
    let signo =
        libc::c_ulong::try_from(signo).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // Not nix's `set_pdeathsig`: it takes a `Signal`, and `-p` may name a real-time one.
    numeric_prctl(NumericPrctl::ParentDeathSignal(signo)).map(drop)
}

/// The prctl(2) requests usher makes that nix has no call for (capability sets, ambient
/// capabilities, a parent-death signal that may be real-time). Each takes plain numbers only.
#[derive(Clone, Copy)]
enum NumericPrctl {
    ParentDeathSignal(libc::c_ulong),
    /// Whether a capability is in the bounding set (1) or not (0).
    BoundingSetRead(u32),
    BoundingSetDrop(u32),
    AmbientClearAll,
    AmbientRaise(u32),
}

/// Makes one of those requests: async-signal-safe (no allocation), for use between fork and
/// exec too. Returns prctl's non-negative result.
fn numeric_prctl(request: NumericPrctl) -> io::Result<libc::c_int> {
    use NumericPrctl::*;
    let (option, arg2, arg3) = match request {
        ParentDeathSignal(signo) => (libc::PR_SET_PDEATHSIG, signo, 0),
        BoundingSetRead(cap) => (libc::PR_CAPBSET_READ, libc::c_ulong::from(cap), 0),
        BoundingSetDrop(cap) => (libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0),
        AmbientClearAll => (
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
        ),
        AmbientRaise(cap) => (
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
            libc::c_ulong::from(cap),
        ),
    };
    // SAFETY: every request above takes numbers only and touches no memory of ours.
    // nix: `nix::sys::prctl` has no capability requests, and its `set_pdeathsig` no real-time
    // signal.
    check(unsafe { libc::prctl(option, arg2, arg3, 0, 0) })
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

/// Where the child runs: a session of its own, or a process group of its own in usher's
/// session as the foreground of usher's terminal (design.md, "Terminals").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildSession {
    /// setsid(2): the leader of a new session and process group, with no controlling terminal,
    /// so signalling `-pid` reaches the child and everything it starts and nothing of usher's
    /// own session, and a dropped child cannot push input into usher's terminal (TIOCSTI).
    Own,
    /// setpgid(0, 0), then tcsetpgrp(3) on this descriptor of usher's controlling terminal
    /// ([`Terminal::raw_fd`]), as tini's `isolate_child` does: the child leads its own process
    /// group (signalling `-pid` works the same) in usher's session, and is the terminal's
    /// foreground group, so Ctrl-C, Ctrl-Z and Ctrl-\ reach it and not usher, job control
    /// works, `/dev/tty` opens. Done in the child, before exec, while usher's mask still blocks
    /// SIGTTOU: tty_check_change (drivers/tty/tty_jobctrl.c) lets a background group that
    /// blocks or ignores SIGTTOU take the foreground, as POSIX tcsetpgrp(3) says. A failure is
    /// left for the parent to notice ([`Terminal::is_foreground`]): the child still runs.
    Foreground(i32),
}

/// Prepares the child between fork and exec: first its session ([`ChildSession`]), then a
/// clean signal mask (it would otherwise inherit usher's, with everything blocked: std's spawn
/// does not reset it), then its `oom_score_adj` when given (see `container::oom_score`; a
/// failure is left for the parent to notice). Then, in this order: supplementary groups, gid,
/// uid, capabilities, no_new_privs. Dispositions need no reset: usher un-ignored every signal it takes over at
/// start-up and exec resets the handlers Rust's runtime installed; only libc's reserved
/// signals, which usher could not touch through libc, are reset here with the raw system
/// call, in case usher itself inherited them ignored.
///
/// std's own `Command::uid`/`gid` are not used: std runs them before this hook and drops the
/// supplementary groups its own way; doing it all here keeps the order in one place.
pub fn prepare_child(
    command: &mut Command,
    session: ChildSession,
    privileges: ChildPrivileges,
    oom_score_adj: Option<i32>,
) {
    // Formatted before the fork: nothing may allocate between fork and exec.
    let oom_score_adj = oom_score_adj.map(|value| value.to_string().into_bytes());
    // SAFETY: the hook runs between fork and exec in a single-threaded child, where only
    // async-signal-safe calls are allowed: nix's sigprocmask, setsid, setpgid, getpgrp,
    // tcsetpgrp and prctl wrappers (each one system call, errno turned into an `io::Error`
    // without allocating), raw system calls and prctl are; nothing allocates (the groups were
    // collected before the fork, the oom_score_adj formatted) or takes a lock; nix's open
    // takes the path as the C string it is. The terminal's descriptor is usher's own,
    // close-on-exec, and open until the spawn returns.
    // nix: this block is std's `pre_exec`, which nix cannot replace; the raw system calls
    // inside say where they are made why nix does not serve.
    unsafe {
        command.pre_exec(move || {
            match session {
                ChildSession::Own => drop(nix::unistd::setsid()?),
                ChildSession::Foreground(fd) => {
                    let own = nix::unistd::Pid::from_raw(0);
                    nix::unistd::setpgid(own, own)?;
                    let terminal = BorrowedFd::borrow_raw(fd);
                    let _ = nix::unistd::tcsetpgrp(terminal, nix::unistd::getpgrp());
                }
            }
            sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)?;
            // libc's reserved signals, which nix cannot name either, through the kernel's
            // struct sigaction, all zero: SIG_DFL, no flags, empty mask (32 bytes covers its
            // layout on x86_64 and aarch64, the targets usher is built for).
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
            // Before the credential change: after it the process is no longer dumpable, and
            // /proc/self's files are root's. Any process may raise its own value.
            if let Some(value) = &oom_score_adj {
                let flags = nix::fcntl::OFlag::O_WRONLY | nix::fcntl::OFlag::O_CLOEXEC;
                let path = c"/proc/self/oom_score_adj";
                if let Ok(file) = nix::fcntl::open(path, flags, nix::sys::stat::Mode::empty()) {
                    let _ = nix::unistd::write(&file, value);
                }
            }
            if let Some((uid, gid, groups)) = &privileges.switch_to {
                if privileges.keep_caps.is_some() {
                    // Keep the permitted set across setuid: the bounding set is dropped below,
                    // which needs CAP_SETPCAP.
                    prctl::set_keepcaps(true)?;
                }
                // Raw system calls, not nix's setgroups/setresgid/setresuid: those call glibc's
                // wrappers, which would try to signal other threads, and there are none here.
                let count = groups.len();
                syscall(libc::syscall(libc::SYS_setgroups, count, groups.as_ptr()))?;
                syscall(libc::syscall(libc::SYS_setresgid, *gid, *gid, *gid))?;
                syscall(libc::syscall(libc::SYS_setresuid, *uid, *uid, *uid))?;
            }
            if let Some(keep) = privileges.keep_caps {
                keep_only_capabilities(keep)?;
            }
            if privileges.no_new_privs {
                prctl::set_no_new_privs()?;
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
    // nix: it has no capability calls.
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
    // nix: it has no capability calls.
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
        match numeric_prctl(NumericPrctl::BoundingSetDrop(cap)) {
            Ok(_) => {}
            // Past the kernel's last capability.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
            Err(e) => return Err(e),
        }
    }
    set_capabilities(keep, keep, keep)?;
    numeric_prctl(NumericPrctl::AmbientClearAll)?;
    for cap in (0..64u32).filter(|cap| keep & (1 << cap) != 0) {
        numeric_prctl(NumericPrctl::AmbientRaise(cap))?;
    }
    Ok(())
}

/// Makes every thread allocate from glibc's main arena (mallopt(3), `M_ARENA_MAX`). By default
/// each thread that allocates gets an arena of its own; usher's four helper threads (log relays,
/// events writer, health server) allocate little and rarely at once, and their arenas cost about
/// 140 kB of resident memory at idle (BENCHMARKS.md, "Idle RSS"). Called before any thread starts;
/// a refusal (which glibc does not give for this parameter) leaves the default.
pub fn use_one_malloc_arena() {
    // SAFETY: mallopt takes two integers and changes only the allocator's tuning; glibc allows it
    // at any time, and here no other thread exists yet.
    // nix: has no binding for mallopt.
    let _ = unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
}

/// Asks for a 1 MiB pipe buffer on `fd` if it is a pipe (the unprivileged maximum by default):
/// fewer, larger writes and wake-ups between the child, usher and the log collector. Anything
/// else, or a refusal, leaves it as it is.
pub fn enlarge_pipe(fd: &impl AsFd) {
    use nix::fcntl::{FcntlArg, fcntl};
    let _ = fcntl(fd, FcntlArg::F_SETPIPE_SZ(1 << 20));
}

/// write(2) once on a descriptor usher borrows (its stdout or stderr): no buffer of std's holds
/// bytes back. Returns the count written; EINTR and EAGAIN come back as errors of their kind.
pub fn write(fd: BorrowedFd<'_>, bytes: &[u8]) -> io::Result<usize> {
    Ok(nix::unistd::write(fd, bytes)?)
}

/// Waits until `fd` can be written to (for a descriptor that is non-blocking).
pub fn wait_writable(fd: BorrowedFd<'_>) -> io::Result<()> {
    let mut fds = [PollFd::new(fd, PollFlags::POLLOUT)];
    loop {
        match nix::poll::poll(&mut fds, PollTimeout::NONE) {
            Err(nix::errno::Errno::EINTR) => continue,
            other => return Ok(other.map(drop)?),
        }
    }
}

/// Waits until `fd` has something to read (data, or its writer gone) or `deadline` passes.
/// Returns whether it has: false once the deadline passed with nothing to read.
pub fn wait_readable(fd: BorrowedFd<'_>, deadline: Instant) -> io::Result<bool> {
    let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        // Rounded up to poll's whole milliseconds: rounding down would wake early and spin.
        let millis = u32::try_from(left.as_micros().div_ceil(1000)).unwrap_or(u32::MAX);
        let timeout = PollTimeout::try_from(millis).unwrap_or(PollTimeout::MAX);
        match nix::poll::poll(&mut fds, timeout) {
            Ok(0) if left.is_zero() => return Ok(false),
            // poll's own timer ran out: the clock says whether the deadline has.
            Ok(0) => {}
            Ok(_) => return Ok(true),
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Whether usher's stdout is a terminal (a person is reading: `--log-format auto` means raw).
pub fn stdout_is_terminal() -> bool {
    nix::unistd::isatty(io::stdout()).unwrap_or(false)
}

/// usher's effective (uid, gid).
pub fn effective_ids() -> (u32, u32) {
    (
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw(),
    )
}

/// usher's supplementary groups.
pub fn supplementary_groups() -> io::Result<Vec<u32>> {
    let groups = nix::unistd::getgroups()?;
    Ok(groups.into_iter().map(Gid::as_raw).collect())
}

/// Whether capability `cap` is in usher's bounding set (a child can never get one outside it).
pub fn in_bounding_set(cap: u32) -> bool {
    numeric_prctl(NumericPrctl::BoundingSetRead(cap)).is_ok_and(|answer| answer == 1)
}

/// Makes sure no terminal among fds 0-2 can become a dropped child's controlling terminal but
/// by usher's choice: a terminal that belongs to no session is claimed as usher's own (usher
/// is usually a session leader: PID 1 of a container is), and then goes to the child only as
/// usher's terminal ([`ChildSession::Foreground`]). Returns the fds that stay unclaimed (usher
/// is not a session leader): the child must not get those.
pub fn claim_terminals() -> Vec<i32> {
    let (stdin, stdout, stderr) = (io::stdin(), io::stdout(), io::stderr());
    let mut unclaimed = Vec::new();
    for fd in [stdin.as_fd(), stdout.as_fd(), stderr.as_fd()] {
        if !nix::unistd::isatty(fd).unwrap_or(false) {
            continue;
        }
        // ioctl TIOCGSID: which session the terminal belongs to.
        if nix::sys::termios::tcgetsid(fd).is_ok() {
            continue; // a session owns it: a child in a new session cannot take it
        }
        // SAFETY: TIOCSCTTY with 0 only sets terminal state, never steals a terminal another
        // session owns, and touches no memory of ours.
        // nix: it has no call for TIOCSCTTY; its ioctl macros would only wrap this same call.
        if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0) } == 0 {
            continue;
        }
        unclaimed.push(fd.as_raw_fd());
    }
    unclaimed
}

/// usher's controlling terminal, found on one of fds 0-2 while usher's process group is its
/// foreground group: the terminal usher can hand to the child ([`ChildSession::Foreground`])
/// and take back. Holds a close-on-exec duplicate of its own, so that the child's stdio (pipes
/// in JSON mode, `/dev/null`) does not matter and nothing of it outlives the exec.
#[derive(Debug)]
pub struct Terminal {
    fd: OwnedFd,
    /// Which of usher's fds 0-2 it was found on.
    pub found_on: i32,
}

impl Terminal {
    /// The first of fds 0-2 that is usher's controlling terminal (TIOCGSID answers only for
    /// the caller's own, tty_ioctl(4)) with usher's process group in its foreground
    /// (tcgetpgrp(3)). None without one, or when usher runs in the background of a shell's job
    /// control: handing the terminal on from there would steal it from the shell.
    pub fn find() -> Option<Terminal> {
        let session = nix::unistd::getsid(None).ok()?;
        let (stdin, stdout, stderr) = (io::stdin(), io::stdout(), io::stderr());
        let fds = [stdin.as_fd(), stdout.as_fd(), stderr.as_fd()];
        let (found_on, fd) = (0..).zip(fds).find(|(_, fd)| {
            nix::unistd::isatty(fd).unwrap_or(false)
                && nix::sys::termios::tcgetsid(fd).is_ok_and(|owner| owner == session)
        })?;
        let terminal = Terminal {
            fd: fd.try_clone_to_owned().ok()?,
            found_on,
        };
        terminal.is_foreground().then_some(terminal)
    }

    /// The descriptor for [`ChildSession::Foreground`]; valid while `self` lives.
    pub fn raw_fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }

    /// Whether usher's own process group is the terminal's foreground group.
    pub fn is_foreground(&self) -> bool {
        nix::unistd::tcgetpgrp(&self.fd).is_ok_and(|group| group == nix::unistd::getpgrp())
    }

    /// Makes usher's own process group the foreground again, once the child has exited. usher
    /// is a background group then; it blocks SIGTTOU (every thread does, from start-up), which
    /// the kernel counts as ignoring it, so the call succeeds instead of stopping usher.
    pub fn take_back(&self) -> io::Result<()> {
        Ok(nix::unistd::tcsetpgrp(&self.fd, nix::unistd::getpgrp())?)
    }
}

/// Whether `fd` is the controlling terminal of the session usher leads: tcgetsid(3) names
/// usher's own pid.
pub fn is_own_session_terminal(fd: BorrowedFd<'_>) -> bool {
    nix::sys::termios::tcgetsid(fd).is_ok_and(|session| session == nix::unistd::getpid())
}

/// Whether usher leads its own session (getsid(2) is its pid): the case of PID 1 in a container,
/// whose runtime makes the container's console the session's controlling terminal.
pub fn leads_own_session() -> bool {
    nix::unistd::getsid(None).is_ok_and(|session| session == nix::unistd::getpid())
}

/// Drops usher's own root once the child runs: groups, gid, then uid, for every thread (glibc's
/// wrappers do that), then every capability, checked: nothing usher runs afterwards (the HTTP
/// server, the log relays) may have root's powers, even with `--user 0` or a securebits
/// setting that keeps capabilities across setuid. Must run before usher starts any thread:
/// capabilities are per thread. usher is also made non-dumpable, so a child of the same uid
/// cannot read its memory or environment.
pub fn drop_own_privileges(uid: u32, gid: u32, groups: &[libc::gid_t]) -> io::Result<()> {
    let groups: Vec<Gid> = groups.iter().copied().map(Gid::from_raw).collect();
    nix::unistd::setgroups(&groups)?;
    let (gid, uid) = (Gid::from_raw(gid), Uid::from_raw(uid));
    nix::unistd::setresgid(gid, gid, gid)?;
    nix::unistd::setresuid(uid, uid, uid)?;
    set_capabilities(0, 0, 0)?;
    numeric_prctl(NumericPrctl::AmbientClearAll)?;
    prctl::set_dumpable(false)?;
    if capabilities()? != (0, 0) {
        return Err(io::Error::other("capabilities remain after dropping them"));
    }
    Ok(())
}

/// What a descriptor of the child's stdio is, for deciding whether its user may own it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StdioObject {
    /// An anonymous pipe (pipefs): it exists only as open descriptors, nobody can open it by a
    /// path of the file system.
    Pipe,
    /// The slave side of a pseudo-terminal (devpts), such as `docker run -t`'s console.
    PtySlave,
    /// Anything else: a regular file, a named FIFO, `/dev/null` or another device, a socket.
    Other,
}

/// PIPEFS_MAGIC of linux/magic.h (neither libc nor nix names it).
const PIPEFS_MAGIC: nix::sys::statfs::FsType = nix::sys::statfs::FsType(0x5049_5045);

/// fstat(2) and fstatfs(2) of `fd`: its owner's uid and what it is.
pub fn stdio_object(fd: BorrowedFd<'_>) -> io::Result<(u32, StdioObject)> {
    use nix::sys::stat::SFlag;
    let stat = nix::sys::stat::fstat(fd)?;
    let file_system = nix::sys::statfs::fstatfs(fd)?.filesystem_type();
    let kind = SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT;
    let object = if kind == SFlag::S_IFIFO && file_system == PIPEFS_MAGIC {
        StdioObject::Pipe
    } else if kind == SFlag::S_IFCHR && file_system == nix::sys::statfs::DEVPTS_SUPER_MAGIC {
        StdioObject::PtySlave
    } else {
        StdioObject::Other
    };
    Ok((stat.st_uid, object))
}

/// Whether two descriptors are one file (fstat(2): same device and inode): `2>&1`, one pipe or
/// terminal for both. True when either cannot be told, so that a caller keeping their writes
/// apart stays on the safe side.
pub fn same_file(a: BorrowedFd<'_>, b: BorrowedFd<'_>) -> bool {
    match (nix::sys::stat::fstat(a), nix::sys::stat::fstat(b)) {
        (Ok(a), Ok(b)) => a.st_dev == b.st_dev && a.st_ino == b.st_ino,
        _ => true,
    }
}

/// fchown(2) of `fd` to `uid` and, if given, `gid` (None keeps the group).
pub fn change_owner(fd: BorrowedFd<'_>, uid: u32, gid: Option<u32>) -> io::Result<()> {
    Ok(nix::unistd::fchown(
        fd,
        Some(Uid::from_raw(uid)),
        gid.map(Gid::from_raw),
    )?)
}

/// pipe2(2) with O_CLOEXEC: (read end, write end).
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?)
}

/// Where the first byte of `bytes` equal to one of `needles` is, sixteen bytes at a time with
/// SSE2 compares, inlined: for the short fields of a log line, where a memchr3 call costs more
/// in set-up than the search.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub fn find_any_of_three(bytes: &[u8], needles: [u8; 3]) -> Option<usize> {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    };
    let (blocks, tail) = bytes.as_chunks::<16>();
    for (index, block) in blocks.iter().enumerate() {
        let [a, b, c] = needles.map(|needle| needle as i8);
        // SAFETY: SSE2 is part of the x86-64 baseline; the load reads exactly the 16 bytes of
        // `block` (an unaligned load: no alignment needed).
        let mask = unsafe {
            let lanes = _mm_loadu_si128(block.as_ptr().cast());
            _mm_movemask_epi8(_mm_or_si128(
                _mm_or_si128(
                    _mm_cmpeq_epi8(lanes, _mm_set1_epi8(a)),
                    _mm_cmpeq_epi8(lanes, _mm_set1_epi8(b)),
                ),
                _mm_cmpeq_epi8(lanes, _mm_set1_epi8(c)),
            ))
        };
        if mask != 0 {
            return Some(index * 16 + mask.trailing_zeros() as usize);
        }
    }
    let [a, b, c] = needles;
    let at = tail
        .iter()
        .position(|&byte| byte == a || byte == b || byte == c)?;
    Some(blocks.len() * 16 + at)
}

/// Where the first byte of `bytes` equal to one of `needles` is (memchr3 elsewhere).
#[cfg(not(target_arch = "x86_64"))]
pub fn find_any_of_three(bytes: &[u8], needles: [u8; 3]) -> Option<usize> {
    let [a, b, c] = needles;
    memchr::memchr3(a, b, c, bytes)
}

/// Two 16-bit masks of `block`: bit i of the first set when `block[i]` needs an escape in a
/// JSON string (RFC 8259 section 7: below 0x20, `"`, `\\`; and DEL, which usher escapes too),
/// of the second when it is not ASCII (0x80 and above). SSE2 compares: the log encoder's
/// per-byte work, sixteen bytes in a few instructions.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub fn json_escape_mask(block: &[u8; 16]) -> (u32, u32) {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };
    // SAFETY: SSE2 is part of the x86-64 baseline, so every CPU that runs this binary has it;
    // the load reads exactly the 16 bytes of `block` (an unaligned load: no alignment needed).
    let (escapes, non_ascii) = unsafe {
        let lanes = _mm_loadu_si128(block.as_ptr().cast());
        let control = _mm_cmpeq_epi8(_mm_min_epu8(lanes, _mm_set1_epi8(0x1f)), lanes);
        let quote = _mm_cmpeq_epi8(lanes, _mm_set1_epi8(b'"' as i8));
        let backslash = _mm_cmpeq_epi8(lanes, _mm_set1_epi8(b'\\' as i8));
        let delete = _mm_cmpeq_epi8(lanes, _mm_set1_epi8(0x7f));
        let escapes = _mm_or_si128(
            _mm_or_si128(control, quote),
            _mm_or_si128(backslash, delete),
        );
        (_mm_movemask_epi8(escapes), _mm_movemask_epi8(lanes))
    };
    (escapes as u32, non_ascii as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::signal::Signal;

    /// The signals in this thread's mask, real-time ones included (nix's `SigSet` compares only
    /// the standard ones). Masks are per thread: the test harness's other threads keep theirs.
    fn thread_mask() -> Vec<i32> {
        let mut mask = SigSet::empty();
        sigprocmask(SigmaskHow::SIG_BLOCK, None, Some(&mut mask)).unwrap();
        members(&mask)
    }

    fn members(set: &SigSet) -> Vec<i32> {
        (1..=libc::SIGRTMAX())
            // SAFETY: an initialised set and a valid signal number.
            .filter(|&signo| unsafe { libc::sigismember(set.as_ref(), signo) } == 1)
            .collect()
    }

    /// The relay's wait for a held trace: false once the deadline passed on an empty pipe
    /// (never before it), true at once when data is there or the writer is gone.
    #[test]
    fn wait_readable_ends_at_the_deadline_or_at_data() {
        let (reader, writer) = pipe().unwrap();
        let deadline = Instant::now() + Duration::from_millis(30);
        assert!(!wait_readable(reader.as_fd(), deadline).unwrap());
        assert!(Instant::now() >= deadline);
        // A deadline already past: one look, no wait.
        assert!(!wait_readable(reader.as_fd(), Instant::now()).unwrap());
        write(writer.as_fd(), b"x").unwrap();
        let far = Instant::now() + Duration::from_secs(60);
        assert!(wait_readable(reader.as_fd(), far).unwrap());
        let (reader, writer) = pipe().unwrap();
        drop(writer);
        assert!(wait_readable(reader.as_fd(), far).unwrap());
    }

    /// What the constructor does at load time, run in a test thread: the taken signals blocked
    /// (all but KILL, STOP and glibc's 32 and 33), and the inherited mask (USR2 alone here) given
    /// back by the restore, not an empty one.
    #[test]
    fn the_load_time_block_takes_every_signal_and_the_restore_gives_the_inherited_mask_back() {
        let inherited = SigSet::from(Signal::SIGUSR2);
        sigprocmask(SigmaskHow::SIG_SETMASK, Some(&inherited), None).unwrap();
        block_taken_signals_at_load();
        let blocked = thread_mask();
        assert_eq!(blocked, members(&taken_signals().unwrap()));
        assert_eq!(blocked.len(), 64 - 4, "{blocked:?}");
        restore_inherited_signal_mask().unwrap();
        assert_eq!(thread_mask(), [libc::SIGUSR2]);
    }
}
