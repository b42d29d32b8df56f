//! Zombie reaping as PID 1 and as a subreaper.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;
use support::*;

#[test]
fn three_thousand_double_forked_orphans_leave_no_zombie() {
    if !require_root("three_thousand_double_forked_orphans_leave_no_zombie") {
        return;
    }
    let mut usher = Usher::pid1(&["--", &fixture("orphans"), "zombies", "3000"]);
    let code = usher.wait();
    assert_eq!(code, 0, "{:?}", usher.stdout_seen);
    assert_eq!(usher.stdout_seen, ["made 3000 orphans", "no zombies left"]);
}

#[test]
fn not_pid1_becomes_a_subreaper_and_says_so_once() {
    let mut usher = Usher::plain(&["-v", "--", &fixture("orphans"), "reparent"]);
    let code = usher.wait();
    assert_eq!(code, 0, "{:?} {:?}", usher.stdout_seen, usher.stderr_seen);
    assert!(
        usher
            .stdout_seen
            .iter()
            .any(|l| l.ends_with("orphan reaped")),
        "{:?}",
        usher.stdout_seen
    );
    let said = usher
        .stderr_seen
        .iter()
        .filter(|l| l.contains("subreaper"))
        .count();
    assert_eq!(said, 1, "{:?}", usher.stderr_seen);
}

#[test]
fn pid1_does_not_claim_to_be_a_subreaper() {
    if !require_root("pid1_does_not_claim_to_be_a_subreaper") {
        return;
    }
    let mut usher = Usher::pid1(&["-v", "--", &fixture("exit_with"), "code", "0"]);
    assert_eq!(usher.wait(), 0);
    assert!(
        !usher.stderr_seen.iter().any(|l| l.contains("subreaper")),
        "{:?}",
        usher.stderr_seen
    );
}

/// The value of a series in /metrics text.
fn metric(metrics: &str, series: &str) -> Option<u64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.parse().ok())
}

/// Reaping is summarised, not logged a line per round: 3000 orphans reaped over many rounds
/// give a few `orphans_reaped` records (one at once, the rest held to the minute's end or to
/// exit) whose counts add up to 3000, and /metrics counts every one.
#[test]
fn reaping_is_summarised_in_the_log_and_counted_in_metrics() {
    if !require_root("reaping_is_summarised_in_the_log_and_counted_in_metrics") {
        return;
    }
    let script = format!(
        "{} zombies 3000 && exec {} --exit-on TERM",
        fixture("orphans"),
        fixture("print_signals")
    );
    let env = [
        ("USHER_HEALTH_ADDR", "127.0.0.1:0"),
        ("USHER_LOG_FORMAT", "json"),
    ];
    let mut usher = Usher::pid1_with_env(&env, &["--", "sh", "-c", &script]);
    let listening = usher.stderr_containing(r#""event":"health_listening""#);
    let listening: serde_json::Value = serde_json::from_str(&listening).unwrap();
    let addr = listening["addr"].as_str().unwrap();
    let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
    // The fixture's lines, as JSON records: every orphan is reaped before print_signals runs.
    while !usher.next_line().contains(r#""msg":"ready "#) {}
    assert!(
        usher
            .stdout_seen
            .iter()
            .any(|l| l.contains(r#""msg":"no zombies left""#)),
        "{:?}",
        usher.stdout_seen
    );
    // The counter is updated once the reaping round ends, a moment after the last waitpid.
    let mut metrics = String::new();
    wait_until("usher_zombies_reaped_total to reach 3000", || {
        metrics = http_get(port, "/metrics").1;
        metric(&metrics, "usher_zombies_reaped_total") == Some(3000)
    });
    usher.signal(libc::SIGTERM);
    assert_eq!(usher.wait(), 0, "{:?}", usher.stderr_seen);
    let summaries: Vec<u64> = usher
        .stderr_seen
        .iter()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|record| record["event"] == "orphans_reaped")
        .map(|record| record["count"].as_u64().unwrap())
        .collect();
    assert!(
        (1..=3).contains(&summaries.len()),
        "{} orphans_reaped records, the first: {:?}",
        summaries.len(),
        &summaries[..summaries.len().min(10)]
    );
    assert_eq!(summaries.iter().sum::<u64>(), 3000, "{summaries:?}");
    // After the last orphan: the summary of the held count comes before usher's last record.
    let last = usher.stderr_seen.last().unwrap();
    assert!(last.contains(r#""event":"usher_exiting""#), "{last}");
}
