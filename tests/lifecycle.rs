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
    let mut got = stop_signals_seen(&mut usher, 2);
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

/// The next `count` lines the fixtures print, but for the SIGCONT (18) usher sends after each
/// stop signal.
fn stop_signals_seen(usher: &mut Usher, count: usize) -> Vec<String> {
    let cont = format!("signal {}", libc::SIGCONT);
    let mut seen = Vec::new();
    while seen.len() < count {
        let line = usher.next_line();
        if !line.ends_with(&cont) {
            seen.push(line);
        }
    }
    seen
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
    let mut got = stop_signals_seen(&mut usher, 2);
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

/// An app stopped with SIGSTOP (or Ctrl-Z) still acts on the stop signal: usher sends SIGCONT
/// after it, to the group (or with `--single-child` to the child), so the app exits by itself
/// with its own status instead of sitting out the grace period until SIGKILL (137).
#[test]
fn a_stopped_app_is_resumed_to_act_on_the_stop_signal() {
    if !require_root("a_stopped_app_is_resumed_to_act_on_the_stop_signal") {
        return;
    }
    let print_signals = fixture("print_signals");
    for (flag, whom) in [("--grace=8s", "process group"), ("--single-child", "pid")] {
        let args = ["-v", flag, "--", &print_signals, "--exit-on", "TERM"];
        let mut usher = Usher::pid1(&args);
        usher.line_starting("ready");
        let app = children_of(usher.pid())[0];
        send(app, libc::SIGSTOP);
        wait_until("the app to stop", || {
            status_field(app, "State").is_some_and(|s| s.starts_with('T'))
        });
        usher.signal(libc::SIGTERM);
        assert_eq!(usher.wait(), 0, "{flag}: {:?}", usher.stderr_seen);
        let resumed = format!("sent SIGCONT to {whom} ");
        let lines: Vec<_> = usher
            .stderr_seen
            .iter()
            .filter(|l| l.contains(&resumed) && l.contains("after SIGTERM"))
            .collect();
        assert_eq!(lines.len(), 1, "{flag}: {:?}", usher.stderr_seen);
    }
}

/// usher's own events of a stop that needs the SIGKILL, in JSON: each action said once (the
/// SIGKILL too: once, by `grace_over`), and `usher_exiting` the last record.
#[test]
fn a_stop_ending_in_sigkill_is_told_once_and_in_order() {
    if !require_root("a_stop_ending_in_sigkill_is_told_once_and_in_order") {
        return;
    }
    let env = [("USHER_LOG_FORMAT", "json")];
    let args = ["-v", "--grace", "1s", "--", &fixture("print_signals")];
    let mut usher = Usher::pid1_with_env(&env, &args);
    while !usher.next_line().contains("ready pid=") {}
    usher.signal(libc::SIGTERM);
    assert_eq!(usher.wait(), 137);
    let records: Vec<serde_json::Value> = usher
        .stderr_seen
        .iter()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let events: Vec<&str> = records.iter().filter_map(|r| r["event"].as_str()).collect();
    let position = |event: &str| {
        events
            .iter()
            .position(|e| *e == event)
            .unwrap_or_else(|| panic!("no {event} in {events:?}"))
    };
    let order = [
        "stop_requested",
        "signal_forwarded",
        "continue_sent",
        "grace_over",
        "child_exited",
        "usher_exiting",
    ];
    for pair in order.windows(2) {
        assert!(
            position(pair[0]) < position(pair[1]),
            "{pair:?}: {events:?}"
        );
    }
    assert_eq!(events.last(), Some(&"usher_exiting"), "{events:?}");
    let grace_over = &records[position("grace_over")];
    assert_eq!(grace_over["grace_ms"], 1000, "{grace_over}");
    let kill_lines = records
        .iter()
        .filter(|r| {
            r["msg"]
                .as_str()
                .is_some_and(|m| m.contains("SIGKILL to every process left"))
        })
        .count();
    assert_eq!(kill_lines, 1, "{:?}", usher.stderr_seen);
}

/// `--wait-all`: a daemon that forks its replacement and exits 0 does not end the run. usher
/// stays, passes signals to the replacement, forwards the stop signal to it, and exits with the
/// status of the last process it reaped (the replacement's 3 here, not the main child's 0). In
/// the main child's group or a session of its own; as PID 1 and as a subreaper.
#[test]
fn wait_all_stays_for_a_self_restarted_replacement() {
    if !require_root("wait_all_stays_for_a_self_restarted_replacement") {
        return;
    }
    let self_restart = fixture("self_restart");
    for setsid in [false, true] {
        for plain in [false, true] {
            let mut args = vec!["-v", "--wait-all", "--", &self_restart, "--term-exit", "3"];
            if setsid {
                args.push("--setsid");
            }
            let mut usher = if plain {
                Usher::plain(&args)
            } else {
                Usher::pid1(&args)
            };
            let case = format!("setsid={setsid} plain={plain}");
            usher.line_starting("replacement ready");
            usher.line_starting("main exiting");
            usher.stderr_containing("--wait-all keeps usher running");
            // Still there: a signal reaches the replacement, and nothing else did before it.
            usher.signal(libc::SIGUSR1);
            let usr1 = format!("replacement got signal {}", libc::SIGUSR1);
            assert_eq!(usher.next_line(), usr1, "{case}");
            usher.signal(libc::SIGTERM);
            let term = format!("replacement got signal {}", libc::SIGTERM);
            assert_eq!(usher.next_line(), term, "{case}");
            assert_eq!(usher.wait(), 3, "{case}: {:?}", usher.stderr_seen);
            let terms = usher.stdout_seen.iter().filter(|l| **l == term).count();
            assert_eq!(terms, 1, "{case}: {:?}", usher.stdout_seen);
        }
    }
}

/// Without `--wait-all`, the same daemon's replacement gets SIGTERM as soon as the main child
/// exits, and usher exits with the main child's 0.
#[test]
fn without_wait_all_the_replacement_is_stopped() {
    if !require_root("without_wait_all_the_replacement_is_stopped") {
        return;
    }
    let mut usher = Usher::pid1(&["--", &fixture("self_restart"), "--term-exit", "3"]);
    usher.line_starting("main exiting");
    let term = format!("replacement got signal {}", libc::SIGTERM);
    assert_eq!(usher.next_line(), term);
    assert_eq!(usher.wait(), 0);
}

/// While `--wait-all` keeps usher for the replacement, `/health` stays 200 (the replacement is
/// the app now) and reports the main child's exit; `USHER_WAIT_ALL` sets it too.
#[test]
fn wait_all_keeps_health_up_while_the_replacement_lives() {
    if !require_root("wait_all_keeps_health_up_while_the_replacement_lives") {
        return;
    }
    let env = [
        ("USHER_HEALTH_ADDR", "127.0.0.1:0"),
        ("USHER_WAIT_ALL", "1"),
    ];
    let mut usher = Usher::pid1_with_env(&env, &["-v", "--", &fixture("self_restart")]);
    let line = usher.stderr_containing("health server listening on ");
    let port: u16 = line.rsplit(':').next().unwrap().trim().parse().unwrap();
    usher.line_starting("main exiting");
    usher.stderr_containing("--wait-all keeps usher running");
    let (status, body) = http_get(port, "/health");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""last_exit":0"#), "{body}");
    usher.signal(libc::SIGTERM);
    assert_eq!(usher.wait(), 0);
}

/// A free loopback port below the kernel's ephemeral range (see tests/health.rs).
fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let start = (std::process::id() % 1000) as u16 * 10 + 5;
    loop {
        let port = 20_000 + (start + NEXT.fetch_add(1, Ordering::Relaxed)) % 12_000;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// `--on-unhealthy stop`: a handler that never answers fails liveness; usher stops the app
/// gracefully (it gets SIGTERM and exits 0 on it) and exits 70, so that a restart policy
/// (`on-failure`) starts it again.
#[test]
fn on_unhealthy_stop_stops_a_hung_app_gracefully_and_exits_70() {
    if !require_root("on_unhealthy_stop_stops_a_hung_app_gracefully_and_exits_70") {
        return;
    }
    let port = free_port().to_string();
    let live = format!("http://127.0.0.1:{port}/healthz");
    let mut usher = Usher::pid1(&[
        "-v",
        "--live-when",
        &live,
        "--live-threshold",
        "2",
        "--on-unhealthy",
        "stop",
        "--",
        &fixture("live_app"),
        "http",
        &port,
    ]);
    usher.line_starting("serving");
    usher.stderr_containing("child is live (http)");
    usher.signal(libc::SIGUSR1);
    usher.line_starting("hanging");
    let line = usher.stderr_containing("child is unhealthy (http)");
    assert!(line.contains("2 failed checks in a row"), "{line}");
    let line = usher.stderr_containing("stopping the app gracefully");
    assert!(line.contains("SIGTERM"), "{line}");
    usher.line_starting("stopping on SIGTERM");
    assert_eq!(usher.wait(), 70);
}

/// `--on-unhealthy stop` with the watchdog: an app stopped with SIGSTOP stops pinging; usher's
/// SIGTERM is followed by SIGCONT, so the app wakes to act on it; the status is 70 all the same.
#[test]
fn on_unhealthy_stop_with_the_watchdog_stops_a_frozen_app() {
    if !require_root("on_unhealthy_stop_with_the_watchdog_stops_a_frozen_app") {
        return;
    }
    let env = [("USHER_LOG_FORMAT", "json")];
    let args = [
        "--live-when",
        "watchdog:500ms",
        "--on-unhealthy",
        "stop",
        "--",
        &fixture("live_app"),
        "watchdog",
    ];
    let mut usher = Usher::pid1_with_env(&env, &args);
    while !usher.next_line().contains("watchdog 500000") {}
    usher.event("child_live");
    let mut child = 0;
    wait_until("usher's child", || {
        child = children_of(usher.pid()).first().copied().unwrap_or(0);
        child != 0
    });
    send(child, libc::SIGSTOP);
    // An alert keyed on child_unhealthy must see it, and before the stop it causes.
    let unhealthy = usher.event("child_unhealthy");
    assert_eq!(unhealthy["reason"], "no WATCHDOG=1 within 500ms");
    let seen = usher.events_seen();
    assert!(!seen.iter().any(|e| e == "unhealthy_stop"), "{seen:?}");
    let stop = usher.event("unhealthy_stop");
    assert_eq!(stop["reason"], "watchdog: no WATCHDOG=1 within 500ms");
    while !usher.next_line().contains("stopping on SIGTERM") {}
    assert_eq!(usher.wait(), 70);
    let seen = usher.events_seen();
    let said = |event: &str| seen.iter().filter(|e| *e == event).count();
    assert_eq!(
        (said("child_unhealthy"), said("unhealthy_stop")),
        (1, 1),
        "{seen:?}"
    );
}

/// `--on-unhealthy report` (the default) only reports: the app runs on, usher with it.
#[test]
fn on_unhealthy_report_leaves_the_app_running() {
    if !require_root("on_unhealthy_report_leaves_the_app_running") {
        return;
    }
    let mut usher = Usher::pid1(&[
        "-v",
        "--live-when",
        "watchdog:200ms",
        "--",
        &fixture("live_app"),
        "watchdog",
    ]);
    usher.line_starting("watchdog 200000");
    usher.signal(libc::SIGUSR1);
    usher.line_starting("paused");
    usher.stderr_containing("child is unhealthy (watchdog)");
    usher.signal(libc::SIGUSR2);
    usher.line_starting("pinging");
    usher.stderr_containing("child is live (watchdog)");
    usher.signal(libc::SIGTERM);
    usher.line_starting("stopping on SIGTERM");
    assert_eq!(usher.wait(), 0);
}
