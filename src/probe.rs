//! `usher probe [--timeout DURATION] [TARGET]`: the HEALTHCHECK client for images without curl.
//!
//! TARGET is `http://HOST:PORT/PATH` or `tcp://HOST:PORT`, HOST an IP literal or `localhost`
//! (a static binary has no resolver). Exit 0 on a 200-399 final answer (Kubernetes' rule; 1xx
//! interim answers are skipped) or an accepted connection, 1 otherwise with one line on stderr
//! saying why, 2 on a usage error (from `cli`). Everything, connecting included, happens within
//! the timeout; the check itself is `http_check`'s, shared with `--ready-when`. The probe runs
//! with usher's default signal handling: SIGTERM ends it at once.

use std::io::{self, Write};
use std::time::Duration;

use crate::http_check::{self, Target};

/// What to probe, from the command line.
#[derive(Debug, PartialEq, Eq)]
pub struct Probe {
    pub target: Target,
    pub timeout: Duration,
}

/// `usher probe`: exit status 0 when healthy, else 1 with one line on stderr saying why.
pub fn main(probe: &Probe) -> u8 {
    match http_check::check(&probe.target, probe.timeout) {
        Ok(()) => 0,
        Err(why) => {
            let _ = writeln!(io::stderr(), "usher probe: {why}");
            1
        }
    }
}
