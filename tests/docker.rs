//! End to end in the Docker Engine: a `FROM scratch` image made of the static usher and the
//! static demo app (examples/docker/Dockerfile.scratch), run as Docker users run it: read-only,
//! no capabilities, no new privileges, a non-root user. Each test builds its own image, scoped
//! to this run (see `run_id`), and removes every container and image it made. With CI set, a
//! missing engine is a failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/docker.rs"]
mod engine;
#[path = "support/pty.rs"]
mod pty;
mod support;
use engine::*;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};
use support::*;

/// The image's whole content: usher, the app, and fixtures for the tests.
const FIXTURES: [&str; 2] = ["print_signals", "exit_with"];
const SECRET: &str = "s3cr3t-token-value";
/// The label on every image (intermediate ones included) and container the tests make; its
/// value is the run's id, so that a sweep (`.ci/docker_sweep`) removes one run's leftovers and
/// never another run's.
const LABEL: &str = "usher-e2e";
/// The label naming the image a build was for, so that the intermediate images of a failed
/// build can be found and removed.
const IMAGE_LABEL: &str = "usher-e2e.image";

/// An image built for one test, and the containers it started; all removed on drop.
struct Image {
    tag: String,
    containers: Vec<String>,
    context: TempDir,
}

impl Image {
    fn build(test: &str) -> Image {
        Image::build_with(test, &[])
    }

    /// An image with more files: (where on this machine, where in the image).
    ///
    /// Engines without BuildKit (this machine's: Docker 20.10 with a client lacking buildx)
    /// use the legacy builder, which commits an intermediate image per Dockerfile step, each the
    /// parent of the next, and reuses them across builds through its cache. Two tests' builds
    /// then shared their first steps' images, and one test's `docker rmi`, pruning its image's
    /// untagged parents, deleted them under the other's build ("failed to set parent sha256:...:
    /// unknown parent image ID", "failed to get digest ... no such file or directory"). So each
    /// build has a chain of its own (`--no-cache`, and a label naming the run and image as its
    /// first step), which its removal may prune, as it must to leave nothing behind.
    fn build_with(test: &str, extra: &[(&Path, &str)]) -> Image {
        let (image, built) = Image::attempt(test, extra, "");
        assert!(
            built.status.success(),
            "docker build of {}: {}",
            image.tag,
            String::from_utf8_lossy(&built.stderr)
        );
        image
    }

    /// A build with `steps` appended to the Dockerfile, whether it succeeds or not: the image
    /// (to drop) and what `docker build` said.
    fn attempt(test: &str, extra: &[(&Path, &str)], steps: &str) -> (Image, Output) {
        let tag = format!("usher-e2e-{}-{}", test.replace('_', "-"), run_id());
        let context = TempDir::new(&format!("docker-{test}"));
        let copy = |from: &Path, to: &str| {
            std::fs::copy(from, context.dir.join(to)).unwrap();
        };
        let examples = usher().parent().unwrap().join("examples");
        copy(&usher(), "usher");
        copy(&examples.join("demo_app"), "demo_app");
        std::fs::create_dir(context.dir.join("fixtures")).unwrap();
        for fixture in FIXTURES {
            copy(&examples.join(fixture), &format!("fixtures/{fixture}"));
        }
        let dockerfile =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/docker/Dockerfile.scratch");
        let shipped = std::fs::read_to_string(dockerfile).unwrap();
        // The label right after FROM: every intermediate image inherits it (`--label` would
        // label the last step's image alone).
        let label = format!("LABEL {LABEL}={} {IMAGE_LABEL}={tag}\n", run_id());
        let from = shipped.find("\nFROM scratch\n").unwrap() + "\nFROM scratch\n".len();
        let mut text = format!("{}{label}{}", &shipped[..from], &shipped[from..]);
        text.push_str("COPY fixtures/ /fixtures/\n");
        for (n, (from, to)) in extra.iter().enumerate() {
            copy(from, &format!("extra{n}"));
            text.push_str(&format!("COPY extra{n} {to}\n"));
        }
        text.push_str(steps);
        std::fs::write(context.dir.join("Dockerfile"), text).unwrap();
        // Made before the build: if it fails, dropping the image removes what it left.
        let image = Image {
            tag,
            containers: Vec::new(),
            context,
        };
        let context_dir = image.context.dir.to_str().unwrap().to_string();
        // --force-rm: a failed step's container goes too.
        let built = docker(&[
            "build",
            "-q",
            "--no-cache",
            "--force-rm",
            "-t",
            &image.tag,
            &context_dir,
        ]);
        (image, built)
    }

