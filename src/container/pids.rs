//! Tasks and their limit: `pids.current` and `pids.max`, the same files on v1 and v2
//! (cgroup-v1/pids.rst, cgroup-v2.rst "PID Interface Files"). They count threads, not only
//! processes: a task is a thread.

use crate::container::cgroup::Dir;
use crate::container::{Limit, Readings, found, parse_limit_raw, parse_number, read_value};

/// Fills the pids fields of `readings` from the pids cgroup `dir`.
pub fn read(dir: Option<&Dir>, readings: &mut Readings) {
    let dir = match found(dir, "pids") {
        Ok(dir) => dir,
        Err(error) => {
            readings.note("pids", error);
            return;
        }
    };
    let current = read_value(&dir.path, "pids.current", "a number of tasks", parse_number);
    readings.pids = readings.keep("pids.current", current);
    let max = read_value(
        &dir.path,
        "pids.max",
        "a number of tasks or max",
        parse_limit_raw,
    );
    readings.pids_limit = readings.keep("pids.max", max).map(Limit::from_raw);
}
