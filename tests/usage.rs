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
        (&["--log-schema", "stackdriver"], "--log-schema"),
        (&["--log-schema", "GCP"], "--log-schema"),
        (
            &["--log-schema", "ecs", "--log-field", "log.level=x"],
            "--log-field",
        ),
        (
            &["--log-schema", "gcp", "--log-field", "severity=x"],
            "--log-field",
        ),
        (&["--log-field", "msg=x"], "--log-field"),
        (&["--log-multiline", "java"], "--log-multiline"),
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

/// A bad `--live-when` or `--ready-when` is told in the spec's own syntax (`tcp://` is
/// `usher probe`'s), and a port out of range in the same words however it is written.
#[test]
fn bad_check_specs_are_told_in_their_own_syntax() {
    for flag in ["--live-when", "--ready-when"] {
        for (spec, said) in [
            (
                "http:127.0.0.1:8080/healthz",
                "\"127.0.0.1:8080/healthz\" is not an http:// URL (http://HOST:PORT/PATH)",
            ),
            ("tcp:70000", "\"70000\" is not a port (1-65535)"),
            ("tcp:127.0.0.1:70000", "\"70000\" is not a port (1-65535)"),
            (
                "http://127.0.0.1:99999/healthz",
                "\"99999\" is not a port (1-65535)",
            ),
            (
                "http://127.0.0.1:0/healthz",
                "port 0 cannot be connected to",
            ),
        ] {
            let stderr = rejected(&[flag, spec], &[]);
            assert_eq!(
                stderr.trim_end(),
                format!("usher: {flag}: {said}"),
                "{spec}"
            );
        }
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
        ("USHER_LOG_SCHEMA", "otlp"),
        ("USHER_LOG_SCHEMA", ""),
        ("USHER_LOG_MULTILINE", "on"),
    ] {
        let stderr = rejected(&[], &[(var, value)]);
        assert!(stderr.contains(var), "{var}: {stderr}");
    }
    // A static field the schema (given by its variable) reserves: the fields' variable is named.
    let env = [
        ("USHER_LOG_SCHEMA", "otel"),
        ("USHER_LOG_FIELDS", "service=a,Body=x"),
    ];
    let stderr = rejected(&[], &env);
    assert!(stderr.contains("USHER_LOG_FIELDS"), "{stderr}");
    assert!(stderr.contains("otel"), "{stderr}");
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

/// git's trimmed stdout in the repository, or None when git fails (not installed, not a checkout).
fn git_in_repository(args: &[&str]) -> Option<String> {
    let output = std::process::Command::new("git")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8(output.stdout).unwrap().trim().to_string())
}

/// `usher --version` is `usher VERSION (commit COMMIT, TARGET)`. COMMIT is HEAD's short hash in a
/// git checkout, with `-dirty` when the sources differ from it, and `unknown` in a tarball
/// (build.rs); a `BUILD_COMMIT` given at build time wins.
#[test]
fn version_names_the_commit_and_the_target() {
    let output = usher_command().arg("--version").output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    let text = String::from_utf8(output.stdout).unwrap();
    let prefix = concat!("usher ", env!("CARGO_PKG_VERSION"), " (commit ");
    let (commit, target) = text
        .strip_suffix(")\n")
        .and_then(|line| line.strip_prefix(prefix))
        .and_then(|inner| inner.split_once(", "))
        .unwrap_or_else(|| panic!("not `{prefix}COMMIT, TARGET)`: {text:?}"));

    // The target triple usher was built for: this test's architecture, on Linux.
    let parts: Vec<&str> = target.split('-').collect();
    assert!(
        parts.len() >= 3 && parts[0] == std::env::consts::ARCH && parts[2] == "linux",
        "not a Linux target triple for {}: {target:?}",
        std::env::consts::ARCH
    );

    let given = option_env!("BUILD_COMMIT").map(str::trim);
    let in_git = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".git")
        .exists();
    match (given, git_in_repository(&["rev-parse", "HEAD"])) {
        (Some(given), _) if !given.is_empty() => assert_eq!(commit, given),
        (_, Some(head)) if in_git => {
            let (hash, dirty) = match commit.strip_suffix("-dirty") {
                Some(hash) => (hash, true),
                None => (commit, false),
            };
            assert!(
                hash.len() >= 7 && head.starts_with(hash),
                "commit {commit:?} is not HEAD ({head})"
            );
            let changes = git_in_repository(&[
                "status",
                "--porcelain",
                "--",
                "src",
                "build.rs",
                "Cargo.toml",
                "Cargo.lock",
                ".cargo",
            ])
            .unwrap();
            assert_eq!(dirty, !changes.is_empty(), "{commit}: changes {changes:?}");
        }
        _ => assert_eq!(commit, "unknown"),
    }
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

