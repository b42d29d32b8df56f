//! Finding usher's cgroup, per controller, on cgroup v1, v2 and the hybrid of both, from
//! /proc/self/cgroup (cgroups(7): `ID:CONTROLLERS:PATH` lines, `0::PATH` for v2) and
//! /proc/self/mountinfo (proc(5): the mount's root and mount point, and after ` - ` the file
//! system type and its super options, which name a v1 hierarchy's controllers).
//!
//! A controller that a v1 line names is read on v1 even when a v2 hierarchy is mounted too
//! (systemd's hybrid layout keeps the controllers on v1); any other is read on v2.
//!
//! The directory: inside a cgroup namespace the path is `/` and the container's cgroup is
//! mounted at /sys/fs/cgroup; without one (v1 Docker) the path is the host's, and the mount's
//! root is the same host path (so the path relative to the mount's root is `/`), or `/` when
//! the host's tree is mounted whole. Tried in order, the first existing directory wins:
//! mount point + path relative to the mount's root, mount point + path, mount point alone.

use std::path::{Path, PathBuf};

use crate::container::ReadError;

/// Which cgroup version a directory belongs to: the files and units differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// A controller's cgroup directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dir {
    pub path: PathBuf,
    pub version: Version,
}

/// usher's cgroup directory for each controller it reads; `None` when not found. On v2 all are
/// the same directory (`cpuacct` included: v2's `cpu.stat` has the usage).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cgroups {
    pub memory: Option<Dir>,
    pub cpu: Option<Dir>,
    pub cpuacct: Option<Dir>,
    pub pids: Option<Dir>,
}

/// One line of /proc/self/cgroup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Membership<'a> {
    /// v1 controllers, comma-separated (`cpu,cpuacct`); empty on the v2 line (`0::PATH`).
    pub controllers: &'a str,
    pub path: &'a str,
}

/// A cgroup or cgroup2 mount from /proc/self/mountinfo; paths escaped as there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mount<'a> {
    /// The directory of the hierarchy mounted here (`/`, or a host path without a namespace).
    pub root: &'a str,
    pub mount_point: &'a str,
    pub version: Version,
    /// Super options: a v1 mount's controllers are among them (`rw,cpu,cpuacct`).
    pub options: &'a str,
}

/// Whether the comma-separated `list` names `controller`.
fn names(list: &str, controller: &str) -> bool {
    list.split(',').any(|name| name == controller)
}

/// Parses /proc/self/cgroup: `hierarchy-ID:controller-list:path` lines (the path may hold
/// colons; malformed lines are skipped).
pub fn parse_proc_cgroup(text: &str) -> impl Iterator<Item = Membership<'_>> {
    text.lines().filter_map(|line| {
        let mut fields = line.splitn(3, ':');
        let id = fields.next()?;
        let controllers = fields.next()?;
        let path = fields.next()?;
        (!id.is_empty() && path.starts_with('/')).then_some(Membership { controllers, path })
    })
}

/// Parses the cgroup and cgroup2 mounts of /proc/self/mountinfo: `ID PARENT MAJ:MIN ROOT
/// MOUNT_POINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER_OPTIONS` (other lines are skipped).
pub fn parse_mountinfo(text: &str) -> impl Iterator<Item = Mount<'_>> {
    text.lines().filter_map(|line| {
        let mut fields = line.split(' ');
        let root = fields.nth(3)?;
        let mount_point = fields.next()?;
        let mut after_dash = fields.skip_while(|field| *field != "-").skip(1);
        let version = match after_dash.next()? {
            "cgroup" => Version::V1,
            "cgroup2" => Version::V2,
            _ => return None,
        };
        let options = after_dash.nth(1).unwrap_or("");
        Some(Mount {
            root,
            mount_point,
            version,
            options,
        })
    })
}

