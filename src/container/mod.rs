//! The container around usher: its cgroup's readings (memory, CPU, pids, OOM kills, on cgroup v1
//! and v2), the app's process tree from /proc, which reaped processes the OOM killer took, and
//! Kubernetes' termination message (design.md, section 4).
//!
//! Parsing is pure and separate from reading: every parser takes a file's text and every reader
//! takes the directory (or the root standing for `/`) it reads under, so tests run on the
//! fixtures in `tests/data/cgroup/`. A missing or malformed file is a missing reading and a
//! [`Problem`] the caller may warn about once, never a panic.
//!
//! Sources: the kernel's Documentation/admin-guide/cgroup-v2.rst, cgroup-v1/memory.rst,
//! cgroup-v1/cpuacct.rst, cgroup-v1/pids.rst, scheduler/sched-bwc.rst; proc(5).

pub mod cgroup;
pub mod cpu;
pub mod memory;
pub mod oom;
pub mod oom_score;
pub mod pids;
pub mod process_tree;
pub mod termination;
pub mod watcher;

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use cgroup::{Cgroups, Dir};
pub use watcher::{Container, Sample};

/// Why a reading is missing.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("failed to read {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("unexpected contents in {}: {what}", path.display())]
    Malformed { path: PathBuf, what: &'static str },
    #[error("no {controller} cgroup found in /proc/self/cgroup and /proc/self/mountinfo")]
    NoCgroup { controller: &'static str },
}

/// A missing reading: `file` (`memory.current`, or a controller's name when its cgroup was not
/// found) is a stable key to warn once per file with.
#[derive(Debug)]
pub struct Problem {
    pub file: &'static str,
    pub error: ReadError,
}

/// A limit as the kernel states it: `max` (or v1's near-`i64::MAX` "unlimited") is `Unlimited`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    Unlimited,
    Value(u64),
}

/// CFS bandwidth statistics (sched-bwc.rst "Statistics"): periods elapsed with runnable tasks,
/// periods in which the cgroup was throttled, and the total time it was throttled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Throttling {
    pub periods: u64,
    pub throttled_periods: u64,
    pub throttled: Duration,
}

/// One reading of the container's cgroup. Each field is `None` when its file is missing or
/// malformed (or its controller not found); `problems` says why, once per file.
#[derive(Debug, Default)]
pub struct Readings {
    /// Memory charged to the cgroup, bytes (v2 `memory.current`, v1 `memory.usage_in_bytes`,
    /// which counts the page cache too).
    pub memory: Option<u64>,
    /// v2 `memory.max`, v1 `memory.limit_in_bytes`.
    pub memory_limit: Option<Limit>,
    /// Processes killed by the OOM killer in the cgroup since it was created (v2
    /// `memory.events`, v1 `memory.oom_control`, kernel 4.13 or later).
    pub oom_kills: Option<u64>,
    /// CPU time used by the cgroup's tasks (v2 `cpu.stat` usage_usec, v1 `cpuacct.usage`).
    pub cpu: Option<Duration>,
    /// v2 and v1 `cpu.stat` (v2 has these keys only with the cpu controller enabled).
    pub throttling: Option<Throttling>,
    /// Tasks (threads included) in the cgroup: `pids.current`.
    pub pids: Option<u64>,
    /// `pids.max`.
    pub pids_limit: Option<Limit>,
    pub problems: Vec<Problem>,
}

/// Reads every figure of [`Readings`] from `cgroups` (a few small files; nothing is cached).
pub fn read(cgroups: &Cgroups) -> Readings {
    let mut readings = Readings::default();
    memory::read(cgroups.memory.as_ref(), &mut readings);
    cpu::read(
        cgroups.cpu.as_ref(),
        cgroups.cpuacct.as_ref(),
        &mut readings,
    );
    pids::read(cgroups.pids.as_ref(), &mut readings);
    readings
}