#[test]
fn bad_tini_and_dumb_init_variables_exit_2_naming_the_variable() {
    for (var, value) in [
        ("TINI_VERBOSITY", "x"),
        ("TINI_VERBOSITY", "-1"),
        ("DUMB_INIT_SETSID", "maybe"),
    ] {
        let stderr = rejected(&[], &[(var, value)]);
        assert!(stderr.starts_with("usher: "), "{stderr}");
        assert!(stderr.contains(var), "{var}: {stderr}");
    }
}

/// usher's own stderr lines when it forwards USR1 to print_signals, with `env`: raw mode, so
/// which lines show depends on the verbosity, and `forwarded SIGUSR1 to pid N` or `to process
/// group N` says whether only the child was signalled.
fn forwarding_lines(env: &[(&str, &str)]) -> Vec<String> {
    let fixture = fixture("print_signals");
    let mut usher = Usher::pid1_with_env(env, &["--", &fixture, "--exit-on", "USR1"]);
    usher.line_starting("ready");
    usher.signal(libc::SIGUSR1);
    assert_eq!(usher.wait(), 0, "{env:?}: {:?}", usher.stderr_seen);
    usher.stderr_seen.clone()
}

fn has(lines: &[String], text: &str) -> bool {
    lines.iter().any(|line| line.contains(text))
}

/// tini's and dumb-init's variables (design section 1): `TINI_VERBOSITY=N` is `-v` N-1 times,
/// `DUMB_INIT_SETSID=0` is `--single-child`, tini's subreaper and group variables are accepted;
/// the `USHER_*` variable of the same setting wins.
#[test]
fn tini_and_dumb_init_variables_take_effect_and_usher_variables_win() {
    if !require_root("tini_and_dumb_init_variables_take_effect_and_usher_variables_win") {
        return;
    }
    let lines = forwarding_lines(&[
        ("DUMB_INIT_SETSID", "0"),
        ("TINI_VERBOSITY", "3"),
        ("TINI_SUBREAPER", "1"),
        ("TINI_KILL_PROCESS_GROUP", "1"),
    ]);
    // Info and debug lines, as with -vv; the signal to the child alone.
    assert!(has(&lines, "usher: forwarded SIGUSR1 to pid "), "{lines:?}");
    assert!(has(&lines, "usher: received SIGUSR1"), "{lines:?}");
    assert!(!has(&lines, "warning"), "{lines:?}");
    let lines = forwarding_lines(&[
        ("DUMB_INIT_SETSID", "0"),
        ("USHER_SINGLE_CHILD", "0"),
        ("TINI_VERBOSITY", "3"),
        ("USHER_VERBOSE", "1"),
    ]);
    assert!(
        has(&lines, "usher: forwarded SIGUSR1 to process group "),
        "{lines:?}"
    );
    assert!(!has(&lines, "received SIGUSR1"), "{lines:?}");
}

