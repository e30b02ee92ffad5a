//! The commands of the `chatprobe` binary, one module each: `agent`, `once`,
//! `check`, `demo`, `backend`, `status-page` and `bench`, and how the
//! commands that run probes put the pieces together ([`wiring`]).

pub mod agent;
pub mod backend;
pub mod bench;
pub mod check;
pub mod demo;
pub mod once;
pub mod status_page;
pub mod wiring;