impl Readings {
    /// The reading, or `None` with its problem recorded (see [`Readings::note`]).
    fn keep<T>(&mut self, file: &'static str, result: Result<T, ReadError>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.note(file, error);
                None
            }
        }
    }

    /// Records a problem under `file`, or under the controller's name when its cgroup was not
    /// found.
    fn note(&mut self, file: &'static str, error: ReadError) {
        let file = match error {
            ReadError::NoCgroup { controller } => controller,
            _ => file,
        };
        self.problems.push(Problem { file, error });
    }
}

/// The directory of a controller's cgroup, or the problem saying it was not found.
fn found<'a>(dir: Option<&'a Dir>, controller: &'static str) -> Result<&'a Dir, ReadError> {
    dir.ok_or(ReadError::NoCgroup { controller })
}

/// The text of `dir/file`. /proc and cgroup files say their size is 0, so `fs::read_to_string`
/// would start with 32-byte probe reads (nine reads of mountinfo, each rendering the table
/// again, at every start); a page of room first takes most of them in one read.
fn read_text(dir: &Path, file: &str) -> Result<String, ReadError> {
    use std::io::Read;
    let path = dir.join(file);
    let mut text = String::with_capacity(4096);
    match std::fs::File::open(&path).and_then(|mut f| f.read_to_string(&mut text)) {
        Ok(_) => Ok(text),
        Err(source) => Err(ReadError::Io { path, source }),
    }
}

/// Reads `dir/file` and parses it with `parse`; `what` says what was expected if it fails.
/// (A function pointer and one result type: one copy of this code in the binary.)
fn read_value(
    dir: &Path,
    file: &str,
    what: &'static str,
    parse: fn(&str) -> Option<u64>,
) -> Result<u64, ReadError> {
    let text = read_text(dir, file)?;
    parse(&text).ok_or_else(|| malformed(dir, file, what))
}

fn malformed(dir: &Path, file: &str, what: &'static str) -> ReadError {
    ReadError::Malformed {
        path: dir.join(file),
        what,
    }
}

