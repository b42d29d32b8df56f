//! Dropped privileges, capabilities, secrets and env files: usher as a real PID 1, the child
//! asked what it really got (its own /proc/self/status and environment).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;
use std::process::Command;
use support::*;

const STATUS: &[&str] = &[
    "grep",
    "-E",
    "^(Uid|Gid|Groups|Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs):",
    "/proc/self/status",
];

/// The child's own status lines, as `Name: value` with tabs and runs of spaces folded.
fn child_status(namespace: &Namespace, usher_args: &[&str]) -> Vec<String> {
    let mut args = usher_args.to_vec();
    args.push("--");
    args.extend(STATUS);
    let mut usher = Usher::pid1_in(namespace, &args);
    assert_eq!(usher.wait(), 0, "{:?}", usher.stderr_seen);
    usher
        .stdout_seen
        .iter()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

fn field<'a>(status: &'a [String], name: &str) -> &'a str {
    let prefix = format!("{name}:");
    let line = status
        .iter()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("{name}"));
    line[prefix.len()..].trim()
}

const NO_CAPS: &str = "0000000000000000";

fn assert_caps(status: &[String], expected: &str) {
    for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(field(status, set), expected, "{set} in {status:?}");
    }
}

const PASSWD: &str = "\
# an image's passwd, with the odd lines real ones have
root:x:0:0:root:/root:/bin/sh

app:x:1000:1000:The App:/home/app:/bin/sh
app:x:2000:2000:a duplicate: the first entry wins:/nowhere:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
";
const GROUP: &str = "\
root:x:0:
app:x:1000:
staff:x:50:other,app
wheel:x:10:app
";

#[test]
fn numeric_user_gets_exactly_that_and_no_capabilities() {
    if !require_root("numeric_user_gets_exactly_that_and_no_capabilities") {
        return;
    }
    let status = child_status(&Namespace::default(), &["--user", "1234:5678"]);
    assert_eq!(field(&status, "Uid"), "1234 1234 1234 1234");
    assert_eq!(field(&status, "Gid"), "5678 5678 5678 5678");
    assert_eq!(field(&status, "Groups"), "5678");
    assert_caps(&status, NO_CAPS);
    assert_eq!(field(&status, "NoNewPrivs"), "1");
}

#[test]
fn named_user_gets_its_groups_and_home_from_the_images_files() {
    if !require_root("named_user_gets_its_groups_and_home_from_the_images_files") {
        return;
    }
    let etc = EtcFiles::new("etc-named", PASSWD, GROUP);
    let namespace = Namespace {
        etc: Some(&etc),
        ..Namespace::default()
    };
    let status = child_status(&namespace, &["--user", "app"]);
    assert_eq!(field(&status, "Uid"), "1000 1000 1000 1000");
    assert_eq!(field(&status, "Gid"), "1000 1000 1000 1000");
    assert_eq!(field(&status, "Groups"), "10 50 1000");
    assert_caps(&status, NO_CAPS);
    // name:group gets that group only; uid:group mixes forms.
    let status = child_status(&namespace, &["--user", "app:staff"]);
    assert_eq!(field(&status, "Gid"), "50 50 50 50");
    assert_eq!(field(&status, "Groups"), "50");
    let status = child_status(&namespace, &["--user", "65534:wheel"]);
    assert_eq!(field(&status, "Uid"), "65534 65534 65534 65534");
    assert_eq!(field(&status, "Groups"), "10");
    // HOME comes from the passwd entry, not from usher's own (root's) environment.
    let mut usher = Usher::pid1_in(&namespace, &["--user", "app", "--", "printenv", "HOME"]);
    assert_eq!(usher.wait(), 0);
    assert_eq!(usher.stdout_seen, ["/home/app"]);
}

