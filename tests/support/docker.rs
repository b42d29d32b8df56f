//! The Docker engine as the end-to-end tests use it (tests/docker.rs, tests/swarm.rs): the
//! run's id that scopes what they make, and `docker` commands.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::support::require;
use std::process::{Command, Output};

/// This run's id: `E2E_RUN_ID` when set (`.ci/run` and bench/repeat_docker.sh set their
/// own), else `NS-PID-START` of this test process (its PID namespace's inode, its pid, its
/// start time in clock ticks since boot): unique on the host while the process lives, and
/// enough for `.ci/docker_sweep --stale` to tell whether the run is over. (Not a `USHER_*`
/// name: the ushers of the other tests inherit it, and usher warns of unknown ones.)
pub fn run_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        if let Ok(id) = std::env::var("E2E_RUN_ID") {
            // It goes into tags and names: Docker's characters only.
            let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
            assert!(
                !id.is_empty() && id.len() <= 64 && id.chars().all(allowed),
                "E2E_RUN_ID={id:?}: want 1 to 64 of [a-z0-9-]"
            );
            return id;
        }
        use std::os::unix::fs::MetadataExt;
        let namespace = std::fs::metadata("/proc/self/ns/pid").unwrap().ino();
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
        // Field 22 of proc(5), counted after the command name's closing parenthesis (field 2,
        // which may itself hold spaces and parentheses).
        let (_, after_name) = stat.rsplit_once(") ").unwrap();
        let start = after_name.split_whitespace().nth(19).unwrap();
        format!("{namespace}-{}-{start}", std::process::id())
    })
}

pub fn docker(args: &[&str]) -> Output {
    Command::new("docker").args(args).output().unwrap()
}

pub fn docker_ok(args: &[&str]) -> String {
    let output = docker(args);
    assert!(
        output.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// Whether an engine answers (see `require`: with CI set it must).
pub fn engine_answers(test: &str) -> bool {
    let answers = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .is_ok_and(|o| o.status.success());
    require(
        test,
        "a Docker engine (`docker version` got no answer)",
        answers,
    )
}
