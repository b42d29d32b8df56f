//! The container's files: /proc/self/cgroup, /proc/self/mountinfo, `key value` files
//! (`cpu.stat`, `memory.events`, `memory.oom_control`), limits (`memory.max`, `pids.max`),
//! single numbers, /proc/PID/stat and /proc/PID/status. Properties: no parser panics on any
//! text, and on text written the kernel's way from the input each gives back what was written
//! (or agrees with a plain reference reading); the cgroup directories found always lie under a
//! cgroup mount point.
//! Input: a mode byte (which file), then what the text is made from (mode 0: the text itself).
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use usher::fuzzing::{
    Limit, Version, candidates, parse_keyed, parse_kills, parse_limit, parse_mountinfo,
    parse_number, parse_proc_cgroup, parse_stat, parse_throttling, parse_vm_rss, unescape,
};
use usher_fuzz::Input;

const CONTROLLERS: [&str; 6] = [
    "memory",
    "cpu",
    "cpuacct",
    "pids",
    "cpu,cpuacct",
    "name=systemd",
];

/// Text of the input's next field, made of `allowed` bytes only (others mapped into them).
fn text(input: &mut Input<'_>, max: usize, allowed: &[u8]) -> String {
    let length = usize::from(input.byte()) % (max + 1);
    input
        .take(length)
        .iter()
        .map(|b| char::from(allowed[usize::from(*b) % allowed.len()]))
        .collect()
}

const PATH_BYTES: &[u8] = b"abcxyz019-_.:/ \t\\\n@";