#[test]
fn cap_keep_lets_an_unprivileged_child_bind_port_80() {
    if !require_root("cap_keep_lets_an_unprivileged_child_bind_port_80") {
        return;
    }
    // A network namespace of its own: ports below 1024 are privileged there.
    let namespace = Namespace {
        own_network: true,
        ..Namespace::default()
    };
    let bind_port = fixture("bind_port");
    let mut usher = Usher::pid1_in(&namespace, &["--user", "1234", "--", &bind_port, "80"]);
    assert_eq!(
        usher.wait(),
        1,
        "without --cap-keep the bind must fail: {:?}",
        usher.stdout_seen
    );
    assert!(
        usher.stdout_seen[0].starts_with("bind failed"),
        "{:?}",
        usher.stdout_seen
    );
    let args = [
        "--user",
        "1234",
        "--cap-keep",
        "NET_BIND_SERVICE",
        "--",
        &bind_port,
        "80",
    ];
    let mut usher = Usher::pid1_in(&namespace, &args);
    assert_eq!(
        usher.wait(),
        0,
        "{:?} {:?}",
        usher.stdout_seen,
        usher.stderr_seen
    );
    assert_eq!(usher.stdout_seen, ["bound 80"]);
    // It holds that one capability in every set, as ambient, and nothing else.
    let status = child_status(
        &namespace,
        &["--user", "1234", "--cap-keep", "NET_BIND_SERVICE"],
    );
    assert_caps(&status, "0000000000000400");
}

#[test]
fn no_new_privs_unless_allowed() {
    if !require_root("no_new_privs_unless_allowed") {
        return;
    }
    // The test itself must not run with no_new_privs, or the check below proves nothing.
    assert_eq!(
        status_field(std::process::id() as i32, "NoNewPrivs").as_deref(),
        Some("0")
    );
    let status = child_status(&Namespace::default(), &[]);
    assert_eq!(field(&status, "NoNewPrivs"), "1");
    let status = child_status(
        &Namespace::default(),
        &["--user", "1234", "--allow-new-privs"],
    );
    assert_eq!(field(&status, "NoNewPrivs"), "0");
    // Without --user, --cap-keep narrows what a root child keeps.
    let status = child_status(&Namespace::default(), &["--cap-keep", "CHOWN"]);
    assert_eq!(field(&status, "Uid"), "0 0 0 0");
    assert_eq!(field(&status, "CapBnd"), "0000000000000001");
    assert_eq!(field(&status, "CapEff"), "0000000000000001");
}

/// usher as PID 1 with `--user USER` and a child waiting for TERM, once usher has said that it
/// dropped its own privileges (right after the child started). Returns usher and its pid.
fn usher_after_its_drop(user: &str) -> (Usher, i32) {
    let print_signals = fixture("print_signals");
    let args = [
        "-v",
        "--user",
        user,
        "--",
        &print_signals,
        "--exit-on",
        "TERM",
    ];
    let mut usher = Usher::pid1(&args);
    usher.line_starting("ready");
    usher.stderr_containing("dropped usher's own privileges");
    let pid = usher.pid();
    (usher, pid)
}

/// usher itself gives up root once the child runs, and still signals and reaps it.
#[test]
fn usher_drops_its_own_root_after_setup() {
    if !require_root("usher_drops_its_own_root_after_setup") {
        return;
    }
    let (mut usher, pid) = usher_after_its_drop("1234:5678");
    assert_eq!(
        status_field(pid, "Uid")
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["1234"; 4]
    );
    assert_eq!(
        status_field(pid, "Gid")
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["5678"; 4]
    );
    assert_eq!(status_field(pid, "Groups").unwrap(), "5678");
    assert_eq!(status_field(pid, "CapEff").unwrap(), NO_CAPS);
    assert_eq!(status_field(pid, "CapPrm").unwrap(), NO_CAPS);
    usher.signal(libc::SIGTERM);
    assert_eq!(usher.wait(), 0);
    assert_eq!(
        usher.stdout_seen.last().unwrap(),
        &format!("signal {}", libc::SIGTERM)
    );
}

