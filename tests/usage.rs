//! Bad input: exit status 2, one line naming the culprit, and nothing started.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;
use support::*;

/// Runs usher with a command that would leave a marker file if it were ever started.
fn rejected(args: &[&str], env: &[(&str, &str)]) -> String {
    let temp = TempDir::new("usage"); // removed on drop, even when an assertion fails
    let marker = temp
        .dir
        .join(format!("started-{}", args.join(" ").replace('/', "_")));
    let output = usher_command()
        .args(args)
        .args(["--", "touch", marker.to_str().unwrap()])
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(!marker.exists(), "{args:?}: the command was started");
    assert!(output.stdout.is_empty());
    assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
    stderr
}

#[test]
fn bad_flags_exit_2_naming_the_flag_before_anything_starts() {
    for (args, culprit) in [
        (&["--bogus"][..], "--bogus"),
        (&["--grace", "soon"], "--grace"),
        (&["--grace", "-1s"], "--grace"),
        (&["--grace", "48h"], "--grace"),
        (&["--drain", "5 s"], "--drain"),
        (&["--rewrite", "TERM"], "--rewrite"),
        (&["--rewrite", "TERM:NOSUCH"], "NOSUCH"),
        (&["--rewrite", "KILL:TERM"], "SIGKILL"),
        (&["-r", "99:1"], "99"),
        (&["--remap-exit", "300"], "--remap-exit"),
        (&["-p", "BOGUS"], "-p"),
        (&["--log-format", "xml"], "--log-format"),
        (&["--stop-signal", "KILL"], "--stop-signal"),
        (&["--stop-signal", "STOP"], "--stop-signal"),
        (&["--stop-signal", "TERM,NOSUCH"], "--stop-signal"),
        (&["--stop-signal", ""], "--stop-signal"),
        (&["--stop-signal", ","], "--stop-signal"),
        (&["--user", "app"], "--user"),
        (&["--health-addr", "localhost:80"], "--health-addr"),
        (&["--ready-when", "grpc:80"], "--ready-when"),
        (&["--ready-when", "tcp:99999"], "--ready-when"),
        (&["--ready-when", "http://db:8080/ready"], "--ready-when"),
        (
            &["--ready-when", "http:ftp://127.0.0.1:21/"],
            "--ready-when",
        ),
    ] {
        let stderr = rejected(args, &[]);
        assert!(stderr.starts_with("usher: "), "{stderr}");
        assert!(
            stderr.contains(culprit),
            "{args:?} should name {culprit}: {stderr}"
        );
    }
}

#[test]
fn bad_environment_exits_2_naming_the_variable() {
    for (var, value) in [
        ("USHER_GRACE", "forever"),
        ("USHER_SINGLE_CHILD", "perhaps"),
        ("USHER_REWRITE", "TERM:QUIT,HUP"),
        ("USHER_REMAP_EXIT", "1,x"),
        ("USHER_READY_WHEN", "file:"),
        ("USHER_HEALTH_ADDR", "8558"),
        ("USHER_STOP_SIGNAL", "SIGKILL"),
        ("USHER_STOP_SIGNAL", ""),
        ("USHER_WAIT_ALL", "maybe"),
    ] {
        let stderr = rejected(&[], &[(var, value)]);
        assert!(stderr.contains(var), "{var}: {stderr}");
    }
}

#[test]
fn missing_command_exits_2() {
    let output = usher_command().output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no command"));
    let output = usher_command()
        .args(["--grace", "1s", "--"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn help_and_version() {
    let output = usher_command().arg("--help").output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    let help = String::from_utf8(output.stdout).unwrap();
    for flag in [
        "--grace",
        "--drain",
        "--rewrite",
        "--single-child",
        "--remap-exit",
        "--stop-signal",
        "--wait-all",
        "USHER_GRACE",
        "USHER_STOP_SIGNAL",
        "USHER_WAIT_ALL",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
    let output = usher_command().arg("--version").output().unwrap();
    assert!(
        String::from_utf8(output.stdout)
            .unwrap()
            .starts_with("usher ")
    );
}

#[test]
fn argv_is_passed_on_exactly() {
    let output = usher_command()
        .args([
            "--log-format",
            "raw",
            "--",
            "printf",
            "[%s]",
            "a  b",
            "",
            "--grace",
            "*",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        "[a  b][][--grace][*]"
    );
}
