//! The app's processes, from /proc (proc(5)): CPU time, resident memory, threads and open
//! files, summed over usher's descendants: the main child, its descendants and the orphans usher
//! adopted as PID 1 or subreaper (not what `docker exec` started: its parent is outside the
//! container).
//!
//! - CPU: utime + stime of each process, plus cutime + cstime (the kernel adds a waited-for
//!   child's times to its parent's) of each process and of usher itself, which reaps the main
//!   child and the orphans: so processes that have ended still count and the sum only grows,
//!   as a `_seconds_total` counter must (short of children reaped by a parent that ignores
//!   SIGCHLD). In clock ticks, `sysconf(_SC_CLK_TCK)` (USER_HZ, 100 on Linux).
//! - Resident memory: each process's `VmRSS` from /proc/PID/status (kB of 1024 bytes); shared
//!   pages count once per process, as in ps(1). Not the `rss` of /proc/PID/stat: since Linux
//!   6.2 that is a cheap read of per-CPU counters (proc(5): inaccurate), short by what each
//!   CPU has not yet folded in, up to hundreds of kB, 0 for a small process; status sums them.
//!   One more small file per process of the app (not per process in /proc), a few µs each.
//! - Threads: `num_threads` of /proc/PID/stat.
//! - Open files: entries of /proc/PID/fd. Reading another user's fd directory takes ptrace
//!   access (CAP_SYS_PTRACE, which Docker does not grant, or the same uid): when usher cannot,
//!   the count is missing rather than partial, and the problem says which directory.

use std::io;
use std::path::Path;
use std::time::Duration;

use nix::unistd::{SysconfVar, sysconf};

use crate::container::ReadError;

/// The fields of /proc/PID/stat that the tree's figures need.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stat {
    pub ppid: i32,
    /// Clock ticks in user and kernel mode.
    pub utime: u64,
    pub stime: u64,
    /// Clock ticks of waited-for children, in user and kernel mode.
    pub cutime: u64,
    pub cstime: u64,
    pub threads: u64,
}

/// Parses /proc/PID/stat: `PID (COMM) STATE PPID ...`; fields are counted from the last `)`,
/// since the command name may hold spaces and parentheses. `None` if malformed.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let (before, after) = text.rsplit_once(')')?;
    before.find('(')?;
    // After the name: field 3 (state), 4 (ppid), ..., 14 (utime) to 17 (cstime), 20
    // (num_threads).
    let mut fields = after.split_ascii_whitespace();
    let ppid = fields.nth(1)?.parse().ok()?;
    let mut number = |skip: usize| fields.nth(skip)?.parse::<u64>().ok();
    Some(Stat {
        ppid,
        utime: number(9)?,
        stime: number(0)?,
        cutime: number(0)?,
        cstime: number(0)?,
        threads: number(2)?,
    })
}

/// Resident memory in bytes from /proc/PID/status' `VmRSS:   1234 kB` line; `None` without
/// one (a zombie has none) or when malformed.
pub fn parse_vm_rss(status: &str) -> Option<u64> {
    let value = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?;
    let kib: u64 = value.trim().strip_suffix("kB")?.trim_end().parse().ok()?;
    kib.checked_mul(1024)
}

/// The descendants of `usher` among `stats` (pid and stat of every process).
pub fn select(stats: &[(i32, Stat)], usher: i32) -> Vec<i32> {
    let mut found = vec![usher];
    let mut next = 0;
    // Breadth first; a pid is added once, so a ppid loop cannot run forever.
    while let Some(&parent) = found.get(next) {
        next += 1;
        for (pid, stat) in stats {
            if stat.ppid == parent && !found.contains(pid) {
                found.push(*pid);
            }
        }
    }
    found.remove(0);
    found
}

/// The clock tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Units {
    pub ticks_per_second: u64,
}

impl Units {
    /// From sysconf(3); USER_HZ 100 if it cannot say.
    pub fn system() -> Units {
        let ticks_per_second = match sysconf(SysconfVar::CLK_TCK) {
            Ok(Some(value)) => u64::try_from(value).ok().filter(|v| *v > 0),
            _ => None,
        };
        Units {
            ticks_per_second: ticks_per_second.unwrap_or(100),
        }
    }