#[test]
fn secrets_and_env_files_reach_the_child_and_nowhere_else() {
    if !require_root("secrets_and_env_files_reach_the_child_and_nowhere_else") {
        return;
    }
    let temp = TempDir::new("secrets");
    // Root-only, as in /run/secrets: read by usher before it drops to uid 1234.
    let secret = temp.file("db_password", b"s3cr3t-VALUE\n\n", 0o400);
    let env_file = temp.file(
        "app.env",
        b"# settings\nexport GREETING=\"hello\\tworld\"\nPLAIN=a=b\nKEPT=from-file\n",
        0o600,
    );
    let namespace = Namespace {
        env: &[("DB_PASSWORD_FILE", &secret), ("KEPT", "from-environment")],
        ..Namespace::default()
    };
    let args = [
        "-vv",
        "--user",
        "1234",
        "--env-file",
        &env_file,
        "--secret-env",
        "DB_PASSWORD",
    ];
    let mut args = args.to_vec();
    args.extend(["--", "env"]);
    let mut usher = Usher::pid1_in(&namespace, &args);
    assert_eq!(usher.wait(), 0, "{:?}", usher.stderr_seen);
    let env = &usher.stdout_seen;
    for expected in [
        "DB_PASSWORD=s3cr3t-VALUE",
        "GREETING=hello\tworld",
        "PLAIN=a=b",
        "KEPT=from-environment",
    ] {
        assert!(
            env.iter().any(|l| l == expected),
            "{expected} missing from {env:?}"
        );
    }
    assert!(
        !env.iter().any(|l| l.starts_with("DB_PASSWORD_FILE=")),
        "{env:?}"
    );
    assert!(
        !usher.stderr_seen.iter().any(|l| l.contains("s3cr3t")),
        "{:?}",
        usher.stderr_seen
    );
}

/// A dropped child leads a session of its own with no controlling terminal, so it cannot push
/// input into the terminal of the session it came from (TIOCSTI), while a root child, with
/// CAP_SYS_ADMIN, could: the control shows the test can tell the difference.
#[test]
fn a_dropped_child_cannot_inject_into_the_terminal() {
    if !require_root("a_dropped_child_cannot_inject_into_the_terminal") {
        return;
    }
    // How usher is started: as leader of a session that owns the pty (`docker run -t`), as
    // leader of a session that does not (the terminal belongs to no one), or inside such a
    // session without leading it (usher cannot claim the terminal then).
    #[derive(Clone, Copy, PartialEq)]
    enum Start {
        PtyOwned,
        SessionLeader,
        SessionMember,
    }
    let run = |start: Start, user_args: &[&str]| -> (Option<i32>, String) {
        let (master, slave) = open_pty();
        let mut command = if start == Start::SessionMember {
            // sh leads the session; usher is its child and not a session leader.
            let mut command = Command::new("sh");
            command.env("USHER_HEALTH_ADDR", "off");
            command.args(["-c", r#""$0" "$@""#]).arg(usher());
            command
        } else {
            usher_command()
        };
        command.env("USHER_LOG_FORMAT", "raw");
        command.args(user_args).args(["--", &fixture("tiocsti")]);
        use std::os::unix::process::CommandExt;
        command.stdin(slave);
        command.stdout(std::process::Stdio::piped());
        // usher leads a session whose controlling terminal is the pty, as in `docker run -t`.
        // SAFETY: setsid and ioctl are async-signal-safe.
        unsafe {
            command.pre_exec(move || {
                libc::setsid();
                if start == Start::PtyOwned {
                    libc::ioctl(0, libc::TIOCSCTTY, 0);
                }
                Ok(())
            });
        }
        let output = command.output().unwrap();
        drop(master);
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).trim().to_string(),
        )
    };
    let (code, said) = run(Start::PtyOwned, &[]);
    let control = (code, said.as_str());
    assert_eq!(
        control,
        (Some(0), "TIOCSTI injected"),
        "control: a root child can"
    );
    let starts = [Start::PtyOwned, Start::SessionLeader, Start::SessionMember];
    for start in starts {
        let (code, said) = run(start, &["--user", "1234"]);
        assert_eq!(code, Some(1), "{said}");
        assert!(said.starts_with("TIOCSTI refused"), "{said}");
    }
}

