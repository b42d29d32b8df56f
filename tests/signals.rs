//! Signal forwarding, with usher as a real PID 1 and signals sent from outside the namespace.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;
use support::*;

#[test]
fn every_forwardable_signal_reaches_the_child_once_and_in_order() {
    if !require_root("every_forwardable_signal_reaches_the_child_once_and_in_order") {
        return;
    }
    let mut usher = Usher::pid1(&[
        "--grace",
        "60s",
        "--",
        &fixture("print_signals"),
        "--exit-on",
        "TERM",
    ]);
    let ready = usher.line_starting("ready");
    // The child leads its own session and group.
    let field = |name: &str| {
        ready
            .split(' ')
            .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
            .unwrap()
            .to_string()
    };
    assert_eq!(field("pid"), field("pgid"), "{ready}");
    assert_eq!(field("pid"), field("sid"), "{ready}");

    let stop = [libc::SIGINT, libc::SIGTERM];
    let mut order: Vec<i32> = forwardable_signals()
        .into_iter()
        .filter(|s| !stop.contains(s))
        .collect();
    // INT starts the stop, TERM comes during the grace period and the fixture exits on it.
    order.extend(stop);
    for signo in order {
        usher.signal(signo);
        if signo == libc::SIGINT {
            // The stop signal is followed by SIGCONT, for an app that was stopped (the app may
            // take the two in either order).
            let mut got = [usher.next_line(), usher.next_line()];
            got.sort();
            assert_eq!(
                got,
                [libc::SIGCONT, libc::SIGINT].map(|s| format!("signal {s}"))
            );
            continue;
        }
        assert_eq!(
            usher.next_line(),
            format!("signal {signo}"),
            "after sending {signo}"
        );
    }
    assert_eq!(usher.wait(), 0);
    // Nothing was forwarded twice: the last line read was the TERM the fixture exited on.
    assert_eq!(
        usher.stdout_seen.last().unwrap(),
        &format!("signal {}", libc::SIGTERM)
    );
}

/// The child as usher execs it (grep reads its own status before doing anything with signals):
/// nothing blocked, nothing ignored, even though usher itself blocks everything and Rust's
/// runtime ignores SIGPIPE.
/// The next line the fixture prints, but for the SIGCONT (18) usher sends after a stop signal,
/// which the fixture may report before or after it.
fn next_but_cont(usher: &mut Usher) -> String {
    let cont = format!("signal {}", libc::SIGCONT);
    loop {
        let line = usher.next_line();
        if line != cont {
            return line;
        }
    }
}

#[test]
fn child_starts_with_a_clean_signal_mask_and_dispositions() {
    if !require_root("child_starts_with_a_clean_signal_mask_and_dispositions") {
        return;
    }
    let mut usher = Usher::pid1(&["--", "grep", "-E", "^Sig(Blk|Ign):", "/proc/self/status"]);
    assert_eq!(usher.wait(), 0);
    assert_eq!(
        usher.stdout_seen,
        ["SigBlk:\t0000000000000000", "SigIgn:\t0000000000000000"]
    );
}

/// Sends USR1 through usher, then USR2 straight to the grandchild: the grandchild reports
/// USR1 first if (and only if) usher signalled the whole group. A pending USR1 is always
/// taken before USR2 (lower numbers first), so the answer does not depend on timing.
fn grandchild_signals(extra: &[&str], env: &[(&str, &str)]) -> Vec<String> {
    let mut args = extra.to_vec();
    let fixture = fixture("print_signals");
    args.extend(["--", &fixture, "--grandchild", "--exit-on", "USR2"]);
    let mut usher = Usher::pid1_with_env(env, &args);
    usher.line_starting("ready");
    let usher_pid = usher.pid();
    let child = children_of(usher_pid)[0];
    let grandchild = children_of(child)[0];
    usher.signal(libc::SIGUSR1);
    let mut seen = Vec::new();
    loop {
        let line = usher.next_line();
        if line == format!("signal {}", libc::SIGUSR1) {
            break;
        }
        seen.push(line);
    }
    send(grandchild, libc::SIGUSR2);
    loop {
        let line = usher.next_line();
        let done = line == format!("grandchild signal {}", libc::SIGUSR2);
        seen.push(line);
        if done {
            break;
        }
    }
    usher.signal(libc::SIGUSR2);
    assert_eq!(usher.wait(), 0);
    seen.retain(|l| l.starts_with("grandchild signal"));
    seen
}

