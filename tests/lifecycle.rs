//! Exit statuses, the graceful stop with its forced-kill deadline, and what happens to
//! processes left behind, with usher as a real PID 1 and as a plain subreaper.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;
use std::time::Duration;
use support::*;

#[test]
fn exit_status_is_the_childs() {
    if !require_root("exit_status_is_the_childs") {
        return;
    }
    let exit_with = fixture("exit_with");
    for (args, expected) in [
        (vec!["code", "0"], 0),
        (vec!["code", "3"], 3),
        (vec!["signal", "KILL"], 137),
        (vec!["signal", "SEGV"], 139),
        (vec!["signal", "TERM"], 143),
        (vec!["signal", "34"], 128 + 34), // a real-time signal: nix's waitpid would lose it
    ] {
        let mut command = vec!["--", exit_with.as_str()];
        command.extend(&args);
        assert_eq!(Usher::pid1(&command).wait(), expected, "{args:?}");
    }
}

#[test]
fn remap_exit_reports_chosen_codes_as_success() {
    if !require_root("remap_exit_reports_chosen_codes_as_success") {
        return;
    }
    let exit_with = fixture("exit_with");
    assert_eq!(
        Usher::pid1(&["--remap-exit", "3", "--", &exit_with, "code", "3"]).wait(),
        0
    );
    assert_eq!(
        Usher::pid1(&["-e", "143", "--", &exit_with, "signal", "TERM"]).wait(),
        0
    );
    assert_eq!(
        Usher::pid1(&["-e", "143", "--", &exit_with, "code", "4"]).wait(),
        4
    );
}

#[test]
fn command_not_found_is_127_and_not_executable_is_126() {
    if !require_root("command_not_found_is_127_and_not_executable_is_126") {
        return;
    }
    let mut usher = Usher::pid1(&["--", "/no/such/command"]);
    assert_eq!(usher.wait(), 127);
    assert_eq!(usher.stderr_seen.len(), 1, "{:?}", usher.stderr_seen);
    assert!(
        usher.stderr_seen[0].contains("/no/such/command"),
        "{:?}",
        usher.stderr_seen
    );
    let mut usher = Usher::pid1(&["no-such-command-in-path"]);
    assert_eq!(usher.wait(), 127);

    let temp = TempDir::new("not-executable");
    let script = temp.file("not-executable", b"#!/bin/sh\necho should not run\n", 0o644);
    let mut usher = Usher::pid1(&["--", &script]);
    assert_eq!(usher.wait(), 126);
    assert!(usher.stdout_seen.is_empty());
    assert_eq!(usher.stderr_seen.len(), 1, "{:?}", usher.stderr_seen);
    assert!(
        usher.stderr_seen[0].contains("not executable"),
        "{:?}",
        usher.stderr_seen
    );
    assert_eq!(Usher::pid1(&["--", temp.dir.to_str().unwrap()]).wait(), 126);
}

#[test]
fn term_ignoring_child_and_grandchild_are_killed_after_grace() {
    if !require_root("term_ignoring_child_and_grandchild_are_killed_after_grace") {
        return;
    }
    let grace = Duration::from_millis(1500);
    let mut usher = Usher::pid1(&[
        "--grace",
        "1500ms",
        "--",
        &fixture("print_signals"),
        "--grandchild",
    ]);
    usher.line_starting("ready");
    let sent = std::time::Instant::now();
    usher.signal(libc::SIGTERM);
    let mut got = vec![usher.next_line(), usher.next_line()];
    got.sort();
    assert_eq!(
        got,
        [
            format!("grandchild signal {}", libc::SIGTERM),
            format!("signal {}", libc::SIGTERM)
        ]
    );
    assert_eq!(usher.wait(), 137);
    // Correctness, not speed: the kill must not come before the grace period is over.
    assert!(
        sent.elapsed() >= grace,
        "killed after {:?}, before the grace period",
        sent.elapsed()
    );
}

#[test]
fn well_behaved_child_stops_with_its_own_status() {
    if !require_root("well_behaved_child_stops_with_its_own_status") {
        return;
    }
    let mut usher = Usher::pid1(&["--", &fixture("print_signals"), "--exit-on", "TERM"]);
    usher.line_starting("ready");
    usher.signal(libc::SIGTERM);
    assert_eq!(usher.wait(), 0);
    // SIGINT (Ctrl-C) stops too.
    let mut usher = Usher::pid1(&["--", &fixture("print_signals"), "--exit-on", "INT"]);
    usher.line_starting("ready");
    usher.signal(libc::SIGINT);
    assert_eq!(usher.wait(), 0);
}