/// Runs usher expecting a configuration error: exit 2, one line naming the culprit, nothing
/// started. Returns the line.
fn refused(namespace: &Namespace, args: &[&str]) -> String {
    let temp = TempDir::new(&format!("refused-{}", args.join("").len()));
    let marker = temp.dir.join("started");
    let mut all = args.to_vec();
    let marker_arg = marker.to_string_lossy().into_owned();
    all.extend(["--", "touch", &marker_arg]);
    let mut usher = Usher::pid1_in(namespace, &all);
    assert_eq!(usher.wait(), 2, "{args:?}: {:?}", usher.stderr_seen);
    assert!(!marker.exists(), "{args:?}: the command was started");
    assert_eq!(
        usher.stderr_seen.len(),
        1,
        "{args:?}: {:?}",
        usher.stderr_seen
    );
    usher.stderr_seen[0].clone()
}

#[test]
fn bad_privilege_and_secret_input_exits_2_naming_the_culprit() {
    if !require_root("bad_privilege_and_secret_input_exits_2_naming_the_culprit") {
        return;
    }
    let etc = EtcFiles::new("etc-bad", PASSWD, GROUP);
    let with_etc = Namespace {
        etc: Some(&etc),
        ..Namespace::default()
    };
    for (args, culprit) in [
        (&["--user", "ghost"][..], "ghost"),
        (&["--user", "app:ghosts"], "ghosts"),
        (&["--user", "4294967296"], "out of range"),
        (&["--user", "a:b:c"], "USER[:GROUP]"),
        (&["--cap-keep", "NET_BIND"], "NET_BIND"),
    ] {
        let line = refused(&with_etc, args);
        assert!(
            line.contains(culprit),
            "{args:?} should name {culprit}: {line}"
        );
        assert!(line.starts_with(&format!("usher: {}", args[0])), "{line}");
    }
    let temp = TempDir::new("bad-secrets");
    let bad_env = temp.file(
        "bad.env",
        b"GOOD=1\nthis line is not an assignment\n",
        0o600,
    );
    let line = refused(&Namespace::default(), &["--env-file", &bad_env]);
    assert!(line.contains(&format!("{bad_env}:2")), "{line}");
    let missing = temp.dir.join("missing").to_string_lossy().into_owned();
    let line = refused(&Namespace::default(), &["--env-file", &missing]);
    assert!(line.contains(&missing), "{line}");

    let secret = temp.file("secret", b"TOP-SECRET-CONTENT", 0o400);
    for (env, culprit) in [
        (vec![("TOKEN_FILE", missing.as_str())], "TOKEN_FILE"),
        (
            vec![("TOKEN_FILE", secret.as_str()), ("TOKEN", "x")],
            "TOKEN",
        ),
        (vec![], "TOKEN_FILE"),
    ] {
        let namespace = Namespace {
            env: &env,
            ..Namespace::default()
        };
        let line = refused(&namespace, &["--secret-env", "TOKEN"]);
        assert!(line.contains(culprit), "{env:?}: {line}");
        assert!(!line.contains("TOP-SECRET"), "{line}");
    }
}

