//! The container's and the app's figures in `/metrics`: read on demand, by a short-lived thread
//! of their own (file I/O never runs on the server's async thread), at most once per
//! [`MAX_AGE`] whatever the scrape rate; scrapes meanwhile share the last reading. Nothing is
//! read while nobody scrapes.
//!
//! A thread rather than tokio's blocking pool: the pool panics when the system refuses a
//! thread (a pids limit reached), which would end PID 1; a refused thread here only leaves
//! these figures out of that scrape. A reading that takes longer than [`READ_LIMIT`] (a
//! /proc file held up by a process stuck in the kernel) is not waited for: that scrape gets
//! the last figures, and no second reader starts while it lasts.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::container::{Container, Limit, Sample};

/// How long a reading serves later scrapes.
pub const MAX_AGE: Duration = Duration::from_secs(1);

/// How long a scrape waits for a reading.
pub const READ_LIMIT: Duration = Duration::from_secs(2);

pub struct Resources {
    container: Arc<Container>,
    /// Scrapes wait on the lock for the one reading under way.
    cache: tokio::sync::Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    /// The last reading, rendered, and when it was taken.
    taken: Option<(Instant, Arc<str>)>,
    /// A reading that outlasted [`READ_LIMIT`], still awaited.
    reading: Option<tokio::sync::oneshot::Receiver<String>>,
}

impl Cache {
    /// The last figures, however old; none before the first reading.
    fn last(&self) -> Arc<str> {
        self.taken
            .as_ref()
            .map_or_else(|| Arc::from(""), |(_, text)| Arc::clone(text))
    }
}

impl Resources {
    pub fn new(container: Arc<Container>) -> Resources {
        Resources {
            container,
            cache: tokio::sync::Mutex::new(Cache::default()),
        }
    }

    /// The metrics text, from a reading at most [`MAX_AGE`] old; the last one when no thread
    /// could be started to read or the reading outlasts [`READ_LIMIT`].
    pub async fn text(&self) -> Arc<str> {
        let mut cache = self.cache.lock().await;
        if let Some((at, text)) = cache.taken.as_ref()
            && at.elapsed() < MAX_AGE
        {
            return Arc::clone(text);
        }
        let mut receiver = match cache.reading.take() {
            Some(receiver) => receiver,
            None => {
                let (sender, receiver) = tokio::sync::oneshot::channel();
                let container = Arc::clone(&self.container);
                let spawned = std::thread::Builder::new()
                    .name("usher-metrics".into())
                    .spawn(move || {
                        let mut text = String::with_capacity(2048);
                        render(&container.sample(), &mut text);
                        let _ = sender.send(text);
                    });
                if spawned.is_err() {
                    return cache.last();
                }
                receiver
            }
        };
        match tokio::time::timeout(READ_LIMIT, &mut receiver).await {
            Ok(Ok(text)) => {
                let text: Arc<str> = Arc::from(text);
                cache.taken = Some((Instant::now(), Arc::clone(&text)));
                text
            }
            // The reader ended without an answer: a panic, which aborts usher anyway.
            Ok(Err(_)) => cache.last(),
            Err(_) => {
                cache.reading = Some(receiver);
                cache.last()
            }
        }
    }
}

/// Seconds with microseconds, in integer arithmetic (float formatting costs kilobytes).
fn seconds(duration: Duration) -> String {
    format!("{}.{:06}", duration.as_secs(), duration.subsec_micros())
}

