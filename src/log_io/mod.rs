//! The I/O side of logging: the relay threads that read the child's pipes (`relay`), the shared
//! output sink that keeps records whole (`output`), and usher's own events (`events`).

pub mod events;
pub mod output;
pub mod relay;