#[test]
fn signals_go_to_the_whole_process_group_by_default() {
    if !require_root("signals_go_to_the_whole_process_group_by_default") {
        return;
    }
    let seen = grandchild_signals(&[], &[]);
    assert_eq!(
        seen,
        [
            format!("grandchild signal {}", libc::SIGUSR1),
            format!("grandchild signal {}", libc::SIGUSR2)
        ]
    );
}

#[test]
fn single_child_signals_only_the_child() {
    if !require_root("single_child_signals_only_the_child") {
        return;
    }
    assert_eq!(
        grandchild_signals(&["--single-child"], &[]),
        [format!("grandchild signal {}", libc::SIGUSR2)]
    );
    // So do the variable and dumb-init's spelling.
    assert_eq!(
        grandchild_signals(&[], &[("USHER_SINGLE_CHILD", "1")]),
        [format!("grandchild signal {}", libc::SIGUSR2)]
    );
    assert_eq!(
        grandchild_signals(&["-c"], &[]),
        [format!("grandchild signal {}", libc::SIGUSR2)]
    );
}

#[test]
fn rewrite_changes_and_drops_signals() {
    if !require_root("rewrite_changes_and_drops_signals") {
        return;
    }
    let fixture = fixture("print_signals");
    let mut usher = Usher::pid1(&[
        "--rewrite",
        "TERM:QUIT",
        "-r",
        "USR1:0",
        "--",
        &fixture,
        "--exit-on",
        "QUIT",
    ]);
    usher.line_starting("ready");
    usher.signal(libc::SIGUSR1); // dropped
    usher.signal(libc::SIGUSR2);
    assert_eq!(usher.next_line(), format!("signal {}", libc::SIGUSR2));
    usher.signal(libc::SIGTERM);
    assert_eq!(
        next_but_cont(&mut usher),
        format!("signal {}", libc::SIGQUIT)
    );
    assert_eq!(usher.wait(), 0);
    let cont = format!("signal {}", libc::SIGCONT);
    let seen: Vec<_> = usher.stdout_seen.iter().filter(|l| **l != cont).collect();
    assert_eq!(seen.len(), 3, "{:?}", usher.stdout_seen);
}

#[test]
fn rewrite_from_the_environment() {
    if !require_root("rewrite_from_the_environment") {
        return;
    }
    let fixture = fixture("print_signals");
    let env = [("USHER_REWRITE", "HUP:USR2, TERM:INT")];
    let mut usher = Usher::pid1_with_env(&env, &["--", &fixture, "--exit-on", "INT"]);
    usher.line_starting("ready");
    usher.signal(libc::SIGHUP);
    assert_eq!(usher.next_line(), format!("signal {}", libc::SIGUSR2));
    usher.signal(libc::SIGTERM);
    assert_eq!(
        next_but_cont(&mut usher),
        format!("signal {}", libc::SIGINT)
    );
    assert_eq!(usher.wait(), 0);
}

/// Signals that arrive after usher blocked them but before the child exists are forwarded
/// once it does. usher is frozen (SIGSTOP) in exactly that window, signalled, and thawed.
#[test]
fn signals_sent_before_the_child_exists_are_forwarded() {
    if !require_root("signals_sent_before_the_child_exists_are_forwarded") {
        return;
    }
    let fixture = fixture("print_signals");
    let mut caught_in_window = 0;
    for attempt in 0..200 {
        let mut usher = Usher::pid1(&["--", &fixture, "--exit-on", "TERM"]);
        let pid = usher.pid();
        // Blocking is the first thing usher does and is never undone.
        wait_until("usher to block signals", || {
            status_field(pid, "SigBlk").is_some_and(|mask| mask != "0000000000000000")
        });
        send(pid, libc::SIGSTOP);
        wait_until("usher to stop", || {
            status_field(pid, "State").is_some_and(|s| s.starts_with('T'))
        });
        let in_window = children_of(pid).is_empty();
        usher.signal(libc::SIGUSR1);
        usher.signal(libc::SIGTERM);
        send(pid, libc::SIGCONT);
        let code = usher.wait();
        if in_window {
            caught_in_window += 1;
        }
        // The child either died of a forwarded signal before it could block them (138: USR1,
        // 143: TERM) or reported them and exited on TERM. A lost signal would hang until the
        // deadline.
        match code {
            0 => assert!(
                usher
                    .stdout_seen
                    .contains(&format!("signal {}", libc::SIGTERM))
            ),
            138 | 143 => {}
            other => panic!("unexpected exit {other}: {:?}", usher.stdout_seen),
        }
        if caught_in_window >= 3 {
            eprintln!(
                "caught usher in the window 3 times in {} attempts",
                attempt + 1
            );
            return;
        }
    }
    panic!(
        "could not freeze usher between blocking signals and spawning ({caught_in_window} times)"
    );
}

