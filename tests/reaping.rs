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