#[test]
fn lingering_background_process_gets_term_when_the_main_child_exits() {
    if !require_root("lingering_background_process_gets_term_when_the_main_child_exits") {
        return;
    }
    for mut usher in [
        Usher::pid1(&["--", &fixture("linger")]),
        Usher::plain(&["--", &fixture("linger")]),
    ] {
        assert_eq!(usher.wait(), 3);
        let term = format!("background got signal {}", libc::SIGTERM);
        assert!(usher.stdout_seen.contains(&term), "{:?}", usher.stdout_seen);
    }
}

#[test]
fn lingering_process_ignoring_term_is_killed_after_grace() {
    if !require_root("lingering_process_ignoring_term_is_killed_after_grace") {
        return;
    }
    let args = ["--grace", "1s", "--", &fixture("linger"), "--ignore-term"];
    for plain in [false, true] {
        let mut usher = if plain {
            Usher::plain(&args)
        } else {
            Usher::pid1(&args)
        };
        let background = usher.pid_announced_by("background ready");
        usher.line_starting("main exiting");
        let exited = std::time::Instant::now();
        assert_eq!(usher.wait(), 3);
        assert!(
            exited.elapsed() >= Duration::from_millis(900),
            "{:?}",
            exited.elapsed()
        );
        let term = format!("background got signal {}", libc::SIGTERM);
        assert!(usher.stdout_seen.contains(&term), "{:?}", usher.stdout_seen);
        // Killed and reaped by usher itself, not left to the namespace's teardown.
        assert!(
            !usher.stderr_seen.iter().any(|l| l.contains("unreaped")),
            "{:?}",
            usher.stderr_seen
        );
        if plain {
            // Outside a PID namespace the background pid is ours to check.
            assert!(
                !is_alive(background),
                "background process {background} survived usher"
            );
        }
    }
}

/// When the main child exits first, every process left gets SIGTERM exactly once, whether it
/// stayed in the child's group or left it with setsid.
#[test]
fn each_process_left_gets_sigterm_once() {
    if !require_root("each_process_left_gets_sigterm_once") {
        return;
    }
    let linger = fixture("linger");
    for group in [&["--same-group"][..], &[]] {
        for plain in [false, true] {
            let mut args = vec!["--grace", "1s", "--", &linger, "--ignore-term"];
            args.extend(group);
            let mut usher = if plain {
                Usher::plain(&args)
            } else {
                Usher::pid1(&args)
            };
            assert_eq!(usher.wait(), 3);
            let term = format!("background got signal {}", libc::SIGTERM);
            let count = usher.stdout_seen.iter().filter(|l| **l == term).count();
            assert_eq!(count, 1, "{group:?} plain={plain}: {:?}", usher.stdout_seen);
        }
    }
}

/// At the end of the grace period every process is killed and reaped: a grandchild in the
/// child's group, and a daemon that left it with setsid, which outside a namespace usher
/// adopts only when its parent dies, and kills then.
#[test]
fn stop_kills_grandchildren_in_and_outside_the_group() {
    if !require_root("stop_kills_grandchildren_in_and_outside_the_group") {
        return;
    }
    let print_signals = fixture("print_signals");
    for grandchild_flag in ["--grandchild", "--grandchild-setsid"] {
        for plain in [false, true] {
            let args = ["--grace", "1s", "--", &print_signals, grandchild_flag];
            let mut usher = if plain {
                Usher::plain(&args)
            } else {
                Usher::pid1(&args)
            };
            let grandchild = usher.pid_announced_by("grandchild ready");
            usher.line_starting("ready");
            usher.signal(libc::SIGTERM);
            assert_eq!(usher.wait(), 137);
            let unreaped = usher.stderr_seen.iter().any(|l| l.contains("unreaped"));
            assert!(
                !unreaped,
                "{grandchild_flag} plain={plain}: {:?}",
                usher.stderr_seen
            );
            if plain {
                // Outside a PID namespace the grandchild's pid is ours to check.
                assert!(
                    !is_alive(grandchild),
                    "{grandchild_flag}: {grandchild} survived usher"
                );
            }
        }
    }
}