/// The contract: errors name what the user wrote. Set by a variable, a bad `--user`,
/// `--env-file`, `--secret-env` or `--cap-keep` is named by its variable, and the whole line
/// reads `usher: OPTION: what is wrong: cause`.
#[test]
fn errors_found_while_preparing_name_the_variable_that_set_the_option() {
    if !require_root("errors_found_while_preparing_name_the_variable_that_set_the_option") {
        return;
    }
    let etc = EtcFiles::new("etc-by-variable", PASSWD, GROUP);
    let temp = TempDir::new("named-by-variable");
    let bad_env = temp.file("bad.env", b"GOOD=1\nPASSWORD hunter2\n", 0o600);
    let missing = temp.dir.join("missing.env").to_string_lossy().into_owned();
    for (env, expected) in [
        (
            vec![("USHER_USER", "ghost")],
            r#"usher: USHER_USER: unknown user "ghost" (not in /etc/passwd)"#.to_string(),
        ),
        (
            vec![("USHER_ENV_FILE", bad_env.as_str())],
            format!("usher: USHER_ENV_FILE: {bad_env}:2: expected KEY=VALUE (no '=')"),
        ),
        (
            vec![("USHER_ENV_FILE", missing.as_str())],
            format!(
                "usher: USHER_ENV_FILE: cannot read {missing}: No such file or directory (os \
                 error 2)"
            ),
        ),
        (
            vec![("USHER_SECRET_ENV", "TOKEN")],
            "usher: USHER_SECRET_ENV: TOKEN_FILE is not set".to_string(),
        ),
        (
            vec![
                ("USHER_SECRET_ENV", "TOKEN"),
                ("TOKEN_FILE", missing.as_str()),
            ],
            format!(
                "usher: USHER_SECRET_ENV: cannot read TOKEN_FILE={missing}: No such file or \
                 directory (os error 2)"
            ),
        ),
    ] {
        let namespace = Namespace {
            env: &env,
            etc: Some(&etc),
            ..Namespace::default()
        };
        let line = refused(&namespace, &[]);
        assert_eq!(line, expected, "{env:?}");
        assert!(!line.contains("hunter2"), "{line}");
    }
    // The flag, when given, is named even if the variable is set too.
    let namespace = Namespace {
        env: &[("USHER_USER", "1000")],
        etc: Some(&etc),
        ..Namespace::default()
    };
    let line = refused(&namespace, &["--user", "ghost"]);
    assert!(line.starts_with("usher: --user: unknown user"), "{line}");
    // A plan error (no root to hand capabilities on) names the variable too.
    let output = Command::new("setpriv")
        .env("USHER_HEALTH_ADDR", "off")
        .env("USHER_CAP_KEEP", "CHOWN")
        .args(["--reuid=1234", "--regid=1234", "--clear-groups", "--"])
        .arg(usher())
        .args(["--", "true"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "usher: USHER_CAP_KEEP: usher runs as uid 1234, not root, so it has no capabilities to \
         hand on\n"
    );
}

/// usher as an ordinary user cannot become another one: it says so instead of failing later.
#[test]
fn user_switch_needs_root_unless_already_that_user() {
    if !require_root("user_switch_needs_root_unless_already_that_user") {
        return;
    }
    let as_uid_1234 = |args: &[&str]| {
        Command::new("setpriv")
            .env("USHER_HEALTH_ADDR", "off")
            .args(["--reuid=1234", "--regid=1234", "--clear-groups", "--"])
            .arg(usher())
            .args(args)
            .args(["--", "true"])
            .output()
            .unwrap()
    };
    let output = as_uid_1234(&["--user", "999"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("usher: --user:") && stderr.lines().count() == 1,
        "{stderr}"
    );
    let output = as_uid_1234(&["--cap-keep", "CHOWN"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).starts_with("usher: --cap-keep:"));
    // Already that user: nothing to switch, the command runs.
    assert_eq!(as_uid_1234(&["--user", "1234:1234"]).status.code(), Some(0));
}

/// Without CAP_SETPCAP usher could not empty the child's bounding set: it says so at once
/// (exit 2) instead of failing between fork and exec.
#[test]
fn missing_capabilities_are_a_configuration_error() {
    if !require_root("missing_capabilities_are_a_configuration_error") {
        return;
    }
    let without = |cap: &str, args: &[&str]| {
        Command::new("setpriv")
            .env("USHER_HEALTH_ADDR", "off")
            .arg(format!("--bounding-set=-{cap}"))
            .arg(usher())
            .args(args)
            .args(["--", "true"])
            .output()
            .unwrap()
    };
    let output = without("setpcap", &["--user", "1234"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.starts_with("usher: --user:") && stderr.contains("SETPCAP"),
        "{stderr}"
    );
    let output = without(
        "net_bind_service",
        &["--user", "1234", "--cap-keep", "NET_BIND_SERVICE"],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("NET_BIND_SERVICE"), "{stderr}");
}

/// `--user 0` keeps uid 0 for the child, yet usher itself gives up every capability.
#[test]
fn usher_gives_up_its_capabilities_even_as_uid_0() {
    if !require_root("usher_gives_up_its_capabilities_even_as_uid_0") {
        return;
    }
    let (mut usher, pid) = usher_after_its_drop("0:0");
    assert_eq!(status_field(pid, "CapEff").unwrap(), NO_CAPS);
    assert_eq!(status_field(pid, "CapPrm").unwrap(), NO_CAPS);
    usher.signal(libc::SIGTERM);
    assert_eq!(usher.wait(), 0);
}

/// What a dropped child runs to use its stdio by name, as nginx's `access_log /dev/stdout`
/// does, then prints the variables that name its user (each `&&`: a refused open stops it).
const OPENS_ITS_STDIO: &str = "echo out > /dev/stdout && echo err > /dev/stderr && \
    echo fd > /proc/self/fd/1 && cat /dev/stdin && echo stdin opened && \
    echo \"USER=${USER-unset} LOGNAME=${LOGNAME-unset} HOME=${HOME-unset}\"";

/// The child's (stdout, stderr) lines from a run: as they are in raw mode, from the records'
/// `msg` in JSON mode (usher's own records left out).
fn child_output(usher: &Usher, json: bool) -> (Vec<String>, Vec<String>) {
    if !json {
        return (usher.stdout_seen.clone(), usher.stderr_seen.clone());
    }
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    for line in usher.stdout_seen.iter().chain(&usher.stderr_seen) {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        let msg = record["msg"].as_str().unwrap().to_string();
        match record["stream"].as_str() {
            Some("stdout") => stdout.push(msg),
            Some("stderr") => stderr.push(msg),
            _ => {}
        }
    }
    (stdout, stderr)
}

/// A dropped child opens `/dev/stdout`, `/dev/stderr`, `/dev/stdin` and `/proc/self/fd/1` by
/// name, as under `docker run --user`: in JSON mode (usher's own pipes) and in raw mode (the
/// pipes usher inherited, made by root, as a runtime's are). Its USER, LOGNAME and HOME are its
/// passwd entry's, not the root ones usher was given.
#[test]
fn a_dropped_child_opens_its_own_stdio_by_name() {
    if !require_root("a_dropped_child_opens_its_own_stdio_by_name") {
        return;
    }
    let etc = EtcFiles::new("etc-stdio", PASSWD, GROUP);
    let namespace = Namespace {
        env: &[("USER", "root"), ("LOGNAME", "root"), ("HOME", "/root")],
        etc: Some(&etc),
        ..Namespace::default()
    };
    for format in ["raw", "json"] {
        let args = [
            "--log-format",
            format,
            "--user",
            "app",
            "--",
            "sh",
            "-c",
            OPENS_ITS_STDIO,
        ];
        let mut usher = Usher::pid1_in(&namespace, &args);
        usher.close_stdin();
        let code = usher.wait();
        let (stdout, stderr) = child_output(&usher, format == "json");
        assert_eq!(code, 0, "{format}: {stdout:?} {stderr:?}");
        assert_eq!(
            stdout,
            [
                "out",
                "fd",
                "stdin opened",
                "USER=app LOGNAME=app HOME=/home/app"
            ],
            "{format}"
        );
        assert_eq!(stderr, ["err"], "{format}");
    }
}

/// A uid the image does not know has no name: USER and LOGNAME are not set (as with
/// `docker run --user UID`) rather than root's passed on; HOME is `/`.
#[test]
fn a_uid_without_a_passwd_entry_gets_no_user_name() {
    if !require_root("a_uid_without_a_passwd_entry_gets_no_user_name") {
        return;
    }
    let etc = EtcFiles::new("etc-no-name", PASSWD, GROUP);
    let namespace = Namespace {
        env: &[("USER", "root"), ("LOGNAME", "root"), ("HOME", "/root")],
        etc: Some(&etc),
        ..Namespace::default()
    };
    let script = "echo \"USER=${USER-unset} LOGNAME=${LOGNAME-unset} HOME=${HOME-unset}\"";
    let mut usher = Usher::pid1_in(&namespace, &["--user", "4242", "--", "sh", "-c", script]);
    assert_eq!(usher.wait(), 0, "{:?}", usher.stderr_seen);
    assert_eq!(usher.stdout_seen, ["USER=unset LOGNAME=unset HOME=/"]);
    // Without --user the environment is usher's own, unchanged.
    let mut usher = Usher::pid1_in(&namespace, &["--", "sh", "-c", script]);
    assert_eq!(usher.wait(), 0, "{:?}", usher.stderr_seen);
    assert_eq!(usher.stdout_seen, ["USER=root LOGNAME=root HOME=/root"]);
}

/// In raw mode only what exists for this run alone changes hands: a pipe does, while a root
/// file that stdout is redirected to keeps its owner (the child writes through the descriptor
/// it inherited, and cannot open the file by name).
#[test]
fn a_redirect_to_a_file_keeps_the_files_owner() {
    if !require_root("a_redirect_to_a_file_keeps_the_files_owner") {
        return;
    }
    use std::os::unix::fs::MetadataExt;
    let temp = TempDir::new("stdio-file");
    let log = temp.file("app.log", b"", 0o644);
    let script = "echo through the descriptor; \
        echo by name > /dev/stdout || echo stdout refused > /dev/stderr";
    let output = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "--kill-child"])
        .arg(usher())
        .args(["--log-format", "raw", "--user", "1234", "--", "sh", "-c"])
        .arg(script)
        .env("USHER_HEALTH_ADDR", "off")
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let metadata = std::fs::metadata(&log).unwrap();
    assert_eq!((metadata.uid(), metadata.gid()), (0, 0));
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "through the descriptor\n"
    );
    // stderr, a pipe, was the child's to open by name.
    assert!(stderr.contains("stdout refused"), "{stderr}");
}

