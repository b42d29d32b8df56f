//! The container as usher watches it while it runs: its cgroups, found once at start, read on
//! demand (a `/metrics` scrape, the OOM counter's polls), each missing or malformed file said
//! once in a `container_reading_failed` warning and left out from then on.

use std::path::Path;
use std::sync::{Mutex, PoisonError};

use crate::container::process_tree::{self, Tree, Units};
use crate::container::{Cgroups, ReadError, Readings, cgroup, oom};
use crate::log_io::events::warn;

/// What a reading that fails costs, said in its warning.
const LEFT_OUT: &str = "its figures are left out of /metrics";
const UNNOTICED: &str = "OOM kills in the container go unnoticed";

/// usher's cgroups and what it has already warned about.
#[derive(Debug)]
pub struct Container {
    cgroups: Cgroups,
    /// usher's own pid: the app is its descendants.
    usher: i32,
    units: Units,
    /// The keys ([`crate::container::Problem::file`]) already warned about.
    warned: Mutex<Vec<&'static str>>,
}

/// One reading of the container and of the app's processes, for `/metrics`.
#[derive(Debug, Default)]
pub struct Sample {
    /// The cgroup's figures (`problems` already warned about and emptied).
    pub readings: Readings,
    /// The app's process tree: usher's descendants (the main child, its descendants, the
    /// orphans usher adopted; not what `docker exec` started). `None` without /proc.
    pub tree: Option<Tree>,
}

impl Container {
    /// Finds usher's cgroups under `/` (see [`cgroup::discover`]); without /proc, one warning
    /// and no readings.
    pub fn discover() -> Container {
        let container = Container {
            cgroups: Cgroups::default(),
            usher: i32::try_from(std::process::id()).unwrap_or(1),
            units: Units::system(),
            warned: Mutex::new(Vec::new()),
        };
        match cgroup::discover(Path::new("/")) {
            Ok(cgroups) => Container {
                cgroups,
                ..container
            },
            Err(error) => {
                container.warn_once("cgroup", &error, LEFT_OUT);
                // Said once: not again for each controller that is then not found.
                container
                    .lock()
                    .extend(["memory", "cpuacct", "cpu", "pids"]);
                container
            }
        }
    }

    /// The memory limit of usher's cgroup in bytes; `None` for none, or when it cannot be read.
    pub fn memory_limit(&self) -> Option<u64> {
        crate::container::memory::limit(self.cgroups.memory.as_ref())
    }

    /// The OOM kill counter of usher's memory cgroup (one small file); `None` when it cannot
    /// be read (warned about once).
    pub fn oom_kills(&self) -> Option<u64> {
        let dir = self.cgroups.memory.as_ref();
        let Some(dir) = dir else {
            let error = ReadError::NoCgroup {
                controller: "memory",
            };
            self.warn_once("memory", &error, UNNOTICED);
            return None;
        };
        match oom::read_kills(dir) {
            Ok(kills) => Some(kills),
            Err(error) => {
                self.warn_once(oom::file(dir.version), &error, UNNOTICED);
                None
            }
        }
    }

    /// Reads every figure: a few cgroup files, one stat file per process in /proc, and one
    /// status file and one fd directory per process of the app. Blocking file I/O: not for an async runtime's thread.
    pub fn sample(&self) -> Sample {
        let mut readings = crate::container::read(&self.cgroups);
        for problem in std::mem::take(&mut readings.problems) {
            self.warn_once(problem.file, &problem.error, LEFT_OUT);
        }
        let tree = process_tree::read(Path::new("/proc"), self.usher, self.units);
        let tree = match tree {
            Ok(mut tree) => {
                if let Some(error) = tree.problem.take() {
                    self.warn_once("fd", &error, LEFT_OUT);
                }
                Some(tree)
            }
            Err(error) => {
                self.warn_once("proc", &error, LEFT_OUT);
                None
            }
        };
        Sample { readings, tree }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<&'static str>> {
        // A panic aborts usher (panic = "abort"), so no lock is ever poisoned.
        self.warned.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The `container_reading_failed` warning for `file`, unless already said: the error and
    /// what it costs.
    fn warn_once(&self, file: &'static str, error: &ReadError, costs: &str) {
        {
            let mut warned = self.lock();
            if warned.contains(&file) {
                return;
            }
            warned.push(file);
        }
        let cause = std::error::Error::source(error)
            .map(|source| format!(": {source}"))
            .unwrap_or_default();
        warn!(container_reading_failed, file, "{error}{cause}: {costs}");
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A container whose cgroups are `cgroups`, usher being this process.
    pub(crate) fn with_cgroups(cgroups: Cgroups) -> Container {
        Container {
            cgroups,
            usher: i32::try_from(std::process::id()).unwrap_or(1),
            units: Units::system(),
            warned: Mutex::new(Vec::new()),
        }
    }

    fn fixture(name: &str) -> Container {
        with_cgroups(cgroup::tests::fixture(name))
    }

    #[test]
    fn reads_the_oom_counter_of_either_version() {
        assert_eq!(fixture("v2").oom_kills(), Some(1));
        assert_eq!(fixture("v1").oom_kills(), Some(2));
    }

    #[test]
    fn each_problem_is_warned_about_once() {
        let broken = fixture("broken");
        assert_eq!(broken.oom_kills(), None);
        assert_eq!(*broken.lock(), ["memory.events"]);
        let sample = broken.sample();
        assert!(sample.readings.problems.is_empty());
        assert_eq!(sample.readings.memory, None);
        assert_eq!(
            *broken.lock(),
            [
                "memory.events",
                "memory.current",
                "cpu.stat",
                "pids.current",
                "pids.max"
            ]
        );
        // Nothing new the second time.
        let _ = broken.sample();
        assert_eq!(broken.lock().len(), 5);
        let nothing = with_cgroups(Cgroups::default());
        assert_eq!(nothing.oom_kills(), None);
        assert_eq!(*nothing.lock(), ["memory"]);
    }

    #[test]
    fn samples_the_fixture_and_this_process_tree() {
        let Ok(mut child) = std::process::Command::new("sleep").arg("60").spawn() else {
            unreachable!("cannot start sleep");
        };
        let sample = fixture("v1").sample();
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(sample.readings.memory, Some(31_457_280));
        let tree = sample.tree.unwrap_or_default();
        assert!(tree.processes >= 1, "{tree:?}");
        assert!(tree.open_fds.is_some());
    }
}
