//! How the outcomes of a polled check (`--ready-when` and `--live-when` `tcp:`/`http:`) become
//! a verdict, and when to check next: fast until the check first passes (from 20 ms, doubling
//! up to 1 s), then steady; once passing, `threshold` failures in a row (Kubernetes'
//! `failureThreshold`) make it fail, each failure followed by a recheck sooner than the steady
//! pace; a failed check is polled fast again, and one success is enough to pass (Kubernetes'
//! `successThreshold`, which must be 1 for liveness).

use std::time::Duration;

use super::CheckState;

/// The first pause between two checks of a check that does not pass; it doubles up to
/// `FAILING_MAX`.
const FIRST_INTERVAL: Duration = Duration::from_millis(20);
const FAILING_MAX: Duration = Duration::from_secs(1);

/// A check's pace once it passes, and its tolerance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rules {
    /// Failures in a row that turn a passing check into a failed one (at least 1).
    pub threshold: u32,
    /// The pause between two checks while it passes.
    pub steady: Duration,
    /// The pause after a failed check of a passing one.
    pub recheck: Duration,
}

#[derive(Debug)]
pub struct Pacing {
    rules: Rules,
    /// The verdict: the check passes.
    passing: bool,
    /// It passed at least once.
    passed_once: bool,
    /// Failed checks in a row.
    failures: u32,
    /// The pause after the next check while it does not pass.
    interval: Duration,
}

impl Pacing {
    pub fn new(rules: Rules) -> Pacing {
        Pacing {
            rules,
            passing: false,
            passed_once: false,
            failures: 0,
            interval: FIRST_INTERVAL,
        }
    }

    /// Takes one check's outcome; returns the verdict when it changes, and the pause before
    /// the next check.
    pub fn record(&mut self, ok: bool) -> (Option<bool>, Duration) {
        self.failures = if ok {
            0
        } else {
            self.failures.saturating_add(1)
        };
        let change = match (self.passing, ok) {
            (false, true) => {
                self.passing = true;
                self.passed_once = true;
                Some(true)
            }
            (true, false) if self.failures >= self.rules.threshold => {
                self.passing = false;
                self.interval = FIRST_INTERVAL;
                Some(false)
            }
            _ => None,
        };
        let pause = match (self.passing, self.failures) {
            (true, 0) => self.rules.steady,
            (true, _) => self.rules.recheck,
            (false, _) => {
                let pause = self.interval;
                self.interval = (self.interval * 2).min(FAILING_MAX);
                pause
            }
        };
        (change, pause)
    }

    /// The state the body shows: `starting` until the first pass, `failing` while failures
    /// are counted towards the threshold, `failed` past it.
    pub fn state(&self) -> CheckState {
        match (self.passing, self.passed_once, self.failures) {
            (true, _, 0) => CheckState::Ok,
            (true, _, _) => CheckState::Failing,
            (false, false, _) => CheckState::Starting,
            (false, true, _) => CheckState::Failed,
        }
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const READINESS: Rules = Rules {
        threshold: 2,
        steady: Duration::from_secs(2),
        recheck: Duration::from_millis(100),
    };

    #[test]
    fn fast_until_passing_then_steady_and_one_failure_is_forgiven() {
        let mut pacing = Pacing::new(READINESS);
        let ms = Duration::from_millis;
        let steady = READINESS.steady;
        let recheck = READINESS.recheck;
        // Not passing yet: 20 ms, doubling, up to a second.
        let pauses: Vec<_> = (0..8).map(|_| pacing.record(false)).collect();
        assert_eq!(pauses[0], (None, ms(20)));
        assert_eq!(pauses[1], (None, ms(40)));
        assert_eq!(pauses[7], (None, ms(1000)));
        assert_eq!(pacing.state(), CheckState::Starting);
        assert_eq!(pacing.record(true), (Some(true), steady));
        assert_eq!(pacing.record(true), (None, steady));
        assert_eq!(pacing.state(), CheckState::Ok);
        // One failure: still passing, checked again soon; a success clears it.
        assert_eq!(pacing.record(false), (None, recheck));
        assert_eq!(pacing.state(), CheckState::Failing);
        assert_eq!(pacing.record(true), (None, steady));
        // Two in a row: failed, and fast checks again.
        assert_eq!(pacing.record(false), (None, recheck));
        assert_eq!(pacing.record(false), (Some(false), ms(20)));
        assert_eq!(pacing.state(), CheckState::Failed);
        assert_eq!(pacing.failures(), 2);
        assert_eq!(pacing.record(false), (None, ms(40)));
        assert_eq!(pacing.failures(), 3);
        // One success passes again.
        assert_eq!(pacing.record(true), (Some(true), steady));
        assert_eq!(pacing.failures(), 0);
    }

    /// Kubernetes' failureThreshold: exactly `threshold` failures in a row, however many
    /// successes came before; a success in between starts the count again.
    #[test]
    fn the_threshold_counts_failures_in_a_row() {
        for threshold in [1, 3, 5] {
            let rules = Rules {
                threshold,
                steady: Duration::from_secs(2),
                recheck: Duration::from_secs(1),
            };
            let mut pacing = Pacing::new(rules);
            pacing.record(true);
            for _ in 1..threshold {
                assert_eq!(pacing.record(false), (None, rules.recheck), "{threshold}");
            }
            assert_eq!(pacing.record(true).0, None);
            for _ in 1..threshold {
                assert_eq!(pacing.record(false).0, None, "{threshold}");
            }
            assert_eq!(pacing.record(false).0, Some(false), "{threshold}");
        }
    }

    /// Failures before the first pass never fail the check: it is still starting.
    #[test]
    fn failures_before_the_first_pass_are_a_start() {
        let mut pacing = Pacing::new(Rules {
            threshold: 1,
            ..READINESS
        });
        for _ in 0..10 {
            assert_eq!(pacing.record(false).0, None);
        }
        assert_eq!(pacing.state(), CheckState::Starting);
        assert_eq!(pacing.failures(), 10);
    }
}