    /// The labels for a container of this image.
    fn labels(&self) -> [String; 4] {
        [
            "--label".to_string(),
            format!("{LABEL}={}", run_id()),
            "--label".to_string(),
            format!("{IMAGE_LABEL}={}", self.tag),
        ]
    }

    /// Starts a detached container the way the README recommends; returns its name.
    fn run(&mut self, extra: &[&str], command: &[&str]) -> String {
        let name = format!("{}-{}", self.tag, self.containers.len());
        self.containers.push(name.clone());
        let mut args = vec![
            "run",
            "-d",
            "--name",
            &name,
            "--read-only",
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
            "--user",
            "10001:10001",
        ];
        let labels = self.labels();
        args.extend(labels.iter().map(String::as_str));
        args.extend(extra);
        args.push(&self.tag);
        args.extend(command);
        docker_ok(&args);
        name
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        for container in &self.containers {
            let _ = docker(&["rm", "-f", container]);
        }
        // The image and, pruned with it, its own intermediate images; then any a failed build
        // left without a tag.
        let _ = docker(&["rmi", "-f", &self.tag]);
        remove_images(&format!("label={IMAGE_LABEL}={}", self.tag));
    }
}

/// Removes every image, intermediate ones included, that `filter` selects. Leaves go first
/// (an image with children cannot be removed) and take their untagged parents with them, so a
/// pass or two does it; the images of one build are its own (see `Image::build_with`).
fn remove_images(filter: &str) {
    for _ in 0..5 {
        let listed = docker(&["images", "-a", "-q", "--no-trunc", "--filter", filter]);
        let text = String::from_utf8_lossy(&listed.stdout).into_owned();
        let ids: Vec<&str> = text.split_whitespace().collect();
        if ids.is_empty() {
            return;
        }
        let mut args = vec!["rmi", "-f"];
        args.extend(ids);
        let _ = docker(&args);
    }
}

/// `docker logs -f`, both streams merged, as lines.
fn follow_logs(container: &str) -> (Killed, Receiver<String>) {
    let mut child = Command::new("sh")
        .args(["-c", "exec docker logs -f \"$1\" 2>&1", "sh", container])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = lines_of(child.stdout.take().unwrap());
    (Killed(child), lines)
}

fn wait_for_line(lines: &Receiver<String>, text: &str) -> String {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.contains(text) => return line,
            Ok(_) => {}
            Err(e) => panic!("no log line with {text:?} ({e:?})"),
        }
    }
}

/// Waits for a line containing each of `texts`, in any order (usher's stderr and the app's
/// stdout are two streams in `docker logs`); returns the first line found for each.
fn wait_for_lines(lines: &Receiver<String>, texts: &[&str]) -> Vec<String> {
    let mut found: Vec<Option<String>> = vec![None; texts.len()];
    let deadline = Instant::now() + DEADLINE;
    while found.iter().any(Option::is_none) {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                for (slot, text) in found.iter_mut().zip(texts) {
                    if slot.is_none() && line.contains(text) {
                        *slot = Some(line.clone());
                    }
                }
            }
            Err(e) => panic!("no log lines with all of {texts:?} ({e:?})"),
        }
    }
    found.into_iter().flatten().collect()
}

