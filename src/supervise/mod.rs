//! Supervision: the pure state machine (`state`), the loop that feeds it events and carries out
//! its actions (`event_loop`), the one reaper (`reaper`), the process table read from /proc
//! (`process_table`) and signal names and rewrites (`signals`).

pub mod event_loop;
pub mod process_table;
pub mod reaper;
pub mod signals;
pub mod state;
