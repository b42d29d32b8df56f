//! usher: a tiny PID 1 for containers. Parse and validate, then probe, help, version or run;
//! exit with the child's status (design.md, sections 1 and 2).

use std::io::Write;
use std::process::ExitCode;

use usher::cli::{self, Invocation};
use usher::{probe, startup};

/// `usher 0.2.0-dev (commit abc1234, x86_64-unknown-linux-gnu)`: the commit is `abc1234-dirty` when
/// built from changed sources and `unknown` without `.git` (a tarball); see build.rs.
const VERSION: &str = concat!(
    "usher ",
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("BUILD_INFO_COMMIT"),
    ", ",
    env!("BUILD_INFO_TARGET"),
    ")\n"
);
const LICENSE: &str =
    "usher is dual-licensed under MIT OR Apache-2.0 (LICENSE-MIT, LICENSE-APACHE).\n";

fn main() -> ExitCode {
    let args = std::env::args_os().skip(1).collect();
    let invocation = cli::parse(args, &|name| std::env::var_os(name));
    if !matches!(invocation, Ok(Invocation::Run(_))) {
        // Every signal usher takes over is blocked since load time (sys.rs), for supervision
        // only: a probe must end at once on SIGTERM like any command, in the mask it inherited.
        if let Err(e) = usher::restore_inherited_signal_mask() {
            let _ = writeln!(
                std::io::stderr(),
                "usher: failed to restore the inherited signal mask: {e}"
            );
        }
    }
    match invocation {
        Ok(Invocation::Run(mut config)) => {
            config.unknown_variables = cli::unknown_variables(std::env::vars_os().map(|(k, _)| k));
            ExitCode::from(startup::run(*config))
        }
        Ok(Invocation::Probe(probe)) => ExitCode::from(probe::main(&probe)),
        Ok(Invocation::Help(text)) => print(&text),
        Ok(Invocation::Version) => print(VERSION),
        Ok(Invocation::License) => print(LICENSE),
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "usher: {e}");
            ExitCode::from(2)
        }
    }
}

fn print(text: &str) -> ExitCode {
    let _ = std::io::stdout().write_all(text.as_bytes());
    ExitCode::SUCCESS
}
