//! OOM kills: the cgroup's counter (v2 `memory.events`, v1 `memory.oom_control`, both an
//! `oom_kill N` line; v1 has it from kernel 4.13) and which reaped processes it names.
//!
//! The rule: a process of usher's tree is named an OOM victim when it was killed by SIGKILL
//! while the counter rose, one victim per kill. The kernel counts the kill before the victim
//! dies, so a victim reaped in a round has its kill counted by the time the counter is read
//! after that round. A kill with no SIGKILLed process to match stays pending for
//! [`VICTIM_WINDOW`] (its victim may be dying but not yet reaped), then is counted with the
//! victim unknown (a process outside usher's tree, such as one `docker exec` started). SIGKILL
//! without a kill to match is not an OOM kill (usher's own grace kill, or a user's `kill -9`);
//! more SIGKILLed processes than kills cannot be told apart, so none is named.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::container::Container;
use crate::container::cgroup::{Dir, Version};
use crate::container::{ReadError, parse_keyed, read_value};
use crate::supervise::state::ChildExit;

/// How long a counted kill waits for its victim to be reaped before it is reported with the
/// victim unknown.
pub const VICTIM_WINDOW: Duration = Duration::from_secs(2);

/// How often the counter is read when nothing else calls for it: a worker that its own parent
/// reaps (or a process `docker exec` started) never reaches usher's reaper, so only the
/// counter tells of its kill, this much later at most. Each poll wakes usher (about 0.15 ms of
/// CPU, measured, most of it the wake-up itself): every 5 s, about 0.003 % of a core.
pub const POLL_INTERVAL: Duration = Duration::from_secs(5);

/// The file holding the counter.
pub fn file(version: Version) -> &'static str {
    match version {
        Version::V2 => "memory.events",
        Version::V1 => "memory.oom_control",
    }
}

/// The `oom_kill` counter of a `memory.events` or `memory.oom_control` text.
pub fn parse_kills(text: &str) -> Option<u64> {
    parse_keyed(text, "oom_kill")
}

/// Reads the OOM kill counter of the memory cgroup `dir` (cheap: one small file). Missing on
/// v1 before kernel 4.13.
pub fn read_kills(dir: &Dir) -> Result<u64, ReadError> {
    let what = match dir.version {
        Version::V2 => "an oom_kill line",
        Version::V1 => "an oom_kill line (kernel 4.13 or later)",
    };
    read_value(&dir.path, file(dir.version), what, parse_kills)
}

/// A process usher reaped, and how it ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reaped {
    pub pid: i32,
    pub exit: ChildExit,
}

/// What a change of the counter means.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Kills newly counted (add to `usher_oom_kills_total`).
    pub kills: u64,
    /// Reaped processes named as victims, in reaping order (one event each).
    pub victims: Vec<i32>,
    /// Kills whose victim usher cannot name (one event saying how many).
    pub unknown: u64,
    /// Whether the main child is among `victims`: its exit is "killed by the OOM killer".
    pub main_child: bool,
}

/// Matches `kills` to the SIGKILLed processes of `reaped`: the victims, and the kills left
/// without one; `None` when there are more such processes than kills (which ones the OOM
/// killer took cannot be told).
fn attribute(kills: u64, reaped: &[Reaped]) -> Option<(Vec<i32>, u64)> {
    let killed: Vec<i32> = reaped
        .iter()
        .filter(|r| r.exit == ChildExit::Signaled(libc::SIGKILL))
        .map(|r| r.pid)
        .collect();
    let left = kills.checked_sub(u64::try_from(killed.len()).ok()?)?;
    Some((killed, left))
}

/// The rule over time: remembers the counter and the kills still waiting for their victim.
#[derive(Debug)]
pub struct OomWatch {
    last: u64,
    pending: u64,
    pending_until: Option<Instant>,
}

impl OomWatch {
    /// Starts from a first reading (kills before usher started are not usher's to report).
    pub fn new(baseline: u64) -> OomWatch {
        OomWatch {
            last: baseline,
            pending: 0,
            pending_until: None,
        }
    }

    /// Takes a new reading of the counter and the processes reaped since the last call (none
    /// when called at [`OomWatch::deadline`] or for a `/metrics` scrape).
    pub fn observe(
        &mut self,
        count: u64,
        reaped: &[Reaped],
        main_pid: i32,
        now: Instant,
    ) -> Verdict {
        let kills = count.saturating_sub(self.last);
        self.last = count;
        let mut unknown = 0;
        if self.pending_until.is_some_and(|until| now >= until) {
            unknown = self.pending;
            self.pending = 0;
        }
        let available = self.pending.saturating_add(kills);
        let victims = match attribute(available, reaped) {
            Some((victims, left)) => {
                self.pending = left;
                victims
            }
            None => {
                unknown += available;
                self.pending = 0;
                Vec::new()
            }
        };
        self.pending_until = match (self.pending, kills) {
            (0, _) => None,
            (_, 0) => self.pending_until,
            _ => Some(now + VICTIM_WINDOW),
        };
        Verdict {
            kills,
            main_child: victims.contains(&main_pid),
            victims,
            unknown,
        }
    }

