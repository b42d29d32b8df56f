//! usher as a library: everything but `main`, which is the binary (main.rs). The modules the
//! binary calls into are public; the rest stay inside, so that the optimiser may treat them as
//! the binary's own (each public item is kept whole until the final link: see BENCHMARKS.md,
//! "Binary size"). Under `cargo fuzz` (`--cfg fuzzing`), [`fuzzing`] also names what the fuzz
//! targets (`fuzz/`) reach. Nothing here is a stable interface: usher ships as a binary only.

mod child;
pub mod cli;
mod config;
mod container;
mod health;
mod http_check;
mod log_io;
mod logs;
pub mod probe;
pub mod startup;
mod supervise;
pub mod sys;

/// usher's own signal mask at load time (see `sys`), which `main` gives back for what is not
/// supervision.
pub use sys::restore_inherited_signal_mask;

/// What the fuzz targets (`fuzz/fuzz_targets/`) call: every parser of bytes usher reads from
/// the app, the image, the network, the command line and the cgroup files, and the log
/// encoder. Only under `cargo fuzz`, so the binary's public surface stays what `main` needs.
#[cfg(fuzzing)]
pub mod fuzzing {
    pub use crate::child::environment::{EnvError, SyntaxError, parse_env_file};
    pub use crate::child::user::{Credentials, UserError, resolve, resolve_in};
    pub use crate::container::cgroup::{
        Membership, Mount, Version, candidates, parse_mountinfo, parse_proc_cgroup, unescape,
    };
    pub use crate::container::cpu::parse_throttling;
    pub use crate::container::oom::parse_kills;
    pub use crate::container::process_tree::{Stat, parse_stat, parse_vm_rss};
    pub use crate::container::{Limit, Throttling, parse_keyed, parse_limit, parse_number};
    pub use crate::health::notify::{MAX_STATUS, Notification, Ping};
    pub use crate::http_check::{Answer, HeadError, MAX_HEAD, MAX_QUOTE};
    pub use crate::logs::level::{SNIFF_WINDOW, sniff};
    pub use crate::logs::{Level, LineEncoder, LogFormat, LogSchema, Stream};
}