/// mountinfo's octal escapes for space, tab, newline and backslash.
fn escape(path: &str) -> String {
    let mut out = String::new();
    for c in path.chars() {
        match c {
            ' ' | '\t' | '\n' | '\\' => out.push_str(&format!("\\{:03o}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Every parser on any text; the cgroup directories found lie under a mount point.
fn any_text(input: &mut Input<'_>) {
    let cgroup = String::from_utf8_lossy(input.field(0)).into_owned();
    let mountinfo = String::from_utf8_lossy(input.field(0)).into_owned();
    let other = String::from_utf8_lossy(input.rest()).into_owned();
    for membership in parse_proc_cgroup(&cgroup) {
        assert!(membership.path.starts_with('/'));
        assert!(!membership.controllers.contains(['\n', ':']));
    }
    let points: Vec<String> = parse_mountinfo(&mountinfo)
        .map(|mount| unescape(mount.mount_point).trim_end_matches('/').to_owned())
        .collect();
    for controller in ["memory", "cpu", "cpuacct", "pids"] {
        if let Some((_, paths)) = candidates(&cgroup, &mountinfo, controller) {
            assert!(!paths.is_empty());
            for path in &paths {
                assert!(
                    points
                        .iter()
                        .any(|point| path == point || path.starts_with(&format!("{point}/"))),
                    "{path:?} under no mount point of {points:?}"
                );
            }
        }
    }
    for version in [Version::V1, Version::V2] {
        let _ = parse_throttling(&other, version);
    }
    let _ = (
        parse_kills(&other),
        parse_limit(&other),
        parse_number(&other),
    );
    let _ = (
        parse_stat(&other),
        parse_vm_rss(&other),
        parse_keyed(&other, "oom_kill"),
    );
    let _ = unescape(&other);
}

/// /proc/self/cgroup lines as the kernel writes them read back as written.
fn proc_cgroup(input: &mut Input<'_>) {
    let mut lines = Vec::new();
    for _ in 0..input.byte() % 8 {
        let id = usize::from(input.byte() % 13);
        let controllers = if id == 0 {
            ""
        } else {
            CONTROLLERS[usize::from(input.byte()) % 6]
        };
        let path = format!("/{}", text(input, 40, b"abcxyz019-_.:/ @"));
        lines.push((id.to_string(), controllers, path));
    }
    let file: String = lines
        .iter()
        .map(|(id, c, p)| format!("{id}:{c}:{p}\n"))
        .collect();
    let parsed: Vec<(&str, &str)> = parse_proc_cgroup(&file)
        .map(|m| (m.controllers, m.path))
        .collect();
    let written: Vec<(&str, &str)> = lines.iter().map(|(_, c, p)| (*c, p.as_str())).collect();
    assert_eq!(parsed, written, "{file:?}");
}

/// cgroup mounts in mountinfo, with optional fields and escaped paths, read back as written;
/// other mounts skipped.
fn mountinfo(input: &mut Input<'_>) {
    let mut written = Vec::new();
    let mut file = String::new();
    for n in 0..input.byte() % 8 {
        let root = format!("/{}", text(input, 30, PATH_BYTES));
        let point = format!("/{}", text(input, 30, PATH_BYTES));
        let optional: Vec<String> = (0..input.byte() % 3)
            .map(|k| format!("shared:{k}"))
            .collect();
        let (fstype, version) = match input.byte() % 3 {
            0 => ("cgroup", Some(Version::V1)),
            1 => ("cgroup2", Some(Version::V2)),
            _ => ("tmpfs", None),
        };
        let options = format!("rw,{}", text(input, 20, b"abcdefgmnoprsuy,="));
        let mut line = format!(
            "{} 28 0:{n} {} {} rw,nosuid",
            30 + n,
            escape(&root),
            escape(&point)
        );
        for field in &optional {
            line.push(' ');
            line.push_str(field);
        }
        line.push_str(&format!(" - {fstype} cgroup {options}\n"));
        file.push_str(&line);
        if let Some(version) = version {
            written.push((root, point, version, options));
        }
    }
    let parsed: Vec<(String, String, Version, String)> = parse_mountinfo(&file)
        .map(|m| {
            (
                unescape(m.root),
                unescape(m.mount_point),
                m.version,
                m.options.to_owned(),
            )
        })
        .collect();
    assert_eq!(parsed, written, "{file:?}");
}

/// `key value` files: the value of the first line naming the key with a number, as a plain
/// reading finds it; throttling and OOM kills from the same lines.
fn keyed(input: &mut Input<'_>) {
    const KEYS: [&str; 8] = [
        "nr_periods",
        "nr_throttled",
        "throttled_usec",
        "throttled_time",
        "oom_kill",
        "usage_usec",
        "oom",
        "nr_periods_x",
    ];
    let mut file = String::new();
    for _ in 0..input.byte() % 12 {
        let key = KEYS[usize::from(input.byte()) % KEYS.len()];
        let value = match input.byte() % 4 {
            0 => text(input, 6, b"0123456789 x-+"),
            _ => u64::from_le_bytes(std::array::from_fn(|_| input.byte())).to_string(),
        };
        file.push_str(&format!("{key} {value}\n"));
    }
    let reference = |key: &str| -> Option<u64> {
        file.split('\n').find_map(|line| {
            let (k, v) = line.split_once(' ')?;
            (k == key).then(|| v.trim().parse::<u64>().ok()).flatten()
        })
    };
    for key in KEYS {
        assert_eq!(parse_keyed(&file, key), reference(key), "{key} in {file:?}");
    }
    assert_eq!(parse_kills(&file), reference("oom_kill"));
    let v2 = parse_throttling(&file, Version::V2);
    let expected = (|| {
        Some((
            reference("nr_periods")?,
            reference("nr_throttled")?,
            Duration::from_micros(reference("throttled_usec")?),
        ))
    })();
    assert_eq!(
        v2.map(|t| (t.periods, t.throttled_periods, t.throttled)),
        expected
    );
    let v1 = parse_throttling(&file, Version::V1);
    let expected = (|| {
        Some((
            reference("nr_periods")?,
            reference("nr_throttled")?,
            Duration::from_nanos(reference("throttled_time")?),
        ))
    })();
    assert_eq!(
        v1.map(|t| (t.periods, t.throttled_periods, t.throttled)),
        expected
    );
}

/// Limits and numbers as the kernel writes them read back.
fn limits(input: &mut Input<'_>) {
    let value = u64::from_le_bytes(std::array::from_fn(|_| input.byte()));
    let newline = if input.byte() & 1 == 0 { "\n" } else { "" };
    assert_eq!(parse_number(&format!("{value}{newline}")), Some(value));
    let limit = parse_limit(&format!("{value}{newline}"));
    // v1 writes "no limit" as a huge number of bytes: from 2^62 up, a limit is none.
    let expected = if value >= 1 << 62 {
        Limit::Unlimited
    } else {
        Limit::Value(value)
    };
    assert_eq!(limit, Some(expected));
    assert_eq!(
        parse_limit(&format!("max{newline}")),
        Some(Limit::Unlimited)
    );
}

/// /proc/PID/stat with any command name (spaces, parentheses) and /proc/PID/status' VmRSS.
fn proc_stat(input: &mut Input<'_>) {
    let name = text(input, 16, b"ab() )(x 1:");
    let mut number = || u64::from(input.u16()) * 1000 + u64::from(input.byte());
    let (ppid, utime, stime, cutime, cstime, threads) = (
        number() % 4_000_000,
        number(),
        number(),
        number(),
        number(),
        number(),
    );
    let stat = format!(
        "42 ({name}) S {ppid} 42 42 0 -1 4194560 100 0 0 0 {utime} {stime} {cutime} {cstime} 20 0 \
         {threads} 0 1234 12345678 300 18446744073709551615\n"
    );
    let parsed = parse_stat(&stat).unwrap_or_else(|| panic!("not read: {stat:?}"));
    assert_eq!(
        (
            i64::from(parsed.ppid),
            parsed.utime,
            parsed.stime,
            parsed.cutime,
            parsed.cstime,
            parsed.threads
        ),
        (ppid as i64, utime, stime, cutime, cstime, threads),
        "{stat:?}"
    );
    let kib = number();
    let status = format!("Name:\t{name}\nVmPeak:\t    99 kB\nVmRSS:\t{kib:>8} kB\nThreads:\t1\n");
    assert_eq!(parse_vm_rss(&status), Some(kib * 1024), "{status:?}");
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    match input.byte() % 6 {
        0 => any_text(&mut input),
        1 => proc_cgroup(&mut input),
        2 => mountinfo(&mut input),
        3 => keyed(&mut input),
        4 => limits(&mut input),
        _ => proc_stat(&mut input),
    }
});
