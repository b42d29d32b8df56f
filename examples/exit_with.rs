//! Fixture: `exit_with code N` exits with N; `exit_with signal SIG` dies by that signal.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["code", code] => std::process::exit(code.parse().unwrap()),
        ["signal", name] => {
            let signo = support::signal_number(name);
            // SAFETY: restore the default action (Rust handles SEGV itself) and raise it.
            unsafe {
                libc::signal(signo, libc::SIG_DFL);
                libc::raise(signo);
            }
            unreachable!("still alive after raising {name}");
        }
        _ => panic!("usage: exit_with code N | signal SIG"),
    }
}
