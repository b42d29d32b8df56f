//! A pseudo-terminal for the tests, as a person at a keyboard would use it: the program under
//! test gets the slave side as its stdin, stdout, stderr and controlling terminal; the test
//! types into the master side and reads what the terminal shows, each expectation with a
//! deadline. Also: finding a process by its command line under a given ancestor, and what
//! /proc says of its state and terminal. Included beside `support` (`#[path]`), by the test
//! files that need a terminal.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};

use crate::support::DEADLINE;

/// Ctrl-C, Ctrl-Z and Ctrl-\ as a terminal's line discipline sees them (VINTR, VSUSP, VQUIT).
pub const CTRL_C: &str = "\x03";
pub const CTRL_Z: &str = "\x1a";
pub const CTRL_BACKSLASH: &str = "\x1c";

/// A program running on a fresh pseudo-terminal.
pub struct Pty {
    master: File,
    output: Receiver<Vec<u8>>,
    /// Everything the terminal showed so far (lossy UTF-8).
    pub shown: String,
    /// Where the next [`Pty::expect`] starts looking.
    cursor: usize,
    child: Child,
    exited: Option<ExitStatus>,
}

impl Pty {
    /// Starts `command` on a new pseudo-terminal (its stdin, stdout and stderr), as the leader
    /// of a new session. With `controlling`, the terminal is that session's controlling
    /// terminal (TIOCSCTTY: a login shell's situation); without, it belongs to no session, for
    /// a command that claims it itself (`setsid --ctty`).
    pub fn start(mut command: Command, controlling: bool) -> Pty {
        // Both sides close-on-exec from the start: tests run in parallel threads, and another
        // test's child must not inherit this terminal (its reader would never see the end).
        let flags = OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC;
        let master = posix_openpt(flags).unwrap();
        grantpt(&master).unwrap();
        unlockpt(&master).unwrap();
        let slave_path = ptsname_r(&master).unwrap();
        let slave = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY)
            .open(&slave_path)
            .unwrap();
        let master = File::from(OwnedFd::from(master));
        command
            .stdin(slave.try_clone().unwrap())
            .stdout(slave.try_clone().unwrap())
            .stderr(slave);
        // SAFETY: setsid and ioctl are async-signal-safe; fd 0 is the slave by now.
        unsafe {
            command.pre_exec(move || {
                if libc::setsid() == -1 || (controlling && libc::ioctl(0, libc::TIOCSCTTY, 0) == -1)
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().unwrap();
        // Only the processes started keep the slave open now: reading ends when they all do.
        drop(command);
        let mut reader = master.try_clone().unwrap();
        let (sender, output) = channel();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            // EIO once every process holding the slave has closed it.
            while let Ok(read @ 1..) = reader.read(&mut buffer) {
                if sender.send(buffer[..read].to_vec()).is_err() {
                    break;
                }
            }
        });
        Pty {
            master,
            output,
            shown: String::new(),
            cursor: 0,
            child,
            exited: None,
        }
    }

    /// The pid of the process started (the session leader).
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Types `text` as keystrokes.
    pub fn type_text(&mut self, text: &str) {
        self.master.write_all(text.as_bytes()).unwrap();
    }

    /// Types `line` and Enter.
    pub fn type_line(&mut self, line: &str) {
        self.type_text(&format!("{line}\n"));
    }

    /// Waits for a line starting with `prefix` and returns the rest of it.
    pub fn expect_line(&mut self, prefix: &str) -> String {
        self.expect(prefix);
        let start = self.cursor;
        self.expect("\n");
        self.shown[start..self.cursor].trim_end().to_string()
    }

