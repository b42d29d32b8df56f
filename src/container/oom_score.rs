//! Who the OOM killer takes first, usher or the app (proc(5) `oom_score_adj`; the kernel's
//! `oom_badness`). In a cgroup at its memory limit it kills the process with the most
//! resident memory, swap and page tables, plus `oom_score_adj` thousandths of the memory the
//! cgroup may use (the whole machine's without a limit). usher, PID 1, is small, but an app
//! whose memory is not resident in any of its processes (files in a tmpfs or `/dev/shm`, a
//! memfd) or is spread over many small processes can leave usher the largest, and usher's
//! death ends the container without a word on why. So the app starts with usher's
//! `oom_score_adj` plus the smallest margin that outweighs twice usher's size under the limit:
//! 1 where memory is plentiful, more under a limit near usher's own size. A process may always
//! raise its own value (the app raises its own before its exec); lowering one needs
//! `CAP_SYS_RESOURCE`, so usher lowers its own only where the cap of 1000 leaves the app too
//! little above it (Kubernetes' BestEffort pods run everything at 1000), and says so when it
//! cannot.

use crate::container::process_tree;
use crate::log_io::events::{info, warn};

/// The range of `oom_score_adj`: -1000 exempts a process from the OOM killer, 1000 makes it
/// the first to go.
const MIN: i32 = -1000;
const MAX: i32 = 1000;

/// Where usher reads and sets its own value.
const OWN: &str = "/proc/self/oom_score_adj";

/// The margin, in thousandths of `total` (bytes the cgroup may use, or the machine's memory),
/// that outweighs twice usher's `size` (bytes): from 1 to 1000.
pub fn margin(size: u64, total: u64) -> i32 {
    let thousandths = size.saturating_mul(2000).div_ceil(total.max(1));
    i32::try_from(thousandths.clamp(1, 1000)).unwrap_or(MAX)
}

/// What to set: the app's value, and usher's own when it must be lowered.
#[derive(Debug, PartialEq, Eq)]
pub struct Plan {
    pub app: i32,
    pub usher: Option<i32>,
}

/// From usher's value `own` and the `margin`: the app gets `own + margin`, at most 1000; where
/// that cap leaves it less than the margin above usher, usher's own is to be lowered to the
/// app's minus the margin. A usher at -1000, which the OOM killer never takes, changes nothing.
pub fn plan(own: i32, margin: i32) -> Plan {
    if own <= MIN {
        return Plan {
            app: own,
            usher: None,
        };
    }
    let app = own.saturating_add(margin).min(MAX);
    let usher = (app - own < margin).then(|| (app - margin).max(MIN));
    Plan { app, usher }
}

/// Plans with usher's value, its resident size and `limit` (the memory cgroup's limit in
/// bytes, or None for none: then the machine's memory), lowers usher's own value when planned,
/// and says what it arranged, or why it could not. Returns the app's value, which the app sets
/// itself before its exec; None to leave it usher's.
pub fn arrange(limit: Option<u64>) -> Option<i32> {
    let own = read_value(OWN);
    let size = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| process_tree::parse_vm_rss(&status));
    let total = limit.or_else(memory_total);
    let (Some(own), Some(size), Some(total)) = (own, size, total) else {
        failed("usher cannot read its oom_score_adj, size or memory in /proc");
        return None;
    };
    let margin = margin(size, total);
    let plan = plan(own, margin);
    let mut usher = own;
    if let Some(lower) = plan.usher {
        if std::fs::write(OWN, lower.to_string()).is_ok() {
            usher = lower;
        } else {
            failed(&format!(
                "usher's oom_score_adj is {own}, the app's can be {} at most, less than the \
                 {margin} above usher's that the memory limit needs, and usher cannot lower its \
                 own (that needs CAP_SYS_RESOURCE)",
                plan.app
            ));
        }
    }
    if plan.app == usher {
        return None; // -1000: nothing is ever killed; or usher said why not
    }
    info!(
        oom_score_adj,
        usher,
        app = plan.app,
        "the app runs with oom_score_adj {} and usher with {usher}, so that the OOM killer \
         takes the app first",
        plan.app
    );
    Some(plan.app)
}

/// Says so when the app `pid` did not get the value `planned` (it could not write its own,
/// e.g. a read-only /proc); a higher one is the app's own doing.
pub fn check(pid: i32, planned: i32) {
    let found = read_value(&format!("/proc/{pid}/oom_score_adj"));
    if let Some(found) = found.filter(|&found| found < planned) {
        failed(&format!(
            "the app's oom_score_adj is {found}, not {planned}: it could not set its own"
        ));
    }
}

/// The one warning: why the app may not be the OOM killer's first choice.
fn failed(why: &str) {
    warn!(
        oom_score_adj_failed,
        "{why}: the OOM killer may take usher before the app"
    );
}

fn read_value(path: &str) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The machine's memory in bytes, /proc/meminfo's `MemTotal:  24683656 kB`.
fn memory_total() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find_map(|l| l.strip_prefix("MemTotal:"))?;
    let kib: u64 = line.trim().strip_suffix("kB")?.trim_end().parse().ok()?;
    kib.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn the_margin_outweighs_twice_usher_under_the_limit() {
        // (usher's size, the limit) -> margin, in thousandths of the limit
        let cases = [
            ((2 * MIB, 24 << 30), 1), // plentiful memory: the least raise
            ((2 * MIB, 1 << 30), 4),  // 4 MiB is 3.9 thousandths of 1 GiB, rounded up
            ((2 * MIB, 64 * MIB), 63),
            ((4 * MIB, 16 * MIB), 500),
            ((8 * MIB, 16 * MIB), 1000), // a limit under twice usher's size: all there is
            ((64 * MIB, 16 * MIB), 1000),
            ((0, 16 * MIB), 1),
            ((2 * MIB, 0), 1000), // no memory at all: never a division by zero
        ];
        for ((size, total), expected) in cases {
            let margin = margin(size, total);
            assert_eq!(margin, expected, "{size} {total}");
            // The margin's share of the limit outweighs twice usher's size (until the cap).
            if expected < 1000 {
                assert!(u64::try_from(margin).unwrap() * total / 1000 + 1 >= 2 * size);
            }
        }
    }

    #[test]
    fn the_app_gets_usher_s_value_plus_the_margin() {
        // (usher's value, margin) -> (app's value, usher's lowered value)
        let cases = [
            ((0, 1), (1, None)),            // Docker's default, no memory limit
            ((0, 317), (317, None)),        // a limit near usher's size
            ((-997, 63), (-934, None)),     // Kubernetes' Guaranteed: stays far below Burstable
            ((900, 63), (963, None)),       // Burstable
            ((990, 63), (1000, Some(937))), // capped: usher must go down to keep the margin
            ((1000, 1), (1000, Some(999))), // BestEffort
            ((1000, 1000), (1000, Some(0))),
            ((-1000, 63), (-1000, None)), // exempt from the OOM killer: nothing to arrange
            ((-999, 1000), (1, None)),
        ];
        for ((own, margin), (app, usher)) in cases {
            assert_eq!(plan(own, margin), Plan { app, usher }, "{own} {margin}");
        }
    }

    #[test]
    fn reads_the_machine_s_memory() {
        assert!(memory_total().unwrap() > 16 * MIB);
    }
}
