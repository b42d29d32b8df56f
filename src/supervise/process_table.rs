//! Who is left to signal at the end: read from /proc, and chosen so that each process gets a
//! signal once. Without /proc only the main child's group (and, as PID 1, `kill(-1)`) is used.

use crate::supervise::state::Left;

/// A process and its process group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Process {
    pub pid: i32,
    pub pgid: i32,
}

/// The process group of `pid`, from /proc/PID/stat (the command name in parentheses may itself
/// contain spaces and parentheses, so the fields are read after the last `)`).
fn process(pid: i32) -> Option<Process> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    // state, ppid, pgrp
    let pgid = after_name.split_whitespace().nth(2)?.parse().ok()?;
    Some(Process { pid, pgid })
}

/// usher's own children (from every thread's list: a child belongs to the thread that forked
/// it, and adopted orphans to the main thread).
pub fn direct_children() -> Vec<Process> {
    let mut found = Vec::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return found;
    };
    for task in tasks.flatten() {
        let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        found.extend(
            children
                .split_whitespace()
                .filter_map(|p| process(p.parse().ok()?)),
        );
    }
    found
}

/// Every process in usher's PID namespace but usher (meaningful only as PID 1, where /proc
/// shows the container's processes).
pub fn namespace_processes() -> Vec<Process> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let pid = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<i32>().ok());
        if let Some(process) = pid.filter(|&pid| pid != 1).and_then(process) {
            found.push(process);
        }
    }
    found
}

/// The kill(2) targets that reach `who` once each. `candidates` are the processes usher knows
/// of: everyone in the namespace as PID 1, its direct children otherwise.
pub fn targets(who: Left, is_pid1: bool, main_pgid: i32, candidates: &[Process]) -> Vec<i32> {
    let outside_group = candidates
        .iter()
        .filter(|p| p.pgid != main_pgid)
        .map(|p| p.pid);
    match who {
        // kill(-1) reaches everything in the namespace but usher, atomically.
        Left::Everyone if is_pid1 => vec![-1],
        Left::Everyone => std::iter::once(-main_pgid).chain(outside_group).collect(),
        Left::OutsideGroup => outside_group.collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAIN: i32 = 10;

    fn procs() -> Vec<Process> {
        vec![
            Process {
                pid: 10,
                pgid: MAIN,
            },
            Process {
                pid: 11,
                pgid: MAIN,
            }, // a worker in the main group
            Process { pid: 20, pgid: 20 }, // a daemon that called setsid
            Process { pid: 30, pgid: 30 }, // an adopted orphan
        ]
    }

    #[test]
    fn everyone_as_pid1_is_one_kill_of_minus_one() {
        assert_eq!(targets(Left::Everyone, true, MAIN, &procs()), [-1]);
    }

    #[test]
    fn everyone_as_subreaper_is_the_group_and_each_process_outside_it_once() {
        assert_eq!(
            targets(Left::Everyone, false, MAIN, &procs()),
            [-MAIN, 20, 30]
        );
    }

    #[test]
    fn outside_group_never_includes_group_members() {
        assert_eq!(targets(Left::OutsideGroup, true, MAIN, &procs()), [20, 30]);
        assert_eq!(targets(Left::OutsideGroup, false, MAIN, &procs()), [20, 30]);
        assert_eq!(
            targets(Left::OutsideGroup, false, MAIN, &[]),
            Vec::<i32>::new()
        );
    }

    #[test]
    fn reads_this_process_from_proc() {
        let me = process(std::process::id() as i32).unwrap();
        assert_eq!(me.pgid, nix::unistd::getpgrp().as_raw());
    }
}