#[test]
fn grace_from_the_environment() {
    if !require_root("grace_from_the_environment") {
        return;
    }
    let mut usher =
        Usher::pid1_with_env(&[("USHER_GRACE", "1s")], &["--", &fixture("print_signals")]);
    usher.line_starting("ready");
    let sent = std::time::Instant::now();
    usher.signal(libc::SIGTERM);
    assert_eq!(usher.wait(), 137);
    assert!(
        sent.elapsed() >= Duration::from_secs(1),
        "{:?}",
        sent.elapsed()
    );
}

/// `--drain`: the stop signal waits; other signals pass at once meanwhile.
#[test]
fn drain_delays_the_stop_signal_but_not_others() {
    if !require_root("drain_delays_the_stop_signal_but_not_others") {
        return;
    }
    let mut usher = Usher::pid1(&[
        "--drain",
        "1s",
        "--",
        &fixture("print_signals"),
        "--exit-on",
        "TERM",
    ]);
    usher.line_starting("ready");
    let sent = std::time::Instant::now();
    usher.signal(libc::SIGTERM);
    usher.signal(libc::SIGUSR1);
    assert_eq!(usher.next_line(), format!("signal {}", libc::SIGUSR1));
    assert_eq!(usher.next_line(), format!("signal {}", libc::SIGTERM));
    assert!(
        sent.elapsed() >= Duration::from_secs(1),
        "forwarded after {:?}",
        sent.elapsed()
    );
    assert_eq!(usher.wait(), 0);
}

/// A second stop signal during a (here endless) drain forwards both at once.
#[test]
fn second_stop_signal_cuts_the_drain_short() {
    if !require_root("second_stop_signal_cuts_the_drain_short") {
        return;
    }
    let print_signals = fixture("print_signals");
    let args = [
        "-v",
        "--drain",
        "1h",
        "--",
        &print_signals,
        "--exit-on",
        "USR2",
    ];
    let mut usher = Usher::pid1(&args);
    usher.line_starting("ready");
    usher.signal(libc::SIGTERM);
    usher.stderr_containing("draining");
    usher.signal(libc::SIGINT);
    let mut got = vec![usher.next_line(), usher.next_line()];
    got.sort();
    let expected = [libc::SIGTERM, libc::SIGINT].map(|s| format!("signal {s}"));
    assert_eq!(got, expected);
    usher.signal(libc::SIGUSR2);
    assert_eq!(usher.wait(), 0);
}

/// tini's `-w`: a warning for every orphan reaped, and none without it.
#[test]
fn warn_on_reap() {
    if !require_root("warn_on_reap") {
        return;
    }
    for (flag, expected) in [(Some("-w"), true), (None, false)] {
        let linger = fixture("linger");
        let mut args: Vec<&str> = flag.into_iter().collect();
        args.extend(["--", &linger]);
        let mut usher = Usher::pid1(&args);
        assert_eq!(usher.wait(), 3);
        let warned = usher
            .stderr_seen
            .iter()
            .any(|l| l.contains("reaped process"));
        assert_eq!(warned, expected, "{flag:?}: {:?}", usher.stderr_seen);
    }
}

/// tini's `-p SIG`: when usher's parent dies, usher receives SIG and forwards it. Here the
/// parent is a shell that exits when the test closes its stdin. With `--user` too: the kernel
/// forgets the parent-death signal when credentials change, so usher sets it after its drop.
#[test]
fn parent_death_signal() {
    if require_root("parent_death_signal (its --user half)") {
        let script = r#""$0" -v --user 1234 -p USR1 -- "$1/print_signals" --exit-on USR1 & read -r _; exit 0"#;
        let mut shell = Usher::shell(script);
        shell.line_starting("ready");
        shell.stderr_containing("dropped usher's own privileges");
        shell.close_stdin();
        assert_eq!(shell.next_line(), format!("signal {}", libc::SIGUSR1));
        assert_eq!(shell.wait(), 0);
    }
    let mut shell =
        Usher::shell(r#""$0" -p USR1 -- "$1/print_signals" --exit-on USR1 & read -r _; exit 0"#);
    shell.line_starting("ready");
    shell.close_stdin();
    assert_eq!(shell.next_line(), format!("signal {}", libc::SIGUSR1));
    assert_eq!(shell.wait(), 0);
}