/// With a terminal (`docker run -t`): when usher is PID 1 the terminal is the container's
/// console, and it becomes the dropped child's, as runc makes it its user's; when usher is not
/// PID 1 it may be a login session's terminal, which keeps its owner.
#[test]
fn a_dropped_child_gets_the_containers_terminal() {
    if !require_root("a_dropped_child_gets_the_containers_terminal") {
        return;
    }
    use std::io::Read;
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    // (the terminal's owner afterwards, what the terminal showed)
    // `launcher` starts usher: the pty is the controlling terminal of the session `setsid
    // --ctty` makes, led by usher itself or by the process before it.
    let run = |launcher: &[&str]| -> (u32, String) {
        let (mut master, slave) = open_pty();
        let terminal = std::fs::read_link(format!("/proc/self/fd/{}", slave.as_raw_fd())).unwrap();
        let mut command = Command::new(launcher[0]);
        command.args(&launcher[1..]);
        command
            .arg(usher())
            .args(["--log-format", "raw", "--user", "1234", "--", "sh", "-c"])
            .arg("echo by name > /dev/stdout || echo refused")
            .env("USHER_HEALTH_ADDR", "off")
            .stdin(slave.try_clone().unwrap())
            .stdout(slave.try_clone().unwrap())
            .stderr(slave);
        let mut child = command.spawn().unwrap();
        // Only the processes started keep the terminal open: reading it ends when they do.
        drop(command);
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut shown = Vec::new();
            let mut buffer = [0u8; 4096];
            // EIO once every process holding the terminal has closed it.
            while let Ok(read @ 1..) = master.read(&mut buffer) {
                shown.extend_from_slice(&buffer[..read]);
            }
            // The master too: the terminal's node goes once it is closed.
            let _ = sender.send((String::from_utf8_lossy(&shown).into_owned(), master));
        });
        let (shown, _master) = receiver.recv_timeout(DEADLINE).unwrap();
        assert_eq!(child.wait().unwrap().code(), Some(0), "{shown}");
        (std::fs::metadata(&terminal).unwrap().uid(), shown)
    };
    let unshare = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"];
    // As under `docker run -t`: usher is PID 1 and leads the session of the pty.
    let (owner, shown) = run(&[&unshare[..], &["setsid", "--ctty"]].concat());
    assert_eq!(owner, 1234, "{shown}");
    assert!(shown.contains("by name"), "{shown}");
    // Not PID 1: a login's terminal keeps its owner.
    let (owner, shown) = run(&["setsid", "--ctty"]);
    assert_eq!(owner, 0, "{shown}");
    assert!(shown.contains("refused"), "{shown}");
    // PID 1 of a namespace started from someone's session (`unshare --pid` in a root shell):
    // the terminal is that session's, and outlives usher: it keeps its owner too.
    let (owner, shown) = run(&[&["setsid", "--ctty"][..], &unshare[..]].concat());
    assert_eq!(owner, 0, "{shown}");
    assert!(shown.contains("refused"), "{shown}");
}