/// A `USHER_*` variable usher does not know (a typo, a setting of another version) is a
/// warning naming it, once, through usher's event output; the command still runs. The
/// variables usher knows are not named.
#[test]
fn unknown_usher_variables_are_warned_about() {
    let unknown = ["USHER_GRACE_PERIOD", "USHER_FOO"];
    let run = |format: &str| {
        let output = usher_command()
            .env("USHER_LOG_FORMAT", format)
            .env("USHER_GRACE", "5s")
            .envs(unknown.map(|name| (name, "1")))
            .args(["--", "true"])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(0));
        String::from_utf8(output.stderr).unwrap()
    };
    let stderr = run("raw");
    let mut warned: Vec<&str> = stderr.lines().filter(|l| l.contains("USHER_")).collect();
    warned.sort_unstable();
    assert_eq!(
        warned,
        [
            "usher: warning: unknown variable USHER_FOO (ignored)",
            "usher: warning: unknown variable USHER_GRACE_PERIOD (ignored)",
        ],
        "{stderr}"
    );
    let stderr = run("json");
    let mut named: Vec<String> = stderr
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .filter(|record| record["event"] == "unknown_variable")
        .map(|record| {
            assert_eq!(record["level"], "warn", "{record}");
            record["name"].as_str().unwrap().to_string()
        })
        .collect();
    named.sort_unstable();
    assert_eq!(named, ["USHER_FOO", "USHER_GRACE_PERIOD"], "{stderr}");
}

/// The listening TCP sockets on `port` in the network namespace of `pid`, from
/// /proc/PID/net/tcp (state 0A is LISTEN).
fn listeners_on(pid: i32, port: u16) -> usize {
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).unwrap();
    let local = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .filter(|fields| fields.get(1).is_some_and(|addr| addr.ends_with(&local)))
        .filter(|fields| fields.get(3) == Some(&"0A"))
        .count()
}

/// Two ushers in one network namespace (two containers of a pod, Compose's `network_mode:
/// service:`), both with the default address: the first serves on 0.0.0.0:8558; the second
/// warns that its server is off and runs its app without one. The same address given
/// explicitly, by flag or variable, stays exit 2 naming what was given, nothing started. Run in
/// a network namespace of their own: port 8558 on the host may be anyone's.
#[test]
fn a_second_usher_on_the_default_address_runs_without_the_server() {
    if !require_root("a_second_usher_on_the_default_address_runs_without_the_server") {
        return;
    }
    // `unshare --net` and `nsenter` exec usher in their own process: its pid is the launcher's.
    let mut first = Usher::shell(
        r#"unset USHER_HEALTH_ADDR; exec unshare --net "$0" -- "$1/print_signals" --exit-on TERM"#,
    );
    first.line_starting("ready");
    let netns = format!("/proc/{}/ns/net", first.pid());
    assert_eq!(listeners_on(first.pid(), 8558), 1);

    let mut second = Usher::shell(&format!(
        r#"unset USHER_HEALTH_ADDR; exec nsenter --net={netns} "$0" -- "$1/print_signals" --exit-on TERM"#
    ));
    let warning = second.stderr_containing("health server off");
    assert!(
        warning.starts_with(
            "usher: warning: health server off: the default address 0.0.0.0:8558 is taken"
        ),
        "{warning}"
    );
    assert!(warning.contains("USHER_HEALTH_ADDR"), "{warning}");
    second.line_starting("ready");
    // Still the first usher's one listener: the second has none.
    assert_eq!(listeners_on(first.pid(), 8558), 1);

    let temp = TempDir::new("taken");
    for (args, env, named) in [
        (
            &["--health-addr", "0.0.0.0:8558"][..],
            None,
            "--health-addr",
        ),
        (&[], Some("0.0.0.0:8558"), "USHER_HEALTH_ADDR"),
    ] {
        let marker = temp.dir.join(format!("started-{named}"));
        let mut command = std::process::Command::new("nsenter");
        command
            .arg(format!("--net={netns}"))
            .arg(usher())
            .args(args)
            .args(["--", "touch", marker.to_str().unwrap()])
            .env_remove("USHER_HEALTH_ADDR");
        if let Some(value) = env {
            command.env("USHER_HEALTH_ADDR", value);
        }
        let output = command.output().unwrap();
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(output.status.code(), Some(2), "{named}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with(&format!("usher: {named} 0.0.0.0:8558: cannot listen there")),
            "{stderr}"
        );
        assert!(!marker.exists(), "{named}: the command was started");
    }

    for usher in [&mut second, &mut first] {
        usher.signal(libc::SIGTERM);
        assert_eq!(usher.wait(), 0, "{:?}", usher.stderr_seen);
    }
}
