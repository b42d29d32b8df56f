//! `--ready-when`: what makes the child ready, and the thread that watches a polled source.
//!
//! `started` is ready as soon as the child runs. `tcp:`, `http:` and `file:` are polled: often
//! until the app is ready (from 20 ms, doubling up to 1 s), then every 2 s, so that /ready
//! follows the app; once ready, two failed checks in a row (not one slow answer) make it
//! unready (`pacing`). `notify` is the sd_notify protocol, read by the `notify` listener:
//! `READY=1` makes the child ready, `STOPPING=1` and `RELOADING=1` unready, `STATUS=` is shown
//! in /ready's body.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use crate::config::ReadySource as Source;
use crate::health::pacing::{Pacing, Rules};
use crate::health::{CheckRecord, Health, ready_kind};
use crate::http_check::{self, Target};
use crate::log_io::events::info;

/// Readiness' pace: every 2 s once ready; after a failed check of a ready app, the next one
/// comes 100 ms later, and two failures in a row make it unready.
const RULES: Rules = Rules {
    threshold: 2,
    steady: Duration::from_secs(2),
    recheck: Duration::from_millis(100),
};
/// One check may take this long at most (a connect, an HTTP answer).
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// One check of a polled source: Ok when ready, else why not.
fn check(source: &Source) -> Result<(), String> {
    match source {
        Source::Started | Source::Notify => Ok(()),
        Source::Tcp(addr) => http_check::check(&Target::Tcp { addr: *addr }, CHECK_TIMEOUT)
            .map_err(|e| e.to_string()),
        Source::Http(target) => http_check::check(target, CHECK_TIMEOUT).map_err(|e| e.to_string()),
        Source::File(path) => match std::fs::metadata(path) {
            Ok(_) => Ok(()),
            Err(e) => Err(format!("{}: {e}", path.display())),
        },
    }
}

/// Starts polling a `tcp:`, `http:` or `file:` source in a thread of its own (its checks
/// block); `started` needs none, and `notify` is the notify listener's.
pub fn start(source: Source, health: Arc<Health>) -> io::Result<()> {
    if matches!(source, Source::Started | Source::Notify) {
        return Ok(());
    }
    std::thread::Builder::new()
        .name("usher-ready".into())
        .spawn(move || poll(&source, &health))?;
    Ok(())
}

fn poll(source: &Source, health: &Health) {
    let mut pacing = Pacing::new(RULES);
    loop {
        let result = check(source);
        let (change, pause) = pacing.record(result.is_ok());
        let why = result.err().unwrap_or_default();
        let outcome = if why.is_empty() { "ok" } else { why.as_str() };
        health.set_ready_check(CheckRecord::new(pacing.state(), outcome, pacing.failures()));
        health.set_detail(why);
        if let Some(ready) = change
            && health.set_ready(ready)
        {
            announce(source, ready, health);
        }
        std::thread::sleep(pause);
    }
}

/// Says so when readiness changes while the child runs (not the noise of a stop).
pub fn announce(source: &Source, ready: bool, health: &Health) {
    if !health.running() {
        return;
    }
    let name = ready_kind(source);
    if ready {
        info!(child_ready, source = name, "child is ready ({name})");
    } else {
        info!(
            child_not_ready,
            source = name,
            "child is not ready any more ({name})"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_forgives_one_failure_and_rechecks_soon() {
        let mut pacing = Pacing::new(RULES);
        assert_eq!(pacing.record(true), (Some(true), Duration::from_secs(2)));
        assert_eq!(pacing.record(false), (None, Duration::from_millis(100)));
        assert_eq!(pacing.record(false).0, Some(false));
    }

    #[test]
    fn a_file_source_says_why_it_is_not_ready() {
        let why = check(&Source::File("/no/such/usher-file".into())).unwrap_err();
        assert!(why.starts_with("/no/such/usher-file: "), "{why}");
        assert_eq!(check(&Source::File("/".into())), Ok(()));
    }
}