/// `docker exec CONTAINER kill -USR1 1`: a process inside the namespace signals PID 1, which
/// the kernel delivers only because usher blocks the signal; usher forwards it like any other.
#[test]
fn signals_sent_to_pid1_from_inside_the_namespace_are_forwarded() {
    if !require_root("signals_sent_to_pid1_from_inside_the_namespace_are_forwarded") {
        return;
    }
    let fixture = fixture("print_signals");
    let mut usher = Usher::pid1(&[
        "--",
        &fixture,
        "--signal-parent",
        "USR1",
        "--signal-parent",
        "TERM",
        "--exit-on",
        "TERM",
    ]);
    usher.line_starting("ready");
    assert_eq!(usher.next_line(), format!("signal {}", libc::SIGUSR1));
    assert_eq!(
        next_but_cont(&mut usher),
        format!("signal {}", libc::SIGTERM)
    );
    assert_eq!(usher.wait(), 0);
}

/// A SIGPIPE that usher's own write to a closed stderr provokes is not the child's business;
/// one sent by another process is forwarded (see the every-signal test).
#[test]
fn sigpipe_from_usher_s_own_write_is_not_forwarded() {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader); // every write usher makes to stderr now fails with EPIPE and raises SIGPIPE
    let mut child = usher_command()
        .args([
            "-vv",
            "--log-format",
            "raw",
            "--",
            &fixture("print_signals"),
            "--exit-on",
            "TERM",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(writer)
        .spawn()
        .unwrap();
    let usher_pid = child.id() as i32;
    let lines = lines_of(child.stdout.take().unwrap());
    let next = || {
        lines
            .recv_timeout(DEADLINE)
            .expect("a line from the fixture")
    };
    assert!(next().starts_with("ready"));
    send(usher_pid, libc::SIGUSR1);
    assert_eq!(next(), format!("signal {}", libc::SIGUSR1));
    send(usher_pid, libc::SIGTERM);
    assert_eq!(next(), format!("signal {}", libc::SIGTERM));
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

/// `--stop-signal QUIT` (an nginx image's `STOPSIGNAL SIGQUIT`): QUIT begins the stop, with the
/// grace deadline (the fixture ignores it, so SIGKILL ends it: 137); TERM is only forwarded.
/// `USHER_STOP_SIGNAL` does the same.
#[test]
fn stop_signal_chooses_what_begins_a_stop() {
    if !require_root("stop_signal_chooses_what_begins_a_stop") {
        return;
    }
    let print_signals = fixture("print_signals");
    let flag = [
        "-v",
        "--grace",
        "1s",
        "--stop-signal",
        "QUIT",
        "--",
        &print_signals,
    ];
    let variable = ["-v", "--grace", "1s", "--", &print_signals];
    for (args, env) in [
        (&flag[..], &[][..]),
        (&variable[..], &[("USHER_STOP_SIGNAL", "SIGQUIT")][..]),
    ] {
        let mut usher = Usher::pid1_with_env(env, args);
        usher.line_starting("ready");
        usher.signal(libc::SIGTERM);
        assert_eq!(usher.next_line(), format!("signal {}", libc::SIGTERM));
        usher.signal(libc::SIGQUIT);
        assert_eq!(
            next_but_cont(&mut usher),
            format!("signal {}", libc::SIGQUIT)
        );
        assert_eq!(usher.wait(), 137, "{args:?} {env:?}");
        let stops: Vec<_> = usher
            .stderr_seen
            .iter()
            .filter(|l| l.contains("stop requested by"))
            .collect();
        assert_eq!(stops.len(), 1, "{:?}", usher.stderr_seen);
        assert!(stops[0].contains("SIGQUIT"), "{stops:?}");
        assert!(
            usher.stderr_seen.iter().any(|l| l.contains("grace period")),
            "{:?}",
            usher.stderr_seen
        );
    }
}