/// mountinfo writes space, tab, newline and backslash in paths as `\040`-style octal escapes.
pub fn unescape(field: &str) -> String {
    if !field.contains('\\') {
        return field.to_owned();
    }
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).filter(|d| {
            bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)) && d[0] <= b'3'
        });
        match octal {
            Some(d) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The candidate directories (absolute, as mounted) of `controller`'s cgroup, in the order to
/// try them (module doc), and their version, from the texts of /proc/self/cgroup and
/// /proc/self/mountinfo; `None` when no line and mount match.
#[cfg(any(test, fuzzing))]
pub fn candidates(
    cgroup: &str,
    mountinfo: &str,
    controller: &str,
) -> Option<(Version, Vec<String>)> {
    let mounts: Vec<Mount> = parse_mountinfo(mountinfo).collect();
    candidates_among(cgroup, &mounts, controller)
}

/// [`candidates`] with mountinfo's cgroup mounts parsed once ([`parse_mountinfo`]): usher
/// looks up four controllers at start, and parsing every line of mountinfo for each cost
/// more instructions than the rest of the lookup.
pub fn candidates_among(
    cgroup: &str,
    mounts: &[Mount],
    controller: &str,
) -> Option<(Version, Vec<String>)> {
    let v1 = parse_proc_cgroup(cgroup)
        .find(|m| names(m.controllers, controller))
        .map(|m| (Version::V1, m));
    let (version, membership) = v1.or_else(|| {
        parse_proc_cgroup(cgroup)
            .find(|m| m.controllers.is_empty())
            .map(|m| (Version::V2, m))
    })?;
    let serves = |mount: &Mount| {
        mount.version == version && (version == Version::V2 || names(mount.options, controller))
    };
    // Several mounts of one hierarchy: prefer the one whose root holds the path.
    let mount = mounts
        .iter()
        .filter(|mount| serves(mount))
        .find(|mount| relative(membership.path, &unescape(mount.root)).is_some())
        .or_else(|| mounts.iter().find(|mount| serves(mount)))?;
    let point = unescape(mount.mount_point);
    let point = point.trim_end_matches('/');
    let mut paths: Vec<String> = Vec::with_capacity(3);
    let mut add = |rel: &str| {
        let path = if rel.is_empty() {
            point.to_owned()
        } else {
            format!("{point}/{rel}")
        };
        if !paths.contains(&path) {
            paths.push(path);
        }
    };
    // A cgroup outside the namespace's root shows as `/../x`: only the mount point is usher's.
    if !membership.path.split('/').any(|part| part == "..") {
        if let Some(rel) = relative(membership.path, &unescape(mount.root)) {
            add(rel);
        }
        add(membership.path.trim_matches('/'));
    }
    add("");
    Some((version, paths))
}

/// `path` below `root`, as a relative path (`""` for `root` itself), if it is below it.
fn relative<'a>(path: &'a str, root: &str) -> Option<&'a str> {
    let rest = path.strip_prefix(root.trim_end_matches('/'))?;
    if rest.is_empty() || rest.starts_with('/') {
        Some(rest.trim_start_matches('/'))
    } else {
        None
    }
}

