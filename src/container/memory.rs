//! Memory use, limit and OOM kills: v2 `memory.current`, `memory.max`, `memory.events`
//! (cgroup-v2.rst "Memory Interface Files"); v1 `memory.usage_in_bytes`,
//! `memory.limit_in_bytes`, `memory.oom_control` (cgroup-v1/memory.rst).

use crate::container::cgroup::{Dir, Version};
use crate::container::{Limit, Readings, found, oom, parse_limit_raw, parse_number, read_value};

/// Fills the memory fields of `readings` from the memory cgroup `dir`.
pub fn read(dir: Option<&Dir>, readings: &mut Readings) {
    let dir = match found(dir, "memory") {
        Ok(dir) => dir,
        Err(error) => {
            readings.note("memory", error);
            return;
        }
    };
    let current = match dir.version {
        Version::V2 => "memory.current",
        Version::V1 => "memory.usage_in_bytes",
    };
    let used = read_value(&dir.path, current, "a number of bytes", parse_number);
    readings.memory = readings.keep(current, used);
    let max = limit_file(dir);
    let limit = read_value(&dir.path, max, "a number of bytes or max", parse_limit_raw);
    readings.memory_limit = readings.keep(max, limit).map(Limit::from_raw);
    readings.oom_kills = readings.keep(oom::file(dir.version), oom::read_kills(dir));
}

fn limit_file(dir: &Dir) -> &'static str {
    match dir.version {
        Version::V2 => "memory.max",
        Version::V1 => "memory.limit_in_bytes",
    }
}

/// The memory cgroup `dir`'s limit in bytes; None for none, or when it cannot be read (the
/// readings for `/metrics` say why).
pub fn limit(dir: Option<&Dir>) -> Option<u64> {
    let dir = dir?;
    let limit = read_value(&dir.path, limit_file(dir), "", parse_limit_raw).ok()?;
    match Limit::from_raw(limit) {
        Limit::Value(bytes) => Some(bytes),
        Limit::Unlimited => None,
    }
}
