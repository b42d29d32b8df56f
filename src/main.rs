//! usher: a tiny PID 1 for containers. parse -> validate -> run -> exit status.

mod child;
mod cli;
mod health;
mod http_check;
mod log_io;
mod logs;
mod probe;
mod supervise;
mod sys;

use std::io::Write;
use std::process::ExitCode;

use cli::{Invocation, LogMode};
use log_io::events;
use logs::LogFormat;
use std::sync::Arc;
use std::time::{Duration, Instant};

const LICENSE: &str = "usher is dual-licensed under MIT OR Apache-2.0.\n";

fn main() -> ExitCode {
    // First of all, before any thread exists: from here on every signal is queued for usher,
    // including those sent before the child exists (they are forwarded once it does).
    let inbox = match sys::take_over_signals() {
        Ok(inbox) => inbox,
        Err(e) => return usage_error(&format!("failed to take over signals: {e}")),
    };
    let args = std::env::args_os().skip(1).collect();
    let mut config = match cli::parse(args, &|name| std::env::var_os(name)) {
        Ok(Invocation::Run(config)) => config,
        Ok(Invocation::Help) => return print(cli::HELP),
        Ok(Invocation::Probe(probe)) => {
            return match probe::run(&probe) {
                Ok(()) => ExitCode::SUCCESS,
                Err(why) => {
                    let _ = writeln!(std::io::stderr(), "usher probe: {why}");
                    ExitCode::from(1)
                }
            };
        }
        Ok(Invocation::Version) => {
            return print(concat!("usher ", env!("CARGO_PKG_VERSION"), "\n"));
        }
        Ok(Invocation::License) => return print(LICENSE),
        Err(e) => return usage_error(&e.to_string()),
    };
    if config.log_format == LogMode::Auto {
        config.log_format = if sys::stdout_is_terminal() {
            LogMode::Raw
        } else {
            LogMode::Json
        };
    }
    let child = match child::ChildSpec::prepare(&config) {
        Ok(child) => child,
        Err(e) => return usage_error(&e.to_string()),
    };
    // Bound before anything starts: a port in use is a configuration error.
    let health_listener = match config.health_addr.map(health::server::bind).transpose() {
        Ok(listener) => listener,
        Err(e) => {
            let addr = config
                .health_addr
                .map(|a| a.to_string())
                .unwrap_or_default();
            return usage_error(&format!("--health-addr {addr}: cannot listen there: {e}"));
        }
    };
    let log_format = (config.log_format == LogMode::Json).then(|| {
        let fields = std::mem::take(&mut config.log_fields);
        Arc::new(LogFormat::new(
            config.log_max_record,
            fields,
            config.stderr_level,
        ))
    });
    match &log_format {
        Some(format) => events::use_json(config.verbosity, Arc::clone(format)),
        None => events::use_raw(config.verbosity),
    }
    if let Some(addr) = health_listener.as_ref().and_then(|l| l.local_addr().ok()) {
        events::info!("health server listening on {addr}");
    }
    let code =
        supervise::event_loop::run(*config, child, log_format.as_ref(), health_listener, inbox);
    events::flush(Instant::now() + Duration::from_secs(2));
    ExitCode::from(code)
}

fn print(text: &str) -> ExitCode {
    let _ = std::io::stdout().write_all(text.as_bytes());
    ExitCode::SUCCESS
}

fn usage_error(message: &str) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "usher: {message}");
    ExitCode::from(2)
}
