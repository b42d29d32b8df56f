//! CPU usage and throttling: v2 `cpu.stat` (usage_usec, nr_periods, nr_throttled,
//! throttled_usec: cgroup-v2.rst "CPU Interface Files"; the usage keys exist without the cpu
//! controller, the others only with it); v1 `cpuacct.usage` in nanoseconds
//! (cgroup-v1/cpuacct.rst) and the cpu controller's `cpu.stat` (nr_periods, nr_throttled,
//! throttled_time in nanoseconds: scheduler/sched-bwc.rst "Statistics").

use std::time::Duration;

use crate::container::cgroup::{Dir, Version};
use crate::container::{
    ReadError, Readings, Throttling, found, malformed, parse_keyed, parse_number, read_text,
    read_value,
};

/// Fills the CPU fields of `readings`: usage from `cpuacct` (on v2 the same directory as
/// `cpu`), throttling from `cpu`.
pub fn read(cpu: Option<&Dir>, cpuacct: Option<&Dir>, readings: &mut Readings) {
    let (file, used) = match found(cpuacct, "cpuacct") {
        Ok(dir) => usage(dir),
        Err(error) => ("cpuacct.usage", Err(error)),
    };
    readings.cpu = readings.keep(file, used).map(Duration::from_nanos);
    let throttled = found(cpu, "cpu").and_then(throttling);
    readings.throttling = readings.keep("cpu.stat", throttled);
}

/// The CPU time the cgroup's tasks used, in nanoseconds, and the file it came from.
fn usage(dir: &Dir) -> (&'static str, Result<u64, ReadError>) {
    match dir.version {
        Version::V2 => {
            let used = read_value(&dir.path, "cpu.stat", "a usage_usec line", |text| {
                parse_keyed(text, "usage_usec")?.checked_mul(1000)
            });
            ("cpu.stat", used)
        }
        Version::V1 => {
            let file = "cpuacct.usage";
            (
                file,
                read_value(&dir.path, file, "a number of nanoseconds", parse_number),
            )
        }
    }
}

fn throttling(dir: &Dir) -> Result<Throttling, ReadError> {
    let text = read_text(&dir.path, "cpu.stat")?;
    parse_throttling(&text, dir.version).ok_or_else(|| {
        let what = match dir.version {
            Version::V2 => "nr_periods, nr_throttled and throttled_usec",
            Version::V1 => "nr_periods, nr_throttled and throttled_time",
        };
        malformed(&dir.path, "cpu.stat", what)
    })
}

/// Throttling from a `cpu.stat` text; `None` unless all three keys are there.
pub fn parse_throttling(text: &str, version: Version) -> Option<Throttling> {
    let throttled = match version {
        Version::V2 => Duration::from_micros(parse_keyed(text, "throttled_usec")?),
        Version::V1 => Duration::from_nanos(parse_keyed(text, "throttled_time")?),
    };
    Some(Throttling {
        periods: parse_keyed(text, "nr_periods")?,
        throttled_periods: parse_keyed(text, "nr_throttled")?,
        throttled,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_in_each_version_and_its_units() {
        let v2 = "usage_usec 10\nuser_usec 6\nsystem_usec 4\nnr_periods 5\nnr_throttled 2\n\
                  throttled_usec 1500\nnr_bursts 0\nburst_usec 0\n";
        assert_eq!(
            parse_throttling(v2, Version::V2),
            Some(Throttling {
                periods: 5,
                throttled_periods: 2,
                throttled: Duration::from_micros(1500),
            })
        );
        let v1 = "nr_periods 5\nnr_throttled 2\nthrottled_time 1500\n";
        assert_eq!(
            parse_throttling(v1, Version::V1).map(|t| t.throttled),
            Some(Duration::from_nanos(1500))
        );
        // v2 without the cpu controller: usage only.
        assert_eq!(parse_throttling("usage_usec 10\n", Version::V2), None);
        assert_eq!(parse_throttling(v1, Version::V2), None);
    }
}
