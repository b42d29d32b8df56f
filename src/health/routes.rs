//! The routes, as a pure function of the request line and the shared state.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use serde_json::{Map, Value, json};

use super::{CheckRecord, Health};
use crate::logs::time::rfc3339_micros;
use crate::supervise::signals::Signo;

#[derive(Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    /// For 405: the methods the path accepts.
    pub allow: Option<&'static str>,
}

fn json(status: u16, body: String) -> Response {
    Response {
        status,
        content_type: "application/json",
        body,
        allow: None,
    }
}

/// Answers one request. Bodies are small JSON objects that never contain argv, environment or
/// file contents. HEAD is answered as GET: hyper sends its status and headers, and no body.
pub fn route(method: &str, path: &str, health: &Health) -> Response {
    let path = path.split('?').next().unwrap_or_default();
    let probe = matches!(
        path,
        "/health" | "/healthz" | "/livez" | "/ready" | "/readyz"
    );
    if !probe && path != "/metrics" {
        return json(404, r#"{"status":"not found"}"#.to_string());
    }
    if method != "GET" && method != "HEAD" {
        let mut response = json(405, r#"{"status":"method not allowed"}"#.to_string());
        response.allow = Some("GET, HEAD");
        return response;
    }
    match path {
        "/metrics" => Response {
            status: 200,
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            body: metrics(health),
            allow: None,
        },
        "/ready" | "/readyz" => state(health, health.is_ready()),
        _ => state(health, health.is_live()),
    }
}

/// Whether the answer to this request takes the container's and the app's figures
/// ([`super::resources`]), which the server appends to the metrics body: `GET` or `HEAD`
/// `/metrics` (HEAD as GET, its Content-Length included).
pub fn wants_resources(method: &str, path: &str) -> bool {
    matches!(method, "GET" | "HEAD") && path.split('?').next() == Some("/metrics")
}

fn state(health: &Health, ok: bool) -> Response {
    let pid = health.child_pid.load(Ordering::Relaxed);
    let exit = health.last_exit.load(Ordering::Relaxed);
    let uptime = health.started.elapsed().as_secs();
    let stopping = health.stopping.load(Ordering::Relaxed);
    let status = if ok { "ok" } else { "unavailable" };
    let last_exit = if exit < 0 {
        "null".to_string()
    } else {
        exit.to_string()
    };
    let ready = health.is_ready();
    let mut body = format!(
        r#"{{"status":"{status}","child_pid":{pid},"child_alive":{},"ready":{ready},"stopping":{stopping},"uptime_seconds":{uptime},"restarts":0,"last_exit":{last_exit}"#,
        health.alive()
    );
    // A notify STATUS= or why the last readiness check failed: the child's words, escaped.
    let detail = health.detail();
    if !detail.is_empty()
        && let Ok(detail) = serde_json::to_string(&detail)
    {
        let _ = write!(body, r#","detail":{detail}"#);
    }
    oom_fields(health, &mut body);
    if let Ok(checks) = serde_json::to_string(&checks(health)) {
        let _ = write!(body, r#","checks":{checks}"#);
    }
    body.push('}');
    json(if ok { 200 } else { 503 }, body)
}

/// The bodies' `checks` object: each check by name, with its kind (`--live-when`,
/// `--ready-when`), state, last result and its time (RFC 3339, null before the first), the
/// failures in a row, and for a `tcp:`/`http:` liveness check the threshold.
fn checks(health: &Health) -> Map<String, Value> {
    let mut checks = Map::new();
    let mut live = check(health.live_kind, &health.live_check());
    if let Some(threshold) = health.live_threshold {
        live.insert("threshold".to_string(), json!(threshold));
    }
    checks.insert("live".to_string(), Value::Object(live));
    let ready = check(health.ready_kind, &health.ready_check());
    checks.insert("ready".to_string(), Value::Object(ready));
    // As the seed's health endpoint has it, beside the top-level copy (when the counter is read).
    if let Some(kills) = health.oom_kills() {
        checks.insert("oom_kills".to_string(), json!(kills));
    }
    checks
}

fn check(kind: &str, record: &CheckRecord) -> Map<String, Value> {
    let time = record
        .time
        .map(|time| String::from_utf8_lossy(&rfc3339_micros(time)).into_owned());
    let mut check = Map::new();
    check.insert("kind".to_string(), json!(kind));
    check.insert("state".to_string(), json!(record.state.name()));
    check.insert("result".to_string(), json!(record.result));
    check.insert("time".to_string(), json!(time));
    check.insert("failures".to_string(), json!(record.failures));
    check
}

/// `"oom_kills"`: OOM kills in the container since usher started; `"last_exit_oom_killed"`:
/// whether the main child's end (`last_exit`) was one. Both left out when the OOM kill
/// counter cannot be read.
fn oom_fields(health: &Health, body: &mut String) {
    if let Some(kills) = health.oom_kills() {
        let oom_killed = health.last_exit_oom_killed.load(Ordering::Relaxed);
        let _ = write!(
            body,
            r#","oom_kills":{kills},"last_exit_oom_killed":{oom_killed}"#
        );
    }
}

fn metrics(health: &Health) -> String {
    let mut out = String::with_capacity(2048);
    let mut gauge = |name: &str, kind: &str, help: &str, value: String| {
        let _ = write!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        );
    };
    let flag = |b: bool| if b { "1".to_string() } else { "0".to_string() };
    gauge(
        "usher_child_up",
        "gauge",
        "Whether the main child is running.",
        flag(health.alive()),
    );
    gauge(
        "usher_ready",
        "gauge",
        "Whether /ready answers 200.",
        flag(health.is_ready()),
    );
    let starts = health.starts.load(Ordering::Relaxed).to_string();
    gauge(
        "usher_child_starts_total",
        "counter",
        "Times the main child was started.",
        starts,
    );
    let exit = health.last_exit.load(Ordering::Relaxed).to_string();
    gauge(
        "usher_child_last_exit_code",
        "gauge",
        "The main child's last exit status (-1: none yet).",
        exit,
    );
    let reaped = health.reaped.load(Ordering::Relaxed).to_string();
    gauge(
        "usher_zombies_reaped_total",
        "counter",
        "Processes other than the main child reaped.",
        reaped,
    );
    if let Some(kills) = health.oom_kills() {
        gauge(
            "usher_oom_kills_total",
            "counter",
            "Processes the OOM killer killed in the container since usher started.",
            kills.to_string(),
        );
    }
    // Integer arithmetic: float formatting would cost the binary kilobytes for three digits.
    let uptime = health.started.elapsed();
    let uptime = format!("{}.{:03}", uptime.as_secs(), uptime.subsec_millis());
    gauge(
        "usher_uptime_seconds",
        "gauge",
        "Seconds since usher started.",
        uptime,
    );
    let name = "usher_signals_forwarded_total";
    let _ = write!(
        out,
        "# HELP {name} Signals forwarded to the child, by signal.\n# TYPE {name} counter\n"
    );
    for (signo, counter) in health.forwarded.iter().enumerate() {
        let count = counter.load(Ordering::Relaxed);
        let signal = i32::try_from(signo).ok().and_then(Signo::new);
        if let (true, Some(signal)) = (count > 0, signal) {
            let _ = writeln!(out, "{name}{{signal=\"{signal}\"}} {count}");
        }
    }
    let by_stream = [
        (
            "usher_log_records_total",
            "Log records written for the child's output, by stream.",
            &health.log_records,
        ),
        (
            "usher_log_bytes_total",
            "Bytes read from the child's output, by stream.",
            &health.log_bytes,
        ),
        (
            "usher_log_partial_records_total",
            "Records that are pieces of a line longer than --log-max-record, by stream.",
            &health.log_partial_records,
        ),
    ];
    for (name, help, counters) in by_stream {
        let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} counter\n");
        for (stream, counter) in ["stdout", "stderr"].iter().zip(counters) {
            let count = counter.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}{{stream=\"{stream}\"}} {count}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{LiveCheck, ReadySource};
    use crate::health::CheckState;

    #[test]
    fn health_and_ready_follow_the_child_and_the_stop() {
        let health = Health::default();
        assert_eq!(route("GET", "/health", &health).status, 503);
        health.child_started(42);
        for path in [
            "/health",
            "/healthz",
            "/livez",
            "/ready",
            "/readyz",
            "/ready?verbose=1",
        ] {
            let response = route("GET", path, &health);
            assert_eq!(response.status, 200, "{path}");
            assert!(
                response.body.contains(r#""child_pid":42"#),
                "{}",
                response.body
            );
        }
        health.stop_begun();
        assert_eq!(route("GET", "/ready", &health).status, 503);
        assert_eq!(route("GET", "/health", &health).status, 200);
        health.child_exited(3);
        let response = route("GET", "/health", &health);
        assert_eq!(response.status, 503);
        assert!(
            response.body.contains(r#""last_exit":3"#),
            "{}",
            response.body
        );
    }

    /// `--wait-all`: the processes the main child left are the app, alive and ready as their
    /// source says, while the main child's status is already reported.
    #[test]
    fn an_outlived_main_child_keeps_health_up() {
        let health = Health::default();
        health.child_started(7);
        health.child_outlived(0);
        for path in ["/health", "/ready"] {
            let response = route("GET", path, &health);
            assert_eq!(response.status, 200, "{path}");
            assert!(
                response.body.contains(r#""last_exit":0"#),
                "{}",
                response.body
            );
        }
        health.child_exited(0);
        assert_eq!(route("GET", "/health", &health).status, 503);
    }

    #[test]
    fn a_readiness_source_decides_ready_and_its_words_are_escaped() {
        let health = Health::new(&ReadySource::Notify, &LiveCheck::Running, 3);
        health.child_started(9);
        assert_eq!(route("GET", "/ready", &health).status, 503);
        assert_eq!(route("GET", "/health", &health).status, 200);
        assert!(health.set_ready(true));
        assert!(!health.set_ready(true), "no change");
        health.set_detail("say \"hi\"\n".to_string());
        let response = route("GET", "/ready", &health);
        assert_eq!(response.status, 200);
        let body: serde_json::Value = serde_json::from_str(&response.body).unwrap();
        assert_eq!(body["detail"], "say \"hi\"\n");
        assert_eq!(body["ready"], true);
        health.stop_begun();
        assert_eq!(route("GET", "/ready", &health).status, 503);
        assert!(!health.running());
    }

    fn answer(path: &str, health: &Health) -> (u16, serde_json::Value) {
        let response = route("GET", path, health);
        let body = serde_json::from_str(&response.body).unwrap();
        (response.status, body)
    }

    #[test]
    fn a_failed_liveness_check_turns_health_503_and_says_why() {
        let target = crate::http_check::parse_target("http://127.0.0.1:8080/healthz").unwrap();
        let health = Health::new(&ReadySource::Started, &LiveCheck::Http(target), 3);
        health.child_started(5);
        let (status, body) = answer("/health", &health);
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["checks"]["live"]["state"], "starting");
        assert_eq!(body["checks"]["live"]["kind"], "http");
        assert_eq!(body["checks"]["live"]["threshold"], 3);
        assert_eq!(body["checks"]["live"]["time"], serde_json::Value::Null);
        assert_eq!(body["checks"]["ready"]["state"], "ok");
        assert_eq!(body["checks"]["ready"]["result"], "started");
        health.set_live_check(CheckRecord::new(CheckState::Ok, "ok", 0));
        health.set_live_check(CheckRecord::new(CheckState::Failing, "a: status 500", 2));
        assert_eq!(answer("/health", &health).0, 200);
        let why = "127.0.0.1:8080: no answer within 1s";
        health.set_live_check(CheckRecord::new(CheckState::Failed, why, 3));
        let (status, body) = answer("/health", &health);
        assert_eq!(status, 503);
        assert_eq!(body["status"], "unavailable");
        let live = &body["checks"]["live"];
        assert_eq!(
            (&live["state"], &live["result"]),
            (&"failed".into(), &why.into())
        );
        assert_eq!(live["failures"], 3);
        let time = live["time"].as_str().unwrap();
        assert!(time.len() == 27 && time.ends_with('Z'), "{time}");
        // Liveness is not readiness: /ready still answers from its own source.
        assert_eq!(route("GET", "/ready", &health).status, 200);
        health.set_live_check(CheckRecord::new(CheckState::Ok, "ok", 0));
        assert_eq!(route("GET", "/health", &health).status, 200);
    }

    /// Today's keys stay; `checks` comes beside them, and a `running` check follows the child.
    #[test]
    fn bodies_keep_their_keys_and_add_checks() {
        let health = Health::default();
        health.child_started(7);
        for path in ["/health", "/ready"] {
            let (_, body) = answer(path, &health);
            for key in [
                "status",
                "child_pid",
                "child_alive",
                "ready",
                "stopping",
                "uptime_seconds",
                "restarts",
                "last_exit",
            ] {
                assert!(body.get(key).is_some(), "{key} missing from {body}");
            }
            assert_eq!(body["checks"]["live"]["kind"], "running");
            assert_eq!(body["checks"]["live"]["state"], "ok");
            assert!(body["checks"]["live"].get("threshold").is_none());
        }
        health.child_exited(4);
        let (status, body) = answer("/health", &health);
        assert_eq!(status, 503);
        assert_eq!(body["checks"]["live"]["state"], "failed");
        assert_eq!(body["checks"]["live"]["result"], "exited with status 4");
        assert_eq!(body["checks"]["ready"]["result"], "exited with status 4");
    }

    #[test]
    fn methods_paths_and_head() {
        let health = Health::default();
        health.child_started(7);
        assert_eq!(route("GET", "/nope", &health).status, 404);
        let post = route("POST", "/health", &health);
        assert_eq!((post.status, post.allow), (405, Some("GET, HEAD")));
        assert_eq!(route("HEAD", "/metrics", &health).status, 200);
        assert_eq!(
            route("HEAD", "/health", &health),
            route("GET", "/health", &health)
        );
        let put = route("PUT", "/metrics", &health);
        assert_eq!((put.status, put.allow), (405, Some("GET, HEAD")));
    }

    #[test]
    fn metrics_text() {
        let health = Health::default();
        health.child_started(7);
        health.forwarded(libc::SIGTERM);
        health.forwarded(libc::SIGTERM);
        health.reaped(3);
        health.logged(crate::logs::Stream::Stderr, 100, 3, 1);
        let body = route("GET", "/metrics", &health).body;
        for expected in [
            "# TYPE usher_child_up gauge\nusher_child_up 1\n",
            "usher_child_starts_total 1\n",
            "usher_zombies_reaped_total 3\n",
            "usher_signals_forwarded_total{signal=\"SIGTERM\"} 2\n",
            "usher_log_records_total{stream=\"stdout\"} 0\nusher_log_records_total{stream=\"stderr\"} 3\n",
            "usher_log_bytes_total{stream=\"stderr\"} 100\n",
            "usher_log_partial_records_total{stream=\"stderr\"} 1\n",
        ] {
            assert!(
                body.contains(expected),
                "{expected:?} missing from:\n{body}"
            );
        }
    }

    /// The OOM kill count in the body and in /metrics, and whether the main child's end was
    /// one; none of it when the counter cannot be read.
    #[test]
    fn oom_kills_in_the_body_and_the_metrics() {
        let health = Health::default();
        health.child_started(7);
        let body = route("GET", "/health", &health).body;
        assert!(!body.contains("oom"), "{body}");
        assert!(!route("GET", "/metrics", &health).body.contains("oom"));
        health.watch_oom();
        let body: serde_json::Value =
            serde_json::from_str(&route("GET", "/health", &health).body).unwrap();
        assert_eq!(body["oom_kills"], 0);
        assert_eq!(body["last_exit_oom_killed"], false);
        health.oom_killed(1);
        health.oom_killed(2);
        health.child_oom_killed();
        health.child_exited(137);
        let response = route("GET", "/health", &health);
        assert_eq!(response.status, 503);
        let body: serde_json::Value = serde_json::from_str(&response.body).unwrap();
        assert_eq!(body["oom_kills"], 3);
        assert_eq!(body["last_exit"], 137);
        assert_eq!(body["last_exit_oom_killed"], true);
        let metrics = route("GET", "/metrics", &health).body;
        assert!(
            metrics.contains("# TYPE usher_oom_kills_total counter\nusher_oom_kills_total 3\n"),
            "{metrics}"
        );
    }

    #[test]
    fn only_a_get_or_head_of_metrics_wants_the_container_s_figures() {
        assert!(wants_resources("GET", "/metrics"));
        assert!(wants_resources("GET", "/metrics?x=1"));
        assert!(wants_resources("HEAD", "/metrics"));
        assert!(!wants_resources("POST", "/metrics"));
        assert!(!wants_resources("GET", "/health"));
    }
}