/// The Prometheus text of `sample`: one family per reading that is there (a missing reading,
/// or a limit that is `max`, is left out rather than given a made-up value).
pub fn render(sample: &Sample, out: &mut String) {
    let mut family = |name: &str, kind: &str, help: &str, value: Option<String>| {
        if let Some(value) = value {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            );
        }
    };
    let limit = |limit: Option<Limit>| match limit {
        Some(Limit::Value(value)) => Some(value.to_string()),
        Some(Limit::Unlimited) | None => None,
    };
    let readings = &sample.readings;
    family(
        "usher_container_memory_usage_bytes",
        "gauge",
        "Memory charged to the container's cgroup (v2 memory.current, v1 memory.usage_in_bytes).",
        readings.memory.map(|bytes| bytes.to_string()),
    );
    family(
        "usher_container_memory_limit_bytes",
        "gauge",
        "The container's memory limit (absent when unlimited).",
        limit(readings.memory_limit),
    );
    family(
        "usher_container_cpu_usage_seconds_total",
        "counter",
        "CPU time used by the container's processes.",
        readings.cpu.map(seconds),
    );
    let throttling = readings.throttling.as_ref();
    family(
        "usher_container_cpu_periods_total",
        "counter",
        "CFS enforcement periods elapsed with runnable tasks (cpu.stat nr_periods).",
        throttling.map(|t| t.periods.to_string()),
    );
    family(
        "usher_container_cpu_throttled_periods_total",
        "counter",
        "Periods in which the container was throttled by its CPU limit (cpu.stat nr_throttled).",
        throttling.map(|t| t.throttled_periods.to_string()),
    );
    family(
        "usher_container_cpu_throttled_seconds_total",
        "counter",
        "Time the container's processes were throttled by its CPU limit.",
        throttling.map(|t| seconds(t.throttled)),
    );
    family(
        "usher_container_pids",
        "gauge",
        "Tasks (threads included) in the container's cgroup (pids.current).",
        readings.pids.map(|pids| pids.to_string()),
    );
    family(
        "usher_container_pids_limit",
        "gauge",
        "The container's limit on tasks (pids.max; absent when unlimited).",
        limit(readings.pids_limit),
    );
    let tree = sample.tree.as_ref();
    family(
        "usher_app_processes",
        "gauge",
        "Processes of the app: usher's descendants.",
        tree.map(|t| t.processes.to_string()),
    );
    family(
        "usher_app_cpu_seconds_total",
        "counter",
        "CPU time of the app's processes, ended ones included.",
        tree.map(|t| seconds(t.cpu)),
    );
    family(
        "usher_app_resident_memory_bytes",
        "gauge",
        "Resident memory (VmRSS) of the app's processes, summed (shared pages once per process).",
        tree.map(|t| t.resident_bytes.to_string()),
    );
    family(
        "usher_app_threads",
        "gauge",
        "Threads of the app's processes.",
        tree.map(|t| t.threads.to_string()),
    );
    family(
        "usher_app_open_fds",
        "gauge",
        "Open file descriptors of the app's processes.",
        tree.and_then(|t| t.open_fds).map(|fds| fds.to_string()),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::process_tree::Tree;
    use crate::container::{Readings, Throttling};

    #[test]
    fn renders_what_is_there_and_leaves_out_the_rest() {
        let sample = Sample {
            readings: Readings {
                memory: Some(20_971_520),
                memory_limit: Some(Limit::Value(50_331_648)),
                cpu: Some(Duration::from_micros(2_345_678)),
                throttling: Some(Throttling {
                    periods: 120,
                    throttled_periods: 7,
                    throttled: Duration::from_micros(350_000),
                }),
                pids: Some(5),
                pids_limit: Some(Limit::Unlimited),
                ..Readings::default()
            },
            tree: Some(Tree {
                processes: 3,
                cpu: Duration::from_millis(2530),
                resident_bytes: 1550 * 4096,
                threads: 5,
                open_fds: None,
                problem: None,
            }),
        };
        let mut text = String::new();
        render(&sample, &mut text);
        for expected in [
            "# TYPE usher_container_memory_usage_bytes gauge\nusher_container_memory_usage_bytes 20971520\n",
            "\nusher_container_memory_limit_bytes 50331648\n",
            "# TYPE usher_container_cpu_usage_seconds_total counter\nusher_container_cpu_usage_seconds_total 2.345678\n",
            "\nusher_container_cpu_periods_total 120\n",
            "\nusher_container_cpu_throttled_periods_total 7\n",
            "\nusher_container_cpu_throttled_seconds_total 0.350000\n",
            "\nusher_container_pids 5\n",
            "\nusher_app_processes 3\n",
            "\nusher_app_cpu_seconds_total 2.530000\n",
            "\nusher_app_resident_memory_bytes 6348800\n",
            "\nusher_app_threads 5\n",
        ] {
            assert!(text.contains(expected), "{expected:?} not in:\n{text}");
        }
        // Unlimited pids, unreadable fds: no series, no HELP or TYPE either.
        assert!(!text.contains("pids_limit"), "{text}");
        assert!(!text.contains("open_fds"), "{text}");

        let mut nothing = String::new();
        render(&Sample::default(), &mut nothing);
        assert_eq!(nothing, "");
    }

    /// A reading serves the scrapes of the next second; the next one after that reads again.
    #[test]
    fn one_reading_per_second_whatever_the_scrape_rate() {
        let container = crate::container::watcher::tests::with_cgroups(
            crate::container::cgroup::tests::fixture("v1"),
        );
        let resources = Resources::new(Arc::new(container));
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
        else {
            unreachable!("no runtime");
        };
        runtime.block_on(async {
            let first = resources.text().await;
            assert!(
                first.contains("\nusher_container_memory_usage_bytes 31457280\n"),
                "{first}"
            );
            assert!(first.contains("\nusher_app_processes "), "{first}");
            let again = resources.text().await;
            assert!(Arc::ptr_eq(&first, &again));
            resources.cache.lock().await.taken = Some((Instant::now() - MAX_AGE, first.clone()));
            let later = resources.text().await;
            assert!(!Arc::ptr_eq(&first, &later));
        });
    }
}