    fn ticks(self, ticks: u64) -> Duration {
        let nanos = u128::from(ticks) * 1_000_000_000 / u128::from(self.ticks_per_second.max(1));
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

/// The app's figures.
#[derive(Debug, Default)]
pub struct Tree {
    pub processes: u64,
    /// CPU time, ended processes included (module doc).
    pub cpu: Duration,
    pub resident_bytes: u64,
    pub threads: u64,
    /// Open file descriptors; `None` when a process's fd directory could not be read.
    pub open_fds: Option<u64>,
    /// Why `open_fds` is missing.
    pub problem: Option<ReadError>,
}

/// Sums the figures of `selected` and usher's ended children (pure: resident memory and fds
/// counted apart).
pub fn sum(stats: &[(i32, Stat)], selected: &[i32], usher: i32, units: Units) -> Tree {
    let mut ticks = 0u64;
    let mut tree = Tree::default();
    for (pid, stat) in stats {
        if *pid == usher {
            ticks = ticks.saturating_add(stat.cutime.saturating_add(stat.cstime));
        }
        if selected.contains(pid) {
            let own = stat.utime.saturating_add(stat.stime);
            let children = stat.cutime.saturating_add(stat.cstime);
            ticks = ticks.saturating_add(own.saturating_add(children));
            tree.threads = tree.threads.saturating_add(stat.threads);
            tree.processes += 1;
        }
    }
    tree.cpu = units.ticks(ticks);
    tree
}

/// Reads the figures of `usher`'s descendants under `proc_root` (`/proc`): one stat
/// file per process in /proc, and one status file and one fd directory per selected process.
///
/// Errors: `proc_root` unreadable (no /proc), or not a proc file system (no `self` entry: an
/// empty directory or a tmpfs over /proc, where a tree of no processes would be a made-up
/// figure). Processes that end while being read are skipped.
pub fn read(proc_root: &Path, usher: i32, units: Units) -> Result<Tree, ReadError> {
    let io_error = |source| ReadError::Io {
        path: proc_root.to_path_buf(),
        source,
    };
    let entries = std::fs::read_dir(proc_root).map_err(io_error)?;
    if std::fs::symlink_metadata(proc_root.join("self")).is_err() {
        return Err(ReadError::Malformed {
            path: proc_root.to_path_buf(),
            what: "no self entry: not a proc file system",
        });
    }
    let mut stats = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat"));
        if let Some(stat) = stat.ok().as_deref().and_then(parse_stat) {
            stats.push((pid, stat));
        }
    }
    let selected = select(&stats, usher);
    let mut tree = sum(&stats, &selected, usher, units);
    for pid in &selected {
        // A process that has ended meanwhile, or a zombie, holds no memory.
        let status = std::fs::read_to_string(proc_root.join(pid.to_string()).join("status"));
        if let Some(bytes) = status.ok().as_deref().and_then(parse_vm_rss) {
            tree.resident_bytes = tree.resident_bytes.saturating_add(bytes);
        }
    }
    let mut fds = Some(0u64);
    for pid in &selected {
        let path = proc_root.join(pid.to_string()).join("fd");
        match std::fs::read_dir(&path) {
            Ok(entries) => fds = fds.map(|n| n.saturating_add(entries.count() as u64)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                fds = None;
                tree.problem = Some(ReadError::Io { path, source });
                break;
            }
        }
    }
    tree.open_fds = fds;
    Ok(tree)
}

/// The command name of `pid` (/proc/PID/comm, at most 15 bytes), readable while it is a
/// zombie: read it before reaping to name an OOM victim.
pub fn name(proc_root: &Path, pid: i32) -> Option<String> {
    let comm = std::fs::read_to_string(proc_root.join(pid.to_string()).join("comm")).ok()?;
    Some(comm.trim_end_matches('\n').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A /proc/PID/stat line of Linux 6.x with these values.
    fn stat_line(pid: i32, comm: &str, ppid: i32, ticks: [u64; 4], threads: u64) -> String {
        let [utime, stime, cutime, cstime] = ticks;
        format!(
            "{pid} ({comm}) S {ppid} {pid} {pid} 0 -1 4194560 1063 0 0 0 {utime} {stime} \
             {cutime} {cstime} 20 0 {threads} 0 12345 11038720 300 18446744073709551615 1 1 \
             0 0 0 0 0 4 65536 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
        )
    }

    #[test]
    fn parses_stat_with_an_awkward_command_name() {
        let line = stat_line(42, "a) (b c) x", 1, [150, 50, 7, 3], 4);
        assert_eq!(
            parse_stat(&line),
            Some(Stat {
                ppid: 1,
                utime: 150,
                stime: 50,
                cutime: 7,
                cstime: 3,
                threads: 4,
            })
        );
        assert_eq!(parse_stat("42 (x) S 1 2 3"), None);
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat(""), None);
    }

    /// The lines around VmRSS in a /proc/PID/status of Linux 6.x.
    const STATUS: &str = "Name:\tlive_app\nUmask:\t0022\nState:\tS (sleeping)\nPid:\t7\n\
        VmPeak:\t   10756 kB\nVmSize:\t   10756 kB\nVmHWM:\t    2200 kB\nVmRSS:\t    2148 kB\n\
        RssAnon:\t     100 kB\nRssFile:\t    2048 kB\nRssShmem:\t       0 kB\nThreads:\t2\n";

    #[test]
    fn parses_vm_rss_from_status() {
        assert_eq!(parse_vm_rss(STATUS), Some(2148 * 1024));
        // A zombie's status has no memory lines.
        assert_eq!(
            parse_vm_rss("Name:\tx\nState:\tZ (zombie)\nThreads:\t1\n"),
            None
        );
        assert_eq!(parse_vm_rss("VmRSS:\t  12 MB\n"), None);
        assert_eq!(parse_vm_rss("VmRSS:\t  x kB\n"), None);
        assert_eq!(parse_vm_rss(""), None);
    }

    fn stat(ppid: i32, ticks: [u64; 4], threads: u64) -> Stat {
        let [utime, stime, cutime, cstime] = ticks;
        Stat {
            ppid,
            utime,
            stime,
            cutime,
            cstime,
            threads,
        }
    }

    /// usher (1), its main child (7) and worker (8), an adopted orphan (9), a `docker exec`
    /// shell (20, parent outside the namespace), and a ppid loop that must not hang (30, 31).
    fn processes() -> Vec<(i32, Stat)> {
        vec![
            (1, stat(0, [5, 5, 40, 10], 2)),
            (7, stat(1, [100, 20, 0, 0], 3)),
            (8, stat(7, [60, 10, 5, 5], 1)),
            (9, stat(1, [2, 1, 0, 0], 1)),
            (20, stat(0, [1, 1, 0, 0], 1)),
            (30, stat(31, [0, 0, 0, 0], 1)),
            (31, stat(30, [0, 0, 0, 0], 1)),
        ]
    }

    #[test]
    fn selects_descendants() {
        let stats = processes();
        assert_eq!(select(&stats, 1), [7, 9, 8]);
        assert_eq!(select(&stats, 7), [8]);
        assert_eq!(select(&stats, 30), [31]);
    }

    #[test]
    fn sums_ended_children_into_cpu_and_converts_units() {
        let stats = processes();
        let units = Units {
            ticks_per_second: 100,
        };
        let tree = sum(&stats, &[7, 9, 8], 1, units);
        // usher's ended children 50, main child 120, worker 80, orphan 3: 253 ticks.
        assert_eq!(tree.cpu, Duration::from_millis(2530));
        assert_eq!(tree.resident_bytes, 0, "read apart");
        assert_eq!(tree.threads, 5);
        assert_eq!(tree.processes, 3);
        let odd = Units {
            ticks_per_second: 3,
        };
        assert_eq!(odd.ticks(1), Duration::from_nanos(333_333_333));
    }

    #[test]
    fn reads_this_process_tree() {
        let units = Units::system();
        assert_eq!(units.ticks_per_second, 100);
        let Ok(mut child) = std::process::Command::new("sleep").arg("60").spawn() else {
            unreachable!("cannot start sleep");
        };
        let me = i32::try_from(std::process::id()).unwrap_or(0);
        let tree = read(Path::new("/proc"), me, units);
        let name = name(Path::new("/proc"), i32::try_from(child.id()).unwrap_or(0));
        let _ = child.kill();
        let _ = child.wait();
        let Ok(tree) = tree else {
            unreachable!("no /proc");
        };
        assert!(tree.processes >= 1, "{tree:?}");
        assert!(tree.threads >= 1);
        assert!(tree.resident_bytes > 0, "{tree:?}");
        // As root, or the same user: readable; stdin, stdout and stderr at least.
        assert!(tree.open_fds.is_some_and(|n| n >= 3), "{tree:?}");
        assert_eq!(name.as_deref(), Some("sleep"));
        let missing = read(Path::new("/nonexistent"), 1, units);
        assert!(missing.is_err());
        // A directory that is not a proc file system (a tmpfs over /proc): no figures at all,
        // rather than a tree of no processes.
        let empty = std::env::temp_dir().join(format!("usher-empty-proc-{me}"));
        let _ = std::fs::create_dir(&empty);
        let not_proc = read(&empty, 1, units);
        let _ = std::fs::remove_dir(&empty);
        assert!(
            matches!(not_proc, Err(ReadError::Malformed { .. })),
            "{not_proc:?}"
        );
    }
}
