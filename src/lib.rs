//! chatprobe: a synthetic group-chat prober.
//!
//! Data flows one way: config → scheduler → probe → client → outcome →
//! metrics and status. See `README.md` for the map of modules.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod agent;
pub mod backend;
pub mod bench;
pub mod check;
pub mod client;
pub mod config;
pub mod demo;
pub mod fleet;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod once;
pub mod open_files;
pub mod outcome;
pub mod probe;
pub mod protocol;
pub mod record;
pub mod remote_write;
pub mod schedule;
pub mod shutdown;
pub mod status;
pub mod wiring;
pub mod yaml;
