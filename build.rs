//! Build facts for `usher --version`: the commit and the target triple, as compile-time
//! variables `BUILD_INFO_COMMIT` and `BUILD_INFO_TARGET`. Not `USHER_*`: cargo also puts them in
//! the environment of `cargo test` and `cargo run`, where usher would warn about them as unknown
//! settings.
//!
//! The commit is `git rev-parse --short HEAD` when the package root holds `.git` (a clone or a
//! worktree), with `-dirty` when what goes into the binary (`src/`, `build.rs`, `Cargo.toml`,
//! `Cargo.lock`, `.cargo/`) differs from that commit; `unknown` otherwise (a source tarball, a
//! Docker context without `.git`, no git installed). A `BUILD_COMMIT` variable set at build
//! time wins (`docker build --build-arg BUILD_COMMIT=$(git rev-parse --short HEAD)`).
//! Only `.git` in the package root counts: a tarball unpacked inside another repository must not
//! take that repository's commit.

use std::path::Path;
use std::process::Command;

/// What decides the binary's contents, and so whether the tree is "dirty" for it.
const SOURCES: &[&str] = &["src", "build.rs", "Cargo.toml", "Cargo.lock", ".cargo"];

fn main() {
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".to_string());
    println!("cargo:rustc-env=BUILD_INFO_TARGET={target}");
    println!("cargo:rerun-if-env-changed=BUILD_COMMIT");
    println!("cargo:rerun-if-changed=build.rs");

    let commit = match std::env::var("BUILD_COMMIT") {
        Ok(given) if !given.trim().is_empty() => given.trim().to_string(),
        _ if Path::new(".git").exists() => from_git().unwrap_or_else(|| "unknown".to_string()),
        _ => "unknown".to_string(),
    };
    println!("cargo:rustc-env=BUILD_INFO_COMMIT={commit}");
}

/// The short commit (plus `-dirty`), and the files whose change must run this script again.
fn from_git() -> Option<String> {
    let commit = git(&["rev-parse", "--short", "HEAD"])?;
    // Re-run when HEAD moves (a commit, checkout or reset: HEAD itself, its reflog, the branch's
    // ref loose or packed) and when the sources change (the dirty mark). `--git-path` finds these
    // in a worktree too, where HEAD is per worktree and refs are shared. A path that does not
    // exist is left out: cargo would re-run the script on every build for it.
    let mut watched: Vec<String> = SOURCES.iter().map(|s| s.to_string()).collect();
    let mut git_files = vec!["HEAD".to_string(), "logs/HEAD".into(), "packed-refs".into()];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        git_files.push(branch);
    }
    for file in git_files {
        if let Some(path) = git(&["rev-parse", "--git-path", &file]) {
            watched.push(path);
        }
    }
    for path in watched.iter().filter(|p| Path::new(p).exists()) {
        println!("cargo:rerun-if-changed={path}");
    }

    let mut status = vec!["status", "--porcelain", "--"];
    status.extend(SOURCES);
    let dirty = git(&status).is_some();
    Some(if dirty {
        format!("{commit}-dirty")
    } else {
        commit
    })
}

/// git's trimmed stdout, or None when git is missing, fails or prints nothing.
fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    let text = text.trim();
    (output.status.success() && !text.is_empty()).then(|| text.to_string())
}