/// Finds usher's cgroups from `root`/proc/self/cgroup and `root`/proc/self/mountinfo, mount
/// points taken under `root` (`/` in production, a fixture directory in tests).
///
/// Errors: either file unreadable (no /proc). A controller not found is `None`, not an error.
pub fn discover(root: &Path) -> Result<Cgroups, ReadError> {
    let proc_self = root.join("proc/self");
    let cgroup = super::read_text(&proc_self, "cgroup")?;
    let mountinfo = super::read_text(&proc_self, "mountinfo")?;
    let mounts: Vec<Mount> = parse_mountinfo(&mountinfo).collect();
    let locate = |controller: &str| {
        let (version, paths) = candidates_among(&cgroup, &mounts, controller)?;
        let path = paths
            .iter()
            .map(|p| root.join(p.trim_start_matches('/')))
            .find(|p| p.is_dir())?;
        Some(Dir { path, version })
    };
    Ok(Cgroups {
        memory: locate("memory"),
        cpu: locate("cpu"),
        cpuacct: locate("cpuacct"),
        pids: locate("pids"),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The cgroups of the fixture `tests/data/cgroup/NAME`.
    pub(crate) fn fixture(name: &str) -> Cgroups {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/cgroup")
            .join(name);
        match discover(&root) {
            Ok(cgroups) => cgroups,
            Err(e) => unreachable!("fixture {name}: {e}"),
        }
    }

    fn fixture_dir(name: &str, rel: &str, version: Version) -> Option<Dir> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/cgroup")
            .join(name);
        Some(Dir {
            path: root.join(rel),
            version,
        })
    }

    #[test]
    fn parses_v1_v2_and_hybrid_proc_cgroup() {
        let text = "12:pids:/docker/abc\n4:cpu,cpuacct:/docker/abc\n1:name=systemd:/x\n\
                    0::/weird:path\nbroken\n";
        let lines: Vec<Membership> = parse_proc_cgroup(text).collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[1].controllers, "cpu,cpuacct");
        assert!(names(lines[1].controllers, "cpuacct"));
        assert!(!names(lines[1].controllers, "cpuset"));
        assert_eq!(lines[1].path, "/docker/abc");
        assert_eq!(lines[3].controllers, "");
        assert_eq!(lines[3].path, "/weird:path");
    }

    #[test]
    fn parses_cgroup_mounts_with_optional_fields_and_escapes() {
        let text = "\
25 30 0:22 / /sys rw,nosuid shared:7 - sysfs sysfs rw
35 31 0:32 /docker/abc /sys/fs/cgroup/memory ro,nosuid master:9 - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/my\\040cgroup rw,relatime - cgroup2 cgroup2 rw,nsdelegate
";
        let mounts: Vec<Mount> = parse_mountinfo(text).collect();
        assert_eq!(mounts.len(), 2);
        assert_eq!(mounts[0].root, "/docker/abc");
        assert_eq!(mounts[0].mount_point, "/sys/fs/cgroup/memory");
        assert_eq!(mounts[0].version, Version::V1);
        assert_eq!(mounts[0].options, "rw,memory");
        assert_eq!(unescape(mounts[1].mount_point), "/sys/fs/my cgroup");
        assert_eq!(mounts[1].version, Version::V2);
        assert_eq!(unescape("a\\134b\\011\\9"), "a\\b\t\\9");
    }

    fn paths(list: &[&str]) -> Vec<String> {
        list.iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn candidates_in_a_namespace_without_one_and_in_the_hybrid_layout() {
        let mounts = "35 31 0:32 /docker/abc /sys/fs/cgroup/memory ro - cgroup cgroup rw,memory\n\
                      36 31 0:33 / /sys/fs/cgroup/pids ro - cgroup cgroup rw,pids\n\
                      41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";
        let lines = "5:memory:/docker/abc\n4:pids:/docker/abc\n0::/\n";
        // v1 Docker without a cgroup namespace: the mount's root is the container's cgroup.
        assert_eq!(
            candidates(lines, mounts, "memory"),
            Some((
                Version::V1,
                paths(&["/sys/fs/cgroup/memory", "/sys/fs/cgroup/memory/docker/abc"])
            ))
        );
        // The host's whole tree mounted: the path under the mount point.
        assert_eq!(
            candidates(lines, mounts, "pids"),
            Some((
                Version::V1,
                paths(&["/sys/fs/cgroup/pids/docker/abc", "/sys/fs/cgroup/pids"])
            ))
        );
        // Hybrid: a controller on no v1 line is looked for on v2.
        assert_eq!(
            candidates(lines, mounts, "cpu"),
            Some((Version::V2, paths(&["/sys/fs/cgroup/unified"])))
        );
        assert_eq!(candidates(&lines[..40], mounts, "cpu"), None);
        // A cgroup outside the namespace's root.
        assert_eq!(
            candidates("0::/../sibling\n", mounts, "memory"),
            Some((Version::V2, paths(&["/sys/fs/cgroup/unified"])))
        );
    }

    #[test]
    fn discovers_the_v2_fixture() {
        let found = fixture("v2");
        let dir = fixture_dir("v2", "sys/fs/cgroup", Version::V2);
        assert_eq!(
            found,
            Cgroups {
                memory: dir.clone(),
                cpu: dir.clone(),
                cpuacct: dir.clone(),
                pids: dir,
            }
        );
    }

    #[test]
    fn discovers_the_v1_fixture_with_host_paths_and_joined_controllers() {
        let found = fixture("v1");
        let cpu = fixture_dir("v1", "sys/fs/cgroup/cpu,cpuacct", Version::V1);
        assert_eq!(
            found,
            Cgroups {
                memory: fixture_dir("v1", "sys/fs/cgroup/memory", Version::V1),
                cpu: cpu.clone(),
                cpuacct: cpu,
                // Mounted whole: the host path below the mount point exists and wins.
                pids: fixture_dir("v1", "sys/fs/cgroup/pids/docker/0123abcd", Version::V1),
            }
        );
    }

    #[test]
    fn no_proc_is_an_error() {
        let Err(error) = discover(Path::new("/nonexistent")) else {
            unreachable!("found cgroups without /proc");
        };
        assert_eq!(
            error.to_string(),
            "failed to read /nonexistent/proc/self/cgroup"
        );
    }

    #[test]
    fn this_machine_does_not_panic() {
        // Whatever the host's layout, discovery answers.
        let _ = discover(Path::new("/")).map(|cgroups| crate::container::read(&cgroups));
    }
}