    /// When kills still waiting for a victim are to be reported as unknown: call
    /// [`OomWatch::observe`] then.
    pub fn deadline(&self) -> Option<Instant> {
        self.pending_until
    }
}

/// The rule as the event loop runs it: the counter is read after a round of reaping that
/// ended a process by SIGKILL, at the victim window's end, and every [`POLL_INTERVAL`].
#[derive(Debug)]
pub struct Watcher {
    container: Arc<Container>,
    watch: OomWatch,
    next_poll: Instant,
}

impl Watcher {
    /// Takes the baseline (before the child starts: kills before it are not usher's to
    /// report); `None` when the counter cannot be read (warned about by `container`).
    pub fn start(container: Arc<Container>, now: Instant) -> Option<Watcher> {
        let baseline = container.oom_kills()?;
        Some(Watcher {
            container,
            watch: OomWatch::new(baseline),
            next_poll: now + POLL_INTERVAL,
        })
    }

    /// When the counter is next to be read, whatever is reaped.
    pub fn deadline(&self) -> Instant {
        self.watch
            .deadline()
            .map_or(self.next_poll, |until| until.min(self.next_poll))
    }

    /// Reads the counter if it is time: `killed` (the processes SIGKILL ended in the round
    /// just reaped) is not empty, or the deadline has come. `None` when it was not read (or
    /// could not be).
    pub fn observe(&mut self, killed: &[i32], main_pid: i32, now: Instant) -> Option<Verdict> {
        if killed.is_empty() && now < self.deadline() {
            return None;
        }
        self.next_poll = now + POLL_INTERVAL;
        let count = self.container.oom_kills()?;
        let reaped: Vec<Reaped> = killed
            .iter()
            .map(|&pid| Reaped {
                pid,
                exit: ChildExit::Signaled(libc::SIGKILL),
            })
            .collect();
        Some(self.watch.observe(count, &reaped, main_pid, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAIN: i32 = 10;

    /// The rule in one step: `previous` and `current` counter readings and the processes
    /// reaped between them; kills left without a victim are reported once their window ends.
    fn judge(previous: u64, current: u64, reaped: &[Reaped], main_pid: i32) -> Verdict {
        let now = Instant::now();
        let mut watch = OomWatch::new(previous);
        let mut verdict = watch.observe(current, reaped, main_pid, now);
        if let Some(deadline) = watch.deadline() {
            verdict.unknown += watch.observe(current, &[], main_pid, deadline).unknown;
        }
        verdict
    }

    fn killed(pid: i32) -> Reaped {
        Reaped {
            pid,
            exit: ChildExit::Signaled(libc::SIGKILL),
        }
    }

    fn exited(pid: i32) -> Reaped {
        Reaped {
            pid,
            exit: ChildExit::Exited(0),
        }
    }

    fn verdict(kills: u64, victims: &[i32], unknown: u64, main_child: bool) -> Verdict {
        Verdict {
            kills,
            victims: victims.to_vec(),
            unknown,
            main_child,
        }
    }

    #[test]
    fn counter_in_both_files() {
        assert_eq!(
            parse_kills("oom_kill_disable 0\nunder_oom 0\noom_kill 4\n"),
            Some(4)
        );
        assert_eq!(
            parse_kills("low 0\nhigh 0\nmax 0\noom 1\noom_kill 1\n"),
            Some(1)
        );
        // v1 before kernel 4.13.
        assert_eq!(parse_kills("oom_kill_disable 0\nunder_oom 0\n"), None);
    }

    #[test]
    fn one_kill_and_one_sigkilled_worker_names_the_worker() {
        let reaped = [exited(11), killed(12)];
        assert_eq!(judge(3, 4, &reaped, MAIN), verdict(1, &[12], 0, false));
    }

    #[test]
    fn the_main_child_killed_while_the_counter_rose_is_an_oom_kill() {
        assert_eq!(
            judge(0, 1, &[killed(MAIN)], MAIN),
            verdict(1, &[MAIN], 0, true)
        );
        // Its plain exit is not, whatever the counter did.
        assert_eq!(
            judge(0, 1, &[exited(MAIN)], MAIN),
            verdict(1, &[], 1, false)
        );
    }

    #[test]
    fn a_kill_without_a_sigkilled_process_has_no_victim() {
        assert_eq!(judge(0, 2, &[], MAIN), verdict(2, &[], 2, false));
        assert_eq!(
            judge(0, 2, &[killed(12)], MAIN),
            verdict(2, &[12], 1, false)
        );
    }

    #[test]
    fn sigkill_without_the_counter_rising_is_not_oom() {
        // usher's grace kill, or a user's kill -9.
        assert_eq!(
            judge(5, 5, &[killed(MAIN), killed(12)], MAIN),
            Verdict::default()
        );
        // A counter that went down (a new cgroup) counts nothing.
        assert_eq!(judge(5, 0, &[killed(12)], MAIN), Verdict::default());
    }

    #[test]
    fn more_sigkilled_processes_than_kills_names_none() {
        let reaped = [killed(MAIN), killed(12)];
        assert_eq!(judge(0, 1, &reaped, MAIN), verdict(1, &[], 1, false));
    }

    #[test]
    fn a_victim_reaped_after_its_kill_was_counted_is_named_within_the_window() {
        let start = Instant::now();
        let mut watch = OomWatch::new(7);
        // A /metrics scrape sees the kill before the victim is reaped.
        assert_eq!(
            watch.observe(8, &[], MAIN, start),
            verdict(1, &[], 0, false)
        );
        assert_eq!(watch.deadline(), Some(start + VICTIM_WINDOW));
        let soon = start + VICTIM_WINDOW / 2;
        assert_eq!(
            watch.observe(8, &[killed(12)], MAIN, soon),
            verdict(0, &[12], 0, false)
        );
        assert_eq!(watch.deadline(), None);
    }

    #[test]
    fn a_kill_whose_victim_never_shows_is_reported_unknown_at_the_deadline() {
        let start = Instant::now();
        let mut watch = OomWatch::new(0);
        assert_eq!(
            watch.observe(1, &[], MAIN, start),
            Verdict {
                kills: 1,
                ..Verdict::default()
            }
        );
        let Some(deadline) = watch.deadline() else {
            unreachable!("no deadline for a pending kill");
        };
        assert_eq!(
            watch.observe(1, &[], MAIN, deadline),
            verdict(0, &[], 1, false)
        );
        assert_eq!(watch.deadline(), None);
        // A later SIGKILL without a new kill is not an OOM kill.
        let later = deadline + Duration::from_millis(1);
        assert_eq!(
            watch.observe(1, &[killed(12)], MAIN, later),
            Verdict::default()
        );
    }

    #[test]
    fn the_watch_keeps_its_state_from_one_reading_to_the_next() {
        let now = Instant::now();
        let mut watch = OomWatch::new(0);
        assert_eq!(
            watch.observe(1, &[killed(MAIN)], MAIN, now),
            verdict(1, &[MAIN], 0, true)
        );
        assert_eq!(
            watch.observe(1, &[killed(12)], MAIN, now),
            Verdict::default()
        );
        let both = [killed(12), killed(13)];
        assert_eq!(
            watch.observe(2, &both, MAIN, now),
            verdict(1, &[], 1, false)
        );
        assert_eq!(watch.deadline(), None);
        assert_eq!(
            watch.observe(4, &both, MAIN, now),
            verdict(2, &[12, 13], 0, false)
        );
    }

    #[test]
    fn the_watcher_reads_after_sigkills_and_at_its_deadlines() {
        use crate::container::Cgroups;
        use crate::container::watcher::tests::with_cgroups;
        let dir = std::env::temp_dir().join(format!("usher-oom-watcher-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let events = dir.join("memory.events");
        let count = |n: u64| {
            let _ = std::fs::write(&events, format!("low 0\noom 0\noom_kill {n}\n"));
        };
        let container = |dir: &std::path::Path| {
            Arc::new(with_cgroups(Cgroups {
                memory: Some(Dir {
                    path: dir.to_path_buf(),
                    version: Version::V2,
                }),
                ..Cgroups::default()
            }))
        };
        let missing = dir.join("missing");
        assert!(Watcher::start(container(&missing), Instant::now()).is_none());

        count(3);
        let start = Instant::now();
        let Some(mut watcher) = Watcher::start(container(&dir), start) else {
            unreachable!("no baseline");
        };
        assert_eq!(watcher.deadline(), start + POLL_INTERVAL);
        // Nothing SIGKILLed, no deadline yet: the file is not read.
        count(4);
        assert_eq!(watcher.observe(&[], MAIN, start), None);
        assert_eq!(
            watcher.observe(&[12], MAIN, start),
            Some(verdict(1, &[12], 0, false))
        );
        // The poll finds a kill whose victim usher never reaps.
        count(5);
        let poll = start + POLL_INTERVAL;
        assert_eq!(
            watcher.observe(&[], MAIN, poll),
            Some(verdict(1, &[], 0, false))
        );
        assert_eq!(watcher.deadline(), poll + POLL_INTERVAL.min(VICTIM_WINDOW));
        let window_over = poll + VICTIM_WINDOW;
        let mut unknown = 0;
        let mut now = poll;
        while now < window_over {
            now = watcher.deadline();
            unknown += watcher.observe(&[], MAIN, now).map_or(0, |v| v.unknown);
        }
        assert_eq!(unknown, 1);
        // A counter gone unreadable: no verdict, and the next poll a second later.
        let _ = std::fs::remove_file(&events);
        let later = watcher.deadline();
        assert_eq!(watcher.observe(&[], MAIN, later), None);
        assert_eq!(watcher.deadline(), later + POLL_INTERVAL);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