    /// Waits until the terminal shows `text` after what earlier expectations matched, and
    /// moves past it. Typed input is echoed: expect what only a command's output contains
    /// (`echo ok-$((1+1))` shows `ok-2`).
    pub fn expect(&mut self, text: &str) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(at) = self.shown[self.cursor..].find(text) {
                self.cursor += at + text.len();
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.output.recv_timeout(left) {
                Ok(bytes) => self.shown.push_str(&String::from_utf8_lossy(&bytes)),
                Err(e) => panic!(
                    "the terminal never showed {text:?} ({e:?}); it showed:\n{}",
                    self.shown
                ),
            }
        }
    }

    /// Reads what the terminal has shown so far without waiting.
    pub fn take_shown(&mut self) -> &str {
        while let Ok(bytes) = self.output.try_recv() {
            self.shown.push_str(&String::from_utf8_lossy(&bytes));
        }
        &self.shown
    }

    /// Sets the terminal's window size, as a terminal emulator or `docker run -it`'s client
    /// does on a resize: the kernel sends SIGWINCH to the foreground process group.
    pub fn resize(&mut self, rows: u16, columns: u16) {
        let size = libc::winsize {
            ws_row: rows,
            ws_col: columns,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads a winsize from a valid pointer.
        let ret = unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &size) };
        assert_eq!(ret, 0, "TIOCSWINSZ: {}", std::io::Error::last_os_error());
    }

    /// Waits for the process started to exit and for every process holding the terminal to
    /// close it; returns the exit code.
    pub fn wait(&mut self) -> i32 {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if self.exited.is_none() {
                self.exited = self.child.try_wait().unwrap();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self
                .output
                .recv_timeout(left.min(Duration::from_millis(50)))
            {
                Ok(bytes) => self.shown.push_str(&String::from_utf8_lossy(&bytes)),
                Err(RecvTimeoutError::Disconnected) if self.exited.is_some() => break,
                Err(_) => assert!(
                    !left.is_zero(),
                    "the program did not exit, or left a process holding the terminal; it \
                     showed:\n{}",
                    self.shown
                ),
            }
        }
        let status = self.exited.unwrap();
        use std::os::unix::process::ExitStatusExt;
        status.code().unwrap_or_else(|| {
            panic!(
                "died by signal {:?}; the terminal showed:\n{}",
                status.signal(),
                self.shown
            )
        })
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        // A failed test must not leave its programs behind (`unshare --kill-child` takes the
        // namespace with it; `docker run -it`'s client leaves the container to its own test).
        if self.exited.is_none() && self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What /proc/PID/stat says of a process: (state, process group, foreground process group of
/// its controlling terminal). None once it is gone.
pub fn stat_of(pid: i32) -> Option<(char, i32, i32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command name in parentheses: state ppid pgrp session tty_nr tpgid ...
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    Some((
        state,
        fields.get(2)?.parse().ok()?,
        fields.get(5)?.parse().ok()?,
    ))
}

/// The pids of the processes below `ancestor` whose command line is `argv`, from /proc.
pub fn descendants_running(ancestor: i32, argv: &[&str]) -> Vec<i32> {
    let wanted: Vec<u8> = argv
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    let mut found = Vec::new();
    let mut pending = vec![ancestor];
    while let Some(pid) = pending.pop() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let children = std::fs::read_to_string(task.path().join("children"));
            for child in children.unwrap_or_default().split_whitespace() {
                let Ok(child) = child.parse::<i32>() else {
                    continue;
                };
                let cmdline = std::fs::read(format!("/proc/{child}/cmdline")).unwrap_or_default();
                if cmdline == wanted {
                    found.push(child);
                }
                pending.push(child);
            }
        }
    }
    found
}

/// Waits until exactly one process below `ancestor` runs `argv` and `ready` holds for its
/// (state, process group, foreground group); returns its pid.
pub fn wait_for_process(
    ancestor: i32,
    argv: &[&str],
    what: &str,
    ready: impl Fn(char, i32, i32) -> bool,
) -> i32 {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let [pid] = descendants_running(ancestor, argv)[..]
            && let Some((state, group, foreground)) = stat_of(pid)
            && ready(state, group, foreground)
        {
            return pid;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {argv:?} {what}"
        );
        std::thread::yield_now();
    }
}

/// `argv` running below `ancestor`, as the foreground process group of its terminal.
pub fn wait_in_foreground(ancestor: i32, argv: &[&str]) -> i32 {
    wait_for_process(ancestor, argv, "in the foreground", |state, group, fg| {
        state != 'T' && group == fg
    })
}

/// `argv` running below `ancestor`, stopped.
pub fn wait_stopped(ancestor: i32, argv: &[&str]) -> i32 {
    wait_for_process(ancestor, argv, "stopped", |state, _, _| state == 'T')
}

/// Waits until no process below `ancestor` runs `argv`.
pub fn wait_gone(ancestor: i32, argv: &[&str]) {
    let deadline = Instant::now() + DEADLINE;
    while !descendants_running(ancestor, argv).is_empty() {
        assert!(Instant::now() < deadline, "{argv:?} never ended");
        std::thread::yield_now();
    }
}

/// The path of a static busybox (Debian's busybox-static), for an interactive shell with job
/// control that also runs `FROM scratch`; None when it is not installed.
pub fn busybox() -> Option<String> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("busybox"))
        .find(|candidate| candidate.is_file())
        .map(|found| found.to_string_lossy().into_owned())
}