/// A single-value file: an unsigned integer and a newline (`memory.current`, `cpuacct.usage`).
pub fn parse_number(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// From this value up, a v1 limit means none: v1 writes "unlimited" as `PAGE_COUNTER_MAX`
/// pages in bytes (9223372036854771712 on 64-bit), not as `max`.
const UNLIMITED_FROM: u64 = 1 << 62;

/// A limit file: `max` or an unsigned integer (`memory.max`, `pids.max`, v1
/// `memory.limit_in_bytes`).
pub fn parse_limit(text: &str) -> Option<Limit> {
    match text.trim() {
        "max" => Some(Limit::Unlimited),
        value => Some(Limit::from_raw(value.parse().ok()?)),
    }
}

impl Limit {
    /// From a number of the kernel's (`u64::MAX` standing for `max` in [`read_value`]).
    fn from_raw(value: u64) -> Limit {
        if value >= UNLIMITED_FROM {
            Limit::Unlimited
        } else {
            Limit::Value(value)
        }
    }

    fn raw(self) -> u64 {
        match self {
            Limit::Unlimited => u64::MAX,
            Limit::Value(value) => value,
        }
    }
}

/// [`parse_limit`] as a number for [`read_value`].
fn parse_limit_raw(text: &str) -> Option<u64> {
    parse_limit(text).map(Limit::raw)
}

/// The value of `key` in a flat-keyed file: `key value` lines (`memory.events`, `cpu.stat`,
/// `memory.oom_control`). `None` when the key is absent or its value not an unsigned integer.
pub fn parse_keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, value) = line.split_once(' ')?;
        if k == key {
            value.trim().parse().ok()
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_limits_and_keys() {
        assert_eq!(parse_number("52428800\n"), Some(52_428_800));
        assert_eq!(parse_number("-1\n"), None);
        assert_eq!(parse_number(""), None);
        assert_eq!(parse_limit("max\n"), Some(Limit::Unlimited));
        assert_eq!(parse_limit("50331648\n"), Some(Limit::Value(50_331_648)));
        assert_eq!(parse_limit("9223372036854771712\n"), Some(Limit::Unlimited));
        assert_eq!(parse_limit("lots"), None);
        let events = "low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\noom_group_kill 0\n";
        assert_eq!(parse_keyed(events, "oom_kill"), Some(2));
        assert_eq!(parse_keyed(events, "oom"), Some(3));
        assert_eq!(parse_keyed(events, "absent"), None);
        assert_eq!(parse_keyed("oom_kill x\n", "oom_kill"), None);
    }

    #[test]
    fn every_reading_from_the_v2_fixture() {
        let cgroups = cgroup::tests::fixture("v2");
        let readings = read(&cgroups);
        assert!(readings.problems.is_empty(), "{:?}", readings.problems);
        assert_eq!(readings.memory, Some(20_971_520));
        assert_eq!(readings.memory_limit, Some(Limit::Value(50_331_648)));
        assert_eq!(readings.oom_kills, Some(1));
        assert_eq!(readings.cpu, Some(Duration::from_micros(2_345_678)));
        let throttling = Throttling {
            periods: 120,
            throttled_periods: 7,
            throttled: Duration::from_micros(350_000),
        };
        assert_eq!(readings.throttling, Some(throttling));
        assert_eq!(readings.pids, Some(5));
        assert_eq!(readings.pids_limit, Some(Limit::Unlimited));
    }

    #[test]
    fn every_reading_from_the_v1_fixture() {
        let cgroups = cgroup::tests::fixture("v1");
        let readings = read(&cgroups);
        assert!(readings.problems.is_empty(), "{:?}", readings.problems);
        assert_eq!(readings.memory, Some(31_457_280));
        assert_eq!(readings.memory_limit, Some(Limit::Unlimited));
        assert_eq!(readings.oom_kills, Some(2));
        assert_eq!(readings.cpu, Some(Duration::from_nanos(4_200_000_000)));
        let throttling = Throttling {
            periods: 40,
            throttled_periods: 3,
            throttled: Duration::from_nanos(123_456_789),
        };
        assert_eq!(readings.throttling, Some(throttling));
        assert_eq!(readings.pids, Some(4));
        assert_eq!(readings.pids_limit, Some(Limit::Value(100)));
    }

    #[test]
    fn missing_and_malformed_files_are_problems_not_panics() {
        let cgroups = cgroup::tests::fixture("broken");
        let readings = read(&cgroups);
        assert_eq!(readings.memory, None);
        assert_eq!(readings.memory_limit, Some(Limit::Unlimited));
        assert_eq!(readings.oom_kills, None);
        // v2 without the cpu controller: usage, no throttling.
        assert_eq!(readings.cpu, Some(Duration::from_micros(1000)));
        assert_eq!(readings.throttling, None);
        assert_eq!(readings.pids, None);
        assert_eq!(readings.pids_limit, None);
        let files: Vec<&str> = readings.problems.iter().map(|p| p.file).collect();
        assert_eq!(
            files,
            [
                "memory.current",
                "memory.events",
                "cpu.stat",
                "pids.current",
                "pids.max"
            ]
        );
        let messages: Vec<String> = readings
            .problems
            .iter()
            .map(|p| p.error.to_string())
            .collect();
        let dir = cgroups.memory.map(|d| d.path.display().to_string());
        let dir = dir.unwrap_or_default();
        assert_eq!(
            messages,
            [
                format!("unexpected contents in {dir}/memory.current: a number of bytes"),
                format!("failed to read {dir}/memory.events"),
                format!(
                    "unexpected contents in {dir}/cpu.stat: nr_periods, nr_throttled and \
                     throttled_usec"
                ),
                format!("failed to read {dir}/pids.current"),
                format!("unexpected contents in {dir}/pids.max: a number of tasks or max"),
            ]
        );
    }

    #[test]
    fn nothing_found_is_one_problem_per_controller() {
        let readings = read(&Cgroups::default());
        let files: Vec<&str> = readings.problems.iter().map(|p| p.file).collect();
        assert_eq!(files, ["memory", "cpuacct", "cpu", "pids"]);
        assert_eq!(
            readings.problems[0].error.to_string(),
            "no memory cgroup found in /proc/self/cgroup and /proc/self/mountinfo"
        );
    }
}