/// A child process killed when dropped, so that a failing test leaves no stream running.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Docker's health events for `container` (which may not exist yet).
fn health_events(container: &str) -> Killed {
    let events = Command::new("docker")
        .args([
            "events",
            "--filter",
            &format!("container={container}"),
            "--filter",
            "event=health_status",
            "--format",
            "{{.Action}}",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    Killed(events)
}

/// Waits for the container's health to become `healthy` through Docker's own HEALTHCHECK
/// (which runs `usher probe` inside the container), watching Docker's events.
fn wait_healthy(container: &str, events: &mut Killed) {
    let statuses = lines_of(events.0.stdout.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match statuses.recv_timeout(left) {
            Ok(status) if status.contains("healthy") && !status.contains("unhealthy") => return,
            Ok(_) => {}
            Err(e) => panic!(
                "{container} never became healthy ({e:?}): {}",
                docker_ok(&["inspect", "-f", "{{json .State.Health}}", container])
            ),
        }
    }
}

fn exit_code(container: &str) -> i32 {
    docker_ok(&["inspect", "-f", "{{.State.ExitCode}}", container])
        .parse()
        .unwrap()
}

/// Every line of `docker logs`, stdout and stderr, is a JSON object.
fn json_logs(container: &str) -> Vec<serde_json::Value> {
    let output = docker(&["logs", container]);
    let mut records = Vec::new();
    for stream in [&output.stdout, &output.stderr] {
        for line in String::from_utf8_lossy(stream).lines() {
            let record: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON record ({e}): {line:?}"));
            assert!(record.is_object(), "{line}");
            records.push(record);
        }
    }
    records
}

/// A build failing at its last step leaves nothing behind: the legacy builder has committed an
/// image for each step before (a dozen here), which dropping the image removes by its label,
/// and `--force-rm` removed the failed step's container.
#[test]
fn a_failed_build_leaves_no_image_behind() {
    if !engine_answers("a_failed_build_leaves_no_image_behind") {
        return;
    }
    // A scratch image has nothing to run: the step's container cannot start.
    let (image, built) = Image::attempt("failed-build", &[], "RUN [\"/no/such/program\"]\n");
    assert!(!built.status.success(), "the build succeeded");
    let filter = format!("label={IMAGE_LABEL}={}", image.tag);
    let intermediate = docker_ok(&["images", "-a", "-q", "--filter", &filter]);
    eprintln!(
        "intermediate images left by the failed build: {}",
        intermediate.lines().count()
    );
    // The failed step's container, made from the last of them, is gone (filters of one key
    // are alternatives).
    let mut ps = vec!["ps".to_string(), "-a".into(), "-q".into()];
    for id in intermediate.lines() {
        ps.extend(["--filter".to_string(), format!("ancestor={id}")]);
    }
    if !intermediate.is_empty() {
        let ps: Vec<&str> = ps.iter().map(String::as_str).collect();
        assert_eq!(docker_ok(&ps), "", "the failed step's container is left");
    }
    drop(image);
    assert_eq!(docker_ok(&["images", "-a", "-q", "--filter", &filter]), "");
}

/// The demo app becomes healthy through `usher probe`, reads its secret without it ever
/// appearing in the logs, and `docker stop` ends it quickly and cleanly: on the SIGTERM usher
/// forwards, not on a SIGKILL (usher's at its grace, Docker's at its timeout): exit 0, its own
/// goodbye in the logs, and nothing but JSON records. (How long the stop takes is
/// bench/docker.py's.)
#[test]
fn healthy_then_docker_stop_is_quick_and_clean() {
    if !engine_answers("healthy_then_docker_stop_is_quick_and_clean") {
        return;
    }
    let mut image = Image::build("stop");
    let secret = image.context.file("token", SECRET.as_bytes(), 0o444);
    let name = format!("{}-0", image.tag);
    let mut events = health_events(&name);
    let mount = format!("{secret}:/run/secrets/token:ro");
    let container = image.run(
        &[
            "--health-interval",
            "500ms",
            "-v",
            &mount,
            "-e",
            "USHER_SECRET_ENV=DEMO_TOKEN",
            "-e",
            "DEMO_TOKEN_FILE=/run/secrets/token",
            "-e",
            "USHER_READY_WHEN=tcp:8080",
        ],
        &[],
    );
    assert_eq!(container, name);
    let (_logs, lines) = follow_logs(&container);
    wait_healthy(&container, &mut events);
    drop(events);
    // Once usher saw the app's port accept a connection, /ready and the port answer too,
    // asked from inside the container by usher's probe.
    wait_for_line(&lines, "child is ready (tcp)");
    docker_ok(&[
        "exec",
        &container,
        "/usher",
        "probe",
        "http://127.0.0.1:8080/healthz",
    ]);
    let ready = docker(&[
        "exec",
        &container,
        "/usher",
        "probe",
        "http://127.0.0.1:8558/ready",
    ]);
    assert!(ready.status.success(), "{ready:?}");

    // Docker's own SIGKILL later than the test's deadline: a stop the app did not end itself
    // fails as a timeout, not as an exit status a slow engine could explain.
    let started = Instant::now();
    docker_ok(&["stop", "-t", "60", &container]);
    let took = started.elapsed();
    assert_eq!(exit_code(&container), 0, "after {took:?}");
    let records = json_logs(&container);
    let text = serde_json::to_string(&records).unwrap();
    assert!(!text.contains(SECRET), "the secret leaked into the logs");
    let msgs: Vec<&str> = records.iter().filter_map(|r| r["msg"].as_str()).collect();
    for expected in [
        "secret DEMO_TOKEN loaded (18 bytes)",
        "received SIGTERM: shutting down gracefully",
        "bye",
        "exiting with status 0",
    ] {
        assert!(
            msgs.iter().any(|m| m.contains(expected)),
            "{expected:?} missing from {msgs:#?}"
        );
    }
    assert!(
        !msgs.iter().any(|m| m.starts_with("grace period over")),
        "usher had to kill the app: {msgs:#?}"
    );
    // The app ran as the image's user, not as root.
    assert!(msgs.iter().any(|m| m.contains("(uid 10001)")), "{msgs:#?}");
}

/// The container's exit status is the app's: its code, or 128+N for a signal.
#[test]
fn a_crashing_app_gives_the_container_its_exit_code() {
    if !engine_answers("a_crashing_app_gives_the_container_its_exit_code") {
        return;
    }
    let mut image = Image::build("crash");
    for (args, expected) in [(["code", "3"], 3), (["signal", "SEGV"], 139)] {
        let container = image.run(&[], &["/fixtures/exit_with", args[0], args[1]]);
        let status = docker_ok(&["wait", &container]);
        assert_eq!(status, expected.to_string(), "{args:?}");
        assert_eq!(exit_code(&container), expected);
        let records = json_logs(&container);
        assert!(
            records
                .iter()
                .any(|r| r["msg"] == format!("exiting with status {expected}")),
            "{records:#?}"
        );
    }
}

/// `docker kill -s HUP` reaches the app through usher.
#[test]
fn docker_kill_hup_reaches_the_app() {
    if !engine_answers("docker_kill_hup_reaches_the_app") {
        return;
    }
    let mut image = Image::build("hup");
    let container = image.run(&[], &[]);
    let (_logs, lines) = follow_logs(&container);
    wait_for_line(&lines, "demo app listening");
    docker_ok(&["kill", "-s", "HUP", &container]);
    wait_for_line(&lines, "received SIGHUP");
    docker_ok(&["stop", &container]);
    assert_eq!(exit_code(&container), 0);
}

/// An app that ignores SIGTERM is killed by usher at --grace (2 s), long before Docker's own
/// timeout (60 s here) would. The upper bound only needs to tell usher's kill from Docker's:
/// 40 s leaves a loaded 2-core engine 38 s for the stop's own round trips (a few seconds at
/// worst seen here) and stays 20 s short of Docker's kill.
#[test]
fn an_app_ignoring_sigterm_is_killed_at_grace() {
    if !engine_answers("an_app_ignoring_sigterm_is_killed_at_grace") {
        return;
    }
    let mut image = Image::build("grace");
    let container = image.run(&["-e", "USHER_GRACE=2s"], &["/fixtures/print_signals"]);
    let (_logs, lines) = follow_logs(&container);
    wait_for_line(&lines, "ready pid=");
    let started = Instant::now();
    docker_ok(&["stop", "-t", "60", &container]);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(40),
        "docker stop took {took:?} with --grace 2s"
    );
    assert_eq!(exit_code(&container), 137);
    let records = json_logs(&container);
    let msgs: Vec<&str> = records.iter().filter_map(|r| r["msg"].as_str()).collect();
    assert!(msgs.contains(&"signal 15"), "{msgs:#?}");
    assert!(
        msgs.iter().any(|m| m.starts_with("grace period over")),
        "{msgs:#?}"
    );
}

/// `docker run -it IMAGE sh` with usher as the image's entrypoint (PID 1, the container's
/// console as its controlling terminal) and a `FROM scratch` busybox as the shell: the shell
/// has job control and `/dev/tty`, Ctrl-Z stops a job and `fg` resumes it, Ctrl-C interrupts it
/// without being a stop request (usher's grace of 1 s would otherwise have ended the shell),
/// and `exit 3` is the container's exit status, as with tini.
#[test]
fn docker_run_it_gives_the_shell_a_terminal() {
    use pty::*;
    if !engine_answers("docker_run_it_gives_the_shell_a_terminal") {
        return;
    }
    let busybox = busybox().filter(|path| is_static(Path::new(path)));
    let needs = "a static busybox (apt-get install busybox-static)";
    if !require(
        "docker_run_it_gives_the_shell_a_terminal",
        needs,
        busybox.is_some(),
    ) {
        return;
    }
    let busybox = busybox.unwrap_or_default();
    let mut image = Image::build_with("tty", &[(Path::new(&busybox), "/bin/busybox")]);
    let name = format!("{}-0", image.tag);
    image.containers.push(name.clone());
    let mut command = Command::new("docker");
    command
        .args(["run", "-it", "--name", &name])
        .args(image.labels());
    // The image says json; a terminal user's image would say nothing (auto: raw on a terminal).
    command.args(["-e", "USHER_LOG_FORMAT=auto", "-e", "USHER_VERBOSE=1"]);
    command.args(["-e", "USHER_GRACE=1s", &image.tag, "/bin/busybox", "sh"]);
    let mut pty = Pty::start(command, true);
    // usher, as the host sees it.
    let mut init = 0;
    wait_until("the container to run", || {
        let output = docker(&["inspect", "-f", "{{.State.Pid}}", &name]);
        init = String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .unwrap_or(0);
        init != 0
    });
    let sleep = ["sleep", "31"];
    pty.type_line("echo tty-$((6*7)) > /dev/tty");
    pty.expect("tty-42");
    pty.type_line("sleep 31");
    wait_in_foreground(init, &sleep);
    pty.type_text(CTRL_C);
    wait_gone(init, &sleep);
    pty.type_line("echo alive-$((1+1))");
    pty.expect("alive-2");
    // Sent after the Ctrl-C: usher would have read a SIGINT (a lower number) first.
    docker_ok(&["kill", "-s", "WINCH", &name]);
    pty.expect("forwarded SIGWINCH to process group");
    let before = pty.take_shown().to_string();
    assert!(!before.contains("stop requested"), "{before}");
    pty.type_line("sleep 31");
    wait_in_foreground(init, &sleep);
    pty.type_text(CTRL_Z);
    wait_stopped(init, &sleep);
    pty.type_line("jobs");
    pty.expect("Stopped");
    pty.type_line("fg");
    wait_in_foreground(init, &sleep);
    pty.type_text(CTRL_C);
    wait_gone(init, &sleep);
    pty.type_line("exit 3");
    assert_eq!(pty.wait(), 3, "{}", pty.shown);
    assert!(!pty.shown.contains("job control"), "{}", pty.shown);
    assert_eq!(exit_code(&name), 3);
}

/// Whether an ELF64 executable runs without a dynamic loader (no PT_INTERP program header),
/// as a `FROM scratch` image needs.
fn is_static(path: &Path) -> bool {
    let Ok(elf) = std::fs::read(path) else {
        return false;
    };
    let number = |at: usize, size: usize| -> usize {
        let bytes = elf.get(at..at + size).unwrap_or_default();
        bytes.iter().rev().fold(0, |n, b| n << 8 | usize::from(*b))
    };
    if elf.get(..5) != Some(b"\x7fELF\x02") {
        return false;
    }
    let (offset, size, count) = (number(0x20, 8), number(0x36, 2), number(0x38, 2));
    const PT_INTERP: usize = 3;
    (0..count).all(|n| number(offset + n * size, 4) != PT_INTERP)
}

/// Two usher containers in one network namespace (`--network container:`, as two containers
/// of a pod or Compose's `network_mode: service:`), both on the image's default health address:
/// the first serves on 8558; the second warns `health_server_off` and runs its app without a
/// server, and its bare `usher probe` with `USHER_HEALTH_ADDR=off` refuses (exit 2) rather
/// than ask the first container's usher. A third container given `USHER_HEALTH_ADDR` of its own
/// serves there, and its bare probe follows the variable; one given the taken address
/// explicitly exits 2 naming it, its app never started.
#[test]
fn two_ushers_in_one_network_namespace() {
    if !engine_answers("two_ushers_in_one_network_namespace") {
        return;
    }
    let mut image = Image::build("sidecars");
    let first = image.run(&[], &[]);
    let (_first_logs, first_lines) = follow_logs(&first);
    wait_for_lines(
        &first_lines,
        &[
            "health server listening on 0.0.0.0:8558",
            "demo app listening",
        ],
    );
    let network = format!("container:{first}");
    let app = ["/fixtures/print_signals", "--exit-on", "TERM"];

    let second = image.run(&["--network", &network], &app);
    let (_second_logs, second_lines) = follow_logs(&second);
    let found = wait_for_lines(&second_lines, &["health_server_off", "ready pid="]);
    let record: serde_json::Value = serde_json::from_str(&found[0]).unwrap();
    assert_eq!(record["level"], "warn", "{record}");
    assert_eq!(record["logger"], "usher", "{record}");
    assert_eq!(record["addr"], "0.0.0.0:8558", "{record}");
    assert!(
        record["reason"].as_str().unwrap().contains("in use"),
        "{record}"
    );
    let off = docker(&[
        "exec",
        "-e",
        "USHER_HEALTH_ADDR=off",
        &second,
        "/usher",
        "probe",
    ]);
    let stderr = String::from_utf8_lossy(&off.stderr);
    assert_eq!(off.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("USHER_HEALTH_ADDR is off"), "{stderr}");

    let own = [
        "--network",
        &network,
        "-e",
        "USHER_HEALTH_ADDR=0.0.0.0:8559",
    ];
    let third = image.run(&own, &app);
    let (_third_logs, third_lines) = follow_logs(&third);
    wait_for_lines(
        &third_lines,
        &["health server listening on 0.0.0.0:8559", "ready pid="],
    );
    // `docker exec` gets the container's environment: the bare probe asks 127.0.0.1:8559.
    docker_ok(&["exec", &third, "/usher", "probe"]);
    docker_ok(&[
        "exec",
        &first,
        "/usher",
        "probe",
        "http://127.0.0.1:8559/health",
    ]);

    let taken = [
        "--network",
        &network,
        "-e",
        "USHER_HEALTH_ADDR=0.0.0.0:8558",
    ];
    let fourth = image.run(&taken, &app);
    assert_eq!(docker_ok(&["wait", &fourth]), "2");
    let logs = docker(&["logs", &fourth]);
    let stderr = String::from_utf8_lossy(&logs.stderr);
    assert!(
        stderr.contains("usher: USHER_HEALTH_ADDR 0.0.0.0:8558: cannot listen there"),
        "{stderr}"
    );
    assert!(logs.stdout.is_empty(), "the app started: {logs:?}");

    for container in [&third, &second, &first] {
        docker_ok(&["stop", container]);
        assert_eq!(exit_code(container), 0, "{container}");
    }
}

// OOM kills, the container's metrics and Kubernetes' termination message (issue 11). This
// machine's Docker runs on cgroup v1; the v2 files are checked from fixtures in the unit tests.

/// The limit the OOM tests run under (no swap: the hog is killed, not swapped out).
const OOM_LIMIT: [&str; 4] = ["-m", "48m", "--memory-swap", "48m"];

/// An image with the hog fixture (examples/hog.rs) as /fixtures/hog.
fn hog_image(test: &str) -> Image {
    let hog = fixture("hog");
    Image::build_with(test, &[(Path::new(&hog), "/fixtures/hog")])
}

/// GET `path` from usher's health port, published on the host (`-p 127.0.0.1::8558`):
/// (status, body).
fn http_get(container: &str, path: &str) -> (u16, String) {
    let published = docker_ok(&["port", container, "8558"]);
    let addr = published.lines().next().unwrap().trim().parse().unwrap();
    status_and_body(&try_http_answer(addr, path).unwrap())
}

/// The value of a series in a Prometheus text, failing the test when it is absent.
fn series(metrics: &str, name: &str) -> f64 {
    let line = metrics
        .lines()
        .find(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' '))
        })
        .unwrap_or_else(|| panic!("no {name} in:\n{metrics}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

/// The JSON record of usher's next event `event`, from `docker logs -f` lines.
fn wait_for_event(lines: &Receiver<String>, event: &str) -> serde_json::Value {
    let line = wait_for_line(lines, &format!(r#""event":"{event}""#));
    serde_json::from_str(&line).unwrap()
}

/// What Docker itself reports, for the record (not usher's doing): on this machine (Docker
/// 20.10, cgroup v1) `OOMKilled` is false while the container runs, and true once it has
/// exited after any OOM kill in it, a worker's too, whatever its exit status.
fn docker_oom_killed(container: &str) -> String {
    docker_ok(&["inspect", "-f", "{{.State.OOMKilled}}", container])
}

/// A worker (an orphan usher reaps) OOM-killed under `docker run -m 48m`: an `oom_kill` event
/// names it, `/health` stays 200 and counts it, and `/metrics` counts it beside the
/// container's memory, CPU and pids and the app's processes, as read in the running container.
#[test]
fn an_oom_killed_worker_is_named_and_counted_and_the_app_lives_on() {
    if !engine_answers("an_oom_killed_worker_is_named_and_counted_and_the_app_lives_on") {
        return;
    }
    let mut image = hog_image("oom-worker");
    let mut options = OOM_LIMIT.to_vec();
    options.extend(["-p", "127.0.0.1::8558"]);
    let container = image.run(&options, &["/fixtures/hog", "worker", "orphan"]);
    let (_logs, lines) = follow_logs(&container);
    let found = wait_for_lines(&lines, &["worker pid=", r#""event":"oom_kill""#]);
    let record: serde_json::Value = serde_json::from_str(&found[0]).unwrap();
    let worker: i64 = record["msg"].as_str().unwrap()["worker pid=".len()..]
        .parse()
        .unwrap();
    let event: serde_json::Value = serde_json::from_str(&found[1]).unwrap();
    assert_eq!(event["level"], "warn", "{event}");
    assert_eq!(event["pid"], worker, "{event}");
    assert_eq!(event["name"], "hog", "{event}");

    let (status, body) = http_get(&container, "/health");
    assert_eq!(status, 200, "the app lives on: {body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["oom_kills"], 1, "{body}");
    assert_eq!(body["last_exit_oom_killed"], false, "{body}");
    let (status, metrics) = http_get(&container, "/metrics");
    assert_eq!(status, 200);
    assert_eq!(series(&metrics, "usher_oom_kills_total"), 1.0);
    assert_eq!(series(&metrics, "usher_zombies_reaped_total"), 1.0);
    let limit = series(&metrics, "usher_container_memory_limit_bytes");
    assert_eq!(limit, 48.0 * 1024.0 * 1024.0);
    let used = series(&metrics, "usher_container_memory_usage_bytes");
    assert!(used > 0.0 && used < limit, "{metrics}");
    assert!(series(&metrics, "usher_container_cpu_usage_seconds_total") > 0.0);
    series(&metrics, "usher_container_cpu_throttled_periods_total");
    series(&metrics, "usher_container_cpu_throttled_seconds_total");
    // usher's threads and the app's: at least usher and the main child.
    assert!(series(&metrics, "usher_container_pids") >= 2.0, "{metrics}");
    // The worker is gone: the app is the main child alone, one thread, stdio open at least.
    assert_eq!(series(&metrics, "usher_app_processes"), 1.0, "{metrics}");
    assert!(series(&metrics, "usher_app_threads") >= 1.0);
    assert!(series(&metrics, "usher_app_open_fds") >= 3.0, "{metrics}");
    assert!(series(&metrics, "usher_app_resident_memory_bytes") > 0.0);
    series(&metrics, "usher_app_cpu_seconds_total");
    eprintln!(
        "Docker's OOMKilled while running: {}",
        docker_oom_killed(&container)
    );

    docker_ok(&["stop", &container]);
    assert_eq!(exit_code(&container), 0);
    eprintln!(
        "Docker's OOMKilled after exit 0: {}",
        docker_oom_killed(&container)
    );
}

/// A worker the app reaps itself (a pre-forking server's): usher never sees it end, but its
/// poll of the counter does: one `oom_kill` event with the victim unknown, counted.
#[test]
fn an_oom_kill_usher_cannot_attribute_is_counted_with_the_victim_unknown() {
    if !engine_answers("an_oom_kill_usher_cannot_attribute_is_counted_with_the_victim_unknown") {
        return;
    }
    let mut image = hog_image("oom-unknown");
    let mut options = OOM_LIMIT.to_vec();
    options.extend(["-p", "127.0.0.1::8558"]);
    let container = image.run(&options, &["/fixtures/hog", "worker", "child"]);
    let (_logs, lines) = follow_logs(&container);
    let found = wait_for_lines(
        &lines,
        &["worker ended: signal: 9", r#""event":"oom_kill""#],
    );
    let event: serde_json::Value = serde_json::from_str(&found[1]).unwrap();
    assert_eq!(event["count"], 1, "{event}");
    assert!(event.get("pid").is_none(), "{event}");
    assert!(
        event["msg"].as_str().unwrap().contains("victim unknown"),
        "{event}"
    );
    let (_, metrics) = http_get(&container, "/metrics");
    assert_eq!(series(&metrics, "usher_oom_kills_total"), 1.0);
    assert_eq!(series(&metrics, "usher_zombies_reaped_total"), 0.0);
    docker_ok(&["stop", &container]);
    assert_eq!(exit_code(&container), 0);
}

/// The main child OOM-killed: the `oom_kill` event names it, its `child_exited` event says
/// `oom_killed`, and Kubernetes' termination message (a file bind-mounted on
/// /dev/termination-log, as the kubelet does) says why the container ended.
#[test]
fn an_oom_killed_main_child_is_said_so_in_its_exit_and_the_termination_log() {
    if !engine_answers("an_oom_killed_main_child_is_said_so_in_its_exit_and_the_termination_log") {
        return;
    }
    let mut image = hog_image("oom-main");
    // Written by the image's user, as the kubelet's file is (mode 0666).
    let log = image.context.file("termination-log", b"", 0o666);
    let mut options = OOM_LIMIT.to_vec();
    let mount = format!("{log}:/dev/termination-log");
    options.extend(["-v", &mount]);
    let container = image.run(&options, &["/fixtures/hog"]);
    assert_eq!(docker_ok(&["wait", &container]), "137");
    let records = json_logs(&container);
    let event = |name: &str| {
        records
            .iter()
            .find(|r| r["event"] == name)
            .unwrap_or_else(|| panic!("no {name} event in {records:#?}"))
    };
    let main = &event("child_started")["pid"];
    let oom = event("oom_kill");
    assert_eq!((&oom["pid"], &oom["name"]), (main, &"hog".into()), "{oom}");
    let exited = event("child_exited");
    assert_eq!(exited["oom_killed"], true, "{exited}");
    assert_eq!(exited["status"], 137, "{exited}");
    assert!(
        exited["msg"]
            .as_str()
            .unwrap()
            .contains("killed by the OOM killer"),
        "{exited}"
    );
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "the app was killed by SIGKILL\nit was killed by the OOM killer: out of memory\n\
         usher exit status 137\n"
    );
    eprintln!("Docker's OOMKilled: {}", docker_oom_killed(&container));
}

/// Kubernetes' termination message for the other ends: a command that cannot start, and an
/// app that ignores SIGTERM until usher's grace period runs out.
#[test]
fn the_termination_log_says_why_the_container_ended() {
    if !engine_answers("the_termination_log_says_why_the_container_ended") {
        return;
    }
    let mut image = Image::build("termination");
    let missing = image.context.file("missing-log", b"", 0o666);
    let mount = format!("{missing}:/dev/termination-log");
    let container = image.run(&["-v", &mount], &["/no/such/app"]);
    assert_eq!(docker_ok(&["wait", &container]), "127");
    let message = std::fs::read_to_string(&missing).unwrap();
    assert!(
        message.starts_with("usher could not start the app: ")
            && message.contains("/no/such/app")
            && message.ends_with("\nusher exit status 127\n"),
        "{message:?}"
    );

    let stubborn = image.context.file("stubborn-log", b"", 0o666);
    let mount = format!("{stubborn}:/dev/termination-log");
    let container = image.run(
        &["-v", &mount, "-e", "USHER_GRACE=1s"],
        &["/fixtures/print_signals"],
    );
    let (_logs, lines) = follow_logs(&container);
    wait_for_line(&lines, "ready pid=");
    docker_ok(&["stop", "-t", "30", &container]);
    assert_eq!(exit_code(&container), 137);
    assert_eq!(
        std::fs::read_to_string(&stubborn).unwrap(),
        "the app was killed by SIGKILL\nusher sent SIGKILL after the 1s grace period\n\
         usher exit status 137\n"
    );
}

/// `--on-unhealthy stop` under `docker run --restart on-failure`: the app's handler hangs
/// (live_app's SIGUSR1, forwarded by usher), one failed check stops it gracefully, usher exits
/// 70, and Docker starts the container again.
#[test]
fn on_unhealthy_stop_is_restarted_by_docker_on_failure() {
    if !engine_answers("on_unhealthy_stop_is_restarted_by_docker_on_failure") {
        return;
    }
    let live_app = fixture("live_app");
    let mut image = Image::build_with(
        "unhealthy-restart",
        &[(Path::new(&live_app), "/fixtures/live_app")],
    );
    let container = image.run(
        &[
            "--restart",
            "on-failure:3",
            "-e",
            "USHER_LIVE_WHEN=http://127.0.0.1:9000/healthz",
            "-e",
            "USHER_LIVE_THRESHOLD=1",
            "-e",
            "USHER_ON_UNHEALTHY=stop",
        ],
        &["/fixtures/live_app", "http", "9000"],
    );
    let (_logs, lines) = follow_logs(&container);
    wait_for_event(&lines, "child_live");
    docker_ok(&["kill", "-s", "USR1", &container]);
    wait_until("Docker to restart the container", || {
        docker_ok(&["inspect", "-f", "{{.RestartCount}}", &container]) != "0"
    });
    // The restarted run's own start, so that its lines follow the first run's in the logs.
    let started = |records: &[serde_json::Value]| {
        records
            .iter()
            .filter(|r| r["event"] == "child_started")
            .count()
    };
    wait_until("the restarted app to start", || {
        started(&json_logs(&container)) >= 2
    });

    let records = json_logs(&container);
    let position = |name: &str| {
        records
            .iter()
            .position(|r| r["event"] == name)
            .unwrap_or_else(|| panic!("no {name} event in {records:#?}"))
    };
    let stop = position("unhealthy_stop");
    assert_eq!(records[stop]["signal"], "SIGTERM", "{}", records[stop]);
    let exiting = position("usher_exiting");
    assert_eq!(records[exiting]["status"], 70, "{}", records[exiting]);
    let restarted = records
        .iter()
        .enumerate()
        .filter(|(_, r)| r["event"] == "child_started")
        .nth(1)
        .map(|(n, _)| n)
        .unwrap();
    assert!(stop < exiting && exiting < restarted, "{records:#?}");
}
