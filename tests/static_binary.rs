//! usher is a static binary that needs nothing from the file system it runs in: no loader, no
//! libc, no /etc for numeric users, no /proc to start.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;
use std::process::Command;
use support::*;

/// Whether the ELF file asks for a program interpreter (a dynamic loader): a PT_INTERP header.
fn has_interpreter(path: &std::path::Path) -> bool {
    let elf = std::fs::read(path).unwrap();
    assert_eq!(&elf[..4], b"\x7fELF", "{}", path.display());
    assert_eq!(elf[4], 2, "64-bit ELF expected");
    let u16_at = |at: usize| u16::from_le_bytes(elf[at..at + 2].try_into().unwrap()) as usize;
    let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into().unwrap()) as usize;
    let (entry_size, count) = (u16_at(0x36), u16_at(0x38));
    (0..count).any(|i| {
        let at = phoff + i * entry_size;
        u32::from_le_bytes(elf[at..at + 4].try_into().unwrap()) == 3 // PT_INTERP
    })
}

#[test]
fn usher_and_the_demo_app_are_static() {
    let demo = std::path::PathBuf::from(fixture("demo_app"));
    for binary in [usher(), demo] {
        assert!(
            !has_interpreter(&binary),
            "{} needs a dynamic loader: .cargo/config.toml sets +crt-static",
            binary.display()
        );
    }
    // The check itself can fail: a dynamically linked program has an interpreter.
    assert!(has_interpreter(std::path::Path::new("/bin/sh")));
}

/// In an empty root (only usher and the app: no /etc, no /proc, no /dev, no libc), as PID 1,
/// usher starts the app as a numeric user and passes its status on.
#[test]
fn runs_in_an_empty_root_file_system() {
    if !require_root("runs_in_an_empty_root_file_system") {
        return;
    }
    let root = TempDir::new("empty-root");
    std::fs::copy(usher(), root.dir.join("usher")).unwrap();
    std::fs::copy(fixture("exit_with"), root.dir.join("exit_with")).unwrap();
    let output = Command::new("unshare")
        .args(["--pid", "--fork", "--kill-child", "chroot"])
        .arg(&root.dir)
        .args([
            "/usher",
            "-v",
            "--health-addr",
            "127.0.0.1:0",
            "--user",
            "4242:4242",
            "--",
            "/exit_with",
            "code",
            "3",
        ])
        .env("USHER_LOG_FORMAT", "raw")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("dropped usher's own privileges to uid 4242"),
        "{stderr}"
    );
    assert!(!root.dir.join("proc").exists() && !root.dir.join("etc").exists());
}
