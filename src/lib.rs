//! chatprobe: a synthetic group-chat prober.
//!
//! Data flows one way: config → scheduler → probe → client → outcome →
//! metrics and status. See `README.md` for the map of modules.
#![forbid(unsafe_code)]

pub mod backend;
pub mod bench;
pub mod client;
pub mod logging;
pub mod outcome;
pub mod probe;
pub mod protocol;
pub mod yaml;
