//! chatprobe: a synthetic group-chat prober.
//!
//! Data flows one way: config → scheduler → probe → client → outcome →
//! metrics and status. See `docs/architecture.md` for the map of modules.
#![deny(unsafe_code)]
#![warn(missing_docs)]
#![warn(unreachable_pub)]

#[macro_use]
mod labels;

pub mod backend;
pub mod client;
pub mod cmd;
pub mod config;
mod credentials;
mod endpoints;
pub mod logging;
pub mod metrics;
mod notify;
mod open_files;
pub mod outcome;
pub mod probe;
pub mod protocol;
mod record;
pub mod remote_write;
mod reports;
mod schedule;
pub mod shutdown;
pub mod status;
mod status_page;
mod store;
pub mod yaml;
